//! Smudges opened ahead of Git's requests. In a checkout Git names the tree
//! it checks out (`treeish=`) and asks for files one at a time, in index
//! order, waiting for each answer; opening an envelope (one X25519 each) is
//! most of what a smudge costs. So once Git names a tree, worker threads
//! list its blobs and open, from the object database, the envelopes that
//! follow the file Git asked for, a bounded window ahead. Git's next
//! request then finds its plaintext ready: one round trip per file, which
//! is all a no-op filter costs Git, where the `delay` capability costs two.
//!
//! The workers run in the idle scheduling class (`run_in_background`): they
//! use the core Git and the main thread leave free and give it up the
//! moment either wakes, and Git's request waits for one only briefly
//! ([`PATIENCE`]), since a busy machine can starve them.
//!
//! An envelope Git never asks for (a checkout of a few paths, files that
//! are up to date) is opened for nothing; the window bounds that, and what
//! Git went past is dropped. Plaintext opened ahead never leaves the process
//! unless Git asks for that blob, and every check that depends on the path
//! (the aad binding, a locked work tree) runs on Git's request as for any
//! smudge.

use std::collections::{HashMap, VecDeque};
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use super::cache::MacKey;
use super::smudge::{open_envelope, Opened};
use crate::envelope;
use crate::keys::KeyProvider;
use crate::repo::{Oid, Repo};

/// How many of the tree's blobs past Git's request are opened ahead.
const WINDOW: usize = 64;
/// Blobs larger than this are left to Git's request (and read as they
/// arrive there).
const MAX_BLOB: usize = 256 << 10;
/// How long Git's request waits for a worker already opening its blob (an
/// open takes well under a millisecond). The workers run in the idle
/// scheduling class, so a machine busy with other work can starve them;
/// past this, Git's requests open their blobs themselves.
const PATIENCE: Duration = Duration::from_millis(20);

pub(crate) struct Prefetch {
    treeish: Oid,
    shared: Arc<Shared>,
    workers: Vec<thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Prefetch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prefetch")
            .field("treeish", &self.treeish)
            .finish_non_exhaustive()
    }
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when work is queued, and on stop (workers wait on it).
    queued: Condvar,
    /// Signalled when a slot Git waits for is done.
    done: Condvar,
}

#[derive(Default)]
struct State {
    /// The tree's blobs in Git's (index) order, once listed.
    entries: Option<Vec<(String, Oid)>>,
    /// The path Git asked for last, until the entries are listed.
    pending_at: Option<String>,
    /// Entries before this are behind Git; entries up to `queued_to` have
    /// been queued.
    low: usize,
    queued_to: usize,
    queue: VecDeque<Oid>,
    slots: HashMap<Oid, Slot>,
    /// Git's request waits for a worker.
    waiting: bool,
    /// How many times Git's requests have waited for a worker.
    waits: u32,
    /// A wait for a worker ran out of [`PATIENCE`]: requests no longer wait.
    impatient: bool,
    stop: bool,
}

enum Slot {
    Queued,
    Opening,
    /// Being opened, but Git went past it: dropped when done.
    Behind,
    Done(Opened),
}

impl Prefetch {
    /// Start opening ahead in `treeish` with `keys`; each plaintext's clean
    /// cache hash is computed there too when `mac` is given.
    pub(crate) fn start(treeish: Oid, keys: Arc<dyn KeyProvider>, mac: Option<MacKey>) -> Prefetch {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            queued: Condvar::new(),
            done: Condvar::new(),
        });
        let threads = super::worker_threads();
        let workers = (0..threads)
            .map(|i| {
                let (shared, keys, mac) = (Arc::clone(&shared), Arc::clone(&keys), mac.clone());
                // At work from the start: Git's requests follow at once.
                let working = super::Working::start();
                thread::spawn(move || {
                    let _working = working;
                    let list = (i == 0).then_some(treeish);
                    work(&shared, keys.as_ref(), mac.as_ref(), list)
                })
            })
            .collect();
        Prefetch {
            treeish,
            shared,
            workers,
        }
    }

    pub(crate) fn treeish(&self) -> Oid {
        self.treeish
    }

    /// Git asks for `path`, blob `blob`: what was opened ahead for it, if
    /// anything (waiting if a worker is opening it now). The window moves
    /// past `path`.
    pub(crate) fn take(&self, path: &str, blob: Oid) -> Option<Opened> {
        let mut state = self.shared.lock();
        if state.advance_to(path) {
            self.shared.queued.notify_all();
        }
        let mut deadline = None;
        loop {
            match state.slots.remove(&blob) {
                Some(Slot::Done(opened)) => return Some(opened),
                Some(Slot::Opening) if !state.impatient => {
                    state.slots.insert(blob, Slot::Opening);
                    let deadline = *deadline.get_or_insert_with(|| Instant::now() + PATIENCE);
                    let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                        // The workers are starved (see `run_in_background`):
                        // from now on Git's requests do not wait for them.
                        state.impatient = true;
                        continue;
                    };
                    state.waiting = true;
                    state.waits += 1;
                    state = self
                        .shared
                        .done
                        .wait_timeout(state, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                    state.waiting = false;
                }
                // Opening, but the workers cannot be waited for: Git's
                // request opens it, and the worker's result is dropped.
                Some(Slot::Opening) => {
                    state.slots.insert(blob, Slot::Behind);
                    return None;
                }
                // Queued: Git's request opens it now; the worker skips it.
                Some(Slot::Queued | Slot::Behind) | None => return None,
            }
        }
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.queued.notify_all();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    /// Git is at `path`: drop what it went past, and when less than half
    /// the window is left ahead, queue a window after it (in batches, so
    /// that workers wake once per batch, not once per file). `true` if
    /// anything was queued.
    fn advance_to(&mut self, path: &str) -> bool {
        let Some(entries) = &self.entries else {
            self.pending_at = Some(path.to_owned());
            return false;
        };
        // Git asks in the tree's order, usually for the entry right after
        // the last one.
        let at = if entries.get(self.low).is_some_and(|(p, _)| p == path) {
            self.low
        } else {
            match entries.binary_search_by(|(p, _)| p.as_bytes().cmp(path.as_bytes())) {
                Ok(at) => at,
                // Not in the tree: nothing to go by.
                Err(_) => return false,
            }
        };
        if at < self.low {
            return false;
        }
        for (_, blob) in &entries[self.low..at] {
            match self.slots.get_mut(blob) {
                Some(slot @ Slot::Opening) => *slot = Slot::Behind,
                Some(Slot::Done(_) | Slot::Queued) => {
                    self.slots.remove(blob);
                }
                _ => {}
            }
        }
        self.low = at + 1;
        if self.queued_to > at + WINDOW / 2 {
            return false;
        }
        let end = (at + 1 + WINDOW).min(entries.len());
        let before = self.queue.len();
        for (_, blob) in &entries[self.queued_to.max(at + 1)..end] {
            if !self.slots.contains_key(blob) {
                self.slots.insert(*blob, Slot::Queued);
                self.queue.push_back(*blob);
            }
        }
        self.queued_to = self.queued_to.max(end);
        self.queue.len() > before
    }
}

/// One worker: list the tree's blobs first if `list` names it, then open
/// what is queued until stopped.
fn work(shared: &Shared, keys: &dyn KeyProvider, mac: Option<&MacKey>, list: Option<Oid>) {
    super::run_in_background();
    let Ok(repo) = Repo::from_env() else { return };
    if let Some(treeish) = list {
        let mut entries = repo.treeish_blobs(treeish).unwrap_or_default();
        entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let mut state = shared.lock();
        state.entries = Some(entries);
        if let Some(path) = state.pending_at.take() {
            if state.advance_to(&path) {
                shared.queued.notify_all();
            }
        }
    }
    loop {
        let blob = {
            let mut state = shared.lock();
            loop {
                if state.stop {
                    return;
                }
                match state.queue.pop_front() {
                    Some(blob) if matches!(state.slots.get(&blob), Some(Slot::Queued)) => {
                        state.slots.insert(blob, Slot::Opening);
                        break blob;
                    }
                    Some(_) => {}
                    None => {
                        state = shared.queued.wait(state).unwrap_or_else(|e| e.into_inner());
                    }
                }
            }
        };
        let opened = panic::catch_unwind(AssertUnwindSafe(|| open_blob(&repo, keys, mac, blob)))
            .ok()
            .flatten();
        let mut state = shared.lock();
        match (opened, state.slots.get(&blob)) {
            (Some(opened), Some(Slot::Opening)) if !state.stop => {
                state.slots.insert(blob, Slot::Done(opened));
            }
            _ => {
                state.slots.remove(&blob);
            }
        }
        if state.waiting {
            shared.done.notify_all();
        }
    }
}

/// Open blob `blob` if it is a small envelope this process has a key for,
/// with its clean cache hash when `mac` is given.
fn open_blob(
    repo: &Repo,
    keys: &dyn KeyProvider,
    mac: Option<&MacKey>,
    blob: Oid,
) -> Option<Opened> {
    let env = repo.with_small_blob(blob, MAX_BLOB, |text| {
        envelope::might_be_envelope(text)
            .then(|| envelope::parse(text).ok())
            .flatten()
    })??;
    let (mut opened, _) = open_envelope(keys, env);
    match &mut opened {
        Opened::NoKey => return None,
        Opened::Plain {
            plaintext,
            aad,
            kids,
            mac: hashed,
            ..
        } => *hashed = mac.map(|key| key.mac(aad.as_deref(), kids, plaintext)),
        Opened::Failed(_) => {}
    }
    Some(opened)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(i: usize) -> Oid {
        let mut bytes = [0u8; 20];
        bytes[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
        Oid::from_bytes(&bytes).unwrap()
    }

    fn listed(n: usize) -> State {
        State {
            entries: Some((0..n).map(|i| (format!("f{i:04}"), blob(i))).collect()),
            ..State::default()
        }
    }

    #[test]
    fn the_window_moves_in_batches_and_drops_what_git_went_past() {
        let mut state = listed(300);
        assert!(state.advance_to("f0000"));
        assert_eq!(state.queue.len(), WINDOW);
        assert_eq!(state.queue.front(), Some(&blob(1)));
        // Less than half the window used: nothing more is queued.
        assert!(!state.advance_to("f0010"));
        assert!(state.advance_to("f0040"));
        assert_eq!(state.queued_to, 41 + WINDOW);
        // A worker is opening one of the files Git then skips, and has
        // opened another.
        state.slots.insert(blob(50), Slot::Opening);
        state.slots.insert(blob(51), Slot::Done(Opened::NoKey));
        state.advance_to("f0200");
        assert!(matches!(state.slots.get(&blob(50)), Some(Slot::Behind)));
        assert!(!state.slots.contains_key(&blob(51)));
        assert!((41..200).all(|i| !matches!(state.slots.get(&blob(i)), Some(Slot::Queued))));
        assert!(matches!(state.slots.get(&blob(201)), Some(Slot::Queued)));
        // Git going back (a second pass) or to a path not in the tree
        // changes nothing.
        assert!(!state.advance_to("f0100"));
        assert!(!state.advance_to("other"));
        assert_eq!(state.low, 201);
    }

    /// A prefetch with no workers, `n` entries listed: the test plays the
    /// workers.
    fn without_workers(n: usize) -> Prefetch {
        Prefetch {
            treeish: blob(999_999),
            shared: Arc::new(Shared {
                state: Mutex::new(listed(n)),
                queued: Condvar::new(),
                done: Condvar::new(),
            }),
            workers: Vec::new(),
        }
    }

    #[test]
    fn a_request_waits_for_a_worker_that_finishes() {
        let prefetch = without_workers(10);
        prefetch.shared.lock().slots.insert(blob(3), Slot::Opening);
        let shared = Arc::clone(&prefetch.shared);
        let worker = thread::spawn(move || {
            // Finish once Git's request waits.
            while !shared.lock().waiting {
                thread::yield_now();
            }
            let mut state = shared.lock();
            state.slots.insert(blob(3), Slot::Done(Opened::NoKey));
            shared.done.notify_all();
        });
        let took = prefetch.take("f0003", blob(3));
        worker.join().unwrap();
        assert!(matches!(took, Some(Opened::NoKey)), "{took:?}");
        assert!(!prefetch.shared.lock().impatient);
    }

    #[test]
    fn a_starved_worker_is_waited_for_once_then_never() {
        let prefetch = without_workers(10);
        for i in [3, 5] {
            prefetch.shared.lock().slots.insert(blob(i), Slot::Opening);
        }
        let started = Instant::now();
        assert!(prefetch.take("f0003", blob(3)).is_none());
        let waited = started.elapsed();
        assert!(waited >= PATIENCE, "gave up after {waited:?}");
        // The worker's result, when it comes, is dropped.
        let state = prefetch.shared.lock();
        assert!(matches!(state.slots.get(&blob(3)), Some(Slot::Behind)));
        assert!(state.impatient);
        drop(state);
        // The next request does not wait for a worker at all.
        let waits = prefetch.shared.lock().waits;
        assert!(waits >= 1);
        assert!(prefetch.take("f0005", blob(5)).is_none());
        assert_eq!(prefetch.shared.lock().waits, waits);
        assert!(matches!(
            prefetch.shared.lock().slots.get(&blob(5)),
            Some(Slot::Behind)
        ));
    }

    #[test]
    fn a_request_before_the_tree_is_listed_is_remembered() {
        let mut state = State::default();
        assert!(!state.advance_to("f0003"));
        assert_eq!(state.pending_at.as_deref(), Some("f0003"));
        state.entries = listed(10).entries;
        let at = state.pending_at.take().unwrap();
        assert!(state.advance_to(&at));
        assert_eq!(
            state.queue.iter().copied().collect::<Vec<_>>(),
            (4..10).map(blob).collect::<Vec<_>>()
        );
    }
}
