//! Hooks: each bypass layer of SPEC §5 caught by the next one, hook
//! installation (chaining, core.hooksPath, uninstall) and the post-* hooks.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::harness::{is_envelope, set_policy, stderr, stdout, write_file, Env};

fn commit_fails(env: &Env, dir: &Path) -> String {
    let before = env.rev(dir, "HEAD");
    let out = env.fails("git", dir, &["commit", "-q", "-m", "should be refused"], 1);
    assert_eq!(env.rev(dir, "HEAD"), before, "the refused commit was made");
    stderr(&out)
}

#[test]
fn clone_with_hooks_but_no_filter_is_refused() {
    let env = Env::new();
    let origin = env.sealed_repo("origin");
    let clone = env.clone_repo(&origin, "clone");
    // Hooks, but no `git seal init`: Git has no filter and stores plaintext.
    env.seal(&clone, &["hooks", "install"]);
    assert!(
        env.run("git", &clone, &["config", "filter.seal.process"], None)
            .status
            .code()
            == Some(1)
    );
    write_file(&clone, "secrets/db.env", b"DB_PASSWORD=hunter2\n");
    env.git(&clone, &["add", "secrets/db.env"]);
    assert_eq!(
        env.git(&clone, &["cat-file", "-p", ":secrets/db.env"]),
        "DB_PASSWORD=hunter2\n",
        "without the filter the index holds plaintext (the bypass this test is about)"
    );
    let err = commit_fails(&env, &clone);
    assert!(
        err.contains("secrets/db.env: staged as plaintext but the policy requires it sealed; run `git seal init` to configure the filter, then `git add --renormalize secrets/db.env`"),
        "{err}"
    );
    assert_eq!(
        err.lines().filter(|l| l.contains("secrets/")).count(),
        1,
        "{err}"
    );

    // The fix the message names works.
    // `--renormalize`, because the file's stat data still matches the index
    // entry and a plain `git add` would skip it once the index is not racy.
    env.seal(&clone, &["init"]);
    env.git(&clone, &["add", "--renormalize", "secrets/db.env"]);
    env.git(&clone, &["commit", "-q", "-m", "sealed now"]);
    assert!(is_envelope(
        &env.ok("git", &clone, &["cat-file", "-p", "HEAD:secrets/db.env"])
            .stdout
    ));
}

#[test]
fn gitattributes_line_removed_is_refused() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    let attrs = std::fs::read_to_string(dir.join(".gitattributes")).unwrap();
    let edited: String = attrs
        .lines()
        .filter(|l| !l.starts_with("secrets/**"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(attrs, edited);
    std::fs::write(dir.join(".gitattributes"), edited).unwrap();
    write_file(&dir, "secrets/db.env", b"DB_PASSWORD=hunter2\n");
    env.git(&dir, &["add", "-A"]);
    assert_eq!(
        env.git(&dir, &["cat-file", "-p", ":secrets/db.env"]),
        "DB_PASSWORD=hunter2\n"
    );
    let err = commit_fails(&env, &dir);
    assert!(err.contains("secrets/db.env: staged as plaintext"), "{err}");
}

#[test]
fn unsealing_a_path_needs_a_trusted_signers_approval_not_just_a_policy_change() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    // Sealed by .gitattributes alone (not by the policy).
    let attrs = std::fs::read_to_string(dir.join(".gitattributes")).unwrap();
    std::fs::write(
        dir.join(".gitattributes"),
        format!("extra/** filter=seal diff=seal merge=seal\n{attrs}"),
    )
    .unwrap();
    write_file(&dir, "extra/x.txt", b"sealed by attributes\n");
    env.git(&dir, &["add", "-A"]);
    env.git(&dir, &["commit", "-q", "-m", "extra"]);
    assert!(is_envelope(
        &env.ok("git", &dir, &["cat-file", "-p", "HEAD:extra/x.txt"])
            .stdout
    ));

    std::fs::write(dir.join(".gitattributes"), &attrs).unwrap();
    write_file(&dir, "extra/x.txt", b"now public\n");
    env.git(&dir, &["add", "-A"]);
    let err = commit_fails(&env, &dir);
    assert!(
        err.contains("extra/x.txt: was sealed in the parent commit and is plaintext here"),
        "{err}"
    );
    assert!(err.contains("attribute:extra/**"), "{err}");

    // Changing the policy in the same commit is no longer enough: a commit
    // cannot weaken the rules that judge it.
    set_policy(&dir, "never_commit", serde_json::json!(["*.pem"]));
    env.git(&dir, &["add", "-A"]);
    commit_fails(&env, &dir);
    // A trusted signer's approval is the explicit decision.
    env.seal(&dir, &["audit", "approve", "unseal-path", "extra/x.txt"]);
    env.seal(&dir, &["audit", "approve", "policy", "attribute:extra/**"]);
    env.git(&dir, &["commit", "-q", "-m", "unseal extra/ on purpose"]);
    assert_eq!(
        env.git(&dir, &["cat-file", "-p", "HEAD:extra/x.txt"]),
        "now public\n"
    );
}

#[test]
fn key_material_and_never_commit_paths_are_refused_without_printing_the_key() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    let kid = env.kid();
    let hex = std::fs::read_to_string(env.key_dir.join(format!("{kid}.key"))).unwrap();
    let hex = hex.trim();
    write_file(
        &dir,
        "config/app.ini",
        format!("[kek]\nkey = {}\n", hex.to_uppercase()).as_bytes(),
    );
    env.git(&dir, &["add", "-A"]);
    let err = commit_fails(&env, &dir);
    assert!(
        err.contains(&format!(
            "config/app.ini: contains the private key of KEK {kid}"
        )),
        "{err}"
    );
    assert!(err.contains("`git rm --cached config/app.ini`"), "{err}");
    assert!(
        !err.to_lowercase().contains(&hex.to_lowercase()),
        "printed the key"
    );
    env.git(&dir, &["rm", "-q", "--cached", "config/app.ini"]);

    // The built-in glob catches a key file copied in, whatever its content.
    write_file(&dir, &format!("backup/{kid}.key"), b"not even a key\n");
    env.git(&dir, &["add", "-A"]);
    let err = commit_fails(&env, &dir);
    assert!(
        err.contains(&format!("backup/{kid}.key: matches never_commit glob")),
        "{err}"
    );
    env.git(
        &dir,
        &["rm", "-q", "--cached", &format!("backup/{kid}.key")],
    );

    // A never_commit glob from the policy, staged with it.
    set_policy(&dir, "never_commit", serde_json::json!(["*.pem"]));
    write_file(&dir, "certs/site.pem", b"-----BEGIN PRIVATE KEY-----\n");
    env.git(&dir, &["add", "-A"]);
    let err = commit_fails(&env, &dir);
    assert!(
        err.contains("certs/site.pem: matches never_commit glob \"*.pem\""),
        "{err}"
    );
}

#[test]
fn envelopes_for_unknown_or_removed_keks_are_refused() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    // An envelope made in another repository, for a KEK this one does not list.
    let other_env = Env::new();
    let other = other_env.sealed_repo("other");
    write_file(&other, "secrets/a.env", b"A=1\n");
    other_env.git(&other, &["add", "-A"]);
    other_env.git(&other, &["commit", "-q", "-m", "a"]);
    let foreign = other_env
        .ok("git", &other, &["cat-file", "-p", "HEAD:secrets/a.env"])
        .stdout;
    let foreign_kid = other_env.kid();
    env.stage_raw(&dir, "secrets/a.env", &foreign);
    let err = commit_fails(&env, &dir);
    assert!(
        err.contains(&format!(
            "secrets/a.env: envelope is wrapped to {foreign_kid}, which .seal/keys/ does not list"
        )),
        "{err}"
    );
    env.git(&dir, &["rm", "-q", "--cached", "secrets/a.env"]);
    std::fs::remove_file(dir.join("secrets/a.env")).unwrap();

    // A removed KEK: mark this repository's own KEK removed.
    write_file(&dir, "secrets/b.env", b"B=2\n");
    env.git(&dir, &["add", "-A"]);
    let kid = env.kid();
    let record_path = dir.join(format!(".seal/keys/{kid}.json"));
    let mut record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record_path).unwrap()).unwrap();
    record["status"] = "removed".into();
    let text = serde_json::to_string_pretty(&record).unwrap();
    // Staged only (the work tree keeps the active record, so the filter
    // can still seal).
    let id = stdout(&env.run(
        "git",
        &dir,
        &["hash-object", "-w", "--stdin"],
        Some(text.as_bytes()),
    ));
    let info = format!("100644,{},.seal/keys/{kid}.json", id.trim());
    env.git(&dir, &["update-index", "--cacheinfo", &info]);
    let err = commit_fails(&env, &dir);
    assert!(
        err.contains(&format!(
            "secrets/b.env: envelope is wrapped to {kid}, which .seal/keys/ lists as removed"
        )),
        "{err}"
    );
}

#[test]
fn no_verify_is_caught_by_check_naming_commit_and_path() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    write_file(&dir, "secrets/ok.env", b"OK=1\n");
    env.git(&dir, &["add", "-A"]);
    env.git(&dir, &["commit", "-q", "-m", "sealed"]);
    env.seal(&dir, &["check"]);
    // A client that runs no filter, committing with --no-verify.
    env.stage_raw(&dir, "secrets/leak.env", b"LEAK=1\n");
    env.git(&dir, &["commit", "-q", "--no-verify", "-m", "leak"]);
    let leak = env.rev(&dir, "HEAD");
    // Later commits that do not touch it pass the hook; check still fails.
    env.git(&dir, &["commit", "-q", "--allow-empty", "-m", "after"]);
    let out = env.fails("git-seal", &dir, &["check"], 1);
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.starts_with(&format!("{leak}: secrets/leak.env: stored as plaintext")),
        "{text}"
    );
    // A range that excludes the leak passes; one that includes it fails.
    env.seal(&dir, &["check", "HEAD~3..HEAD~2"]);
    env.fails("git-seal", &dir, &["check", "HEAD~2..HEAD"], 1);
}

#[test]
fn push_into_bare_repository_with_pre_receive_is_refused() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    let server = env.bare("server.git");
    let out = env.seal(&server, &["hooks", "install"]);
    assert!(out.contains("pre-receive"), "{out}");
    assert!(server.join("hooks/pre-receive").exists());
    assert!(!server.join("hooks/pre-commit").exists());
    let url = server.to_str().unwrap();
    env.git(&dir, &["remote", "add", "origin", url]);
    write_file(&dir, "secrets/ok.env", b"OK=1\n");
    env.git(&dir, &["add", "-A"]);
    env.git(&dir, &["commit", "-q", "-m", "sealed"]);
    env.git(&dir, &["push", "-q", "origin", "main"]);
    let good = env.rev(&server, "refs/heads/main");
    assert_eq!(good, env.rev(&dir, "HEAD"));

    env.stage_raw(&dir, "secrets/leak.env", b"LEAK=1\n");
    env.git(&dir, &["commit", "-q", "--no-verify", "-m", "leak"]);
    let leak = env.rev(&dir, "HEAD");
    let out = env.fails("git", &dir, &["push", "origin", "main"], 1);
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{leak}: secrets/leak.env: stored as plaintext")),
        "{err}"
    );
    assert!(err.contains("push refused"), "{err}");
    assert_eq!(
        env.rev(&server, "refs/heads/main"),
        good,
        "the server's ref moved"
    );
    // Nor under another branch name.
    env.fails("git", &dir, &["push", "origin", "main:other"], 1);
    assert!(
        env.run(
            "git",
            &server,
            &["rev-parse", "--verify", "-q", "refs/heads/other"],
            None
        )
        .status
        .code()
            == Some(1)
    );
}

#[test]
fn an_existing_hook_still_runs_first_and_its_failure_fails_the_commit() {
    let env = Env::new();
    let dir = env.repo("r");
    let hooks = dir.join(".git/hooks");
    std::fs::create_dir_all(&hooks).unwrap();
    let mine =
        "#!/bin/sh\necho ran >> \"$(git rev-parse --git-dir)/mine.log\"\n[ ! -e fail-please ]\n";
    std::fs::write(hooks.join("pre-commit"), mine).unwrap();
    std::fs::set_permissions(
        hooks.join("pre-commit"),
        std::fs::Permissions::from_mode(0o750),
    )
    .unwrap();
    env.seal(&dir, &["init", "secrets/**"]);
    env.git(&dir, &["add", "-A"]);
    env.git(&dir, &["commit", "-q", "-m", "set up"]);
    assert_eq!(
        std::fs::read_to_string(dir.join(".git/mine.log")).unwrap(),
        "ran\n"
    );

    // Its failure fails the commit, even with nothing for git-seal to refuse.
    write_file(&dir, "fail-please", b"x\n");
    env.git(&dir, &["add", "-A"]);
    commit_fails(&env, &dir);
    assert_eq!(
        std::fs::read_to_string(dir.join(".git/mine.log")).unwrap(),
        "ran\nran\n"
    );
    // And git-seal's own check still runs after it succeeds.
    env.git(&dir, &["rm", "-q", "--cached", "fail-please"]);
    std::fs::remove_file(dir.join("fail-please")).unwrap();
    env.stage_raw(&dir, "secrets/leak.env", b"LEAK=1\n");
    let err = commit_fails(&env, &dir);
    assert!(
        err.contains("secrets/leak.env: staged as plaintext"),
        "{err}"
    );

    // Uninstall restores the hook exactly (content and mode); install is idempotent.
    let installed = std::fs::read(hooks.join("pre-commit")).unwrap();
    let out = env.seal(&dir, &["hooks", "install"]);
    assert!(out.contains("already installed"), "{out}");
    assert_eq!(std::fs::read(hooks.join("pre-commit")).unwrap(), installed);
    assert!(!hooks.join("pre-commit.pre-seal.pre-seal").exists());
    env.seal(&dir, &["hooks", "uninstall"]);
    assert_eq!(
        std::fs::read_to_string(hooks.join("pre-commit")).unwrap(),
        mine
    );
    assert_eq!(
        std::fs::metadata(hooks.join("pre-commit"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o750
    );
    assert!(!hooks.join("pre-commit.pre-seal").exists());
    assert!(!hooks.join("post-commit").exists());
    // Uninstalled: the plaintext commit goes through (what CI's check is for).
    env.git(&dir, &["commit", "-q", "-m", "no hook now"]);
}

#[test]
fn hooks_go_where_core_hooks_path_points() {
    let env = Env::new();
    let dir = env.repo("r");
    env.git(&dir, &["config", "core.hooksPath", ".githooks"]);
    env.seal(&dir, &["init", "secrets/**"]);
    assert!(dir.join(".githooks/pre-commit").exists());
    assert!(!dir.join(".git/hooks/pre-commit").exists());
    env.git(&dir, &["add", ".gitattributes", ".seal"]);
    env.git(&dir, &["commit", "-q", "-m", "set up"]);
    // From a subdirectory, the relative hooksPath still means the top.
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    env.seal(&dir.join("sub"), &["hooks", "install"]);
    assert!(!dir.join("sub/.githooks").exists());
    env.stage_raw(&dir, "secrets/leak.env", b"LEAK=1\n");
    let err = commit_fails(&env, &dir);
    assert!(
        err.contains("secrets/leak.env: staged as plaintext"),
        "{err}"
    );
    let status = stdout(&env.ok("git-seal", &dir, &["status", "--json"]));
    assert!(status.contains("\"pre-commit\""), "{status}");
}

#[test]
fn post_checkout_unlocks_files_once_the_key_is_back_and_post_commit_audits() {
    let env = Env::new();
    let origin = env.sealed_repo("origin");
    write_file(&origin, "secrets/db.env", b"DB=1\n");
    env.git(&origin, &["add", "-A"]);
    env.git(&origin, &["commit", "-q", "-m", "secret"]);
    assert!(
        env.git(&origin, &["log", "--format=%s", "refs/seal/audit"])
            .contains("seal"),
        "post-commit wrote no audit entry"
    );

    let clone = env.clone_repo(&origin, "clone");
    let hidden = env.hide_keys();
    env.seal(&clone, &["init"]);
    assert!(is_envelope(
        &std::fs::read(clone.join("secrets/db.env")).unwrap()
    ));
    env.restore_keys(&hidden);
    let out = env.ok("git", &clone, &["checkout", "-q", "-b", "topic"]);
    assert!(
        stderr(&out).contains("unlocked 1 file(s)"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read(clone.join("secrets/db.env")).unwrap(),
        b"DB=1\n"
    );

    // post-merge: what arrives is checked and summarised.
    write_file(&origin, "secrets/db.env", b"DB=2\n");
    env.git(&origin, &["commit", "-q", "-am", "rotate db"]);
    env.git(&clone, &["checkout", "-q", "main"]);
    let out = env.ok("git", &clone, &["pull", "-q", "--ff-only"]);
    assert!(
        stderr(&out).contains("post-merge: 1 sealed file(s) arrived, all envelopes valid"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read(clone.join("secrets/db.env")).unwrap(),
        b"DB=2\n"
    );
}

/// A checkout that opens every file leaves no mark, so the next
/// post-checkout reads no sealed file; one that leaves a file sealed for
/// want of a key marks the work tree, and the checkout after the key is
/// back opens it.
#[test]
fn post_checkout_unlocks_what_smudge_left_sealed_and_only_then_looks() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    write_file(&dir, "secrets/db.env", b"DB=1\n");
    env.git(&dir, &["add", "-A"]);
    env.git(&dir, &["commit", "-q", "-m", "one"]);
    env.git(&dir, &["checkout", "-q", "-b", "two"]);
    write_file(&dir, "secrets/db.env", b"DB=2\n");
    env.git(&dir, &["commit", "-q", "-am", "two"]);
    let marker = dir.join(".git/seal-left-sealed");

    env.git(&dir, &["checkout", "-q", "main"]);
    assert_eq!(
        std::fs::read(dir.join("secrets/db.env")).unwrap(),
        b"DB=1\n"
    );
    assert!(
        !marker.exists(),
        "a checkout that opened every file marked the work tree"
    );

    // Not racily clean, so that Git need not clean it (which takes the key)
    // to know it unchanged.
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
    std::fs::File::options()
        .write(true)
        .open(dir.join("secrets/db.env"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    env.git(&dir, &["update-index", "-q", "--refresh"]);
    let hidden = env.hide_keys();
    env.git(&dir, &["checkout", "-q", "two"]);
    assert!(is_envelope(
        &std::fs::read(dir.join("secrets/db.env")).unwrap()
    ));
    assert!(
        marker.exists(),
        "smudge left a file sealed and did not say so"
    );

    env.restore_keys(&hidden);
    let out = env.ok("git", &dir, &["checkout", "-q", "-b", "three"]);
    assert!(
        stderr(&out).contains("unlocked 1 file(s)"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read(dir.join("secrets/db.env")).unwrap(),
        b"DB=2\n"
    );
    assert!(!marker.exists(), "the mark outlived the files it was for");
}

/// The pre-commit framework (from PyPI) installed before and after git-seal:
/// `doctor` and `hooks install` agree, commits go through, and git-seal's
/// check still refuses what it must, run by the framework as its legacy hook.
#[test]
fn the_pre_commit_framework_and_git_seals_hooks_coexist() {
    let env = Env::new();
    let dir = env.repo("r");
    if !have_pre_commit(&env, &dir) {
        return;
    }
    std::fs::write(dir.join(".pre-commit-config.yaml"), "repos: []\n").unwrap();
    env.ok("pre-commit", &dir, &["install"]);
    env.seal(&dir, &["init", "secrets/**"]);
    let out = env.ok("pre-commit", &dir, &["install"]);
    assert!(stdout(&out).contains("migration mode"), "{}", stdout(&out));

    let doctor = env.run("git-seal", &dir, &["doctor"], None);
    let said = stdout(&doctor);
    assert!(
        !said.contains("not chained"),
        "doctor calls the chained hook foreign: {said}"
    );
    if !doctor.status.success() {
        // What doctor names fixes it, verbatim.
        assert!(said.contains("fix: `git seal hooks install`"), "{said}");
        env.seal(&dir, &["hooks", "install"]);
    }
    env.seal(&dir, &["doctor"]);
    env.seal(&dir, &["hooks", "install"]);
    env.git(
        &dir,
        &["add", ".pre-commit-config.yaml", ".seal", ".gitattributes"],
    );
    env.git(&dir, &["commit", "-q", "-m", "set up both"]);

    // git-seal's check runs inside the framework's hook.
    let kid = env.kid();
    let key = std::fs::read_to_string(env.key_dir.join(format!("{kid}.key"))).unwrap();
    std::fs::write(dir.join("notes.txt"), key).unwrap();
    env.git(&dir, &["add", "notes.txt"]);
    let out = env.run("git", &dir, &["commit", "-q", "-m", "leak"], None);
    assert!(!out.status.success(), "the commit with a KEK went through");
    assert!(
        stderr(&out).contains("contains the private key of KEK"),
        "{}",
        stderr(&out)
    );
}

/// Is the pre-commit framework here? (Skips with a message when not;
/// fails under CI=true.)
fn have_pre_commit(env: &Env, dir: &Path) -> bool {
    let probe = env.run("pre-commit", dir, &["--version"], None);
    if !probe.status.success() {
        assert!(
            !crate::harness::in_ci(),
            "the pre-commit framework is missing under CI=true (pip install pre-commit, see .ci/run)"
        );
        eprintln!("skipping: the pre-commit framework is not installed (pip install pre-commit)");
        return false;
    }
    true
}

/// The hook this project publishes for the pre-commit framework
/// (`.pre-commit-hooks.yaml`, tried from this source tree) judges the files
/// the framework names: `pre-commit run --all-files` fails on a plaintext
/// secret already in HEAD (committed with the hooks bypassed), and passes
/// once it is sealed.
#[test]
fn the_pre_commit_framework_hook_finds_a_secret_already_in_head() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    if !have_pre_commit(&env, &dir) {
        return;
    }
    env.stage_raw(&dir, "secrets/db.env", b"PASSWORD=hunter2\n");
    env.git(&dir, &["commit", "-q", "--no-verify", "-m", "leak"]);
    let project = env!("CARGO_MANIFEST_DIR");
    let run = || {
        env.run(
            "pre-commit",
            &dir,
            &["try-repo", project, "git-seal", "--all-files"],
            None,
        )
    };
    let out = run();
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!out.status.success(), "--all-files passed: {said}");
    assert!(said.contains("secrets/db.env"), "{said}");

    // Sealed again through the filter: --all-files passes, and so does
    // the framework's everyday run (staged files only).
    env.git(&dir, &["rm", "-q", "--cached", "secrets/db.env"]);
    env.git(&dir, &["add", "secrets/db.env"]);
    env.git(&dir, &["commit", "-q", "-m", "sealed"]);
    let out = run();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let out = env.run("pre-commit", &dir, &["try-repo", project, "git-seal"], None);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
}

/// Without git-seal on PATH, Git cannot run it: the hooks say so (not a
/// bare "not found"), and `doctor`, run by its full path, names the PATH
/// that fixes it, which works when followed verbatim.
#[test]
fn without_git_seal_on_path_hooks_and_doctor_say_why() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    let binary = std::path::PathBuf::from(env!("CARGO_BIN_EXE_git-seal"));
    let bare_path = "/usr/local/bin:/usr/bin:/bin";
    let run = |program: &Path, args: &[&str], path: &str| {
        env.command(program, &dir)
            .args(args)
            .env("PATH", path)
            .output()
            .unwrap()
    };
    std::fs::write(dir.join("notes.txt"), "plain\n").unwrap();
    env.git(&dir, &["add", "notes.txt"]);
    let out = run(Path::new("git"), &["commit", "-q", "-m", "x"], bare_path);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("the pre-commit hook needs the git-seal program, which is not on PATH"),
        "{err}"
    );

    let out = run(&binary, &["doctor"], bare_path);
    assert_eq!(out.status.code(), Some(1));
    let said = stdout(&out);
    assert!(said.contains("git-seal is not on PATH"), "{said}");
    let fix = said
        .split("fix: `export PATH=\"")
        .nth(1)
        .and_then(|rest| rest.split(":$PATH\"`").next())
        .unwrap_or_else(|| panic!("no PATH fix in: {said}"));
    let fixed = format!("{fix}:{bare_path}");
    let out = run(&binary, &["doctor"], &fixed);
    assert!(!stdout(&out).contains("not on PATH"), "{}", stdout(&out));
    let out = run(Path::new("git"), &["commit", "-q", "-m", "x"], &fixed);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// `git commit PATH` and `git commit -a` build the commit in a temporary
/// index (GIT_INDEX_FILE): pre-commit judges that index, not `.git/index`.
/// With the filter switched off for the command, plaintext reaches it.
#[test]
fn commit_of_paths_or_all_is_judged_on_the_index_git_commits() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    write_file(&dir, "secrets/db.env", b"DB_PASSWORD=sealed\n");
    env.git(&dir, &["add", "secrets/db.env"]);
    env.git(&dir, &["commit", "-q", "-m", "sealed"]);
    write_file(&dir, "secrets/db.env", b"DB_PASSWORD=hunter2\n");
    let no_filter = [
        "-c",
        "filter.seal.process=",
        "-c",
        "filter.seal.clean=cat",
        "-c",
        "filter.seal.required=false",
    ];
    for how in [&["secrets/db.env"][..], &["-a"][..]] {
        let mut args = no_filter.to_vec();
        args.extend(["commit", "-q", "-m", "leak"]);
        args.extend(how);
        let before = env.rev(&dir, "HEAD");
        let out = env.fails("git", &dir, &args, 1);
        let err = stderr(&out);
        assert!(
            err.contains("secrets/db.env") && err.contains("plaintext"),
            "{how:?}: {err}"
        );
        assert_eq!(env.rev(&dir, "HEAD"), before, "{how:?}: committed");
    }
}
