//! The rules a tree (or the index) carries, read from Git objects (its
//! `.seal/policy.json`, root `.gitattributes` and `.seal/keys/` records),
//! and how they judge one stored (path, blob). Whether a path must be
//! sealed is [`policy::must_seal`]'s answer; this module only supplies a
//! tree's inputs to it.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::path::PathBuf;
use std::time::SystemTime;

use super::blob::{BlobFacts, Form};
use super::finding::{Kind, Place};
use crate::keys::expiry;
use crate::keys::record::{self, KekRecord, Status};
use crate::kid::Kid;
use crate::policy::{self, Policy, SealAttributes};
use crate::repo::{EntryKind, Oid, Repo, RepoError};

/// A rule that a commit dropped or narrowed ([`Rules::weakened_from`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Weakening {
    /// The approval item (`sealed:GLOB`, `attribute:PATTERN`, …).
    pub(crate) item: String,
    /// The file that weakened it.
    pub(crate) file: String,
    /// Narrowed rather than dropped: a path no longer sealed by it, if
    /// one was found ([`policy::Narrowed::example`]).
    pub(crate) narrowed: Option<Option<String>>,
}

/// The rules one tree (or the index) carries.
#[derive(Clone, Debug)]
pub struct Rules {
    policy: Policy,
    attributes: SealAttributes,
    /// Every KEK `.seal/keys/` lists, with its status.
    keks: HashMap<Kid, Status>,
    /// The same KEKs' records (for their due dates).
    records: Vec<KekRecord>,
    /// Kids whose private key is available on this machine.
    available: HashSet<Kid>,
    /// Problems with the rule files themselves, as (path, message).
    problems: Vec<(String, String)>,
}

impl Rules {
    /// Build from the files' contents: `.seal/policy.json`, the root
    /// `.gitattributes`, and `.seal/keys/*.json` as (path, content).
    pub(crate) fn from_files(
        policy_text: Option<&[u8]>,
        attributes: Option<&[u8]>,
        key_records: Vec<(PathBuf, Vec<u8>)>,
        available: &[Kid],
    ) -> Rules {
        let mut problems = Vec::new();
        let records = match record::parse_all(key_records) {
            Ok(records) => records,
            Err(e) => {
                problems.push((record::KEYS_DIR.to_owned(), e.to_string()));
                Vec::new()
            }
        };
        let known = crate::workspace::known_kids(&records);
        let policy = match policy_text.map(String::from_utf8_lossy) {
            None => Policy::empty(),
            Some(text) => match Policy::parse(&text, &known) {
                Ok(policy) => policy,
                Err(e) => {
                    problems.push((policy::PATH.to_owned(), e.to_string()));
                    // Still enforce what can be read: the globs, without
                    // the recipient check that failed.
                    serde_json::from_str(&text)
                        .ok()
                        .and_then(|file| Policy::from_file(file, "", &lenient(&text)).ok())
                        .unwrap_or_else(Policy::empty)
                }
            },
        };
        Rules {
            policy,
            attributes: SealAttributes::parse(&String::from_utf8_lossy(
                attributes.unwrap_or_default(),
            )),
            keks: records.iter().map(|r| (r.kid.clone(), r.status)).collect(),
            records,
            available: available.iter().cloned().collect(),
            problems,
        }
    }

    /// Read the rule files [`rule_files`] found in a tree.
    pub(super) fn load(
        repo: &Repo,
        files: &[Option<Oid>; 3],
        available: &[Kid],
    ) -> Result<Rules, RepoError> {
        let read = |id: Option<Oid>| -> Result<Option<Vec<u8>>, RepoError> {
            id.map(|id| repo.with_blob(id, <[u8]>::to_vec)).transpose()
        };
        let mut records = Vec::new();
        if let Some(keys) = files[2] {
            if let Ok(items) = repo.tree_items(keys) {
                for item in items {
                    if item.kind == EntryKind::Blob && item.name.ends_with(".json") {
                        records.push((
                            PathBuf::from(format!("{}/{}", record::KEYS_DIR, item.name)),
                            repo.with_blob(item.id, <[u8]>::to_vec)?,
                        ));
                    }
                }
            }
        }
        Ok(Rules::from_files(
            read(files[0])?.as_deref(),
            read(files[1])?.as_deref(),
            records,
            available,
        ))
    }

    /// These rules with the `.gitattributes` file of directory `dir` (a
    /// nested one) added: it governs the paths below `dir`.
    pub(super) fn with_attributes(&self, dir: &str, text: &str) -> Rules {
        let mut rules = self.clone();
        rules.attributes.add(dir, text);
        rules
    }

    /// What these rules dropped or narrowed that `before` had, as
    /// approval items: `sealed:GLOB` (a policy glob), `attribute:PATTERN`
    /// (a root `.gitattributes` pattern that sealed, dropped, or narrowed
    /// by any `.gitattributes` line so that a path it sealed is not sealed
    /// any more; `attribute:DIR/.gitattributes:PATTERN` for a nested
    /// file's), `recipient:KID`, and `bind_path_aad`. Both must carry
    /// their nested `.gitattributes` files ([`tree_rules`]) for a nested
    /// file's narrowing to show.
    pub(crate) fn weakened_from(&self, before: &Rules) -> Vec<Weakening> {
        let (now, was) = (&self.policy.file, &before.policy.file);
        let mut dropped = Vec::new();
        let mut drop = |item: String, file: &str, narrowed: Option<Option<String>>| {
            if !dropped.iter().any(|d: &Weakening| d.item == item) {
                dropped.push(Weakening {
                    item,
                    file: file.to_owned(),
                    narrowed,
                });
            }
        };
        for glob in &was.sealed {
            if !now.sealed.contains(glob) {
                drop(format!("sealed:{glob}"), policy::PATH, None);
            }
        }
        for pattern in &before.attributes.patterns {
            if !self.attributes.patterns.contains(pattern) {
                drop(format!("attribute:{pattern}"), ".gitattributes", None);
            }
        }
        // A line that unsets `filter` (or a nested file, a macro, a
        // deleted line) can narrow a pattern that is still there.
        for narrowed in self
            .attributes
            .narrowed_from(&before.attributes, &now.sealed)
        {
            drop(narrowed.item, &narrowed.file, Some(narrowed.example));
        }
        let kids = |file: &crate::policy::PolicyFile| -> Vec<Kid> {
            file.recipients
                .iter()
                .flat_map(|s| s.kids.clone())
                .collect()
        };
        let kept = kids(now);
        for kid in kids(was) {
            if !kept.contains(&kid) {
                drop(format!("recipient:{kid}"), policy::PATH, None);
            }
        }
        if was.bind_path_aad && !now.bind_path_aad {
            drop("bind_path_aad".to_owned(), policy::PATH, None);
        }
        dropped
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Problems with the rule files themselves, as (path, message).
    pub(super) fn problems(&self) -> &[(String, String)] {
        &self.problems
    }

    /// The status `.seal/keys/` gives `kid` (`None`: not listed).
    pub(super) fn status(&self, kid: &Kid) -> Option<Status> {
        self.keks.get(kid).copied()
    }

    /// The active KEKs these rules list that are due for rotation at `now`
    /// by their policy's `rotate_after_days`, as (record path, message
    /// naming the kid, the due date and the command).
    pub(super) fn rotation_due(&self, now: SystemTime) -> Vec<(String, String)> {
        let days = self.policy.rotate_after_days();
        expiry::needing_rotation(&self.records, days, now)
            .into_iter()
            .map(|(kek, due)| (record::repo_path(&kek.kid), due.advice(&kek.kid)))
            .collect()
    }

    /// Must `path` be stored sealed by these rules? [`policy::must_seal`]
    /// with the tree's policy and its root `.gitattributes`.
    pub(crate) fn requires_seal(&self, path: &str) -> bool {
        let Ok(sealed) = self.requires_seal_or(path, |_| Ok::<_, Infallible>(false));
        sealed
    }

    /// [`Rules::requires_seal`], with `filter_seal` as a further source of
    /// `filter=seal` (pre-commit asks Git too, which also reads nested
    /// `.gitattributes` files).
    pub(crate) fn requires_seal_or<E>(
        &self,
        path: &str,
        filter_seal: impl FnOnce(&str) -> Result<bool, E>,
    ) -> Result<bool, E> {
        policy::must_seal(&self.policy, path, |path| {
            Ok(self.attributes.seals(path) || filter_seal(path)?)
        })
    }

    /// Findings for one stored (path, blob).
    /// `sealed` says whether the path must be sealed (usually
    /// [`Rules::requires_seal`]; the pre-commit hook also asks Git's
    /// attributes, through [`Rules::requires_seal_or`]).
    pub(crate) fn judge(
        &self,
        path: &str,
        facts: &BlobFacts,
        sealed: bool,
        place: Place,
    ) -> Vec<(Kind, String)> {
        let mut out = Vec::new();
        let sealed_envelope = sealed && matches!(facts.form, Form::Envelope { .. });
        if let Some(glob) = self
            .policy
            .never_commit_glob(path)
            .filter(|_| !sealed_envelope)
        {
            out.push((
                Kind::NeverCommit,
                format!(
                    "matches never_commit glob {glob:?} of {}; {}",
                    policy::PATH,
                    remove_fix(path, place)
                ),
            ));
        }
        for kid in &facts.key_kids {
            if self.keks.contains_key(kid) || self.available.contains(kid) {
                out.push((
                    Kind::KeyMaterial,
                    format!(
                        "contains the private key of KEK {kid}; {}, and treat the key as exposed (`git seal rotate --reencrypt`)",
                        remove_fix(path, place)
                    ),
                ));
            }
        }
        match &facts.form {
            Form::Plain if sealed => out.push((
                Kind::Plaintext,
                match place {
                    Place::Index => format!("staged as plaintext but the policy requires it sealed; run `git seal init` to configure the filter, then `git add --renormalize {path}` (a plain `git add` skips a file Git thinks unchanged)"),
                    Place::History => format!("stored as plaintext but the policy requires it sealed; rewrite this commit to add it through the filter (`git seal init`, then `git add --renormalize {path}` and amend or rebase), and rotate the secrets it held"),
                },
            )),
            Form::Plain => {}
            Form::Malformed(problem) => out.push((
                Kind::MalformedEnvelope,
                format!("not a valid envelope ({problem}); {}", match place {
                    Place::Index => format!("restore it with `git checkout HEAD -- {path}` or put its plaintext back and `git add {path}`"),
                    Place::History => "rewrite this commit with an envelope made by `git add` through the filter".to_owned(),
                }),
            )),
            Form::Envelope { kids, aad } => {
                for kid in kids {
                    match self.keks.get(kid) {
                        None => out.push((
                            Kind::UnknownKid,
                            format!("envelope is wrapped to {kid}, which .seal/keys/ does not list; add its record (`git seal kek add`) or re-seal the file with `git add --renormalize {path}` from its plaintext"),
                        )),
                        Some(Status::Removed) => out.push((
                            Kind::RemovedKid,
                            format!("envelope is wrapped to {kid}, which .seal/keys/ lists as removed; {}", reseal_fix(path, place)),
                        )),
                        Some(_) => {}
                    }
                }
                if let Some(expected) = self.policy.aad_for(path) {
                    if aad.as_deref() != Some(expected.as_str()) {
                        let bound = match aad {
                            Some(aad) => format!("bound to {aad:?}"),
                            None => "bound to no path".to_owned(),
                        };
                        out.push((
                            Kind::AadMismatch,
                            format!(
                                "envelope is {bound} but the policy binds the path ({expected:?}): it was moved or copied from another path; re-seal it here with `git add --renormalize {path}` from its plaintext"
                            ),
                        ));
                    }
                }
            }
        }
        out
    }
}

/// Kids named anywhere in policy text (so a policy rejected only for an
/// unknown recipient still enforces its globs).
fn lenient(text: &str) -> Vec<Kid> {
    text.split('"').filter_map(|w| Kid::parse(w).ok()).collect()
}

/// Re-seal a file to the current recipients from its plaintext: clean
/// seals anew whenever an envelope's recipients are not the ones the
/// policy names, and `--renormalize` makes Git clean it although it did
/// not change.
pub(super) fn reseal_fix(path: &str, place: Place) -> String {
    let reseal = format!("re-seal it to the current recipients from its plaintext with `git add --renormalize {path}` (`git seal unlock` first if it is locked)");
    match place {
        Place::Index => reseal,
        Place::History => format!("{reseal} and commit"),
    }
}

fn remove_fix(path: &str, place: Place) -> String {
    match place {
        Place::Index => format!("unstage it with `git rm --cached {path}`"),
        Place::History => {
            "remove it from history (e.g. `git filter-repo --invert-paths --path` it)".to_owned()
        }
    }
}

/// A symbolic link under a sealed path cannot be sealed: Git stores its
/// target as the blob and runs no filter on it, so `git add` again cannot
/// help. Rewrites the `plaintext` findings of such an entry to say so.
pub(crate) fn for_link(path: &str, found: Vec<(Kind, String)>) -> Vec<(Kind, String)> {
    found
        .into_iter()
        .map(|(kind, message)| match kind {
            Kind::Plaintext => (
                kind,
                format!("is a symbolic link under a sealed path: Git stores its target in plaintext and runs no filter on links, so it cannot be sealed; replace it with a regular file (`git rm --cached {path}`, then copy the file it points to), or keep it out of the sealed paths"),
            ),
            _ => (kind, message),
        })
        .collect()
}

/// The rules a tree carries, nested `.gitattributes` files included.
pub(crate) fn tree_rules(repo: &Repo, tree: Oid, available: &[Kid]) -> Result<Rules, RepoError> {
    let files = repo.tree_blobs(tree)?;
    let files = files.iter().map(|(path, id)| (path.as_str(), *id));
    rules_with_nested(repo, tree, files, available)
}

/// [`tree_rules`], given the tree's files (or a list known to hold the
/// same `.gitattributes` files).
pub(crate) fn rules_with_nested<'a>(
    repo: &Repo,
    tree: Oid,
    files: impl Iterator<Item = (&'a str, Oid)>,
    available: &[Kid],
) -> Result<Rules, RepoError> {
    let rules = Rules::load(repo, &rule_files(repo, tree)?, available)?;
    let nested = files.filter_map(|(path, id)| Some((path.strip_suffix("/.gitattributes")?, id)));
    add_nested(repo, rules, nested)
}

/// `rules` with the nested `.gitattributes` files (directory, blob) added,
/// parents before children as Git reads them.
pub(super) fn add_nested<'a>(
    repo: &Repo,
    mut rules: Rules,
    nested: impl Iterator<Item = (&'a str, Oid)>,
) -> Result<Rules, RepoError> {
    let mut nested: Vec<(&str, Oid)> = nested.collect();
    nested.sort_by_key(|(dir, _)| dir.matches('/').count());
    for (dir, id) in nested {
        let text = repo.with_blob(id, |b| String::from_utf8_lossy(b).into_owned())?;
        rules.attributes.add(dir, &text);
    }
    Ok(rules)
}

/// The ids of a tree's rule files (`.seal/policy.json`, the root
/// `.gitattributes`, `.seal/keys/`): trees with the same ids carry the same
/// rules.
pub(super) fn rule_files(repo: &Repo, tree: Oid) -> Result<[Option<Oid>; 3], RepoError> {
    Ok([
        repo.tree_entry_id(tree, policy::PATH)?,
        repo.tree_entry_id(tree, ".gitattributes")?,
        repo.tree_entry_id(tree, record::KEYS_DIR)?,
    ])
}
