//! The `git-seal` binary: parses arguments, runs one command from `cli/`,
//! and maps its error to an exit code. Everything else is the library.

use std::process::ExitCode;

mod cli;

fn main() -> ExitCode {
    let args = cli::usage::parse();
    let init = matches!(args.command, cli::Command::Init(_));
    let result = cli::run(args);
    if init {
        // The README's one step after `cargo install`: from here on
        // `git seal --help` and `git help seal` find the manual.
        cli::manual::refresh_beside_executable();
    }
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("git-seal: {e}");
            ExitCode::from(e.code)
        }
    }
}
