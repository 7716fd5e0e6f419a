//! Sealing and opening: AES-256-GCM content encryption under a random DEK, and
//! the `x25519-hkdf-sha256` wrap of that DEK to each recipient KEK.
//!
//! Which private keys exist is not this module's business: opening asks a
//! [`KeyProvider`] to unwrap, and sealing is given public wrap targets.

use aes_gcm::aead::{Aead, AeadInPlace, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use curve25519_dalek::edwards::{EdwardsBasepointTable, EdwardsPoint};
use curve25519_dalek::montgomery::MontgomeryPoint;
use curve25519_dalek::traits::BasepointTable;
use hkdf::Hkdf;
use rand_core::{OsRng, RngCore};
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use super::format::{Envelope, FormatError, Recipient, Wrap, NONCE_LEN};
use crate::keys::{KeyError, KeyProvider};
use crate::kid::Kid;
use crate::secret::{Dek, KekSecret};

pub const HKDF_INFO: &[u8] = b"git-seal/v1/x25519";

/// A public key that new envelopes are wrapped to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WrapTarget {
    X25519 { kid: Kid, public: [u8; 32] },
}

impl WrapTarget {
    pub fn x25519(public: [u8; 32]) -> WrapTarget {
        WrapTarget::X25519 {
            kid: Kid::of_x25519(&public),
            public,
        }
    }

    pub fn kid(&self) -> &Kid {
        match self {
            WrapTarget::X25519 { kid, .. } => kid,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("no usable key: the envelope is wrapped to {}; keys available here: {}", list(wrapped_to), if available.is_empty() { "none".to_owned() } else { list(available) })]
    NoUsableKey {
        wrapped_to: Vec<Kid>,
        available: Vec<Kid>,
    },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("authentication failed: the ciphertext, nonce, tag or aad was altered (DEK unwrapped with {kid})")]
    Content { kid: Kid },
}

fn list(kids: &[Kid]) -> String {
    kids.iter().map(Kid::as_str).collect::<Vec<_>>().join(", ")
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("no recipients to seal to")]
    NoRecipients,
    #[error("refusing to wrap to {kid}: its public key is a low-order point")]
    LowOrder { kid: Kid },
}

/// Seal `plaintext` (encrypted in place, so no second copy of a large file)
/// to every target.
pub fn seal(
    plaintext: Vec<u8>,
    aad: Option<String>,
    targets: &[WrapTarget],
) -> Result<Envelope, SealError> {
    seal_prepared(plaintext, aad, prepare_wraps(targets)?)
}

/// One fresh wrap per target, prepared on this thread (for a few
/// envelopes; [`WrapPreparer`] serves many).
pub fn prepare_wraps(targets: &[WrapTarget]) -> Result<Vec<PreparedWrap>, SealError> {
    targets
        .iter()
        .map(|t| match t {
            WrapTarget::X25519 { kid, public } => PreparedWrap::x25519(kid, public),
        })
        .collect()
}

/// Seal with wrap keys prepared beforehand (see [`PreparedWrap`]).
pub fn seal_prepared(
    mut plaintext: Vec<u8>,
    aad: Option<String>,
    wraps: Vec<PreparedWrap>,
) -> Result<Envelope, SealError> {
    if wraps.is_empty() {
        return Err(SealError::NoRecipients);
    }
    // DEK and nonce from one read of the system's random source.
    let mut random = Zeroizing::new([0u8; 32 + NONCE_LEN]);
    OsRng.fill_bytes(random.as_mut());
    let dek = Dek::from_bytes(random[..32].try_into().expect("32 bytes"));
    let nonce: [u8; NONCE_LEN] = random[32..].try_into().expect("nonce bytes");
    let recipients = wraps.into_iter().map(|w| w.wrap(&dek)).collect();
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

/// The file-independent half of an `x25519-hkdf-sha256` wrap: a fresh
/// ephemeral key pair, its shared secret with the KEK, and the derived wrap
/// key. [`PreparedWrap::wrap`] consumes it, so each wrap key is used exactly
/// once (the zero nonce relies on that). Preparing ahead lets a filter do the
/// X25519 work on another core before Git asks.
pub struct PreparedWrap {
    kid: Kid,
    ephemeral_pub: [u8; 32],
    cipher: Aes256Gcm,
}

impl PreparedWrap {
    pub fn x25519(kid: &Kid, kek_public: &[u8; 32]) -> Result<PreparedWrap, SealError> {
        PreparedWrap::x25519_with(kid, kek_public, None)
    }

    /// As [`PreparedWrap::x25519`]; with `table` (the KEK's public point as
    /// a fixed-base table, see [`WrapPreparer`]) the shared secret costs a
    /// fixed-base multiplication instead of a Montgomery ladder. The bytes
    /// are the same: `S = X25519(e, KEK_pub)` is the u-coordinate of
    /// `clamp(e)·P` for either Edwards point `P` with that u-coordinate.
    fn x25519_with(
        kid: &Kid,
        kek_public: &[u8; 32],
        table: Option<&EdwardsBasepointTable>,
    ) -> Result<PreparedWrap, SealError> {
        let mut ephemeral = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(ephemeral.as_mut());
        let ephemeral_pub = EdwardsPoint::mul_base_clamped(*ephemeral)
            .to_montgomery()
            .to_bytes();
        let shared = Zeroizing::new(match table {
            Some(table) => table
                .mul_base_clamped(*ephemeral)
                .to_montgomery()
                .to_bytes(),
            None => x25519_dalek::x25519(*ephemeral, *kek_public),
        });
        if *shared == [0u8; 32] {
            return Err(SealError::LowOrder { kid: kid.clone() });
        }
        Ok(PreparedWrap {
            kid: kid.clone(),
            ephemeral_pub,
            cipher: wrap_cipher(&shared, &ephemeral_pub, kek_public),
        })
    }

    pub fn kid(&self) -> &Kid {
        &self.kid
    }

    /// Wrap a DEK (SPEC §2), using up this wrap key.
    pub fn wrap(self, dek: &Dek) -> Recipient {
        let wrapped = self
            .cipher
            .encrypt(
                Nonce::from_slice(&[0u8; 12]),
                Payload {
                    msg: dek.expose(),
                    aad: self.kid.as_str().as_bytes(),
                },
            )
            .expect("AES-GCM encryption of 32 bytes cannot fail");
        Recipient {
            kid: self.kid,
            wrap: Wrap::X25519 {
                ephemeral_pub: self.ephemeral_pub,
            },
            wrapped_dek: wrapped.try_into().expect("32-byte DEK + 16-byte tag"),
        }
    }
}

/// Prepares wraps for many envelopes to the same KEKs (a filter sealing a
/// whole `git add`): each KEK's public point is turned into a fixed-base
/// table once, which makes the per-envelope shared secret about four times
/// cheaper. A KEK whose point is not a plain prime-order point (never one
/// that git-seal made) keeps the ladder.
pub struct WrapPreparer {
    targets: Vec<(WrapTarget, Option<Box<EdwardsBasepointTable>>)>,
}

impl WrapPreparer {
    pub fn new(targets: &[WrapTarget]) -> WrapPreparer {
        let targets = targets
            .iter()
            .map(|target| {
                let table = match target {
                    WrapTarget::X25519 { public, .. } => MontgomeryPoint(*public)
                        .to_edwards(0)
                        .filter(EdwardsPoint::is_torsion_free)
                        .map(|point| Box::new(EdwardsBasepointTable::create(&point))),
                };
                (target.clone(), table)
            })
            .collect();
        WrapPreparer { targets }
    }

    /// One fresh wrap per target.
    pub fn prepare(&self) -> Result<Vec<PreparedWrap>, SealError> {
        self.targets
            .iter()
            .map(|(target, table)| match target {
                WrapTarget::X25519 { kid, public } => {
                    PreparedWrap::x25519_with(kid, public, table.as_deref())
                }
            })
            .collect()
    }
}

/// Open an envelope with the first recipient whose kid `keys` can use.
/// On any failure no plaintext is returned and the buffer is wiped.
pub fn open(env: Envelope, keys: &dyn KeyProvider) -> Result<Vec<u8>, OpenError> {
    let (kid, dek) = unwrap_dek(&env, keys)?;
    decrypt(env, &kid, &dek)
}

/// Decrypt an envelope's content with a DEK already unwrapped for `kid`.
pub fn decrypt(env: Envelope, kid: &Kid, dek: &Dek) -> Result<Vec<u8>, OpenError> {
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
            Err(OpenError::Content { kid: kid.clone() })
        }
    }
}

/// Find the first recipient `keys` can serve and unwrap its DEK.
pub fn unwrap_dek(env: &Envelope, keys: &dyn KeyProvider) -> Result<(Kid, Dek), OpenError> {
    for r in &env.recipients {
        if let Some(result) = keys.unwrap(r) {
            return Ok((r.kid.clone(), result?));
        }
    }
    Err(OpenError::NoUsableKey {
        wrapped_to: env.recipients.iter().map(|r| r.kid.clone()).collect(),
        available: keys.available(),
    })
}

/// Wrap a DEK to an X25519 KEK (SPEC §2).
pub fn wrap_x25519(kid: &Kid, kek_public: &[u8; 32], dek: &Dek) -> Result<Recipient, SealError> {
    Ok(PreparedWrap::x25519(kid, kek_public)?.wrap(dek))
}

/// `X25519(scalar, u)` (RFC 7748), computed on the Edwards form of the
/// curve when `u` is a curve point: that multiplication has a vectorised
/// backend and costs about a quarter less than the Montgomery ladder, which
/// is what opening thousands of files in a checkout pays for. The result is
/// the same (`clamp(scalar)·P` has the same u-coordinate for either Edwards
/// point `P` with that u); points of the twist, which have no Edwards form,
/// take the ladder.
fn x25519(scalar: &[u8; 32], u: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    Zeroizing::new(match MontgomeryPoint(*u).to_edwards(0) {
        Some(point) => point.mul_clamped(*scalar).to_montgomery().to_bytes(),
        None => x25519_dalek::x25519(*scalar, *u),
    })
}

/// Unwrap an `x25519-hkdf-sha256` recipient with a private KEK.
pub fn unwrap_x25519(secret: &KekSecret, r: &Recipient) -> Result<Dek, KeyError> {
    let Wrap::X25519 { ephemeral_pub } = &r.wrap else {
        return Err(KeyError::WrongWrap {
            kid: r.kid.clone(),
            wrap: r.wrap.name(),
        });
    };
    let kek_public = secret.public();
    let shared = x25519(secret.expose(), ephemeral_pub);
    if *shared == [0u8; 32] {
        return Err(KeyError::Unwrap { kid: r.kid.clone() });
    }
    let cipher = wrap_cipher(&shared, ephemeral_pub, &kek_public);
    let mut dek = cipher
        .decrypt(
            Nonce::from_slice(&[0u8; 12]),
            Payload {
                msg: &r.wrapped_dek,
                aad: r.kid.as_str().as_bytes(),
            },
        )
        .map_err(|_| KeyError::Unwrap { kid: r.kid.clone() })?;
    let bytes: [u8; 32] = dek
        .as_slice()
        .try_into()
        .expect("48-byte wrap opens to 32 bytes");
    dek.zeroize();
    Ok(Dek::from_bytes(bytes))
}

fn wrap_cipher(shared: &[u8; 32], ephemeral_pub: &[u8; 32], kek_public: &[u8; 32]) -> Aes256Gcm {
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(ephemeral_pub);
    salt[32..].copy_from_slice(kek_public);
    let mut key = zeroize::Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(Some(&salt), shared)
        .expand(HKDF_INFO, key.as_mut())
        .expect("32 bytes is a valid HKDF-SHA-256 output length");
    Aes256Gcm::new(key.as_ref().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Edwards route of `x25519` gives RFC 7748's bytes: for public
    /// keys, and for small u-coordinates on the curve and on its twist
    /// (which falls back to the ladder); both routes are exercised.
    #[test]
    fn x25519_matches_the_ladder_on_curve_and_twist() {
        let mut on_curve = 0;
        let mut twist = 0;
        for i in 0u8..64 {
            let mut scalar = [0u8; 32];
            rand_core::RngCore::fill_bytes(&mut OsRng, &mut scalar);
            let mut u = [0u8; 32];
            if i < 32 {
                u = KekSecret::generate().public();
            } else {
                u[0] = i;
            }
            match MontgomeryPoint(u).to_edwards(0) {
                Some(_) => on_curve += 1,
                None => twist += 1,
            }
            assert_eq!(
                *x25519(&scalar, &u),
                x25519_dalek::x25519(scalar, u),
                "u = {u:?}"
            );
        }
        assert!(
            on_curve > 32 && twist > 0,
            "{on_curve} on the curve, {twist} on the twist"
        );
    }

    /// The fixed-base path gives the ladder's bytes: envelopes it seals open
    /// with the plain X25519 unwrap, for many ephemeral keys.
    #[test]
    fn table_wraps_open_like_ladder_wraps() {
        let (secrets, targets) = keyring(2);
        let preparer = WrapPreparer::new(&targets);
        assert!(preparer.targets.iter().all(|(_, t)| t.is_some()));
        for _ in 0..64 {
            let dek = Dek::random();
            for (wrap, secret) in preparer.prepare().unwrap().into_iter().zip(&secrets) {
                let recipient = wrap.wrap(&dek);
                let opened = unwrap_x25519(secret, &recipient).unwrap();
                assert_eq!(opened.expose(), dek.expose());
            }
        }
    }
    use crate::envelope::format;
    use crate::keys::software::SoftwareKeys;
    use proptest::prelude::*;

    fn keyring(n: usize) -> (Vec<KekSecret>, Vec<WrapTarget>) {
        let secrets: Vec<_> = (0..n).map(|_| KekSecret::generate()).collect();
        let targets = secrets
            .iter()
            .map(|s| WrapTarget::x25519(s.public()))
            .collect();
        (secrets, targets)
    }

    proptest! {
        #[test]
        fn seal_open_round_trip(plain in proptest::collection::vec(any::<u8>(), 0..4096),
                                aad in proptest::option::of(".*"),
                                n in 1usize..4, which in 0usize..4) {
            let (secrets, targets) = keyring(n);
            let env = seal(plain.clone(), aad.clone(), &targets).unwrap();
            let text = format::write(&env);
            let parsed = format::parse(&text).unwrap();
            prop_assert_eq!(&parsed, &env);
            let holder = SoftwareKeys::new("test", vec![secrets[which % n].clone()]);
            prop_assert_eq!(open(parsed, &holder).unwrap(), plain);
        }

        #[test]
        fn any_flipped_bit_is_refused(plain in proptest::collection::vec(any::<u8>(), 1..256), bit in any::<u16>()) {
            let (secrets, targets) = keyring(1);
            let env = seal(plain, Some("ctx".into()), &targets).unwrap();
            // Flip a bit inside one of the base64 values after decoding and re-encoding.
            let mut tampered = env.clone();
            let fields: [&mut [u8]; 4] = [&mut tampered.ciphertext, &mut tampered.nonce, &mut tampered.tag, &mut tampered.recipients[0].wrapped_dek];
            let field = (bit as usize) % 4;
            let f = fields.into_iter().nth(field).unwrap();
            let idx = (bit as usize / 4) % (f.len() * 8);
            f[idx / 8] ^= 1 << (idx % 8);
            let holder = SoftwareKeys::new("test", secrets);
            prop_assert!(open(tampered, &holder).is_err());
        }
    }

    #[test]
    fn wrong_key_names_both_sides() {
        let (_, targets) = keyring(1);
        let env = seal(b"x".to_vec(), None, &targets).unwrap();
        let other = SoftwareKeys::new("test", vec![KekSecret::generate()]);
        let err = open(env, &other).unwrap_err().to_string();
        assert!(err.contains(targets[0].kid().as_str()), "{err}");
        assert!(err.contains("keys available here: k_"), "{err}");
    }

    #[test]
    fn low_order_public_key_is_refused() {
        let kid = Kid::parse("k_0000000000000000").unwrap();
        assert!(matches!(
            wrap_x25519(&kid, &[0u8; 32], &Dek::random()),
            Err(SealError::LowOrder { .. })
        ));
    }
}
