//! The `git-seal` binary: parses arguments, runs one command from `cli/`,
//! and maps its error to an exit code. Everything else is the library.

use std::process::ExitCode;

mod cli;

fn main() -> ExitCode {
    let args = cli::usage::parse();
    match cli::run(args) {
        Ok(code) => ExitCode::from(code),
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("git-seal: {e}");
            ExitCode::from(e.code)
        }
    }
}
