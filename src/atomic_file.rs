//! Writing a file so that a crash or a `kill -9` never leaves a partial one:
//! the bytes go to a temporary file in the same directory, are synced, and
//! are renamed into place.

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
    write(path, bytes, 0o600, true)
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
    write(path, bytes, 0o600, false)
}

/// Write a file meant to be committed: keeps an existing file's mode, else
/// 0644 (less the umask).
pub fn write_shared(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    write(path, bytes, 0o644, true)
}

/// [`write_private`] of what `fill` writes, piece by piece: a file too
/// large to build in memory first. If `fill` fails, nothing is written.
pub fn write_private_with(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), WriteError> {
    write_with(path, 0o600, true, fill)
}

fn write(path: &Path, bytes: &[u8], new_mode: u32, sync: bool) -> Result<(), WriteError> {
    write_with(path, new_mode, sync, |w| w.write_all(bytes))
}

fn write_with(
    path: &Path,
    new_mode: u32,
    sync: bool,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), WriteError> {
    let fail = |source| WriteError {
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(fail)?;
    {
        let mut buffered = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
        fill(&mut buffered).map_err(fail)?;
        buffered.flush().map_err(fail)?;
    }
    let mode = match std::fs::metadata(path) {
        Ok(meta) => meta.permissions().mode() & 0o7777,
        Err(_) => new_mode & !umask(),
    };
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(fail)?;
    if sync {
        tmp.as_file().sync_all().map_err(fail)?;
    }
    tmp.persist(path).map_err(|e| fail(e.error))?;
    Ok(())
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
