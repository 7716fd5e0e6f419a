//! Re-wrapping and re-encrypting envelopes of the index, on every core.
//!
//! Re-wrapping keeps an envelope's nonce, ciphertext, tag and aad byte for
//! byte, keeps the wrapped DEK of every recipient that stays, and wraps the
//! DEK afresh to each new one: only `recipients` changes. Re-encrypting
//! opens the envelope and seals the plaintext again under a fresh DEK (what
//! revocation needs: the old DEK no longer opens the new envelope).
//!
//! Wraps to each target KEK are prepared from a fixed-base table of its
//! public point (one per KEK, shared by the workers), and the new blobs are
//! written as one pack rather than thousands of loose objects: at 10,000
//! envelopes those two are most of the cost.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::pack::{self, PackedBlob};
use crate::envelope::{self, Envelope, Recipient};
use crate::keys::sealing::{decrypt, seal_prepared, unwrap_dek, wrap_to, PendingWrap};
use crate::keys::x25519::WrapPreparer;
use crate::keys::{KeyProvider, OpenError, SealError, WrapTarget};
use crate::kid::Kid;
use crate::repo::{Oid, Repo, RepoError};

/// What to do with one envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Rewrap,
    Reencrypt,
}

/// An index entry to look at: its path, blob and the recipients it should
/// have.
pub(crate) struct Item {
    pub path: String,
    pub id: Oid,
    pub targets: Vec<WrapTarget>,
}

#[derive(Debug, thiserror::Error)]
pub enum RekeyError {
    #[error("cannot open {path} (wrapped to {}): {source}", kids.join(", "))]
    Open {
        path: String,
        kids: Vec<String>,
        #[source]
        source: OpenError,
    },
    #[error("cannot wrap {path}: {source}")]
    Seal {
        path: String,
        #[source]
        source: SealError,
    },
    #[error("{path} is not a well-formed envelope: {source}")]
    Format {
        path: String,
        #[source]
        source: envelope::FormatError,
    },
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("{count} envelopes could not be re-keyed; the first: {first}")]
    Many {
        count: usize,
        #[source]
        first: Box<RekeyError>,
    },
}

/// Which envelopes to change, and how: given the kids an envelope is
/// wrapped to and the kids it should be wrapped to.
pub(crate) type Decide<'a> = dyn Fn(&[Kid], &[Kid]) -> Option<Mode> + Sync + 'a;

/// The envelopes changed, as (path, new blob, what was done).
pub(crate) type Changed = Vec<(String, Oid, Mode)>;

/// Envelopes up to this size go into the pack; larger ones are written as
/// loose objects by the worker, so the pack never holds large files in
/// memory.
const PACKED_MAX: usize = 1 << 20;

/// A new envelope: its blob written already, or ready for the pack.
enum Blob {
    Written(Oid),
    Packed(PackedBlob),
}

/// Fixed-base tables of the X25519 targets' public points, by kid.
struct Preparers(HashMap<crate::kid::Kid, WrapPreparer>);

impl Preparers {
    fn for_items(items: &[Item]) -> Preparers {
        let mut map = HashMap::new();
        for target in items.iter().flat_map(|i| &i.targets) {
            if let WrapTarget::X25519 { kid, public } = target {
                map.entry(kid.clone())
                    .or_insert_with(|| WrapPreparer::new(kid, public));
            }
        }
        Preparers(map)
    }

    fn prepare(&self, target: &WrapTarget) -> Result<PendingWrap, SealError> {
        match self.0.get(target.kid()) {
            Some(preparer) => Ok(preparer.prepare()?.into()),
            None => target.prepare(),
        }
    }

    fn wrap(&self, target: &WrapTarget, dek: &crate::secret::Dek) -> Result<Recipient, SealError> {
        match self.0.get(target.kid()) {
            Some(preparer) => Ok(preparer.prepare()?.wrap(dek)),
            None => wrap_to(target, dek),
        }
    }
}

/// Run `work` over `items` on every core (at most eight threads, each with
/// its own handle on the repository: libgit2's is not shared between
/// threads), one step of `progress` each; the results come in no order.
fn on_every_core<T: Sync, R: Send>(
    repo: &Repo,
    items: &[T],
    progress: &crate::progress::Progress,
    work: impl Fn(&Repo, &T) -> R + Sync,
) -> Result<Vec<R>, RepoError> {
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::with_capacity(items.len()));
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 8)
        .min(items.len().max(1));
    let repos = (0..workers)
        .map(|_| repo.reopen())
        .collect::<Result<Vec<Repo>, RepoError>>()?;
    std::thread::scope(|scope| {
        for repo in repos {
            let (next, results, work) = (&next, &results, &work);
            scope.spawn(move || loop {
                let at = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(at) else { break };
                let outcome = work(&repo, item);
                progress.step();
                results.lock().expect("results").push(outcome);
            });
        }
    });
    progress.finish();
    Ok(results.into_inner().expect("results"))
}

/// Index envelopes that do not open here, found before anything changes:
/// each distinct blob once, with every path that holds it.
#[derive(Debug)]
pub(crate) struct Unopened {
    pub id: Oid,
    pub paths: Vec<String>,
    pub error: RekeyError,
}

/// Before a step changes anything: open every distinct envelope among
/// `paths` that `picks` chooses by the kids it is wrapped to, as re-keying
/// it would (the DEK unwrapped here, the content's tag checked; nothing is
/// decrypted), on every core. Returns the blobs that opened, which
/// [`rekey`] then need not check again, and those that did not, by path.
pub(crate) fn prove(
    repo: &Repo,
    keys: &dyn KeyProvider,
    paths: &[(String, Oid)],
    picks: &(dyn Fn(&[Kid]) -> bool + Sync),
    progress: &crate::progress::Progress,
) -> Result<(HashSet<Oid>, Vec<Unopened>), RepoError> {
    let mut at: HashMap<Oid, Vec<String>> = HashMap::new();
    let mut distinct: Vec<(Oid, String)> = Vec::new();
    for (path, id) in paths {
        let holders = at.entry(*id).or_default();
        if holders.is_empty() {
            distinct.push((*id, path.clone()));
        }
        holders.push(path.clone());
    }
    let outcomes = on_every_core(repo, &distinct, progress, |repo, (id, path)| {
        (*id, opens(repo, keys, *id, path, picks))
    })?;
    let mut proven = HashSet::new();
    let mut failed = Vec::new();
    for (id, outcome) in outcomes {
        match outcome {
            Ok(true) => {
                proven.insert(id);
            }
            Ok(false) => {}
            Err(RekeyError::Repo(e)) => return Err(e),
            Err(error) => failed.push(Unopened {
                id,
                paths: at.remove(&id).unwrap_or_default(),
                error,
            }),
        }
    }
    failed.sort_by(|a, b| a.paths.cmp(&b.paths));
    Ok((proven, failed))
}

/// Whether blob `id` at `path` is an envelope that `picks` chooses and that
/// opens here (`Ok(false)`: not chosen, or not an envelope).
fn opens(
    repo: &Repo,
    keys: &dyn KeyProvider,
    id: Oid,
    path: &str,
    picks: &(dyn Fn(&[Kid]) -> bool + Sync),
) -> Result<bool, RekeyError> {
    let text = repo.blob(id)?;
    let Some(env) = parse(&text, path)? else {
        return Ok(false);
    };
    let has: Vec<Kid> = env.recipients.iter().map(|r| r.kid.clone()).collect();
    if !picks(&has) {
        return Ok(false);
    }
    let open_err = |source| RekeyError::Open {
        path: path.to_owned(),
        kids: has.iter().map(|k| k.to_string()).collect(),
        source,
    };
    let (kid, dek) = unwrap_dek(&env, keys).map_err(open_err)?;
    envelope::verify(&env, &dek).map_err(|_| open_err(OpenError::Content { kid }))?;
    Ok(true)
}

/// The envelope in `text`, if it is one. Any JSON layout of an envelope is
/// re-keyed; text that fails to parse is refused only if it claims to be
/// one (else it is plaintext, which `check` reports).
fn parse(text: &[u8], path: &str) -> Result<Option<Envelope>, RekeyError> {
    if !envelope::format::might_be_envelope(text) {
        return Ok(None);
    }
    match envelope::parse(text) {
        Ok(env) => Ok(Some(env)),
        Err(_) if !envelope::format::claims_envelope(text) => Ok(None),
        Err(source) => Err(RekeyError::Format {
            path: path.to_owned(),
            source,
        }),
    }
}

/// For each item whose envelope `decide` picks (given the kids it is
/// wrapped to and the kids it should be), re-wrap or re-encrypt it to its
/// targets with a DEK that `keys` unwraps, and write the new blob. Items
/// whose blob is not an envelope are left alone (`check` reports them).
/// A re-wrapped envelope's content is checked first, unless it is among
/// `proven` (checked by [`prove`] in this process).
/// Nothing is changed in the index here; any failure fails the whole run.
pub(crate) fn rekey(
    repo: &Repo,
    keys: &dyn KeyProvider,
    items: Vec<Item>,
    decide: &Decide<'_>,
    proven: &HashSet<Oid>,
    progress: &crate::progress::Progress,
) -> Result<Changed, RekeyError> {
    let preparers = Preparers::for_items(&items);
    let outcomes = on_every_core(repo, &items, progress, |repo, item| {
        one(repo, keys, &preparers, item, decide, proven)
    })?;
    let mut done = Vec::new();
    let mut errors = Vec::new();
    for outcome in outcomes {
        match outcome {
            Ok(Some(changed)) => done.push(changed),
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        let count = errors.len();
        let first = errors.swap_remove(0);
        return Err(if count == 1 {
            first
        } else {
            RekeyError::Many {
                count,
                first: Box::new(first),
            }
        });
    }
    let mut changed = write_pack(repo, done)?;
    changed.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(changed)
}

/// Write the packed envelopes as one pack, and return every blob id.
fn write_pack(repo: &Repo, done: Vec<(String, Blob, Mode)>) -> Result<Changed, RekeyError> {
    let mut changed = Vec::with_capacity(done.len());
    let mut packed = Vec::new();
    for (path, blob, mode) in done {
        let id = match blob {
            Blob::Written(id) => id,
            Blob::Packed(blob) => {
                let id = blob.id;
                packed.push(blob);
                id
            }
        };
        changed.push((path, id, mode));
    }
    pack::write(repo, &packed)?;
    Ok(changed)
}

fn one(
    repo: &Repo,
    keys: &dyn KeyProvider,
    preparers: &Preparers,
    item: &Item,
    decide: &Decide<'_>,
    proven: &HashSet<Oid>,
) -> Result<Option<(String, Blob, Mode)>, RekeyError> {
    let text = repo.blob(item.id)?;
    let Some(env) = parse(&text, &item.path)? else {
        return Ok(None);
    };
    let has: Vec<Kid> = env.recipients.iter().map(|r| r.kid.clone()).collect();
    let wants: Vec<Kid> = item.targets.iter().map(|t| t.kid().clone()).collect();
    let Some(mode) = decide(&has, &wants) else {
        return Ok(None);
    };
    let (kid, dek) = unwrap_dek(&env, keys).map_err(|source| RekeyError::Open {
        path: item.path.clone(),
        kids: has.iter().map(|k| k.to_string()).collect(),
        source,
    })?;
    let seal_err = |source| RekeyError::Seal {
        path: item.path.clone(),
        source,
    };
    let new = match mode {
        Mode::Rewrap => {
            let mut recipients: Vec<Recipient> = Vec::with_capacity(item.targets.len());
            for target in &item.targets {
                match env.recipients.iter().find(|r| r.kid == *target.kid()) {
                    Some(kept) => recipients.push(kept.clone()),
                    None => recipients.push(preparers.wrap(target, &dek).map_err(seal_err)?),
                }
            }
            // Prove the DEK opens the content before changing who holds it.
            if !proven.contains(&item.id) {
                envelope::verify(&env, &dek).map_err(|_| RekeyError::Open {
                    path: item.path.clone(),
                    kids: has.iter().map(|k| k.to_string()).collect(),
                    source: OpenError::Content { kid: kid.clone() },
                })?;
            }
            Envelope { recipients, ..env }
        }
        Mode::Reencrypt => {
            let aad = env.aad.clone();
            let plaintext = decrypt(env, &kid, &dek).map_err(|source| RekeyError::Open {
                path: item.path.clone(),
                kids: has.iter().map(|k| k.to_string()).collect(),
                source,
            })?;
            let wraps = item
                .targets
                .iter()
                .map(|t| preparers.prepare(t))
                .collect::<Result<Vec<_>, _>>()
                .map_err(seal_err)?;
            seal_prepared(plaintext, aad, wraps).map_err(seal_err)?
        }
    };
    let text = envelope::write(&new);
    let blob = if text.len() > PACKED_MAX {
        Blob::Written(repo.write_blob(&text)?)
    } else {
        Blob::Packed(PackedBlob::new(&text)?)
    };
    Ok(Some((item.path.clone(), blob, mode)))
}
