//! `git seal check`: policy verification of history, for CI.

use super::error::{CommandError, CommandResult};
use git_seal::check;
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
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Commits to check: `A..B`, `A...B` or a revision (all its history);
    /// or a reference to a tree or a blob (that object). Default:
    /// everything reachable from HEAD.
    #[arg(value_name = "REV-RANGE")]
    pub range: Option<String>,
    /// Print one JSON object (schema `git-seal.check/v1`, docs/json.md):
    /// range, commits, blobs, findings [{commit, path, kind, message}],
    /// warnings (the same fields) and ok.
    #[arg(long)]
    pub json: bool,
    /// List every finding; without it, a few of each kind are printed and
    /// the rest counted.
    #[arg(long, short)]
    pub verbose: bool,
}

pub(crate) fn run(args: Args) -> CommandResult<u8> {
    let repo = Repo::from_env()?;
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
        let warned = match report.warnings.len() {
            0 => String::new(),
            n => format!(", {n} warning(s)"),
        };
        eprintln!(
            "git-seal: checked {} commit(s), {} blob(s): {}{warned}",
            report.commits,
            report.blobs,
            match report.findings.len() {
                0 => "ok".to_owned(),
                n => format!("{n} finding(s)"),
            }
        );
    }
    Ok(if report.ok { 0 } else { 1 })
}
