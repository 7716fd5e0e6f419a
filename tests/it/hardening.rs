//! Git features that could walk around sealing (issue: "Sealing that Git
//! cannot break"). Each test is named after the way around it pinned.

use std::path::Path;

use crate::harness::{is_envelope, write_file, Env};

/// Every sealed path in the index and in HEAD is an envelope that opens
/// here, and `git seal check` passes.
#[track_caller]
fn assert_index_and_head_open(env: &Env, dir: &Path, path: &str) {
    for rev in [format!(":{path}"), format!("HEAD:{path}")] {
        let stored = env.ok("git", dir, &["cat-file", "-p", &rev]).stdout;
        assert!(is_envelope(&stored), "{rev} is not an envelope");
        let file = env.path("stored.envelope");
        std::fs::write(&file, &stored).unwrap();
        env.ok("git-seal", dir, &["decrypt", file.to_str().unwrap()]);
    }
    env.ok("git-seal", dir, &["check"]);
}

fn partial_staging_repo(env: &Env) -> std::path::PathBuf {
    let dir = env.sealed_repo("r");
    write_file(&dir, "secrets/s.txt", b"a\nb\nc\n");
    env.git(&dir, &["add", "secrets"]);
    env.git(&dir, &["commit", "-q", "-m", "v1"]);
    write_file(&dir, "secrets/s.txt", b"a\nB\nc\nd\n");
    dir
}

#[test]
fn add_p_cannot_splice_two_envelopes() {
    let env = Env::new();
    let dir = partial_staging_repo(&env);
    env.run(
        "git",
        &dir,
        &["add", "-p", "secrets/s.txt"],
        Some(b"s\ny\nn\nq\n"),
    );
    env.run("git", &dir, &["commit", "-q", "-m", "partial"], None);
    assert_index_and_head_open(&env, &dir, "secrets/s.txt");
    // The reviewer's view still shows plaintext.
    let diff = env.git(&dir, &["diff", "--", "secrets/s.txt"]);
    assert!(diff.contains("+B"), "{diff}");
}

#[test]
fn reset_p_cannot_splice_two_envelopes() {
    let env = Env::new();
    let dir = partial_staging_repo(&env);
    env.git(&dir, &["add", "secrets/s.txt"]);
    env.run(
        "git",
        &dir,
        &["reset", "-p", "secrets/s.txt"],
        Some(b"s\ny\nn\nq\n"),
    );
    env.run("git", &dir, &["commit", "-q", "-m", "partial"], None);
    assert_index_and_head_open(&env, &dir, "secrets/s.txt");
}

#[test]
fn stash_p_cannot_splice_two_envelopes() {
    let env = Env::new();
    let dir = partial_staging_repo(&env);
    env.run("git", &dir, &["stash", "-p"], Some(b"s\ny\nn\nq\n"));
    // Whatever was stashed is an envelope that opens.
    if env
        .run(
            "git",
            &dir,
            &["rev-parse", "-q", "--verify", "refs/stash"],
            None,
        )
        .status
        .success()
    {
        let stashed = env
            .ok("git", &dir, &["cat-file", "-p", "stash@{0}:secrets/s.txt"])
            .stdout;
        let file = env.path("stashed.envelope");
        std::fs::write(&file, &stashed).unwrap();
        env.ok("git-seal", &dir, &["decrypt", file.to_str().unwrap()]);
    }
    env.git(&dir, &["add", "secrets/s.txt"]);
    env.run("git", &dir, &["commit", "-q", "-m", "after stash -p"], None);
    assert_index_and_head_open(&env, &dir, "secrets/s.txt");
    if env
        .run("git", &dir, &["stash", "pop"], None)
        .status
        .success()
    {
        assert_index_and_head_open(&env, &dir, "secrets/s.txt");
    }
}

#[test]
fn merge_cannot_commit_plaintext_from_another_branch() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    env.git(&dir, &["checkout", "-q", "-b", "side"]);
    // A client that runs no filter and no hook put plaintext on a branch.
    env.stage_raw(&dir, "secrets/leak.env", b"PASSWORD=hunter2\n");
    env.git(&dir, &["commit", "-q", "--no-verify", "-m", "leak"]);
    // (The work-tree copy cleans to an envelope, so Git calls it modified.)
    env.git(&dir, &["checkout", "-q", "-f", "main"]);
    write_file(&dir, "other.txt", b"main moves on\n");
    env.git(&dir, &["add", "other.txt"]);
    env.git(&dir, &["commit", "-q", "-m", "main"]);
    let head = env.rev(&dir, "HEAD");
    let out = env.run("git", &dir, &["merge", "--no-edit", "side"], None);
    let err = crate::harness::stderr(&out);
    assert!(!out.status.success(), "the merge went through:\n{err}");
    assert!(
        err.contains("secrets/leak.env") && err.contains("merge refused"),
        "{err}"
    );
    assert_eq!(env.rev(&dir, "HEAD"), head, "a merge commit was made");
}

#[test]
fn signer_directory_open_to_others_is_refused_and_doctor_names_the_chmod() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let dir = env.sealed_repo("r");
    let signers = env.home.join("signers");
    assert!(
        signers.join("signer").exists() || signers.is_dir(),
        "no signer dir at {}",
        signers.display()
    );
    std::fs::set_permissions(&signers, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = env.fails("git-seal", &dir, &["audit", "signer", "show"], 1);
    let err = crate::harness::stderr(&out);
    assert!(err.contains("chmod 700"), "{err}");
    let out = env.fails("git-seal", &dir, &["doctor"], 1);
    let text = crate::harness::stdout(&out);
    assert!(
        text.contains(&format!("chmod 700 {}", signers.display())),
        "{text}"
    );
}

#[test]
fn init_patterns_that_name_a_directory_seal_everything_under_it() {
    for given in ["secrets/", "secrets", "./secrets/**", "secrets/**/"] {
        let env = Env::new();
        let dir = env.repo("r");
        write_file(&dir, "secrets/db.env", b"PASSWORD=x\n");
        let out = env.ok("git-seal", &dir, &["init", given]);
        let attributes = std::fs::read_to_string(dir.join(".gitattributes")).unwrap();
        assert!(
            attributes.contains("secrets/** filter=seal"),
            "{given}: {attributes}\n{}",
            crate::harness::stdout(&out)
        );
        assert!(
            !crate::harness::stderr(&out).contains("matches no"),
            "{given}"
        );
        env.git(&dir, &["add", "-A"]);
        env.git(&dir, &["commit", "-q", "-m", "seal"]);
        crate::harness::assert_sealed(&env, &dir, "secrets/db.env", b"PASSWORD=x\n");
    }
}

#[test]
fn init_warns_about_a_pattern_that_matches_nothing() {
    let env = Env::new();
    let dir = env.repo("r");
    write_file(&dir, "secrets/db.env", b"x\n");
    let out = env.ok("git-seal", &dir, &["init", "secret/**"]);
    let err = crate::harness::stderr(&out);
    assert!(
        err.contains("\"secret/**\" matches no tracked or new file"),
        "{err}"
    );
}

#[test]
fn editing_a_locked_file_cannot_seal_an_envelope_inside_an_envelope() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    write_file(&dir, "secrets/db.env", b"PASSWORD=x\n");
    env.git(&dir, &["add", "-A"]);
    env.git(&dir, &["commit", "-q", "-m", "one"]);
    env.seal(&dir, &["lock"]);
    let head = env.rev(&dir, "HEAD");
    let mut locked = std::fs::read(dir.join("secrets/db.env")).unwrap();
    locked.extend_from_slice(b"X=1\n");
    std::fs::write(dir.join("secrets/db.env"), &locked).unwrap();
    let out = env.run("git", &dir, &["commit", "-q", "-a", "-m", "x"], None);
    let err = crate::harness::stderr(&out);
    assert!(!out.status.success(), "the commit went through:\n{err}");
    assert!(
        err.contains("secrets/db.env") && err.contains("git seal unlock"),
        "{err}"
    );
    assert_eq!(env.rev(&dir, "HEAD"), head);
    // Put back, the locked file is committable again, unchanged.
    env.git(&dir, &["checkout", "--", "secrets/db.env"]);
    env.seal(&dir, &["unlock"]);
    assert_index_and_head_open(&env, &dir, "secrets/db.env");
}

#[test]
fn kek_in_the_environment_is_not_passed_to_git_that_runs_no_filter() {
    use std::os::unix::fs::PermissionsExt;
    let mut env = Env::new();
    let secret = "8d56d558cdb694526393aff471ce40cbed74c6e66f4ac04d0e80de8a3c70bbce";
    env.set("GIT_SEAL_KEK", secret);
    let dir = env.sealed_repo("r");
    let server = env.bare("server.git");
    // The server's receive-pack runs this hook as a child of our push.
    let dump = env.path("hook-env");
    let hook = server.join("hooks/pre-receive");
    std::fs::write(&hook, format!("#!/bin/sh\nenv > '{}'\n", dump.display())).unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    env.git(&dir, &["remote", "add", "origin", server.to_str().unwrap()]);
    env.seal(&dir, &["audit", "sync", "origin"]);
    let seen = std::fs::read_to_string(&dump).expect("the server hook ran");
    assert!(seen.contains("GIT_DIR") || seen.contains("PATH"), "{seen}");
    assert!(
        !seen.contains("GIT_SEAL_KEK") && !seen.contains(secret),
        "{seen}"
    );
}

#[test]
fn pre_receive_inspects_refs_that_name_trees_and_blobs() {
    let env = Env::new();
    let (dir, _server) = env.served_repo("r");
    // A tree holding plaintext under secrets/, made without any filter.
    env.stage_raw(&dir, "secrets/db.env", b"PASSWORD=hunter2\n");
    let tree = env.git(&dir, &["write-tree"]).trim().to_owned();
    let out = env.run(
        "git",
        &dir,
        &["push", "origin", &format!("{tree}:refs/tags/t")],
        None,
    );
    let err = crate::harness::stderr(&out);
    assert!(!out.status.success(), "the tree was accepted:\n{err}");
    assert!(
        err.contains("secrets/db.env") && err.contains("push refused"),
        "{err}"
    );
    // The same tree without .seal/ and .gitattributes: the server's rules
    // still apply.
    env.git(
        &dir,
        &["rm", "-q", "--cached", "-r", ".seal", ".gitattributes"],
    );
    let bare_tree = env.git(&dir, &["write-tree"]).trim().to_owned();
    let out = env.run(
        "git",
        &dir,
        &["push", "origin", &format!("{bare_tree}:refs/tags/u")],
        None,
    );
    assert!(!out.status.success(), "a tree without .seal/ was accepted");
    // A blob holding a KEK's private key, pushed as a ref.
    let kid = env.kid();
    let key = std::fs::read_to_string(env.key_dir.join(format!("{kid}.key"))).unwrap();
    let key_file = env.path("leak.txt");
    std::fs::write(&key_file, &key).unwrap();
    let blob = env
        .git(&dir, &["hash-object", "-w", key_file.to_str().unwrap()])
        .trim()
        .to_owned();
    let out = env.run(
        "git",
        &dir,
        &["push", "origin", &format!("{blob}:refs/tags/k")],
        None,
    );
    let err = crate::harness::stderr(&out);
    assert!(!out.status.success(), "a private key was accepted:\n{err}");
    assert!(!err.contains(key.trim()), "the key was printed");
    // check reads tree refs too (exit 1 with the finding, not 2).
    let out = env.fails("git-seal", &dir, &["check", &tree], 1);
    assert!(crate::harness::stdout(&out).contains("secrets/db.env"));
}

#[test]
fn a_file_name_with_a_newline_cannot_forge_audit_log_lines() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    let forged = "secrets/x\n    99  deadbeefdead  2026-01-01T00:00:00Z  signer-add   Mallory <m@x>  trusts me.env";
    write_file(&dir, forged, b"x\n");
    env.git(&dir, &["add", "-A"]);
    env.git(&dir, &["commit", "-q", "-m", "odd name"]);
    let log = env.seal(&dir, &["audit", "log"]);
    let entries = env.seal(&dir, &["audit", "log", "--json"]);
    let count = serde_json::from_str::<serde_json::Value>(&entries).unwrap()["entries"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(log.lines().count(), count, "{log}");
    assert!(log.contains("secrets/x\\n"), "{log}");
}

#[test]
fn an_envelope_field_name_cannot_put_escape_sequences_in_errors() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    let file = env.path("odd.envelope");
    std::fs::write(
        &file,
        "{\"schema\": \"git-seal.envelope/v1\", \"\\u001b[2J\\u001b[31mboom\": 1}\n",
    )
    .unwrap();
    let out = env.fails("git-seal", &dir, &["decrypt", file.to_str().unwrap()], 1);
    let err = crate::harness::stderr(&out);
    assert!(!err.contains('\u{1b}'), "{err:?}");
    assert!(err.contains("\\u{1b}"), "{err:?}");
}

#[test]
fn init_guards_private_key_files_and_pasted_keys_are_found_in_any_form() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    let policy = std::fs::read_to_string(dir.join(".seal/policy.json")).unwrap();
    assert!(
        policy.contains("\"*.pem\"") && policy.contains("\"id_ed25519\""),
        "{policy}"
    );
    // A private key file outside the sealed paths is refused...
    write_file(
        &dir,
        "deploy/server.pem",
        b"-----BEGIN RSA PRIVATE KEY-----\n",
    );
    env.git(&dir, &["add", "deploy/server.pem"]);
    let out = env.run("git", &dir, &["commit", "-q", "-m", "pem"], None);
    assert!(!out.status.success(), "a .pem file was committed");
    env.git(&dir, &["rm", "-q", "--cached", "deploy/server.pem"]);
    // ...and one under a sealed path is sealed and fine.
    write_file(&dir, "secrets/tls.key", b"-----BEGIN EC PRIVATE KEY-----\n");
    env.git(&dir, &["add", "secrets/tls.key"]);
    env.git(&dir, &["commit", "-q", "-m", "sealed key"]);
    // The KEK pasted as colon-separated bytes, split over lines.
    let kid = env.kid();
    let hex = std::fs::read_to_string(env.key_dir.join(format!("{kid}.key"))).unwrap();
    let hex = hex.trim();
    let pairs: Vec<&str> = (0..32).map(|i| &hex[2 * i..2 * i + 2]).collect();
    let pasted = format!(
        "kek:\n  {}\n  {}\n",
        pairs[..16].join(":"),
        pairs[16..].join(":")
    );
    write_file(&dir, "notes.txt", pasted.as_bytes());
    env.git(&dir, &["add", "notes.txt"]);
    let out = env.run("git", &dir, &["commit", "-q", "-m", "notes"], None);
    let err = crate::harness::stderr(&out);
    assert!(!out.status.success(), "a pasted KEK was committed");
    assert!(
        err.contains("notes.txt") && !err.contains(&hex[..16]),
        "{err}"
    );
}

#[test]
fn bound_paths_refuse_swapped_and_unbound_envelopes() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    crate::harness::set_policy(&dir, "bind_path_aad", serde_json::json!(true));
    write_file(&dir, "secrets/a.env", b"A\n");
    write_file(&dir, "secrets/b.env", b"B\n");
    env.git(&dir, &["add", "-A"]);
    env.git(&dir, &["commit", "-q", "-m", "bound"]);
    let a = env
        .ok("git", &dir, &["cat-file", "-p", "HEAD:secrets/a.env"])
        .stdout;
    let b = env
        .ok("git", &dir, &["cat-file", "-p", "HEAD:secrets/b.env"])
        .stdout;
    assert!(String::from_utf8_lossy(&a).contains("\"aad\": \"path:secrets/a.env\""));

    // Swapped envelopes, and one bound to no path, committed without hooks.
    let kid = env.kid();
    let plain = env.path("c.plain");
    std::fs::write(&plain, b"C\n").unwrap();
    let unbound = env
        .ok(
            "git-seal",
            &dir,
            &["encrypt", "--to", &kid, plain.to_str().unwrap()],
        )
        .stdout;
    env.stage_raw(&dir, "secrets/a.env", &b);
    env.stage_raw(&dir, "secrets/b.env", &a);
    env.stage_raw(&dir, "secrets/c.env", &unbound);
    env.git(&dir, &["commit", "-q", "--no-verify", "-m", "swap"]);

    let out = env.fails("git-seal", &dir, &["check"], 1);
    let found = crate::harness::stdout(&out);
    for path in ["secrets/a.env", "secrets/b.env", "secrets/c.env"] {
        assert!(found.contains(path), "{path} not reported:\n{found}");
    }
    assert!(
        found.contains("bound to no path") && !found.contains("Some("),
        "{found}"
    );
    // A fresh clone with the key leaves all three sealed, never opened at
    // the wrong path.
    let clone = env.clone_repo(&dir, "clone");
    let out = env.ok("git-seal", &clone, &["init"]);
    let _ = out;
    for path in ["secrets/a.env", "secrets/b.env", "secrets/c.env"] {
        let bytes = std::fs::read(clone.join(path)).unwrap();
        assert!(
            is_envelope(&bytes),
            "{path} was opened at a path it is not bound to"
        );
    }
}

#[test]
fn check_reads_attributes_as_git_does_macros_quoting_and_nested_files() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    let mut attributes = std::fs::read_to_string(dir.join(".gitattributes")).unwrap();
    attributes.insert_str(
        0,
        "[attr]sealed filter=seal diff=seal merge=seal\nvault/** sealed\n\"quoted dir/**\" filter=seal diff=seal merge=seal\n",
    );
    std::fs::write(dir.join(".gitattributes"), attributes).unwrap();
    write_file(
        &dir,
        "conf/.gitattributes",
        b"*.secret filter=seal diff=seal merge=seal\n",
    );
    env.git(&dir, &["add", "-A"]);
    env.git(&dir, &["commit", "-q", "-m", "more sealed paths"]);
    let paths = ["vault/a.txt", "quoted dir/b.txt", "conf/deep/c.secret"];
    // Git itself seals them through the filter...
    for path in paths {
        write_file(&dir, path, b"sealed by git\n");
    }
    env.git(&dir, &["add", "-A"]);
    env.git(&dir, &["commit", "-q", "-m", "sealed"]);
    for path in paths {
        crate::harness::assert_sealed(&env, &dir, path, b"sealed by git\n");
    }
    env.ok("git-seal", &dir, &["check"]);
    // ...so plaintext there, from a client that runs no filter or hook, is
    // a finding.
    for path in paths {
        env.stage_raw(&dir, path, b"PASSWORD=plain\n");
    }
    env.git(&dir, &["commit", "-q", "--no-verify", "-m", "plain"]);
    let out = env.fails("git-seal", &dir, &["check", "HEAD~1..HEAD"], 1);
    let found = crate::harness::stdout(&out);
    for path in paths {
        assert!(found.contains(path), "{path} not reported:\n{found}");
    }
}

/// Drop `secrets/**` from both the policy and `.gitattributes`, and stage
/// `secrets/db.txt` as plaintext, all in one commit's worth of changes.
fn weaken_and_unseal(env: &Env, dir: &Path) {
    let policy = std::fs::read_to_string(dir.join(".seal/policy.json")).unwrap();
    let mut value: serde_json::Value = serde_json::from_str(&policy).unwrap();
    value["sealed"] = serde_json::json!([]);
    std::fs::write(dir.join(".seal/policy.json"), value.to_string()).unwrap();
    let attributes = std::fs::read_to_string(dir.join(".gitattributes")).unwrap();
    let kept: Vec<&str> = attributes
        .lines()
        .filter(|l| !l.starts_with("secrets/**"))
        .collect();
    std::fs::write(dir.join(".gitattributes"), kept.join("\n") + "\n").unwrap();
    env.git(dir, &["add", ".seal/policy.json", ".gitattributes"]);
    env.stage_raw(dir, "secrets/db.txt", b"PASSWORD=now-plain\n");
}

#[test]
fn a_commit_cannot_switch_off_its_own_policy() {
    let env = Env::new();
    let (dir, _server) = env.served_repo("r");
    write_file(&dir, "secrets/db.txt", b"PASSWORD=sealed\n");
    env.git(&dir, &["add", "-A"]);
    env.git(&dir, &["commit", "-q", "-m", "sealed"]);
    env.git(&dir, &["push", "-q", "origin", "main"]);

    weaken_and_unseal(&env, &dir);
    let out = env.run("git", &dir, &["commit", "-q", "-m", "weaken"], None);
    let err = crate::harness::stderr(&out);
    assert!(!out.status.success(), "pre-commit let it through:\n{err}");
    assert!(
        err.contains("sealed:secrets/**") && err.contains("secrets/db.txt"),
        "{err}"
    );
    env.git(&dir, &["commit", "-q", "--no-verify", "-m", "weaken"]);
    let out = env.fails("git-seal", &dir, &["check", "HEAD~1..HEAD"], 1);
    let found = crate::harness::stdout(&out);
    assert!(
        found.contains("weakened") || found.contains("sealed:secrets/**"),
        "{found}"
    );
    assert!(found.contains("secrets/db.txt"), "{found}");
    let out = env.run("git", &dir, &["push", "origin", "main"], None);
    assert!(!out.status.success(), "the server took it");

    // A trusted signer approves both changes: the same commit is fine.
    env.seal(
        &dir,
        &[
            "audit",
            "approve",
            "policy",
            "sealed:secrets/**",
            "attribute:secrets/**",
        ],
    );
    env.seal(&dir, &["audit", "approve", "unseal-path", "secrets/db.txt"]);
    env.ok("git-seal", &dir, &["check", "HEAD~1..HEAD"]);
    env.seal(&dir, &["audit", "sync", "origin"]);
    env.git(&dir, &["push", "-q", "origin", "main"]);
    let log = env.seal(&dir, &["audit", "log"]);
    assert!(
        log.contains("approves plaintext at secrets/db.txt"),
        "{log}"
    );
}

#[test]
fn an_orphan_branch_without_seal_is_judged_by_the_servers_rules() {
    let env = Env::new();
    let (dir, _server) = env.served_repo("r");
    env.git(&dir, &["checkout", "-q", "--orphan", "bare"]);
    env.git(&dir, &["rm", "-q", "-r", "--cached", "."]);
    env.stage_raw(&dir, "secrets/leak.env", b"PASSWORD=x\n");
    env.git(
        &dir,
        &["commit", "-q", "--no-verify", "-m", "no policy here"],
    );
    let out = env.run("git", &dir, &["push", "origin", "bare"], None);
    let err = crate::harness::stderr(&out);
    assert!(
        !out.status.success(),
        "an orphan branch without .seal/ was accepted:\n{err}"
    );
    assert!(err.contains("secrets/leak.env"), "{err}");
}

#[test]
fn a_loose_key_file_or_key_directory_is_named_with_its_chmod() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let dir = env.sealed_repo("r");
    write_file(&dir, "secrets/db.env", b"PASSWORD=x\n");
    env.git(&dir, &["add", "-A"]);
    env.git(&dir, &["commit", "-q", "-m", "one"]);
    env.seal(&dir, &["lock"]);
    let stored = env.path("stored.envelope");
    std::fs::write(&stored, std::fs::read(dir.join("secrets/db.env")).unwrap()).unwrap();
    let key_file = env.key_dir.join(format!("{}.key", env.kid()));
    let loosen = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    for (path, loose, tight, fix) in [
        (key_file.clone(), 0o644, 0o600, "chmod 600"),
        (env.key_dir.clone(), 0o755, 0o700, "chmod 700"),
    ] {
        loosen(&path, loose);
        let out = env.fails("git-seal", &dir, &["unlock"], 1);
        let err = crate::harness::stderr(&out);
        assert!(
            err.contains(&format!("{fix} {}", path.display())),
            "unlock: {err}"
        );
        assert!(!err.contains("damaged envelope"), "unlock: {err}");
        let out = env.fails("git-seal", &dir, &["decrypt", stored.to_str().unwrap()], 1);
        let err = crate::harness::stderr(&out);
        assert!(
            err.contains(fix) && !err.contains("altered"),
            "decrypt: {err}"
        );
        let out = env.fails("git-seal", &dir, &["doctor"], 1);
        assert!(crate::harness::stdout(&out).contains(fix), "doctor");
        loosen(&path, tight);
    }
    env.seal(&dir, &["unlock"]);
    assert_eq!(
        std::fs::read(dir.join("secrets/db.env")).unwrap(),
        b"PASSWORD=x\n"
    );
}

#[test]
fn non_utf8_paths_are_sealed_and_checked_like_any_other() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let env = Env::new();
    let dir = env.sealed_repo("r");
    let name = OsStr::from_bytes(b"secrets/\xffodd.env");
    std::fs::create_dir_all(dir.join("secrets")).unwrap();
    std::fs::write(dir.join(name), b"PASSWORD=odd\n").unwrap();
    let run = |args: &[&OsStr]| {
        let out = env.command("git", &dir).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    run(&[OsStr::new("add"), OsStr::new("--"), name]);
    run(&[
        OsStr::new("commit"),
        OsStr::new("-q"),
        OsStr::new("-m"),
        OsStr::new("odd"),
    ]);
    let mut rev = b"HEAD:".to_vec();
    rev.extend_from_slice(name.as_bytes());
    let stored = run(&[
        OsStr::new("cat-file"),
        OsStr::new("-p"),
        OsStr::from_bytes(&rev),
    ]);
    assert!(
        is_envelope(&stored),
        "a non-UTF-8 name was stored as plaintext"
    );
    // Plaintext staged under such a name, past the filter, is refused.
    let other = OsStr::from_bytes(b"secrets/\xfeplain.env");
    std::fs::write(dir.join(other), b"PASSWORD=leak\n").unwrap();
    let id = run(&[
        OsStr::new("hash-object"),
        OsStr::new("-w"),
        OsStr::new("--no-filters"),
        other,
    ]);
    let id = String::from_utf8(id).unwrap();
    let mut info = format!("100644 {}\t", id.trim()).into_bytes();
    info.extend_from_slice(other.as_bytes());
    info.push(0);
    let out = env.run(
        "git",
        &dir,
        &["update-index", "-z", "--index-info"],
        Some(&info),
    );
    assert!(out.status.success());
    let out = env.run("git", &dir, &["commit", "-q", "-m", "leak"], None);
    assert!(
        !out.status.success(),
        "plaintext under a non-UTF-8 name was committed"
    );
}

/// Runs `git ARGS` (which need not be UTF-8) in `dir`, failing loudly;
/// its standard output.
fn git_os(env: &Env, dir: &Path, args: &[&std::ffi::OsStr]) -> Vec<u8> {
    let out = env.command("git", dir).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn a_sealed_file_named_in_bytes_that_are_not_utf8_behaves_like_any_other() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let env = Env::new();
    let dir = env.sealed_repo("r");
    let name = OsStr::from_bytes(b"secrets/\xffodd.env");
    write_file(&dir, "secrets/plain-name.env", b"B=1\n");
    std::fs::write(dir.join(name), b"PASSWORD=odd\n").unwrap();
    let os = |s: &'static str| OsStr::new(s);
    git_os(&env, &dir, &[os("add"), os("-A")]);
    git_os(&env, &dir, &[os("commit"), os("-q"), os("-m"), os("odd")]);
    let staged = |dir: &Path| git_os(&env, dir, &[os("ls-files"), os("-s"), os("--"), name]);
    let before = staged(&dir);
    // Clean finds the file's previous envelope: status is clean, and
    // adding again stores no new envelope.
    let status = env.git(&dir, &["status", "--porcelain"]);
    assert_eq!(status, "", "the unchanged file shows as modified");
    git_os(&env, &dir, &[os("add"), os("-A")]);
    assert_eq!(staged(&dir), before, "adding again made a new envelope");
    // Checked out again from the index (a smudge Git may delay).
    std::fs::remove_file(dir.join(name)).unwrap();
    git_os(&env, &dir, &[os("checkout"), os("--"), name]);
    assert_eq!(std::fs::read(dir.join(name)).unwrap(), b"PASSWORD=odd\n");
    // Diffed in plaintext (the diff driver is given its name).
    std::fs::write(dir.join(name), b"PASSWORD=odd\nMORE=1\n").unwrap();
    let diff = git_os(&env, &dir, &[os("diff")]);
    assert!(
        String::from_utf8_lossy(&diff).contains("+MORE=1"),
        "{}",
        String::from_utf8_lossy(&diff)
    );
    git_os(&env, &dir, &[os("commit"), os("-q"), os("-am"), os("more")]);
    // Locked and unlocked with the others.
    env.seal(&dir, &["lock"]);
    assert!(is_envelope(&std::fs::read(dir.join(name)).unwrap()));
    env.seal(&dir, &["unlock"]);
    assert_eq!(
        std::fs::read(dir.join(name)).unwrap(),
        b"PASSWORD=odd\nMORE=1\n"
    );
    assert_eq!(env.git(&dir, &["status", "--porcelain"]), "");
    // A clone opens it on `git seal init`.
    let clone = env.clone_repo(&dir, "clone");
    env.seal(&clone, &["init"]);
    assert_eq!(
        std::fs::read(clone.join(name)).unwrap(),
        b"PASSWORD=odd\nMORE=1\n"
    );
    assert_eq!(env.git(&clone, &["status", "--porcelain"]), "");
}

#[test]
fn a_sealed_file_named_like_an_option_diffs_and_merges() {
    let env = Env::new();
    let dir = env.repo("r");
    env.seal(&dir, &["init", "*.env"]);
    env.git(&dir, &["add", "-A"]);
    env.git(&dir, &["commit", "-q", "-m", "set up"]);
    write_file(&dir, "-x.env", b"base\n");
    env.git(&dir, &["add", "--", "-x.env"]);
    env.git(&dir, &["commit", "-q", "-m", "base"]);
    write_file(&dir, "-x.env", b"base\nmore\n");
    let diff = env.git(&dir, &["diff"]);
    assert!(diff.contains("+more"), "{diff}");
    env.git(&dir, &["checkout", "-q", "--", "-x.env"]);
    env.git(&dir, &["checkout", "-q", "-b", "theirs"]);
    write_file(&dir, "-x.env", b"THEIRS\n");
    env.git(&dir, &["commit", "-q", "-am", "theirs"]);
    env.git(&dir, &["checkout", "-q", "main"]);
    write_file(&dir, "-x.env", b"OURS\n");
    env.git(&dir, &["commit", "-q", "-am", "ours"]);
    let out = env.run("git", &dir, &["merge", "theirs"], None);
    assert!(!out.status.success(), "the two sides conflict");
    let merged = String::from_utf8(std::fs::read(dir.join("-x.env")).unwrap()).unwrap();
    assert!(
        merged.contains("<<<<<<<") && merged.contains("OURS") && merged.contains("THEIRS"),
        "{merged}"
    );
}

#[test]
fn the_audit_actor_comes_from_git_config_global_as_git_sees_it() {
    let env = Env::new();
    std::fs::write(
        env.home.join("gitconfig-global"),
        "[user]\n\tname = Grace Global\n\temail = grace@example.test\n",
    )
    .unwrap();
    let dir = env.path("r");
    std::fs::create_dir_all(&dir).unwrap();
    let run = |program: &str, args: &[&str]| {
        let out = env
            .command(program, &dir)
            .args(args)
            .env_remove("GIT_AUTHOR_NAME")
            .env_remove("GIT_AUTHOR_EMAIL")
            .env_remove("GIT_COMMITTER_NAME")
            .env_remove("GIT_COMMITTER_EMAIL")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run("git", &["init", "-q", "-b", "main"]);
    run("git-seal", &["init", "secrets/**"]);
    let log = run("git-seal", &["audit", "log"]);
    assert!(log.contains("Grace Global <grace@example.test>"), "{log}");
}

#[test]
fn a_symlink_under_a_sealed_path_gets_a_fix_that_can_work() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    write_file(&dir, "elsewhere/db.env", b"PASSWORD=x\n");
    std::fs::create_dir_all(dir.join("secrets")).unwrap();
    std::os::unix::fs::symlink("../elsewhere/db.env", dir.join("secrets/link.env")).unwrap();
    env.git(&dir, &["add", "secrets/link.env"]);
    let out = env.run("git", &dir, &["commit", "-q", "-m", "link"], None);
    let err = crate::harness::stderr(&out);
    assert!(
        !out.status.success(),
        "a symlink under a sealed path was committed"
    );
    assert!(
        err.contains("symbolic link") && !err.contains("git seal init"),
        "{err}"
    );
    env.git(&dir, &["commit", "-q", "--no-verify", "-m", "link"]);
    let out = env.fails("git-seal", &dir, &["check", "HEAD~1..HEAD"], 1);
    assert!(crate::harness::stdout(&out).contains("symbolic link"));
}

#[test]
fn pre_commit_opens_staged_envelopes_when_a_key_is_here() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    let kid = env.kid();
    let seal = |text: &[u8]| -> serde_json::Value {
        let plain = env.path("p");
        std::fs::write(&plain, text).unwrap();
        let out = env.ok(
            "git-seal",
            &dir,
            &["encrypt", "--to", &kid, plain.to_str().unwrap()],
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    // Recipients of one envelope, content of another: it parses, and opens
    // for nobody (what splicing by partial staging made).
    let mut spliced = seal(b"one\n");
    let other = seal(b"two\n");
    for field in ["nonce", "ciphertext", "tag"] {
        spliced[field] = other[field].clone();
    }
    let text = serde_json::to_string_pretty(&spliced).unwrap() + "\n";
    assert!(is_envelope(text.as_bytes()));
    env.stage_raw(&dir, "secrets/spliced.env", text.as_bytes());
    let out = env.run("git", &dir, &["commit", "-q", "-m", "spliced"], None);
    let err = crate::harness::stderr(&out);
    assert!(
        !out.status.success(),
        "an envelope that opens for nobody was committed"
    );
    assert!(
        err.contains("secrets/spliced.env") && err.contains("does not open"),
        "{err}"
    );
}

/// Bytes `git-seal ARGS` read from the file at `path`, as strace saw it;
/// `None` where strace is not installed (outside CI).
fn bytes_read_from(env: &Env, dir: &Path, args: &[&str], path: &Path) -> Option<u64> {
    if std::process::Command::new("strace")
        .arg("-V")
        .output()
        .is_err()
    {
        assert!(!crate::harness::in_ci(), "strace is missing under CI=true");
        eprintln!("skipped: strace is not installed");
        return None;
    }
    let trace = env.path("trace.txt");
    let mut strace_args = vec!["-f", "-qq", "-e", "trace=openat,read,close", "-o"];
    strace_args.push(trace.to_str().unwrap());
    strace_args.push("git-seal");
    strace_args.extend_from_slice(args);
    env.ok("strace", dir, &strace_args);
    let text = std::fs::read_to_string(&trace).unwrap();
    let name = path.file_name().unwrap().to_str().unwrap();
    let mut open: Option<(String, String)> = None; // (pid, fd)
    let mut total = 0u64;
    for line in text.lines() {
        let (pid, call) = line.split_once(char::is_whitespace).unwrap_or(("", line));
        let call = call.trim_start();
        if call.starts_with("openat(") && call.contains(name) {
            if let Some(fd) = call.rsplit("= ").next().filter(|fd| !fd.starts_with('-')) {
                open = Some((pid.to_owned(), fd.trim().to_owned()));
            }
        } else if let Some((p, fd)) = &open {
            if p == pid && call.starts_with(&format!("read({fd},")) {
                total += call
                    .rsplit("= ")
                    .next()
                    .and_then(|n| n.trim().parse().ok())
                    .unwrap_or(0);
            } else if p == pid && call.starts_with(&format!("close({fd})")) {
                open = None;
            }
        }
    }
    Some(total)
}

#[test]
fn post_checkout_does_not_read_a_large_unlocked_file_whole() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    let big = dir.join("secrets/big.bin");
    write_file(&dir, "secrets/big.bin", &vec![b'x'; 8 << 20]);
    env.git(&dir, &["add", "-A"]);
    env.git(&dir, &["commit", "-q", "-m", "big"]);
    let head = env.rev(&dir, "HEAD");
    let args = ["hook", "post-checkout", head.as_str(), head.as_str(), "1"];
    if let Some(read) = bytes_read_from(&env, &dir, &args, &big) {
        assert!(
            read < 64 << 10,
            "post-checkout read {read} bytes of an 8 MiB unlocked file"
        );
    }
}

#[test]
fn seal_files_stay_plaintext_even_where_a_late_attribute_line_filters_them() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    let mut attributes = std::fs::read_to_string(dir.join(".gitattributes")).unwrap();
    // After the guard lines, so it wins over them in Git's eyes.
    attributes.push_str("** filter=seal diff=seal merge=seal\n");
    std::fs::write(dir.join(".gitattributes"), attributes).unwrap();
    crate::harness::set_policy(&dir, "never_commit", serde_json::json!(["*.pem"]));
    env.git(&dir, &["add", "-A"]);
    for path in [".seal/policy.json", ".gitattributes"] {
        let staged = env
            .ok("git", &dir, &["cat-file", "-p", &format!(":{path}")])
            .stdout;
        assert!(!is_envelope(&staged), "{path} was sealed");
    }
    let policy = env.git(&dir, &["cat-file", "-p", ":.seal/policy.json"]);
    assert!(policy.contains("*.pem"), "{policy}");
}

/// A repository whose root `.gitattributes` seals `vault/**` by a line the
/// user added (not a policy glob), with `vault/v0.txt` committed sealed.
fn vault_repo(env: &Env, name: &str) -> std::path::PathBuf {
    let dir = env.sealed_repo(name);
    append_attributes(&dir, "vault/** filter=seal diff=seal merge=seal\n");
    write_file(&dir, "vault/v0.txt", b"MARKER_V0\n");
    env.git(&dir, &["add", "-A"]);
    env.git(&dir, &["commit", "-q", "-m", "vault"]);
    assert!(is_envelope(&env.blob_at(&dir, "HEAD:vault/v0.txt")));
    dir
}

fn append_attributes(dir: &Path, lines: &str) {
    let path = dir.join(".gitattributes");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{text}{lines}")).unwrap();
}

/// `git commit` is refused by pre-commit; returns its stderr, and leaves
/// HEAD where it was.
#[track_caller]
fn refused(env: &Env, dir: &Path) -> String {
    let head = env.rev(dir, "HEAD");
    let out = env.fails("git", dir, &["commit", "-q", "-m", "refused"], 1);
    assert_eq!(env.rev(dir, "HEAD"), head, "the refused commit was made");
    crate::harness::stderr(&out)
}

/// `git seal check` fails; returns its findings (stdout).
#[track_caller]
fn check_fails(env: &Env, dir: &Path) -> String {
    crate::harness::stdout(&env.fails("git-seal", dir, &["check"], 1))
}

#[test]
fn a_gitattributes_line_that_unsets_filter_under_a_sealed_pattern_is_weakened() {
    let env = Env::new();
    let dir = vault_repo(&env, "r");
    let sealed = env.rev(&dir, "HEAD");
    for (lines, file) in [
        ("vault/v1* -filter\n", "vault/v1.txt"),
        ("vault/v1* !filter\n", "vault/v1.txt"),
        ("vault/v1* filter=other\n", "vault/v1.txt"),
        // A macro defined in the root file that unsets `filter`.
        (
            "[attr]nofilter -filter\nvault/v3* nofilter\n",
            "vault/v3.txt",
        ),
    ] {
        append_attributes(&dir, lines);
        write_file(&dir, file, b"MARKER_V1\n");
        env.git(&dir, &["add", "-A"]);
        let err = refused(&env, &dir);
        assert!(
            err.contains(".gitattributes: narrows attribute:vault/**"),
            "{lines}: {err}"
        );
        // CI catches the same commit made without the hook.
        env.git(&dir, &["commit", "-q", "--no-verify", "-m", "override"]);
        assert_eq!(env.blob_at(&dir, &format!("HEAD:{file}")), b"MARKER_V1\n");
        let found = check_fails(&env, &dir);
        let head = env.rev(&dir, "HEAD");
        assert!(
            found.contains(&format!(
                "{head}: .gitattributes: narrows attribute:vault/** that the parent commit had"
            )),
            "{lines}: {found}"
        );
        env.git(&dir, &["reset", "-q", "--hard", &sealed]);
    }

    // Lines that leave every sealed path sealed are no finding: a line
    // about other paths, one that a later line overrides, more sealing.
    append_attributes(
        &dir,
        "docs/** -filter\nvault/tmp* -filter\nvault/** filter=seal diff=seal merge=seal\n*.key filter=seal diff=seal merge=seal\n",
    );
    write_file(&dir, "docs/readme.txt", b"public\n");
    env.git(&dir, &["add", "-A"]);
    env.git(&dir, &["commit", "-q", "-m", "harmless attributes"]);
    env.ok("git-seal", &dir, &["check"]);
}

#[test]
fn a_nested_gitattributes_that_unsets_filter_is_weakened_in_check_as_in_pre_commit() {
    let env = Env::new();
    let dir = vault_repo(&env, "r");
    write_file(&dir, "vault/n/old.txt", b"MARKER_OLD\n");
    env.git(&dir, &["add", "-A"]);
    env.git(&dir, &["commit", "-q", "-m", "old"]);
    assert!(is_envelope(&env.blob_at(&dir, "HEAD:vault/n/old.txt")));

    write_file(&dir, "vault/n/.gitattributes", b"* -filter\n");
    write_file(&dir, "vault/n/new.txt", b"MARKER_NEW\n");
    // Not `add -A`, which may clean old.txt again under the new rules.
    env.git(&dir, &["add", "vault/n/.gitattributes", "vault/n/new.txt"]);
    let err = refused(&env, &dir);
    assert!(
        err.contains("vault/n/.gitattributes: narrows attribute:vault/**"),
        "{err}"
    );
    env.git(
        &dir,
        &["commit", "-q", "--no-verify", "-m", "nested override"],
    );
    let found = check_fails(&env, &dir);
    assert!(
        found.contains("vault/n/.gitattributes: narrows attribute:vault/**"),
        "{found}"
    );

    // The envelope already there turned into plaintext under the nested
    // file: `unsealed` as well.
    env.git(&dir, &["add", "--renormalize", "vault/n/old.txt"]);
    env.git(
        &dir,
        &["commit", "-q", "--no-verify", "-m", "old in plaintext"],
    );
    assert_eq!(env.blob_at(&dir, "HEAD:vault/n/old.txt"), b"MARKER_OLD\n");
    let found = check_fails(&env, &dir);
    let head = env.rev(&dir, "HEAD");
    assert!(
        found.contains(&format!(
            "{head}: vault/n/old.txt: was sealed in the parent commit"
        )),
        "{found}"
    );
}

#[test]
fn an_override_committed_before_the_plaintext_file_is_weakened_where_it_came_in() {
    let env = Env::new();
    let (dir, _server) = env.served_repo("r");
    append_attributes(&dir, "vault/** filter=seal diff=seal merge=seal\n");
    write_file(&dir, "vault/v0.txt", b"MARKER_V0\n");
    env.git(&dir, &["add", "-A"]);
    env.git(&dir, &["commit", "-q", "-m", "vault"]);
    env.git(&dir, &["push", "-q", "origin", "main"]);

    // The override alone: no file it unseals exists yet.
    append_attributes(&dir, "vault/v1* -filter\n");
    env.git(&dir, &["add", "-A"]);
    let err = refused(&env, &dir);
    assert!(err.contains("narrows attribute:vault/**"), "{err}");
    env.git(&dir, &["commit", "-q", "--no-verify", "-m", "override"]);
    let override_commit = env.rev(&dir, "HEAD");
    // The next commit's rules are the weakened ones: they pass it.
    write_file(&dir, "vault/v1.txt", b"MARKER_V1\n");
    env.git(&dir, &["add", "-A"]);
    env.git(&dir, &["commit", "-q", "-m", "plaintext"]);
    assert_eq!(env.blob_at(&dir, "HEAD:vault/v1.txt"), b"MARKER_V1\n");
    let found = check_fails(&env, &dir);
    assert!(
        found.contains(&format!(
            "{override_commit}: .gitattributes: narrows attribute:vault/**"
        )),
        "{found}"
    );
    let out = env.run("git", &dir, &["push", "origin", "main"], None);
    assert!(!out.status.success(), "the server took it");

    // A trusted signer's approval is the explicit decision. The server
    // judges by its own rules too, which still seal the file: that takes
    // an approval of the path as well.
    env.seal(&dir, &["audit", "approve", "policy", "attribute:vault/**"]);
    env.ok("git-seal", &dir, &["check"]);
    env.seal(&dir, &["audit", "approve", "unseal-path", "vault/v1.txt"]);
    env.seal(&dir, &["audit", "sync", "origin"]);
    env.git(&dir, &["push", "-q", "origin", "main"]);
}

#[test]
fn a_merge_cannot_bring_in_an_override_of_a_sealed_pattern() {
    let env = Env::new();
    let dir = vault_repo(&env, "r");
    env.git(&dir, &["checkout", "-q", "-b", "side"]);
    append_attributes(&dir, "vault/v1* -filter\n");
    write_file(&dir, "vault/v1.txt", b"MARKER_V1\n");
    env.git(&dir, &["add", "-A"]);
    env.git(&dir, &["commit", "-q", "--no-verify", "-m", "override"]);
    env.git(&dir, &["checkout", "-q", "main"]);
    write_file(&dir, "README", b"diverged\n");
    env.git(&dir, &["commit", "-q", "-am", "diverge"]);

    let head = env.rev(&dir, "HEAD");
    let out = env.fails("git", &dir, &["merge", "-q", "--no-edit", "side"], 1);
    let err = crate::harness::stderr(&out);
    assert!(err.contains("narrows attribute:vault/**"), "{err}");
    assert_eq!(env.rev(&dir, "HEAD"), head, "the merge was committed");
    env.git(&dir, &["commit", "-q", "--no-verify", "--no-edit"]);
    let merge = env.rev(&dir, "HEAD");
    let found = check_fails(&env, &dir);
    assert!(
        found.contains(&format!(
            "{merge}: .gitattributes: narrows attribute:vault/**"
        )),
        "{found}"
    );
}
