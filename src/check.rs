//! Policy verification of stored content: what `git seal check` runs over
//! history, the pre-commit hook over the index, and `pre-receive` over a
//! push. It reads only Git objects (never the work tree, never a filter),
//! so it works in a clone without the filter and in a bare repository.
//!
//! Each tree is judged by the rules it carries itself: its
//! `.seal/policy.json`, its root `.gitattributes` and its `.seal/keys/`.
//! Envelopes are parsed, never opened: no private key is needed, and none
//! is read. Key material is found by deriving the kid of every 64-hex-digit
//! run and comparing it with the repository's KEKs, so a committed private
//! key is caught in CI too, and nothing secret is ever printed.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use serde::Serialize;

use crate::envelope;
use crate::keys::record::{self, Status};
use crate::kid::Kid;
use crate::policy::{self, Policy, SealAttributes};
use crate::repo::{EntryKind, Oid, Repo, RepoError};
use crate::secret::KekSecret;

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
    /// Sealed in HEAD, staged as plaintext without a policy change.
    Unsealed,
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
        }
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
        if let Some(commit) = &self.commit {
            write!(f, "{commit}: ")?;
        }
        write!(f, "{}: {}", self.path, self.message)
    }
}

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

/// The rules one tree (or the index) carries.
pub struct Rules {
    policy: Policy,
    attributes: SealAttributes,
    /// Every KEK `.seal/keys/` lists, with its status.
    keks: HashMap<Kid, Status>,
    /// Kids whose private key is available on this machine.
    available: HashSet<Kid>,
    /// Problems with the rule files themselves, as (path, message).
    problems: Vec<(String, String)>,
}

impl Rules {
    /// Build from the files' contents: `.seal/policy.json`, the root
    /// `.gitattributes`, and `.seal/keys/*.json` as (path, content).
    pub fn from_files(
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
            keks: records.into_iter().map(|r| (r.kid, r.status)).collect(),
            available: available.iter().cloned().collect(),
            problems,
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Must `path` be stored sealed by these rules? [`policy::must_seal`]
    /// with the tree's policy and its root `.gitattributes`.
    pub fn requires_seal(&self, path: &str) -> bool {
        let Ok(sealed) = policy::must_seal(&self.policy, path, |path| {
            Ok::<_, std::convert::Infallible>(self.attributes.seals(path))
        });
        sealed
    }

    /// Findings for one stored (path, blob).
    /// `sealed` says whether the path must be sealed (usually
    /// [`Rules::requires_seal`]; the pre-commit hook also asks Git's
    /// attributes, which see nested `.gitattributes` files).
    pub fn judge(
        &self,
        path: &str,
        facts: &BlobFacts,
        sealed: bool,
        place: Place,
    ) -> Vec<(Kind, String)> {
        let mut out = Vec::new();
        if let Some(glob) = self.policy.never_commit_glob(path) {
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
                    Place::Index => format!("staged as plaintext but the policy requires it sealed; run `git seal init` to configure the filter, then `git add {path}`"),
                    Place::History => format!("stored as plaintext but the policy requires it sealed; rewrite this commit to add it through the filter (`git seal init`, then `git add {path}` and amend or rebase), and rotate the secrets it held"),
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
                            format!("envelope is wrapped to {kid}, which .seal/keys/ does not list; add its record (`git seal kek add`) or re-seal the file with `git add {path}` from its plaintext"),
                        )),
                        Some(Status::Removed) => out.push((
                            Kind::RemovedKid,
                            format!("envelope is wrapped to {kid}, which .seal/keys/ lists as removed; re-seal it to the active KEK with `git seal rotate --reencrypt`"),
                        )),
                        Some(_) => {}
                    }
                }
                if let Some(expected) = self.policy.aad_for(path) {
                    if aad.as_deref() != Some(expected.as_str()) {
                        out.push((
                            Kind::AadMismatch,
                            format!(
                                "envelope's aad is {aad:?} but the policy binds the path ({expected:?}): it was moved or copied from another path; re-seal it here with `git add {path}` from its plaintext"
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

fn remove_fix(path: &str, place: Place) -> String {
    match place {
        Place::Index => format!("unstage it with `git rm --cached {path}`"),
        Place::History => {
            "remove it from history (e.g. `git filter-repo --invert-paths --path` it)".to_owned()
        }
    }
}

/// Kids whose private key this machine holds (key files and GIT_SEAL_KEK),
/// never the keys themselves; errors count as none.
pub fn available_kids() -> Vec<Kid> {
    use crate::keys::KeyProvider;
    let mut kids = Vec::new();
    if let Ok(keys) = crate::keys::file::FileKeys::open_default() {
        kids.extend(keys.available());
    }
    if let Ok(keys) = crate::keys::env::EnvKeys::from_env() {
        kids.extend(keys.available());
    }
    kids.sort();
    kids.dedup();
    kids
}

/// The result of checking a range of commits.
#[derive(Debug, Serialize)]
pub struct Report {
    pub range: String,
    /// Commits checked.
    pub commits: usize,
    /// Distinct blobs read (each once, however many commits share it).
    pub blobs: usize,
    pub findings: Vec<Finding>,
    pub ok: bool,
}

/// Check every commit reachable from `include` and not from `exclude`.
pub fn check_commits(
    repo: &Repo,
    range: &str,
    include: &[Oid],
    exclude: &[Oid],
    threads: usize,
) -> Result<Report, RepoError> {
    let commits = repo.commits_between(include, exclude)?;
    let available = available_kids();
    let mut walk = Walk::new(repo, &available);
    for (at, commit) in commits.iter().enumerate() {
        walk.commit(at, *commit)?;
    }
    let facts = read_blobs(repo, &walk.blobs, threads)?;
    let mut findings = walk.findings;
    for pair in &walk.pairs {
        let rules = &walk.rules[pair.rules];
        let sealed = rules.requires_seal(&pair.path);
        for (kind, message) in rules.judge(&pair.path, &facts[pair.blob], sealed, Place::History) {
            findings.push(Finding {
                commit: Some(commits[pair.commit].to_string()),
                path: pair.path.clone(),
                kind,
                message,
            });
        }
    }
    // Rule-file problems were found while walking, blob findings after:
    // order them by commit as the walk met them.
    let order: HashMap<String, usize> = commits
        .iter()
        .enumerate()
        .map(|(i, c)| (c.to_string(), i))
        .collect();
    findings.sort_by_key(|f| f.commit.as_ref().map(|c| order[c]));
    Ok(Report {
        range: range.to_owned(),
        commits: commits.len(),
        blobs: walk.blobs.len(),
        ok: findings.is_empty(),
        findings,
    })
}

/// The rules a tree carries.
pub fn tree_rules(repo: &Repo, tree: Oid, available: &[Kid]) -> Result<Rules, RepoError> {
    let walk = Walk::new(repo, available);
    walk.load_rules(&rule_files(repo, tree)?)
}

fn rule_files(repo: &Repo, tree: Oid) -> Result<[Option<Oid>; 3], RepoError> {
    Ok([
        repo.tree_entry_id(tree, policy::PATH)?,
        repo.tree_entry_id(tree, ".gitattributes")?,
        repo.tree_entry_id(tree, record::KEYS_DIR)?,
    ])
}

/// What arrived in a merge, checkout or rewrite: the files that differ
/// between `old` (`None`: nothing) and `new`, judged by `new`'s rules.
#[derive(Debug, Default)]
pub struct Arrivals {
    /// Arrived paths that must be sealed.
    pub sealed: usize,
    pub findings: Vec<Finding>,
}

pub fn check_arrivals(repo: &Repo, old: Option<Oid>, new: Oid) -> Result<Arrivals, RepoError> {
    let rules = tree_rules(repo, repo.commit_tree_id(new)?, &available_kids())?;
    let mut arrivals = Arrivals::default();
    for (path, _, blob) in repo.changed_files(old, new)? {
        let Some(blob) = blob else { continue };
        let sealed = rules.requires_seal(&path);
        arrivals.sealed += usize::from(sealed);
        let facts = repo.with_blob(blob, BlobFacts::of)?;
        for (kind, message) in rules.judge(&path, &facts, sealed, Place::History) {
            arrivals.findings.push(Finding {
                commit: Some(new.to_string()),
                path: path.clone(),
                kind,
                message,
            });
        }
    }
    Ok(arrivals)
}

/// The pre-commit check: the index as it would be committed, judged by the
/// rules staged with it, reading staged blobs directly (so a clone without
/// the filter is checked all the same). Reads only the blobs whose staged
/// version differs from HEAD's, or every staged blob when the commit changes
/// the rules (`.seal/policy.json`, `.gitattributes`, `.seal/keys/`).
pub fn check_index(repo: &Repo) -> Result<Vec<Finding>, RepoError> {
    let available = available_kids();
    let entries = repo.index_blobs()?;
    let staged: HashMap<&str, Oid> = entries.iter().map(|(p, id)| (p.as_str(), *id)).collect();
    let head: HashMap<String, Oid> = repo.head_files()?.into_iter().collect();
    let read = |id: Oid| repo.with_blob(id, <[u8]>::to_vec);
    let mut records = Vec::new();
    for (path, id) in &entries {
        if path.starts_with(".seal/keys/") && path.ends_with(".json") {
            records.push((PathBuf::from(path), read(*id)?));
        }
    }
    let rules = Rules::from_files(
        staged
            .get(policy::PATH)
            .map(|id| read(*id))
            .transpose()?
            .as_deref(),
        staged
            .get(".gitattributes")
            .map(|id| read(*id))
            .transpose()?
            .as_deref(),
        records,
        &available,
    );
    let mut findings: Vec<Finding> = rules
        .problems
        .iter()
        .map(|(path, message)| Finding {
            commit: None,
            path: path.clone(),
            kind: Kind::BadPolicy,
            message: format!("{message}; fix it and `git add {path}`"),
        })
        .collect();
    let policy_changed = staged.get(policy::PATH) != head.get(policy::PATH);
    // Entries unchanged since HEAD were judged when HEAD was committed,
    // unless the rules changed: then every entry is judged again.
    let is_rule_file =
        |p: &str| p == policy::PATH || p == ".gitattributes" || p.starts_with(".seal/keys/");
    let rules_changed = entries
        .iter()
        .map(|(p, _)| p.as_str())
        .chain(head.keys().map(String::as_str))
        .filter(|p| is_rule_file(p))
        .any(|p| staged.get(p) != head.get(p));
    let mut facts_of: HashMap<Oid, BlobFacts> = HashMap::new();
    for (path, id) in &entries {
        // Git's attributes too: they see nested `.gitattributes` files.
        let sealed = policy::must_seal(&rules.policy, path, |path| {
            Ok::<_, RepoError>(rules.attributes.seals(path) || repo.has_seal_filter(path)?)
        })?;
        let before = head.get(path);
        if before == Some(id) && !rules_changed {
            continue;
        }
        if !facts_of.contains_key(id) {
            facts_of.insert(*id, repo.with_blob(*id, BlobFacts::of)?);
        }
        let facts = &facts_of[id];
        let mut found = rules.judge(path, facts, sealed, Place::Index);
        if facts.form == Form::Plain && !sealed && !policy_changed {
            if let Some(before) = before {
                if repo.with_blob(*before, envelope::is_envelope)? {
                    found.push((
                        Kind::Unsealed,
                        format!("sealed in HEAD but staged as plaintext, and this commit does not change {} to allow it; run `git seal init`, then `git add {path}` (or change the policy in the same commit)", policy::PATH),
                    ));
                }
            }
        }
        findings.extend(found.into_iter().map(|(kind, message)| Finding {
            commit: None,
            path: path.clone(),
            kind,
            message,
        }));
    }
    Ok(findings)
}

struct Pair {
    commit: usize,
    rules: usize,
    path: String,
    blob: usize,
}

struct Walk<'a> {
    repo: &'a Repo,
    available: &'a [Kid],
    rules: Vec<Rules>,
    rules_by_files: HashMap<[Option<Oid>; 3], usize>,
    /// (rules, directory path, tree id) already walked.
    seen_trees: HashSet<(usize, String, Oid)>,
    /// (rules, path, blob id) already judged.
    seen_pairs: HashSet<(usize, String, Oid)>,
    pairs: Vec<Pair>,
    /// Distinct blob ids in the order first met.
    blobs: Vec<Oid>,
    blob_seen: HashMap<Oid, usize>,
    findings: Vec<Finding>,
}

impl<'a> Walk<'a> {
    fn new(repo: &'a Repo, available: &'a [Kid]) -> Walk<'a> {
        Walk {
            repo,
            available,
            rules: Vec::new(),
            rules_by_files: HashMap::new(),
            seen_trees: HashSet::new(),
            seen_pairs: HashSet::new(),
            pairs: Vec::new(),
            blobs: Vec::new(),
            blob_seen: HashMap::new(),
            findings: Vec::new(),
        }
    }

    fn commit(&mut self, index: usize, commit: Oid) -> Result<(), RepoError> {
        let tree = self.repo.commit_tree_id(commit)?;
        let files = rule_files(self.repo, tree)?;
        let rules = match self.rules_by_files.get(&files) {
            Some(&at) => at,
            None => {
                let rules = self.load_rules(&files)?;
                for (path, message) in &rules.problems {
                    self.findings.push(Finding {
                        commit: Some(commit.to_string()),
                        path: path.clone(),
                        kind: Kind::BadPolicy,
                        message: format!("{message}; fix it in a new commit"),
                    });
                }
                self.rules.push(rules);
                self.rules_by_files.insert(files, self.rules.len() - 1);
                self.rules.len() - 1
            }
        };
        self.tree(index, rules, String::new(), tree)
    }

    fn load_rules(&self, files: &[Option<Oid>; 3]) -> Result<Rules, RepoError> {
        let read = |id: Option<Oid>| -> Result<Option<Vec<u8>>, RepoError> {
            id.map(|id| self.repo.with_blob(id, <[u8]>::to_vec))
                .transpose()
        };
        let mut records = Vec::new();
        if let Some(keys) = files[2] {
            if let Ok(items) = self.repo.tree_items(keys) {
                for item in items {
                    if item.kind == EntryKind::Blob && item.name.ends_with(".json") {
                        records.push((
                            PathBuf::from(format!("{}/{}", record::KEYS_DIR, item.name)),
                            self.repo.with_blob(item.id, <[u8]>::to_vec)?,
                        ));
                    }
                }
            }
        }
        Ok(Rules::from_files(
            read(files[0])?.as_deref(),
            read(files[1])?.as_deref(),
            records,
            self.available,
        ))
    }

    fn tree(
        &mut self,
        commit: usize,
        rules: usize,
        dir: String,
        tree: Oid,
    ) -> Result<(), RepoError> {
        if !self.seen_trees.insert((rules, dir.clone(), tree)) {
            return Ok(());
        }
        for item in self.repo.tree_items(tree)? {
            let path = if dir.is_empty() {
                item.name
            } else {
                format!("{dir}/{}", item.name)
            };
            match item.kind {
                EntryKind::Tree => self.tree(commit, rules, path, item.id)?,
                EntryKind::Blob => {
                    if !self.seen_pairs.insert((rules, path.clone(), item.id)) {
                        continue;
                    }
                    let next = self.blobs.len();
                    let blob = *self.blob_seen.entry(item.id).or_insert(next);
                    if blob == next {
                        self.blobs.push(item.id);
                    }
                    self.pairs.push(Pair {
                        commit,
                        rules,
                        path,
                        blob,
                    });
                }
                EntryKind::Other => {}
            }
        }
        Ok(())
    }
}

/// Facts for each blob, read once each, on up to `threads` threads (each
/// with its own repository handle: libgit2 handles are not shared).
fn read_blobs(repo: &Repo, blobs: &[Oid], threads: usize) -> Result<Vec<BlobFacts>, RepoError> {
    let read = |repo: &Repo, ids: &[Oid]| -> Result<Vec<BlobFacts>, RepoError> {
        ids.iter()
            .map(|id| repo.with_blob(*id, BlobFacts::of))
            .collect()
    };
    let threads = threads.clamp(1, 16);
    if threads == 1 || blobs.len() < 256 {
        return read(repo, blobs);
    }
    let chunk = blobs.len().div_ceil(threads);
    let handles = blobs
        .chunks(chunk)
        .map(|ids| Ok((repo.reopen()?, ids)))
        .collect::<Result<Vec<_>, RepoError>>()?;
    std::thread::scope(|scope| {
        let running: Vec<_> = handles
            .into_iter()
            .map(|(repo, ids)| scope.spawn(move || read(&repo, ids)))
            .collect();
        let mut facts = Vec::with_capacity(blobs.len());
        for handle in running {
            facts.extend(handle.join().expect("blob reader panicked")?);
        }
        Ok(facts)
    })
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
