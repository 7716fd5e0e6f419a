//! `git seal hook NAME [ARGS]`: the entry point of the installed hooks.
//!
//! pre-commit and pre-receive refuse (exit 1) with one line per finding;
//! the post-* hooks never change Git's outcome: they report, unlock what a
//! key now opens, and append audit entries, warning on failure.

use std::io::Read;

use super::error::{CommandError, CommandResult};
use git_seal::audit;
use git_seal::check::{self, Finding};
use git_seal::repo::{Oid, Repo};
use git_seal::workspace::{Workspace, WorkspaceError};

/// Run one of git-seal's hooks (as the scripts in `hooks/` do).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// pre-commit, post-commit, post-merge, post-checkout, post-rewrite or
    /// pre-receive.
    pub name: String,
    /// The arguments Git gave the hook.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

pub fn run(args: Args) -> CommandResult<u8> {
    match args.name.as_str() {
        "pre-commit" => pre_commit(),
        "pre-receive" => pre_receive(),
        "post-commit" => {
            if let Some(project) = project()? {
                warn_audit("post-commit", audit::on_commit(&project));
            }
            Ok(0)
        }
        "post-merge" => post_merge(),
        "post-checkout" => post_checkout(&args.args),
        "post-rewrite" => post_rewrite(&args.args),
        other => Err(CommandError::usage(format!(
            "unknown hook {other:?} (known: pre-commit, post-commit, post-merge, post-checkout, post-rewrite, pre-receive)"
        ))),
    }
}

fn pre_commit() -> CommandResult<u8> {
    let repo = Repo::from_env()?;
    let findings = check::check_index(&repo)?;
    if findings.is_empty() {
        return Ok(0);
    }
    for finding in &findings {
        eprintln!("git-seal: {finding}");
    }
    eprintln!("git-seal: commit refused ({} finding(s))", findings.len());
    Ok(1)
}

fn pre_receive() -> CommandResult<u8> {
    let repo = Repo::from_env()?;
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input)?;
    let mut include = Vec::new();
    let mut chain_problems = Vec::new();
    for line in input.lines() {
        // "<old> <new> <ref>"; a zero <new> deletes the ref.
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [old, new, name] = fields[..] else {
            continue;
        };
        let parse = |hex: &str| {
            Oid::from_str(hex).map_err(|e| {
                CommandError::user(format!("pre-receive: bad input line {line:?}: {e}"))
            })
        };
        let (old, new) = (parse(old)?, parse(new)?);
        if name == audit::REF {
            chain_problems.extend(pushed_chain_problems(&repo, old, new)?);
        } else if !new.is_zero() && repo.peel_commit(&new.to_string()).is_ok() {
            include.push(new);
        }
    }
    if !chain_problems.is_empty() {
        for problem in &chain_problems {
            eprintln!("git-seal: {}: {problem}", audit::REF);
        }
        eprintln!("git-seal: push refused: the audit chain would not verify; fix it (see `git seal audit verify`) and push again");
        return Ok(1);
    }
    if include.is_empty() {
        return Ok(0);
    }
    // Only what the push adds: commits no reference reaches yet.
    let exclude = repo.ref_commits()?;
    let report = check::check_commits(&repo, "push", &include, &exclude, super::check::threads())?;
    if report.ok {
        return Ok(0);
    }
    for finding in &report.findings {
        eprintln!("git-seal: {finding}");
    }
    eprintln!(
        "git-seal: push refused ({} finding(s) in {} new commit(s)); fix them and push again",
        report.findings.len(),
        report.commits
    );
    Ok(1)
}

/// What is wrong with a push to the audit chain: it may only grow (the old
/// tip stays an ancestor; never deleted) and must verify.
fn pushed_chain_problems(repo: &Repo, old: Oid, new: Oid) -> CommandResult<Vec<String>> {
    if new.is_zero() {
        return Ok(vec!["deleting the audit chain is not allowed".into()]);
    }
    let options = audit::verify::Options {
        since: (!old.is_zero()).then(|| old.to_string()),
        trust: None,
    };
    let report = audit::verify::verify(repo, new, &options)?;
    Ok(report
        .findings
        .iter()
        .map(|f| match f.commit {
            Some(commit) => format!("entry {commit}: {}", f.reason),
            None => f.reason.clone(),
        })
        .collect())
}

fn post_merge() -> CommandResult<u8> {
    let Some(project) = project()? else {
        return Ok(0);
    };
    let Some((head, parents)) = project.repo.head_commit()? else {
        return Ok(0);
    };
    let old = project
        .repo
        .resolve_commit("ORIG_HEAD")
        .or(parents.first().copied());
    let verified = match arrivals(&project, "post-merge", old, head) {
        Ok(verified) => verified,
        Err(e) => {
            eprintln!("git-seal: warning: post-merge: cannot check what arrived: {e}");
            false
        }
    };
    warn_audit("post-merge", audit::on_merge(&project, verified));
    Ok(0)
}

fn post_checkout(args: &[String]) -> CommandResult<u8> {
    let Some(project) = project()? else {
        return Ok(0);
    };
    let commit = |at: usize| {
        args.get(at)
            .and_then(|s| Oid::from_str(s).ok())
            .filter(|id| !id.is_zero())
    };
    let (Some(new), old) = (commit(1), commit(0)) else {
        return Ok(0);
    };
    if let Err(e) = arrivals(&project, "post-checkout", old, new) {
        eprintln!("git-seal: warning: post-checkout: cannot check what arrived: {e}");
    }
    Ok(0)
}

fn post_rewrite(args: &[String]) -> CommandResult<u8> {
    let Some(project) = project()? else {
        return Ok(0);
    };
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input)?;
    let mut findings = Vec::new();
    let mut sealed = 0;
    let mut rewritten = Vec::new();
    for line in input.lines() {
        // "<old> <new> [<extra>]"
        let mut ids = line
            .split_whitespace()
            .take(2)
            .map(|s| Oid::from_str(s).ok());
        let (Some(Some(old)), Some(Some(new))) = (ids.next(), ids.next()) else {
            continue;
        };
        rewritten.push((old, new));
        let parent = project.repo.peel_commit(&format!("{new}^")).ok();
        match check::check_arrivals(&project.repo, parent, new) {
            Ok(a) => {
                sealed += a.sealed;
                findings.extend(a.findings);
            }
            Err(e) => eprintln!("git-seal: warning: post-rewrite: cannot check {new}: {e}"),
        }
    }
    summarize("post-rewrite", sealed, &findings, 0);
    let kind = args.first().map_or("rewrite", String::as_str);
    warn_audit(
        "post-rewrite",
        audit::on_rewrite(&project, kind, &rewritten),
    );
    Ok(0)
}

/// Check what arrived between `old` and `new`, unlock files a key now
/// opens, print a summary; return whether the arrived envelopes verified.
fn arrivals(project: &Workspace, hook: &str, old: Option<Oid>, new: Oid) -> CommandResult<bool> {
    let arrived = check::check_arrivals(&project.repo, old, new)?;
    let unlocked = if git_seal::filter::lock_marker(&project.repo).exists() {
        0 // locked on purpose by `git seal lock`: stay locked
    } else {
        match super::unlock::unlock_quietly(project) {
            Ok(n) => n,
            Err(e) => {
                eprintln!("git-seal: warning: {hook}: files stay locked: {e}");
                0
            }
        }
    };
    summarize(hook, arrived.sealed, &arrived.findings, unlocked);
    Ok(arrived.findings.is_empty())
}

fn summarize(hook: &str, sealed: usize, findings: &[Finding], unlocked: usize) {
    for finding in findings {
        eprintln!("git-seal: {finding}");
    }
    if sealed == 0 && findings.is_empty() && unlocked == 0 {
        return;
    }
    let mut line = format!("git-seal: {hook}: {sealed} sealed file(s) arrived");
    line.push_str(&match findings.len() {
        0 => ", all envelopes valid".to_owned(),
        n => format!(", {n} finding(s) (run `git seal check` in CI to refuse them)"),
    });
    if unlocked > 0 {
        line.push_str(&format!("; unlocked {unlocked} file(s)"));
    }
    eprintln!("{line}");
}

/// The project, or `None` where git-seal is not set up (the hooks then do
/// nothing, so that installing them early is harmless).
fn project() -> CommandResult<Option<Workspace>> {
    match Workspace::from_repo(Repo::from_env()?) {
        Ok(project) => Ok(Some(project)),
        Err(WorkspaceError::NotInitialized { .. }) => Ok(None),
        Err(e) => {
            eprintln!("git-seal: warning: hook skipped: {e}");
            Ok(None)
        }
    }
}

fn warn_audit(hook: &str, result: Result<(), audit::AuditError>) {
    if let Err(e) = result {
        eprintln!("git-seal: warning: {hook}: the audit entry was not written: {e}");
    }
}
