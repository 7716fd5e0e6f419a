//! What one changed path is, from what its two blobs are: the category and
//! the precedence between categories. Pure: the caller reads the blobs,
//! the history and the keys.

use serde::Serialize;

use crate::check::{BlobFacts, Form};
use crate::envelope::{self, Envelope};
use crate::kid::Kid;

/// What a sealed path's change is. Exactly one per path; when several
/// would fit, the first in this order wins: `malformed`, `unsealed`,
/// `plaintext`, `deleted`, `reverted`, `moved`, `sealed`, `rewrap`,
/// `content` (a finding first, then what says the most about where an
/// envelope came from).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    /// Claims to be an envelope but is not a valid one (or, with a key,
    /// does not open): a finding.
    Malformed,
    /// Was an envelope (or claimed to be one) and is plaintext now: a
    /// finding, unless a trusted signer approved it and the rules no
    /// longer seal the path.
    Unsealed,
    /// Plaintext where the rules require an envelope, and not an envelope
    /// before either: a finding.
    Plaintext,
    /// Removed.
    Deleted,
    /// Byte-identical (the same blob) to an older blob of the same path,
    /// from history before the range: a rollback.
    Reverted,
    /// Byte-identical to the envelope at another path in the range's base:
    /// a copy or a swap.
    Moved,
    /// Newly sealed: absent, plaintext or not a valid envelope before.
    Sealed,
    /// The same content (nonce, ciphertext, tag and aad), wrapped to other
    /// recipients (or wrapped again).
    Rewrap,
    /// New ciphertext.
    Content,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Malformed => "malformed",
            Category::Unsealed => "unsealed",
            Category::Plaintext => "plaintext",
            Category::Deleted => "deleted",
            Category::Reverted => "reverted",
            Category::Moved => "moved",
            Category::Sealed => "sealed",
            Category::Rewrap => "rewrap",
            Category::Content => "content",
        }
    }

    /// Can a change in this category be a finding?
    pub fn is_finding(self) -> bool {
        matches!(
            self,
            Category::Malformed | Category::Unsealed | Category::Plaintext
        )
    }
}

impl std::fmt::Display for Category {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one side of a change holds, read once: the form `check` gives the
/// blob, and for an envelope its kids and what its content is made of.
#[derive(Debug)]
pub(super) enum Side {
    Absent,
    Plain,
    Envelope { kids: Vec<Kid>, content: Content },
    Malformed(String),
}

/// What makes an envelope's content: the same four mean the same
/// ciphertext, whoever it is wrapped to. A digest, so that the envelope's
/// ciphertext is not kept while other paths are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Content([u8; 32]);

impl Content {
    fn of(env: &Envelope) -> Content {
        let mut hash = blake3::Hasher::new();
        hash.update(&env.nonce);
        hash.update(&env.tag);
        match &env.aad {
            Some(aad) => hash
                .update(&[1])
                .update(&(aad.len() as u64).to_le_bytes())
                .update(aad.as_bytes()),
            None => hash.update(&[0]),
        };
        hash.update(&env.ciphertext);
        Content(*hash.finalize().as_bytes())
    }
}

impl Side {
    /// A blob's side: `check`'s recognition of envelopes decides the form.
    pub(super) fn of(bytes: &[u8]) -> Side {
        match BlobFacts::of(bytes).form {
            Form::Plain => Side::Plain,
            Form::Malformed(problem) => Side::Malformed(problem),
            Form::Envelope { kids, .. } => match envelope::parse(bytes) {
                Ok(env) => Side::Envelope {
                    kids,
                    content: Content::of(&env),
                },
                Err(e) => Side::Malformed(e.to_string()),
            },
        }
    }

    pub(super) fn kids(&self) -> Option<&[Kid]> {
        match self {
            Side::Envelope { kids, .. } => Some(kids),
            _ => None,
        }
    }

    /// An envelope, well-formed or not.
    pub(super) fn claims_envelope(&self) -> bool {
        matches!(self, Side::Envelope { .. } | Side::Malformed(_))
    }
}

/// Where the new blob was seen before the range: the inputs of `reverted`
/// and `moved`, which only an envelope can be.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Seen {
    /// The path held this very blob in history before the range's base.
    pub(super) at_this_path_before: bool,
    /// Another path held it in the range's base.
    pub(super) at_another_path: bool,
}

/// The category of a path that changed from `old` to `new` and that is
/// sealed or an envelope on either side; `sealed` says whether the rules
/// require it sealed.
pub(super) fn classify(old: &Side, new: &Side, sealed: bool, seen: Seen) -> Option<Category> {
    Some(match new {
        Side::Malformed(_) => Category::Malformed,
        Side::Plain if old.claims_envelope() => Category::Unsealed,
        Side::Plain if sealed => Category::Plaintext,
        Side::Plain => return None,
        Side::Absent if sealed || old.claims_envelope() => Category::Deleted,
        Side::Absent => return None,
        Side::Envelope { .. } if seen.at_this_path_before => Category::Reverted,
        Side::Envelope { .. } if seen.at_another_path => Category::Moved,
        Side::Envelope { content, .. } => match old {
            Side::Envelope { content: was, .. } if was == content => Category::Rewrap,
            Side::Envelope { .. } => Category::Content,
            Side::Absent | Side::Plain | Side::Malformed(_) => Category::Sealed,
        },
    })
}

/// Kids in `now` and not in `was`.
pub(super) fn added(was: &[Kid], now: &[Kid]) -> Vec<Kid> {
    now.iter().filter(|k| !was.contains(k)).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(content: u8, kids: &[&str]) -> Side {
        Side::Envelope {
            kids: kids.iter().map(|k| Kid::parse(k).unwrap()).collect(),
            content: Content([content; 32]),
        }
    }

    const A: &str = "k_aaaaaaaaaaaaaaaa";
    const B: &str = "k_bbbbbbbbbbbbbbbb";

    #[test]
    fn each_change_has_one_category_by_precedence() {
        let none = Seen::default();
        let reverted = Seen {
            at_this_path_before: true,
            at_another_path: true,
        };
        let moved = Seen {
            at_another_path: true,
            ..Seen::default()
        };
        let bad = || Side::Malformed("recipients is empty".into());
        let cases = [
            (
                envelope(1, &[A]),
                envelope(2, &[A]),
                none,
                Category::Content,
            ),
            (
                envelope(1, &[A]),
                envelope(1, &[A, B]),
                none,
                Category::Rewrap,
            ),
            (Side::Absent, envelope(1, &[A]), none, Category::Sealed),
            (Side::Plain, envelope(1, &[A]), none, Category::Sealed),
            (bad(), envelope(1, &[A]), none, Category::Sealed),
            (envelope(1, &[A]), Side::Plain, none, Category::Unsealed),
            (bad(), Side::Plain, none, Category::Unsealed),
            (Side::Absent, Side::Plain, none, Category::Plaintext),
            (Side::Plain, Side::Plain, none, Category::Plaintext),
            (envelope(1, &[A]), bad(), none, Category::Malformed),
            (envelope(1, &[A]), Side::Absent, none, Category::Deleted),
            // Reverted wins over moved, and both over content.
            (
                envelope(1, &[A]),
                envelope(2, &[A]),
                reverted,
                Category::Reverted,
            ),
            (envelope(1, &[A]), envelope(2, &[A]), moved, Category::Moved),
            (Side::Absent, envelope(2, &[A]), moved, Category::Moved),
            (envelope(1, &[A]), envelope(1, &[B]), moved, Category::Moved),
        ];
        for (old, new, seen, expected) in cases {
            assert_eq!(
                classify(&old, &new, true, seen),
                Some(expected),
                "{old:?} -> {new:?}"
            );
        }
    }

    #[test]
    fn paths_the_rules_do_not_seal_count_only_as_envelopes() {
        let none = Seen::default();
        assert_eq!(classify(&Side::Plain, &Side::Plain, false, none), None);
        assert_eq!(classify(&Side::Plain, &Side::Absent, false, none), None);
        assert_eq!(
            classify(&Side::Absent, &envelope(1, &[A]), false, none),
            Some(Category::Sealed)
        );
        assert_eq!(
            classify(&envelope(1, &[A]), &Side::Plain, false, none),
            Some(Category::Unsealed)
        );
        assert_eq!(
            classify(&envelope(1, &[A]), &Side::Absent, false, none),
            Some(Category::Deleted)
        );
    }

    #[test]
    fn content_is_nonce_ciphertext_tag_and_aad() {
        let env = Envelope {
            recipients: Vec::new(),
            nonce: [1; 12],
            ciphertext: b"abc".to_vec(),
            tag: [2; 16],
            aad: None,
        };
        let same = Content::of(&env);
        let mut other = env.clone();
        other.aad = Some(String::new());
        assert_ne!(Content::of(&other), same);
        other = env.clone();
        other.ciphertext.push(0);
        assert_ne!(Content::of(&other), same);
        other = env.clone();
        other.nonce[0] = 0;
        assert_ne!(Content::of(&other), same);
        assert_eq!(Content::of(&env.clone()), same);
    }
}
