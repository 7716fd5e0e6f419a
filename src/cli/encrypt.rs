//! `git seal encrypt`: seal one file outside the filter.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use super::error::{CommandError, CommandResult};
use git_seal::envelope::reader::read_ahead;
use git_seal::envelope::StreamWriter;
use git_seal::keys::{self, WrapTarget};
use git_seal::kid::Kid;
use git_seal::workspace::Workspace;

/// Seal one file into an envelope, outside the Git filter.
///
/// Inside a git-seal repository the envelope is wrapped to the repository's
/// active KEK (or the policy's recipients for that path). Outside one, say
/// who to seal to with --to.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// File to seal, or `-` for standard input.
    pub file: String,
    /// Write the envelope here instead of standard output (`-`: stdout).
    #[arg(long, short)]
    pub out: Option<String>,
    /// Bind this UTF-8 context into the envelope (it must match to open).
    #[arg(long)]
    pub aad: Option<String>,
    /// Seal to this KEK: a kid (`k_…`) known here, or a base64 X25519 public
    /// key. Repeat for several recipients.
    #[arg(long = "to", value_name = "KID|PUBLIC_KEY")]
    pub to: Vec<String>,
}

pub(crate) fn run(args: Args) -> CommandResult<u8> {
    let project = Workspace::here().ok();
    let targets = if args.to.is_empty() {
        let project = project.ok_or_else(|| {
            CommandError::usage("not inside a git-seal repository, so there is no KEK to seal to")
                .with_hint("pass --to KID or --to PUBLIC_KEY (base64 X25519), or run inside a repository set up with `git seal init`")
        })?;
        let path = repo_relative(&project, &args.file);
        project.targets_for(path.as_deref())?
    } else {
        args.to
            .iter()
            .map(|to| resolve_target(project.as_ref(), to))
            .collect::<CommandResult<Vec<_>>>()?
    };
    let mut input = super::stdio::open_input(&args.file)?;
    let (mut stream, recipients) = keys::seal_stream(args.aad.as_deref(), &targets)
        .map_err(|e| CommandError::user(format!("cannot seal {}: {e}", args.file)))?;
    // Sealed piece by piece, file to file: a large file is never held.
    let mut writer = StreamWriter::new(&recipients, &stream.nonce(), 0);
    // The next piece is read while this one is sealed and written.
    super::stdio::write_output_with(args.out.as_deref(), |out| {
        read_ahead(&mut input, PIECE, |piece| {
            stream.encrypt(piece);
            writer.ciphertext(piece);
            writer.drain_to(out)
        })?;
        let tag = stream.finish();
        out.write_all(&writer.finish(&tag, args.aad.as_deref()))
    })?;
    Ok(0)
}

/// Plaintext read and sealed per step.
const PIECE: usize = 1 << 20;

/// The path of `file` inside the project's work tree, if it is there.
fn repo_relative(project: &Workspace, file: &str) -> Option<String> {
    if file == "-" {
        return None;
    }
    let abs = std::fs::canonicalize(file).ok()?;
    let root = std::fs::canonicalize(&project.root).ok()?;
    Some(abs.strip_prefix(root).ok()?.to_str()?.to_owned())
}

fn resolve_target(project: Option<&Workspace>, to: &str) -> CommandResult<WrapTarget> {
    if let Ok(kid) = Kid::parse(to) {
        if let Some(Ok(target)) = project.map(|p| p.target(&kid)) {
            return Ok(target);
        }
        // A kid whose private key is here also gives us its public key.
        if let Ok(Some(secret)) = keys::secret_here(&kid) {
            return Ok(WrapTarget::x25519(secret.public()));
        }
        return Err(CommandError::user(format!(
            "--to {kid}: no public key for this kid here (not in .seal/keys/, no key file, not in GIT_SEAL_KEK)"
        ))
        .with_hint("pass the base64 X25519 public key instead"));
    }
    let public: [u8; 32] = B64
        .decode(to)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| CommandError::usage(format!("--to {to:?} is neither a kid (k_ + 16 hex digits) nor a base64 32-byte X25519 public key")))?;
    Ok(WrapTarget::x25519(public))
}
