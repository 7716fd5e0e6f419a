//! Where envelopes meet keys: sealing a file to a list of wrap targets and
//! opening an envelope with a [`KeyProvider`]. `envelope` encrypts the
//! content under a DEK; this module wraps that DEK to each target and
//! unwraps it again.

use std::sync::Arc;

use super::x25519::PreparedWrap;
use super::{KeyError, KeyProvider};
use crate::envelope::{self, Envelope, FormatError, Recipient};
use crate::kid::Kid;
use crate::secret::Dek;

/// A KEK that new envelopes are wrapped to.
#[derive(Clone)]
pub enum WrapTarget {
    /// An X25519 public key: wrapping needs no private key, and the X25519
    /// work can be prepared ahead (see [`PendingWrap`]).
    X25519 { kid: Kid, public: [u8; 32] },
    /// A KEK that only its provider can wrap to (a key inside an HSM wraps
    /// inside the token): nothing to prepare before the DEK exists.
    Provider {
        kid: Kid,
        provider: Arc<dyn KeyProvider>,
    },
}

impl PartialEq for WrapTarget {
    fn eq(&self, other: &WrapTarget) -> bool {
        match (self, other) {
            (
                WrapTarget::X25519 { kid, public },
                WrapTarget::X25519 {
                    kid: other_kid,
                    public: other_public,
                },
            ) => kid == other_kid && public == other_public,
            (
                WrapTarget::Provider { kid, provider },
                WrapTarget::Provider {
                    kid: other_kid,
                    provider: other_provider,
                },
            ) => kid == other_kid && Arc::ptr_eq(provider, other_provider),
            _ => false,
        }
    }
}

impl Eq for WrapTarget {}

impl std::fmt::Debug for WrapTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WrapTarget::X25519 { kid, .. } => f.debug_tuple("X25519").field(kid).finish(),
            WrapTarget::Provider { kid, provider } => f
                .debug_struct("Provider")
                .field("kid", kid)
                .field("provider", &provider.name())
                .finish(),
        }
    }
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
            WrapTarget::X25519 { kid, .. } | WrapTarget::Provider { kid, .. } => kid,
        }
    }

    /// This target's wrap, made ready before the DEK exists.
    pub(crate) fn prepare(&self) -> Result<PendingWrap, SealError> {
        match self {
            WrapTarget::X25519 { kid, public } => Ok(PreparedWrap::new(kid, public)?.into()),
            WrapTarget::Provider { kid, provider } => Ok(PendingWrap::Provider {
                kid: kid.clone(),
                provider: Arc::clone(provider),
            }),
        }
    }
}

/// One target's wrap, waiting for the DEK. Each is used once: an X25519
/// wrap key must never wrap two DEKs (the zero nonce relies on that).
// X25519 wraps are the usual ones (an AES key schedule each); boxing them
// would add an allocation per file to make the rare provider variant cheap.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum PendingWrap {
    X25519(PreparedWrap),
    Provider {
        kid: Kid,
        provider: Arc<dyn KeyProvider>,
    },
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
            PendingWrap::Provider { kid, provider } => match provider.wrap(&kid, dek) {
                Some(recipient) => Ok(recipient?),
                None => Err(SealError::NotServed {
                    kid,
                    provider: provider.name(),
                }),
            },
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("no recipients to seal to")]
    NoRecipients,
    #[error("the {provider} provider cannot wrap to {kid}")]
    NotServed { kid: Kid, provider: &'static str },
    #[error(transparent)]
    Key(#[from] KeyError),
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("no usable key: the envelope is wrapped to {}; keys available here: {}{}", list(wrapped_to), if available.is_empty() { "none".to_owned() } else { list(available) }, why.as_ref().map(|w| format!(" ({w})")).unwrap_or_default())]
    NoUsableKey {
        wrapped_to: Vec<Kid>,
        available: Vec<Kid>,
        /// Why a provider serves no key here, when it says (a token or
        /// KMS that cannot be reached).
        why: Option<Box<str>>,
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
pub(crate) fn prepare_wraps(targets: &[WrapTarget]) -> Result<Vec<PendingWrap>, SealError> {
    targets.iter().map(WrapTarget::prepare).collect()
}

/// Wrap an existing DEK to one more target (re-wrapping: the envelope's
/// content stays as it is).
pub(crate) fn wrap_to(target: &WrapTarget, dek: &Dek) -> Result<Recipient, SealError> {
    target.prepare()?.wrap(dek)
}

/// Seal with wraps prepared beforehand, in the order given.
pub(crate) fn seal_prepared(
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

/// Start sealing content that comes in pieces to `targets`
/// ([`envelope::SealStream`], [`envelope::StreamWriter`]): the stream and
/// the recipients its DEK is wrapped to.
pub fn seal_stream(
    aad: Option<&str>,
    targets: &[WrapTarget],
) -> Result<(envelope::SealStream, Vec<Recipient>), SealError> {
    seal_stream_prepared(aad, prepare_wraps(targets)?)
}

/// Start sealing content that comes in pieces ([`envelope::SealStream`]),
/// with wraps prepared beforehand: the stream and the recipients its DEK
/// is wrapped to.
pub(crate) fn seal_stream_prepared(
    aad: Option<&str>,
    wraps: Vec<PendingWrap>,
) -> Result<(envelope::SealStream, Vec<Recipient>), SealError> {
    if wraps.is_empty() {
        return Err(SealError::NoRecipients);
    }
    let stream = envelope::SealStream::new(aad);
    let recipients = wraps
        .into_iter()
        .map(|w| w.wrap(stream.dek()))
        .collect::<Result<_, _>>()?;
    Ok((stream, recipients))
}

/// Open an envelope with the first recipient whose kid `keys` serves.
/// On any failure no plaintext is returned and the buffer is wiped.
pub fn open(env: Envelope, keys: &dyn KeyProvider) -> Result<Vec<u8>, OpenError> {
    let (kid, dek) = unwrap_dek(&env, keys)?;
    decrypt(env, &kid, &dek)
}

/// Why [`open_into`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum OpenIntoError {
    #[error("{0}")]
    Read(std::io::Error),
    #[error("{0}")]
    Write(std::io::Error),
    #[error(transparent)]
    Open(#[from] OpenError),
}

/// Text read at a time by [`open_into`]: about 1 MiB of ciphertext.
const OPEN_INTO_PIECE: usize = (1 << 20) / 3 * 4;

/// Read an envelope from `r` and write its plaintext to `out` as it is
/// decrypted, holding neither the text nor the ciphertext: the DEK is
/// unwrapped as soon as the fields before the ciphertext have arrived
/// ([`Reader::head`](envelope::Reader::head)), and the tag checked at the
/// end ([`envelope::OpenStream`]). So `out` is written plaintext that is
/// authenticated only when this returns `Ok`: it must be released only
/// then (a temporary file renamed into place). An envelope whose fields
/// come in another order is held and opened whole. Errors come in the
/// order [`open`] gives them: the text's format, then the key, then the
/// content.
pub fn open_into(
    r: &mut (dyn std::io::Read + Send),
    keys: &dyn KeyProvider,
    out: &mut dyn std::io::Write,
) -> Result<(), OpenIntoError> {
    use zeroize::Zeroize;
    enum Opening {
        /// The ciphertext has not begun.
        Waiting,
        Streaming {
            kid: Kid,
            stream: Box<envelope::OpenStream>,
            head: Envelope,
        },
        /// The DEK did not unwrap: said once the whole text parses.
        Failed(OpenError),
        /// Held whole, and opened at the end.
        Held,
    }
    let mut reader = envelope::Reader::new(0);
    let mut opening = Opening::Waiting;
    let mut write_error = None;
    let read = envelope::reader::read_ahead(r, OPEN_INTO_PIECE, |piece| {
        reader.push(piece);
        if let Opening::Waiting = opening {
            opening = match reader.head() {
                None => Opening::Waiting,
                Some(Err(_)) => Opening::Held,
                Some(Ok(head)) => match unwrap_dek(&head, keys) {
                    Ok((kid, dek)) => Opening::Streaming {
                        stream: Box::new(envelope::OpenStream::new(&dek, &head.nonce)),
                        kid,
                        head,
                    },
                    Err(e) => Opening::Failed(e),
                },
            };
        }
        let decoded = reader.decoded();
        match &mut opening {
            Opening::Streaming { stream, .. } => {
                stream.decrypt(decoded);
                if let Err(e) = out.write_all(decoded) {
                    let stop = std::io::Error::new(e.kind(), "stopped: the output failed");
                    write_error = Some(e);
                    return Err(stop);
                }
                decoded.clear();
            }
            Opening::Failed(_) => decoded.clear(),
            Opening::Waiting | Opening::Held => {}
        }
        Ok(())
    });
    if let Err(e) = read {
        reader.decoded().zeroize();
        return Err(match write_error {
            Some(e) => OpenIntoError::Write(e),
            None => OpenIntoError::Read(e),
        });
    }
    let parsed = reader.finish().map_err(OpenError::from);
    let (mut env, kid, mut stream) = match opening {
        Opening::Streaming { kid, stream, head } => {
            let mut env = parsed?;
            // The same text, parsed twice by the same parser: never differs.
            if env.nonce != head.nonce || env.recipients != head.recipients {
                env.ciphertext.zeroize();
                return Err(OpenError::Content { kid }.into());
            }
            (env, kid, stream)
        }
        Opening::Failed(e) => {
            parsed?;
            return Err(e.into());
        }
        Opening::Waiting | Opening::Held => {
            let mut plaintext = open(parsed?, keys)?;
            let written = out.write_all(&plaintext);
            plaintext.zeroize();
            return written.map_err(OpenIntoError::Write);
        }
    };
    stream.decrypt(&mut env.ciphertext);
    let written = out.write_all(&env.ciphertext);
    env.ciphertext.zeroize();
    written.map_err(OpenIntoError::Write)?;
    stream
        .finish(env.aad.as_deref(), &env.tag)
        .map_err(|_| OpenError::Content { kid }.into())
}

/// Parse and open envelope text in one step.
pub fn open_bytes(text: &[u8], keys: &dyn KeyProvider) -> Result<Vec<u8>, OpenError> {
    open(envelope::parse(text)?, keys)
}

/// Find the first recipient `keys` serves and unwrap its DEK.
pub(crate) fn unwrap_dek(env: &Envelope, keys: &dyn KeyProvider) -> Result<(Kid, Dek), OpenError> {
    for r in &env.recipients {
        if let Some(result) = keys.unwrap(r) {
            return Ok((r.kid.clone(), result?));
        }
    }
    Err(OpenError::NoUsableKey {
        wrapped_to: env.recipients.iter().map(|r| r.kid.clone()).collect(),
        available: keys.available(),
        why: keys.problem().map(String::into_boxed_str),
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
    use crate::keys::public::PublicKeys;
    use crate::keys::software::SoftwareKeys;
    use crate::keys::Chain;
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

    /// Envelope text read a little at a time, counting what was read.
    struct Counted<'t> {
        text: &'t [u8],
        at: std::sync::Arc<std::sync::atomic::AtomicUsize>,
        fail_at: Option<usize>,
    }

    impl std::io::Read for Counted<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            use std::sync::atomic::Ordering;
            let at = self.at.load(Ordering::SeqCst);
            if self.fail_at.is_some_and(|f| at >= f) {
                return Err(std::io::Error::other("disk gone"));
            }
            let n = buf.len().min(self.text.len() - at).min(100_000);
            buf[..n].copy_from_slice(&self.text[at..at + n]);
            self.at.store(at + n, Ordering::SeqCst);
            Ok(n)
        }
    }

    /// A writer that notes how much of the text had been read at its first
    /// write, and can fail.
    struct Out {
        bytes: Vec<u8>,
        read_at_first_write: Option<usize>,
        read: std::sync::Arc<std::sync::atomic::AtomicUsize>,
        fail: bool,
    }

    impl std::io::Write for Out {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.fail {
                return Err(std::io::Error::other("disk full"));
            }
            let read = self.read.load(std::sync::atomic::Ordering::SeqCst);
            self.read_at_first_write.get_or_insert(read);
            self.bytes.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn open_text_into(
        text: &[u8],
        keys: &dyn KeyProvider,
        fail_read_at: Option<usize>,
        fail_write: bool,
    ) -> (Result<(), OpenIntoError>, Out) {
        let read = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut input = Counted {
            text,
            at: read.clone(),
            fail_at: fail_read_at,
        };
        let mut out = Out {
            bytes: Vec::new(),
            read_at_first_write: None,
            read,
            fail: fail_write,
        };
        let result = open_into(&mut input, keys, &mut out);
        (result, out)
    }

    /// 5 MiB + 3 bytes: many pieces, the GHASH on its thread.
    fn large() -> Vec<u8> {
        (0..5 * 1024 * 1024 + 3u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect()
    }

    /// The plaintext is written while the text is still being read, and
    /// it is the file's; with an aad (which follows the ciphertext) too.
    #[test]
    fn open_into_writes_as_it_reads() {
        let (secrets, targets) = keyring(2);
        let holder = SoftwareKeys::new("test", vec![secrets[1].clone()]);
        let plain = large();
        for aad in [None, Some("path:secrets/big.bin".to_owned())] {
            let text = format::write(&seal(plain.clone(), aad.clone(), &targets).unwrap());
            let (result, out) = open_text_into(&text, &holder, None, false);
            result.unwrap();
            assert!(out.bytes == plain, "aad {aad:?}");
            let first = out.read_at_first_write.unwrap();
            assert!(
                first < text.len() / 2,
                "first write after {first} of {} bytes",
                text.len()
            );
        }
    }

    /// Fields in another order (the nonce after the ciphertext) are held
    /// and opened whole: the same plaintext, written only at the end.
    #[test]
    fn open_into_holds_an_envelope_in_another_order() {
        let (secrets, targets) = keyring(1);
        let holder = SoftwareKeys::new("test", secrets);
        let plain = large();
        let env = seal(plain.clone(), Some("ctx".into()), &targets).unwrap();
        let mut json: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&format::write(&env)).unwrap();
        let nonce = json.remove("nonce").unwrap();
        json.insert("nonce".into(), nonce);
        let text = serde_json::to_vec(&json).unwrap();
        assert!(text.windows(7).position(|w| w == b"\"nonce\"").unwrap() > text.len() / 2);
        let (result, out) = open_text_into(&text, &holder, None, false);
        result.unwrap();
        assert!(out.bytes == plain);
        assert_eq!(out.read_at_first_write, Some(text.len()));
    }

    /// Failures, each the error [`open`] gives, in its order: a changed tag
    /// or aad is the content's; a wrong key; the text's format before the
    /// key; reading and writing said as such.
    #[test]
    fn open_into_fails_as_open_does() {
        let (secrets, targets) = keyring(1);
        let holder = SoftwareKeys::new("test", secrets);
        let other = SoftwareKeys::new("test", vec![KekSecret::generate()]);
        let env = seal(large(), Some("ctx".into()), &targets).unwrap();
        let content = |text: &[u8], keys: &dyn KeyProvider| {
            let (result, _) = open_text_into(text, keys, None, false);
            result.unwrap_err()
        };
        let mut tag = env.clone();
        tag.tag[15] ^= 1;
        let mut aad = env.clone();
        aad.aad = Some("ctY".into());
        let mut ciphertext = env.clone();
        let last = ciphertext.ciphertext.len() - 1;
        ciphertext.ciphertext[last] ^= 0x80;
        for changed in [tag, aad, ciphertext] {
            let err = content(&format::write(&changed), &holder);
            assert!(
                matches!(err, OpenIntoError::Open(OpenError::Content { .. })),
                "{err}"
            );
        }
        let text = format::write(&env);
        let err = content(&text, &other);
        assert!(
            matches!(err, OpenIntoError::Open(OpenError::NoUsableKey { .. })),
            "{err}"
        );
        // Cut inside the ciphertext, with the wrong key too: the format.
        for keys in [&holder as &dyn KeyProvider, &other] {
            let err = content(&text[..text.len() / 2], keys);
            assert!(
                matches!(err, OpenIntoError::Open(OpenError::Format(_))),
                "{err}"
            );
        }
        let (result, _) = open_text_into(&text, &holder, Some(text.len() / 2), false);
        assert!(matches!(result, Err(OpenIntoError::Read(_))), "{result:?}");
        let (result, _) = open_text_into(&text, &holder, None, true);
        assert!(matches!(result, Err(OpenIntoError::Write(_))), "{result:?}");
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

    /// A target that wraps through its provider (as an HSM key will) seals
    /// envelopes that open like any other; a provider that does not serve
    /// the kid seals nothing.
    #[test]
    fn provider_targets_wrap_through_their_provider() {
        let (secrets, _) = keyring(2);
        let software: Arc<dyn KeyProvider> =
            Arc::new(SoftwareKeys::new("test", vec![secrets[0].clone()]));
        let public: Arc<dyn KeyProvider> = Arc::new(PublicKeys::new([secrets[1].public()]));
        let kids: Vec<Kid> = secrets
            .iter()
            .map(|s| Kid::of_x25519(&s.public()))
            .collect();
        let targets = [
            WrapTarget::Provider {
                kid: kids[0].clone(),
                provider: Arc::clone(&software),
            },
            WrapTarget::Provider {
                kid: kids[1].clone(),
                provider: Arc::clone(&public),
            },
        ];
        let env = seal(b"hsm-shaped".to_vec(), None, &targets).unwrap();
        let wrapped_to: Vec<Kid> = env.recipients.iter().map(|r| r.kid.clone()).collect();
        assert_eq!(wrapped_to, kids);
        assert_eq!(open(env.clone(), &software).unwrap(), b"hsm-shaped");
        let second = SoftwareKeys::new("test", vec![secrets[1].clone()]);
        assert_eq!(open(env, &second).unwrap(), b"hsm-shaped");

        let wrong = WrapTarget::Provider {
            kid: kids[1].clone(),
            provider: Arc::clone(&software),
        };
        let err = seal(b"x".to_vec(), None, &[wrong]).unwrap_err().to_string();
        assert!(err.contains(kids[1].as_str()), "{err}");
        assert_ne!(targets[0], targets[1]);
        assert_eq!(targets[0], targets[0].clone());
    }

    #[test]
    fn chains_and_shared_providers_wrap_and_unwrap_like_their_members() {
        let (secrets, _) = keyring(2);
        let kids: Vec<Kid> = secrets
            .iter()
            .map(|s| Kid::of_x25519(&s.public()))
            .collect();
        let first = Arc::new(SoftwareKeys::new("one", vec![secrets[0].clone()]));
        let chain = Chain(vec![
            Box::new(Arc::clone(&first)),
            Box::new(PublicKeys::new([secrets[1].public()])),
        ]);
        let dek = Dek::random();
        let r0 = chain.wrap(&kids[0], &dek).unwrap().unwrap();
        let r1 = chain.wrap(&kids[1], &dek).unwrap().unwrap();
        assert_eq!(chain.unwrap(&r0).unwrap().unwrap().expose(), dek.expose());
        assert!(chain.unwrap(&r1).is_none(), "public keys never unwrap");
        assert_eq!(chain.available(), vec![kids[0].clone()]);
        assert_eq!(first.name(), "one");
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
