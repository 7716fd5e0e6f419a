//! Lines that say what a library call did, for results that several
//! commands print the same way.

use git_seal::hooks::{self, Change};

use super::error::CommandResult;

/// Say what installing hooks changed (and, if `verbose`, what it did not).
pub(crate) fn hook_changes(changes: &hooks::Each<Change>, verbose: bool) -> CommandResult {
    let mut unchanged = Vec::new();
    for (name, change) in &changes.hooks {
        match change {
            Change::Installed => outln!("git-seal: installed {name} hook"),
            Change::Updated => outln!("git-seal: updated {name} hook"),
            Change::Chained => outln!(
                "git-seal: installed {name} hook; the {name} hook that was there is kept as {name}{} and runs first",
                hooks::PRIOR_SUFFIX
            ),
            _ => unchanged.push(*name),
        }
    }
    if verbose && !unchanged.is_empty() {
        outln!(
            "git-seal: already installed in {}: {}",
            changes.dir.display(),
            unchanged.join(", ")
        );
    }
    Ok(())
}

/// Warn when a lifecycle step's audit entry was not appended (the step
/// itself is staged and stands).
pub(crate) fn audit_warning(what: &str, audit: Result<bool, git_seal::audit::AuditError>) {
    match audit {
        Ok(true) => {}
        Ok(false) => eprintln!("git-seal: warning: {what}: no audit entry was written (see above)"),
        Err(e) => eprintln!("git-seal: warning: {what}: the audit entry was not written: {e}"),
    }
}

/// The `git-seal` that Git runs by name (drivers, hooks): the first
/// executable of that name on PATH, if any.
pub(crate) fn git_seal_on_path() -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("git-seal"))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}
