//! Input and output helpers shared by commands: `-` for stdin/stdout, and
//! output files written to a temporary file and renamed only on success, so a
//! failure never leaves partial output behind.

use std::io::{Read, Write};
use std::path::Path;

use super::error::{CommandError, CommandResult};

pub fn read_input(path: &str) -> CommandResult<Vec<u8>> {
    if path == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| CommandError::user(format!("cannot read standard input: {e}")))?;
        return Ok(buf);
    }
    std::fs::read(path).map_err(|e| CommandError::user(format!("cannot read {path}: {e}")))
}

/// Write `bytes` to `out` (`None` or `-`: stdout). Files are created 0600 via
/// a temporary file in the same directory and renamed into place.
pub fn write_output(out: Option<&str>, bytes: &[u8]) -> CommandResult {
    match out {
        None | Some("-") => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(bytes)?;
            stdout.flush()?;
            Ok(())
        }
        Some(path) => write_private_file_atomic(Path::new(path), bytes),
    }
}

/// Write a file that may hold plaintext: 0600 unless it already exists.
pub fn write_private_file_atomic(path: &Path, bytes: &[u8]) -> CommandResult {
    write_atomic(path, bytes, 0o600)
}

/// Write a file meant to be committed: keeps an existing file's mode, else
/// 0644 (less the umask).
pub fn write_file_atomic(path: &Path, bytes: &[u8]) -> CommandResult {
    write_atomic(path, bytes, 0o644)
}

fn write_atomic(path: &Path, bytes: &[u8], new_mode: u32) -> CommandResult {
    use std::os::unix::fs::PermissionsExt;
    let fail = |e: &dyn std::fmt::Display| {
        CommandError::user(format!("cannot write {}: {e}", path.display()))
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".git-seal-")
        .tempfile_in(dir)
        .map_err(|e| fail(&e))?;
    tmp.write_all(bytes).map_err(|e| fail(&e))?;
    let mode = match std::fs::metadata(path) {
        Ok(meta) => meta.permissions().mode() & 0o7777,
        Err(_) => new_mode & !umask(),
    };
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(|e| fail(&e))?;
    tmp.as_file().sync_all().map_err(|e| fail(&e))?;
    tmp.persist(path).map_err(|e| fail(&e.error))?;
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
