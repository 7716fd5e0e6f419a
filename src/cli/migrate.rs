//! `git seal migrate`: seal tracked plaintext that the policy now covers.

use git_seal::migrate::{self, MigrateError};
use git_seal::workspace::Workspace;

use super::error::{CommandError, CommandResult};

/// Seal tracked plaintext that the policy now covers, and stage it.
///
/// Finds the tracked files that the policy (or `.gitattributes`) says must
/// be sealed but that the index holds as plaintext, and stages their
/// envelopes; you commit them.
///
/// Also adds any missing `.gitattributes` lines for the policy's globs, so
/// the filter keeps those files sealed from now on, and stages `.seal/` and
/// `.gitattributes` with the envelopes, so that the commit is whole. Their
/// plaintext stays in the work tree, and in earlier commits: rotate what it
/// protected.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// List every file sealed (without it, the first few and a count).
    #[arg(long, short)]
    pub verbose: bool,
    /// Print JSON (schema `git-seal.migrate/v1`, docs/json.md): every path
    /// sealed, and the command to run next.
    #[arg(long)]
    pub json: bool,
}

const NEXT: &str = "git commit -m 'Seal files the policy covers'";

/// How many sealed paths are named before the rest are counted.
const NAMED: usize = 5;

pub(crate) fn run(args: Args) -> CommandResult<u8> {
    let ws = Workspace::here()?;
    let done = migrate::migrate(&ws).map_err(|e| match e {
        e @ MigrateError::NoFilter { .. } => {
            CommandError::from(e).with_hint("run `git seal init`, then `git seal migrate` again")
        }
        e => e.into(),
    })?;
    if args.json {
        let doc = serde_json::json!({
            "schema": "git-seal.migrate/v1",
            "sealed": done.sealed,
            "attributes_updated": done.attributes_updated,
            // Nothing sealed, nothing recorded.
            "audit_recorded": !done.sealed.is_empty() && done.audit.is_ok(),
            "next": if done.sealed.is_empty() { None } else { Some(NEXT) },
        });
        outln!("{}", serde_json::to_string_pretty(&doc)?);
        if let Err(e) = done.audit {
            eprintln!("git-seal: warning: migrate: the audit entry was not written: {e}");
        }
        return Ok(0);
    }
    if done.attributes_updated {
        outln!("git-seal: added the policy's globs to .gitattributes (staged)");
    }
    if done.sealed.is_empty() {
        outln!(
            "git-seal: nothing to migrate: every file that must be sealed is sealed in the index"
        );
        return Ok(0);
    }
    let named = if args.verbose {
        done.sealed.len()
    } else {
        done.sealed.len().min(NAMED)
    };
    outln!(
        "git-seal: sealed and staged {} file(s): {}{}",
        done.sealed.len(),
        done.sealed[..named].join(", "),
        match done.sealed.len() - named {
            0 => String::new(),
            rest => format!(", and {rest} more (`git diff --cached --name-only` lists them)"),
        }
    );
    outln!("next: {NEXT} (their plaintext stays in earlier commits: rotate what it protected)");
    if let Err(e) = done.audit {
        eprintln!("git-seal: warning: migrate: the audit entry was not written: {e}");
    }
    Ok(0)
}
