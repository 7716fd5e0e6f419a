//! The providers this build knows, chosen by name (`--provider NAME`, and
//! the `seal.provider` install lock in a clone's git config). A plain list:
//! the binary turns it into a command-line argument; the library parses none.

use std::path::PathBuf;

use super::record::KekRecord;
use super::{env, file, kms, pkcs11, KeyError, KeyProvider};
use crate::repo::Repo;
use crate::secret::KekSecret;

/// One provider this build can open.
pub struct ProviderInfo {
    name: &'static str,
    custody: &'static str,
    description: &'static str,
    open: Opener,
    /// How it makes a new KEK; `None` for a provider that only holds keys
    /// made elsewhere (`env`).
    make: Option<Maker>,
}

/// A KEK a provider made: its record (status `active`) and where its
/// private half is.
#[derive(Debug)]
pub struct Made {
    pub record: KekRecord,
    pub place: Place,
}

/// Where a new KEK's private half is.
#[derive(Debug)]
pub enum Place {
    /// A key file here.
    KeyFile(PathBuf),
    /// Inside the token with this label.
    Token(String),
    /// Nowhere: the KMS key with this ARN guards it.
    Kms(String),
}

/// How a provider makes a KEK of `version` for the clone `repo`, guarded by
/// the KMS key given, if the provider takes one.
type Maker = fn(&Repo, u32, Option<&str>) -> Result<Made, KeyError>;

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
        make: Some(make_file),
    },
    ProviderInfo {
        name: "env",
        custody: "software",
        description: "Private keys in the GIT_SEAL_KEK environment variable (for CI)",
        open: open_env,
        make: None,
    },
    ProviderInfo {
        name: "pkcs11",
        custody: "hsm",
        description: "An AES-256 key inside a PKCS#11 token (HSM) that never leaves it",
        open: open_pkcs11,
        make: Some(make_pkcs11),
    },
    ProviderInfo {
        name: "aws-kms",
        custody: "kms",
        description:
            "An X25519 key that the customer's AWS KMS key guards (one KMS call per process)",
        open: open_kms,
        make: Some(make_kms),
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

/// A new X25519 KEK whose private half goes to a key file.
fn make_file(_: &Repo, version: u32, kms_key: Option<&str>) -> Result<Made, KeyError> {
    no_kms_key("file", kms_key)?;
    let secret = KekSecret::generate();
    let path = file::FileKeys::open_default()?.store(&secret)?;
    let record = KekRecord::new_x25519(&secret.public(), version);
    Ok(Made {
        record,
        place: Place::KeyFile(path),
    })
}

/// A new AES-256 KEK generated inside the clone's token.
fn make_pkcs11(repo: &Repo, version: u32, kms_key: Option<&str>) -> Result<Made, KeyError> {
    no_kms_key("pkcs11", kms_key)?;
    let keys = pkcs11::Pkcs11Keys::open(Some(repo));
    let kid = keys.generate()?;
    let label = keys.token_label().unwrap_or_default().to_owned();
    Ok(Made {
        record: KekRecord::new_pkcs11(kid, version),
        place: Place::Token(label),
    })
}

/// A new X25519 KEK that the KMS key `kms_key` guards.
fn make_kms(_: &Repo, version: u32, kms_key: Option<&str>) -> Result<Made, KeyError> {
    let key = kms_key.ok_or_else(|| {
        KeyError::Kms(
            "a KEK of the aws-kms provider is guarded by a KMS key: name it with --kms-key ARN (or alias/NAME)".into(),
        )
    })?;
    let record = kms::new_kek(key, version)?;
    let arn = record.kms_key.clone().unwrap_or_default();
    Ok(Made {
        record,
        place: Place::Kms(arn),
    })
}

fn no_kms_key(provider: &str, kms_key: Option<&str>) -> Result<(), KeyError> {
    match kms_key {
        Some(_) => Err(KeyError::Kms(format!(
            "--kms-key is for the aws-kms provider, not {provider}"
        ))),
        None => Ok(()),
    }
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

    /// Make a new KEK of `version` for the clone `repo` (`kms_key`: the KMS
    /// key that guards it, for `aws-kms`): `None` when this provider makes
    /// none (`env` holds keys made elsewhere).
    pub fn make(
        &self,
        repo: &Repo,
        version: u32,
        kms_key: Option<&str>,
    ) -> Option<Result<Made, KeyError>> {
        self.make.map(|make| make(repo, version, kms_key))
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
