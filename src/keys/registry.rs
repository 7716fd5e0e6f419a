//! The providers this build knows, chosen by name (`--provider NAME`, and
//! the `seal.provider` install lock in a clone's git config). A plain list:
//! the binary turns it into a command-line argument; the library parses none.

use super::record::KekRecord;
use super::{env, file, kms, pkcs11, KeyError, KeyProvider};
use crate::repo::Repo;

/// One provider this build can open.
pub struct ProviderInfo {
    name: &'static str,
    custody: &'static str,
    description: &'static str,
    open: Opener,
}

/// How a provider opens, given the clone whose git config may set it up
/// and the KEK records it may need (a KMS-guarded KEK's ciphertext).
type Opener = fn(Option<&Repo>, &[KekRecord]) -> Result<Box<dyn KeyProvider>, KeyError>;

/// Every provider, in the order help lists them.
pub const PROVIDERS: &[ProviderInfo] = &[
    ProviderInfo {
        name: "file",
        custody: "software",
        description: "A key file in the user data directory (default)",
        open: open_file,
    },
    ProviderInfo {
        name: "env",
        custody: "software",
        description: "Private keys in the GIT_SEAL_KEK environment variable (for CI)",
        open: open_env,
    },
    ProviderInfo {
        name: "pkcs11",
        custody: "hsm",
        description: "An AES-256 key inside a PKCS#11 token (HSM) that never leaves it",
        open: open_pkcs11,
    },
    ProviderInfo {
        name: "aws-kms",
        custody: "kms",
        description:
            "An X25519 key that the customer's AWS KMS key guards (one KMS call per process)",
        open: open_kms,
    },
];

/// The provider a clone uses when its config names none.
const DEFAULT: &str = "file";

fn open_file(_: Option<&Repo>, _: &[KekRecord]) -> Result<Box<dyn KeyProvider>, KeyError> {
    Ok(Box::new(file::FileKeys::open_default()?))
}

fn open_env(_: Option<&Repo>, _: &[KekRecord]) -> Result<Box<dyn KeyProvider>, KeyError> {
    Ok(Box::new(env::EnvKeys::from_env()?))
}

/// No KMS call: each KEK is unlocked when first needed.
fn open_kms(_: Option<&Repo>, records: &[KekRecord]) -> Result<Box<dyn KeyProvider>, KeyError> {
    Ok(Box::new(kms::KmsKeys::new(records)))
}

/// Reads settings only: the token is logged in to when a key is needed.
fn open_pkcs11(repo: Option<&Repo>, _: &[KekRecord]) -> Result<Box<dyn KeyProvider>, KeyError> {
    Ok(Box::new(pkcs11::Pkcs11Keys::open(repo)))
}

/// The provider called `name`.
pub fn provider(name: &str) -> Result<&'static ProviderInfo, KeyError> {
    PROVIDERS
        .iter()
        .find(|p| p.name == name)
        .ok_or_else(|| KeyError::UnknownProvider(name.to_owned()))
}

/// The provider called `name`, or the default one when none is named.
pub fn provider_or_default(name: Option<&str>) -> Result<&'static ProviderInfo, KeyError> {
    provider(name.unwrap_or(DEFAULT))
}

/// The known names, for messages.
pub(super) fn names() -> String {
    PROVIDERS
        .iter()
        .map(|p| p.name)
        .collect::<Vec<_>>()
        .join(", ")
}

impl ProviderInfo {
    /// As in `--provider NAME` and `seal.provider`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The custody this provider can serve (SPEC §3).
    pub fn custody(&self) -> &'static str {
        self.custody
    }

    /// One line for help text.
    pub fn description(&self) -> &'static str {
        self.description
    }

    /// Open the provider here (reading its configuration from the
    /// environment, e.g. GIT_SEAL_KEK, and from `repo`'s git config), for
    /// the KEKs `records` lists.
    pub fn open(
        &self,
        repo: Option<&Repo>,
        records: &[KekRecord],
    ) -> Result<Box<dyn KeyProvider>, KeyError> {
        (self.open)(repo, records)
    }
}

impl std::fmt::Debug for ProviderInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ProviderInfo").field(&self.name).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_by_name() {
        assert_eq!(provider("env").unwrap().name(), "env");
        assert_eq!(provider_or_default(None).unwrap().name(), "file");
        assert_eq!(provider("pkcs11").unwrap().custody(), "hsm");
        let err = provider("pkcs12").unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown provider \"pkcs12\" (known: file, env, pkcs11, aws-kms)"
        );
        assert_eq!(provider("aws-kms").unwrap().custody(), "kms");
    }
}
