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
