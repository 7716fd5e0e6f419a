//! A repository set up for git-seal: its work tree, committed KEK metadata,
//! policy, and the key provider this clone was installed with.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::keys::record::{self, KekRecord, RecordError, Status};
use crate::keys::{self, KeyError, KeyProvider, ProviderInfo, WrapTarget};
use crate::kid::Kid;
use crate::policy::{self, Policy, PolicyError};
use crate::repo::{Repo, RepoError};

/// Local git config key recording the provider a clone was set up with.
pub const PROVIDER_KEY: &str = "seal.provider";

#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("{} is not set up for git-seal (no .seal/keys/); run `git seal init`", root.display())]
    NotInitialized { root: PathBuf },
    #[error(transparent)]
    Meta(#[from] RecordError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("cannot read {path}: {source}")]
    ReadPolicy {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("this clone is set up for the {provider} provider, which cannot serve {kid} ({custody} custody); git-seal will not fall back to another provider. Run `git seal init --provider {hint}` to set this clone up again")]
    InstallLock {
        provider: &'static str,
        kid: Kid,
        custody: String,
        hint: &'static str,
    },
    #[error(
        "{lock}. But a lifecycle command was interrupted here: run `{command}` to finish it first"
    )]
    Interrupted {
        lock: Box<WorkspaceError>,
        command: String,
    },
    #[error("no active KEK in .seal/keys/; run `git seal init`, or make a listed KEK a recipient with `git seal recipients add KID` (`git seal kek list` shows them)")]
    NoActiveKek,
    #[error("{kid} is named as a recipient but .seal/keys/{kid}.json has no usable public key")]
    NoPublicKey { kid: Kid },
    #[error("{kid} is a KEK inside an HSM: only the token wraps to it, and this clone is set up for the {provider} provider. Set a clone up with `git seal init --provider pkcs11` to seal files wrapped to it")]
    NeedsToken { kid: Kid, provider: &'static str },
}

#[derive(Debug)]
pub struct Workspace {
    pub repo: Repo,
    pub root: PathBuf,
    pub keks: Vec<KekRecord>,
    pub policy: Policy,
    pub provider: &'static ProviderInfo,
    keys: Arc<dyn KeyProvider>,
    /// `keys`, then the software keys held here: see [`Workspace::opener`].
    opener: std::sync::OnceLock<Arc<dyn KeyProvider>>,
    /// The index's paths that are not UTF-8, by their text: see
    /// [`Workspace::git_name`].
    odd_names: std::sync::OnceLock<HashMap<String, Vec<u8>>>,
}

impl Workspace {
    /// Open the project around `start`, failing if it is not set up.
    pub fn open(start: &Path) -> Result<Workspace, WorkspaceError> {
        Workspace::from_repo(Repo::discover(start)?)
    }

    /// Open the project a command was run in, as Git finds it: `GIT_DIR`
    /// and `GIT_WORK_TREE` when set, else around the current directory.
    pub fn here() -> Result<Workspace, WorkspaceError> {
        Workspace::from_repo(Repo::from_env()?)
    }

    /// The workspace of `repo`, refused when this clone's provider cannot
    /// serve its active KEKs (the install lock, [`Workspace::check_install_lock`]).
    pub fn from_repo(repo: Repo) -> Result<Workspace, WorkspaceError> {
        let project = Workspace::load(repo)?;
        if let Err(lock) = project.check_install_lock() {
            // Between a custody move's new records and its moving the lock.
            return Err(match crate::lifecycle::interrupted(&project.repo) {
                Some(command) => WorkspaceError::Interrupted {
                    lock: Box::new(lock),
                    command,
                },
                None => lock,
            });
        }
        Ok(project)
    }

    /// The workspace without the install lock's check, for the filter: on
    /// a commit from before a rotation moved the clone to another custody,
    /// opening and re-using existing envelopes needs no lock, and clean
    /// checks it before it seals anything new.
    pub fn load(repo: Repo) -> Result<Workspace, WorkspaceError> {
        let root = repo.workdir("git-seal")?.to_owned();
        // A sparse checkout may leave `.seal/` out of the work tree; the
        // index still has it.
        let from_index = !root.join(record::KEYS_DIR).is_dir();
        let keks = if from_index {
            record::parse_all(index_files(&repo, |p| {
                p.starts_with(".seal/keys/") && p.ends_with(".json")
            })?)?
        } else {
            record::load_all(&root)?
        };
        if keks.is_empty() {
            return Err(WorkspaceError::NotInitialized { root });
        }
        // Only a sparse checkout reads the index: a map of every entry
        // cost each filter process 2 ms per 10,000 files.
        let from_index_policy = from_index && !root.join(policy::PATH).exists();
        let indexed = if from_index_policy {
            index_files(&repo, |p| p == policy::PATH)?.pop()
        } else {
            None
        };
        let policy = match indexed {
            Some((_, text)) => {
                let text = String::from_utf8_lossy(&text).into_owned();
                Policy::parse(&text, &known_kids(&keks))?
            }
            _ => load_policy(&root, &keks)?,
        };
        let provider = keys::provider_or_default(repo.config_get(PROVIDER_KEY).as_deref())?;
        let project = Workspace {
            keys: Arc::from(provider.open(Some(&repo), &keks)?),
            opener: std::sync::OnceLock::new(),
            odd_names: std::sync::OnceLock::new(),
            repo,
            root,
            keks,
            policy,
            provider,
        };
        Ok(project)
    }

    /// Can this clone's provider serve an active KEK? Refused otherwise:
    /// git-seal never falls back to another provider to seal.
    pub fn check_install_lock(&self) -> Result<(), WorkspaceError> {
        // Public-only recipients (a teammate's key, an offline recovery
        // key) are wrapped to by anyone; the lock is about the KEK this
        // clone holds, so it holds when any active KEK has this custody.
        if self.actives().next().is_none() {
            return Err(WorkspaceError::NoActiveKek);
        }
        if self
            .actives()
            .all(|kek| kek.custody != self.provider.custody())
        {
            // Only now which KEK is primary (that reads key files).
            let active = self.active()?;
            return Err(WorkspaceError::InstallLock {
                provider: self.provider.name(),
                kid: active.kid.clone(),
                custody: active.custody.clone(),
                hint: keys::PROVIDERS
                    .iter()
                    .find(|p| p.custody() == active.custody)
                    .map_or("file", |p| p.name()),
            });
        }
        Ok(())
    }

    pub fn keys(&self) -> &dyn KeyProvider {
        self.keys.as_ref()
    }

    /// The provider, for worker threads and longer-lived holders.
    pub fn shared_keys(&self) -> Arc<dyn KeyProvider> {
        Arc::clone(&self.keys)
    }

    /// What opens envelopes here: this clone's provider first, then the
    /// software keys held here ([`keys::for_opening`]), so that a retired
    /// key file in the archive still opens history sealed before a
    /// rotation moved the clone to a token. Sealing never falls back so.
    pub fn opener(&self) -> Arc<dyn KeyProvider> {
        let opener = self.opener.get_or_init(|| {
            match keys::for_opening(Some(self.shared_keys())) {
                Ok(chain) => Arc::new(chain),
                // A malformed GIT_SEAL_KEK: open with this provider alone.
                Err(_) => self.shared_keys(),
            }
        });
        Arc::clone(opener)
    }

    /// Every active KEK: the default recipients of new envelopes.
    pub fn actives(&self) -> impl Iterator<Item = &KekRecord> {
        self.keks.iter().filter(|k| k.status == Status::Active)
    }

    /// The primary active KEK: of the active ones, the newest version whose
    /// private half is here, else the newest. `rotate` replaces it by
    /// default, and the clean cache is keyed by it.
    pub fn active(&self) -> Result<&KekRecord, WorkspaceError> {
        let newest_here = self
            .actives()
            .filter(|k| self.keys.has(&k.kid))
            .max_by_key(|k| k.version);
        newest_here
            .or_else(|| self.actives().max_by_key(|k| k.version))
            .ok_or(WorkspaceError::NoActiveKek)
    }

    pub fn record(&self, kid: &Kid) -> Option<&KekRecord> {
        self.keks.iter().find(|k| &k.kid == kid)
    }

    /// `kid` as a wrap target: see [`target_among`].
    pub fn target(&self, kid: &Kid) -> Result<WrapTarget, WorkspaceError> {
        target_among(&self.keks, kid, &self.keys)
    }

    /// The kids a new envelope for `path` is wrapped to: its scope's in
    /// the policy, else every active KEK's (in version order).
    pub fn recipients_for(&self, path: Option<&str>) -> Result<Vec<Kid>, WorkspaceError> {
        match path.and_then(|p| self.policy.recipients_for(p)) {
            Some(kids) => Ok(kids.to_vec()),
            None => {
                let kids: Vec<Kid> = self.actives().map(|k| k.kid.clone()).collect();
                if kids.is_empty() {
                    return Err(WorkspaceError::NoActiveKek);
                }
                Ok(kids)
            }
        }
    }

    /// Who a new envelope for `path` is wrapped to.
    pub fn targets_for(&self, path: Option<&str>) -> Result<Vec<WrapTarget>, WorkspaceError> {
        let kids = self.recipients_for(path)?;
        kids.iter().map(|kid| self.target(kid)).collect()
    }
}

/// `kid`, one of `records`, as a wrap target: its public key (X25519, which
/// anyone may wrap to), or `wrapper` for a KEK inside an HSM, which only
/// the token wraps to.
pub(crate) fn target_among(
    records: &[KekRecord],
    kid: &Kid,
    wrapper: &Arc<dyn KeyProvider>,
) -> Result<WrapTarget, WorkspaceError> {
    let record = records.iter().find(|r| &r.kid == kid);
    match record {
        Some(record) if record.wrap == crate::envelope::format::WRAP_PKCS11 => {
            if wrapper.name() != "pkcs11" {
                return Err(WorkspaceError::NeedsToken {
                    kid: kid.clone(),
                    provider: wrapper.name(),
                });
            }
            Ok(WrapTarget::Provider {
                kid: kid.clone(),
                provider: Arc::clone(wrapper),
            })
        }
        _ => record
            .and_then(KekRecord::public_bytes)
            .map(|public| WrapTarget::X25519 {
                kid: kid.clone(),
                public,
            })
            .ok_or_else(|| WorkspaceError::NoPublicKey { kid: kid.clone() }),
    }
}

/// Index blobs whose path passes `keep`, as (path, content).
fn index_files(
    repo: &Repo,
    keep: impl Fn(&str) -> bool,
) -> Result<Vec<(PathBuf, Vec<u8>)>, RepoError> {
    let mut files = Vec::new();
    for (path, id) in repo.index_entries()? {
        if keep(&path) {
            files.push((PathBuf::from(path), repo.blob(id)?));
        }
    }
    Ok(files)
}

pub(crate) fn known_kids(keks: &[KekRecord]) -> Vec<Kid> {
    keks.iter()
        .filter(|k| k.status != Status::Removed)
        .map(|k| k.kid.clone())
        .collect()
}

/// Load `.seal/policy.json` (an absent file is the empty policy).
pub(crate) fn load_policy(root: &Path, keks: &[KekRecord]) -> Result<Policy, WorkspaceError> {
    match std::fs::read_to_string(root.join(policy::PATH)) {
        Ok(text) => Ok(Policy::parse(&text, &known_kids(keks))?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Policy::empty()),
        Err(source) => Err(WorkspaceError::ReadPolicy {
            path: policy::PATH.to_owned(),
            source,
        }),
    }
}

impl Workspace {
    /// Must `path` be stored sealed in this clone? [`policy::must_seal`]
    /// with this clone's policy and Git's attributes (which also read
    /// nested `.gitattributes` files).
    pub fn must_seal(&self, path: &str) -> Result<bool, RepoError> {
        policy::must_seal(&self.policy, path, |path| self.repo.has_seal_filter(path))
    }

    /// Index paths that must be sealed ([`Workspace::must_seal`]), with
    /// their blob ids, sorted by path.
    /// The bytes that name `path` in the index and the work tree. git-seal
    /// speaks of a path as text, with U+FFFD for each byte that is not
    /// UTF-8 (as in an envelope's aad); Git's paths are bytes, which this
    /// gives back from the index (the first such name, if several share
    /// the text).
    pub fn git_name<'a>(&'a self, path: &'a str) -> &'a [u8] {
        if !path.contains(char::REPLACEMENT_CHARACTER) {
            return path.as_bytes();
        }
        let names = self
            .odd_names
            .get_or_init(|| self.repo.index_odd_names().unwrap_or_default());
        names.get(path).map_or(path.as_bytes(), Vec::as_slice)
    }

    /// The work-tree file at `path` (see [`Workspace::git_name`]).
    pub fn work_file(&self, path: &str) -> PathBuf {
        use std::os::unix::ffi::OsStrExt;
        self.root
            .join(std::ffi::OsStr::from_bytes(self.git_name(path)))
    }

    pub fn sealed_index_paths(&self) -> Result<Vec<(String, crate::repo::Oid)>, WorkspaceError> {
        let mut paths = Vec::new();
        for (path, id) in self.repo.index_entries()? {
            if self.must_seal(&path)? {
                paths.push((path, id));
            }
        }
        paths.sort();
        Ok(paths)
    }
}
