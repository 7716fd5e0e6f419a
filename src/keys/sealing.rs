//! Where envelopes meet keys: sealing a file to a list of wrap targets and
//! opening an envelope with a [`KeyProvider`]. `envelope` encrypts the
//! content under a DEK; this module wraps that DEK to each target and
//! unwraps it again.

use super::x25519::PreparedWrap;
use super::{KeyError, KeyProvider};
use crate::envelope::{self, Envelope, FormatError, Recipient};
use crate::kid::Kid;
use crate::secret::Dek;

/// A KEK that new envelopes are wrapped to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WrapTarget {
    /// An X25519 public key: wrapping needs no private key, and the X25519
    /// work can be prepared ahead (see [`PendingWrap`]).
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

    /// This target's wrap, made ready before the DEK exists.
    pub fn prepare(&self) -> Result<PendingWrap, SealError> {
        match self {
            WrapTarget::X25519 { kid, public } => Ok(PreparedWrap::new(kid, public)?.into()),
        }
    }
}

/// One target's wrap, waiting for the DEK. Each is used once: an X25519
/// wrap key must never wrap two DEKs (the zero nonce relies on that).
pub enum PendingWrap {
    X25519(PreparedWrap),
}

impl From<PreparedWrap> for PendingWrap {
    fn from(wrap: PreparedWrap) -> PendingWrap {
        PendingWrap::X25519(wrap)
    }
}

impl PendingWrap {
    fn wrap(self, dek: &Dek) -> Result<Recipient, SealError> {
        match self {
            PendingWrap::X25519(wrap) => Ok(wrap.wrap(dek)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("no recipients to seal to")]
    NoRecipients,
    #[error(transparent)]
    Key(#[from] KeyError),
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

/// Seal `plaintext` to every target.
pub fn seal(
    plaintext: Vec<u8>,
    aad: Option<String>,
    targets: &[WrapTarget],
) -> Result<Envelope, SealError> {
    seal_prepared(plaintext, aad, prepare_wraps(targets)?)
}

/// Seal plaintext and return canonical envelope text.
pub fn seal_bytes(
    plaintext: Vec<u8>,
    aad: Option<String>,
    targets: &[WrapTarget],
) -> Result<Vec<u8>, SealError> {
    Ok(envelope::write(&seal(plaintext, aad, targets)?))
}

/// One fresh wrap per target, prepared on this thread (for a few
/// envelopes; a filter prepares many ahead with fixed-base tables).
pub fn prepare_wraps(targets: &[WrapTarget]) -> Result<Vec<PendingWrap>, SealError> {
    targets.iter().map(WrapTarget::prepare).collect()
}

/// Seal with wraps prepared beforehand, in the order given.
pub fn seal_prepared(
    plaintext: Vec<u8>,
    aad: Option<String>,
    wraps: Vec<PendingWrap>,
) -> Result<Envelope, SealError> {
    if wraps.is_empty() {
        return Err(SealError::NoRecipients);
    }
    envelope::seal(plaintext, aad, |dek| {
        wraps.into_iter().map(|w| w.wrap(dek)).collect()
    })
}

/// Open an envelope with the first recipient whose kid `keys` serves.
/// On any failure no plaintext is returned and the buffer is wiped.
pub fn open(env: Envelope, keys: &dyn KeyProvider) -> Result<Vec<u8>, OpenError> {
    let (kid, dek) = unwrap_dek(&env, keys)?;
    decrypt(env, &kid, &dek)
}

/// Parse and open envelope text in one step.
pub fn open_bytes(text: &[u8], keys: &dyn KeyProvider) -> Result<Vec<u8>, OpenError> {
    open(envelope::parse(text)?, keys)
}

/// Find the first recipient `keys` serves and unwrap its DEK.
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

/// Decrypt an envelope's content with a DEK already unwrapped for `kid`.
pub fn decrypt(env: Envelope, kid: &Kid, dek: &Dek) -> Result<Vec<u8>, OpenError> {
    envelope::decrypt(env, dek).map_err(|_| OpenError::Content { kid: kid.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::format;
    use crate::keys::software::SoftwareKeys;
    use crate::secret::KekSecret;
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
    fn no_targets_seals_nothing() {
        assert!(matches!(
            seal(b"x".to_vec(), None, &[]),
            Err(SealError::NoRecipients)
        ));
    }

    #[test]
    fn low_order_target_is_refused() {
        let err = seal(b"x".to_vec(), None, &[WrapTarget::x25519([0; 32])]).unwrap_err();
        assert!(matches!(err, SealError::Key(KeyError::LowOrder { .. })));
        assert!(err.to_string().contains("low-order point"), "{err}");
    }
}
