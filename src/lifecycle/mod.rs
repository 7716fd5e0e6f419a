//! The key lifecycle (SPEC §3a): KEK versions, rotation, recipients,
//! removal and crypto-erasure. Each command changes the committed KEK
//! records and policy, re-keys the envelopes of the index, and stages both
//! in one atomic index update ([`index`]); the user commits the result.
//!
//! A journal in the git dir (`seal/lifecycle.json`) names the step under
//! way before anything changes, so a run killed at any moment is finished
//! by running the same command again: re-keying is idempotent (an envelope
//! already wrapped as it should be is left alone), records and policy are
//! written whole, and a key is archived or erased only after the index
//! no longer needs it.

pub mod index;
pub mod kek;
pub(crate) mod pack;
pub mod recipients;
pub(crate) mod rekey;
pub mod rotate;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::atomic_file::{self, WriteError};
use crate::audit::AuditError;
use crate::envelope;
use crate::keys::record::{self, KekRecord, RecordError, Status};
use crate::keys::{KeyError, KeyProvider, WrapTarget};
use crate::kid::Kid;
use crate::policy::{self, Policy, PolicyError};
use crate::progress::Progress;
use crate::repo::{Oid, Repo, RepoError};
use crate::workspace::{known_kids, Workspace, WorkspaceError};

pub use index::IndexError;
pub use rekey::RekeyError;

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Rekey(#[from] RekeyError),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Git(#[from] crate::repo::command::GitCommandError),
    #[error("{kid} is not a KEK listed in .seal/keys/ (`git seal kek list` shows them)")]
    UnknownKid { kid: Kid },
    #[error("`{running}` was interrupted and is not finished; run it again to finish it before `{wanted}`")]
    Interrupted { running: String, wanted: String },
    #[error("the index has unresolved merge conflicts; resolve them (or `git merge --abort`) and run the command again")]
    Conflicts,
    #[error("the work tree is locked (`git seal lock`); run `git seal unlock` first, so that re-keyed envelopes and the work tree agree")]
    Locked,
    #[error("cannot read the journal {}: {source}", path.display())]
    Journal {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Unopened(Box<rotate::Unopened>),
}

/// A lifecycle step under way, in `<git dir>/seal/lifecycle.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Journal {
    /// The command, as the user runs it again to finish (`git seal rotate
    /// --from k_… --to k_…`).
    pub command: String,
    /// `rotate`, `recipient-add`, `recipient-remove`, `kek-remove`.
    pub op: String,
    #[serde(default)]
    pub from: Option<Kid>,
    #[serde(default)]
    pub to: Option<Kid>,
    #[serde(default)]
    pub paths: Option<Vec<String>>,
    #[serde(default)]
    pub reencrypt: bool,
    /// The provider a rotation moves the clone to (`--provider`), when it
    /// is not the one the clone was set up with.
    #[serde(default)]
    pub provider: Option<String>,
    /// The record of the KEK this step made (public data only), so that a
    /// rerun finds it even where nothing else keeps it (a KMS-guarded KEK
    /// exists only as this record until the step writes it).
    #[serde(default)]
    pub made: Option<KekRecord>,
    /// What the index lock file holds while this step writes the index.
    pub token: String,
    /// Envelopes changed when the index was written (for the audit entry
    /// of a run that finishes after a kill).
    #[serde(default)]
    pub rewrapped: usize,
    #[serde(default)]
    pub reencrypted: usize,
}

impl Journal {
    pub(crate) fn new(op: &str, command: String) -> Journal {
        let mut token = [0u8; 16];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut token);
        Journal {
            command,
            op: op.to_owned(),
            from: None,
            to: None,
            paths: None,
            reencrypt: false,
            provider: None,
            made: None,
            token: format!("git-seal {}\n", hex::encode(token)),
            rewrapped: 0,
            reencrypted: 0,
        }
    }

    pub(crate) fn path(repo: &Repo) -> PathBuf {
        repo.common_dir().join("seal").join("lifecycle.json")
    }

    /// The step under way, if any. A journal that does not parse (torn by
    /// a crash mid-write cannot happen: it is written whole) is an error.
    pub(crate) fn load(repo: &Repo) -> Result<Option<Journal>, LifecycleError> {
        let path = Journal::path(repo);
        match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| LifecycleError::Journal {
                        path,
                        source: std::io::Error::other(e),
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(LifecycleError::Journal { path, source }),
        }
    }

    /// The step under way for `op`, refusing when another one is. What a
    /// kill left of it goes first: its index lock, and half-written
    /// records (`.git-seal-*` files beside `.seal/` files).
    pub(crate) fn resume(
        ws: &Workspace,
        op: &str,
        wanted: &str,
    ) -> Result<Option<Journal>, LifecycleError> {
        let repo = &ws.repo;
        match Journal::load(repo)? {
            Some(journal) if journal.op == op => {
                index::clear_stale_lock(repo, &journal.token)?;
                for dir in [".seal", record::KEYS_DIR] {
                    atomic_file::remove_stale_temp_files(&ws.root.join(dir));
                }
                Ok(Some(journal))
            }
            // `kek add` changes one record; what a kill left of it (its
            // lock) is cleared here and the rest is in the work tree.
            Some(journal) if journal.op == crate::audit::entry::EVENT_KEK_ADD => {
                index::clear_stale_lock(repo, &journal.token)?;
                Journal::finish(repo)?;
                Ok(None)
            }
            Some(journal) => Err(LifecycleError::Interrupted {
                running: journal.command,
                wanted: wanted.to_owned(),
            }),
            None => Ok(None),
        }
    }

    pub(crate) fn save(&self, repo: &Repo) -> Result<(), LifecycleError> {
        let path = Journal::path(repo);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| LifecycleError::Journal {
                path: dir.to_owned(),
                source,
            })?;
        }
        let text = serde_json::to_vec_pretty(self).expect("journal serializes");
        atomic_file::write_private(&path, &text)?;
        Ok(())
    }

    pub(crate) fn finish(repo: &Repo) -> Result<(), LifecycleError> {
        let path = Journal::path(repo);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(LifecycleError::Journal { path, source }),
        }
    }
}

/// The version a new KEK record gets: one past the highest listed.
pub(crate) fn next_version(ws: &Workspace) -> u32 {
    ws.keks.iter().map(|k| k.version).max().unwrap_or(0) + 1
}

/// The lifecycle command that was interrupted here and is not finished
/// (run it again to finish it), if any.
pub fn interrupted(repo: &Repo) -> Option<String> {
    Journal::load(repo)
        .ok()
        .flatten()
        .filter(|j| j.op != crate::audit::entry::EVENT_KEK_ADD)
        .map(|j| j.command)
}

/// The committed key state a step moves to: KEK records and policy.
#[derive(Clone, Debug)]
pub(crate) struct KeyState {
    pub keks: Vec<KekRecord>,
    pub policy: policy::PolicyFile,
    /// The provider that wraps to KEKs inside an HSM (this clone's, or
    /// the one a rotation moves the repository to).
    pub wrapper: Arc<dyn KeyProvider>,
}

impl KeyState {
    pub(crate) fn of(ws: &Workspace) -> KeyState {
        KeyState {
            keks: ws.keks.clone(),
            policy: ws.policy.file.clone(),
            wrapper: ws.shared_keys(),
        }
    }

    pub(crate) fn record(&self, kid: &Kid) -> Option<&KekRecord> {
        self.keks.iter().find(|k| &k.kid == kid)
    }

    pub(crate) fn record_mut(&mut self, kid: &Kid) -> Result<&mut KekRecord, LifecycleError> {
        self.keks
            .iter_mut()
            .find(|k| &k.kid == kid)
            .ok_or_else(|| LifecycleError::UnknownKid { kid: kid.clone() })
    }

    /// The default recipients: every active KEK, in version order.
    pub(crate) fn actives(&self) -> Vec<Kid> {
        let mut active: Vec<&KekRecord> = self
            .keks
            .iter()
            .filter(|k| k.status == Status::Active)
            .collect();
        active.sort_by_key(|k| k.version);
        active.into_iter().map(|k| k.kid.clone()).collect()
    }

    /// The compiled policy (its scopes name only known kids).
    pub(crate) fn compiled(&self) -> Result<Policy, PolicyError> {
        let text = serde_json::to_string_pretty(&self.policy).expect("policy serializes");
        Policy::parse(&text, &known_kids(&self.keks))
    }

    /// Each path's targets under this state, by the same rule as
    /// [`Workspace::recipients_for`].
    pub(crate) fn items(
        &self,
        paths: Vec<(String, Oid)>,
    ) -> Result<Vec<rekey::Item>, LifecycleError> {
        let policy = self.compiled()?;
        let actives = self.actives();
        let mut items = Vec::with_capacity(paths.len());
        for (path, id) in paths {
            let kids = policy.recipients_for(&path).unwrap_or(&actives);
            let targets = kids
                .iter()
                .map(|kid| crate::workspace::target_among(&self.keks, kid, &self.wrapper))
                .collect::<Result<Vec<WrapTarget>, _>>()?;
            items.push(rekey::Item { path, id, targets });
        }
        Ok(items)
    }

    /// Write the records and policy that differ from `before` into the work
    /// tree (each file whole); returns their paths, to stage.
    pub(crate) fn write(&self, ws: &Workspace) -> Result<Vec<String>, LifecycleError> {
        let before = KeyState::of(ws);
        let mut written = Vec::new();
        // Records that become active first: a kill between two writes
        // must never leave the work tree with no active KEK, which every
        // command (the rerun that finishes this step among them) refuses.
        let mut order: Vec<&KekRecord> = self.keks.iter().collect();
        order.sort_by_key(|kek| kek.status != Status::Active);
        for kek in order {
            let on_disk = std::fs::read(
                ws.root
                    .join(record::KEYS_DIR)
                    .join(format!("{}.json", kek.kid)),
            )
            .ok();
            if before.record(&kek.kid) != Some(kek)
                || on_disk.as_deref() != Some(kek.to_text().as_bytes())
            {
                record::store(&ws.root, kek)?;
            }
            written.push(format!("{}/{}.json", record::KEYS_DIR, kek.kid));
        }
        if self.policy != before.policy || !ws.root.join(policy::PATH).exists() {
            let mut text = serde_json::to_string_pretty(&self.policy).expect("policy serializes");
            text.push('\n');
            atomic_file::write_shared(&ws.root.join(policy::PATH), text.as_bytes())?;
        }
        written.push(policy::PATH.to_owned());
        Ok(written)
    }
}

/// Re-key the index's sealed envelopes for `state` (those `decide`
/// picks; `proven`: blobs [`rekey::prove`] opened already), write `state`
/// to the work tree, and stage everything in one index update. Returns the
/// count re-wrapped and re-encrypted and the tree of the new index.
pub(crate) fn apply(
    ws: &Workspace,
    journal: &mut Journal,
    state: &KeyState,
    decide: &rekey::Decide<'_>,
    proven: &HashSet<Oid>,
    label: &'static str,
) -> Result<(usize, usize, Oid), LifecycleError> {
    if ws
        .repo
        .raw()
        .index()
        .map_err(IndexError::from)?
        .has_conflicts()
    {
        return Err(LifecycleError::Conflicts);
    }
    let items = state.items(ws.sealed_index_paths()?)?;
    let keys = crate::keys::for_opening(Some(ws.shared_keys()))?;
    let progress = Progress::new(label, items.len(), "envelopes");
    let changed = rekey::rekey(&ws.repo, &keys, items, decide, proven, &progress)?;
    let count = |mode| changed.iter().filter(|(_, _, m)| *m == mode).count();
    if !changed.is_empty() {
        journal.rewrapped = count(rekey::Mode::Rewrap);
        journal.reencrypted = count(rekey::Mode::Reencrypt);
    }
    journal.save(&ws.repo)?;
    let stage = state.write(ws)?;
    let replace: HashMap<String, Oid> = changed.into_iter().map(|(p, id, _)| (p, id)).collect();
    let tree = index::update(&ws.repo, &ws.root, &replace, &stage, &journal.token)?;
    Ok((journal.rewrapped, journal.reencrypted, tree))
}

/// The kids an envelope blob is wrapped to (`None`: not an envelope).
/// (`None` too when `id` is not a blob.)
pub(crate) fn kids_of(repo: &Repo, id: Oid) -> Result<Option<Vec<Kid>>, RepoError> {
    let kids = repo.with_raw(id, crate::repo::RawKind::Blob, |bytes| {
        if !envelope::format::might_be_envelope(bytes) {
            return None;
        }
        envelope::parse(bytes)
            .ok()
            .map(|env| env.recipients.into_iter().map(|r| r.kid).collect())
    })?;
    Ok(kids.flatten())
}

/// Where an envelope lives: HEAD's tree or the index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Place {
    Head,
    Index,
}

impl Place {
    pub fn as_str(self) -> &'static str {
        match self {
            Place::Head => "HEAD",
            Place::Index => "index",
        }
    }
}

/// An envelope of HEAD or the index: where, its path and blob, and the
/// kids it is wrapped to.
pub(crate) type Found = (Place, String, Oid, Vec<Kid>);

/// Every envelope of HEAD and the index (git-seal's own files aside).
pub(crate) fn envelopes_here(ws: &Workspace) -> Result<Vec<Found>, LifecycleError> {
    let mut found = Vec::new();
    let mut seen: HashMap<Oid, Option<Vec<Kid>>> = HashMap::new();
    let head = ws.repo.head_files()?;
    let index = ws.repo.index_blobs()?;
    for (place, files) in [(Place::Head, head), (Place::Index, index)] {
        for (path, id) in files {
            if crate::policy::is_exempt(&path) {
                continue;
            }
            let kids = match seen.get(&id) {
                Some(kids) => kids.clone(),
                None => {
                    let kids = kids_of(&ws.repo, id)?;
                    seen.insert(id, kids.clone());
                    kids
                }
            };
            if let Some(kids) = kids {
                found.push((place, path, id, kids));
            }
        }
    }
    Ok(found)
}
