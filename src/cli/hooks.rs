//! `git seal hooks install|uninstall`.

use git_seal::hooks::{self, Change};
use git_seal::repo::Repo;

use super::error::CommandResult;

/// Install or remove git-seal's hooks.
///
/// Hooks go where `core.hooksPath` points, else in the repository's
/// `hooks/` directory (shared by linked worktrees). A hook already there is
/// kept as NAME.pre-seal and runs first; its failure still fails the
/// operation. In a bare repository the server hook (pre-receive) is
/// installed instead of the client hooks. Both subcommands are idempotent.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(clap::Subcommand, Debug)]
pub(crate) enum Action {
    /// Install the hooks, chaining any hook already there.
    Install,
    /// Remove git-seal's hooks and put back the hooks they chained.
    Uninstall,
}

pub(crate) fn run(args: Args) -> CommandResult<u8> {
    let repo = Repo::from_env()?;
    match args.action {
        Action::Install => {
            super::report::hook_changes(&hooks::install_all(&repo)?, true)?;
        }
        Action::Uninstall => {
            for (name, change) in hooks::uninstall_all(&repo)? {
                match change {
                    Change::Removed => outln!("git-seal: removed {name}"),
                    Change::Restored => {
                        outln!("git-seal: removed {name} and restored the hook it chained")
                    }
                    Change::Skipped => {
                        outln!("git-seal: left {name} alone (not installed by git-seal)")
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(0)
}
