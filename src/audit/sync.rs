//! Exchanging the chain with a remote (`git seal audit sync`): fetch its
//! chain to the tracking ref, take its new entries, merge diverged chains
//! with a signed `chain-merge` entry, and push. Nothing that does not
//! verify is taken, and a remote that moves meanwhile is simply another
//! round.

use serde_json::{json, Map};

use super::chain::{self, NewEntry, REF};
use super::verify::{self, Finding};
use super::{entry, fetch_refspec, tracking_ref, AuditError, Signer};
use crate::repo::command::GitCommandError;
use crate::repo::{Oid, Repo, RepoError};

/// How many times sync starts over when the remote or the local chain
/// moves under it.
pub const ATTEMPTS: u32 = 5;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("there is no remote named {0:?}")]
    NoSuchRemote(String),
    #[error("this repository has no remote to sync with")]
    NoRemote,
    #[error("several remotes ({}); name the one to sync with", .0.join(", "))]
    SeveralRemotes(Vec<String>),
    #[error("neither this repository nor {remote} has an audit chain")]
    NoChain { remote: String },
    #[error("{remote}'s audit chain ({theirs}) does not share a root with {REF} ({ours}): the two were started separately")]
    Unrelated {
        remote: String,
        ours: Oid,
        theirs: Oid,
    },
    #[error("the chain merged with {remote}'s does not verify ({} finding(s)); {REF} is unchanged", .findings.len())]
    Unverified {
        remote: String,
        findings: Vec<Finding>,
    },
    #[error("cannot push {REF} to {remote}: {reason}")]
    PushRefused { remote: String, reason: String },
    #[error("{remote}'s audit chain kept moving during {ATTEMPTS} attempts; run `git seal audit sync` again")]
    KeptMoving { remote: String },
    #[error(transparent)]
    Git(#[from] GitCommandError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Repo(#[from] RepoError),
}

/// Where the chain ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synced {
    /// The remote already had this tip.
    InSync(Oid),
    /// This tip was pushed to the remote.
    Pushed(Oid),
}

/// The remote to sync with when none is named: `origin`, or the only one.
pub fn default_remote(repo: &Repo) -> Result<String, SyncError> {
    let remotes = repo.remotes()?;
    if remotes.iter().any(|r| r == "origin") {
        return Ok("origin".into());
    }
    match remotes.as_slice() {
        [only] => Ok(only.clone()),
        [] => Err(SyncError::NoRemote),
        _ => Err(SyncError::SeveralRemotes(remotes)),
    }
}

/// Fetch `remote`'s chain to its tracking ref (`refs/seal-remote/REMOTE/`).
pub(crate) fn fetch_chain(repo: &Repo, remote: &str) -> Result<(), SyncError> {
    let refspec = fetch_refspec(remote);
    // The reference-transaction hook leaves this fetch to its caller,
    // which takes the chain in itself.
    repo.git().env(super::TAKING_CHAIN, "1").run(&[
        "fetch",
        "--quiet",
        "--no-tags",
        remote,
        &refspec,
    ])?;
    Ok(())
}

/// Fetch, merge and push until the remote and this clone agree.
pub fn sync(repo: &Repo, remote: &str) -> Result<Synced, SyncError> {
    if !repo.has_remote(remote) {
        return Err(SyncError::NoSuchRemote(remote.to_owned()));
    }
    let tracking = tracking_ref(remote);
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            chain::backoff(attempt);
        }
        fetch_chain(repo, remote)?;
        let theirs = repo.ref_target(&tracking);
        let ours = chain::tip(repo);
        let new_tip = match (ours, theirs) {
            (None, None) => {
                return Err(SyncError::NoChain {
                    remote: remote.to_owned(),
                })
            }
            (Some(ours), None) => ours,
            (ours, Some(theirs)) => match merge_chains(repo, remote, ours, theirs)? {
                Some(tip) => tip,
                // Lost a race with a local appender: start over.
                None => continue,
            },
        };
        if theirs == Some(new_tip) {
            return Ok(Synced::InSync(new_tip));
        }
        let push = push_chain(repo, remote)?;
        if push.status.success() {
            return Ok(Synced::Pushed(new_tip));
        }
        let why = String::from_utf8_lossy(&push.stderr);
        // Only a remote that moved meanwhile (or is being moved by another
        // clone's push right now) is worth another round; a refusal by the
        // server (e.g. its pre-receive hook) is reported.
        let moved = ["fetch first", "non-fast-forward", "cannot lock ref"];
        if !moved.iter().any(|m| why.contains(m)) {
            return Err(SyncError::PushRefused {
                remote: remote.to_owned(),
                reason: why.trim().to_owned(),
            });
        }
    }
    Err(SyncError::KeptMoving {
        remote: remote.to_owned(),
    })
}

/// `git push --no-verify REMOTE refs/seal/audit:refs/seal/audit`, failing
/// only when Git cannot run. --no-verify: this runs from the pre-push hook
/// too, which must not run again for the chain alone.
fn push_chain(repo: &Repo, remote: &str) -> Result<std::process::Output, SyncError> {
    Ok(repo.git().run_with(
        &[
            "push",
            "--quiet",
            "--no-verify",
            remote,
            &format!("{REF}:{REF}"),
        ],
        None,
        &[0, 1],
    )?)
}

/// Push the chain to `url` (a push to a URL rather than a named remote,
/// so there is no tracking ref to merge through): refused unless it only
/// adds to the chain there. Returns the tip pushed.
pub fn push_to(repo: &Repo, url: &str) -> Result<Oid, SyncError> {
    let tip = chain::tip(repo).ok_or_else(|| SyncError::NoChain {
        remote: url.to_owned(),
    })?;
    let push = push_chain(repo, url)?;
    if push.status.success() {
        return Ok(tip);
    }
    Err(SyncError::PushRefused {
        remote: url.to_owned(),
        reason: String::from_utf8_lossy(&push.stderr).trim().to_owned(),
    })
}

/// Bring `theirs` into the local chain: take it when ours is behind, keep
/// ours when theirs is behind, else write a signed `chain-merge` entry with
/// both as parents. Nothing is taken that does not verify. Returns the new
/// local tip, or `None` if a local appender moved the chain meanwhile.
pub(crate) fn merge_chains(
    repo: &Repo,
    remote: &str,
    ours: Option<Oid>,
    theirs: Oid,
) -> Result<Option<Oid>, SyncError> {
    if let Some(ours) = ours {
        if repo.is_ancestor(theirs, ours)? {
            return Ok(Some(ours));
        }
        if !repo.has_merge_base(ours, theirs)? {
            return Err(SyncError::Unrelated {
                remote: remote.to_owned(),
                ours,
                theirs,
            });
        }
    }
    let merged = match ours {
        Some(ours) if !repo.is_ancestor(ours, theirs)? => {
            let signer = Signer::load_or_create()?;
            let seq = chain::seq_of(repo, ours)?.max(chain::seq_of(repo, theirs)?) + 1;
            let mut data = Map::new();
            data.insert("remote".into(), json!(remote));
            data.insert("ours".into(), json!(ours.to_string()));
            data.insert("theirs".into(), json!(theirs.to_string()));
            let new = NewEntry {
                event: entry::EVENT_CHAIN_MERGE,
                data,
            };
            chain::write_entry(repo, &signer, &[ours, theirs], seq, &new)?
        }
        _ => theirs,
    };
    let report = verify::verify(repo, merged, &verify::Options::default())?;
    if !report.ok() {
        return Err(SyncError::Unverified {
            remote: remote.to_owned(),
            findings: report.findings,
        });
    }
    if repo.update_ref_cas(REF, merged, ours, &format!("git-seal audit: sync {remote}"))? {
        // Verified above: the highest tip this clone has seen.
        super::watermark::advance(repo, merged)?;
        Ok(Some(merged))
    } else {
        Ok(None)
    }
}
