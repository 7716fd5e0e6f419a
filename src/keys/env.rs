//! The `env` provider: `GIT_SEAL_KEK` holds one or more 64-hex-digit private
//! keys separated by commas or whitespace. Meant for CI and servers. Errors
//! say which item is wrong and never echo the variable's value.

use crate::envelope::Recipient;
use crate::keys::software::SoftwareKeys;
use crate::keys::{KeyError, KeyProvider};
use crate::kid::Kid;
use crate::secret::{Dek, KekSecret};

pub const VAR: &str = "GIT_SEAL_KEK";

#[derive(Debug)]
pub struct EnvKeys(SoftwareKeys);

impl EnvKeys {
    pub fn from_env() -> Result<EnvKeys, KeyError> {
        let value = zeroize::Zeroizing::new(std::env::var(VAR).unwrap_or_default());
        EnvKeys::parse(&value)
    }

    pub fn parse(value: &str) -> Result<EnvKeys, KeyError> {
        let secrets = value
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|item| !item.is_empty())
            .enumerate()
            .map(|(i, item)| {
                KekSecret::from_hex(item).map_err(|source| KeyError::Env {
                    index: i + 1,
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(EnvKeys(SoftwareKeys::new("env", secrets)))
    }

    pub fn secrets(&self) -> impl Iterator<Item = (&Kid, &KekSecret)> {
        self.0.secrets()
    }
}

impl KeyProvider for EnvKeys {
    fn name(&self) -> &'static str {
        "env"
    }

    fn available(&self) -> Vec<Kid> {
        self.0.available()
    }

    fn wrap(&self, kid: &Kid, dek: &Dek) -> Option<Result<Recipient, KeyError>> {
        self.0.wrap(kid, dek)
    }

    fn unwrap(&self, r: &Recipient) -> Option<Result<Dek, KeyError>> {
        self.0.unwrap(r)
    }

    fn local_key(&self, kid: &Kid, purpose: &str) -> Option<zeroize::Zeroizing<[u8; 32]>> {
        self.0.local_key(kid, purpose)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_separators_and_refuses_junk_without_echo() {
        let a = "8d56d558cdb694526393aff471ce40cbed74c6e66f4ac04d0e80de8a3c70bbce";
        let b = "6bd4e596c3e0bc5a9407054e47782ef33f33ed695a918501bb8f0d283db99ac6";
        let keys = EnvKeys::parse(&format!(" {a},\n{b}\t")).unwrap();
        assert_eq!(
            keys.available().iter().map(Kid::as_str).collect::<Vec<_>>(),
            ["k_b3b9e069a8d3a8c9", "k_5b3de0b0f5d75424"]
        );
        assert!(EnvKeys::parse("").unwrap().available().is_empty());
        let err = EnvKeys::parse(&format!("{a},secretsecret"))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("item 2"), "{err}");
        assert!(!err.contains("secretsecret"), "{err}");
    }
}
