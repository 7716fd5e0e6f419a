//! The envelope v1 wire format: constants, a strict parser and the canonical
//! writer. Nothing here touches keys or does cryptography (see `crypto.rs`).
//!
//! Readers accept any JSON whitespace but refuse unknown fields, unknown
//! `schema`/`alg`/`wrap` values, wrong lengths and non-canonical base64.
//! Writers always produce the canonical text of SPEC §2, which is exactly what
//! `serde_json::to_string_pretty` prints for the field order plus a newline.

use std::borrow::Cow;
use std::fmt::Write as _;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::Deserialize;

use crate::kid::Kid;

pub const SCHEMA: &str = "git-seal.envelope/v1";
pub const ALG_AES_256_GCM: &str = "aes-256-gcm";
pub const WRAP_X25519: &str = "x25519-hkdf-sha256";
pub const WRAP_PKCS11: &str = "pkcs11-aes-256-gcm";

pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;
pub const WRAPPED_DEK_LEN: usize = 48;
pub const EPHEMERAL_LEN: usize = 32;

/// Why a byte string is not a well-formed envelope. Each variant names the
/// field involved so that an error message can say what to look at.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormatError {
    #[error("not an envelope (not JSON text)")]
    NotJson,
    #[error("malformed envelope JSON: {0}")]
    Json(String),
    #[error("unknown schema {0:?} (this git-seal reads {SCHEMA:?})")]
    Schema(String),
    #[error("unknown content algorithm {0:?} (expected {ALG_AES_256_GCM:?})")]
    Alg(String),
    #[error("recipient {index}: unknown wrap algorithm {wrap:?}")]
    Wrap { index: usize, wrap: String },
    #[error("recipients is empty")]
    NoRecipients,
    #[error("field `{field}` is not canonical base64 (RFC 4648 §4, padded)")]
    Base64 { field: String },
    #[error("field `{field}` is {got} bytes, expected {expected}")]
    Length {
        field: String,
        got: usize,
        expected: usize,
    },
    #[error("recipient {index}: `{field}` is missing for wrap {wrap:?}")]
    MissingWrapField {
        index: usize,
        field: &'static str,
        wrap: &'static str,
    },
    #[error("recipient {index}: `{field}` does not belong to wrap {wrap:?}")]
    ExtraWrapField {
        index: usize,
        field: &'static str,
        wrap: &'static str,
    },
    #[error("recipient {index}: kid {kid:?} is not `k_` followed by 16 lowercase hex digits")]
    Kid { index: usize, kid: String },
}

/// How a recipient's copy of the DEK is wrapped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wrap {
    /// `x25519-hkdf-sha256`: an ephemeral X25519 public key.
    X25519 { ephemeral_pub: [u8; EPHEMERAL_LEN] },
    /// `pkcs11-aes-256-gcm`: the nonce the token used for AES-GCM.
    Pkcs11 { wrap_nonce: [u8; NONCE_LEN] },
}

impl Wrap {
    pub fn name(&self) -> &'static str {
        match self {
            Wrap::X25519 { .. } => WRAP_X25519,
            Wrap::Pkcs11 { .. } => WRAP_PKCS11,
        }
    }
}

/// One recipient: a kid and the DEK wrapped to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipient {
    pub kid: Kid,
    pub wrap: Wrap,
    pub wrapped_dek: [u8; WRAPPED_DEK_LEN],
}

/// A parsed envelope. The ciphertext is owned so that opening can decrypt it
/// in place without a second copy of a large file.
#[derive(Clone, PartialEq, Eq)]
pub struct Envelope {
    pub recipients: Vec<Recipient>,
    pub nonce: [u8; NONCE_LEN],
    pub ciphertext: Vec<u8>,
    pub tag: [u8; TAG_LEN],
    pub aad: Option<String>,
}

impl Envelope {
    /// This envelope without its ciphertext: what it takes to write its
    /// text again around the same ciphertext made anew
    /// ([`Again`](super::Again)).
    pub fn frame(&self) -> Envelope {
        Envelope {
            recipients: self.recipients.clone(),
            nonce: self.nonce,
            ciphertext: Vec::new(),
            tag: self.tag,
            aad: self.aad.clone(),
        }
    }
}

impl std::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Envelope")
            .field("recipients", &self.recipients)
            .field("ciphertext_len", &self.ciphertext.len())
            .field("aad", &self.aad)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnvelope<'a> {
    #[serde(borrow)]
    schema: Cow<'a, str>,
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(borrow)]
    recipients: Vec<RawRecipient<'a>>,
    #[serde(borrow)]
    nonce: Cow<'a, str>,
    #[serde(borrow)]
    ciphertext: Cow<'a, str>,
    #[serde(borrow)]
    tag: Cow<'a, str>,
    #[serde(default, borrow, deserialize_with = "present_string")]
    aad: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecipient<'a> {
    #[serde(borrow)]
    kid: Cow<'a, str>,
    #[serde(borrow)]
    wrap: Cow<'a, str>,
    #[serde(default, borrow, deserialize_with = "present_string")]
    ephemeral_pub: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "present_string")]
    wrap_nonce: Option<Cow<'a, str>>,
    #[serde(borrow)]
    wrapped_dek: Cow<'a, str>,
}

/// An optional field that, when present, must be a string (never `null`).
fn present_string<'de: 'a, 'a, D>(d: D) -> Result<Option<Cow<'a, str>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    struct S<'a>(#[serde(borrow)] Cow<'a, str>);
    S::deserialize(d).map(|s| Some(s.0))
}

/// Cheap test used on hot paths (filter, hooks) before a full parse: does this
/// byte string start like a JSON object? Plaintext files rarely do, and a full
/// [`parse`] decides in the cases where they do.
pub fn might_be_envelope(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'{')
}

/// Does this byte string claim to be an envelope (a JSON object naming the
/// envelope schema near its start), well-formed or not? An envelope that
/// was edited, extended or cut while its file was locked claims to be one
/// without being one; plaintext practically never does.
pub fn claims_envelope(bytes: &[u8]) -> bool {
    const SCHEMA_PREFIX: &[u8] = b"\"git-seal.envelope/";
    let head = &bytes[..bytes.len().min(256)];
    might_be_envelope(head)
        && head
            .windows(SCHEMA_PREFIX.len())
            .any(|w| w == SCHEMA_PREFIX)
}

/// Is this byte string a well-formed envelope?
pub fn is_envelope(bytes: &[u8]) -> bool {
    might_be_envelope(bytes) && parse(bytes).is_ok()
}

/// Parse envelope text strictly.
pub fn parse(bytes: &[u8]) -> Result<Envelope, FormatError> {
    if !might_be_envelope(bytes) {
        return Err(FormatError::NotJson);
    }
    let raw: RawEnvelope<'_> = serde_json::from_slice(bytes)
        .map_err(|e| FormatError::Json(crate::printable::escape(&e.to_string()).into_owned()))?;
    if raw.schema != SCHEMA {
        return Err(FormatError::Schema(raw.schema.into_owned()));
    }
    if raw.alg != ALG_AES_256_GCM {
        return Err(FormatError::Alg(raw.alg.into_owned()));
    }
    if raw.recipients.is_empty() {
        return Err(FormatError::NoRecipients);
    }
    let recipients = raw
        .recipients
        .iter()
        .enumerate()
        .map(|(index, r)| parse_recipient(index, r))
        .collect::<Result<Vec<_>, _>>()?;
    let nonce = decode_fixed::<NONCE_LEN>("nonce", &raw.nonce)?;
    let tag = decode_fixed::<TAG_LEN>("tag", &raw.tag)?;
    // The ciphertext is most of a large envelope: decode it with SIMD (as
    // strict as the scalar engine: canonical padding and trailing bits).
    let ciphertext =
        decode_large(raw.ciphertext.as_bytes()).ok_or_else(|| FormatError::Base64 {
            field: "ciphertext".to_owned(),
        })?;
    Ok(Envelope {
        recipients,
        nonce,
        ciphertext,
        tag,
        aad: raw.aad.map(Cow::into_owned),
    })
}

fn parse_recipient(index: usize, r: &RawRecipient<'_>) -> Result<Recipient, FormatError> {
    let kid = Kid::parse(&r.kid).map_err(|_| FormatError::Kid {
        index,
        kid: r.kid.clone().into_owned(),
    })?;
    let field = |name: &str| format!("recipients[{index}].{name}");
    let wrap = match r.wrap.as_ref() {
        WRAP_X25519 => {
            if r.wrap_nonce.is_some() {
                return Err(FormatError::ExtraWrapField {
                    index,
                    field: "wrap_nonce",
                    wrap: WRAP_X25519,
                });
            }
            let e = r
                .ephemeral_pub
                .as_ref()
                .ok_or(FormatError::MissingWrapField {
                    index,
                    field: "ephemeral_pub",
                    wrap: WRAP_X25519,
                })?;
            Wrap::X25519 {
                ephemeral_pub: decode_fixed(&field("ephemeral_pub"), e)?,
            }
        }
        WRAP_PKCS11 => {
            if r.ephemeral_pub.is_some() {
                return Err(FormatError::ExtraWrapField {
                    index,
                    field: "ephemeral_pub",
                    wrap: WRAP_PKCS11,
                });
            }
            let n = r.wrap_nonce.as_ref().ok_or(FormatError::MissingWrapField {
                index,
                field: "wrap_nonce",
                wrap: WRAP_PKCS11,
            })?;
            Wrap::Pkcs11 {
                wrap_nonce: decode_fixed(&field("wrap_nonce"), n)?,
            }
        }
        other => {
            return Err(FormatError::Wrap {
                index,
                wrap: other.to_owned(),
            })
        }
    };
    Ok(Recipient {
        kid,
        wrap,
        wrapped_dek: decode_fixed(&field("wrapped_dek"), &r.wrapped_dek)?,
    })
}

fn decode(field: &str, text: &str) -> Result<Vec<u8>, FormatError> {
    // The STANDARD engine requires canonical padding and zero trailing bits,
    // and refuses whitespace and the URL-safe alphabet.
    B64.decode(text).map_err(|_| FormatError::Base64 {
        field: field.to_owned(),
    })
}

fn decode_fixed<const N: usize>(field: &str, text: &str) -> Result<[u8; N], FormatError> {
    let bytes = decode(field, text)?;
    bytes.try_into().map_err(|b: Vec<u8>| FormatError::Length {
        field: field.to_owned(),
        got: b.len(),
        expected: N,
    })
}

/// Inputs at least this large are base64-coded on two threads.
const PARALLEL_MIN: usize = 4 << 20;

/// Base64-encode a (possibly large) ciphertext onto `out`, with SIMD, and on
/// two threads for large inputs: split at a multiple of 3 bytes, the halves
/// encode independently and concatenate to the same text.
fn encode_large_append(data: &[u8], out: &mut String) {
    if data.len() < PARALLEL_MIN {
        base64_simd::STANDARD.encode_append(data, out);
        return;
    }
    let split = data.len() / 2 / 3 * 3;
    let (a, b) = data.split_at(split);
    let tail = std::thread::scope(|scope| {
        let tail = scope.spawn(|| base64_simd::STANDARD.encode_to_string(b));
        base64_simd::STANDARD.encode_append(a, out);
        tail.join().expect("base64 thread")
    });
    out.push_str(&tail);
}

/// Strict base64 decoding of a (possibly large) ciphertext: SIMD, two
/// threads for large inputs (split at a multiple of 4 characters, so only the
/// second part may carry padding). `None` if not canonical base64.
fn decode_large(text: &[u8]) -> Option<Vec<u8>> {
    if text.len() < PARALLEL_MIN || text.len() % 4 != 0 {
        return base64_simd::STANDARD.decode_to_vec(text).ok();
    }
    let split = text.len() / 2 / 4 * 4;
    let (a, b) = text.split_at(split);
    if a.contains(&b'=') {
        return None;
    }
    let (head, tail) = std::thread::scope(|scope| {
        let tail = scope.spawn(|| base64_simd::STANDARD.decode_to_vec(b));
        (
            base64_simd::STANDARD.decode_to_vec(a),
            tail.join().expect("base64 thread"),
        )
    });
    let mut bytes = head.ok()?;
    bytes.extend_from_slice(&tail.ok()?);
    Some(bytes)
}

/// Write the canonical text of an envelope.
pub fn write(env: &Envelope) -> Vec<u8> {
    // Sized up front: the base64 ciphertext dominates large envelopes, and a
    // single allocation keeps peak memory near plaintext + text.
    let mut out =
        String::with_capacity(512 + env.recipients.len() * 256 + env.ciphertext.len() / 3 * 4 + 4);
    write_head(&env.recipients, &env.nonce, &mut out);
    encode_large_append(&env.ciphertext, &mut out);
    write_tail(&env.tag, env.aad.as_deref(), &mut out);
    out.into_bytes()
}

/// The canonical text up to the ciphertext's first character.
fn write_head(recipients: &[Recipient], nonce: &[u8; NONCE_LEN], out: &mut String) {
    out.push_str("{\n");
    field(out, 1, "schema", SCHEMA, false);
    field(out, 1, "alg", ALG_AES_256_GCM, false);
    out.push_str("  \"recipients\": [\n");
    for (i, r) in recipients.iter().enumerate() {
        out.push_str("    {\n");
        field(out, 3, "kid", r.kid.as_str(), false);
        field(out, 3, "wrap", r.wrap.name(), false);
        match &r.wrap {
            Wrap::X25519 { ephemeral_pub } => {
                field(out, 3, "ephemeral_pub", &B64.encode(ephemeral_pub), false)
            }
            Wrap::Pkcs11 { wrap_nonce } => {
                field(out, 3, "wrap_nonce", &B64.encode(wrap_nonce), false)
            }
        }
        field(out, 3, "wrapped_dek", &B64.encode(r.wrapped_dek), true);
        out.push_str(if i + 1 == recipients.len() {
            "    }\n"
        } else {
            "    },\n"
        });
    }
    out.push_str("  ],\n");
    field(out, 1, "nonce", &B64.encode(nonce), false);
    out.push_str("  \"ciphertext\": \"");
}

/// The canonical text after the ciphertext's last character.
fn write_tail(tag: &[u8; TAG_LEN], aad: Option<&str>, out: &mut String) {
    out.push_str("\",\n");
    field(out, 1, "tag", &B64.encode(tag), aad.is_none());
    if let Some(aad) = aad {
        field(out, 1, "aad", aad, true);
    }
    out.push_str("}\n");
}

/// The canonical text of an envelope whose ciphertext comes in pieces:
/// [`StreamWriter::new`] writes everything before the ciphertext, each
/// [`StreamWriter::ciphertext`] its base64 (carrying up to two bytes to the
/// next piece), [`StreamWriter::finish`] the rest. The text is the same as
/// [`write`]'s for the same envelope.
#[derive(Debug)]
pub struct StreamWriter {
    out: String,
    carry: [u8; 2],
    carry_len: usize,
}

impl StreamWriter {
    /// `reserve`: the expected plaintext length, if known.
    pub fn new(recipients: &[Recipient], nonce: &[u8; NONCE_LEN], reserve: usize) -> StreamWriter {
        let mut out = String::with_capacity(512 + recipients.len() * 256 + reserve / 3 * 4 + 4);
        write_head(recipients, nonce, &mut out);
        StreamWriter {
            out,
            carry: [0; 2],
            carry_len: 0,
        }
    }

    pub fn ciphertext(&mut self, mut piece: &[u8]) {
        if self.carry_len > 0 {
            let mut three = [0u8; 3];
            let take = piece.len().min(3 - self.carry_len);
            three[..self.carry_len].copy_from_slice(&self.carry[..self.carry_len]);
            three[self.carry_len..self.carry_len + take].copy_from_slice(&piece[..take]);
            piece = &piece[take..];
            if self.carry_len + take < 3 {
                self.carry_len += take;
                self.carry[..self.carry_len].copy_from_slice(&three[..self.carry_len]);
                return;
            }
            base64_simd::STANDARD.encode_append(three, &mut self.out);
            self.carry_len = 0;
        }
        let whole = piece.len() / 3 * 3;
        base64_simd::STANDARD.encode_append(&piece[..whole], &mut self.out);
        let rest = &piece[whole..];
        self.carry[..rest.len()].copy_from_slice(rest);
        self.carry_len = rest.len();
    }

    /// Move the text written so far to `w` (for output that goes to a
    /// file as it is made).
    pub fn drain_to(&mut self, w: &mut dyn std::io::Write) -> std::io::Result<()> {
        w.write_all(self.out.as_bytes())?;
        self.out.clear();
        Ok(())
    }

    /// The whole text (what was not drained).
    pub fn finish(mut self, tag: &[u8; TAG_LEN], aad: Option<&str>) -> Vec<u8> {
        base64_simd::STANDARD.encode_append(&self.carry[..self.carry_len], &mut self.out);
        write_tail(tag, aad, &mut self.out);
        self.out.into_bytes()
    }
}

/// The canonical text of `frame` (an envelope whose ciphertext is left
/// out) around `ciphertext`, held in pieces, written to `w` as it is made:
/// the same text as [`write`]'s, without holding it.
pub fn write_framed(
    frame: &Envelope,
    ciphertext: &[Vec<u8>],
    w: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    let mut writer = StreamWriter::new(&frame.recipients, &frame.nonce, 0);
    for piece in ciphertext {
        writer.ciphertext(piece);
        writer.drain_to(w)?;
    }
    w.write_all(&writer.finish(&frame.tag, frame.aad.as_deref()))
}

/// The length of [`write_framed`]'s text for `ciphertext_len` bytes of
/// ciphertext.
pub fn framed_len(frame: &Envelope, ciphertext_len: usize) -> usize {
    let (head, tail) = head_and_tail(frame);
    head.len() + ciphertext_len.div_ceil(3) * 4 + tail.len()
}

/// The canonical text before and after the ciphertext.
fn head_and_tail(frame: &Envelope) -> (String, String) {
    let mut head = String::new();
    write_head(&frame.recipients, &frame.nonce, &mut head);
    let mut tail = String::new();
    write_tail(&frame.tag, frame.aad.as_deref(), &mut tail);
    (head, tail)
}

/// Is a text of `text_len` bytes that starts with `starts` and ends with
/// `ends` the canonical text of `frame` (an envelope; its ciphertext is
/// not looked at) around `ciphertext_len` bytes of ciphertext, given that
/// it parses to that envelope? Then its frame makes
/// it again byte for byte. (The ciphertext's base64 is canonical whenever
/// it parses, so the text is canonical once what comes before and after
/// it is, at the right length.) Parsing also accepts other whitespace and
/// field orders, which a frame would not give back.
pub fn written_as(
    frame: &Envelope,
    ciphertext_len: usize,
    text_len: usize,
    starts: &[u8],
    ends: &[u8],
) -> bool {
    let (head, tail) = head_and_tail(frame);
    text_len == head.len() + ciphertext_len.div_ceil(3) * 4 + tail.len()
        && starts.starts_with(head.as_bytes())
        && ends.ends_with(tail.as_bytes())
}

fn field(out: &mut String, depth: usize, key: &str, value: &str, last: bool) {
    for _ in 0..depth {
        out.push_str("  ");
    }
    // serde_json's string escaping is the canonical one (non-ASCII kept).
    let value = serde_json::to_string(value).expect("a str always serializes");
    let _ = write!(out, "\"{key}\": {value}");
    out.push_str(if last { "\n" } else { ",\n" });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(aad: Option<&str>, recipients: usize) -> Envelope {
        Envelope {
            recipients: (0..recipients)
                .map(|i| Recipient {
                    kid: Kid::parse(&format!("k_{:016x}", i)).unwrap(),
                    wrap: if i % 2 == 0 {
                        Wrap::X25519 {
                            ephemeral_pub: [i as u8; 32],
                        }
                    } else {
                        Wrap::Pkcs11 {
                            wrap_nonce: [7; 12],
                        }
                    },
                    wrapped_dek: [9; 48],
                })
                .collect(),
            nonce: [1; 12],
            ciphertext: b"hello \x00 world".to_vec(),
            tag: [2; 16],
            aad: aad.map(str::to_owned),
        }
    }

    /// The canonical writer must agree with serde_json's pretty printer, which
    /// is how SPEC §2 defines canonical text.
    #[test]
    fn writer_matches_serde_json_pretty() {
        #[derive(serde::Serialize)]
        struct S<'a> {
            schema: &'a str,
            alg: &'a str,
            recipients: Vec<R>,
            nonce: String,
            ciphertext: String,
            tag: String,
            #[serde(skip_serializing_if = "Option::is_none")]
            aad: Option<&'a str>,
        }
        #[derive(serde::Serialize)]
        struct R {
            kid: String,
            wrap: &'static str,
            #[serde(skip_serializing_if = "Option::is_none")]
            ephemeral_pub: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            wrap_nonce: Option<String>,
            wrapped_dek: String,
        }
        for (aad, n) in [
            (None, 1),
            (Some("scope:über \"q\"\n✓\u{1}"), 3),
            (Some(""), 2),
        ] {
            let env = sample(aad, n);
            let expected = S {
                schema: SCHEMA,
                alg: ALG_AES_256_GCM,
                recipients: env
                    .recipients
                    .iter()
                    .map(|r| R {
                        kid: r.kid.to_string(),
                        wrap: r.wrap.name(),
                        ephemeral_pub: match &r.wrap {
                            Wrap::X25519 { ephemeral_pub } => Some(B64.encode(ephemeral_pub)),
                            Wrap::Pkcs11 { .. } => None,
                        },
                        wrap_nonce: match &r.wrap {
                            Wrap::Pkcs11 { wrap_nonce } => Some(B64.encode(wrap_nonce)),
                            Wrap::X25519 { .. } => None,
                        },
                        wrapped_dek: B64.encode(r.wrapped_dek),
                    })
                    .collect(),
                nonce: B64.encode(env.nonce),
                ciphertext: B64.encode(&env.ciphertext),
                tag: B64.encode(env.tag),
                aad,
            };
            let mut pretty = serde_json::to_string_pretty(&expected).unwrap();
            pretty.push('\n');
            let text = write(&env);
            assert_eq!(String::from_utf8(text.clone()).unwrap(), pretty);
            assert_eq!(parse(&text).unwrap(), env);
        }
    }

    #[test]
    fn refuses_unknown_fields_and_values() {
        let good = String::from_utf8(write(&sample(None, 1))).unwrap();
        let cases = [
            (
                good.replace("\"alg\"", "\"extra\": 1,\n  \"alg\""),
                "unknown field",
            ),
            (good.replace("envelope/v1", "envelope/v2"), "schema"),
            (good.replace("aes-256-gcm", "aes-128-gcm"), "algorithm"),
            (good.replace(WRAP_X25519, "x448"), "wrap"),
            (
                good.replace(
                    "\"tag\": \"AgICAgICAgICAgICAgICAg==\"",
                    "\"tag\": \"AgICAgICAgICAgICAgICAg\"",
                ),
                "tag",
            ),
        ];
        for (text, what) in cases {
            assert!(parse(text.as_bytes()).is_err(), "accepted {what}:\n{text}");
        }
    }

    #[test]
    fn refuses_non_canonical_base64() {
        let good = String::from_utf8(write(&sample(None, 1))).unwrap();
        // "aGVsbG8gACB3b3JsZA==" is canonical for the sample ciphertext.
        assert!(good.contains("aGVsbG8gACB3b3JsZA=="));
        for bad in [
            "aGVsbG8gACB3b3JsZA",
            "aGVsbG8gACB3b3JsZB==",
            "aGVs bG8gACB3b3JsZA==",
            "aGVsbG8gACB3b3JsZA=\n=",
        ] {
            let text = good.replace("aGVsbG8gACB3b3JsZA==", bad);
            assert!(
                matches!(
                    parse(text.as_bytes()),
                    Err(FormatError::Base64 { .. } | FormatError::Json(_))
                ),
                "accepted {bad:?}"
            );
        }
        let url = good.replace("ephemeral_pub\": \"AAAA", "ephemeral_pub\": \"-_AA");
        assert!(parse(url.as_bytes()).is_err());
    }

    #[test]
    fn refuses_null_aad_and_wrong_wrap_fields() {
        let good = String::from_utf8(write(&sample(None, 1))).unwrap();
        let null_aad = good.replace("\n}\n", ",\n  \"aad\": null\n}\n");
        assert!(parse(null_aad.as_bytes()).is_err());
        let both = good.replace(
            "\"wrapped_dek\"",
            "\"wrap_nonce\": \"BwcHBwcHBwcHBwcH\",\n      \"wrapped_dek\"",
        );
        assert!(matches!(
            parse(both.as_bytes()),
            Err(FormatError::ExtraWrapField { .. })
        ));
    }

    #[test]
    fn large_base64_matches_the_scalar_engine_and_stays_strict() {
        for len in [
            PARALLEL_MIN,
            PARALLEL_MIN + 1,
            PARALLEL_MIN + 2,
            PARALLEL_MIN * 2 + 5,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let mut text = String::new();
            encode_large_append(&data, &mut text);
            assert_eq!(text, B64.encode(&data), "len {len}");
            assert_eq!(decode_large(text.as_bytes()).as_deref(), Some(&data[..]));
            let mut padded_inside = text.clone().into_bytes();
            padded_inside[8] = b'=';
            assert_eq!(decode_large(&padded_inside), None);
        }
    }

    /// Pieces of any sizes give the text [`write`] gives.
    #[test]
    fn stream_writer_matches_write() {
        for aad in [None, Some("path:a")] {
            let mut env = sample(aad, 2);
            env.ciphertext = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
            for cuts in [&[][..], &[1], &[1, 2, 3], &[2, 4, 999], &[500, 500, 1000]] {
                let mut w = StreamWriter::new(&env.recipients, &env.nonce, 0);
                let mut at = 0;
                for &cut in cuts.iter().chain([&1000]) {
                    w.ciphertext(&env.ciphertext[at..cut]);
                    at = cut;
                }
                assert_eq!(
                    w.finish(&env.tag, env.aad.as_deref()),
                    write(&env),
                    "{cuts:?}"
                );
            }
        }
    }

    /// A frame written around ciphertext in pieces gives [`write`]'s text,
    /// of the length [`framed_len`] says; and a frame is the envelope with
    /// an empty ciphertext.
    #[test]
    fn framed_text_matches_write() {
        for aad in [None, Some("path:a \"quoted\" é")] {
            let mut env = sample(aad, 3);
            for len in [0usize, 1, 2, 3, 4, 1000] {
                env.ciphertext = (0..len as u32).map(|i| (i * 7 % 251) as u8).collect();
                let frame = env.frame();
                assert!(frame.ciphertext.is_empty() && frame.tag == env.tag);
                let pieces: Vec<Vec<u8>> = env.ciphertext.chunks(7).map(<[u8]>::to_vec).collect();
                let mut text = Vec::new();
                write_framed(&frame, &pieces, &mut text).unwrap();
                assert_eq!(text, write(&env), "{len}");
                assert_eq!(framed_len(&frame, len), text.len(), "{len}");
            }
        }
    }

    /// Only the canonical text is written as its frame gives it: other
    /// whitespace or another field order, which parse accepts, is not.
    #[test]
    fn only_canonical_text_is_written_as_its_frame() {
        let mut env = sample(Some("path:a"), 2);
        env.ciphertext = (0..1000u32).map(|i| (i % 251) as u8).collect();
        let frame = env.frame();
        let len = env.ciphertext.len();
        let text = write(&env);
        assert!(written_as(&frame, len, text.len(), &text, &text));
        assert!(written_as(
            &frame,
            len,
            text.len(),
            &text[..600],
            &text[text.len() - 300..]
        ));
        let spaced =
            String::from_utf8(text.clone())
                .unwrap()
                .replacen("\"tag\": ", "\"tag\":  ", 1);
        assert!(parse(spaced.as_bytes()).unwrap() == env);
        let spaced = spaced.as_bytes();
        assert!(!written_as(&frame, len, spaced.len(), spaced, spaced));
        let json: serde_json::Value = serde_json::from_slice(&text).unwrap();
        let compact = serde_json::to_vec(&json).unwrap();
        assert!(parse(&compact).unwrap() == env);
        assert!(!written_as(&frame, len, compact.len(), &compact, &compact));
        // The same length, fields in another order.
        let t = String::from_utf8(text.clone()).unwrap();
        let schema = format!("  \"schema\": \"{SCHEMA}\",\n");
        let alg = format!("  \"alg\": \"{ALG_AES_256_GCM}\",\n");
        assert!(t.contains(&schema) && t.contains(&alg), "{t}");
        let swapped = t
            .replacen(&schema, "@", 1)
            .replacen(&alg, &schema, 1)
            .replacen('@', &alg, 1);
        assert_eq!(swapped.len(), t.len());
        assert_ne!(swapped, t);
        assert!(parse(swapped.as_bytes()).unwrap() == env);
        let b = swapped.as_bytes();
        assert!(!written_as(&frame, len, b.len(), b, b));
        assert!(!written_as(&frame, len - 3, text.len(), &text, &text));
    }

    #[test]
    fn damaged_envelopes_still_claim_to_be_envelopes() {
        let text = write(&sample(None, 1));
        assert!(claims_envelope(&text));
        let mut extended = text.clone();
        extended.extend_from_slice(b"X=1\n");
        assert!(claims_envelope(&extended) && !is_envelope(&extended));
        assert!(claims_envelope(&text[..text.len() / 2]));
        assert!(!claims_envelope(b"{\"name\": \"a package.json\"}\n"));
        assert!(!claims_envelope(b"PASSWORD=x\n"));
    }

    #[test]
    fn accepts_any_json_whitespace() {
        let env = sample(Some("x"), 2);
        let compact =
            serde_json::to_vec(&serde_json::from_slice::<serde_json::Value>(&write(&env)).unwrap())
                .unwrap();
        assert_eq!(parse(&compact).unwrap(), env);
    }
}
