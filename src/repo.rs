//! Git access: the only module that uses `git2`. It reads the index, HEAD,
//! blobs, attributes and config; it never runs filters and never shells out
//! (commands that need Git's porcelain, such as checkout, run `git` in
//! `cli/`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use git2::{AttrCheckFlags, ConfigLevel, ObjectType, Repository, TreeWalkMode, TreeWalkResult};

pub use git2::Oid;

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("not inside a Git repository ({}); run this in a repository's work tree", path.display())]
    NotARepo { path: PathBuf },
    #[error("{what} needs a work tree, and {} is a bare repository", path.display())]
    Bare { what: &'static str, path: PathBuf },
    #[error("git: {0}")]
    Git(#[from] git2::Error),
}

pub struct Repo {
    inner: Repository,
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
        Ok(Repo { inner })
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
        Ok(Repo { inner })
    }

    pub fn workdir(&self, what: &'static str) -> Result<&Path, RepoError> {
        self.inner.workdir().ok_or_else(|| RepoError::Bare {
            what,
            path: self.inner.path().to_owned(),
        })
    }

    pub fn is_bare(&self) -> bool {
        self.inner.is_bare()
    }

    /// The git dir of this work tree (`.git/worktrees/NAME` for linked ones).
    pub fn git_dir(&self) -> &Path {
        self.inner.path()
    }

    /// The git dir shared by all work trees.
    pub fn common_dir(&self) -> &Path {
        self.inner.commondir()
    }

    pub fn config_get(&self, key: &str) -> Option<String> {
        self.inner.config().ok()?.get_string(key).ok()
    }

    pub fn config_get_bool(&self, key: &str) -> Option<bool> {
        self.inner.config().ok()?.get_bool(key).ok()
    }

    /// Set a key in the repository's own (`.git/config`) configuration.
    pub fn config_set(&self, key: &str, value: &str) -> Result<(), RepoError> {
        let mut local = self.inner.config()?.open_level(ConfigLevel::Local)?;
        local.set_str(key, value)?;
        Ok(())
    }

    pub fn config_set_multivar_once(&self, key: &str, value: &str) -> Result<bool, RepoError> {
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
    pub fn index_entries(&self) -> Result<HashMap<String, Oid>, RepoError> {
        let index = self.inner.index()?;
        Ok(index
            .iter()
            .filter(|e| (e.flags >> 12) & 0x3 == 0)
            .filter_map(|e| Some((String::from_utf8(e.path).ok()?, e.id)))
            .collect())
    }

    /// Every blob path in HEAD's tree with its id (empty before the first commit).
    pub fn head_files(&self) -> Result<Vec<(String, Oid)>, RepoError> {
        let Some(tree) = self.head_tree()? else {
            return Ok(Vec::new());
        };
        self.tree_files(&tree)
    }

    pub fn head_blob_id(&self, path: &str) -> Result<Option<Oid>, RepoError> {
        let Some(tree) = self.head_tree()? else {
            return Ok(None);
        };
        match tree.get_path(Path::new(path)) {
            Ok(entry) if entry.kind() == Some(ObjectType::Blob) => Ok(Some(entry.id())),
            Ok(_) => Ok(None),
            Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn head_tree(&self) -> Result<Option<git2::Tree<'_>>, RepoError> {
        match self.inner.head() {
            Ok(head) => Ok(Some(head.peel_to_tree()?)),
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

    fn tree_files(&self, tree: &git2::Tree<'_>) -> Result<Vec<(String, Oid)>, RepoError> {
        let mut files = Vec::new();
        tree.walk(TreeWalkMode::PreOrder, |dir, entry| {
            if entry.kind() == Some(ObjectType::Blob) {
                if let Some(name) = entry.name() {
                    files.push((format!("{dir}{name}"), entry.id()));
                }
            }
            TreeWalkResult::Ok
        })?;
        Ok(files)
    }

    pub fn blob(&self, id: Oid) -> Result<Vec<u8>, RepoError> {
        Ok(self.inner.find_blob(id)?.content().to_vec())
    }

    /// Does `.gitattributes` give `path` the `filter=seal` attribute?
    pub fn has_seal_filter(&self, path: &str) -> Result<bool, RepoError> {
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
}
