//! Where a command's bytes come from and go: `-` for stdin/stdout; output
//! files are written atomically (0600, as they may hold plaintext), so a
//! failure never leaves partial output behind.

use std::io::{Read, Write};
use std::path::Path;

use super::error::{CommandError, CommandResult};

/// A file Git names, read whole (its path need not be UTF-8).
pub(crate) fn read_file(path: &Path) -> CommandResult<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| CommandError::user(format!("cannot read {}: {e}", path.display())))
}

/// `path` (`-`: stdin) opened for reading piece by piece.
pub(crate) fn open_input(path: &str) -> CommandResult<Box<dyn Read + Send>> {
    if path == "-" {
        return Ok(Box::new(std::io::stdin()));
    }
    let file = std::fs::File::open(path)
        .map_err(|e| CommandError::user(format!("cannot read {path}: {e}")))?;
    Ok(Box::new(file))
}

/// [`write_output`] of what `fill` writes, piece by piece. A file gets
/// nothing if `fill` fails (stdout may have had part of it).
pub(crate) fn write_output_with(
    out: Option<&str>,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> CommandResult {
    match out {
        None | Some("-") => {
            let mut stdout = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            fill(&mut stdout)?;
            stdout.flush()?;
            Ok(())
        }
        Some(path) => Ok(git_seal::atomic_file::write_private_with(
            Path::new(path),
            fill,
        )?),
    }
}

/// Write `bytes` to `out` (`None` or `-`: stdout). Files are created 0600 via
/// a temporary file in the same directory and renamed into place.
pub(crate) fn write_output(out: Option<&str>, bytes: &[u8]) -> CommandResult {
    match out {
        None | Some("-") => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(bytes)?;
            stdout.flush()?;
            Ok(())
        }
        Some(path) => Ok(git_seal::atomic_file::write_private(
            Path::new(path),
            bytes,
        )?),
    }
}
