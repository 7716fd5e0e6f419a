//! `.seal/policy.json` loaded strictly, `git seal doctor` and `migrate`.

use crate::harness::{is_envelope, stderr, stdout, write_file, Env};

#[test]
fn bad_glob_or_unknown_kid_is_an_error_naming_the_line() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    let bad = "{\n  \"schema\": \"git-seal.policy/v1\",\n  \"sealed\": [\n    \"secrets/**\",\n    \"a[\"\n  ]\n}\n";
    std::fs::write(dir.join(".seal/policy.json"), bad).unwrap();
    let out = env.fails("git-seal", &dir, &["status"], 1);
    assert!(
        stderr(&out).contains(".seal/policy.json:5: bad glob \"a[\""),
        "{}",
        stderr(&out)
    );
    // Staged, it is a pre-commit finding (run directly: the filter itself
    // refuses to seal under a bad policy); the globs it can read still hold.
    env.stage_raw(&dir, "secrets/leak.env", b"LEAK=1\n");
    env.git(&dir, &["add", ".seal/policy.json"]);
    let out = env.fails("git-seal", &dir, &["hook", "pre-commit"], 1);
    assert!(
        stderr(&out).contains(".seal/policy.json: .seal/policy.json:5: bad glob"),
        "{}",
        stderr(&out)
    );

    let unknown = "{\n  \"schema\": \"git-seal.policy/v1\",\n  \"recipients\": [{\"paths\": [\"prod/**\"],\n \"kids\": [\"k_0000000000000000\"]}]\n}\n";
    std::fs::write(dir.join(".seal/policy.json"), unknown).unwrap();
    let out = env.fails("git-seal", &dir, &["status"], 1);
    assert!(
        stderr(&out).contains(
            ".seal/policy.json:4: recipient k_0000000000000000 is not a KEK listed in .seal/keys/"
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn doctor_lists_each_problem_with_its_fix_and_migrate_seals_old_plaintext() {
    let env = Env::new();
    let dir = env.repo("r");
    write_file(&dir, "secrets/old.env", b"OLD=1\n");
    env.git(&dir, &["add", "-A"]);
    env.git(&dir, &["commit", "-q", "-m", "before git-seal"]);
    env.seal(&dir, &["init", "secrets/**"]);
    let out = env.fails("git-seal", &dir, &["doctor"], 1);
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.contains("plaintext in the index: secrets/old.env; fix: `git seal migrate`"),
        "{text}"
    );

    env.git(&dir, &["config", "--unset", "filter.seal.required"]);
    std::fs::remove_file(dir.join(".git/hooks/post-merge")).unwrap();
    std::fs::write(dir.join(".git/hooks/post-checkout"), "#!/bin/sh\n").unwrap();
    let text = stdout(&env.fails("git-seal", &dir, &["doctor"], 1));
    assert!(text.contains("filter.seal.required"), "{text}");
    assert!(text.contains("fix: `git seal init`"), "{text}");
    assert!(
        text.contains("the post-merge hook is not installed"),
        "{text}"
    );
    assert!(
        text.contains("the post-checkout hook in")
            && text.contains("(not chained); fix: `git seal hooks install`"),
        "{text}"
    );
    env.seal(&dir, &["init"]);

    env.seal(&dir, &["migrate"]);
    assert!(is_envelope(
        &env.ok("git", &dir, &["cat-file", "-p", ":secrets/old.env"])
            .stdout
    ));
    assert_eq!(
        std::fs::read(dir.join("secrets/old.env")).unwrap(),
        b"OLD=1\n"
    );
    env.git(&dir, &["add", ".gitattributes", ".seal"]);
    env.git(&dir, &["commit", "-q", "-m", "migrate"]);
    assert!(env.git(&dir, &["status", "--porcelain"]).is_empty());
    assert_eq!(
        stdout(&env.ok("git-seal", &dir, &["doctor"])),
        "git-seal: doctor: nothing to fix\n"
    );
    env.seal(&dir, &["check", "HEAD~1..HEAD"]);
}

/// A policy glob that also matches git-seal's own files (`*.json` covers
/// `.seal/policy.json` and `.seal/keys/*.json`) once made `status` list them
/// as plaintext and the post-commit `seal` entry record them, while `check`
/// and pre-commit exempted them: every place must give the same answer.
#[test]
fn policy_glob_over_seal_files_leaves_them_unsealed_in_status_check_hooks_and_audit() {
    let env = Env::new();
    let dir = env.repo("r");
    env.seal(&dir, &["init", "*.json"]);
    write_file(&dir, "config/app.json", b"{\"token\": 1}\n");
    env.git(&dir, &["add", "-A"]);
    // pre-commit runs here: it must not refuse the plaintext policy file.
    env.git(&dir, &["commit", "-q", "-m", "set up git-seal"]);

    let status: serde_json::Value =
        serde_json::from_str(&env.seal(&dir, &["status", "--json"])).unwrap();
    assert_eq!(
        status["plaintext_in_head"],
        serde_json::json!([]),
        "{status}"
    );
    assert_eq!(status["sealed_files"], 1, "{status}");
    let check: serde_json::Value =
        serde_json::from_str(&env.seal(&dir, &["check", "--json"])).unwrap();
    assert_eq!(check["ok"], true, "{check}");

    // A commit changing the policy and a sealed file: pre-commit accepts it,
    // and the audit's `seal` entry names only the sealed file.
    let policy = dir.join(".seal/policy.json");
    let mut text: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&policy).unwrap()).unwrap();
    text["sealed"] = serde_json::json!(["*.json", "secrets/**"]);
    std::fs::write(&policy, serde_json::to_string_pretty(&text).unwrap()).unwrap();
    write_file(&dir, "config/app.json", b"{\"token\": 2}\n");
    env.git(&dir, &["add", "-A"]);
    env.seal(&dir, &["hook", "pre-commit"]);
    env.git(&dir, &["commit", "-q", "-m", "seal secrets too"]);
    let log: serde_json::Value =
        serde_json::from_str(&env.seal(&dir, &["audit", "log", "--json"])).unwrap();
    let head = env.rev(&dir, "HEAD");
    let seal = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "seal" && e["data"]["commit"] == head.as_str())
        .unwrap_or_else(|| panic!("no seal entry for {head}: {log}"));
    let paths: Vec<&str> = seal["data"]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["config/app.json"], "{seal}");
    // Nor did the set-up commit's entry name them.
    for entry in log["entries"].as_array().unwrap() {
        for path in entry["data"]["paths"].as_array().into_iter().flatten() {
            let path = path["path"].as_str().unwrap();
            assert!(
                !path.starts_with(".seal/") && path != ".gitattributes",
                "{entry}"
            );
        }
    }
    assert!(
        log["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "policy" && e["data"]["commit"] == head.as_str()),
        "{log}"
    );
    env.seal(&dir, &["check", "--json"]);
}
