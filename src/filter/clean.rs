//! Clean (work tree → repository): seal a file's plaintext, or return the
//! envelope it already has when the plaintext is unchanged, so that
//! `git status` stays clean when Git runs the filter again (random nonces
//! are kept: no deterministic encryption).

use super::cache::CleanCache;
use super::{blob_id, open_cache, Filter};
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
        let prior = self
            .priors
            .blob(&project.repo, path)
            .map_err(|e| format!("{path}: {e}"))?;
        if let Some(prior) = prior {
            if !candidates.contains(&prior) {
                candidates.push(prior);
            }
        }
        let mut cache = open_cache(&mut self.cache, Some(project));
        let mac = cache
            .as_deref()
            .and_then(|c| c.mac(aad.as_deref(), &kids, &plaintext));
        let wanted = Wanted {
            plaintext: &plaintext,
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

/// Where a path's previous envelope may be: the index, else HEAD. HEAD's
/// tree is read again whenever the index file changes: one filter process
/// can outlive several index rewrites (rebase, cherry-pick sequences). The
/// index is looked up one path at a time (libgit2 re-reads it when it
/// changed): a map of every entry cost a one-file `git add` 2 ms per
/// 10,000 files.
#[derive(Default)]
pub(super) struct Priors {
    /// The identity of the index file HEAD's tree was read with, and the
    /// tree (`None` inside: no commit yet).
    head_tree: Option<(Option<IndexStamp>, Option<Oid>)>,
}

/// Inode, modification time (seconds, nanoseconds) and length.
type IndexStamp = (u64, i64, i64, u64);

impl Priors {
    /// The blob `path` has in the index, else in HEAD.
    fn blob(&mut self, repo: &Repo, path: &str) -> Result<Option<Oid>, String> {
        if let Some(id) = repo.index_blob(path).map_err(|e| e.to_string())? {
            return Ok(Some(id));
        }
        // A stale HEAD could only offer an envelope that opens to the same
        // plaintext, which is checked before it is reused.
        let stamp = std::fs::metadata(repo.git_dir().join("index"))
            .ok()
            .map(|m| {
                use std::os::unix::fs::MetadataExt;
                (m.ino(), m.mtime(), m.mtime_nsec(), m.len())
            });
        let tree = match self.head_tree {
            Some((read_at, tree)) if read_at == stamp => tree,
            _ => {
                let tree = repo.head_tree_id().map_err(|e| e.to_string())?;
                self.head_tree = Some((stamp, tree));
                tree
            }
        };
        match tree {
            Some(tree) => repo.blob_in_tree(tree, path).map_err(|e| e.to_string()),
            None => Ok(None),
        }
    }
}

/// What an envelope must hold to be returned again: exactly this
/// plaintext, under the same aad, wrapped to the same kids.
struct Wanted<'a> {
    plaintext: &'a [u8],
    aad: Option<&'a str>,
    kids: &'a [Kid],
    /// The clean cache's hash of the three, when there is a cache.
    mac: Option<&'a [u8; 32]>,
}

/// The envelope `blob` again, if it holds what is `wanted`: from the cache
/// when it knows the blob, else by opening it once.
fn reuse(
    project: &Workspace,
    cache: Option<&mut CleanCache>,
    blob: Oid,
    wanted: &Wanted<'_>,
) -> Option<Vec<u8>> {
    // A hit means this blob is an envelope of exactly this plaintext, aad
    // and recipients; its text is often in the cache too.
    if let (Some(mac), Some(cache)) = (wanted.mac, cache.as_deref()) {
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
    let mut wrapped_to: Vec<&Kid> = env.recipients.iter().map(|r| &r.kid).collect();
    let mut kids: Vec<&Kid> = wanted.kids.iter().collect();
    wrapped_to.sort_unstable_by_key(|k| k.as_str());
    kids.sort_unstable_by_key(|k| k.as_str());
    if env.aad.as_deref() != wanted.aad || wrapped_to != kids {
        return None;
    }
    let opened = keys::open(env, project.opener().as_ref()).ok()?;
    if opened != wanted.plaintext {
        return None;
    }
    if let (Some(mac), Some(cache)) = (wanted.mac, cache) {
        cache.record(blob, *mac, &text);
    }
    Some(text)
}
