//! `git seal filter-process`, `git seal clean`, `git seal smudge`: the
//! plumbing Git calls (configured by `git seal init`).

use std::io::{Read, Write};

use super::error::{CommandError, CommandResult};
use git_seal::filter::{process, Filter, Output, STREAM_MIN};

/// Git's long-running filter process (`filter.seal.process`). Plumbing.
#[derive(clap::Args, Debug)]
pub(crate) struct ProcessArgs {}

/// Seal standard input for PATH (`filter.seal.clean`). Plumbing.
#[derive(clap::Args, Debug)]
pub(crate) struct CleanArgs {
    /// The path Git is adding (as `%f`).
    pub path: String,
}

/// Open standard input for PATH (`filter.seal.smudge`). Plumbing.
#[derive(clap::Args, Debug)]
pub(crate) struct SmudgeArgs {
    /// The path Git is checking out (as `%f`).
    pub path: String,
}

pub(crate) fn run_process(_: ProcessArgs) -> CommandResult<u8> {
    let mut filter = Filter::from_env().long_running();
    // Standard output as a plain file: Rust's stdout is line-buffered, which
    // would split every response after the envelope's last newline into a
    // second write (the process protocol wants one write per response).
    use std::os::fd::AsFd;
    let stdout = std::fs::File::from(std::io::stdout().as_fd().try_clone_to_owned()?);
    process::serve(
        git_seal::filter::eager::Eager::new(std::io::stdin()),
        stdout,
        &mut filter,
    )
    .map_err(|e| CommandError::user(format!("filter-process: {e}")))?;
    Ok(0)
}

/// Standard input up to `limit` bytes: `true` if that was all of it.
fn stdin_up_to(limit: usize, into: &mut Vec<u8>) -> std::io::Result<bool> {
    let read = std::io::stdin()
        .lock()
        .take(limit as u64)
        .read_to_end(into)?;
    Ok(read < limit)
}

/// The next piece of standard input into `buf` (replacing what it held):
/// `false` at its end.
fn stdin_piece(buf: &mut Vec<u8>) -> std::io::Result<bool> {
    buf.resize(1 << 20, 0);
    let n = loop {
        match std::io::stdin().lock().read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => break other?,
        }
    };
    buf.truncate(n);
    Ok(n > 0)
}

/// Seal standard input: a large file as it comes (see
/// [`Filter::clean_stream`]), so only the envelope is held.
pub(crate) fn run_clean(args: CleanArgs) -> CommandResult<u8> {
    let mut filter = Filter::from_env();
    let mut head = Vec::new();
    let sealed = if stdin_up_to(STREAM_MIN, &mut head)? {
        filter.clean(&args.path, head).map(Output::Bytes)
    } else {
        filter.clean_stream(&args.path, head, &mut stdin_piece)?
    };
    let sealed = sealed.map_err(CommandError::user)?;
    let mut out = std::io::stdout().lock();
    filter.write_output(&sealed, &mut out)?;
    out.flush()?;
    filter.finish();
    Ok(0)
}

/// Open standard input: a large envelope as it comes, holding only its
/// ciphertext (see [`Filter::smudge_stream`]).
pub(crate) fn run_smudge(args: SmudgeArgs) -> CommandResult<u8> {
    let mut filter = Filter::from_env();
    let mut head = Vec::new();
    let smudged = if stdin_up_to(STREAM_MIN, &mut head)? {
        filter.smudge(&args.path, head, None)
    } else {
        filter.smudge_stream(&args.path, head, &mut stdin_piece)?
    };
    if let Some(error) = &smudged.error {
        eprintln!("git-seal: error: {error}");
    }
    let mut out = std::io::stdout().lock();
    filter.write_output(&smudged.bytes, &mut out)?;
    out.flush()?;
    if let Some(summary) = filter.finish() {
        eprintln!("{summary}");
    }
    Ok(0)
}
