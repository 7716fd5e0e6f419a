//! The filter: what `clean` (work tree → repository) and `smudge`
//! (repository → work tree) do to one file, with the repository state and
//! keys loaded once per Git command. `process` speaks Git's long-running
//! protocol around it; `git seal clean|smudge` run it once.
//!
//! Rules (SPEC §4): clean never stores plaintext (no KEK → error), passes
//! envelopes through, and returns the existing envelope when the plaintext is
//! unchanged. Smudge never fails a checkout and never writes partial
//! plaintext: without a key, or with a damaged envelope, the envelope stays.

pub mod cache;
pub mod pktline;
pub mod process;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{mpsc, Arc};

use crate::envelope::{self, Envelope};
use crate::keys::sealing::{self, PendingWrap};
use crate::keys::{self, x25519, KeyProvider, OpenError, SealError, WrapTarget};
use crate::kid::Kid;
use crate::repo::{Oid, Repo};
use crate::workspace::{Workspace, PROVIDER_KEY};
use cache::CleanCache;

/// File in a work tree's git dir that marks it locked by `git seal lock`:
/// smudge then leaves envelopes as they are until `git seal unlock`.
pub const LOCK_MARKER: &str = "seal-locked";

pub struct Filter {
    project: Result<Workspace, String>,
    /// Keys for smudge when the project could not be loaded (e.g. `.seal/`
    /// not checked out yet): smudge needs only keys, never the metadata.
    fallback_keys: Option<Arc<dyn KeyProvider>>,
    user_locked: bool,
    index: Option<HashMap<String, Oid>>,
    /// The blob this process last produced or opened for each path. Git's
    /// sequencer (rebase, cherry-pick) keeps the index in memory, so this is
    /// the freshest answer to "what is in the index now".
    recent: HashMap<String, Oid>,
    /// Identity of the index file `index` was read from: one filter process
    /// can outlive several index rewrites (rebase, cherry-pick sequences).
    index_stamp: Option<(u64, i64, i64, u64)>,
    /// HEAD's tree as of `index_stamp` (`Some(None)`: no commit yet).
    head_tree: Option<Option<Oid>>,
    cache: Option<Option<CleanCache>>,
    /// Wrap keys prepared on another core for the usual targets.
    wraps: Option<WrapSource>,
    /// Serving Git's long-running protocol (many files), as opposed to a
    /// one-shot clean/smudge: only then is `recent` worth a blob id.
    long_running: bool,
    locked: Vec<String>,
    locked_kids: BTreeSet<Kid>,
    errors: usize,
}

/// A smudge that needs a key: the envelope (taken by [`open_work`]) and the
/// text to keep if it does not open.
pub struct Work {
    pub path: String,
    text: Vec<u8>,
    env: Option<Envelope>,
    blob: Option<Oid>,
}

pub enum Prepared {
    Done(Smudged),
    Open(Work),
}

/// The outcome of trying to open one envelope.
pub enum Opened {
    Plain {
        plaintext: Vec<u8>,
        aad: Option<String>,
        /// The kids the envelope is wrapped to.
        kids: Vec<Kid>,
    },
    NoKey,
    Failed(String),
}

/// Unwrap and decrypt: the expensive, key-using part of smudge. Pure, so
/// it can run on a worker thread.
pub fn open_work(keys: &dyn KeyProvider, work: &mut Work) -> Opened {
    let Some(env) = work.env.take() else {
        return Opened::Failed("internal: envelope already taken".to_owned());
    };
    let (kid, dek) = match sealing::unwrap_dek(&env, keys) {
        Ok(found) => found,
        Err(OpenError::NoUsableKey { .. }) => {
            work.env = Some(env);
            return Opened::NoKey;
        }
        Err(e) => return Opened::Failed(e.to_string()),
    };
    let aad = env.aad.clone();
    let kids = env.recipients.iter().map(|r| r.kid.clone()).collect();
    match sealing::decrypt(env, &kid, &dek) {
        Ok(plaintext) => Opened::Plain {
            plaintext,
            aad,
            kids,
        },
        Err(e) => Opened::Failed(e.to_string()),
    }
}

/// A thread that keeps sets of fresh wrap keys ready for one list of
/// targets, handed over in batches (one wake-up per batch, not per file).
/// Each set is used once; unused ones are dropped (and zeroized) with the
/// channel when the filter ends.
struct WrapSource {
    targets: Vec<WrapTarget>,
    next: mpsc::Receiver<Vec<Result<Vec<PendingWrap>, SealError>>>,
    ready: std::collections::VecDeque<Result<Vec<PendingWrap>, SealError>>,
}

/// Fresh wraps for one target, many times over: an X25519 KEK's public point
/// becomes a fixed-base table once; other targets wrap through their
/// provider when the DEK exists, so there is nothing to prepare.
enum Preparer {
    X25519(x25519::WrapPreparer),
    Other(WrapTarget),
}

impl Preparer {
    fn new(target: WrapTarget) -> Preparer {
        match &target {
            WrapTarget::X25519 { kid, public } => {
                Preparer::X25519(x25519::WrapPreparer::new(kid, public))
            }
            WrapTarget::Provider { .. } => Preparer::Other(target),
        }
    }

    fn prepare(&self) -> Result<PendingWrap, SealError> {
        match self {
            Preparer::X25519(preparer) => Ok(preparer.prepare()?.into()),
            Preparer::Other(target) => target.prepare(),
        }
    }
}

/// Wrap sets per hand-over.
const WRAP_BATCH: usize = 16;

impl WrapSource {
    fn start(targets: Vec<WrapTarget>) -> WrapSource {
        let (tx, next) = mpsc::sync_channel(2);
        let for_thread = targets.clone();
        std::thread::spawn(move || {
            let preparers: Vec<Preparer> = for_thread.into_iter().map(Preparer::new).collect();
            let prepare = || -> Result<Vec<PendingWrap>, SealError> {
                preparers.iter().map(Preparer::prepare).collect()
            };
            loop {
                let batch = (0..WRAP_BATCH).map(|_| prepare()).collect();
                if tx.send(batch).is_err() {
                    break;
                }
            }
        });
        WrapSource {
            targets,
            next,
            ready: Default::default(),
        }
    }

    /// A prepared set if one is ready now (never waits: the caller then
    /// prepares one itself, so both cores work).
    fn take(&mut self) -> Option<Result<Vec<PendingWrap>, SealError>> {
        if self.ready.is_empty() {
            self.ready.extend(self.next.try_recv().ok()?);
        }
        self.ready.pop_front()
    }
}

/// What smudge produced for one file.
pub struct Smudged {
    pub bytes: Vec<u8>,
    /// A message naming the path, when the envelope was left as it is
    /// because it is damaged (never for a missing key: see [`Filter::finish`]).
    pub error: Option<String>,
}

impl Filter {
    /// Load the repository Git runs us in. Never fails: problems surface as
    /// per-file errors (clean) or pass-through (smudge).
    pub fn from_env() -> Filter {
        let repo = Repo::from_env();
        let user_locked = repo
            .as_ref()
            .is_ok_and(|r| r.git_dir().join(LOCK_MARKER).exists());
        let provider_name = repo.as_ref().ok().and_then(|r| r.config_get(PROVIDER_KEY));
        let project = repo
            .map_err(|e| e.to_string())
            .and_then(|r| Workspace::from_repo(r).map_err(|e| e.to_string()));
        let fallback_keys = match &project {
            Ok(_) => None,
            Err(_) => keys::provider_or_default(provider_name.as_deref())
                .and_then(|provider| provider.open())
                .ok()
                .map(Arc::from),
        };
        Filter {
            project,
            fallback_keys,
            user_locked,
            index: None,
            recent: HashMap::new(),
            index_stamp: None,
            head_tree: None,
            cache: None,
            long_running: false,
            wraps: None,
            locked: Vec::new(),
            locked_kids: BTreeSet::new(),
            errors: 0,
        }
    }

    /// Wrap keys for `targets`: from the background source when it serves
    /// these targets (starting it in a long-running process), else now.
    fn prepared_wraps(&mut self, targets: &[WrapTarget]) -> Result<Vec<PendingWrap>, SealError> {
        if let Some(source) = &mut self.wraps {
            if source.targets == targets {
                if let Some(wraps) = source.take() {
                    return wraps;
                }
            }
        } else if self.long_running {
            self.wraps = Some(WrapSource::start(targets.to_vec()));
        }
        sealing::prepare_wraps(targets)
    }

    /// Mark this filter as serving a whole Git command.
    pub fn long_running(mut self) -> Filter {
        self.long_running = true;
        self
    }

    /// Is a blob id for `len` bytes of output worth its SHA-1? For the clean
    /// cache (small files) and, in a long-running process, for `recent`.
    fn wants_blob_id(&self, plaintext_len: usize) -> bool {
        self.long_running || plaintext_len <= cache::MAX_CACHED
    }

    fn keys(&self) -> Option<&dyn KeyProvider> {
        match &self.project {
            Ok(p) => Some(p.keys()),
            Err(_) => self.fallback_keys.as_deref(),
        }
    }

    /// Seal `plaintext` for `path`. An error means nothing may be stored.
    pub fn clean(&mut self, path: &str, plaintext: Vec<u8>) -> Result<Vec<u8>, String> {
        if envelope::might_be_envelope(&plaintext) && envelope::is_envelope(&plaintext) {
            return Ok(plaintext);
        }
        let refuse = |e: &dyn std::fmt::Display| {
            format!("{path}: cannot seal, so refusing to store plaintext: {e}")
        };
        let project = self.project.as_ref().map_err(|e| refuse(e))?;
        let aad = project.policy.aad_for(path);
        let targets = project.targets_for(Some(path)).map_err(|e| refuse(&e))?;
        let kids: Vec<Kid> = targets.iter().map(|t| t.kid().clone()).collect();
        // Candidates for "the same envelope again": what this process last
        // produced or opened for the path, then the index (else HEAD) blob.
        let mut candidates: Vec<Oid> = self.recent.get(path).copied().into_iter().collect();
        if let Some(prior) = self.prior_blob(path).map_err(|e| format!("{path}: {e}"))? {
            if !candidates.contains(&prior) {
                candidates.push(prior);
            }
        }
        let mac = self
            .cache()
            .and_then(|c| c.mac(aad.as_deref(), &kids, &plaintext));
        let project = self.project.as_ref().expect("checked above");
        for blob in candidates {
            let cache = self.cache.as_mut().and_then(Option::as_mut);
            if let Some(same) = reuse(
                project,
                cache,
                blob,
                &plaintext,
                mac.as_ref(),
                aad.as_deref(),
                &kids,
            ) {
                self.recent.insert(path.to_owned(), blob);
                return Ok(same);
            }
        }
        let wraps = self
            .prepared_wraps(&targets)
            .map_err(|e| format!("{path}: cannot seal: {e}"))?;
        let sealed = sealing::seal_prepared(plaintext, aad, wraps)
            .map_err(|e| format!("{path}: cannot seal: {e}"))?;
        let text = envelope::write(&sealed);
        drop(sealed);
        if self.wants_blob_id(text.len() / 4 * 3) {
            let blob = blob_id(&text);
            self.recent.insert(path.to_owned(), blob);
            if let (Some(mac), Some(cache)) = (mac, self.cache_mut()) {
                cache.record(blob, mac, &text);
            }
        }
        Ok(text)
    }

    fn prior_blob(&mut self, path: &str) -> Result<Option<Oid>, String> {
        let project = self.project.as_ref().map_err(Clone::clone)?;
        let stamp = std::fs::metadata(project.repo.git_dir().join("index"))
            .ok()
            .map(|m| {
                use std::os::unix::fs::MetadataExt;
                (m.ino(), m.mtime(), m.mtime_nsec(), m.len())
            });
        if self.index.is_none() || stamp != self.index_stamp {
            self.index = Some(project.repo.index_entries().map_err(|e| e.to_string())?);
            self.index_stamp = stamp;
            self.head_tree = None;
        }
        if let Some(id) = self.index.as_ref().and_then(|i| i.get(path)) {
            return Ok(Some(*id));
        }
        // HEAD is read again whenever the index changed. A stale HEAD could
        // only offer an envelope that opens to the same plaintext, which
        // is checked before it is reused.
        let head_tree = match self.head_tree {
            Some(tree) => tree,
            None => {
                let tree = project.repo.head_tree_id().map_err(|e| e.to_string())?;
                *self.head_tree.insert(tree)
            }
        };
        match head_tree {
            Some(tree) => project
                .repo
                .blob_in_tree(tree, path)
                .map_err(|e| e.to_string()),
            None => Ok(None),
        }
    }

    fn cache(&mut self) -> Option<&CleanCache> {
        self.cache_mut().map(|c| &*c)
    }

    fn cache_mut(&mut self) -> Option<&mut CleanCache> {
        if self.cache.is_none() {
            let loaded = self.project.as_ref().ok().and_then(|p| {
                let kid = p.active().ok()?.kid.clone();
                let key = p.keys().local_key(&kid, "clean-cache")?;
                Some(CleanCache::open(p.repo.common_dir(), &kid, key))
            });
            self.cache = Some(loaded);
        }
        self.cache.as_mut().and_then(Option::as_mut)
    }

    /// Open `text` for `path`; `blob` is its id when Git says it.
    pub fn smudge(&mut self, path: &str, text: Vec<u8>, blob: Option<Oid>) -> Smudged {
        match self.prepare_smudge(path, text, blob) {
            Prepared::Done(smudged) => smudged,
            Prepared::Open(mut work) => {
                let opened = match self.keys() {
                    Some(keys) => open_work(keys, &mut work),
                    None => Opened::NoKey,
                };
                self.complete_smudge(work, opened)
            }
        }
    }

    /// The part of smudge that needs no key: pass-through, parse, lock and
    /// aad checks. What remains is [`open_work`], which may run on another
    /// thread, then [`Filter::complete_smudge`].
    pub fn prepare_smudge(&mut self, path: &str, text: Vec<u8>, blob: Option<Oid>) -> Prepared {
        let done = |bytes, error| Prepared::Done(Smudged { bytes, error });
        if !envelope::might_be_envelope(&text) {
            return done(text, None);
        }
        let env = match envelope::parse(&text) {
            Ok(env) => env,
            Err(e) => {
                self.errors += 1;
                return done(
                    text,
                    Some(format!(
                        "{path}: malformed envelope ({e}); left it sealed in the work tree"
                    )),
                );
            }
        };
        if self.user_locked {
            self.locked.push(path.to_owned());
            return done(text, None);
        }
        if let Some(message) = self.aad_problem(path, &env) {
            self.errors += 1;
            return done(text, Some(message));
        }
        Prepared::Open(Work {
            path: path.to_owned(),
            text,
            env: Some(env),
            blob,
        })
    }

    /// Account for an opened (or not) envelope and produce the output.
    pub fn complete_smudge(&mut self, work: Work, opened: Opened) -> Smudged {
        let Work {
            path,
            text,
            env,
            blob,
        } = work;
        let keep = |bytes, error| Smudged { bytes, error };
        match opened {
            Opened::Plain {
                plaintext,
                aad,
                kids,
            } => {
                let blob =
                    blob.or_else(|| self.wants_blob_id(plaintext.len()).then(|| blob_id(&text)));
                if let Some(blob) = blob {
                    self.recent.insert(path, blob);
                    if let Some(cache) = self.cache_mut() {
                        if let Some(mac) = cache.mac(aad.as_deref(), &kids, &plaintext) {
                            cache.record(blob, mac, &text);
                        }
                    }
                }
                drop(text);
                keep(plaintext, None)
            }
            Opened::NoKey => {
                self.locked.push(path);
                let kids = env
                    .iter()
                    .flat_map(|e| e.recipients.iter().map(|r| r.kid.clone()));
                self.locked_kids.extend(kids);
                keep(text, None)
            }
            Opened::Failed(message) => {
                self.errors += 1;
                keep(
                    text,
                    Some(format!(
                        "{path}: {message}; left it sealed in the work tree"
                    )),
                )
            }
        }
    }

    /// The key provider, shareable with worker threads.
    pub fn shared_keys(&self) -> Option<Arc<dyn KeyProvider>> {
        match &self.project {
            Ok(p) => Some(p.shared_keys()),
            Err(_) => self.fallback_keys.clone(),
        }
    }

    fn aad_problem(&self, path: &str, env: &Envelope) -> Option<String> {
        let project = self.project.as_ref().ok()?;
        let expected = project.policy.aad_for(path)?;
        match env.aad.as_deref() {
            Some(aad) if aad.starts_with("path:") && aad != expected => Some(format!(
                "{path}: the envelope is bound to {aad:?}, not this path (moved or swapped?); left it sealed in the work tree"
            )),
            _ => None,
        }
    }

    pub fn locked_paths(&self) -> &[String] {
        &self.locked
    }

    pub fn error_count(&self) -> usize {
        self.errors
    }

    /// The one summary line for files left locked, if any.
    pub fn finish(&mut self) -> Option<String> {
        if let Some(Some(cache)) = self.cache.as_mut() {
            cache.flush();
        }
        if self.locked.is_empty() {
            return None;
        }
        let n = self.locked.len();
        let files = if n == 1 {
            "file".to_owned()
        } else {
            "files".to_owned()
        };
        if self.user_locked {
            return Some(format!("git-seal: {n} sealed {files} left locked (this work tree is locked; `git seal unlock` opens them)"));
        }
        let kids: Vec<&str> = self.locked_kids.iter().map(Kid::as_str).collect();
        let here = self.keys().map(|k| k.available()).unwrap_or_default();
        let here = if here.is_empty() {
            "none".to_owned()
        } else {
            here.iter().map(Kid::as_str).collect::<Vec<_>>().join(", ")
        };
        Some(format!(
            "git-seal: warning: {n} sealed {files} left locked (e.g. {}): no usable key (wrapped to {}; keys here: {here}); install the key, then run `git seal unlock`",
            self.locked[0],
            kids.join(", ")
        ))
    }
}

/// The envelope `blob` again, if it holds exactly `plaintext` (and the same
/// `aad`): from the cache when it knows the blob, else by opening it once.
fn reuse(
    project: &Workspace,
    cache: Option<&mut CleanCache>,
    blob: Oid,
    plaintext: &[u8],
    mac: Option<&[u8; 32]>,
    aad: Option<&str>,
    kids: &[Kid],
) -> Option<Vec<u8>> {
    // A hit means this blob is an envelope of exactly this plaintext, aad
    // and recipients; its text is often in the cache too.
    if let (Some(mac), Some(cache)) = (mac, cache.as_deref()) {
        if cache.matches(blob, mac) {
            return match cache.text(blob) {
                Some(text) => Some(text.to_vec()),
                None => project.repo.blob(blob).ok(),
            };
        }
    }
    let text = project.repo.blob(blob).ok()?;
    let env = envelope::parse(&text).ok()?;
    // Same aad and same recipients, or the policy changed: seal anew.
    let mut wrapped_to: Vec<&Kid> = env.recipients.iter().map(|r| &r.kid).collect();
    let mut wanted: Vec<&Kid> = kids.iter().collect();
    wrapped_to.sort_unstable_by_key(|k| k.as_str());
    wanted.sort_unstable_by_key(|k| k.as_str());
    if env.aad.as_deref() != aad || wrapped_to != wanted {
        return None;
    }
    let opened = keys::open(env, project.keys()).ok()?;
    if opened != plaintext {
        return None;
    }
    if let (Some(mac), Some(cache)) = (mac, cache) {
        cache.record(blob, *mac, &text);
    }
    Some(text)
}

/// Git's blob id of `bytes` (SHA-1 of `blob <len>\0` + bytes), computed with
/// the hardware-accelerated `sha1` crate: libgit2's collision-detecting SHA-1
/// is several times slower on large files.
pub fn blob_id(bytes: &[u8]) -> Oid {
    use sha1::{Digest, Sha1};
    let mut hasher = Sha1::new();
    hasher.update(format!("blob {}\0", bytes.len()).as_bytes());
    hasher.update(bytes);
    Oid::from_bytes(&hasher.finalize()).expect("20-byte SHA-1")
}

/// Where this work tree's lock marker lives.
pub fn lock_marker(repo: &Repo) -> PathBuf {
    repo.git_dir().join(LOCK_MARKER)
}
