//! The `x25519-hkdf-sha256` wrap (SPEC §2): a DEK wrapped to an X25519
//! KEK's public key, unwrapped with its private half; and the fast paths
//! that make a filter sealing or opening thousands of files cheap
//! (wraps prepared ahead, a fixed-base table per KEK, AWS-LC's X25519 when
//! opening).
//!
//! Content encryption is not here (see `envelope::crypto`), nor which keys
//! exist (the providers).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use curve25519_dalek::edwards::{EdwardsBasepointTable, EdwardsPoint};
use curve25519_dalek::montgomery::MontgomeryPoint;
use curve25519_dalek::traits::BasepointTable;
use hkdf::Hkdf;
use rand_core::{OsRng, RngCore};
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use super::KeyError;
use crate::envelope::{Recipient, Wrap};
use crate::kid::Kid;
use crate::secret::{Dek, KekSecret};

pub const HKDF_INFO: &[u8] = b"git-seal/v1/x25519";

/// Wrap a DEK to an X25519 KEK (SPEC §2).
pub fn wrap(kid: &Kid, kek_public: &[u8; 32], dek: &Dek) -> Result<Recipient, KeyError> {
    Ok(PreparedWrap::new(kid, kek_public)?.wrap(dek))
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

/// Never prints the wrap key.
impl std::fmt::Debug for PreparedWrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedWrap")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl PreparedWrap {
    /// One wrap key, with the Montgomery ladder (for a few envelopes;
    /// [`WrapPreparer`] serves many).
    pub fn new(kid: &Kid, kek_public: &[u8; 32]) -> Result<PreparedWrap, KeyError> {
        PreparedWrap::with_table(kid, kek_public, None)
    }

    /// As [`PreparedWrap::new`]; with `table` (the KEK's public point as
    /// a fixed-base table, see [`WrapPreparer`]) the shared secret costs a
    /// fixed-base multiplication instead of a Montgomery ladder. The bytes
    /// are the same: `S = X25519(e, KEK_pub)` is the u-coordinate of
    /// `clamp(e)·P` for either Edwards point `P` with that u-coordinate.
    fn with_table(
        kid: &Kid,
        kek_public: &[u8; 32],
        table: Option<&EdwardsBasepointTable>,
    ) -> Result<PreparedWrap, KeyError> {
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
            return Err(KeyError::LowOrder { kid: kid.clone() });
        }
        Ok(PreparedWrap {
            kid: kid.clone(),
            ephemeral_pub,
            cipher: wrap_cipher(&shared, &ephemeral_pub, kek_public),
        })
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

/// Prepares wraps for many envelopes to one KEK (a filter sealing a whole
/// `git add`): the KEK's public point is turned into a fixed-base table
/// once, which makes the per-envelope shared secret about four times
/// cheaper. A KEK whose point is not a plain prime-order point (never one
/// that git-seal made) keeps the ladder.
pub struct WrapPreparer {
    kid: Kid,
    public: [u8; 32],
    table: Option<Box<EdwardsBasepointTable>>,
}

impl std::fmt::Debug for WrapPreparer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WrapPreparer")
            .field("kid", &self.kid)
            .field("fixed_base_table", &self.table.is_some())
            .finish_non_exhaustive()
    }
}

impl WrapPreparer {
    pub fn new(kid: &Kid, public: &[u8; 32]) -> WrapPreparer {
        let table = MontgomeryPoint(*public)
            .to_edwards(0)
            .filter(EdwardsPoint::is_torsion_free)
            .map(|point| Box::new(EdwardsBasepointTable::create(&point)));
        WrapPreparer {
            kid: kid.clone(),
            public: *public,
            table,
        }
    }

    /// One fresh wrap key.
    pub(crate) fn prepare(&self) -> Result<PreparedWrap, KeyError> {
        PreparedWrap::with_table(&self.kid, &self.public, self.table.as_deref())
    }
}

/// Unwrap an `x25519-hkdf-sha256` recipient with a private KEK.
pub fn unwrap(secret: &KekSecret, r: &Recipient) -> Result<Dek, KeyError> {
    let Wrap::X25519 { ephemeral_pub } = &r.wrap else {
        return Err(KeyError::WrongWrap {
            kid: r.kid.clone(),
            wrap: r.wrap.name(),
        });
    };
    let kek_public = secret.public();
    let shared = x25519(secret, ephemeral_pub);
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

/// `X25519(KEK private half, u)` (RFC 7748), with AWS-LC: one per envelope
/// opened, which is most of what a checkout of many files costs, and AWS-LC's
/// formally verified assembly takes about half the time of
/// curve25519-dalek's. All zeros when AWS-LC refuses the result (an
/// all-zero shared secret: `u` is of small order).
fn x25519(secret: &KekSecret, u: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    use aws_lc_rs::agreement::{agree, UnparsedPublicKey, X25519};
    agree(
        secret.agreement_key(),
        UnparsedPublicKey::new(&X25519, u),
        (),
        |shared| Ok(Zeroizing::new(shared.try_into().map_err(|_| ())?)),
    )
    .unwrap_or_else(|()| Zeroizing::new([0; 32]))
}

fn wrap_cipher(shared: &[u8; 32], ephemeral_pub: &[u8; 32], kek_public: &[u8; 32]) -> Aes256Gcm {
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(ephemeral_pub);
    salt[32..].copy_from_slice(kek_public);
    let mut key = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(Some(&salt), shared)
        .expand(HKDF_INFO, key.as_mut())
        .expect("32 bytes is a valid HKDF-SHA-256 output length");
    Aes256Gcm::new(key.as_ref().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kid_of(secret: &KekSecret) -> Kid {
        Kid::of_x25519(&secret.public())
    }

    /// AWS-LC's X25519 gives RFC 7748's bytes (curve25519-dalek's ladder):
    /// for public keys, points of the twist, u-coordinates of 255 bits
    /// (the top bit is ignored) and ones past the field's prime; points of
    /// small order give all zeros either way.
    #[test]
    fn x25519_is_rfc_7748s() {
        let mut cases: Vec<[u8; 32]> = (0..32).map(|_| KekSecret::generate().public()).collect();
        for i in 0u8..32 {
            let mut u = [0u8; 32];
            u[0] = i;
            cases.push(u);
            let mut past_p = [0xff; 32];
            past_p[0] = 0xed + (i % 19);
            past_p[31] = 0x7f | (i << 7);
            cases.push(past_p);
            let mut top_bit = KekSecret::generate().public();
            top_bit[31] |= 0x80;
            cases.push(top_bit);
        }
        let mut zeros = 0;
        for u in cases {
            let secret = KekSecret::generate();
            let expected = x25519_dalek::x25519(*secret.expose(), u);
            zeros += usize::from(expected == [0; 32]);
            assert_eq!(*x25519(&secret, &u), expected, "u = {u:?}");
        }
        assert!(zeros > 0, "no point of small order was tried");
    }

    /// The fixed-base path gives the ladder's bytes: wraps it prepares open
    /// with the plain X25519 unwrap, for many ephemeral keys.
    #[test]
    fn table_wraps_open_like_ladder_wraps() {
        let secrets: Vec<KekSecret> = (0..2).map(|_| KekSecret::generate()).collect();
        let preparers: Vec<WrapPreparer> = secrets
            .iter()
            .map(|s| WrapPreparer::new(&kid_of(s), &s.public()))
            .collect();
        assert!(preparers.iter().all(|p| p.table.is_some()));
        for _ in 0..64 {
            let dek = Dek::random();
            for (preparer, secret) in preparers.iter().zip(&secrets) {
                let recipient = preparer.prepare().unwrap().wrap(&dek);
                let opened = unwrap(secret, &recipient).unwrap();
                assert_eq!(opened.expose(), dek.expose());
            }
        }
    }

    proptest! {
        #[test]
        fn any_flipped_wrap_bit_is_refused(bit in any::<u16>()) {
            let secret = KekSecret::generate();
            let dek = Dek::random();
            let mut r = wrap(&kid_of(&secret), &secret.public(), &dek).unwrap();
            let Wrap::X25519 { ephemeral_pub } = &mut r.wrap else { unreachable!() };
            let fields: [&mut [u8]; 2] = [&mut r.wrapped_dek, ephemeral_pub];
            let f = fields.into_iter().nth(bit as usize % 2).unwrap();
            let idx = (bit as usize / 2) % (f.len() * 8);
            f[idx / 8] ^= 1 << (idx % 8);
            prop_assert!(unwrap(&secret, &r).is_err());
        }
    }

    #[test]
    fn the_kid_is_bound_and_the_wrong_key_refused() {
        let secret = KekSecret::generate();
        let dek = Dek::random();
        let r = wrap(&kid_of(&secret), &secret.public(), &dek).unwrap();
        assert_eq!(unwrap(&secret, &r).unwrap().expose(), dek.expose());
        let renamed = Recipient {
            kid: Kid::parse("k_0000000000000000").unwrap(),
            ..r.clone()
        };
        assert!(matches!(
            unwrap(&secret, &renamed),
            Err(KeyError::Unwrap { .. })
        ));
        assert!(matches!(
            unwrap(&KekSecret::generate(), &r),
            Err(KeyError::Unwrap { .. })
        ));
    }

    #[test]
    fn low_order_public_key_is_refused() {
        let kid = Kid::parse("k_0000000000000000").unwrap();
        assert!(matches!(
            wrap(&kid, &[0u8; 32], &Dek::random()),
            Err(KeyError::LowOrder { .. })
        ));
    }
}
