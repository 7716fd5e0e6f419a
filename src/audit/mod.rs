//! The signed audit chain in `refs/seal/audit` (SPEC §6, docs/audit.md).
//!
//! Each entry is one commit whose tree holds `entry.json`, signed with the
//! actor's ed25519 signer key as an SSH signature that stock
//! `git verify-commit` accepts. This module owns the entry format
//! (`entry`), signer keys (`signer`), reading and appending (`chain`),
//! verification (`verify`) and the exchange with remotes (`sync`).

pub mod approvals;
pub mod chain;
pub mod entry;
#[cfg(test)]
pub(crate) mod lab;
pub mod log;
pub mod signer;
pub mod sync;
pub mod verify;

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use crate::envelope;
use crate::policy;
use crate::repo::{Oid, Repo, RepoError};
use crate::workspace::Workspace;

pub use chain::{append, NewEntry, When, REF};
pub use signer::Signer;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit signer: {0}")]
    Signer(#[from] signer::SignerError),
    #[error("audit chain entry {commit}: {problem}")]
    Chain {
        commit: Oid,
        problem: chain::CommitError,
    },
    #[error(
        "audit: {} stayed contended after {attempts} attempts; try again",
        chain::REF
    )]
    Contended { attempts: u32 },
    #[error(transparent)]
    Repo(#[from] RepoError),
}

/// Where `git fetch` keeps a remote's chain: `init` adds
/// [`fetch_refspec`] to each remote, and `audit sync` / post-merge take
/// entries from there into [`REF`].
pub(crate) fn tracking_ref(remote: &str) -> String {
    format!("refs/seal-remote/{remote}/audit")
}

/// The fetch refspec `init` configures for `remote`. It does not fetch into
/// `refs/seal/` itself: a forced fetch there would drop local entries that
/// are not pushed yet, and an unforced one would fail `git pull` whenever
/// the chains diverged.
pub fn fetch_refspec(remote: &str) -> String {
    format!("+refs/seal/*:refs/seal-remote/{remote}/*")
}

/// This user's signer, if the chain exists and trusts it at its tip;
/// otherwise `None` after a one-line warning that says what to do. An
/// entry signed by an untrusted key would make the whole chain fail
/// verification, so such events are reported here instead of recorded.
fn trusted_signer(repo: &Repo) -> Result<Option<Signer>, AuditError> {
    let Some(tip) = chain::tip(repo) else {
        eprintln!(
            "git-seal: audit: no audit chain here ({REF}); this event is not recorded (run `git seal init` to start the chain)"
        );
        return Ok(None);
    };
    let signer = Signer::load_or_create()?;
    if named_signers(repo, tip)?.contains(signer.fingerprint()) {
        return Ok(Some(signer));
    }
    eprintln!(
        "git-seal: audit: your signer {} is not trusted by this repository's audit chain, so this event is not recorded; ask a trusted signer to run `git seal audit signer add '{}' --email EMAIL`",
        signer.fingerprint(),
        signer.public_openssh()
    );
    Ok(None)
}

/// First line of `.git/seal/audit-signers`. A cache without it was
/// written before signer removal existed and may still list a removed
/// signer, so it is rebuilt from the whole chain.
const SIGNERS_CACHE_FORMAT: &str = "git-seal audit-signers v2";

/// The signers the chain at `tip` names as trusted (the `init` entry's
/// signer and every `signer-add` fingerprint, less every `signer-remove`
/// one, applied parents first). This is the hooks' quick test of whether
/// to append, not verification: it reads only the entries added since the
/// last call (remembered in `.git/seal/audit-signers` as the tip and the
/// set there), so a commit stays fast on a long chain. `audit verify`
/// checks properly: it applies each entry's ancestors only, so where
/// diverged chains were merged and one side removed a signer that the
/// other side added on its own, the two can disagree (see [`verify`]).
fn named_signers(repo: &Repo, tip: Oid) -> Result<BTreeSet<String>, AuditError> {
    let cache = repo.common_dir().join("seal").join("audit-signers");
    let mut known: Option<Oid> = None;
    let mut signers = BTreeSet::new();
    if let Ok(text) = std::fs::read_to_string(&cache) {
        let mut lines = text.lines();
        if lines.next() == Some(SIGNERS_CACHE_FORMAT) {
            if let Some(id) = lines.next().and_then(|l| Oid::from_str(l).ok()) {
                if repo.is_ancestor(id, tip).unwrap_or(false) {
                    known = Some(id);
                    signers.extend(lines.map(str::to_owned));
                }
            }
        }
    }
    if known == Some(tip) {
        return Ok(signers);
    }
    let hide: Vec<Oid> = known.into_iter().collect();
    for id in repo.commits_between(&[tip], &hide)? {
        let commit = chain::read_commit(repo, id).map_err(|problem| AuditError::Chain {
            commit: id,
            problem,
        })?;
        let Ok(entry) = chain::read_entry(repo, commit.tree) else {
            continue;
        };
        match entry.event.as_str() {
            entry::EVENT_INIT => {
                signers.insert(entry.actor.signer.clone());
            }
            entry::EVENT_SIGNER_ADD => {
                if let Some(fingerprint) = entry.data_str("fingerprint") {
                    signers.insert(fingerprint.to_owned());
                }
            }
            entry::EVENT_SIGNER_REMOVE => {
                if let Some(fingerprint) = entry.data_str("fingerprint") {
                    signers.remove(fingerprint);
                }
            }
            _ => {}
        }
    }
    let mut text = format!("{SIGNERS_CACHE_FORMAT}\n{tip}\n");
    for s in &signers {
        text.push_str(s);
        text.push('\n');
    }
    // A cache: failing to write it only costs time next time.
    let dir = cache.parent().expect("has a parent");
    let _ = std::fs::create_dir_all(dir)
        .and_then(|()| tempfile::NamedTempFile::new_in(dir))
        .and_then(|mut tmp| {
            std::io::Write::write_all(&mut tmp, text.as_bytes())?;
            tmp.persist(&cache).map_err(|e| e.error)?;
            Ok(())
        });
    Ok(signers)
}

/// post-commit: append a `seal` entry for the sealed paths HEAD changed
/// (against its first parent), and a `policy` entry if it changed
/// `.seal/policy.json`. Appends nothing when neither changed.
pub(crate) fn on_commit(project: &Workspace) -> Result<(), AuditError> {
    let Some((head, parents)) = project.repo.head_commit()? else {
        return Ok(());
    };
    let changes = project.repo.changed_files(parents.first().copied(), head)?;
    let policy_change = changes.iter().find(|(p, _, _)| p == policy::PATH);
    if policy_change.is_none() && !touches_sealed(project, &changes)? {
        return Ok(());
    }
    let Some(signer) = trusted_signer(&project.repo)? else {
        return Ok(());
    };
    let paths = sealed_changes(project, &changes)?;
    if !paths.is_empty() {
        let mut data = Map::new();
        data.insert("commit".into(), json!(head.to_string()));
        data.insert("paths".into(), Value::Array(paths));
        append_event(&project.repo, &signer, "seal", data)?;
    }
    if let Some((_, old, new)) = policy_change {
        let mut data = Map::new();
        data.insert("commit".into(), json!(head.to_string()));
        data.insert("path".into(), json!(policy::PATH));
        data.insert("old_blob".into(), json!(old.map(|o| o.to_string())));
        data.insert("blob".into(), json!(new.map(|o| o.to_string())));
        append_event(&project.repo, &signer, "policy", data)?;
    }
    Ok(())
}

/// Does any of `changes` touch a sealed path (a cheap test, made before
/// the signer is looked up and envelopes are read)?
fn touches_sealed(
    project: &Workspace,
    changes: &[(String, Option<Oid>, Option<Oid>)],
) -> Result<bool, AuditError> {
    for (path, _, _) in changes {
        if project.must_seal(path)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Append an entry whatever the chain's state (the caller checked trust).
fn append_event(
    repo: &Repo,
    signer: &Signer,
    event: &str,
    data: Map<String, Value>,
) -> Result<(), AuditError> {
    append(repo, signer, &NewEntry { event, data }, When::Always)?;
    Ok(())
}

/// A key lifecycle step (`kek-add`, `rotate`, …; see docs/audit.md): one
/// entry with `data`, if this user's signer is trusted (else a warning
/// says why it is not recorded). Returns whether it was appended.
pub(crate) fn on_lifecycle(
    repo: &Repo,
    event: &'static str,
    data: Map<String, Value>,
) -> Result<bool, AuditError> {
    let Some(signer) = trusted_signer(repo)? else {
        return Ok(false);
    };
    append_event(repo, &signer, event, data)?;
    Ok(true)
}

/// post-merge: first take in entries fetched from remotes (fast-forward
/// only, see [`take_fetched`]), then append a `merge` entry for the sealed
/// paths that arrived (ORIG_HEAD → HEAD, else HEAD's first parent) and
/// whether they verified.
pub(crate) fn on_merge(project: &Workspace, verified: bool) -> Result<(), AuditError> {
    for note in take_fetched(&project.repo)? {
        eprintln!("git-seal: audit: {note}");
    }
    let Some((head, parents)) = project.repo.head_commit()? else {
        return Ok(());
    };
    let before = project
        .repo
        .resolve_commit("ORIG_HEAD")
        .filter(|orig| *orig != head)
        .or_else(|| parents.first().copied());
    let changes = project.repo.changed_files(before, head)?;
    if !touches_sealed(project, &changes)? {
        return Ok(());
    }
    let Some(signer) = trusted_signer(&project.repo)? else {
        return Ok(());
    };
    let mut data = Map::new();
    data.insert("commit".into(), json!(head.to_string()));
    data.insert(
        "parents".into(),
        json!(parents.iter().map(Oid::to_string).collect::<Vec<_>>()),
    );
    data.insert("before".into(), json!(before.map(|b| b.to_string())));
    data.insert("verified".into(), json!(verified));
    data.insert(
        "paths".into(),
        Value::Array(sealed_changes(project, &changes)?),
    );
    append_event(&project.repo, &signer, "merge", data)
}

/// post-rewrite (`git commit --amend`, `git rebase`): append a `rewrite`
/// entry mapping each rewritten commit that changes sealed paths to the
/// commit that replaced it, so the chain's `seal` entries can be followed
/// through history rewrites. `kind` is Git's argument (`amend`, `rebase`).
pub(crate) fn on_rewrite(
    project: &Workspace,
    kind: &str,
    pairs: &[(Oid, Oid)],
) -> Result<(), AuditError> {
    let mut commits = Vec::new();
    for (old, new) in pairs {
        let parent = project.repo.resolve_commit(&format!("{new}^"));
        let changes = project.repo.changed_files(parent, *new)?;
        if touches_sealed(project, &changes)? {
            commits.push(json!({"old": old.to_string(), "new": new.to_string()}));
        }
    }
    if commits.is_empty() {
        return Ok(());
    }
    let Some(signer) = trusted_signer(&project.repo)? else {
        return Ok(());
    };
    let mut data = Map::new();
    data.insert("kind".into(), json!(kind));
    data.insert("commits".into(), Value::Array(commits));
    append_event(&project.repo, &signer, "rewrite", data)
}

/// `git seal migrate`: append a `migrate` entry for the paths it sealed
/// (their staged blobs and kids).
pub(crate) fn on_migrate(project: &Workspace, paths: &[String]) -> Result<(), AuditError> {
    if paths.is_empty() {
        return Ok(());
    }
    let Some(signer) = trusted_signer(&project.repo)? else {
        return Ok(());
    };
    let index = project.repo.index_entries()?;
    let mut listed = Vec::new();
    for path in paths {
        let blob = index.get(path).copied();
        listed.push(path_record(&project.repo, path, "sealed", blob)?);
    }
    let mut data = Map::new();
    data.insert("paths".into(), Value::Array(listed));
    append_event(&project.repo, &signer, "migrate", data)
}

/// Move [`REF`] forward to a fetched remote chain (`refs/seal-remote/*/audit`)
/// when that only adds entries and the result verifies. Diverged chains are
/// left for `git seal audit sync`, which merges them with a signed entry.
/// Returns one note per chain taken or left.
pub(crate) fn take_fetched(repo: &Repo) -> Result<Vec<String>, AuditError> {
    let mut notes = Vec::new();
    for (name, fetched) in repo.refs_matching("refs/seal-remote/*/audit")? {
        let local = chain::tip(repo);
        match local {
            Some(local) if repo.is_ancestor(fetched, local)? => continue,
            Some(local) if !repo.is_ancestor(local, fetched)? => {
                notes.push(format!(
                    "{name} has diverged from {REF}; run `git seal audit sync` to merge them"
                ));
                continue;
            }
            _ => {}
        }
        let report = verify::verify(repo, fetched, &verify::Options::default())?;
        if !report.ok() {
            notes.push(format!(
                "{name} does not verify ({} findings; see `git seal audit verify --ref {name}`); not taken",
                report.findings.len()
            ));
            continue;
        }
        if repo.update_ref_cas(REF, fetched, local, &format!("git-seal audit: take {name}"))? {
            notes.push(format!(
                "took {name} ({} entries, up to seq {})",
                report.entries,
                chain::seq_of(repo, fetched)?
            ));
        }
    }
    Ok(notes)
}

/// `git seal init`: the chain's first entry, naming the KEKs, unless the
/// chain already exists. Returns the new entry's commit.
pub(crate) fn record_init(
    repo: &Repo,
    kids: &[String],
    signer: &Signer,
) -> Result<Option<Oid>, AuditError> {
    let mut data = Map::new();
    data.insert("kids".into(), json!(kids));
    append(
        repo,
        signer,
        &NewEntry {
            event: entry::EVENT_INIT,
            data,
        },
        When::ChainEmpty,
    )
}

/// The sealed paths among `changes`, as entry data records.
fn sealed_changes(
    project: &Workspace,
    changes: &[(String, Option<Oid>, Option<Oid>)],
) -> Result<Vec<Value>, AuditError> {
    let mut paths = Vec::new();
    for (path, old, new) in changes {
        if !project.must_seal(path)? {
            continue;
        }
        let change = match (old, new) {
            (None, _) => "added",
            (_, None) => "deleted",
            _ => "modified",
        };
        paths.push(path_record(&project.repo, path, change, *new)?);
    }
    Ok(paths)
}

/// `{path, change, blob, kids}`: the kids an envelope is wrapped to (empty
/// if the blob is not an envelope, which `envelope: false` flags).
fn path_record(
    repo: &Repo,
    path: &str,
    change: &str,
    blob: Option<Oid>,
) -> Result<Value, AuditError> {
    let mut record = Map::new();
    record.insert("path".into(), json!(path));
    record.insert("change".into(), json!(change));
    record.insert("blob".into(), json!(blob.map(|b| b.to_string())));
    if let Some(id) = blob {
        match envelope::format::parse(&repo.blob(id)?) {
            Ok(env) => {
                let kids: Vec<String> = env.recipients.iter().map(|r| r.kid.to_string()).collect();
                record.insert("kids".into(), json!(kids));
            }
            Err(_) => {
                record.insert("kids".into(), json!([]));
                record.insert("envelope".into(), json!(false));
            }
        }
    }
    Ok(Value::Object(record))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::lab::Lab;

    fn write_cache(repo: &Repo, text: &str) {
        let dir = repo.common_dir().join("seal");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("audit-signers"), text).unwrap();
    }

    fn cache(repo: &Repo) -> String {
        std::fs::read_to_string(repo.common_dir().join("seal").join("audit-signers")).unwrap()
    }

    /// The hooks' quick trust test drops a removed signer, whether it
    /// reads the chain whole or only the entries after its cached tip, and
    /// a cache written before removals were understood is rebuilt.
    #[test]
    fn named_signers_drops_a_removed_signer_through_the_cache() {
        let lab = Lab::new();
        let (ada, bea) = (lab.ada.fingerprint(), lab.bea.fingerprint());
        let added = lab.start();
        let removed = lab.remove(&lab.ada, added, &lab.bea);
        let only_ada = BTreeSet::from([ada.to_owned()]);
        let both = BTreeSet::from([ada.to_owned(), bea.to_owned()]);

        // Whole chain, no cache.
        assert_eq!(named_signers(&lab.repo, removed).unwrap(), only_ada);
        assert_eq!(
            cache(&lab.repo),
            format!("{SIGNERS_CACHE_FORMAT}\n{removed}\n{ada}\n")
        );

        // Cached at the signer-add; only the removal is read after it.
        write_cache(&lab.repo, "");
        assert_eq!(named_signers(&lab.repo, added).unwrap(), both);
        assert_eq!(named_signers(&lab.repo, removed).unwrap(), only_ada);

        // A cache at the tip is taken as it is (it is not re-read)...
        write_cache(
            &lab.repo,
            &format!("{SIGNERS_CACHE_FORMAT}\n{removed}\nSHA256:cached\n"),
        );
        let cached = BTreeSet::from(["SHA256:cached".to_owned()]);
        assert_eq!(named_signers(&lab.repo, removed).unwrap(), cached);
        // ...but one in the old format (no format line), which may list a
        // removed signer, is rebuilt from the chain.
        write_cache(&lab.repo, &format!("{removed}\n{ada}\n{bea}\n"));
        assert_eq!(named_signers(&lab.repo, removed).unwrap(), only_ada);

        // Added again after the removal: named again.
        let again = lab.add(&lab.ada, removed, &lab.bea);
        assert_eq!(named_signers(&lab.repo, again).unwrap(), both);
    }
}
