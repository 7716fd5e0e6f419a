//! One atomic update of the index for a lifecycle command: envelope blobs
//! replaced in place and git-seal's own files staged, in a single rename.
//!
//! Each replaced entry keeps its stat data: the work-tree file still holds
//! the same plaintext, which the new envelope seals, so Git need not run
//! the filter over every file again and `git status` shows only the staged
//! change. Entries the old index held as racily clean (modified in the
//! second the index was written) lose their size, as Git does when it
//! writes an index, so Git looks at them again.
//!
//! The index is Git's lock (`index.lock`, taken with `O_EXCL`). The lock
//! file we create holds a token that the command's journal names first, so
//! that after a `kill -9` the next run knows the stale lock is its own and
//! removes it; a lock anyone else holds is never touched.

use std::collections::HashMap;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::repo::{Oid, Repo, RepoError};

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("{} exists: another git process is running in this repository; wait for it (if none is, remove that file) and run the command again", path.display())]
    Locked { path: PathBuf },
    #[error("cannot update the index ({}): {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot update the index: {0}")]
    Git(#[from] git2::Error),
    #[error(transparent)]
    Repo(#[from] RepoError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> IndexError + '_ {
    move |source| IndexError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The index file and its lock.
fn paths(repo: &Repo) -> Result<(PathBuf, PathBuf), IndexError> {
    let index = repo.raw().index()?;
    let path = index
        .path()
        .map(Path::to_owned)
        .unwrap_or_else(|| repo.git_dir().join("index"));
    let mut lock = path.clone().into_os_string();
    lock.push(".lock");
    Ok((path, PathBuf::from(lock)))
}

/// Remove `index.lock` if it is ours: it holds `token`, written by a run
/// that was killed before it could remove it.
pub(crate) fn clear_stale_lock(repo: &Repo, token: &str) -> Result<bool, IndexError> {
    let (_, lock) = paths(repo)?;
    match fs::read(&lock) {
        Ok(text) if text == token.as_bytes() => {
            fs::remove_file(&lock).map_err(io(&lock))?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Replace the blob ids of `replace`'s paths (stage-0 entries; stat data,
/// mode and flags kept) and stage the work-tree files `stage` (paths
/// relative to the root, git-seal's own files), in one write. `token` is
/// what the lock file holds (see [`clear_stale_lock`]). Returns the tree id
/// of the new index.
pub(crate) fn update(
    repo: &Repo,
    root: &Path,
    replace: &HashMap<String, Oid>,
    stage: &[String],
    token: &str,
) -> Result<Oid, IndexError> {
    let (path, lock) = paths(repo)?;
    // The lock appears with its token already in it (written aside, then
    // hard-linked into place, which fails if the lock exists): a kill can
    // never leave an empty lock that no run would know as its own.
    let dir = repo.common_dir().join("seal");
    fs::create_dir_all(&dir).map_err(io(&dir))?;
    let aside = dir.join("index-lock.next");
    let _ = fs::remove_file(&aside);
    let mut file = fs::File::create(&aside).map_err(io(&aside))?;
    file.write_all(token.as_bytes()).map_err(io(&aside))?;
    drop(file);
    let linked = fs::hard_link(&aside, &lock);
    let _ = fs::remove_file(&aside);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(IndexError::Locked { path: lock })
        }
        Err(e) => return Err(io(&lock)(e)),
    }
    let result = write_locked(repo, root, &path, replace, stage);
    // The lock goes whatever happened: on success the new index is in
    // place, on failure the old one is untouched.
    let _ = fs::remove_file(&lock);
    result
}

fn write_locked(
    repo: &Repo,
    root: &Path,
    path: &Path,
    replace: &HashMap<String, Oid>,
    stage: &[String],
) -> Result<Oid, IndexError> {
    let dir = repo.common_dir().join("seal");
    fs::create_dir_all(&dir).map_err(io(&dir))?;
    let work = dir.join("index.next");
    let _ = fs::remove_file(&work);
    let _ = fs::remove_file(dir.join("index.next.lock"));
    // Seconds since the epoch of the old index: entries not older are
    // racily clean.
    let racy_from = match fs::metadata(path) {
        Ok(meta) => {
            fs::copy(path, &work).map_err(io(&work))?;
            Some(meta.mtime())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io(path)(e)),
    };
    let mut index = git2::Index::open(&work)?;
    let mut changed = Vec::new();
    for entry in index.iter() {
        let stage_bits = (entry.flags >> 12) & 0x3;
        let name = crate::repo::path_text(&entry.path);
        let racy = racy_from.is_some_and(|t| i64::from(entry.mtime.seconds()) >= t);
        let new_id = (stage_bits == 0).then(|| replace.get(&name)).flatten();
        if new_id.is_none() && !racy {
            continue;
        }
        let mut entry = entry;
        if let Some(id) = new_id {
            entry.id = *id;
        }
        if racy {
            entry.file_size = 0;
        }
        changed.push(entry);
    }
    for entry in &changed {
        index.add(entry)?;
    }
    for name in stage {
        let file = root.join(name);
        let meta = fs::symlink_metadata(&file).map_err(io(&file))?;
        let bytes = fs::read(&file).map_err(io(&file))?;
        let id = repo.write_blob(&bytes)?;
        index.add(&git2::IndexEntry {
            ctime: git2::IndexTime::new(meta.ctime() as i32, meta.ctime_nsec() as u32),
            mtime: git2::IndexTime::new(meta.mtime() as i32, meta.mtime_nsec() as u32),
            dev: meta.dev() as u32,
            ino: meta.ino() as u32,
            mode: if meta.mode() & 0o111 != 0 {
                0o100755
            } else {
                0o100644
            },
            uid: meta.uid(),
            gid: meta.gid(),
            file_size: meta.size() as u32,
            id,
            flags: name.len().min(0xfff) as u16,
            flags_extended: 0,
            path: name.as_bytes().to_vec(),
        })?;
    }
    index.write()?;
    let tree = crate::repo::retrying_races(|| index.write_tree_to(repo.raw()))?;
    fs::File::open(&work)
        .and_then(|f| f.sync_all())
        .map_err(io(&work))?;
    fs::rename(&work, path).map_err(io(path))?;
    Ok(tree)
}
