//! KEK expiry (`rotate_after_days`) in `status`, `doctor` and `check`, and
//! envelopes left wrapped to retired or removed KEKs. The clock is real:
//! records are written with old `created_at` dates instead.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::harness::{assert_sealed, set_policy, stderr, stdout, write_file, Env};
use git_seal::keys::record::{self, KekRecord, Status};

const DAY: u64 = 86_400;

fn days_ago(days: u64) -> SystemTime {
    SystemTime::now() - Duration::from_secs(days * DAY)
}

fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

/// The day (`YYYY-MM-DD`) of `created` plus `days`.
fn due_day(created: &str, days: u64) -> String {
    let created = humantime::parse_rfc3339(created).unwrap();
    rfc3339(created + Duration::from_secs(days * DAY))[..10].to_owned()
}

/// Change one field of `kid`'s record in the work tree.
fn edit_record(dir: &Path, kid: &str, field: &str, value: &str) {
    let path = dir.join(format!(".seal/keys/{kid}.json"));
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    json[field] = serde_json::Value::String(value.to_owned());
    std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap() + "\n").unwrap();
}

/// A new KEK: its private half in the key directory, its record (with
/// `status`) in the work tree. Returns its kid.
fn add_kek(env: &Env, dir: &Path, version: u32, status: Status) -> String {
    let secret = git_seal::secret::KekSecret::generate();
    git_seal::keys::file::FileKeys::new(env.key_dir.clone())
        .store(&secret)
        .unwrap();
    let kek = KekRecord {
        status,
        ..KekRecord::new_x25519(&secret.public(), version)
    };
    record::store(dir, &kek).unwrap();
    kek.kid.to_string()
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap()
}

/// The kids an envelope stored at `HEAD:path` is wrapped to.
fn wrapped_to(env: &Env, dir: &Path, path: &str) -> Vec<String> {
    let stored = env.git(dir, &["cat-file", "-p", &format!("HEAD:{path}")]);
    json(&stored)["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// A sealed repository with `secrets/a.env` committed (wrapped to its
/// only KEK): (dir, kid).
fn with_a_secret(env: &Env) -> (PathBuf, String) {
    let dir = env.sealed_repo("r");
    let kid = env.kid();
    write_file(&dir, "secrets/a.env", b"A=1\n");
    env.git(&dir, &["add", "secrets"]);
    env.git(&dir, &["commit", "-q", "-m", "a secret"]);
    (dir, kid)
}

/// `git seal check --json ARGS`'s warnings; it must exit 0.
fn check_warnings(env: &Env, dir: &Path, args: &[&str]) -> serde_json::Value {
    let report = json(&env.seal(dir, &[&["check", "--json"], args].concat()));
    assert_eq!(report["ok"], true, "{report}");
    report["warnings"].clone()
}

const NONE: serde_json::Value = serde_json::Value::Array(Vec::new());

/// A sealed repository whose KEK was made two days ago under a cadence of
/// one day (in the work tree): (dir, kid, created_at).
fn overdue_by_a_day(env: &Env) -> (PathBuf, String, String) {
    let dir = env.sealed_repo("r");
    let kid = env.kid();
    let created = rfc3339(days_ago(2));
    edit_record(&dir, &kid, "created_at", &created);
    set_policy(&dir, "rotate_after_days", 1.into());
    (dir, kid, created)
}

#[test]
fn status_and_doctor_report_an_overdue_kek_with_its_fix() {
    let env = Env::new();
    let (dir, kid, created) = overdue_by_a_day(&env);
    let due = due_day(&created, 1);

    let status = json(&env.seal(&dir, &["status", "--json"]));
    assert_eq!(status["rotate_after_days"], 1);
    let kek = &status["keks"][0];
    // The fields that were there stay as they were.
    assert_eq!(kek["kid"], kid.as_str());
    assert_eq!(kek["created_at"], created.as_str());
    assert_eq!(kek["status"], "active");
    assert_eq!(kek["usable_here"], true);
    assert_eq!(kek["due_state"], "overdue");
    assert_eq!(kek["due_in_days"], -1);
    let due_at = humantime::parse_rfc3339(&created).unwrap() + Duration::from_secs(DAY);
    assert_eq!(kek["due"], rfc3339(due_at).as_str());

    let text = env.seal(&dir, &["status"]);
    let line = format!(
        "rotation: KEK {kid} is overdue for rotation: it was due on {due} (1 day(s) ago; every 1 days by rotate_after_days); run `git seal rotate --from {kid}`"
    );
    assert!(text.contains(&line), "{text}");
    assert!(text.contains(&format!("due={due}")), "{text}");

    let out = stdout(&env.fails("git-seal", &dir, &["doctor"], 1));
    assert!(
        out.contains(&format!(
            "KEK {kid} is overdue for rotation: it was due on {due}"
        )) && out.contains(&format!("fix: `git seal rotate --from {kid}`")),
        "{out}"
    );
    assert!(!out.contains("warning:"), "overdue is a problem: {out}");
}

#[test]
fn status_and_doctor_warn_of_a_kek_due_soon_without_failing() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    let kid = env.kid();
    // A new KEK: due two years on (the default cadence), nothing to say.
    let fresh = json(&env.seal(&dir, &["status", "--json"]));
    let created = fresh["keks"][0]["created_at"].as_str().unwrap().to_owned();
    assert_eq!(fresh["rotate_after_days"], 730);
    assert_eq!(fresh["keks"][0]["due_state"], "ok");
    let due_at = humantime::parse_rfc3339(&created).unwrap() + Duration::from_secs(730 * DAY);
    assert_eq!(fresh["keks"][0]["due"], rfc3339(due_at).as_str());
    assert!(!env.seal(&dir, &["status"]).contains("rotation:"));
    assert_eq!(
        env.seal(&dir, &["doctor"]),
        "git-seal: doctor: nothing to fix\n"
    );

    let created = rfc3339(days_ago(720));
    edit_record(&dir, &kid, "created_at", &created);
    let due = due_day(&created, 730);
    let kek = &json(&env.seal(&dir, &["status", "--json"]))["keks"][0];
    assert_eq!(kek["due_state"], "due-soon");
    assert_eq!(kek["due_in_days"], 10);
    let text = env.seal(&dir, &["status"]);
    assert!(
        text.contains(&format!("rotation: KEK {kid} is due for rotation on {due} (in 10 day(s); every 730 days by rotate_after_days); run `git seal rotate --from {kid}`")),
        "{text}"
    );
    let out = env.seal(&dir, &["doctor"]);
    assert!(
        out.contains(&format!(
            "warning: KEK {kid} is due for rotation on {due} (in 10 day(s)"
        )) && out.contains(&format!("fix: `git seal rotate --from {kid}`"))
            && out.ends_with("git-seal: doctor: nothing to fix\n"),
        "{out}"
    );
}

#[test]
fn only_active_keks_are_judged_by_status_doctor_and_check() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    let old = env.kid();
    edit_record(&dir, &old, "created_at", &rfc3339(days_ago(5000)));
    edit_record(&dir, &old, "status", "retired");
    let active = add_kek(&env, &dir, 2, Status::Active);
    let pending = add_kek(&env, &dir, 3, Status::Pending);
    edit_record(&dir, &pending, "created_at", &rfc3339(days_ago(5000)));
    env.git(&dir, &["add", ".seal"]);
    env.git(&dir, &["commit", "-q", "-m", "rotated by hand"]);

    let status = json(&env.seal(&dir, &["status", "--json"]));
    for kek in status["keks"].as_array().unwrap() {
        let judged = kek["kid"] == active.as_str();
        assert_eq!(kek["due_state"].is_null(), !judged, "{kek}");
        assert_eq!(kek["due"].is_null(), !judged, "{kek}");
        assert_eq!(kek["due_in_days"].is_null(), !judged, "{kek}");
    }
    assert!(!env.seal(&dir, &["status"]).contains("rotation:"));
    env.seal(&dir, &["doctor"]);
    assert_eq!(check_warnings(&env, &dir, &[]), NONE);
}

#[test]
fn check_warns_of_an_overdue_kek_on_the_tip_and_still_passes() {
    let env = Env::new();
    let (dir, kid, created) = overdue_by_a_day(&env);
    env.git(&dir, &["add", ".seal"]);
    // The pre-commit hook does not refuse a commit over a due date.
    env.git(&dir, &["commit", "-q", "-m", "an old KEK"]);
    let tip = env.rev(&dir, "HEAD");
    let due = due_day(&created, 1);
    let record = format!(".seal/keys/{kid}.json");

    let out = env.ok("git-seal", &dir, &["check"]);
    let text = stdout(&out);
    assert_eq!(
        text,
        format!("warning: {tip}: {record}: KEK {kid} is overdue for rotation: it was due on {due} (1 day(s) ago; every 1 days by rotate_after_days); run `git seal rotate --from {kid}`\n")
    );
    assert!(
        stderr(&out).contains(": ok, 1 warning(s)"),
        "{}",
        stderr(&out)
    );

    let report = json(&env.seal(&dir, &["check", "--json"]));
    assert_eq!(report["findings"], NONE);
    let warnings = check_warnings(&env, &dir, &[]);
    assert_eq!(warnings.as_array().unwrap().len(), 1, "{report}");
    assert_eq!(warnings[0]["kind"], "rotation-due");
    assert_eq!(warnings[0]["commit"], tip.as_str());
    assert_eq!(warnings[0]["path"], record.as_str());
    // A range whose last commit is the tip warns too; one that ends
    // before the KEK got old does not.
    assert_eq!(check_warnings(&env, &dir, &["HEAD~1..HEAD"]), warnings);
    assert_eq!(check_warnings(&env, &dir, &["HEAD~1"]), NONE);

    // History is not judged, only the tip: a fresh date (under a cadence
    // longer than the 30 days of "soon") clears it.
    edit_record(&dir, &kid, "created_at", &rfc3339(SystemTime::now()));
    set_policy(&dir, "rotate_after_days", 365.into());
    env.git(&dir, &["commit", "-q", "-am", "rotated"]);
    assert_eq!(check_warnings(&env, &dir, &[]), NONE);
}

/// A sealed repository whose `secrets/a.env` is wrapped to its first KEK
/// only, which a second one has replaced: (dir, old kid, new kid). The
/// commit that retires the old KEK is refused by nothing.
fn retired_by_hand(env: &Env) -> (PathBuf, String, String) {
    let (dir, old) = with_a_secret(env);
    let new = add_kek(env, &dir, 2, Status::Active);
    edit_record(&dir, &old, "status", "retired");
    env.git(&dir, &["add", ".seal"]);
    env.git(&dir, &["commit", "-q", "-m", "retire the first KEK"]);
    assert_eq!(
        wrapped_to(env, &dir, "secrets/a.env"),
        std::slice::from_ref(&old)
    );
    (dir, old, new)
}

#[test]
fn check_warns_of_an_envelope_wrapped_only_to_a_retired_kek() {
    let env = Env::new();
    let (dir, old, new) = retired_by_hand(&env);
    let tip = env.rev(&dir, "HEAD");
    let text = env.seal(&dir, &["check"]);
    assert_eq!(
        text,
        format!("warning: {tip}: secrets/a.env: envelope is wrapped only to {old}, which .seal/keys/ lists as retired (no active or pending KEK among its recipients); re-wrap the index to the active KEK with `git seal rotate --from {old}` and commit, or re-seal it to the current recipients from its plaintext with `git add --renormalize secrets/a.env` (`git seal unlock` first if it is locked) and commit\n")
    );
    let warnings = check_warnings(&env, &dir, &[]);
    assert_eq!(warnings[0]["kind"], "retired-only");
    assert_eq!(warnings[0]["path"], "secrets/a.env");

    // The fix the warning names works: the file is sealed to the new KEK
    // alone, opens, and check has nothing more to say (the older commit
    // keeps its envelope: history is not judged).
    env.git(&dir, &["add", "--renormalize", "secrets/a.env"]);
    env.git(&dir, &["commit", "-q", "-m", "re-seal"]);
    assert_eq!(wrapped_to(&env, &dir, "secrets/a.env"), [new]);
    assert_sealed(&env, &dir, "secrets/a.env", b"A=1\n");
    assert_eq!(check_warnings(&env, &dir, &[]), NONE);
}

#[test]
fn check_warns_of_a_branch_still_on_a_kek_that_head_retired() {
    let env = Env::new();
    let (dir, old) = with_a_secret(&env);
    // A branch made before the rotation, with a secret of its own.
    env.git(&dir, &["checkout", "-q", "-b", "feature"]);
    write_file(&dir, "secrets/b.env", b"B=1\n");
    env.git(&dir, &["add", "secrets"]);
    env.git(&dir, &["commit", "-q", "-m", "b"]);
    env.git(&dir, &["checkout", "-q", "main"]);
    add_kek(&env, &dir, 2, Status::Active);
    edit_record(&dir, &old, "status", "retired");
    env.git(&dir, &["add", ".seal"]);
    env.git(&dir, &["add", "--renormalize", "secrets"]);
    env.git(&dir, &["commit", "-q", "-m", "rotate"]);
    // main itself is clean.
    assert_eq!(check_warnings(&env, &dir, &[]), NONE);

    let feature = env.rev(&dir, "feature");
    let out = env.ok("git-seal", &dir, &["check", "main..feature"]);
    let text = stdout(&out);
    for path in ["secrets/a.env", "secrets/b.env"] {
        assert!(
            text.contains(&format!("warning: {feature}: {path}: envelope is wrapped only to {old}, which HEAD's .seal/keys/ lists as retired while this commit still lists it as active")),
            "{text}"
        );
    }
    assert!(
        text.contains(&format!("then re-wrap with `git seal rotate --from {old}`")),
        "{text}"
    );
    // On the branch itself its own records rule: nothing to say.
    env.git(&dir, &["checkout", "-q", "feature"]);
    assert_eq!(check_warnings(&env, &dir, &[]), NONE);
}

#[test]
fn envelope_on_a_removed_kek_is_refused_and_renormalize_reseals_it() {
    let env = Env::new();
    let (dir, old) = with_a_secret(&env);
    let new = add_kek(&env, &dir, 2, Status::Active);
    edit_record(&dir, &old, "status", "removed");
    env.git(&dir, &["add", ".seal"]);
    let refused = env.fails("git", &dir, &["commit", "-q", "-m", "remove"], 1);
    let fix = "re-seal it to the current recipients from its plaintext with `git add --renormalize secrets/a.env` (`git seal unlock` first if it is locked)";
    let said = stderr(&refused);
    assert!(
        said.contains(&format!(
            "secrets/a.env: envelope is wrapped to {old}, which .seal/keys/ lists as removed; {fix}"
        )),
        "{said}"
    );
    // Committed anyway, check says the same for history, and fails.
    env.git(&dir, &["commit", "-q", "--no-verify", "-m", "remove"]);
    let text = stdout(&env.fails("git-seal", &dir, &["check"], 1));
    assert!(
        text.contains(&format!("lists as removed; {fix} and commit")),
        "{text}"
    );

    // The fix works: sealed to the new KEK, and the next commit is clean.
    env.git(&dir, &["add", "--renormalize", "secrets/a.env"]);
    env.git(&dir, &["commit", "-q", "-m", "re-seal"]);
    assert_eq!(wrapped_to(&env, &dir, "secrets/a.env"), [new]);
    assert_sealed(&env, &dir, "secrets/a.env", b"A=1\n");
    assert_eq!(check_warnings(&env, &dir, &["HEAD~1..HEAD"]), NONE);
}

#[test]
fn malformed_created_at_is_refused_naming_the_record() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    let kid = env.kid();
    let record = format!(".seal/keys/{kid}.json");
    edit_record(&dir, &kid, "created_at", "last tuesday");
    let problem = format!("created_at \"last tuesday\" of {kid} is not an RFC 3339 UTC time");

    let err = stderr(&env.fails("git-seal", &dir, &["status"], 1));
    assert!(err.contains(&record) && err.contains(&problem), "{err}");
    let out = stdout(&env.fails("git-seal", &dir, &["doctor"], 1));
    assert!(out.contains(&record) && out.contains(&problem), "{out}");

    env.git(&dir, &["add", ".seal"]);
    let refused = stderr(&env.fails("git", &dir, &["commit", "-q", "-m", "bad date"], 1));
    assert!(refused.contains(&problem), "{refused}");
    env.git(&dir, &["commit", "-q", "--no-verify", "-m", "bad date"]);
    let report = json(&stdout(&env.fails(
        "git-seal",
        &dir,
        &["check", "--json"],
        1,
    )));
    let finding = &report["findings"][0];
    assert_eq!(finding["kind"], "bad-policy");
    let message = finding["message"].as_str().unwrap();
    assert!(
        message.contains(&record) && message.contains(&problem),
        "{message}"
    );
}
