//! The work tree's lock state: `lock` replaces the plaintext of sealed files
//! by their envelopes; `unlock` checks them out again through the filter
//! once a key is here.
//!
//! Nothing is ever removed before its replacement is in place. `lock`
//! writes each envelope atomically over the plaintext (the plaintext is in
//! the index, and unstaged edits are refused). `unlock` has Git rewrite the
//! files (`git checkout-index -f`), and first records which paths it is
//! rewriting in a journal in the git dir: Git replaces a file by unlinking
//! and recreating it, so a `kill -9` in between leaves it missing, and the
//! next `unlock` restores every journalled path that is missing.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::atomic_file::{self, WriteError};
use crate::envelope;
use crate::filter::lock_marker;
use crate::keys::{self, OpenError};
use crate::repo::command::{nul_list, nul_records, GitCommandError};
use crate::repo::{Oid, RepoError};
use crate::workspace::{Workspace, WorkspaceError};

/// The journal of an unlock under way, in the git dir.
const JOURNAL: &str = "seal-unlocking";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error(transparent)]
    Git(#[from] GitCommandError),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("cannot {what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("sealed files have unstaged changes that locking would discard: {}", .paths.join(", "))]
    UnstagedChanges { paths: Vec<String> },
    #[error("{path} is locked but differs from the index; unlocking would discard that change")]
    EditedWhileLocked { path: String },
    #[error("cannot unlock {path}: {source}")]
    NoKey {
        path: String,
        #[source]
        source: OpenError,
    },
    #[error("{} file(s) stayed locked: {}", .paths.len(), .why.join("; "))]
    StayedLocked {
        paths: Vec<String>,
        /// Per path, why its envelope did not open (path, kid, cause).
        why: Vec<String>,
    },
    #[error("cannot seal {path}: {source}")]
    Seal {
        path: String,
        #[source]
        source: keys::SealError,
    },
    #[error("cannot open {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: OpenError,
    },
}

fn io_error(what: &'static str, path: PathBuf) -> impl FnOnce(std::io::Error) -> LockError {
    move |source| LockError::Io { what, path, source }
}

/// What `lock` did.
#[derive(Debug, Default)]
pub struct Locked {
    /// Files whose plaintext was replaced by their envelope.
    pub locked: Vec<String>,
    /// Sealed paths that the index holds as plaintext, left alone.
    pub plaintext_in_index: Vec<String>,
    /// Untracked files under sealed paths: left as plaintext, or sealed in
    /// place when asked to include them.
    pub untracked: Vec<String>,
    pub untracked_sealed: bool,
}

/// Untracked (not ignored) files under paths that must be sealed, with
/// whether each is an envelope already.
fn untracked_sealed_paths(ws: &Workspace) -> Result<Vec<(String, PathBuf, bool)>, LockError> {
    let out = ws
        .repo
        .git()
        .run(&["ls-files", "--others", "--exclude-standard", "-z"])?;
    let mut found = Vec::new();
    for name in nul_records(&out.stdout) {
        use std::os::unix::ffi::OsStrExt;
        let path = String::from_utf8_lossy(name).into_owned();
        if !ws.must_seal(&path)? {
            continue;
        }
        let file = ws.root.join(std::ffi::OsStr::from_bytes(name));
        let Ok(bytes) = std::fs::read(&file) else {
            continue;
        };
        found.push((path, file, envelope::is_envelope(&bytes)));
    }
    Ok(found)
}

/// Replace the work-tree plaintext of every sealed file by its envelope,
/// and keep the work tree locked on later checkouts. Refuses when a sealed
/// file has unstaged changes, unless `force`. Untracked files under sealed
/// paths are reported, and sealed in place with `include_untracked`.
pub fn lock(ws: &Workspace, force: bool, include_untracked: bool) -> Result<Locked, LockError> {
    let sealed = ws.sealed_index_paths()?;
    if !force {
        let paths = unstaged_changes(ws, sealed.iter().map(|(p, _)| p.as_str()))?;
        if !paths.is_empty() {
            return Err(LockError::UnstagedChanges { paths });
        }
    }
    // Mark first: a checkout racing with us must not unseal again.
    let marker = lock_marker(&ws.repo);
    std::fs::write(&marker, b"locked by `git seal lock`\n")
        .map_err(io_error("write", marker.clone()))?;
    remove_stale_temp_files(ws, sealed.iter().map(|(p, _)| p.as_str()));
    let mut done = Locked::default();
    let mut refresh = Vec::new();
    let progress = crate::progress::Progress::new("lock", sealed.len(), "files");
    for (path, id) in &sealed {
        progress.step();
        let file = ws.work_file(path);
        let Ok(current) = std::fs::read(&file) else {
            continue;
        };
        if envelope::is_envelope(&current) {
            // Locked already (by an earlier run that may have been killed
            // before it refreshed the index): refresh it too, if it is the
            // very envelope the index holds.
            if current == ws.repo.blob(*id)? {
                refresh.push(path.clone());
            }
            continue;
        }
        let text = ws.repo.blob(*id)?;
        if !envelope::is_envelope(&text) {
            done.plaintext_in_index.push(path.clone());
            continue;
        }
        // Keeps the file's mode.
        atomic_file::write_shared(&file, &text)?;
        done.locked.push(path.clone());
    }
    progress.finish();
    for (path, file, is_envelope) in untracked_sealed_paths(ws)? {
        if is_envelope {
            continue;
        }
        if include_untracked {
            let plaintext = std::fs::read(&file).map_err(io_error("read", file.clone()))?;
            let targets = ws.targets_for(Some(&path))?;
            let text = keys::seal_bytes(plaintext, ws.policy.aad_for(&path), &targets).map_err(
                |source| LockError::Seal {
                    path: path.clone(),
                    source,
                },
            )?;
            atomic_file::write_shared(&file, &text)?;
        }
        done.untracked.push(path);
    }
    done.untracked_sealed = include_untracked;
    // The index still records the plaintext's size, and Git calls an entry
    // whose size changed modified without looking at its content: re-add the
    // envelopes (they clean to the same blobs) so the index matches again.
    refresh.extend(done.locked.iter().cloned());
    if !refresh.is_empty() {
        ws.repo.git().with_filters().run_with(
            &[
                "add",
                "--sparse",
                "--pathspec-from-file=-",
                "--pathspec-file-nul",
            ],
            Some(&nul_list(&git_names(ws, &refresh))),
            &[0],
        )?;
    }
    Ok(done)
}

/// The bytes that name `paths` for Git (see [`Workspace::git_name`]).
fn git_names<'a>(ws: &'a Workspace, paths: &'a [String]) -> Vec<&'a [u8]> {
    paths.iter().map(|p| ws.git_name(p)).collect()
}

/// Remove the temporary files (`.git-seal-*`) that a killed run left
/// beside sealed files: each held an envelope on its way into place, and
/// the file it was for is intact.
fn remove_stale_temp_files<'a>(ws: &Workspace, paths: impl Iterator<Item = &'a str>) {
    let dirs: BTreeSet<PathBuf> = paths
        .filter_map(|p| ws.work_file(p).parent().map(PathBuf::from))
        .collect();
    for dir in dirs {
        atomic_file::remove_stale_temp_files(&dir);
    }
}

/// Of `paths`, those whose work-tree content differs from the index.
fn unstaged_changes<'a>(
    ws: &Workspace,
    paths: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<String>, LockError> {
    let wanted: BTreeSet<&str> = paths.into_iter().collect();
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    // Every change, filtered here: no path list in argv.
    let out = ws.repo.git().with_filters().run(&[
        "diff",
        "--name-only",
        "-z",
        "--no-ext-diff",
        "--no-textconv",
        "--no-renames",
    ])?;
    Ok(nul_records(&out.stdout)
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .filter(|p| wanted.contains(p.as_str()))
        .collect())
}

/// Is the work-tree file at `path` an envelope? Its first bytes decide
/// for plaintext, so a hook that runs on every checkout never reads a large
/// unlocked file whole.
pub fn file_is_envelope(path: &std::path::Path) -> bool {
    use std::io::Read;
    let Ok(mut file) = std::fs::File::open(path) else {
        return false;
    };
    let mut head = Vec::with_capacity(256);
    if file.by_ref().take(256).read_to_end(&mut head).is_err() {
        return false;
    }
    // Envelopes name their schema first (canonical text); a large JSON
    // file that is not one is not read whole either.
    if !envelope::claims_envelope(&head) {
        return false;
    }
    std::fs::read(path).is_ok_and(|t| envelope::is_envelope(&t))
}

/// Sealed paths whose work-tree file is an envelope.
pub fn locked_paths(ws: &Workspace) -> Result<Vec<String>, LockError> {
    let mut locked = Vec::new();
    for (path, _) in ws.sealed_index_paths()? {
        if file_is_envelope(&ws.work_file(&path)) {
            locked.push(path);
        }
    }
    Ok(locked)
}

/// Sealed paths that an interrupted `unlock` left missing.
fn interrupted_unlock(ws: &Workspace) -> Result<Vec<String>, LockError> {
    let journal = ws.repo.git_dir().join(JOURNAL);
    let text = match std::fs::read(&journal) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(LockError::Io {
                what: "read",
                path: journal,
                source,
            })
        }
    };
    let sealed: BTreeSet<String> = ws
        .sealed_index_paths()?
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    Ok(nul_records(&text)
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .filter(|p| sealed.contains(p) && !ws.work_file(p).exists())
        .collect())
}

/// Check out again every sealed file left as an envelope (and any file an
/// interrupted unlock left missing). Refuses when a locked file was edited
/// since checkout, unless `force`. Returns the paths unlocked.
pub fn unlock(ws: &Workspace, force: bool) -> Result<Vec<String>, LockError> {
    let mut locked: Vec<(String, Oid, Vec<u8>)> = Vec::new();
    for (path, id) in ws.sealed_index_paths()? {
        let Ok(current) = std::fs::read(ws.work_file(&path)) else {
            continue;
        };
        if !envelope::is_envelope(&current) {
            continue;
        }
        if !force && current != ws.repo.blob(id)? {
            return Err(LockError::EditedWhileLocked { path });
        }
        locked.push((path, id, current));
    }
    // Say which key is missing before touching anything.
    if let Some((path, _, text)) = locked.first() {
        // No key, or a key that cannot be used (a key file others can
        // read): say so, naming the key file and the fix.
        if let Err(source @ (OpenError::NoUsableKey { .. } | OpenError::Key(_))) =
            keys::open_bytes(text, ws.opener().as_ref())
        {
            return Err(LockError::NoKey {
                path: path.clone(),
                source,
            });
        }
    }
    let marker = lock_marker(&ws.repo);
    if marker.exists() {
        std::fs::remove_file(&marker).map_err(io_error("remove", marker.clone()))?;
    }
    let mut opened = Vec::new();
    for (path, file, is_envelope) in untracked_sealed_paths(ws)? {
        if !is_envelope {
            continue;
        }
        let text = std::fs::read(&file).map_err(io_error("read", file.clone()))?;
        let plaintext =
            keys::open_bytes(&text, ws.opener().as_ref()).map_err(|source| LockError::Open {
                path: path.clone(),
                source,
            })?;
        // Plaintext: no name until whole (its mode is the envelope's).
        atomic_file::write_private(&file, &plaintext)?;
        opened.push(path);
    }
    let mut paths: Vec<String> = locked.into_iter().map(|(p, _, _)| p).collect();
    paths.extend(interrupted_unlock(ws)?);
    paths.sort();
    paths.dedup();
    let journal = ws.repo.git_dir().join(JOURNAL);
    if paths.is_empty() {
        remove_if_present(&journal)?;
        return Ok(opened);
    }
    atomic_file::write_private(&journal, &nul_list(&paths))?;
    // Git skips an entry whose file it considers up to date (a locked file
    // cleans to the very blob in the index): an old modification time makes
    // it look changed, so `checkout-index -f` rewrites it. Nothing is
    // removed here; Git replaces each file itself.
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1);
    for path in &paths {
        let file = ws.work_file(path);
        if let Ok(handle) = std::fs::File::options().write(true).open(&file) {
            handle
                .set_modified(old)
                .map_err(io_error("touch", file.clone()))?;
        }
    }
    // On a terminal Git checks out batches, so that the counter moves (each
    // batch starts a filter process); otherwise all at once.
    let progress = crate::progress::Progress::new("unlock", paths.len(), "files");
    let batch = if progress.visible() {
        1000
    } else {
        paths.len()
    };
    for chunk in paths.chunks(batch.max(1)) {
        ws.repo.git().with_filters().run_with(
            &["checkout-index", "-f", "-u", "-z", "--stdin"],
            Some(&nul_list(&git_names(ws, chunk))),
            &[0],
        )?;
        progress.advance(chunk.len());
    }
    progress.finish();
    remove_if_present(&journal)?;
    let still: Vec<String> = paths
        .iter()
        .filter(|p| file_is_envelope(&ws.work_file(p)))
        .cloned()
        .collect();
    if !still.is_empty() {
        // Why each did not open, as opening it again says (the kid it is
        // wrapped to and the cause).
        let why = still
            .iter()
            .map(|path| {
                let reason = std::fs::read(ws.work_file(path))
                    .map_err(|e| e.to_string())
                    .and_then(|text| {
                        keys::open_bytes(&text, ws.opener().as_ref()).map_err(|e| e.to_string())
                    })
                    .err()
                    .unwrap_or_else(|| "it opens now: run `git seal unlock` again".to_owned());
                format!("{path}: {reason}")
            })
            .collect();
        return Err(LockError::StayedLocked { paths: still, why });
    }
    paths.extend(opened);
    Ok(paths)
}

/// Remove a file of ours from the git dir, if it is there.
fn remove_if_present(path: &std::path::Path) -> Result<(), LockError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(LockError::Io {
            what: "remove",
            path: path.to_owned(),
            source,
        }),
    }
}

/// Unlock what can be unlocked, if anything is locked; the count opened.
/// Looks at every sealed file in the work tree. When files stay locked
/// (no key yet), the work tree is marked as smudge marks it, so that the
/// hooks try again after the next checkout.
pub(crate) fn unlock_if_locked(ws: &Workspace) -> Result<usize, LockError> {
    if locked_paths(ws)?.is_empty() && interrupted_unlock(ws)?.is_empty() {
        return Ok(0);
    }
    let result = unlock(ws, false).map(|paths| paths.len());
    if result.is_err() {
        mark_left_sealed(&ws.repo)?;
    }
    result
}

/// Mark this work tree as holding envelopes left sealed: the hooks look for
/// files to unlock after the next checkout.
pub(crate) fn mark_left_sealed(repo: &crate::repo::Repo) -> Result<(), LockError> {
    crate::filter::mark_left_sealed(repo.git_dir())
        .map_err(io_error("write", crate::filter::left_sealed_marker(repo)))
}

/// [`unlock_if_locked`] after a checkout: only when this work tree is
/// marked as holding envelopes left sealed (or an unlock was
/// interrupted), so that a checkout where every file opened does not read
/// every sealed file again. The mark goes first: what stays sealed marks
/// it again.
pub(crate) fn unlock_if_left_sealed(ws: &Workspace) -> Result<usize, LockError> {
    let marker = crate::filter::left_sealed_marker(&ws.repo);
    if !marker.exists() && !ws.repo.git_dir().join(JOURNAL).exists() {
        return Ok(0);
    }
    remove_if_present(&marker)?;
    unlock_if_locked(ws)
}
