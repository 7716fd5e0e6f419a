//! `git seal decrypt`: open one envelope outside the filter.

use crate::envelope;
use crate::error::{CommandError, CommandResult};
use crate::keys::KeyProvider;
use crate::project::Project;

/// Open one envelope, outside the Git filter.
///
/// Uses the repository's provider inside a git-seal repository, and otherwise
/// any key file in the key directory or GIT_SEAL_KEK. On any failure nothing
/// is written: no partial plaintext, ever.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Envelope to open, or `-` for standard input.
    pub file: String,
    /// Write the plaintext here (mode 0600) instead of standard output.
    #[arg(long, short)]
    pub out: Option<String>,
}

pub fn run(args: Args) -> CommandResult<u8> {
    let project = Project::open(&std::env::current_dir()?).ok();
    let ambient;
    let keys: &dyn KeyProvider = match &project {
        Some(p) => p.keys(),
        None => {
            ambient = super::encrypt::ambient_keys()?;
            &ambient
        }
    };
    let text = super::io::read_input(&args.file)?;
    let name = if args.file == "-" {
        "<stdin>"
    } else {
        args.file.as_str()
    };
    let plaintext = envelope::open_bytes(&text, keys).map_err(|e| {
        let err = CommandError::user(format!("cannot open {name}: {e}"));
        match e {
            envelope::OpenError::NoUsableKey { .. } => err.with_hint(
                "install the KEK's key file in the key directory (GIT_SEAL_KEY_DIR) or put it in GIT_SEAL_KEK",
            ),
            envelope::OpenError::Format(_) => err.with_hint("the file is not a valid git-seal envelope v1"),
            _ => err.with_hint("the envelope was altered after sealing; restore it from history"),
        }
    })?;
    super::io::write_output(args.out.as_deref(), &plaintext)?;
    Ok(0)
}
