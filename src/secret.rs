//! Types for secret bytes. They zeroize on drop and their `Debug` prints no
//! bytes. `expose()` is the one accessor, so a search finds every use.

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// A large file's content held in memory in pieces (plaintext, or
/// ciphertext that must not leave), wiped when dropped. [`Pieces::take`]
/// hands the pieces to a caller that encrypts or wipes them.
#[derive(Default)]
pub struct Pieces(Vec<Vec<u8>>);

impl Pieces {
    pub fn expose(&self) -> &[Vec<u8>] {
        &self.0
    }

    pub(crate) fn expose_mut(&mut self) -> &mut Vec<Vec<u8>> {
        &mut self.0
    }

    /// The pieces, no longer wiped here.
    pub fn take(mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.0)
    }
}

impl Drop for Pieces {
    fn drop(&mut self) {
        for piece in &mut self.0 {
            piece.zeroize();
        }
    }
}

impl std::fmt::Debug for Pieces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let len: usize = self.0.iter().map(Vec::len).sum();
        write!(f, "Pieces({len} bytes)")
    }
}

/// A data-encryption key: 32 random bytes, one per envelope.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Dek([u8; 32]);

impl Dek {
    pub fn random() -> Dek {
        let mut bytes = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
        Dek(bytes)
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Dek {
        Dek(bytes)
    }

    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for Dek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dek").finish_non_exhaustive()
    }
}

/// Private X25519 KEK material (32 bytes), with its public key computed
/// once. Parsed from 64 hex digits.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct KekSecret {
    secret: [u8; 32],
    public: [u8; 32],
    /// The private half as AWS-LC holds it for X25519, made on first use
    /// and shared by clones (AWS-LC wipes it when it is freed).
    #[zeroize(skip)]
    agreement: std::sync::Arc<std::sync::OnceLock<aws_lc_rs::agreement::PrivateKey>>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretParseError {
    #[error("expected 64 hex digits, found {0} characters")]
    Length(usize),
    #[error("contains a character that is not a hex digit")]
    NotHex,
}

impl KekSecret {
    pub fn generate() -> KekSecret {
        let mut bytes = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
        KekSecret::from_bytes(bytes)
    }

    pub(crate) fn from_bytes(secret: [u8; 32]) -> KekSecret {
        let public =
            x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(secret)).to_bytes();
        KekSecret {
            secret,
            public,
            agreement: Default::default(),
        }
    }

    /// Parse 64 hex digits (surrounding whitespace ignored). Errors never
    /// contain the input.
    pub fn from_hex(text: &str) -> Result<KekSecret, SecretParseError> {
        let text = text.trim();
        if text.len() != 64 {
            return Err(SecretParseError::Length(text.chars().count()));
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).map_err(|_| SecretParseError::NotHex)?;
        let secret = KekSecret::from_bytes(bytes);
        bytes.zeroize();
        Ok(secret)
    }

    /// Lowercase hex, in a zeroizing string, for writing a key file.
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.secret))
    }

    pub fn expose(&self) -> &[u8; 32] {
        &self.secret
    }

    pub fn public(&self) -> [u8; 32] {
        self.public
    }

    /// The private half for X25519 with AWS-LC (see `keys::x25519`).
    pub(crate) fn agreement_key(&self) -> &aws_lc_rs::agreement::PrivateKey {
        self.agreement.get_or_init(|| {
            aws_lc_rs::agreement::PrivateKey::from_private_key(
                &aws_lc_rs::agreement::X25519,
                &self.secret,
            )
            .expect("32 bytes are an X25519 private key")
        })
    }
}

impl std::fmt::Debug for KekSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KekSecret").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_prints_no_bytes() {
        let k = KekSecret::from_hex(&"ab".repeat(32)).unwrap();
        assert!(!format!("{k:?}").contains("ab"));
        let d = Dek::from_bytes([0xcd; 32]);
        assert!(!format!("{d:?}").to_lowercase().contains("cd"));
        assert!(!format!("{d:?}").contains("205"));
    }

    #[test]
    fn from_hex_refuses_without_echo() {
        let e = KekSecret::from_hex("zz").unwrap_err();
        assert_eq!(e, SecretParseError::Length(2));
        let e = KekSecret::from_hex(&"Zq".repeat(32)).unwrap_err();
        assert!(!e.to_string().contains("Zq"));
        assert!(KekSecret::from_hex(&format!("{}\n", "0a".repeat(32))).is_ok());
    }
}
