//! `git seal lock`: replace work-tree plaintext by envelopes.

use git_seal::lock::{self, LockError};
use git_seal::workspace::Workspace;

use super::error::{CommandError, CommandResult};

/// Replace work-tree plaintext of sealed files by their envelopes.
///
/// Keeps nothing decrypted on disk, and keeps the files sealed on later
/// checkouts until `git seal unlock`.
///
/// Refuses when a sealed file has changes not yet staged (they would be
/// lost) unless --force.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Discard unstaged changes to sealed files.
    #[arg(long)]
    pub force: bool,
    /// Also seal untracked files under sealed paths in place (`unlock`
    /// opens them again). Without it they are listed and left as they are.
    #[arg(long)]
    pub include_untracked: bool,
    /// Print JSON (schema `git-seal.lock/v1`, docs/json.md).
    #[arg(long)]
    pub json: bool,
}

pub(crate) fn run(args: Args) -> CommandResult<u8> {
    let ws = Workspace::here()?;
    let done = lock::lock(&ws, args.force, args.include_untracked).map_err(|e| match e {
        e @ LockError::UnstagedChanges { .. } => CommandError::from(e).with_hint(
            "stage or commit them (`git add`), stash them, or run `git seal lock --force` to discard them",
        ),
        e => e.into(),
    })?;
    if args.json {
        let doc = serde_json::json!({
            "schema": "git-seal.lock/v1",
            "locked": done.locked,
            "plaintext_in_index": done.plaintext_in_index,
            "untracked": done.untracked,
            "untracked_sealed": done.untracked_sealed,
        });
        outln!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(0);
    }
    for path in &done.plaintext_in_index {
        eprintln!("git-seal: warning: {path} is stored in plaintext in the index; `git seal check` will report it");
    }
    if !done.untracked.is_empty() && !done.untracked_sealed {
        eprintln!(
            "git-seal: warning: {} untracked file(s) under sealed paths stay plaintext: {}; run `git seal lock --include-untracked` to seal them too",
            done.untracked.len(),
            done.untracked.join(", ")
        );
    } else if !done.untracked.is_empty() {
        outln!(
            "git-seal: sealed {} untracked file(s) in place",
            done.untracked.len()
        );
    }
    outln!(
        "git-seal: locked {} file(s); this work tree stays locked until `git seal unlock`",
        done.locked.len()
    );
    Ok(0)
}
