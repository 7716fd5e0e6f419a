//! `git seal check`: findings over history, `--json`, each blob read once.

use crate::harness::{stderr, stdout, write_file, Env};

#[test]
fn json_output_has_its_documented_fields() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    write_file(&dir, "secrets/a.env", b"A=1\n");
    env.git(&dir, &["add", "-A"]);
    env.git(&dir, &["commit", "-q", "-m", "a"]);
    let ok: serde_json::Value =
        serde_json::from_str(&env.seal(&dir, &["check", "--json"])).unwrap();
    assert_eq!(ok["ok"], true);
    assert_eq!(ok["range"], "HEAD");
    assert_eq!(ok["commits"], 3);
    assert_eq!(ok["findings"], serde_json::json!([]));

    env.stage_raw(&dir, "secrets/b.env", b"B=1\n");
    // Malformed: an envelope with a field removed.
    let stored = env
        .ok("git", &dir, &["cat-file", "-p", "HEAD:secrets/a.env"])
        .stdout;
    let mut broken: serde_json::Value = serde_json::from_slice(&stored).unwrap();
    broken.as_object_mut().unwrap().remove("tag");
    env.stage_raw(
        &dir,
        "secrets/a.env",
        serde_json::to_string_pretty(&broken).unwrap().as_bytes(),
    );
    env.git(&dir, &["commit", "-q", "--no-verify", "-m", "bad"]);
    let bad = env.rev(&dir, "HEAD");
    let out = env.fails("git-seal", &dir, &["check", "--json"], 1);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["commits"], 4);
    let findings = report["findings"].as_array().unwrap();
    let kinds: Vec<(&str, &str, &str)> = findings
        .iter()
        .map(|f| {
            (
                f["commit"].as_str().unwrap(),
                f["path"].as_str().unwrap(),
                f["kind"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            (bad.as_str(), "secrets/a.env", "malformed-envelope"),
            (bad.as_str(), "secrets/b.env", "plaintext"),
        ]
    );
    assert!(findings
        .iter()
        .all(|f| f["message"].as_str().is_some_and(|m| !m.is_empty())));
}

#[test]
fn each_distinct_blob_is_read_once_and_counted() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    // Many commits sharing most blobs, and one blob at two paths.
    for i in 0..5 {
        write_file(&dir, &format!("f{i}.txt"), b"same\n");
        write_file(&dir, "changing.txt", format!("{i}\n").as_bytes());
        env.git(&dir, &["add", "-A"]);
        env.git(&dir, &["commit", "-q", "-m", &format!("c{i}")]);
    }
    let objects = env.git(&dir, &["rev-list", "--objects", "HEAD"]);
    let ids: String = objects
        .lines()
        .map(|l| format!("{}\n", l.split(' ').next().unwrap()))
        .collect();
    let types = env.run(
        "git",
        &dir,
        &["cat-file", "--batch-check=%(objecttype)"],
        Some(ids.as_bytes()),
    );
    let blobs = stdout(&types).lines().filter(|t| *t == "blob").count();
    assert!(blobs >= 8, "{blobs}");
    let report: serde_json::Value =
        serde_json::from_str(&env.seal(&dir, &["check", "--json"])).unwrap();
    assert_eq!(report["blobs"], blobs);
    assert_eq!(report["commits"], 7);
}

#[test]
fn committed_key_is_found_in_ci_without_any_key() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    let kid = env.kid();
    let hex = std::fs::read_to_string(env.key_dir.join(format!("{kid}.key"))).unwrap();
    env.stage_raw(&dir, "deploy/kek.txt", hex.as_bytes());
    env.git(&dir, &["commit", "-q", "--no-verify", "-m", "oops"]);
    let hidden = env.hide_keys();
    let out = env.fails("git-seal", &dir, &["check"], 1);
    env.restore_keys(&hidden);
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "deploy/kek.txt: contains the private key of KEK {kid}"
        )),
        "{text}"
    );
    assert!(!text.contains(hex.trim()), "printed the key");
}

#[test]
fn bad_range_is_usage_and_empty_repository_is_ok() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    env.fails("git-seal", &dir, &["check", "no-such-branch..HEAD"], 2);
    let empty = env.path("empty");
    env.git(env.tmp.path(), &["init", "-q", empty.to_str().unwrap()]);
    env.seal(&empty, &["check"]);
}

#[test]
fn each_commit_is_judged_by_its_own_policy() {
    let env = Env::new();
    let dir = env.repo("r");
    // Plaintext committed before git-seal was set up is not a finding of
    // that commit; it is once a commit's policy covers it.
    write_file(&dir, "secrets/old.env", b"OLD=1\n");
    env.git(&dir, &["add", "-A"]);
    env.git(&dir, &["commit", "-q", "-m", "before"]);
    env.seal(&dir, &["init", "secrets/**"]);
    env.git(&dir, &["add", ".gitattributes", ".seal"]);
    env.git(&dir, &["commit", "-q", "--no-verify", "-m", "set up"]);
    let setup = env.rev(&dir, "HEAD");
    let out = env.fails("git-seal", &dir, &["check"], 1);
    assert_eq!(stdout(&out).trim().lines().count(), 1);
    assert!(stdout(&out).starts_with(&format!("{setup}: secrets/old.env: stored as plaintext")));
    // migrate fixes it from the next commit on.
    env.seal(&dir, &["migrate"]);
    env.git(&dir, &["commit", "-q", "-m", "migrate"]);
    env.seal(&dir, &["check", "HEAD~1..HEAD"]);
}

/// A new user seals 5,000 existing files as the README says: `init`, then
/// `migrate`, then the `next:` command it prints, run verbatim. Every step
/// prints at most a screenful, and the commit goes through.
#[test]
fn sealing_five_thousand_existing_files_takes_a_screenful_and_hints_that_work() {
    let env = Env::new();
    let dir = env.repo("r");
    env.commit_files(&dir, "data", 5000);
    let screenful = |what: &str, out: &std::process::Output| {
        let text = format!("{}{}", stdout(out), stderr(out));
        assert!(
            text.lines().count() <= 24,
            "{what} printed more than a screenful:\n{text}"
        );
        assert!(
            text.lines().all(|l| l.chars().count() <= 400),
            "{what} printed a line too long to read:\n{text}"
        );
        text
    };
    screenful("init", &env.ok("git-seal", &dir, &["init", "data/**"]));
    let text = screenful("migrate", &env.ok("git-seal", &dir, &["migrate"]));
    assert!(text.contains("sealed and staged 5000 file(s)"), "{text}");
    let next = text
        .lines()
        .find_map(|l| l.strip_prefix("next: "))
        .unwrap_or_else(|| panic!("no next step in:\n{text}"));
    let command = next.split(" (").next().unwrap();
    let out = env.run("sh", &dir, &["-c", command], None);
    assert!(out.status.success(), "{command}: {}", stderr(&out));
    screenful(command, &out);
    assert_eq!(env.git(&dir, &["status", "--porcelain"]), "");
    let stored = env
        .ok("git", &dir, &["cat-file", "-p", "HEAD:data/f0042.txt"])
        .stdout;
    assert!(crate::harness::is_envelope(&stored));
    // A commit that breaks all 5,000 at once is refused in a few lines.
    std::fs::remove_dir_all(dir.join(".seal/keys")).unwrap();
    env.git(&dir, &["add", "-A", ".seal"]);
    let out = env.run("git", &dir, &["commit", "-q", "-m", "no keys"], None);
    assert!(!out.status.success());
    let text = screenful("a refused commit", &out);
    assert!(
        text.contains("set GIT_SEAL_VERBOSE=1 to list all"),
        "{text}"
    );
}
