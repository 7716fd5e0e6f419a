//! `git seal unlock`: re-check-out sealed files once a key is available.

use git_seal::audit::fate::{advice, Fates};
use git_seal::keys::OpenError;
use git_seal::lock::{self, LockError};
use git_seal::workspace::Workspace;

use super::error::{CommandError, CommandResult};

/// Open sealed files left as envelopes in this work tree.
///
/// After `git seal lock`, or a checkout without the key: each such file is
/// checked out again through the filter. Also finishes an unlock that was
/// interrupted.
///
/// Refuses when a locked file was edited since checkout unless --force.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Overwrite locked files even if they differ from the index.
    #[arg(long)]
    pub force: bool,
    /// Print JSON (schema `git-seal.unlock/v1`, docs/json.md).
    #[arg(long)]
    pub json: bool,
}

pub(crate) fn run(args: Args) -> CommandResult<u8> {
    let ws = Workspace::here()?;
    let unlocked = lock::unlock(&ws, args.force).map_err(|e| with_hint(&ws, e))?;
    if args.json {
        let doc = serde_json::json!({"schema": "git-seal.unlock/v1", "unlocked": unlocked});
        outln!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(0);
    }
    if unlocked.is_empty() {
        outln!("git-seal: nothing to unlock");
    } else {
        outln!("git-seal: unlocked {} file(s)", unlocked.len());
    }
    Ok(0)
}

/// The fix for an unlock failure.
fn with_hint(ws: &Workspace, e: LockError) -> CommandError {
    let hint = match &e {
        LockError::EditedWhileLocked { .. } => {
            "stage it first (`git add`), or run `git seal unlock --force`".to_owned()
        }
        LockError::NoKey {
            source: OpenError::Key(_),
            ..
        } => return e.into(),
        LockError::NoKey { source, .. } => {
            let install = format!(
                "install the key ({} provider) and run `git seal unlock` again",
                ws.provider.name()
            );
            // A KEK that was removed or destroyed: say so, rather than
            // only "install the key", which may be no answer at all.
            let explained = match source {
                OpenError::NoUsableKey {
                    wrapped_to,
                    why: None,
                    ..
                } => Fates::read(&ws.repo, &ws.keks).explain(wrapped_to, &install),
                _ => None,
            };
            advice(explained, &install, "run `git seal unlock` again")
        }
        LockError::StayedLocked { .. } => {
            "a damaged envelope: put back the stored one (`git checkout HEAD -- PATH`) or one from history (`git log -- PATH`); a missing key: install it, then run `git seal unlock` again".to_owned()
        }
        _ => return e.into(),
    };
    CommandError::from(e).with_hint(hint)
}
