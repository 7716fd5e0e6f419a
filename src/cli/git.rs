//! Running the `git` binary for porcelain work that libgit2 should not do
//! here (checkout through our own filter, merge-file, index refresh).

use std::io::Write;
use std::process::{Command, Output, Stdio};

use super::error::{CommandError, CommandResult};

/// Run `git ARGS` with optional standard input; fail with its stderr unless
/// it exits with one of `ok_codes`.
pub fn run(args: &[&str], stdin: Option<&[u8]>, ok_codes: &[i32]) -> CommandResult<Output> {
    let mut child = Command::new("git")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| CommandError::user(format!("cannot run git: {e}")))?;
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("piped");
        pipe.write_all(input)?;
    }
    let output = child.wait_with_output()?;
    let code = output.status.code().unwrap_or(-1);
    if !ok_codes.contains(&code) {
        return Err(CommandError::user(format!(
            "`git {}` failed (exit {code}): {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(output)
}

/// NUL-separated paths as bytes for `--stdin -z` / `-z` output parsing.
pub fn nul_list(paths: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in paths {
        out.extend_from_slice(p.as_bytes());
        out.push(0);
    }
    out
}

pub fn parse_nul_list(bytes: &[u8]) -> Vec<String> {
    bytes
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}
