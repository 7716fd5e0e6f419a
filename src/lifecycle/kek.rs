//! `git seal kek`: versioned KEKs. Add a version (made here, or a
//! teammate's public key), list them, verify one works here, remove one no
//! envelope needs (and erase its private half: crypto-erasure), and move a
//! software KEK's private half between machines.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::Serialize;
use serde_json::{json, Map};

use super::{envelopes_here, index, Journal, KeyState, LifecycleError, Place};
use crate::audit::{self, entry, AuditError};
use crate::envelope::Recipient;
use crate::keys::file::FileKeys;
use crate::keys::pkcs11::Pkcs11Keys;
use crate::keys::record::{self, KekRecord, Status};
use crate::keys::{self, env::EnvKeys, KeyError, KeyProvider, ProviderInfo};
use crate::kid::Kid;
use crate::secret::{Dek, KekSecret};
use crate::workspace::Workspace;

/// A key pair made here, or a public key handed over.
#[derive(Debug)]
pub enum NewKek<'a> {
    /// A new KEK made with `provider` (default: this clone's); `kms_key`
    /// is the KMS key that guards it (`aws-kms`).
    Generate {
        provider: Option<&'a ProviderInfo>,
        kms_key: Option<String>,
    },
    Public {
        key: String,
        name: Option<String>,
    },
}

/// What `kek add` did.
#[derive(Debug)]
pub struct Added {
    pub record: KekRecord,
    /// The record was listed already (a public key added twice).
    pub existed: bool,
    pub audit: Result<bool, AuditError>,
}

/// Parse a teammate's public key: the base64 of 32 bytes that `git seal
/// kek show` prints, which must be a usable X25519 point.
pub fn parse_public_key(text: &str) -> Result<[u8; 32], LifecycleError> {
    let text = text.trim();
    if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(LifecycleError::Refused(
            "that is 64 hex digits: the form of a PRIVATE key. Never share a private key; ask for the output of `git seal kek show KID` (or `git seal kek keygen`) instead, and treat this key as exposed".into(),
        ));
    }
    let bad = |why: &str| {
        LifecycleError::Refused(format!(
            "not an X25519 public key ({why}); expected the base64 of 32 bytes, as `git seal kek show KID` prints"
        ))
    };
    let bytes = B64.decode(text).map_err(|_| bad("not canonical base64"))?;
    let public: [u8; 32] = bytes
        .try_into()
        .map_err(|b: Vec<u8>| bad(&format!("{} bytes", b.len())))?;
    // A low-order point gives every sender the same shared secret: wrapping
    // to it would protect nothing. Wrapping a throwaway DEK refuses it.
    let kid = Kid::of_x25519(&public);
    crate::keys::x25519::wrap(&kid, &public, &Dek::random())
        .map_err(|_| bad("a low-order point, which no private key matches"))?;
    Ok(public)
}

pub fn add(ws: &Workspace, new: NewKek<'_>) -> Result<Added, LifecycleError> {
    // A journal only so that a stale index lock of a killed run is known
    // as ours; adding again after a kill just adds (a new version).
    let journal = Journal::resume(ws, entry::EVENT_KEK_ADD, "git seal kek add")?
        .unwrap_or_else(|| Journal::new(entry::EVENT_KEK_ADD, "git seal kek add".into()));
    let (record, imported) = match new {
        NewKek::Generate { provider, kms_key } => (
            super::rotate::new_kek(ws, provider, kms_key.as_deref())?,
            false,
        ),
        NewKek::Public { key, name } => {
            let public = parse_public_key(&key)?;
            let kid = Kid::of_x25519(&public);
            if let Some(existing) = ws.record(&kid) {
                Journal::finish(&ws.repo)?;
                return Ok(Added {
                    record: existing.clone(),
                    existed: true,
                    audit: Ok(false),
                });
            }
            let mut record = KekRecord::new_x25519(&public, super::next_version(ws));
            record.status = Status::Pending;
            record.name = name;
            (record, true)
        }
    };
    journal.save(&ws.repo)?;
    record::store(&ws.root, &record)?;
    let path = format!("{}/{}.json", record::KEYS_DIR, record.kid);
    let tree = index::update(
        &ws.repo,
        &ws.root,
        &Default::default(),
        &[path],
        &journal.token,
    )?;
    let mut data = Map::new();
    data.insert("kid".into(), json!(record.kid));
    data.insert("index_tree".into(), json!(tree.to_string()));
    data.insert("version".into(), json!(record.version));
    data.insert("custody".into(), json!(record.custody));
    data.insert("status".into(), json!(record.status.as_str()));
    data.insert("name".into(), json!(record.name));
    data.insert("imported".into(), json!(imported));
    let audit = audit::on_lifecycle(&ws.repo, entry::EVENT_KEK_ADD, data);
    Journal::finish(&ws.repo)?;
    Ok(Added {
        record,
        existed: false,
        audit,
    })
}

/// One KEK as `kek list` shows it.
#[derive(Debug, Serialize)]
pub struct Listed {
    pub kid: Kid,
    pub name: Option<String>,
    pub version: u32,
    pub status: &'static str,
    pub custody: String,
    pub created_at: String,
    pub age_days: Option<u64>,
    /// When an active KEK is due for rotation (`rotate_after_days`), and
    /// where it stands: `ok`, `due-soon` or `overdue`.
    pub due: Option<String>,
    pub due_state: Option<&'static str>,
    /// Its private half is here (a key file, archived or not, or
    /// GIT_SEAL_KEK).
    pub here: bool,
    /// Envelopes wrapped to it, in HEAD and in the index.
    pub envelopes_head: usize,
    pub envelopes_index: usize,
}

pub fn list(ws: &Workspace) -> Result<Vec<Listed>, LifecycleError> {
    let mut counts: BTreeMap<(Kid, Place), usize> = BTreeMap::new();
    for (place, _, _, kids) in envelopes_here(ws)? {
        for kid in kids {
            *counts.entry((kid, place)).or_default() += 1;
        }
    }
    let keys = keys::for_opening(Some(ws.shared_keys()))?;
    let now = std::time::SystemTime::now();
    let days = ws.policy.rotate_after_days();
    Ok(ws
        .keks
        .iter()
        .map(|k| {
            let age_days = k
                .created()
                .and_then(|c| now.duration_since(c).ok())
                .map(|d| d.as_secs() / 86_400);
            let expiry = crate::keys::expiry::expiry(k, days, now);
            let count = |place| counts.get(&(k.kid.clone(), place)).copied().unwrap_or(0);
            Listed {
                kid: k.kid.clone(),
                name: k.name.clone(),
                version: k.version,
                status: k.status.as_str(),
                custody: k.custody.clone(),
                created_at: k.created_at.clone(),
                age_days,
                due: expiry.map(|e| e.due_rfc3339()),
                due_state: expiry.map(|e| e.state.as_str()),
                here: keys.has(&k.kid),
                envelopes_head: count(Place::Head),
                envelopes_index: count(Place::Index),
            }
        })
        .collect())
}

/// Only `kid`'s key, of all those here: what `kek verify` opens with.
#[derive(Debug)]
struct Only<'a> {
    kid: &'a Kid,
    keys: &'a dyn KeyProvider,
}

impl KeyProvider for Only<'_> {
    fn name(&self) -> &'static str {
        self.keys.name()
    }
    fn available(&self) -> Vec<Kid> {
        self.keys
            .available()
            .into_iter()
            .filter(|k| k == self.kid)
            .collect()
    }
    fn wrap(&self, kid: &Kid, dek: &Dek) -> Option<Result<Recipient, KeyError>> {
        (kid == self.kid)
            .then(|| self.keys.wrap(kid, dek))
            .flatten()
    }
    fn unwrap(&self, recipient: &Recipient) -> Option<Result<Dek, KeyError>> {
        (recipient.kid == *self.kid)
            .then(|| self.keys.unwrap(recipient))
            .flatten()
    }
}

/// What `kek verify` found.
#[derive(Debug, Serialize)]
pub struct Verified {
    pub kid: Kid,
    /// A test DEK wrapped to it and unwrapped again here.
    pub round_trip: Result<(), String>,
    pub opened: usize,
    /// Envelopes naming it that did not open with it: (place, path, why).
    pub failures: Vec<(Place, String, String)>,
}

impl Verified {
    pub fn ok(&self) -> bool {
        self.round_trip.is_ok() && self.failures.is_empty()
    }
}

/// Wrap and unwrap a test DEK with `kid` here, then open every envelope of
/// HEAD and the index that names it with that key alone.
pub fn verify(ws: &Workspace, kid: &Kid) -> Result<Verified, LifecycleError> {
    let record = ws
        .record(kid)
        .ok_or_else(|| LifecycleError::UnknownKid { kid: kid.clone() })?;
    let all = keys::for_opening(Some(ws.shared_keys()))?;
    let only = Only { kid, keys: &all };
    let round_trip = round_trip(ws, record, &only);
    let mut opened = 0;
    let mut failures = Vec::new();
    for (place, path, id, kids) in envelopes_here(ws)? {
        if !kids.contains(kid) {
            continue;
        }
        let text = ws.repo.blob(id)?;
        match keys::open_bytes(&text, &only) {
            Ok(_) => opened += 1,
            Err(e) => failures.push((place, path, e.to_string())),
        }
    }
    Ok(Verified {
        kid: kid.clone(),
        round_trip,
        opened,
        failures,
    })
}

fn round_trip(ws: &Workspace, record: &KekRecord, only: &Only<'_>) -> Result<(), String> {
    let dek = Dek::random();
    let wrapped = match ws.target(&record.kid) {
        Ok(target) => crate::keys::sealing::wrap_to(&target, &dek).map_err(|e| e.to_string()),
        Err(_) => match only.wrap(&record.kid, &dek) {
            Some(result) => result.map_err(|e| e.to_string()),
            None => Err("no public key in its record and no provider here wraps to it".into()),
        },
    }?;
    match only.unwrap(&wrapped) {
        Some(Ok(back)) if back.expose() == dek.expose() => Ok(()),
        Some(Ok(_)) => Err("the unwrapped DEK differs from the one wrapped".into()),
        Some(Err(e)) => Err(e.to_string()),
        None => Err(format!(
            "its private half is not here (key files in {}, GIT_SEAL_KEK, this clone's {} provider)",
            crate::keys::file::key_dir()
                .map(|d| d.display().to_string())
                .unwrap_or_else(|_| "no key directory".into()),
            ws.provider.name()
        )),
    }
}

/// What `kek remove` did.
#[derive(Debug)]
pub struct Removed {
    pub kid: Kid,
    /// The record was marked removed by this run (false: it was already).
    pub marked: bool,
    /// What `--destroy` erased: key files, or the key inside a token.
    pub erased: Vec<String>,
    /// GIT_SEAL_KEK still holds the key (it cannot be erased from here).
    pub still_in_env: bool,
    pub audit: Vec<Result<bool, AuditError>>,
}

/// Mark `kid` removed, when no envelope of HEAD or the index is wrapped to
/// it and it is no recipient; with `destroy`, then erase its private half
/// here. The caller has the user's confirmation for `destroy`.
pub fn remove(ws: &Workspace, kid: &Kid, destroy: bool) -> Result<Removed, LifecycleError> {
    let record = ws
        .record(kid)
        .ok_or_else(|| LifecycleError::UnknownKid { kid: kid.clone() })?;
    let wanted = format!("git seal kek remove {kid}");
    let journal = Journal::resume(ws, entry::EVENT_KEK_REMOVE, &wanted)?;
    let mut audit = Vec::new();
    let marked = record.status != Status::Removed;
    if marked {
        if record.status == Status::Active
            || ws
                .policy
                .file
                .recipients
                .iter()
                .any(|s| s.kids.contains(kid))
        {
            return Err(LifecycleError::Refused(format!(
                "{kid} is a recipient of new envelopes; replace it first with `git seal rotate --from {kid}` or `git seal recipients remove {kid}`"
            )));
        }
        let needed: Vec<String> = envelopes_here(ws)?
            .into_iter()
            .filter(|(_, _, _, kids)| kids.contains(kid))
            .map(|(place, path, _, _)| format!("{path} ({})", place.as_str()))
            .collect();
        if !needed.is_empty() {
            let shown: Vec<&str> = needed.iter().take(10).map(String::as_str).collect();
            return Err(LifecycleError::Refused(format!(
                "{} envelope(s) in HEAD or the index are wrapped to {kid}: {}{}; re-wrap them first (`git seal rotate --from {kid}` if it is active, else `git add --renormalize PATH`), and commit",
                needed.len(),
                shown.join(", "),
                if needed.len() > shown.len() { ", …" } else { "" }
            )));
        }
        let mut journal = journal.unwrap_or_else(|| Journal::new(entry::EVENT_KEK_REMOVE, wanted));
        journal.from = Some(kid.clone());
        journal.save(&ws.repo)?;
        let mut state = KeyState::of(ws);
        state.record_mut(kid)?.status = Status::Removed;
        let stage = state.write(ws)?;
        let tree = index::update(
            &ws.repo,
            &ws.root,
            &Default::default(),
            &stage,
            &journal.token,
        )?;
        let mut data = Map::new();
        data.insert("kid".into(), json!(kid));
        data.insert("index_tree".into(), json!(tree.to_string()));
        audit.push(audit::on_lifecycle(&ws.repo, entry::EVENT_KEK_REMOVE, data));
        Journal::finish(&ws.repo)?;
    }
    let mut erased = Vec::new();
    if destroy {
        let kind = if record.custody == "hsm" {
            // The key object itself, inside the token.
            let token = Pkcs11Keys::open(Some(&ws.repo));
            erased.extend(token.destroy(kid)?);
            "token"
        } else {
            let files = FileKeys::open_default()?.erase(kid)?;
            erased.extend(files.iter().map(|p| p.display().to_string()));
            "file"
        };
        let mut data = Map::new();
        data.insert("kid".into(), json!(kid));
        data.insert(
            "erased".into(),
            json!(if erased.is_empty() {
                vec![]
            } else {
                vec![kind]
            }),
        );
        audit.push(audit::on_lifecycle(
            &ws.repo,
            entry::EVENT_KEK_DESTROY,
            data,
        ));
    }
    let still_in_env = EnvKeys::from_env().is_ok_and(|env| env.has(kid));
    Ok(Removed {
        kid: kid.clone(),
        marked,
        erased,
        still_in_env,
        audit,
    })
}

/// The private half of a software KEK held here (key file or GIT_SEAL_KEK).
fn secret_here(kid: &Kid) -> Result<KekSecret, LifecycleError> {
    keys::secret_here(kid)?.ok_or_else(|| {
        LifecycleError::Refused(format!(
            "the private half of {kid} is not here (no key file in {}, not in GIT_SEAL_KEK)",
            crate::keys::file::key_dir()
                .map(|d| d.display().to_string())
                .unwrap_or_else(|_| "the key directory".into())
        ))
    })
}

/// Write `kid`'s private half to a new file `out` (0600), for moving it to
/// another machine. Never replaces a file.
pub fn export(kid: &Kid, out: &Path) -> Result<(), LifecycleError> {
    let secret = secret_here(kid)?;
    let write_err = |source| {
        LifecycleError::Key(KeyError::Write {
            path: out.to_owned(),
            source,
        })
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => LifecycleError::Refused(format!(
                "{} exists; git-seal never overwrites a file with a key. Choose another path or remove it",
                out.display()
            )),
            _ => write_err(e),
        })?;
    let mut line = secret.to_hex();
    line.push('\n');
    file.write_all(line.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(write_err)?;
    Ok(())
}

/// What `kek import` did.
#[derive(Debug)]
pub struct Imported {
    pub kid: Kid,
    pub path: PathBuf,
    /// The key file was there already, with the same key.
    pub existed: bool,
}

/// Store the private key in `text` (64 hex digits, as `kek export` writes)
/// as a key file here.
pub fn import(text: &str) -> Result<Imported, LifecycleError> {
    let secret = KekSecret::from_hex(text).map_err(|e| {
        LifecycleError::Refused(format!(
            "not a KEK private key ({e}); expected the 64 hex digits `git seal kek export` writes"
        ))
    })?;
    let kid = Kid::of_x25519(&secret.public());
    let files = FileKeys::open_default()?;
    if let Some(path) = files.location(&kid) {
        if matches!(files.load(&kid), Some(Ok(_))) {
            return Ok(Imported {
                kid,
                path,
                existed: true,
            });
        }
    }
    let path = files.store(&secret)?;
    Ok(Imported {
        kid,
        path,
        existed: false,
    })
}

/// The public key of `kid` as a teammate hands it over: from its record,
/// else from its private half here.
pub fn public_key(ws: Option<&Workspace>, kid: &Kid) -> Result<String, LifecycleError> {
    if let Some(public) = ws
        .and_then(|ws| ws.record(kid))
        .and_then(|r| r.public_key.clone())
    {
        return Ok(public);
    }
    Ok(B64.encode(secret_here(kid)?.public()))
}

/// Make a personal KEK on this machine, outside any repository: its
/// private half in a key file here. Returns its kid and public key.
pub fn keygen() -> Result<(Kid, String, PathBuf), LifecycleError> {
    let secret = KekSecret::generate();
    let path = FileKeys::open_default()?.store(&secret)?;
    Ok((
        Kid::of_x25519(&secret.public()),
        B64.encode(secret.public()),
        path,
    ))
}
