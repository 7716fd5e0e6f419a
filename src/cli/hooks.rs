//! `git seal hooks install|uninstall`.

use super::error::CommandResult;
use git_seal::hooks::{self, Change};
use git_seal::repo::Repo;

/// Install or remove git-seal's hooks.
///
/// Hooks go where `core.hooksPath` points, else in the repository's
/// `hooks/` directory (shared by linked worktrees). A hook already there is
/// kept as NAME.pre-seal and runs first; its failure still fails the
/// operation. In a bare repository the server hook (pre-receive) is
/// installed instead of the client hooks. Both subcommands are idempotent.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// Install the hooks, chaining any hook already there.
    Install,
    /// Remove git-seal's hooks and put back the hooks they chained.
    Uninstall,
}

pub fn run(args: Args) -> CommandResult<u8> {
    let repo = Repo::from_env()?;
    match args.action {
        Action::Install => install(&repo, true)?,
        Action::Uninstall => {
            let dir = git_seal::hooks::hooks_dir(&repo);
            for name in names(&repo) {
                match hooks::uninstall(&dir, name)? {
                    Change::Removed => println!("git-seal: removed {name}"),
                    Change::Restored => {
                        println!("git-seal: removed {name} and restored the hook it chained")
                    }
                    Change::Skipped => {
                        println!("git-seal: left {name} alone (not installed by git-seal)")
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(0)
}

/// The hooks this repository gets: server hooks in a bare repository.
pub fn names(repo: &Repo) -> &'static [&'static str] {
    if repo.is_bare() {
        git_seal::hooks::SERVER_HOOK_NAMES
    } else {
        git_seal::hooks::HOOK_NAMES
    }
}

/// Install every hook; print what changed (and, if `verbose`, what did not).
pub fn install(repo: &Repo, verbose: bool) -> CommandResult {
    let dir = git_seal::hooks::hooks_dir(repo);
    let mut unchanged = Vec::new();
    for name in names(repo) {
        match hooks::install(&dir, name)? {
            Change::Installed => println!("git-seal: installed {name} hook"),
            Change::Updated => println!("git-seal: updated {name} hook"),
            Change::Chained => println!(
                "git-seal: installed {name} hook; the {name} hook that was there is kept as {name}{} and runs first",
                hooks::PRIOR_SUFFIX
            ),
            _ => unchanged.push(*name),
        }
    }
    if verbose && !unchanged.is_empty() {
        println!(
            "git-seal: already installed in {}: {}",
            dir.display(),
            unchanged.join(", ")
        );
    }
    Ok(())
}
