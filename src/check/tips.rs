//! Warnings about where a range ends, never failures: KEKs that a tip
//! commit lists that are due for rotation, and envelopes in a tip's tree
//! that are wrapped only to retired KEKs.
//!
//! Only tips are judged, not every commit: history rightly keeps envelopes
//! wrapped to the KEK of its day, and whether a KEK is due depends on today,
//! not on which old commit lists it. A tip is judged by the rules it carries
//! and, for retired KEKs, also by HEAD's: a branch made before a rotation
//! still lists the old KEK as active, and checking it from a HEAD that
//! retired that KEK is how its stale envelopes come to light.

use std::collections::HashMap;
use std::time::SystemTime;

use super::blob::{BlobFacts, Form};
use super::finding::{Finding, Kind};
use super::rules::{reseal_fix, rule_files, Rules};
use super::walk::Walk;
use crate::keys::expiry::rotate_fix;
use crate::keys::record::Status;
use crate::kid::Kid;
use crate::repo::{Oid, Repo, RepoError};

/// The warnings for each of `tips` that the walk met (a tip outside the
/// range, as `A` in `A..A`, has none), each said once however many tips
/// share it.
pub(super) fn warnings(
    repo: &Repo,
    tips: &[Oid],
    commits: &[Oid],
    walk: &Walk<'_>,
    facts: &[BlobFacts],
    available: &[Kid],
    now: SystemTime,
) -> Result<Vec<Finding>, RepoError> {
    let index: HashMap<Oid, usize> = commits.iter().enumerate().map(|(i, c)| (*c, i)).collect();
    let head = repo.head_commit()?.map(|(head, _)| head);
    let head_rules = match head {
        Some(head) if tips.iter().any(|t| *t != head) => Some(match index.get(&head) {
            Some(&i) => walk.rules[walk.commit_rules[i]].clone(),
            None => {
                let files = rule_files(repo, repo.commit_tree_id(head)?)?;
                Rules::load(repo, &files, available)?
            }
        }),
        _ => None,
    };
    let mut found: Vec<Finding> = Vec::new();
    let mut add = |finding: Finding| {
        let same = |f: &Finding| {
            (f.kind, &f.path, &f.message) == (finding.kind, &finding.path, &finding.message)
        };
        if !found.iter().any(same) {
            found.push(finding);
        }
    };
    for tip in tips {
        let Some(&at) = index.get(tip) else {
            continue;
        };
        let rules = &walk.rules[walk.commit_rules[at]];
        let commit = Some(tip.to_string());
        for (path, message) in rules.rotation_due(now) {
            add(Finding {
                commit: commit.clone(),
                path,
                kind: Kind::RotationDue,
                message,
            });
        }
        let head_rules = head_rules.as_ref().filter(|_| Some(*tip) != head);
        for (path, id) in repo.tree_blobs(repo.commit_tree_id(*tip)?)? {
            let Some(&blob) = walk.blob_seen.get(&id) else {
                continue;
            };
            let Form::Envelope { kids, .. } = &facts[blob].form else {
                continue;
            };
            if let Some(message) = retired_only(&path, kids, rules, head_rules) {
                add(Finding {
                    commit: commit.clone(),
                    path,
                    kind: Kind::RetiredOnly,
                    message,
                });
            }
        }
    }
    Ok(found)
}

/// The warning for an envelope at `path` wrapped to `kids` when none of
/// them is a current recipient (active or pending in `tip`'s rules and not
/// retired or removed in `head`'s) and one is retired (by either).
fn retired_only(path: &str, kids: &[Kid], tip: &Rules, head: Option<&Rules>) -> Option<String> {
    let head_status = |kid: &Kid| head.and_then(|h| h.status(kid));
    let current = |kid: &Kid| {
        matches!(tip.status(kid), Some(Status::Active | Status::Pending))
            && !matches!(head_status(kid), Some(Status::Retired | Status::Removed))
    };
    if kids.iter().any(current) {
        return None;
    }
    if let Some(kid) = kids.iter().find(|k| tip.status(k) == Some(Status::Retired)) {
        return Some(format!(
            "envelope is wrapped only to {kid}, which .seal/keys/ lists as retired (no active or pending KEK among its recipients); re-wrap the index to the active KEK with `{}` and commit, or {}",
            rotate_fix(kid),
            reseal_fix(path, super::Place::History)
        ));
    }
    let kid = kids
        .iter()
        .find(|k| head_status(k) == Some(Status::Retired))?;
    Some(format!(
        "envelope is wrapped only to {kid}, which HEAD's .seal/keys/ lists as retired while this commit still lists it as active (its branch predates the rotation); merge HEAD's branch into it, then re-wrap with `{}` and commit",
        rotate_fix(kid)
    ))
}
