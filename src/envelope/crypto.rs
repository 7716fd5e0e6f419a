//! Content encryption: AES-256-GCM of one file's plaintext under a fresh
//! DEK, and its decryption with a DEK. Content held whole goes through
//! `ring` ([`content_key`]); content sealed piece by piece through the
//! RustCrypto crates ([`SealStream`]).
//!
//! This module does *not* wrap or unwrap DEKs and knows nothing of keys:
//! [`seal`] hands the fresh DEK to its caller to wrap, and [`decrypt`] is
//! given a DEK that someone else unwrapped (see `keys`).

use rand_core::{OsRng, RngCore};
use zeroize::{Zeroize, Zeroizing};

use super::format::{Envelope, Recipient, NONCE_LEN};
use crate::secret::{Dek, Pieces};

/// The content did not authenticate under the DEK.
#[derive(Debug, thiserror::Error)]
#[error("authentication failed: the ciphertext, nonce, tag or aad was altered")]
pub struct ContentError;

/// Seal `plaintext` (encrypted in place, so no second copy of a large file)
/// under a fresh DEK, which `wrap` turns into the envelope's recipients.
/// The DEK lives only for this call.
pub fn seal<E>(
    mut plaintext: Vec<u8>,
    aad: Option<String>,
    wrap: impl FnOnce(&Dek) -> Result<Vec<Recipient>, E>,
) -> Result<Envelope, E> {
    // DEK and nonce from one read of the system's random source.
    let mut random = Zeroizing::new([0u8; 32 + NONCE_LEN]);
    OsRng.fill_bytes(random.as_mut());
    let dek = Dek::from_bytes(random[..32].try_into().expect("32 bytes"));
    let nonce: [u8; NONCE_LEN] = random[32..].try_into().expect("nonce bytes");
    let recipients = wrap(&dek)?;
    let tag = content_key(&dek)
        .seal_in_place_separate_tag(
            ring::aead::Nonce::assume_unique_for_key(nonce),
            ring::aead::Aad::from(aad.as_deref().unwrap_or("").as_bytes()),
            &mut plaintext,
        )
        .expect("AES-GCM encryption only fails past 64 GiB");
    Ok(Envelope {
        recipients,
        nonce,
        ciphertext: plaintext,
        tag: tag.as_ref().try_into().expect("a 16-byte tag"),
        aad,
    })
}

/// AES-256-GCM encryption of content that arrives in pieces, for files too
/// large to hold twice: each piece is encrypted in place and hashed into the
/// tag as it comes (the same output as [`seal`], piece by piece). The nonce
/// is drawn here; the caller wraps the DEK ([`SealStream::dek`]) before the
/// DEK is dropped with the stream. Past [`HASH_ON_THREAD_AFTER`] bytes the
/// tag's GHASH runs on a thread of its own, beside the encryption, encoding
/// and writing on the caller's.
pub struct SealStream {
    dek: Dek,
    nonce: [u8; NONCE_LEN],
    content: Content,
    aad_len: u64,
    /// AES_K(J0), which masks the GHASH into the tag.
    mask: [u8; 16],
}

/// Content kept in memory rather than written as it comes is kept in
/// pieces of this size ([`SealStream::encrypt_onto`]).
pub const HELD_PIECE: usize = 1 << 20;

/// Content past this many bytes is hashed on another thread.
const HASH_ON_THREAD_AFTER: u64 = 4 << 20;
/// Ciphertext handed to that thread at a time.
const HASH_BATCH: usize = 1 << 20;

/// The GHASH of the ciphertext so far.
struct Hasher {
    ghash: ghash::GHash,
    /// Ciphertext not yet hashed (less than one block).
    partial: [u8; 16],
    partial_len: usize,
}

impl Hasher {
    fn new(ghash: ghash::GHash) -> Hasher {
        Hasher {
            ghash,
            partial: [0; 16],
            partial_len: 0,
        }
    }

    fn update(&mut self, mut ciphertext: &[u8]) {
        use ghash::universal_hash::UniversalHash;
        if self.partial_len > 0 {
            let take = ciphertext.len().min(16 - self.partial_len);
            self.partial[self.partial_len..self.partial_len + take]
                .copy_from_slice(&ciphertext[..take]);
            self.partial_len += take;
            ciphertext = &ciphertext[take..];
            if self.partial_len < 16 {
                return;
            }
            self.ghash.update(&[self.partial.into()]);
            self.partial_len = 0;
        }
        let whole = ciphertext.len() / 16 * 16;
        self.ghash.update_padded(&ciphertext[..whole]);
        let tail = &ciphertext[whole..];
        self.partial[..tail.len()].copy_from_slice(tail);
        self.partial_len = tail.len();
    }

    /// GHASH over what came before, the ciphertext and the lengths block.
    fn finish(mut self, aad_len: u64, len: u64) -> [u8; 16] {
        use ghash::universal_hash::UniversalHash;
        let partial = self.partial;
        self.ghash.update_padded(&partial[..self.partial_len]);
        self.ghash.update(&[lengths_block(aad_len, len).into()]);
        self.ghash.clone().finalize().into()
    }
}

/// Where the GHASH runs.
enum Tagging {
    Here(Hasher),
    /// On a thread, fed batches of ciphertext.
    Thread {
        batch: Vec<u8>,
        batches: std::sync::mpsc::SyncSender<Vec<u8>>,
        done: std::thread::JoinHandle<Hasher>,
    },
    /// Only while switching from one to the other.
    Moving,
}

impl Tagging {
    /// `hasher` continued on a thread of its own.
    fn on_thread(mut hasher: Hasher) -> Tagging {
        let (batches, received) = std::sync::mpsc::sync_channel::<Vec<u8>>(2);
        let done = std::thread::spawn(move || {
            for batch in received {
                hasher.update(&batch);
            }
            hasher
        });
        Tagging::Thread {
            batch: Vec::with_capacity(HASH_BATCH),
            batches,
            done,
        }
    }
}

/// One content's counter mode and the running GHASH of its ciphertext,
/// whichever way it goes.
struct Content {
    ctr: ctr::Ctr32BE<aes::Aes256>,
    tagging: Tagging,
    len: u64,
}

impl Content {
    /// `ghash` has hashed what comes before the ciphertext (if anything).
    fn new(gcm: &Gcm, dek: &Dek, ghash: ghash::GHash) -> Content {
        Content {
            ctr: gcm.ctr(dek),
            tagging: Tagging::Here(Hasher::new(ghash)),
            len: 0,
        }
    }

    fn apply_keystream(&mut self, piece: &mut [u8]) {
        use aes::cipher::StreamCipher;
        self.ctr.apply_keystream(piece);
    }

    /// Hash the next piece of ciphertext into the tag.
    fn hash(&mut self, ciphertext: &[u8]) {
        self.len += ciphertext.len() as u64;
        if self.len > HASH_ON_THREAD_AFTER && matches!(self.tagging, Tagging::Here(_)) {
            if let Tagging::Here(hasher) = std::mem::replace(&mut self.tagging, Tagging::Moving) {
                self.tagging = Tagging::on_thread(hasher);
            }
        }
        match &mut self.tagging {
            Tagging::Here(hasher) => hasher.update(ciphertext),
            Tagging::Thread { batch, batches, .. } => {
                batch.extend_from_slice(ciphertext);
                if batch.len() >= HASH_BATCH {
                    let full = std::mem::replace(batch, Vec::with_capacity(HASH_BATCH));
                    // The thread only stops when this sender is dropped.
                    batches
                        .send(full)
                        .expect("the GHASH thread runs until finish");
                }
            }
            Tagging::Moving => unreachable!("set back above"),
        }
    }

    /// The hasher, with all the ciphertext hashed, and the content's length.
    fn finish(self) -> (Hasher, u64) {
        let hasher = match self.tagging {
            Tagging::Here(hasher) => hasher,
            Tagging::Thread {
                batch,
                batches,
                done,
            } => {
                batches
                    .send(batch)
                    .expect("the GHASH thread runs until finish");
                drop(batches);
                done.join().expect("the GHASH thread does not panic")
            }
            Tagging::Moving => unreachable!("only while hashing"),
        };
        (hasher, self.len)
    }
}

impl std::fmt::Debug for SealStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealStream")
            .field("len", &self.content.len)
            .finish_non_exhaustive()
    }
}

impl SealStream {
    /// A fresh DEK and nonce for content bound to `aad`.
    pub fn new(aad: Option<&str>) -> SealStream {
        let mut random = Zeroizing::new([0u8; 32 + NONCE_LEN]);
        OsRng.fill_bytes(random.as_mut());
        let dek = Dek::from_bytes(random[..32].try_into().expect("32 bytes"));
        let nonce: [u8; NONCE_LEN] = random[32..].try_into().expect("nonce bytes");
        SealStream::under(dek, nonce, aad)
    }

    /// A stream under a given DEK and nonce: only for [`Again`], which
    /// releases its output only if it is the envelope's own.
    fn under(dek: Dek, nonce: [u8; NONCE_LEN], aad: Option<&str>) -> SealStream {
        use ghash::universal_hash::UniversalHash;
        let gcm = Gcm::new(&dek, &nonce);
        let mut ghash = ghash::GHash::new(&gcm.h);
        let aad = aad.unwrap_or("").as_bytes();
        ghash.update_padded(aad);
        SealStream {
            content: Content::new(&gcm, &dek, ghash),
            dek,
            nonce,
            aad_len: aad.len() as u64,
            mask: gcm.mask,
        }
    }

    /// The DEK, to wrap to the recipients.
    pub fn dek(&self) -> &Dek {
        &self.dek
    }

    pub fn nonce(&self) -> [u8; NONCE_LEN] {
        self.nonce
    }

    /// Encrypt the next piece of plaintext in place.
    pub fn encrypt(&mut self, piece: &mut [u8]) {
        self.content.apply_keystream(piece);
        self.content.hash(piece);
    }

    /// Encrypt the next piece of plaintext onto the end of `held`, the
    /// ciphertext so far in pieces of [`HELD_PIECE`]: content held, not
    /// written as it comes.
    pub fn encrypt_onto(&mut self, mut plaintext: &[u8], held: &mut Vec<Vec<u8>>) {
        while !plaintext.is_empty() {
            let last = match held.last_mut() {
                Some(last) if last.len() < HELD_PIECE => last,
                _ => {
                    held.push(Vec::with_capacity(HELD_PIECE));
                    held.last_mut().expect("just pushed")
                }
            };
            let take = plaintext.len().min(HELD_PIECE - last.len());
            let start = last.len();
            last.extend_from_slice(&plaintext[..take]);
            self.encrypt(&mut last[start..]);
            plaintext = &plaintext[take..];
        }
    }

    /// The tag over everything encrypted.
    pub fn finish(self) -> [u8; 16] {
        let (hasher, len) = self.content.finish();
        let mut tag = hasher.finish(self.aad_len, len);
        for (t, m) in tag.iter_mut().zip(self.mask) {
            *t ^= m;
        }
        tag
    }
}

/// An envelope already made, made again from its plaintext as that
/// plaintext arrives, without reading the envelope: a large unchanged
/// file's envelope, which Git wants back whole. Each piece is encrypted
/// under the envelope's DEK and nonce and held; [`Again::finish`] gives the
/// ciphertext only if its tag is the envelope's, that is, only if the
/// plaintext is the very content that envelope sealed, so that the
/// ciphertext is the one already made. Otherwise it decrypts what it holds
/// back and gives the plaintext: other content's ciphertext under the same
/// DEK and nonce (a reused nonce) never leaves it.
pub struct Again {
    stream: SealStream,
    held: Pieces,
}

impl std::fmt::Debug for Again {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Again")
            .field("len", &self.stream.content.len)
            .finish_non_exhaustive()
    }
}

impl Again {
    /// Make again the envelope under `dek` and `nonce`, bound to `aad`.
    pub fn new(dek: Dek, nonce: [u8; NONCE_LEN], aad: Option<&str>) -> Again {
        Again {
            stream: SealStream::under(dek, nonce, aad),
            held: Pieces::default(),
        }
    }

    /// Take the next piece of plaintext.
    pub fn push(&mut self, plaintext: &[u8]) {
        self.stream.encrypt_onto(plaintext, self.held.expose_mut());
    }

    /// The ciphertext, in pieces, if its tag is `tag`; else the plaintext
    /// taken, in pieces (still wiped when dropped).
    pub fn finish(self, tag: &[u8; 16]) -> Result<Vec<Vec<u8>>, Pieces> {
        use subtle::ConstantTimeEq;
        let Again { stream, mut held } = self;
        let (dek, nonce) = (stream.dek.clone(), stream.nonce);
        if bool::from(stream.finish().ct_eq(tag)) {
            return Ok(held.take());
        }
        let mut ctr = Gcm::new(&dek, &nonce).ctr(&dek);
        for piece in held.expose_mut() {
            use aes::cipher::StreamCipher;
            ctr.apply_keystream(piece);
        }
        Err(held)
    }
}

/// AES-256-GCM decryption of content that arrives in pieces, for output
/// that is released only once the tag verifies (a temporary file renamed
/// into place after [`OpenStream::finish`] says yes): until then what
/// [`OpenStream::decrypt`] gives back is unauthenticated.
///
/// The aad is needed only at the end, as in an envelope's text it follows
/// the ciphertext. The GHASH runs over the ciphertext alone, and the aad's
/// part is joined in at the end: with n the ciphertext's blocks,
/// GHASH(A ‖ C ‖ L) = GHASH(A)·H^(n+1) ⊕ GHASH(C ‖ L).
pub struct OpenStream {
    gcm: Gcm,
    content: Content,
}

impl std::fmt::Debug for OpenStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenStream")
            .field("len", &self.content.len)
            .finish_non_exhaustive()
    }
}

impl OpenStream {
    pub fn new(dek: &Dek, nonce: &[u8; NONCE_LEN]) -> OpenStream {
        let gcm = Gcm::new(dek, nonce);
        let content = Content::new(&gcm, dek, ghash::GHash::new(&gcm.h));
        OpenStream { gcm, content }
    }

    /// Decrypt the next piece of ciphertext in place.
    pub fn decrypt(&mut self, piece: &mut [u8]) {
        self.content.hash(piece);
        self.content.apply_keystream(piece);
    }

    /// Whether the tag authenticates everything decrypted, bound to `aad`.
    pub fn finish(self, aad: Option<&str>, tag: &[u8; 16]) -> Result<(), ContentError> {
        use ghash::universal_hash::UniversalHash;
        use subtle::ConstantTimeEq;
        let aad = aad.unwrap_or("").as_bytes();
        let OpenStream { gcm, content } = self;
        let (hasher, len) = content.finish();
        let mut expected = Zeroizing::new(hasher.finish(aad.len() as u64, len));
        if !aad.is_empty() {
            let mut ghash = ghash::GHash::new(&gcm.h);
            ghash.update_padded(aad);
            let of_aad = Zeroizing::new(ghash.finalize().into());
            let blocks = len.div_ceil(16);
            let h: Zeroizing<[u8; 16]> = Zeroizing::new(gcm.h.into());
            let shift = gf_pow(&h, blocks + 1);
            for (e, a) in expected.iter_mut().zip(gf_mul(&of_aad, &shift).iter()) {
                *e ^= a;
            }
        }
        for (e, m) in expected.iter_mut().zip(gcm.mask) {
            *e ^= m;
        }
        if bool::from(expected.ct_eq(tag)) {
            Ok(())
        } else {
            Err(ContentError)
        }
    }
}

/// `a`·`b` in GHASH's field: one block hashed under the key `b`.
fn gf_mul(a: &[u8; 16], b: &[u8; 16]) -> Zeroizing<[u8; 16]> {
    use ghash::universal_hash::UniversalHash;
    let mut ghash = ghash::GHash::new(b.into());
    ghash.update(&[(*a).into()]);
    Zeroizing::new(ghash.finalize().into())
}

/// `h` to the power `e` (at least 1) in GHASH's field, by squaring.
fn gf_pow(h: &[u8; 16], e: u64) -> Zeroizing<[u8; 16]> {
    debug_assert!(e >= 1);
    let mut power = Zeroizing::new(*h);
    for bit in (0..63 - e.leading_zeros()).rev() {
        power = gf_mul(&power, &power);
        if e >> bit & 1 == 1 {
            power = gf_mul(&power, h);
        }
    }
    power
}

/// What AES-256-GCM derives from the key and nonce (NIST SP 800-38D §7):
/// the hash key H, the mask of the tag E(J0) and the counter block where
/// the content starts. Used by [`SealStream`], whose content comes in
/// pieces, which one-shot AES-GCM ([`content_key`]) does not serve.
struct Gcm {
    h: ghash::Key,
    mask: [u8; 16],
    /// J0 + 1: the content's first counter block.
    start: [u8; 16],
}

impl Gcm {
    fn new(dek: &Dek, nonce: &[u8; NONCE_LEN]) -> Gcm {
        use aes::cipher::{BlockEncrypt, KeyInit as _};
        let aes = aes::Aes256::new(dek.expose().into());
        let mut h = aes::Block::default();
        aes.encrypt_block(&mut h);
        // J0 = nonce || 1 masks the tag; the content's counter starts at 2.
        let mut j0 = [0u8; 16];
        j0[..NONCE_LEN].copy_from_slice(nonce);
        j0[15] = 1;
        let mut mask = aes::Block::from(j0);
        aes.encrypt_block(&mut mask);
        j0[15] = 2;
        Gcm {
            h: <[u8; 16]>::from(h).into(),
            mask: mask.into(),
            start: j0,
        }
    }

    /// The counter mode over the content, from its start.
    fn ctr(&self, dek: &Dek) -> ctr::Ctr32BE<aes::Aes256> {
        use aes::cipher::KeyIvInit;
        ctr::Ctr32BE::new(dek.expose().into(), &self.start.into())
    }
}

impl Drop for Gcm {
    fn drop(&mut self) {
        self.h.zeroize();
    }
}

/// GHASH's last block: the aad's and the content's lengths in bits.
fn lengths_block(aad_len: u64, len: u64) -> [u8; 16] {
    let mut lengths = [0u8; 16];
    lengths[..8].copy_from_slice(&(aad_len * 8).to_be_bytes());
    lengths[8..].copy_from_slice(&(len * 8).to_be_bytes());
    lengths
}

/// Whether `dek` authenticates an envelope's content: its tag checked over
/// the ciphertext and aad, decrypting nothing (no plaintext, no copy). What
/// a step checks before it changes anything, and [`decrypt`] after.
pub fn verify(env: &Envelope, dek: &Dek) -> Result<(), ContentError> {
    let mut stream = OpenStream::new(dek, &env.nonce);
    stream.content.hash(&env.ciphertext);
    stream.finish(env.aad.as_deref(), &env.tag)
}

/// Decrypt an envelope's content with its DEK, in place. On failure no
/// plaintext is returned and the buffer is wiped.
pub fn decrypt(env: Envelope, dek: &Dek) -> Result<Vec<u8>, ContentError> {
    let Envelope {
        nonce,
        mut ciphertext,
        tag,
        aad,
        ..
    } = env;
    let result = content_key(dek).open_in_place_separate_tag(
        ring::aead::Nonce::assume_unique_for_key(nonce),
        ring::aead::Aad::from(aad.as_deref().unwrap_or("").as_bytes()),
        ring::aead::Tag::from(tag),
        &mut ciphertext,
        0..,
    );
    match result {
        Ok(_) => Ok(ciphertext),
        Err(_) => {
            // The keystream may have been applied before the tags compared.
            ciphertext.zeroize();
            Err(ContentError)
        }
    }
}

/// A DEK as an AES-256-GCM key for content held whole ([`seal`],
/// [`decrypt`]): `ring`'s implementation, which uses the vector AES and
/// carry-less multiply instructions where the processor has them (about
/// 6 GB/s here against about 1 GB/s, which matters for a large file's
/// checkout). Content sealed piece by piece ([`SealStream`]) needs an
/// incremental GHASH, which `ring` does not offer. `ring` does not wipe a
/// key's round keys when it is dropped (and this crate forbids the unsafe
/// code that could): they stay on the stack until the next key overwrites
/// them (see docs/threat-model.md).
fn content_key(dek: &Dek) -> ring::aead::LessSafeKey {
    let key = ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, dek.expose())
        .expect("a DEK is an AES-256 key");
    ring::aead::LessSafeKey::new(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::format::Wrap;
    use crate::kid::Kid;
    use proptest::prelude::*;

    /// A recipient entry that is never unwrapped: content tests keep the DEK.
    fn recipient() -> Recipient {
        Recipient {
            kid: Kid::parse("k_0000000000000000").unwrap(),
            wrap: Wrap::X25519 {
                ephemeral_pub: [9; 32],
            },
            wrapped_dek: [0; 48],
        }
    }

    fn seal_keeping_dek(plain: Vec<u8>, aad: Option<String>) -> (Envelope, Dek) {
        let mut kept = None;
        let env = seal(plain, aad, |dek| {
            kept = Some(dek.clone());
            Ok::<_, ()>(vec![recipient()])
        })
        .unwrap();
        (env, kept.unwrap())
    }

    proptest! {
        #[test]
        fn decrypt_inverts_seal(plain in proptest::collection::vec(any::<u8>(), 0..4096),
                                aad in proptest::option::of(".*")) {
            let (env, dek) = seal_keeping_dek(plain.clone(), aad);
            prop_assert_eq!(decrypt(env, &dek).unwrap(), plain);
        }

        #[test]
        fn any_flipped_content_bit_is_refused(plain in proptest::collection::vec(any::<u8>(), 1..256), bit in any::<u16>()) {
            let (env, dek) = seal_keeping_dek(plain, Some("ctx".into()));
            let mut tampered = env.clone();
            let fields: [&mut [u8]; 3] = [&mut tampered.ciphertext, &mut tampered.nonce, &mut tampered.tag];
            let f = fields.into_iter().nth(bit as usize % 3).unwrap();
            let idx = (bit as usize / 3) % (f.len() * 8);
            f[idx / 8] ^= 1 << (idx % 8);
            prop_assert!(verify(&tampered, &dek).is_err());
            prop_assert!(decrypt(tampered, &dek).is_err());
        }

        /// `verify` says what `decrypt` says, decrypting nothing.
        #[test]
        fn verify_accepts_what_decrypt_opens(plain in proptest::collection::vec(any::<u8>(), 0..4096),
                                            aad in proptest::option::of(".{0,40}")) {
            let (env, dek) = seal_keeping_dek(plain, aad.clone());
            prop_assert!(verify(&env, &dek).is_ok());
            let other_aad = Envelope { aad: Some(format!("{}x", aad.unwrap_or_default())), ..env.clone() };
            prop_assert!(verify(&other_aad, &dek).is_err());
            prop_assert!(verify(&env, &Dek::random()).is_err());
        }
    }

    proptest! {
        /// Pieces of any sizes give what one-shot AES-256-GCM gives.
        #[test]
        fn stream_matches_one_shot(plain in proptest::collection::vec(any::<u8>(), 0..2048),
                                   cuts in proptest::collection::vec(0usize..2048, 0..6),
                                   aad in proptest::option::of(".{0,40}")) {
            let mut stream = SealStream::new(aad.as_deref());
            let dek = stream.dek().clone();
            let nonce = stream.nonce();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(plain.len())).collect();
            cuts.push(0);
            cuts.push(plain.len());
            cuts.sort_unstable();
            let mut ciphertext = plain.clone();
            for w in cuts.windows(2) {
                stream.encrypt(&mut ciphertext[w[0]..w[1]]);
            }
            let tag = stream.finish();
            let env = Envelope { recipients: vec![recipient()], nonce, ciphertext, tag, aad };
            prop_assert_eq!(decrypt(env, &dek).unwrap(), plain);
        }
    }

    /// Past the size where the GHASH moves to a thread, in pieces of
    /// uneven sizes: the tag is still AES-GCM's.
    #[test]
    fn a_large_stream_hashed_on_a_thread_matches_one_shot() {
        let plain: Vec<u8> = (0..(HASH_ON_THREAD_AFTER as usize) * 2 + 12_345)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
            .collect();
        let mut stream = SealStream::new(Some("path:big"));
        let dek = stream.dek().clone();
        let nonce = stream.nonce();
        let mut ciphertext = plain.clone();
        let mut at = 0;
        for size in [1, 15, 65_516, 1 << 20, 3].into_iter().cycle() {
            let end = (at + size).min(ciphertext.len());
            stream.encrypt(&mut ciphertext[at..end]);
            at = end;
            if at == ciphertext.len() {
                break;
            }
        }
        assert!(matches!(stream.content.tagging, Tagging::Thread { .. }));
        let tag = stream.finish();
        let aad = Some("path:big".to_owned());
        let env = Envelope {
            recipients: vec![recipient()],
            nonce,
            ciphertext,
            tag,
            aad,
        };
        assert!(decrypt(env, &dek).unwrap() == plain);
    }

    proptest! {
        /// Content sealed whole is RustCrypto's AES-256-GCM (which seals
        /// streamed content), both ways.
        #[test]
        fn sealing_whole_is_the_same_aes_gcm_as_streaming(
            plain in proptest::collection::vec(any::<u8>(), 0..2500),
            aad in proptest::option::of(".{0,40}"),
        ) {
            use aes_gcm::aead::{AeadInPlace, KeyInit};
            let (env, dek) = seal_keeping_dek(plain.clone(), aad.clone());
            let rust_crypto = aes_gcm::Aes256Gcm::new(dek.expose().into());
            let mut opened = env.ciphertext.clone();
            rust_crypto
                .decrypt_in_place_detached(
                    (&env.nonce).into(),
                    aad.as_deref().unwrap_or("").as_bytes(),
                    &mut opened,
                    (&env.tag).into(),
                )
                .unwrap();
            prop_assert_eq!(&opened, &plain);
            let mut ciphertext = plain.clone();
            let tag = rust_crypto
                .encrypt_in_place_detached((&env.nonce).into(), aad.as_deref().unwrap_or("").as_bytes(), &mut ciphertext)
                .unwrap();
            let env = Envelope { ciphertext, tag: tag.into(), ..env };
            prop_assert_eq!(decrypt(env, &dek).unwrap(), plain);
        }
    }

    /// `plain` cut at `cuts` into pieces.
    fn pieces(plain: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
        let mut cuts: Vec<usize> = cuts.iter().map(|&c| c.min(plain.len())).collect();
        cuts.push(0);
        cuts.push(plain.len());
        cuts.sort_unstable();
        cuts.windows(2)
            .map(|w| plain[w[0]..w[1]].to_vec())
            .collect()
    }

    /// `plain` pushed to an [`Again`] under `env`'s DEK and nonce, cut
    /// at `cuts`, and its outcome against `tag`.
    fn again(
        plain: &[u8],
        cuts: &[usize],
        dek: &Dek,
        nonce: [u8; NONCE_LEN],
        aad: Option<&str>,
        tag: &[u8; 16],
    ) -> Result<Vec<u8>, Vec<u8>> {
        let mut again = Again::new(dek.clone(), nonce, aad);
        for piece in pieces(plain, cuts) {
            again.push(&piece);
        }
        again
            .finish(tag)
            .map(|c| c.concat())
            .map_err(|p| p.expose().concat())
    }

    proptest! {
        /// The same content under the envelope's DEK, nonce and aad gives
        /// that envelope's ciphertext, in pieces of any sizes.
        #[test]
        fn again_remakes_the_ciphertext(plain in proptest::collection::vec(any::<u8>(), 0..2048),
                                        cuts in proptest::collection::vec(0usize..2048, 0..6),
                                        aad in proptest::option::of(".{0,40}")) {
            let (env, dek) = seal_keeping_dek(plain.clone(), aad.clone());
            let made = again(&plain, &cuts, &dek, env.nonce, aad.as_deref(), &env.tag);
            prop_assert_eq!(made.unwrap(), env.ciphertext);
        }

        /// Content that differs anywhere, another aad, nonce or tag: no
        /// ciphertext comes out (it would reuse the nonce on other
        /// content), and the plaintext comes back as it was.
        #[test]
        fn again_refuses_other_content(plain in proptest::collection::vec(any::<u8>(), 1..600),
                                       cuts in proptest::collection::vec(0usize..600, 0..4),
                                       bit in any::<u16>(), what in 0usize..4) {
            let aad = Some("path:a".to_owned());
            let (env, dek) = seal_keeping_dek(plain.clone(), aad.clone());
            let (mut changed, mut nonce, mut tag, mut aad) = (plain.clone(), env.nonce, env.tag, aad);
            let flip = |f: &mut [u8]| {
                let idx = bit as usize % (f.len() * 8);
                f[idx / 8] ^= 1 << (idx % 8);
            };
            match what {
                0 => flip(&mut changed),
                1 => flip(&mut nonce),
                2 => flip(&mut tag),
                _ => aad = Some("path:b".into()),
            }
            let made = again(&changed, &cuts, &dek, nonce, aad.as_deref(), &tag);
            prop_assert_eq!(made.unwrap_err(), changed, "the plaintext given back");
        }
    }

    /// Past the size where the check's GHASH moves to a thread, and past
    /// one held piece.
    #[test]
    fn again_remakes_a_large_ciphertext() {
        let plain: Vec<u8> = (0..(HASH_ON_THREAD_AFTER as usize) * 2 + 12_345)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
            .collect();
        let (env, dek) = seal_keeping_dek(plain.clone(), None);
        let cuts = [65_516, 1 << 20, 3 << 20, (3 << 20) + 1];
        let made = again(&plain, &cuts, &dek, env.nonce, None, &env.tag);
        assert!(made.unwrap() == env.ciphertext);
        let mut other = plain;
        *other.last_mut().unwrap() ^= 1;
        let made = again(&other, &[1 << 20], &dek, env.nonce, None, &env.tag);
        assert!(made.unwrap_err() == other);
    }

    /// Decrypt `env`'s ciphertext with [`OpenStream`], cut at `cuts`.
    fn open_streamed(
        env: &Envelope,
        dek: &Dek,
        cuts: &[usize],
    ) -> (Vec<u8>, Result<(), ContentError>) {
        let mut stream = OpenStream::new(dek, &env.nonce);
        let mut text = env.ciphertext.clone();
        let mut cuts: Vec<usize> = cuts.iter().map(|&c| c.min(text.len())).collect();
        cuts.push(0);
        cuts.push(text.len());
        cuts.sort_unstable();
        for w in cuts.windows(2) {
            stream.decrypt(&mut text[w[0]..w[1]]);
        }
        let verdict = stream.finish(env.aad.as_deref(), &env.tag);
        (text, verdict)
    }

    proptest! {
        /// Pieces of any sizes open what one-shot AES-256-GCM sealed, the
        /// aad joined in at the end.
        #[test]
        fn open_stream_matches_one_shot(plain in proptest::collection::vec(any::<u8>(), 0..2048),
                                        cuts in proptest::collection::vec(0usize..2048, 0..6),
                                        aad in proptest::option::of(".{0,80}")) {
            let (env, dek) = seal_keeping_dek(plain.clone(), aad);
            let (opened, verdict) = open_streamed(&env, &dek, &cuts);
            prop_assert!(verdict.is_ok());
            prop_assert_eq!(opened, plain);
        }

        /// Any flipped bit of the ciphertext, nonce, tag or aad, or an aad
        /// added or taken away, is refused.
        #[test]
        fn open_stream_refuses_any_change(plain in proptest::collection::vec(any::<u8>(), 1..300),
                                          aad in proptest::option::of(".{1,40}"),
                                          bit in any::<u16>(), what in 0usize..5) {
            let (env, dek) = seal_keeping_dek(plain, aad.clone());
            let mut tampered = env.clone();
            let flip = |f: &mut [u8]| {
                let idx = bit as usize % (f.len() * 8);
                f[idx / 8] ^= 1 << (idx % 8);
            };
            match what {
                0 => flip(&mut tampered.ciphertext),
                1 => flip(&mut tampered.nonce),
                2 => flip(&mut tampered.tag),
                3 => match aad {
                    Some(a) => {
                        let mut bytes = a.into_bytes();
                        bytes[0] ^= 1 << (bit % 7);
                        tampered.aad = Some(String::from_utf8_lossy(&bytes).into_owned());
                        prop_assume!(tampered.aad != env.aad);
                    }
                    None => tampered.aad = Some("added".into()),
                },
                _ => tampered.aad = match aad { Some(_) => None, None => Some(String::new() + "x") },
            }
            prop_assert!(open_streamed(&tampered, &dek, &[7, 100]).1.is_err());
        }
    }

    /// Long content (its GHASH on a thread, many blocks for the aad's
    /// power of H), and empty content, with and without an aad.
    #[test]
    fn open_stream_matches_one_shot_when_long_or_empty() {
        let long: Vec<u8> = (0..(HASH_ON_THREAD_AFTER as usize) * 2 + 12_345)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
            .collect();
        for plain in [long, Vec::new()] {
            for aad in [None, Some("path:secrets/big.bin".to_owned())] {
                let (env, dek) = seal_keeping_dek(plain.clone(), aad);
                let cuts = [1, 15, 65_516, 1 << 20, (1 << 20) + 3, 5 << 20];
                let (opened, verdict) = open_streamed(&env, &dek, &cuts);
                assert!(verdict.is_ok(), "aad {:?}, {} bytes", env.aad, plain.len());
                assert!(opened == plain);
            }
        }
    }

    /// The field arithmetic the aad's part rests on: a power by squaring
    /// is the product of its factors.
    #[test]
    fn powers_of_h_are_products() {
        let h = [
            0x66, 0xe9, 0x4b, 0xd4, 0xef, 0x8a, 0x2c, 0x3b, 0x88, 0x4c, 0xfa, 0x59, 0xca, 0x34,
            0x2b, 0x2e,
        ];
        let mut product = Zeroizing::new(h);
        for e in 1..40u64 {
            assert_eq!(*gf_pow(&h, e), *product, "h^{e}");
            product = gf_mul(&product, &h);
        }
    }

    #[test]
    fn a_wrap_error_seals_nothing() {
        let result = seal(b"x".to_vec(), None, |_| Err::<Vec<Recipient>, _>("no"));
        assert_eq!(result.unwrap_err(), "no");
    }
}
