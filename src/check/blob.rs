//! What one blob is, independent of its path ([`BlobFacts`]): plaintext,
//! an envelope (its kids and `aad`) or a malformed envelope, and the kids of
//! any private KEK it contains. Envelopes are parsed, never opened; a
//! candidate key is reduced to its kid at once and never kept or printed.

use crate::envelope;
use crate::kid::Kid;
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

/// The kid of every run of exactly 64 hex digits, as if it were a private
/// X25519 KEK. Any case; the run must not be part of a longer hex run.
fn key_candidates(bytes: &[u8]) -> Vec<Kid> {
    let mut kids = Vec::new();
    let mut start = None;
    for (i, b) in bytes.iter().chain(std::iter::once(&b' ')).enumerate() {
        match (b.is_ascii_hexdigit(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                if i - s == 64 {
                    let run = std::str::from_utf8(&bytes[s..i]).expect("ascii");
                    if let Ok(secret) = KekSecret::from_hex(run) {
                        let kid = Kid::of_x25519(&secret.public());
                        if !kids.contains(&kid) {
                            kids.push(kid);
                        }
                    }
                }
                start = None;
            }
            _ => {}
        }
    }
    kids
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
    fn forms() {
        assert_eq!(BlobFacts::of(b"plain").form, Form::Plain);
        assert_eq!(BlobFacts::of(b"{\"a\": 1}").form, Form::Plain);
        assert!(matches!(
            BlobFacts::of(b"{\"schema\": \"git-seal.envelope/v1\"}").form,
            Form::Malformed(_)
        ));
    }
}
