//! The filter: what `clean` (work tree → repository) and `smudge`
//! (repository → work tree) do to one file, with the repository state and
//! keys loaded once per Git command. `process` speaks Git's long-running
//! protocol around it; `git seal clean|smudge` run it once.
//!
//! Rules (SPEC §4): clean never stores plaintext (no KEK → error), passes
//! envelopes through, and returns the existing envelope when the plaintext is
//! unchanged. Smudge never fails a checkout and never writes partial
//! plaintext: without a key, or with a damaged envelope, the envelope stays.
//!
//! This file holds what both directions share (the project, the keys, the
//! clean cache, the blobs this process has seen); `clean` seals, `smudge`
//! opens, `wraps` prepares wrap keys ahead.

pub mod cache;
mod clean;
pub mod eager;
pub mod pktline;
mod prefetch;
pub mod process;
mod smudge;
mod wraps;

use std::cell::OnceCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::keys::{self, KeyProvider};
use crate::repo::{Oid, Repo};
use crate::workspace::{Workspace, PROVIDER_KEY};
use cache::CleanCache;
pub use clean::STREAM_MIN;
pub(crate) use smudge::open_work;
pub use smudge::{Opened, Prepared, Smudged, Work};

/// File in a work tree's git dir that marks it locked by `git seal lock`:
/// smudge then leaves envelopes as they are until `git seal unlock`.
const LOCK_MARKER: &str = "seal-locked";
/// File in a work tree's git dir that says smudge left an envelope sealed
/// there (no key, a damaged envelope, or one bound to another path), so
/// that the hooks look for files to unlock after a checkout only when
/// there may be some: looking reads every sealed file.
const LEFT_SEALED_MARKER: &str = "seal-left-sealed";

pub struct Filter {
    project: Result<Workspace, String>,
    /// Keys for smudge when the project could not be loaded (e.g. `.seal/`
    /// not checked out yet): smudge needs only keys, never the metadata.
    fallback_keys: Option<Arc<dyn KeyProvider>>,
    /// Serving Git's long-running protocol (many files), as opposed to a
    /// one-shot clean/smudge: only then is `recent` worth a blob id, and
    /// wrap keys worth preparing ahead.
    long_running: bool,
    /// The blob this process last produced or opened for each path. Git's
    /// sequencer (rebase, cherry-pick) keeps the index in memory, so this is
    /// the freshest answer to "what is in the index now".
    recent: HashMap<String, Oid>,
    /// Paths Git named that are not UTF-8: their text (U+FFFD for each
    /// byte that is not, as everywhere in git-seal) to the bytes that name
    /// the file, for finding it in the index and in HEAD.
    git_paths: HashMap<String, Vec<u8>>,
    /// The clean cache, opened on first use; `None` inside when the active
    /// KEK's private half, which keys its hashes, is not here.
    cache: OnceCell<Option<CleanCache>>,
    /// Where clean finds a path's previous envelope.
    priors: clean::Priors,
    /// Wrap keys for sealing.
    wraps: wraps::Wraps,
    /// Files smudge left sealed, for the summary.
    locked: smudge::Locked,
    /// This work tree's git dir, for [`LEFT_SEALED_MARKER`].
    git_dir: Option<PathBuf>,
    /// Run once, before the first large file crosses (the process's
    /// caller widens its pipes to Git: see [`Filter::before_large`]).
    before_large: Option<fn()>,
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filter")
            .field("project", &self.project.as_ref().map(|p| &p.root))
            .field("long_running", &self.long_running)
            .finish_non_exhaustive()
    }
}

impl Filter {
    /// Load the repository Git runs us in. Never fails: problems surface as
    /// per-file errors (clean) or pass-through (smudge).
    pub fn from_env() -> Filter {
        let repo = Repo::from_env();
        let work_tree_locked = repo
            .as_ref()
            .is_ok_and(|r| r.git_dir().join(LOCK_MARKER).exists());
        let provider_name = repo.as_ref().ok().and_then(|r| r.config_get(PROVIDER_KEY));
        let git_dir = repo.as_ref().ok().map(|r| r.git_dir().to_owned());
        let project = repo
            .map_err(|e| e.to_string())
            .and_then(|r| Workspace::load(r).map_err(|e| e.to_string()));
        let fallback_keys = match &project {
            Ok(_) => None,
            Err(_) => keys::provider_or_default(provider_name.as_deref())
                .and_then(|provider| provider.open(Repo::from_env().ok().as_ref(), &[]))
                .and_then(|keys| keys::for_opening(Some(Arc::from(keys))))
                .ok()
                .map(|chain| Arc::new(chain) as Arc<dyn KeyProvider>),
        };
        Filter {
            project,
            fallback_keys,
            long_running: false,
            recent: HashMap::new(),
            git_paths: HashMap::new(),
            cache: OnceCell::new(),
            priors: clean::Priors::default(),
            wraps: wraps::Wraps::default(),
            locked: smudge::Locked::new(work_tree_locked),
            git_dir,
            before_large: None,
        }
    }

    /// Mark this filter as serving a whole Git command.
    pub fn long_running(mut self) -> Filter {
        self.long_running = true;
        self
    }

    /// Run `prepare` once, before the first large file is read or written
    /// (widening the pipes to Git only in processes that move one).
    pub fn before_large_files(mut self, prepare: fn()) -> Filter {
        self.before_large = Some(prepare);
        self
    }

    /// A large file is about to cross: run what
    /// [`Filter::before_large_files`] gave, the first time.
    pub(crate) fn before_large(&mut self) {
        if let Some(prepare) = self.before_large.take() {
            prepare();
        }
    }

    /// Is a blob id for `len` bytes of output worth its SHA-1? For the clean
    /// cache (small files) and, in a long-running process, for `recent`.
    fn wants_blob_id(&self, plaintext_len: usize) -> bool {
        self.long_running || plaintext_len <= cache::MAX_CACHED
    }

    /// What opens envelopes here ([`Workspace::opener`]), shareable with
    /// worker threads.
    /// The text of a path Git names by `bytes`, remembering the bytes
    /// when they are not UTF-8, for clean to find the path's previous
    /// envelope.
    pub fn name_path(&mut self, bytes: &[u8]) -> String {
        match std::str::from_utf8(bytes) {
            Ok(text) => text.to_owned(),
            Err(_) => {
                let text = String::from_utf8_lossy(bytes).into_owned();
                self.git_paths.insert(text.clone(), bytes.to_vec());
                text
            }
        }
    }

    pub fn shared_keys(&self) -> Option<Arc<dyn KeyProvider>> {
        match &self.project {
            Ok(p) => Some(p.opener()),
            Err(_) => self.fallback_keys.clone(),
        }
    }

    fn cache_mut(&mut self) -> Option<&mut CleanCache> {
        open_cache(&mut self.cache, self.project.as_ref().ok())
    }

    /// Write what this process added to the clean cache, mark the work tree
    /// if an envelope was left sealed in it, and return the one summary line
    /// for files left locked, if any.
    pub fn finish(&mut self) -> Option<String> {
        if let Some(Some(cache)) = self.cache.get_mut() {
            cache.flush();
        }
        if let (true, Some(git_dir)) = (self.locked.left_sealed, &self.git_dir) {
            // Failure costs only the hooks' automatic unlock, which
            // `git seal unlock` does by hand (the summary says so).
            let _ = mark_left_sealed(git_dir);
        }
        let keys = self.shared_keys();
        let project = self.project.as_ref().ok();
        self.locked.summary(
            || {
                keys.map(|k| (k.available(), k.problem()))
                    .unwrap_or_default()
            },
            |kids, install| {
                project.and_then(|ws| {
                    crate::audit::fate::Fates::read(&ws.repo, &ws.keks).explain(kids, install)
                })
            },
        )
    }
}

impl Filter {
    /// Copy blob `id` (a [`Cleaned::Blob`]) to `w` from the object database,
    /// a piece at a time where the object is loose.
    pub fn copy_blob(&self, id: Oid, w: &mut dyn std::io::Write) -> std::io::Result<()> {
        let project = self
            .project
            .as_ref()
            .map_err(|e| std::io::Error::other(e.clone()))?;
        project.repo.copy_blob(id, w)
    }

    /// Write `output` to `w`, copying a blob from the object database.
    pub fn write_output(&self, output: &Output, w: &mut dyn std::io::Write) -> std::io::Result<()> {
        match output {
            Output::Bytes(bytes) => w.write_all(bytes),
            Output::Blob(blob) => self.copy_blob(*blob, w),
            Output::Spilled(file) => {
                use std::io::Seek;
                let mut file = file;
                file.rewind()?;
                std::io::copy(&mut file, w).map(drop)
            }
            Output::Framed { frame, ciphertext } => {
                crate::envelope::write_framed(frame, ciphertext, w)
            }
        }
    }
}

/// The clean cache in `cell`, opened on first use.
fn open_cache<'a>(
    cell: &'a mut OnceCell<Option<CleanCache>>,
    project: Option<&Workspace>,
) -> Option<&'a mut CleanCache> {
    if cell.get().is_none() {
        let opened = project.and_then(|p| {
            let kid = p.active().ok()?.kid.clone();
            let key = p.keys().local_key(&kid, "clean-cache")?;
            Some(CleanCache::open(p.repo.common_dir(), &kid, key))
        });
        let _ = cell.set(opened);
    }
    cell.get_mut()?.as_mut()
}

/// Threads that open envelopes beside the one talking to Git: one per
/// core, at most eight.
fn worker_threads() -> usize {
    cores().map_or(2, |n| n.clamp(1, 8))
}

/// The cores this process may use (its affinity and CPU quota), asked of
/// the system once: the answer takes a few system calls and file reads.
fn cores() -> Option<usize> {
    static CORES: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().ok().map(|n| n.get()))
}

/// Move the calling thread to the kernel's idle scheduling class (Linux's
/// `SCHED_IDLE`), for threads that work ahead of Git: opening envelopes a
/// checkout will ask for, preparing wrap keys. Git and the main thread
/// take turns, one waking the other once per file. A helper at normal
/// priority holds the core the woken one would run on, so every turn waits
/// for the scheduler to preempt it; in the idle class its core counts as
/// free and is handed over at once. The cost: on a machine busy with other
/// work the helper may not run at all, so nothing may wait on it without
/// a bound (see `prefetch`). Elsewhere, or if the kernel refuses, the
/// thread keeps its class.
pub(crate) fn run_in_background() {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::unix::{
            set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
            ThreadSchedulePolicy,
        };
        let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
        let _ = set_thread_priority_and_policy(
            thread_native_id(),
            thread_priority::ThreadPriority::Min,
            idle,
        );
    }
}

/// Helper threads of this process at work now (see [`Working`]).
static HELPERS_WORKING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Held while a helper thread (opening ahead, preparing wrap keys, opening
/// a delayed file) has work: the main thread then sleeps when it waits for
/// Git rather than watching for input (see `eager`), leaving the helper
/// the core.
pub(crate) struct Working(());

impl Working {
    pub(crate) fn start() -> Working {
        HELPERS_WORKING.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Working(())
    }
}

impl Drop for Working {
    fn drop(&mut self) {
        HELPERS_WORKING.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Is a helper thread at work (a [`Working`] held)?
pub(crate) fn helper_working() -> bool {
    HELPERS_WORKING.load(std::sync::atomic::Ordering::Relaxed) > 0
}

/// Append to `head` every piece `next` still gives (content that a
/// streamed clean or smudge holds whole after all).
fn read_rest(
    head: &mut Vec<u8>,
    next: &mut dyn FnMut(&mut Vec<u8>) -> std::io::Result<bool>,
) -> std::io::Result<()> {
    let mut piece = Vec::new();
    while next(&mut piece)? {
        head.extend_from_slice(&piece);
    }
    Ok(())
}

/// Git's blob id of the text [`Output::Framed`] writes, made as it is
/// written and hashed, not held.
pub(crate) fn framed_blob_id(frame: &crate::envelope::Envelope, ciphertext: &[Vec<u8>]) -> Oid {
    use sha1::{Digest, Sha1};
    let len = crate::envelope::framed_len(frame, ciphertext.iter().map(Vec::len).sum());
    let mut hasher = Sha1::new();
    hasher.update(format!("blob {len}\0").as_bytes());
    crate::envelope::write_framed(frame, ciphertext, &mut hasher)
        .expect("hashing in memory does not fail");
    Oid::from_bytes(&hasher.finalize()).expect("20-byte SHA-1")
}

/// Git's blob id of `bytes` (SHA-1 of `blob <len>\0` + bytes), computed with
/// the hardware-accelerated `sha1` crate: libgit2's collision-detecting SHA-1
/// is several times slower on large files.
pub(crate) fn blob_id(bytes: &[u8]) -> Oid {
    use sha1::{Digest, Sha1};
    let mut hasher = Sha1::new();
    hasher.update(format!("blob {}\0", bytes.len()).as_bytes());
    hasher.update(bytes);
    Oid::from_bytes(&hasher.finalize()).expect("20-byte SHA-1")
}

/// What a clean or smudge hands back to Git.
pub enum Output {
    /// These bytes.
    Bytes(Vec<u8>),
    /// This blob, already in the repository, which the caller copies from
    /// the object database rather than hold it: a large file's unchanged
    /// envelope (clean), or a large envelope left sealed (smudge).
    Blob(Oid),
    /// The text in an unnamed temporary file, as it was read: a large
    /// envelope a one-shot smudge leaves sealed (no blob to copy from).
    Spilled(std::fs::File),
    /// An envelope's text, written around its ciphertext (in pieces) as it
    /// is sent: a large file's envelope from clean, new or made again.
    Framed {
        frame: crate::envelope::Envelope,
        ciphertext: Vec<Vec<u8>>,
    },
}

/// Never prints the bytes (they may be plaintext).
impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Output::Bytes(bytes) => write!(f, "Bytes({} bytes)", bytes.len()),
            Output::Blob(blob) => write!(f, "Blob({blob})"),
            Output::Spilled(_) => write!(f, "Spilled"),
            Output::Framed { ciphertext, .. } => {
                let len: usize = ciphertext.iter().map(Vec::len).sum();
                write!(f, "Framed({len} bytes of ciphertext)")
            }
        }
    }
}

/// Where this work tree's lock marker lives.
pub fn lock_marker(repo: &Repo) -> PathBuf {
    repo.git_dir().join(LOCK_MARKER)
}

/// Where the mark that an envelope was left sealed in this work tree lives
/// ([`LEFT_SEALED_MARKER`]).
pub fn left_sealed_marker(repo: &Repo) -> PathBuf {
    repo.git_dir().join(LEFT_SEALED_MARKER)
}

/// Mark the work tree whose git dir is `git_dir` as holding an envelope
/// left sealed.
pub(crate) fn mark_left_sealed(git_dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::write(git_dir.join(LEFT_SEALED_MARKER), b"")
}

#[cfg(test)]
mod tests {
    /// The blob id of a text written around held ciphertext is that of
    /// the whole text, as Git computes it.
    #[test]
    fn a_framed_texts_blob_id_is_the_whole_texts() {
        use crate::envelope::{self, Envelope, Recipient, Wrap};
        let env = Envelope {
            recipients: vec![Recipient {
                kid: crate::kid::Kid::parse("k_00000000000000aa").unwrap(),
                wrap: Wrap::X25519 {
                    ephemeral_pub: [3; 32],
                },
                wrapped_dek: [4; 48],
            }],
            nonce: [5; 12],
            ciphertext: (0..100_000u32).map(|i| (i % 253) as u8).collect(),
            tag: [6; 16],
            aad: Some("path:big.bin".into()),
        };
        let pieces: Vec<Vec<u8>> = env.ciphertext.chunks(4097).map(<[u8]>::to_vec).collect();
        let text = envelope::write(&env);
        let git = git2::Oid::hash_object(git2::ObjectType::Blob, &text).unwrap();
        assert_eq!(super::framed_blob_id(&env.frame(), &pieces), git);
        assert_eq!(super::blob_id(&text), git);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_background_thread_runs_in_the_idle_class() {
        use thread_priority::unix::{
            thread_schedule_policy, NormalThreadSchedulePolicy, ThreadSchedulePolicy,
        };
        let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
        let policy = std::thread::spawn(|| {
            let before = thread_schedule_policy().unwrap();
            super::run_in_background();
            (before, thread_schedule_policy().unwrap())
        })
        .join()
        .unwrap();
        assert_ne!(policy.0, idle);
        assert_eq!(policy.1, idle);
        // The calling thread, and so the process's other threads, keep theirs.
        assert_ne!(thread_schedule_policy().unwrap(), idle);
    }
}
