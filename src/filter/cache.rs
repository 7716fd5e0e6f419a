//! The clean cache: for each envelope blob this clone has sealed or opened, a
//! keyed BLAKE3 hash of its plaintext. It lets `clean` recognise unchanged
//! plaintext and return the very same envelope (so `git status` stays clean)
//! without unwrapping a DEK per file.
//!
//! The hash key is derived from the active KEK's private half, so the cache
//! tells nothing to someone without the key. It lives in the common git dir
//! (`seal/clean-cache-<kid>`), is never committed, and is append-only:
//! fixed-size records, appended in one write per process, so concurrent Git
//! commands never corrupt it (a torn final record is ignored).

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;

use crate::kid::Kid;
use crate::repo::Oid;

const OID_LEN: usize = 20;
const MAC_LEN: usize = 32;
const RECORD: usize = OID_LEN + MAC_LEN;
/// Plaintexts larger than this are not cached (see [`CleanCache::mac`]).
pub const MAX_CACHED: usize = 64 << 20;

pub struct CleanCache {
    path: PathBuf,
    key: zeroize::Zeroizing<[u8; 32]>,
    entries: HashMap<[u8; OID_LEN], [u8; MAC_LEN]>,
    pending: Vec<u8>,
}

impl CleanCache {
    pub fn open(
        common_dir: &std::path::Path,
        kid: &Kid,
        key: zeroize::Zeroizing<[u8; 32]>,
    ) -> CleanCache {
        let path = common_dir.join("seal").join(format!("clean-cache-{kid}"));
        let mut entries = HashMap::new();
        if let Ok(bytes) = fs::read(&path) {
            for record in bytes.chunks_exact(RECORD) {
                let (oid, mac) = record.split_at(OID_LEN);
                entries.insert(oid.try_into().expect("20"), mac.try_into().expect("32"));
            }
        }
        CleanCache {
            path,
            key,
            entries,
            pending: Vec::new(),
        }
    }

    /// The keyed hash of a plaintext, the `aad` its envelope carries and the
    /// kids it is wrapped to (sorted), so a hit also means "same aad, same
    /// recipients" and the envelope need not be parsed. `None` for
    /// plaintexts over [`MAX_CACHED`]: hashing them would cost more than
    /// opening the envelope once when Git asks again.
    pub fn mac(&self, aad: Option<&str>, kids: &[Kid], plaintext: &[u8]) -> Option<[u8; MAC_LEN]> {
        if plaintext.len() > MAX_CACHED {
            return None;
        }
        let mut hasher = blake3::Hasher::new_keyed(&self.key);
        let mut sorted: Vec<&str> = kids.iter().map(Kid::as_str).collect();
        sorted.sort_unstable();
        hasher.update(&(sorted.len() as u64).to_le_bytes());
        for kid in sorted {
            hasher.update(&(kid.len() as u64).to_le_bytes());
            hasher.update(kid.as_bytes());
        }
        match aad {
            Some(aad) => {
                hasher.update(&[1]);
                hasher.update(&(aad.len() as u64).to_le_bytes());
                hasher.update(aad.as_bytes());
            }
            None => {
                hasher.update(&[0]);
            }
        }
        hasher.update(plaintext);
        Some(*hasher.finalize().as_bytes())
    }

    /// Is `blob` known to hold an envelope of plaintext with this MAC?
    pub fn matches(&self, blob: Oid, mac: &[u8; MAC_LEN]) -> bool {
        blob.as_bytes()
            .try_into()
            .ok()
            .and_then(|oid: [u8; OID_LEN]| self.entries.get(&oid))
            .is_some_and(|known| known == mac)
    }

    pub fn record(&mut self, blob: Oid, mac: [u8; MAC_LEN]) {
        let Ok(oid) = <[u8; OID_LEN]>::try_from(blob.as_bytes()) else {
            return;
        };
        if self.entries.insert(oid, mac) != Some(mac) {
            self.pending.extend_from_slice(&oid);
            self.pending.extend_from_slice(&mac);
        }
    }

    /// Append new records. Failure only costs speed, so it is ignored.
    pub fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        if let Some(dir) = self.path.parent() {
            let _ = fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir);
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path);
        if let Ok(mut file) = file {
            let _ = file.write_all(&self.pending);
        }
        self.pending.clear();
    }
}

impl Drop for CleanCache {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persists_and_keys_matter() {
        let tmp = tempfile::tempdir().unwrap();
        let kid = Kid::parse("k_0000000000000001").unwrap();
        let blob = Oid::from_bytes(&[3; 20]).unwrap();
        {
            let mut cache = CleanCache::open(tmp.path(), &kid, [1; 32].into());
            let mac = cache
                .mac(None, std::slice::from_ref(&kid), b"secret")
                .unwrap();
            cache.record(blob, mac);
        }
        let one = [kid.clone()];
        let cache = CleanCache::open(tmp.path(), &kid, [1; 32].into());
        assert!(cache.matches(blob, &cache.mac(None, &one, b"secret").unwrap()));
        assert!(!cache.matches(blob, &cache.mac(None, &one, b"other").unwrap()));
        assert!(!cache.matches(blob, &cache.mac(Some(""), &one, b"secret").unwrap()));
        // Other recipients: not the same envelope any more.
        let two = [kid.clone(), Kid::parse("k_0000000000000002").unwrap()];
        assert!(!cache.matches(blob, &cache.mac(None, &two, b"secret").unwrap()));
        let other_key = CleanCache::open(tmp.path(), &kid, [2; 32].into());
        assert!(!other_key.matches(blob, &other_key.mac(None, &one, b"secret").unwrap()));
    }
}
