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

    #[test]
    fn a_wrap_error_seals_nothing() {
        let result = seal(b"x".to_vec(), None, |_| Err::<Vec<Recipient>, _>("no"));
        assert_eq!(result.unwrap_err(), "no");
    }
}
