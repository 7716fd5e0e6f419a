//! `git seal lock` and `unlock` against the Git features that walk around
//! them: a subdirectory as working directory, pathspec magic in file names,
//! untracked files, and more paths than argv holds (`kill -9` half-way is
//! `kill.rs`).

use crate::harness::{is_envelope, stderr, write_file, Env};

#[test]
fn lock_from_a_subdirectory_keeps_unstaged_edits() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    write_file(&dir, "secrets/sub/a.env", b"orig\n");
    env.git(&dir, &["add", "-A"]);
    env.git(&dir, &["commit", "-q", "-m", "one"]);
    write_file(&dir, "secrets/sub/a.env", b"EDITED\n");
    let sub = dir.join("secrets/sub");
    let out = env.fails("git-seal", &sub, &["lock"], 1);
    assert!(
        stderr(&out).contains("secrets/sub/a.env"),
        "{}",
        stderr(&out)
    );
    env.seal(&dir, &["unlock"]);
    assert_eq!(
        std::fs::read(dir.join("secrets/sub/a.env")).unwrap(),
        b"EDITED\n"
    );
    // Staged, the same lock from the subdirectory locks it.
    env.git(&dir, &["add", "-A"]);
    env.seal(&sub, &["lock"]);
    assert!(is_envelope(
        &std::fs::read(dir.join("secrets/sub/a.env")).unwrap()
    ));
    env.seal(&sub, &["unlock"]);
    assert_eq!(
        std::fs::read(dir.join("secrets/sub/a.env")).unwrap(),
        b"EDITED\n"
    );
}

#[test]
fn lock_with_a_colon_prefixed_sealed_file() {
    let env = Env::new();
    let dir = env.repo("r");
    env.seal(&dir, &["init", "*.env"]);
    write_file(&dir, ":x.env", b"colon\n");
    write_file(&dir, "b.env", b"plain b\n");
    env.git(&dir, &["add", "-A"]);
    env.git(&dir, &["commit", "-q", "-m", "one"]);
    write_file(&dir, ":x.env", b"colon edited\n");
    let out = env.fails("git-seal", &dir, &["lock"], 1);
    assert!(stderr(&out).contains(":x.env"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read(dir.join(":x.env")).unwrap(),
        b"colon edited\n"
    );

    env.git(&dir, &["commit", "-q", "-a", "-m", "two"]);
    env.seal(&dir, &["lock"]);
    for path in [":x.env", "b.env"] {
        assert!(
            is_envelope(&std::fs::read(dir.join(path)).unwrap()),
            "{path} not locked"
        );
    }
    assert_eq!(env.git(&dir, &["status", "--porcelain"]), "");
    env.seal(&dir, &["unlock"]);
    assert_eq!(
        std::fs::read(dir.join(":x.env")).unwrap(),
        b"colon edited\n"
    );
    assert_eq!(std::fs::read(dir.join("b.env")).unwrap(), b"plain b\n");
}

#[test]
fn lock_reports_untracked_plaintext_under_sealed_paths_and_can_include_it() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    write_file(&dir, "secrets/tracked.env", b"tracked\n");
    env.git(&dir, &["add", "-A"]);
    env.git(&dir, &["commit", "-q", "-m", "one"]);
    write_file(&dir, "secrets/new.env", b"not yet added\n");
    let out = env.ok("git-seal", &dir, &["lock"]);
    let err = stderr(&out);
    assert!(
        err.contains("secrets/new.env") && err.contains("--include-untracked"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(dir.join("secrets/new.env")).unwrap(),
        b"not yet added\n"
    );
    // Its mode survives the round trip (the plaintext is written with no
    // name until whole, and takes the envelope's mode).
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &str| {
        std::fs::metadata(dir.join(path))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    std::fs::set_permissions(
        dir.join("secrets/new.env"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    env.seal(&dir, &["lock", "--include-untracked"]);
    assert!(is_envelope(
        &std::fs::read(dir.join("secrets/new.env")).unwrap()
    ));
    assert_eq!(mode("secrets/new.env"), 0o640);
    env.seal(&dir, &["unlock"]);
    assert_eq!(
        std::fs::read(dir.join("secrets/new.env")).unwrap(),
        b"not yet added\n"
    );
    assert_eq!(mode("secrets/new.env"), 0o640);
    let strays = crate::harness::names_starting(&dir.join("secrets"), ".git-seal-");
    assert!(strays.is_empty(), "{strays:?}");
    assert_eq!(
        std::fs::read(dir.join("secrets/tracked.env")).unwrap(),
        b"tracked\n"
    );
}

#[test]
fn lock_and_migrate_with_more_paths_than_fit_in_argv() {
    // 12,000 paths of ~190 bytes: past the 2 MiB that argv holds here.
    let env = Env::new();
    let dir = env.repo("r");
    let deep = format!("secrets/{}", "d".repeat(170));
    let n = 12_000;
    std::fs::create_dir_all(dir.join(&deep)).unwrap();
    for i in 0..n {
        std::fs::write(dir.join(format!("{deep}/f{i:05}.env")), format!("{i}\n")).unwrap();
    }
    env.git(&dir, &["add", "-A"]);
    env.git(&dir, &["commit", "-q", "-m", "plaintext"]);
    env.seal(&dir, &["init", "secrets/**"]);
    env.seal(&dir, &["migrate"]);
    env.git(&dir, &["commit", "-q", "-m", "sealed"]);
    env.seal(&dir, &["lock"]);
    let sample = std::fs::read(dir.join(format!("{deep}/f{:05}.env", n - 1))).unwrap();
    assert!(is_envelope(&sample), "the last file was not locked");
    assert_eq!(env.git(&dir, &["status", "--porcelain"]), "");
    env.seal(&dir, &["unlock"]);
    let sample = std::fs::read(dir.join(format!("{deep}/f{:05}.env", n - 1))).unwrap();
    assert_eq!(sample, format!("{}\n", n - 1).into_bytes());
}

#[test]
fn unlock_says_why_a_damaged_envelope_stayed_locked_and_how_to_mend_it() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    write_file(&dir, "secrets/a.env", b"A=1\n");
    env.git(&dir, &["add", "secrets"]);
    env.git(&dir, &["commit", "-q", "-m", "a"]);
    let good = env.git(&dir, &["cat-file", "-p", ":secrets/a.env"]);
    // The tag's first character changed: the text stays canonical.
    let at = good.find("\"tag\": \"").unwrap() + "\"tag\": \"".len();
    let flipped = if good[at..].starts_with('A') {
        "B"
    } else {
        "A"
    };
    let bad = format!("{}{flipped}{}", &good[..at], &good[at + 1..]);
    env.stage_raw(&dir, "secrets/a.env", bad.as_bytes());
    env.git(&dir, &["commit", "-q", "--no-verify", "-m", "damaged"]);
    env.seal(&dir, &["lock", "--force"]);
    let out = env.fails("git-seal", &dir, &["unlock"], 1);
    let err = stderr(&out);
    assert!(
        err.contains("secrets/a.env: authentication failed")
            && err.contains(&env.kid())
            && err.contains("git checkout HEAD -- PATH"),
        "{err}"
    );
    assert!(is_envelope(
        &std::fs::read(dir.join("secrets/a.env")).unwrap()
    ));
}
