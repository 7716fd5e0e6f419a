//! `git seal completions SHELL`: tab-completion scripts, generated from the
//! same clap definitions as the help. Commands and options only; it does
//! not complete kids or remotes.

use std::io::Write as _;

use clap::CommandFactory as _;

use super::error::CommandResult;
use super::Cli;

/// Print a shell's tab-completion script for git-seal.
///
/// bash: add `source <(git seal completions bash)` to ~/.bashrc; it
/// completes `git-seal`, and `git seal` too where Git's own bash completion
/// is loaded. zsh: `git seal completions zsh > DIR/_git-seal` for a DIR on
/// your fpath (before compinit runs); Git's zsh completion uses it for `git
/// seal`. fish: `git seal completions fish >
/// ~/.config/fish/completions/git-seal.fish` (completes `git-seal`).
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub(crate) enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// Git's bash completion (git-completion.bash) completes `git seal …` by
/// calling `_git_seal`, with the line in `words`, the cursor's word in
/// `cword` and the subcommand's position in `__git_cmd_idx` (1 in Git
/// before 2.30). This hands the words after `seal` to the generated
/// function as though `git-seal …` had been typed.
const GIT_SUBCOMMAND_BASH: &str = r#"
# `git seal <TAB>`, where Git's own bash completion is loaded.
_git_seal() {
    local idx=${__git_cmd_idx:-1}
    local COMP_WORDS=(git-seal "${words[@]:idx+1}")
    local COMP_CWORD=$((cword - idx))
    _git__seal git-seal "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
}
"#;

pub(crate) fn run(args: Args) -> CommandResult<u8> {
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut visible_commands(), "git-seal", &mut script);
    if let Shell::Bash = args.shell {
        // clap_complete's bash spells the state of a command under a
        // hyphenated binary two ways (`git__seal__subcmd__kek` when it
        // walks the words, `git__subcmd__seal__subcmd__kek` in the arms
        // that complete it), so nothing after the first command would
        // complete (clap-rs/clap#6421). Once it is fixed this finds nothing.
        let fixed = String::from_utf8(script)
            .expect("clap_complete writes UTF-8")
            .replace("git__subcmd__seal__subcmd__", "git__seal__subcmd__");
        script = fixed.into_bytes();
        script.extend_from_slice(GIT_SUBCOMMAND_BASH.as_bytes());
    }
    std::io::stdout().lock().write_all(&script)?;
    Ok(0)
}

/// The commands a user types, with the options of each: clap_complete
/// would also offer the hidden commands that Git runs (the filter, the
/// hooks' entry point, the drivers), and clap cannot drop a command.
fn visible_commands() -> clap::Command {
    let cli = Cli::command();
    let visible = cli.get_subcommands().filter(|s| !s.is_hide_set()).cloned();
    clap::Command::new("git-seal")
        .version(env!("CARGO_PKG_VERSION"))
        // `help` is among the commands already (cli/help.rs).
        .disable_help_subcommand(true)
        .args(cli.get_arguments().cloned().collect::<Vec<_>>())
        .subcommands(visible.collect::<Vec<_>>())
}
