//! Findings a trusted signer accepted: `accept-finding` entries in the
//! audit chain (read by [`Approvals`]) set the findings they name aside
//! from a report, and [`accept`] appends one for `git seal check --accept
//! COMMIT:PATH`.
//!
//! An acceptance names one commit, path, blob and kind: the finding exactly
//! as `check` reports it. The walk judges each (rules, path, blob) once, at
//! the first commit that has it, so the same blob put back at the same path
//! by a later commit would hide behind the accepted finding; such a commit
//! (one that none of its parents hands that blob at that path) is reported
//! here as a finding of its own. A commit that only carries the accepted
//! blob forward from a parent is the same finding, as without acceptances.

use std::collections::HashMap;

use super::finding::{Accepted, Finding, Kind};
use super::walk::Walk;
use super::{check_commits, Context};
use crate::audit::approvals::{self, Approvals, ApproveError, FindingRecord};
use crate::audit::AuditError;
use crate::repo::{Oid, Repo, RepoError};

/// Split `findings` into those still standing and those `approvals`
/// accept; add a finding for each commit that put an accepted blob back
/// (see the module comment). `commits` and `walk` are the check's.
pub(super) fn set_aside(
    repo: &Repo,
    commits: &[Oid],
    walk: &Walk<'_>,
    findings: Vec<Finding>,
    approvals: &Approvals,
) -> Result<(Vec<Finding>, Vec<Accepted>), RepoError> {
    if !approvals.accepts_findings() {
        return Ok((findings, Vec::new()));
    }
    let index: HashMap<String, usize> = commits
        .iter()
        .enumerate()
        .map(|(i, c)| (c.to_string(), i))
        .collect();
    let mut kept = Vec::new();
    let mut accepted = Vec::new();
    for finding in findings {
        let at = finding.commit.as_ref().and_then(|c| index.get(c).copied());
        let candidates = finding
            .commit
            .as_deref()
            .map_or(&[][..], |c| approvals.accepted_at(c, &finding.path));
        let (Some(at), false) = (at, candidates.is_empty()) else {
            kept.push(finding);
            continue;
        };
        let blob = blob_at(repo, commits[at], &finding.path)?.map(|b| b.to_string());
        match candidates
            .iter()
            .find(|a| a.kind == finding.kind.as_str() && a.blob == blob)
        {
            Some(acceptance) => accepted.push(Accepted::new(finding, acceptance)),
            None => kept.push(finding),
        }
    }
    for one in &accepted {
        for again in put_back(repo, commits, walk, &index, one)? {
            let same = |f: &Finding| {
                (&f.commit, &f.path, f.kind) == (&again.commit, &again.path, again.kind)
            };
            if !kept.iter().any(same) {
                kept.push(again);
            }
        }
    }
    Ok((kept, accepted))
}

/// The blob at `path` in `commit` (`None`: absent, or not a blob).
fn blob_at(repo: &Repo, commit: Oid, path: &str) -> Result<Option<Oid>, RepoError> {
    repo.blob_in_tree(repo.commit_tree_id(commit)?, path)
}

/// The commits other than the accepted one that put its blob at its path
/// (no parent hands it to them) and that the walk did not judge on their
/// own, because they share the accepted finding's rules: each is the same
/// finding, reported there.
fn put_back(
    repo: &Repo,
    commits: &[Oid],
    walk: &Walk<'_>,
    index: &HashMap<String, usize>,
    one: &Accepted,
) -> Result<Vec<Finding>, RepoError> {
    let finding = &one.finding;
    // These are judged commit by commit, never once for many.
    if matches!(finding.kind, Kind::Unsealed | Kind::Weakened) {
        return Ok(Vec::new());
    }
    let (Some(blob), Some(&first)) = (
        one.blob.as_deref().and_then(|b| Oid::from_str(b).ok()),
        finding.commit.as_ref().and_then(|c| index.get(c)),
    ) else {
        return Ok(Vec::new());
    };
    // What the walk judged a (path, blob) by: for a rule file's problem,
    // the commit's rule files; for the rest, the rules at that path.
    let judged_by = |at: usize, tree: Oid| -> Result<Option<usize>, RepoError> {
        if finding.kind == Kind::BadPolicy {
            Ok(Some(walk.commit_rules[at]))
        } else {
            walk.rules_at(at, tree, &finding.path)
        }
    };
    let accepted_rules = judged_by(first, repo.commit_tree_id(commits[first])?)?;
    let mut found = Vec::new();
    for (at, commit) in commits.iter().enumerate() {
        let tree = repo.commit_tree_id(*commit)?;
        if at == first || repo.blob_in_tree(tree, &finding.path)? != Some(blob) {
            continue;
        }
        let mut handed = false;
        for parent in repo.parents(*commit)? {
            handed |= blob_at(repo, parent, &finding.path)? == Some(blob);
        }
        if handed || accepted_rules.is_none() || judged_by(at, tree)? != accepted_rules {
            continue;
        }
        found.push(Finding {
            commit: Some(commit.to_string()),
            ..finding.clone()
        });
    }
    Ok(found)
}

#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    #[error("{0:?} is not COMMIT:PATH (a commit, a colon and a path, as a `git seal check` finding names them)")]
    BadTarget(String),
    #[error("{0:?} does not name a commit in this repository")]
    NotACommit(String),
    #[error("the reason is empty; say why the finding is accepted with --reason TEXT")]
    EmptyReason,
    #[error("`git seal check` reports no finding at {path} in commit {commit}, so there is nothing to accept")]
    NoFinding { commit: Oid, path: String },
    #[error("{path} in commit {commit} has findings of several kinds ({}); name the one you accept with --kind KIND", kinds.join(", "))]
    Ambiguous {
        commit: Oid,
        path: String,
        kinds: Vec<&'static str>,
    },
    #[error("{path} in commit {commit} has no {kind} finding (it has: {})", kinds.join(", "))]
    NoSuchKind {
        commit: Oid,
        path: String,
        kind: String,
        kinds: Vec<&'static str>,
    },
    #[error(transparent)]
    Approve(#[from] ApproveError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Repo(#[from] RepoError),
}

/// What [`accept`] did.
#[derive(Debug)]
pub enum Accepting {
    /// A new `accept-finding` entry.
    Appended {
        entry: Oid,
        commit: Oid,
        path: String,
        blob: Option<Oid>,
        kind: Kind,
        /// A parent of `commit` with the same blob at `path`: a check of
        /// whole history reports the finding there (where it was
        /// introduced), so that is the one to accept for it.
        parent_with_it: Option<Oid>,
    },
    /// The chain already accepts that finding.
    Already(Box<Accepted>),
}

/// `git seal check --accept TARGET --reason REASON [--kind KIND]`: append a
/// signed `accept-finding` entry for the finding that checking TARGET's
/// commit on its own reports at its path, once this user's signer is known
/// to be trusted by a chain that verifies.
pub fn accept(
    repo: &Repo,
    target: &str,
    kind: Option<&str>,
    reason: &str,
    threads: usize,
) -> Result<Accepting, AcceptError> {
    if reason.trim().is_empty() {
        return Err(AcceptError::EmptyReason);
    }
    let (rev, path) = target
        .split_once(':')
        .filter(|(rev, path)| !rev.is_empty() && !path.is_empty())
        .ok_or_else(|| AcceptError::BadTarget(target.to_owned()))?;
    let commit = repo
        .resolve_commit(rev)
        .ok_or_else(|| AcceptError::NotACommit(rev.to_owned()))?;
    let me = approvals::approver(repo)?;
    let parents = repo.parents(commit)?;
    let report = check_commits(
        repo,
        target,
        &[commit],
        &parents,
        threads,
        &Context::default(),
    )?;
    let here = |f: &Finding| f.commit == Some(commit.to_string()) && f.path == path;
    let mut open: Vec<&Finding> = report.findings.iter().filter(|f| here(f)).collect();
    let done: Vec<&Accepted> = report
        .accepted
        .iter()
        .filter(|a| here(&a.finding))
        .collect();
    let mut kinds: Vec<&'static str> = open
        .iter()
        .map(|f| f.kind)
        .chain(done.iter().map(|a| a.finding.kind))
        .map(Kind::as_str)
        .collect();
    kinds.sort_unstable();
    kinds.dedup();
    let path = path.to_owned();
    if kinds.is_empty() {
        return Err(AcceptError::NoFinding { commit, path });
    }
    if let Some(kind) = kind {
        if let Some(already) = done.iter().find(|a| a.finding.kind.as_str() == kind) {
            return Ok(Accepting::Already(Box::new((*already).clone())));
        }
        open.retain(|f| f.kind.as_str() == kind);
        if open.is_empty() {
            let kind = kind.to_owned();
            return Err(AcceptError::NoSuchKind {
                commit,
                path,
                kind,
                kinds,
            });
        }
    } else if kinds.len() > 1 {
        return Err(AcceptError::Ambiguous {
            commit,
            path,
            kinds,
        });
    }
    let Some(finding) = open.first() else {
        let already = done.first().expect("a finding of the one kind");
        return Ok(Accepting::Already(Box::new((*already).clone())));
    };
    let blob = blob_at(repo, commit, &path)?;
    let record = FindingRecord {
        commit,
        path: &path,
        blob,
        kind: finding.kind.as_str(),
        reason: reason.trim(),
    };
    let entry = approvals::accept_finding(repo, &me, &record)?;
    let mut parent_with_it = None;
    for parent in parents {
        if blob.is_some() && blob_at(repo, parent, &path)? == blob {
            parent_with_it = parent_with_it.or(Some(parent));
        }
    }
    Ok(Accepting::Appended {
        entry,
        commit,
        path,
        blob,
        kind: finding.kind,
        parent_with_it,
    })
}
