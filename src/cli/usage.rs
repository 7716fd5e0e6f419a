//! Parsing the command line, with usage errors whose last line names help
//! that works wherever git-seal runs. clap ends them with "try '--help'",
//! but Git turns `git seal --help` into `man git-seal`, which helps only
//! where `man` is installed and finds the manual (see `manual`); `git seal
//! help [COMMAND…]` always prints the full help.

use std::ffi::OsString;
use std::io::Write as _;

use clap::{CommandFactory as _, Parser as _};

use super::Cli;

/// How clap's usage errors end: a blank line, then this hint.
const CLAP_HINT: &str = "\n\nFor more information, try '";

/// The parsed command line; on a usage error, print it with a hint that
/// names `git seal help` and exit as clap would.
pub(crate) fn parse() -> Cli {
    let argv: Vec<OsString> = std::env::args_os().collect();
    Cli::try_parse_from(&argv).unwrap_or_else(|e| exit(&e, &argv))
}

fn exit(error: &clap::Error, argv: &[OsString]) -> ! {
    // Help and version output, and help shown for a missing command, end
    // in no hint and print as they are.
    let text = error.render().ansi().to_string();
    let Some(cut) = text.rfind(CLAP_HINT) else {
        error.exit()
    };
    let literal = *Cli::command().get_styles().get_literal();
    // As clap does: styles on a terminal, plain text elsewhere.
    let mut stderr = anstream::stderr();
    let _ = writeln!(
        stderr,
        "{}{CLAP_HINT}{literal}{}{literal:#}'.",
        &text[..cut],
        help_command(argv)
    );
    let _ = stderr.flush();
    std::process::exit(error.exit_code())
}

/// `git seal help` followed by the commands that `argv` names before
/// anything else (`git seal help kek list` for `git seal kek list --bad`).
fn help_command(argv: &[OsString]) -> String {
    let cli = Cli::command();
    let mut command = &cli;
    let mut help = String::from("git seal help");
    for arg in argv.iter().skip(1) {
        let Some(sub) = arg.to_str().and_then(|a| command.find_subcommand(a)) else {
            break;
        };
        help.push(' ');
        help.push_str(sub.get_name());
        command = sub;
    }
    help
}
