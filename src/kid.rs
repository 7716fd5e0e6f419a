//! Key ids: `k_` followed by 16 lowercase hex digits. For X25519 KEKs they are
//! derived from the public key, so any private key identifies its envelopes.

use sha2::{Digest, Sha256};

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Kid(String);

#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a key id (expected `k_` followed by 16 lowercase hex digits)")]
pub struct KidError(String);

impl Kid {
    pub fn parse(s: &str) -> Result<Kid, KidError> {
        let ok = s.len() == 18
            && s.starts_with("k_")
            && s[2..]
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if ok {
            Ok(Kid(s.to_owned()))
        } else {
            Err(KidError(s.chars().take(40).collect()))
        }
    }

    /// The kid of an X25519 public key: `k_` + first 16 hex digits of SHA-256.
    pub fn of_x25519(public: &[u8; 32]) -> Kid {
        let digest = Sha256::digest(public);
        Kid(format!("k_{}", hex::encode(&digest[..8])))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Kid {
    type Err = KidError;

    fn from_str(s: &str) -> Result<Kid, KidError> {
        Kid::parse(s)
    }
}

impl std::fmt::Display for Kid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for Kid {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Kid {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Kid, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Kid::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_refuses_malformed() {
        assert!(Kid::parse("k_b3b9e069a8d3a8c9").is_ok());
        for bad in [
            "",
            "k_",
            "k_B3B9E069A8D3A8C9",
            "x_b3b9e069a8d3a8c9",
            "k_b3b9e069a8d3a8c",
            "k_b3b9e069a8d3a8c9a",
        ] {
            assert!(Kid::parse(bad).is_err(), "{bad}");
        }
    }
}
