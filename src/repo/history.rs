//! History reads for `git seal review`, with paths as Git's bytes (a name
//! that is not UTF-8 is a path like any other, and two such names never
//! collapse into one): what a revision range names, what changed between
//! two trees, and every blob some paths held in a commit's ancestry, found
//! in one walk for all of them. Nothing here decides what a blob is.

use std::collections::{HashMap, HashSet};

use git2::{ObjectType, RevparseMode, Sort};

use super::{Oid, Repo, RepoError};

/// What a revision argument names, as Git users read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RevSpec {
    /// One revision: `REV`.
    Single(Oid),
    /// `A..B`: B's tree against A's.
    Range { from: Oid, to: Oid },
    /// `A...B`: B's tree against the merge base of A and B (`None`: the
    /// two have no common commit).
    MergeBase {
        from: Oid,
        to: Oid,
        base: Option<Oid>,
    },
}

/// One path whose blob differs between two trees (`None`: absent, or not
/// a blob there, such as a submodule).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub path: Vec<u8>,
    pub old: Option<Oid>,
    pub new: Option<Oid>,
}

impl Repo {
    /// Parse `spec` as `git diff` and `git show` read it; each side must
    /// name a commit (a missing side of `A..` or `..B` is HEAD).
    pub(crate) fn rev_spec(&self, spec: &str) -> Result<RevSpec, RepoError> {
        let revspec = self.inner.revparse(spec)?;
        let commit = |o: Option<&git2::Object<'_>>| -> Result<Oid, RepoError> {
            match o {
                Some(o) => Ok(o.peel_to_commit()?.id()),
                None => self.peel_commit("HEAD"),
            }
        };
        let (from, to) = (commit(revspec.from())?, commit(revspec.to())?);
        let mode = revspec.mode();
        if mode.contains(RevparseMode::MERGE_BASE) {
            return Ok(RevSpec::MergeBase {
                from,
                to,
                base: self.merge_base(from, to)?,
            });
        }
        if mode.contains(RevparseMode::RANGE) {
            return Ok(RevSpec::Range { from, to });
        }
        Ok(RevSpec::Single(from))
    }

    /// The best common ancestor of two commits, if they have one.
    pub(crate) fn merge_base(&self, one: Oid, two: Oid) -> Result<Option<Oid>, RepoError> {
        match self.inner.merge_base(one, two) {
            Ok(base) => Ok(Some(base)),
            Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// A commit's first parent (`None` for a root commit).
    pub(crate) fn first_parent(&self, commit: Oid) -> Result<Option<Oid>, RepoError> {
        Ok(self.parents(commit)?.first().copied())
    }

    /// The upstream of the branch HEAD is on (`@{upstream}`), as its short
    /// name and commit; `None` on a detached HEAD or a branch without one.
    pub(crate) fn head_upstream(&self) -> Result<Option<(String, Oid)>, RepoError> {
        let Some(head) = self.head_ref()?.filter(git2::Reference::is_branch) else {
            return Ok(None);
        };
        let upstream = match git2::Branch::wrap(head).upstream() {
            Ok(upstream) => upstream,
            Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let name = super::path_text(upstream.name_bytes()?);
        Ok(Some((name, upstream.get().peel_to_commit()?.id())))
    }

    /// Blobs that differ between two commits' trees (`None`: the empty
    /// tree), in Git's path order. No rename detection: a moved file is
    /// one path removed and another added.
    pub(crate) fn tree_changes(
        &self,
        old: Option<Oid>,
        new: Oid,
    ) -> Result<Vec<Change>, RepoError> {
        let mut changes: Vec<Change> = self
            .changed_blobs(old, new)?
            .into_iter()
            .filter(|(_, old, new)| old != new)
            .map(|(path, old, new)| Change { path, old, new })
            .collect();
        // A path whose type changed (a file that became a link) comes as
        // a removal and an addition: one change.
        changes.dedup_by(|later, first| {
            let same = later.path == first.path;
            if same {
                first.old = first.old.or(later.old);
                first.new = first.new.or(later.new);
            }
            same
        });
        Ok(changes)
    }

    /// Every blob under a commit's tree whose id is one of `wanted`, with
    /// its path; subtrees are read once each.
    pub(crate) fn blob_paths_in(
        &self,
        commit: Oid,
        wanted: &HashSet<Oid>,
    ) -> Result<Vec<(Vec<u8>, Oid)>, RepoError> {
        let mut found = Vec::new();
        if wanted.is_empty() {
            return Ok(found);
        }
        let mut stack = vec![(Vec::new(), self.inner.find_commit(commit)?.tree_id())];
        while let Some((dir, tree)) = stack.pop() {
            for entry in self.inner.find_tree(tree)?.iter() {
                let mut path = dir.clone();
                path.extend_from_slice(entry.name_bytes());
                match entry.kind() {
                    Some(ObjectType::Tree) => {
                        path.push(b'/');
                        stack.push((path, entry.id()));
                    }
                    Some(ObjectType::Blob) if wanted.contains(&entry.id()) => {
                        found.push((path, entry.id()));
                    }
                    _ => {}
                }
            }
        }
        found.sort();
        Ok(found)
    }

    /// For each of `paths`, every blob it held in `start` or any commit
    /// `start` reaches, with the newest commit (in Git's topological,
    /// newest-first order) that held it.
    ///
    /// One walk serves all the paths: each commit's root tree is read, and
    /// below it only the trees along the paths, each (directory, tree id)
    /// once. A subtree that did not change since a commit already walked
    /// is skipped, so the walk costs about one tree read per commit plus
    /// one per change to the paths' directories, not commits × paths.
    pub(crate) fn path_blobs_in_history(
        &self,
        start: Oid,
        paths: &[&[u8]],
    ) -> Result<Vec<HashMap<Oid, Oid>>, RepoError> {
        let trie = PathTrie::new(paths);
        let mut found = vec![HashMap::new(); paths.len()];
        if paths.is_empty() {
            return Ok(found);
        }
        let mut walk = self.inner.revwalk()?;
        walk.set_sorting(Sort::TOPOLOGICAL | Sort::TIME)?;
        walk.push(start)?;
        let mut seen: HashSet<(usize, Oid)> = HashSet::new();
        for commit in walk {
            let commit = commit?;
            let mut stack = vec![(0, self.inner.find_commit(commit)?.tree_id())];
            while let Some((node, tree)) = stack.pop() {
                if !seen.insert((node, tree)) {
                    continue;
                }
                let tree = self.inner.find_tree(tree)?;
                let children = &trie.nodes[node].children;
                // Look the wanted names up, or go through the tree's
                // entries once when they are fewer.
                let entries: Vec<(usize, git2::TreeEntry<'_>)> = if children.len() <= tree.len() {
                    children
                        .iter()
                        .filter_map(|(name, child)| Some((*child, tree.get_name_bytes(name)?)))
                        .collect()
                } else {
                    tree.iter()
                        .filter_map(|entry| Some((*children.get(entry.name_bytes())?, entry)))
                        .collect()
                };
                for (child, entry) in entries {
                    let child_node = &trie.nodes[child];
                    match entry.kind() {
                        Some(ObjectType::Tree) if !child_node.children.is_empty() => {
                            stack.push((child, entry.id()));
                        }
                        Some(ObjectType::Blob) => {
                            if let Some(at) = child_node.path {
                                found[at].entry(entry.id()).or_insert(commit);
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        Ok(found)
    }
}

/// Paths as a tree of their components, so that paths in one directory
/// share the reads of that directory.
struct PathTrie {
    nodes: Vec<TrieNode>,
}

#[derive(Default)]
struct TrieNode {
    children: HashMap<Vec<u8>, usize>,
    /// The index (in the caller's list) of the path ending here.
    path: Option<usize>,
}

impl PathTrie {
    fn new(paths: &[&[u8]]) -> PathTrie {
        let mut nodes = vec![TrieNode::default()];
        for (at, path) in paths.iter().enumerate() {
            let mut node = 0;
            for name in path.split(|b| *b == b'/') {
                node = match nodes[node].children.get(name) {
                    Some(&child) => child,
                    None => {
                        nodes.push(TrieNode::default());
                        let child = nodes.len() - 1;
                        nodes[node].children.insert(name.to_vec(), child);
                        child
                    }
                };
            }
            nodes[node].path = Some(at);
        }
        PathTrie { nodes }
    }
}
