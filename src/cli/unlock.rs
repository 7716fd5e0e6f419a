//! `git seal unlock`: re-check-out sealed files once a key is available.

use super::error::{CommandError, CommandResult};
use git_seal::envelope;
use git_seal::filter::lock_marker;
use git_seal::keys::{self, OpenError};
use git_seal::workspace::Workspace;

/// Open sealed files left as envelopes in this work tree.
///
/// After `git seal lock`, or a checkout without the key: each such file is
/// checked out again through the filter.
///
/// Refuses when a locked file was edited since checkout unless --force.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Overwrite locked files even if they differ from the index.
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: Args) -> CommandResult<u8> {
    let project = Workspace::open(&std::env::current_dir()?)?;
    unlock(&project, args.force)
}

/// Unlock what can be unlocked, printing only when something was opened.
pub fn unlock_quietly(project: &Workspace) -> CommandResult<usize> {
    let locked = locked_paths(project)?;
    if locked.is_empty() {
        return Ok(0);
    }
    unlock(project, false)?;
    Ok(locked.len())
}

/// Sealed paths whose work-tree file is an envelope.
pub fn locked_paths(project: &Workspace) -> CommandResult<Vec<String>> {
    let mut locked = Vec::new();
    for (path, _) in project.sealed_index_paths()? {
        if std::fs::read(project.root.join(&path)).is_ok_and(|t| envelope::is_envelope(&t)) {
            locked.push(path);
        }
    }
    Ok(locked)
}

pub fn unlock(project: &Workspace, force: bool) -> CommandResult<u8> {
    let marker = lock_marker(&project.repo);
    let mut locked = Vec::new();
    for (path, id) in project.sealed_index_paths()? {
        let Ok(current) = std::fs::read(project.root.join(&path)) else {
            continue;
        };
        if !envelope::is_envelope(&current) {
            continue;
        }
        if !force && current != project.repo.blob(id)? {
            return Err(CommandError::user(format!(
                "{path} is locked but differs from the index; unlocking would discard that change"
            ))
            .with_hint("stage it first (`git add`), or run `git seal unlock --force`"));
        }
        locked.push((path, current));
    }
    // Say which key is missing before touching anything.
    if let Some((path, text)) = locked.first() {
        if let Err(e @ OpenError::NoUsableKey { .. }) = keys::open_bytes(text, project.keys()) {
            return Err(
                CommandError::user(format!("cannot unlock {path}: {e}")).with_hint(format!(
                    "install the key ({} provider) and run `git seal unlock` again",
                    project.provider.name()
                )),
            );
        }
    }
    if marker.exists() {
        std::fs::remove_file(&marker)?;
    }
    if locked.is_empty() {
        println!("git-seal: nothing to unlock");
        return Ok(0);
    }
    let paths: Vec<String> = locked.into_iter().map(|(p, _)| p).collect();
    // Git skips entries it considers up to date (a locked file cleans to the
    // very blob in the index), so remove them first; each is identical to
    // its index blob, so nothing is lost.
    for path in &paths {
        std::fs::remove_file(project.root.join(path))?;
    }
    let root = project.root.to_string_lossy().into_owned();
    super::git::run(
        &["-C", &root, "checkout-index", "-f", "-u", "-z", "--stdin"],
        Some(&super::git::nul_list(&paths)),
        &[0],
    )?;
    let still: Vec<&String> = paths
        .iter()
        .filter(|p| std::fs::read(project.root.join(p)).is_ok_and(|t| envelope::is_envelope(&t)))
        .collect();
    if !still.is_empty() {
        return Err(CommandError::user(format!(
            "{} file(s) stayed locked (damaged envelope or no key): {}",
            still.len(),
            still
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    println!("git-seal: unlocked {} file(s)", paths.len());
    Ok(0)
}
