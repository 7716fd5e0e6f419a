//! `git seal filter-process`, `git seal clean`, `git seal smudge`: the
//! plumbing Git calls (configured by `git seal init`).

use std::io::{Read, Write};

use super::error::{CommandError, CommandResult};
use git_seal::filter::{process, Filter};

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

fn stdin_bytes() -> CommandResult<Vec<u8>> {
    let mut input = Vec::new();
    std::io::stdin().read_to_end(&mut input)?;
    Ok(input)
}

fn write_stdout(bytes: &[u8]) -> CommandResult {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()?;
    Ok(())
}

pub(crate) fn run_clean(args: CleanArgs) -> CommandResult<u8> {
    let mut filter = Filter::from_env();
    let sealed = filter
        .clean(&args.path, stdin_bytes()?)
        .map_err(CommandError::user)?;
    write_stdout(&sealed)?;
    filter.finish();
    Ok(0)
}

pub(crate) fn run_smudge(args: SmudgeArgs) -> CommandResult<u8> {
    let mut filter = Filter::from_env();
    let smudged = filter.smudge(&args.path, stdin_bytes()?, None);
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
