//! `git seal check --accept COMMIT:PATH --reason TEXT`: a trusted signer's
//! `accept-finding` entry sets one finding aside in `check` and
//! pre-receive; nothing else does (no unsigned entry, no untrusted signer,
//! no other commit). Also `check` in a shallow clone.

use std::path::Path;

use serde_json::{json, Value};

use crate::harness::{stderr, stdout, write_file, Env};

const REF: &str = "refs/seal/audit";
const LEAKED: &[u8] = b"PASSWORD=hunter2\n";

/// A sealed repository whose history holds a plaintext commit of
/// `secrets/old.env` that a later commit fixed (sealed it); returns the
/// repository and the leaking commit.
fn fixed_leak(env: &Env, name: &str) -> (std::path::PathBuf, String) {
    let dir = env.sealed_repo(name);
    leak_and_fix(env, &dir)
}

fn leak_and_fix(env: &Env, dir: &Path) -> (std::path::PathBuf, String) {
    let leak = commit_leak(env, dir, LEAKED);
    write_file(dir, "secrets/old.env", b"PASSWORD=rotated\n");
    env.git(dir, &["add", "secrets/old.env"]);
    env.git(dir, &["commit", "-q", "-m", "seal it"]);
    (dir.to_owned(), leak)
}

/// Commit `content` at `secrets/old.env` as plaintext (`--no-verify`, no
/// filter); returns the commit.
fn commit_leak(env: &Env, dir: &Path, content: &[u8]) -> String {
    env.stage_raw(dir, "secrets/old.env", content);
    env.git(dir, &["commit", "-q", "--no-verify", "-m", "leak"]);
    env.rev(dir, "HEAD")
}

/// Assert that `report`'s only finding is `secrets/old.env` as plaintext
/// in `commit`.
#[track_caller]
fn assert_only_leak(report: &Value, commit: &str) {
    assert_eq!(
        findings(report),
        [(
            commit.to_owned(),
            "secrets/old.env".into(),
            "plaintext".into()
        )]
    );
}

fn check_json(env: &Env, dir: &Path, code: i32) -> Value {
    let out = env.run("git-seal", dir, &["check", "--json"], None);
    assert_eq!(out.status.code(), Some(code), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// (commit, path, kind) of each finding in a `check --json` report.
fn findings(report: &Value) -> Vec<(String, String, String)> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap().to_owned();
            (s("commit"), s("path"), s("kind"))
        })
        .collect()
}

fn accept_args<'a>(target: &'a str, reason: &'a str) -> [&'a str; 5] {
    ["check", "--accept", target, "--reason", reason]
}

fn fingerprint(env: &Env, dir: &Path) -> String {
    let report: Value =
        serde_json::from_str(&env.seal(dir, &["audit", "verify", "--json"])).unwrap();
    report["root"].as_str().unwrap().to_owned()
}

/// Does `report` validate against docs/schemas/check.schema.json? (Skips
/// without python3's jsonschema, except under CI.)
fn assert_check_schema(env: &Env, dir: &Path, report: &Value) {
    let probe = env.run("python3", dir, &["-c", "import jsonschema"], None);
    if !probe.status.success() {
        assert!(!crate::harness::in_ci(), "python3 jsonschema is missing");
        return;
    }
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/schemas/check.schema.json");
    let validate = format!(
        "import json, sys, jsonschema\njsonschema.validate(json.load(sys.stdin), json.load(open({:?})))",
        schema.to_str().unwrap()
    );
    let text = serde_json::to_vec(report).unwrap();
    let out = env.run("python3", dir, &["-c", &validate], Some(&text));
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_fixed_historic_leak_fails_check_until_a_trusted_signer_accepts_it() {
    let env = Env::new();
    let (dir, leak) = fixed_leak(&env, "r");
    let report = check_json(&env, &dir, 1);
    assert_only_leak(&report, &leak);
    assert_eq!(report["accepted"], json!([]));

    // Refused: no reason; an empty one; a path without a finding; not a
    // commit. None appends anything.
    let tip = env.rev(&dir, REF);
    let target = format!("{leak}:secrets/old.env");
    let err = stderr(&env.fails("git-seal", &dir, &["check", "--accept", &target], 2));
    assert!(err.contains("--reason"), "{err}");
    env.fails("git-seal", &dir, &accept_args(&target, " "), 2);
    let nothing = format!("{leak}:README");
    let err = stderr(&env.fails("git-seal", &dir, &accept_args(&nothing, "x"), 1));
    assert!(
        err.contains(&format!("no finding at README in commit {leak}")),
        "{err}"
    );
    env.fails("git-seal", &dir, &accept_args("nosuch:README", "x"), 2);
    assert_eq!(
        env.rev(&dir, REF),
        tip,
        "a refused accept appended an entry"
    );

    // Accepted, by the short id: the entry names the full commit, the
    // path, the blob, the kind and the reason (control characters and
    // all: the text output escapes them).
    let short = format!("{}:secrets/old.env", &leak[..10]);
    let reason = "rewritten out of every branch; password rotated\nsecrets/x: forged";
    let out = env.seal(&dir, &accept_args(&short, reason));
    assert!(out.contains("accepted the plaintext finding"), "{out}");
    let entry: Value =
        serde_json::from_str(&env.git(&dir, &["cat-file", "-p", &format!("{REF}:entry.json")]))
            .unwrap();
    let blob = env.rev(&dir, &format!("{leak}:secrets/old.env"));
    assert_eq!(entry["event"], "accept-finding");
    assert_eq!(
        entry["data"],
        json!({"commit": leak, "path": "secrets/old.env", "blob": blob,
               "kind": "plaintext", "reason": reason})
    );
    env.seal(&dir, &["audit", "verify"]);

    // check passes and says what was accepted, by whom and why.
    let out = env.ok("git-seal", &dir, &["check"]);
    let text = stdout(&out);
    let me = fingerprint(&env, &dir);
    assert_eq!(
        text,
        format!(
            "accepted: {leak}: secrets/old.env: plaintext accepted by Ada Tester <ada@example.test> ({me}): rewritten out of every branch; password rotated\\nsecrets/x: forged\n"
        )
    );
    assert!(
        stderr(&out).contains("ok, 1 accepted finding(s)"),
        "{}",
        stderr(&out)
    );
    let report = check_json(&env, &dir, 0);
    assert_eq!(report["ok"], true);
    assert_eq!(report["findings"], json!([]));
    let accepted = &report["accepted"][0];
    assert_eq!(accepted["commit"], leak.as_str());
    assert_eq!(accepted["path"], "secrets/old.env");
    assert_eq!(accepted["kind"], "plaintext");
    assert_eq!(accepted["blob"], blob.as_str());
    assert_eq!(accepted["reason"], reason);
    assert_eq!(accepted["accepted_by"]["signer"], me.as_str());
    assert_eq!(accepted["entry"], env.rev(&dir, REF).as_str());
    assert_check_schema(&env, &dir, &report);

    // Accepting it again appends nothing.
    let tip = env.rev(&dir, REF);
    let out = env.seal(&dir, &accept_args(&target, "again"));
    assert!(out.contains("already accepted"), "{out}");
    assert_eq!(env.rev(&dir, REF), tip);
}

#[test]
fn the_same_path_leaking_again_in_another_commit_is_still_a_finding() {
    let env = Env::new();
    let (dir, leak) = fixed_leak(&env, "r");
    env.seal(
        &dir,
        &accept_args(&format!("{leak}:secrets/old.env"), "rotated"),
    );
    env.seal(&dir, &["check"]);

    // The very same bytes put back at the same path: the same blob, which
    // the walk judges once, but a new commit and a new leak.
    let again = commit_leak(&env, &dir, LEAKED);
    let report = check_json(&env, &dir, 1);
    assert_only_leak(&report, &again);
    assert_eq!(report["accepted"][0]["commit"], leak.as_str());
    // A commit that only carries it on is not a new finding.
    write_file(&dir, "README", b"more\n");
    env.git(&dir, &["add", "README"]);
    env.git(&dir, &["commit", "-q", "--no-verify", "-m", "carry on"]);
    let leaked = env.rev(&dir, &format!("{leak}:secrets/old.env"));
    assert_eq!(env.rev(&dir, "HEAD:secrets/old.env"), leaked);
    assert_eq!(findings(&check_json(&env, &dir, 1)).len(), 1);

    // Other bytes at that path.
    env.git(&dir, &["reset", "-q", "--hard", "HEAD~2"]);
    let other = commit_leak(&env, &dir, b"PASSWORD=other\n");
    assert_only_leak(&check_json(&env, &dir, 1), &other);
}

/// Accepting the finding at a commit that only carries the leaked blob on
/// is recorded, but it is not the finding a check of history reports (that
/// one is where the blob came in), and the note says so.
#[test]
fn accepting_where_a_leak_is_only_carried_on_names_where_it_came_in() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    let leak = commit_leak(&env, &dir, LEAKED);
    write_file(&dir, "README", b"more\n");
    env.git(&dir, &["add", "README"]);
    env.git(&dir, &["commit", "-q", "--no-verify", "-m", "carry on"]);
    let carried = env.rev(&dir, "HEAD");
    let target = format!("{carried}:secrets/old.env");
    let out = env.seal(&dir, &accept_args(&target, "only here"));
    assert!(
        out.contains(&format!("note: its parent {leak} has the same blob")),
        "{out}"
    );
    assert_only_leak(&check_json(&env, &dir, 1), &leak);
    // The range that starts at that commit reports it there: accepted.
    let range = format!("{leak}..HEAD");
    let out = env.ok("git-seal", &dir, &["check", &range]);
    assert!(
        stdout(&out).starts_with(&format!("accepted: {carried}: secrets/old.env")),
        "{}",
        stdout(&out)
    );
}

/// A second user with a signer of their own, in the same repository.
fn stranger(env: &Env) -> Env {
    let mut other = Env::new();
    other.set(
        "GIT_SEAL_SIGNER_DIR",
        env.path("stranger-signer").to_str().unwrap(),
    );
    other
}

#[test]
fn an_untrusted_signer_cannot_accept_and_is_told_the_fix() {
    let env = Env::new();
    let (dir, leak) = fixed_leak(&env, "r");
    let tip = env.rev(&dir, REF);
    let other = stranger(&env);
    let target = format!("{leak}:secrets/old.env");
    let err = stderr(&other.fails("git-seal", &dir, &accept_args(&target, "mine"), 1));
    assert!(err.contains("is not trusted by refs/seal/audit"), "{err}");
    assert!(
        err.contains("git seal audit signer add 'ssh-ed25519 "),
        "{err}"
    );
    assert_eq!(env.rev(&dir, REF), tip);
    env.fails("git-seal", &dir, &["check"], 1);

    // Once trusted, the same command works.
    env.trust_signer_of(&dir, &other, "s@example.test");
    other.seal(&dir, &accept_args(&target, "mine"));
    env.seal(&dir, &["check"]);
}

/// Append `data` as an `accept-finding` entry signed by the signer in
/// `signer_dir`, through the library (as a forger who skips git-seal's
/// trust check would).
fn append_signed_by(dir: &Path, signer_dir: &Path, data: &Value) {
    let repo = git_seal::repo::Repo::discover(dir).unwrap();
    let signer = git_seal::audit::Signer::load_or_create_in(signer_dir).unwrap();
    let new = git_seal::audit::NewEntry {
        event: "accept-finding",
        data: data.as_object().unwrap().clone(),
    };
    git_seal::audit::append(&repo, &signer, &new, git_seal::audit::When::Always).unwrap();
}

/// Commit `data` as an unsigned `accept-finding` entry on the chain.
fn append_unsigned(env: &Env, dir: &Path, data: &Value) {
    let next = crate::audit::next_entry_text(env, dir, "accept-finding");
    let mut entry: Value = serde_json::from_str(&next).unwrap();
    entry["data"] = data.clone();
    let text = serde_json::to_string_pretty(&entry).unwrap() + "\n";
    crate::audit::forge_entry(env, dir, &text, None);
}

#[test]
fn an_acceptance_not_signed_by_a_trusted_signer_is_not_honoured() {
    let env = Env::new();
    let (origin, leak) = fixed_leak(&env, "origin");
    // A copy of the repository and its chain.
    let dir = env.clone_repo(&origin, "copy");
    env.git(&dir, &["fetch", "-q", "origin", &format!("{REF}:{REF}")]);
    let start = env.rev(&dir, REF);
    let data = json!({
        "commit": leak,
        "path": "secrets/old.env",
        "blob": env.rev(&dir, &format!("{leak}:secrets/old.env")),
        "kind": "plaintext",
        "reason": "trust me",
    });
    let refused = |what: &str| {
        let report = check_json(&env, &dir, 1);
        assert_eq!(report["accepted"], json!([]), "{what}");
        assert_eq!(findings(&report).len(), 1, "{what}");
        env.fails("git-seal", &dir, &["audit", "verify"], 1);
    };

    // Signed, but by a signer the chain never trusted.
    append_signed_by(&dir, &env.path("stranger-signer"), &data);
    refused("an untrusted signer's entry");
    // Each case starts from the copied chain again: a cut on purpose, so
    // the clone's memory of the highest tip it saw goes too
    // (docs/audit.md, check 7).
    let rewind = || {
        env.git(&dir, &["update-ref", REF, &start]);
        let _ = std::fs::remove_file(dir.join(".git/seal/audit-verified"));
    };
    // Not signed at all.
    rewind();
    append_unsigned(&env, &dir, &data);
    refused("an unsigned entry");

    // The same data signed by the trusted signer is honoured.
    rewind();
    append_signed_by(&dir, &env.home.join("signers"), &data);
    let report = check_json(&env, &dir, 0);
    assert_eq!(report["accepted"][0]["reason"], "trust me");
}

#[test]
fn pre_receive_honours_an_accepted_finding_in_the_chain_it_is_pushed_with() {
    let env = Env::new();
    let (dir, _server) = env.served_repo("r");
    let (_, leak) = leak_and_fix(&env, &dir);
    let out = env.run("git", &dir, &["push", "origin", "main"], None);
    let err = stderr(&out);
    assert!(!out.status.success(), "the server took the leak:\n{err}");
    assert!(err.contains(&format!("{leak}: secrets/old.env")), "{err}");

    env.seal(
        &dir,
        &accept_args(&format!("{leak}:secrets/old.env"), "rotated"),
    );
    // The branch alone (--no-verify: no pre-push hook to publish the
    // chain with it): the server's chain, as the first push published it,
    // accepts nothing.
    let out = env.run(
        "git",
        &dir,
        &["push", "--no-verify", "origin", "main"],
        None,
    );
    assert!(!out.status.success(), "{}", stderr(&out));
    // With the chain that accepts it (as the pre-push hook publishes it).
    let out = env.ok("git", &dir, &["push", "origin", "main"]);
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "accepted: {leak}: secrets/old.env: plaintext accepted by Ada Tester"
        )),
        "{err}"
    );
}

#[test]
fn check_in_a_shallow_clone_says_where_history_is_cut_off() {
    let env = Env::new();
    let origin = env.sealed_repo("origin");
    write_file(&origin, "secrets/a.env", b"A=1\n");
    env.git(&origin, &["add", "-A"]);
    env.git(&origin, &["commit", "-q", "-m", "a"]);
    let head = env.rev(&origin, "HEAD");
    let url = format!("file://{}", origin.display());
    let shallow = env.path("shallow");
    let to = shallow.to_str().unwrap();
    env.git(env.tmp.path(), &["clone", "-q", "--depth", "1", &url, to]);

    let out = env.ok("git-seal", &shallow, &["check"]);
    let err = stderr(&out);
    assert!(
        err.contains(&format!("history is cut off at {head}"))
            && err.contains("`git fetch --unshallow`"),
        "{err}"
    );
    let report = check_json(&env, &shallow, 0);
    assert_eq!(report["shallow"], true);
    assert_eq!(report["shallow_boundary"], json!([head]));
    assert_check_schema(&env, &shallow, &report);
    let out = env.fails(
        "git-seal",
        &shallow,
        &["check", "--require-full-history"],
        1,
    );
    assert!(
        stderr(&out).contains("--require-full-history"),
        "{}",
        stderr(&out)
    );

    // Whole again: nothing to say, and nothing to require.
    env.git(&shallow, &["fetch", "-q", "--unshallow"]);
    let out = env.ok("git-seal", &shallow, &["check", "--require-full-history"]);
    assert!(!stderr(&out).contains("cut off"), "{}", stderr(&out));
    let report = check_json(&env, &shallow, 0);
    assert_eq!(report["shallow"], false);
    assert_eq!(report["commits"], 3);
}
