//! An audit trail with no holes (issue 13): the chain travels with pushes
//! and fetches, every commit that changed sealed paths has its entry or is
//! reported, an entry that could not be written is retried, and a chain
//! cut back locally is noticed.

use std::path::Path;

use serde_json::Value;

use crate::audit::{events, log_json, team, trust_bea, write, Team};
use crate::harness::{stderr, stdout, Env};

const REF: &str = "refs/seal/audit";

/// `audit verify --coverage --json`'s `coverage.unrecorded` commits.
fn unrecorded(env: &Env, dir: &Path) -> Vec<String> {
    let out = env.run(
        "git-seal",
        dir,
        &["audit", "verify", "--coverage", "--json"],
        None,
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    report["coverage"]["unrecorded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["commit"].as_str().unwrap().to_owned())
        .collect()
}

/// The commits the chain's `seal` entries name, newest first.
fn sealed_commits(env: &Env, dir: &Path) -> Vec<String> {
    log_json(env, dir)
        .iter()
        .filter(|e| e["event"] == "seal")
        .map(|e| e["data"]["commit"].as_str().unwrap().to_owned())
        .collect()
}

fn commit_secret(env: &Env, dir: &Path, name: &str, content: &str) -> String {
    write(dir, &format!("secrets/{name}"), content);
    env.git(dir, &["add", "secrets"]);
    env.git(dir, &["commit", "-q", "-m", name]);
    env.rev(dir, "HEAD")
}

/// The observation: Bea's commit while untrusted went unrecorded; Ada
/// trusts her and publishes; Bea's plain `git pull` says "Already up to
/// date", yet the fetch takes the chain in (reference-transaction hook) and
/// records her earlier commit, and her next commit is recorded at once.
#[test]
fn a_plain_pull_takes_the_chain_in_and_records_the_teammates_commit() {
    let Team {
        ada,
        bea,
        ada_dir,
        bea_dir,
    } = team();
    write(&bea_dir, "secrets/b.env", "B=1\n");
    bea.git(&bea_dir, &["add", "secrets"]);
    let out = bea.ok("git", &bea_dir, &["commit", "-q", "-m", "bea's secret"]);
    assert!(stderr(&out).contains("not trusted"), "{}", stderr(&out));
    let early = bea.rev(&bea_dir, "HEAD");
    assert_eq!(unrecorded(&bea, &bea_dir), vec![early.clone()]);

    trust_bea(&ada, &bea, &ada_dir, &bea_dir);
    ada.seal(&ada_dir, &["audit", "sync"]);
    let out = bea.ok("git", &bea_dir, &["pull", "--no-rebase"]);
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(said.contains("Already up to date"), "{said}");
    assert!(events(&bea, &bea_dir).contains(&"signer-add".to_owned()));
    assert_eq!(sealed_commits(&bea, &bea_dir), vec![early.clone()]);
    assert_eq!(log_json(&bea, &bea_dir)[0]["data"]["late"], true);
    assert!(unrecorded(&bea, &bea_dir).is_empty());

    let out = bea.ok(
        "git",
        &bea_dir,
        &["commit", "-q", "--allow-empty", "-m", "nothing sealed"],
    );
    assert!(!stderr(&out).contains("not trusted"), "{}", stderr(&out));
    let next = commit_secret(&bea, &bea_dir, "b2.env", "B=2\n");
    assert_eq!(sealed_commits(&bea, &bea_dir)[0], next);
    bea.seal(&bea_dir, &["audit", "verify", "--coverage"]);
}

/// `git push` publishes the chain with the branch (pre-push), to a named
/// remote and to a URL; a CI checkout can then fetch `refs/seal/audit`.
#[test]
fn git_push_publishes_the_chain() {
    let env = Env::new();
    let (dir, server) = env.served_repo("r");
    let head = commit_secret(&env, &dir, "a.env", "A=1\n");
    let out = env.ok("git", &dir, &["push", "origin", "main"]);
    assert!(
        stderr(&out).contains("published refs/seal/audit"),
        "{}",
        stderr(&out)
    );
    assert_eq!(env.rev(&server, REF), env.rev(&dir, REF));
    assert_eq!(env.rev(&server, "main"), head);

    // A dry run publishes nothing either.
    let before = env.rev(&server, REF);
    commit_secret(&env, &dir, "b.env", "B=1\n");
    for dry in ["--dry-run", "-n"] {
        let out = env.ok("git", &dir, &["push", dry, "origin", "main"]);
        assert!(!stderr(&out).contains("published"), "{}", stderr(&out));
        assert_eq!(env.rev(&server, REF), before);
    }
    env.git(&dir, &["push", "-q", "origin", "main"]);
    assert_eq!(env.rev(&server, REF), env.rev(&dir, REF));

    // A push of nothing new publishes nothing and says nothing.
    let out = env.ok("git", &dir, &["push", "origin", "main"]);
    assert!(
        !stderr(&out).contains("refs/seal/audit"),
        "{}",
        stderr(&out)
    );

    // To a URL (no remote name): the chain goes too.
    let other = env.bare("other.git");
    let url = format!("file://{}", other.display());
    env.git(&dir, &["push", "-q", &url, "main"]);
    assert_eq!(env.rev(&other, REF), env.rev(&dir, REF));

    // What the CI template does in a fresh checkout.
    let ci = env.clone_repo(&server, "ci");
    env.git(
        &ci,
        &["fetch", "origin", "+refs/seal/audit:refs/seal/audit"],
    );
    env.seal(&ci, &["audit", "verify", "--coverage"]);
}

/// A post-commit killed before it wrote the entry (here: by the hook that
/// runs before git-seal's in the chain) leaves a 200-file commit with no
/// entry: `verify --coverage` names it, and the next commit records it.
#[test]
fn a_killed_post_commit_is_reported_and_recorded_by_the_next_commit() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    commit_secret(&env, &dir, "first.env", "F=1\n");
    let hooks = dir.join(".git/hooks");
    let killer = hooks.join("post-commit.pre-seal");
    std::fs::write(&killer, "#!/bin/sh\nkill -9 $PPID\n").unwrap();
    std::fs::set_permissions(&killer, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    for i in 0..200 {
        write(
            &dir,
            &format!("secrets/many/f{i:03}.env"),
            &format!("V={i}\n"),
        );
    }
    env.git(&dir, &["add", "secrets"]);
    env.run("git", &dir, &["commit", "-q", "-m", "many"], None);
    let killed = env.rev(&dir, "HEAD");
    assert_ne!(sealed_commits(&env, &dir)[0], killed);

    let out = env.fails("git-seal", &dir, &["audit", "verify", "--coverage"], 1);
    let text = stdout(&out);
    assert!(
        text.contains(&format!("commit {killed} changed sealed paths")),
        "{text}"
    );
    assert_eq!(unrecorded(&env, &dir), vec![killed.clone()]);
    let out = env.fails("git-seal", &dir, &["doctor"], 1);
    assert!(
        stdout(&out).contains(&format!("git seal audit record {killed}")),
        "{}",
        stdout(&out)
    );

    std::fs::remove_file(&killer).unwrap();
    let next = commit_secret(&env, &dir, "next.env", "N=1\n");
    let out = env.ok("git", &dir, &["commit", "-q", "--allow-empty", "-m", "x"]);
    assert!(!stderr(&out).contains("error"), "{}", stderr(&out));
    let sealed = sealed_commits(&env, &dir);
    assert_eq!(sealed[..2], [next, killed.clone()]);
    let entry = &log_json(&env, &dir)[1];
    assert_eq!(entry["data"]["late"], true);
    assert_eq!(entry["data"]["paths"].as_array().unwrap().len(), 200);
    env.seal(&dir, &["audit", "verify", "--coverage"]);
}

/// With the signer key readable by others, the entry cannot be signed: an
/// error the user sees, naming the fix; after the fix the next commit
/// records both.
#[test]
fn an_entry_that_cannot_be_signed_is_an_error_and_retried() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let dir = env.sealed_repo("r");
    let key = env.key_dir.parent().unwrap().join("signers/ed25519");
    assert!(key.exists(), "{}", key.display());
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    write(&dir, "secrets/a.env", "A=1\n");
    env.git(&dir, &["add", "secrets"]);
    let out = env.ok("git", &dir, &["commit", "-q", "-m", "a"]);
    let err = stderr(&out);
    assert!(err.contains("error:") && err.contains("chmod 600"), "{err}");
    let missed = env.rev(&dir, "HEAD");
    assert_eq!(unrecorded(&env, &dir), vec![missed.clone()]);

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let next = commit_secret(&env, &dir, "b.env", "B=1\n");
    assert_eq!(sealed_commits(&env, &dir)[..2], [next, missed]);
    env.seal(&dir, &["audit", "verify", "--coverage"]);
}

/// A commit made with no hooks at all (a web editor, a libgit2 tool) is
/// reported by coverage; a trusted signer records it with `audit record`,
/// which an untrusted signer may not.
#[test]
fn audit_record_records_a_commit_made_without_hooks() {
    let mut env = Env::new();
    let dir = env.sealed_repo("r");
    write(&dir, "secrets/a.env", "A=1\n");
    env.git(&dir, &["add", "secrets"]);
    env.git(
        &dir,
        &[
            "-c",
            "core.hooksPath=/dev/null",
            "commit",
            "-q",
            "-m",
            "no hooks",
        ],
    );
    let bare = env.rev(&dir, "HEAD");
    let range = format!("{bare}~1..HEAD");
    let out = env.fails(
        "git-seal",
        &dir,
        &["audit", "verify", "--coverage", &range],
        1,
    );
    assert!(stdout(&out).contains(&bare), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("git seal audit record COMMIT"),
        "{}",
        stderr(&out)
    );

    let stranger = env.path("stranger-signer");
    let out = env.with_var("GIT_SEAL_SIGNER_DIR", stranger.to_str(), |env| {
        env.fails("git-seal", &dir, &["audit", "record", &bare], 1)
    });
    assert!(stderr(&out).contains("not trusted"), "{}", stderr(&out));

    let said = env.seal(&dir, &["audit", "record", &bare, "HEAD~2"]);
    assert!(said.contains(&format!("recorded {bare}")), "{said}");
    assert!(said.contains("needs no entry"), "{said}");
    env.seal(&dir, &["audit", "verify", "--coverage", &range]);
    let said = env.seal(&dir, &["audit", "record", &bare]);
    assert!(said.contains("already has its entry"), "{said}");
}

/// `git update-ref` cutting the chain back is reported by `verify`,
/// `status` and `doctor` (the clone remembers the highest tip it saw), and
/// putting the tip back clears it.
#[test]
fn a_chain_cut_back_is_reported_by_verify_status_and_doctor() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    for i in 0..6 {
        commit_secret(&env, &dir, &format!("f{i}.env"), &format!("V={i}\n"));
    }
    let tip = env.rev(&dir, REF);
    let cut = env.rev(&dir, &format!("{REF}~3"));
    env.git(&dir, &["update-ref", REF, &cut]);

    let out = env.fails("git-seal", &dir, &["audit", "verify"], 1);
    assert!(stdout(&out).contains("went backwards"), "{}", stdout(&out));
    assert!(stdout(&out).contains(&tip), "{}", stdout(&out));
    let status: Value = serde_json::from_str(&env.seal(&dir, &["status", "--json"])).unwrap();
    assert_eq!(status["audit"]["verified"], false, "{status}");
    let doctor = env.run("git-seal", &dir, &["doctor"], None);
    assert!(
        String::from_utf8_lossy(&doctor.stdout).contains("went backwards")
            || stderr(&doctor).contains("went backwards"),
        "{doctor:?}"
    );
    // A commit on the cut chain does not make it look grown.
    commit_secret(&env, &dir, "g.env", "G=1\n");
    env.fails("git-seal", &dir, &["audit", "verify"], 1);

    env.git(&dir, &["update-ref", REF, &tip]);
    env.seal(&dir, &["audit", "verify"]);
}

/// `migrate`'s entry names the envelopes it staged and their kids, not the
/// plaintext blobs they replaced.
#[test]
fn migrate_records_the_staged_envelopes() {
    let env = Env::new();
    let dir = env.repo("r");
    write(&dir, "config/db.env", "PASSWORD=1\n");
    env.git(&dir, &["add", "config"]);
    env.git(&dir, &["commit", "-q", "-m", "plaintext"]);
    env.seal(&dir, &["init", "config/**"]);
    let done: serde_json::Value =
        serde_json::from_str(&env.seal(&dir, &["migrate", "--json"])).unwrap();
    assert_eq!(done["audit_recorded"], true, "{done}");
    // Nothing left to migrate: no entry, and the output says none.
    let again: serde_json::Value =
        serde_json::from_str(&env.seal(&dir, &["migrate", "--json"])).unwrap();
    assert_eq!(again["sealed"], serde_json::json!([]), "{again}");
    assert_eq!(again["audit_recorded"], false, "{again}");
    let staged = env.rev(&dir, ":config/db.env");
    let log = log_json(&env, &dir);
    let entries: Vec<_> = log.iter().filter(|e| e["event"] == "migrate").collect();
    assert_eq!(entries.len(), 1, "{log:?}");
    let entry = entries[0];
    let path = &entry["data"]["paths"][0];
    assert_eq!(path["path"], "config/db.env");
    assert_eq!(path["blob"], staged.as_str(), "{entry}");
    assert!(path.get("envelope").is_none(), "{entry}");
    assert_eq!(path["kids"][0], env.kid().as_str(), "{entry}");
}
