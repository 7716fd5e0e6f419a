//! Coverage: every commit that changed sealed paths has its entry in the
//! chain (`git seal audit verify --coverage`), and the hooks' catch-up of
//! commits whose entry was never written (a post-commit killed, a signer
//! key that could not sign, a signer not yet trusted).
//!
//! A commit is recorded by a `seal`, `merge` or `policy` entry naming it
//! (`data.commit`), or by a `rewrite` entry naming it as the new commit. A
//! commit needs an entry when it changed a path the policy (or
//! `.gitattributes`) seals: an ordinary commit against its first parent; a
//! merge only where its result matches none of its parents (what the merge
//! itself made, such as a resolved conflict).

use std::collections::HashSet;

use serde::Serialize;

use super::{chain, entry, from_chain_cached, AuditError};
use crate::repo::{Oid, Repo};
use crate::workspace::Workspace;

/// First line of `.git/seal/audit-recorded`, the cache of [`recorded`].
const CACHE_FORMAT: &str = "git-seal audit-recorded v1";

/// The commits the chain at `tip` records. Reads only the entries added
/// since the last call (the cache holds the tip it was built at), so the
/// hooks can ask on every commit.
pub fn recorded(repo: &Repo, tip: Oid) -> Result<HashSet<Oid>, AuditError> {
    let lines = from_chain_cached(repo, tip, "audit-recorded", CACHE_FORMAT, |set, entry| {
        set.extend(commits_named(entry).iter().map(Oid::to_string));
    })?;
    Ok(lines.iter().filter_map(|l| Oid::from_str(l).ok()).collect())
}

/// The commits one entry records.
fn commits_named(entry: &entry::Entry) -> Vec<Oid> {
    let parse = |s: Option<&str>| s.and_then(|s| Oid::from_str(s).ok());
    match entry.event.as_str() {
        "seal" | "merge" | "policy" => parse(entry.data_str("commit")).into_iter().collect(),
        "rewrite" => entry
            .data
            .get("commits")
            .and_then(|c| c.as_array())
            .map(|pairs| {
                pairs
                    .iter()
                    .filter_map(|p| parse(p.get("new").and_then(|n| n.as_str())))
                    .collect()
            })
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// The sealed paths `commit` changed that its entry must record (empty:
/// it needs none). See the module's documentation.
pub fn sealed_paths_changed(ws: &Workspace, commit: Oid) -> Result<Vec<String>, AuditError> {
    let parents = ws.repo.parents(commit)?;
    let mut paths = Vec::new();
    for (path, _, new) in ws.repo.changed_files(parents.first().copied(), commit)? {
        if !ws.must_seal(&path)? {
            continue;
        }
        // A merge that took this path from another parent made nothing.
        let mut carried = false;
        for other in parents.iter().skip(1) {
            let tree = ws.repo.commit_tree_id(*other)?;
            if ws.repo.blob_in_tree(tree, &path)? == new {
                carried = true;
                break;
            }
        }
        if !carried {
            paths.push(path);
        }
    }
    Ok(paths)
}

/// A commit that changed sealed paths and has no entry.
#[derive(Debug, Serialize)]
pub struct Unrecorded {
    pub commit: String,
    pub paths: Vec<String>,
}

/// What `audit verify --coverage` found.
#[derive(Debug, Serialize)]
pub struct Coverage {
    /// The range checked, as given or as defaulted.
    pub range: String,
    /// Commits in the range.
    pub commits: usize,
    /// Of those, commits that changed sealed paths (and so need an entry).
    pub sealing: usize,
    pub unrecorded: Vec<Unrecorded>,
}

/// Check that every commit of `range` (default: HEAD's history since the
/// chain began) that changed sealed paths is recorded by the chain at `tip`.
pub fn coverage(ws: &Workspace, tip: Oid, range: Option<&str>) -> Result<Coverage, AuditError> {
    let repo = &ws.repo;
    let (label, commits) = match range {
        Some(spec) => {
            let (include, exclude) = repo.resolve_range(spec)?;
            (spec.to_owned(), repo.commits_between(&include, &exclude)?)
        }
        None => {
            let Some((head, _)) = repo.head_commit()? else {
                return Ok(Coverage {
                    range: "HEAD (no commits yet)".into(),
                    commits: 0,
                    sealing: 0,
                    unrecorded: Vec::new(),
                });
            };
            let start = chain_start(repo, tip)?;
            let hide: Vec<Oid> = start.commit.into_iter().collect();
            let mut commits = repo.commits_between(&[head], &hide)?;
            if let (None, Some(time)) = (start.commit, start.time) {
                // A chain from before `init` named its commit: what was
                // committed before the chain began needs no entry.
                commits.retain(|c| repo.commit_time(*c).is_none_or(|t| t >= time));
            }
            let label = match start.commit {
                Some(c) => format!("{c}..HEAD (since the chain began)"),
                None => "HEAD (since the chain began)".to_owned(),
            };
            (label, commits)
        }
    };
    let recorded = recorded(repo, tip)?;
    let mut sealing = 0;
    let mut unrecorded = Vec::new();
    for commit in &commits {
        let paths = sealed_paths_changed(ws, *commit)?;
        if paths.is_empty() {
            continue;
        }
        sealing += 1;
        if !recorded.contains(commit) {
            unrecorded.push(Unrecorded {
                commit: commit.to_string(),
                paths,
            });
        }
    }
    Ok(Coverage {
        range: label,
        commits: commits.len(),
        sealing,
        unrecorded,
    })
}

/// Where the chain began: the commit HEAD was at when `init` ran (the
/// `init` entry's `data.commit`), else the `init` entry's time.
struct Start {
    commit: Option<Oid>,
    time: Option<i64>,
}

fn chain_start(repo: &Repo, tip: Oid) -> Result<Start, AuditError> {
    let mut start = Start {
        commit: None,
        time: None,
    };
    // The root is the one entry with no parent: the walk's first.
    if let Some(root) = repo.commits_between(&[tip], &[])?.first() {
        let commit = chain::read_commit(repo, *root).map_err(|problem| AuditError::Chain {
            commit: *root,
            problem,
        })?;
        if let Ok(init) = chain::read_entry(repo, commit.tree) {
            start.commit = init
                .data_str("commit")
                .and_then(|c| Oid::from_str(c).ok())
                .filter(|c| repo.resolve_commit(&c.to_string()).is_some());
            start.time = humantime::parse_rfc3339(&init.time)
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs() as i64);
        }
    }
    Ok(start)
}

/// Where the hooks remember the last commit whose history they have
/// recorded (see [`unrecorded_before`]).
fn marker(repo: &Repo) -> std::path::PathBuf {
    repo.common_dir().join("seal").join("audit-caught-up")
}

/// How far back the hooks look for commits whose entry is missing.
const CATCH_UP_LIMIT: usize = 100;

/// Commits before `head` that this clone made since it last caught up
/// (not on any remote-tracking branch), that changed sealed paths and are
/// not recorded by the chain at `tip`, oldest first: what a post-commit
/// that was killed, could not sign or was not trusted left out.
pub(crate) fn unrecorded_before(
    ws: &Workspace,
    head: Oid,
    tip: Oid,
) -> Result<Vec<(Oid, Vec<String>)>, AuditError> {
    let repo = &ws.repo;
    let Some(caught_up) = std::fs::read_to_string(marker(repo))
        .ok()
        .and_then(|t| Oid::from_str(t.trim()).ok())
        .filter(|c| repo.resolve_commit(&c.to_string()).is_some())
    else {
        return Ok(Vec::new());
    };
    let parents = repo.parents(head)?;
    if parents.contains(&caught_up) || caught_up == head {
        return Ok(Vec::new()); // the everyday case: nothing in between
    }
    unrecorded_local(ws, &parents, Some(caught_up), tip, CATCH_UP_LIMIT)
}

/// The commits reachable from `from` and from no remote-tracking branch
/// nor `since` (the newest `limit`), that changed sealed paths and that the
/// chain at `tip` does not record, oldest first, with those paths.
fn unrecorded_local(
    ws: &Workspace,
    from: &[Oid],
    since: Option<Oid>,
    tip: Oid,
    limit: usize,
) -> Result<Vec<(Oid, Vec<String>)>, AuditError> {
    let repo = &ws.repo;
    let mut hide: Vec<Oid> = since.into_iter().collect();
    hide.extend(
        repo.refs_matching("refs/remotes/*")?
            .into_iter()
            .map(|r| r.1),
    );
    let mut commits = repo.commits_between(from, &hide)?;
    if commits.len() > limit {
        commits.drain(..commits.len() - limit);
    }
    if commits.is_empty() {
        return Ok(Vec::new());
    }
    let recorded = recorded(repo, tip)?;
    let mut missing = Vec::new();
    for commit in commits.into_iter().filter(|c| !recorded.contains(c)) {
        let paths = sealed_paths_changed(ws, commit)?;
        if !paths.is_empty() {
            missing.push((commit, paths));
        }
    }
    Ok(missing)
}

/// Remember that everything up to `head` is recorded.
pub(crate) fn caught_up(repo: &Repo, head: Oid) {
    let _ = crate::atomic_file::write_hint(&marker(repo), format!("{head}\n").as_bytes());
}

/// Is `commit` on no remote-tracking branch (made here, not fetched)?
pub(crate) fn is_local(repo: &Repo, commit: Oid) -> Result<bool, AuditError> {
    for (_, tracking) in repo.refs_matching("refs/remotes/*")? {
        if repo.is_ancestor(commit, tracking)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// This clone's commits since the chain began (on no remote-tracking
/// branch; the newest [`CATCH_UP_LIMIT`] × 10 at most) that changed sealed
/// paths and that the chain at `tip` does not record: what `doctor`
/// reports.
pub fn local_unrecorded(ws: &Workspace, tip: Oid) -> Result<Vec<Unrecorded>, AuditError> {
    let Some((head, _)) = ws.repo.head_commit()? else {
        return Ok(Vec::new());
    };
    let since = chain_start(&ws.repo, tip)?.commit;
    Ok(
        unrecorded_local(ws, &[head], since, tip, CATCH_UP_LIMIT * 10)?
            .into_iter()
            .map(|(commit, paths)| Unrecorded {
                commit: commit.to_string(),
                paths,
            })
            .collect(),
    )
}
