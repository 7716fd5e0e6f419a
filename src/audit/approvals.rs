//! "Once sealed, stays sealed" (SPEC §5): a path that was an envelope may
//! become plaintext, and the rules may get weaker (a sealed glob, a sealed
//! `.gitattributes` pattern, a recipient or the path binding dropped), only
//! when a trusted signer's audit entry names that change: `unseal-path`
//! (`data.paths`) or `policy` (`data.allow`, items such as
//! `sealed:secrets/**`). Key lifecycle entries approve what they do by
//! their nature: a `rotate` entry approves dropping `recipient:FROM` (the
//! kid rotated away), a `recipient-remove` entry `recipient:KID`.
//!
//! A finding of `git seal check` that a team accepts (say, a plaintext
//! commit already rewritten out of every branch) is acknowledged the same
//! way, by an `accept-finding` entry naming that commit, path, blob and
//! kind, with the reason. This module reads those approvals and
//! acceptances from a chain and writes them; which findings exist is
//! `check`'s business, not this module's.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use serde_json::{json, Map};

use super::chain::{self, NewEntry};
use super::entry::{self, Actor, Entry};
use super::verify::{self, Options};
use super::{AuditError, Signer, When, REF};
use crate::repo::{Oid, Repo};

pub const EVENT_UNSEAL_PATH: &str = "unseal-path";
pub const EVENT_POLICY: &str = "policy";
pub const EVENT_ACCEPT_FINDING: &str = "accept-finding";

/// What a trusted signer approved, by chain entries.
#[derive(Debug, Default)]
pub struct Approvals {
    paths: HashSet<String>,
    policy: HashSet<String>,
    /// Accepted findings by (commit, path).
    accepted: HashMap<(String, String), Vec<Acceptance>>,
}

/// One finding a trusted signer accepted: the `data` of an
/// `accept-finding` entry, who signed it and which entry it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Acceptance {
    /// The commit the finding is reported for (full id).
    pub commit: String,
    pub path: String,
    /// The blob at `path` in `commit` (`None`: no blob there, as for a
    /// rule file the commit deleted).
    pub blob: Option<String>,
    /// The finding's kind, as `check` names it (`plaintext`, …).
    pub kind: String,
    pub reason: String,
    /// Who accepted it (the entry's actor; its signer is trusted).
    pub accepted_by: Actor,
    /// The `accept-finding` entry's commit in the chain.
    pub entry: String,
}

impl Acceptance {
    /// The acceptance an entry records, if it is a well-formed
    /// `accept-finding` entry (anything else accepts nothing).
    fn from_entry(id: Oid, entry: &Entry) -> Option<Acceptance> {
        if entry.event != EVENT_ACCEPT_FINDING {
            return None;
        }
        let blob = match entry.data.get("blob") {
            Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(blob)) => Some(blob.clone()),
            _ => return None,
        };
        let field = |name: &str| entry.data_str(name).map(str::to_owned);
        Some(Acceptance {
            commit: field("commit")?,
            path: field("path")?,
            blob,
            kind: field("kind")?,
            reason: field("reason")?,
            accepted_by: entry.actor.clone(),
            entry: id.to_string(),
        })
    }
}

impl Approvals {
    /// The approvals in the chain at `tip`, if it verifies; none otherwise
    /// (an approval in a chain that does not verify approves nothing).
    pub fn from_chain(repo: &Repo, tip: Option<Oid>) -> Approvals {
        let Some(tip) = tip else {
            return Approvals::default();
        };
        match verify::verify(repo, tip, &Options::default()) {
            Ok(report) if report.ok() => {}
            _ => return Approvals::default(),
        }
        let Ok((order, commits)) = verify::walk(repo, tip) else {
            return Approvals::default();
        };
        let mut approvals = Approvals::default();
        for id in order {
            let Ok(entry) = chain::read_entry(repo, commits[&id].tree) else {
                continue;
            };
            // A lifecycle entry names the one kid it drops as a recipient.
            let recipient =
                |field: &str| entry.data_str(field).map(|kid| format!("recipient:{kid}"));
            match entry.event.as_str() {
                EVENT_UNSEAL_PATH => approvals.paths.extend(owned(entry.data_strs("paths"))),
                EVENT_POLICY => approvals.policy.extend(owned(entry.data_strs("allow"))),
                entry::EVENT_ROTATE => approvals.policy.extend(recipient("from")),
                entry::EVENT_RECIPIENT_REMOVE => approvals.policy.extend(recipient("kid")),
                EVENT_ACCEPT_FINDING => {
                    if let Some(accepted) = Acceptance::from_entry(id, &entry) {
                        let key = (accepted.commit.clone(), accepted.path.clone());
                        approvals.accepted.entry(key).or_default().push(accepted);
                    }
                }
                _ => {}
            }
        }
        approvals
    }

    /// The approvals in this repository's own chain.
    pub fn here(repo: &Repo) -> Approvals {
        Approvals::from_chain(repo, chain::tip(repo))
    }

    pub fn unseal(&self, path: &str) -> bool {
        self.paths.contains(path)
    }

    pub fn policy(&self, item: &str) -> bool {
        self.policy.contains(item)
    }

    /// The findings accepted at `path` in `commit` (the first accepting
    /// entry for each blob and kind comes first).
    pub fn accepted_at(&self, commit: &str, path: &str) -> &[Acceptance] {
        self.accepted
            .get(&(commit.to_owned(), path.to_owned()))
            .map_or(&[], Vec::as_slice)
    }

    /// Whether any finding is accepted at all (most chains accept none).
    pub fn accepts_findings(&self) -> bool {
        !self.accepted.is_empty()
    }
}

fn owned(items: Vec<&str>) -> impl Iterator<Item = String> + '_ {
    items.into_iter().map(str::to_owned)
}

/// What a signer approves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Approval {
    /// Paths that may be stored as plaintext although they were sealed.
    UnsealPath,
    /// Rule items that may be dropped (`sealed:GLOB`, `attribute:PATTERN`,
    /// `recipient:KID`, `bind_path_aad`).
    Policy,
}

#[derive(Debug, thiserror::Error)]
pub enum ApproveError {
    #[error("{REF} does not verify ({0} finding(s)), so nothing can be approved in it")]
    Unverified(usize),
    #[error("there is no audit chain ({REF}) to approve in")]
    NoChain,
    #[error("your signer {0} is not trusted by {REF}, so it cannot approve")]
    Untrusted(String),
    #[error("{0:?} is not a rule item (expected sealed:GLOB, attribute:PATTERN, recipient:KID or bind_path_aad)")]
    BadItem(String),
    #[error(transparent)]
    Audit(#[from] AuditError),
}

/// This user's signer, if the chain exists, verifies and trusts it at its
/// tip: only then may it append an approval or an acceptance (an entry by
/// an untrusted signer would break the chain and approve nothing).
pub fn approver(repo: &Repo) -> Result<Signer, ApproveError> {
    let tip = chain::tip(repo).ok_or(ApproveError::NoChain)?;
    let report = verify::verify(repo, tip, &Options::default())?;
    if !report.ok() {
        return Err(ApproveError::Unverified(report.findings.len()));
    }
    let me = Signer::load_or_create()?;
    if !report.trusts(me.fingerprint()) {
        return Err(ApproveError::Untrusted(me.fingerprint().to_owned()));
    }
    Ok(me)
}

/// Append a signed approval of `items` by this user's signer, who must be
/// trusted by the chain.
pub fn approve(repo: &Repo, what: Approval, items: &[String]) -> Result<Oid, ApproveError> {
    if what == Approval::Policy {
        if let Some(bad) = items.iter().find(|i| !is_policy_item(i)) {
            return Err(ApproveError::BadItem(bad.clone()));
        }
    }
    let me = approver(repo)?;
    let (event, field) = match what {
        Approval::UnsealPath => (EVENT_UNSEAL_PATH, "paths"),
        Approval::Policy => (EVENT_POLICY, "allow"),
    };
    let mut data = Map::new();
    data.insert(field.into(), json!(items));
    let new = NewEntry { event, data };
    Ok(super::append(repo, &me, &new, When::Always)?.expect("always appends"))
}

/// What an `accept-finding` entry records (its `data`).
#[derive(Clone, Debug)]
pub struct FindingRecord<'a> {
    pub commit: Oid,
    pub path: &'a str,
    pub blob: Option<Oid>,
    pub kind: &'a str,
    pub reason: &'a str,
}

/// Append a signed `accept-finding` entry by `me` (from [`approver`]).
pub fn accept_finding(
    repo: &Repo,
    me: &Signer,
    record: &FindingRecord<'_>,
) -> Result<Oid, AuditError> {
    let data = json!({
        "commit": record.commit.to_string(),
        "path": record.path,
        "blob": record.blob.map(|b| b.to_string()),
        "kind": record.kind,
        "reason": record.reason,
    });
    let new = NewEntry {
        event: EVENT_ACCEPT_FINDING,
        data: data.as_object().cloned().expect("an object"),
    };
    Ok(super::append(repo, me, &new, When::Always)?.expect("always appends"))
}

fn is_policy_item(item: &str) -> bool {
    item == "bind_path_aad"
        || ["sealed:", "attribute:", "recipient:"]
            .iter()
            .any(|p| item.strip_prefix(p).is_some_and(|rest| !rest.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::lab::Lab;
    use serde_json::Value;

    const FROM: &str = "k_0123456789abcdef";
    const TO: &str = "k_fedcba9876543210";
    const REMOVED: &str = "k_00000000000000aa";

    /// The lifecycle entries as docs/audit.md gives their data.
    fn rotate() -> Value {
        json!({
            "from": FROM, "to": TO, "reencrypt": false, "rewrapped": 3,
            "reencrypted": 0, "index_tree": "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
        })
    }

    fn recipient_remove() -> Value {
        json!({
            "kid": REMOVED, "paths": ["prod/**"], "reencrypted": 2,
            "history_blobs": 5, "index_tree": "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
        })
    }

    /// A `rotate` entry approves dropping the kid it rotated away from, a
    /// `recipient-remove` entry the kid it removed; nothing else.
    #[test]
    fn rotate_and_recipient_remove_approve_dropping_their_kid() {
        let lab = Lab::new();
        let start = lab.start();
        let none = Approvals::from_chain(&lab.repo, Some(start));
        assert!(!none.policy(&format!("recipient:{FROM}")));

        let rotated = lab.entry(&lab.ada, &[start], entry::EVENT_ROTATE, rotate());
        let tip = lab.entry(
            &lab.bea,
            &[rotated],
            entry::EVENT_RECIPIENT_REMOVE,
            recipient_remove(),
        );
        let approvals = Approvals::from_chain(&lab.repo, Some(tip));
        assert!(approvals.policy(&format!("recipient:{FROM}")));
        assert!(approvals.policy(&format!("recipient:{REMOVED}")));
        assert!(!approvals.policy(&format!("recipient:{TO}")));
        assert!(!approvals.policy(&format!("sealed:{FROM}")));
        assert!(!approvals.unseal(FROM) && !approvals.unseal("prod/**"));
    }

    /// Signed by a signer the chain does not trust (here: one removed
    /// before), a lifecycle entry approves nothing: the chain does not
    /// verify.
    #[test]
    fn a_lifecycle_entry_by_a_removed_signer_approves_nothing() {
        let lab = Lab::new();
        let removed = lab.remove(&lab.ada, lab.start(), &lab.bea);
        let tip = lab.entry(
            &lab.bea,
            &[removed],
            entry::EVENT_RECIPIENT_REMOVE,
            recipient_remove(),
        );
        let approvals = Approvals::from_chain(&lab.repo, Some(tip));
        assert!(!approvals.policy(&format!("recipient:{REMOVED}")));
    }
    fn acceptance(path: &str) -> Value {
        json!({
            "commit": "ab".repeat(20), "path": path, "blob": "cd".repeat(20),
            "kind": "plaintext", "reason": "rewritten out of every branch",
        })
    }

    /// An `accept-finding` entry by a trusted signer accepts the finding it
    /// names, with who and why; one missing a field accepts nothing.
    #[test]
    fn accept_finding_entries_are_read_with_their_signer_and_reason() {
        let lab = Lab::new();
        let start = lab.start();
        let first = lab.entry(
            &lab.bea,
            &[start],
            EVENT_ACCEPT_FINDING,
            acceptance("old.env"),
        );
        let mut partial = acceptance("other.env");
        partial.as_object_mut().unwrap().remove("reason");
        let tip = lab.entry(&lab.ada, &[first], EVENT_ACCEPT_FINDING, partial);
        let approvals = Approvals::from_chain(&lab.repo, Some(tip));
        assert!(approvals.accepts_findings());
        let commit = "ab".repeat(20);
        let found = approvals.accepted_at(&commit, "old.env");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].accepted_by.signer, lab.bea.fingerprint());
        assert_eq!(found[0].reason, "rewritten out of every branch");
        assert_eq!(found[0].blob, Some("cd".repeat(20)));
        assert_eq!(found[0].entry, first.to_string());
        assert!(approvals.accepted_at(&commit, "other.env").is_empty());
        assert!(approvals
            .accepted_at(&"ef".repeat(20), "old.env")
            .is_empty());
        assert!(!approvals.unseal("old.env"));
    }

    /// Signed by a signer the chain no longer trusts, an acceptance
    /// accepts nothing (the chain does not verify).
    #[test]
    fn an_acceptance_by_a_removed_signer_accepts_nothing() {
        let lab = Lab::new();
        let removed = lab.remove(&lab.ada, lab.start(), &lab.bea);
        let tip = lab.entry(
            &lab.bea,
            &[removed],
            EVENT_ACCEPT_FINDING,
            acceptance("old.env"),
        );
        let approvals = Approvals::from_chain(&lab.repo, Some(tip));
        assert!(!approvals.accepts_findings());
    }
}
