//! `git seal hook NAME [ARGS]`: the entry point of the installed hooks.

use std::io::Read;

use git_seal::hooks::run::{self, HookRunError};

use super::error::{CommandError, CommandResult};

/// Run one of git-seal's hooks (as the scripts in `hooks/` do).
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// pre-commit, pre-merge-commit, post-commit, post-merge, post-checkout,
    /// post-rewrite, pre-push, reference-transaction or pre-receive.
    pub name: String,
    /// The arguments Git gave the hook.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

pub(crate) fn run(args: Args) -> CommandResult<u8> {
    let mut stdin = String::new();
    if matches!(
        args.name.as_str(),
        "pre-receive" | "post-rewrite" | "pre-push" | "reference-transaction"
    ) {
        std::io::stdin().read_to_string(&mut stdin)?;
    }
    let outcome = run::run(&args.name, &args.args, &stdin).map_err(|e| match e {
        e @ HookRunError::Unknown(_) => CommandError::usage(e),
        e => e.into(),
    })?;
    for line in &outcome.lines {
        eprintln!("git-seal: {line}");
    }
    Ok(u8::from(outcome.refuse))
}
