//! KMS custody: an X25519 KEK whose private half the customer's AWS KMS key
//! guards. The KEK's record holds the key's ARN and the KMS ciphertext of
//! the private half, made with encryption context `{"git-seal:kid": KID}`.
//! One KMS Decrypt per process unlocks it (the first time a key is needed),
//! and it lives in memory only, zeroized on drop. Envelopes stay
//! `x25519-hkdf-sha256`: sealing wraps to the public key, with no KMS call.
//!
//! Credentials, region and endpoint come from the AWS environment
//! ([`crate::kms`]); nothing about them is ever committed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use super::record::KekRecord;
use super::software::SoftwareKeys;
use super::{KeyError, KeyProvider};
use crate::envelope::{Recipient, Wrap};
use crate::kid::Kid;
use crate::kms::{AwsEnv, KmsClient, Timeouts};
use crate::secret::{Dek, KekSecret};

/// The encryption context's one key: it binds a ciphertext to its kid.
pub const CONTEXT_KEY: &str = "git-seal:kid";

/// One KMS-guarded KEK, as its record says.
#[derive(Debug, Clone)]
struct Guarded {
    kid: Kid,
    key: String,
    ciphertext: Vec<u8>,
    public: [u8; 32],
}

/// The `aws-kms` provider: the KMS-custody KEKs of a repository, each
/// unlocked on first use.
#[derive(Debug)]
pub struct KmsKeys {
    guarded: Vec<Guarded>,
    /// Each kid unlocked (or why not), once per process.
    unlocked: Mutex<HashMap<Kid, Result<Arc<SoftwareKeys>, String>>>,
}

impl KmsKeys {
    /// The provider for the KMS-custody KEKs among `records`. No KMS call
    /// is made until a private half is needed.
    pub fn new(records: &[KekRecord]) -> KmsKeys {
        let guarded = records
            .iter()
            .filter(|r| r.custody == "kms")
            .filter_map(|r| {
                Some(Guarded {
                    kid: r.kid.clone(),
                    key: r.kms_key.clone()?,
                    ciphertext: B64.decode(r.kms_ciphertext.as_deref()?).ok()?,
                    public: r.public_bytes()?,
                })
            })
            .collect();
        KmsKeys {
            guarded,
            unlocked: Mutex::new(HashMap::new()),
        }
    }

    fn guarded(&self, kid: &Kid) -> Option<&Guarded> {
        self.guarded.iter().find(|g| &g.kid == kid)
    }

    /// `kid`'s private half, unlocked by KMS (once per process): `None`
    /// when `kid` is not KMS-guarded here.
    fn unlocked(&self, kid: &Kid) -> Option<Result<Arc<SoftwareKeys>, String>> {
        let guarded = self.guarded(kid)?;
        let mut unlocked = self.unlocked.lock().unwrap_or_else(|e| e.into_inner());
        Some(
            unlocked
                .entry(kid.clone())
                .or_insert_with(|| unlock(guarded).map(Arc::new))
                .clone(),
        )
    }

    /// The first KMS-guarded KEK that cannot be unlocked here, and why.
    fn first_problem(&self) -> Option<String> {
        self.guarded
            .iter()
            .find_map(|g| self.unlocked(&g.kid)?.err())
    }
}

/// One KMS Decrypt: the private half of `guarded`, checked against its
/// record's public key (a record whose ciphertext was swapped for another
/// KEK's is refused even when KMS decrypts it).
fn unlock(guarded: &Guarded) -> Result<SoftwareKeys, String> {
    let kid = &guarded.kid;
    let failed = |e: &dyn std::fmt::Display| {
        format!("cannot unlock {kid} with KMS key {}: {e}", guarded.key)
    };
    let env = AwsEnv::from_process();
    let client =
        KmsClient::from_env(&env, &guarded.key, Timeouts::default()).map_err(|e| failed(&e))?;
    let plain = client
        .decrypt(
            &guarded.key,
            &guarded.ciphertext,
            &[(CONTEXT_KEY, kid.as_str())],
        )
        .map_err(|e| failed(&e))?;
    let mut bytes: [u8; 32] = plain.as_slice().try_into().map_err(|_| {
        failed(&"KMS returned something that is not a 32-byte X25519 key; the record was altered")
    })?;
    let secret = KekSecret::from_bytes(bytes);
    zeroize::Zeroize::zeroize(&mut bytes);
    if secret.public() != guarded.public {
        return Err(failed(
            &"the key KMS returned does not match the record's public key; the record was altered (restore .seal/keys/ from history)",
        ));
    }
    Ok(SoftwareKeys::new("aws-kms", vec![secret]))
}

/// Make a new X25519 KEK guarded by the KMS key `key` (an id, ARN or
/// alias): its record (custody `kms`, the key's ARN, the ciphertext).
/// The private half is encrypted by KMS, decrypted again to prove the
/// grant allows both, and never written anywhere.
pub fn new_kek(key: &str, version: u32) -> Result<KekRecord, KeyError> {
    let failed = |e: &dyn std::fmt::Display| KeyError::Kms(format!("KMS key {key}: {e}"));
    let env = AwsEnv::from_process();
    let client = KmsClient::from_env(&env, key, Timeouts::default()).map_err(|e| failed(&e))?;
    let arn = client.describe_key(key).map_err(|e| failed(&e))?.arn;
    let secret = KekSecret::generate();
    let mut record = KekRecord::new_x25519(&secret.public(), version);
    let context = [(CONTEXT_KEY, record.kid.as_str())];
    let ciphertext = client
        .encrypt(&arn, secret.expose(), &context)
        .map_err(|e| failed(&e))?;
    let back = client
        .decrypt(&arn, &ciphertext, &context)
        .map_err(|e| failed(&e))?;
    if back.as_slice() != secret.expose() {
        return Err(failed(&"decrypting the new KEK gave other bytes back"));
    }
    record.custody = "kms".to_owned();
    record.kms_key = Some(arn);
    record.kms_ciphertext = Some(B64.encode(ciphertext));
    Ok(record)
}

impl KeyProvider for KmsKeys {
    fn name(&self) -> &'static str {
        "aws-kms"
    }

    /// The KMS-guarded kids that unlock here (a KMS call for each not yet
    /// unlocked).
    fn available(&self) -> Vec<Kid> {
        self.guarded
            .iter()
            .filter(|g| self.has(&g.kid))
            .map(|g| g.kid.clone())
            .collect()
    }

    /// Wraps to KMS-guarded KEKs need only their public keys: the
    /// workspace's wrap targets do that, with no KMS call.
    fn wrap(&self, _: &Kid, _: &Dek) -> Option<Result<Recipient, KeyError>> {
        None
    }

    /// `None` when the kid is not KMS-guarded, or cannot be unlocked here
    /// (no credentials, no network): another recipient may open it, and
    /// [`KeyProvider::problem`] says why.
    fn unwrap(&self, recipient: &Recipient) -> Option<Result<Dek, KeyError>> {
        if !matches!(recipient.wrap, Wrap::X25519 { .. }) {
            return None;
        }
        self.unlocked(&recipient.kid)?.ok()?.unwrap(recipient)
    }

    fn has(&self, kid: &Kid) -> bool {
        self.unlocked(kid).is_some_and(|u| u.is_ok())
    }

    fn local_key(&self, kid: &Kid, purpose: &str) -> Option<zeroize::Zeroizing<[u8; 32]>> {
        self.unlocked(kid)?.ok()?.local_key(kid, purpose)
    }

    fn problem(&self) -> Option<String> {
        self.first_problem()
    }

    fn can_seal(&self, kid: &Kid) -> Result<(), KeyError> {
        match self.unlocked(kid) {
            Some(Err(why)) => Err(KeyError::Kms(why)),
            _ => Ok(()),
        }
    }
}
