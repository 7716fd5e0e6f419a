//! Verifying the chain (docs/audit.md): every entry's SSH signature, that
//! its signer was trusted at that point of the chain, the entry schema,
//! sequence numbers along parents, and optionally that an old tip is still
//! an ancestor. Needs no private key.
//!
//! Speed: the commits are read in one pass (to learn the graph); reading
//! each entry and checking its signature, the costly part, runs on every
//! core, each thread with its own repository handle; trust and sequence
//! checks then run in parent-first order.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;

use ssh_key::{HashAlg, SshSig};

use super::chain::{self, RawCommit};
use super::entry::{self, Entry};
use super::signer::{self, NAMESPACE};
use super::AuditError;
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
}

impl Report {
    pub fn ok(&self) -> bool {
        self.findings.is_empty()
    }
}

/// One entry, read and its signature checked (the parallel part).
struct Checked {
    entry: Option<Entry>,
    /// Fingerprint and public key of a valid signature.
    signer: Option<(String, String)>,
    problems: Vec<String>,
}

/// Verify the chain ending at `tip`.
pub fn verify(repo: &Repo, tip: Oid, options: &Options) -> Result<Report, AuditError> {
    let mut findings = Vec::new();
    let (order, commits) = walk(repo, tip)?;
    let checked = check_all(repo, &order, &commits)?;

    let index: HashMap<Oid, usize> = order.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let mut seqs: Vec<Option<u64>> = vec![None; order.len()];
    // Signers trusted *below* each entry (from its ancestors), shared
    // between entries while nothing changes.
    let mut trusted_after: Vec<Rc<BTreeMap<String, TrustedSigner>>> =
        Vec::with_capacity(order.len());
    let mut root: Option<Oid> = None;

    for (i, id) in order.iter().enumerate() {
        let commit = &commits[id];
        let check = &checked[i];
        let mut problems = check.problems.clone();
        let parents: Vec<usize> = commit
            .parents
            .iter()
            .filter_map(|p| index.get(p).copied())
            .collect();

        // Trust inherited from the parents.
        let mut trusted: Rc<BTreeMap<String, TrustedSigner>> = match parents.as_slice() {
            [] => Rc::new(BTreeMap::new()),
            [one] => trusted_after[*one].clone(),
            many => {
                let mut merged = BTreeMap::new();
                for p in many {
                    for (k, v) in trusted_after[*p].iter() {
                        merged.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                }
                Rc::new(merged)
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
            if commit.parents.is_empty() {
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
                    match &options.trust {
                        Some(pinned) if pinned != fingerprint => problems.push(format!(
                            "the root entry is signed by {fingerprint}, not the pinned {pinned}"
                        )),
                        _ => {
                            let mut roots = BTreeMap::new();
                            roots.insert(
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
                    }
                }
            } else if entry.event == entry::EVENT_INIT {
                problems.push("an `init` entry that is not the chain's first".into());
            }
            if !trusted.contains_key(fingerprint) {
                problems.push(format!(
                    "signed by {fingerprint}, which is not a trusted signer at this point of the chain (add it with `git seal audit signer add`)"
                ));
            } else if entry.event == entry::EVENT_SIGNER_ADD && problems.is_empty() {
                match signer_added(entry, *id) {
                    Ok(added) => {
                        Rc::make_mut(&mut trusted)
                            .entry(added.fingerprint.clone())
                            .or_insert(added);
                    }
                    Err(e) => problems.push(e),
                }
            }
            // Descendants are numbered against what the entry claims, even
            // if it has other problems (which are reported on their own).
            seqs[i] = Some(entry.seq);
        }
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

    let mut signers: Vec<TrustedSigner> = trusted_after
        .last()
        .map(|t| t.values().cloned().collect())
        .unwrap_or_default();
    signers.sort_by_key(|s| index.get(&s.added_by).copied());
    Ok(Report {
        tip,
        entries: order.len(),
        findings,
        signers,
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
    let mut order = Vec::new();
    let mut done: HashSet<Oid> = HashSet::new();
    // Iterative post-order DFS: a commit is emitted after all its parents.
    let mut stack: Vec<(Oid, bool)> = vec![(tip, false)];
    while let Some((id, expanded)) = stack.pop() {
        if expanded {
            if done.insert(id) {
                order.push(id);
            }
            continue;
        }
        if done.contains(&id) || commits.contains_key(&id) {
            continue;
        }
        let commit = match chain::read_commit(repo, id) {
            Ok(c) => c,
            Err(reason) => {
                return Err(AuditError::Chain {
                    commit: id,
                    problem: format!("cannot read the chain: {reason}"),
                });
            }
        };
        stack.push((id, true));
        for parent in commit.parents.iter().rev() {
            if !done.contains(parent) && !commits.contains_key(parent) {
                stack.push((*parent, false));
            }
        }
        commits.insert(id, commit);
    }
    Ok((order, commits))
}

/// Read entries and check signatures on all cores.
fn check_all(
    repo: &Repo,
    order: &[Oid],
    commits: &HashMap<Oid, RawCommit>,
) -> Result<Vec<Checked>, AuditError> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    if threads == 1 || order.len() < 64 {
        return Ok(check_chunk(repo, order, commits));
    }
    let chunk = order.len().div_ceil(threads);
    let handles: Vec<Repo> = (0..threads)
        .map(|_| repo.reopen())
        .collect::<Result<_, _>>()?;
    let results: Vec<Vec<Checked>> = std::thread::scope(|scope| {
        let workers: Vec<_> = order
            .chunks(chunk)
            .zip(handles)
            .map(|(ids, handle)| scope.spawn(move || check_chunk(&handle, ids, commits)))
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("verify thread"))
            .collect()
    });
    Ok(results.into_iter().flatten().collect())
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

/// Read the entries of `ids` and check their signatures.
fn check_chunk(repo: &Repo, ids: &[Oid], commits: &HashMap<Oid, RawCommit>) -> Vec<Checked> {
    let mut keys = KeyCache::default();
    let mut checked = Vec::with_capacity(ids.len());
    let mut pending: Vec<(usize, Pending)> = Vec::new();
    for id in ids {
        let commit = &commits[id];
        let mut problems = Vec::new();
        let entry = chain::read_entry(repo, commit.tree)
            .map_err(|e| problems.push(e))
            .ok();
        match &commit.signature {
            None => problems.push("unsigned entry (no gpgsig header)".into()),
            Some(pem) => match parse_signature(pem, &commit.payload, &mut keys) {
                Ok(p) => pending.push((checked.len(), p)),
                Err(e) => problems.push(e),
            },
        }
        checked.push(Checked {
            entry,
            signer: None,
            problems,
        });
    }
    for batch in pending.chunks(BATCH) {
        let messages: Vec<&[u8]> = batch.iter().map(|(_, p)| p.signed.as_slice()).collect();
        let signatures: Vec<_> = batch.iter().map(|(_, p)| p.signature).collect();
        let keys: Vec<_> = batch.iter().map(|(_, p)| p.signer.key).collect();
        let all_good = ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok();
        for (i, p) in batch {
            if all_good || p.signer.key.verify_strict(&p.signed, &p.signature).is_ok() {
                checked[*i].signer = Some((p.signer.fingerprint.clone(), p.signer.openssh.clone()));
            } else {
                checked[*i].problems.push(format!(
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
