//! Git hooks: which ones git-seal installs and where (`install`), and what
//! each one does when Git runs it (`run`).

pub mod install;
pub mod run;

pub use install::{
    install, state, template, uninstall, Change, HookError, HookState, MARKER, PRIOR_SUFFIX,
};

use std::path::PathBuf;

use crate::repo::Repo;

/// Hooks git-seal installs.
pub const HOOK_NAMES: &[&str] = &[
    "pre-commit",
    "pre-merge-commit",
    "post-commit",
    "post-merge",
    "post-checkout",
    "post-rewrite",
    "pre-push",
    "reference-transaction",
];

/// Hooks git-seal installs in a bare (server) repository.
pub const SERVER_HOOK_NAMES: &[&str] = &["pre-receive"];

/// Where hooks go: `core.hooksPath` if set (`~/` expanded; relative to the
/// work tree top, or to the git dir in a bare repository, as Git resolves
/// it), else the common git dir's `hooks/` (shared by linked worktrees).
fn hooks_dir(repo: &Repo) -> PathBuf {
    match repo.config_get("core.hooksPath") {
        Some(path) => {
            let path = match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
                (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
                _ => PathBuf::from(path),
            };
            if path.is_absolute() {
                path
            } else {
                match repo.workdir("hooks") {
                    Ok(top) => top.join(&path),
                    Err(_) => repo.git_dir().join(&path),
                }
            }
        }
        None => repo.common_dir().join("hooks"),
    }
}

/// The hooks this repository gets: server hooks in a bare repository.
pub fn names(repo: &Repo) -> &'static [&'static str] {
    if repo.is_bare() {
        SERVER_HOOK_NAMES
    } else {
        HOOK_NAMES
    }
}

/// Something about each hook this repository gets, in the directory Git
/// runs hooks from.
#[derive(Debug)]
pub struct Each<T> {
    pub dir: PathBuf,
    pub hooks: Vec<(&'static str, T)>,
}

/// The one answer to "are our hooks installed?": the state of each hook
/// this repository gets.
pub fn states(repo: &Repo) -> Result<Each<HookState>, HookError> {
    let dir = hooks_dir(repo);
    let hooks = names(repo)
        .iter()
        .map(|name| Ok((*name, state(&dir, name)?)))
        .collect::<Result<_, HookError>>()?;
    Ok(Each { dir, hooks })
}

/// Install every hook this repository gets; what happened to each.
pub fn install_all(repo: &Repo) -> Result<Each<Change>, HookError> {
    let dir = hooks_dir(repo);
    let hooks = names(repo)
        .iter()
        .map(|name| Ok((*name, install(&dir, name)?)))
        .collect::<Result<_, HookError>>()?;
    Ok(Each { dir, hooks })
}

/// Remove every hook of ours, restoring the hooks they chained.
pub fn uninstall_all(repo: &Repo) -> Result<Vec<(&'static str, Change)>, HookError> {
    let dir = hooks_dir(repo);
    names(repo)
        .iter()
        .map(|name| Ok((*name, uninstall(&dir, name)?)))
        .collect()
}
