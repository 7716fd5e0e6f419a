//! Key-encryption keys: where a KEK's private half lives, and how a DEK is
//! wrapped to a KEK and unwrapped again.
//!
//! One narrow trait, [`KeyProvider`], with each provider in its own file,
//! chosen by name from `registry` (`file`, `env`, `pkcs11`, `aws-kms`). `software` holds the
//! X25519 keys that `file` and `env` serve; `public` holds public keys only
//! (it wraps, never unwraps); [`Chain`] asks several in order. `x25519` is
//! the `x25519-hkdf-sha256` wrap; `sealing` seals an envelope to wrap
//! targets and opens one with a provider; `record` is the committed public
//! metadata, and `expiry` says when an active KEK is due for rotation. The envelope format (`envelope`) knows nothing of keys.

pub mod env;
pub mod expiry;
pub mod file;
pub mod kms;
pub mod pkcs11;
pub mod public;
pub mod record;
pub mod registry;
pub mod sealing;
pub mod software;
pub mod x25519;

pub use registry::{provider, provider_or_default, Made, Place, ProviderInfo, PROVIDERS};
pub use sealing::{
    open, open_bytes, open_into, seal, seal_bytes, seal_stream, OpenError, OpenIntoError,
    SealError, WrapTarget,
};

use std::path::PathBuf;
use std::sync::Arc;

use zeroize::Zeroizing;

use crate::envelope::Recipient;
use crate::kid::Kid;
use crate::secret::{Dek, KekSecret, SecretParseError};

/// A source of KEKs: wraps a DEK to the kids it serves and unwraps it again.
/// As rage's `Identity`, `None` means "not mine" and `Some(Err)` "mine, but
/// broken", so that several providers can be asked in turn (see [`Chain`]).
pub trait KeyProvider: Send + Sync + std::fmt::Debug {
    /// The provider's name, as in `--provider NAME` and `seal.provider`.
    fn name(&self) -> &'static str;
    /// Kids whose private half is usable here (the kids it can unwrap for).
    fn available(&self) -> Vec<Kid>;
    /// Wrap a DEK to `kid`: `None` when this provider does not serve the
    /// kid, `Some(Err)` when it does but wrapping fails (bad key file,
    /// low-order public key).
    fn wrap(&self, kid: &Kid, dek: &Dek) -> Option<Result<Recipient, KeyError>>;
    /// Unwrap a recipient's DEK: `None` when the kid is not this provider's,
    /// `Some(Err)` when it is but unwrapping fails (wrong key, bad key file).
    fn unwrap(&self, recipient: &Recipient) -> Option<Result<Dek, KeyError>>;
    /// Can this provider unwrap for `kid` here? Errors (e.g. a key file with
    /// loose permissions) count as no, and surface when unwrapping.
    fn has(&self, kid: &Kid) -> bool {
        self.available().contains(kid)
    }
    /// A 32-byte key for local, never-committed use (`purpose` separates
    /// uses), derived from the KEK's private half; `None` if not held here.
    fn local_key(&self, kid: &Kid, purpose: &str) -> Option<Zeroizing<[u8; 32]>> {
        let _ = (kid, purpose);
        None
    }
    /// Why this provider serves no key here, when it can say (a token
    /// that cannot be reached or logged in to): for warnings.
    fn problem(&self) -> Option<String> {
        None
    }
    /// May this clone seal new envelopes to `kid`? A KEK that a KMS key
    /// guards is sealed to only where KMS unlocks it (wrapping itself needs
    /// only its public key).
    fn can_seal(&self, kid: &Kid) -> Result<(), KeyError> {
        let _ = kid;
        Ok(())
    }
}

/// A shared or boxed provider is a provider (for worker threads and
/// chains): every method forwards.
macro_rules! forward_provider {
    ($($pointer:ident),*) => {$(
        impl<P: KeyProvider + ?Sized> KeyProvider for $pointer<P> {
            fn name(&self) -> &'static str {
                (**self).name()
            }
            fn available(&self) -> Vec<Kid> {
                (**self).available()
            }
            fn wrap(&self, kid: &Kid, dek: &Dek) -> Option<Result<Recipient, KeyError>> {
                (**self).wrap(kid, dek)
            }
            fn unwrap(&self, recipient: &Recipient) -> Option<Result<Dek, KeyError>> {
                (**self).unwrap(recipient)
            }
            fn has(&self, kid: &Kid) -> bool {
                (**self).has(kid)
            }
            fn local_key(&self, kid: &Kid, purpose: &str) -> Option<Zeroizing<[u8; 32]>> {
                (**self).local_key(kid, purpose)
            }
            fn problem(&self) -> Option<String> {
                (**self).problem()
            }
            fn can_seal(&self, kid: &Kid) -> Result<(), KeyError> {
                (**self).can_seal(kid)
            }
        }
    )*};
}

forward_provider!(Arc, Box);

/// Derive a local key from private KEK material.
pub(crate) fn derive_local_key(secret: &KekSecret, purpose: &str) -> Zeroizing<[u8; 32]> {
    let context = format!("git-seal/v1/local/{purpose}");
    Zeroizing::new(blake3::derive_key(&context, secret.expose()))
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key file {} for {kid} is readable by group or others (mode {mode:o}); run `chmod 600 {}`", path.display(), path.display())]
    Permissions { kid: Kid, path: PathBuf, mode: u32 },
    #[error("key directory {} is accessible by group or others (mode {mode:o}); run `chmod 700 {}`", path.display(), path.display())]
    DirPermissions { path: PathBuf, mode: u32 },
    #[error("cannot read key file {} for {kid}: {source}", path.display())]
    Read {
        kid: Kid,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("key file {} for {kid} is not a KEK: {source}", path.display())]
    Malformed {
        kid: Kid,
        path: PathBuf,
        #[source]
        source: SecretParseError,
    },
    #[error("key file {} is named {kid} but holds the key of {actual}; rename it to {actual}.key", path.display())]
    KidMismatch {
        kid: Kid,
        actual: Kid,
        path: PathBuf,
    },
    #[error("GIT_SEAL_KEK item {index} is not a KEK ({source}); it must hold 64-hex-digit private keys separated by commas or whitespace")]
    Env {
        index: usize,
        #[source]
        source: SecretParseError,
    },
    #[error("cannot unwrap the DEK for {kid}: authentication failed (the envelope's recipient entry was altered, or it names a key it was not wrapped to)")]
    Unwrap { kid: Kid },
    #[error("refusing to wrap to {kid}: its public key is a low-order point")]
    LowOrder { kid: Kid },
    #[error("recipient {kid} uses wrap {wrap:?}, which this provider does not serve")]
    WrongWrap { kid: Kid, wrap: &'static str },
    #[error("cannot find a user data directory for key files; set GIT_SEAL_KEY_DIR")]
    NoKeyDir,
    #[error("cannot write key file {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A PKCS#11 token's failure, said whole (module, token, PIN, key).
    #[error("{0}")]
    Pkcs11(String),
    /// A KMS-guarded KEK that cannot be made or unlocked, said whole (kid,
    /// KMS key, what to do).
    #[error("{0}")]
    Kms(String),
    #[error("unknown provider {0:?} (known: {known})", known = registry::names())]
    UnknownProvider(String),
}

/// The one answer to "which keys are here?": the software keys this
/// machine holds outside any repository's install lock (key files, then
/// GIT_SEAL_KEK). A malformed GIT_SEAL_KEK is an error.
pub fn here() -> Result<Chain<'static>, KeyError> {
    let mut providers: Vec<Box<dyn KeyProvider>> = Vec::new();
    if let Ok(files) = file::FileKeys::open_default() {
        providers.push(Box::new(files));
    }
    providers.push(Box::new(env::EnvKeys::from_env()?));
    Ok(Chain(providers))
}

/// The private half of a software KEK held [`here`] (a key file, archived
/// or not, else GIT_SEAL_KEK): `None` when neither holds it. For the few
/// commands that need the key itself (`kek export`, public keys of kids).
pub fn secret_here(kid: &Kid) -> Result<Option<KekSecret>, KeyError> {
    if let Some(secret) = file::FileKeys::open_default()?.load(kid) {
        return secret.map(Some);
    }
    Ok(env::EnvKeys::from_env()?
        .secrets()
        .find(|(k, _)| *k == kid)
        .map(|(_, secret)| secret.clone()))
}

/// Kids whose private key is [`here`], never the keys themselves; a
/// malformed GIT_SEAL_KEK counts as holding none (its error surfaces where
/// a key is used).
pub fn kids_here() -> Vec<Kid> {
    let mut kids = Vec::new();
    if let Ok(files) = file::FileKeys::open_default() {
        kids.extend(files.available());
    }
    if let Ok(env) = env::EnvKeys::from_env() {
        kids.extend(env.available());
    }
    kids.sort();
    kids.dedup();
    kids
}

/// Keys for opening by hand (`decrypt`, `textconv`): a repository's own
/// provider first, then the keys [`here`]. Opening with whichever key
/// holds the envelope is harmless; sealing never falls back like this.
pub fn for_opening(repository: Option<Arc<dyn KeyProvider>>) -> Result<Chain<'static>, KeyError> {
    let mut chain = here()?;
    if let Some(keys) = repository {
        // The repository's provider may be one of those here (`file`):
        // asked once, first.
        chain.0.retain(|p| p.name() != keys.name());
        chain.0.insert(0, Box::new(keys));
    }
    Ok(chain)
}

/// Several providers asked in order (used outside a repository, where no
/// install lock says which one to use): the first that serves a kid wraps
/// or unwraps for it.
#[derive(Debug)]
pub struct Chain<'a>(pub Vec<Box<dyn KeyProvider + 'a>>);

impl KeyProvider for Chain<'_> {
    fn name(&self) -> &'static str {
        "any"
    }

    fn available(&self) -> Vec<Kid> {
        let mut kids: Vec<Kid> = self.0.iter().flat_map(|p| p.available()).collect();
        kids.sort();
        kids.dedup();
        kids
    }

    fn wrap(&self, kid: &Kid, dek: &Dek) -> Option<Result<Recipient, KeyError>> {
        self.0.iter().find_map(|p| p.wrap(kid, dek))
    }

    fn unwrap(&self, recipient: &Recipient) -> Option<Result<Dek, KeyError>> {
        self.0.iter().find_map(|p| p.unwrap(recipient))
    }

    fn has(&self, kid: &Kid) -> bool {
        self.0.iter().any(|p| p.has(kid))
    }

    fn local_key(&self, kid: &Kid, purpose: &str) -> Option<Zeroizing<[u8; 32]>> {
        self.0.iter().find_map(|p| p.local_key(kid, purpose))
    }

    fn problem(&self) -> Option<String> {
        self.0.iter().find_map(|p| p.problem())
    }

    fn can_seal(&self, kid: &Kid) -> Result<(), KeyError> {
        self.0.iter().try_for_each(|p| p.can_seal(kid))
    }
}
