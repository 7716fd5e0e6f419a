//! Git access: the only module that uses `git2`. It reads the index, HEAD,
//! blobs, attributes and config, and never runs filters. Work that needs
//! Git's porcelain (checkout through our filter, index updates, fetch and
//! push) runs the `git` binary through [`command::Git`], bound to this
//! repository.

pub mod command;
pub mod history;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use git2::{AttrCheckFlags, ConfigLevel, ObjectType, Repository};

pub use git2::Oid;

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("not inside a Git repository ({}); run this in a repository's work tree", path.display())]
    NotARepo { path: PathBuf },
    #[error("{what} needs a work tree, and {} is a bare repository", path.display())]
    Bare { what: &'static str, path: PathBuf },
    /// libgit2's message only: its `class=…; code=…` tail means nothing
    /// to a user.
    #[error("git: {}", .0.message())]
    Git(#[from] git2::Error),
    #[error(transparent)]
    Command(#[from] command::GitCommandError),
}

pub struct Repo {
    inner: Repository,
    /// Opened as Git's environment says (GIT_DIR, and in a pre-receive hook
    /// GIT_OBJECT_DIRECTORY with the pushed objects in quarantine), so that
    /// `reopen` sees the same objects.
    from_env: bool,
    /// Where loose objects are, found once (see [`Repo::loose_path`]).
    objects: std::sync::OnceLock<PathBuf>,
}

impl std::fmt::Debug for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repo")
            .field("git_dir", &self.inner.path())
            .finish_non_exhaustive()
    }
}

impl Repo {
    /// libgit2 re-hashes every object it reads (with collision-detecting
    /// SHA-1) by default; Git itself does not on the read path, and for the
    /// filter that check costs more than the rest of clean. Objects still
    /// come from the repository's own store.
    fn init() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| git2::opts::strict_hash_verification(false));
    }

    pub fn discover(start: &Path) -> Result<Repo, RepoError> {
        Repo::init();
        let inner = Repository::discover(start).map_err(|e| match e.code() {
            git2::ErrorCode::NotFound => RepoError::NotARepo {
                path: start.to_owned(),
            },
            _ => RepoError::Git(e),
        })?;
        Ok(Repo {
            inner,
            from_env: false,
            objects: Default::default(),
        })
    }

    /// Open the repository Git is running us in (GIT_DIR aware).
    pub fn from_env() -> Result<Repo, RepoError> {
        Repo::init();
        let inner = Repository::open_from_env().map_err(|e| match e.code() {
            git2::ErrorCode::NotFound => RepoError::NotARepo {
                path: std::env::current_dir().unwrap_or_default(),
            },
            _ => RepoError::Git(e),
        })?;
        Ok(Repo {
            inner,
            from_env: true,
            objects: Default::default(),
        })
    }

    pub(crate) fn workdir(&self, what: &'static str) -> Result<&Path, RepoError> {
        self.inner.workdir().ok_or_else(|| RepoError::Bare {
            what,
            path: self.inner.path().to_owned(),
        })
    }

    /// The `git` binary, run in this repository (its work tree's top, or
    /// the git dir of a bare repository).
    pub fn git(&self) -> command::Git {
        command::Git::new(self.inner.workdir().unwrap_or(self.inner.path()))
    }

    pub fn is_bare(&self) -> bool {
        self.inner.is_bare()
    }

    /// The git dir of this work tree (`.git/worktrees/NAME` for linked ones).
    pub(crate) fn git_dir(&self) -> &Path {
        self.inner.path()
    }

    /// The git dir shared by all work trees.
    pub(crate) fn common_dir(&self) -> &Path {
        self.inner.commondir()
    }

    pub(crate) fn config_get(&self, key: &str) -> Option<String> {
        self.config().ok()?.get_string(key).ok()
    }

    /// The configuration Git itself would read: libgit2 ignores
    /// `GIT_CONFIG_GLOBAL`, `GIT_CONFIG_SYSTEM` and `GIT_CONFIG_NOSYSTEM`,
    /// so an identity or `core.hooksPath` set through them (as CI and
    /// tests do) would be missed.
    fn config(&self) -> Result<git2::Config, git2::Error> {
        let mut config = self.inner.config()?;
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        if let Some(global) = var("GIT_CONFIG_GLOBAL") {
            config.add_file(Path::new(&global), ConfigLevel::Global, true)?;
        }
        let no_system = var("GIT_CONFIG_NOSYSTEM").is_some_and(|v| v != "0" && v != "false");
        match var("GIT_CONFIG_SYSTEM") {
            _ if no_system => config.add_file(Path::new("/dev/null"), ConfigLevel::System, true)?,
            Some(system) => config.add_file(Path::new(&system), ConfigLevel::System, true)?,
            None => {}
        }
        Ok(config)
    }

    /// Set a key in the repository's own (`.git/config`) configuration.
    pub(crate) fn config_set(&self, key: &str, value: &str) -> Result<(), RepoError> {
        let set = || -> Result<(), git2::Error> {
            let mut local = self.inner.config()?.open_level(ConfigLevel::Local)?;
            local.set_str(key, value)
        };
        match set() {
            Err(e)
                if e.code() == git2::ErrorCode::Locked
                    && remove_stale_lock(&self.common_dir().join("config.lock"), true) =>
            {
                Ok(set()?)
            }
            other => Ok(other?),
        }
    }

    /// Every value of a multi-valued key (e.g. `remote.origin.fetch`).
    pub fn config_get_all(&self, key: &str) -> Vec<String> {
        let Ok(config) = self.config() else {
            return Vec::new();
        };
        let Ok(mut entries) = config.multivar(key, None) else {
            return Vec::new();
        };
        let mut values = Vec::new();
        while let Some(Ok(entry)) = entries.next() {
            if let Some(value) = entry.value() {
                values.push(value.to_owned());
            }
        }
        values
    }

    pub(crate) fn config_set_multivar_once(
        &self,
        key: &str,
        value: &str,
    ) -> Result<bool, RepoError> {
        let local = self.inner.config()?.open_level(ConfigLevel::Local)?;
        let exists = {
            let mut entries = local.multivar(key, None)?;
            let mut found = false;
            while let Some(entry) = entries.next() {
                if entry?.value() == Some(value) {
                    found = true;
                }
            }
            found
        };
        if exists {
            return Ok(false);
        }
        let mut local = local;
        local.set_multivar(key, "^$", value)?;
        Ok(true)
    }

    /// Blob ids of the index's stage-0 entries, by path.
    pub(crate) fn index_entries(&self) -> Result<HashMap<String, Oid>, RepoError> {
        let index = self.inner.index()?;
        Ok(index
            .iter()
            .filter(|e| (e.flags >> 12) & 0x3 == 0)
            .map(|e| (path_text(&e.path), e.id))
            .collect())
    }

    /// The index's paths that are not UTF-8, by their text (U+FFFD for
    /// each byte that is not; the first if several share one).
    pub(crate) fn index_odd_names(&self) -> Result<HashMap<String, Vec<u8>>, RepoError> {
        let index = self.inner.index()?;
        let mut names = HashMap::new();
        for entry in index.iter() {
            if std::str::from_utf8(&entry.path).is_err() {
                names.entry(path_text(&entry.path)).or_insert(entry.path);
            }
        }
        Ok(names)
    }

    /// The blob id of `path`'s stage-0 index entry: one lookup in the
    /// index as libgit2 last read it (see [`Repo::reread_index`]), without
    /// a map of every entry.
    pub(crate) fn index_blob(&self, path: &[u8]) -> Result<Option<Oid>, RepoError> {
        let index = self.inner.index()?;
        Ok(index.get_path(path_of(path), 0).map(|e| e.id))
    }

    /// [`Repo::index_blob`], asked of `git ls-files` (which reads a large
    /// index faster than libgit2 does).
    pub(crate) fn staged_blob(&self, path: &[u8]) -> Result<Option<Oid>, RepoError> {
        let Ok(text) = std::str::from_utf8(path) else {
            return self.index_blob(path);
        };
        let out = self.git().run(&["ls-files", "--stage", "-z", "--", text])?;
        // "<mode> <id> <stage>\t<path>": a directory of that name lists
        // the files under it, which are not `path`.
        Ok(out.stdout.split(|&b| b == 0).find_map(|line| {
            let (meta, name) = line.split_at(line.iter().position(|&b| b == b'\t')?);
            let meta = std::str::from_utf8(meta).ok()?;
            let [_mode, id, "0"] = meta.split(' ').collect::<Vec<_>>()[..] else {
                return None;
            };
            (&name[1..] == path)
                .then(|| Oid::from_str(id).ok())
                .flatten()
        }))
    }

    /// Read the index again if it changed on disk. libgit2's check opens
    /// the file and reads its checksum: per file, 10,000 cleans paid ~0.1 s.
    pub(crate) fn reread_index(&self) -> Result<(), RepoError> {
        self.inner.index()?.read(false)?;
        Ok(())
    }

    /// Every blob path in HEAD's tree with its id (empty before the first commit).
    pub fn head_files(&self) -> Result<Vec<(String, Oid)>, RepoError> {
        let Some(tree) = self.head_tree()? else {
            return Ok(Vec::new());
        };
        self.tree_files(&tree)
    }

    fn head_tree(&self) -> Result<Option<git2::Tree<'_>>, RepoError> {
        match self.head_ref()? {
            Some(head) => Ok(Some(head.peel_to_tree()?)),
            None => Ok(None),
        }
    }

    /// HEAD as a reference (`None` before the first commit).
    fn head_ref(&self) -> Result<Option<git2::Reference<'_>>, RepoError> {
        match self.inner.head() {
            Ok(head) => Ok(Some(head)),
            Err(e)
                if matches!(
                    e.code(),
                    git2::ErrorCode::UnbornBranch | git2::ErrorCode::NotFound
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Every blob under a stored tree, with its path.
    pub(crate) fn tree_blobs(&self, tree: Oid) -> Result<Vec<(String, Oid)>, RepoError> {
        self.tree_files(&self.inner.find_tree(tree)?)
    }

    /// Every blob under the tree a commit or tree id names, with its path.
    pub(crate) fn treeish_blobs(&self, treeish: Oid) -> Result<Vec<(String, Oid)>, RepoError> {
        let tree = self.inner.find_object(treeish, None)?.peel_to_tree()?;
        self.tree_files(&tree)
    }

    /// The object a revision names (a commit, a tag, a tree, a blob).
    pub(crate) fn resolve_object(&self, rev: &str) -> Result<Oid, RepoError> {
        Ok(self.inner.revparse_single(rev)?.id())
    }

    /// What `id` is once annotated tags are peeled: a commit, a tree or a
    /// blob (`None` for anything else).
    pub(crate) fn peel(&self, id: Oid) -> Result<Option<(ObjectKind, Oid)>, RepoError> {
        let mut object = self.inner.find_object(id, None)?;
        loop {
            match object.kind() {
                Some(ObjectType::Tag) => object = object.peel(ObjectType::Any)?,
                Some(ObjectType::Commit) => return Ok(Some((ObjectKind::Commit, object.id()))),
                Some(ObjectType::Tree) => return Ok(Some((ObjectKind::Tree, object.id()))),
                Some(ObjectType::Blob) => return Ok(Some((ObjectKind::Blob, object.id()))),
                _ => return Ok(None),
            }
        }
    }

    /// Every blob under `tree` with its path, in Git's pre-order. Walked
    /// here rather than by libgit2's `Tree::walk`, whose callback gets the
    /// directory as UTF-8 and fails the whole walk on a directory name
    /// that is not.
    fn tree_files(&self, tree: &git2::Tree<'_>) -> Result<Vec<(String, Oid)>, RepoError> {
        fn walk(
            repo: &Repository,
            dir: &str,
            tree: &git2::Tree<'_>,
            files: &mut Vec<(String, Oid)>,
        ) -> Result<(), git2::Error> {
            for entry in tree.iter() {
                let path = format!("{dir}{}", path_text(entry.name_bytes()));
                match entry.kind() {
                    Some(ObjectType::Blob) => files.push((path, entry.id())),
                    Some(ObjectType::Tree) => {
                        walk(
                            repo,
                            &format!("{path}/"),
                            &repo.find_tree(entry.id())?,
                            files,
                        )?;
                    }
                    _ => {}
                }
            }
            Ok(())
        }
        let mut files = Vec::new();
        walk(&self.inner, "", tree, &mut files)?;
        Ok(files)
    }

    pub fn blob(&self, id: Oid) -> Result<Vec<u8>, RepoError> {
        Ok(self.inner.find_blob(id)?.content().to_vec())
    }

    /// Is object `id` in the object database? (A blob id clean computed
    /// for `git status` names content Git hashed but never stored.)
    pub(crate) fn has_object(&self, id: Oid) -> bool {
        self.inner.odb().is_ok_and(|odb| odb.exists(id))
    }

    /// Copy blob `id` to `w`: streamed from a loose object, so a large
    /// blob is not held whole; read whole from a pack (libgit2 streams
    /// loose objects only).
    pub fn copy_blob(&self, id: Oid, w: &mut dyn std::io::Write) -> std::io::Result<()> {
        let odb = self.inner.odb().map_err(std::io::Error::other)?;
        if let Ok((mut reader, _, ObjectType::Blob)) = odb.reader(id) {
            std::io::copy(&mut reader, w)?;
            return Ok(());
        }
        let blob = self.inner.find_blob(id).map_err(std::io::Error::other)?;
        w.write_all(blob.content())
    }

    /// Does `.gitattributes` give `path` the `filter=seal` attribute?
    pub(crate) fn has_seal_filter(&self, path: &str) -> Result<bool, RepoError> {
        let value =
            self.inner
                .get_attr(Path::new(path), "filter", AttrCheckFlags::FILE_THEN_INDEX)?;
        Ok(value == Some("seal"))
    }
}

impl Repo {
    /// The object a reference points at, if it exists.
    pub fn ref_target(&self, name: &str) -> Option<Oid> {
        self.inner.refname_to_id(name).ok()
    }

    /// References whose names match `glob` (e.g. `refs/seal-remote/*/audit`),
    /// with their targets, sorted by name.
    pub(crate) fn refs_matching(&self, glob: &str) -> Result<Vec<(String, Oid)>, RepoError> {
        let mut found = Vec::new();
        for reference in self.inner.references_glob(glob)? {
            let reference = reference?;
            if let (Some(name), Some(id)) = (reference.name(), reference.target()) {
                found.push((name.to_owned(), id));
            }
        }
        found.sort();
        Ok(found)
    }

    /// Names of the configured remotes.
    pub fn remotes(&self) -> Result<Vec<String>, RepoError> {
        Ok(self
            .inner
            .remotes()?
            .iter()
            .flatten()
            .map(str::to_owned)
            .collect())
    }
}

/// Objects and references for the audit chain (`refs/seal/audit`): raw
/// object reads, signed commits, compare-and-swap reference updates.
impl Repo {
    /// Open this repository again (a second handle for another thread:
    /// a libgit2 repository must not be shared between threads).
    pub fn reopen(&self) -> Result<Repo, RepoError> {
        Repo::init();
        let inner = if self.from_env {
            Repository::open_from_env()?
        } else {
            Repository::open(self.inner.path())?
        };
        Ok(Repo {
            inner,
            from_env: self.from_env,
            objects: self.objects.clone(),
        })
    }

    /// Call `f` with an object's raw content (`None` if it is missing or
    /// not of `kind`).
    pub(crate) fn with_raw<R>(
        &self,
        id: Oid,
        kind: RawKind,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<Option<R>, RepoError> {
        let odb = self.inner.odb()?;
        let object = match odb.read(id) {
            Ok(object) => object,
            Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let wanted = match kind {
            RawKind::Commit => ObjectType::Commit,
            RawKind::Tree => ObjectType::Tree,
            RawKind::Blob => ObjectType::Blob,
        };
        if object.kind() != wanted {
            return Ok(None);
        }
        Ok(Some(f(object.data())))
    }

    /// The libgit2 repository, for the few writers that need it whole
    /// (the lifecycle commands' index update).
    pub(crate) fn raw(&self) -> &Repository {
        &self.inner
    }

    pub(crate) fn write_blob(&self, data: &[u8]) -> Result<Oid, RepoError> {
        Ok(retrying_races(|| self.inner.blob(data))?)
    }

    /// Write a tree holding exactly one regular file.
    pub(crate) fn write_one_file_tree(&self, name: &str, blob: Oid) -> Result<Oid, RepoError> {
        let mut builder = self.inner.treebuilder(None)?;
        builder.insert(name, blob, 0o100644)?;
        Ok(retrying_races(|| builder.write())?)
    }

    /// The text of an unsigned commit (what a signature is made over).
    pub(crate) fn commit_buffer(
        &self,
        tree: Oid,
        parents: &[Oid],
        person: (&str, &str),
        unix_time: i64,
        message: &str,
    ) -> Result<String, RepoError> {
        let who = git2::Signature::new(person.0, person.1, &git2::Time::new(unix_time, 0))?;
        let tree = self.inner.find_tree(tree)?;
        let parents = parents
            .iter()
            .map(|id| self.inner.find_commit(*id))
            .collect::<Result<Vec<_>, _>>()?;
        let refs: Vec<&git2::Commit<'_>> = parents.iter().collect();
        let buf = self
            .inner
            .commit_create_buffer(&who, &who, message, &tree, &refs)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    /// Write a commit from `buffer` with `signature` in its `gpgsig` header.
    pub(crate) fn write_signed_commit(
        &self,
        buffer: &str,
        signature: &str,
    ) -> Result<Oid, RepoError> {
        Ok(retrying_races(|| {
            self.inner.commit_signed(buffer, signature, Some("gpgsig"))
        })?)
    }

    /// Point `name` at `new` only if it still points at `expected` (`None`:
    /// only if it does not exist). `Ok(false)` means someone else moved it
    /// first (or holds its lock): read it again and retry.
    pub fn update_ref_cas(
        &self,
        name: &str,
        new: Oid,
        expected: Option<Oid>,
        message: &str,
    ) -> Result<bool, RepoError> {
        let result = match expected {
            Some(old) => self.inner.reference_matching(name, new, true, old, message),
            None => self.inner.reference(name, new, false, message),
        };
        match result {
            Ok(_) => Ok(true),
            Err(e)
                if matches!(
                    e.code(),
                    git2::ErrorCode::Modified | git2::ErrorCode::Exists
                ) =>
            {
                Ok(false)
            }
            Err(e) if e.code() == git2::ErrorCode::Locked => {
                // Held by another writer for a moment, or left by one that
                // was killed: that one is removed, so that a retry can win.
                remove_stale_lock(&self.common_dir().join(format!("{name}.lock")), false);
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Resolve a revision to a commit id.
    pub fn resolve_commit(&self, rev: &str) -> Option<Oid> {
        let object = self.inner.revparse_single(rev).ok()?;
        Some(object.peel_to_commit().ok()?.id())
    }

    /// Is `ancestor` reachable from `descendant` (or the same commit)?
    pub(crate) fn is_ancestor(&self, ancestor: Oid, descendant: Oid) -> Result<bool, RepoError> {
        Ok(ancestor == descendant || self.inner.graph_descendant_of(descendant, ancestor)?)
    }

    pub(crate) fn has_merge_base(&self, one: Oid, two: Oid) -> Result<bool, RepoError> {
        match self.inner.merge_base(one, two) {
            Ok(_) => Ok(true),
            Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// HEAD's commit id and its parents (`None` before the first commit).
    pub fn head_commit(&self) -> Result<Option<(Oid, Vec<Oid>)>, RepoError> {
        let Some(head) = self.head_ref()? else {
            return Ok(None);
        };
        let commit = head.peel_to_commit()?;
        Ok(Some((commit.id(), commit.parent_ids().collect())))
    }

    /// A commit's committer time (seconds since the epoch).
    pub(crate) fn commit_time(&self, commit: Oid) -> Option<i64> {
        Some(
            self.inner
                .find_commit(commit)
                .ok()?
                .committer()
                .when()
                .seconds(),
        )
    }

    /// A commit's parents, first parent first.
    pub(crate) fn parents(&self, commit: Oid) -> Result<Vec<Oid>, RepoError> {
        Ok(self.inner.find_commit(commit)?.parent_ids().collect())
    }

    /// Blob paths that differ between two commits' trees (`None`: the empty
    /// tree), as (path, old blob, new blob).
    #[allow(clippy::type_complexity)]
    pub(crate) fn changed_files(
        &self,
        old: Option<Oid>,
        new: Oid,
    ) -> Result<Vec<(String, Option<Oid>, Option<Oid>)>, RepoError> {
        Ok(self
            .changed_blobs(old, new)?
            .into_iter()
            .map(|(path, old, new)| (path_text(&path), old, new))
            .collect())
    }

    /// [`Repo::changed_files`] with the paths as Git stores them (bytes).
    fn changed_blobs(&self, old: Option<Oid>, new: Oid) -> Result<Vec<ChangedFile>, RepoError> {
        let old_tree = match old {
            Some(id) => Some(self.inner.find_commit(id)?.tree()?),
            None => None,
        };
        let new_tree = self.inner.find_commit(new)?.tree()?;
        let mut files = Vec::new();
        diff_trees(
            &self.inner,
            old_tree.as_ref(),
            Some(&new_tree),
            b"",
            &mut files,
        )?;
        // In path order, as Git lists them.
        files.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(files)
    }

    pub(crate) fn has_remote(&self, name: &str) -> bool {
        self.inner.find_remote(name).is_ok()
    }
}

/// Object kinds `Repo::with_raw` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawKind {
    Commit,
    Tree,
    Blob,
}

/// A path from Git as text: Git's paths are bytes, and a name that is not
/// UTF-8 is still a file like any other (never skipped); its invalid bytes
/// show as U+FFFD.
/// One path whose index entry differs from HEAD ([`Repo::index_changes`]).
#[derive(Debug)]
pub(crate) struct IndexChange {
    pub path: String,
    /// HEAD's blob (`None`: not in HEAD).
    pub before: Option<Oid>,
    /// The staged blob (`None`: removed, or not merged yet).
    pub after: Option<Oid>,
    /// Staged as a symbolic link.
    pub link: bool,
}

/// A file that differs between two trees: its path, and its blob in each
/// (`None`: absent there, or a submodule).
type ChangedFile = (Vec<u8>, Option<Oid>, Option<Oid>);

/// The files that differ between `old` and `new` (either may be absent),
/// under `prefix`. Subtrees with the same id on both sides are skipped
/// without being read, so a commit that changes one file in a large
/// repository costs the trees on that file's path only (libgit2's own
/// tree-to-tree diff reads every subtree of both: 5 ms at 10,000 files).
fn diff_trees(
    repo: &Repository,
    old: Option<&git2::Tree<'_>>,
    new: Option<&git2::Tree<'_>>,
    prefix: &[u8],
    out: &mut Vec<ChangedFile>,
) -> Result<(), git2::Error> {
    /// An entry's id, whether it is a tree, and its mode.
    type Entry = (Oid, bool, i32);
    let entries = |tree: Option<&git2::Tree<'_>>| -> HashMap<Vec<u8>, Entry> {
        tree.map(|t| {
            t.iter()
                .map(|e| {
                    let is_tree = e.kind() == Some(ObjectType::Tree);
                    (e.name_bytes().to_vec(), (e.id(), is_tree, e.filemode()))
                })
                .collect()
        })
        .unwrap_or_default()
    };
    let (before, after) = (entries(old), entries(new));
    let blob = |(id, _, mode): Entry| (mode != 0o160000).then_some(id);
    let mut names: Vec<&Vec<u8>> = before.keys().chain(after.keys()).collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        let (was, now) = (before.get(name).copied(), after.get(name).copied());
        if was.is_some() && was == now {
            continue;
        }
        let path = [prefix, name.as_slice()].concat();
        let tree_of = |e: Option<Entry>| -> Result<Option<git2::Tree<'_>>, git2::Error> {
            match e {
                Some((id, true, _)) => Ok(Some(repo.find_tree(id)?)),
                _ => Ok(None),
            }
        };
        let (old_tree, new_tree) = (tree_of(was)?, tree_of(now)?);
        if old_tree.is_some() || new_tree.is_some() {
            let mut dir = path.clone();
            dir.push(b'/');
            diff_trees(repo, old_tree.as_ref(), new_tree.as_ref(), &dir, out)?;
        }
        // The file (not tree) on each side: a type change is a removal
        // and an addition.
        let file = |e: Option<Entry>| e.filter(|(_, is_tree, _)| !is_tree);
        match (file(was), file(now)) {
            (None, None) => {}
            (old, new) => out.push((path, old.and_then(blob), new.and_then(blob))),
        }
    }
    Ok(())
}

/// The path that `bytes` name (Git's paths are bytes).
fn path_of(bytes: &[u8]) -> &Path {
    use std::os::unix::ffi::OsStrExt;
    Path::new(std::ffi::OsStr::from_bytes(bytes))
}

pub(crate) fn path_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// What a reference can name, once tags are peeled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectKind {
    Commit,
    Tree,
    Blob,
}

/// What a tree entry is, as far as the policy check cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    Blob,
    Tree,
    /// Submodule commits and anything else that is not content here.
    Other,
}

/// One entry of a tree, by name (not full path).
#[derive(Clone, Debug)]
pub struct TreeItem {
    pub name: String,
    pub id: Oid,
    pub kind: EntryKind,
    /// A symbolic link: Git stores its target as the blob, and runs no
    /// filter on it.
    pub link: bool,
}

/// History and object access for `check` and the hooks, which read commits
/// and trees rather than the work tree (so that they also work in a bare
/// repository, e.g. in `pre-receive`).
impl Repo {
    /// The entries of one tree, in Git's order.
    pub(crate) fn tree_items(&self, tree: Oid) -> Result<Vec<TreeItem>, RepoError> {
        let tree = self.inner.find_tree(tree)?;
        Ok(tree
            .iter()
            .map(|e| TreeItem {
                name: String::from_utf8_lossy(e.name_bytes()).into_owned(),
                id: e.id(),
                link: e.filemode() == 0o120000,
                kind: match e.kind() {
                    Some(ObjectType::Blob) => EntryKind::Blob,
                    Some(ObjectType::Tree) => EntryKind::Tree,
                    _ => EntryKind::Other,
                },
            })
            .collect())
    }

    /// The id of the entry at `path` in `tree` (blob or tree), if any.
    pub(crate) fn tree_entry_id(&self, tree: Oid, path: &str) -> Result<Option<Oid>, RepoError> {
        Ok(self.tree_entry(tree, path)?.map(|(id, _)| id))
    }

    /// The blob at `path` in `tree` (`None` if absent or not a blob).
    pub(crate) fn blob_in_tree(
        &self,
        tree: Oid,
        path: impl AsRef<[u8]>,
    ) -> Result<Option<Oid>, RepoError> {
        Ok(self
            .tree_entry(tree, path)?
            .and_then(|(id, kind)| (kind == Some(ObjectType::Blob)).then_some(id)))
    }

    fn tree_entry(
        &self,
        tree: Oid,
        path: impl AsRef<[u8]>,
    ) -> Result<Option<(Oid, Option<ObjectType>)>, RepoError> {
        let tree = self.inner.find_tree(tree)?;
        match tree.get_path(path_of(path.as_ref())) {
            Ok(entry) => Ok(Some((entry.id(), entry.kind()))),
            Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The root tree of a commit.
    pub(crate) fn commit_tree_id(&self, commit: Oid) -> Result<Oid, RepoError> {
        Ok(self.inner.find_commit(commit)?.tree_id())
    }

    /// HEAD's root tree (`None` before the first commit).
    pub(crate) fn head_tree_id(&self) -> Result<Option<Oid>, RepoError> {
        Ok(self.head_tree()?.map(|t| t.id()))
    }

    /// Run `f` on a blob's content without copying it.
    pub fn with_blob<R>(&self, id: Oid, f: impl FnOnce(&[u8]) -> R) -> Result<R, RepoError> {
        Ok(f(self.inner.find_blob(id)?.content()))
    }

    /// `f` of blob `id`'s content, if it is a blob of at most `max` bytes.
    /// A loose object is read here, whole, with plain reads (libgit2 maps
    /// each one into memory, and in a process with threads every unmapping
    /// interrupts the other cores); a packed one (or one in an alternate)
    /// is sized by libgit2 from its header first, which costs no inflating
    /// in a pack.
    pub(crate) fn with_small_blob<R>(
        &self,
        id: Oid,
        max: usize,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Option<R> {
        match read_loose_blob(&self.loose_path(id), max) {
            Loose::Blob(content) => return Some(f(&content)),
            Loose::Other => return None,
            Loose::Absent => {}
        }
        let odb = self.inner.odb().ok()?;
        let (size, kind) = odb.read_header(id).ok()?;
        if kind != ObjectType::Blob || size > max {
            return None;
        }
        let object = odb.read(id).ok()?;
        Some(f(object.data()))
    }

    /// Where object `id` is stored if it is loose: under
    /// `GIT_OBJECT_DIRECTORY` when Git set one (a pre-receive hook's
    /// quarantine), else the common git dir's `objects`.
    fn loose_path(&self, id: Oid) -> PathBuf {
        let objects = self
            .objects
            .get_or_init(|| match std::env::var_os("GIT_OBJECT_DIRECTORY") {
                Some(dir) if self.from_env && !dir.is_empty() => PathBuf::from(dir),
                _ => self.inner.commondir().join("objects"),
            });
        let hex = id.to_string();
        objects.join(format!("{}/{}", &hex[..2], &hex[2..]))
    }

    /// Resolve a revision (`HEAD`, a branch, an id) to a commit id, failing
    /// with Git's message when it does not name a commit.
    pub(crate) fn peel_commit(&self, rev: &str) -> Result<Oid, RepoError> {
        Ok(self.inner.revparse_single(rev)?.peel_to_commit()?.id())
    }

    /// A revision range as (include, exclude) commit ids: `A..B`, `A...B`
    /// (both sides minus their merge base) or a single revision (all of its
    /// history).
    pub fn resolve_range(&self, spec: &str) -> Result<(Vec<Oid>, Vec<Oid>), RepoError> {
        let revspec = self.inner.revparse(spec)?;
        let peel = |o: Option<&git2::Object<'_>>| -> Result<Option<Oid>, RepoError> {
            match o {
                Some(o) => Ok(Some(o.peel_to_commit()?.id())),
                None => Ok(None),
            }
        };
        let from = peel(revspec.from())?;
        let to = peel(revspec.to())?;
        let mode = revspec.mode();
        if mode.contains(git2::RevparseMode::MERGE_BASE) {
            let (a, b) = (
                from.unwrap_or(self.peel_commit("HEAD")?),
                to.unwrap_or(self.peel_commit("HEAD")?),
            );
            let base = self.inner.merge_base(a, b).ok();
            return Ok((vec![a, b], base.into_iter().collect()));
        }
        if mode.contains(git2::RevparseMode::RANGE) {
            let from = from.map_or_else(|| self.peel_commit("HEAD"), Ok)?;
            let to = to.map_or_else(|| self.peel_commit("HEAD"), Ok)?;
            return Ok((vec![to], vec![from]));
        }
        Ok((from.into_iter().collect(), Vec::new()))
    }

    /// Commits reachable from `include` but not from `exclude`, parents
    /// before children (so the first commit that shows a blob introduced it).
    pub(crate) fn commits_between(
        &self,
        include: &[Oid],
        exclude: &[Oid],
    ) -> Result<Vec<Oid>, RepoError> {
        let mut walk = self.inner.revwalk()?;
        walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::REVERSE)?;
        for id in include {
            walk.push(*id)?;
        }
        for id in exclude {
            walk.hide(*id)?;
        }
        Ok(walk.collect::<Result<Vec<_>, _>>()?)
    }

    /// The commits a shallow clone's history is cut off at (listed in the
    /// git dir's `shallow` file: their parents were not fetched, and Git
    /// treats them as having none); empty in a full clone.
    pub(crate) fn shallow_commits(&self) -> Result<Vec<Oid>, RepoError> {
        if !self.inner.is_shallow() {
            return Ok(Vec::new());
        }
        let file = self.common_dir().join("shallow");
        let text = std::fs::read_to_string(&file)
            .map_err(|e| git2::Error::from_str(&format!("cannot read {}: {e}", file.display())))?;
        Ok(text
            .lines()
            .filter_map(|line| Oid::from_str(line.trim()).ok())
            .collect())
    }

    /// The commits every reference points at (for `new --not --all` in
    /// `pre-receive`); references to non-commits are skipped.
    pub(crate) fn ref_commits(&self) -> Result<Vec<Oid>, RepoError> {
        let mut ids = Vec::new();
        for reference in self.inner.references()? {
            if let Ok(commit) = reference?.peel_to_commit() {
                ids.push(commit.id());
            }
        }
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    /// Stage-0 index entries that are files (no submodule commits), by path.
    /// Index paths that are symbolic links.
    pub(crate) fn index_links(&self) -> Result<std::collections::HashSet<String>, RepoError> {
        let index = self.inner.index()?;
        Ok(index
            .iter()
            .filter(|e| e.mode & 0o170000 == 0o120000)
            .map(|e| path_text(&e.path))
            .collect())
    }

    /// What the index changes from HEAD's tree, by `git diff-index`
    /// (several times faster than reading a large index with libgit2);
    /// `None` when there is no HEAD commit yet.
    pub(crate) fn index_changes(&self) -> Result<Option<Vec<IndexChange>>, RepoError> {
        if self.head_tree_id()?.is_none() {
            return Ok(None);
        }
        let out = self.git().run(&[
            "diff-index",
            "--cached",
            "--raw",
            "-z",
            "--no-renames",
            "--ignore-submodules=none",
            "HEAD",
        ])?;
        let mut changes = Vec::new();
        let mut fields = out.stdout.split(|&b| b == 0);
        while let (Some(meta), Some(path)) = (fields.next(), fields.next()) {
            // ":<old mode> <new mode> <old id> <new id> <status>"
            let meta = String::from_utf8_lossy(meta.strip_prefix(b":").unwrap_or(meta));
            let [old_mode, new_mode, old, new, status] = meta.split(' ').collect::<Vec<_>>()[..]
            else {
                continue;
            };
            let id = |hex: &str, mode: &str| {
                Oid::from_str(hex)
                    .ok()
                    .filter(|id| !id.is_zero() && mode != "160000")
            };
            changes.push(IndexChange {
                path: path_text(path),
                before: id(old, old_mode),
                // An unmerged path has no staged blob yet.
                after: id(new, new_mode).filter(|_| status != "U"),
                link: new_mode == "120000",
            });
        }
        Ok(Some(changes))
    }

    pub(crate) fn index_blobs(&self) -> Result<Vec<(String, Oid)>, RepoError> {
        let index = self.inner.index()?;
        Ok(index
            .iter()
            .filter(|e| (e.flags >> 12) & 0x3 == 0 && e.mode & 0o170000 != 0o160000)
            .map(|e| (path_text(&e.path), e.id))
            .collect())
    }
}

/// `write` (an object write) again, a few times, when it fails in the
/// file system: Git's background `gc --auto` removes a fan-out directory
/// (`objects/a3/`) once it has packed what was in it, and libgit2 may have
/// just made that directory for a new object, whose rename into it then
/// fails. Git's own object writer retries for the same race; writing an
/// object twice is harmless (its name is its content's hash).
pub(crate) fn retrying_races<T>(
    mut write: impl FnMut() -> Result<T, git2::Error>,
) -> Result<T, git2::Error> {
    let mut tries = 0;
    loop {
        match write() {
            Err(e) if e.class() == git2::ErrorClass::Os && tries < 3 => tries += 1,
            done => return done,
        }
    }
}

/// How long a lock file must stay unchanged to count as left by a killed
/// writer: a live one holds it for microseconds.
const STALE_LOCK: std::time::Duration = std::time::Duration::from_millis(250);

/// A lock file (`config.lock`, `refs/….lock`) that a killed writer left
/// behind, removed: one not modified for [`STALE_LOCK`]. With `wait`, a
/// younger one is watched until it is that old (for a single attempt);
/// without, it is left for the caller's next retry, so that live writers
/// racing for the lock cost no sleep. Returns whether one was removed.
fn remove_stale_lock(lock: &Path, wait: bool) -> bool {
    let seen = |path: &Path| {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        let modified = m.modified().ok()?;
        Some((
            (m.ino(), m.len(), modified),
            modified.elapsed().unwrap_or_default(),
        ))
    };
    let Some((before, age)) = seen(lock) else {
        return false;
    };
    if age < STALE_LOCK {
        if !wait {
            return false;
        }
        std::thread::sleep(STALE_LOCK - age);
    }
    seen(lock).is_some_and(|(now, _)| now == before) && std::fs::remove_file(lock).is_ok()
}

enum Loose {
    /// Not stored loose (packed, in an alternate, or missing).
    Absent,
    /// Stored loose, but not a blob of at most the size asked, or damaged.
    Other,
    Blob(Vec<u8>),
}

/// The loose object at `path`, if it is a blob of at most `max` bytes:
/// the file read whole, its `blob <size>\0` header checked, its content
/// inflated into a buffer of exactly that size.
fn read_loose_blob(path: &Path, max: usize) -> Loose {
    use flate2::{Decompress, FlushDecompress, Status};
    use std::io::Read;
    let mut stored = Vec::with_capacity(4096);
    match std::fs::File::open(path) {
        Ok(mut file) => {
            // Deflate grows an incompressible input by a few bytes per
            // block: a small blob's object is never much over `max`.
            if file
                .by_ref()
                .take(max as u64 + 4096)
                .read_to_end(&mut stored)
                .is_err()
            {
                return Loose::Other;
            }
        }
        Err(_) => return Loose::Absent,
    }
    let mut z = Decompress::new(true);
    let mut head = [0u8; 32];
    if z.decompress(&stored, &mut head, FlushDecompress::None)
        .is_err()
    {
        return Loose::Other;
    }
    let head = &head[..z.total_out() as usize];
    let Some(nul) = head.iter().position(|&b| b == 0) else {
        return Loose::Other;
    };
    let size = match std::str::from_utf8(&head[..nul])
        .ok()
        .and_then(|h| h.strip_prefix("blob "))
        .and_then(|n| n.parse::<usize>().ok())
    {
        Some(size) if size <= max => size,
        _ => return Loose::Other,
    };
    // One byte of room past the size: a stream longer than its header
    // says fills it instead of stopping short.
    let mut content = Vec::with_capacity(size + 1);
    content.extend_from_slice(&head[nul + 1..]);
    if content.len() > size {
        return Loose::Other;
    }
    let rest = &stored[z.total_in() as usize..];
    match z.decompress_vec(rest, &mut content, FlushDecompress::Finish) {
        Ok(Status::StreamEnd) if content.len() == size => Loose::Blob(content),
        _ => Loose::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A commit of `files` (path, content, executable), on `parent`.
    fn commit(repo: &Repository, files: &[(&str, &str, bool)], parent: Option<Oid>) -> Oid {
        let mut index = git2::Index::new().unwrap();
        for (path, content, exec) in files {
            let id = repo.blob(content.as_bytes()).unwrap();
            let mut entry = git2::IndexEntry {
                ctime: git2::IndexTime::new(0, 0),
                mtime: git2::IndexTime::new(0, 0),
                dev: 0,
                ino: 0,
                mode: if *exec { 0o100755 } else { 0o100644 },
                uid: 0,
                gid: 0,
                file_size: 0,
                id,
                flags: 0,
                flags_extended: 0,
                path: path.as_bytes().to_vec(),
            };
            entry.flags = path.len().min(0xfff) as u16;
            index.add(&entry).unwrap();
        }
        let tree = repo.find_tree(index.write_tree_to(repo).unwrap()).unwrap();
        let sig = git2::Signature::now("t", "t@example.test").unwrap();
        let parents: Vec<git2::Commit<'_>> = parent
            .map(|p| repo.find_commit(p).unwrap())
            .into_iter()
            .collect();
        let parents: Vec<&git2::Commit<'_>> = parents.iter().collect();
        repo.commit(None, &sig, &sig, "c", &tree, &parents).unwrap()
    }

    /// libgit2's tree-to-tree diff, which `changed_files` replaces.
    fn libgit2_changes(
        repo: &Repository,
        old: Option<Oid>,
        new: Oid,
    ) -> Vec<(String, Option<Oid>, Option<Oid>)> {
        let tree = |c: Oid| repo.find_commit(c).unwrap().tree().unwrap();
        let old = old.map(tree);
        let diff = repo
            .diff_tree_to_tree(old.as_ref(), Some(&tree(new)), None)
            .unwrap();
        let blob = |f: git2::DiffFile<'_>| (!f.id().is_zero()).then(|| f.id());
        diff.deltas()
            .map(|d| {
                let path = d
                    .new_file()
                    .path_bytes()
                    .or(d.old_file().path_bytes())
                    .unwrap();
                (path_text(path), blob(d.old_file()), blob(d.new_file()))
            })
            .collect()
    }

    #[test]
    fn changed_files_lists_what_libgit2s_diff_lists() {
        let dir = tempfile::tempdir().unwrap();
        let raw = Repository::init(dir.path()).unwrap();
        let a = commit(
            &raw,
            &[
                ("a-b", "1", false),
                ("a/x", "2", false),
                ("a/deep/y", "3", false),
                ("same/s", "4", false),
                ("kind", "5", false),
                ("mode", "6", false),
                ("gone/g", "7", false),
            ],
            None,
        );
        let b = commit(
            &raw,
            &[
                ("a-b", "1", false),
                ("a/x", "2 changed", false),
                ("a/deep/y", "3", false),
                ("a/deep/new", "8", false),
                ("same/s", "4", false),
                ("kind/now-a-dir", "5", false),
                ("mode", "6", true),
                ("a.c", "9", false),
            ],
            Some(a),
        );
        let repo = Repo::discover(dir.path()).unwrap();
        for (old, new) in [(Some(a), b), (Some(b), a), (None, b), (Some(a), a)] {
            assert_eq!(
                repo.changed_files(old, new).unwrap(),
                libgit2_changes(&raw, old, new),
                "{old:?} -> {new}"
            );
        }
        assert_eq!(repo.changed_files(Some(a), a).unwrap(), []);
    }

    #[test]
    fn small_blobs_are_read_loose_as_libgit2_reads_them() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let raw = Repository::init(dir.path()).unwrap();
        let repo = Repo::discover(dir.path()).unwrap();
        const MAX: usize = 4096;
        // Bytes that do not compress, so that the stored object is larger
        // than its content.
        let noise = |n: usize| -> Vec<u8> {
            (0..n as u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect()
        };
        for size in [0, 1, 20, 32, 100, MAX - 1, MAX, MAX + 1, 3 * MAX] {
            let content = noise(size);
            let id = raw.blob(&content).unwrap();
            let read = repo.with_small_blob(id, MAX, <[u8]>::to_vec);
            assert_eq!(read, (size <= MAX).then_some(content), "{size} bytes");
            let loose = read_loose_blob(&repo.loose_path(id), MAX);
            match loose {
                Loose::Blob(_) => assert!(size <= MAX, "{size} bytes"),
                Loose::Other => assert!(size > MAX, "{size} bytes"),
                Loose::Absent => panic!("{size} bytes: not read loose"),
            }
        }
        // A tree is not a blob.
        let tree = raw.treebuilder(None).unwrap().write().unwrap();
        assert!(matches!(
            read_loose_blob(&repo.loose_path(tree), MAX),
            Loose::Other
        ));
        assert_eq!(repo.with_small_blob(tree, MAX, <[u8]>::to_vec), None);
        // Packed: libgit2 reads it.
        let packed = raw.blob(b"packed content").unwrap();
        let mut builder = raw.packbuilder().unwrap();
        builder.insert_object(packed, None).unwrap();
        let mut pack = git2::Buf::new();
        builder.write_buf(&mut pack).unwrap();
        let odb = raw.odb().unwrap();
        let mut writer = odb.packwriter().unwrap();
        writer.write_all(&pack).unwrap();
        writer.commit().unwrap();
        std::fs::remove_file(repo.loose_path(packed)).unwrap();
        assert!(matches!(
            read_loose_blob(&repo.loose_path(packed), MAX),
            Loose::Absent
        ));
        assert_eq!(
            repo.with_small_blob(packed, MAX, <[u8]>::to_vec).as_deref(),
            Some(&b"packed content"[..])
        );
        // Damaged objects are refused, not read short or long.
        let stored = |bytes: &[u8]| -> PathBuf {
            let path = dir.path().join("damaged");
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            z.write_all(bytes).unwrap();
            std::fs::write(&path, z.finish().unwrap()).unwrap();
            path
        };
        for bytes in [
            &b"blob 3\0abcd"[..],
            b"blob 5\0abc",
            b"blob 3abc",
            b"blob x\0abc",
            b"tree 3\0abc",
        ] {
            let path = stored(bytes);
            assert!(
                matches!(read_loose_blob(&path, MAX), Loose::Other),
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
        assert!(
            matches!(read_loose_blob(&stored(b"blob 3\0abc"), MAX), Loose::Blob(c) if c == b"abc")
        );
        let whole = std::fs::read(stored(b"blob 3\0abc")).unwrap();
        let path = dir.path().join("damaged");
        std::fs::write(&path, &whole[..whole.len() - 5]).unwrap();
        assert!(matches!(read_loose_blob(&path, MAX), Loose::Other));
        std::fs::write(&path, b"not zlib at all").unwrap();
        assert!(matches!(read_loose_blob(&path, MAX), Loose::Other));
    }
}
