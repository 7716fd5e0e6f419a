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
//! It lives in the common git dir, is never committed, and is two
//! append-only files: `seal/clean-cache-v3-<kid>`, fixed-size records
//! (blob id, MAC, where the text is), read whole when the cache opens; and
//! `seal/clean-texts-v3-<kid>`, the texts, read where a record points, a
//! [`WINDOW`] at a time. A process that cleans one file thus reads 64 bytes
//! per known blob, not every envelope text (18 MB at 10,000 files, read in
//! 19 ms before this split), and a status over every file reads only the
//! texts it uses, however long the file has grown. Each process appends its
//! texts, then the records that point at them, a [`WRITE_AT`] of texts at a
//! time, so concurrent Git commands never corrupt it: a torn final record
//! is ignored, and a record whose text another process's append moved is
//! caught by the blob-id check. Past [`MAX_RECORDS`] or
//! [`MAX_TEXTS`] both files are started afresh.
//!
//! A third file, `seal/clean-frames-v1-<kid>`, keeps the frame of each
//! large envelope (its text without the ciphertext: recipients, nonce, tag,
//! aad; public data too), so that clean can make a large unchanged file's
//! envelope again from the plaintext Git sends rather than read and inflate
//! the blob (see [`crate::envelope::Again`], which gives no ciphertext
//! unless the plaintext is the one the frame's tag authenticates).

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::kid::Kid;
use crate::repo::Oid;

const OID_LEN: usize = 20;
const MAC_LEN: usize = 32;
/// A record: blob id, MAC, text offset (u64 LE), text length (u32 LE).
const RECORD: usize = OID_LEN + MAC_LEN + 8 + 4;
/// Up to this size a one-shot clean or smudge computes a blob id for the
/// cache (a long-running filter always does).
pub const MAX_CACHED: usize = 64 << 20;
/// Envelope texts up to this size are kept in the cache.
const MAX_TEXT: usize = 16 << 10;
/// Past these sizes the cache is dropped and started again.
const MAX_RECORDS: u64 = 64 << 20;
const MAX_TEXTS: u64 = 1 << 30;
/// Past this size the frames file is started afresh (a frame is a few
/// hundred bytes per recipient).
const MAX_FRAMES: u64 = 4 << 20;
/// A longer frame is not one (a frame with 64 recipients is ~20 KiB).
const MAX_FRAME: usize = 64 << 10;

/// What a record says of a blob: its plaintext's MAC, and where its text is.
type Known = ([u8; MAC_LEN], TextAt);

/// Where a record's text is in the texts file (empty: not kept).
#[derive(Clone, Copy)]
struct TextAt {
    offset: u64,
    len: u32,
}

/// The clean cache's hash key, derived from the active KEK's private half.
#[derive(Clone)]
pub(crate) struct MacKey(zeroize::Zeroizing<[u8; 32]>);

impl MacKey {
    /// The keyed hash of a plaintext, the `aad` its envelope carries and the
    /// kids it is wrapped to (sorted), so a hit also means "same aad, same
    /// recipients" and the envelope need not be parsed.
    pub(crate) fn mac(&self, aad: Option<&str>, kids: &[Kid], plaintext: &[u8]) -> [u8; MAC_LEN] {
        let mut hasher = self.hasher(aad, kids);
        hasher.update(plaintext);
        *hasher.finalize().as_bytes()
    }

    fn hasher(&self, aad: Option<&str>, kids: &[Kid]) -> blake3::Hasher {
        let mut hasher = blake3::Hasher::new_keyed(&self.0);
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
        hasher
    }
}

pub struct CleanCache {
    records_path: PathBuf,
    texts_path: PathBuf,
    frames_path: PathBuf,
    /// The frames file as read on first use (the last frame of a blob
    /// counts), with the frames this process added.
    frames: std::cell::OnceCell<HashMap<[u8; OID_LEN], Vec<u8>, OidHash>>,
    key: MacKey,
    /// The texts file, opened on first use (`None` inside: absent).
    texts: std::cell::OnceCell<Option<File>>,
    /// The records file as read, looked up by scanning it for the first
    /// few blobs (a one-file `git add` asks for one), then through `known`.
    stored: Vec<u8>,
    scans: std::cell::Cell<usize>,
    known: std::cell::OnceCell<HashMap<[u8; OID_LEN], Known, OidHash>>,
    /// Records this process added (their texts not readable before the
    /// flush).
    added: HashMap<[u8; OID_LEN], [u8; MAC_LEN], OidHash>,
    /// New records, their text offsets relative to `pending_texts`;
    /// written, texts first, each time the texts reach [`WRITE_AT`].
    pending: Vec<([u8; OID_LEN], [u8; MAC_LEN], TextAt)>,
    pending_texts: Vec<u8>,
    /// The part of the texts file read last.
    window: Window,
}

/// New texts (and their records) are appended each time this much has
/// gathered: a checkout of many files neither holds every text nor
/// touches fresh memory for each.
const WRITE_AT: usize = 1 << 20;

/// The texts file is read this much at a time: texts are appended in the
/// order Git sealed or checked out their files, which is the order it asks
/// for them again, so one read serves the next few dozen.
const WINDOW: usize = 64 << 10;

/// Bytes of the texts file from `offset`.
#[derive(Default)]
struct Window {
    offset: u64,
    bytes: Vec<u8>,
}

impl Window {
    /// `len` bytes at `offset`, if this window holds them.
    fn get(&self, offset: u64, len: usize) -> Option<&[u8]> {
        let start = usize::try_from(offset.checked_sub(self.offset)?).ok()?;
        self.bytes.get(start..start.checked_add(len)?)
    }
}
/// Blobs looked up by scanning the records before they are put in a map.
const SCAN_FIRST: usize = 4;

/// The records of a records file (a torn final one left out).
fn records(
    stored: &[u8],
) -> impl DoubleEndedIterator<Item = ([u8; OID_LEN], [u8; MAC_LEN], TextAt)> + '_ {
    stored.chunks_exact(RECORD).map(|record| {
        let (oid, rest) = record.split_at(OID_LEN);
        let (mac, rest) = rest.split_at(MAC_LEN);
        let (offset, len) = rest.split_at(8);
        let at = TextAt {
            offset: u64::from_le_bytes(offset.try_into().expect("8")),
            len: u32::from_le_bytes(len.try_into().expect("4")),
        };
        (oid.try_into().expect("20"), mac.try_into().expect("32"), at)
    })
}

/// Blob ids are SHA-1 output: their first eight bytes are as good a hash
/// as any, and cheaper than SipHash over twenty.
type OidHash = std::hash::BuildHasherDefault<OidHasher>;

#[derive(Default)]
struct OidHasher(u64);

impl std::hash::Hasher for OidHasher {
    fn write(&mut self, bytes: &[u8]) {
        for (i, b) in bytes.iter().take(8).enumerate() {
            self.0 ^= u64::from(*b) << (8 * i);
        }
    }

    // The array's length prefix: the same for every id.
    fn write_usize(&mut self, _: usize) {}

    fn finish(&self) -> u64 {
        self.0
    }
}

impl std::fmt::Debug for CleanCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CleanCache")
            .field("path", &self.records_path)
            .field("records", &(self.stored.len() / RECORD + self.added.len()))
            .finish_non_exhaustive()
    }
}

impl CleanCache {
    pub fn open(common_dir: &Path, kid: &Kid, key: zeroize::Zeroizing<[u8; 32]>) -> CleanCache {
        let dir = common_dir.join("seal");
        let records_path = dir.join(format!("clean-cache-v3-{kid}"));
        let texts_path = dir.join(format!("clean-texts-v3-{kid}"));
        let frames_path = dir.join(format!("clean-frames-v1-{kid}"));
        // Earlier formats are not read.
        for old in [
            format!("clean-cache-{kid}"),
            format!("clean-cache-v2-{kid}"),
        ] {
            let _ = fs::remove_file(dir.join(old));
        }
        let too_big = |path: &Path, max| fs::metadata(path).is_ok_and(|m| m.len() > max);
        if too_big(&records_path, MAX_RECORDS) || too_big(&texts_path, MAX_TEXTS) {
            let _ = fs::remove_file(&records_path);
            let _ = fs::remove_file(&texts_path);
        }
        if too_big(&frames_path, MAX_FRAMES) {
            let _ = fs::remove_file(&frames_path);
        }
        let stored = fs::read(&records_path).unwrap_or_default();
        CleanCache {
            records_path,
            texts_path,
            frames_path,
            frames: std::cell::OnceCell::new(),
            key: MacKey(key),
            texts: std::cell::OnceCell::new(),
            stored,
            scans: std::cell::Cell::new(0),
            known: std::cell::OnceCell::new(),
            added: HashMap::default(),
            pending: Vec::new(),
            pending_texts: Vec::new(),
            window: Window::default(),
        }
    }

    /// The keyed hash of a plaintext, the `aad` its envelope carries and the
    /// kids it is wrapped to: see [`MacKey::mac`].
    pub(crate) fn mac(&self, aad: Option<&str>, kids: &[Kid], plaintext: &[u8]) -> [u8; MAC_LEN] {
        self.key.mac(aad, kids, plaintext)
    }

    /// [`CleanCache::mac`] for a plaintext that comes in pieces: feed them
    /// to the hasher, then finalize.
    pub(crate) fn mac_hasher(&self, aad: Option<&str>, kids: &[Kid]) -> blake3::Hasher {
        self.key.hasher(aad, kids)
    }

    /// The key of [`CleanCache::mac`], for threads that open envelopes.
    pub(crate) fn mac_key(&self) -> MacKey {
        self.key.clone()
    }

    /// Is `blob` known to hold an envelope of plaintext with this MAC?
    pub fn matches(&self, blob: Oid, mac: &[u8; MAC_LEN]) -> bool {
        self.entry(blob).is_some_and(|(known, _)| known == *mac)
    }

    /// The stored text of `blob`, if kept and it still hashes to `blob`.
    /// Read a [`WINDOW`] at a time, so that a status over many touched
    /// files makes one read per few dozen, whatever the file's size.
    pub fn text(&mut self, blob: Oid) -> Option<Vec<u8>> {
        let (_, at) = self.entry(blob)?;
        let len = at.len as usize;
        if len == 0 {
            return None;
        }
        if self.window.get(at.offset, len).is_none() {
            let file = self
                .texts
                .get_or_init(|| File::open(&self.texts_path).ok())
                .as_ref()?;
            let bytes = &mut self.window.bytes;
            bytes.resize(WINDOW.max(len), 0);
            let mut read = 0;
            while read < bytes.len() {
                match file.read_at(&mut bytes[read..], at.offset + read as u64) {
                    Ok(0) => break,
                    Ok(n) => read += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            bytes.truncate(read);
            self.window.offset = at.offset;
        }
        let text = self.window.get(at.offset, len)?.to_vec();
        (super::blob_id(&text) == blob).then_some(text)
    }

    fn entry(&self, blob: Oid) -> Option<Known> {
        let oid: [u8; OID_LEN] = blob.as_bytes().try_into().ok()?;
        if let Some(mac) = self.added.get(&oid) {
            return Some((*mac, TextAt { offset: 0, len: 0 }));
        }
        if let Some(known) = self.known.get() {
            return known.get(&oid).copied();
        }
        if self.scans.get() < SCAN_FIRST {
            self.scans.set(self.scans.get() + 1);
            // The last record of a blob is the one that counts.
            return records(&self.stored)
                .rev()
                .find(|(o, ..)| *o == oid)
                .map(|(_, mac, at)| (mac, at));
        }
        let known = self.known.get_or_init(|| {
            let mut known =
                HashMap::with_capacity_and_hasher(self.stored.len() / RECORD, OidHash::default());
            known.extend(records(&self.stored).map(|(oid, mac, at)| (oid, (mac, at))));
            known
        });
        known.get(&oid).copied()
    }

    /// Remember that `blob` (whose content is `text`) is an envelope of the
    /// plaintext with this MAC.
    pub fn record(&mut self, blob: Oid, mac: [u8; MAC_LEN], text: &[u8]) {
        let Ok(oid) = <[u8; OID_LEN]>::try_from(blob.as_bytes()) else {
            return;
        };
        if self.entry(blob).is_some_and(|(known, _)| known == mac) {
            return;
        }
        let kept: &[u8] = if text.len() <= MAX_TEXT { text } else { &[] };
        let at = TextAt {
            offset: self.pending_texts.len() as u64,
            len: kept.len() as u32,
        };
        self.pending_texts.extend_from_slice(kept);
        // Not readable before the flush: a lookup finds no text and reads
        // the blob, as for any record without one.
        self.added.insert(oid, mac);
        self.pending.push((oid, mac, at));
        if self.pending_texts.len() >= WRITE_AT {
            self.flush();
        }
    }

    /// The frame of `blob` (a large envelope's text without its
    /// ciphertext), if recorded and well formed. Only a frame whose
    /// ciphertext is empty is one.
    pub fn frame(&self, blob: Oid) -> Option<crate::envelope::Envelope> {
        let oid: [u8; OID_LEN] = blob.as_bytes().try_into().ok()?;
        let frame = crate::envelope::parse(self.frames().get(&oid)?).ok()?;
        frame.ciphertext.is_empty().then_some(frame)
    }

    /// The frames file, read on first use.
    fn frames(&self) -> &HashMap<[u8; OID_LEN], Vec<u8>, OidHash> {
        self.frames.get_or_init(|| {
            let (frames, whole) = frames(&fs::read(&self.frames_path).unwrap_or_default());
            // A torn entry (a writer killed midway) would hide every frame
            // appended after it: start afresh, which costs only speed.
            if !whole {
                let _ = fs::remove_file(&self.frames_path);
            }
            frames
        })
    }

    /// Remember the frame of `blob`, an envelope of the plaintext recorded
    /// for it: one append of one entry (blob id, length, the frame's
    /// canonical text), so that concurrent writers interleave whole entries.
    pub fn record_frame(&mut self, blob: Oid, envelope: &crate::envelope::Envelope) {
        let Ok(oid) = <[u8; OID_LEN]>::try_from(blob.as_bytes()) else {
            return;
        };
        let text = crate::envelope::write(&envelope.frame());
        if text.len() > MAX_FRAME {
            return;
        }
        // Known already (each checkout of the file records it again).
        if self.frames().get(&oid) == Some(&text) {
            return;
        }
        let mut entry = Vec::with_capacity(OID_LEN + 4 + text.len());
        entry.extend_from_slice(&oid);
        entry.extend_from_slice(&(text.len() as u32).to_le_bytes());
        entry.extend_from_slice(&text);
        if let Some(frames) = self.frames.get_mut() {
            frames.insert(oid, text);
        }
        if let Ok(mut file) = append(&self.frames_path) {
            let _ = file.write_all(&entry);
        }
    }

    /// Append new texts, then the records that point at them. Failure only
    /// costs speed, so it is ignored.
    pub fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        // Where our texts landed: an append leaves the file's offset at
        // the end of what it wrote, whatever other processes append. (Were
        // one write split, the blob-id check refuses the misplaced texts.)
        let base = if self.pending_texts.is_empty() {
            Some(0)
        } else {
            append(&self.texts_path).ok().and_then(|mut file| {
                use std::io::Seek;
                file.write_all(&self.pending_texts).ok()?;
                let end = file.stream_position().ok()?;
                end.checked_sub(self.pending_texts.len() as u64)
            })
        };
        let mut records = Vec::with_capacity(self.pending.len() * RECORD);
        for (oid, mac, at) in &self.pending {
            let (offset, len) = match base {
                Some(base) if at.len > 0 => (base + at.offset, at.len),
                _ => (0, 0),
            };
            records.extend_from_slice(oid);
            records.extend_from_slice(mac);
            records.extend_from_slice(&offset.to_le_bytes());
            records.extend_from_slice(&len.to_le_bytes());
        }
        if let Ok(mut file) = append(&self.records_path) {
            let _ = file.write_all(&records);
        }
        self.pending.clear();
        self.pending_texts.clear();
    }
}

/// A cache file opened to append to (made 0600 if new, in a directory
/// made 0700 if missing).
fn append(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent() {
        let _ = fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir);
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// The entries of a frames file, the last of each blob kept, and whether
/// the file was whole: reading stops at a torn or implausible entry.
fn frames(mut stored: &[u8]) -> (HashMap<[u8; OID_LEN], Vec<u8>, OidHash>, bool) {
    let mut frames = HashMap::default();
    while stored.len() >= OID_LEN + 4 {
        let (oid, rest) = stored.split_at(OID_LEN);
        let (len, rest) = rest.split_at(4);
        let len = u32::from_le_bytes(len.try_into().expect("4")) as usize;
        if len > MAX_FRAME || len > rest.len() {
            break;
        }
        let (text, rest) = rest.split_at(len);
        frames.insert(oid.try_into().expect("20"), text.to_vec());
        stored = rest;
    }
    (frames, stored.is_empty())
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
            let mac = cache.mac(None, std::slice::from_ref(&kid), b"secret");
            cache.record(blob, mac, b"");
        }
        let one = [kid.clone()];
        let cache = CleanCache::open(tmp.path(), &kid, [1; 32].into());
        assert!(cache.matches(blob, &cache.mac(None, &one, b"secret")));
        assert!(!cache.matches(blob, &cache.mac(None, &one, b"other")));
        assert!(!cache.matches(blob, &cache.mac(Some(""), &one, b"secret")));
        // Other recipients: not the same envelope any more.
        let two = [kid.clone(), Kid::parse("k_0000000000000002").unwrap()];
        assert!(!cache.matches(blob, &cache.mac(None, &two, b"secret")));
        let other_key = CleanCache::open(tmp.path(), &kid, [2; 32].into());
        assert!(!other_key.matches(blob, &other_key.mac(None, &one, b"secret")));
    }

    fn envelope_with(nonce: u8, tag: u8, ciphertext: Vec<u8>) -> crate::envelope::Envelope {
        use crate::envelope::{Envelope, Recipient, Wrap};
        Envelope {
            recipients: vec![Recipient {
                kid: Kid::parse("k_0000000000000001").unwrap(),
                wrap: Wrap::X25519 {
                    ephemeral_pub: [9; 32],
                },
                wrapped_dek: [7; 48],
            }],
            nonce: [nonce; 12],
            ciphertext,
            tag: [tag; 16],
            aad: Some("path:secrets/big.bin".into()),
        }
    }

    /// A frame is the envelope without its ciphertext; it persists beside
    /// another process's, the last of a blob counts, and a torn or
    /// implausible entry ends the reading without harm.
    #[test]
    fn frames_persist_and_the_last_counts() {
        let tmp = tempfile::tempdir().unwrap();
        let kid = Kid::parse("k_0000000000000001").unwrap();
        let (a, b) = (
            Oid::from_bytes(&[3; 20]).unwrap(),
            Oid::from_bytes(&[4; 20]).unwrap(),
        );
        let open = || CleanCache::open(tmp.path(), &kid, [1; 32].into());
        let mut first = open();
        let mut second = open();
        first.record_frame(a, &envelope_with(1, 1, vec![5; 100]));
        second.record_frame(b, &envelope_with(2, 2, vec![6; 100]));
        first.record_frame(a, &envelope_with(3, 3, vec![]));
        let cache = open();
        assert_eq!(cache.frame(a), Some(envelope_with(3, 3, vec![])));
        assert_eq!(cache.frame(b), Some(envelope_with(2, 2, vec![])));
        assert_eq!(cache.frame(Oid::from_bytes(&[5; 20]).unwrap()), None);
        // A frame known already is not appended again (a checkout records
        // each large file's frame every time).
        let path = tmp.path().join("seal/clean-frames-v1-k_0000000000000001");
        let size = std::fs::metadata(&path).unwrap().len();
        open().record_frame(b, &envelope_with(2, 2, vec![7; 10]));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), size);

        // A torn last entry: the ones before it still count, and the file
        // is started afresh (what a later writer appends would be lost
        // behind it).
        let whole = std::fs::read(&path).unwrap();
        std::fs::write(&path, &whole[..whole.len() - 10]).unwrap();
        let cache = open();
        assert_eq!(cache.frame(b), Some(envelope_with(2, 2, vec![])));
        assert_eq!(cache.frame(a), Some(envelope_with(1, 1, vec![])));
        assert!(!path.exists());
        let mut cache = open();
        cache.record_frame(a, &envelope_with(4, 4, vec![]));
        assert_eq!(open().frame(a), Some(envelope_with(4, 4, vec![])));
        // An entry that is no frame (a ciphertext, or noise) is none.
        let mut noise = whole[..24].to_vec();
        noise.extend(std::iter::repeat_n(b'x', whole.len() - 24));
        std::fs::write(&path, &noise).unwrap();
        assert_eq!(open().frame(a), None);
        let mut full = a.as_bytes().to_vec();
        let text = crate::envelope::write(&envelope_with(1, 1, vec![5; 3]));
        full.extend_from_slice(&(text.len() as u32).to_le_bytes());
        full.extend_from_slice(&text);
        std::fs::write(&path, &full).unwrap();
        assert_eq!(open().frame(a), None);
        // An implausible length ends the reading.
        let mut long = a.as_bytes().to_vec();
        long.extend_from_slice(&u32::MAX.to_le_bytes());
        std::fs::write(&path, &long).unwrap();
        assert_eq!(open().frame(a), None);
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
            let mac = cache.mac(None, kids, b"plain");
            cache.record(blob, mac, &text);
            cache.record(wrong, mac, &text);
        }
        let mut cache = CleanCache::open(tmp.path(), &kid, [1; 32].into());
        assert_eq!(cache.text(blob), Some(text.clone()));
        assert!(cache.matches(wrong, &cache.mac(None, kids, b"plain")));
        assert_eq!(cache.text(wrong), None, "text that is not the blob's");
        drop(cache);
        // Cut the file inside the second record.
        let path = tmp
            .path()
            .join("seal")
            .join(format!("clean-cache-v3-{kid}"));
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let mut cache = CleanCache::open(tmp.path(), &kid, [1; 32].into());
        assert_eq!(cache.text(blob), Some(text.clone()));
        assert!(!cache.matches(wrong, &cache.mac(None, kids, b"plain")));
    }

    /// Texts read a window at a time come back whole and checked, in the
    /// order they were kept, backwards, and at the end of the file.
    #[test]
    fn texts_read_by_the_window_come_back_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let kid = Kid::parse("k_0000000000000001").unwrap();
        let kids = std::slice::from_ref(&kid);
        // ~290 KB of texts: several windows, texts across their edges.
        let texts: Vec<Vec<u8>> = (0..200)
            .map(|i| format!("{{\"n\": {i}, \"pad\": \"{}\"}}\n", "x".repeat(700 + 7 * i)))
            .map(String::into_bytes)
            .collect();
        let blobs: Vec<Oid> = texts.iter().map(|t| super::super::blob_id(t)).collect();
        {
            let mut cache = CleanCache::open(tmp.path(), &kid, [1; 32].into());
            let mac = cache.mac(None, kids, b"plain");
            for (blob, text) in blobs.iter().zip(&texts) {
                cache.record(*blob, mac, text);
            }
        }
        let texts_file = tmp
            .path()
            .join("seal")
            .join(format!("clean-texts-v3-{kid}"));
        assert!(std::fs::metadata(&texts_file).unwrap().len() > 4 * WINDOW as u64);
        let mut cache = CleanCache::open(tmp.path(), &kid, [1; 32].into());
        for order in [false, true] {
            let mut all: Vec<usize> = (0..texts.len()).collect();
            if order {
                all.reverse();
            }
            for i in all {
                assert_eq!(cache.text(blobs[i]).as_ref(), Some(&texts[i]), "text {i}");
            }
        }
        // A text changed on disk is refused; the one before it, read in the
        // same window, is not.
        drop(cache);
        let mut bytes = std::fs::read(&texts_file).unwrap();
        let last = bytes.len() - 5;
        bytes[last] ^= 1;
        std::fs::write(&texts_file, &bytes).unwrap();
        let mut cache = CleanCache::open(tmp.path(), &kid, [1; 32].into());
        assert_eq!(cache.text(blobs[198]).as_ref(), Some(&texts[198]));
        assert_eq!(cache.text(blobs[199]), None);
    }

    /// A checkout records more than [`WRITE_AT`] of texts: they are written
    /// as they gather, while another process appends its own, and every
    /// one is found again.
    #[test]
    fn texts_are_written_as_they_gather_beside_another_process() {
        let tmp = tempfile::tempdir().unwrap();
        let kid = Kid::parse("k_0000000000000001").unwrap();
        let kids = std::slice::from_ref(&kid);
        let text =
            |i: usize| format!("{{\"n\": {i}, \"pad\": \"{}\"}}\n", "y".repeat(4000)).into_bytes();
        let n = 2 * WRITE_AT / 4000;
        let mut mine = CleanCache::open(tmp.path(), &kid, [1; 32].into());
        let mac = mine.mac(None, kids, b"plain");
        let texts_file = tmp
            .path()
            .join("seal")
            .join(format!("clean-texts-v3-{kid}"));
        for i in 0..n {
            mine.record(super::super::blob_id(&text(i)), mac, &text(i));
            if i == 3 * n / 4 {
                assert!(texts_file.exists(), "nothing written after {i} texts");
                // Another process appends between two of this one's writes.
                let mut other = CleanCache::open(tmp.path(), &kid, [1; 32].into());
                other.record(super::super::blob_id(&text(n)), mac, &text(n));
            }
        }
        assert!(mine.pending_texts.len() < WRITE_AT);
        drop(mine);
        let mut cache = CleanCache::open(tmp.path(), &kid, [1; 32].into());
        for i in 0..=n {
            let blob = super::super::blob_id(&text(i));
            assert!(cache.matches(blob, &mac), "record {i}");
            assert_eq!(cache.text(blob), Some(text(i)), "text {i}");
        }
    }

    /// A blob recorded again with another MAC: the last record counts,
    /// whether the first lookups scan the file or later ones use the map.
    #[test]
    fn the_last_record_of_a_blob_counts_scanned_or_mapped() {
        let tmp = tempfile::tempdir().unwrap();
        let kid = Kid::parse("k_0000000000000001").unwrap();
        let kids = std::slice::from_ref(&kid);
        let blob = Oid::from_bytes(&[5; 20]).unwrap();
        for plain in [b"first".as_slice(), b"second"] {
            let mut cache = CleanCache::open(tmp.path(), &kid, [1; 32].into());
            let mac = cache.mac(None, kids, plain);
            cache.record(blob, mac, b"");
            for i in 0..50u8 {
                cache.record(Oid::from_bytes(&[i; 20]).unwrap(), mac, b"");
            }
            cache.flush();
        }
        let cache = CleanCache::open(tmp.path(), &kid, [1; 32].into());
        for _ in 0..SCAN_FIRST + 2 {
            assert!(cache.matches(blob, &cache.mac(None, kids, b"second")));
            assert!(!cache.matches(blob, &cache.mac(None, kids, b"first")));
        }
        assert!(cache.known.get().is_some(), "past the scans, a map");
        assert!(!cache.matches(Oid::from_bytes(&[200; 20]).unwrap(), &[0; 32]));
    }
}
