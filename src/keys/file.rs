//! The `file` provider (default): one key file per KEK at
//! `<user data dir>/git-seal/keys/<kid>.key` (`GIT_SEAL_KEY_DIR` overrides),
//! holding 64 lowercase hex digits. Files are 0600 and the directory 0700; a
//! key file readable by group or others is refused, as ssh does.
//!
//! Keys are loaded lazily, by kid, so an unrelated key file never gets in the
//! way. The key file is never inside a work tree.
//!
//! A retired KEK's file moves to `archive/` under the key directory: still
//! used to open history, set apart from the keys in use, and erased only by
//! `git seal kek remove --destroy`.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
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

    /// Where a new key file for `kid` goes.
    pub(crate) fn path_of(&self, kid: &Kid) -> PathBuf {
        self.dir.join(format!("{kid}.key"))
    }

    /// Where a retired KEK's key file is kept.
    pub fn archive_dir(&self) -> PathBuf {
        self.dir.join("archive")
    }

    fn archived_path_of(&self, kid: &Kid) -> PathBuf {
        self.archive_dir().join(format!("{kid}.key"))
    }

    /// The key file for `kid` and its mode: in use, else archived.
    fn find(&self, kid: &Kid) -> Option<Result<(PathBuf, u32), KeyError>> {
        for path in [self.path_of(kid), self.archived_path_of(kid)] {
            match fs::metadata(&path) {
                Ok(meta) => return Some(Ok((path, meta.permissions().mode()))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Some(Err(KeyError::Read {
                        kid: kid.clone(),
                        path,
                        source,
                    }))
                }
            }
        }
        None
    }

    /// The key file that holds `kid` here, in use or archived.
    pub fn location(&self, kid: &Kid) -> Option<PathBuf> {
        self.find(kid)?.ok().map(|(path, _)| path)
    }

    /// Load the private key for `kid`: `None` if there is no key file.
    pub fn load(&self, kid: &Kid) -> Option<Result<KekSecret, KeyError>> {
        if let Some(secret) = self.loaded.lock().expect("key cache").get(kid) {
            return Some(Ok(secret.clone()));
        }
        Some(
            self.find(kid)?
                .and_then(|(path, mode)| self.read_checked(kid, &path, mode)),
        )
    }

    /// Move `kid`'s key file into `archive/` (0700), where it still opens
    /// history. One rename, so a crash leaves it in one place or the other.
    /// Returns whether it moved (false: not here, or archived already).
    pub fn archive(&self, kid: &Kid) -> Result<bool, KeyError> {
        let from = self.path_of(kid);
        if !from.exists() {
            return Ok(false);
        }
        let archive = self.archive_dir();
        let write_err = |path: &Path| {
            let path = path.to_owned();
            move |source| KeyError::Write { path, source }
        };
        if !archive.exists() {
            fs::DirBuilder::new()
                .mode(0o700)
                .create(&archive)
                .or_else(|e| match e.kind() {
                    std::io::ErrorKind::AlreadyExists => Ok(()),
                    _ => Err(e),
                })
                .map_err(write_err(&archive))?;
        }
        let to = self.archived_path_of(kid);
        fs::rename(&from, &to).map_err(write_err(&to))?;
        Ok(true)
    }

    /// Erase `kid`'s private half here (in use and archived): each file is
    /// overwritten with zeros, synced and unlinked. Returns the files
    /// erased. On copy-on-write or flash storage the old blocks may
    /// survive the overwrite; the unlink is what this promises.
    pub fn erase(&self, kid: &Kid) -> Result<Vec<PathBuf>, KeyError> {
        let mut erased = Vec::new();
        for path in [self.path_of(kid), self.archived_path_of(kid)] {
            let len = match fs::metadata(&path) {
                Ok(meta) => meta.len(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(KeyError::Read {
                        kid: kid.clone(),
                        path,
                        source,
                    })
                }
            };
            let write_err = |source| KeyError::Write {
                path: path.clone(),
                source,
            };
            let mut file = fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(write_err)?;
            file.write_all(&vec![0u8; len as usize])
                .and_then(|()| file.sync_all())
                .map_err(write_err)?;
            fs::remove_file(&path).map_err(write_err)?;
            erased.push(path);
        }
        self.loaded.lock().expect("key cache").remove(kid);
        Ok(erased)
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
        let mut line = zeroize::Zeroizing::new(secret.to_hex());
        line.push('\n');
        // Whole or not at all: a key file cut short by a crash would read
        // as a broken key.
        crate::atomic_file::create_private(&path, line.as_bytes()).map_err(write_err(&path))?;
        Ok(path)
    }
}

impl KeyProvider for FileKeys {
    fn name(&self) -> &'static str {
        "file"
    }

    fn available(&self) -> Vec<Kid> {
        let mut kids: Vec<Kid> = [self.dir.clone(), self.archive_dir()]
            .iter()
            .filter_map(|dir| fs::read_dir(dir).ok())
            .flatten()
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                Kid::parse(name.strip_suffix(".key")?).ok()
            })
            .collect();
        kids.sort();
        kids.dedup();
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

    #[test]
    fn archived_keys_still_open_and_erase_removes_both_places() {
        let tmp = tempfile::tempdir().unwrap();
        let keys = FileKeys::new(tmp.path().join("keys"));
        let secret = KekSecret::generate();
        let kid = Kid::of_x25519(&secret.public());
        keys.store(&secret).unwrap();
        assert!(keys.archive(&kid).unwrap());
        assert!(!keys.archive(&kid).unwrap(), "archived already");
        let archived = keys.archive_dir().join(format!("{kid}.key"));
        assert_eq!(keys.location(&kid), Some(archived.clone()));
        assert_eq!(
            fs::metadata(keys.archive_dir())
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
        let fresh = FileKeys::new(keys.dir().to_owned());
        assert!(fresh.has(&kid) && fresh.available() == vec![kid.clone()]);
        assert_eq!(fresh.erase(&kid).unwrap(), vec![archived]);
        assert!(!fresh.has(&kid) && fresh.available().is_empty());
        assert!(fresh.erase(&kid).unwrap().is_empty());
    }
}
