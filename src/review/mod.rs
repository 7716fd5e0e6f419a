//! `git seal review`: what a range of commits did to sealed files, path by
//! path, for a reviewer (SPEC §8). It compares the range's base tree with
//! its tip tree (as `git diff A..B` does, not commit by commit), and
//! classifies every changed path that is sealed or an envelope on either
//! side ([`Category`]).
//!
//! Envelopes are recognised as `check` recognises them and never need a
//! key to classify. With keys, opened plaintext adds line counts and, when
//! asked, a unified diff ([`PlaintextDiff`]), which no serialised form
//! carries. Whether a path must be sealed is [`policy::must_seal`](crate::policy::must_seal)'s
//! answer by the rules the base and the tip trees carry (the stricter of
//! the two, so that a range which drops a sealed glob cannot hide a leak
//! under it). This module does not render; see [`render`].

mod classify;
pub mod lines;
pub mod render;

use std::collections::{HashMap, HashSet};

use serde::{Serialize, Serializer};
use zeroize::Zeroizing;

use crate::check::{tree_rules, Rules};
use crate::keys::{KeyError, KeyProvider, OpenError};
use crate::kid::Kid;
use crate::repo::history::{Change, RevSpec};
use crate::repo::{Oid, Repo, RepoError};
use classify::{classify, Seen, Side};

pub use classify::Category;
pub use lines::Lines;

#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("{spec:?} is not a revision range ({source}); name commits as Git does: `main..HEAD`, `main...HEAD`, `HEAD~3` or a commit id")]
    BadRange {
        spec: String,
        #[source]
        source: RepoError,
    },
    #[error(
        "HEAD has no commit yet, so there is nothing to review; commit first, or name a range"
    )]
    Unborn,
    #[error("{range}: the two sides have no commit in common; name the commit to compare with, as `git seal review BASE..HEAD`")]
    NoMergeBase { range: String },
    #[error(transparent)]
    Repo(#[from] RepoError),
}

impl ReviewError {
    /// Is this the user's range being wrong (exit 2) rather than a failure?
    pub fn is_usage(&self) -> bool {
        !matches!(self, ReviewError::Repo(_))
    }
}

/// How the range's base was chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum How {
    /// From the REV-RANGE argument.
    Given,
    /// HEAD against its merge base with its branch's upstream.
    Upstream,
    /// HEAD against its first parent (no upstream).
    Parent,
    /// HEAD, a root commit, against the empty tree.
    Root,
}

/// The two trees compared: the base's commit (`None`: the empty tree) and
/// the tip's.
#[derive(Clone, Debug, Serialize)]
pub struct ReviewRange {
    /// The REV-RANGE argument as given (`None`: the default range).
    pub spec: Option<String>,
    #[serde(serialize_with = "oid_opt")]
    pub base: Option<Oid>,
    #[serde(serialize_with = "oid")]
    pub tip: Oid,
    pub how: How,
    /// The upstream's name when `how` is `upstream` (`origin/main`).
    pub upstream: Option<String>,
}

impl ReviewRange {
    /// The range `spec` names, as Git users read it: `A..B` (B's tree
    /// against A's), `A...B` (B against the merge base of A and B), or a
    /// revision (against its first parent, or the empty tree for a root
    /// commit). `None`: HEAD against its merge base with its upstream,
    /// else against its parent, else the empty tree.
    pub fn resolve(repo: &Repo, spec: Option<&str>) -> Result<ReviewRange, ReviewError> {
        let Some(spec) = spec else {
            return ReviewRange::default_for(repo);
        };
        let given = |base, tip| ReviewRange {
            spec: Some(spec.to_owned()),
            base,
            tip,
            how: How::Given,
            upstream: None,
        };
        let parsed = repo
            .rev_spec(spec)
            .map_err(|source| ReviewError::BadRange {
                spec: spec.to_owned(),
                source,
            })?;
        Ok(match parsed {
            RevSpec::Single(rev) => given(repo.first_parent(rev)?, rev),
            RevSpec::Range { from, to } => given(Some(from), to),
            RevSpec::MergeBase { to, base, .. } => match base {
                Some(base) => given(Some(base), to),
                None => {
                    return Err(ReviewError::NoMergeBase {
                        range: crate::printable::escape(spec).into_owned(),
                    })
                }
            },
        })
    }

    fn default_for(repo: &Repo) -> Result<ReviewRange, ReviewError> {
        let Some((head, parents)) = repo.head_commit()? else {
            return Err(ReviewError::Unborn);
        };
        let range = |base, how, upstream| ReviewRange {
            spec: None,
            base,
            tip: head,
            how,
            upstream,
        };
        if let Some((name, upstream)) = repo.head_upstream()? {
            let base =
                repo.merge_base(head, upstream)?
                    .ok_or_else(|| ReviewError::NoMergeBase {
                        range: format!("{}...HEAD", crate::printable::escape(&name)),
                    })?;
            return Ok(range(Some(base), How::Upstream, Some(name)));
        }
        Ok(match parents.first() {
            Some(parent) => range(Some(*parent), How::Parent, None),
            None => range(None, How::Root, None),
        })
    }
}

/// One sealed path that changed.
#[derive(Debug, Serialize)]
pub struct Entry {
    /// The path as Git stores it (bytes; not always UTF-8).
    #[serde(skip)]
    pub path_bytes: Vec<u8>,
    /// The path as text (a byte that is not UTF-8 shows as U+FFFD).
    pub path: String,
    pub category: Category,
    #[serde(serialize_with = "oid_opt")]
    pub old_blob: Option<Oid>,
    #[serde(serialize_with = "oid_opt")]
    pub new_blob: Option<Oid>,
    /// The kids the envelope is wrapped to now (before, if deleted).
    pub kids: Vec<Kid>,
    /// Kids added and removed, when both sides are envelopes.
    pub kids_added: Vec<Kid>,
    pub kids_removed: Vec<Kid>,
    /// `moved`: the path in the base that held the same envelope.
    pub from_path: Option<String>,
    #[serde(skip)]
    pub from_path_bytes: Option<Vec<u8>>,
    /// `reverted`: the newest commit before the range that held the same
    /// blob at this path.
    #[serde(serialize_with = "oid_opt")]
    pub reverted_to: Option<Oid>,
    /// Plaintext lines added and removed, when both sides could be read
    /// (opened with a key here, or plaintext) and are not binary.
    pub lines: Option<Lines>,
    pub finding: bool,
    /// For a finding (and an approved `unsealed`): what it is and the fix.
    pub message: Option<String>,
    /// With `diff` asked: the plaintext diff. Never serialised.
    #[serde(skip)]
    pub diff: Option<PlaintextDiff>,
    /// Why there are no line counts (no key here, binary…). Never
    /// serialised: `lines` is null.
    #[serde(skip)]
    pub no_lines: Option<&'static str>,
}

/// A unified diff of plaintext: shown only when asked, never serialised,
/// wiped on drop; `Debug` prints its length only.
pub struct PlaintextDiff(Zeroizing<Vec<u8>>);

impl PlaintextDiff {
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for PlaintextDiff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlaintextDiff")
            .field("len", &self.0.len())
            .finish_non_exhaustive()
    }
}

/// What a range did to sealed paths.
#[derive(Debug, Serialize)]
pub struct Review {
    pub range: ReviewRange,
    /// One entry per changed sealed path, in Git's path order.
    pub paths: Vec<Entry>,
    /// Entries that are findings.
    pub findings: usize,
}

/// What `review` is asked to do beyond classifying.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options<'a> {
    /// Keys to open envelopes with (for line counts and diffs).
    pub keys: Option<&'a dyn KeyProvider>,
    /// Keep each path's plaintext diff ([`Entry::diff`]).
    pub diff: bool,
}

/// Classify every sealed path that changed from `range`'s base tree to its
/// tip tree.
pub fn review(
    repo: &Repo,
    range: ReviewRange,
    options: Options<'_>,
) -> Result<Review, ReviewError> {
    let rules_at = |commit: Option<Oid>| -> Result<Rules, RepoError> {
        match commit {
            Some(commit) => tree_rules(repo, repo.commit_tree_id(commit)?, &[]),
            None => Ok(Rules::from_files(None, None, Vec::new(), &[])),
        }
    };
    let (base_rules, tip_rules) = (rules_at(range.base)?, rules_at(Some(range.tip))?);
    let side = |id: Option<Oid>| -> Result<Side, RepoError> {
        match id {
            Some(id) => repo.with_blob(id, Side::of),
            None => Ok(Side::Absent),
        }
    };
    // Each change with its sides and whether the rules seal it; the sides
    // keep no content, so a large range is read one path at a time.
    let mut changed = Vec::new();
    for change in repo.tree_changes(range.base, range.tip)? {
        let text = crate::repo::path_text(&change.path);
        let sealed = base_rules.requires_seal(&text) || tip_rules.requires_seal(&text);
        let (old, new) = (side(change.old)?, side(change.new)?);
        if sealed || old.claims_envelope() || new.claims_envelope() {
            changed.push((change, text, sealed, old, new));
        }
    }
    let seen = where_seen(repo, range.base, &changed)?;
    let mut approvals = None;
    let mut paths = Vec::new();
    for ((change, text, sealed, old, new), seen) in changed.into_iter().zip(seen) {
        let Some(category) = classify(&old, &new, sealed, seen.seen) else {
            continue;
        };
        let mut entry = Entry {
            kids: new.kids().or(old.kids()).unwrap_or_default().to_vec(),
            kids_added: match (old.kids(), new.kids()) {
                (Some(was), Some(now)) => classify::added(was, now),
                _ => Vec::new(),
            },
            kids_removed: match (old.kids(), new.kids()) {
                (Some(was), Some(now)) => classify::added(now, was),
                _ => Vec::new(),
            },
            from_path: seen
                .from_path
                .as_deref()
                .filter(|_| category == Category::Moved)
                .map(crate::repo::path_text),
            from_path_bytes: seen.from_path.filter(|_| category == Category::Moved),
            reverted_to: seen.commit.filter(|_| category == Category::Reverted),
            path_bytes: change.path.clone(),
            path: text,
            category,
            old_blob: change.old,
            new_blob: change.new,
            lines: None,
            finding: category.is_finding(),
            message: None,
            diff: None,
            no_lines: None,
        };
        plaintext(repo, &change, &old, &new, &mut entry, options)?;
        if let Side::Malformed(problem) = &new {
            entry.message = Some(malformed_message(&entry, problem));
        }
        if entry.category == Category::Unsealed {
            let approvals = approvals.get_or_insert_with(|| {
                crate::audit::approvals::Approvals::from_chain(repo, crate::audit::chain::tip(repo))
            });
            // As `check` judges it: approval lets a path go plaintext only
            // where the rules no longer seal it.
            if approvals.unseal(&entry.path) && !tip_rules.requires_seal(&entry.path) {
                entry.finding = false;
            }
        }
        if entry.message.is_none() {
            entry.message = finding_message(&entry);
        }
        paths.push(entry);
    }
    Ok(Review {
        findings: paths.iter().filter(|e| e.finding).count(),
        range,
        paths,
    })
}

/// Where one change's new blob was seen before the range.
#[derive(Default)]
struct Before {
    seen: Seen,
    from_path: Option<Vec<u8>>,
    commit: Option<Oid>,
}

/// For each change whose new side is a valid envelope: whether its path
/// held that blob in history before the base (one walk for all of them),
/// and which other path held it in the base tree.
fn where_seen(
    repo: &Repo,
    base: Option<Oid>,
    changed: &[(Change, String, bool, Side, Side)],
) -> Result<Vec<Before>, RepoError> {
    let mut before: Vec<Before> = changed.iter().map(|_| Before::default()).collect();
    let Some(base) = base else {
        return Ok(before);
    };
    let candidates: Vec<usize> = changed
        .iter()
        .enumerate()
        .filter(|(_, (_, _, _, _, new))| matches!(new, Side::Envelope { .. }))
        .map(|(at, _)| at)
        .collect();
    let paths: Vec<&[u8]> = candidates
        .iter()
        .map(|&at| changed[at].0.path.as_slice())
        .collect();
    let history = repo.path_blobs_in_history(base, &paths)?;
    let wanted: HashSet<Oid> = candidates
        .iter()
        .filter_map(|&at| changed[at].0.new)
        .collect();
    let mut in_base: HashMap<Oid, Vec<Vec<u8>>> = HashMap::new();
    for (path, id) in repo.blob_paths_in(base, &wanted)? {
        in_base.entry(id).or_default().push(path);
    }
    for (held, &at) in history.iter().zip(&candidates) {
        let (change, ..) = &changed[at];
        let Some(new) = change.new else { continue };
        let found = &mut before[at];
        if let Some(commit) = held.get(&new) {
            found.seen.at_this_path_before = true;
            found.commit = Some(*commit);
        }
        found.from_path = in_base
            .get(&new)
            .and_then(|paths| paths.iter().find(|p| **p != change.path))
            .cloned();
        found.seen.at_another_path = found.from_path.is_some();
    }
    Ok(before)
}

/// Line counts (and the diff, if asked) from the two sides' plaintext:
/// an envelope opened with the keys, plaintext as it is, an absent side
/// empty. With a key for it, a new envelope that does not open (its
/// recipient entry or content altered) is `malformed`.
fn plaintext(
    repo: &Repo,
    change: &Change,
    old: &Side,
    new: &Side,
    entry: &mut Entry,
    options: Options<'_>,
) -> Result<(), RepoError> {
    let read = |id: Option<Oid>, side: &Side| -> Result<Readable, RepoError> {
        let Some(id) = id else {
            return Ok(Readable::Text(Zeroizing::new(Vec::new())));
        };
        Ok(match side {
            Side::Absent => Readable::Text(Zeroizing::new(Vec::new())),
            Side::Plain => Readable::Text(Zeroizing::new(repo.blob(id)?)),
            Side::Malformed(_) => Readable::Not("it is not a valid envelope"),
            Side::Envelope { .. } => match options.keys {
                None => Readable::Not("no key here opens it"),
                Some(keys) => match repo.with_blob(id, |b| crate::keys::open_bytes(b, keys))? {
                    Ok(text) => Readable::Text(Zeroizing::new(text)),
                    Err(OpenError::Content { kid } | OpenError::Key(KeyError::Unwrap { kid })) => {
                        Readable::Broken(kid)
                    }
                    Err(_) => Readable::Not("no key here opens it"),
                },
            },
        })
    };
    let (was, now) = (read(change.old, old)?, read(change.new, new)?);
    if let Readable::Broken(kid) = &now {
        entry.category = Category::Malformed;
        entry.finding = true;
        let problem = format!("it does not open with {kid}: authentication failed, so its recipient entry or content was altered");
        entry.message = Some(malformed_message(entry, &problem));
    }
    match (was, now) {
        (Readable::Text(was), Readable::Text(now)) => {
            entry.lines = lines::count(&was, &now);
            if entry.lines.is_none() {
                entry.no_lines = Some("binary content");
            }
            if options.diff {
                let name = render::display_path(&entry.path_bytes);
                let label = |side: Option<Oid>, prefix: &str| match side {
                    Some(_) => format!("{prefix}{name}"),
                    None => "/dev/null".to_owned(),
                };
                let diff = lines::unified(
                    &was,
                    &now,
                    &label(change.old, "a/"),
                    &label(change.new, "b/"),
                );
                entry.diff = Some(PlaintextDiff(Zeroizing::new(diff)));
            }
        }
        (Readable::Not(why), _) | (_, Readable::Not(why)) => entry.no_lines = Some(why),
        _ => entry.no_lines = Some("it does not open"),
    }
    Ok(())
}

/// One side's plaintext, or why there is none.
enum Readable {
    Text(Zeroizing<Vec<u8>>),
    Not(&'static str),
    /// An envelope that a key here should open and does not.
    Broken(Kid),
}

fn malformed_message(entry: &Entry, problem: &str) -> String {
    let path = render::display_path(&entry.path_bytes);
    format!("claims to be an envelope but is not a valid one ({problem}); store an envelope made by the filter instead (`git add {path}` from its plaintext, with the filter set up) and amend the commit")
}

fn finding_message(entry: &Entry) -> Option<String> {
    let path = render::display_path(&entry.path_bytes);
    match entry.category {
        Category::Unsealed if !entry.finding => Some("was an envelope and is plaintext now, as a trusted signer approved (`unseal-path` in the audit chain)".to_owned()),
        Category::Unsealed => Some(format!("was an envelope and is plaintext now (once sealed, stays sealed); seal it again (`git add --renormalize {path}` with the filter set up) and amend the commit, or a trusted signer approves it with `git seal audit approve unseal-path '{path}'`")),
        Category::Plaintext => Some(format!("is stored as plaintext but the policy requires it sealed; add it through the filter (`git seal init`, then `git add --renormalize {path}`) and amend the commit, and change the secrets it held")),
        _ => None,
    }
}

fn oid<S: Serializer>(id: &Oid, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(id)
}

fn oid_opt<S: Serializer>(id: &Option<Oid>, s: S) -> Result<S::Ok, S::Error> {
    match id {
        Some(id) => s.collect_str(id),
        None => s.serialize_none(),
    }
}
