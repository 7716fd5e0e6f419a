//! Transparent sealing through Git: the filter, diff and merge drivers, and
//! lock/unlock. Each test checks what is stored (`git cat-file`) as well as
//! what is in the work tree.

use std::path::Path;

use crate::harness::{assert_sealed, is_envelope, stderr, stdout, Env};

fn write(dir: &Path, path: &str, content: &str) {
    let file = dir.join(path);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(file, content).unwrap();
}

fn read(dir: &Path, path: &str) -> String {
    std::fs::read_to_string(dir.join(path)).unwrap()
}

fn commit_all(env: &Env, dir: &Path, message: &str) {
    env.git(dir, &["add", "-A"]);
    env.git(dir, &["commit", "-q", "-m", message]);
}

/// A sealed repository with two secrets and one public file committed.
fn repo_with_secrets(env: &Env) -> std::path::PathBuf {
    let dir = env.sealed_repo("work");
    write(&dir, "secrets/db.env", "DB_PASSWORD=hunter2\n");
    write(&dir, "secrets/api/token.txt", "tok-123\n");
    write(&dir, "public.txt", "nothing to hide\n");
    commit_all(env, &dir, "add secrets");
    dir
}

fn clone(env: &Env, from: &Path, name: &str) -> std::path::PathBuf {
    let to = env.path(name);
    env.git(
        env.tmp.path(),
        &["clone", "-q", from.to_str().unwrap(), to.to_str().unwrap()],
    );
    to
}

#[test]
fn add_commit_stores_envelopes_and_a_second_clone_agrees() {
    let env = Env::new();
    let dir = repo_with_secrets(&env);
    assert_sealed(&env, &dir, "secrets/db.env", b"DB_PASSWORD=hunter2\n");
    assert_sealed(&env, &dir, "secrets/api/token.txt", b"tok-123\n");
    assert_eq!(
        env.git(&dir, &["cat-file", "-p", "HEAD:public.txt"]),
        "nothing to hide\n"
    );
    assert!(env.git(&dir, &["status", "--porcelain"]).is_empty());

    // A clone without the filter sees envelopes; `git seal init` opens them.
    let other = clone(&env, &dir, "other");
    assert!(is_envelope(
        &std::fs::read(other.join("secrets/db.env")).unwrap()
    ));
    env.seal(&other, &["init"]);
    assert_eq!(read(&other, "secrets/db.env"), "DB_PASSWORD=hunter2\n");
    assert!(
        env.git(&other, &["status", "--porcelain"]).is_empty(),
        "{}",
        env.git(&other, &["status"])
    );
    assert_eq!(
        env.git(&other, &["rev-parse", "HEAD:secrets/db.env"]),
        env.git(&dir, &["rev-parse", "HEAD:secrets/db.env"])
    );

    // An edit in the clone travels back as an envelope and opens here.
    write(&other, "secrets/db.env", "DB_PASSWORD=correct-horse\n");
    commit_all(&env, &other, "rotate password");
    env.git(&dir, &["pull", "-q", other.to_str().unwrap(), "main"]);
    assert_sealed(&env, &dir, "secrets/db.env", b"DB_PASSWORD=correct-horse\n");
}

#[test]
fn status_stays_clean_after_touching_every_sealed_file() {
    let env = Env::new();
    let dir = repo_with_secrets(&env);
    let blob = env.git(&dir, &["rev-parse", "HEAD:secrets/db.env"]);
    for path in ["secrets/db.env", "secrets/api/token.txt"] {
        let file = dir.join(path);
        let content = std::fs::read(&file).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&file, content).unwrap();
    }
    assert!(env.git(&dir, &["status", "--porcelain"]).is_empty());
    // Re-adding unchanged plaintext keeps the very same envelope.
    env.git(&dir, &["add", "--renormalize", "."]);
    assert!(env.git(&dir, &["status", "--porcelain"]).is_empty());
    assert_eq!(env.git(&dir, &["rev-parse", ":secrets/db.env"]), blob);
    // Without the cache (removed) the envelope is still reused.
    let cache_dir = dir.join(".git/seal");
    assert!(cache_dir.is_dir(), "clean cache missing");
    std::fs::remove_dir_all(&cache_dir).unwrap();
    env.git(&dir, &["add", "--renormalize", "."]);
    assert_eq!(env.git(&dir, &["rev-parse", ":secrets/db.env"]), blob);
    // A real change makes a new envelope with a fresh nonce.
    write(&dir, "secrets/db.env", "DB_PASSWORD=changed\n");
    assert_eq!(
        env.git(&dir, &["status", "--porcelain"]),
        " M secrets/db.env\n"
    );
}

#[test]
fn same_plaintext_in_two_files_gives_different_envelopes() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    write(&dir, "secrets/a", "same\n");
    write(&dir, "secrets/b", "same\n");
    commit_all(&env, &dir, "two");
    assert_ne!(
        env.git(&dir, &["rev-parse", "HEAD:secrets/a"]),
        env.git(&dir, &["rev-parse", "HEAD:secrets/b"])
    );
}

#[test]
fn branches_checkout_reset_stash_rebase_and_cherry_pick() {
    let env = Env::new();
    let dir = repo_with_secrets(&env);
    env.git(&dir, &["checkout", "-q", "-b", "feature"]);
    write(&dir, "secrets/db.env", "DB_PASSWORD=feature\n");
    write(&dir, "secrets/new.key", "feature-only\n");
    commit_all(&env, &dir, "feature change");
    env.git(&dir, &["checkout", "-q", "main"]);
    assert_eq!(read(&dir, "secrets/db.env"), "DB_PASSWORD=hunter2\n");
    assert!(!dir.join("secrets/new.key").exists());
    env.git(&dir, &["checkout", "-q", "feature"]);
    assert_sealed(&env, &dir, "secrets/new.key", b"feature-only\n");
    assert_eq!(read(&dir, "secrets/db.env"), "DB_PASSWORD=feature\n");

    // stash and stash pop
    write(&dir, "secrets/db.env", "DB_PASSWORD=wip\n");
    env.git(&dir, &["stash", "-q"]);
    assert_eq!(read(&dir, "secrets/db.env"), "DB_PASSWORD=feature\n");
    let stashed = env.blob_at(&dir, "stash@{0}:secrets/db.env");
    assert!(is_envelope(&stashed), "the stash stored plaintext");
    env.git(&dir, &["stash", "pop", "-q"]);
    assert_eq!(read(&dir, "secrets/db.env"), "DB_PASSWORD=wip\n");

    // reset --hard
    env.git(&dir, &["reset", "-q", "--hard", "HEAD"]);
    assert_eq!(read(&dir, "secrets/db.env"), "DB_PASSWORD=feature\n");
    assert!(env.git(&dir, &["status", "--porcelain"]).is_empty());

    // rebase feature onto a main that changed another sealed file
    env.git(&dir, &["checkout", "-q", "main"]);
    write(&dir, "secrets/api/token.txt", "tok-456\n");
    commit_all(&env, &dir, "main token change");
    env.git(&dir, &["checkout", "-q", "feature"]);
    env.git(&dir, &["rebase", "-q", "main"]);
    assert_sealed(&env, &dir, "secrets/api/token.txt", b"tok-456\n");
    assert_sealed(&env, &dir, "secrets/db.env", b"DB_PASSWORD=feature\n");

    // cherry-pick a sealed change onto another branch
    env.git(&dir, &["checkout", "-q", "-b", "pick", "main"]);
    env.git(&dir, &["cherry-pick", "feature"]);
    assert_sealed(&env, &dir, "secrets/new.key", b"feature-only\n");
    assert!(env.git(&dir, &["status", "--porcelain"]).is_empty());
}

#[test]
fn merge_without_conflict_merges_plaintext_and_reseals() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    write(&dir, "secrets/config.ini", "a=1\nb=2\nc=3\nd=4\ne=5\nf=6\n");
    commit_all(&env, &dir, "base");
    env.git(&dir, &["checkout", "-q", "-b", "other"]);
    write(
        &dir,
        "secrets/config.ini",
        "a=1\nb=2\nc=3\nd=4\ne=5\nf=60\n",
    );
    commit_all(&env, &dir, "other edits the end");
    env.git(&dir, &["checkout", "-q", "main"]);
    write(
        &dir,
        "secrets/config.ini",
        "a=10\nb=2\nc=3\nd=4\ne=5\nf=6\n",
    );
    commit_all(&env, &dir, "main edits the start");
    env.git(&dir, &["merge", "-q", "--no-edit", "other"]);
    assert_sealed(
        &env,
        &dir,
        "secrets/config.ini",
        b"a=10\nb=2\nc=3\nd=4\ne=5\nf=60\n",
    );
    assert!(env.git(&dir, &["status", "--porcelain"]).is_empty());
}

#[test]
fn merge_conflict_leaves_markers_in_plaintext_and_git_reports_it() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    write(&dir, "secrets/config.ini", "key=base\n");
    commit_all(&env, &dir, "base");
    env.git(&dir, &["checkout", "-q", "-b", "other"]);
    write(&dir, "secrets/config.ini", "key=theirs\n");
    commit_all(&env, &dir, "theirs");
    env.git(&dir, &["checkout", "-q", "main"]);
    write(&dir, "secrets/config.ini", "key=ours\n");
    commit_all(&env, &dir, "ours");
    let out = env.fails("git", &dir, &["merge", "other"], 1);
    assert!(stdout(&out).contains("CONFLICT"), "{}", stdout(&out));
    let text = read(&dir, "secrets/config.ini");
    assert!(
        text.contains("<<<<<<<")
            && text.contains("key=ours")
            && text.contains("key=theirs")
            && text.contains(">>>>>>>"),
        "{text}"
    );
    // The markers name the sides as Git does, not ours/theirs.
    assert!(
        text.contains("<<<<<<< HEAD") && text.contains(">>>>>>> other"),
        "{text}"
    );
    assert!(env
        .git(&dir, &["status", "--porcelain"])
        .starts_with("UU secrets/config.ini"));
    // Resolving and committing stores an envelope again.
    write(&dir, "secrets/config.ini", "key=resolved\n");
    commit_all(&env, &dir, "resolved");
    assert_sealed(&env, &dir, "secrets/config.ini", b"key=resolved\n");
}

#[test]
fn diff_shows_plaintext_with_key_and_json_without() {
    let env = Env::new();
    let dir = repo_with_secrets(&env);
    write(&dir, "secrets/db.env", "DB_PASSWORD=new-value\n");
    let diff = env.git(&dir, &["diff"]);
    assert!(
        diff.contains("-DB_PASSWORD=hunter2") && diff.contains("+DB_PASSWORD=new-value"),
        "{diff}"
    );
    commit_all(&env, &dir, "change");
    let log = env.git(&dir, &["log", "-p", "-1"]);
    assert!(log.contains("+DB_PASSWORD=new-value"), "{log}");
    let show = env.git(&dir, &["show", "HEAD"]);
    assert!(show.contains("-DB_PASSWORD=hunter2"), "{show}");

    let hidden = env.hide_keys();
    let show = env.git(&dir, &["show", "HEAD"]);
    assert!(
        show.contains("\"ciphertext\"") && !show.contains("new-value"),
        "{show}"
    );
    env.restore_keys(&hidden);
}

#[test]
fn clone_without_key_checks_out_sealed_and_unlocks_when_the_key_appears() {
    let env = Env::new();
    let dir = repo_with_secrets(&env);
    let hidden = env.hide_keys();
    // Filter configured globally, as on a developer machine without the key.
    let global = env.home.join("gitconfig-global");
    std::fs::write(
        &global,
        "[filter \"seal\"]\n\tprocess = git-seal filter-process\n\trequired = true\n[diff \"seal\"]\n\ttextconv = git-seal textconv\n",
    )
    .unwrap();
    let target = env.path("nokey");
    let out = env.ok(
        "git",
        env.tmp.path(),
        &["clone", dir.to_str().unwrap(), target.to_str().unwrap()],
    );
    let err = stderr(&out);
    assert_eq!(
        err.matches("left locked").count(),
        1,
        "want one summary line:\n{err}"
    );
    assert!(err.contains("2 sealed files left locked"), "{err}");
    assert!(is_envelope(
        &std::fs::read(target.join("secrets/db.env")).unwrap()
    ));
    assert_eq!(read(&target, "public.txt"), "nothing to hide\n");
    env.seal(&target, &["init"]);
    assert!(env.git(&target, &["status", "--porcelain"]).is_empty());
    let status = env.seal(&target, &["status"]);
    assert!(
        status.contains("locked (2 of 2") && status.contains("usable here: no"),
        "{status}"
    );
    let out = env.fails("git-seal", &target, &["unlock"], 1);
    assert!(
        stderr(&out).contains("no usable key") && stderr(&out).contains("k_"),
        "{}",
        stderr(&out)
    );
    // Each cause is said once.
    assert_eq!(
        stderr(&out).matches("no usable key").count(),
        1,
        "{}",
        stderr(&out)
    );

    env.restore_keys(&hidden);
    env.seal(&target, &["unlock"]);
    assert_eq!(read(&target, "secrets/db.env"), "DB_PASSWORD=hunter2\n");
    assert!(env.git(&target, &["status", "--porcelain"]).is_empty());
    assert!(env
        .seal(&target, &["status"])
        .contains("work tree: unlocked"));
}

#[test]
fn tampered_blob_is_checked_out_sealed_with_an_error_naming_the_path() {
    let env = Env::new();
    let dir = repo_with_secrets(&env);
    let stored = env.git(&dir, &["cat-file", "-p", "HEAD:secrets/db.env"]);
    let mut json: serde_json::Value = serde_json::from_str(&stored).unwrap();
    let ct = json["ciphertext"].as_str().unwrap().to_owned();
    json["ciphertext"] = crate::harness::flip_first(&ct).into();
    let tampered = format!("{}\n", serde_json::to_string_pretty(&json).unwrap());
    let tampered_file = env.path("tampered");
    std::fs::write(&tampered_file, &tampered).unwrap();
    let blob = env.git(
        &dir,
        &[
            "hash-object",
            "-w",
            "--no-filters",
            tampered_file.to_str().unwrap(),
        ],
    );
    env.git(
        &dir,
        &[
            "update-index",
            "--cacheinfo",
            &format!("100644,{},secrets/db.env", blob.trim()),
        ],
    );
    env.git(&dir, &["commit", "-q", "-m", "tampered", "--no-verify"]);
    std::fs::remove_file(dir.join("secrets/db.env")).unwrap();
    let out = env.ok("git", &dir, &["checkout", "--", "secrets/db.env"]);
    let err = stderr(&out);
    assert!(
        err.contains("secrets/db.env") && err.contains("authentication failed"),
        "{err}"
    );
    assert_eq!(
        read(&dir, "secrets/db.env"),
        tampered,
        "the envelope must stay, unchanged"
    );
}

#[test]
fn clean_without_a_kek_fails_and_stages_nothing() {
    let env = Env::new();
    // The filter is configured (globally) and .gitattributes seals secrets/,
    // but this repository has no KEK: nothing can seal.
    std::fs::write(
        env.home.join("gitconfig-global"),
        "[filter \"seal\"]\n\tprocess = git-seal filter-process\n\trequired = true\n",
    )
    .unwrap();
    let dir = env.repo("nokek");
    write(&dir, ".gitattributes", "secrets/** filter=seal\n");
    env.git(&dir, &["add", ".gitattributes"]);
    let index_before = env.git(&dir, &["ls-files", "-s"]);
    write(&dir, "secrets/fresh.txt", "brand new secret leak-me\n");
    let out = env.run("git", &dir, &["add", "secrets"], None);
    assert!(!out.status.success(), "git add succeeded without a KEK");
    let err = stderr(&out);
    assert!(
        err.contains("secrets/fresh.txt")
            && err.contains("refusing to store plaintext")
            && err.contains("git seal init"),
        "{err}"
    );
    assert_eq!(
        env.git(&dir, &["ls-files", "-s"]),
        index_before,
        "the index changed"
    );
    let objects = env.ok("git", &dir, &["count-objects", "-v"]);
    let _ = objects;
    let loose = std::process::Command::new("grep")
        .args(["-rl", "leak-me", dir.join(".git/objects").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        loose.stdout.is_empty(),
        "plaintext reached the object store"
    );
    // Blob contents are compressed; check every object explicitly too.
    let all = env
        .ok("git", &dir, &["cat-file", "--batch-all-objects", "--batch"])
        .stdout;
    assert!(
        !String::from_utf8_lossy(&all).contains("leak-me"),
        "plaintext reached the object store"
    );
}

#[test]
fn lock_and_unlock_refuse_to_discard_changes_and_survive_checkout() {
    let env = Env::new();
    let dir = repo_with_secrets(&env);
    write(&dir, "secrets/db.env", "DB_PASSWORD=unsaved\n");
    let out = env.fails("git-seal", &dir, &["lock"], 1);
    assert!(
        stderr(&out).contains("secrets/db.env") && stderr(&out).contains("--force"),
        "{}",
        stderr(&out)
    );
    assert_eq!(read(&dir, "secrets/db.env"), "DB_PASSWORD=unsaved\n");
    env.git(&dir, &["checkout", "--", "secrets/db.env"]);

    env.seal(&dir, &["lock"]);
    assert!(is_envelope(
        &std::fs::read(dir.join("secrets/db.env")).unwrap()
    ));
    assert!(is_envelope(
        &std::fs::read(dir.join("secrets/api/token.txt")).unwrap()
    ));
    assert!(env.git(&dir, &["status", "--porcelain"]).is_empty());
    // Checkouts keep a locked work tree locked.
    env.git(&dir, &["checkout", "-q", "-b", "side"]);
    env.git(&dir, &["checkout", "-q", "main"]);
    assert!(is_envelope(
        &std::fs::read(dir.join("secrets/db.env")).unwrap()
    ));
    assert!(env.seal(&dir, &["status"]).contains("locked (2 of 2"));

    env.seal(&dir, &["unlock"]);
    assert_eq!(read(&dir, "secrets/db.env"), "DB_PASSWORD=hunter2\n");
    assert!(env.git(&dir, &["status", "--porcelain"]).is_empty());

    // --force discards.
    write(&dir, "secrets/db.env", "DB_PASSWORD=discard-me\n");
    env.seal(&dir, &["lock", "--force"]);
    env.seal(&dir, &["unlock"]);
    assert_eq!(read(&dir, "secrets/db.env"), "DB_PASSWORD=hunter2\n");
}

#[test]
fn linked_worktree_and_sparse_checkout() {
    let env = Env::new();
    let dir = repo_with_secrets(&env);
    let wt = env.path("wt");
    env.git(
        &dir,
        &[
            "worktree",
            "add",
            "-q",
            wt.to_str().unwrap(),
            "-b",
            "wt-branch",
        ],
    );
    assert_eq!(read(&wt, "secrets/db.env"), "DB_PASSWORD=hunter2\n");
    write(&wt, "secrets/db.env", "DB_PASSWORD=from-worktree\n");
    commit_all(&env, &wt, "worktree change");
    assert_sealed(&env, &wt, "secrets/db.env", b"DB_PASSWORD=from-worktree\n");
    env.seal(&wt, &["lock"]);
    assert!(is_envelope(
        &std::fs::read(wt.join("secrets/db.env")).unwrap()
    ));
    assert_eq!(
        read(&dir, "secrets/db.env"),
        "DB_PASSWORD=hunter2\n",
        "locking a worktree touched the main one"
    );
    env.seal(&wt, &["unlock"]);
    assert_eq!(read(&wt, "secrets/db.env"), "DB_PASSWORD=from-worktree\n");

    // Non-cone mode also drops .seal/ from the work tree: the metadata is
    // then read from the index.
    env.git(
        &dir,
        &[
            "sparse-checkout",
            "set",
            "--no-cone",
            "/README",
            "/secrets/api/",
        ],
    );
    assert!(!dir.join("secrets/db.env").exists());
    assert!(!dir.join(".seal").exists());
    assert_eq!(read(&dir, "secrets/api/token.txt"), "tok-123\n");
    write(&dir, "secrets/api/token.txt", "tok-sparse\n");
    env.git(&dir, &["commit", "-q", "-am", "sparse edit"]);
    assert_sealed(&env, &dir, "secrets/api/token.txt", b"tok-sparse\n");
    env.git(&dir, &["sparse-checkout", "disable"]);
    assert_eq!(read(&dir, "secrets/db.env"), "DB_PASSWORD=hunter2\n");
}

#[test]
fn crlf_files_with_autocrlf_round_trip_exactly() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    env.git(&dir, &["config", "core.autocrlf", "input"]);
    write(&dir, "secrets/win.txt", "line one\r\nline two\r\n");
    commit_all(&env, &dir, "crlf");
    let stored = env.blob_at(&dir, "HEAD:secrets/win.txt");
    assert!(is_envelope(&stored));
    let tmp = env.path("win.envelope");
    std::fs::write(&tmp, &stored).unwrap();
    let opened = env
        .ok("git-seal", &dir, &["decrypt", tmp.to_str().unwrap()])
        .stdout;
    // Git runs clean before its own CRLF conversion: the exact bytes are sealed.
    assert_eq!(opened, b"line one\r\nline two\r\n");
    env.git(&dir, &["config", "core.autocrlf", "true"]);
    std::fs::remove_file(dir.join("secrets/win.txt")).unwrap();
    env.git(&dir, &["checkout", "--", "secrets/win.txt"]);
    assert_eq!(read(&dir, "secrets/win.txt"), "line one\r\nline two\r\n");
    assert!(env.git(&dir, &["status", "--porcelain"]).is_empty());
}

#[test]
fn one_shot_clean_and_smudge_work_without_the_process_protocol() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    env.git(&dir, &["config", "--unset", "filter.seal.process"]);
    write(&dir, "secrets/one.txt", "one-shot\n");
    commit_all(&env, &dir, "one-shot");
    assert_sealed(&env, &dir, "secrets/one.txt", b"one-shot\n");
    std::fs::remove_file(dir.join("secrets/one.txt")).unwrap();
    env.git(&dir, &["checkout", "--", "secrets/one.txt"]);
    assert_eq!(read(&dir, "secrets/one.txt"), "one-shot\n");
    assert!(env.git(&dir, &["status", "--porcelain"]).is_empty());
}

/// The one-shot filters read a large file as it comes (the clean holds
/// only the envelope, the smudge only the ciphertext): what is stored opens,
/// a checkout gives the plaintext back, a touched file stays clean, and an
/// envelope left sealed (no key, or one that fails its tag after all of it
/// was read) is given back exactly as stored.
#[test]
fn one_shot_filters_stream_a_large_file_and_give_back_what_they_cannot_open() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    env.git(&dir, &["config", "--unset", "filter.seal.process"]);
    // Past the size where both filters read in pieces.
    let plain: Vec<u8> = (0..3 * 1024 * 1024 + 7u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 9) as u8)
        .collect();
    crate::harness::write_file(&dir, "secrets/big.bin", &plain);
    commit_all(&env, &dir, "big");
    assert_sealed(&env, &dir, "secrets/big.bin", &plain);
    let stored = env.rev(&dir, "HEAD:secrets/big.bin");

    std::thread::sleep(std::time::Duration::from_millis(1100));
    crate::harness::write_file(&dir, "secrets/big.bin", &plain);
    assert_eq!(env.git(&dir, &["status", "--porcelain"]), "");
    assert_eq!(
        env.rev(&dir, ":secrets/big.bin"),
        stored,
        "re-sealed unchanged"
    );

    std::fs::remove_file(dir.join("secrets/big.bin")).unwrap();
    env.git(&dir, &["checkout", "--", "secrets/big.bin"]);
    assert!(std::fs::read(dir.join("secrets/big.bin")).unwrap() == plain);

    // No key here: the envelope stays, byte for byte.
    let text = env.blob_at(&dir, "HEAD:secrets/big.bin");
    let hidden = env.hide_keys();
    std::fs::remove_file(dir.join("secrets/big.bin")).unwrap();
    env.git(&dir, &["checkout", "--", "secrets/big.bin"]);
    assert!(std::fs::read(dir.join("secrets/big.bin")).unwrap() == text);
    env.restore_keys(&hidden);

    // An envelope whose tag fails, found only at its end: given back as
    // it is, with the reason.
    let json = String::from_utf8(text.clone()).unwrap();
    let tag = json.split("\"tag\": \"").nth(1).unwrap()[..22].to_owned();
    let tampered = json.replacen(&tag, &crate::harness::flip_first(&tag), 1);
    env.stage_raw(&dir, "secrets/big.bin", tampered.as_bytes());
    std::fs::remove_file(dir.join("secrets/big.bin")).unwrap();
    let out = env.ok("git", &dir, &["checkout", "--", "secrets/big.bin"]);
    assert!(std::fs::read(dir.join("secrets/big.bin")).unwrap() == tampered.as_bytes());
    let err = stderr(&out);
    assert!(
        err.contains("secrets/big.bin") && err.contains("left it sealed"),
        "{err}"
    );
    // Nothing left behind in the git dir.
    let strays = crate::harness::names_starting(&dir.join(".git"), ".tmp");
    assert!(strays.is_empty(), "{strays:?}");
}

/// Unchanged plaintext keeps its envelope only while the policy would seal
/// it the same way: once a recovery KEK joins the path's recipients, a file
/// Git cleans again (here after `touch`) is sealed anew to both.
#[test]
fn clean_reseals_unchanged_plaintext_when_the_recipients_change() {
    let env = Env::new();
    let dir = repo_with_secrets(&env);
    let kid = env.kid();
    let recipients = |rev: &str, path: &str| -> Vec<String> {
        let text = env.git(&dir, &["cat-file", "-p", &format!("{rev}:{path}")]);
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut kids: Vec<String> = json["recipients"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["kid"].as_str().unwrap().to_owned())
            .collect();
        kids.sort();
        kids
    };
    assert_eq!(recipients("HEAD", "secrets/db.env"), [kid.as_str()]);

    // Touching alone changes nothing while the policy is the same.
    let before = env.git(&dir, &["rev-parse", "HEAD:secrets/db.env"]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    write(&dir, "secrets/db.env", "DB_PASSWORD=hunter2\n");
    assert_eq!(env.git(&dir, &["status", "--porcelain"]), "");
    assert_eq!(env.git(&dir, &["rev-parse", ":secrets/db.env"]), before);

    // A recovery KEK (public half only) joins the recipients of secrets/**.
    let recovery = git_seal::secret::KekSecret::generate();
    let record = git_seal::keys::record::KekRecord::new_x25519(&recovery.public(), 0);
    git_seal::keys::record::store(&dir, &record).unwrap();
    crate::harness::set_policy(
        &dir,
        "recipients",
        serde_json::json!([
            {"paths": ["secrets/**"], "kids": [kid.as_str(), record.kid.as_str()]}
        ]),
    );
    commit_all(&env, &dir, "recovery KEK for secrets");

    // Whenever Git cleans the file again (it may already have, for that
    // commit), the envelope is made anew for both.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    write(&dir, "secrets/db.env", "DB_PASSWORD=hunter2\n");
    env.git(&dir, &["add", "-A"]);
    let mut both = vec![kid.clone(), record.kid.to_string()];
    both.sort();
    assert_eq!(recipients("", "secrets/db.env"), both);
    // Untouched files keep their envelopes until Git cleans them again;
    // `git add --renormalize` makes it clean every file now.
    assert_eq!(recipients("HEAD", "secrets/api/token.txt"), [kid.as_str()]);
    env.git(&dir, &["add", "--renormalize", "."]);
    assert_eq!(recipients("", "secrets/api/token.txt"), both);
    env.git(&dir, &["commit", "-q", "--allow-empty", "-m", "re-add"]);
    assert_sealed(&env, &dir, "secrets/db.env", b"DB_PASSWORD=hunter2\n");
    assert_eq!(env.git(&dir, &["status", "--porcelain"]), "");
}

/// Content past the filter's streaming threshold (1 MiB), of a length that
/// is neither a multiple of the base64 group nor of the AES block.
fn large_content(seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..3 * 1024 * 1024 + 7)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// A sealed repository with `large_content(seed)` committed at
/// `secrets/big.bin`: the directory and the plaintext.
fn repo_with_large_file(env: &Env, seed: u32) -> (std::path::PathBuf, Vec<u8>) {
    let dir = env.sealed_repo("r");
    let plain = large_content(seed);
    crate::harness::write_file(&dir, "secrets/big.bin", &plain);
    commit_all(env, &dir, "big");
    (dir, plain)
}

#[test]
fn large_file_is_sealed_as_it_arrives_and_round_trips() {
    let env = Env::new();
    let (dir, plain) = repo_with_large_file(&env, 1);
    assert_sealed(&env, &dir, "secrets/big.bin", &plain);
    let blob = env.git(&dir, &["rev-parse", "HEAD:secrets/big.bin"]);
    // Touched, re-added, and with the clean cache gone: the same envelope.
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(dir.join("secrets/big.bin"), &plain).unwrap();
    assert!(env.git(&dir, &["status", "--porcelain"]).is_empty());
    env.git(&dir, &["add", "--renormalize", "."]);
    assert_eq!(env.git(&dir, &["rev-parse", ":secrets/big.bin"]), blob);
    std::fs::remove_dir_all(dir.join(".git/seal")).unwrap();
    env.git(&dir, &["add", "--renormalize", "."]);
    assert_eq!(env.git(&dir, &["rev-parse", ":secrets/big.bin"]), blob);
    // A fresh checkout opens it; a change of one byte is a change.
    std::fs::remove_file(dir.join("secrets/big.bin")).unwrap();
    env.git(&dir, &["checkout", "--", "secrets/big.bin"]);
    assert!(std::fs::read(dir.join("secrets/big.bin")).unwrap() == plain);
    let mut changed = plain;
    changed[2_000_000] ^= 1;
    std::fs::write(dir.join("secrets/big.bin"), &changed).unwrap();
    assert_eq!(
        env.git(&dir, &["status", "--porcelain"]),
        " M secrets/big.bin\n"
    );
    commit_all(&env, &dir, "changed");
    assert_sealed(&env, &dir, "secrets/big.bin", &changed);
}

/// The frame file of a repository's clean cache (its one key's).
fn frames_file(dir: &Path) -> std::path::PathBuf {
    let names = crate::harness::names_starting(&dir.join(".git/seal"), "clean-frames-");
    assert_eq!(names.len(), 1, "one frames file: {names:?}");
    dir.join(".git/seal").join(&names[0])
}

/// A touched large file that did not change gets its envelope back without
/// its blob being read: clean makes it again from the plaintext under the
/// envelope's own DEK and nonce, and only because the tag comes out the
/// same. A changed file gets a new DEK and a new nonce.
#[test]
fn large_unchanged_file_is_made_again_without_reading_its_blob() {
    let env = Env::new();
    let (dir, plain) = repo_with_large_file(&env, 5);
    let blob = env.rev(&dir, "HEAD:secrets/big.bin");
    assert!(std::fs::metadata(frames_file(&dir)).unwrap().len() > 0);

    // The blob out of reach: only making the envelope again can give it.
    let object = dir.join(".git/objects").join(&blob[..2]).join(&blob[2..]);
    let aside = env.path("aside");
    std::fs::rename(&object, &aside).unwrap();
    std::fs::write(dir.join("secrets/big.bin"), &plain).unwrap();
    assert_eq!(env.git(&dir, &["status", "--porcelain"]), "");
    std::fs::rename(&aside, &object).unwrap();
    env.git(&dir, &["add", "--renormalize", "."]);
    assert_eq!(env.rev(&dir, ":secrets/big.bin"), blob);

    // One byte changed, the length the same: a new envelope, not the old
    // one's DEK and nonce on other content.
    let mut changed = plain;
    changed[1_500_000] ^= 1;
    std::fs::write(dir.join("secrets/big.bin"), &changed).unwrap();
    env.git(&dir, &["add", "secrets/big.bin"]);
    let old = env.envelope_at(&dir, "HEAD:secrets/big.bin");
    let new = env.envelope_at(&dir, ":secrets/big.bin");
    assert_ne!(old["nonce"], new["nonce"]);
    assert_ne!(
        old["recipients"][0]["wrapped_dek"],
        new["recipients"][0]["wrapped_dek"]
    );
    commit_all(&env, &dir, "changed");
    assert_sealed(&env, &dir, "secrets/big.bin", &changed);
    assert_eq!(env.git(&dir, &["status", "--porcelain"]), "");

    // A clone learns the frame when it checks the file out.
    let clone = env.clone_repo(&dir, "clone");
    env.seal(&clone, &["init"]);
    assert!(std::fs::read(clone.join("secrets/big.bin")).unwrap() == changed);
    assert!(std::fs::metadata(frames_file(&clone)).unwrap().len() > 0);
    std::fs::write(clone.join("secrets/big.bin"), &changed).unwrap();
    assert_eq!(env.git(&clone, &["status", "--porcelain"]), "");
}

/// A frame that does not match its envelope (another nonce, another tag,
/// or no frame at all but noise) makes nothing under the wrong nonce: the
/// unchanged file's envelope is copied from its blob as before.
#[test]
fn damaged_frames_fall_back_to_the_stored_envelope() {
    let env = Env::new();
    let (dir, plain) = repo_with_large_file(&env, 6);
    let blob = env.rev(&dir, "HEAD:secrets/big.bin");
    let frames = frames_file(&dir);
    let good = std::fs::read(&frames).unwrap();
    let text = String::from_utf8_lossy(&good[24..]).into_owned();
    let damaged = |field: &str| {
        let value = text.split(&format!("\"{field}\": \"")).nth(1).unwrap();
        let mut bytes = good.clone();
        let at = good.len() - text.len() + text.find(value).unwrap();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        bytes
    };
    let mut noise = good.clone();
    noise[24..].fill(b'x');
    for (what, bytes) in [
        ("nonce", damaged("nonce")),
        ("tag", damaged("tag")),
        ("noise", noise),
    ] {
        std::fs::write(&frames, &bytes).unwrap();
        std::fs::write(dir.join("secrets/big.bin"), &plain).unwrap();
        assert_eq!(env.git(&dir, &["status", "--porcelain"]), "", "{what}");
        env.git(&dir, &["add", "--renormalize", "."]);
        assert_eq!(env.rev(&dir, ":secrets/big.bin"), blob, "{what}");
    }
    assert_sealed(&env, &dir, "secrets/big.bin", &plain);
}

/// A large envelope stored in a form that parses but is not the one
/// git-seal writes (here one more space) is never made again from a frame,
/// which would give the canonical text and so another blob: its status
/// stays clean after checkout, after a touch, and with no clean cache.
#[test]
fn a_large_envelope_not_in_canonical_form_is_given_back_as_stored() {
    let env = Env::new();
    let (dir, plain) = repo_with_large_file(&env, 7);
    let text = env.blob_at(&dir, "HEAD:secrets/big.bin");
    let spaced = String::from_utf8(text)
        .unwrap()
        .replacen("\"tag\": ", "\"tag\":  ", 1);
    env.stage_raw(&dir, "secrets/big.bin", spaced.as_bytes());
    env.git(&dir, &["commit", "-q", "-m", "spaced", "--no-verify"]);
    let blob = env.rev(&dir, "HEAD:secrets/big.bin");
    std::fs::remove_file(dir.join("secrets/big.bin")).unwrap();
    env.git(&dir, &["checkout", "--", "secrets/big.bin"]);
    assert!(std::fs::read(dir.join("secrets/big.bin")).unwrap() == plain);
    for round in ["after checkout", "with no clean cache", "again"] {
        if round == "with no clean cache" {
            std::fs::remove_dir_all(dir.join(".git/seal")).unwrap();
        }
        std::fs::write(dir.join("secrets/big.bin"), &plain).unwrap();
        assert_eq!(env.git(&dir, &["status", "--porcelain"]), "", "{round}");
        env.git(&dir, &["add", "--renormalize", "."]);
        assert_eq!(env.rev(&dir, ":secrets/big.bin"), blob, "{round}");
    }
}

#[test]
fn large_envelope_in_the_work_tree_is_stored_as_it_is() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    let plain = large_content(2);
    std::fs::write(dir.join("big.bin"), &plain).unwrap();
    env.seal(&dir, &["encrypt", "big.bin", "--out", "big.sealed"]);
    let sealed = std::fs::read(dir.join("big.sealed")).unwrap();
    crate::harness::write_file(&dir, "secrets/big.sealed", &sealed);
    env.git(&dir, &["add", "secrets/big.sealed"]);
    let stored = env.blob_at(&dir, ":secrets/big.sealed");
    assert!(stored == sealed, "an envelope passes through unchanged");
}

#[test]
fn tampered_large_envelope_releases_no_plaintext() {
    let env = Env::new();
    let (dir, _) = repo_with_large_file(&env, 3);
    let stored = env.git(&dir, &["cat-file", "-p", "HEAD:secrets/big.bin"]);
    let mut json: serde_json::Value = serde_json::from_str(&stored).unwrap();
    let ct = json["ciphertext"].as_str().unwrap().to_owned();
    // Flip a character deep inside, past the first megabyte.
    let at = ct.len() / 2;
    let flipped = if &ct[at..at + 1] == "A" { "B" } else { "A" };
    json["ciphertext"] = format!("{}{flipped}{}", &ct[..at], &ct[at + 1..]).into();
    let tampered = format!("{}\n", serde_json::to_string_pretty(&json).unwrap());
    env.stage_raw(&dir, "secrets/big.bin", tampered.as_bytes());
    env.git(&dir, &["commit", "-q", "-m", "tampered", "--no-verify"]);
    std::fs::remove_file(dir.join("secrets/big.bin")).unwrap();
    let out = env.ok("git", &dir, &["checkout", "--", "secrets/big.bin"]);
    let err = stderr(&out);
    assert!(
        err.contains("secrets/big.bin") && err.contains("authentication failed"),
        "{err}"
    );
    assert!(
        read(&dir, "secrets/big.bin") == tampered,
        "the envelope must stay, unchanged"
    );
}

/// A large envelope is read as it arrives (only its ciphertext held); one
/// that stays sealed, for want of a key or being malformed past its first
/// megabyte, is written as stored, byte for byte, with one line naming it.
#[test]
fn large_envelope_left_sealed_is_written_as_stored() {
    let env = Env::new();
    let (dir, plain) = repo_with_large_file(&env, 4);
    let stored = env.blob_at(&dir, "HEAD:secrets/big.bin");

    let hidden = env.hide_keys();
    std::fs::remove_file(dir.join("secrets/big.bin")).unwrap();
    let out = env.ok("git", &dir, &["checkout", "--", "secrets/big.bin"]);
    assert!(
        stderr(&out).contains("1 sealed file left locked (e.g. secrets/big.bin)"),
        "{}",
        stderr(&out)
    );
    assert!(std::fs::read(dir.join("secrets/big.bin")).unwrap() == stored);
    env.restore_keys(&hidden);

    // Not base64 two megabytes in: the JSON around it is fine.
    let text = String::from_utf8(stored).unwrap();
    let at = text.find("\"ciphertext\": \"").unwrap() + 15 + (2 << 20);
    let broken = format!("{}*{}", &text[..at], &text[at + 1..]);
    env.stage_raw(&dir, "secrets/big.bin", broken.as_bytes());
    // Gone from the work tree first: clean refuses a damaged envelope there.
    std::fs::remove_file(dir.join("secrets/big.bin")).unwrap();
    env.git(&dir, &["commit", "-q", "-m", "broken", "--no-verify"]);
    let out = env.ok("git", &dir, &["checkout", "--", "secrets/big.bin"]);
    let err = stderr(&out);
    assert!(
        err.contains(
            "secrets/big.bin: malformed envelope (field `ciphertext` is not canonical base64"
        ),
        "{err}"
    );
    assert!(read(&dir, "secrets/big.bin") == broken);

    // And the good one opens again.
    env.git(&dir, &["checkout", "HEAD~", "--", "secrets/big.bin"]);
    assert!(std::fs::read(dir.join("secrets/big.bin")).unwrap() == plain);
}

/// A checkout opens envelopes ahead of Git's requests (Git names the tree
/// it checks out); the checks that depend on the path still run on Git's
/// request: envelopes swapped between two paths stay sealed, while the
/// many files around them open.
#[test]
fn a_checkout_opened_ahead_still_refuses_envelopes_at_the_wrong_path() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    crate::harness::set_policy(&dir, "bind_path_aad", serde_json::json!(true));
    for i in 0..150 {
        crate::harness::write_file(
            &dir,
            &format!("secrets/f{i:03}.env"),
            format!("F{i}\n").as_bytes(),
        );
    }
    commit_all(&env, &dir, "many");
    let blob = |path: &str| {
        env.ok("git", &dir, &["cat-file", "-p", &format!("HEAD:{path}")])
            .stdout
    };
    let (a, b) = (blob("secrets/f040.env"), blob("secrets/f041.env"));
    env.stage_raw(&dir, "secrets/f040.env", &b);
    env.stage_raw(&dir, "secrets/f041.env", &a);
    env.git(&dir, &["commit", "-q", "--no-verify", "-m", "swap"]);

    std::fs::remove_dir_all(dir.join("secrets")).unwrap();
    let out = env.ok("git", &dir, &["checkout", "HEAD", "--", "secrets"]);
    let err = stderr(&out);
    for (path, bound) in [("secrets/f040.env", "f041"), ("secrets/f041.env", "f040")] {
        assert!(
            err.contains(&format!(
                "{path}: the envelope is bound to \"path:secrets/{bound}.env\""
            )),
            "{err}"
        );
        assert!(
            is_envelope(&std::fs::read(dir.join(path)).unwrap()),
            "{path} opened"
        );
    }
    for i in (0..150).filter(|i| ![40, 41].contains(i)) {
        assert_eq!(
            read(&dir, &format!("secrets/f{i:03}.env")),
            format!("F{i}\n")
        );
    }
}

/// One pkt-line of `payload`.
fn pkt(payload: &[u8]) -> Vec<u8> {
    let mut line = format!("{:04x}", payload.len() + 4).into_bytes();
    line.extend_from_slice(payload);
    line
}

/// The payloads read from `from` up to the next flush packet.
fn read_until_flush(from: &mut impl std::io::Read) -> Vec<Vec<u8>> {
    let mut lines = Vec::new();
    loop {
        let mut len = [0u8; 4];
        from.read_exact(&mut len).unwrap();
        let len = usize::from_str_radix(std::str::from_utf8(&len).unwrap(), 16).unwrap();
        if len == 0 {
            return lines;
        }
        let mut payload = vec![0; len - 4];
        from.read_exact(&mut payload).unwrap();
        lines.push(payload);
    }
}

/// The filter process spoken to directly, as Git would: a request whose
/// packets come one at a time, further apart than the process watches its
/// input before it sleeps, is answered with an envelope that opens; and
/// when Git goes away in the middle of the next request, the process ends
/// at once without answering it.
#[test]
fn the_filter_process_answers_slow_packets_and_ends_when_git_goes_away() {
    use std::io::Write;
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let env = Env::new();
    let dir = env.sealed_repo("r");
    let mut child = env
        .command("git-seal", &dir)
        .arg("filter-process")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut to = child.stdin.take().unwrap();
    let mut from = child.stdout.take().unwrap();
    let send = |to: &mut std::process::ChildStdin, packets: &[&[u8]], pause: Duration| {
        for packet in packets {
            let line = if packet.is_empty() {
                b"0000".to_vec()
            } else {
                pkt(packet)
            };
            to.write_all(&line).unwrap();
            to.flush().unwrap();
            std::thread::sleep(pause);
        }
    };
    let pause = Duration::from_millis(3);
    send(
        &mut to,
        &[b"git-filter-client\n", b"version=2\n", b""],
        pause,
    );
    assert_eq!(
        read_until_flush(&mut from),
        [b"git-filter-server\n".to_vec(), b"version=2\n".to_vec()]
    );
    send(
        &mut to,
        &[b"capability=clean\n", b"capability=smudge\n", b""],
        pause,
    );
    assert_eq!(
        read_until_flush(&mut from),
        [
            b"capability=clean\n".to_vec(),
            b"capability=smudge\n".to_vec()
        ]
    );
    let request: [&[u8]; 5] = [
        b"command=clean\n",
        b"pathname=secrets/slow.txt\n",
        b"",
        b"slow packets\n",
        b"",
    ];
    send(&mut to, &request, pause);
    assert_eq!(read_until_flush(&mut from), [b"status=success\n".to_vec()]);
    let envelope = read_until_flush(&mut from).concat();
    assert_eq!(
        read_until_flush(&mut from),
        Vec::<Vec<u8>>::new(),
        "status kept"
    );
    assert!(
        is_envelope(&envelope),
        "{}",
        String::from_utf8_lossy(&envelope)
    );
    std::fs::write(dir.join("slow.sealed"), &envelope).unwrap();
    let opened = env.ok("git-seal", &dir, &["decrypt", "slow.sealed"]);
    assert_eq!(opened.stdout, b"slow packets\n");

    // Half a request, then Git is gone.
    send(&mut to, &request[..2], pause);
    drop(to);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(20) {
            child.kill().unwrap();
            panic!("the filter process is still running 20 s after its input closed");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut from, &mut rest).unwrap();
    assert!(
        rest.is_empty(),
        "answered half a request: {rest:?} ({status})"
    );
}
