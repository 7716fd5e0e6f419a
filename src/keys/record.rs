//! Committed public KEK metadata: `.seal/keys/<kid>.json`. Every clone reads
//! it to know which KEKs exist and which is active. No secret is ever here.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::kid::Kid;

pub const KEYS_DIR: &str = ".seal/keys";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Added, not yet a recipient (SPEC §3a).
    Pending,
    /// New envelopes are wrapped to it.
    Active,
    /// Replaced by rotation or no longer a recipient; still opens history,
    /// its private half archived.
    Retired,
    /// No envelope in HEAD or the index needs it; an envelope wrapped to it
    /// is an error.
    Removed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Active => "active",
            Status::Retired => "retired",
            Status::Removed => "removed",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KekRecord {
    pub kid: Kid,
    pub wrap: String,
    /// Base64 X25519 public key (absent for HSM keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// `software` (file and env providers) or `hsm` (pkcs11).
    pub custody: String,
    pub version: u32,
    pub created_at: String,
    pub status: Status,
    /// Who or what the KEK is for (`alice`, `recovery`), as given to
    /// `kek add --name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Custody `kms`: the ARN of the customer's KMS key that guards the
    /// X25519 private half.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key: Option<String>,
    /// Custody `kms`: base64 KMS ciphertext of the X25519 private half,
    /// made with encryption context `{"git-seal:kid": KID}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_ciphertext: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: {problem}", path.display())]
    Invalid { path: PathBuf, problem: String },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl KekRecord {
    pub fn new_x25519(public: &[u8; 32], version: u32) -> KekRecord {
        KekRecord {
            public_key: Some(B64.encode(public)),
            ..KekRecord::new(
                Kid::of_x25519(public),
                crate::envelope::format::WRAP_X25519,
                "software",
                version,
            )
        }
    }

    /// A KEK inside an HSM: no public key; only the token wraps to it.
    pub fn new_pkcs11(kid: Kid, version: u32) -> KekRecord {
        KekRecord::new(kid, crate::envelope::format::WRAP_PKCS11, "hsm", version)
    }

    /// An active KEK made now, with no public key, name or KMS fields.
    fn new(kid: Kid, wrap: &str, custody: &str, version: u32) -> KekRecord {
        KekRecord {
            kid,
            wrap: wrap.to_owned(),
            public_key: None,
            custody: custody.to_owned(),
            version,
            created_at: crate::now_rfc3339(),
            status: Status::Active,
            name: None,
            kms_key: None,
            kms_ciphertext: None,
        }
    }

    /// `created_at` as a time; `None` when it is not RFC 3339 UTC
    /// (`2026-01-02T03:04:05Z`), which loading a record refuses.
    pub fn created(&self) -> Option<SystemTime> {
        humantime::parse_rfc3339(&self.created_at).ok()
    }

    pub(crate) fn public_bytes(&self) -> Option<[u8; 32]> {
        let bytes = B64.decode(self.public_key.as_deref()?).ok()?;
        bytes.try_into().ok()
    }

    fn validate(&self, path: &Path) -> Result<(), RecordError> {
        let invalid = |problem: String| RecordError::Invalid {
            path: path.to_owned(),
            problem,
        };
        if self.wrap == crate::envelope::format::WRAP_X25519 {
            let public = self
                .public_bytes()
                .ok_or_else(|| invalid("public_key is not a base64 32-byte X25519 key".into()))?;
            if Kid::of_x25519(&public) != self.kid {
                return Err(invalid(format!(
                    "kid {} does not match its public key",
                    self.kid
                )));
            }
            if !matches!(self.custody.as_str(), "software" | "kms") {
                return Err(invalid(format!(
                    "custody {:?} cannot hold an X25519 KEK (software or kms)",
                    self.custody
                )));
            }
            let kms = self.custody == "kms";
            let ciphertext_ok = self
                .kms_ciphertext
                .as_deref()
                .is_some_and(|c| B64.decode(c).is_ok_and(|b| !b.is_empty()));
            if kms != self.kms_key.as_deref().is_some_and(|k| !k.is_empty())
                || kms != ciphertext_ok
                || (!kms && self.kms_ciphertext.is_some())
            {
                return Err(invalid(format!(
                    "{}: custody \"kms\" goes with a kms_key and a base64 kms_ciphertext, and only it",
                    self.kid
                )));
            }
        } else if self.wrap == crate::envelope::format::WRAP_PKCS11 {
            if self.public_key.is_some()
                || self.custody != "hsm"
                || self.kms_key.is_some()
                || self.kms_ciphertext.is_some()
            {
                return Err(invalid(format!(
                    "{} wraps inside an HSM: custody must be \"hsm\" and there is no public_key",
                    self.kid
                )));
            }
        } else {
            return Err(invalid(format!("unknown wrap {:?}", self.wrap)));
        }
        // Its due date for rotation counts from here (`keys::expiry`): a
        // date nobody can read would hide a KEK that is overdue.
        if self.created().is_none() {
            return Err(invalid(format!(
                "created_at {:?} of {} is not an RFC 3339 UTC time such as 2026-01-02T03:04:05Z",
                self.created_at, self.kid
            )));
        }
        if path.file_stem().and_then(|s| s.to_str()) != Some(self.kid.as_str()) {
            return Err(invalid(format!(
                "file name does not match kid {}",
                self.kid
            )));
        }
        Ok(())
    }

    pub fn to_text(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("record serializes");
        text.push('\n');
        text
    }
}

/// Read every `.seal/keys/*.json` under `root`, sorted by version then kid.
pub(crate) fn load_all(root: &Path) -> Result<Vec<KekRecord>, RecordError> {
    let dir = root.join(KEYS_DIR);
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(RecordError::Read { path: dir, source }),
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|source| RecordError::Read {
                path: dir.clone(),
                source,
            })?
            .path();
        if path.extension().and_then(|e| e.to_str()) == Some("json") {
            let text = fs::read(&path).map_err(|source| RecordError::Read {
                path: path.clone(),
                source,
            })?;
            files.push((path, text));
        }
    }
    parse_all(files)
}

/// Parse and validate records given as (path, content), sorted by version
/// then kid. Used for work-tree files and for blobs from the index or a tree.
pub(crate) fn parse_all(files: Vec<(PathBuf, Vec<u8>)>) -> Result<Vec<KekRecord>, RecordError> {
    let mut records = Vec::new();
    for (path, text) in files {
        let record: KekRecord =
            serde_json::from_slice(&text).map_err(|source| RecordError::Parse {
                path: path.clone(),
                source,
            })?;
        record.validate(&path)?;
        records.push(record);
    }
    records.sort_by(|a, b| (a.version, &a.kid).cmp(&(b.version, &b.kid)));
    Ok(records)
}

/// Where `kid`'s record is in a repository: `.seal/keys/<kid>.json`.
pub fn repo_path(kid: &Kid) -> String {
    format!("{KEYS_DIR}/{kid}.json")
}

/// Write a record to `.seal/keys/<kid>.json`.
pub fn store(root: &Path, record: &KekRecord) -> Result<PathBuf, RecordError> {
    let dir = root.join(KEYS_DIR);
    fs::create_dir_all(&dir).map_err(|source| RecordError::Write {
        path: dir.clone(),
        source,
    })?;
    let path = root.join(repo_path(&record.kid));
    // Whole or not at all: a lifecycle command killed mid-write must not
    // leave a record that no clone can parse.
    crate::atomic_file::write_shared(&path, record.to_text().as_bytes()).map_err(|e| {
        RecordError::Write {
            path: e.path,
            source: e.source,
        }
    })?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_validation() {
        let tmp = tempfile::tempdir().unwrap();
        let secret = crate::secret::KekSecret::generate();
        let record = KekRecord::new_x25519(&secret.public(), 1);
        let path = store(tmp.path(), &record).unwrap();
        assert_eq!(load_all(tmp.path()).unwrap(), vec![record.clone()]);
        let other = KekRecord::new_x25519(&crate::secret::KekSecret::generate().public(), 2);
        let forged = KekRecord {
            public_key: other.public_key,
            ..record
        };
        fs::write(&path, forged.to_text()).unwrap();
        assert!(load_all(tmp.path())
            .unwrap_err()
            .to_string()
            .contains("does not match"));
    }

    #[test]
    fn created_at_must_be_rfc3339_utc() {
        let tmp = tempfile::tempdir().unwrap();
        let secret = crate::secret::KekSecret::generate();
        let good = KekRecord::new_x25519(&secret.public(), 1);
        assert!(good.created().is_some(), "{}", good.created_at);
        for bad in ["2026-13-01T00:00:00Z", "2026-01-02", "yesterday", ""] {
            let record = KekRecord {
                created_at: bad.to_owned(),
                ..good.clone()
            };
            let path = store(tmp.path(), &record).unwrap();
            let err = load_all(tmp.path()).unwrap_err().to_string();
            assert!(
                err.contains(&path.display().to_string()) && err.contains("created_at"),
                "{bad}: {err}"
            );
        }
    }
}
