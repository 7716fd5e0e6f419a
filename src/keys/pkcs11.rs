//! HSM custody: an AES-256 KEK generated inside a PKCS#11 token, which never
//! leaves it. The token wraps and unwraps each DEK itself with `CKM_AES_GCM`
//! (C_Encrypt/C_Decrypt over the DEK's 32 bytes, AAD = the kid), giving the
//! `pkcs11-aes-256-gcm` recipient of SPEC §2.
//!
//! The module, the token's label and the PIN come from the environment
//! (`GIT_SEAL_PKCS11_MODULE`, `_TOKEN`, `_PIN`, `_PIN_FILE`), else the
//! clone's git config (`seal.pkcs11.module`, `.token`, `.pinFile`). The PIN
//! is never stored by git-seal, printed, or put in an error.
//!
//! One login per process: tokens are opened once and shared (a PKCS#11
//! login holds for every session of the application), and sessions are
//! pooled so that the filter's worker threads each use their own.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

use super::{KeyError, KeyProvider};
use crate::envelope::{Recipient, Wrap};
use crate::kid::Kid;
use crate::repo::Repo;
use crate::secret::Dek;

/// The wrap's AES-GCM nonce length, and the wrapped DEK's (DEK + tag).
const NONCE_LEN: usize = 12;
const WRAPPED_LEN: usize = 48;

/// Where each setting is read: an environment variable, else a git config
/// key of the clone.
const MODULE: (&str, &str) = ("GIT_SEAL_PKCS11_MODULE", "seal.pkcs11.module");
const TOKEN: (&str, &str) = ("GIT_SEAL_PKCS11_TOKEN", "seal.pkcs11.token");
const PIN_FILE: (&str, &str) = ("GIT_SEAL_PKCS11_PIN_FILE", "seal.pkcs11.pinFile");
const PIN_ENV: &str = "GIT_SEAL_PKCS11_PIN";

#[derive(Debug, thiserror::Error)]
pub enum Pkcs11Error {
    #[error("no PKCS#11 {what} is configured; set {env}, or `git config {config} {example}`")]
    NotConfigured {
        what: &'static str,
        env: &'static str,
        config: &'static str,
        example: &'static str,
    },
    #[error("no PIN for token {token:?}: set GIT_SEAL_PKCS11_PIN, or point GIT_SEAL_PKCS11_PIN_FILE (or `git config seal.pkcs11.pinFile`) at a 0600 file holding it")]
    NoPin { token: String },
    #[error("cannot read the PIN file {}: {source}", path.display())]
    PinFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("PIN file {} is readable by group or others (mode {mode:o}); run `chmod 600 {}`", path.display(), path.display())]
    PinFileMode { path: PathBuf, mode: u32 },
    #[error("cannot load the PKCS#11 module {}: {reason}; check {} (or `git config {}`)", path.display(), MODULE.0, MODULE.1)]
    Module { path: PathBuf, reason: String },
    #[error("the PKCS#11 module {} has no token labelled {token:?} (tokens there: {known}); check {} (or `git config {}`)", module.display(), TOKEN.0, TOKEN.1)]
    NoToken {
        module: PathBuf,
        token: String,
        known: String,
    },
    #[error("wrong PIN for token {token:?}; each wrong PIN counts toward the token's retry limit and may lock it: check GIT_SEAL_PKCS11_PIN (or the PIN file) before trying again")]
    WrongPin { token: String },
    #[error("token {token:?} is locked after too many wrong PINs; its security officer must unlock it with the HSM's administration tool")]
    PinLocked { token: String },
    #[error("token {token:?} holds no key for {kid} (CKA_ID {id}): the KEK is in another token, or was deleted from this one; set {} to the token that holds it", TOKEN.0)]
    NoKey { kid: Kid, token: String, id: String },
    #[error("refusing {kid} in token {token:?}: the key is extractable or not sensitive, so its value could leave the token; make a KEK that cannot with `git seal rotate --provider pkcs11`")]
    Extractable { kid: Kid, token: String },
    #[error("token {token:?} cannot hold git-seal's KEK: {why} (git-seal needs CKM_AES_KEY_GEN, and CKM_AES_GCM for encrypt and decrypt)")]
    Unsupported { token: String, why: String },
    #[error("token {token:?}: {action} failed: {source}")]
    Token {
        token: String,
        action: &'static str,
        #[source]
        source: CkError,
    },
    #[error("token {token:?} returned {len} bytes for a wrapped DEK (expected {WRAPPED_LEN})")]
    WrapLength { token: String, len: usize },
}

/// What a clone's PKCS#11 provider is set up with (no secret: the PIN is
/// read when logging in, and dropped after).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Settings {
    module: PathBuf,
    token: String,
    pin_file: Option<PathBuf>,
}

fn setting(repo: Option<&Repo>, (env, config): (&str, &str)) -> Option<String> {
    std::env::var(env)
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(|| repo.and_then(|r| r.config_get(config)))
        .filter(|v| !v.is_empty())
}

impl Settings {
    fn read(repo: Option<&Repo>) -> Result<Settings, Pkcs11Error> {
        let module = setting(repo, MODULE).ok_or(Pkcs11Error::NotConfigured {
            what: "module",
            env: MODULE.0,
            config: MODULE.1,
            example: "/usr/lib/softhsm/libsofthsm2.so",
        })?;
        let token = setting(repo, TOKEN).ok_or(Pkcs11Error::NotConfigured {
            what: "token label",
            env: TOKEN.0,
            config: TOKEN.1,
            example: "LABEL",
        })?;
        Ok(Settings {
            module: PathBuf::from(module),
            token,
            pin_file: setting(repo, PIN_FILE).map(PathBuf::from),
        })
    }

    /// The PIN, from GIT_SEAL_PKCS11_PIN or the PIN file.
    fn pin(&self) -> Result<AuthPin, Pkcs11Error> {
        if let Some(pin) = std::env::var(PIN_ENV).ok().filter(|p| !p.is_empty()) {
            return Ok(AuthPin::from(pin));
        }
        let path = self.pin_file.as_ref().ok_or_else(|| Pkcs11Error::NoPin {
            token: self.token.clone(),
        })?;
        let read_error = |source| Pkcs11Error::PinFile {
            path: path.clone(),
            source,
        };
        let metadata = std::fs::metadata(path).map_err(read_error)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = metadata.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(Pkcs11Error::PinFileMode {
                    path: path.clone(),
                    mode,
                });
            }
        }
        #[cfg(not(unix))]
        let _ = metadata;
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(read_error)?);
        Ok(AuthPin::from(
            text.trim_end_matches(['\r', '\n']).to_owned(),
        ))
    }
}

/// A logged-in token: its slot, a pool of sessions, and the key handles
/// found so far.
struct Token {
    context: Pkcs11,
    slot: Slot,
    label: String,
    sessions: Mutex<Vec<Session>>,
    handles: Mutex<HashMap<Kid, ObjectHandle>>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token").field("label", &self.label).finish()
    }
}

/// The tokens this process has logged in to, by settings, and the loaded
/// modules by path (a module is initialized once per process).
type Opened = Mutex<HashMap<Settings, Arc<Token>>>;
fn opened() -> &'static Opened {
    static OPENED: OnceLock<Opened> = OnceLock::new();
    OPENED.get_or_init(Default::default)
}

fn context(module: &Path) -> Result<Pkcs11, Pkcs11Error> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let mut modules = MODULES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(context) = modules.get(module) {
        return Ok(context.clone());
    }
    let failed = |reason: String| Pkcs11Error::Module {
        path: module.to_owned(),
        reason,
    };
    if !module.is_file() {
        return Err(failed("no such file".into()));
    }
    let context = Pkcs11::new(module).map_err(|e| failed(e.to_string()))?;
    match context.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(failed(e.to_string())),
    }
    modules.insert(module.to_owned(), context.clone());
    Ok(context)
}

impl Token {
    /// Log in to the token `settings` name (once per process).
    fn open(settings: &Settings) -> Result<Arc<Token>, Pkcs11Error> {
        let mut opened = opened().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(token) = opened.get(settings) {
            return Ok(Arc::clone(token));
        }
        let context = context(&settings.module)?;
        let label = settings.token.clone();
        let failed = |action| {
            let label = label.clone();
            move |source| Pkcs11Error::Token {
                token: label,
                action,
                source,
            }
        };
        let mut known = Vec::new();
        let mut found = None;
        for slot in context
            .get_slots_with_initialized_token()
            .map_err(failed("listing slots"))?
        {
            let info = context
                .get_token_info(slot)
                .map_err(failed("reading token info"))?;
            let name = info.label().trim_end().to_owned();
            if name == label {
                found = Some(slot);
                break;
            }
            known.push(format!("{name:?}"));
        }
        let slot = found.ok_or_else(|| Pkcs11Error::NoToken {
            module: settings.module.clone(),
            token: label.clone(),
            known: if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            },
        })?;
        let session = context
            .open_ro_session(slot)
            .map_err(failed("opening a session"))?;
        let pin = settings.pin()?;
        match session.login(UserType::User, Some(&pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(CkError::Pkcs11(RvError::PinIncorrect | RvError::PinLenRange, _)) => {
                return Err(Pkcs11Error::WrongPin { token: label })
            }
            Err(CkError::Pkcs11(RvError::PinLocked, _)) => {
                return Err(Pkcs11Error::PinLocked { token: label })
            }
            Err(e) => return Err(failed("logging in")(e)),
        }
        drop(pin);
        let token = Arc::new(Token {
            context,
            slot,
            label,
            // The login lasts while a session is open: this one stays.
            sessions: Mutex::new(vec![session]),
            handles: Mutex::new(HashMap::new()),
        });
        opened.insert(settings.clone(), Arc::clone(&token));
        Ok(token)
    }

    fn error(&self, action: &'static str) -> impl Fn(CkError) -> Pkcs11Error + '_ {
        move |source| Pkcs11Error::Token {
            token: self.label.clone(),
            action,
            source,
        }
    }

    /// Run `f` with a session of the pool (a new one when all are busy, as
    /// when several worker threads open envelopes at once).
    fn with_session<R>(
        &self,
        f: impl FnOnce(&Session) -> Result<R, Pkcs11Error>,
    ) -> Result<R, Pkcs11Error> {
        let pooled = self
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop();
        let session = match pooled {
            Some(session) => session,
            None => self
                .context
                .open_ro_session(self.slot)
                .map_err(self.error("opening a session"))?,
        };
        let result = f(&session);
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(session);
        result
    }

    /// The handle of `kid`'s key: `None` when the token has none. A key
    /// whose value could leave the token is refused.
    fn key(&self, kid: &Kid) -> Result<Option<ObjectHandle>, Pkcs11Error> {
        if let Some(handle) = self
            .handles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(kid)
        {
            return Ok(Some(*handle));
        }
        let found = self.with_session(|session| {
            let template = [
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::Id(kid_id(kid)),
            ];
            let handles = session
                .find_objects(&template)
                .map_err(self.error("finding the key"))?;
            let Some(&handle) = handles.first() else {
                return Ok(None);
            };
            let attributes = session
                .get_attributes(
                    handle,
                    &[AttributeType::Extractable, AttributeType::Sensitive],
                )
                .map_err(self.error("reading the key's attributes"))?;
            let leaks = attributes.iter().any(|a| {
                matches!(
                    a,
                    Attribute::Extractable(true) | Attribute::Sensitive(false)
                )
            });
            if leaks || attributes.len() < 2 {
                return Err(Pkcs11Error::Extractable {
                    kid: kid.clone(),
                    token: self.label.clone(),
                });
            }
            Ok(Some(handle))
        })?;
        if let Some(handle) = found {
            self.handles
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(kid.clone(), handle);
        }
        Ok(found)
    }

    fn key_or_missing(&self, kid: &Kid) -> Result<ObjectHandle, Pkcs11Error> {
        self.key(kid)?.ok_or_else(|| Pkcs11Error::NoKey {
            kid: kid.clone(),
            token: self.label.clone(),
            id: hex::encode(kid_id(kid)),
        })
    }

    /// AES-256-GCM inside the token: `plain` under `kid`'s key with `aad`.
    /// Returns the nonce the token used (some choose their own) and the
    /// ciphertext with its tag.
    fn encrypt(
        &self,
        kid: &Kid,
        plain: &[u8],
        aad: &[u8],
    ) -> Result<([u8; NONCE_LEN], Vec<u8>), Pkcs11Error> {
        let key = self.key_or_missing(kid)?;
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let sealed = self.with_session(|session| {
            let params = GcmParams::new(&mut nonce, aad, 128.into())
                .map_err(self.error("setting up AES-GCM"))?;
            session
                .encrypt(&Mechanism::AesGcm(params), key, plain)
                .map_err(self.error("wrapping a DEK"))
        })?;
        // The buffer now holds the IV the token used (some choose their own).
        if sealed.len() != plain.len() + 16 {
            return Err(Pkcs11Error::WrapLength {
                token: self.label.clone(),
                len: sealed.len(),
            });
        }
        Ok((nonce, sealed))
    }

    /// The reverse of [`Token::encrypt`]: `None` when authentication fails
    /// (the wrapped bytes, nonce or aad were altered).
    fn decrypt(
        &self,
        kid: &Kid,
        nonce: &[u8; NONCE_LEN],
        sealed: &[u8],
        aad: &[u8],
    ) -> Result<Option<Zeroizing<Vec<u8>>>, Pkcs11Error> {
        let key = self.key_or_missing(kid)?;
        let mut nonce = *nonce;
        self.with_session(|session| {
            let params = GcmParams::new(&mut nonce, aad, 128.into())
                .map_err(self.error("setting up AES-GCM"))?;
            match session.decrypt(&Mechanism::AesGcm(params), key, sealed) {
                Ok(plain) => Ok(Some(Zeroizing::new(plain))),
                // SoftHSM answers a bad tag with CKR_GENERAL_ERROR.
                Err(CkError::Pkcs11(
                    RvError::GeneralError
                    | RvError::EncryptedDataInvalid
                    | RvError::EncryptedDataLenRange,
                    _,
                )) => Ok(None),
                Err(e) => Err(self.error("unwrapping a DEK")(e)),
            }
        })
    }

    /// Every AES key in the token with an 8-byte CKA_ID: the kids it holds.
    fn kids(&self) -> Result<Vec<Kid>, Pkcs11Error> {
        self.with_session(|session| {
            let template = [
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
            ];
            let mut kids = Vec::new();
            for handle in session
                .find_objects(&template)
                .map_err(self.error("listing keys"))?
            {
                let attributes = session
                    .get_attributes(handle, &[AttributeType::Id])
                    .map_err(self.error("reading a key's CKA_ID"))?;
                for attribute in attributes {
                    if let Attribute::Id(id) = attribute {
                        if id.len() == 8 {
                            if let Ok(kid) = Kid::parse(&format!("k_{}", hex::encode(&id))) {
                                kids.push(kid);
                            }
                        }
                    }
                }
            }
            kids.sort();
            kids.dedup();
            Ok(kids)
        })
    }

    /// Can this token hold git-seal's KEK? It must make AES keys and do
    /// AES-GCM encrypt and decrypt.
    fn probe(&self) -> Result<(), Pkcs11Error> {
        let unsupported = |why: String| Pkcs11Error::Unsupported {
            token: self.label.clone(),
            why,
        };
        let mechanisms = self
            .context
            .get_mechanism_list(self.slot)
            .map_err(self.error("listing mechanisms"))?;
        for (needed, name) in [
            (MechanismType::AES_KEY_GEN, "CKM_AES_KEY_GEN"),
            (MechanismType::AES_GCM, "CKM_AES_GCM"),
        ] {
            if !mechanisms.contains(&needed) {
                return Err(unsupported(format!("it does not list {name}")));
            }
        }
        let gcm = self
            .context
            .get_mechanism_info(self.slot, MechanismType::AES_GCM)
            .map_err(self.error("reading CKM_AES_GCM's flags"))?;
        if !(gcm.encrypt() && gcm.decrypt()) {
            return Err(unsupported(
                "its CKM_AES_GCM does not allow encrypt and decrypt".into(),
            ));
        }
        Ok(())
    }

    /// Make a new AES-256 KEK inside the token: never extractable, only
    /// for AES-GCM encrypt and decrypt, with a random kid as its CKA_ID.
    fn generate(&self) -> Result<Kid, Pkcs11Error> {
        self.probe()?;
        let mut id = [0u8; 8];
        OsRng.fill_bytes(&mut id);
        let kid = Kid::parse(&format!("k_{}", hex::encode(id))).expect("8 bytes make a kid");
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::ValueLen(32.into()),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
            Attribute::Wrap(false),
            Attribute::Unwrap(false),
            Attribute::Sign(false),
            Attribute::Verify(false),
            Attribute::Derive(false),
            Attribute::AllowedMechanisms(vec![MechanismType::AES_GCM]),
            Attribute::Id(id.to_vec()),
            Attribute::Label(format!("git-seal KEK {kid}").into_bytes()),
        ];
        // Making a token object needs a read-write session.
        let session = self
            .context
            .open_rw_session(self.slot)
            .map_err(self.error("opening a read-write session"))?;
        let handle = session
            .generate_key(&Mechanism::AesKeyGen, &template)
            .map_err(self.error("generating an AES-256 key"))?;
        drop(session);
        self.handles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(kid.clone(), handle);
        Ok(kid)
    }
}

/// A kid's CKA_ID: the 8 bytes its 16 hex digits spell.
fn kid_id(kid: &Kid) -> Vec<u8> {
    hex::decode(&kid.as_str()[2..]).unwrap_or_default()
}

/// The PKCS#11 provider: keys inside one token, opened on first use so that
/// commands which need no key never log in.
#[derive(Debug)]
pub struct Pkcs11Keys {
    settings: Result<Settings, String>,
    token: OnceLock<Result<Arc<Token>, String>>,
    /// Under the clone's git dir: the token-wrapped local keys.
    local_dir: Option<PathBuf>,
}

impl Pkcs11Keys {
    /// The provider as `repo`'s config and the environment set it up. Reads
    /// settings only; the token is opened when a key is first needed.
    pub fn open(repo: Option<&Repo>) -> Pkcs11Keys {
        Pkcs11Keys {
            settings: Settings::read(repo).map_err(|e| e.to_string()),
            token: OnceLock::new(),
            local_dir: repo.map(|r| r.common_dir().join("seal")),
        }
    }

    /// The token, logged in: an error says what is missing and what to do.
    fn token(&self) -> Result<&Arc<Token>, KeyError> {
        self.token
            .get_or_init(|| {
                let settings = self.settings.as_ref().map_err(Clone::clone)?;
                Token::open(settings).map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| KeyError::Pkcs11(e.clone()))
    }

    /// Make a new KEK in the token (after checking the token can serve it).
    pub fn generate(&self) -> Result<Kid, KeyError> {
        let token = self.token()?;
        let kid = token.generate().map_err(pkcs11)?;
        // Prove the new key wraps and unwraps before anything names it.
        let dek = Dek::random();
        let recipient = self.wrap_with(token, &kid, &dek)?;
        match self.unwrap_with(token, &recipient)? {
            Some(back) if back.expose() == dek.expose() => Ok(kid),
            _ => Err(KeyError::Unwrap { kid }),
        }
    }

    /// Destroy `kid`'s key inside the token (crypto-erasure): what was
    /// destroyed, or `None` when the token holds no such key.
    pub fn destroy(&self, kid: &Kid) -> Result<Option<String>, KeyError> {
        let token = self.token()?;
        let Some(handle) = token.key(kid).map_err(pkcs11)? else {
            return Ok(None);
        };
        // Destroying a token object needs a read-write session.
        let session = token
            .context
            .open_rw_session(token.slot)
            .map_err(token.error("opening a read-write session"))
            .map_err(pkcs11)?;
        session
            .destroy_object(handle)
            .map_err(token.error("destroying the key"))
            .map_err(pkcs11)?;
        token
            .handles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(kid);
        Ok(Some(format!(
            "the key {kid} inside token {:?}",
            token.label
        )))
    }

    /// The token's label, for messages.
    pub fn token_label(&self) -> Option<&str> {
        self.settings.as_ref().ok().map(|s| s.token.as_str())
    }

    fn wrap_with(&self, token: &Token, kid: &Kid, dek: &Dek) -> Result<Recipient, KeyError> {
        let (nonce, wrapped) = token
            .encrypt(kid, dek.expose(), kid.as_str().as_bytes())
            .map_err(pkcs11)?;
        let wrapped_dek = wrapped
            .try_into()
            .map_err(|_| KeyError::Unwrap { kid: kid.clone() })?;
        Ok(Recipient {
            kid: kid.clone(),
            wrap: Wrap::Pkcs11 { wrap_nonce: nonce },
            wrapped_dek,
        })
    }

    fn unwrap_with(&self, token: &Token, recipient: &Recipient) -> Result<Option<Dek>, KeyError> {
        let Wrap::Pkcs11 { wrap_nonce } = &recipient.wrap else {
            return Ok(None);
        };
        let kid = &recipient.kid;
        let plain = token
            .decrypt(
                kid,
                wrap_nonce,
                &recipient.wrapped_dek,
                kid.as_str().as_bytes(),
            )
            .map_err(pkcs11)?
            .ok_or_else(|| KeyError::Unwrap { kid: kid.clone() })?;
        let bytes: [u8; 32] = plain
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::Unwrap { kid: kid.clone() })?;
        Ok(Some(Dek::from_bytes(bytes)))
    }

    /// The local key for `purpose`: random, kept under the git dir wrapped
    /// by the token (one token call per process, not one per file).
    fn local_key_in(&self, token: &Token, kid: &Kid, purpose: &str) -> Option<Zeroizing<[u8; 32]>> {
        let path = self
            .local_dir
            .as_ref()?
            .join(format!("pkcs11-{kid}-{purpose}.key"));
        let aad = format!("git-seal/v1/local/{purpose}/{kid}");
        if let Ok(stored) = std::fs::read(&path) {
            if stored.len() == NONCE_LEN + WRAPPED_LEN {
                let nonce: [u8; NONCE_LEN] = stored[..NONCE_LEN].try_into().ok()?;
                if let Ok(Some(plain)) =
                    token.decrypt(kid, &nonce, &stored[NONCE_LEN..], aad.as_bytes())
                {
                    if let Ok(key) = <[u8; 32]>::try_from(plain.as_slice()) {
                        return Some(Zeroizing::new(key));
                    }
                }
            }
        }
        // None yet, or unreadable: a new one (the cache it keys starts over).
        let mut key = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(key.as_mut());
        let (nonce, wrapped) = token.encrypt(kid, key.as_ref(), aad.as_bytes()).ok()?;
        let mut stored = nonce.to_vec();
        stored.extend_from_slice(&wrapped);
        std::fs::create_dir_all(path.parent()?).ok()?;
        crate::atomic_file::write_private(&path, &stored).ok()?;
        Some(key)
    }
}

fn pkcs11(error: Pkcs11Error) -> KeyError {
    KeyError::Pkcs11(error.to_string())
}

impl KeyProvider for Pkcs11Keys {
    fn name(&self) -> &'static str {
        "pkcs11"
    }

    fn available(&self) -> Vec<Kid> {
        self.token()
            .ok()
            .and_then(|token| token.kids().ok())
            .unwrap_or_default()
    }

    /// Every kid is asked of the token: one it does not hold is an error
    /// naming the token, so that sealing never silently skips a recipient.
    fn wrap(&self, kid: &Kid, dek: &Dek) -> Option<Result<Recipient, KeyError>> {
        Some(
            self.token()
                .and_then(|token| self.wrap_with(token, kid, dek)),
        )
    }

    /// `None` for X25519 recipients, and when the token is not here or
    /// does not hold the kid (another recipient may open the envelope).
    fn unwrap(&self, recipient: &Recipient) -> Option<Result<Dek, KeyError>> {
        if !matches!(recipient.wrap, Wrap::Pkcs11 { .. }) {
            return None;
        }
        let token = self.token().ok()?;
        match token.key(&recipient.kid) {
            Ok(Some(_)) => {}
            Ok(None) => return None,
            Err(e) => return Some(Err(pkcs11(e))),
        }
        self.unwrap_with(token, recipient).transpose()
    }

    fn has(&self, kid: &Kid) -> bool {
        self.token()
            .is_ok_and(|token| token.key(kid).is_ok_and(|h| h.is_some()))
    }

    fn problem(&self) -> Option<String> {
        self.token().err().map(|e| e.to_string())
    }

    fn local_key(&self, kid: &Kid, purpose: &str) -> Option<Zeroizing<[u8; 32]>> {
        let token = self.token().ok()?;
        token.key(kid).ok()??;
        self.local_key_in(token, kid, purpose)
    }
}

/// Write the module and token the environment names into `repo`'s git
/// config, so that the clone's later commands (and Git's filter) find the
/// token without them. The PIN is never written; a PIN file's path is.
pub fn remember_settings(repo: &Repo) -> Result<(), crate::repo::RepoError> {
    for (env, config) in [MODULE, TOKEN, PIN_FILE] {
        if let Some(value) = std::env::var(env).ok().filter(|v| !v.is_empty()) {
            if repo.config_get(config).as_deref() != Some(value.as_str()) {
                repo.config_set(config, &value)?;
            }
        }
    }
    Ok(())
}
