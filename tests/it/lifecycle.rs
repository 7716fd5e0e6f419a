//! The key lifecycle through the real binary and real Git: `kek`,
//! `rotate` and `recipients`, what they store, and how they fail.

use std::path::Path;

use serde_json::Value;

use crate::harness::{stderr, stdout, write_file, Env};

/// A sealed repository with three committed secrets.
fn repo_with_secrets(env: &Env) -> std::path::PathBuf {
    let dir = env.sealed_repo("r");
    for i in 0..3 {
        write_file(
            &dir,
            &format!("secrets/s{i}.env"),
            format!("password-{i}\n").as_bytes(),
        );
    }
    env.git(&dir, &["add", "secrets"]);
    env.git(&dir, &["commit", "-q", "-m", "secrets"]);
    dir
}

fn kids_of(envelope: &Value) -> Vec<String> {
    envelope["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kid"].as_str().unwrap().to_owned())
        .collect()
}

fn kek_list(env: &Env, dir: &Path) -> Vec<Value> {
    let out = env.seal(dir, &["kek", "list", "--json"]);
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["schema"], "git-seal.kek-list/v1");
    doc["keks"].as_array().unwrap().clone()
}

fn status_of<'a>(keks: &'a [Value], kid: &str) -> &'a str {
    keks.iter()
        .find(|k| k["kid"] == kid)
        .unwrap_or_else(|| panic!("{kid} not listed: {keks:?}"))["status"]
        .as_str()
        .unwrap()
}

/// The one active KEK's kid.
fn active(env: &Env, dir: &Path) -> String {
    let keks = kek_list(env, dir);
    let active: Vec<&Value> = keks.iter().filter(|k| k["status"] == "active").collect();
    assert_eq!(active.len(), 1, "{keks:?}");
    active[0]["kid"].as_str().unwrap().to_owned()
}

/// The private key hex of `kid` (in use or archived).
fn key_hex(env: &Env, kid: &str) -> String {
    for place in [env.key_dir.clone(), env.key_dir.join("archive")] {
        if let Ok(text) = std::fs::read_to_string(place.join(format!("{kid}.key"))) {
            return text.trim().to_owned();
        }
    }
    panic!("no key file for {kid}");
}

/// `git status --porcelain`: the work tree must equal the index.
#[track_caller]
fn assert_work_tree_clean(env: &Env, dir: &Path) -> String {
    let status = env.git(dir, &["status", "--porcelain"]);
    for line in status.lines() {
        assert_eq!(
            line.as_bytes()[1],
            b' ',
            "work tree differs from the index:\n{status}"
        );
    }
    status
}

/// The last audit entry, as JSON.
fn last_entry(env: &Env, dir: &Path) -> Value {
    let text = env.git(dir, &["cat-file", "-p", "refs/seal/audit:entry.json"]);
    serde_json::from_str(&text).unwrap()
}

#[test]
fn rotate_rewraps_the_index_and_history_still_opens() {
    let env = Env::new();
    let dir = repo_with_secrets(&env);
    let old = env.kid();
    let before: Vec<Value> = (0..3)
        .map(|i| env.envelope_at(&dir, &format!("HEAD:secrets/s{i}.env")))
        .collect();

    let out = env.seal(&dir, &["rotate"]);
    assert!(out.contains(&format!("rotated {old} -> ")), "{out}");
    let new = active(&env, &dir);
    assert_ne!(new, old);
    let keks = kek_list(&env, &dir);
    assert_eq!(status_of(&keks, &old), "retired");
    assert!(
        env.key_dir
            .join("archive")
            .join(format!("{old}.key"))
            .exists(),
        "the old key file is archived"
    );

    // Only index changes: the envelopes and the records, staged.
    let status = assert_work_tree_clean(&env, &dir);
    for i in 0..3 {
        assert!(status.contains(&format!("M  secrets/s{i}.env")), "{status}");
    }
    assert!(
        status.contains(&format!("A  .seal/keys/{new}.json")),
        "{status}"
    );
    assert!(
        status.contains(&format!("M  .seal/keys/{old}.json")),
        "{status}"
    );

    // Byte-identical content; only the recipients changed.
    for (i, was) in before.iter().enumerate() {
        let now = env.envelope_at(&dir, &format!(":secrets/s{i}.env"));
        for field in ["nonce", "ciphertext", "tag"] {
            assert_eq!(now[field], was[field], "{field} of s{i}");
        }
        assert_eq!(kids_of(&now), vec![new.clone()]);
    }
    let entry = last_entry(&env, &dir);
    assert_eq!(entry["event"], "rotate");
    assert_eq!(entry["data"]["from"], old.as_str());
    assert_eq!(entry["data"]["to"], new.as_str());
    assert_eq!(entry["data"]["rewrapped"], 3);
    let log = env.seal(&dir, &["audit", "log"]);
    assert!(
        log.contains(&format!("{old} -> {new}: 3 re-wrapped, 0 re-encrypted")),
        "{log}"
    );
    let index_tree = env.git(&dir, &["write-tree"]);
    assert_eq!(entry["data"]["index_tree"], index_tree.trim());

    env.git(&dir, &["commit", "-q", "-m", "rotate"]);
    assert_eq!(env.git(&dir, &["status", "--porcelain"]), "");
    for i in 0..3 {
        let blob = env.envelope_at(&dir, &format!("HEAD:secrets/s{i}.env"));
        assert_eq!(kids_of(&blob), vec![new.clone()]);
    }
    // The new private key alone opens HEAD; the archived one opens HEAD~1.
    let mut only_new = Env::new();
    only_new.set("GIT_SEAL_KEK", &key_hex(&env, &new));
    let sealed = env.path("s0.sealed");
    std::fs::write(
        &sealed,
        env.ok("git", &dir, &["cat-file", "-p", "HEAD:secrets/s0.env"])
            .stdout,
    )
    .unwrap();
    let opened = only_new.ok(
        "git-seal",
        only_new.tmp.path(),
        &["decrypt", sealed.to_str().unwrap()],
    );
    assert_eq!(stdout(&opened), "password-0\n");
    env.git(&dir, &["checkout", "-q", "HEAD~1"]);
    assert_eq!(
        std::fs::read_to_string(dir.join("secrets/s1.env")).unwrap(),
        "password-1\n"
    );
    env.git(&dir, &["checkout", "-q", "main"]);
    env.seal(&dir, &["audit", "verify"]);
    env.seal(&dir, &["check"]);
}

#[test]
fn rotate_opens_with_the_python_opener_and_reencrypt_changes_ciphertext() {
    let Some(python) = crate::basics::python_with_cryptography() else {
        assert!(
            !crate::harness::in_ci(),
            "CI must have python3-cryptography"
        );
        eprintln!("skipping: no python3 with the cryptography package");
        return;
    };
    let mut env = Env::new();
    let dir = repo_with_secrets(&env);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/open_envelope.py");
    // Re-wrapped, then re-encrypted: after each, the new private key alone
    // opens HEAD with the independent opener.
    for reencrypt in [false, true] {
        let before = env.envelope_at(&dir, "HEAD:secrets/s2.env");
        let mut args = vec!["rotate"];
        if reencrypt {
            args.push("--reencrypt");
        }
        env.seal(&dir, &args);
        let new = active(&env, &dir);
        let now = env.envelope_at(&dir, ":secrets/s2.env");
        assert_eq!(now["ciphertext"] != before["ciphertext"], reencrypt);
        assert_eq!(now["nonce"] != before["nonce"], reencrypt);
        let counted = if reencrypt {
            "reencrypted"
        } else {
            "rewrapped"
        };
        assert_eq!(last_entry(&env, &dir)["data"][counted], 3);
        env.git(&dir, &["commit", "-q", "-m", "rotate"]);
        assert_eq!(env.git(&dir, &["status", "--porcelain"]), "");
        env.set("GIT_SEAL_KEK", &key_hex(&env, &new));
        opens_with_python(&env, &dir, &python, &script);
        env.unset("GIT_SEAL_KEK");
    }
}

/// Every HEAD:secrets/sN.env opens with the Python opener and GIT_SEAL_KEK.
fn opens_with_python(env: &Env, dir: &Path, python: &str, script: &Path) {
    for i in 0..3 {
        let sealed = env.path("x.sealed");
        std::fs::write(
            &sealed,
            env.ok(
                "git",
                dir,
                &["cat-file", "-p", &format!("HEAD:secrets/s{i}.env")],
            )
            .stdout,
        )
        .unwrap();
        let out = env.run(
            python,
            dir,
            &[script.to_str().unwrap(), sealed.to_str().unwrap()],
            None,
        );
        assert_eq!(stdout(&out), format!("password-{i}\n"), "{}", stderr(&out));
    }
}

#[test]
fn rotate_refuses_without_the_old_private_key_or_with_unknown_kids() {
    let env = Env::new();
    let dir = repo_with_secrets(&env);
    let old = env.kid();
    let hidden = env.hide_keys();
    let out = env.fails("git-seal", &dir, &["rotate", "--from", &old], 1);
    let err = stderr(&out);
    assert!(err.contains(&old) && err.contains("not here"), "{err}");
    assert!(
        err.contains("git seal kek import"),
        "names the way to bring the key: {err}"
    );
    env.restore_keys(&hidden);
    assert_eq!(
        env.git(&dir, &["status", "--porcelain"]),
        "",
        "nothing changed"
    );
    assert!(!dir.join(".git/seal/lifecycle.json").exists());

    let out = env.fails(
        "git-seal",
        &dir,
        &["rotate", "--from", "k_0000000000000000"],
        1,
    );
    assert!(
        stderr(&out).contains("k_0000000000000000 is not a KEK listed"),
        "{}",
        stderr(&out)
    );
    let out = env.fails(
        "git-seal",
        &dir,
        &["rotate", "--to", "k_0000000000000000"],
        1,
    );
    assert!(
        stderr(&out).contains("k_0000000000000000"),
        "{}",
        stderr(&out)
    );
    let out = env.fails("git-seal", &dir, &["rotate", "--from", "nonsense"], 2);
    assert!(stderr(&out).contains("not a key id"), "{}", stderr(&out));
    assert_eq!(env.git(&dir, &["status", "--porcelain"]), "");
}

#[test]
fn kek_add_makes_a_pending_version_and_rotate_to_it() {
    let env = Env::new();
    let dir = repo_with_secrets(&env);
    let old = env.kid();
    let out = env.seal(&dir, &["kek", "add"]);
    let keks = kek_list(&env, &dir);
    let pending: Vec<&Value> = keks.iter().filter(|k| k["status"] == "pending").collect();
    assert_eq!(pending.len(), 1, "{out}\n{keks:?}");
    let new = pending[0]["kid"].as_str().unwrap().to_owned();
    assert_eq!(pending[0]["version"], 2);
    assert_eq!(pending[0]["here"], true);
    assert_eq!(pending[0]["envelopes_head"], 0);
    let listed_old = keks.iter().find(|k| k["kid"] == old.as_str()).unwrap();
    assert_eq!(listed_old["envelopes_head"], 3);
    assert_eq!(listed_old["envelopes_index"], 3);
    assert!(
        listed_old["due"].as_str().unwrap().starts_with("2028-"),
        "{listed_old}"
    );
    let entry = last_entry(&env, &dir);
    assert_eq!(entry["event"], "kek-add");
    assert_eq!(entry["data"]["kid"], new.as_str());
    assert_eq!(entry["data"]["imported"], false);
    assert_eq!(
        entry["data"]["index_tree"],
        env.git(&dir, &["write-tree"]).trim()
    );
    assert!(env
        .git(&dir, &["status", "--porcelain"])
        .contains(&format!("A  .seal/keys/{new}.json")));
    // New envelopes still go to the active KEK only.
    write_file(&dir, "secrets/new.env", b"fresh\n");
    env.git(&dir, &["add", "secrets/new.env"]);
    assert_eq!(
        kids_of(&env.envelope_at(&dir, ":secrets/new.env")),
        vec![old.clone()]
    );

    env.seal(&dir, &["rotate", "--to", &new]);
    assert_eq!(active(&env, &dir), new);
    for path in ["secrets/s0.env", "secrets/new.env"] {
        assert_eq!(
            kids_of(&env.envelope_at(&dir, &format!(":{path}"))),
            vec![new.clone()]
        );
    }
    assert_work_tree_clean(&env, &dir);
    // Rotating away from the retired KEK again re-wraps what still names
    // it (say, a branch made before the rotation), and makes nothing new.
    env.git(&dir, &["commit", "-q", "-m", "rotate"]);
    env.git(&dir, &["checkout", "-q", "-b", "old", "HEAD~1"]);
    env.git(&dir, &["checkout", "-q", "main", "--", ".seal"]);
    env.seal(&dir, &["rotate", "--from", &old]);
    assert_eq!(
        kids_of(&env.envelope_at(&dir, ":secrets/s1.env")),
        vec![new.clone()]
    );
    assert_eq!(kek_list(&env, &dir).len(), 2, "no new KEK");
    let out = env.fails(
        "git-seal",
        &dir,
        &["rotate", "--from", &old, "--to", &old],
        1,
    );
    assert!(
        stderr(&out).contains("the KEK being replaced"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_teammate_public_key_must_be_a_usable_x25519_key() {
    let env = Env::new();
    let dir = repo_with_secrets(&env);
    let cases = [
        ("not base64!", "not canonical base64"),
        ("AAAA", "3 bytes"),
        // The all-zero point is of low order: no private key matches it.
        ("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "low-order"),
    ];
    for (key, why) in cases {
        let out = env.fails(
            "git-seal",
            &dir,
            &["kek", "add", "--public-key", key, "--name", "bob"],
            1,
        );
        assert!(stderr(&out).contains(why), "{key}: {}", stderr(&out));
    }
    let private = "8d56d558cdb694526393aff471ce40cbed74c6e66f4ac04d0e80de8a3c70bbce";
    let out = env.fails(
        "git-seal",
        &dir,
        &["kek", "add", "--public-key", private],
        1,
    );
    let err = stderr(&out);
    assert!(
        err.contains("PRIVATE key") && !err.contains(private),
        "{err}"
    );
    assert_eq!(env.git(&dir, &["status", "--porcelain"]), "");
}

#[test]
fn export_and_import_move_a_private_half_without_printing_it() {
    let env = Env::new();
    let dir = repo_with_secrets(&env);
    let kid = env.kid();
    let hex = key_hex(&env, &kid);
    let file = env.path("handover.key");
    let out = env.ok(
        "git-seal",
        &dir,
        &["kek", "export", &kid, "--out", file.to_str().unwrap()],
    );
    assert!(!stdout(&out).contains(&hex) && !stderr(&out).contains(&hex));
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let out = env.fails(
        "git-seal",
        &dir,
        &["kek", "export", &kid, "--out", file.to_str().unwrap()],
        1,
    );
    assert!(
        stderr(&out).contains("never overwrites"),
        "{}",
        stderr(&out)
    );
    env.fails("git-seal", &dir, &["kek", "export", &kid, "--out", "-"], 2);

    // A teammate's machine: its own HOME and key directory.
    let teammate = Env::new();
    let clone = teammate.clone_repo(&dir, "clone");
    let out = teammate.ok(
        "git-seal",
        &clone,
        &["kek", "import", file.to_str().unwrap()],
    );
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(said.contains(&kid) && !said.contains(&hex), "{said}");
    assert!(said.contains("lists"), "{said}");
    assert_eq!(key_hex(&teammate, &kid), hex);
    teammate.seal(&clone, &["init"]);
    assert_eq!(
        std::fs::read_to_string(clone.join("secrets/s1.env")).unwrap(),
        "password-1\n"
    );
    let out = teammate.ok(
        "git-seal",
        &clone,
        &["kek", "import", file.to_str().unwrap()],
    );
    assert!(stdout(&out).contains("already here"), "{}", stdout(&out));
    std::fs::write(env.path("junk.key"), "zz\n").unwrap();
    teammate.fails(
        "git-seal",
        &clone,
        &["kek", "import", env.path("junk.key").to_str().unwrap()],
        1,
    );
}

/// A recovery key kept offline: `recipients add PUBLIC_KEY` re-wraps every
/// envelope to it, and that key alone opens a fresh clone.
#[test]
fn a_recovery_key_alone_opens_a_fresh_clone() {
    let env = Env::new();
    let dir = repo_with_secrets(&env);
    let team = env.kid();
    let before = env.envelope_at(&dir, "HEAD:secrets/s0.env");
    let offline = Env::new();
    let public = offline
        .seal(offline.tmp.path(), &["kek", "keygen"])
        .trim()
        .to_owned();
    let recovery = offline.kid();
    let out = env.seal(&dir, &["recipients", "add", &public, "--name", "recovery"]);
    assert!(out.contains("3 envelope(s) re-wrapped"), "{out}");
    let now = env.envelope_at(&dir, ":secrets/s0.env");
    assert_eq!(now["ciphertext"], before["ciphertext"]);
    assert_eq!(kids_of(&now), vec![team.clone(), recovery.clone()]);
    let listing = env.seal(&dir, &["recipients", "list"]);
    assert!(
        listing.contains(&format!("{recovery} (recovery)")),
        "{listing}"
    );
    assert_eq!(last_entry(&env, &dir)["event"], "recipient-add");
    assert_work_tree_clean(&env, &dir);
    env.git(&dir, &["commit", "-q", "-m", "recovery key"]);
    // New files go to both.
    write_file(&dir, "secrets/later.env", b"later\n");
    env.git(&dir, &["add", "secrets"]);
    env.git(&dir, &["commit", "-q", "-m", "later"]);

    let mut rescue = Env::new();
    rescue.set("GIT_SEAL_KEK", &key_hex(&offline, &recovery));
    let clone = rescue.clone_repo(&dir, "rescued");
    rescue.seal(&clone, &["init", "--provider", "env"]);
    for (path, plain) in [
        ("secrets/s2.env", "password-2\n"),
        ("secrets/later.env", "later\n"),
    ] {
        assert_eq!(
            std::fs::read_to_string(clone.join(path)).unwrap(),
            plain,
            "{path}"
        );
    }
}

/// Revoking a teammate: no envelope in HEAD opens with their key after the
/// commit, and the command says what history stays readable to them.
#[test]
fn removing_a_teammate_reencrypts_and_reports_readable_history() {
    let env = Env::new();
    let dir = repo_with_secrets(&env);
    let team = env.kid();
    let alice = Env::new();
    let public = alice
        .seal(alice.tmp.path(), &["kek", "keygen"])
        .trim()
        .to_owned();
    let alice_kid = alice.kid();
    env.seal(
        &dir,
        &["kek", "add", "--public-key", &public, "--name", "alice"],
    );
    env.seal(&dir, &["recipients", "add", &alice_kid]);
    env.git(&dir, &["commit", "-q", "-m", "alice joins"]);
    let shared = env.envelope_at(&dir, "HEAD:secrets/s0.env");

    let out = env.seal(&dir, &["recipients", "remove", &alice_kid]);
    assert!(out.contains("3 envelope(s) re-encrypted"), "{out}");
    assert!(out.contains("3 blob(s) in history"), "{out}");
    assert!(out.contains("Rotate the secrets themselves"), "{out}");
    let entry = last_entry(&env, &dir);
    assert_eq!(entry["event"], "recipient-remove");
    assert_eq!(entry["data"]["history_blobs"], 3);
    assert_work_tree_clean(&env, &dir);
    env.git(&dir, &["commit", "-q", "-m", "alice leaves"]);
    let now = env.envelope_at(&dir, "HEAD:secrets/s0.env");
    assert_ne!(now["ciphertext"], shared["ciphertext"]);
    assert_eq!(kids_of(&now), vec![team.clone()]);

    let mut with_alice = Env::new();
    with_alice.set("GIT_SEAL_KEK", &key_hex(&alice, &alice_kid));
    for i in 0..3 {
        let sealed = env.path("a.sealed");
        std::fs::write(
            &sealed,
            env.ok(
                "git",
                &dir,
                &["cat-file", "-p", &format!("HEAD:secrets/s{i}.env")],
            )
            .stdout,
        )
        .unwrap();
        with_alice.fails(
            "git-seal",
            with_alice.tmp.path(),
            &["decrypt", sealed.to_str().unwrap()],
            1,
        );
    }
    // The team KEK is now the last recipient: it cannot be removed.
    let out = env.fails("git-seal", &dir, &["recipients", "remove", &team], 1);
    assert!(
        stderr(&out).contains("last default recipient"),
        "{}",
        stderr(&out)
    );
    env.seal(&dir, &["audit", "verify"]);
}

#[test]
fn a_scope_gets_its_own_recipient_and_keeps_its_last_one() {
    let env = Env::new();
    let dir = repo_with_secrets(&env);
    let team = env.kid();
    write_file(&dir, "secrets/prod/db.env", b"prod\n");
    env.git(&dir, &["add", "secrets"]);
    env.git(&dir, &["commit", "-q", "-m", "prod"]);
    let ops = Env::new();
    let public = ops
        .seal(ops.tmp.path(), &["kek", "keygen"])
        .trim()
        .to_owned();
    let ops_kid = ops.kid();
    let out = env.seal(
        &dir,
        &["recipients", "add", &public, "--paths", "secrets/prod/**"],
    );
    assert!(out.contains("1 envelope(s) re-wrapped"), "{out}");
    assert_eq!(
        kids_of(&env.envelope_at(&dir, ":secrets/prod/db.env")),
        vec![team.clone(), ops_kid.clone()]
    );
    assert_eq!(
        kids_of(&env.envelope_at(&dir, ":secrets/s0.env")),
        vec![team.clone()]
    );
    let listing: Value =
        serde_json::from_str(&env.seal(&dir, &["recipients", "list", "--json"])).unwrap();
    assert_eq!(listing["scopes"][0]["paths"][0], "secrets/prod/**");
    env.git(&dir, &["commit", "-q", "-m", "ops key for prod"]);
    env.seal(&dir, &["check"]);
    env.seal(
        &dir,
        &["recipients", "remove", &team, "--paths", "secrets/prod/**"],
    );
    let out = env.fails(
        "git-seal",
        &dir,
        &[
            "recipients",
            "remove",
            &ops_kid,
            "--paths",
            "secrets/prod/**",
        ],
        1,
    );
    assert!(
        stderr(&out).contains("last recipient of the scope"),
        "{}",
        stderr(&out)
    );
    let out = env.fails(
        "git-seal",
        &dir,
        &["recipients", "remove", &ops_kid, "--paths", "other/**"],
        1,
    );
    assert!(
        stderr(&out).contains("no recipients scope"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        kids_of(&env.envelope_at(&dir, ":secrets/prod/db.env")),
        vec![ops_kid.clone()]
    );
    // Dropping a recipient from a scope weakens the policy; the signed
    // `recipient-remove` entry is what approves it, for pre-commit and CI.
    env.git(&dir, &["commit", "-q", "-m", "prod for ops only"]);
    env.seal(&dir, &["check"]);
    // The team no longer opens that scope: it cannot add itself back, and
    // the failed attempt leaves nothing half-done.
    let out = env.fails(
        "git-seal",
        &dir,
        &["recipients", "add", &team, "--paths", "secrets/prod/**"],
        1,
    );
    assert!(
        stderr(&out).contains("secrets/prod/db.env") && stderr(&out).contains("no usable key"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.join(".git/seal/lifecycle.json").exists());
    // A rotation replaces the team KEK wherever it is a recipient.
    env.seal(
        &dir,
        &["recipients", "add", &team, "--paths", "secrets/s0.env"],
    );
    env.git(&dir, &["commit", "-q", "-m", "a scope of one file"]);
    env.seal(&dir, &["rotate"]);
    let new = active(&env, &dir);
    let listing: Value =
        serde_json::from_str(&env.seal(&dir, &["recipients", "list", "--json"])).unwrap();
    assert_eq!(listing["scopes"][0]["kids"], serde_json::json!([new]));
    assert_eq!(listing["scopes"][1]["kids"], serde_json::json!([ops_kid]));
    env.git(&dir, &["commit", "-q", "-m", "rotate"]);
    env.seal(&dir, &["check"]);
}

#[test]
fn kek_verify_names_each_envelope_that_does_not_open() {
    let env = Env::new();
    let dir = repo_with_secrets(&env);
    let kid = env.kid();
    let out = env.seal(&dir, &["kek", "verify", &kid]);
    assert!(
        out.contains("6 envelope(s) in HEAD and the index opened, 0 did not"),
        "{out}"
    );
    // Tamper with one staged envelope's ciphertext (canonical text kept).
    let text = env.git(&dir, &["cat-file", "-p", ":secrets/s1.env"]);
    let blob: Value = serde_json::from_str(&text).unwrap();
    let ciphertext = blob["ciphertext"].as_str().unwrap();
    let tampered = text.replace(ciphertext, &crate::harness::flip_first(ciphertext));
    env.stage_raw(&dir, "secrets/s1.env", tampered.as_bytes());
    let out = env.fails("git-seal", &dir, &["kek", "verify", &kid], 1);
    let text = stdout(&out);
    assert!(
        text.contains(&format!("secrets/s1.env (index): {kid}")),
        "{text}"
    );
    assert!(
        text.contains("5 envelope(s) in HEAD and the index opened, 1 did not"),
        "{text}"
    );
    let hidden = env.hide_keys();
    let out = env.fails("git-seal", &dir, &["kek", "verify", &kid], 1);
    assert!(stdout(&out).contains("not here"), "{}", stdout(&out));
    env.restore_keys(&hidden);
    env.fails(
        "git-seal",
        &dir,
        &["kek", "verify", "k_0000000000000000"],
        1,
    );
}

/// `kek remove` only when nothing in HEAD or the index needs the KEK;
/// `--destroy` erases its private half, after which history sealed only to
/// it stays locked here.
#[test]
fn kek_remove_refuses_needed_keys_and_destroy_erases() {
    let env = Env::new();
    let dir = repo_with_secrets(&env);
    let old = env.kid();
    let out = env.fails("git-seal", &dir, &["kek", "remove", &old], 1);
    assert!(stderr(&out).contains("recipient"), "{}", stderr(&out));
    env.seal(&dir, &["rotate"]);
    // Retired, but HEAD still holds envelopes wrapped to it.
    let out = env.fails("git-seal", &dir, &["kek", "remove", &old], 1);
    let err = stderr(&out);
    assert!(
        err.contains("secrets/s0.env (HEAD)") && err.contains(&old),
        "{err}"
    );
    env.git(&dir, &["commit", "-q", "-m", "rotate"]);
    // Without a terminal, --destroy needs --yes.
    let out = env.fails("git-seal", &dir, &["kek", "remove", &old, "--destroy"], 1);
    assert!(stderr(&out).contains("--yes"), "{}", stderr(&out));
    let archived = env.key_dir.join("archive").join(format!("{old}.key"));
    assert!(archived.exists());
    let out = env.seal(&dir, &["kek", "remove", &old, "--destroy", "--yes"]);
    assert!(
        out.contains("is removed") && out.contains("erased"),
        "{out}"
    );
    assert!(!archived.exists(), "the private half is erased");
    assert_eq!(status_of(&kek_list(&env, &dir), &old), "removed");
    env.git(&dir, &["commit", "-q", "-m", "remove old KEK"]);
    let log = env.seal(&dir, &["audit", "log"]);
    assert!(log.contains(&format!("{old} removed")), "{log}");
    assert!(
        log.contains(&format!("{old}: private half erased (file)")),
        "{log}"
    );
    // History sealed only to it no longer opens here.
    let out = env.ok("git", &dir, &["checkout", "-q", "HEAD~2"]);
    assert!(
        stderr(&out).contains("locked") || stderr(&out).contains("no usable key"),
        "{}",
        stderr(&out)
    );
    assert!(crate::harness::is_envelope(
        &std::fs::read(dir.join("secrets/s0.env")).unwrap()
    ));
    env.git(&dir, &["checkout", "-q", "main"]);
    env.seal(&dir, &["audit", "verify"]);
}

/// Stage an envelope whose tag no longer matches its content at `path`;
/// with `in_work_tree`, write it to the work-tree file too (else that
/// keeps its plaintext).
fn stage_tampered(env: &Env, dir: &Path, path: &str, in_work_tree: bool) {
    let text = env.git(dir, &["cat-file", "-p", &format!(":{path}")]);
    let blob: Value = serde_json::from_str(&text).unwrap();
    let tag = blob["tag"].as_str().unwrap();
    let tampered = text.replace(tag, &crate::harness::flip_first(tag));
    if in_work_tree {
        env.stage_raw(dir, path, tampered.as_bytes());
    } else {
        let aside = env.path("tampered.json");
        std::fs::write(&aside, &tampered).unwrap();
        let id = env.git(
            dir,
            &["hash-object", "-w", "--no-filters", aside.to_str().unwrap()],
        );
        let info = format!("100644,{},{path}", id.trim());
        env.git(dir, &["update-index", "--cacheinfo", &info]);
    }
}

/// The names in the key directory (archive aside).
fn key_files(env: &Env) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(&env.key_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".key"))
        .collect();
    names.sort();
    names
}

/// A rotation that stops half-way (here: another git process holds the
/// index lock when it stages its result) is named by `doctor`, blocks
/// other lifecycle commands, and is finished by running `git seal rotate`
/// again, to the same new KEK.
#[test]
fn an_interrupted_rotation_is_reported_and_finished_by_running_it_again() {
    let env = Env::new();
    let dir = repo_with_secrets(&env);
    let old = env.kid();
    let lock = dir.join(".git/index.lock");
    std::fs::write(&lock, "").unwrap();
    let out = env.fails("git-seal", &dir, &["rotate"], 1);
    assert!(stderr(&out).contains("index.lock"), "{}", stderr(&out));
    std::fs::remove_file(&lock).unwrap();
    let out = env.fails("git-seal", &dir, &["doctor"], 1);
    let said = stdout(&out);
    let prefix = format!("`git seal rotate --from {old} --to ");
    let at = said.find(&prefix).unwrap_or_else(|| panic!("{said}"));
    let new = said[at + prefix.len()..][..18].to_owned();
    assert!(said.contains("was interrupted"), "{said}");
    let out = env.fails("git-seal", &dir, &["recipients", "remove", &old], 1);
    assert!(stderr(&out).contains("was interrupted"), "{}", stderr(&out));

    let out = env.seal(&dir, &["rotate"]);
    assert!(out.contains("finished the interrupted rotation"), "{out}");
    assert!(out.contains(&format!("{old} -> {new}")), "{out}");
    assert_eq!(active(&env, &dir), new);
    assert_eq!(
        kids_of(&env.envelope_at(&dir, ":secrets/s1.env")),
        vec![new]
    );
    assert_work_tree_clean(&env, &dir);
    assert!(!stdout(&env.run("git-seal", &dir, &["doctor"], None)).contains("interrupted"));
}

/// Regression: a rotation refused for an envelope of the index that does
/// not open (its tag altered) wrote a journal and made a key first, so
/// every lifecycle command and `doctor` then said it "was interrupted" and
/// should be run again, which failed the same way. It must refuse before
/// changing anything, name the file, the kid and the fix, and the fix
/// must work.
#[test]
fn rotate_refused_for_a_damaged_envelope_changes_nothing_and_names_the_fix() {
    let env = Env::new();
    let dir = repo_with_secrets(&env);
    let old = env.kid();
    stage_tampered(&env, &dir, "secrets/s1.env", false);
    let status = env.git(&dir, &["status", "--porcelain"]);
    let keys = key_files(&env);
    let records = env.git(&dir, &["ls-files", "-s", ".seal"]);

    let out = env.fails("git-seal", &dir, &["rotate"], 1);
    let err = stderr(&out);
    assert!(
        err.contains("secrets/s1.env")
            && err.contains(&old)
            && err.contains("authentication failed")
            && err.contains("nothing was changed"),
        "{err}"
    );
    assert!(
        err.contains("hint: ") && err.contains("`git restore --staged -- secrets/s1.env`"),
        "{err}"
    );
    assert!(!dir.join(".git/seal/lifecycle.json").exists());
    assert_eq!(key_files(&env), keys, "no key was made");
    assert_eq!(env.git(&dir, &["status", "--porcelain"]), status);
    assert_eq!(env.git(&dir, &["ls-files", "-s", ".seal"]), records);
    assert_eq!(active(&env, &dir), old);
    let doctor = stdout(&env.run("git-seal", &dir, &["doctor"], None));
    assert!(!doctor.contains("interrupted"), "{doctor}");
    // Another lifecycle command is not blocked.
    env.seal(&dir, &["kek", "add"]);

    // The fix the hint names, then the rotation.
    env.git(&dir, &["restore", "--staged", "--", "secrets/s1.env"]);
    let out = env.seal(&dir, &["rotate"]);
    assert!(!out.contains("interrupted"), "{out}");
    let new = active(&env, &dir);
    assert_ne!(new, old);
    assert_eq!(
        kids_of(&env.envelope_at(&dir, ":secrets/s1.env")),
        vec![new]
    );
    assert_work_tree_clean(&env, &dir);
}

/// When HEAD holds the damaged envelope too, restoring it mends nothing:
/// the hint says to seal the file again from its plaintext, which works.
#[test]
fn rotate_refused_for_a_damaged_envelope_in_head_says_to_seal_it_again() {
    let env = Env::new();
    let dir = repo_with_secrets(&env);
    let old = env.kid();
    stage_tampered(&env, &dir, "secrets/s2.env", true);
    env.git(&dir, &["commit", "-q", "--no-verify", "-m", "damaged"]);
    let keys = key_files(&env);
    let out = env.fails("git-seal", &dir, &["rotate", "--reencrypt"], 1);
    let err = stderr(&out);
    assert!(
        err.contains("secrets/s2.env") && err.contains(&old),
        "{err}"
    );
    assert!(
        err.contains("`git add -- secrets/s2.env`")
            && err.contains("`git seal rotate --reencrypt` again")
            && !err.contains("git restore"),
        "{err}"
    );
    assert!(!dir.join(".git/seal/lifecycle.json").exists());
    assert_eq!(key_files(&env), keys, "no key was made");

    write_file(&dir, "secrets/s2.env", b"password-2\n");
    env.git(&dir, &["add", "--", "secrets/s2.env"]);
    env.seal(&dir, &["rotate", "--reencrypt"]);
    let new = active(&env, &dir);
    assert_eq!(
        kids_of(&env.envelope_at(&dir, ":secrets/s2.env")),
        vec![new.clone()]
    );
    let out = env.seal(&dir, &["kek", "verify", &new]);
    assert!(out.contains(", 0 did not"), "{out}");
}

/// A rotation that was interrupted, then meets an envelope that does not
/// open, says it cannot finish and what to mend, rather than "run it
/// again"; once mended, running it again finishes it to the same KEK.
#[test]
fn an_interrupted_rotation_blocked_by_a_damaged_envelope_says_what_to_mend() {
    let env = Env::new();
    let dir = repo_with_secrets(&env);
    let old = env.kid();
    let lock = dir.join(".git/index.lock");
    std::fs::write(&lock, "").unwrap();
    env.fails("git-seal", &dir, &["rotate"], 1);
    std::fs::remove_file(&lock).unwrap();
    let journal: Value =
        serde_json::from_slice(&std::fs::read(dir.join(".git/seal/lifecycle.json")).unwrap())
            .unwrap();
    let command = journal["command"].as_str().unwrap().to_owned();
    let new = journal["to"].as_str().unwrap().to_owned();

    stage_tampered(&env, &dir, "secrets/s0.env", true);
    let out = env.fails("git-seal", &dir, &["rotate"], 1);
    let err = stderr(&out);
    assert!(
        err.contains(&format!("cannot finish the interrupted `{command}`"))
            && err.contains("secrets/s0.env")
            && err.contains(&old),
        "{err}"
    );
    assert!(
        err.contains("`git restore --staged --worktree -- secrets/s0.env`")
            && err.contains(&format!("then run `{command}` again")),
        "{err}"
    );
    assert!(!err.contains("nothing was changed"), "{err}");

    env.git(
        &dir,
        &["restore", "--staged", "--worktree", "--", "secrets/s0.env"],
    );
    let out = env.seal(&dir, &["rotate"]);
    assert!(out.contains("finished the interrupted rotation"), "{out}");
    assert!(out.contains(&format!("{old} -> {new}")), "{out}");
    assert_eq!(active(&env, &dir), new);
    assert!(!dir.join(".git/seal/lifecycle.json").exists());
    assert_work_tree_clean(&env, &dir);
}

/// On a terminal, `kek remove --destroy` erases only once the kid is typed
/// back; anything else changes nothing.
#[test]
fn destroy_on_a_terminal_asks_for_the_kid() {
    let env = Env::new();
    let dir = repo_with_secrets(&env);
    let old = env.kid();
    env.seal(&dir, &["rotate"]);
    env.git(&dir, &["commit", "-q", "-m", "rotate"]);
    let archived = env.key_dir.join("archive").join(format!("{old}.key"));
    // `script` gives the command a terminal and feeds it what we type.
    let on_terminal = |typed: &str| {
        let command = format!("git-seal kek remove {old} --destroy");
        let mut child = env
            .command("script", &dir)
            .args(["-qec", &command, "/dev/null"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("script(1) from util-linux");
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{typed}\n").as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let out = on_terminal("k_0000000000000000");
    assert!(!out.status.success());
    assert!(stdout(&out).contains("not confirmed"), "{}", stdout(&out));
    assert!(archived.exists());
    assert_eq!(status_of(&kek_list(&env, &dir), &old), "retired");
    let out = on_terminal(&old);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(!archived.exists(), "erased once confirmed");
    assert_eq!(status_of(&kek_list(&env, &dir), &old), "removed");
}

/// The `YYYY-MM-DD` that follows `marker` in `text`, checked to be a date.
#[track_caller]
fn date_after(text: &str, marker: &str) -> String {
    let at = text
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker:?} in {text}"));
    let date = &text[at + marker.len()..][..10];
    let b = date.as_bytes();
    assert!(
        b.iter().enumerate().all(|(i, c)| if i == 4 || i == 7 {
            *c == b'-'
        } else {
            c.is_ascii_digit()
        }),
        "{marker:?} is not followed by a date: {text}"
    );
    date.to_owned()
}

/// Regression: history sealed only to a KEK that `kek remove --destroy`
/// erased said "install the KEK's key file" (decrypt) and "install the key,
/// then run `git seal unlock`" (checkout), as for a key merely not
/// installed here. It must say that the KEK was destroyed, when and how,
/// and that this history cannot be opened; a KEK simply not installed
/// here keeps the usual advice.
#[test]
fn history_sealed_to_a_destroyed_kek_says_it_was_destroyed() {
    let env = Env::new();
    let dir = repo_with_secrets(&env);
    let old = env.kid();
    env.seal(&dir, &["rotate"]);
    env.git(&dir, &["commit", "-q", "-m", "rotate"]);
    env.seal(&dir, &["kek", "remove", &old, "--destroy", "--yes"]);
    env.git(&dir, &["commit", "-q", "-m", "destroy"]);

    let sealed = env.blob_at(&dir, "HEAD~2:secrets/s0.env");
    let out = env.run("git-seal", &dir, &["decrypt", "-"], Some(&sealed));
    assert!(!out.status.success());
    let err = stderr(&out);
    let marker = format!("{old} was destroyed on ");
    date_after(&err, &marker);
    assert!(
        err.contains("`git seal kek remove --destroy`") && err.contains("cannot be opened"),
        "{err}"
    );
    assert!(!err.contains("install"), "{err}");

    let out = env.ok("git", &dir, &["checkout", "-q", "HEAD~2"]);
    let err = stderr(&out);
    date_after(&err, &marker);
    assert!(
        err.contains("left locked") && !err.contains("install the key"),
        "{err}"
    );
    let out = env.fails("git-seal", &dir, &["unlock"], 1);
    let err = stderr(&out);
    date_after(&err, &marker);
    assert!(!err.contains("install the key"), "{err}");
    env.git(&dir, &["checkout", "-q", "main"]);

    // The active KEK, merely not installed here: the usual advice.
    let sealed = env.blob_at(&dir, "HEAD:secrets/s0.env");
    let hidden = env.hide_keys();
    let out = env.run("git-seal", &dir, &["decrypt", "-"], Some(&sealed));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("hint: install the KEK's key file") && !err.contains("destroyed"),
        "{err}"
    );
    env.restore_keys(&hidden);
}

/// History sealed to a KEK that was removed (not destroyed) whose private
/// half is not here: the message says it was removed and how to bring a
/// surviving copy here; doing that opens it.
#[test]
fn history_sealed_to_a_removed_kek_says_what_can_still_be_done() {
    let env = Env::new();
    let dir = repo_with_secrets(&env);
    let old = env.kid();
    env.seal(&dir, &["rotate"]);
    env.git(&dir, &["commit", "-q", "-m", "rotate"]);
    env.seal(&dir, &["kek", "remove", &old]);
    env.git(&dir, &["commit", "-q", "-m", "remove"]);
    // Its key file lives on elsewhere (a backup), not here.
    let archived = env.key_dir.join("archive").join(format!("{old}.key"));
    let backup = env.path("backup.key");
    std::fs::rename(&archived, &backup).unwrap();

    let sealed = env.blob_at(&dir, "HEAD~2:secrets/s1.env");
    let out = env.run("git-seal", &dir, &["decrypt", "-"], Some(&sealed));
    assert!(!out.status.success());
    let err = stderr(&out);
    date_after(&err, &format!("{old} was removed on "));
    assert!(
        err.contains("`git seal kek remove`") && err.contains("still opens"),
        "{err}"
    );
    assert!(
        err.contains("hint: bring its private half here")
            && err.contains(&format!("`git seal kek export {old} --out FILE`"))
            && err.contains("`git seal kek import FILE`"),
        "{err}"
    );
    assert!(!err.contains("destroyed"), "{err}");

    let out = env.ok("git", &dir, &["checkout", "-q", "HEAD~2"]);
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{old} was removed on ")) && err.contains("`git seal unlock`"),
        "{err}"
    );
    env.git(&dir, &["checkout", "-q", "main"]);

    // What the hint says works.
    env.seal(&dir, &["kek", "import", backup.to_str().unwrap()]);
    let out = env.run("git-seal", &dir, &["decrypt", "-"], Some(&sealed));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "password-1\n");
}
