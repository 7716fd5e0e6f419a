//! HSM custody through the real binary, real Git and a real PKCS#11 token
//! (SoftHSM2, in a token directory of the test's own): what is stored, who
//! opens it, the install lock, and each way the token can fail.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::harness::{in_ci, stderr, stdout, write_file, Env};

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const PIN: &str = "246810";

/// SoftHSM2 with one fresh token `seal` (and, for tests that need one, an
/// empty token `other`), set up in `env` through the environment a user
/// would set. `None` (after saying so) when SoftHSM2 is not installed; under
/// CI=true its absence fails the test.
pub(crate) fn softhsm(env: &mut Env) -> Option<PathBuf> {
    let util = Path::new("/usr/bin/softhsm2-util");
    if !Path::new(MODULE).exists() || !util.exists() {
        assert!(
            !in_ci(),
            "SoftHSM2 is missing under CI=true (apt-get install softhsm2, see .ci/run)"
        );
        eprintln!("skipping: SoftHSM2 is not installed ({MODULE}); `apt-get install softhsm2` runs this test");
        return None;
    }
    let dir = env.path("softhsm");
    std::fs::create_dir_all(dir.join("tokens")).unwrap();
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            dir.join("tokens").display()
        ),
    )
    .unwrap();
    env.set("SOFTHSM2_CONF", conf.to_str().unwrap());
    for label in ["seal", "other"] {
        env.ok(
            "softhsm2-util",
            env.tmp.path(),
            &[
                "--init-token",
                "--free",
                "--label",
                label,
                "--so-pin",
                "13579",
                "--pin",
                PIN,
            ],
        );
    }
    env.set("GIT_SEAL_PKCS11_MODULE", MODULE);
    env.set("GIT_SEAL_PKCS11_TOKEN", "seal");
    env.set("GIT_SEAL_PKCS11_PIN", PIN);
    Some(dir)
}

/// A repository set up with `git seal init --provider pkcs11 'secrets/**'`
/// and two committed secrets.
fn hsm_repo(env: &Env, name: &str) -> PathBuf {
    let dir = env.repo(name);
    env.seal(&dir, &["init", "--provider", "pkcs11", "secrets/**"]);
    write_file(&dir, "secrets/db.env", b"DB_PASSWORD=hunter2\n");
    write_file(&dir, "secrets/api.env", b"API_TOKEN=abc123\n");
    env.git(&dir, &["add", "-A"]);
    env.git(&dir, &["commit", "-q", "-m", "secrets in the token"]);
    dir
}

fn wraps_of(envelope: &Value) -> Vec<String> {
    envelope["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["wrap"].as_str().unwrap().to_owned())
        .collect()
}

/// No sealed plaintext anywhere in the object store.
fn assert_no_plaintext_stored(env: &Env, dir: &Path, secrets: &[&str]) {
    let objects = env
        .ok(
            "git",
            dir,
            &["cat-file", "--batch-all-objects", "--batch", "--unordered"],
        )
        .stdout;
    let objects = String::from_utf8_lossy(&objects);
    for secret in secrets {
        assert!(
            !objects.contains(secret),
            "{secret:?} is stored in plaintext"
        );
    }
}

/// The only active KEK's record.
fn active_record(dir: &Path) -> Value {
    let mut actives: Vec<Value> = std::fs::read_dir(dir.join(".seal/keys"))
        .unwrap()
        .map(|e| serde_json::from_slice(&std::fs::read(e.unwrap().path()).unwrap()).unwrap())
        .filter(|r: &Value| r["status"] == "active")
        .collect();
    assert_eq!(actives.len(), 1, "{actives:?}");
    actives.pop().unwrap()
}

#[test]
fn token_seals_a_second_clone_opens_and_the_key_never_leaves() {
    let mut env = Env::new();
    let Some(_) = softhsm(&mut env) else { return };
    let dir = hsm_repo(&env, "r");
    let record = active_record(&dir);
    assert_eq!(record["custody"], "hsm");
    assert_eq!(record["wrap"], "pkcs11-aes-256-gcm");
    assert!(record.get("public_key").is_none());
    let kid = record["kid"].as_str().unwrap().to_owned();

    for path in ["secrets/db.env", "secrets/api.env"] {
        let stored = env.envelope_at(&dir, &format!("HEAD:{path}"));
        assert_eq!(wraps_of(&stored), ["pkcs11-aes-256-gcm"]);
        assert_eq!(stored["recipients"][0]["kid"], kid.as_str());
    }
    crate::harness::assert_sealed(&env, &dir, "secrets/db.env", b"DB_PASSWORD=hunter2\n");
    assert_no_plaintext_stored(&env, &dir, &["hunter2", "abc123"]);
    // The clone remembers the token (never the PIN).
    let config = std::fs::read_to_string(dir.join(".git/config")).unwrap();
    assert!(
        config.contains("token = seal") && !config.contains(PIN),
        "{config}"
    );

    // A second clone set up for the same token opens everything.
    let other = env.clone_repo(&dir, "second");
    // A fresh clone's plain `init` takes the custody of the active KEK.
    let out = env.seal(&other, &["init"]);
    assert!(out.contains("(pkcs11 provider)"), "{out}");
    assert_eq!(
        std::fs::read(other.join("secrets/db.env")).unwrap(),
        b"DB_PASSWORD=hunter2\n"
    );
    write_file(&other, "secrets/new.env", b"NEW=from-the-second-clone\n");
    env.git(&other, &["add", "secrets/new.env"]);
    env.git(&other, &["commit", "-q", "-m", "more"]);
    crate::harness::assert_sealed(
        &env,
        &other,
        "secrets/new.env",
        b"NEW=from-the-second-clone\n",
    );

    // Inside the token: sensitive, never extractable, and its value unreadable.
    let id = kid.trim_start_matches("k_");
    let pin_args = [
        "--module",
        MODULE,
        "--token-label",
        "seal",
        "--login",
        "--pin",
        PIN,
    ];
    let Some(listed) = pkcs11_tool(
        &env,
        &[&pin_args[..], &["--list-objects", "--type", "secrkey"]].concat(),
    ) else {
        return;
    };
    let listed = stdout(&listed);
    assert!(listed.contains(id), "{listed}");
    assert!(
        listed.contains("never extractable") && listed.contains("sensitive"),
        "{listed}"
    );
    assert!(listed.contains("Usage:      encrypt, decrypt"), "{listed}");
    let read = pkcs11_tool(
        &env,
        &[
            &pin_args[..],
            &["--read-object", "--type", "secrkey", "--id", id],
        ]
        .concat(),
    )
    .unwrap();
    assert!(!read.status.success(), "the key's value was read: {read:?}");
}

/// `pkcs11-tool` (OpenSC), which inspects token objects independently of
/// git-seal; `None` where it is not installed (outside CI).
fn pkcs11_tool(env: &Env, args: &[&str]) -> Option<std::process::Output> {
    if !Path::new("/usr/bin/pkcs11-tool").exists() {
        assert!(
            !in_ci(),
            "pkcs11-tool is missing under CI=true (opensc, see .ci/run)"
        );
        eprintln!("skipping the token inspection: pkcs11-tool (opensc) is not installed");
        return None;
    }
    Some(env.run("pkcs11-tool", env.tmp.path(), args, None))
}

#[test]
fn without_the_token_a_clone_checks_out_locked_files_with_one_warning() {
    let mut env = Env::new();
    let Some(_) = softhsm(&mut env) else { return };
    let dir = hsm_repo(&env, "r");
    let other = env.clone_repo(&dir, "no-token");
    env.unset("GIT_SEAL_PKCS11_PIN");
    let init = env.ok("git-seal", &other, &["init", "--provider", "pkcs11"]);
    assert!(
        stderr(&init).contains("no PIN for token \"seal\""),
        "{}",
        stderr(&init)
    );
    std::fs::remove_dir_all(other.join("secrets")).unwrap();
    let out = env.ok("git", &other, &["checkout", "--", "secrets"]);
    let err = stderr(&out);
    assert_eq!(err.matches("left locked").count(), 1, "{err}");
    assert!(err.contains("no PIN for token"), "{err}");
    for path in ["secrets/db.env", "secrets/api.env"] {
        let text = std::fs::read(other.join(path)).unwrap();
        assert!(crate::harness::is_envelope(&text), "{path} is not locked");
    }
    let out = stdout(&env.fails("git-seal", &other, &["doctor"], 1));
    assert!(
        out.contains("no active KEK can seal here (pkcs11 provider): no PIN for token"),
        "{out}"
    );
    // With the PIN, unlock opens them.
    env.set("GIT_SEAL_PKCS11_PIN", PIN);
    env.seal(&other, &["unlock"]);
    crate::harness::assert_sealed(&env, &other, "secrets/db.env", b"DB_PASSWORD=hunter2\n");
}

/// Each way the token fails stops `git add` with a message that says what
/// and how to fix it, and stages nothing.
#[test]
fn token_failures_name_the_fix_and_stage_nothing() {
    let mut env = Env::new();
    let Some(_) = softhsm(&mut env) else { return };
    let dir = hsm_repo(&env, "r");
    write_file(&dir, "secrets/new.env", b"SECRET=never-stored\n");
    let cases: [(&str, &str, &str); 4] = [
        (
            "GIT_SEAL_PKCS11_PIN",
            "999999",
            "wrong PIN for token \"seal\"",
        ),
        (
            "GIT_SEAL_PKCS11_MODULE",
            "/nonexistent/libpkcs11.so",
            "cannot load the PKCS#11 module /nonexistent/libpkcs11.so",
        ),
        (
            "GIT_SEAL_PKCS11_TOKEN",
            "other",
            "token \"other\" holds no key for k_",
        ),
        (
            "GIT_SEAL_PKCS11_TOKEN",
            "absent",
            "no token labelled \"absent\" (tokens there: ",
        ),
    ];
    for (var, value, message) in cases {
        let out = env.with_var(var, Some(value), |env| {
            env.fails("git", &dir, &["add", "secrets/new.env"], 128)
        });
        let err = stderr(&out);
        assert!(err.contains(message), "{var}={value}: {err}");
        assert!(err.contains("secrets/new.env"), "{var}={value}: {err}");
        assert!(!err.contains(PIN), "the PIN was printed: {err}");
        assert_eq!(env.git(&dir, &["diff", "--cached", "--name-only"]), "");
    }
    assert_no_plaintext_stored(&env, &dir, &["never-stored"]);
    // The wrong PIN message warns about the retry limit.
    let out = env.with_var("GIT_SEAL_PKCS11_PIN", Some("999999"), |env| {
        env.fails("git", &dir, &["add", "secrets/new.env"], 128)
    });
    assert!(stderr(&out).contains("may lock it"), "{}", stderr(&out));
    // A key with the kid's CKA_ID that could leave its token is refused.
    let kid = active_record(&dir)["kid"].as_str().unwrap().to_owned();
    let made = pkcs11_tool(
        &env,
        &[
            "--module",
            MODULE,
            "--token-label",
            "other",
            "--login",
            "--pin",
            PIN,
            "--keygen",
            "--key-type",
            "AES:32",
            "--id",
            kid.trim_start_matches("k_"),
            "--label",
            "leaky",
            "--extractable",
        ],
    );
    if let Some(made) = made {
        assert!(made.status.success(), "{}", stderr(&made));
        let out = env.with_var("GIT_SEAL_PKCS11_TOKEN", Some("other"), |env| {
            env.fails("git", &dir, &["add", "secrets/new.env"], 128)
        });
        let err = stderr(&out);
        assert!(
            err.contains(&format!(
                "refusing {kid} in token \"other\": the key is extractable"
            )),
            "{err}"
        );
        assert_eq!(env.git(&dir, &["diff", "--cached", "--name-only"]), "");
    }
    // And with it right, the same add goes through.
    env.git(&dir, &["add", "secrets/new.env"]);
}

#[test]
fn tampered_wrapped_dek_or_wrap_nonce_is_refused() {
    let mut env = Env::new();
    let Some(_) = softhsm(&mut env) else { return };
    let dir = hsm_repo(&env, "r");
    let stored = env.envelope_at(&dir, "HEAD:secrets/db.env");
    for field in ["wrapped_dek", "wrap_nonce"] {
        let mut tampered = stored.clone();
        let value = tampered["recipients"][0][field]
            .as_str()
            .unwrap()
            .to_owned();
        tampered["recipients"][0][field] = Value::String(crate::harness::flip_first(&value));
        let text = format!("{}\n", serde_json::to_string_pretty(&tampered).unwrap());
        let out = env.run("git-seal", &dir, &["decrypt", "-"], Some(text.as_bytes()));
        assert_eq!(out.status.code(), Some(1), "{field}: {out:?}");
        assert!(out.stdout.is_empty(), "{field}: plaintext came out");
        let err = stderr(&out);
        assert!(err.contains("authentication failed"), "{field}: {err}");

        // Checked out, it stays sealed and the error names the path.
        env.stage_raw(&dir, "secrets/db.env", text.as_bytes());
        std::fs::remove_file(dir.join("secrets/db.env")).unwrap();
        let out = env.ok("git", &dir, &["checkout", "--", "secrets/db.env"]);
        assert!(stderr(&out).contains("secrets/db.env"), "{}", stderr(&out));
        let left = std::fs::read(dir.join("secrets/db.env")).unwrap();
        assert!(crate::harness::is_envelope(&left), "{field}: opened anyway");
        env.git(&dir, &["reset", "-q", "--hard"]);
    }
}

#[test]
fn the_install_lock_refuses_both_ways() {
    let mut env = Env::new();
    let Some(_) = softhsm(&mut env) else { return };
    // A token repository in a clone set up for key files.
    let dir = hsm_repo(&env, "hsm");
    let other = env.clone_repo(&dir, "file-clone");
    let out = env.fails("git-seal", &other, &["init", "--provider", "file"], 1);
    let err = stderr(&out);
    assert!(
        err.contains("hsm custody") && err.contains("file provider"),
        "{err}"
    );
    assert!(err.contains("git seal rotate --provider file"), "{err}");
    env.git(&other, &["config", "seal.provider", "file"]);
    let err = stderr(&env.fails("git-seal", &other, &["status"], 1));
    assert!(
        err.contains("set up for the file provider") && err.contains("hsm custody"),
        "{err}"
    );
    assert!(err.contains("will not fall back"), "{err}");

    // A software repository in a clone set up for the token.
    let soft = env.sealed_repo("soft");
    // init does not flip the clone's lock; forced, the custody refuses.
    let out = env.fails("git-seal", &soft, &["init", "--provider", "pkcs11"], 1);
    let err = stderr(&out);
    assert!(
        err.contains("set up for the file provider")
            && err.contains("git seal rotate --provider pkcs11"),
        "{err}"
    );
    let out = env.fails(
        "git-seal",
        &soft,
        &["init", "--provider", "pkcs11", "--force"],
        1,
    );
    let err = stderr(&out);
    assert!(
        err.contains("software custody") && err.contains("pkcs11 provider"),
        "{err}"
    );
    assert_eq!(env.git(&soft, &["config", "seal.provider"]).trim(), "file");
    env.git(&soft, &["config", "seal.provider", "pkcs11"]);
    write_file(&soft, "secrets/x.env", b"X=1\n");
    let err = stderr(&env.fails("git", &soft, &["add", "secrets/x.env"], 128));
    assert!(
        err.contains("set up for the pkcs11 provider") && err.contains("software custody"),
        "{err}"
    );
    assert_eq!(env.git(&soft, &["diff", "--cached", "--name-only"]), "");
}

#[test]
fn rotate_provider_moves_a_software_repository_into_the_token_and_back() {
    let mut env = Env::new();
    let Some(_) = softhsm(&mut env) else { return };
    let dir = env.sealed_repo("r");
    let software = env.kid();
    write_file(&dir, "secrets/db.env", b"DB_PASSWORD=hunter2\n");
    env.git(&dir, &["add", "-A"]);
    env.git(&dir, &["commit", "-q", "-m", "software-sealed"]);

    let out = env.seal(&dir, &["rotate", "--provider", "pkcs11"]);
    assert!(out.contains(&software), "{out}");
    assert_eq!(env.git(&dir, &["config", "seal.provider"]).trim(), "pkcs11");
    env.git(&dir, &["commit", "-q", "-m", "into the token"]);
    let record = active_record(&dir);
    assert_eq!(record["custody"], "hsm");
    let stored = env.envelope_at(&dir, "HEAD:secrets/db.env");
    assert_eq!(wraps_of(&stored), ["pkcs11-aes-256-gcm"]);
    crate::harness::assert_sealed(&env, &dir, "secrets/db.env", b"DB_PASSWORD=hunter2\n");
    // History sealed before still opens, with the archived software key.
    assert!(env
        .key_dir
        .join("archive")
        .join(format!("{software}.key"))
        .exists());
    let old = env
        .ok("git", &dir, &["cat-file", "-p", "HEAD~1:secrets/db.env"])
        .stdout;
    let out = env.run("git-seal", &dir, &["decrypt", "-"], Some(&old));
    assert_eq!(out.stdout, b"DB_PASSWORD=hunter2\n", "{}", stderr(&out));
    env.git(&dir, &["checkout", "-q", "HEAD~1"]);
    assert_eq!(
        std::fs::read(dir.join("secrets/db.env")).unwrap(),
        b"DB_PASSWORD=hunter2\n"
    );
    env.git(&dir, &["checkout", "-q", "main"]);
    let log = env.seal(&dir, &["audit", "log"]);
    assert!(log.contains("rotate"), "{log}");

    // And back to a key file.
    env.seal(&dir, &["rotate", "--provider", "file"]);
    assert_eq!(env.git(&dir, &["config", "seal.provider"]).trim(), "file");
    env.git(&dir, &["commit", "-q", "-m", "back to a key file"]);
    let stored = env.envelope_at(&dir, "HEAD:secrets/db.env");
    assert_eq!(wraps_of(&stored), ["x25519-hkdf-sha256"]);
    assert_eq!(active_record(&dir)["custody"], "software");
    crate::harness::assert_sealed(&env, &dir, "secrets/db.env", b"DB_PASSWORD=hunter2\n");
    env.seal(&dir, &["audit", "verify"]);
}

/// A token KEK and an offline X25519 recovery KEK as recipients of every
/// envelope: the recovery key alone, with no token anywhere, opens all.
#[test]
fn an_offline_recovery_key_alone_opens_what_the_token_sealed() {
    let mut env = Env::new();
    let Some(_) = softhsm(&mut env) else { return };
    let dir = env.repo("r");
    env.seal(&dir, &["init", "--provider", "pkcs11", "secrets/**"]);
    // The recovery key is made on another machine (its own key dir).
    let offline_dir = env.path("offline-keys");
    let token_keys = std::mem::replace(&mut env.key_dir, offline_dir);
    let public = env.seal(&dir, &["kek", "keygen"]).trim().to_owned();
    let offline_keys = std::mem::replace(&mut env.key_dir, token_keys);
    env.seal(&dir, &["recipients", "add", &public, "--name", "recovery"]);
    write_file(&dir, "secrets/db.env", b"DB_PASSWORD=hunter2\n");
    env.git(&dir, &["add", "-A"]);
    env.git(&dir, &["commit", "-q", "-m", "two custody classes"]);
    let stored = env.envelope_at(&dir, "HEAD:secrets/db.env");
    let mut wraps = wraps_of(&stored);
    wraps.sort();
    assert_eq!(wraps, ["pkcs11-aes-256-gcm", "x25519-hkdf-sha256"]);

    // The recovery holder: no token, no PKCS#11 settings, a key file.
    for var in [
        "GIT_SEAL_PKCS11_PIN",
        "GIT_SEAL_PKCS11_MODULE",
        "GIT_SEAL_PKCS11_TOKEN",
        "SOFTHSM2_CONF",
    ] {
        env.unset(var);
    }
    env.key_dir = offline_keys;
    let offline = &env;
    let restored = offline.clone_repo(&dir, "recovered");
    offline.seal(&restored, &["init", "--provider", "file"]);
    assert_eq!(
        std::fs::read(restored.join("secrets/db.env")).unwrap(),
        b"DB_PASSWORD=hunter2\n"
    );
    let out = offline.run(
        "git-seal",
        &restored,
        &["decrypt", "-"],
        Some(&serde_json::to_vec(&stored).unwrap()),
    );
    assert_eq!(out.stdout, b"DB_PASSWORD=hunter2\n", "{}", stderr(&out));
}

#[test]
fn kek_add_makes_a_pending_token_kek_that_verifies() {
    let mut env = Env::new();
    let Some(_) = softhsm(&mut env) else { return };
    let dir = hsm_repo(&env, "r");
    let out = env.seal(&dir, &["kek", "add", "--provider", "pkcs11"]);
    let list: Value = serde_json::from_str(&env.seal(&dir, &["kek", "list", "--json"])).unwrap();
    let keks = list["keks"].as_array().unwrap();
    let pending: Vec<&Value> = keks.iter().filter(|k| k["status"] == "pending").collect();
    assert_eq!(pending.len(), 1, "{out}\n{keks:?}");
    assert_eq!(pending[0]["custody"], "hsm");
    let kid = pending[0]["kid"].as_str().unwrap();
    let verified = env.seal(&dir, &["kek", "verify", kid]);
    assert!(verified.contains(kid), "{verified}");
    // Rotating to it re-wraps inside the token.
    let old = active_record(&dir)["kid"].as_str().unwrap().to_owned();
    env.seal(&dir, &["rotate", "--to", kid]);
    env.git(&dir, &["commit", "-q", "-m", "rotated inside the token"]);
    let stored = env.envelope_at(&dir, "HEAD:secrets/db.env");
    assert_eq!(stored["recipients"][0]["kid"], kid);
    crate::harness::assert_sealed(&env, &dir, "secrets/db.env", b"DB_PASSWORD=hunter2\n");

    // The retired token key is destroyed inside the token: crypto-erasure.
    let before = env
        .ok("git", &dir, &["cat-file", "-p", "HEAD~1:secrets/db.env"])
        .stdout;
    let out = env.seal(&dir, &["kek", "remove", &old, "--destroy", "--yes"]);
    assert!(
        out.contains(&format!("erased the key {old} inside token \"seal\"")),
        "{out}"
    );
    let out = env.run("git-seal", &dir, &["decrypt", "-"], Some(&before));
    assert_eq!(out.status.code(), Some(1), "history still opened: {out:?}");
    assert!(out.stdout.is_empty());
    let pin_args = [
        "--module",
        MODULE,
        "--token-label",
        "seal",
        "--login",
        "--pin",
        PIN,
    ];
    if let Some(listed) = pkcs11_tool(
        &env,
        &[&pin_args[..], &["--list-objects", "--type", "secrkey"]].concat(),
    ) {
        let listed = stdout(&listed);
        assert!(!listed.contains(old.trim_start_matches("k_")), "{listed}");
        assert!(listed.contains(kid.trim_start_matches("k_")), "{listed}");
    }
    let log = env.seal(&dir, &["audit", "log"]);
    assert!(log.contains("kek-destroy"), "{log}");
}

/// Every path that seals or opens goes through the token: diff (textconv),
/// merge (the merge driver re-seals), encrypt and decrypt by hand.
#[test]
fn diff_merge_encrypt_and_decrypt_go_through_the_token() {
    let mut env = Env::new();
    let Some(_) = softhsm(&mut env) else { return };
    let dir = hsm_repo(&env, "r");
    write_file(
        &dir,
        "secrets/config.ini",
        b"a=1\nb=2\nc=3\nd=4\ne=5\nf=6\n",
    );
    env.git(&dir, &["add", "-A"]);
    env.git(&dir, &["commit", "-q", "-m", "base"]);
    env.git(&dir, &["checkout", "-q", "-b", "other"]);
    write_file(
        &dir,
        "secrets/config.ini",
        b"a=1\nb=2\nc=3\nd=4\ne=5\nf=60\n",
    );
    env.git(&dir, &["commit", "-q", "-am", "other edits the end"]);
    env.git(&dir, &["checkout", "-q", "main"]);
    write_file(
        &dir,
        "secrets/config.ini",
        b"a=10\nb=2\nc=3\nd=4\ne=5\nf=6\n",
    );
    env.git(&dir, &["commit", "-q", "-am", "main edits the start"]);

    let diff = env.git(&dir, &["log", "-p", "-1", "--", "secrets/config.ini"]);
    assert!(diff.contains("-a=1\n+a=10"), "{diff}");
    env.git(&dir, &["merge", "-q", "--no-edit", "other"]);
    crate::harness::assert_sealed(
        &env,
        &dir,
        "secrets/config.ini",
        b"a=10\nb=2\nc=3\nd=4\ne=5\nf=60\n",
    );
    let merged = env.envelope_at(&dir, "HEAD:secrets/config.ini");
    assert_eq!(wraps_of(&merged), ["pkcs11-aes-256-gcm"]);
    assert_eq!(env.git(&dir, &["status", "--porcelain"]), "");

    let out = env.run("git-seal", &dir, &["encrypt", "-"], Some(b"BY=hand\n"));
    assert!(out.status.success(), "{}", stderr(&out));
    let sealed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(wraps_of(&sealed), ["pkcs11-aes-256-gcm"]);
    let out = env.run("git-seal", &dir, &["decrypt", "-"], Some(&out.stdout));
    assert_eq!(out.stdout, b"BY=hand\n", "{}", stderr(&out));
}

/// The PIN from a file: refused while group or others can read it, used
/// once it is 0600; its path (never the PIN) is remembered by `init`.
#[test]
fn a_pin_file_must_be_private() {
    use std::os::unix::fs::PermissionsExt;
    let mut env = Env::new();
    let Some(_) = softhsm(&mut env) else { return };
    env.unset("GIT_SEAL_PKCS11_PIN");
    let pin_file = env.path("pin");
    std::fs::write(&pin_file, format!("{PIN}\n")).unwrap();
    std::fs::set_permissions(&pin_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    env.set("GIT_SEAL_PKCS11_PIN_FILE", pin_file.to_str().unwrap());
    let dir = env.repo("r");
    let out = env.fails(
        "git-seal",
        &dir,
        &["init", "--provider", "pkcs11", "secrets/**"],
        1,
    );
    let err = stderr(&out);
    assert!(
        err.contains("is readable by group or others") && err.contains("chmod 600"),
        "{err}"
    );
    std::fs::set_permissions(&pin_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    env.seal(&dir, &["init", "--provider", "pkcs11", "secrets/**"]);
    let config = std::fs::read_to_string(dir.join(".git/config")).unwrap();
    assert!(
        config.contains(pin_file.to_str().unwrap()) && !config.contains(PIN),
        "{config}"
    );
    // Later commands find the token and the PIN file through the config.
    env.unset("GIT_SEAL_PKCS11_PIN_FILE");
    env.unset("GIT_SEAL_PKCS11_TOKEN");
    env.unset("GIT_SEAL_PKCS11_MODULE");
    write_file(&dir, "secrets/db.env", b"DB_PASSWORD=hunter2\n");
    env.git(&dir, &["add", "-A"]);
    env.git(&dir, &["commit", "-q", "-m", "sealed with the PIN file"]);
    crate::harness::assert_sealed(&env, &dir, "secrets/db.env", b"DB_PASSWORD=hunter2\n");
}
