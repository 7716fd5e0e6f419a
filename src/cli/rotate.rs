//! `git seal rotate`: replace an active KEK by a new version.

use git_seal::keys::ProviderInfo;
use git_seal::kid::Kid;
use git_seal::lifecycle::rotate::{self, Options};
use git_seal::lifecycle::LifecycleError;
use git_seal::workspace::Workspace;

use super::error::{CommandError, CommandResult};
use super::report::audit_warning;

/// Replace an active KEK by a new version, and re-wrap the index to it.
///
/// Makes a new KEK (or takes `--to`, one added with `git seal kek add`),
/// makes it a recipient in place of `--from` (default: the active KEK
/// whose private half is here), and re-wraps every envelope of the index
/// wrapped to the old KEK: nonce, ciphertext and tag stay byte for byte,
/// only `recipients` changes. The old KEK is retired, and its key file
/// moves to the key directory's `archive/`, so every older commit still
/// opens. The work tree is untouched; `git status` shows the staged
/// envelopes and `.seal/` records to commit.
///
/// History is never rewritten: older commits stay readable to whoever
/// held the old KEK. For a revocation use `--reencrypt`, which also gives
/// every envelope a fresh DEK and ciphertext, so the old KEK opens nothing
/// sealed from now on; then rotate the secrets themselves.
///
/// Interrupted (Ctrl-C, a crash, `kill -9`)? Run `git seal rotate` again:
/// it finishes the same rotation and loses nothing. One signed `rotate`
/// audit entry records it.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The active KEK to replace (default: the active KEK whose private
    /// half is here).
    #[arg(long, value_name = "KID")]
    from: Option<Kid>,
    /// A pending KEK to put in its place (default: make a new version).
    #[arg(long, value_name = "KID")]
    to: Option<Kid>,
    /// Re-encrypt every envelope the old KEK could open, with fresh DEKs
    /// (for revocation), instead of re-wrapping the same DEK.
    #[arg(long)]
    reencrypt: bool,
    /// Where a new KEK's private half lives (default: this clone's
    /// provider).
    #[arg(long, value_parser = super::init::provider_parser())]
    provider: Option<&'static ProviderInfo>,
    /// The AWS KMS key that guards a new KEK of the aws-kms provider (an
    /// ARN, or alias/NAME; default: the active KMS-guarded KEK's).
    #[arg(long, value_name = "ARN")]
    kms_key: Option<String>,
}

pub(crate) fn run(args: Args) -> CommandResult<u8> {
    // `rotate` checks the install lock itself: a custody move interrupted
    // between writing the records and moving the lock must still finish.
    let ws = Workspace::load(git_seal::repo::Repo::from_env()?)?;
    let done = rotate::rotate(
        &ws,
        Options {
            from: args.from,
            to: args.to,
            reencrypt: args.reencrypt,
            provider: args.provider,
            kms_key: args.kms_key,
        },
    )
    .map_err(|e| match &e {
        LifecycleError::Unopened(unopened) => match unopened.hint() {
            Some(hint) => CommandError::from(e).with_hint(hint),
            None => e.into(),
        },
        _ => e.into(),
    })?;
    if done.resumed {
        outln!("git-seal: finished the interrupted rotation");
    }
    outln!(
        "git-seal: rotated {} -> {}{}: {} envelope(s) re-wrapped, {} re-encrypted (staged)",
        done.from,
        done.to,
        if done.created { " (new KEK)" } else { "" },
        done.rewrapped,
        done.reencrypted
    );
    outln!(
        "git-seal: {} is retired{}; older commits still open with it",
        done.from,
        if done.archived {
            ", its key file archived"
        } else {
            ""
        }
    );
    if !done.reencrypt {
        outln!("git-seal: history sealed before stays readable to whoever held {}; `git seal rotate --reencrypt` also changes every DEK", done.from);
    } else {
        outln!("git-seal: history sealed before stays readable to whoever held {}: rotate the secrets themselves", done.from);
    }
    outln!(
        "next: git commit -m 'Rotate KEK {} to {}'",
        done.from,
        done.to
    );
    audit_warning("rotate", done.audit);
    Ok(0)
}
