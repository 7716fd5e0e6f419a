//! Clean (work tree → repository): seal a file's plaintext, or return the
//! envelope it already has when the plaintext is unchanged, so that
//! `git status` stays clean when Git runs the filter again (random nonces
//! are kept: no deterministic encryption).

use super::cache::CleanCache;
use zeroize::Zeroize;

use super::{blob_id, framed_blob_id, open_cache, read_rest, Filter, Output};
use crate::envelope;
use crate::keys::{self, sealing};
use crate::kid::Kid;
use crate::repo::{Oid, Repo};
use crate::workspace::Workspace;

impl Filter {
    /// Seal `plaintext` for `path`. An error means nothing may be stored.
    pub fn clean(&mut self, path: &str, plaintext: Vec<u8>) -> Result<Vec<u8>, String> {
        // git-seal's own files (.seal/, .gitattributes) are never sealed,
        // even where a `.gitattributes` line gives them the filter.
        if crate::policy::is_exempt(path) {
            return Ok(plaintext);
        }
        if envelope::might_be_envelope(&plaintext) {
            match envelope::parse(&plaintext) {
                Ok(_) => return Ok(plaintext),
                // Sealing this would put an envelope inside an envelope.
                Err(e) if envelope::claims_envelope(&plaintext) => {
                    return Err(format!(
                        "{path}: is a damaged or extended git-seal envelope ({e}), not plaintext: it was probably edited while locked; run `git seal unlock` (or `git checkout -- {path}`) and edit the plaintext"
                    ))
                }
                Err(_) => {}
            }
        }
        let refuse = |e: &dyn std::fmt::Display| refusal(path, e);
        let Context {
            aad,
            kids,
            candidates,
        } = self.context(path)?;
        let project = self.project.as_ref().map_err(|e| refuse(e))?;
        let mut cache = open_cache(&mut self.cache, Some(project));
        let mac = cache
            .as_deref()
            .map(|c| c.mac(aad.as_deref(), &kids, &plaintext));
        let wanted = Wanted {
            plaintext: Some(&plaintext),
            aad: aad.as_deref(),
            kids: &kids,
            mac: mac.as_ref(),
        };
        for blob in candidates {
            if let Some(same) = reuse(project, cache.as_deref_mut(), blob, &wanted) {
                self.recent.insert(path.to_owned(), blob);
                return Ok(same);
            }
        }
        // Something new is sealed: only with a provider this clone may use.
        project.check_install_lock().map_err(|e| refuse(&e))?;
        for kid in &kids {
            project.keys().can_seal(kid).map_err(|e| refuse(&e))?;
        }
        let targets = project.targets_for(Some(path)).map_err(|e| refuse(&e))?;
        let wraps = self
            .wraps
            .take(&targets, self.long_running)
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
}

/// Inputs at least this large are sealed as they arrive
/// ([`Filter::clean_stream`]).
pub const STREAM_MIN: usize = 1 << 20;

impl Filter {
    /// Seal a file that comes in pieces: `head` (what was read so far),
    /// then each piece `next` puts in its buffer until it returns `false`.
    /// The input is always read to its end, so the protocol stays in step
    /// on an error. Input that may be an envelope, and git-seal's own
    /// files, are read whole and go to [`Filter::clean`]. Otherwise:
    ///
    /// - when the path's previous envelope is large and its frame is in
    ///   the cache, each piece is encrypted under that envelope's DEK and
    ///   nonce and held ([`envelope::Again`]), in case the file is
    ///   unchanged (a touched file in `git status`): if the tag comes out
    ///   the same, the ciphertext is that envelope's own, and its text is
    ///   written around it as it is sent, rather than its blob read and
    ///   inflated; if not, the plaintext is taken back, hashed for the
    ///   clean cache (another candidate may hold it) and sealed anew;
    /// - otherwise each piece is hashed for the clean cache and encrypted
    ///   onto the ciphertext held for a new envelope, whose text is written
    ///   around it as it is sent.
    ///
    /// Either way about the file's size is held, never its text.
    pub fn clean_stream(
        &mut self,
        path: &str,
        mut head: Vec<u8>,
        next: &mut dyn FnMut(&mut Vec<u8>) -> std::io::Result<bool>,
    ) -> std::io::Result<Result<Output, String>> {
        if crate::policy::is_exempt(path) || envelope::might_be_envelope(&head) {
            read_rest(&mut head, next)?;
            return Ok(self.clean(path, head).map(Output::Bytes));
        }
        let mut piece = Vec::new();
        let mut streaming = self.start_stream(path);
        if let Ok(streaming) = &mut streaming {
            streaming.feed(&mut head);
        }
        head.zeroize();
        drop(head);
        while next(&mut piece)? {
            if let Ok(streaming) = &mut streaming {
                streaming.feed(&mut piece);
            }
        }
        piece.zeroize();
        match streaming {
            Ok(streaming) => Ok(self.finish_stream(path, streaming)),
            Err(e) => Ok(Err(e)),
        }
    }

    /// Everything a streamed clean needs before the first byte: the
    /// candidates for reuse, the cache's hasher, and either the frame of
    /// the previous envelope to make again, or (when this clone may seal)
    /// the new envelope's content stream. A clone that may not seal can
    /// still return an unchanged file's envelope.
    fn start_stream(&mut self, path: &str) -> Result<Streaming, String> {
        let refuse = |e: &dyn std::fmt::Display| refusal(path, e);
        let Context {
            aad,
            kids,
            candidates,
        } = self.context(path)?;
        let project = self.project.as_ref().map_err(|e| refuse(e))?;
        let cache = open_cache(&mut self.cache, Some(project));
        let mac = cache
            .as_deref()
            .map(|c| c.mac_hasher(aad.as_deref(), &kids));
        let again = cache.as_deref().and_then(|cache| {
            let (blob, frame) = candidates
                .iter()
                .find_map(|&blob| Some((blob, cache.frame(blob)?)))?;
            // Same aad and recipients, else the policy changed: seal anew.
            if frame.aad != aad || !same_kids(&frame.recipients, &kids) {
                return None;
            }
            let (_, dek) = sealing::unwrap_dek(&frame, project.opener().as_ref()).ok()?;
            let again = Box::new(envelope::Again::new(dek, frame.nonce, aad.as_deref()));
            Some((blob, frame, again))
        });
        let may_seal = project
            .check_install_lock()
            .map_err(|e| refuse(&e))
            .and_then(|()| {
                kids.iter()
                    .try_for_each(|kid| project.keys().can_seal(kid).map_err(|e| refuse(&e)))
            })
            .and_then(|()| project.targets_for(Some(path)).map_err(|e| refuse(&e)));
        let mode = match (again, may_seal) {
            (Some((blob, frame, again)), may_seal) => Mode::Again {
                blob,
                frame,
                again,
                may_seal,
            },
            (None, Ok(targets)) => Mode::Sealing(Box::new(self.new_envelope(
                path,
                &targets,
                aad.as_deref(),
            )?)),
            (None, Err(e)) => Mode::Refused(e),
        };
        Ok(Streaming {
            aad,
            kids,
            candidates,
            mac,
            mode,
        })
    }

    /// The content stream of a new envelope of `path` to `targets`.
    fn new_envelope(
        &mut self,
        path: &str,
        targets: &[keys::WrapTarget],
        aad: Option<&str>,
    ) -> Result<NewEnvelope, String> {
        let cannot = |e: &dyn std::fmt::Display| format!("{path}: cannot seal: {e}");
        let wraps = self
            .wraps
            .take(targets, self.long_running)
            .map_err(|e| cannot(&e))?;
        let (stream, recipients) =
            sealing::seal_stream_prepared(aad, wraps).map_err(|e| cannot(&e))?;
        Ok(NewEnvelope {
            stream,
            ciphertext: Vec::new(),
            recipients,
        })
    }

    /// The unchanged file's envelope if a candidate holds the same
    /// plaintext (made again as it came, else copied from its blob), else
    /// the new one.
    fn finish_stream(&mut self, path: &str, streaming: Streaming) -> Result<Output, String> {
        let Streaming {
            aad,
            kids,
            candidates,
            mac,
            mode,
        } = streaming;
        let mut mac = mac;
        let mode = match mode {
            Mode::Again {
                blob,
                frame,
                again,
                may_seal,
            } => match again.finish(&frame.tag) {
                Ok(ciphertext) => {
                    self.recent.insert(path.to_owned(), blob);
                    return Ok(Output::Framed { frame, ciphertext });
                }
                // Not hashed as it came: only needed now.
                Err(held) => {
                    if let Some(mac) = &mut mac {
                        for piece in held.expose() {
                            mac.update(piece);
                        }
                    }
                    Mode::Held { held, may_seal }
                }
            },
            mode => mode,
        };
        let mac = mac.map(|m| *m.finalize().as_bytes());
        let project = self.project.as_ref().map_err(|e| e.clone())?;
        let mut cache = open_cache(&mut self.cache, Some(project));
        if let (Some(mac), Some(cache)) = (&mac, cache.as_deref()) {
            let stored = |b: Oid| cache.matches(b, mac) && project.repo.has_object(b);
            if let Some(&blob) = candidates.iter().find(|&&b| stored(b)) {
                self.recent.insert(path.to_owned(), blob);
                return Ok(Output::Blob(blob));
            }
        }
        // Not in the cache: open each candidate once and compare hashes.
        let wanted = Wanted {
            plaintext: None,
            aad: aad.as_deref(),
            kids: &kids,
            mac: mac.as_ref(),
        };
        for blob in candidates {
            if reuse(project, cache.as_deref_mut(), blob, &wanted).is_some() {
                self.recent.insert(path.to_owned(), blob);
                return Ok(Output::Blob(blob));
            }
        }
        let new = match mode {
            Mode::Sealing(new) => *new,
            Mode::Refused(e) => return Err(e),
            // Changed: sealed anew, in place, from what is held.
            Mode::Held { held, may_seal } => {
                let mut new = self.new_envelope(path, &may_seal?, aad.as_deref())?;
                new.ciphertext = held.take();
                for piece in &mut new.ciphertext {
                    new.stream.encrypt(piece);
                }
                new
            }
            Mode::Again { .. } => unreachable!("finished above"),
        };
        let NewEnvelope {
            stream,
            ciphertext,
            recipients,
        } = new;
        let nonce = stream.nonce();
        let tag = stream.finish();
        let frame = envelope::Envelope {
            recipients,
            nonce,
            ciphertext: Vec::new(),
            tag,
            aad,
        };
        let blob = framed_blob_id(&frame, &ciphertext);
        self.recent.insert(path.to_owned(), blob);
        if let (Some(mac), Some(cache)) = (mac, self.cache_mut()) {
            // A large text is not kept in the cache: its frame is.
            cache.record(blob, mac, &[]);
            cache.record_frame(blob, &frame);
        }
        Ok(Output::Framed { frame, ciphertext })
    }
}

impl Filter {
    /// What sealing `path` depends on, and the candidates for "the same
    /// envelope again": what this process last produced or opened for the
    /// path, then the index (else HEAD) blob.
    fn context(&mut self, path: &str) -> Result<Context, String> {
        let project = self.project.as_ref().map_err(|e| refusal(path, e))?;
        let aad = project.policy.aad_for(path);
        // Only the kids: the wrap targets (public keys decoded) are made
        // when something new is sealed, not for the unchanged files of a
        // `git status`.
        let kids = project
            .recipients_for(Some(path))
            .map_err(|e| refusal(path, &e))?;
        let mut candidates: Vec<Oid> = self.recent.get(path).copied().into_iter().collect();
        // The bytes that name the path: the last path Git named with this
        // text.
        let named = self
            .git_paths
            .get(path)
            .map_or(path.as_bytes(), Vec::as_slice);
        let prior = self
            .priors
            .blob(&project.repo, named)
            .map_err(|e| format!("{path}: {e}"))?;
        candidates.extend(prior.filter(|p| !candidates.contains(p)));
        Ok(Context {
            aad,
            kids,
            candidates,
        })
    }
}

fn refusal(path: &str, e: &dyn std::fmt::Display) -> String {
    format!("{path}: cannot seal, so refusing to store plaintext: {e}")
}

struct Context {
    aad: Option<String>,
    kids: Vec<Kid>,
    candidates: Vec<Oid>,
}

/// A streamed clean in progress.
struct Streaming {
    aad: Option<String>,
    kids: Vec<Kid>,
    /// Blobs that may already hold this plaintext.
    candidates: Vec<Oid>,
    /// The clean cache's hash of what has come so far.
    mac: Option<blake3::Hasher>,
    mode: Mode,
}

impl Streaming {
    /// Take the next piece of plaintext (left as ciphertext or as it was:
    /// the caller wipes it).
    fn feed(&mut self, data: &mut [u8]) {
        match &mut self.mode {
            Mode::Sealing(new) => {
                if let Some(mac) = &mut self.mac {
                    mac.update(data);
                }
                new.stream.encrypt_onto(data, &mut new.ciphertext);
            }
            // Hashed for the cache only if it was not the envelope's.
            Mode::Again { again, .. } => again.push(data),
            Mode::Refused(_) => {
                if let Some(mac) = &mut self.mac {
                    mac.update(data);
                }
            }
            Mode::Held { .. } => unreachable!("only once Again is finished"),
        }
    }
}

/// What a streamed clean does with each piece.
enum Mode {
    /// Seal it into a new envelope.
    Sealing(Box<NewEnvelope>),
    /// Nothing: this clone may not seal (why), so only an unchanged
    /// file's envelope can be given.
    Refused(String),
    /// Make `blob`'s envelope again (`frame` is its text without the
    /// ciphertext), in case this is its plaintext. `may_seal`: the targets
    /// to seal to if it is not.
    Again {
        blob: Oid,
        frame: envelope::Envelope,
        again: Box<envelope::Again>,
        may_seal: Result<Vec<keys::WrapTarget>, String>,
    },
    /// The plaintext, held: it was not `Again`'s.
    Held {
        held: crate::secret::Pieces,
        may_seal: Result<Vec<keys::WrapTarget>, String>,
    },
}

/// A new envelope being made: its content stream, its ciphertext so far
/// (its text is written around it as it is sent: [`Output::Framed`]), and
/// the recipients its DEK is wrapped to.
struct NewEnvelope {
    stream: envelope::SealStream,
    ciphertext: Vec<Vec<u8>>,
    recipients: Vec<envelope::Recipient>,
}

/// Where a path's previous envelope may be: the index, else HEAD. Both are
/// read again whenever the index file changes (one stat per file): one
/// filter process can outlive several index rewrites (rebase, cherry-pick
/// sequences). The index is looked up one path at a time: a map of every
/// entry cost a one-file `git add` 2 ms per 10,000 files.
///
/// The first path is asked of `git ls-files`: Git reads a large index
/// several times faster than libgit2 (3 ms against 7 ms at 10,000 entries),
/// and a one-file `git add`, or the filter run `git commit` makes on the
/// file just added, asks for one path only.
#[derive(Default)]
pub(super) struct Priors {
    /// The identity of the index file as last read, and HEAD's tree then
    /// (`None` inside: no commit yet).
    head_tree: Option<(Option<IndexStamp>, Option<Oid>)>,
    /// A path was asked of Git already.
    asked_git: bool,
    /// The git dir and its index file, open: the index is looked at once
    /// per file, and a look at an open file walks no path (walking the
    /// absolute path was most of that look's cost). Git replaces the index
    /// by renaming a new file over it, which leaves the open one unlinked.
    git_dir: Option<std::fs::File>,
    index: Option<std::fs::File>,
}

/// Inode, modification time (seconds, nanoseconds) and length.
type IndexStamp = (u64, i64, i64, u64);

impl Priors {
    /// The blob `path` has in the index, else in HEAD.
    fn blob(&mut self, repo: &Repo, path: &[u8]) -> Result<Option<Oid>, String> {
        let text = |e: crate::repo::RepoError| e.to_string();
        let asked = match std::mem::replace(&mut self.asked_git, true) {
            false => repo.staged_blob(path).ok(),
            true => None,
        };
        let (staged, tree) = match asked {
            Some(staged) => (staged, repo.head_tree_id().map_err(text)?),
            None => {
                let tree = self.fresh_index(repo)?;
                (repo.index_blob(path).map_err(text)?, tree)
            }
        };
        if staged.is_some() {
            return Ok(staged);
        }
        // A stale HEAD could only offer an envelope that opens to the same
        // plaintext, which is checked before it is reused.
        match tree {
            Some(tree) => repo.blob_in_tree(tree, path).map_err(text),
            None => Ok(None),
        }
    }

    /// The index file's identity now (`None` if there is none).
    fn index_stamp(&mut self, repo: &Repo) -> Option<IndexStamp> {
        use rustix::fs::{fstat, openat, Mode, OFlags};
        let mut stat = self.index.as_ref().and_then(|f| fstat(f).ok());
        if stat.is_none_or(|s| s.st_nlink == 0) {
            if self.git_dir.is_none() {
                self.git_dir = Some(std::fs::File::open(repo.git_dir()).ok()?);
            }
            let dir = self.git_dir.as_ref()?;
            let flags = OFlags::RDONLY | OFlags::CLOEXEC;
            self.index = openat(dir, "index", flags, Mode::empty())
                .ok()
                .map(Into::into);
            stat = fstat(self.index.as_ref()?).ok();
        }
        let stat = stat?;
        #[allow(clippy::unnecessary_cast)] // the field types vary by platform
        Some((
            stat.st_ino as u64,
            stat.st_mtime as i64,
            stat.st_mtime_nsec as i64,
            stat.st_size as u64,
        ))
    }

    /// Read the index again if its file changed, and give HEAD's tree as
    /// of then.
    fn fresh_index(&mut self, repo: &Repo) -> Result<Option<Oid>, String> {
        let stamp = self.index_stamp(repo);
        match self.head_tree {
            Some((read_at, tree)) if read_at == stamp => Ok(tree),
            _ => {
                repo.reread_index().map_err(|e| e.to_string())?;
                let tree = repo.head_tree_id().map_err(|e| e.to_string())?;
                self.head_tree = Some((stamp, tree));
                Ok(tree)
            }
        }
    }
}

/// What an envelope must hold to be returned again: exactly this
/// plaintext, under the same aad, wrapped to the same kids.
struct Wanted<'a> {
    /// `None` once a streamed plaintext is gone: then `mac` stands for it.
    plaintext: Option<&'a [u8]>,
    aad: Option<&'a str>,
    kids: &'a [Kid],
    /// The clean cache's hash of the three, when there is a cache.
    mac: Option<&'a [u8; 32]>,
}

/// The envelope `blob` again, if it holds what is `wanted`: from the cache
/// when it knows the blob, else by opening it once.
fn reuse(
    project: &Workspace,
    mut cache: Option<&mut CleanCache>,
    blob: Oid,
    wanted: &Wanted<'_>,
) -> Option<Vec<u8>> {
    // A hit means this blob is an envelope of exactly this plaintext, aad
    // and recipients; its text is often in the cache too.
    if let (Some(mac), Some(cache)) = (wanted.mac, cache.as_deref_mut()) {
        if cache.matches(blob, mac) {
            return match cache.text(blob) {
                Some(text) => Some(text),
                None => project.repo.blob(blob).ok(),
            };
        }
    }
    let text = project.repo.blob(blob).ok()?;
    let env = envelope::parse(&text).ok()?;
    // Same aad and same recipients, or the policy changed: seal anew.
    if env.aad.as_deref() != wanted.aad || !same_kids(&env.recipients, wanted.kids) {
        return None;
    }
    // A frame only where it gives the text back: a canonical one.
    let len = env.ciphertext.len();
    let frame = (len >= STREAM_MIN && envelope::written_as(&env, len, text.len(), &text, &text))
        .then(|| env.frame());
    let opened = keys::open(env, project.opener().as_ref()).ok()?;
    let same = match (wanted.plaintext, wanted.mac, cache.as_deref()) {
        (Some(plaintext), ..) => opened == plaintext,
        (None, Some(mac), Some(cache)) => cache.mac(wanted.aad, wanted.kids, &opened) == *mac,
        (None, ..) => false,
    };
    if !same {
        return None;
    }
    if let (Some(mac), Some(cache)) = (wanted.mac, cache) {
        cache.record(blob, *mac, &text);
        if let Some(frame) = frame {
            cache.record_frame(blob, &frame);
        }
    }
    Some(text)
}

/// Is an envelope with these recipients wrapped to exactly `kids`?
fn same_kids(recipients: &[envelope::Recipient], kids: &[Kid]) -> bool {
    let mut wrapped_to: Vec<&Kid> = recipients.iter().map(|r| &r.kid).collect();
    let mut kids: Vec<&Kid> = kids.iter().collect();
    wrapped_to.sort_unstable_by_key(|k| k.as_str());
    kids.sort_unstable_by_key(|k| k.as_str());
    wrapped_to == kids
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stamp changes when Git renames a new index over the old one
    /// (the open file is then unlinked) or the file is rewritten in place,
    /// and not otherwise.
    #[test]
    fn the_index_stamp_sees_every_new_index() {
        let dir = tempfile::tempdir().unwrap();
        git2::Repository::init(dir.path()).unwrap();
        let repo = Repo::discover(dir.path()).unwrap();
        let index = dir.path().join(".git").join("index");
        let mut priors = Priors::default();
        assert_eq!(priors.index_stamp(&repo), None, "no index yet");
        std::fs::write(&index, b"first").unwrap();
        let first = priors.index_stamp(&repo);
        assert!(first.is_some());
        assert_eq!(priors.index_stamp(&repo), first);
        // A new file renamed over it, as Git writes the index.
        let lock = dir.path().join(".git").join("index.lock");
        std::fs::write(&lock, b"second").unwrap();
        std::fs::rename(&lock, &index).unwrap();
        let second = priors.index_stamp(&repo);
        assert!(second.is_some() && second != first, "{second:?}");
        assert_eq!(priors.index_stamp(&repo), second);
        // Rewritten in place, longer.
        std::fs::write(&index, b"second, rewritten").unwrap();
        let third = priors.index_stamp(&repo);
        assert!(third.is_some() && third != second, "{third:?}");
        // Removed.
        std::fs::remove_file(&index).unwrap();
        assert_eq!(priors.index_stamp(&repo), None);
    }
}
