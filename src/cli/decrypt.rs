//! `git seal decrypt`: open one envelope outside the filter.

use super::error::{CommandError, CommandResult};
use git_seal::audit::fate::Fates;
use git_seal::keys::KeyError;
use git_seal::keys::{OpenError, OpenIntoError};
use git_seal::workspace::Workspace;
use std::path::Path;

/// Open one envelope, outside the Git filter.
///
/// Tries the repository's provider (inside a git-seal repository), then any
/// key file in the key directory, then GIT_SEAL_KEK. On any failure nothing
/// is written: no partial plaintext, ever.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Envelope to open, or `-` for standard input.
    pub file: String,
    /// Write the plaintext here (mode 0600) instead of standard output:
    /// decrypted as it is read into a temporary file beside it, which is
    /// renamed into place only once the envelope authenticates (standard
    /// output gets nothing before then either, as the file is held).
    #[arg(long, short)]
    pub out: Option<String>,
}

pub(crate) fn run(args: Args) -> CommandResult<u8> {
    let project = Workspace::here().ok();
    let keys = git_seal::keys::for_opening(project.as_ref().map(Workspace::shared_keys))?;
    let name = if args.file == "-" {
        "<stdin>"
    } else {
        args.file.as_str()
    };
    let mut input = super::stdio::open_input(&args.file)?;
    match args.out.as_deref() {
        Some(out) if out != "-" => {
            // Decrypted as it is read, into a temporary file that is
            // renamed into place only once the tag verifies.
            let mut failed = None;
            let written = git_seal::atomic_file::write_private_with(Path::new(out), |file| {
                match git_seal::keys::open_into(&mut input, &keys, file) {
                    Ok(()) => Ok(()),
                    Err(OpenIntoError::Write(e)) => Err(e),
                    Err(e) => {
                        failed = Some(e);
                        Err(std::io::Error::other("not opened"))
                    }
                }
            });
            match failed {
                Some(OpenIntoError::Read(e)) => {
                    Err(CommandError::user(format!("cannot read {name}: {e}")))
                }
                Some(OpenIntoError::Open(e)) => Err(open_error(project.as_ref(), name, e)),
                _ => Ok(written?),
            }?;
        }
        _ => {
            // Standard output gets nothing before the tag verifies: only
            // the ciphertext is held as it is read, then decrypted in
            // place (one copy of the file in memory, never the text).
            let text_len = match args.file.as_str() {
                "-" => 0,
                file => std::fs::metadata(file).map_or(0, |m| m.len() as usize),
            };
            let parsed = git_seal::envelope::reader::read(&mut input, text_len)
                .map_err(|e| CommandError::user(format!("cannot read {name}: {e}")))?;
            let plaintext = parsed
                .map_err(OpenError::from)
                .and_then(|env| git_seal::keys::open(env, &keys))
                .map_err(|e| open_error(project.as_ref(), name, e))?;
            super::stdio::write_output(None, &plaintext)?;
        }
    }
    Ok(0)
}

/// Why `name` did not open, with the fix.
fn open_error(project: Option<&Workspace>, name: &str, e: OpenError) -> CommandError {
    const INSTALL: &str =
        "install the KEK's key file in the key directory (GIT_SEAL_KEY_DIR) or put it in GIT_SEAL_KEK";
    let err = CommandError::user(format!("cannot open {name}: {e}"));
    match e {
        // A provider that said why (a token, KMS): its reason names the fix.
        OpenError::NoUsableKey { why: Some(_), .. } => err,
        OpenError::NoUsableKey { ref wrapped_to, .. } => {
            // A KEK that was removed or destroyed: installing it is not
            // the plain answer, and may be no answer at all.
            let explained =
                project.and_then(|ws| Fates::read(&ws.repo, &ws.keks).explain(wrapped_to, INSTALL));
            match explained {
                Some(explained) => {
                    let err =
                        CommandError::user(format!("cannot open {name}: {e}; {}", explained.says));
                    match explained.fix {
                        Some(fix) => err.with_hint(fix),
                        None => err,
                    }
                }
                None => err.with_hint(INSTALL),
            }
        }
        OpenError::Format(_) => err.with_hint("the file is not a valid git-seal envelope v1"),
        OpenError::Content { .. } | OpenError::Key(KeyError::Unwrap { .. }) => {
            err.with_hint("the envelope was altered after sealing; restore it from history")
        }
        // A key that cannot be used: its message names the file and the fix.
        OpenError::Key(_) => err,
    }
}
