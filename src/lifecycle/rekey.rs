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

use std::collections::HashMap;
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

/// For each item whose envelope `decide` picks (given the kids it is
/// wrapped to and the kids it should be), re-wrap or re-encrypt it to its
/// targets with a DEK that `keys` unwraps, and write the new blob. Items
/// whose blob is not an envelope are left alone (`check` reports them).
/// Nothing is changed in the index here; any failure fails the whole run.
pub(crate) fn rekey(
    repo: &Repo,
    keys: &dyn KeyProvider,
    items: Vec<Item>,
    decide: &Decide<'_>,
    progress: &crate::progress::Progress,
) -> Result<Changed, RekeyError> {
    let next = AtomicUsize::new(0);
    let results = Mutex::new((Vec::new(), Vec::new()));
    let preparers = Preparers::for_items(&items);
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 8)
        .min(items.len().max(1));
    // A libgit2 repository is not shared between threads: one each.
    let repos = (0..workers)
        .map(|_| repo.reopen())
        .collect::<Result<Vec<Repo>, RepoError>>()?;
    std::thread::scope(|scope| {
        for repo in repos {
            let (next, items, results, preparers) = (&next, &items, &results, &preparers);
            scope.spawn(move || loop {
                let at = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(at) else { break };
                let outcome = one(&repo, keys, preparers, item, decide);
                progress.step();
                let mut results = results.lock().expect("results");
                match outcome {
                    Ok(Some(done)) => results.0.push(done),
                    Ok(None) => {}
                    Err(e) => results.1.push(e),
                }
            });
        }
    });
    let (done, mut errors): (Vec<(String, Blob, Mode)>, Vec<RekeyError>) =
        results.into_inner().expect("results");
    progress.finish();
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
) -> Result<Option<(String, Blob, Mode)>, RekeyError> {
    let text = repo.blob(item.id)?;
    if !envelope::format::might_be_envelope(&text) {
        return Ok(None);
    }
    // Any JSON layout of an envelope is re-keyed; text that fails to parse
    // is refused only if it claims to be one (else it is plaintext, which
    // `check` reports).
    let env = match envelope::parse(&text) {
        Ok(env) => env,
        Err(_) if !envelope::format::claims_envelope(&text) => return Ok(None),
        Err(source) => {
            return Err(RekeyError::Format {
                path: item.path.clone(),
                source,
            })
        }
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
            let check = env.clone();
            decrypt(check, &kid, &dek).map_err(|source| RekeyError::Open {
                path: item.path.clone(),
                kids: has.iter().map(|k| k.to_string()).collect(),
                source,
            })?;
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
