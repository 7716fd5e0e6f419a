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
//!
//! This file holds the three entry points ([`check_commits`],
//! [`check_arrivals`], [`check_index`]) and their reports; `finding` is
//! what they report, `blob` what a blob is, `rules` what a tree requires,
//! `walk` the history walker with its blob-reader threads, `tips` the
//! warnings about where a range ends (KEKs due for rotation, envelopes
//! wrapped only to retired KEKs), which never fail a check, and `accepted`
//! the findings a trusted signer accepted in the audit chain.

pub mod accepted;
mod blob;
pub mod finding;
mod rules;
mod tips;
mod walk;

use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;

use serde::Serialize;

use crate::audit::approvals::Approvals;
use crate::envelope;
use crate::policy;
use crate::repo::{Oid, Repo, RepoError};
use walk::{read_blobs, Walk};

pub use blob::{BlobFacts, Form};
pub use finding::{Accepted, Finding, Kind, Place};
pub(crate) use rules::tree_rules;
pub use rules::Rules;

/// Findings for rules that got weaker than `before`'s without approval.
fn weakened(
    now: &Rules,
    before: &Rules,
    approvals: &mut Lazy<'_>,
    commit: Option<String>,
) -> Vec<Finding> {
    let mut found = Vec::new();
    for rules::Weakening {
        item,
        file,
        narrowed,
    } in now.weakened_from(before)
    {
        if approvals.get().policy(&item) {
            continue;
        }
        let what = match narrowed {
            Some(Some(path)) => format!(
                "narrows {item} that the parent commit had: a path such as `{path}` is no longer sealed"
            ),
            Some(None) => format!("may narrow {item} that the parent commit had (its .gitattributes rules are too involved to tell)"),
            None => format!("drops {item} that the parent commit had"),
        };
        found.push(Finding {
            commit: commit.clone(),
            path: file,
            kind: Kind::Weakened,
            message: format!(
                "{what} (once sealed, stays sealed); a trusted signer approves it with `git seal audit approve policy '{item}'`, or put it back"
            ),
        });
    }
    found
}

/// The approvals of a chain, read only when a finding needs them.
struct Lazy<'a> {
    repo: &'a Repo,
    tip: Option<Oid>,
    loaded: Option<Approvals>,
}

impl<'a> Lazy<'a> {
    fn new(repo: &'a Repo, tip: Option<Oid>) -> Lazy<'a> {
        Lazy {
            repo,
            tip,
            loaded: None,
        }
    }

    fn get(&mut self) -> &Approvals {
        self.loaded
            .get_or_insert_with(|| Approvals::from_chain(self.repo, self.tip))
    }
}

/// HEAD's rule files (`.seal/policy.json`, the root `.gitattributes`, the
/// KEK records), which are the index's when the commit changes none.
fn head_rule_files(repo: &Repo, tree: Oid) -> Result<Vec<(String, Oid)>, RepoError> {
    let [policy_file, attributes, keys] = rules::rule_files(repo, tree)?;
    let mut files: Vec<(String, Oid)> =
        [(policy::PATH, policy_file), (".gitattributes", attributes)]
            .into_iter()
            .filter_map(|(path, id)| Some((path.to_owned(), id?)))
            .collect();
    if let Some(keys) = keys {
        let dir = crate::keys::record::KEYS_DIR;
        files.extend(
            repo.tree_blobs(keys)?
                .into_iter()
                .map(|(name, id)| (format!("{dir}/{name}"), id)),
        );
    }
    Ok(files)
}

fn unsealed_message(path: &str) -> String {
    format!("was sealed in the parent commit and is plaintext here (once sealed, stays sealed); seal it again (`git add --renormalize {path}` with the filter set up), or a trusted signer approves it with `git seal audit approve unseal-path '{path}'`")
}

/// Once sealed, stays sealed: each commit against its first parent, for
/// paths that went from envelope to plaintext and rules that got weaker,
/// unless the chain approves.
fn stays_sealed(
    repo: &Repo,
    commits: &[Oid],
    walk: &mut Walk<'_>,
    facts: &[BlobFacts],
    available: &[crate::kid::Kid],
    context: &Context<'_>,
    approvals: &mut Lazy<'_>,
) -> Result<Vec<Finding>, RepoError> {
    // A parent in the range has its rules from the walk already; only a
    // parent outside it (the range's base) is read here, once per tree.
    // Both sides carry their nested `.gitattributes` files: a nested
    // `* -filter` narrows sealing as a root line does.
    let index: HashMap<Oid, usize> = commits.iter().enumerate().map(|(i, c)| (*c, i)).collect();
    let mut outside: HashMap<Oid, Rc<Rules>> = HashMap::new();
    let mut findings = Vec::new();
    for (at, commit) in commits.iter().enumerate() {
        let Some(parent) = repo.parents(*commit)?.first().copied() else {
            continue;
        };
        let before = match index.get(&parent) {
            Some(&i) => walk.full_rules(i)?,
            None => {
                let tree = repo.commit_tree_id(parent)?;
                match outside.get(&tree) {
                    Some(rules) => rules.clone(),
                    None => {
                        let rules = Rc::new(tree_rules(repo, tree, available)?);
                        outside.insert(tree, rules.clone());
                        rules
                    }
                }
            }
        };
        let now = walk.full_rules(at)?;
        let label = Some(commit.to_string());
        findings.extend(weakened(&now, &before, approvals, label.clone()));
        for (path, old, new) in repo.changed_files(Some(parent), *commit)? {
            let (Some(old), Some(new)) = (old, new) else {
                continue;
            };
            // Plaintext where the rules still seal is a `plaintext` finding.
            // Plaintext where the rules (or the base's) still seal is a
            // `plaintext` finding already, or approved.
            if now.requires_seal(&path) || context.base.is_some_and(|b| b.requires_seal(&path)) {
                continue;
            }
            let is_envelope = |id: Oid| -> Result<bool, RepoError> {
                match walk.blob_seen.get(&id) {
                    Some(&i) => Ok(matches!(facts[i].form, Form::Envelope { .. })),
                    None => repo.with_blob(id, envelope::is_envelope),
                }
            };
            if !is_envelope(old)? || is_envelope(new)? || approvals.get().unseal(&path) {
                continue;
            }
            findings.push(Finding {
                commit: label.clone(),
                path: path.clone(),
                kind: Kind::Unsealed,
                message: unsealed_message(&path),
            });
        }
    }
    Ok(findings)
}

/// What `check_commits` judges by besides each commit's own rules.
#[derive(Debug, Default)]
pub struct Context<'a> {
    /// Rules that hold whatever a commit carries (the server's current
    /// ones, for a push): the stricter of the two applies.
    pub base: Option<&'a Rules>,
    /// The audit chain whose `unseal-path` and `policy` entries approve
    /// unsealing and weakening (default: this repository's).
    pub chain: Option<Oid>,
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
    /// What needs attention but is not wrong ([`Kind::is_warning`]),
    /// judged on the range's tips: never a reason to fail.
    pub warnings: Vec<Finding>,
    /// Findings a trusted signer accepted (`accept-finding` entries in the
    /// audit chain): reported, never a reason to fail.
    pub accepted: Vec<Accepted>,
    /// The range reaches where a shallow clone's history is cut off, so
    /// the commits before it were not checked.
    pub shallow: bool,
    /// Those commits (whose parents are missing here), full ids.
    pub shallow_boundary: Vec<String>,
    /// No findings (warnings and accepted findings do not count).
    pub ok: bool,
}

/// Check every commit reachable from `include` and not from `exclude`.
pub fn check_commits(
    repo: &Repo,
    range: &str,
    include: &[Oid],
    exclude: &[Oid],
    threads: usize,
    context: &Context<'_>,
) -> Result<Report, RepoError> {
    let commits = repo.commits_between(include, exclude)?;
    let available = crate::keys::kids_here();
    let mut walk = Walk::new(repo, &available);
    let progress = crate::progress::Progress::new("check", commits.len(), "commits");
    for (at, commit) in commits.iter().enumerate() {
        walk.commit(at, *commit)?;
        progress.step();
    }
    progress.finish();
    let facts = read_blobs(repo, &walk.blobs, threads)?;
    let mut findings = std::mem::take(&mut walk.findings);
    let mut approvals = Lazy::new(
        repo,
        context.chain.or_else(|| crate::audit::chain::tip(repo)),
    );
    for pair in &walk.pairs {
        let rules = &walk.rules[pair.rules];
        // The stricter of the commit's rules and the base's, where a
        // trusted signer has not approved unsealing the path.
        let sealed = rules.requires_seal(&pair.path)
            || context.base.is_some_and(|b| b.requires_seal(&pair.path))
                && !approvals.get().unseal(&pair.path);
        let mut found = rules.judge(&pair.path, &facts[pair.blob], sealed, Place::History);
        if pair.link {
            found = rules::for_link(&pair.path, found);
        }
        for (kind, message) in found {
            findings.push(Finding {
                commit: Some(commits[pair.commit].to_string()),
                path: pair.path.clone(),
                kind,
                message,
            });
        }
    }
    findings.extend(stays_sealed(
        repo,
        &commits,
        &mut walk,
        &facts,
        &available,
        context,
        &mut approvals,
    )?);
    let (mut findings, mut accepted) = if findings.is_empty() {
        (findings, Vec::new())
    } else {
        accepted::set_aside(repo, &commits, &walk, findings, approvals.get())?
    };
    // Rule-file problems were found while walking, blob findings after:
    // order them by commit as the walk met them.
    let order: HashMap<String, usize> = commits
        .iter()
        .enumerate()
        .map(|(i, c)| (c.to_string(), i))
        .collect();
    findings.sort_by_key(|f| f.commit.as_ref().map(|c| order[c]));
    accepted.sort_by_key(|a| a.finding.commit.as_ref().map(|c| order[c]));
    let cut = repo.shallow_commits()?;
    let shallow_boundary: Vec<String> = commits
        .iter()
        .filter(|c| cut.contains(c))
        .map(Oid::to_string)
        .collect();
    let warnings = tips::warnings(
        repo,
        include,
        &commits,
        &walk,
        &facts,
        &available,
        std::time::SystemTime::now(),
    )?;
    Ok(Report {
        range: range.to_owned(),
        commits: commits.len(),
        blobs: walk.blobs.len(),
        ok: findings.is_empty(),
        findings,
        warnings,
        accepted,
        shallow: !shallow_boundary.is_empty(),
        shallow_boundary,
    })
}

/// Check what `spec` names: a range or revision of commits (their whole
/// history), or a reference to a tree or a blob (that object).
pub fn check_revision(repo: &Repo, spec: &str, threads: usize) -> Result<Report, RepoError> {
    match repo.resolve_range(spec) {
        Ok((include, exclude)) => {
            check_commits(repo, spec, &include, &exclude, threads, &Context::default())
        }
        Err(range_error) => {
            let findings = match repo.peel(repo.resolve_object(spec)?)? {
                Some((crate::repo::ObjectKind::Tree, tree)) => check_tree(repo, spec, tree, None)?,
                Some((crate::repo::ObjectKind::Blob, blob)) => check_blob(repo, spec, blob, None)?,
                _ => return Err(range_error),
            };
            Ok(Report {
                range: spec.to_owned(),
                commits: 0,
                blobs: 0,
                ok: findings.is_empty(),
                findings,
                warnings: Vec::new(),
                accepted: Vec::new(),
                shallow: false,
                shallow_boundary: Vec::new(),
            })
        }
    }
}

/// Check a tree that a reference names directly (a tag or a branch pointing
/// at a tree, not a commit): every blob under it, each path judged by the
/// stricter of the tree's own rules and `base` (say, the server's current
/// rules), so a tree without `.seal/` cannot switch sealing off. `label`
/// names the reference in findings.
pub(crate) fn check_tree(
    repo: &Repo,
    label: &str,
    tree: Oid,
    base: Option<&Rules>,
) -> Result<Vec<Finding>, RepoError> {
    let own = tree_rules(repo, tree, &crate::keys::kids_here())?;
    let mut findings: Vec<Finding> = own
        .problems()
        .iter()
        .map(|(path, message)| Finding {
            commit: Some(label.to_owned()),
            path: path.clone(),
            kind: Kind::BadPolicy,
            message: message.clone(),
        })
        .collect();
    for (path, blob) in repo.tree_blobs(tree)? {
        let sealed = own.requires_seal(&path) || base.is_some_and(|b| b.requires_seal(&path));
        let facts = repo.with_blob(blob, BlobFacts::of)?;
        for rules in std::iter::once(&own).chain(base) {
            for (kind, message) in rules.judge(&path, &facts, sealed, Place::History) {
                let finding = Finding {
                    commit: Some(label.to_owned()),
                    path: path.clone(),
                    kind,
                    message,
                };
                if !findings.contains(&finding) {
                    findings.push(finding);
                }
            }
        }
    }
    Ok(findings)
}

/// Check a blob that a reference names directly: it has no path, so only
/// what holds anywhere applies (no private key material).
pub(crate) fn check_blob(
    repo: &Repo,
    label: &str,
    blob: Oid,
    base: Option<&Rules>,
) -> Result<Vec<Finding>, RepoError> {
    let empty;
    let rules = match base {
        Some(rules) => rules,
        None => {
            empty = Rules::from_files(None, None, Vec::new(), &crate::keys::kids_here());
            &empty
        }
    };
    let facts = repo.with_blob(blob, BlobFacts::of)?;
    Ok(rules
        .judge("", &facts, false, Place::History)
        .into_iter()
        .map(|(kind, message)| Finding {
            commit: Some(label.to_owned()),
            path: format!("(blob {blob})"),
            kind,
            message,
        })
        .collect())
}

/// What arrived in a merge, checkout or rewrite: the files that differ
/// between `old` (`None`: nothing) and `new`, judged by `new`'s rules.
#[derive(Debug, Default)]
pub struct Arrivals {
    /// Arrived paths that must be sealed.
    pub sealed: usize,
    pub findings: Vec<Finding>,
}

pub(crate) fn check_arrivals(
    repo: &Repo,
    old: Option<Oid>,
    new: Oid,
) -> Result<Arrivals, RepoError> {
    let rules = tree_rules(repo, repo.commit_tree_id(new)?, &crate::keys::kids_here())?;
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
/// the rules (`.seal/policy.json`, `.gitattributes`, `.seal/keys/`), and
/// the blobs staged at the paths in `also` whatever HEAD holds (the files
/// the pre-commit framework names: every tracked file under `--all-files`,
/// so a plaintext secret already committed is found).
pub(crate) fn check_index(
    repo: &Repo,
    also: &std::collections::HashSet<&str>,
) -> Result<Vec<Finding>, RepoError> {
    let available = crate::keys::kids_here();
    let opener = crate::keys::here().ok();
    // A nested `.gitattributes` is a rule file too: it can narrow what
    // the root one seals.
    let is_rule_file = |p: &str| {
        p == policy::PATH
            || p == ".gitattributes"
            || p.ends_with("/.gitattributes")
            || p.starts_with(".seal/keys/")
    };
    // What differs from HEAD, by Git's own tree-to-index comparison (no
    // map of HEAD's whole tree).
    let index_changes = repo.index_changes()?;
    let head = repo.head_tree_id()?;
    let (entries, links, changes) = match (index_changes, head) {
        // The usual commit: the rules are HEAD's, and only what changed
        // is judged, so the index need not be read whole.
        (Some(index_changes), Some(tree))
            if also.is_empty() && !index_changes.iter().any(|c| is_rule_file(&c.path)) =>
        {
            let mut entries = head_rule_files(repo, tree)?;
            entries.extend(
                index_changes
                    .iter()
                    .filter_map(|c| Some((c.path.clone(), c.after?))),
            );
            let links = index_changes
                .iter()
                .filter(|c| c.link)
                .map(|c| c.path.clone())
                .collect();
            let changes = index_changes
                .into_iter()
                .map(|c| (c.path, c.before))
                .collect();
            (entries, links, changes)
        }
        (index_changes, _) => {
            let entries = repo.index_blobs()?;
            let changes: HashMap<String, Option<Oid>> = match index_changes {
                Some(changes) => changes.into_iter().map(|c| (c.path, c.before)).collect(),
                // No HEAD: everything is new.
                None => entries.iter().map(|(p, _)| (p.clone(), None)).collect(),
            };
            (entries, repo.index_links()?, changes)
        }
    };
    let staged = |path: &str| entries.iter().find(|(p, _)| p == path).map(|(_, id)| *id);
    let read = |id: Oid| repo.with_blob(id, <[u8]>::to_vec);
    let mut records = Vec::new();
    for (path, id) in &entries {
        if path.starts_with(".seal/keys/") && path.ends_with(".json") {
            records.push((PathBuf::from(path), read(*id)?));
        }
    }
    let rules = Rules::from_files(
        staged(policy::PATH).map(read).transpose()?.as_deref(),
        staged(".gitattributes").map(read).transpose()?.as_deref(),
        records,
        &available,
    );
    // With the staged nested `.gitattributes` files, as `check` will read
    // this commit. When the commit changes no rule file, `entries` holds
    // none of them, as HEAD's rules below do not: the two are the same.
    let rules = rules::add_nested(
        repo,
        rules,
        entries
            .iter()
            .filter_map(|(path, id)| Some((path.strip_suffix("/.gitattributes")?, *id))),
    )?;
    let mut findings: Vec<Finding> = rules
        .problems()
        .iter()
        .map(|(path, message)| Finding {
            commit: None,
            path: path.clone(),
            kind: Kind::BadPolicy,
            message: format!("{message}; fix it and `git add {path}`"),
        })
        .collect();
    let mut approvals = Lazy::new(repo, crate::audit::chain::tip(repo));
    if let Some(tree) = head {
        // HEAD's nested `.gitattributes` are the index's, but for what
        // the commit changes: no walk of HEAD's whole tree.
        let nested = entries
            .iter()
            .filter(|(path, _)| !changes.contains_key(path))
            .map(|(path, id)| (path.as_str(), *id))
            .chain(
                changes
                    .iter()
                    .filter_map(|(path, before)| Some((path.as_str(), (*before)?))),
            );
        let before = rules::rules_with_nested(repo, tree, nested, &available)?;
        findings.extend(weakened(&rules, &before, &mut approvals, None));
    }
    // Entries unchanged since HEAD were judged when HEAD was committed,
    // unless the rules changed: then every entry is judged again.
    let rules_changed = changes.keys().any(|p| is_rule_file(p));
    // HEAD's blob at `path`, whose staged blob is `id`.
    let head_blob = |path: &str, id: Oid| -> Option<Oid> {
        match changes.get(path) {
            Some(before) => *before,
            None => Some(id), // unchanged since HEAD
        }
    };
    let mut facts_of: HashMap<Oid, BlobFacts> = HashMap::new();
    for (path, id) in &entries {
        let before = head_blob(path, *id);
        let before = before.as_ref();
        if before == Some(id) && !rules_changed && !also.contains(path.as_str()) {
            continue;
        }
        // Git's attributes too: they see nested `.gitattributes` files.
        let sealed = rules.requires_seal_or(path, |path| repo.has_seal_filter(path))?;
        if !facts_of.contains_key(id) {
            facts_of.insert(*id, repo.with_blob(*id, BlobFacts::of)?);
        }
        let facts = &facts_of[id];
        let mut found = rules.judge(path, facts, sealed, Place::Index);
        // A staged envelope must open where a key for it is here: one
        // spliced from two envelopes (partial staging) or damaged in some
        // other way parses, but opens for nobody.
        if let (Form::Envelope { kids, .. }, Some(keys)) = (&facts.form, &opener) {
            if before != Some(id) && kids.iter().any(|k| available.contains(k)) {
                let text = read(*id)?;
                match crate::keys::open_bytes(&text, keys) {
                    Ok(_) | Err(crate::keys::OpenError::NoUsableKey { .. }) => {}
                    Err(e) => found.push((
                        Kind::MalformedEnvelope,
                        format!("is an envelope that does not open ({e}); restore it with `git checkout HEAD -- {path}`, or unlock and `git add {path}` from its plaintext"),
                    )),
                }
            }
        }
        if links.contains(path) {
            found = rules::for_link(path, found);
        }
        if facts.form == Form::Plain && !sealed {
            if let Some(before) = before {
                if repo.with_blob(*before, envelope::is_envelope)? && !approvals.get().unseal(path)
                {
                    found.push((Kind::Unsealed, unsealed_message(path)));
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
