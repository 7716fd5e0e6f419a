//! Sealing tracked plaintext that the policy now covers: each such index
//! entry is replaced by its envelope (mode kept), for the user to commit,
//! and `.gitattributes` gains the policy's globs so the filter keeps those
//! files sealed from now on.

use std::collections::HashMap;

use crate::atomic_file::{self, WriteError};
use crate::audit::{self, AuditError};
use crate::drivers;
use crate::envelope;
use crate::keys::{self, SealError};
use crate::repo::command::{nul_records, GitCommandError};
use crate::repo::{Oid, RepoError};
use crate::workspace::{Workspace, WorkspaceError};

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("the filter is not configured in this clone ({} missing), so Git would store plaintext again", .missing.join(", "))]
    NoFilter { missing: Vec<&'static str> },
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error(transparent)]
    Git(#[from] GitCommandError),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("cannot seal {path}: {source}")]
    Seal {
        path: String,
        #[source]
        source: SealError,
    },
}

/// What `migrate` staged.
#[derive(Debug)]
pub struct Migrated {
    /// `.gitattributes` gained lines for the policy's globs (staged).
    pub attributes_updated: bool,
    /// Paths whose envelope replaced their plaintext in the index.
    pub sealed: Vec<String>,
    /// The audit entry; a failure here does not undo the migration.
    pub audit: Result<(), AuditError>,
}

pub fn migrate(ws: &Workspace) -> Result<Migrated, MigrateError> {
    let missing = drivers::missing_drivers(&ws.repo);
    if !missing.is_empty() {
        return Err(MigrateError::NoFilter { missing });
    }
    let git = ws.repo.git();
    let attributes = ws.root.join(".gitattributes");
    let existing = std::fs::read_to_string(&attributes).unwrap_or_default();
    let attributes_updated = match drivers::gitattributes_with(&existing, &ws.policy.file.sealed) {
        Some(text) => {
            atomic_file::write_shared(&attributes, text.as_bytes())?;
            git.run(&["add", "--", ".gitattributes"])?;
            true
        }
        None => false,
    };
    // The envelopes name KEKs whose records must be committed with them
    // (pre-commit refuses an envelope wrapped to an unlisted kid): stage
    // git-seal's own files too, so the commit migrate prepares is whole.
    for own in [".seal", ".gitattributes"] {
        if ws.root.join(own).exists() {
            git.run(&["add", "--", own])?;
        }
    }

    let mut sealed: Vec<(String, Oid)> = Vec::new();
    let paths = ws.sealed_index_paths()?;
    let progress = crate::progress::Progress::new("migrate", paths.len(), "files");
    for (path, id) in paths {
        progress.step();
        let plaintext = ws.repo.blob(id)?;
        if envelope::is_envelope(&plaintext) {
            continue;
        }
        let targets = ws.targets_for(Some(&path))?;
        let text =
            keys::seal_bytes(plaintext, ws.policy.aad_for(&path), &targets).map_err(|source| {
                MigrateError::Seal {
                    path: path.clone(),
                    source,
                }
            })?;
        sealed.push((path, ws.repo.write_blob(&text)?));
    }
    if sealed.is_empty() {
        return Ok(Migrated {
            attributes_updated,
            sealed: Vec::new(),
            audit: Ok(()),
        });
    }
    // Keep each entry's mode, as the index has it (read whole: no path
    // list in argv).
    progress.finish();
    let listed = git.run(&["ls-files", "-s", "-z"])?;
    let mut mode_of = HashMap::new();
    for record in nul_records(&listed.stdout) {
        let record = String::from_utf8_lossy(record);
        if let Some((meta, path)) = record.split_once('\t') {
            if let Some(mode) = meta.split_whitespace().next() {
                mode_of.insert(path.to_owned(), mode.to_owned());
            }
        }
    }
    let mut info = Vec::new();
    for (path, id) in &sealed {
        let mode = mode_of.get(path).map_or("100644", String::as_str);
        info.extend_from_slice(format!("{mode} {id}\t{path}").as_bytes());
        info.push(0);
    }
    git.run_with(&["update-index", "-z", "--index-info"], Some(&info), &[0])?;
    // The entry names the envelopes just staged (the index as this
    // process read it before `update-index` would still show plaintext).
    let audit = audit::on_migrate(ws, &sealed);
    let paths: Vec<String> = sealed.into_iter().map(|(p, _)| p).collect();
    Ok(Migrated {
        attributes_updated,
        sealed: paths,
        audit,
    })
}
