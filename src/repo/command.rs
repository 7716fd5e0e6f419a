//! Running the `git` binary, bound to one repository, for the porcelain work
//! that libgit2 must not do here: checkout through our own filter, index
//! updates, fetch and push.
//!
//! Every command runs as `git -C <dir> --literal-pathspecs …`, so a
//! repository-relative path means the same from any working directory and
//! a file named `:x` or `*.env` is only that file. Long path lists go over
//! standard input (`--stdin`, `--pathspec-from-file=-`), never argv, and
//! standard input is written on its own thread so a command that answers
//! while it reads cannot deadlock us.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum GitCommandError {
    #[error("cannot run git: {source}")]
    Spawn {
        #[source]
        source: std::io::Error,
    },
    #[error("`git {command}` failed (exit {code}): {stderr}")]
    Failed {
        command: String,
        code: i32,
        stderr: String,
    },
}

/// Environment variables that carry key material or unlock it. A `git`
/// that runs no filter of ours (fetch, push, ls-files, merge-file…) does
/// not get them, nor do its own children (receive-pack on a local remote,
/// a detached `git maintenance`).
pub const SECRET_VARS: &[&str] = &["GIT_SEAL_KEK", "GIT_SEAL_PKCS11_PIN"];

/// `git`, run in one repository: the work tree's top, or the git dir of a
/// bare repository.
#[derive(Debug, Clone)]
pub struct Git {
    dir: PathBuf,
    /// This command runs our filter (add, checkout-index, diff), which
    /// needs the keys: keep [`SECRET_VARS`].
    filters: bool,
    /// Extra environment for the command (and the hooks it runs).
    vars: Vec<(&'static str, &'static str)>,
}

impl Git {
    pub fn new(dir: impl Into<PathBuf>) -> Git {
        Git {
            dir: dir.into(),
            filters: false,
            vars: Vec::new(),
        }
    }

    /// The same, with `name=value` in the command's environment.
    pub fn env(mut self, name: &'static str, value: &'static str) -> Git {
        self.vars.push((name, value));
        self
    }

    /// The same, for commands that run git-seal's filter and so need the
    /// keys in its environment.
    pub fn with_filters(mut self) -> Git {
        self.filters = true;
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Run `git ARGS`; fail with its stderr unless it exits 0.
    pub fn run(&self, args: &[&str]) -> Result<Output, GitCommandError> {
        self.run_with(args, None, &[0])
    }

    /// Run `git ARGS` with `stdin` as standard input; fail with its stderr
    /// unless it exits with one of `ok_codes`.
    pub fn run_with(
        &self,
        args: &[&str],
        stdin: Option<&[u8]>,
        ok_codes: &[i32],
    ) -> Result<Output, GitCommandError> {
        let mut command = Command::new("git");
        if !self.filters {
            for var in SECRET_VARS {
                command.env_remove(var);
            }
        }
        command.envs(self.vars.iter().copied());
        let mut child = command
            .arg("-C")
            .arg(&self.dir)
            .arg("--literal-pathspecs")
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| GitCommandError::Spawn { source })?;
        let output = std::thread::scope(|scope| {
            if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
                // A command that fails early closes its end; its exit status
                // and stderr say why, so a broken pipe here is not the error.
                scope.spawn(move || {
                    let _ = pipe.write_all(input);
                });
            }
            child.wait_with_output()
        })
        .map_err(|source| GitCommandError::Spawn { source })?;
        let code = output.status.code().unwrap_or(-1);
        if !ok_codes.contains(&code) {
            return Err(GitCommandError::Failed {
                command: args.join(" "),
                code,
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        Ok(output)
    }
}

/// Paths as a NUL-separated list, for `--stdin -z` and
/// `--pathspec-file-nul`.
pub fn nul_list<P: AsRef<[u8]>>(paths: &[P]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in paths {
        out.extend_from_slice(p.as_ref());
        out.push(0);
    }
    out
}

/// The records of `-z` output.
pub fn nul_records(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    bytes.split(|b| *b == 0).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_in_its_directory_whatever_the_current_one() {
        let dir = tempfile::tempdir().unwrap();
        let git = Git::new(dir.path());
        git.run(&["init", "-q"]).unwrap();
        let out = git.run(&["rev-parse", "--show-toplevel"]).unwrap();
        let top = String::from_utf8(out.stdout).unwrap();
        assert_eq!(
            std::fs::canonicalize(top.trim()).unwrap(),
            std::fs::canonicalize(dir.path()).unwrap()
        );
    }

    #[test]
    fn pathspecs_are_literal() {
        let dir = tempfile::tempdir().unwrap();
        let git = Git::new(dir.path());
        git.run(&["init", "-q"]).unwrap();
        std::fs::write(dir.path().join(":x.env"), "a").unwrap();
        std::fs::write(dir.path().join("y.env"), "b").unwrap();
        // As magic, `*.env` would add both files; literally, neither exists.
        let err = git.run(&["add", "--", "*.env"]).unwrap_err();
        assert!(matches!(err, GitCommandError::Failed { .. }), "{err}");
        git.run_with(
            &["add", "--pathspec-from-file=-", "--pathspec-file-nul"],
            Some(&nul_list(&[":x.env"])),
            &[0],
        )
        .unwrap();
        let out = git.run(&["ls-files", "-z"]).unwrap();
        let listed: Vec<&[u8]> = nul_records(&out.stdout).collect();
        assert_eq!(listed, [b":x.env".as_slice()]);
    }

    #[test]
    fn failure_carries_the_command_and_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let err = Git::new(dir.path())
            .run(&["rev-parse", "HEAD"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("`git rev-parse HEAD` failed"), "{err}");
    }
}
