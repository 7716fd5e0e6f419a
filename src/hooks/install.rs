//! Installing and removing git-seal's hook scripts (the templates in
//! `hooks/`), chained with any hook already there.
//!
//! A hook that is not ours is renamed to `NAME.pre-seal`; our script runs it
//! first with the same arguments (and a copy of stdin) and fails when it
//! fails. Uninstalling puts it back. Both are idempotent. This module does
//! *not* decide what a hook checks: that is `cli/hook.rs` and `check`.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Every installed script contains this line, which is how we recognise
/// our own hooks (and `status` recognises installed ones).
pub const MARKER: &str = "# git-seal hook:";

/// Suffix of a chained (pre-existing) hook.
pub const PRIOR_SUFFIX: &str = ".pre-seal";

/// The script for hook `name`, as shipped in `hooks/`.
pub fn template(name: &str) -> Option<&'static str> {
    Some(match name {
        "pre-commit" => include_str!("../../hooks/pre-commit"),
        "pre-merge-commit" => include_str!("../../hooks/pre-merge-commit"),
        "post-commit" => include_str!("../../hooks/post-commit"),
        "post-merge" => include_str!("../../hooks/post-merge"),
        "post-checkout" => include_str!("../../hooks/post-checkout"),
        "post-rewrite" => include_str!("../../hooks/post-rewrite"),
        "pre-receive" => include_str!("../../hooks/pre-receive"),
        _ => return None,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("no hook template named {0:?}")]
    Unknown(String),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} exists and so does {}: git-seal will not overwrite either; move one of them away and run `git seal hooks install` again", hook.display(), prior.display())]
    PriorTaken { hook: PathBuf, prior: PathBuf },
}

/// The state of one hook in a hooks directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookState {
    /// No hook at all.
    Missing,
    /// Some other hook that git-seal does not run (not chained).
    Foreign,
    /// Ours, but older than this build's template: reinstall.
    Outdated,
    /// Ours and current (chaining a prior hook or not).
    Installed,
}

/// What `install` or `uninstall` did to one hook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Installed,
    /// Installed, with the hook that was there kept as `NAME.pre-seal`.
    Chained,
    Updated,
    Unchanged,
    Removed,
    /// Removed, and `NAME.pre-seal` put back as `NAME`.
    Restored,
    /// Not ours: left alone.
    Skipped,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> HookError + '_ {
    move |source| HookError::Io {
        path: path.to_owned(),
        source,
    }
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, HookError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path)(e)),
    }
}

fn is_ours(bytes: &[u8]) -> bool {
    String::from_utf8_lossy(bytes).contains(MARKER)
}

pub fn state(dir: &Path, name: &str) -> Result<HookState, HookError> {
    let template = template(name).ok_or_else(|| HookError::Unknown(name.to_owned()))?;
    let path = dir.join(name);
    Ok(match read_optional(&path)? {
        None => HookState::Missing,
        Some(bytes) if !is_ours(&bytes) => HookState::Foreign,
        Some(bytes) if bytes != template.as_bytes() || !is_executable(&path) => HookState::Outdated,
        Some(_) => HookState::Installed,
    })
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

/// Install hook `name` in `dir`, chaining whatever hook is there.
pub fn install(dir: &Path, name: &str) -> Result<Change, HookError> {
    let template = template(name).ok_or_else(|| HookError::Unknown(name.to_owned()))?;
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let path = dir.join(name);
    let prior = dir.join(format!("{name}{PRIOR_SUFFIX}"));
    let change = match read_optional(&path)? {
        Some(bytes) if is_ours(&bytes) => {
            if bytes == template.as_bytes() && is_executable(&path) {
                return Ok(Change::Unchanged);
            }
            Change::Updated
        }
        Some(_) => {
            if prior.exists() {
                return Err(HookError::PriorTaken { hook: path, prior });
            }
            // A rename keeps the prior hook's mode and content exactly.
            fs::rename(&path, &prior).map_err(io_err(&path))?;
            Change::Chained
        }
        None => Change::Installed,
    };
    // Write beside it and rename, so Git never runs a half-written hook.
    let tmp = dir.join(format!(".{name}.git-seal.tmp"));
    fs::write(&tmp, template).map_err(io_err(&tmp))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).map_err(io_err(&tmp))?;
    fs::rename(&tmp, &path).map_err(io_err(&path))?;
    Ok(change)
}

/// Remove our hook `name` from `dir` and put a chained prior hook back.
pub fn uninstall(dir: &Path, name: &str) -> Result<Change, HookError> {
    let path = dir.join(name);
    let prior = dir.join(format!("{name}{PRIOR_SUFFIX}"));
    match read_optional(&path)? {
        Some(bytes) if is_ours(&bytes) => {
            if prior.exists() {
                fs::rename(&prior, &path).map_err(io_err(&prior))?;
                Ok(Change::Restored)
            } else {
                fs::remove_file(&path).map_err(io_err(&path))?;
                Ok(Change::Removed)
            }
        }
        Some(_) => Ok(Change::Skipped),
        None => Ok(Change::Unchanged),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_chains_and_uninstall_restores() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("hooks");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("pre-commit"), "#!/bin/sh\nexit 0\n").unwrap();
        assert_eq!(state(&dir, "pre-commit").unwrap(), HookState::Foreign);
        assert_eq!(install(&dir, "pre-commit").unwrap(), Change::Chained);
        assert_eq!(install(&dir, "pre-commit").unwrap(), Change::Unchanged);
        assert_eq!(state(&dir, "pre-commit").unwrap(), HookState::Installed);
        assert_eq!(
            fs::read_to_string(dir.join("pre-commit.pre-seal")).unwrap(),
            "#!/bin/sh\nexit 0\n"
        );
        assert_eq!(install(&dir, "post-commit").unwrap(), Change::Installed);
        assert_eq!(uninstall(&dir, "pre-commit").unwrap(), Change::Restored);
        assert_eq!(uninstall(&dir, "post-commit").unwrap(), Change::Removed);
        assert_eq!(uninstall(&dir, "pre-commit").unwrap(), Change::Skipped);
        assert_eq!(
            fs::read_to_string(dir.join("pre-commit")).unwrap(),
            "#!/bin/sh\nexit 0\n"
        );
        assert!(!dir.join("post-commit").exists());
    }

    #[test]
    fn every_template_carries_the_marker() {
        for name in crate::hooks::HOOK_NAMES
            .iter()
            .chain(crate::hooks::SERVER_HOOK_NAMES)
        {
            let text = template(name).unwrap();
            assert!(text.contains(MARKER), "{name}");
            assert!(text.contains("git-seal hook \"$hook\""), "{name}");
            assert!(text.contains(&format!("hook={name}\n")), "{name}");
        }
    }
}
