//! `git seal recipients`: who new envelopes are wrapped to.

use git_seal::kid::Kid;
use git_seal::lifecycle::recipients;
use git_seal::workspace::Workspace;

use super::error::CommandResult;
use super::report::audit_warning;

/// Who new envelopes are wrapped to: the team KEK, an offline recovery
/// KEK, a teammate's own key; for every sealed path or per path scope.
///
/// The default recipients are the active KEKs. A scope in
/// `.seal/policy.json` (`recipients`: globs and kids) names its own for the
/// paths it matches; the first matching scope wins. Changes are staged
/// with the re-keyed envelopes; you commit.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: RecipientsCommand,
}

#[derive(clap::Subcommand, Debug)]
enum RecipientsCommand {
    List(ListArgs),
    Add(AddArgs),
    Remove(RemoveArgs),
}

/// List the default recipients and each scope's.
#[derive(clap::Args, Debug)]
struct ListArgs {
    /// Print JSON (`git-seal.recipients/v1`) for tools.
    #[arg(long)]
    json: bool,
}

/// Make a KEK a recipient, and re-wrap existing envelopes to include it.
///
/// KEY is a listed kid, or a teammate's public key (base64, from `git seal
/// kek keygen`), which is added to `.seal/keys/` first. Every envelope of
/// the index it should open gets its DEK wrapped to it as well: nonce,
/// ciphertext and tag stay the same. Interrupted? Run it again.
#[derive(clap::Args, Debug)]
struct AddArgs {
    /// A kid (`k_…`) or an X25519 public key.
    #[arg(value_name = "KID|PUBLIC_KEY")]
    who: String,
    /// Only for the scope of these globs (repeat for several), created if
    /// no scope has exactly them; it starts with the default recipients.
    #[arg(long = "paths", value_name = "GLOB")]
    paths: Vec<String>,
    /// A label for a public key being added (`alice`, `recovery`).
    #[arg(long, value_name = "LABEL")]
    name: Option<String>,
}

/// Stop wrapping to a KEK, and re-encrypt what it could open.
///
/// Every envelope of the index wrapped to it is re-encrypted with a fresh
/// DEK to the remaining recipients, so it opens nothing sealed from now
/// on. History is never rewritten: the command counts the blobs in history
/// that stay readable to it. Rotate the secrets themselves (passwords,
/// tokens) if its holder should no longer know them. The last recipient
/// of the default or of a scope cannot be removed.
#[derive(clap::Args, Debug)]
struct RemoveArgs {
    kid: Kid,
    /// Only from the scope of exactly these globs.
    #[arg(long = "paths", value_name = "GLOB")]
    paths: Vec<String>,
}

pub(crate) fn run(args: Args) -> CommandResult<u8> {
    let ws = Workspace::here()?;
    match args.command {
        RecipientsCommand::List(args) => {
            let listing = recipients::list(&ws);
            if args.json {
                let doc = serde_json::json!({"schema": "git-seal.recipients/v1", "default": listing.default, "scopes": listing.scopes});
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&doc).expect("serializes")
                );
                return Ok(0);
            }
            let label = |kid: &Kid| match ws.record(kid).and_then(|r| r.name.as_deref()) {
                Some(name) => format!("{kid} ({name})"),
                None => kid.to_string(),
            };
            let kids = |kids: &[Kid]| kids.iter().map(label).collect::<Vec<_>>().join(", ");
            outln!("default: {}", kids(&listing.default));
            for scope in &listing.scopes {
                outln!("{}: {}", scope.paths.join(" "), kids(&scope.kids));
            }
            Ok(0)
        }
        RecipientsCommand::Add(args) => {
            let paths = (!args.paths.is_empty()).then_some(args.paths);
            let done = recipients::add(&ws, &args.who, args.name, paths)?;
            if done.resumed {
                outln!("git-seal: finished the interrupted `recipients add`");
            }
            if done.imported {
                outln!("git-seal: added {} to .seal/keys/", done.kid);
            }
            outln!(
                "git-seal: {} is a recipient{}; {} envelope(s) re-wrapped to include it (ciphertext unchanged, staged)",
                done.kid,
                scope_text(&done.paths),
                done.rewrapped
            );
            outln!("next: git commit -m 'Add recipient {}'", done.kid);
            audit_warning("recipients", done.audit);
            Ok(0)
        }
        RecipientsCommand::Remove(args) => {
            let paths = (!args.paths.is_empty()).then_some(args.paths);
            let done = recipients::remove(&ws, &args.kid, paths)?;
            if done.resumed {
                outln!("git-seal: finished the interrupted `recipients remove`");
            }
            outln!(
                "git-seal: {} is no longer a recipient{}; {} envelope(s) re-encrypted with fresh DEKs (staged)",
                done.kid,
                scope_text(&done.paths),
                done.reencrypted
            );
            outln!(
                "git-seal: {} blob(s) in history ({} path(s)) stay readable to {}: history is never rewritten. Rotate the secrets themselves if its holder must no longer know them",
                done.history_blobs,
                done.history_paths,
                done.kid
            );
            outln!("next: git commit -m 'Remove recipient {}'", done.kid);
            audit_warning("recipients", done.audit);
            Ok(0)
        }
    }
}

fn scope_text(paths: &Option<Vec<String>>) -> String {
    match paths {
        Some(globs) => format!(" for {}", globs.join(" ")),
        None => String::new(),
    }
}
