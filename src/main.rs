use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = git_seal::cli::Cli::parse();
    match git_seal::cli::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("git-seal: {e}");
            ExitCode::from(e.code)
        }
    }
}
