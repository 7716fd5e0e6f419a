//! The history walker behind `check_commits`: every (path, blob) of every
//! commit, each paired with the rules its commit carries, each distinct
//! tree, pair and blob met once; then each distinct blob read once, on
//! reader threads with their own repository handles.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use super::blob::BlobFacts;
use super::finding::{Finding, Kind};
use super::rules::{add_nested, rule_files, Rules};
use crate::kid::Kid;
use crate::repo::{EntryKind, Oid, Repo, RepoError};

/// One (path, blob) to judge: indexes into the walk's commits, rules and
/// blobs.
pub(super) struct Pair {
    pub(super) commit: usize,
    pub(super) rules: usize,
    pub(super) path: String,
    pub(super) blob: usize,
    /// The entry is a symbolic link.
    pub(super) link: bool,
}

/// Nested `.gitattributes` files, as (directory, blob).
type Nested = Rc<[(String, Oid)]>;

pub(super) struct Walk<'a> {
    repo: &'a Repo,
    available: &'a [Kid],
    pub(super) rules: Vec<Rules>,
    /// Each commit's rules (its root rule files), by commit index.
    pub(super) commit_rules: Vec<usize>,
    /// Each commit's nested `.gitattributes` files (directory, blob), by
    /// commit index: with `commit_rules`, all of its attributes.
    commit_nested: Vec<Nested>,
    /// The nested `.gitattributes` files under each tree met (directory
    /// relative to the tree, `""` for its own), so a tree the walk skips
    /// as seen still tells its commit what it holds.
    tree_attributes: HashMap<Oid, Nested>,
    /// A commit's whole rules ([`Walk::full_rules`]) by what they are
    /// made of, built once each.
    full: HashMap<(usize, Nested), Rc<Rules>>,
    /// Blob ids to their index in `blobs`.
    pub(super) blob_seen: HashMap<Oid, usize>,
    rules_by_files: HashMap<[Option<Oid>; 3], usize>,
    /// Rules with a nested `.gitattributes` added: (rules, directory,
    /// blob id) → rules.
    nested: HashMap<(usize, String, Oid), usize>,
    /// (rules, directory path, tree id) already walked.
    seen_trees: HashSet<(usize, String, Oid)>,
    /// (rules, path, blob id) already judged.
    seen_pairs: HashSet<(usize, String, Oid)>,
    pub(super) pairs: Vec<Pair>,
    /// Distinct blob ids in the order first met.
    pub(super) blobs: Vec<Oid>,
    /// Problems with rule files, found as their commits are met.
    pub(super) findings: Vec<Finding>,
}

impl<'a> Walk<'a> {
    pub(super) fn new(repo: &'a Repo, available: &'a [Kid]) -> Walk<'a> {
        Walk {
            repo,
            available,
            rules: Vec::new(),
            commit_rules: Vec::new(),
            commit_nested: Vec::new(),
            tree_attributes: HashMap::new(),
            full: HashMap::new(),
            rules_by_files: HashMap::new(),
            nested: HashMap::new(),
            seen_trees: HashSet::new(),
            seen_pairs: HashSet::new(),
            pairs: Vec::new(),
            blobs: Vec::new(),
            blob_seen: HashMap::new(),
            findings: Vec::new(),
        }
    }

    pub(super) fn commit(&mut self, index: usize, commit: Oid) -> Result<(), RepoError> {
        let tree = self.repo.commit_tree_id(commit)?;
        let files = rule_files(self.repo, tree)?;
        let rules = match self.rules_by_files.get(&files) {
            Some(&at) => at,
            None => {
                let rules = Rules::load(self.repo, &files, self.available)?;
                for (path, message) in rules.problems() {
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
        self.commit_rules.push(rules);
        self.tree(index, rules, String::new(), tree)?;
        let nested: Nested = self.tree_attributes[&tree]
            .iter()
            .filter(|(dir, _)| !dir.is_empty())
            .cloned()
            .collect();
        self.commit_nested.push(nested);
        Ok(())
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
        let items = self.repo.tree_items(tree)?;
        let mut attributes: Vec<(String, Oid)> = Vec::new();
        // A nested .gitattributes governs this directory and everything
        // below it (the root one is part of the commit's rules already).
        let nested = items
            .iter()
            .find(|i| i.name == ".gitattributes" && i.kind == EntryKind::Blob);
        let rules = match nested {
            Some(file) if !dir.is_empty() => self.nested_rules(rules, &dir, file.id)?,
            _ => rules,
        };
        for item in items {
            let name_len = item.name.len();
            let path = if dir.is_empty() {
                item.name
            } else {
                format!("{dir}/{}", item.name)
            };
            match item.kind {
                EntryKind::Tree => {
                    let name = path[path.len() - name_len..].to_owned();
                    self.tree(commit, rules, path, item.id)?;
                    // Relative to this tree: the same tree may sit at
                    // another path in another commit.
                    for (sub, id) in self.tree_attributes[&item.id].iter() {
                        attributes.push(match sub.is_empty() {
                            true => (name.clone(), *id),
                            false => (format!("{name}/{sub}"), *id),
                        });
                    }
                }
                EntryKind::Blob => {
                    if path.ends_with("/.gitattributes") || path == ".gitattributes" {
                        attributes.push((String::new(), item.id));
                    }
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
                        link: item.link,
                    });
                }
                EntryKind::Other => {}
            }
        }
        self.tree_attributes.insert(tree, attributes.into());
        Ok(())
    }
}

impl Walk<'_> {
    /// The rules the walk judged (or would have judged) `path` by in the
    /// commit at `commit` (an index into the walk's commits) whose tree is
    /// `tree`: the commit's rules with each nested `.gitattributes` above
    /// `path` added. Two (commit, path) with the same answer and the same
    /// blob are one pair to the walk, judged once. `None` when a nested
    /// file's rules were never built (the walk did not pass there).
    pub(super) fn rules_at(
        &self,
        commit: usize,
        tree: Oid,
        path: &str,
    ) -> Result<Option<usize>, RepoError> {
        let mut rules = self.commit_rules[commit];
        let mut dirs: Vec<&str> = path.split('/').collect();
        dirs.pop();
        let mut dir = String::new();
        for name in dirs {
            if !dir.is_empty() {
                dir.push('/');
            }
            dir.push_str(name);
            let file = format!("{dir}/.gitattributes");
            if let Some(blob) = self.repo.blob_in_tree(tree, &file)? {
                match self.nested.get(&(rules, dir.clone(), blob)) {
                    Some(&nested) => rules = nested,
                    None => return Ok(None),
                }
            }
        }
        Ok(Some(rules))
    }

    /// All the rules the commit at `commit` (an index into the walk's
    /// commits) carries: its root rule files with every nested
    /// `.gitattributes` file added, as [`super::tree_rules`] reads them.
    /// What "once sealed, stays sealed" compares with the parent's.
    pub(super) fn full_rules(&mut self, commit: usize) -> Result<Rc<Rules>, RepoError> {
        let key = (
            self.commit_rules[commit],
            self.commit_nested[commit].clone(),
        );
        if let Some(rules) = self.full.get(&key) {
            return Ok(rules.clone());
        }
        let root = self.rules[key.0].clone();
        let rules = Rc::new(add_nested(
            self.repo,
            root,
            key.1.iter().map(|(dir, id)| (dir.as_str(), *id)),
        )?);
        self.full.insert(key, rules.clone());
        Ok(rules)
    }

    fn nested_rules(&mut self, rules: usize, dir: &str, file: Oid) -> Result<usize, RepoError> {
        let key = (rules, dir.to_owned(), file);
        if let Some(&at) = self.nested.get(&key) {
            return Ok(at);
        }
        let text = self
            .repo
            .with_blob(file, |b| String::from_utf8_lossy(b).into_owned())?;
        let derived = self.rules[rules].with_attributes(dir, &text);
        self.rules.push(derived);
        self.nested.insert(key, self.rules.len() - 1);
        Ok(self.rules.len() - 1)
    }
}

/// Facts for each blob, read once each, on up to `threads` threads (each
/// with its own repository handle: libgit2 handles are not shared).
pub(super) fn read_blobs(
    repo: &Repo,
    blobs: &[Oid],
    threads: usize,
) -> Result<Vec<BlobFacts>, RepoError> {
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
