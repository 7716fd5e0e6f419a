//! Content encryption: AES-256-GCM of one file's plaintext under a fresh
//! DEK, and its decryption with a DEK.
//!
//! This module does *not* wrap or unwrap DEKs and knows nothing of keys:
//! [`seal`] hands the fresh DEK to its caller to wrap, and [`decrypt`] is
//! given a DEK that someone else unwrapped (see `keys`).

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use rand_core::{OsRng, RngCore};
use zeroize::{Zeroize, Zeroizing};

use super::format::{Envelope, Recipient, NONCE_LEN};
use crate::secret::Dek;

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
    let cipher = Aes256Gcm::new(dek.expose().into());
    let tag = cipher
        .encrypt_in_place_detached(
            Nonce::from_slice(&nonce),
            aad.as_deref().unwrap_or("").as_bytes(),
            &mut plaintext,
        )
        .expect("AES-GCM encryption only fails past 64 GiB");
    Ok(Envelope {
        recipients,
        nonce,
        ciphertext: plaintext,
        tag: tag.into(),
        aad,
    })
}

/// AES-256-GCM encryption of content that arrives in pieces, for files too
/// large to hold twice: each piece is encrypted in place and hashed into the
/// tag as it comes (the same output as [`seal`], piece by piece). The nonce
/// is drawn here; the caller wraps the DEK ([`SealStream::dek`]) before the
/// DEK is dropped with the stream.
pub struct SealStream {
    dek: Dek,
    nonce: [u8; NONCE_LEN],
    ctr: ctr::Ctr32BE<aes::Aes256>,
    ghash: ghash::GHash,
    /// Ciphertext not yet hashed (less than one block).
    partial: [u8; 16],
    partial_len: usize,
    aad_len: u64,
    len: u64,
    /// AES_K(J0), which masks the GHASH into the tag.
    mask: [u8; 16],
}

impl std::fmt::Debug for SealStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealStream")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl SealStream {
    /// A fresh DEK and nonce for content bound to `aad`.
    pub fn new(aad: Option<&str>) -> SealStream {
        use aes::cipher::{BlockEncrypt, KeyIvInit};
        use ghash::universal_hash::UniversalHash;
        let mut random = Zeroizing::new([0u8; 32 + NONCE_LEN]);
        OsRng.fill_bytes(random.as_mut());
        let dek = Dek::from_bytes(random[..32].try_into().expect("32 bytes"));
        let nonce: [u8; NONCE_LEN] = random[32..].try_into().expect("nonce bytes");
        let aes = aes::Aes256::new(dek.expose().into());
        let mut h = aes::Block::default();
        aes.encrypt_block(&mut h);
        let mut ghash = ghash::GHash::new(&h);
        h.zeroize();
        let aad = aad.unwrap_or("").as_bytes();
        ghash.update_padded(aad);
        // J0 = nonce || 1 masks the tag; the content's counter starts at 2.
        let mut j0 = [0u8; 16];
        j0[..NONCE_LEN].copy_from_slice(&nonce);
        j0[15] = 1;
        let mut mask = aes::Block::from(j0);
        aes.encrypt_block(&mut mask);
        j0[15] = 2;
        let ctr = ctr::Ctr32BE::<aes::Aes256>::new(dek.expose().into(), &j0.into());
        SealStream {
            dek,
            nonce,
            ctr,
            ghash,
            partial: [0; 16],
            partial_len: 0,
            aad_len: aad.len() as u64,
            len: 0,
            mask: mask.into(),
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
        use aes::cipher::StreamCipher;
        use ghash::universal_hash::UniversalHash;
        self.ctr.apply_keystream(piece);
        self.len += piece.len() as u64;
        let mut rest: &[u8] = piece;
        if self.partial_len > 0 {
            let take = rest.len().min(16 - self.partial_len);
            self.partial[self.partial_len..self.partial_len + take].copy_from_slice(&rest[..take]);
            self.partial_len += take;
            rest = &rest[take..];
            if self.partial_len < 16 {
                return;
            }
            self.ghash.update(&[self.partial.into()]);
            self.partial_len = 0;
        }
        let whole = rest.len() / 16 * 16;
        self.ghash.update_padded(&rest[..whole]);
        let tail = &rest[whole..];
        self.partial[..tail.len()].copy_from_slice(tail);
        self.partial_len = tail.len();
    }

    /// The tag over everything encrypted.
    pub fn finish(mut self) -> [u8; 16] {
        use ghash::universal_hash::UniversalHash;
        self.ghash.update_padded(&self.partial[..self.partial_len]);
        let mut lengths = [0u8; 16];
        lengths[..8].copy_from_slice(&(self.aad_len * 8).to_be_bytes());
        lengths[8..].copy_from_slice(&(self.len * 8).to_be_bytes());
        self.ghash.update(&[lengths.into()]);
        let mut tag: [u8; 16] = self.ghash.clone().finalize().into();
        for (t, m) in tag.iter_mut().zip(self.mask) {
            *t ^= m;
        }
        tag
    }
}

/// Decrypt an envelope's content with its DEK. On failure no plaintext is
/// returned and the buffer is wiped.
pub fn decrypt(env: Envelope, dek: &Dek) -> Result<Vec<u8>, ContentError> {
    let Envelope {
        nonce,
        mut ciphertext,
        tag,
        aad,
        ..
    } = env;
    let cipher = Aes256Gcm::new(dek.expose().into());
    let result = cipher.decrypt_in_place_detached(
        Nonce::from_slice(&nonce),
        aad.as_deref().unwrap_or("").as_bytes(),
        &mut ciphertext,
        (&tag).into(),
    );
    match result {
        Ok(()) => Ok(ciphertext),
        Err(_) => {
            // aes-gcm may have applied the keystream before comparing tags.
            ciphertext.zeroize();
            Err(ContentError)
        }
    }
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
            prop_assert!(decrypt(tampered, &dek).is_err());
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

    #[test]
    fn a_wrap_error_seals_nothing() {
        let result = seal(b"x".to_vec(), None, |_| Err::<Vec<Recipient>, _>("no"));
        assert_eq!(result.unwrap_err(), "no");
    }
}
