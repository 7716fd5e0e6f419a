//! The `file` provider (default): one key file per KEK at
//! `<user data dir>/git-seal/keys/<kid>.key` (`GIT_SEAL_KEY_DIR` overrides),
//! holding 64 lowercase hex digits. Files are 0600 and the directory 0700; a
//! key file readable by group or others is refused, as ssh does.
//!
//! Keys are loaded lazily, by kid, so an unrelated key file never gets in the
//! way. The key file is never inside a work tree.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::envelope::{Recipient, Wrap};
use crate::keys::x25519;
use crate::keys::{KeyError, KeyProvider};
use crate::kid::Kid;
use crate::secret::{Dek, KekSecret};

pub const DIR_VAR: &str = "GIT_SEAL_KEY_DIR";

pub struct FileKeys {
    dir: PathBuf,
    loaded: Mutex<HashMap<Kid, KekSecret>>,
}

/// Where key files live on this machine.
pub fn key_dir() -> Result<PathBuf, KeyError> {
    if let Some(dir) = std::env::var_os(DIR_VAR).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let base = directories::BaseDirs::new().ok_or(KeyError::NoKeyDir)?;
    Ok(base.data_dir().join("git-seal").join("keys"))
}

/// Names the directory, never the keys.
impl std::fmt::Debug for FileKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileKeys")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl FileKeys {
    pub fn open_default() -> Result<FileKeys, KeyError> {
        Ok(FileKeys::new(key_dir()?))
    }

    pub fn new(dir: PathBuf) -> FileKeys {
        FileKeys {
            dir,
            loaded: Mutex::new(HashMap::new()),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn path_of(&self, kid: &Kid) -> PathBuf {
        self.dir.join(format!("{kid}.key"))
    }

    /// Load the private key for `kid`: `None` if there is no key file.
    pub fn load(&self, kid: &Kid) -> Option<Result<KekSecret, KeyError>> {
        if let Some(secret) = self.loaded.lock().expect("key cache").get(kid) {
            return Some(Ok(secret.clone()));
        }
        let path = self.path_of(kid);
        let meta = match fs::metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(source) => {
                return Some(Err(KeyError::Read {
                    kid: kid.clone(),
                    path,
                    source,
                }))
            }
        };
        Some(self.read_checked(kid, &path, meta.permissions().mode()))
    }

    fn read_checked(&self, kid: &Kid, path: &Path, mode: u32) -> Result<KekSecret, KeyError> {
        // As ssh refuses a key in a directory others can enter.
        if let Ok(dir) = fs::metadata(&self.dir) {
            let dir_mode = dir.permissions().mode() & 0o777;
            if dir_mode & 0o077 != 0 {
                return Err(KeyError::DirPermissions {
                    path: self.dir.clone(),
                    mode: dir_mode,
                });
            }
        }
        if mode & 0o077 != 0 {
            return Err(KeyError::Permissions {
                kid: kid.clone(),
                path: path.to_owned(),
                mode: mode & 0o777,
            });
        }
        let text =
            zeroize::Zeroizing::new(fs::read_to_string(path).map_err(|source| KeyError::Read {
                kid: kid.clone(),
                path: path.to_owned(),
                source,
            })?);
        let secret = KekSecret::from_hex(&text).map_err(|source| KeyError::Malformed {
            kid: kid.clone(),
            path: path.to_owned(),
            source,
        })?;
        let actual = Kid::of_x25519(&secret.public());
        if actual != *kid {
            return Err(KeyError::KidMismatch {
                kid: kid.clone(),
                actual,
                path: path.to_owned(),
            });
        }
        self.loaded
            .lock()
            .expect("key cache")
            .insert(kid.clone(), secret.clone());
        Ok(secret)
    }

    /// Store a new private key. Never replaces an existing key file.
    pub fn store(&self, secret: &KekSecret) -> Result<PathBuf, KeyError> {
        let kid = Kid::of_x25519(&secret.public());
        let write_err = |path: &Path| {
            let path = path.to_owned();
            move |source| KeyError::Write { path, source }
        };
        if !self.dir.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.dir)
                .map_err(write_err(&self.dir))?;
        }
        let mode = fs::metadata(&self.dir)
            .map_err(write_err(&self.dir))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(KeyError::DirPermissions {
                path: self.dir.clone(),
                mode: mode & 0o777,
            });
        }
        let path = self.path_of(&kid);
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(write_err(&path))?;
        let mut line = secret.to_hex();
        line.push('\n');
        file.write_all(line.as_bytes()).map_err(write_err(&path))?;
        file.sync_all().map_err(write_err(&path))?;
        Ok(path)
    }
}

impl KeyProvider for FileKeys {
    fn name(&self) -> &'static str {
        "file"
    }

    fn available(&self) -> Vec<Kid> {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut kids: Vec<Kid> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                Kid::parse(name.strip_suffix(".key")?).ok()
            })
            .collect();
        kids.sort();
        kids
    }

    fn wrap(&self, kid: &Kid, dek: &Dek) -> Option<Result<Recipient, KeyError>> {
        Some(
            self.load(kid)?
                .and_then(|secret| x25519::wrap(kid, &secret.public(), dek)),
        )
    }

    fn unwrap(&self, r: &Recipient) -> Option<Result<Dek, KeyError>> {
        if !matches!(r.wrap, Wrap::X25519 { .. }) {
            return None;
        }
        Some(
            self.load(&r.kid)?
                .and_then(|secret| x25519::unwrap(&secret, r)),
        )
    }

    fn has(&self, kid: &Kid) -> bool {
        matches!(self.load(kid), Some(Ok(_)))
    }

    fn local_key(&self, kid: &Kid, purpose: &str) -> Option<zeroize::Zeroizing<[u8; 32]>> {
        let secret = self.load(kid)?.ok()?;
        Some(crate::keys::derive_local_key(&secret, purpose))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_load_and_permission_checks() {
        let tmp = tempfile::tempdir().unwrap();
        let keys = FileKeys::new(tmp.path().join("keys"));
        let secret = KekSecret::generate();
        let kid = Kid::of_x25519(&secret.public());
        let path = keys.store(&secret).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::metadata(keys.dir()).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert!(
            keys.store(&secret).is_err(),
            "must never replace a key file"
        );
        assert_eq!(keys.available(), vec![kid.clone()]);
        assert!(keys.has(&kid));

        let fresh = FileKeys::new(keys.dir().to_owned());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = fresh.load(&kid).unwrap().err().unwrap().to_string();
        assert!(
            err.contains("chmod 600") && err.contains(kid.as_str()),
            "{err}"
        );

        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let other = KekSecret::generate();
        let wrong = keys.dir().join("k_0000000000000000.key");
        fs::write(&wrong, other.to_hex().as_bytes()).unwrap();
        fs::set_permissions(&wrong, fs::Permissions::from_mode(0o600)).unwrap();
        let err = fresh
            .load(&Kid::parse("k_0000000000000000").unwrap())
            .unwrap()
            .err()
            .unwrap();
        assert!(matches!(err, KeyError::KidMismatch { .. }));
    }
}
