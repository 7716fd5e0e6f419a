//! The merge driver for sealed files: a three-way merge of the plaintexts
//! (`git merge-file`), re-sealed to the path's recipients. Plaintext only
//! ever touches disk as 0600 files in a private 0700 directory inside the
//! git dir, removed at once; never the work tree.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;

use crate::envelope;
use crate::keys::{self, OpenError, SealError};
use crate::workspace::{Workspace, WorkspaceError};

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("cannot merge {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: OpenError,
    },
    #[error("cannot seal the merge of {path}: {source}")]
    Seal {
        path: String,
        #[source]
        source: SealError,
    },
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
    #[error("cannot write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The three versions Git hands the driver, as stored (envelopes, or
/// plaintext where a side was not sealed).
#[derive(Debug)]
pub struct Sides {
    pub base: Vec<u8>,
    pub ours: Vec<u8>,
    pub theirs: Vec<u8>,
}

/// The names Git gives the three sides (%S, %X, %Y: say `HEAD`,
/// `feature`), shown in conflict markers.
#[derive(Debug, Clone)]
pub struct Labels {
    pub base: String,
    pub ours: String,
    pub theirs: String,
}

impl Default for Labels {
    fn default() -> Labels {
        Labels {
            base: "base".into(),
            ours: "ours".into(),
            theirs: "theirs".into(),
        }
    }
}

/// The re-sealed result, and whether it carries conflict markers.
#[derive(Debug)]
pub struct Merged {
    pub envelope: Vec<u8>,
    pub conflicts: bool,
    /// Why the sides could not be merged line by line (then ours is kept).
    pub unmergeable: Option<String>,
}

pub fn merge(
    ws: &Workspace,
    path: &str,
    sides: Sides,
    marker_size: u32,
    labels: &Labels,
) -> Result<Merged, MergeError> {
    let open = |text: Vec<u8>| -> Result<Vec<u8>, MergeError> {
        if !envelope::is_envelope(&text) {
            return Ok(text);
        }
        keys::open_bytes(&text, ws.opener().as_ref()).map_err(|source| MergeError::Open {
            path: path.to_owned(),
            source,
        })
    };
    let (base, ours, theirs) = (open(sides.base)?, open(sides.ours)?, open(sides.theirs)?);
    let (merged, conflicts, unmergeable) =
        match merge_file(ws, &base, &ours, &theirs, marker_size, labels)? {
            Ok((merged, conflicts)) => (merged, conflicts, None),
            // Binary or otherwise unmergeable: keep ours and report a conflict.
            Err(why) => (ours, true, Some(why)),
        };
    let targets = ws.targets_for(Some(path))?;
    let envelope =
        keys::seal_bytes(merged, ws.policy.aad_for(path), &targets).map_err(|source| {
            MergeError::Seal {
                path: path.to_owned(),
                source,
            }
        })?;
    Ok(Merged {
        envelope,
        conflicts,
        unmergeable,
    })
}

/// `git merge-file -p` on three plaintexts: the result and whether it has
/// conflicts, or why Git could not merge them.
fn merge_file(
    ws: &Workspace,
    base: &[u8],
    ours: &[u8],
    theirs: &[u8],
    marker_size: u32,
    labels: &Labels,
) -> Result<Result<(Vec<u8>, bool), String>, MergeError> {
    let io = |path: PathBuf| move |source| MergeError::Io { path, source };
    let parent = ws.repo.git_dir().join("seal");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&parent)
        .map_err(io(parent.clone()))?;
    let dir = tempfile::Builder::new()
        .prefix("merge-")
        .tempdir_in(&parent)
        .map_err(io(parent.clone()))?;
    let write = |name: &str, bytes: &[u8]| -> Result<String, MergeError> {
        let path = dir.path().join(name);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io(path.clone()))?;
        f.write_all(bytes).map_err(io(path.clone()))?;
        Ok(path.to_string_lossy().into_owned())
    };
    let (o, a, b) = (
        write("base", base)?,
        write("ours", ours)?,
        write("theirs", theirs)?,
    );
    let marker = format!("--marker-size={marker_size}");
    let out = ws.repo.git().run_with(
        &[
            "merge-file",
            "-p",
            &marker,
            "-L",
            &labels.ours,
            "-L",
            &labels.base,
            "-L",
            &labels.theirs,
            &a,
            &o,
            &b,
        ],
        None,
        &(0..=127).collect::<Vec<_>>(),
    );
    drop(dir);
    Ok(match out {
        Ok(out) => Ok((out.stdout, out.status.code().unwrap_or(1) > 0)),
        Err(e) => Err(e.to_string()),
    })
}
