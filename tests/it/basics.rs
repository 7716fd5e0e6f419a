//! init, status, encrypt/decrypt, key custody and their failure modes.

use std::os::unix::fs::PermissionsExt;

use crate::harness::{is_envelope, stderr, stdout, write_file, Env};

fn snapshot(env: &Env, dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for rel in [".gitattributes", ".seal/policy.json", ".git/config"] {
        files.push((
            rel.to_owned(),
            std::fs::read(dir.join(rel)).unwrap_or_default(),
        ));
    }
    for entry in std::fs::read_dir(dir.join(".seal/keys"))
        .unwrap()
        .chain(std::fs::read_dir(&env.key_dir).unwrap())
    {
        let path = entry.unwrap().path();
        files.push((path.display().to_string(), std::fs::read(&path).unwrap()));
    }
    files.sort();
    files
}

#[test]
fn init_creates_kek_metadata_and_config_and_is_idempotent() {
    let env = Env::new();
    let dir = env.repo("r");
    let out = env.seal(&dir, &["init", "secrets/**", "*.env"]);
    let kid = env.kid();
    assert!(out.contains(&kid), "{out}");
    let key_file = env.key_dir.join(format!("{kid}.key"));
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(&env.key_dir)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
    let key_hex = std::fs::read_to_string(&key_file).unwrap();
    assert_eq!(key_hex.trim().len(), 64);
    assert!(
        !out.contains(key_hex.trim()),
        "init printed the private key"
    );

    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(format!(".seal/keys/{kid}.json"))).unwrap())
            .unwrap();
    assert_eq!(record["kid"], kid.as_str());
    assert_eq!(record["custody"], "software");
    assert_eq!(record["status"], "active");
    assert_eq!(record["wrap"], "x25519-hkdf-sha256");
    let policy: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(".seal/policy.json")).unwrap()).unwrap();
    assert_eq!(policy["sealed"], serde_json::json!(["secrets/**", "*.env"]));
    let attrs = std::fs::read_to_string(dir.join(".gitattributes")).unwrap();
    assert!(
        attrs.contains("secrets/** filter=seal diff=seal merge=seal\n"),
        "{attrs}"
    );
    assert_eq!(
        env.git(&dir, &["config", "filter.seal.required"]).trim(),
        "true"
    );
    assert_eq!(
        env.git(&dir, &["config", "filter.seal.process"]).trim(),
        "git-seal filter-process"
    );
    assert_eq!(env.git(&dir, &["config", "seal.provider"]).trim(), "file");

    let before = snapshot(&env, &dir);
    env.seal(&dir, &["init", "secrets/**"]);
    assert_eq!(
        snapshot(&env, &dir),
        before,
        "a second init changed something"
    );

    // Repair: a removed driver setting comes back.
    env.git(&dir, &["config", "--unset", "filter.seal.required"]);
    let out = env.seal(&dir, &["init"]);
    assert!(out.contains("filter.seal.required"), "{out}");
    assert_eq!(snapshot(&env, &dir), before);
}

#[test]
fn fresh_clone_adopts_the_committed_kek() {
    let env = Env::new();
    let dir = env.sealed_repo("origin");
    let kid = env.kid();
    let clone = env.path("clone");
    env.git(
        env.tmp.path(),
        &[
            "clone",
            "-q",
            dir.to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
    );
    let out = env.seal(&clone, &["init"]);
    assert!(out.contains(&format!("using KEK {kid}")), "{out}");
    assert_eq!(env.kid(), kid, "init made a second KEK");
    assert!(env.git(&clone, &["status", "--porcelain"]).is_empty());
}

#[test]
fn init_outside_a_repository_fails_clearly() {
    let env = Env::new();
    let dir = env.path("plain-dir");
    std::fs::create_dir_all(&dir).unwrap();
    let out = env.fails("git-seal", &dir, &["init"], 1);
    assert!(
        stderr(&out).contains("not inside a Git repository"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn encrypt_decrypt_round_trip_with_files_and_pipes() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    std::fs::write(dir.join("note.txt"), "top secret\r\n\u{1F512}").unwrap();
    env.seal(
        &dir,
        &[
            "encrypt",
            "note.txt",
            "--out",
            "note.sealed",
            "--aad",
            "ctx",
        ],
    );
    let sealed = std::fs::read(dir.join("note.sealed")).unwrap();
    assert!(is_envelope(&sealed));
    let json: serde_json::Value = serde_json::from_slice(&sealed).unwrap();
    assert_eq!(json["aad"], "ctx");
    assert_eq!(json["recipients"][0]["kid"], env.kid().as_str());
    let out = env.ok("git-seal", &dir, &["decrypt", "note.sealed"]);
    assert_eq!(out.stdout, "top secret\r\n\u{1F512}".as_bytes());

    let piped = env.run("git-seal", &dir, &["encrypt", "-"], Some(b"from stdin"));
    assert!(piped.status.success(), "{}", stderr(&piped));
    let opened = env.run(
        "git-seal",
        &dir,
        &["decrypt", "-", "--out", "plain.out"],
        Some(&piped.stdout),
    );
    assert!(opened.status.success(), "{}", stderr(&opened));
    assert!(opened.stdout.is_empty());
    assert_eq!(std::fs::read(dir.join("plain.out")).unwrap(), b"from stdin");
    assert_eq!(
        std::fs::metadata(dir.join("plain.out"))
            .unwrap()
            .permissions()
            .mode()
            & 0o077,
        0
    );
}

#[test]
fn encrypt_outside_a_repository_needs_to() {
    let env = Env::new();
    let dir = env.path("loose");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("f"), "x").unwrap();
    let out = env.fails("git-seal", &dir, &["encrypt", "f"], 2);
    assert!(stderr(&out).contains("--to"), "{}", stderr(&out));
    assert!(out.stdout.is_empty());

    // A public key from the vectors; only its private half opens it.
    let out = env.ok(
        "git-seal",
        &dir,
        &[
            "encrypt",
            "f",
            "--to",
            "t6Fut8lZQdptlcV4PsHsV1wqMHga43pxdHKPzc3g1CU=",
        ],
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["recipients"][0]["kid"], "k_b3b9e069a8d3a8c9");
    std::fs::write(dir.join("f.sealed"), &out.stdout).unwrap();
    let mut env = env;
    env.set(
        "GIT_SEAL_KEK",
        "8d56d558cdb694526393aff471ce40cbed74c6e66f4ac04d0e80de8a3c70bbce",
    );
    assert_eq!(
        env.ok("git-seal", &dir, &["decrypt", "f.sealed"]).stdout,
        b"x"
    );
    let bad = env.fails(
        "git-seal",
        &dir,
        &["encrypt", "f", "--to", "k_0000000000000000"],
        1,
    );
    assert!(
        stderr(&bad).contains("k_0000000000000000"),
        "{}",
        stderr(&bad)
    );
}

/// Every bad input: exit 1, an error naming the file (and kid), no output.
#[test]
fn decrypt_failures_name_file_and_kid_and_write_nothing() {
    let mut env = Env::new();
    let dir = env.sealed_repo("r");
    let kid = env.kid();
    std::fs::write(dir.join("p"), "payload").unwrap();
    env.seal(&dir, &["encrypt", "p", "--out", "good.sealed"]);
    let good = std::fs::read_to_string(dir.join("good.sealed")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&good).unwrap();

    let mut tampered = json.clone();
    let ct = tampered["ciphertext"].as_str().unwrap().to_owned();
    tampered["ciphertext"] = crate::harness::flip_first(&ct).into();
    let mut malformed = json.clone();
    malformed["nonce"] = "AAAA".into();
    let mut unknown = json.clone();
    unknown["extra"] = 1.into();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "tampered.sealed",
            serde_json::to_string_pretty(&tampered).unwrap(),
            "authentication failed",
        ),
        (
            "malformed.sealed",
            serde_json::to_string_pretty(&malformed).unwrap(),
            "nonce",
        ),
        (
            "unknown.sealed",
            serde_json::to_string_pretty(&unknown).unwrap(),
            "extra",
        ),
        ("plain.sealed", "just text".to_owned(), "not an envelope"),
    ];
    for (name, text, expect) in cases {
        std::fs::write(dir.join(name), text).unwrap();
        let out = env.fails("git-seal", &dir, &["decrypt", name, "--out", "result"], 1);
        let err = stderr(&out);
        assert!(err.contains(name) && err.contains(expect), "{name}: {err}");
        assert!(out.stdout.is_empty());
        assert!(
            !dir.join("result").exists(),
            "{name}: partial output written"
        );
    }

    // Wrong key: sealed to someone else, opened here.
    let other = env.ok(
        "git-seal",
        &dir,
        &[
            "encrypt",
            "p",
            "--to",
            "UQ0Q+jwgni+eC92lAlKSt0V6WgvD9pJhZ9hfNkLXkB8=",
        ],
    );
    std::fs::write(dir.join("other.sealed"), &other.stdout).unwrap();
    let out = env.fails("git-seal", &dir, &["decrypt", "other.sealed"], 1);
    let err = stderr(&out);
    assert!(
        err.contains("other.sealed")
            && err.contains("wrapped to k_5b3de0b0f5d75424")
            && err.contains(&format!("keys available here: {kid}")),
        "{err}"
    );
    assert!(out.stdout.is_empty());

    // Unreadable (too open) key file: refused with the fix.
    let key_file = env.key_dir.join(format!("{kid}.key"));
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = env.fails("git-seal", &dir, &["decrypt", "good.sealed"], 1);
    let err = stderr(&out);
    assert!(err.contains(&kid) && err.contains("chmod 600"), "{err}");
    assert!(out.stdout.is_empty());
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();

    // A junk GIT_SEAL_KEK is an error that never echoes the value.
    env.git(&dir, &["config", "seal.provider", "env"]);
    env.set("GIT_SEAL_KEK", "not-a-key-SENTINEL");
    let out = env.fails("git-seal", &dir, &["decrypt", "good.sealed"], 1);
    assert!(
        !stderr(&out).contains("SENTINEL") && stderr(&out).contains("GIT_SEAL_KEK"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn env_provider_serves_the_same_kek_as_the_key_file() {
    let mut env = Env::new();
    let dir = env.sealed_repo("r");
    let kid = env.kid();
    std::fs::write(dir.join("p"), "payload").unwrap();
    env.seal(&dir, &["encrypt", "p", "--out", "p.sealed"]);
    let hex = std::fs::read_to_string(env.key_dir.join(format!("{kid}.key"))).unwrap();
    env.hide_keys();
    env.fails("git-seal", &dir, &["decrypt", "p.sealed"], 1);
    env.set(
        "GIT_SEAL_KEK",
        &format!(
            "6bd4e596c3e0bc5a9407054e47782ef33f33ed695a918501bb8f0d283db99ac6, {}",
            hex.trim()
        ),
    );
    // The clone was set up for key files: init does not flip it silently.
    let out = env.fails("git-seal", &dir, &["init", "--provider", "env"], 1);
    let err = stderr(&out);
    assert!(
        err.contains("set up for the file provider")
            && err.contains("git seal rotate --provider env")
            && err.contains("git seal init --provider env --force"),
        "{err}"
    );
    assert_eq!(env.git(&dir, &["config", "seal.provider"]).trim(), "file");
    env.seal(&dir, &["init", "--provider", "env", "--force"]);
    assert_eq!(env.git(&dir, &["config", "seal.provider"]).trim(), "env");
    assert_eq!(
        env.ok("git-seal", &dir, &["decrypt", "p.sealed"]).stdout,
        b"payload"
    );
}

#[test]
fn status_reports_keks_sealed_files_and_state() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    let kid = env.kid();
    std::fs::create_dir_all(dir.join("secrets")).unwrap();
    std::fs::write(dir.join("secrets/a.env"), "A=1\n").unwrap();
    env.git(&dir, &["add", "secrets"]);
    env.git(&dir, &["commit", "-q", "-m", "secret"]);
    let json: serde_json::Value =
        serde_json::from_str(&env.seal(&dir, &["status", "--json"])).unwrap();
    assert_eq!(json["active_kid"], kid.as_str());
    assert_eq!(json["provider"], "file");
    assert_eq!(json["keks"][0]["usable_here"], true);
    assert_eq!(json["sealed_files"], 1);
    assert_eq!(json["sealed_in_head"][&kid], 1);
    assert_eq!(json["locked"], serde_json::json!([]));
    assert_eq!(json["drivers_missing"], serde_json::json!([]));
    assert_eq!(json["audit"]["verified"], true);
    assert_eq!(
        json["audit"]["tip"].as_str().unwrap(),
        env.git(&dir, &["rev-parse", "refs/seal/audit"]).trim()
    );
    let text = env.seal(&dir, &["status"]);
    assert!(text.contains("entries, verified"), "{text}");
    assert!(
        text.contains(&kid)
            && text.contains("usable here: yes")
            && text.contains("work tree: unlocked"),
        "{text}"
    );
}

#[test]
fn commands_act_on_the_repository_git_dir_and_git_work_tree_name() {
    let mut env = Env::new();
    let a = env.sealed_repo("a");
    let b = env.sealed_repo("b");
    write_file(&a, "secrets/x.env", b"X=1\n");
    env.git(&a, &["add", "secrets"]);
    env.git(&a, &["commit", "-q", "-m", "secret"]);
    env.set("GIT_DIR", a.join(".git").to_str().unwrap());
    env.set("GIT_WORK_TREE", a.to_str().unwrap());
    // Run from inside the other repository, and from outside any.
    for cwd in [b.clone(), env.tmp.path().to_owned()] {
        let status = env.seal(&cwd, &["status", "--json"]);
        let json: serde_json::Value = serde_json::from_str(&status).unwrap();
        assert_eq!(json["sealed_files"], 1, "{status}");
        env.seal(&cwd, &["lock"]);
        assert!(is_envelope(
            &std::fs::read(a.join("secrets/x.env")).unwrap()
        ));
        env.seal(&cwd, &["unlock"]);
        assert_eq!(std::fs::read(a.join("secrets/x.env")).unwrap(), b"X=1\n");
        let log = env.seal(&cwd, &["audit", "log"]);
        assert!(log.contains("secrets/x.env"), "{log}");
    }
    env.unset("GIT_DIR");
    env.unset("GIT_WORK_TREE");
    let status = env.seal(&b, &["status", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(json["sealed_files"], 0, "{status}");
}

#[test]
fn help_explains_commands() {
    let env = Env::new();
    let out = stdout(&env.ok("git-seal", env.tmp.path(), &["--help"]));
    for word in ["init", "status", "encrypt", "decrypt", "lock", "unlock"] {
        assert!(out.contains(word), "{out}");
    }
    let out = stdout(&env.ok("git-seal", env.tmp.path(), &["init", "--help"]));
    assert!(
        out.contains("--provider") && out.contains("PATTERN"),
        "{out}"
    );
    env.fails("git-seal", env.tmp.path(), &["no-such-command"], 2);
}

/// A Python interpreter with the `cryptography` package, if there is one.
pub(crate) fn python_with_cryptography() -> Option<String> {
    ["python3", "/usr/bin/python3"]
        .into_iter()
        .map(str::to_owned)
        .find(|py| {
            std::process::Command::new(py)
                .args(["-c", "import cryptography"])
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

/// docs/envelope.md promises that envelopes open without git-seal.
#[test]
fn documented_python_script_opens_git_seal_envelopes() {
    let Some(python) = python_with_cryptography() else {
        assert!(
            !crate::harness::in_ci(),
            "CI must have python3-cryptography (see .ci/run)"
        );
        eprintln!("skipping: no python3 with the cryptography package");
        return;
    };
    let mut env = Env::new();
    let dir = env.sealed_repo("r");
    let kid = env.kid();
    let hex = std::fs::read_to_string(env.key_dir.join(format!("{kid}.key"))).unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/open_envelope.py");
    let plain: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(dir.join("bin"), &plain).unwrap();
    for aad in [None, Some("scope:über ✓")] {
        let mut args = vec!["encrypt", "bin", "--out", "bin.sealed"];
        if let Some(aad) = aad {
            args.extend(["--aad", aad]);
        }
        env.seal(&dir, &args);
        env.set("GIT_SEAL_KEK", hex.trim());
        let out = env.run(
            &python,
            &dir,
            &[script.to_str().unwrap(), "bin.sealed"],
            None,
        );
        env.unset("GIT_SEAL_KEK");
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(out.stdout, plain, "aad {aad:?}");
    }
    // A blob committed through the filter opens the same way.
    std::fs::create_dir_all(dir.join("secrets")).unwrap();
    std::fs::write(dir.join("secrets/x"), "via git\n").unwrap();
    env.git(&dir, &["add", "secrets"]);
    env.git(&dir, &["commit", "-q", "-m", "x"]);
    let blob = env
        .ok("git", &dir, &["cat-file", "-p", "HEAD:secrets/x"])
        .stdout;
    std::fs::write(dir.join("blob.sealed"), blob).unwrap();
    env.set("GIT_SEAL_KEK", hex.trim());
    let out = env.run(
        &python,
        &dir,
        &[script.to_str().unwrap(), "blob.sealed"],
        None,
    );
    assert_eq!(stdout(&out), "via git\n", "{}", stderr(&out));
    // Many files in one `git add`: later envelopes come from wrap keys the
    // filter prepared ahead (a different code path); they open the same.
    for i in 0..12 {
        std::fs::write(dir.join(format!("secrets/many{i}")), format!("file {i}\n")).unwrap();
    }
    env.git(&dir, &["add", "secrets"]);
    env.git(&dir, &["commit", "-q", "-m", "many"]);
    for i in 0..12 {
        let blob = env
            .ok(
                "git",
                &dir,
                &["cat-file", "-p", &format!("HEAD:secrets/many{i}")],
            )
            .stdout;
        std::fs::write(dir.join("many.sealed"), blob).unwrap();
        let out = env.run(
            &python,
            &dir,
            &[script.to_str().unwrap(), "many.sealed"],
            None,
        );
        assert_eq!(stdout(&out), format!("file {i}\n"), "{}", stderr(&out));
    }
    // And a tampered one does not.
    let text = std::fs::read_to_string(dir.join("blob.sealed")).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["aad"] = "forged".into();
    std::fs::write(
        dir.join("forged.sealed"),
        serde_json::to_string(&json).unwrap(),
    )
    .unwrap();
    let out = env.run(
        &python,
        &dir,
        &[script.to_str().unwrap(), "forged.sealed"],
        None,
    );
    assert!(!out.status.success() && out.stdout.is_empty());
}

/// Every `git seal …` command the CI templates and the pre-commit
/// manifest run exists (its `--help` succeeds), so they cannot rot.
#[test]
fn templates_name_commands_that_exist() {
    let env = Env::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = [
        "templates/github/git-seal.yml",
        "templates/gitlab/git-seal.gitlab-ci.yml",
        ".pre-commit-hooks.yaml",
    ];
    let mut seen = 0;
    for file in files {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        for line in text.lines() {
            for marker in ["git seal ", "git-seal hook "] {
                let Some(at) = line.find(marker) else {
                    continue;
                };
                let words: Vec<&str> = line[at + marker.len()..]
                    .split_whitespace()
                    .take_while(|w| w.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
                    .collect();
                let mut args: Vec<&str> = if marker == "git-seal hook " {
                    vec!["hook"]
                } else {
                    words.iter().take(2).copied().collect()
                };
                if args.is_empty() {
                    continue;
                }
                args.push("--help");
                env.ok("git-seal", env.tmp.path(), &args);
                seen += 1;
            }
        }
    }
    assert!(seen >= 5, "found only {seen} commands in {files:?}");
}

/// `encrypt` seals a large file piece by piece, file to file: `decrypt`
/// and the documented Python script both open it, with and without aad.
#[test]
fn large_file_encrypts_file_to_file_and_opens_anywhere() {
    let mut env = Env::new();
    let dir = env.sealed_repo("r");
    let kid = env.kid();
    // 3 MiB + 5: several pieces, and neither a base64 group nor an AES
    // block divides it.
    let plain: Vec<u8> = (0..3 * 1024 * 1024 + 5u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(dir.join("big.bin"), &plain).unwrap();
    let python = python_with_cryptography();
    for aad in [None, Some("scope:big")] {
        let mut args = vec!["encrypt", "big.bin", "--out", "big.sealed"];
        args.extend(aad.iter().flat_map(|a| ["--aad", a]));
        env.seal(&dir, &args);
        let sealed = std::fs::read(dir.join("big.sealed")).unwrap();
        assert!(crate::harness::is_envelope(&sealed));
        env.seal(&dir, &["decrypt", "big.sealed", "--out", "big.opened"]);
        assert!(
            std::fs::read(dir.join("big.opened")).unwrap() == plain,
            "aad {aad:?}"
        );
        let Some(python) = &python else { continue };
        let hex = std::fs::read_to_string(env.key_dir.join(format!("{kid}.key"))).unwrap();
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/open_envelope.py");
        env.set("GIT_SEAL_KEK", hex.trim());
        let out = env.run(
            python,
            &dir,
            &[script.to_str().unwrap(), "big.sealed"],
            None,
        );
        env.unset("GIT_SEAL_KEK");
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(out.stdout == plain, "python, aad {aad:?}");
    }
    // From standard input the same (the harness writes all of stdin
    // before it reads stdout, so the envelope goes to a file).
    let args = ["encrypt", "-", "--out", "piped.sealed"];
    let out = env.run("git-seal", &dir, &args, Some(&plain));
    assert!(out.status.success(), "{}", stderr(&out));
    env.seal(&dir, &["decrypt", "piped.sealed", "--out", "piped.opened"]);
    assert!(std::fs::read(dir.join("piped.opened")).unwrap() == plain);
}

/// `decrypt --out` decrypts as it reads, into a temporary file renamed into
/// place only once the tag verifies: a change found only at the end (the
/// tag, the aad, the last ciphertext) leaves an earlier file of that name
/// as it was and no temporary file behind, as do a wrong key and a cut
/// envelope; fields in another order still open.
#[test]
fn decrypt_to_a_file_releases_nothing_before_the_tag_verifies() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    let plain: Vec<u8> = (0..5 * 1024 * 1024 + 3u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    std::fs::write(dir.join("big.bin"), &plain).unwrap();
    let args = [
        "encrypt",
        "big.bin",
        "--aad",
        "scope:big",
        "--out",
        "big.sealed",
    ];
    env.seal(&dir, &args);
    let text = std::fs::read_to_string(dir.join("big.sealed")).unwrap();
    // Canonical text: the ciphertext's string, then the tag's, then the aad.
    let changed = |from: &str, to: &str| {
        assert!(text.contains(from), "{from}");
        text.replacen(from, to, 1)
    };
    let tag = text.split("\"tag\": \"").nth(1).unwrap()[..22].to_owned();
    let ct_end = text.find("\",\n  \"tag\"").unwrap();
    let last = &text[ct_end - 8..ct_end];
    let mut reordered: serde_json::Value = serde_json::from_str(&text).unwrap();
    reordered["aad"] = "scope:big".into();
    let cases = [
        (
            "tag.sealed",
            changed(&tag, &crate::harness::flip_first(&tag)),
            "authentication failed",
        ),
        (
            "aad.sealed",
            changed("\"scope:big\"", "\"scope:bog\""),
            "authentication failed",
        ),
        (
            "last.sealed",
            changed(last, &crate::harness::flip_first(last)),
            "authentication failed",
        ),
        (
            "cut.sealed",
            text[..text.len() / 2].to_owned(),
            "not a valid git-seal envelope",
        ),
    ];
    std::fs::write(dir.join("result"), "earlier").unwrap();
    for (name, bad, expect) in &cases {
        std::fs::write(dir.join(name), bad).unwrap();
        let out = env.fails("git-seal", &dir, &["decrypt", name, "--out", "result"], 1);
        let err = stderr(&out);
        assert!(err.contains(name) && err.contains(expect), "{name}: {err}");
        assert_eq!(
            std::fs::read(dir.join("result")).unwrap(),
            b"earlier",
            "{name}"
        );
        let temps = crate::harness::names_starting(&dir, ".git-seal-");
        assert!(temps.is_empty(), "{name}: {temps:?} left behind");
    }
    // Wrong key: said before anything is decrypted.
    let other = [
        "encrypt",
        "big.bin",
        "--to",
        "UQ0Q+jwgni+eC92lAlKSt0V6WgvD9pJhZ9hfNkLXkB8=",
        "--out",
        "other.sealed",
    ];
    env.seal(&dir, &other);
    let out = env.fails(
        "git-seal",
        &dir,
        &["decrypt", "other.sealed", "--out", "result"],
        1,
    );
    assert!(
        stderr(&out).contains("wrapped to k_5b3de0b0f5d75424"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read(dir.join("result")).unwrap(), b"earlier");
    // Keys in another order (alphabetical: the nonce and recipients after
    // the ciphertext) are held and opened whole.
    let sorted = serde_json::to_string_pretty(&reordered).unwrap();
    assert!(sorted.find("\"nonce\"") > sorted.find("\"ciphertext\""));
    std::fs::write(dir.join("sorted.sealed"), sorted).unwrap();
    env.seal(&dir, &["decrypt", "sorted.sealed", "--out", "result"]);
    assert!(std::fs::read(dir.join("result")).unwrap() == plain);
    env.seal(&dir, &["decrypt", "big.sealed", "--out", "opened"]);
    assert!(std::fs::read(dir.join("opened")).unwrap() == plain);
    let mode = std::fs::metadata(dir.join("opened"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "a new plaintext file is private");
}
