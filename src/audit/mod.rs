//! The signed audit chain in `refs/seal/audit` (SPEC §6).
//!
//! Entry points the hooks and commands call. (Being implemented: the audit
//! work fills these in; until then they append nothing.)

use crate::project::Project;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit: {0}")]
    Other(String),
}

/// post-commit: append a `seal` entry for the sealed paths HEAD changed.
pub fn on_commit(project: &Project) -> Result<(), AuditError> {
    let _ = project;
    Ok(())
}

/// post-merge: append a `merge` entry for what arrived and whether it verified.
pub fn on_merge(project: &Project, verified: bool) -> Result<(), AuditError> {
    let _ = (project, verified);
    Ok(())
}

/// `git seal migrate`: append a `migrate` entry for the paths it sealed.
pub fn on_migrate(project: &Project, paths: &[String]) -> Result<(), AuditError> {
    let _ = (project, paths);
    Ok(())
}
