//! What one blob is, independent of its path ([`BlobFacts`]): plaintext,
//! an envelope (its kids and `aad`) or a malformed envelope, and the kids of
//! any private KEK it contains. Envelopes are parsed, never opened; a
//! candidate key is reduced to its kid at once and never kept or printed.

use crate::envelope;
use crate::kid::Kid;
use zeroize::Zeroizing;

use crate::secret::KekSecret;

/// What one blob is, independent of its path: computed once per blob id.
#[derive(Clone, Debug)]
pub struct BlobFacts {
    pub form: Form,
    /// Kids whose private key appears in the blob (as 64 hex digits).
    pub key_kids: Vec<Kid>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Form {
    Plain,
    Envelope { kids: Vec<Kid>, aad: Option<String> },
    Malformed(String),
}

impl BlobFacts {
    pub fn of(bytes: &[u8]) -> BlobFacts {
        let form = if envelope::might_be_envelope(bytes) {
            match envelope::parse(bytes) {
                Ok(env) => Form::Envelope {
                    kids: env.recipients.into_iter().map(|r| r.kid).collect(),
                    aad: env.aad,
                },
                Err(e) if contains(bytes, b"git-seal.envelope") => Form::Malformed(e.to_string()),
                Err(_) => Form::Plain,
            }
        } else {
            Form::Plain
        };
        BlobFacts {
            form,
            key_kids: key_candidates(bytes),
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The kid of every 32-byte value in `bytes` that could be a private X25519
/// KEK, in the forms people paste keys in:
/// - 64 hex digits, any case, `0x`-prefixed or not, whole or split into
///   groups by colons, spaces or line breaks (a run that is part of a
///   longer hex run is a hash of something else, not a key);
/// - base64 of 32 bytes in a key-like context (a line naming a key, a
///   secret or a KEK), such as `KEK=…=`;
/// - a PEM `PRIVATE KEY` block holding a PKCS#8 X25519 key.
///
/// Each candidate is reduced to its kid at once: the caller compares kids
/// with the repository's KEKs, so a candidate that is not a key costs one
/// scalar multiplication and never a false finding.
fn key_candidates(bytes: &[u8]) -> Vec<Kid> {
    let mut kids = Vec::new();
    let mut add = |secret: [u8; 32]| {
        let kid = Kid::of_x25519(&KekSecret::from_bytes(secret).public());
        if !kids.contains(&kid) {
            kids.push(kid);
        }
    };
    for found in [
        hex_candidates(bytes),
        base64_candidates(bytes),
        pem_candidates(bytes),
    ] {
        for secret in found.iter() {
            add(*secret);
        }
    }
    kids
}

fn hex_candidates(bytes: &[u8]) -> Zeroizing<Vec<[u8; 32]>> {
    let mut found = Zeroizing::new(Vec::new());
    // A span: maximal hex runs ("groups") separated by nothing but colons
    // and white space. Only its whole, or all but its first group (`abc
    // <key>`), is a candidate; never every window of a long hex dump.
    let mut groups: Vec<(usize, usize)> = Vec::new();
    let mut end_span = |groups: &mut Vec<(usize, usize)>| {
        let total: usize = groups.iter().map(|(s, e)| e - s).sum();
        for first in 0..groups.len().min(2) {
            let skipped: usize = groups[..first].iter().map(|(s, e)| e - s).sum();
            if total - skipped != 64 {
                continue;
            }
            let mut digits = Zeroizing::new(Vec::with_capacity(64));
            for &(start, end) in &groups[first..] {
                digits.extend_from_slice(&bytes[start..end]);
            }
            let mut secret = [0u8; 32];
            if hex::decode_to_slice(&*digits, &mut secret).is_ok() {
                found.push(secret);
            }
        }
        groups.clear();
    };
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_hexdigit() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_hexdigit() {
                i += 1;
            }
            groups.push((start, i));
            continue;
        }
        let separator = b == b':' || b.is_ascii_whitespace();
        if !separator && !groups.is_empty() {
            end_span(&mut groups);
        }
        i += 1;
    }
    if !groups.is_empty() {
        end_span(&mut groups);
    }
    found
}

fn is_base64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

/// Base64 tokens of 32 bytes (43 characters, `=`-padded or not) on lines
/// that name a key, a secret or a KEK.
fn base64_candidates(bytes: &[u8]) -> Zeroizing<Vec<[u8; 32]>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
    use base64::Engine as _;
    const CONTEXT: [&[u8]; 5] = [b"key", b"kek", b"secret", b"private", b"seal"];
    let mut found = Zeroizing::new(Vec::new());
    for line in bytes.split(|b| *b == b'\n') {
        // Tokens first (most lines have none of the right length), then
        // the context, without copying the line.
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < line.len() {
            if !is_base64(line[i]) {
                i += 1;
                continue;
            }
            let start = i;
            while i < line.len() && is_base64(line[i]) {
                i += 1;
            }
            if i - start == 43 {
                tokens.push((start, i));
            }
        }
        if tokens.is_empty() {
            continue;
        }
        // The context is looked for around the tokens, not in them: 43
        // random base64 characters hold "key" or "kek" one time in a few
        // hundred.
        let mut around = Vec::with_capacity(tokens.len() + 1);
        let mut from = 0;
        for &(start, end) in &tokens {
            around.push(&line[from..start]);
            from = end;
        }
        around.push(&line[from..]);
        let keyish = around.iter().any(|part| {
            CONTEXT
                .iter()
                .any(|w| part.windows(w.len()).any(|x| x.eq_ignore_ascii_case(w)))
        });
        if !keyish {
            continue;
        }
        for (start, end) in tokens {
            let token = &line[start..end];
            let decoded = if line.get(end) == Some(&b'=') {
                STANDARD.decode([token, b"="].concat())
            } else {
                STANDARD_NO_PAD.decode(token)
            };
            if let Ok(decoded) = decoded.map(Zeroizing::new) {
                if let Ok(secret) = <[u8; 32]>::try_from(decoded.as_slice()) {
                    found.push(secret);
                }
            }
        }
    }
    found
}

/// The DER of a PKCS#8 X25519 private key is this prefix and the 32 bytes.
const PKCS8_X25519: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20,
];

fn pem_candidates(bytes: &[u8]) -> Zeroizing<Vec<[u8; 32]>> {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    const BEGIN: &[u8] = b"-----BEGIN PRIVATE KEY-----";
    const END: &[u8] = b"-----END PRIVATE KEY-----";
    let mut found = Zeroizing::new(Vec::new());
    let mut rest = bytes;
    while let Some(at) = rest.windows(BEGIN.len()).position(|w| w == BEGIN) {
        rest = &rest[at + BEGIN.len()..];
        let Some(end) = rest.windows(END.len()).position(|w| w == END) else {
            break;
        };
        let body: Zeroizing<Vec<u8>> = rest[..end]
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect::<Vec<u8>>()
            .into();
        if let Ok(der) = STANDARD.decode(&*body).map(Zeroizing::new) {
            if der.len() == 48 && der.starts_with(&PKCS8_X25519) {
                found.push(der[16..].try_into().expect("32 bytes"));
            }
        }
        rest = &rest[end..];
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_candidates_find_exact_runs_in_any_case() {
        let secret = KekSecret::generate();
        let kid = Kid::of_x25519(&secret.public());
        let hex = secret.to_hex();
        let text = format!("KEY={}\n", hex.to_uppercase());
        assert_eq!(key_candidates(text.as_bytes()), vec![kid.clone()]);
        assert_eq!(key_candidates(hex.as_bytes()), vec![kid]);
        // Part of a longer run: a hash of something else, not a key.
        assert!(key_candidates(format!("{}ab", hex.as_str()).as_bytes()).is_empty());
        assert!(key_candidates(b"nothing here").is_empty());
    }

    #[test]
    fn key_candidates_find_pasted_forms() {
        use base64::engine::general_purpose::STANDARD;
        use base64::Engine as _;
        let secret = KekSecret::generate();
        let kid = Kid::of_x25519(&secret.public());
        let hex = secret.to_hex();
        let bytes = secret.expose();
        let colons: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let b64 = STANDARD.encode(bytes);
        let mut der = PKCS8_X25519.to_vec();
        der.extend_from_slice(bytes);
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            STANDARD.encode(&der)
        );
        for text in [
            format!("key: 0x{}", hex.as_str()),
            format!("kek = {}", colons.join(":")),
            format!("KEK:\n  {}\n  {}\n", &hex[..32], &hex[32..]),
            format!("abc {}", &hex[..]),
            format!("GIT_SEAL_KEK_B64={b64}"),
            format!("secret: {}", b64.trim_end_matches('=')),
            pem,
        ] {
            assert!(key_candidates(text.as_bytes()).contains(&kid), "{text}");
        }
        // Base64 with no key-like word on its line is not looked at.
        assert!(!key_candidates(format!("hash {b64}").as_bytes()).contains(&kid));
    }

    /// A key-like word inside the base64 itself is no context: only the
    /// rest of the line is.
    #[test]
    fn key_candidates_look_for_context_around_the_base64() {
        use base64::engine::general_purpose::STANDARD;
        use base64::Engine as _;
        for b64 in [
            "keyAbCdEfGhIjKlMnOpQrStUvWxYz0123456789+/AA=",
            "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789+/AAKEk=",
            "AbCdEfGhIjKlMnOpQrsEcReTvWxYz0123456789+/AA=",
        ] {
            let bytes: [u8; 32] = STANDARD.decode(b64).unwrap().try_into().unwrap();
            let kid = Kid::of_x25519(&KekSecret::from_bytes(bytes).public());
            assert!(!key_candidates(format!("hash {b64}").as_bytes()).contains(&kid));
            assert!(!key_candidates(b64.as_bytes()).contains(&kid));
            assert!(key_candidates(format!("key: {b64}").as_bytes()).contains(&kid));
            let seal = format!("digest {b64} # sealed");
            assert!(key_candidates(seal.as_bytes()).contains(&kid));
        }
    }

    #[test]
    fn forms() {
        assert_eq!(BlobFacts::of(b"plain").form, Form::Plain);
        assert_eq!(BlobFacts::of(b"{\"a\": 1}").form, Form::Plain);
        assert!(matches!(
            BlobFacts::of(b"{\"schema\": \"git-seal.envelope/v1\"}").form,
            Form::Malformed(_)
        ));
    }
}
