//! What `check` reports: a [`Finding`] names a path, the [`Kind`] of
//! problem and the command that fixes it; the [`Place`] it was found in
//! (index or history) decides which command that is. Most kinds are
//! errors; [`Kind::is_warning`] says which are only warnings (reported,
//! never a reason to fail). An [`Accepted`] finding is one a trusted
//! signer acknowledged in the audit chain: reported, never a failure.

use serde::Serialize;

use crate::audit::approvals::Acceptance;

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

/// A finding that a trusted signer's `accept-finding` entry names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Accepted {
    #[serde(flatten)]
    pub finding: Finding,
    /// The blob at the path in that commit (`None`: none there).
    pub blob: Option<String>,
    pub reason: String,
    /// Who accepted it: `{name, email, signer}`.
    pub accepted_by: crate::audit::entry::Actor,
    /// The `accept-finding` entry's commit in the audit chain.
    pub entry: String,
}

impl Accepted {
    pub(crate) fn new(finding: Finding, acceptance: &Acceptance) -> Accepted {
        Accepted {
            finding,
            blob: acceptance.blob.clone(),
            reason: acceptance.reason.clone(),
            accepted_by: acceptance.accepted_by.clone(),
            entry: acceptance.entry.clone(),
        }
    }
}

/// `COMMIT: PATH: KIND accepted by NAME <EMAIL> (SIGNER): REASON`, every
/// part escaped (a reason or a file name cannot forge a line).
impl std::fmt::Display for Accepted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::printable::escape;
        let (finding, by) = (&self.finding, &self.accepted_by);
        if let Some(commit) = &finding.commit {
            write!(f, "{}: ", escape(commit))?;
        }
        write!(
            f,
            "{}: {} accepted by {} <{}> ({}): {}",
            escape(&finding.path),
            finding.kind.as_str(),
            escape(&by.name),
            escape(&by.email),
            escape(&by.signer),
            escape(&self.reason)
        )
    }
}

/// How many findings of one kind are printed before the rest are counted.
const SHOWN_PER_KIND: usize = 3;

/// Findings as lines to print: every one when `all`, else at most a few of
/// each kind followed by a count of the rest and `how_to_list_all` (a
/// commit of 5,000 plaintext files makes 4 lines, not 5,000).
pub fn summary_lines<'a>(
    findings: impl IntoIterator<Item = &'a Finding>,
    all: bool,
    how_to_list_all: &str,
) -> Vec<String> {
    let mut kinds: Vec<(Kind, Vec<&Finding>)> = Vec::new();
    for finding in findings {
        match kinds.iter_mut().find(|(kind, _)| *kind == finding.kind) {
            Some((_, same)) => same.push(finding),
            None => kinds.push((finding.kind, vec![finding])),
        }
    }
    let mut lines = Vec::new();
    for (kind, same) in kinds {
        // Showing 4 of 4 beats "3 and 1 more".
        let shown = if all || same.len() <= SHOWN_PER_KIND + 1 {
            same.len()
        } else {
            SHOWN_PER_KIND
        };
        lines.extend(same[..shown].iter().map(ToString::to_string));
        if shown < same.len() {
            lines.push(format!(
                "… and {} more {} finding(s) like these ({how_to_list_all})",
                same.len() - shown,
                kind.as_str()
            ));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(kind: Kind, path: &str) -> Finding {
        Finding {
            commit: None,
            path: path.to_owned(),
            kind,
            message: format!("{} here", kind.as_str()),
        }
    }

    #[test]
    fn repeated_kinds_are_counted_after_a_few() {
        let mut findings: Vec<Finding> = (0..5000)
            .map(|i| finding(Kind::UnknownKid, &format!("data/f{i}")))
            .collect();
        findings.insert(2, finding(Kind::KeyMaterial, "notes.txt"));
        let lines = summary_lines(&findings, false, "HINT");
        assert_eq!(lines.len(), 5, "{lines:#?}");
        assert_eq!(lines[0], "data/f0: unknown-kid here");
        assert_eq!(
            lines[3],
            "… and 4997 more unknown-kid finding(s) like these (HINT)"
        );
        assert_eq!(lines[4], "notes.txt: key-material here");
        assert_eq!(summary_lines(&findings, true, "HINT").len(), 5001);
        assert_eq!(summary_lines(&findings[..4], false, "HINT").len(), 4);
    }
}
