//! Smudge (repository → work tree): open an envelope, or leave it as it is
//! (a locked work tree, no usable key, a damaged envelope) without failing
//! the checkout or writing partial plaintext; and the one summary line for
//! the files left locked. Opening is split out ([`open_work`]) so that the
//! protocol can run it on worker threads.

use std::collections::BTreeSet;

use super::{blob_id, Filter, Output};
use crate::audit::fate::{self, Explained};
use crate::envelope::{self, Envelope, FormatError};
use crate::keys::{sealing, KeyProvider, OpenError};
use crate::kid::Kid;
use crate::repo::Oid;

/// How much of a large envelope's text is kept from its start and from
/// its end, to tell whether it is canonical: more than its fields before
/// the ciphertext (a frame is at most 64 KiB) and after it (the tag and
/// the aad). A longer one is taken for not canonical: it gets no frame.
const HEAD_EDGE: usize = 64 << 10;
const TAIL_EDGE: usize = 16 << 10;

/// A smudge that needs a key: the envelope (taken by [`open_work`]) and the
/// text to keep if it does not open (held, or a large one's blob).
#[derive(Debug)]
pub struct Work {
    pub path: String,
    text: Output,
    env: Option<Envelope>,
    blob: Option<Oid>,
    /// The text is canonical, so the envelope's frame gives it back
    /// (checked for large envelopes only, the ones with a frame).
    canonical: bool,
}

#[derive(Debug)]
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
        /// The clean cache's hash of the three, when the thread that opened
        /// it had the cache's key (else it is computed when recorded).
        mac: Option<[u8; 32]>,
        /// A large envelope's frame, for the clean cache.
        frame: Option<Box<Envelope>>,
    },
    NoKey,
    Failed(String),
}

/// What smudge produced for one file.
pub struct Smudged {
    pub bytes: Output,
    /// A message naming the path, when the envelope was left as it is
    /// because it is damaged (never for a missing key: see [`Filter::finish`]).
    pub error: Option<String>,
}

/// Unwrap and decrypt: the expensive, key-using part of smudge. Pure, so
/// it can run on a worker thread.
/// Never prints plaintext.
impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Opened::Plain { kids, .. } => f
                .debug_struct("Plain")
                .field("kids", kids)
                .finish_non_exhaustive(),
            Opened::NoKey => f.write_str("NoKey"),
            Opened::Failed(why) => f.debug_tuple("Failed").field(why).finish(),
        }
    }
}

/// Never prints the bytes (they may be plaintext).
impl std::fmt::Debug for Smudged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Smudged")
            .field("bytes", &self.bytes)
            .field("error", &self.error)
            .finish()
    }
}

pub(crate) fn open_work(keys: &dyn KeyProvider, work: &mut Work) -> Opened {
    let Some(env) = work.env.take() else {
        return Opened::Failed("internal: envelope already taken".to_owned());
    };
    match open_envelope(keys, env) {
        (Opened::NoKey, env) => {
            work.env = env;
            Opened::NoKey
        }
        (opened, _) => opened,
    }
}

/// Open `env` (given back when no key here opens it).
pub(crate) fn open_envelope(keys: &dyn KeyProvider, env: Envelope) -> (Opened, Option<Envelope>) {
    let (kid, dek) = match sealing::unwrap_dek(&env, keys) {
        Ok(found) => found,
        Err(OpenError::NoUsableKey { .. }) => return (Opened::NoKey, Some(env)),
        Err(e) => return (Opened::Failed(e.to_string()), None),
    };
    let aad = env.aad.clone();
    let kids = env.recipients.iter().map(|r| r.kid.clone()).collect();
    let frame = (env.ciphertext.len() >= super::STREAM_MIN).then(|| Box::new(env.frame()));
    let opened = match sealing::decrypt(env, &kid, &dek) {
        Ok(plaintext) => Opened::Plain {
            plaintext,
            aad,
            kids,
            mac: None,
            frame,
        },
        Err(e) => Opened::Failed(e.to_string()),
    };
    (opened, None)
}

impl Filter {
    /// Open `text` for `path`; `blob` is its id when Git says it.
    pub fn smudge(&mut self, path: &str, text: Vec<u8>, blob: Option<Oid>) -> Smudged {
        let prepared = self.prepare_smudge(path, text, blob);
        self.finish_smudge(prepared)
    }

    /// Open what `prepared` left to open, here.
    fn finish_smudge(&mut self, prepared: Prepared) -> Smudged {
        match prepared {
            Prepared::Done(smudged) => smudged,
            Prepared::Open(mut work) => {
                let opened = match self.shared_keys() {
                    Some(keys) => open_work(keys.as_ref(), &mut work),
                    None => Opened::NoKey,
                };
                self.complete_smudge(work, opened)
            }
        }
    }

    /// The part of smudge that needs no key: pass-through, parse, lock and
    /// aad checks. What remains is [`open_work`], which may run on another
    /// thread, then [`Filter::complete_smudge`].
    pub(crate) fn prepare_smudge(
        &mut self,
        path: &str,
        text: Vec<u8>,
        blob: Option<Oid>,
    ) -> Prepared {
        if !envelope::might_be_envelope(&text) {
            return Prepared::Done(Smudged {
                bytes: Output::Bytes(text),
                error: None,
            });
        }
        let parsed = envelope::parse(&text);
        self.judge(path, Output::Bytes(text), parsed, blob, false)
    }

    /// Should a large smudge whose text starts with `head` be read with
    /// [`Filter::prepare_smudge_stream`]? Only an envelope to open: text
    /// that stays as it is might as well be held.
    pub(crate) fn streams_smudge(&self, head: &[u8]) -> bool {
        !self.locked.work_tree_locked && envelope::might_be_envelope(head)
    }

    /// [`Filter::prepare_smudge`] of a large envelope read as it arrives:
    /// `head`, then what `next` puts in its buffer until it returns
    /// `false`. Only the ciphertext is held, never the text. If the
    /// envelope stays sealed its text is copied from `blob`, or without
    /// one (a one-shot smudge) from an unnamed temporary file it was
    /// written to as it came.
    pub(crate) fn prepare_smudge_stream(
        &mut self,
        path: &str,
        head: Vec<u8>,
        blob: Option<Oid>,
        next: &mut dyn FnMut(&mut Vec<u8>) -> std::io::Result<bool>,
    ) -> std::io::Result<Prepared> {
        use std::io::Write;
        let mut reader = envelope::Reader::new(0);
        let mut spill = match blob {
            Some(_) => None,
            None => Some(std::io::BufWriter::with_capacity(
                1 << 20,
                self.spill_file()?,
            )),
        };
        // The text's two ends and length, to tell whether it is canonical.
        let (mut first, mut last, mut len) = (Vec::new(), Vec::new(), 0);
        let mut take = |piece: &[u8]| -> std::io::Result<()> {
            reader.push(piece);
            len += piece.len();
            if first.len() < HEAD_EDGE {
                first.extend_from_slice(&piece[..piece.len().min(HEAD_EDGE - first.len())]);
            }
            if piece.len() >= TAIL_EDGE {
                last.clear();
                last.extend_from_slice(&piece[piece.len() - TAIL_EDGE..]);
            } else {
                last.extend_from_slice(piece);
                if last.len() > 2 * TAIL_EDGE {
                    last.drain(..last.len() - TAIL_EDGE);
                }
            }
            match &mut spill {
                Some(spill) => spill.write_all(piece),
                None => Ok(()),
            }
        };
        take(&head)?;
        drop(head);
        let mut piece = Vec::new();
        while next(&mut piece)? {
            take(&piece)?;
        }
        let text = match (blob, spill) {
            (Some(blob), _) => Output::Blob(blob),
            (None, Some(spill)) => Output::Spilled(spill.into_inner().map_err(|e| e.into_error())?),
            (None, None) => unreachable!("a spill is made without a blob"),
        };
        let parsed = reader.finish();
        let canonical = parsed
            .as_ref()
            .is_ok_and(|env| envelope::written_as(env, env.ciphertext.len(), len, &first, &last));
        Ok(self.judge(path, text, parsed, blob, canonical))
    }

    /// An unnamed temporary file (gone when closed, or on a crash) for an
    /// envelope's text: in the git dir, else the system's temporary
    /// directory. The text is the envelope's, never plaintext.
    fn spill_file(&self) -> std::io::Result<std::fs::File> {
        match &self.git_dir {
            Some(dir) => tempfile::tempfile_in(dir),
            None => tempfile::tempfile(),
        }
    }

    /// [`Filter::smudge`] of text that comes in pieces (a one-shot smudge's
    /// standard input past [`STREAM_MIN`](super::STREAM_MIN)): `head`, then
    /// what `next` puts in its buffer until it returns `false`. An envelope
    /// is read holding only its ciphertext.
    pub fn smudge_stream(
        &mut self,
        path: &str,
        mut head: Vec<u8>,
        next: &mut dyn FnMut(&mut Vec<u8>) -> std::io::Result<bool>,
    ) -> std::io::Result<Smudged> {
        if !self.streams_smudge(&head) {
            super::read_rest(&mut head, next)?;
            return Ok(self.smudge(path, head, None));
        }
        let prepared = self.prepare_smudge_stream(path, head, None, next)?;
        Ok(self.finish_smudge(prepared))
    }

    fn judge(
        &mut self,
        path: &str,
        text: Output,
        parsed: Result<Envelope, FormatError>,
        blob: Option<Oid>,
        canonical: bool,
    ) -> Prepared {
        let done = |bytes, error| Prepared::Done(Smudged { bytes, error });
        let env = match parsed {
            Ok(env) => env,
            Err(e) => {
                return done(
                    text,
                    Some(format!(
                        "{path}: malformed envelope ({e}); left it sealed in the work tree"
                    )),
                );
            }
        };
        if let Some(error) = self.stays_sealed(path, env.aad.as_deref()) {
            return done(text, error);
        }
        Prepared::Open(Work {
            path: path.to_owned(),
            text,
            env: Some(env),
            blob,
            canonical,
        })
    }

    /// Smudge of an envelope opened ahead of Git's request, from blob
    /// `blob` (see `prefetch`), whose text Git sent as `text`: it is not
    /// parsed again, and the checks that depend on the path run as for any
    /// smudge.
    pub(crate) fn smudge_opened(
        &mut self,
        path: &str,
        text: Vec<u8>,
        blob: Oid,
        opened: Opened,
    ) -> Smudged {
        let keep = |text, error| Smudged {
            bytes: Output::Bytes(text),
            error,
        };
        let aad = match &opened {
            Opened::Plain { aad, .. } => aad.as_deref(),
            _ => None,
        };
        if let Some(error) = self.stays_sealed(path, aad) {
            return keep(text, error);
        }
        let work = Work {
            path: path.to_owned(),
            text: Output::Bytes(text),
            env: None,
            blob: Some(blob),
            canonical: false,
        };
        self.complete_smudge(work, opened)
    }

    /// Account for an opened (or not) envelope and produce the output.
    pub(crate) fn complete_smudge(&mut self, work: Work, opened: Opened) -> Smudged {
        let Work {
            path,
            text,
            env,
            blob,
            canonical,
        } = work;
        let keep = |bytes, error| Smudged { bytes, error };
        match opened {
            Opened::Plain {
                plaintext,
                aad,
                kids,
                mac,
                frame,
            } => {
                let held: &[u8] = match &text {
                    Output::Bytes(text) => text,
                    Output::Blob(_) | Output::Spilled(_) | Output::Framed { .. } => &[],
                };
                let blob = blob.or_else(|| {
                    (matches!(text, Output::Bytes(_)) && self.wants_blob_id(plaintext.len()))
                        .then(|| blob_id(held))
                });
                if let Some(blob) = blob {
                    self.recent.insert(path, blob);
                    if let Some(cache) = self.cache_mut() {
                        let mac =
                            mac.unwrap_or_else(|| cache.mac(aad.as_deref(), &kids, &plaintext));
                        // A large text is not kept in the cache: none to
                        // give, but its frame is.
                        cache.record(blob, mac, held);
                        if let Some(frame) = frame.filter(|_| canonical) {
                            cache.record_frame(blob, &frame);
                        }
                    }
                }
                drop(text);
                keep(Output::Bytes(plaintext), None)
            }
            Opened::NoKey => {
                self.locked.left_sealed = true;
                self.locked.paths.push(path);
                let kids = env
                    .iter()
                    .flat_map(|e| e.recipients.iter().map(|r| r.kid.clone()));
                self.locked.kids.extend(kids);
                keep(text, None)
            }
            Opened::Failed(message) => {
                self.locked.left_sealed = true;
                keep(
                    text,
                    Some(format!(
                        "{path}: {message}; left it sealed in the work tree"
                    )),
                )
            }
        }
    }

    /// Must an envelope bound to `aad` stay sealed at `path` whatever the
    /// key says? `Some(None)`: the work tree is locked (counted for the
    /// summary); `Some(Some(message))`: it is bound to another path or none.
    fn stays_sealed(&mut self, path: &str, aad: Option<&str>) -> Option<Option<String>> {
        if self.locked.work_tree_locked {
            self.locked.paths.push(path.to_owned());
            return Some(None);
        }
        let problem = self.aad_problem(path, aad)?;
        self.locked.left_sealed = true;
        Some(Some(problem))
    }

    fn aad_problem(&self, path: &str, aad: Option<&str>) -> Option<String> {
        let project = self.project.as_ref().ok()?;
        let expected = project.policy.aad_for(path)?;
        match aad {
            Some(aad) if aad.starts_with("path:") && aad != expected => Some(format!(
                "{path}: the envelope is bound to {aad:?}, not this path (moved or swapped?); left it sealed in the work tree"
            )),
            // The policy binds paths, so an envelope bound to none could be
            // any file's, put here.
            None => Some(format!(
                "{path}: the policy binds envelopes to their path but this one is bound to none (put here from elsewhere, or sealed before bind_path_aad was set: re-seal with `git add --renormalize {path}`); left it sealed in the work tree"
            )),
            _ => None,
        }
    }
}

/// What to do about files left locked for want of a key.
const INSTALL: &str = "install the key, then run `git seal unlock`";

/// Files smudge left sealed in the work tree, and why.
pub(super) struct Locked {
    /// `git seal lock` locked this work tree: envelopes stay by request.
    work_tree_locked: bool,
    /// An envelope was left sealed other than by `git seal lock`.
    pub(super) left_sealed: bool,
    paths: Vec<String>,
    /// The kids the envelopes left for want of a key are wrapped to.
    kids: BTreeSet<Kid>,
}

impl Locked {
    pub(super) fn new(work_tree_locked: bool) -> Locked {
        Locked {
            work_tree_locked,
            left_sealed: false,
            paths: Vec::new(),
            kids: BTreeSet::new(),
        }
    }

    /// The one summary line, if any file was left locked; `here` lists the
    /// kids usable here (asked only when the line names them).
    /// `here` gives the kids usable here and why a provider serves none
    /// (a token that is not here, a wrong PIN), if one says.
    /// `explain` says what became of KEKs that were removed or destroyed
    /// (given `INSTALL`, the advice for one simply not installed here).
    pub(super) fn summary(
        &self,
        here: impl FnOnce() -> (Vec<Kid>, Option<String>),
        explain: impl FnOnce(&[Kid], &str) -> Option<Explained>,
    ) -> Option<String> {
        let first = self.paths.first()?;
        let n = self.paths.len();
        let files = if n == 1 { "file" } else { "files" };
        if self.work_tree_locked {
            return Some(format!("git-seal: {n} sealed {files} left locked (this work tree is locked; `git seal unlock` opens them)"));
        }
        let wrapped_to: Vec<Kid> = self.kids.iter().cloned().collect();
        let kids: Vec<&str> = self.kids.iter().map(Kid::as_str).collect();
        let (here, problem) = here();
        let here = if here.is_empty() {
            "none".to_owned()
        } else {
            here.iter().map(Kid::as_str).collect::<Vec<_>>().join(", ")
        };
        let problem = problem.map(|p| format!("; {p}")).unwrap_or_default();
        // A KEK that was removed or destroyed: say so, rather than only
        // "install the key", which may be no answer at all.
        let advice = fate::advice(
            explain(&wrapped_to, INSTALL),
            INSTALL,
            "run `git seal unlock`",
        );
        Some(format!(
            "git-seal: warning: {n} sealed {files} left locked (e.g. {first}): no usable key (wrapped to {}; keys here: {here}{problem}); {advice}",
            kids.join(", ")
        ))
    }
}
