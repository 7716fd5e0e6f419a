//! `git seal audit log` filters (`--path`, `--actor`, `--event`,
//! `--since`, `--until`), the same in text and `--json`, and text output
//! that no field can forge a line of.

use std::path::Path;

use serde_json::Value;

use crate::harness::{stderr, stdout, write_file, Env};

/// The entries `audit log --json ARGS` lists.
fn listed(env: &Env, dir: &Path, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["audit", "log", "--json"];
    all.extend_from_slice(args);
    let doc: Value = serde_json::from_str(&env.seal(dir, &all)).unwrap();
    assert_eq!(doc["schema"], "git-seal.audit-log/v1");
    doc["entries"].as_array().unwrap().clone()
}

/// The seq numbers of the entries `audit log` lists with `args`, from the
/// JSON and from the text (which must agree, entry for entry).
fn seqs(env: &Env, dir: &Path, args: &[&str]) -> Vec<u64> {
    let from_json: Vec<u64> = listed(env, dir, args)
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    let mut text_args = vec!["audit", "log"];
    text_args.extend_from_slice(args);
    let text = env.seal(dir, &text_args);
    let from_text: Vec<u64> = text
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(from_json, from_text, "{args:?}:\n{text}");
    from_json
}

/// A repository where Ada sealed `secrets/a.env` and Bea (trusted by Ada,
/// with her own signer and name) sealed `secrets/db/b.env`; returns the
/// repository and Bea's environment.
fn two_authors(env: &Env) -> (std::path::PathBuf, Env) {
    let dir = env.sealed_repo("r");
    write_file(&dir, "secrets/a.env", b"A=1\n");
    env.git(&dir, &["add", "-A"]);
    env.git(&dir, &["commit", "-q", "-m", "a"]);

    let mut bea = Env::new();
    for (key, value) in [
        ("GIT_AUTHOR_NAME", "Bea Example"),
        ("GIT_AUTHOR_EMAIL", "bea@example.test"),
        ("GIT_COMMITTER_NAME", "Bea Example"),
        ("GIT_COMMITTER_EMAIL", "bea@example.test"),
    ] {
        bea.set(key, value);
    }
    bea.set("GIT_SEAL_KEY_DIR", env.key_dir.to_str().unwrap());
    bea.set(
        "GIT_SEAL_SIGNER_DIR",
        env.path("bea-signer").to_str().unwrap(),
    );
    env.trust_signer_of(&dir, &bea, "bea@example.test");
    write_file(&dir, "secrets/db/b.env", b"B=1\n");
    bea.git(&dir, &["add", "-A"]);
    bea.git(&dir, &["commit", "-q", "-m", "b"]);
    (dir, bea)
}

fn fingerprint_of(env: &Env, dir: &Path, email: &str) -> String {
    let report: Value =
        serde_json::from_str(&env.seal(dir, &["audit", "verify", "--json"])).unwrap();
    report["signers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["email"] == email)
        .unwrap()["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn log_filters_by_path_actor_and_event_in_text_and_json_alike() {
    let env = Env::new();
    let (dir, _bea) = two_authors(&env);
    let all = seqs(&env, &dir, &[]);
    // init, policy, seal a, signer-add bea, seal b (newest first).
    assert_eq!(all, [5, 4, 3, 2, 1]);
    let events: Vec<String> = listed(&env, &dir, &[])
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(events, ["seal", "signer-add", "seal", "policy", "init"]);

    // A path, a directory, globs (one without a slash matches at any depth).
    assert_eq!(seqs(&env, &dir, &["--path", "secrets/a.env"]), [3]);
    assert_eq!(seqs(&env, &dir, &["--path", "secrets/db"]), [5]);
    assert_eq!(seqs(&env, &dir, &["--path", "secrets/"]), [5, 3]);
    assert_eq!(seqs(&env, &dir, &["--path", "*.env"]), [5, 3]);
    assert_eq!(seqs(&env, &dir, &["--path", "secrets/*.env"]), [3]);
    assert_eq!(seqs(&env, &dir, &["--path", "b.env"]), [5]);
    assert!(seqs(&env, &dir, &["--path", "secrets/a"]).is_empty());
    assert!(seqs(&env, &dir, &["--path", "a["]).is_empty());

    // An actor by name, email (any case) or signer fingerprint.
    let bea = fingerprint_of(&env, &dir, "bea@example.test");
    let ada = fingerprint_of(&env, &dir, "ada@example.test");
    assert_eq!(seqs(&env, &dir, &["--actor", "bea example"]), [5]);
    assert_eq!(seqs(&env, &dir, &["--actor", "BEA@EXAMPLE.TEST"]), [5]);
    assert_eq!(seqs(&env, &dir, &["--actor", &bea]), [5]);
    assert_eq!(seqs(&env, &dir, &["--actor", &bea[..14]]), [5]);
    assert_eq!(seqs(&env, &dir, &["--actor", &ada]), [4, 3, 2, 1]);
    assert!(seqs(&env, &dir, &["--actor", "nobody"]).is_empty());

    // Events, repeatable; unknown ones refused with the list.
    assert_eq!(seqs(&env, &dir, &["--event", "seal"]), [5, 3]);
    assert_eq!(
        seqs(&env, &dir, &["--event", "init", "--event", "signer-add"]),
        [4, 1]
    );
    let err = stderr(&env.fails("git-seal", &dir, &["audit", "log", "--event", "seals"], 2));
    assert!(
        err.contains("unknown event \"seals\"")
            && err.contains("seal, ")
            && err.contains("accept-finding"),
        "{err}"
    );

    // Every filter given must hold.
    assert_eq!(
        seqs(&env, &dir, &["--path", "*.env", "--actor", "ada"]),
        [3]
    );
    assert!(seqs(&env, &dir, &["--path", "secrets/db", "--event", "init"]).is_empty());
}

/// `YYYY-MM-DD` of `time` (RFC 3339) moved by `days`.
fn date_near(time: &str, days: i64) -> String {
    let at = humantime::parse_rfc3339(time).unwrap();
    let shift = std::time::Duration::from_secs(days.unsigned_abs() * 86_400);
    let moved = if days < 0 { at - shift } else { at + shift };
    humantime::format_rfc3339_seconds(moved).to_string()[..10].to_owned()
}

#[test]
fn log_filters_by_time_with_rfc3339_or_dates() {
    let env = Env::new();
    let (dir, _bea) = two_authors(&env);
    let entries = listed(&env, &dir, &[]);
    let newest = entries[0]["time"].as_str().unwrap();
    let oldest = entries[4]["time"].as_str().unwrap();
    let all = seqs(&env, &dir, &[]);

    assert_eq!(seqs(&env, &dir, &["--since", oldest]), all);
    assert_eq!(seqs(&env, &dir, &["--until", newest]), all);
    assert_eq!(
        seqs(
            &env,
            &dir,
            &[
                "--since",
                &date_near(oldest, 0),
                "--until",
                &date_near(newest, 0)
            ]
        ),
        all
    );
    assert!(seqs(&env, &dir, &["--since", &date_near(newest, 1)]).is_empty());
    assert!(seqs(&env, &dir, &["--until", &date_near(oldest, -1)]).is_empty());
    // The newest entry's time, written with an offset: the same instant.
    let at = humantime::parse_rfc3339(newest).unwrap() + std::time::Duration::from_secs(5400);
    let local = humantime::format_rfc3339_seconds(at).to_string();
    let offset = format!("{}+01:30", local.trim_end_matches('Z'));
    assert_eq!(
        seqs(&env, &dir, &["--since", &offset]),
        seqs(&env, &dir, &["--since", newest])
    );
    assert!(!seqs(&env, &dir, &["--since", &offset]).is_empty());

    for bad in ["yesterday", "2026-1-2", "2026-01-02T03:04:05"] {
        let err = stderr(&env.fails("git-seal", &dir, &["audit", "log", "--since", bad], 2));
        assert!(
            err.contains("is not a time") && err.contains("YYYY-MM-DD"),
            "{err}"
        );
    }
}

#[test]
fn log_text_shows_kids_and_escapes_control_characters_in_every_field() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    let kid = env.kid();
    // A file name that would forge a log line if printed raw.
    let forged =
        "secrets/x\n    9  0123456789ab  2026-01-01T00:00:00Z  init  Eve <e@x>  KEKs\u{1b}[2J.env";
    write_file(&dir, forged, b"X=1\n");
    env.git(&dir, &["add", "-A"]);
    env.git(&dir, &["commit", "-q", "-m", "odd name"]);
    // A reason with a line break (recorded as given) in an accepted finding.
    env.stage_raw(&dir, "secrets/leak.env", b"LEAK=1\n");
    env.git(&dir, &["commit", "-q", "--no-verify", "-m", "leak"]);
    let leak = env.rev(&dir, "HEAD");
    let target = format!("{leak}:secrets/leak.env");
    let reason = "rotated\n   10  feedfeedfeed  forged";
    env.seal(&dir, &["check", "--accept", &target, "--reason", reason]);

    let entries = listed(&env, &dir, &[]);
    let out = env.ok("git-seal", &dir, &["audit", "log"]);
    let text = stdout(&out);
    assert_eq!(text.lines().count(), entries.len(), "{text}");
    assert!(!text.contains('\u{1b}'), "{text:?}");
    let seal = text
        .lines()
        .find(|l| l.contains("secrets/x\\n"))
        .unwrap_or_else(|| panic!("no line for the odd name:\n{text}"));
    assert!(
        seal.contains("secrets/x\\n    9  0123456789ab") && seal.contains("KEKs\\u{1b}[2J.env"),
        "{seal}"
    );
    assert!(seal.contains(&format!("kids {kid}")), "{seal}");
    let accepted = text.lines().next().unwrap();
    assert!(
        accepted.contains("accept-finding")
            && accepted.contains(&format!(
                "accepts the plaintext finding at {}:secrets/leak.env: rotated\\n   10  feedfeedfeed  forged",
                &leak[..12]
            )),
        "{accepted}"
    );
    // The JSON keeps the values as recorded, and filters the same way.
    let odd = listed(&env, &dir, &["--path", forged]);
    assert_eq!(odd.len(), 1);
    assert_eq!(odd[0]["data"]["paths"][0]["path"], forged);
    assert_eq!(
        listed(&env, &dir, &["--event", "accept-finding"])[0]["data"]["reason"],
        reason
    );
}
