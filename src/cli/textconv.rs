//! `git seal textconv`: what `git diff`, `git log -p` and `git show` display
//! for sealed files (`diff.seal.textconv`).

use super::error::CommandResult;
use git_seal::envelope;
use git_seal::keys::OpenError;
use git_seal::workspace::Workspace;

/// Print a sealed file for diffing: plaintext to key holders, the canonical
/// envelope JSON to everyone else. Plumbing, called by `git diff`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The file Git wants converted (a path, which need not be UTF-8).
    pub file: std::path::PathBuf,
}

pub(crate) fn run(args: Args) -> CommandResult<u8> {
    let text = super::stdio::read_file(&args.file)?;
    let env = match envelope::parse(&text) {
        Ok(env) => env,
        // Plaintext (e.g. a work-tree file Git hands over directly) as it is.
        Err(_) => {
            super::stdio::write_output(None, &text)?;
            return Ok(0);
        }
    };
    let canonical = envelope::write(&env);
    let project = Workspace::here().ok();
    let keys = git_seal::keys::for_opening(project.as_ref().map(Workspace::shared_keys))?;
    match git_seal::keys::open(env, &keys) {
        Ok(plaintext) => super::stdio::write_output(None, &plaintext)?,
        Err(OpenError::NoUsableKey { .. }) => super::stdio::write_output(None, &canonical)?,
        Err(e) => {
            eprintln!(
                "git-seal: warning: cannot open a sealed blob for diff: {e}; showing the envelope"
            );
            super::stdio::write_output(None, &canonical)?;
        }
    }
    Ok(0)
}
