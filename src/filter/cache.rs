//! The clean cache: for each envelope blob this clone has sealed or opened, a
//! keyed BLAKE3 hash of its plaintext. It lets `clean` recognise unchanged
//! plaintext and return the very same envelope (so `git status` stays clean)
//! without unwrapping a DEK per file.
//!
//! The hash key is derived from the active KEK's private half, so the cache
//! tells nothing to someone without the key. Beside each hash it keeps the
//! envelope text itself when it is small (public data: the blob's content),
//! so that `git status` over many touched files does not read and inflate
//! every blob; a stored text is used only if it hashes to its blob id.
//!
//! It lives in the common git dir (`seal/clean-cache-v2-<kid>`), is never
//! committed, and is append-only: records appended in one write per
//! process, so concurrent Git commands never corrupt it (a torn final record
//! is ignored). Past [`MAX_FILE`] it is started afresh.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;

use crate::kid::Kid;
use crate::repo::Oid;

const OID_LEN: usize = 20;
const MAC_LEN: usize = 32;
/// A record: blob id, MAC, text length (u32 LE), then the text.
const HEADER: usize = OID_LEN + MAC_LEN + 4;
/// Plaintexts larger than this are not cached (see [`CleanCache::mac`]).
pub const MAX_CACHED: usize = 64 << 20;
/// Envelope texts up to this size are kept in the cache.
const MAX_TEXT: usize = 16 << 10;
/// A cache file past this size is dropped and started again.
const MAX_FILE: u64 = 64 << 20;

pub struct CleanCache {
    path: PathBuf,
    key: zeroize::Zeroizing<[u8; 32]>,
    /// The file as read, which stored texts point into.
    stored: Vec<u8>,
    /// MAC and the stored text's range in `stored` (empty if not kept).
    entries: HashMap<[u8; OID_LEN], ([u8; MAC_LEN], std::ops::Range<usize>)>,
    pending: Vec<u8>,
}

impl std::fmt::Debug for CleanCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CleanCache")
            .field("path", &self.path)
            .field("entries", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl CleanCache {
    pub fn open(
        common_dir: &std::path::Path,
        kid: &Kid,
        key: zeroize::Zeroizing<[u8; 32]>,
    ) -> CleanCache {
        let path = common_dir
            .join("seal")
            .join(format!("clean-cache-v2-{kid}"));
        // The first format (hashes only, without recipients) is not read.
        let _ = fs::remove_file(common_dir.join("seal").join(format!("clean-cache-{kid}")));
        let stored = match fs::metadata(&path) {
            Ok(meta) if meta.len() > MAX_FILE => {
                let _ = fs::remove_file(&path);
                Vec::new()
            }
            _ => fs::read(&path).unwrap_or_default(),
        };
        let mut entries = HashMap::new();
        let mut at = 0;
        while stored.len() - at >= HEADER {
            let oid: [u8; OID_LEN] = stored[at..at + OID_LEN].try_into().expect("20");
            let mac: [u8; MAC_LEN] = stored[at + OID_LEN..at + OID_LEN + MAC_LEN]
                .try_into()
                .expect("32");
            let len =
                u32::from_le_bytes(stored[at + HEADER - 4..at + HEADER].try_into().expect("4"));
            let text = at + HEADER..at + HEADER + len as usize;
            if text.end > stored.len() {
                break; // a torn final record
            }
            at = text.end;
            entries.insert(oid, (mac, text));
        }
        CleanCache {
            path,
            key,
            stored,
            entries,
            pending: Vec::new(),
        }
    }

    /// The keyed hash of a plaintext, the `aad` its envelope carries and the
    /// kids it is wrapped to (sorted), so a hit also means "same aad, same
    /// recipients" and the envelope need not be parsed. `None` for
    /// plaintexts over [`MAX_CACHED`]: hashing them would cost more than
    /// opening the envelope once when Git asks again.
    pub(crate) fn mac(
        &self,
        aad: Option<&str>,
        kids: &[Kid],
        plaintext: &[u8],
    ) -> Option<[u8; MAC_LEN]> {
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
        self.entry(blob).is_some_and(|(known, _)| known == mac)
    }

    /// The stored text of `blob`, if kept and it still hashes to `blob`.
    pub fn text(&self, blob: Oid) -> Option<&[u8]> {
        let (_, range) = self.entry(blob)?;
        let text = &self.stored[range.clone()];
        (!text.is_empty() && super::blob_id(text) == blob).then_some(text)
    }

    fn entry(&self, blob: Oid) -> Option<&([u8; MAC_LEN], std::ops::Range<usize>)> {
        let oid: [u8; OID_LEN] = blob.as_bytes().try_into().ok()?;
        self.entries.get(&oid)
    }

    /// Remember that `blob` (whose content is `text`) is an envelope of the
    /// plaintext with this MAC.
    pub fn record(&mut self, blob: Oid, mac: [u8; MAC_LEN], text: &[u8]) {
        let Ok(oid) = <[u8; OID_LEN]>::try_from(blob.as_bytes()) else {
            return;
        };
        if self
            .entries
            .get(&oid)
            .is_some_and(|(known, _)| *known == mac)
        {
            return;
        }
        let kept: &[u8] = if text.len() <= MAX_TEXT { text } else { &[] };
        self.entries.insert(oid, (mac, 0..0));
        self.pending.extend_from_slice(&oid);
        self.pending.extend_from_slice(&mac);
        self.pending
            .extend_from_slice(&(kept.len() as u32).to_le_bytes());
        self.pending.extend_from_slice(kept);
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
            cache.record(blob, mac, b"");
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

    /// A kept text is handed back only while it hashes to its blob id; a
    /// torn last record is ignored.
    #[test]
    fn keeps_small_texts_and_checks_them() {
        let tmp = tempfile::tempdir().unwrap();
        let kid = Kid::parse("k_0000000000000001").unwrap();
        let kids = std::slice::from_ref(&kid);
        let text = b"{\"an\": \"envelope\"}\n".to_vec();
        let blob = super::super::blob_id(&text);
        let wrong = Oid::from_bytes(&[9; 20]).unwrap();
        {
            let mut cache = CleanCache::open(tmp.path(), &kid, [1; 32].into());
            let mac = cache.mac(None, kids, b"plain").unwrap();
            cache.record(blob, mac, &text);
            cache.record(wrong, mac, &text);
        }
        let cache = CleanCache::open(tmp.path(), &kid, [1; 32].into());
        assert_eq!(cache.text(blob), Some(&text[..]));
        assert!(cache.matches(wrong, &cache.mac(None, kids, b"plain").unwrap()));
        assert_eq!(cache.text(wrong), None, "text that is not the blob's");
        drop(cache);
        // Cut the file inside the second record.
        let path = tmp
            .path()
            .join("seal")
            .join(format!("clean-cache-v2-{kid}"));
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let cache = CleanCache::open(tmp.path(), &kid, [1; 32].into());
        assert_eq!(cache.text(blob), Some(&text[..]));
        assert!(!cache.matches(wrong, &cache.mac(None, kids, b"plain").unwrap()));
    }
}
