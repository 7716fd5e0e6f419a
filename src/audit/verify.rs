//! Verifying the chain (docs/audit.md): every entry's SSH signature, that
//! its signer was trusted at that point of the chain, the entry schema,
//! sequence numbers along parents, and optionally that an old tip is still
//! an ancestor. Needs no private key.
//!
//! Trust at an entry is decided by its ancestors alone (`Trust`): the
//! `init` signer, then `signer-add` and `signer-remove` entries along the
//! parents. A signer removed on one side of a `chain-merge` is not trusted
//! after the merge, unless the side that trusts it had seen that removal
//! (and re-added the signer after it).
//!
//! Speed: one thread walks the commits (to learn the graph) while threads
//! with their own repository handles read the entries and check the
//! signatures in batches, the costly part; trust and sequence checks then
//! run in parent-first order.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;
use std::sync::{mpsc, Mutex};

use ssh_key::{HashAlg, SshSig};

use super::chain::{self, RawCommit};
use super::entry::{self, Entry};
use super::signer::{self, NAMESPACE};
use super::AuditError;
use crate::progress::Progress;
use crate::repo::{Oid, Repo};

#[derive(Clone, Debug, Default)]
pub struct Options {
    /// An earlier tip that must still be in the chain.
    pub since: Option<String>,
    /// Pinned fingerprint of the root (`init`) signer.
    pub trust: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub commit: Option<Oid>,
    pub reason: String,
}

/// A signer the chain trusted once and no longer does at its tip.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemovedSigner {
    pub fingerprint: String,
    /// The `signer-remove` entry that removed it (the latest, if several).
    pub removed_by: Oid,
    /// That entry's sequence number.
    pub seq: u64,
}

/// A signer the chain trusts at its tip.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedSigner {
    pub fingerprint: String,
    pub email: String,
    /// `ssh-ed25519 AAAA…`
    pub public_key: String,
    /// The `init` or `signer-add` entry that made it trusted.
    pub added_by: Oid,
}

#[derive(Debug)]
pub struct Report {
    pub tip: Oid,
    pub entries: usize,
    pub findings: Vec<Finding>,
    /// Signers trusted at the tip, in the order they were added.
    pub signers: Vec<TrustedSigner>,
    /// Signers removed (and not added again) by the tip, in the order
    /// they were removed.
    pub removed: Vec<RemovedSigner>,
    /// The fingerprint of the root (`init`) entry's signer. It stays the
    /// root (what `--trust` pins) even after it is removed as a signer.
    pub root: Option<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.findings.is_empty()
    }

    /// Does the chain trust the signer `fingerprint` at its tip?
    pub fn trusts(&self, fingerprint: &str) -> bool {
        self.signers.iter().any(|s| s.fingerprint == fingerprint)
    }
}

/// One entry, read and its signature checked (the parallel part).
struct Checked {
    entry: Option<Entry>,
    /// Fingerprint and public key of a valid signature.
    signer: Option<(String, String)>,
    problems: Vec<String>,
}

/// Who may sign at one point of the chain, from the entries below it.
#[derive(Clone, Debug, Default)]
struct Trust {
    signers: BTreeMap<String, TrustedSigner>,
    /// Every effective `signer-remove` among the ancestors, by the
    /// fingerprint it removed: the history a merge compares (see
    /// [`Trust::merge`]). A signer added again stays listed here.
    removals: BTreeMap<String, Vec<RemovedSigner>>,
}

impl Trust {
    /// Trust below a merge of `sides`. A signer stays trusted if some side
    /// trusts it having seen every removal of it that any side has seen: a
    /// side that never saw a removal made on the other side holds stale
    /// trust, which the merge must not bring back; a side that removed and
    /// then added it again (after the removal) holds fresh trust.
    fn merge(sides: &[&Trust]) -> Trust {
        let mut removals: BTreeMap<String, Vec<RemovedSigner>> = BTreeMap::new();
        for side in sides {
            for (fingerprint, list) in &side.removals {
                let all = removals.entry(fingerprint.clone()).or_default();
                for removal in list {
                    if !all.iter().any(|r| r.removed_by == removal.removed_by) {
                        all.push(removal.clone());
                    }
                }
            }
        }
        let count = |of: &BTreeMap<String, Vec<RemovedSigner>>, fingerprint: &str| {
            of.get(fingerprint).map_or(0, Vec::len)
        };
        let mut signers = BTreeMap::new();
        for side in sides {
            for (fingerprint, signer) in &side.signers {
                // A side's removals are a subset of the union: equal counts
                // mean the side saw them all.
                if count(&side.removals, fingerprint) == count(&removals, fingerprint) {
                    signers
                        .entry(fingerprint.clone())
                        .or_insert_with(|| signer.clone());
                }
            }
        }
        Trust { signers, removals }
    }

    /// The removal that makes `fingerprint` untrusted here, if any (the
    /// latest by sequence number).
    fn removal_of(&self, fingerprint: &str) -> Option<&RemovedSigner> {
        if self.signers.contains_key(fingerprint) {
            return None;
        }
        self.removals
            .get(fingerprint)
            .and_then(|list| list.iter().max_by_key(|r| r.seq))
    }

    /// Apply the `signer-remove` entry `id` (whose signer is trusted here).
    /// Removing a signer that is not trusted here changes nothing.
    fn remove(&mut self, fingerprint: &str, id: Oid, seq: u64) {
        if self.signers.remove(fingerprint).is_some() {
            self.removals
                .entry(fingerprint.to_owned())
                .or_default()
                .push(RemovedSigner {
                    fingerprint: fingerprint.to_owned(),
                    removed_by: id,
                    seq,
                });
        }
    }
}

/// Verify the chain ending at `tip`.
pub fn verify(repo: &Repo, tip: Oid, options: &Options) -> Result<Report, AuditError> {
    let mut findings = Vec::new();
    let (order, read) = read_checked(repo, tip)?;

    let index: HashMap<Oid, usize> = order.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let mut seqs: Vec<Option<u64>> = vec![None; order.len()];
    // Trust *below* each entry (from its ancestors), shared between
    // entries while nothing changes.
    let mut trusted_after: Vec<Rc<Trust>> = Vec::with_capacity(order.len());
    let mut root: Option<Oid> = None;
    let mut root_signer: Option<String> = None;

    for (i, id) in order.iter().enumerate() {
        let (commit_parents, check) = &read[id];
        let mut problems = check.problems.clone();
        let parents: Vec<usize> = commit_parents
            .iter()
            .filter_map(|p| index.get(p).copied())
            .collect();

        // Trust inherited from the parents.
        let mut trusted: Rc<Trust> = match parents.as_slice() {
            [] => Rc::new(Trust::default()),
            [one] => trusted_after[*one].clone(),
            many => {
                let sides: Vec<&Trust> = many.iter().map(|p| &*trusted_after[*p]).collect();
                Rc::new(Trust::merge(&sides))
            }
        };

        if let (Some(entry), Some((fingerprint, public_key))) = (&check.entry, &check.signer) {
            // Sequence numbers: one more than the highest parent.
            let expected = 1 + parents.iter().filter_map(|p| seqs[*p]).max().unwrap_or(0);
            if entry.seq != expected {
                problems.push(format!(
                    "seq is {}, expected {expected} (1 + highest parent seq)",
                    entry.seq
                ));
            }
            if entry.actor.signer != *fingerprint {
                problems.push(format!(
                    "actor.signer says {} but the entry is signed by {fingerprint}",
                    entry.actor.signer
                ));
            }
            if commit_parents.is_empty() {
                if entry.event != entry::EVENT_INIT {
                    problems.push(format!(
                        "the chain's first entry is `{}`, not `init`",
                        entry.event
                    ));
                } else if let Some(first) = root {
                    problems.push(format!(
                        "a second root (`init`) entry; the chain already starts at {first}"
                    ));
                } else {
                    root = Some(*id);
                    root_signer = Some(fingerprint.clone());
                    if let Some(pinned) = options.trust.as_ref().filter(|p| *p != fingerprint) {
                        // One finding says it all: the rest of the chain is
                        // then checked as if this root were trusted, rather
                        // than failing every entry it signed.
                        problems.push(format!(
                            "the root entry is signed by {fingerprint}, not the pinned {pinned}"
                        ));
                    }
                    let mut roots = Trust::default();
                    roots.signers.insert(
                        fingerprint.clone(),
                        TrustedSigner {
                            fingerprint: fingerprint.clone(),
                            email: entry.actor.email.clone(),
                            public_key: public_key.clone(),
                            added_by: *id,
                        },
                    );
                    trusted = Rc::new(roots);
                }
            } else if entry.event == entry::EVENT_INIT {
                problems.push("an `init` entry that is not the chain's first".into());
            }
            if let Some(removal) = trusted.removal_of(fingerprint) {
                problems.push(format!(
                    "signed by {fingerprint}, removed as a signer by entry seq {} ({})",
                    removal.seq, removal.removed_by
                ));
            } else if !trusted.signers.contains_key(fingerprint) {
                problems.push(format!(
                    "signed by {fingerprint}, which is not a trusted signer at this point of the chain (add it with `git seal audit signer add`)"
                ));
            } else if entry.event == entry::EVENT_SIGNER_ADD && problems.is_empty() {
                match signer_added(entry, *id) {
                    Ok(added) => {
                        Rc::make_mut(&mut trusted)
                            .signers
                            .entry(added.fingerprint.clone())
                            .or_insert(added);
                    }
                    Err(e) => problems.push(e),
                }
            } else if entry.event == entry::EVENT_SIGNER_REMOVE && problems.is_empty() {
                // Entry::parse made sure the fingerprint is there.
                let removed = entry.data_str("fingerprint").unwrap_or_default();
                Rc::make_mut(&mut trusted).remove(removed, *id, entry.seq);
            }
        }
        // Descendants are numbered against what the entry claims, even if
        // it has other problems (which are reported on their own).
        seqs[i] = check.entry.as_ref().map(|e| e.seq);
        for reason in problems {
            findings.push(Finding {
                commit: Some(*id),
                reason,
            });
        }
        trusted_after.push(trusted);
    }

    if let Some(since) = &options.since {
        match repo.resolve_commit(since) {
            None => findings.push(Finding {
                commit: None,
                reason: format!(
                    "the old tip {since} is not in this repository: the chain was rewritten, or it was never fetched here"
                ),
            }),
            Some(old) => {
                if !index.contains_key(&old) {
                    findings.push(Finding {
                        commit: Some(old),
                        reason: format!(
                            "the old tip is not an ancestor of the tip {tip}: the chain was rewound or rewritten (entries dropped)"
                        ),
                    });
                }
            }
        }
    }

    // This clone's own chain must contain the highest tip it has seen.
    if chain::tip(repo) == Some(tip) {
        match super::watermark::check(repo, tip) {
            Some(finding) => findings.push(finding),
            None if findings.is_empty() => super::watermark::advance(repo, tip)?,
            None => {}
        }
    }

    let at_tip = trusted_after.last().cloned().unwrap_or_default();
    let mut signers: Vec<TrustedSigner> = at_tip.signers.values().cloned().collect();
    signers.sort_by_key(|s| index.get(&s.added_by).copied());
    let mut removed: Vec<RemovedSigner> = at_tip
        .removals
        .keys()
        .filter_map(|fingerprint| at_tip.removal_of(fingerprint).cloned())
        .collect();
    removed.sort_by_key(|r| index.get(&r.removed_by).copied());
    Ok(Report {
        tip,
        entries: order.len(),
        findings,
        signers,
        removed,
        root: root_signer,
    })
}

fn signer_added(entry: &Entry, id: Oid) -> Result<TrustedSigner, String> {
    let (public_key, fingerprint, _) =
        signer::parse_public(entry.data_str("public_key").unwrap_or_default())
            .map_err(|e| format!("signer-add: data.public_key is {e}"))?;
    if Some(fingerprint.as_str()) != entry.data_str("fingerprint") {
        return Err(format!(
            "signer-add: data.fingerprint does not match the key ({fingerprint})"
        ));
    }
    Ok(TrustedSigner {
        fingerprint,
        email: entry.data_str("email").unwrap_or_default().to_owned(),
        public_key,
        added_by: id,
    })
}

/// Read every commit reachable from `tip`; return them parent-first.
#[allow(clippy::type_complexity)]
pub fn walk(repo: &Repo, tip: Oid) -> Result<(Vec<Oid>, HashMap<Oid, RawCommit>), AuditError> {
    let mut commits: HashMap<Oid, RawCommit> = HashMap::new();
    discover(repo, tip, |chunk| commits.extend(chunk))?;
    let order = parent_first(tip, |id| commits.get(&id).map(|c| c.parents.as_slice()));
    Ok((order, commits))
}

/// Entries handed to a checking thread at a time.
const CHUNK: usize = 256;

/// Every entry reachable from `tip`, parent-first, with its parents and its
/// checked entry and signature. This thread walks the commits (it must: a
/// commit names its parents) and hands them in chunks to threads that read
/// the entries and check the signatures, so both run at once.
#[allow(clippy::type_complexity)]
fn read_checked(
    repo: &Repo,
    tip: Oid,
) -> Result<(Vec<Oid>, HashMap<Oid, (Vec<Oid>, Checked)>), AuditError> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let handles: Vec<Repo> = (0..threads)
        .map(|_| repo.reopen())
        .collect::<Result<_, _>>()?;
    let (send, receive) = mpsc::channel::<Vec<(Oid, RawCommit)>>();
    let receive = Mutex::new(receive);
    let progress = &Progress::new("audit verify", 0, "entries");
    let (walked, results) = std::thread::scope(|scope| {
        let workers: Vec<_> = handles
            .into_iter()
            .map(|handle| {
                let receive = &receive;
                scope.spawn(move || {
                    let mut out = Vec::new();
                    loop {
                        let next = receive.lock().expect("queue lock").recv();
                        match next {
                            Ok(chunk) => out.extend(check_chunk(&handle, chunk, progress)),
                            Err(_) => return out,
                        }
                    }
                })
            })
            .collect();
        let walked = discover(repo, tip, |chunk| {
            // A send fails only if every worker panicked; join reports it.
            let _ = send.send(chunk);
        });
        drop(send);
        let results: Vec<_> = workers
            .into_iter()
            .flat_map(|w| w.join().expect("verify thread"))
            .collect();
        (walked, results)
    });
    progress.finish();
    walked?;
    let read: HashMap<Oid, (Vec<Oid>, Checked)> = results
        .into_iter()
        .map(|(id, parents, checked)| (id, (parents, checked)))
        .collect();
    let order = parent_first(tip, |id| read.get(&id).map(|(p, _)| p.as_slice()));
    Ok((order, read))
}

/// Read every commit reachable from `tip`, passing them on in chunks.
fn discover(
    repo: &Repo,
    tip: Oid,
    mut emit: impl FnMut(Vec<(Oid, RawCommit)>),
) -> Result<(), AuditError> {
    let mut seen: HashSet<Oid> = HashSet::new();
    let mut stack = vec![tip];
    let mut chunk = Vec::with_capacity(CHUNK);
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        let commit = chain::read_commit(repo, id).map_err(|problem| AuditError::Chain {
            commit: id,
            problem,
        })?;
        stack.extend(commit.parents.iter().filter(|p| !seen.contains(p)));
        chunk.push((id, commit));
        if chunk.len() == CHUNK {
            emit(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK)));
        }
    }
    if !chunk.is_empty() {
        emit(chunk);
    }
    Ok(())
}

/// The commits reachable from `tip` (as far as `parents` knows them),
/// each after all of its parents.
fn parent_first<'a>(tip: Oid, parents: impl Fn(Oid) -> Option<&'a [Oid]>) -> Vec<Oid> {
    let mut order = Vec::new();
    let mut done: HashSet<Oid> = HashSet::new();
    let mut stack: Vec<(Oid, bool)> = vec![(tip, false)];
    while let Some((id, expanded)) = stack.pop() {
        if expanded {
            if done.insert(id) {
                order.push(id);
            }
            continue;
        }
        if done.contains(&id) {
            continue;
        }
        let Some(ps) = parents(id) else { continue };
        stack.push((id, true));
        stack.extend(
            ps.iter()
                .rev()
                .filter(|p| !done.contains(*p))
                .map(|p| (*p, false)),
        );
    }
    order
}

/// Decompressed public keys, by their 32 bytes (a chain has few signers),
/// with their fingerprints and OpenSSH forms.
#[derive(Default)]
struct KeyCache(HashMap<[u8; 32], Rc<Signer>>);

struct Signer {
    key: ed25519_dalek::VerifyingKey,
    fingerprint: String,
    openssh: String,
}

/// A well-formed signature, not yet checked.
struct Pending {
    signer: Rc<Signer>,
    signed: Vec<u8>,
    signature: ed25519_dalek::Signature,
}

/// Signatures checked per batch: batch verification costs about half as
/// much per signature; a batch that fails is checked one by one to name
/// the bad entries.
const BATCH: usize = 64;

/// Read the entries of `commits` and check their signatures.
fn check_chunk(
    repo: &Repo,
    commits: Vec<(Oid, RawCommit)>,
    progress: &Progress,
) -> Vec<(Oid, Vec<Oid>, Checked)> {
    let mut keys = KeyCache::default();
    let mut checked = Vec::with_capacity(commits.len());
    let mut pending: Vec<(usize, Pending)> = Vec::new();
    for (id, commit) in commits {
        progress.step();
        let mut problems = Vec::new();
        let entry = chain::read_entry(repo, commit.tree)
            .map_err(|e| problems.push(e.to_string()))
            .ok();
        match &commit.signature {
            None => problems.push("unsigned entry (no gpgsig header)".into()),
            Some(pem) => match parse_signature(pem, &commit.payload, &mut keys) {
                Ok(p) => pending.push((checked.len(), p)),
                Err(e) => problems.push(e),
            },
        }
        checked.push((
            id,
            commit.parents,
            Checked {
                entry,
                signer: None,
                problems,
            },
        ));
    }
    for batch in pending.chunks(BATCH) {
        let messages: Vec<&[u8]> = batch.iter().map(|(_, p)| p.signed.as_slice()).collect();
        let signatures: Vec<_> = batch.iter().map(|(_, p)| p.signature).collect();
        let keys: Vec<_> = batch.iter().map(|(_, p)| p.signer.key).collect();
        let all_good = ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok();
        for (i, p) in batch {
            if all_good || p.signer.key.verify_strict(&p.signed, &p.signature).is_ok() {
                checked[*i].2.signer =
                    Some((p.signer.fingerprint.clone(), p.signer.openssh.clone()));
            } else {
                checked[*i].2.problems.push(format!(
                    "bad signature by {}: the entry or its commit was changed after signing",
                    p.signer.fingerprint
                ));
            }
        }
    }
    checked
}

/// Parse an SSHSIG over `payload` (namespace, key type, parameters) into
/// what the signature check needs.
fn parse_signature(pem: &str, payload: &[u8], keys: &mut KeyCache) -> Result<Pending, String> {
    let sig = SshSig::from_pem(pem.trim_end())
        .map_err(|e| format!("the signature is not an SSH signature ({e})"))?;
    if sig.namespace() != NAMESPACE {
        return Err(format!(
            "the signature's namespace is {:?}, not {NAMESPACE:?}",
            sig.namespace()
        ));
    }
    let Some(public) = sig.public_key().ed25519() else {
        return Err(format!(
            "the signature is made with a {} key; only ed25519 signers are accepted",
            sig.algorithm()
        ));
    };
    if !sig.reserved().is_empty() || !matches!(sig.hash_alg(), HashAlg::Sha512 | HashAlg::Sha256) {
        return Err("unsupported SSH signature parameters".into());
    }
    let signer = match keys.0.entry(public.0) {
        std::collections::hash_map::Entry::Occupied(known) => known.get().clone(),
        std::collections::hash_map::Entry::Vacant(slot) => {
            let key = ed25519_dalek::VerifyingKey::from_bytes(&public.0)
                .map_err(|_| "the signature's public key is invalid".to_owned())?;
            if key.is_weak() {
                return Err("the signature's public key is a weak (small-order) key".into());
            }
            let fingerprint = sig.public_key().fingerprint(HashAlg::Sha256).to_string();
            let openssh = ssh_key::PublicKey::new(sig.public_key().clone(), "")
                .to_openssh()
                .map_err(|e| e.to_string())?;
            slot.insert(Rc::new(Signer {
                key,
                fingerprint,
                openssh,
            }))
            .clone()
        }
    };
    let signed =
        SshSig::signed_data(NAMESPACE, sig.hash_alg(), payload).map_err(|e| e.to_string())?;
    let signature = ed25519_dalek::Signature::from_slice(sig.signature_bytes())
        .map_err(|_| "the signature is malformed".to_owned())?;
    Ok(Pending {
        signer,
        signed,
        signature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::chain::{write_entry, NewEntry};
    use crate::audit::lab::Lab;
    use serde_json::Map;

    fn fingerprints(report: &Report) -> Vec<&str> {
        report
            .signers
            .iter()
            .map(|s| s.fingerprint.as_str())
            .collect()
    }

    /// After a `signer-remove`, an entry signed by the removed signer is a
    /// finding naming the removal; the ones it signed before stay valid.
    #[test]
    fn a_removed_signer_signs_nothing_valid_after_its_removal() {
        let lab = Lab::new();
        let added = lab.start();
        let before = lab.seal(&lab.bea, added);
        let removal = lab.remove(&lab.ada, before, &lab.bea);
        let report = lab.verify(removal);
        assert!(report.ok(), "{:?}", report.findings);
        assert_eq!(fingerprints(&report), [lab.ada.fingerprint()]);
        assert_eq!(
            report.removed,
            [RemovedSigner {
                fingerprint: lab.bea.fingerprint().to_owned(),
                removed_by: removal,
                seq: 4,
            }]
        );

        let after = lab.seal(&lab.bea, removal);
        let report = lab.verify(after);
        assert_eq!(report.findings.len(), 1, "{:?}", report.findings);
        assert_eq!(report.findings[0].commit, Some(after));
        assert_eq!(
            report.findings[0].reason,
            format!(
                "signed by {}, removed as a signer by entry seq 4 ({removal})",
                lab.bea.fingerprint()
            )
        );

        // Added again, it is trusted again (and no longer listed removed).
        let again = lab.add(&lab.ada, removal, &lab.bea);
        let report = lab.verify(lab.seal(&lab.bea, again));
        assert!(report.ok(), "{:?}", report.findings);
        assert!(report.removed.is_empty());
        assert_eq!(
            fingerprints(&report),
            [lab.ada.fingerprint(), lab.bea.fingerprint()]
        );
    }

    /// A signer may remove itself, and the root may be removed: the root
    /// entry stays valid and stays what `--trust` pins.
    #[test]
    fn the_root_signer_can_be_removed_and_stays_the_pinned_root() {
        let lab = Lab::new();
        let added = lab.start();
        let removal = lab.remove(&lab.ada, added, &lab.ada);
        let tip = lab.seal(&lab.bea, removal);
        let pinned = Options {
            trust: Some(lab.ada.fingerprint().to_owned()),
            ..Options::default()
        };
        let report = verify(&lab.repo, tip, &pinned).unwrap();
        assert!(report.ok(), "{:?}", report.findings);
        assert_eq!(report.root.as_deref(), Some(lab.ada.fingerprint()));
        assert_eq!(fingerprints(&report), [lab.bea.fingerprint()]);
        let late = lab.seal(&lab.ada, tip);
        let report = verify(&lab.repo, late, &pinned).unwrap();
        assert_eq!(report.findings.len(), 1, "{:?}", report.findings);
        assert!(report.findings[0]
            .reason
            .contains("removed as a signer by entry seq 3"));
    }

    /// Diverged chains: trust at an entry comes from its ancestors. The
    /// removed signer's entry on the side that had not seen the removal
    /// stays valid; after the merge the removal holds, and the merge does
    /// not bring the stale trust of the other side back.
    #[test]
    fn a_removal_on_one_side_of_a_merge_holds_after_it() {
        let lab = Lab::new();
        let base = lab.start();
        let removed = lab.remove(&lab.ada, base, &lab.bea);
        let unaware = lab.seal(&lab.bea, base);
        for (ours, theirs) in [(removed, unaware), (unaware, removed)] {
            let merge = lab.merge(&lab.ada, ours, theirs);
            let report = lab.verify(merge);
            assert!(report.ok(), "{:?}", report.findings);
            assert_eq!(fingerprints(&report), [lab.ada.fingerprint()]);
            let after = lab.seal(&lab.bea, merge);
            let report = lab.verify(after);
            assert_eq!(report.findings.len(), 1, "{:?}", report.findings);
            assert_eq!(report.findings[0].commit, Some(after));
            assert!(report.findings[0]
                .reason
                .contains("removed as a signer by entry seq 3"));
        }
        // The removed signer cannot merge the chains itself.
        let report = lab.verify(lab.merge(&lab.bea, unaware, removed));
        assert_eq!(report.findings.len(), 1, "{:?}", report.findings);
        assert!(report.findings[0].reason.contains("removed as a signer"));
    }

    /// A side that removed a signer and added it again after the removal
    /// holds fresh trust that survives a merge with a side that never saw
    /// the removal; a re-add that did not see every removal (one made
    /// concurrently on the other side) does not.
    #[test]
    fn a_merge_keeps_trust_only_from_a_side_that_saw_every_removal() {
        let lab = Lab::new();
        let base = lab.start();
        let readded = lab.add(&lab.ada, lab.remove(&lab.ada, base, &lab.bea), &lab.bea);
        let stale = lab.seal(&lab.bea, base);
        let merge = lab.merge(&lab.ada, stale, readded);
        let report = lab.verify(lab.seal(&lab.bea, merge));
        assert!(report.ok(), "{:?}", report.findings);

        // cy, trusted, removes bea on another side meanwhile.
        let with_cy = lab.add(&lab.ada, base, &lab.cy);
        let other_removal = lab.remove(&lab.cy, with_cy, &lab.bea);
        let merge = lab.merge(&lab.ada, readded, other_removal);
        let report = lab.verify(merge);
        assert!(report.ok(), "{:?}", report.findings);
        assert_eq!(
            fingerprints(&report),
            [lab.ada.fingerprint(), lab.cy.fingerprint()]
        );
        assert_eq!(report.removed.len(), 1);
        assert_eq!(report.removed[0].removed_by, other_removal);
        let report = lab.verify(lab.seal(&lab.bea, merge));
        assert_eq!(report.findings.len(), 1, "{:?}", report.findings);
    }

    /// A chain longer than a batch and a chunk, with one entry whose
    /// signature was made over other bytes: exactly that entry is named.
    #[test]
    fn a_bad_signature_among_many_is_named() {
        let lab = Lab::new();
        let (repo, signer) = (&lab.repo, &lab.ada);
        let mut tip: Option<Oid> = None;
        let mut forged = None;
        for seq in 1..=300u64 {
            let event = if seq == 1 { "init" } else { "seal" };
            let parents: Vec<Oid> = tip.into_iter().collect();
            let new = NewEntry {
                event,
                data: Map::new(),
            };
            let id = write_entry(repo, signer, &parents, seq, &new).unwrap();
            tip = Some(if seq == 200 {
                // Same entry, signature over something else.
                let raw = chain::read_commit(repo, id).unwrap();
                let buffer = String::from_utf8(raw.payload).unwrap();
                let other = signer.sign(b"something else").unwrap();
                let bad = repo.write_signed_commit(&buffer, other.trim_end()).unwrap();
                forged = Some(bad);
                bad
            } else {
                id
            });
        }
        let report = verify(repo, tip.unwrap(), &Options::default()).unwrap();
        assert_eq!(report.entries, 300);
        assert_eq!(report.findings.len(), 1, "{:?}", report.findings);
        assert_eq!(report.findings[0].commit, forged);
        assert!(report.findings[0].reason.contains("bad signature"));
    }
}
