//! `git seal check`: policy verification of history, for CI; `--accept`
//! records a trusted signer's acceptance of one finding.

use super::error::{CommandError, CommandResult};
use git_seal::audit::approvals::ApproveError;
use git_seal::check::{self, accepted};
use git_seal::printable::escape;
use git_seal::repo::Repo;

/// Check history for plaintext, bad envelopes and key material (for CI).
///
/// No commit in the range may store plaintext under a path that must be
/// sealed, a malformed envelope, an envelope wrapped to an unknown or
/// removed KEK, or private key material.
///
/// Each commit is judged by the `.seal/policy.json`, `.gitattributes` and
/// `.seal/keys/` it carries. Envelopes are parsed, not opened: no private
/// key is needed. Prints one line per finding, naming the commit that
/// introduced it and the path, and exits 1 when there is any.
///
/// Warnings (`warning: ` lines) never change the exit status. They are
/// judged on the range's last commit: an active KEK due for rotation
/// within 30 days or overdue (`rotate_after_days` in the policy), and an
/// envelope wrapped only to retired KEKs.
///
/// A finding that a trusted signer accepted (`--accept`) is printed on an
/// `accepted: ` line naming who accepted it and why, and does not fail.
/// In a shallow clone, a line on stderr says where history is cut off.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Commits to check: `A..B`, `A...B` or a revision (all its history);
    /// or a reference to a tree or a blob (that object). Default:
    /// everything reachable from HEAD.
    #[arg(value_name = "REV-RANGE")]
    pub range: Option<String>,
    /// Print one JSON object (schema `git-seal.check/v1`, docs/json.md):
    /// range, commits, blobs, findings [{commit, path, kind, message}],
    /// warnings (the same fields), accepted (findings a trusted signer
    /// accepted, with blob, reason, accepted_by and entry), shallow,
    /// shallow_boundary and ok.
    #[arg(long)]
    pub json: bool,
    /// List every finding; without it, a few of each kind are printed and
    /// the rest counted.
    #[arg(long, short)]
    pub verbose: bool,
    /// Exit 1 when the range reaches where a shallow clone's history is
    /// cut off (run `git fetch --unshallow` first), instead of only saying
    /// so.
    #[arg(long)]
    pub require_full_history: bool,
    /// Accept the finding at COMMIT:PATH (as a finding line names them),
    /// as a trusted signer: appends a signed `accept-finding` entry to the
    /// audit chain naming the commit, path, blob, kind and --reason. From
    /// then on `check` and pre-receive list that finding as accepted; the
    /// same path leaking in another commit is still a finding. Publish it
    /// with `git seal audit sync`.
    #[arg(
        long,
        value_name = "COMMIT:PATH",
        requires = "reason",
        conflicts_with_all = ["range", "json", "verbose", "require_full_history"]
    )]
    pub accept: Option<String>,
    /// Why the finding is accepted (recorded in the entry); with --accept.
    #[arg(long, value_name = "TEXT", requires = "accept")]
    pub reason: Option<String>,
    /// Which finding to accept when COMMIT:PATH has several kinds
    /// (`plaintext`, `key-material`, …); with --accept.
    #[arg(long, value_name = "KIND", requires = "accept")]
    pub kind: Option<String>,
}

pub(crate) fn run(args: Args) -> CommandResult<u8> {
    let repo = Repo::from_env()?;
    if let Some(target) = &args.accept {
        let reason = args.reason.as_deref().unwrap_or_default();
        return accept(&repo, target, args.kind.as_deref(), reason);
    }
    let spec = args.range.as_deref().unwrap_or("HEAD");
    let threads = git_seal::hooks::run::threads();
    let report = if args.range.is_none() && repo.head_commit()?.is_none() {
        check::check_commits(&repo, spec, &[], &[], threads, &Default::default())?
    } else {
        check::check_revision(&repo, spec, threads)
            .map_err(|e| CommandError::usage(format!("{spec:?} is not a revision range: {e}")))?
    };
    if args.json {
        let mut doc = serde_json::to_value(&report)?;
        doc["schema"] = "git-seal.check/v1".into();
        outln!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        let hint = "`git seal check --verbose` lists all";
        for line in check::finding::summary_lines(&report.findings, args.verbose, hint) {
            outln!("{line}");
        }
        for line in check::finding::summary_lines(&report.warnings, args.verbose, hint) {
            outln!("warning: {line}");
        }
        for accepted in &report.accepted {
            outln!("accepted: {accepted}");
        }
        let counted = |n: usize, what: &str| match n {
            0 => String::new(),
            n => format!(", {n} {what}"),
        };
        eprintln!(
            "git-seal: checked {} commit(s), {} blob(s): {}{}{}",
            report.commits,
            report.blobs,
            match report.findings.len() {
                0 => "ok".to_owned(),
                n => format!("{n} finding(s)"),
            },
            counted(report.warnings.len(), "warning(s)"),
            counted(report.accepted.len(), "accepted finding(s)")
        );
    }
    if report.shallow {
        let them = match report.shallow_boundary.len() {
            1 => "it",
            _ => "them",
        };
        let required = match args.require_full_history {
            true => ", and --require-full-history asks for all of it",
            false => "",
        };
        eprintln!(
            "git-seal: history is cut off at {} (a shallow clone): the commits before {them} were not checked{required}; run `git fetch --unshallow` to check all of it",
            report.shallow_boundary.join(", ")
        );
    }
    let cut_short = report.shallow && args.require_full_history;
    Ok(if report.ok && !cut_short { 0 } else { 1 })
}

/// `--accept COMMIT:PATH --reason TEXT [--kind KIND]`.
fn accept(repo: &Repo, target: &str, kind: Option<&str>, reason: &str) -> CommandResult<u8> {
    use accepted::{AcceptError, Accepting};
    let threads = git_seal::hooks::run::threads();
    let done = accepted::accept(repo, target, kind, reason, threads).map_err(|e| match e {
        e @ (AcceptError::BadTarget(_)
        | AcceptError::NotACommit(_)
        | AcceptError::EmptyReason
        | AcceptError::Ambiguous { .. }
        | AcceptError::NoSuchKind { .. }) => CommandError::usage(e),
        e @ AcceptError::NoFinding { .. } => CommandError::from(e)
            .with_hint("run `git seal check` and give COMMIT:PATH as a finding line names them"),
        AcceptError::Approve(e @ ApproveError::Untrusted(_)) => {
            let key = git_seal::audit::Signer::load_or_create()
                .map(|me| me.public_openssh())
                .unwrap_or_else(|_| "ssh-ed25519 …".to_owned());
            CommandError::from(e).with_hint(format!(
                "a trusted signer (see `git seal audit verify --json`) accepts it for you, or first trusts your signer with `git seal audit signer add '{key}' --email YOU`"
            ))
        }
        AcceptError::Approve(e @ ApproveError::NoChain) => {
            CommandError::from(e).with_hint("`git seal init` starts the chain")
        }
        AcceptError::Approve(e @ ApproveError::Unverified(_)) => {
            CommandError::from(e).with_hint("run `git seal audit verify` to see why")
        }
        e => e.into(),
    })?;
    match done {
        Accepting::Appended {
            entry,
            commit,
            path,
            blob,
            kind,
            parent_with_it,
        } => {
            let blob = blob.map_or_else(|| "no blob".to_owned(), |b| format!("blob {b}"));
            outln!(
                "git-seal: accepted the {} finding at {} in {commit} ({blob}) (entry {entry}); run `git seal audit sync` to publish it before you push",
                kind.as_str(),
                escape(&path)
            );
            if let Some(parent) = parent_with_it {
                let path = escape(&path);
                outln!(
                    "git-seal: note: its parent {parent} has the same blob at {path}, so a check of history reports this finding where that blob came in ({parent} or a commit before it): accept that one too (`git seal check` names it)"
                );
            }
        }
        Accepting::Already(accepted) => {
            outln!("git-seal: already accepted, nothing appended: {accepted}");
        }
    }
    Ok(0)
}
