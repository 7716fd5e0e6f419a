//! Output into a pipe that closes early (`| head`): success, never a panic.

use std::io::Read;
use std::path::Path;
use std::process::Stdio;

use crate::harness::{write_file, Env};

/// Run `git-seal ARGS` with stdout a pipe whose reader goes away, once at
/// once and once after one byte; it must exit 0 without panicking.
fn into_closed_pipe(env: &Env, dir: &Path, args: &[&str]) {
    into_closed_pipe_exits(env, dir, args, 0);
}

/// [`into_closed_pipe`], exiting with `code`.
fn into_closed_pipe_exits(env: &Env, dir: &Path, args: &[&str], code: i32) {
    for read_first in [false, true] {
        let mut child = env
            .command("git-seal", dir)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        if read_first {
            let mut byte = [0u8; 1];
            stdout.read_exact(&mut byte).unwrap();
        }
        drop(stdout);
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.code() == Some(code) && !err.contains("panicked"),
            "`git seal {}` into a closed pipe: exit {:?}\n{err}",
            args.join(" "),
            out.status.code()
        );
    }
}

#[test]
fn audit_log_check_json_and_status_into_a_closed_pipe_exit_0() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    // Enough output that it cannot all fit in the pipe before it closes.
    for i in 0..400 {
        write_file(
            &dir,
            &format!("secrets/a-rather-long-file-name-{i:04}.env"),
            b"x\n",
        );
    }
    env.git(&dir, &["add", "-A"]);
    env.git(&dir, &["commit", "-q", "-m", "many"]);
    into_closed_pipe(&env, &dir, &["audit", "log"]);
    into_closed_pipe(&env, &dir, &["audit", "log", "--json"]);
    into_closed_pipe(&env, &dir, &["check", "--json"]);
    into_closed_pipe(&env, &dir, &["status"]);
    into_closed_pipe(&env, &dir, &["status", "--json"]);
}

#[test]
fn findings_still_fail_the_command_when_its_output_is_cut_short() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    for i in 0..200 {
        write_file(&dir, &format!("secrets/sealed-{i:03}.env"), b"x\n");
    }
    env.git(&dir, &["add", "-A"]);
    env.git(&dir, &["commit", "-q", "-m", "sealed"]);
    // Plaintext under a sealed path, committed past the hooks.
    env.stage_raw(&dir, "secrets/leak.env", b"PASSWORD=leak\n");
    env.git(&dir, &["commit", "-q", "--no-verify", "-m", "leak"]);
    into_closed_pipe_exits(&env, &dir, &["review", "HEAD~2..HEAD"], 1);
    into_closed_pipe_exits(&env, &dir, &["review", "--json", "HEAD~2..HEAD"], 1);
    into_closed_pipe_exits(&env, &dir, &["check"], 1);
}

/// Every `--json` output names its schema and validates against the JSON
/// Schema documented for it in `docs/schemas/` (checked by Python's
/// jsonschema, an independent validator).
#[test]
fn json_outputs_validate_against_their_documented_schemas() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    crate::harness::write_file(&dir, "secrets/a.env", b"A=1\n");
    env.git(&dir, &["add", "-A"]);
    env.git(&dir, &["commit", "-q", "-m", "a secret"]);
    let probe = env.run("python3", &dir, &["-c", "import jsonschema"], None);
    if !probe.status.success() {
        assert!(
            !crate::harness::in_ci(),
            "python3 with jsonschema is missing under CI=true (see .ci/run)"
        );
        eprintln!("skipping: python3's jsonschema is not installed");
        return;
    }
    let outputs: [(&str, &[&str]); 12] = [
        ("status", &["status", "--json"]),
        ("check", &["check", "--json"]),
        ("audit-log", &["audit", "log", "--json"]),
        ("audit-verify", &["audit", "verify", "--json"]),
        ("audit-verify", &["audit", "verify", "--coverage", "--json"]),
        ("kek-list", &["kek", "list", "--json"]),
        ("recipients", &["recipients", "list", "--json"]),
        ("doctor", &["doctor", "--json"]),
        ("lock", &["lock", "--json"]),
        ("unlock", &["unlock", "--json"]),
        ("migrate", &["migrate", "--json"]),
        ("review", &["review", "--json"]),
    ];
    let schemas = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/schemas");
    for (name, args) in outputs {
        let out = env.run("git-seal", &dir, args, None);
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("git seal {args:?}: not JSON ({e}): {out:?}"));
        assert_eq!(doc["schema"], format!("git-seal.{name}/v1"), "{args:?}");
        let schema = schemas.join(format!("{name}.schema.json"));
        let validate = format!(
            "import json, sys, jsonschema\njsonschema.validate(json.load(sys.stdin), json.load(open({:?})))",
            schema.to_str().unwrap()
        );
        let checked = env.run("python3", &dir, &["-c", &validate], Some(&out.stdout));
        assert!(
            checked.status.success(),
            "git seal {args:?} does not match {}:\n{}",
            schema.display(),
            String::from_utf8_lossy(&checked.stderr)
        );
    }
}

/// Progress counters show on a terminal (here a pseudo-terminal made by
/// script(1)), and never when standard error is not one or with --quiet.
#[test]
fn progress_shows_on_a_terminal_only() {
    let env = Env::new();
    let dir = env.repo("r");
    env.commit_files(&dir, "data", 3000);
    env.seal(&dir, &["init", "data/**"]);
    if env.run("script", &dir, &["--version"], None).status.code() != Some(0) {
        assert!(
            !crate::harness::in_ci(),
            "script(1) is missing under CI=true"
        );
        eprintln!("skipping: script(1) (util-linux) is not installed");
        return;
    }
    let plain = env.ok("git-seal", &dir, &["check", "HEAD"]);
    assert!(!String::from_utf8_lossy(&plain.stderr).contains('\r'));
    let on_tty = |command: &str| {
        let out = env.ok("script", &dir, &["-qec", command, "/dev/null"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let shown = on_tty("git seal migrate");
    assert!(
        shown.contains("\rmigrate: ") && shown.contains("/3000 files"),
        "{shown:?}"
    );
    env.git(&dir, &["commit", "-q", "-m", "sealed"]);
    let shown = on_tty("git seal check");
    assert!(
        shown.contains("\rcheck: ") && shown.contains(" commits"),
        "{shown:?}"
    );
    let quiet = on_tty("git seal --quiet check");
    assert!(!quiet.contains("\rcheck: "), "{quiet:?}");
    let shown = on_tty("git seal lock");
    assert!(shown.contains("\rlock: "), "{shown:?}");
    let shown = on_tty("git seal unlock");
    assert!(
        shown.contains("\runlock: ") && shown.contains("/3000 files"),
        "{shown:?}"
    );
    assert_eq!(
        std::fs::read(dir.join("data/f2999.txt")).unwrap(),
        b"value 2999\n"
    );
}
