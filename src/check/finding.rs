//! What `check` reports: a [`Finding`] names a path, the [`Kind`] of
//! problem and the command that fixes it; the [`Place`] it was found in
//! (index or history) decides which command that is. Most kinds are
//! errors; [`Kind::is_warning`] says which are only warnings (reported,
//! never a reason to fail).

use serde::Serialize;

/// What is wrong, as named in `--json` output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A path that must be sealed is stored as plaintext.
    Plaintext,
    /// Claims to be an envelope but does not parse.
    MalformedEnvelope,
    /// An envelope wrapped to a kid `.seal/keys/` does not list.
    UnknownKid,
    /// An envelope wrapped to a kid `.seal/keys/` lists as removed.
    RemovedKid,
    /// An envelope whose `aad` does not bind its path although the policy
    /// says it must.
    AadMismatch,
    /// Private KEK material in stored content.
    KeyMaterial,
    /// A path the policy says must never be committed.
    NeverCommit,
    /// `.seal/policy.json` or a `.seal/keys/` record is invalid.
    BadPolicy,
    /// Sealed in the parent, plaintext here, with no trusted signer's
    /// `unseal-path` entry for it.
    Unsealed,
    /// The rules got weaker than the parent's (a sealed glob or pattern, a
    /// recipient or the path binding dropped), with no trusted signer's
    /// `policy` entry for it.
    Weakened,
    /// Warning: an active KEK is due for rotation soon, or overdue
    /// (`rotate_after_days`).
    RotationDue,
    /// Warning: an envelope is wrapped only to retired KEKs (no active or
    /// pending one among its recipients), so new keys cannot open it.
    RetiredOnly,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Plaintext => "plaintext",
            Kind::MalformedEnvelope => "malformed-envelope",
            Kind::UnknownKid => "unknown-kid",
            Kind::RemovedKid => "removed-kid",
            Kind::AadMismatch => "aad-mismatch",
            Kind::KeyMaterial => "key-material",
            Kind::NeverCommit => "never-commit",
            Kind::BadPolicy => "bad-policy",
            Kind::Unsealed => "unsealed",
            Kind::Weakened => "weakened",
            Kind::RotationDue => "rotation-due",
            Kind::RetiredOnly => "retired-only",
        }
    }

    /// A warning is reported but never fails `check` or a hook.
    pub fn is_warning(self) -> bool {
        matches!(self, Kind::RotationDue | Kind::RetiredOnly)
    }
}

/// Where a finding was made, which decides the command that fixes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// The index, before a commit.
    Index,
    /// A commit already made (CI, pre-receive).
    History,
}

/// One problem with one path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The commit that introduced it (`None` for the index).
    pub commit: Option<String>,
    pub path: String,
    pub kind: Kind,
    /// What is wrong and the command that fixes it. Never key material.
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::printable::escape;
        if let Some(commit) = &self.commit {
            write!(f, "{}: ", escape(commit))?;
        }
        write!(f, "{}: {}", escape(&self.path), escape(&self.message))
    }
}
