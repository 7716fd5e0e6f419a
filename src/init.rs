//! Setting a repository, or a fresh clone, up for git-seal (`git seal
//! init`): the KEK (created, or adopted from `.seal/keys/`), `.seal/`,
//! `.gitattributes`, the drivers, the hooks, the audit chain, and opening
//! files a fresh clone checked out before the filter existed. Idempotent:
//! running it again repairs configuration and never replaces a KEK.

use std::path::{Path, PathBuf};

use crate::atomic_file::{self, WriteError};
use crate::audit::{self, sync, AuditError};
use crate::drivers;
use crate::hooks::{self, Change, HookError};
use crate::keys::record::{self, KekRecord, RecordError, Status};
use crate::keys::{self, env::EnvKeys, file::FileKeys, KeyError, Place, ProviderInfo};
use crate::kid::Kid;
use crate::lock::{self, LockError};
use crate::policy::{self, Policy, PolicyError};
use crate::repo::command::{nul_records, GitCommandError};
use crate::repo::{Repo, RepoError};
use crate::workspace::{self, Workspace, WorkspaceError, PROVIDER_KEY};

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(
        "pattern {0:?} cannot be written to .gitattributes (no whitespace, no leading `#` or `!`)"
    )]
    BadPattern(String),
    #[error(
        "the active KEK {kid} has {custody} custody, which the {provider} provider cannot serve, and `init` does not move a clone's provider: set up a clone for that custody instead, or move the repository to a new KEK of the {provider} provider with `git seal rotate --provider {provider}` (audited)"
    )]
    Custody {
        kid: Kid,
        custody: String,
        provider: &'static str,
    },
    #[error("this clone is set up for the {set} provider, and `init` does not change that silently: its KEK may not be usable through {given}. To move the repository to a new KEK of the {given} provider, run `git seal rotate --provider {given}` (audited); to set this clone up for {given} anyway, run `git seal init --provider {given} --force`")]
    Flip {
        set: &'static str,
        given: &'static str,
    },
    #[error("the env provider needs a KEK in GIT_SEAL_KEK, and it is empty")]
    EmptyEnv,
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error(transparent)]
    Hook(#[from] HookError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error("cannot list the files of the work tree: {0}")]
    ListFiles(#[source] GitCommandError),
}

/// How the KEK was set up.
#[derive(Debug)]
pub enum KekSetup {
    /// A new KEK; its private key is in this file.
    Created { kid: Kid, path: PathBuf },
    /// A new KEK made inside a token, which it never leaves.
    CreatedIn { kid: Kid, place: String },
    /// A new KEK guarded by the KMS key `key` (an ARN).
    Guarded { kid: Kid, key: String },
    /// A new KEK record for the private key in GIT_SEAL_KEK.
    AdoptedFromEnv { kid: Kid },
    /// The repository's active KEK, usable here.
    Using { kid: Kid },
    /// The repository's active KEK, whose private key is not here yet:
    /// sealed files stay locked until it is in `place`.
    Unavailable { kid: Kid, place: String },
}

/// What starting (or joining) the audit chain did.
#[derive(Debug, Default)]
pub struct ChainSetup {
    /// Remotes that now fetch the chain.
    pub fetching: Vec<String>,
    /// Remotes whose chain could not be fetched, and why.
    pub unfetched: Vec<(String, String)>,
    /// What taking fetched entries did.
    pub notes: Vec<String>,
    /// A new chain: its first entry and signer.
    pub started: Option<(crate::repo::Oid, String)>,
}

/// What `init` did, step by step.
#[derive(Debug)]
pub struct Initialized {
    pub provider: &'static ProviderInfo,
    pub kek: KekSetup,
    /// `.seal/policy.json` was written; its sealed globs.
    pub policy_written: Option<Vec<String>>,
    pub attributes_updated: bool,
    pub drivers_fixed: Vec<&'static str>,
    pub hooks: hooks::Each<Change>,
    /// The chain is a record, not a precondition: set-up stands without it.
    pub chain: Result<ChainSetup, InitError>,
    /// Files a fresh clone had left locked, opened now.
    pub unlocked: Result<usize, LockError>,
    /// `.gitattributes` or `.seal/` are new or changed: commit them.
    pub commit_suggested: bool,
    /// Patterns as given and as written, where they differ.
    pub normalized: Vec<(String, String)>,
    /// Patterns that match no tracked or new file (yet).
    pub unmatched: Vec<String>,
}

/// How `init` sets a clone up.
#[derive(Debug, Default)]
pub struct Options<'a> {
    /// The provider (default: the clone's, else the active KEK's custody's).
    pub provider: Option<&'static ProviderInfo>,
    /// Set a clone up for another provider than the one it has.
    pub force: bool,
    /// The KMS key that guards a new KEK (`aws-kms`).
    pub kms_key: Option<&'a str>,
}

/// Set the repository around `repo` up; the provider defaults to the one
/// this clone was set up with, else the one the active KEK's custody needs,
/// else `file`.
pub fn init(
    repo: &Repo,
    options: &Options<'_>,
    patterns: &[String],
) -> Result<Initialized, InitError> {
    let provider = options.provider;
    let root = repo.workdir("git seal init")?.to_owned();
    let given = patterns;
    let patterns: Vec<String> = given
        .iter()
        .map(|p| policy::normalize_pattern(p, |dir| root.join(dir).is_dir()))
        .collect();
    let normalized = given
        .iter()
        .zip(&patterns)
        .filter(|(g, p)| g != p)
        .map(|(g, p)| (g.clone(), p.clone()))
        .collect();
    for pattern in &patterns {
        if pattern.is_empty()
            || pattern.chars().any(char::is_whitespace)
            || pattern.starts_with('#')
            || pattern.starts_with('!')
        {
            return Err(InitError::BadPattern(pattern.clone()));
        }
    }
    let mut keks = record::load_all(&root)?;
    // A fresh clone (no provider named, none in its config) takes the
    // custody of the repository's newest active KEK: a teammate's `git
    // seal init` in a clone of a token repository uses the token.
    let configured = repo.config_get(PROVIDER_KEY);
    if let (Some(given), Some(set)) = (provider, configured.as_deref()) {
        if given.name() != set && !options.force {
            return Err(InitError::Flip {
                set: keys::provider(set)?.name(),
                given: given.name(),
            });
        }
    }
    let provider = match (provider, configured) {
        (Some(p), _) => p,
        (None, Some(name)) => keys::provider(&name)?,
        (None, None) => keks
            .iter()
            .filter(|k| k.status == Status::Active)
            .max_by_key(|k| k.version)
            .and_then(|k| keys::PROVIDERS.iter().find(|p| p.custody() == k.custody))
            .map_or_else(|| keys::provider_or_default(None), Ok)?,
    };

    // The clone's lock moves only with a rotation: `init` keeps it, or
    // takes a provider whose custody some active KEK has (a teammate's
    // clone of a repository with a token KEK and a recovery key).
    let actives = || keks.iter().filter(|k| k.status == Status::Active);
    let active = actives()
        .filter(|k| k.custody == provider.custody())
        .max_by_key(|k| k.version)
        .or_else(|| actives().max_by_key(|k| k.version));
    let kek = match active {
        Some(active) => adopt(repo, &keks, active, provider)?,
        None => {
            let version = keks.iter().map(|k| k.version).max().unwrap_or(0) + 1;
            let (record, setup) = create(repo, provider, version, options.kms_key)?;
            record::store(&root, &record)?;
            keks.push(record);
            setup
        }
    };

    let new_policy = !root.join(policy::PATH).exists();
    let mut policy = if new_policy {
        Policy::new_default()
    } else {
        workspace::load_policy(&root, &keks)?
    };
    let mut policy_changed = new_policy;
    for pattern in &patterns {
        policy_changed |= policy.add_sealed(pattern)?;
    }
    if policy_changed {
        atomic_file::write_shared(&root.join(policy::PATH), policy.to_text().as_bytes())?;
    }

    let attributes = root.join(".gitattributes");
    let existing = read_optional(&attributes)?;
    // Every required-sealed glob also gets the filter, so policy and
    // .gitattributes agree.
    let attributes_updated = match drivers::gitattributes_with(&existing, &policy.file.sealed) {
        Some(text) => {
            atomic_file::write_shared(&attributes, text.as_bytes())?;
            true
        }
        None => false,
    };

    repo.config_set(PROVIDER_KEY, provider.name())?;
    if provider.custody() == "hsm" {
        keys::pkcs11::remember_settings(repo)?;
    }
    let mut drivers_fixed = drivers::configure_drivers(repo)?;
    if drivers::exclude_temp_files(repo).map_err(|source| InitError::Read {
        path: repo.common_dir().join("info/exclude"),
        source,
    })? {
        drivers_fixed.push("info/exclude (.git-seal-* temporary files)");
    }
    let hooks = hooks::install_all(repo)?;
    let unmatched = unmatched_patterns(repo, &patterns)?;
    let chain = start_audit_chain(repo, &keks);
    // A fresh clone checked its sealed files out before the filter existed:
    // open them now if the key is here (never discarding local changes).
    let unlocked = match repo
        .reopen()
        .map_err(WorkspaceError::from)
        .and_then(Workspace::from_repo)
    {
        Ok(ws) if ws.active().is_ok_and(|a| ws.keys().has(&a.kid)) => lock::unlock_if_locked(&ws),
        // Without the key they stay sealed: the hooks open them after a
        // checkout once it is here.
        Ok(ws) => lock::mark_left_sealed(&ws.repo).map(|()| 0),
        Err(_) => Ok(0),
    };
    Ok(Initialized {
        provider,
        kek,
        policy_written: policy_changed.then(|| policy.file.sealed.clone()),
        attributes_updated,
        drivers_fixed,
        hooks,
        chain,
        unlocked,
        commit_suggested: policy_changed || existing.is_empty(),
        normalized,
        unmatched,
    })
}

/// Of `patterns`, those that match no tracked file and no new (untracked,
/// not ignored) file: most likely a typo.
fn unmatched_patterns(repo: &Repo, patterns: &[String]) -> Result<Vec<String>, InitError> {
    if patterns.is_empty() {
        return Ok(Vec::new());
    }
    let listed = repo
        .git()
        .run(&[
            "ls-files",
            "--cached",
            "--others",
            "--exclude-standard",
            "-z",
        ])
        .map_err(InitError::ListFiles)?;
    let paths: Vec<String> = nul_records(&listed.stdout)
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    Ok(patterns
        .iter()
        .filter(|pattern| {
            !paths
                .iter()
                .any(|path| policy::pattern_matches(pattern, path))
        })
        .cloned()
        .collect())
}

/// Configure each remote to fetch the audit chain, take a remote's chain
/// when there is none here (a fresh clone), else start one with a signed
/// `init` entry naming the KEKs.
fn start_audit_chain(repo: &Repo, keks: &[KekRecord]) -> Result<ChainSetup, InitError> {
    let mut setup = ChainSetup::default();
    let remotes = repo.remotes()?;
    for remote in &remotes {
        let key = format!("remote.{remote}.fetch");
        if repo.config_set_multivar_once(&key, &audit::fetch_refspec(remote))? {
            setup.fetching.push(remote.clone());
        }
    }
    if audit::chain::tip(repo).is_some() {
        return Ok(setup);
    }
    for remote in &remotes {
        if let Err(e) = sync::fetch_chain(repo, remote) {
            setup.unfetched.push((remote.clone(), e.to_string()));
        }
    }
    setup.notes = audit::take_fetched(repo)?;
    if audit::chain::tip(repo).is_some() {
        return Ok(setup);
    }
    let signer = audit::Signer::load_or_create()?;
    let kids: Vec<String> = keks.iter().map(|k| k.kid.to_string()).collect();
    if let Some(id) = audit::record_init(repo, &kids, &signer)? {
        setup.started = Some((id, signer.fingerprint().to_owned()));
    }
    Ok(setup)
}

fn read_optional(path: &Path) -> Result<String, InitError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(InitError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// The repository already has an active KEK: use it, never replace it.
fn adopt(
    repo: &Repo,
    keks: &[KekRecord],
    active: &KekRecord,
    provider: &ProviderInfo,
) -> Result<KekSetup, InitError> {
    if active.custody != provider.custody() {
        return Err(InitError::Custody {
            kid: active.kid.clone(),
            custody: active.custody.clone(),
            provider: provider.name(),
        });
    }
    let kid = active.kid.clone();
    let keys = provider.open(Some(repo), keks)?;
    if keys.has(&kid) {
        return Ok(KekSetup::Using { kid });
    }
    let place = match provider.name() {
        "file" => format!(
            "the key file {}",
            FileKeys::open_default()?.path_of(&kid).display()
        ),
        "env" => "GIT_SEAL_KEK".to_owned(),
        other => format!(
            "the {other} provider{}",
            keys.problem()
                .map(|why| format!(" ({why})"))
                .unwrap_or_default()
        ),
    };
    Ok(KekSetup::Unavailable { kid, place })
}

/// No KEK yet: the provider makes one (a key file, inside the token, under
/// a KMS key), or, for `env`, the one in GIT_SEAL_KEK is taken.
fn create(
    repo: &Repo,
    provider: &ProviderInfo,
    version: u32,
    kms_key: Option<&str>,
) -> Result<(KekRecord, KekSetup), InitError> {
    let Some(made) = provider.make(repo, version, kms_key) else {
        let keys = EnvKeys::from_env()?;
        let (kid, secret) = keys.secrets().next().ok_or(InitError::EmptyEnv)?;
        let record = KekRecord::new_x25519(&secret.public(), version);
        return Ok((record, KekSetup::AdoptedFromEnv { kid: kid.clone() }));
    };
    let keys::Made { record, place } = made?;
    let kid = record.kid.clone();
    let setup = match place {
        Place::KeyFile(path) => KekSetup::Created { kid, path },
        Place::Token(label) => KekSetup::CreatedIn {
            kid,
            place: format!("token {label:?}"),
        },
        Place::Kms(key) => KekSetup::Guarded { kid, key },
    };
    Ok((record, setup))
}
