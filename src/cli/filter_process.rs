//! `git seal filter-process`, `git seal clean`, `git seal smudge`: the
//! plumbing Git calls (configured by `git seal init`).

use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;

use super::error::{CommandError, CommandResult};
use git_seal::filter::{process, Filter, Output, STREAM_MIN};

/// Git's long-running filter process (`filter.seal.process`). Plumbing.
#[derive(clap::Args, Debug)]
pub(crate) struct ProcessArgs {}

/// Seal standard input for PATH (`filter.seal.clean`). Plumbing.
#[derive(clap::Args, Debug)]
pub(crate) struct CleanArgs {
    /// The path Git is adding (as `%f`).
    pub path: std::ffi::OsString,
}

/// Open standard input for PATH (`filter.seal.smudge`). Plumbing.
#[derive(clap::Args, Debug)]
pub(crate) struct SmudgeArgs {
    /// The path Git is checking out (as `%f`).
    pub path: std::ffi::OsString,
}

pub(crate) fn run_process(_: ProcessArgs) -> CommandResult<u8> {
    let mut filter = Filter::from_env()
        .long_running()
        .before_large_files(widen_pipes);
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

/// Give the pipes to and from Git 1 MiB each (the system's default
/// limit for an unprivileged process; Linux's default is 64 KiB), where
/// they are pipes and the system allows it. A large file then crosses in
/// a sixteenth of the turns, each a wake-up of Git or of git-seal: the
/// status of a touched 256 MiB file, whose envelope (341 MB) goes back to
/// Git, took 1.25 s against 1.59 s (medians of 7, interleaved). Only a
/// process that moves a large file does it: the pages of all of a user's
/// pipes count against a limit (`pipe-user-pages-soft`), past which their
/// new pipes are made small.
fn widen_pipes() {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsFd;
        for fd in [std::io::stdin().as_fd(), std::io::stdout().as_fd()] {
            // A failure (not a pipe, past the user's pipe quota) only
            // costs speed.
            let _ = rustix::pipe::fcntl_setpipe_size(fd, PIPE_SIZE);
        }
    }
}

/// See [`widen_pipes`].
#[cfg(target_os = "linux")]
const PIPE_SIZE: usize = 1 << 20;

/// Append up to `limit` bytes of standard input to `into`: how many (fewer
/// only at its end). Reads into spare capacity, with no zeroing first.
fn read_stdin(limit: usize, into: &mut Vec<u8>) -> std::io::Result<usize> {
    std::io::stdin().lock().take(limit as u64).read_to_end(into)
}

/// Standard input read at a time past [`STREAM_MIN`], by clean: its
/// per-piece work (the tag's batches, base64 lines) favours large pieces
/// (256 MiB from a pipe: 0.72 s against 0.81 s with 64 KiB).
const CLEAN_PIECE: usize = 1 << 20;
/// ...and by smudge, whose decoding and spilling of each piece want it to
/// stay in the cache (0.62 s against 0.76 s with 1 MiB).
const SMUDGE_PIECE: usize = 64 << 10;

/// The next piece of standard input, up to `size` bytes, into `buf`
/// (replacing what it held): `false` at its end.
fn stdin_piece(buf: &mut Vec<u8>, size: usize) -> std::io::Result<bool> {
    buf.clear();
    Ok(read_stdin(size, buf)? > 0)
}

/// Seal standard input: a large file as it comes (see
/// [`Filter::clean_stream`]), so only the envelope is held.
pub(crate) fn run_clean(args: CleanArgs) -> CommandResult<u8> {
    let mut filter = Filter::from_env();
    let path = filter.name_path(args.path.as_bytes());
    let mut head = Vec::new();
    let sealed = if read_stdin(STREAM_MIN, &mut head)? < STREAM_MIN {
        filter.clean(&path, head).map(Output::Bytes)
    } else {
        widen_pipes();
        filter.clean_stream(&path, head, &mut |buf| stdin_piece(buf, CLEAN_PIECE))?
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
    let path = filter.name_path(args.path.as_bytes());
    let mut head = Vec::new();
    let smudged = if read_stdin(STREAM_MIN, &mut head)? < STREAM_MIN {
        filter.smudge(&path, head, None)
    } else {
        widen_pipes();
        filter.smudge_stream(&path, head, &mut |buf| stdin_piece(buf, SMUDGE_PIECE))?
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
