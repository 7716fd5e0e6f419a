//! The highest chain tip this clone has seen verify (or appended itself),
//! kept in `.git/seal/audit-verified`, so that a chain cut back locally
//! (`git update-ref refs/seal/audit <older entry>`) is reported: the chain
//! only ever grows, so the remembered tip must stay an ancestor of the
//! current one.
//!
//! The file holds the tip's commit id and its sequence number. It is
//! advanced only forward; a tip that does not contain it is a finding of
//! `audit verify`, `status` and `doctor`, never silently accepted. To
//! accept a rewound chain on purpose, delete the file.

use std::path::PathBuf;

use super::verify::Finding;
use super::{chain, AuditError, REF};
use crate::repo::{Oid, Repo};

const FILE: &str = "audit-verified";

fn path(repo: &Repo) -> PathBuf {
    repo.common_dir().join("seal").join(FILE)
}

/// The remembered tip and its sequence number, if any.
pub fn remembered(repo: &Repo) -> Option<(Oid, u64)> {
    let text = std::fs::read_to_string(path(repo)).ok()?;
    let mut words = text.split_whitespace();
    let id = Oid::from_str(words.next()?).ok()?;
    let seq = words.next()?.parse().ok()?;
    Some((id, seq))
}

/// What is wrong when the chain at `tip` lost the remembered tip.
pub fn check(repo: &Repo, tip: Oid) -> Option<Finding> {
    let (seen, seq) = remembered(repo)?;
    if repo.is_ancestor(seen, tip).unwrap_or(false) {
        return None;
    }
    let now = chain::seq_of(repo, tip)
        .map(|s| format!("seq {s}"))
        .unwrap_or_else(|_| "unreadable".into());
    Some(Finding {
        commit: Some(tip),
        reason: format!(
            "the chain went backwards: this clone saw it verified at {seen} (seq {seq}), and {REF} is now {tip} ({now}), which does not contain it (entries were dropped). Restore it with `git update-ref {REF} {seen}` if that entry is still here, or take the remote's chain with `git seal audit sync`; delete .git/seal/{FILE} only to accept the cut on purpose"
        ),
    })
}

/// Remember `tip` if it contains the remembered one (the chain grew).
/// A tip that does not is left for [`check`] to report.
pub fn advance(repo: &Repo, tip: Oid) -> Result<(), AuditError> {
    if let Some((seen, _)) = remembered(repo) {
        if seen == tip || !repo.is_ancestor(seen, tip)? {
            return Ok(());
        }
    }
    let seq = chain::seq_of(repo, tip)?;
    crate::atomic_file::write_hint(&path(repo), format!("{tip} {seq}\n").as_bytes())?;
    Ok(())
}
