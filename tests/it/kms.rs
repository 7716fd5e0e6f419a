//! KMS custody through the real binary and real Git, against the moto
//! emulator on loopback: a KMS key guards an X25519 KEK whose record holds
//! the KMS ciphertext; one Decrypt per process unlocks it. moto accepts any
//! signature and ignores key state: signing is proven against botocore and
//! key states against a scripted server in `kms_client`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::harness::{is_envelope, stderr, write_file, Env};
use crate::kms_client::Moto;

const ACCESS_KEY: &str = "AKIDGITSEALTEST";
const SECRET_KEY: &str = "gitseal/TEST+secret/KEY-never-shown";

/// moto on a free loopback port, and `env` set up to reach it with static
/// credentials, as a user's AWS environment would. `None` (after saying
/// so) without moto; under CI=true its absence fails.
pub(crate) fn kms(env: &mut Env) -> Option<Moto> {
    let moto = Moto::start()?;
    env.set("AWS_ENDPOINT_URL_KMS", &moto.url);
    env.set("AWS_REGION", "eu-west-1");
    env.set("AWS_ACCESS_KEY_ID", ACCESS_KEY);
    env.set("AWS_SECRET_ACCESS_KEY", SECRET_KEY);
    Some(moto)
}

/// Forget the AWS credentials (HOME is the test's own: no ~/.aws).
fn without_credentials(env: &mut Env) {
    env.unset("AWS_ACCESS_KEY_ID");
    env.unset("AWS_SECRET_ACCESS_KEY");
}

fn kms_repo(env: &Env, moto: &Moto, name: &str) -> (PathBuf, String) {
    let key = moto.create_key();
    let dir = env.repo(name);
    let out = env.seal(
        &dir,
        &[
            "init",
            "--provider",
            "aws-kms",
            "--kms-key",
            &key,
            "secrets/**",
        ],
    );
    assert!(out.contains("guarded by KMS key arn:aws:kms:"), "{out}");
    write_file(&dir, "secrets/db.env", b"DB_PASSWORD=hunter2\n");
    env.git(&dir, &["add", "-A"]);
    env.git(&dir, &["commit", "-q", "-m", "sealed under KMS"]);
    (dir, key)
}

fn active_record(dir: &Path) -> (PathBuf, Value) {
    let mut actives: Vec<(PathBuf, Value)> = std::fs::read_dir(dir.join(".seal/keys"))
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let record = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            (path, record)
        })
        .filter(|(_, r): &(PathBuf, Value)| r["status"] == "active")
        .collect();
    assert_eq!(actives.len(), 1, "{actives:?}");
    actives.pop().unwrap()
}

/// The requests moto receives while `f` runs, by `X-Amz-Target`.
fn recorded<R>(moto: &Moto, f: impl FnOnce() -> R) -> (R, Vec<String>) {
    moto_api(moto, "POST", "start-recording");
    moto_api(moto, "POST", "reset-recording");
    let result = f();
    let recording = moto_api(moto, "GET", "download-recording");
    moto_api(moto, "POST", "stop-recording");
    let targets = recording
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|r| r["headers"]["X-Amz-Target"].as_str().map(str::to_owned))
        .collect();
    (result, targets)
}

/// One call to moto's recorder API (plain HTTP/1.1 on loopback).
fn moto_api(moto: &Moto, method: &str, action: &str) -> String {
    let address = moto.url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "{method} /moto-api/recorder/{action} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{action}: {answer}");
    answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default()
}

/// Nothing printed holds a credential.
#[track_caller]
fn assert_no_credentials(out: &std::process::Output) {
    for text in [&out.stdout, &out.stderr] {
        let text = String::from_utf8_lossy(text);
        assert!(
            !text.contains(SECRET_KEY) && !text.contains(ACCESS_KEY),
            "{text}"
        );
    }
}

#[test]
fn a_kms_guarded_kek_seals_and_a_fresh_clone_checks_out_with_one_decrypt() {
    let mut env = Env::new();
    let Some(moto) = kms(&mut env) else { return };
    let (dir, _) = kms_repo(&env, &moto, "r");
    let (_, record) = active_record(&dir);
    assert_eq!(record["custody"], "kms");
    assert_eq!(record["wrap"], "x25519-hkdf-sha256");
    assert!(record["kms_key"]
        .as_str()
        .unwrap()
        .starts_with("arn:aws:kms:eu-west-1:"));
    assert!(record["kms_ciphertext"].as_str().unwrap().len() > 40);
    // The private half is nowhere on disk.
    assert!(
        !env.key_dir.exists()
            || std::fs::read_dir(&env.key_dir).unwrap().all(|e| !e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".key")),
        "a key file was written"
    );
    crate::harness::assert_sealed(&env, &dir, "secrets/db.env", b"DB_PASSWORD=hunter2\n");

    // 1,000 sealed files: wrapping needs only the public key; the one
    // Decrypt proves this clone may seal to the KEK (and keys its cache).
    for i in 0..1000 {
        write_file(
            &dir,
            &format!("secrets/many/f{i:04}.env"),
            format!("secret {i}\n").as_bytes(),
        );
    }
    let (_, calls) = recorded(&moto, || env.git(&dir, &["add", "secrets"]));
    assert_eq!(calls, ["TrentService.Decrypt"], "one KMS call per process");
    env.git(&dir, &["commit", "-q", "-m", "many"]);

    // A fresh clone with credentials: one Decrypt for the whole checkout.
    let clone = env.clone_repo(&dir, "clone");
    let out = env.seal(&clone, &["init"]);
    assert!(out.contains("(aws-kms provider)"), "{out}");
    std::fs::remove_dir_all(clone.join("secrets")).unwrap();
    let (_, calls) = recorded(&moto, || env.git(&clone, &["checkout", "--", "secrets"]));
    let decrypts = calls
        .iter()
        .filter(|c| *c == "TrentService.Decrypt")
        .count();
    assert_eq!(decrypts, 1, "KMS calls during the checkout: {calls:?}");
    for i in (0..1000).step_by(111) {
        let path = format!("secrets/many/f{i:04}.env");
        assert_eq!(
            std::fs::read(clone.join(&path)).unwrap(),
            format!("secret {i}\n").as_bytes()
        );
    }
    assert_eq!(env.git(&clone, &["status", "--porcelain"]), "");
}

#[test]
fn without_credentials_files_stay_locked_with_one_warning_and_add_fails() {
    let mut env = Env::new();
    let Some(moto) = kms(&mut env) else { return };
    let (dir, _) = kms_repo(&env, &moto, "r");
    let clone = env.clone_repo(&dir, "clone");
    without_credentials(&mut env);
    let out = env.ok("git-seal", &clone, &["init"]);
    assert!(
        stderr(&out).contains("no AWS credentials"),
        "{}",
        stderr(&out)
    );
    std::fs::remove_dir_all(clone.join("secrets")).unwrap();
    let out = env.ok("git", &clone, &["checkout", "--", "secrets"]);
    let err = stderr(&out);
    assert_eq!(err.matches("left locked").count(), 1, "{err}");
    assert!(err.contains("no AWS credentials"), "{err}");
    assert!(is_envelope(
        &std::fs::read(clone.join("secrets/db.env")).unwrap()
    ));

    write_file(&clone, "secrets/new.env", b"NEW=never-stored\n");
    let out = env.fails("git", &clone, &["add", "secrets/new.env"], 128);
    let err = stderr(&out);
    assert!(
        err.contains("secrets/new.env") && err.contains("cannot unlock k_"),
        "{err}"
    );
    assert_eq!(env.git(&clone, &["diff", "--cached", "--name-only"]), "");

    // An endpoint that does not answer: the same, saying so.
    env.set("AWS_ACCESS_KEY_ID", ACCESS_KEY);
    env.set("AWS_SECRET_ACCESS_KEY", SECRET_KEY);
    let closed = format!("http://127.0.0.1:{}", crate::kms_client::free_port());
    env.set("AWS_ENDPOINT_URL_KMS", &closed);
    std::fs::remove_file(clone.join("secrets/db.env")).unwrap();
    let out = env.ok("git", &clone, &["checkout", "--", "secrets/db.env"]);
    let err = stderr(&out);
    assert_eq!(err.matches("left locked").count(), 1, "{err}");
    assert!(err.contains("cannot reach AWS KMS"), "{err}");
    assert_no_credentials(&out);
    let out = env.fails("git", &clone, &["add", "secrets/new.env"], 128);
    assert!(
        stderr(&out).contains("cannot reach AWS KMS"),
        "{}",
        stderr(&out)
    );
    assert_no_credentials(&out);
}

#[test]
fn a_tampered_record_is_refused() {
    let mut env = Env::new();
    let Some(moto) = kms(&mut env) else { return };
    let (dir, _) = kms_repo(&env, &moto, "r");
    let stored = env
        .ok("git", &dir, &["cat-file", "-p", "HEAD:secrets/db.env"])
        .stdout;
    // A second KMS-guarded KEK: its ciphertext is genuine, for another kid.
    env.seal(&dir, &["kek", "add", "--provider", "aws-kms"]);
    let (path, record) = active_record(&dir);
    let other: Value = std::fs::read_dir(dir.join(".seal/keys"))
        .unwrap()
        .map(|e| serde_json::from_slice(&std::fs::read(e.unwrap().path()).unwrap()).unwrap())
        .find(|r: &Value| r["status"] == "pending")
        .unwrap();
    // A changed byte inside the encrypted part (the blob starts with the
    // key's id, which KMS reads first).
    let genuine = record["kms_ciphertext"].as_str().unwrap();
    let at = genuine.len() - 8;
    let flipped = format!(
        "{}{}{}",
        &genuine[..at],
        if &genuine[at..=at] == "A" { "B" } else { "A" },
        &genuine[at + 1..]
    );
    for (what, ciphertext) in [
        ("altered ciphertext", Value::String(flipped)),
        ("another KEK's ciphertext", other["kms_ciphertext"].clone()),
    ] {
        let mut tampered = record.clone();
        tampered["kms_ciphertext"] = ciphertext;
        std::fs::write(&path, serde_json::to_string_pretty(&tampered).unwrap()).unwrap();
        let out = env.run("git-seal", &dir, &["decrypt", "-"], Some(&stored));
        assert_eq!(out.status.code(), Some(1), "{what}: {out:?}");
        assert!(out.stdout.is_empty(), "{what}: plaintext came out");
        let err = stderr(&out);
        assert!(
            err.contains("cannot unlock") && err.contains("was altered"),
            "{what}: {err}"
        );
    }
}

#[test]
fn the_install_lock_keeps_kms_its_own_custody_class() {
    let mut env = Env::new();
    let Some(moto) = kms(&mut env) else { return };
    let (dir, _) = kms_repo(&env, &moto, "kms");
    let clone = env.clone_repo(&dir, "file-clone");
    let err = stderr(&env.fails("git-seal", &clone, &["init", "--provider", "file"], 1));
    assert!(
        err.contains("kms custody") && err.contains("file provider"),
        "{err}"
    );
    env.git(&clone, &["config", "seal.provider", "file"]);
    let err = stderr(&env.fails("git-seal", &clone, &["status"], 1));
    assert!(
        err.contains("set up for the file provider") && err.contains("kms custody"),
        "{err}"
    );

    let soft = env.sealed_repo("soft");
    let out = env.fails(
        "git-seal",
        &soft,
        &["init", "--provider", "aws-kms", "--force"],
        1,
    );
    let err = stderr(&out);
    assert!(
        err.contains("software custody") && err.contains("aws-kms provider"),
        "{err}"
    );
}

#[test]
fn rotate_moves_a_software_repository_under_kms_and_an_offline_key_opens_without_it() {
    let mut env = Env::new();
    let Some(moto) = kms(&mut env) else { return };
    let dir = env.sealed_repo("r");
    write_file(&dir, "secrets/db.env", b"DB_PASSWORD=hunter2\n");
    env.git(&dir, &["add", "-A"]);
    env.git(&dir, &["commit", "-q", "-m", "software-sealed"]);
    let key = moto.create_key();
    let out = env.ok(
        "git-seal",
        &dir,
        &["rotate", "--provider", "aws-kms", "--kms-key", &key],
    );
    assert_no_credentials(&out);
    assert_eq!(
        env.git(&dir, &["config", "seal.provider"]).trim(),
        "aws-kms"
    );
    env.git(&dir, &["commit", "-q", "-m", "under KMS"]);
    assert_eq!(active_record(&dir).1["custody"], "kms");
    crate::harness::assert_sealed(&env, &dir, "secrets/db.env", b"DB_PASSWORD=hunter2\n");
    let old = env
        .ok("git", &dir, &["cat-file", "-p", "HEAD~1:secrets/db.env"])
        .stdout;
    let out = env.run("git-seal", &dir, &["decrypt", "-"], Some(&old));
    assert_eq!(out.stdout, b"DB_PASSWORD=hunter2\n", "{}", stderr(&out));

    // An offline recovery key as a second recipient opens everything with
    // no AWS environment at all.
    let offline_dir = env.path("offline-keys");
    let kms_keys = std::mem::replace(&mut env.key_dir, offline_dir);
    let public = env.seal(&dir, &["kek", "keygen"]).trim().to_owned();
    let offline_keys = std::mem::replace(&mut env.key_dir, kms_keys);
    env.seal(&dir, &["recipients", "add", &public, "--name", "recovery"]);
    env.git(&dir, &["commit", "-q", "-m", "recovery key"]);
    for var in [
        "AWS_ENDPOINT_URL_KMS",
        "AWS_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    ] {
        env.unset(var);
    }
    env.key_dir = offline_keys;
    let restored = env.clone_repo(&dir, "recovered");
    env.seal(&restored, &["init", "--provider", "file"]);
    assert_eq!(
        std::fs::read(restored.join("secrets/db.env")).unwrap(),
        b"DB_PASSWORD=hunter2\n"
    );
}
