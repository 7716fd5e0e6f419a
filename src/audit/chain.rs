//! Reading and appending chain commits. An entry commit is: a tree holding
//! only `entry.json`, the entry's parents, the actor as author and
//! committer, and an SSH signature in the `gpgsig` header. Appends update
//! `refs/seal/audit` with compare-and-swap and retry, so concurrent
//! appenders in one repository never drop each other's entries.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use super::entry::{self, Actor, Entry, EntryError};
use super::signer::Signer;
use super::AuditError;
use crate::repo::{Oid, RawKind, Repo, RepoError};

/// Why a chain commit cannot be read as an entry.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("commit has no message separator")]
    NoSeparator,
    #[error("unexpected continuation line in commit header")]
    Continuation,
    #[error("unexpected commit header {0:?}")]
    Header(String),
    #[error("commit has no tree")]
    NoTree,
    #[error("bad object id {0:?}")]
    BadId(String),
    #[error(
        "the entry's tree must hold exactly one file, {} (mode 100644)",
        entry::FILE
    )]
    TreeShape,
    #[error("{0} is not a commit in this repository")]
    NotACommit(Oid),
    #[error("{what} {id} is missing")]
    Missing { what: &'static str, id: Oid },
    #[error(transparent)]
    Entry(#[from] EntryError),
    #[error(transparent)]
    Repo(#[from] RepoError),
}

/// Where the chain lives.
pub const REF: &str = "refs/seal/audit";

/// How many times an append retries after losing a compare-and-swap race.
const ATTEMPTS: u32 = 400;

/// A chain commit split the way `git verify-commit` splits it.
#[derive(Debug)]
pub struct RawCommit {
    pub tree: Oid,
    pub parents: Vec<Oid>,
    /// The commit without its `gpgsig` header: what the signature covers.
    pub payload: Vec<u8>,
    /// The `gpgsig` header's value, continuation lines joined.
    pub signature: Option<String>,
}

/// Parse a raw commit. Only the headers git writes for an entry are
/// accepted (tree, parent, author, committer, gpgsig).
pub fn parse_commit(raw: &[u8]) -> Result<RawCommit, CommitError> {
    let mut tree = None;
    let mut parents = Vec::new();
    let mut payload = Vec::with_capacity(raw.len());
    let mut signature: Option<String> = None;
    let mut rest = raw;
    let mut in_sig = false;
    loop {
        let Some(end) = rest.iter().position(|b| *b == b'\n') else {
            return Err(CommitError::NoSeparator);
        };
        let line = &rest[..end];
        let after = &rest[end + 1..];
        if line.is_empty() {
            payload.extend_from_slice(rest);
            break;
        }
        if let Some(cont) = line.strip_prefix(b" ") {
            if in_sig {
                let sig = signature.as_mut().expect("in signature");
                sig.push_str(&String::from_utf8_lossy(cont));
                sig.push('\n');
            } else {
                return Err(CommitError::Continuation);
            }
            rest = after;
            continue;
        }
        in_sig = false;
        let (key, value) = match line.iter().position(|b| *b == b' ') {
            Some(sp) => (&line[..sp], &line[sp + 1..]),
            None => (line, &b""[..]),
        };
        match key {
            b"tree" if tree.is_none() && parents.is_empty() => tree = Some(parse_oid(value)?),
            b"parent" if tree.is_some() => parents.push(parse_oid(value)?),
            b"author" | b"committer" => {}
            b"gpgsig" if signature.is_none() => {
                let mut sig = String::from_utf8_lossy(value).into_owned();
                sig.push('\n');
                signature = Some(sig);
                in_sig = true;
                rest = after;
                continue;
            }
            other => {
                return Err(CommitError::Header(
                    String::from_utf8_lossy(other).into_owned(),
                ))
            }
        }
        payload.extend_from_slice(&rest[..=end]);
        rest = after;
    }
    Ok(RawCommit {
        tree: tree.ok_or(CommitError::NoTree)?,
        parents,
        payload,
        signature,
    })
}

fn parse_oid(hex: &[u8]) -> Result<Oid, CommitError> {
    std::str::from_utf8(hex)
        .ok()
        .filter(|h| h.len() == 40)
        .and_then(|h| Oid::from_str(h).ok())
        .ok_or_else(|| CommitError::BadId(String::from_utf8_lossy(hex).into_owned()))
}

/// The blob id of `entry.json` in a raw tree that holds exactly that file.
pub fn entry_blob_of_tree(raw: &[u8]) -> Result<Oid, CommitError> {
    let prefix = format!("100644 {}\0", entry::FILE);
    let prefix = prefix.as_bytes();
    if raw.len() == prefix.len() + 20 && raw.starts_with(prefix) {
        if let Ok(id) = Oid::from_bytes(&raw[prefix.len()..]) {
            return Ok(id);
        }
    }
    Err(CommitError::TreeShape)
}

pub(crate) fn read_commit(repo: &Repo, id: Oid) -> Result<RawCommit, CommitError> {
    repo.with_raw(id, RawKind::Commit, parse_commit)?
        .ok_or(CommitError::NotACommit(id))?
}

/// The entry a chain commit's tree holds.
pub fn read_entry(repo: &Repo, tree: Oid) -> Result<Entry, CommitError> {
    let blob = repo
        .with_raw(tree, RawKind::Tree, entry_blob_of_tree)?
        .ok_or(CommitError::Missing {
            what: "tree",
            id: tree,
        })??;
    Ok(repo
        .with_raw(blob, RawKind::Blob, Entry::parse)?
        .ok_or(CommitError::Missing {
            what: "entry.json blob",
            id: blob,
        })??)
}

pub fn tip(repo: &Repo) -> Option<Oid> {
    repo.ref_target(REF)
}

/// The actor appending: Git's committer identity (environment, then
/// config), as `git commit` would record it.
fn actor_identity(repo: &Repo) -> (String, String) {
    let pick = |vars: [&str; 2], key: &str, fallback: &str| {
        std::env::var(vars[0])
            .ok()
            .filter(|v| !v.is_empty())
            .or_else(|| repo.config_get(key).filter(|v| !v.is_empty()))
            .or_else(|| std::env::var(vars[1]).ok().filter(|v| !v.is_empty()))
            .unwrap_or_else(|| fallback.to_owned())
    };
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let name = pick(
        ["GIT_COMMITTER_NAME", "GIT_AUTHOR_NAME"],
        "user.name",
        &user,
    );
    let email = pick(
        ["GIT_COMMITTER_EMAIL", "GIT_AUTHOR_EMAIL"],
        "user.email",
        &format!("{user}@localhost"),
    );
    (name, email)
}

/// One entry to append.
#[derive(Debug)]
pub struct NewEntry<'a> {
    pub event: &'a str,
    pub data: Map<String, Value>,
}

/// When an append should happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum When {
    Always,
    /// Only when the chain does not exist yet (the `init` entry).
    ChainEmpty,
}

/// Write (but do not publish) a signed entry commit on top of `parents`.
pub fn write_entry(
    repo: &Repo,
    signer: &Signer,
    parents: &[Oid],
    seq: u64,
    new: &NewEntry<'_>,
) -> Result<Oid, AuditError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let (name, email) = actor_identity(repo);
    let entry = Entry {
        schema: entry::SCHEMA.into(),
        seq,
        time: humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(now)).to_string(),
        actor: Actor {
            name: name.clone(),
            email: email.clone(),
            signer: signer.fingerprint().to_owned(),
        },
        event: new.event.to_owned(),
        data: new.data.clone(),
    };
    let blob = repo.write_blob(entry.to_text().as_bytes())?;
    let tree = repo.write_one_file_tree(entry::FILE, blob)?;
    let message = format!("git-seal audit: {} (seq {seq})\n", new.event);
    let buffer = repo.commit_buffer(tree, parents, (&name, &email), now as i64, &message)?;
    let signature = signer.sign(buffer.as_bytes())?;
    Ok(repo.write_signed_commit(&buffer, signature.trim_end())?)
}

/// The sequence number of the entry at `id`.
pub(crate) fn seq_of(repo: &Repo, id: Oid) -> Result<u64, AuditError> {
    let commit = read_commit(repo, id).map_err(|e| AuditError::Chain {
        commit: id,
        problem: e,
    })?;
    let entry = read_entry(repo, commit.tree).map_err(|e| AuditError::Chain {
        commit: id,
        problem: e,
    })?;
    Ok(entry.seq)
}

/// Append one entry at the tip, retrying when another appender wins the
/// race. Returns the new entry's commit (`None` if `when` said not to).
pub fn append(
    repo: &Repo,
    signer: &Signer,
    new: &NewEntry<'_>,
    when: When,
) -> Result<Option<Oid>, AuditError> {
    for attempt in 0..ATTEMPTS {
        let tip = tip(repo);
        if when == When::ChainEmpty && tip.is_some() {
            return Ok(None);
        }
        let seq = match tip {
            Some(id) => seq_of(repo, id)? + 1,
            None => 1,
        };
        let parents: Vec<Oid> = tip.into_iter().collect();
        let id = write_entry(repo, signer, &parents, seq, new)?;
        if repo.update_ref_cas(REF, id, tip, &format!("git-seal audit: {}", new.event))? {
            // An entry of our own: the chain grew to it. (Remembering it
            // only helps to notice a later cut; failing to is no error.)
            let _ = super::watermark::advance(repo, id);
            return Ok(Some(id));
        }
        backoff(attempt);
    }
    Err(AuditError::Contended { attempts: ATTEMPTS })
}

/// Sleep a little, longer after each lost race, jittered so racers spread.
pub(crate) fn backoff(attempt: u32) {
    let mut byte = [0u8; 1];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut byte);
    let base = 1 + u64::from(attempt.min(20));
    std::thread::sleep(Duration::from_millis(
        base + u64::from(byte[0]) % (base * 2),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_commit_splits_the_signature_out() {
        let raw = b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n\
parent 1111111111111111111111111111111111111111\n\
author A <a@x> 1 +0000\n\
committer A <a@x> 1 +0000\n\
gpgsig -----BEGIN SSH SIGNATURE-----\n abc\n -----END SSH SIGNATURE-----\n\
\n\
msg\n";
        let c = parse_commit(raw).unwrap();
        assert_eq!(c.parents.len(), 1);
        assert_eq!(
            c.signature.as_deref(),
            Some("-----BEGIN SSH SIGNATURE-----\nabc\n-----END SSH SIGNATURE-----\n")
        );
        assert_eq!(
            String::from_utf8(c.payload).unwrap(),
            "tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nparent 1111111111111111111111111111111111111111\nauthor A <a@x> 1 +0000\ncommitter A <a@x> 1 +0000\n\nmsg\n"
        );
        let odd = b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nencoding x\n\nm";
        assert!(parse_commit(odd)
            .unwrap_err()
            .to_string()
            .contains("encoding"));
    }
}
