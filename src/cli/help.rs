//! `git seal help [COMMAND…]`: the full help of git-seal or of a command,
//! printed by git-seal itself (Git turns `git seal --help` into `man
//! git-seal`, which works only where the manual is installed).

use clap::CommandFactory as _;

use super::error::{CommandError, CommandResult};
use super::Cli;

/// Print the full help of git-seal, or of COMMAND (`git seal help kek list`).
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The command, and its subcommands, to show the help of.
    #[arg(value_name = "COMMAND")]
    pub commands: Vec<String>,
}

pub(crate) fn run(args: Args) -> CommandResult<u8> {
    let mut command = Cli::command();
    command.build();
    let mut named = String::from("git seal");
    for name in &args.commands {
        named.push(' ');
        named.push_str(name);
        command = command
            .find_subcommand(name)
            .filter(|sub| !sub.is_hide_set())
            .cloned()
            .ok_or_else(|| {
                CommandError::usage(format!(
                    "there is no command `{named}`; `git seal help` lists them"
                ))
            })?;
    }
    // Styled on a terminal, plain elsewhere, as clap prints its own help.
    let mut stdout = anstream::stdout().lock();
    std::io::Write::write_fmt(
        &mut stdout,
        format_args!("{}", command.render_long_help().ansi()),
    )?;
    Ok(0)
}
