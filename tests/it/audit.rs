//! The signed audit chain: entries, verification (and what it catches),
//! allowed-signers for stock `git verify-commit`, sync between clones,
//! concurrent appenders, `git gc`.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::harness::{stderr, stdout, Env};

const REF: &str = "refs/seal/audit";

pub(crate) fn log_json(env: &Env, dir: &Path) -> Vec<Value> {
    let out = env.seal(dir, &["audit", "log", "--json"]);
    serde_json::from_str::<Value>(&out).unwrap()["entries"]
        .as_array()
        .unwrap()
        .clone()
}

pub(crate) fn events(env: &Env, dir: &Path) -> Vec<String> {
    log_json(env, dir)
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect()
}

/// A fresh ed25519 key (a stranger's, or a new colleague's), in OpenSSH
/// format: returns (private key path, public key line with `comment`).
fn ssh_keygen(env: &Env, name: &str, comment: &str) -> (PathBuf, String) {
    let dir = env.path(name);
    let key = git_seal::audit::Signer::load_or_create_in(&dir).unwrap();
    (
        dir.join("ed25519"),
        format!("{} {comment}", key.public_openssh()),
    )
}

/// Is `ssh-keygen` here (stock `git verify-commit` and SSH signing need
/// it)? Under CI=true it must be.
fn have_ssh_keygen() -> bool {
    let found = std::process::Command::new("ssh-keygen")
        .arg("-?")
        .output()
        .is_ok();
    assert!(
        found || !crate::harness::in_ci(),
        "CI must have ssh-keygen (openssh-client, see .ci/run)"
    );
    if !found {
        eprintln!("skipping: no ssh-keygen");
    }
    found
}

/// Start every command, then wait for all; each must succeed.
fn run_at_once(commands: impl Iterator<Item = std::process::Command>) {
    let children: Vec<_> = commands
        .map(|mut cmd| {
            cmd.stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
}

fn verify_findings(env: &Env, dir: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["audit", "verify", "--json"];
    args.extend_from_slice(extra);
    let out = env.fails("git-seal", dir, &args, 1);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    report
}

/// Commit `entry` (edited JSON) as a new chain commit on top of the tip,
/// the way someone with write access but no trusted key would.
pub(crate) fn forge_entry(env: &Env, dir: &Path, entry: &str, sign_with: Option<&Path>) -> String {
    let blob = stdout(&env.run(
        "git",
        dir,
        &["hash-object", "-w", "--stdin"],
        Some(entry.as_bytes()),
    ));
    let listing = format!("100644 blob {}\tentry.json\n", blob.trim());
    let tree = stdout(&env.run("git", dir, &["mktree"], Some(listing.as_bytes())));
    let tip = env.git(dir, &["rev-parse", REF]);
    let mut args: Vec<String> = Vec::new();
    if let Some(key) = sign_with {
        args.extend([
            "-c".into(),
            "gpg.format=ssh".into(),
            "-c".into(),
            format!("user.signingkey={}", key.display()),
        ]);
    }
    args.extend([
        "commit-tree".into(),
        tree.trim().into(),
        "-p".into(),
        tip.trim().into(),
        "-m".into(),
        "forged".into(),
    ]);
    if sign_with.is_some() {
        args.push("-S".into());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let id = env.git(dir, &args).trim().to_owned();
    env.git(dir, &["update-ref", REF, &id]);
    id
}

/// The tip entry's JSON with its seq bumped and the event changed: a
/// plausible next entry.
pub(crate) fn next_entry_text(env: &Env, dir: &Path, event: &str) -> String {
    let mut entry: Value =
        serde_json::from_str(&env.git(dir, &["cat-file", "-p", &format!("{REF}:entry.json")]))
            .unwrap();
    entry["seq"] = Value::from(entry["seq"].as_u64().unwrap() + 1);
    entry["event"] = Value::from(event);
    serde_json::to_string_pretty(&entry).unwrap()
}

#[test]
fn init_starts_a_chain_that_stock_git_verify_commit_accepts() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    // init's entry, then the set-up commit's `policy` entry (post-commit).
    assert_eq!(events(&env, &dir), ["policy", "init"]);
    let entries = log_json(&env, &dir);
    let init = &entries[1];
    assert_eq!(init["event"], "init");
    assert_eq!(init["seq"], 1);
    assert_eq!(init["schema"], "git-seal.audit/v1");
    assert_eq!(init["actor"]["email"], "ada@example.test");
    assert_eq!(init["data"]["kids"][0], env.kid().as_str());
    assert!(init["time"].as_str().unwrap().ends_with('Z'));

    // The entry commit holds exactly entry.json, signed in the gpgsig header.
    let tree = env.git(&dir, &["ls-tree", REF]);
    assert_eq!(tree.lines().count(), 1, "{tree}");
    assert!(tree.ends_with("\tentry.json\n"), "{tree}");
    let raw = env.git(&dir, &["cat-file", "commit", REF]);
    assert!(
        raw.contains("gpgsig -----BEGIN SSH SIGNATURE-----"),
        "{raw}"
    );

    // Running init again adds nothing.
    env.seal(&dir, &["init"]);
    assert_eq!(log_json(&env, &dir).len(), 2);

    // Add a second signer, then check every entry with stock git.
    let (_, colleague) = ssh_keygen(&env, "colleague", "bea@example.test");
    env.seal(&dir, &["audit", "signer", "add", &colleague]);
    assert_eq!(events(&env, &dir), ["signer-add", "policy", "init"]);
    let signers = env.path("allowed_signers");
    env.seal(
        &dir,
        &[
            "audit",
            "allowed-signers",
            "--out",
            signers.to_str().unwrap(),
        ],
    );
    let text = std::fs::read_to_string(&signers).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.contains("bea@example.test namespaces=\"git\" ssh-ed25519 "));
    let config = format!("gpg.ssh.allowedSignersFile={}", signers.display());
    for commit in env.git(&dir, &["rev-list", REF]).lines() {
        let out = env.ok("git", &dir, &["-c", &config, "verify-commit", commit]);
        assert!(
            stderr(&out).contains("Good \"git\" signature"),
            "{}",
            stderr(&out)
        );
    }
    // Same output on standard output.
    assert_eq!(env.seal(&dir, &["audit", "allowed-signers"]), text);

    let ok = env.seal(&dir, &["audit", "verify"]);
    assert!(ok.contains("audit chain verified: 3 entries"), "{ok}");
    let report: Value =
        serde_json::from_str(&env.seal(&dir, &["audit", "verify", "--json"])).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["entries"], 3);
    assert_eq!(report["signers"].as_array().unwrap().len(), 2);
    assert_eq!(report["findings"].as_array().unwrap().len(), 0);
    let root = report["root"].as_str().unwrap().to_owned();
    assert!(root.starts_with("SHA256:"));
    env.seal(&dir, &["audit", "verify", "--trust", &root]);
    // A different pinned root: one finding, naming the root entry.
    let pinned = verify_findings(&env, &dir, &["--trust", "SHA256:someoneelse"]);
    let findings = pinned["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{pinned}");
    assert!(findings[0]["reason"]
        .as_str()
        .unwrap()
        .contains("not the pinned"));
    assert_eq!(findings[0]["commit"], entries[1]["commit"]);
    env.fails(
        "git-seal",
        &dir,
        &["audit", "verify", "--trust", "nonsense"],
        2,
    );
}

#[test]
fn unsigned_entry_is_caught_naming_its_commit() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    let entry = next_entry_text(&env, &dir, "seal");
    let forged = forge_entry(&env, &dir, &entry, None);
    let out = env.fails("git-seal", &dir, &["audit", "verify"], 1);
    let text = stdout(&out);
    assert!(
        text.contains(&forged) && text.contains("unsigned entry"),
        "{text}"
    );
}

#[test]
fn entry_signed_by_an_unknown_key_is_caught() {
    if !have_ssh_keygen() {
        return;
    }
    let env = Env::new();
    let dir = env.sealed_repo("r");
    let (stranger, _) = ssh_keygen(&env, "stranger", "mallory@example.test");
    let entry = next_entry_text(&env, &dir, "seal");
    let forged = forge_entry(&env, &dir, &entry, Some(&stranger));
    let report = verify_findings(&env, &dir, &[]);
    let findings = report["findings"].as_array().unwrap();
    assert!(
        findings.iter().any(|f| f["commit"] == forged.as_str()
            && f["reason"]
                .as_str()
                .unwrap()
                .contains("not a trusted signer")),
        "{report}"
    );
}

#[test]
fn edited_entry_is_caught_by_its_signature() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    let (_, colleague) = ssh_keygen(&env, "colleague", "bea@example.test");
    env.seal(&dir, &["audit", "signer", "add", &colleague]);
    let signers = env.path("allowed");
    env.seal(
        &dir,
        &[
            "audit",
            "allowed-signers",
            "--out",
            signers.to_str().unwrap(),
        ],
    );
    let tip = env.git(&dir, &["rev-parse", REF]).trim().to_owned();
    // Keep the commit and its signature, change what entry.json says.
    let original = env.git(&dir, &["cat-file", "-p", &format!("{REF}:entry.json")]);
    let edited = original.replace("bea@example.test", "eve@example.test");
    assert_ne!(edited, original);
    let blob = stdout(&env.run(
        "git",
        &dir,
        &["hash-object", "-w", "--stdin"],
        Some(edited.as_bytes()),
    ));
    let listing = format!("100644 blob {}\tentry.json\n", blob.trim());
    let tree = stdout(&env.run("git", &dir, &["mktree"], Some(listing.as_bytes())));
    let raw = env.git(&dir, &["cat-file", "commit", &tip]);
    let old_tree = raw.lines().next().unwrap().to_owned();
    let raw = raw.replacen(&old_tree, &format!("tree {}", tree.trim()), 1);
    let forged = stdout(&env.run(
        "git",
        &dir,
        &["hash-object", "-t", "commit", "-w", "--stdin"],
        Some(raw.as_bytes()),
    ))
    .trim()
    .to_owned();
    env.git(&dir, &["update-ref", REF, &forged]);
    let out = env.fails("git-seal", &dir, &["audit", "verify"], 1);
    let text = stdout(&out);
    assert!(text.contains(&forged), "{text}");
    assert!(text.contains("bad signature"), "{text}");
    // Stock git agrees.
    if !have_ssh_keygen() {
        return;
    }
    let config = format!("gpg.ssh.allowedSignersFile={}", signers.display());
    env.ok("git", &dir, &["-c", &config, "verify-commit", &tip]);
    env.fails("git", &dir, &["-c", &config, "verify-commit", &forged], 1);
}

#[test]
fn rewound_chain_is_caught_with_since() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    let first = env.git(&dir, &["rev-parse", REF]).trim().to_owned();
    let (_, colleague) = ssh_keygen(&env, "colleague", "bea@example.test");
    env.seal(&dir, &["audit", "signer", "add", &colleague]);
    let second = env.git(&dir, &["rev-parse", REF]).trim().to_owned();
    // Growing is fine.
    env.seal(&dir, &["audit", "verify", "--since", &first]);
    // Dropping the last entry is not.
    env.git(&dir, &["update-ref", REF, &first]);
    let text = stdout(&env.fails(
        "git-seal",
        &dir,
        &["audit", "verify", "--since", &second],
        1,
    ));
    assert!(text.contains("rewound or rewritten"), "{text}");
    // An old tip that is not in the repository at all.
    let text = stdout(&env.fails(
        "git-seal",
        &dir,
        &["audit", "verify", "--since", &"1".repeat(40)],
        1,
    ));
    assert!(text.contains("not in this repository"), "{text}");
}

#[test]
fn missing_chain_and_untrusted_signer_fail_with_what_to_do() {
    let env = Env::new();
    let dir = env.repo("plain");
    let err = stderr(&env.fails("git-seal", &dir, &["audit", "verify"], 1));
    assert!(
        err.contains("no audit chain") && err.contains("git seal init"),
        "{err}"
    );

    // A second user (own signer key) cannot add signers until trusted.
    let dir = env.sealed_repo("r");
    let mut other = Env::new();
    other.set(
        "GIT_SEAL_SIGNER_DIR",
        env.path("other-signer").to_str().unwrap(),
    );
    let (_, key) = ssh_keygen(&env, "k", "c@example.test");
    let err = stderr(&other.fails("git-seal", &dir, &["audit", "signer", "add", &key], 1));
    assert!(err.contains("is not trusted"), "{err}");
    // A key that is not ed25519 / not a key at all.
    let err = stderr(&env.fails(
        "git-seal",
        &dir,
        &["audit", "signer", "add", "ssh-ed25519 not-base64"],
        1,
    ));
    assert!(err.contains("not an OpenSSH public key"), "{err}");
    // No address: refused as usage.
    let (_, bare) = ssh_keygen(&env, "bare", "nobody");
    env.fails("git-seal", &dir, &["audit", "signer", "add", &bare], 2);
}

/// Two users with their own signer keys, each with a clone of one server.
pub(crate) struct Team {
    pub ada: Env,
    pub bea: Env,
    pub ada_dir: PathBuf,
    pub bea_dir: PathBuf,
}

pub(crate) fn team() -> Team {
    let ada = Env::new();
    let server = ada.bare("server.git");
    let ada_dir = ada.sealed_repo("ada");
    ada.git(
        &ada_dir,
        &["remote", "add", "origin", server.to_str().unwrap()],
    );
    ada.git(&ada_dir, &["push", "-q", "origin", "main"]);
    // init after adding the remote configures the chain's fetch; sync
    // publishes it.
    ada.seal(&ada_dir, &["init"]);
    let fetch = ada.git(&ada_dir, &["config", "--get-all", "remote.origin.fetch"]);
    assert!(
        fetch.contains("+refs/seal/*:refs/seal-remote/origin/*"),
        "{fetch}"
    );
    ada.seal(&ada_dir, &["audit", "sync"]);

    let mut bea = Env::new();
    bea.set("GIT_AUTHOR_NAME", "Bea");
    bea.set("GIT_AUTHOR_EMAIL", "bea@example.test");
    bea.set("GIT_COMMITTER_NAME", "Bea");
    bea.set("GIT_COMMITTER_EMAIL", "bea@example.test");
    let bea_dir = bea.path("bea");
    bea.git(
        bea.tmp.path(),
        &[
            "clone",
            "-q",
            server.to_str().unwrap(),
            bea_dir.to_str().unwrap(),
        ],
    );
    // Bea's clone gets the chain from git seal init (no new root).
    bea.seal(&bea_dir, &["init"]);
    assert_eq!(
        bea.git(&bea_dir, &["rev-parse", REF]),
        ada.git(&ada_dir, &["rev-parse", REF])
    );
    bea.seal(&bea_dir, &["audit", "verify"]);
    Team {
        ada,
        bea,
        ada_dir,
        bea_dir,
    }
}

/// Ada adds Bea's signer (shown by Bea) to the chain.
pub(crate) fn trust_bea(ada: &Env, bea: &Env, ada_dir: &Path, bea_dir: &Path) {
    let key = bea.seal(bea_dir, &["audit", "signer", "show"]);
    let args = [
        "audit",
        "signer",
        "add",
        key.trim(),
        "--email",
        "bea@example.test",
    ];
    ada.seal(ada_dir, &args);
}

/// [`trust_bea`], then both clones sync, so Bea's clone knows she is trusted.
fn trust_bea_and_sync(ada: &Env, bea: &Env, ada_dir: &Path, bea_dir: &Path) {
    trust_bea(ada, bea, ada_dir, bea_dir);
    ada.seal(ada_dir, &["audit", "sync"]);
    bea.seal(bea_dir, &["audit", "sync"]);
}

/// Bea commits `content` to `secrets/b.env`: the commit succeeds, her
/// hooks record no entry and say that her signer is not trusted.
fn assert_bea_commit_not_recorded(bea: &Env, bea_dir: &Path, content: &str) -> String {
    let before = events(bea, bea_dir).len();
    write(bea_dir, "secrets/b.env", content);
    bea.git(bea_dir, &["add", "secrets"]);
    let out = bea.ok("git", bea_dir, &["commit", "-q", "-m", "bea's secret"]);
    let err = stderr(&out);
    assert!(
        err.contains("not trusted") && err.contains("not recorded"),
        "{err}"
    );
    assert_eq!(events(bea, bea_dir).len(), before);
    bea.seal(bea_dir, &["audit", "verify"]);
    err
}

#[test]
fn two_clones_appending_and_syncing_converge_keeping_every_entry() {
    let Team {
        ada,
        bea,
        ada_dir,
        bea_dir,
    } = team();
    // Ada trusts Bea's signer; Bea takes that entry in.
    trust_bea_and_sync(&ada, &bea, &ada_dir, &bea_dir);
    assert_eq!(events(&bea, &bea_dir), ["signer-add", "policy", "init"]);

    // Both append while apart.
    let (_, carl) = ssh_keygen(&ada, "carl", "carl@example.test");
    let (_, dan) = ssh_keygen(&bea, "dan", "dan@example.test");
    ada.seal(&ada_dir, &["audit", "signer", "add", &carl]);
    bea.seal(&bea_dir, &["audit", "signer", "add", &dan]);
    ada.seal(&ada_dir, &["audit", "sync"]);
    // Bea's sync merges the diverged chains with a signed entry.
    let out = bea.seal(&bea_dir, &["audit", "sync"]);
    assert!(out.contains("pushed"), "{out}");
    ada.seal(&ada_dir, &["audit", "sync"]);
    let tip_a = ada.git(&ada_dir, &["rev-parse", REF]);
    let tip_b = bea.git(&bea_dir, &["rev-parse", REF]);
    assert_eq!(tip_a, tip_b);

    let log = log_json(&ada, &ada_dir);
    let mut seen: Vec<&str> = log.iter().map(|e| e["event"].as_str().unwrap()).collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            "chain-merge",
            "init",
            "policy",
            "signer-add",
            "signer-add",
            "signer-add"
        ]
    );
    assert_eq!(log[0]["event"], "chain-merge");
    assert_eq!(log[0]["parents"].as_array().unwrap().len(), 2);
    assert_eq!(log[0]["seq"], 5);
    let added: Vec<&str> = log
        .iter()
        .filter_map(|e| e["data"]["email"].as_str())
        .collect();
    for who in ["bea@example.test", "carl@example.test", "dan@example.test"] {
        assert!(added.contains(&who), "{who} missing from {added:?}");
    }
    for (env, dir) in [(&ada, &ada_dir), (&bea, &bea_dir)] {
        let report: Value =
            serde_json::from_str(&env.seal(dir, &["audit", "verify", "--json"])).unwrap();
        assert_eq!(report["ok"], true, "{report}");
        assert_eq!(report["signers"].as_array().unwrap().len(), 4);
    }
    // A plain `git fetch` now brings the chain along.
    let fetched = bea.git(&bea_dir, &["rev-parse", "refs/seal-remote/origin/audit"]);
    assert_eq!(fetched, tip_b);
}

#[test]
fn sync_refuses_a_remote_chain_that_does_not_verify() {
    let Team {
        ada,
        bea,
        ada_dir,
        bea_dir,
    } = team();
    // Someone pushes a forged entry to the server.
    let entry = next_entry_text(&ada, &ada_dir, "seal");
    forge_entry(&ada, &ada_dir, &entry, None);
    ada.git(&ada_dir, &["push", "-q", "origin", &format!("{REF}:{REF}")]);
    let before = bea.git(&bea_dir, &["rev-parse", REF]);
    let err = stderr(&bea.fails("git-seal", &bea_dir, &["audit", "sync"], 1));
    assert!(
        err.contains("does not verify") && err.contains("unsigned entry"),
        "{err}"
    );
    assert_eq!(bea.git(&bea_dir, &["rev-parse", REF]), before);
}

#[test]
fn parallel_appenders_in_one_repository_lose_nothing() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    let keys: Vec<String> = (0..8)
        .map(|i| ssh_keygen(&env, &format!("k{i}"), &format!("u{i}@example.test")).1)
        .collect();
    run_at_once(keys.iter().map(|key| {
        let mut cmd = env.command("git-seal", &dir);
        cmd.args(["audit", "signer", "add", key]);
        cmd
    }));
    let log = log_json(&env, &dir);
    assert_eq!(log.len(), 10);
    let seqs: Vec<u64> = log.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=10).rev().collect::<Vec<_>>());
    env.seal(&dir, &["audit", "verify"]);
}

#[test]
fn chain_survives_gc() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    let (_, key) = ssh_keygen(&env, "k", "bea@example.test");
    env.seal(&dir, &["audit", "signer", "add", &key]);
    let tip = env.git(&dir, &["rev-parse", REF]);
    env.git(&dir, &["gc", "-q", "--prune=now", "--aggressive"]);
    assert_eq!(env.git(&dir, &["rev-parse", REF]), tip);
    let packed = std::fs::read_to_string(dir.join(".git/packed-refs")).unwrap();
    assert!(packed.contains(REF), "{packed}");
    env.seal(&dir, &["audit", "verify"]);
    // Appending still works on a packed ref.
    let (_, key) = ssh_keygen(&env, "k2", "carl@example.test");
    env.seal(&dir, &["audit", "signer", "add", &key]);
    assert_eq!(log_json(&env, &dir).len(), 4);
}

/// A writer killed (`kill -9`) while it held the chain's ref lock leaves
/// `refs/seal/audit.lock`: the next append takes it over once it sees that
/// nobody is changing it, rather than retrying until it gives up.
#[test]
fn a_lock_left_by_a_killed_appender_does_not_block_the_chain() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    let before = log_json(&env, &dir).len();
    let lock = dir.join(".git/refs/seal/audit.lock");
    std::fs::write(&lock, "0000000000000000000000000000000000000000\n").unwrap();
    write(&dir, "secrets/a.env", "A=1\n");
    env.git(&dir, &["add", "-A"]);
    let started = std::time::Instant::now();
    env.git(&dir, &["commit", "-q", "-m", "add a secret"]);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "the commit waited {:?} on the stale lock",
        started.elapsed()
    );
    assert!(!lock.exists(), "the stale lock is still there");
    let log = log_json(&env, &dir);
    assert_eq!(log.len(), before + 1);
    assert_eq!(log[0]["event"], "seal");
    env.seal(&dir, &["audit", "verify"]);
}

/// Give `to` the key files of `from` (as when a KEK is shared in a team).
pub(crate) fn copy_keys(from: &Env, to: &Env) {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&to.key_dir)
        .unwrap();
    for entry in std::fs::read_dir(&from.key_dir).unwrap() {
        let entry = entry.unwrap();
        let target = to.key_dir.join(entry.file_name());
        std::fs::copy(entry.path(), &target).unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

pub(crate) fn write(dir: &Path, path: &str, content: &str) {
    let full = dir.join(path);
    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
    std::fs::write(full, content).unwrap();
}

#[test]
fn commits_of_sealed_paths_and_policy_changes_append_signed_entries() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    let kid = env.kid();
    // The set-up commit changed the policy.
    assert_eq!(events(&env, &dir), ["policy", "init"]);

    write(&dir, "secrets/a.env", "A=1\n");
    write(&dir, "notes.txt", "not sealed\n");
    env.git(&dir, &["add", "-A"]);
    env.git(&dir, &["commit", "-q", "-m", "add a secret"]);
    let head = env.git(&dir, &["rev-parse", "HEAD"]).trim().to_owned();
    let blob = env
        .git(&dir, &["rev-parse", "HEAD:secrets/a.env"])
        .trim()
        .to_owned();
    let log = log_json(&env, &dir);
    let seal = &log[0];
    assert_eq!(seal["event"], "seal");
    assert_eq!(seal["seq"], 3);
    assert_eq!(seal["data"]["commit"], head.as_str());
    let paths = seal["data"]["paths"].as_array().unwrap();
    assert_eq!(paths.len(), 1, "only the sealed path: {paths:?}");
    assert_eq!(paths[0]["path"], "secrets/a.env");
    assert_eq!(paths[0]["change"], "added");
    assert_eq!(paths[0]["blob"], blob.as_str());
    assert_eq!(paths[0]["kids"][0], kid.as_str());

    // A commit that touches no sealed path appends nothing.
    write(&dir, "notes.txt", "still not sealed\n");
    env.git(&dir, &["commit", "-q", "-am", "notes"]);
    assert_eq!(log_json(&env, &dir).len(), 3);

    // Deleting records the deletion.
    env.git(&dir, &["rm", "-q", "secrets/a.env"]);
    env.git(&dir, &["commit", "-q", "-m", "drop"]);
    let log = log_json(&env, &dir);
    assert_eq!(log[0]["data"]["paths"][0]["change"], "deleted");
    env.seal(&dir, &["audit", "verify"]);
    // No entry ever holds plaintext.
    for entry in env.git(&dir, &["log", "-p", REF]).lines() {
        assert!(!entry.contains("A=1"), "{entry}");
    }
}

#[test]
fn an_untrusted_signer_records_nothing_until_added() {
    let Team {
        ada,
        bea,
        ada_dir,
        bea_dir,
    } = team();
    let err = assert_bea_commit_not_recorded(&bea, &bea_dir, "B=1\n");
    assert!(err.contains("git seal audit signer add"), "{err}");

    // Ada adds Bea's signer; after a sync Bea's commits are recorded.
    trust_bea_and_sync(&ada, &bea, &ada_dir, &bea_dir);
    write(&bea_dir, "secrets/b.env", "B=2\n");
    bea.git(&bea_dir, &["commit", "-q", "-am", "bea again"]);
    let log = log_json(&bea, &bea_dir);
    assert_eq!(log[0]["event"], "seal");
    assert_eq!(log[0]["actor"]["email"], "bea@example.test");
    bea.seal(&bea_dir, &["audit", "verify"]);
}

#[test]
fn pull_takes_the_fetched_chain_and_records_the_merge() {
    let Team {
        ada,
        bea,
        ada_dir,
        bea_dir,
    } = team();
    trust_bea(&ada, &bea, &ada_dir, &bea_dir);
    write(&ada_dir, "secrets/a.env", "A=1\n");
    ada.git(&ada_dir, &["add", "secrets"]);
    ada.git(&ada_dir, &["commit", "-q", "-m", "ada's secret"]);
    ada.git(&ada_dir, &["push", "-q", "origin", "main"]);
    ada.seal(&ada_dir, &["audit", "sync"]);
    let ada_tip = ada.git(&ada_dir, &["rev-parse", REF]).trim().to_owned();

    // Bea holds the KEK too. Her pull brings the commit and (via the fetch
    // refspec) the chain; post-merge takes the chain and records what
    // arrived.
    copy_keys(&ada, &bea);
    bea.git(&bea_dir, &["pull", "-q", "--no-rebase"]);
    assert_eq!(
        std::fs::read_to_string(bea_dir.join("secrets/a.env")).unwrap(),
        "A=1\n"
    );
    let log = log_json(&bea, &bea_dir);
    assert_eq!(log[0]["event"], "merge", "{log:?}");
    assert_eq!(log[0]["data"]["verified"], true);
    assert_eq!(log[0]["data"]["paths"][0]["path"], "secrets/a.env");
    assert_eq!(log[1]["commit"], ada_tip.as_str());
    bea.seal(&bea_dir, &["audit", "verify", "--since", &ada_tip]);
}

#[test]
fn parallel_commits_in_linked_worktrees_lose_no_entry() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    let before = log_json(&env, &dir).len();
    let trees: Vec<PathBuf> = (0..6)
        .map(|i| {
            let tree = env.path(&format!("wt{i}"));
            env.git(
                &dir,
                &[
                    "worktree",
                    "add",
                    "-q",
                    "-b",
                    &format!("b{i}"),
                    tree.to_str().unwrap(),
                ],
            );
            write(&tree, &format!("secrets/s{i}.env"), &format!("S={i}\n"));
            env.git(&tree, &["add", "secrets"]);
            tree
        })
        .collect();
    run_at_once(trees.iter().map(|tree| {
        let mut cmd = env.command("git", tree);
        cmd.args(["commit", "-q", "-m", "parallel"]);
        cmd
    }));
    let log = log_json(&env, &dir);
    assert_eq!(log.len(), before + 6);
    let mut paths: Vec<String> = log[..6]
        .iter()
        .map(|e| e["data"]["paths"][0]["path"].as_str().unwrap().to_owned())
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        (0..6)
            .map(|i| format!("secrets/s{i}.env"))
            .collect::<Vec<_>>()
    );
    env.seal(&dir, &["audit", "verify"]);
}

#[test]
fn a_server_with_pre_receive_refuses_forged_or_rewound_chains() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    let server = env.bare("server.git");
    let url = server.to_str().unwrap();
    env.seal(&server, &["hooks", "install"]);
    env.git(&dir, &["remote", "add", "origin", url]);
    env.git(&dir, &["push", "-q", "origin", "main"]);
    let first = env.git(&dir, &["rev-parse", REF]).trim().to_owned();
    env.seal(&dir, &["audit", "sync"]);
    let (_, key) = ssh_keygen(&env, "k", "bea@example.test");
    env.seal(&dir, &["audit", "signer", "add", &key]);
    env.seal(&dir, &["audit", "sync"]);
    let good = env.git(&server, &["rev-parse", REF]);
    assert_eq!(good, env.git(&dir, &["rev-parse", REF]));

    // A forged (unsigned) entry is refused; the server keeps its chain.
    let entry = next_entry_text(&env, &dir, "seal");
    let forged = forge_entry(&env, &dir, &entry, None);
    let refspec = format!("{REF}:{REF}");
    let err = stderr(&env.fails("git", &dir, &["push", "origin", &refspec], 1));
    assert!(
        err.contains(&forged) && err.contains("unsigned entry"),
        "{err}"
    );
    assert_eq!(env.git(&server, &["rev-parse", REF]), good);

    // So are rewinding and deleting it.
    let rewind = format!("+{first}:{REF}");
    let err = stderr(&env.fails("git", &dir, &["push", "origin", &rewind], 1));
    assert!(err.contains("rewound or rewritten"), "{err}");
    let delete = format!(":{REF}");
    let err = stderr(&env.fails("git", &dir, &["push", "origin", &delete], 1));
    assert!(err.contains("deleting the audit chain"), "{err}");
    assert_eq!(env.git(&server, &["rev-parse", REF]), good);
}

#[test]
fn init_without_a_usable_signer_warns_and_a_later_init_starts_the_chain() {
    use std::os::unix::fs::PermissionsExt;
    let mut env = Env::new();
    let signers = env.path("signers");
    std::fs::create_dir_all(&signers).unwrap();
    std::fs::set_permissions(&signers, std::fs::Permissions::from_mode(0o755)).unwrap();
    env.set("GIT_SEAL_SIGNER_DIR", signers.to_str().unwrap());
    let dir = env.repo("r");
    let out = env.ok("git-seal", &dir, &["init", "secrets/**"]);
    let err = stderr(&out);
    assert!(
        err.contains("audit chain was not started") && err.contains("chmod 700"),
        "{err}"
    );
    env.fails("git", &dir, &["rev-parse", "--verify", "-q", REF], 1);
    std::fs::set_permissions(&signers, std::fs::Permissions::from_mode(0o700)).unwrap();
    env.seal(&dir, &["init"]);
    assert_eq!(events(&env, &dir), ["init"]);
    let mode = std::fs::metadata(signers.join("ed25519"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn doctor_reports_audit_chain_problems_with_their_fixes() {
    let Team {
        ada,
        bea,
        ada_dir,
        bea_dir,
    } = team();
    ada.seal(&ada_dir, &["doctor"]);
    // Bea has no signer key yet, then one that is not trusted yet.
    let out = stdout(&bea.fails("git-seal", &bea_dir, &["doctor"], 1));
    assert!(out.contains("no audit signer key yet"), "{out}");
    bea.seal(&bea_dir, &["audit", "signer", "show"]);
    let out = stdout(&bea.fails("git-seal", &bea_dir, &["doctor"], 1));
    assert!(
        out.contains("is not trusted by the audit chain") && out.contains("signer add"),
        "{out}"
    );
    trust_bea_and_sync(&ada, &bea, &ada_dir, &bea_dir);
    bea.seal(&bea_dir, &["doctor"]);

    // A remote added later does not fetch the chain until init runs again.
    let server = ada.path("server.git");
    ada.git(
        &ada_dir,
        &["remote", "add", "mirror", server.to_str().unwrap()],
    );
    let out = stdout(&ada.fails("git-seal", &ada_dir, &["doctor"], 1));
    assert!(
        out.contains("mirror does not fetch the audit chain"),
        "{out}"
    );
    ada.seal(&ada_dir, &["init"]);
    ada.seal(&ada_dir, &["doctor"]);

    // A broken chain.
    let entry = next_entry_text(&ada, &ada_dir, "seal");
    forge_entry(&ada, &ada_dir, &entry, None);
    let out = stdout(&ada.fails("git-seal", &ada_dir, &["doctor"], 1));
    assert!(
        out.contains("the audit chain does not verify") && out.contains("git seal audit verify"),
        "{out}"
    );
}

#[test]
fn amend_and_rebase_record_which_commits_replaced_which() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    write(&dir, "secrets/a.env", "A=1\n");
    env.git(&dir, &["add", "secrets"]);
    env.git(&dir, &["commit", "-q", "-m", "a"]);
    let old = env.git(&dir, &["rev-parse", "HEAD"]).trim().to_owned();
    write(&dir, "secrets/a.env", "A=2\n");
    env.git(&dir, &["commit", "-q", "-a", "--amend", "-m", "a, amended"]);
    let new = env.git(&dir, &["rev-parse", "HEAD"]).trim().to_owned();
    let log = log_json(&env, &dir);
    assert_eq!(log[0]["event"], "rewrite", "{log:?}");
    assert_eq!(log[0]["data"]["kind"], "amend");
    assert_eq!(log[0]["data"]["commits"][0]["old"], old.as_str());
    assert_eq!(log[0]["data"]["commits"][0]["new"], new.as_str());
    // The amended commit's own content has its `seal` entry.
    assert_eq!(log[1]["event"], "seal");
    assert_eq!(log[1]["data"]["commit"], new.as_str());

    // A rebase maps every rewritten commit that touches sealed paths.
    env.git(&dir, &["checkout", "-q", "-b", "topic"]);
    write(&dir, "secrets/b.env", "B=1\n");
    env.git(&dir, &["add", "secrets"]);
    env.git(&dir, &["commit", "-q", "-m", "b"]);
    write(&dir, "notes.txt", "plain\n");
    env.git(&dir, &["add", "notes.txt"]);
    env.git(&dir, &["commit", "-q", "-m", "notes"]);
    env.git(&dir, &["checkout", "-q", "main"]);
    write(&dir, "other.txt", "x\n");
    env.git(&dir, &["add", "other.txt"]);
    env.git(&dir, &["commit", "-q", "-m", "other"]);
    env.git(&dir, &["checkout", "-q", "topic"]);
    env.git(&dir, &["rebase", "-q", "main"]);
    let log = log_json(&env, &dir);
    let rewrite = log
        .iter()
        .find(|e| e["event"] == "rewrite" && e["data"]["kind"] == "rebase")
        .unwrap_or_else(|| panic!("no rebase entry in {log:?}"));
    let commits = rewrite["data"]["commits"].as_array().unwrap();
    assert_eq!(
        commits.len(),
        1,
        "only the commit touching secrets/: {commits:?}"
    );
    assert_eq!(
        commits[0]["new"].as_str().unwrap(),
        env.git(&dir, &["rev-parse", "HEAD~1"]).trim()
    );
    env.seal(&dir, &["audit", "verify"]);
}

/// The fingerprint of the trusted signer with `email`, as `audit verify
/// --json` lists it.
fn signer_fingerprint(env: &Env, dir: &Path, email: &str) -> String {
    let report: Value =
        serde_json::from_str(&env.seal(dir, &["audit", "verify", "--json"])).unwrap();
    report["signers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["email"] == email)
        .unwrap_or_else(|| panic!("no trusted signer {email} in {report}"))["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Append an entry as the user of `env` would, through the library, with
/// that user's signer (the one `git seal` uses in that environment).
fn append_as(env: &Env, dir: &Path, event: &str, data: Value) {
    let repo = git_seal::repo::Repo::discover(dir).unwrap();
    let signer = git_seal::audit::Signer::load_or_create_in(&env.home.join("signers")).unwrap();
    let new = git_seal::audit::NewEntry {
        event,
        data: data.as_object().unwrap().clone(),
    };
    git_seal::audit::append(&repo, &signer, &new, git_seal::audit::When::Always).unwrap();
}

#[test]
fn a_removed_signer_is_refused_from_its_removal_on_and_its_earlier_entries_stay_valid() {
    let Team {
        ada,
        bea,
        ada_dir,
        bea_dir,
    } = team();
    trust_bea_and_sync(&ada, &bea, &ada_dir, &bea_dir);
    // Bea, trusted, records a commit (and her hooks remember that she is
    // trusted at this tip).
    copy_keys(&ada, &bea);
    write(&bea_dir, "secrets/b.env", "B=1\n");
    bea.git(&bea_dir, &["add", "secrets"]);
    bea.git(&bea_dir, &["commit", "-q", "-m", "bea's secret"]);
    assert_eq!(
        log_json(&bea, &bea_dir)[0]["actor"]["email"],
        "bea@example.test"
    );
    bea.seal(&bea_dir, &["audit", "sync"]);
    ada.seal(&ada_dir, &["audit", "sync"]);

    let fingerprint = signer_fingerprint(&ada, &ada_dir, "bea@example.test");
    let out = ada.seal(&ada_dir, &["audit", "signer", "remove", &fingerprint]);
    assert!(
        out.contains(&fingerprint) && out.contains("is no longer a trusted signer"),
        "{out}"
    );
    let log = log_json(&ada, &ada_dir);
    assert_eq!(log[0]["event"], "signer-remove");
    assert_eq!(
        log[0]["data"],
        serde_json::json!({"fingerprint": fingerprint})
    );
    let removal_seq = log[0]["seq"].as_u64().unwrap();
    let text = ada.seal(&ada_dir, &["audit", "log"]);
    assert!(
        text.contains(&format!("stops trusting {fingerprint}")),
        "{text}"
    );

    // The chain with Bea's earlier entries verifies; she is listed removed.
    let report: Value =
        serde_json::from_str(&ada.seal(&ada_dir, &["audit", "verify", "--json"])).unwrap();
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["signers"].as_array().unwrap().len(), 1, "{report}");
    assert_eq!(report["removed"][0]["fingerprint"], fingerprint.as_str());
    assert_eq!(report["removed"][0]["seq"], removal_seq);
    let text = ada.seal(&ada_dir, &["audit", "verify"]);
    assert!(text.contains("1 trusted signer(s) (1 removed)"), "{text}");
    // allowed-signers no longer lists her.
    let allowed = ada.seal(&ada_dir, &["audit", "allowed-signers"]);
    assert_eq!(allowed.lines().count(), 1, "{allowed}");
    assert!(!allowed.contains("bea@example.test"), "{allowed}");

    // Bea takes the removal in; her hooks stop appending and say why,
    // though her cached trust was written before the removal.
    ada.seal(&ada_dir, &["audit", "sync"]);
    bea.seal(&bea_dir, &["audit", "sync"]);
    assert_bea_commit_not_recorded(&bea, &bea_dir, "B=2\n");

    // An entry she appends anyway is a finding naming the removal; it is
    // the only one (her earlier entries stay valid).
    append_as(&bea, &bea_dir, "seal", serde_json::json!({"paths": []}));
    let report = verify_findings(&bea, &bea_dir, &[]);
    let findings = report["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{report}");
    let tip = bea.git(&bea_dir, &["rev-parse", REF]).trim().to_owned();
    assert_eq!(findings[0]["commit"], tip.as_str());
    let reason = findings[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!(
            "signed by {fingerprint}, removed as a signer by entry seq {removal_seq}"
        )),
        "{reason}"
    );
}

/// `git seal audit signer remove FINGERPRINT`, refused: its stderr.
fn remove_refused(env: &Env, dir: &Path, fingerprint: &str) -> String {
    let args = ["audit", "signer", "remove", fingerprint];
    stderr(&env.fails("git-seal", dir, &args, 1))
}

#[test]
fn signer_remove_refuses_what_would_break_the_chain_naming_the_fix() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    let me = signer_fingerprint(&env, &dir, "ada@example.test");

    // The last trusted signer (here: yourself).
    let err = remove_refused(&env, &dir, &me);
    assert!(
        err.contains(&me) && err.contains("last trusted signer") && err.contains("signer add"),
        "{err}"
    );
    // A fingerprint the chain does not trust; not a fingerprint at all.
    let err = remove_refused(&env, &dir, "SHA256:nobody");
    assert!(
        err.contains("SHA256:nobody is not a trusted signer") && err.contains("verify --json"),
        "{err}"
    );
    env.fails(
        "git-seal",
        &dir,
        &["audit", "signer", "remove", "nobody"],
        2,
    );

    // Someone the chain does not trust cannot remove anyone.
    let (_, key) = ssh_keygen(&env, "bea-key", "bea@example.test");
    env.seal(&dir, &["audit", "signer", "add", &key]);
    let bea = signer_fingerprint(&env, &dir, "bea@example.test");
    let mut stranger = Env::new();
    stranger.set(
        "GIT_SEAL_SIGNER_DIR",
        env.path("stranger-signer").to_str().unwrap(),
    );
    let err = remove_refused(&stranger, &dir, &bea);
    assert!(
        err.contains("is not trusted") && err.contains("cannot remove signers"),
        "{err}"
    );

    // Removed once; a second time names the entry that removed it.
    env.seal(&dir, &["audit", "signer", "remove", &bea]);
    let seq = log_json(&env, &dir)[0]["seq"].as_u64().unwrap();
    let err = remove_refused(&env, &dir, &bea);
    assert!(
        err.contains(&bea)
            && err.contains(&format!("entry seq {seq}"))
            && err.contains("already removed"),
        "{err}"
    );

    // Removing yourself (the root) while another trusted signer remains.
    let (_, key) = ssh_keygen(&env, "carl-key", "carl@example.test");
    env.seal(&dir, &["audit", "signer", "add", &key]);
    let out = env.seal(&dir, &["audit", "signer", "remove", &me]);
    assert!(
        out.contains("you removed your own signer; 1 other trusted signer(s) remain")
            && out.contains("stays the root"),
        "{out}"
    );
    let report: Value =
        serde_json::from_str(&env.seal(&dir, &["audit", "verify", "--json", "--trust", &me]))
            .unwrap();
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["root"], me.as_str());
    let err = remove_refused(&env, &dir, &me);
    assert!(err.contains("cannot remove signers"), "{err}");

    // A chain that does not verify: nothing is removed from it.
    let entry = next_entry_text(&env, &dir, "seal");
    forge_entry(&env, &dir, &entry, None);
    let tip = env.git(&dir, &["rev-parse", REF]);
    let err = remove_refused(&env, &dir, "SHA256:anyone");
    assert!(
        err.contains("does not verify") && err.contains("before removing signers"),
        "{err}"
    );
    assert_eq!(env.git(&dir, &["rev-parse", REF]), tip);
}

#[test]
fn rotate_and_recipient_remove_entries_approve_dropping_the_kid_from_a_policy_scope() {
    use git_seal::audit::entry::{EVENT_RECIPIENT_REMOVE, EVENT_ROTATE};
    for event in [EVENT_ROTATE, EVENT_RECIPIENT_REMOVE] {
        let env = Env::new();
        let dir = env.sealed_repo("r");
        let kid = env.kid();
        crate::harness::set_policy(
            &dir,
            "recipients",
            serde_json::json!([{"paths": ["secrets/**"], "kids": [kid]}]),
        );
        env.git(&dir, &["commit", "-q", "-am", "a recipients scope"]);
        crate::harness::set_policy(&dir, "recipients", serde_json::json!([]));
        env.git(&dir, &["commit", "-q", "--no-verify", "-am", "drop it"]);
        let found = stdout(&env.fails("git-seal", &dir, &["check", "HEAD~1..HEAD"], 1));
        assert!(found.contains(&format!("recipient:{kid}")), "{found}");

        let tree = env.git(&dir, &["write-tree"]).trim().to_owned();
        let data = if event == EVENT_ROTATE {
            serde_json::json!({
                "from": kid, "to": "k_0123456789abcdef", "reencrypt": false,
                "rewrapped": 0, "reencrypted": 0, "index_tree": tree,
            })
        } else {
            serde_json::json!({
                "kid": kid, "paths": ["secrets/**"], "reencrypted": 0,
                "history_blobs": 0, "index_tree": tree,
            })
        };
        append_as(&env, &dir, event, data);
        env.seal(&dir, &["audit", "verify"]);
        env.ok("git-seal", &dir, &["check", "HEAD~1..HEAD"]);
    }
}
