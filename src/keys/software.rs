//! X25519 KEKs held in memory, shared by the `file` and `env` providers: both
//! serve `software` custody, so a laptop's key file and CI's environment
//! secret are the same KEK.

use crate::envelope::{Recipient, Wrap};
use crate::keys::x25519;
use crate::keys::{KeyError, KeyProvider};
use crate::kid::Kid;
use crate::secret::{Dek, KekSecret};

pub struct SoftwareKeys {
    name: &'static str,
    keys: Vec<(Kid, KekSecret)>,
}

/// Names the kids, never the keys.
impl std::fmt::Debug for SoftwareKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftwareKeys")
            .field("name", &self.name)
            .field(
                "kids",
                &self.keys.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl SoftwareKeys {
    pub fn new(name: &'static str, secrets: Vec<KekSecret>) -> SoftwareKeys {
        let keys = secrets
            .into_iter()
            .map(|s| (Kid::of_x25519(&s.public()), s))
            .collect();
        SoftwareKeys { name, keys }
    }

    pub fn secrets(&self) -> impl Iterator<Item = (&Kid, &KekSecret)> {
        self.keys.iter().map(|(k, s)| (k, s))
    }
}

impl KeyProvider for SoftwareKeys {
    fn name(&self) -> &'static str {
        self.name
    }

    fn available(&self) -> Vec<Kid> {
        self.keys.iter().map(|(k, _)| k.clone()).collect()
    }

    fn wrap(&self, kid: &Kid, dek: &Dek) -> Option<Result<Recipient, KeyError>> {
        let (_, secret) = self.keys.iter().find(|(k, _)| k == kid)?;
        Some(x25519::wrap(kid, &secret.public(), dek))
    }

    fn unwrap(&self, r: &Recipient) -> Option<Result<Dek, KeyError>> {
        if !matches!(r.wrap, Wrap::X25519 { .. }) {
            return None;
        }
        let (_, secret) = self.keys.iter().find(|(k, _)| *k == r.kid)?;
        Some(x25519::unwrap(secret, r))
    }

    fn local_key(&self, kid: &Kid, purpose: &str) -> Option<zeroize::Zeroizing<[u8; 32]>> {
        let (_, secret) = self.keys.iter().find(|(k, _)| k == kid)?;
        Some(crate::keys::derive_local_key(secret, purpose))
    }
}
