//! Output into a pipe that closes early (`| head`): success, never a panic.

use std::io::Read;
use std::path::Path;
use std::process::Stdio;

use crate::harness::{write_file, Env};

/// Run `git-seal ARGS` with stdout a pipe whose reader goes away, once at
/// once and once after one byte; it must exit 0 without panicking.
fn into_closed_pipe(env: &Env, dir: &Path, args: &[&str]) {
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
            out.status.success() && !err.contains("panicked"),
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
