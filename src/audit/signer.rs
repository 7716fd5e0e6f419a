//! Signer keys: one ed25519 key per user that signs audit entries, kept
//! beside the KEK files (`<key dir>/../signers/ed25519`, OpenSSH format, so
//! `ssh-keygen` can use it too), with the same rules: file 0600, directory
//! 0700, refused if group or others can read it. `GIT_SEAL_SIGNER_DIR`
//! overrides the directory.
//!
//! Signatures are SSHSIG (namespace `git`, SHA-512), the format
//! `git verify-commit` checks with `gpg.format=ssh`. Nothing here ever
//! prints private material: `Debug` shows the fingerprint only.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ssh_key::{HashAlg, LineEnding, PrivateKey, PublicKey};

use super::AuditError;

#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    #[error("no signer key at {}", path.display())]
    Missing { path: PathBuf },
    #[error(transparent)]
    KeyDir(#[from] crate::keys::KeyError),
    #[error("signer key {} has mode {mode:o}, readable by others; run `chmod 600 {}`", path.display(), path.display())]
    Permissions { path: PathBuf, mode: u32 },
    #[error("signer directory {} has mode {mode:o}; run `chmod 700 {}`", path.display(), path.display())]
    DirPermissions { path: PathBuf, mode: u32 },
    #[error("{} is not an OpenSSH ed25519 private key", path.display())]
    NotAKey { path: PathBuf },
    #[error("{} must be an unencrypted ed25519 key", path.display())]
    WrongKind { path: PathBuf },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot {what}: {source}")]
    Ssh {
        what: &'static str,
        #[source]
        source: ssh_key::Error,
    },
}

pub const DIR_VAR: &str = "GIT_SEAL_SIGNER_DIR";
/// Git's namespace for commit signatures.
pub const NAMESPACE: &str = "git";
const FILE: &str = "ed25519";

pub struct Signer {
    key: PrivateKey,
    fingerprint: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// Where this user's signer key lives.
fn signer_dir() -> Result<PathBuf, AuditError> {
    if let Some(dir) = std::env::var_os(DIR_VAR).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let keys = crate::keys::file::key_dir().map_err(SignerError::from)?;
    Ok(match keys.parent() {
        Some(parent) => parent.join("signers"),
        None => keys.join("signers"),
    })
}

impl Signer {
    /// This user's signer, created on first need.
    pub fn load_or_create() -> Result<Signer, AuditError> {
        Signer::load_or_create_in(&signer_dir()?)
    }

    /// This user's signer if one exists (never creates one).
    pub fn load() -> Result<Option<Signer>, AuditError> {
        let path = signer_dir()?.join(FILE);
        if !path.exists() {
            return Ok(None);
        }
        Signer::read(&path).map(Some)
    }

    pub fn load_or_create_in(dir: &Path) -> Result<Signer, AuditError> {
        let path = dir.join(FILE);
        match Signer::read(&path) {
            Err(AuditError::Signer(SignerError::Missing { .. })) => {}
            other => return other,
        }
        ensure_private_dir(dir)?;
        let key = PrivateKey::random(&mut rand_core::OsRng, ssh_key::Algorithm::Ed25519).map_err(
            |source| SignerError::Ssh {
                what: "make a signer key",
                source,
            },
        )?;
        let text = key
            .to_openssh(LineEnding::LF)
            .map_err(|source| SignerError::Ssh {
                what: "encode the signer key",
                source,
            })?;
        // Write a private temporary file, then link it into place: of
        // several processes creating the key at once, exactly one wins and
        // the others read its key.
        let tmp = dir.join(format!(".{FILE}.{}.tmp", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()
        };
        let written = write();
        let linked = written.and_then(|()| fs::hard_link(&tmp, &path));
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(write_error(&path, e)),
        }
        let signer = Signer::read(&path)?;
        let public = format!("{}\n", signer.public_openssh());
        let _ = fs::write(dir.join(format!("{FILE}.pub")), public);
        Ok(signer)
    }

    fn read(path: &Path) -> Result<Signer, AuditError> {
        if let Some(dir) = path.parent().filter(|d| d.exists()) {
            check_private_dir(dir)?;
        }
        let meta = match fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(SignerError::Missing {
                    path: path.to_owned(),
                }
                .into())
            }
            Err(e) => return Err(read_error(path, e)),
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(SignerError::Permissions {
                path: path.to_owned(),
                mode,
            }
            .into());
        }
        let text =
            zeroize::Zeroizing::new(fs::read_to_string(path).map_err(|e| read_error(path, e))?);
        let key = PrivateKey::from_openssh(text.as_bytes()).map_err(|_| SignerError::NotAKey {
            path: path.to_owned(),
        })?;
        if key.algorithm() != ssh_key::Algorithm::Ed25519 || key.is_encrypted() {
            return Err(SignerError::WrongKind {
                path: path.to_owned(),
            }
            .into());
        }
        Ok(Signer::from_key(key))
    }

    fn from_key(key: PrivateKey) -> Signer {
        let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
        Signer { key, fingerprint }
    }

    /// `SHA256:…`, as `ssh-keygen -l` shows it.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// `ssh-ed25519 AAAA…` (no comment).
    pub fn public_openssh(&self) -> String {
        let public = PublicKey::new(self.key.public_key().key_data().clone(), "");
        public.to_openssh().expect("ed25519 public key encodes")
    }

    /// An SSHSIG (namespace `git`) over `message`, PEM-armoured.
    pub fn sign(&self, message: &[u8]) -> Result<String, AuditError> {
        let sig = self
            .key
            .sign(NAMESPACE, HashAlg::Sha512, message)
            .map_err(|source| SignerError::Ssh {
                what: "sign",
                source,
            })?;
        Ok(sig
            .to_pem(LineEnding::LF)
            .map_err(|source| SignerError::Ssh {
                what: "encode a signature",
                source,
            })?)
    }
}

fn ensure_private_dir(dir: &Path) -> Result<(), AuditError> {
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| write_error(dir, e))?;
    }
    check_private_dir(dir)
}

/// Refuse a signer directory that group or others can enter, as ssh
/// refuses a loose key.
fn check_private_dir(dir: &Path) -> Result<(), AuditError> {
    let mode = fs::metadata(dir)
        .map_err(|e| read_error(dir, e))?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        return Err(SignerError::DirPermissions {
            path: dir.to_owned(),
            mode,
        }
        .into());
    }
    Ok(())
}

fn read_error(path: &Path, source: std::io::Error) -> AuditError {
    SignerError::Read {
        path: path.to_owned(),
        source,
    }
    .into()
}

fn write_error(path: &Path, source: std::io::Error) -> AuditError {
    SignerError::Write {
        path: path.to_owned(),
        source,
    }
    .into()
}

/// Parse an OpenSSH ed25519 public key line; returns (key line without
/// comment, fingerprint, comment).
pub fn parse_public(text: &str) -> Result<(String, String, String), String> {
    let key = PublicKey::from_openssh(text.trim())
        .map_err(|e| format!("not an OpenSSH public key ({e})"))?;
    if key.algorithm() != ssh_key::Algorithm::Ed25519 {
        return Err(format!(
            "{} keys cannot sign audit entries; use ed25519",
            key.algorithm()
        ));
    }
    let comment = key.comment().to_owned();
    let bare = PublicKey::new(key.key_data().clone(), "");
    Ok((
        bare.to_openssh().map_err(|e| e.to_string())?,
        key.fingerprint(HashAlg::Sha256).to_string(),
        comment,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_private_and_signs() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("signers");
        let a = Signer::load_or_create_in(&dir).unwrap();
        let b = Signer::load_or_create_in(&dir).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert!(a.fingerprint().starts_with("SHA256:"));
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.join(FILE)), 0o600);
        assert_eq!(mode(&dir), 0o700);
        assert!(!format!("{a:?}").contains("PRIVATE"));
        let pem = a.sign(b"hello").unwrap();
        let sig = ssh_key::SshSig::from_pem(&pem).unwrap();
        let public = PublicKey::from_openssh(&a.public_openssh()).unwrap();
        public.verify(NAMESPACE, b"hello", &sig).unwrap();
        let (_, fp, _) = parse_public(&a.public_openssh()).unwrap();
        assert_eq!(fp, a.fingerprint());

        fs::set_permissions(dir.join(FILE), fs::Permissions::from_mode(0o644)).unwrap();
        assert!(Signer::load_or_create_in(&dir)
            .unwrap_err()
            .to_string()
            .contains("chmod 600"));
    }
}
