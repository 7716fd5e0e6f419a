//! Writing a file so that a crash or a `kill -9` never leaves a partial one:
//! the bytes go to a temporary file in the same directory, are synced, and
//! are renamed into place. On Linux the temporary file of a private file
//! (plaintext, wrapped keys) has no name until it is whole, so a kill while it is
//! written leaves nothing behind.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("cannot write {}: {source}", path.display())]
pub struct WriteError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// What the temporary files of [`write_private`] and [`write_shared`] are
/// called until they are renamed into place.
const TEMP_PREFIX: &str = ".git-seal-";

/// Remove the temporary files that a killed write left in `dir`: the file
/// each was for is intact (written whole or not at all).
pub(crate) fn remove_stale_temp_files(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX)
            && entry.file_type().is_ok_and(|t| t.is_file())
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Write a file that may hold plaintext: 0600 unless it already exists (its
/// mode is kept).
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    write(path, bytes, 0o600, true, Temp::Unnamed)
}

/// Write a private cache or hint that the hooks rewrite on every commit:
/// whole or not at all, like [`write_private`], but not synced, so after
/// a power loss it may be missing or older — which its readers take as
/// "unknown", never as something else. Its directory is made if missing
/// (`.git/seal/` in a clone that has not written there yet).
pub fn write_hint(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    write(path, bytes, 0o600, false, Temp::Named)
}

/// Write a file meant to be committed: keeps an existing file's mode, else
/// 0644 (less the umask).
pub fn write_shared(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    write(path, bytes, 0o644, true, Temp::Named)
}

/// Create a new file that holds a secret (a key), 0600, never replacing
/// one: it appears whole or not at all. On Linux it is written and synced
/// with no name ([`unnamed_file`]), then linked to `path`, which fails if
/// `path` exists; elsewhere it is created, written and synced in place.
pub fn create_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(mut file) = unnamed_file(dir_of(path)) {
        file.write_all(bytes)?;
        file.sync_all()?;
        match link(&file, path) {
            Ok(()) => return Ok(()),
            Err(e) if e == rustix::io::Errno::EXIST => return Err(e.into()),
            // No /proc: created in place below.
            Err(_) => {}
        }
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// [`write_private`] of what `fill` writes, piece by piece: a file too
/// large to build in memory first. If `fill` fails, nothing is written.
pub fn write_private_with(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), WriteError> {
    write_with(path, 0o600, true, Temp::Unnamed, fill)
}

/// Where a file is written before it is renamed into place.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Temp {
    /// A named temporary file.
    Named,
    /// A file with no name until it is whole, where the system allows
    /// ([`unnamed_file`]): for plaintext and wrapped keys, of which a kill must
    /// leave no part. It costs a link through `/proc` more (~6% on
    /// `git seal lock` of 10,000 files on tmpfs), so files that hold
    /// nothing secret keep a named one.
    Unnamed,
}

fn write(
    path: &Path,
    bytes: &[u8],
    new_mode: u32,
    sync: bool,
    temp: Temp,
) -> Result<(), WriteError> {
    write_with(path, new_mode, sync, temp, |w| w.write_all(bytes))
}

fn write_with(
    path: &Path,
    new_mode: u32,
    sync: bool,
    temp: Temp,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), WriteError> {
    let fail = |source| WriteError {
        path: path.to_owned(),
        source,
    };
    let dir = dir_of(path);
    let mode = match std::fs::metadata(path) {
        Ok(meta) => meta.permissions().mode() & 0o7777,
        Err(_) => new_mode & !umask(),
    };
    let unnamed = match temp {
        Temp::Unnamed => unnamed_file(dir),
        Temp::Named => None,
    };
    let (mut file, named) = match unnamed {
        Some(file) => (file, None),
        None => {
            let tmp = tempfile::Builder::new()
                .prefix(TEMP_PREFIX)
                .permissions(std::fs::Permissions::from_mode(0o600))
                .tempfile_in(dir)
                .map_err(fail)?;
            let (file, named) = tmp.into_parts();
            (file, Some(named))
        }
    };
    {
        let mut buffered = std::io::BufWriter::with_capacity(1 << 20, &mut file);
        fill(&mut buffered).map_err(fail)?;
        buffered.flush().map_err(fail)?;
    }
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(fail)?;
    if sync {
        file.sync_all().map_err(fail)?;
    }
    let named = match named {
        Some(named) => named,
        None => name_whole_file(&mut file, dir).map_err(fail)?,
    };
    named.persist(path).map_err(|e| fail(e.error))?;
    Ok(())
}

/// A file in `dir` with no name yet (Linux's `O_TMPFILE`, where the file
/// system has it): a crash or a `kill -9` while it is written leaves
/// nothing behind, not even a temporary file with part of the content.
#[cfg(target_os = "linux")]
fn unnamed_file(dir: &Path) -> Option<std::fs::File> {
    use rustix::fs::{openat, Mode, OFlags, CWD};
    let flags = OFlags::RDWR | OFlags::TMPFILE | OFlags::CLOEXEC;
    openat(CWD, dir, flags, Mode::from_raw_mode(0o600))
        .ok()
        .map(std::fs::File::from)
}

#[cfg(not(target_os = "linux"))]
fn unnamed_file(_dir: &Path) -> Option<std::fs::File> {
    None
}

/// A temporary name in `dir` for `file`, an [`unnamed_file`] now written
/// whole, to be renamed into place: linked through `/proc/self/fd`, or
/// where that fails, copied to a named temporary file.
fn name_whole_file(file: &mut std::fs::File, dir: &Path) -> std::io::Result<tempfile::TempPath> {
    let linked = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .make_in(dir, |temp| Ok(link(file, temp)?));
    if let Ok(linked) = linked {
        return Ok(linked.into_temp_path());
    }
    use std::io::Seek;
    let mut copy = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .permissions(file.metadata()?.permissions())
        .tempfile_in(dir)?;
    file.rewind()?;
    std::io::copy(file, copy.as_file_mut())?;
    copy.as_file().sync_all()?;
    Ok(copy.into_temp_path())
}

/// Give `file`, an [`unnamed_file`], the name `to` (which must not exist),
/// through `/proc/self/fd` (naming it by its descriptor alone needs a
/// privilege).
fn link(file: &std::fs::File, to: &Path) -> rustix::io::Result<()> {
    use rustix::fs::{linkat, AtFlags, CWD};
    use std::os::fd::AsRawFd;
    let fd = format!("/proc/self/fd/{}", file.as_raw_fd());
    linkat(CWD, fd.as_str(), CWD, to, AtFlags::SYMLINK_FOLLOW)
}

/// The directory `path` is in (`.` for a bare file name).
fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The process umask, read without changing it (Linux: /proc/self/status).
fn umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// While the content is written the directory shows no new name (a
    /// kill then leaves nothing); after, only the file, with its mode.
    #[test]
    fn the_file_has_no_name_until_it_is_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        write_private_with(&path, |w| {
            w.write_all(b"part one, ")?;
            if cfg!(target_os = "linux") {
                assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
            }
            w.write_all(b"part two")
        })
        .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"part one, part two");
        assert_eq!(entries(dir.path()), ["out"]);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    /// A failed write leaves an earlier file as it was, and nothing else.
    #[test]
    fn a_failed_write_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        std::fs::write(&path, "earlier").unwrap();
        let err = write_private_with(&path, |w| {
            w.write_all(b"half")?;
            Err(std::io::Error::other("the source failed"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("the source failed"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"earlier");
        assert_eq!(entries(dir.path()), ["out"]);
    }

    /// A file that cannot be linked by its descriptor (here: one already
    /// unlinked) is copied to a named temporary file instead.
    #[test]
    fn a_file_that_cannot_be_linked_is_copied() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("gone");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&gone)
            .unwrap();
        std::fs::remove_file(&gone).unwrap();
        file.write_all(b"whole content").unwrap();
        let named = name_whole_file(&mut file, dir.path()).unwrap();
        assert_eq!(std::fs::read(&named).unwrap(), b"whole content");
        let copied = std::fs::metadata(&named).unwrap().ino();
        assert_ne!(copied, file.metadata().unwrap().ino(), "not a copy");
        named.persist(dir.path().join("out")).unwrap();
        assert_eq!(entries(dir.path()), ["out"]);
    }

    /// A new secret file is 0600 and whole; an existing one is never
    /// replaced.
    #[test]
    fn a_new_secret_file_appears_whole_and_never_replaces_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        create_private(&path, b"secret\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"secret\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let err = create_private(&path, b"other\n").unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).unwrap(), b"secret\n");
        assert_eq!(entries(dir.path()), ["k.key"]);
    }
}
