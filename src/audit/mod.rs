//! The signed audit chain in `refs/seal/audit` (SPEC §6, docs/audit.md).
//!
//! Each entry is one commit whose tree holds `entry.json`, signed with the
//! actor's ed25519 signer key as an SSH signature that stock
//! `git verify-commit` accepts. This module owns the entry format
//! (`entry`), signer keys (`signer`), reading and appending (`chain`),
//! verification (`verify`) and the exchange with remotes (`sync`).

pub mod approvals;
pub mod chain;
pub mod coverage;
pub mod entry;
pub mod fate;
#[cfg(test)]
pub(crate) mod lab;
pub mod log;
pub mod signer;
pub mod sync;
pub mod verify;
pub mod watermark;

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
    #[error(transparent)]
    Write(#[from] crate::atomic_file::WriteError),
}

/// Set for the `git fetch` that git-seal runs itself (`audit sync`, the
/// pre-push hook, `init`): the reference-transaction hook then leaves the
/// fetched chain to it.
pub const TAKING_CHAIN: &str = "GIT_SEAL_TAKING_CHAIN";

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
/// Chains fetched from remotes are taken in first: a `signer-add` that
/// arrived with the last fetch counts at once.
fn trusted_signer(repo: &Repo) -> Result<Option<Signer>, AuditError> {
    for note in take_fetched(repo)? {
        eprintln!("git-seal: audit: {note}");
    }
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
        "git-seal: audit: your signer {} is not trusted by this repository's audit chain, so this event is not recorded now; ask a trusted signer to run `git seal audit signer add '{}' --email EMAIL` and `git seal audit sync` (your commits since are recorded at your next commit or fetch after that)",
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
    from_chain_cached(
        repo,
        tip,
        "audit-signers",
        SIGNERS_CACHE_FORMAT,
        |signers, entry| match entry.event.as_str() {
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
        },
    )
}

/// A set of lines the entries of the chain at `tip` make, parents first,
/// each entry applied by `apply`: kept in `.git/seal/NAME` (`format` line,
/// the tip it was made at, the lines) and read forward from that tip when
/// it is an ancestor of `tip`, so a hook on a long chain reads only what
/// is new. Rebuilt from the whole chain otherwise.
pub(crate) fn from_chain_cached(
    repo: &Repo,
    tip: Oid,
    name: &str,
    format: &str,
    mut apply: impl FnMut(&mut BTreeSet<String>, &entry::Entry),
) -> Result<BTreeSet<String>, AuditError> {
    let cache = repo.common_dir().join("seal").join(name);
    let mut known: Option<Oid> = None;
    let mut set = BTreeSet::new();
    if let Ok(text) = std::fs::read_to_string(&cache) {
        let mut lines = text.lines();
        if lines.next() == Some(format) {
            if let Some(id) = lines.next().and_then(|l| Oid::from_str(l).ok()) {
                if repo.is_ancestor(id, tip).unwrap_or(false) {
                    known = Some(id);
                    set.extend(lines.map(str::to_owned));
                }
            }
        }
    }
    if known == Some(tip) {
        return Ok(set);
    }
    entries_since(repo, tip, known, |entry| apply(&mut set, &entry))?;
    let mut text = format!("{format}\n{tip}\n");
    for line in &set {
        text.push_str(line);
        text.push('\n');
    }
    // A cache: failing to write it only costs time next time.
    let _ = crate::atomic_file::write_hint(&cache, text.as_bytes());
    Ok(set)
}

/// Each readable entry of the chain at `tip` that `known` does not reach
/// (all of them without `known`), parents first: how
/// [`from_chain_cached`] catches up with the chain.
fn entries_since(
    repo: &Repo,
    tip: Oid,
    known: Option<Oid>,
    mut each: impl FnMut(entry::Entry),
) -> Result<(), AuditError> {
    let hide: Vec<Oid> = known.into_iter().collect();
    for id in repo.commits_between(&[tip], &hide)? {
        let commit = chain::read_commit(repo, id).map_err(|problem| AuditError::Chain {
            commit: id,
            problem,
        })?;
        if let Ok(entry) = chain::read_entry(repo, commit.tree) {
            each(entry);
        }
    }
    Ok(())
}

/// post-commit: append a `seal` entry for the sealed paths HEAD changed
/// (against its first parent), and a `policy` entry if it changed
/// `.seal/policy.json`; first, a `seal` entry for each earlier commit of
/// this clone whose entry is missing (its post-commit was killed, could
/// not sign, or ran before this signer was trusted: see
/// [`coverage::unrecorded_before`]).
pub(crate) fn on_commit(project: &Workspace) -> Result<(), AuditError> {
    let Some((head, parents)) = project.repo.head_commit()? else {
        return Ok(());
    };
    let changes = project.repo.changed_files(parents.first().copied(), head)?;
    let policy_change = changes.iter().find(|(p, _, _)| p == policy::PATH);
    let missing = match chain::tip(&project.repo) {
        Some(tip) => coverage::unrecorded_before(project, head, tip)?,
        None => Vec::new(),
    };
    if policy_change.is_none() && missing.is_empty() && !touches_sealed(project, &changes)? {
        coverage::caught_up(&project.repo, head);
        return Ok(());
    }
    let Some(signer) = trusted_signer(&project.repo)? else {
        return Ok(());
    };
    for (commit, _) in &missing {
        record_commit(project, &signer, *commit, true)?;
        eprintln!("git-seal: audit: recorded {commit}, whose entry was missing");
    }
    record_changes(project, &signer, head, &changes, false)?;
    if let Some((_, old, new)) = policy_change {
        let mut data = Map::new();
        data.insert("commit".into(), json!(head.to_string()));
        data.insert("path".into(), json!(policy::PATH));
        data.insert("old_blob".into(), json!(old.map(|o| o.to_string())));
        data.insert("blob".into(), json!(new.map(|o| o.to_string())));
        append_event(&project.repo, &signer, "policy", data)?;
    }
    coverage::caught_up(&project.repo, head);
    Ok(())
}

/// A `seal` entry for the sealed paths `commit` changed against its first
/// parent, if any; `late` marks one recorded after its own commit's hook.
fn record_commit(
    project: &Workspace,
    signer: &Signer,
    commit: Oid,
    late: bool,
) -> Result<(), AuditError> {
    let parent = project.repo.parents(commit)?.first().copied();
    let changes = project.repo.changed_files(parent, commit)?;
    record_changes(project, signer, commit, &changes, late)
}

/// [`record_commit`] with what `commit` changed against its first parent
/// already at hand.
fn record_changes(
    project: &Workspace,
    signer: &Signer,
    commit: Oid,
    changes: &[(String, Option<Oid>, Option<Oid>)],
    late: bool,
) -> Result<(), AuditError> {
    let paths = sealed_changes(project, changes)?;
    if paths.is_empty() {
        return Ok(());
    }
    let mut data = Map::new();
    data.insert("commit".into(), json!(commit.to_string()));
    data.insert("paths".into(), Value::Array(paths));
    if late {
        data.insert("late".into(), json!(true));
    }
    append_event(&project.repo, signer, "seal", data)
}

/// What `git seal audit record` did with one commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// A `seal` entry was appended (`late: true`).
    Now(Oid),
    /// The chain already records it.
    Already,
    /// It changed no sealed path: it needs no entry.
    NotNeeded,
}

/// `git seal audit record COMMIT…`: a trusted signer who has reviewed
/// commits that have no entry (made without git-seal's hooks) records
/// them, each with a `seal` entry marked `late`.
pub fn record(
    project: &Workspace,
    commits: &[Oid],
) -> Result<Vec<Recorded>, approvals::ApproveError> {
    let signer = approvals::approver(&project.repo)?;
    let mut done = Vec::new();
    for commit in commits {
        let tip = chain::tip(&project.repo).ok_or(approvals::ApproveError::NoChain)?;
        done.push(
            if coverage::recorded(&project.repo, tip)?.contains(commit) {
                Recorded::Already
            } else if coverage::sealed_paths_changed(project, *commit)?.is_empty() {
                Recorded::NotNeeded
            } else {
                record_commit(project, &signer, *commit, true)?;
                Recorded::Now(chain::tip(&project.repo).expect("just appended"))
            },
        );
    }
    Ok(done)
}

/// After a fetch brought chains in (the reference-transaction hook): take
/// them, then record this clone's commits whose entries are missing, HEAD
/// included, now that this signer may be trusted.
pub(crate) fn on_fetch(project: &Workspace) -> Result<Vec<String>, AuditError> {
    let notes = take_fetched(&project.repo)?;
    let (Some((head, _)), Some(tip)) = (project.repo.head_commit()?, chain::tip(&project.repo))
    else {
        return Ok(notes);
    };
    let mut missing = coverage::unrecorded_before(project, head, tip)?;
    if !coverage::recorded(&project.repo, tip)?.contains(&head)
        && !coverage::sealed_paths_changed(project, head)?.is_empty()
        && coverage::is_local(&project.repo, head)?
    {
        missing.push((head, Vec::new()));
    }
    if missing.is_empty() {
        return Ok(notes);
    }
    let Some(signer) = trusted_signer(&project.repo)? else {
        return Ok(notes);
    };
    let mut notes = notes;
    for (commit, _) in &missing {
        record_commit(project, &signer, *commit, true)?;
        notes.push(format!("recorded {commit}, whose entry was missing"));
    }
    coverage::caught_up(&project.repo, head);
    Ok(notes)
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
/// and the envelopes it staged for them (with their kids).
pub(crate) fn on_migrate(project: &Workspace, sealed: &[(String, Oid)]) -> Result<(), AuditError> {
    if sealed.is_empty() {
        return Ok(());
    }
    let Some(signer) = trusted_signer(&project.repo)? else {
        return Ok(());
    };
    let mut listed = Vec::new();
    for (path, blob) in sealed {
        listed.push(path_record(&project.repo, path, "sealed", Some(*blob))?);
    }
    let mut data = Map::new();
    data.insert("paths".into(), Value::Array(listed));
    append_event(&project.repo, &signer, "migrate", data)
}

/// Take in the chains fetched from remotes (`refs/seal-remote/*/audit`):
/// move [`REF`] forward to one that only adds entries, or merge a diverged
/// one with a signed `chain-merge` entry, as `git seal audit sync` does
/// but without the network. Nothing that does not verify is taken.
/// Returns one note per chain taken or left.
pub(crate) fn take_fetched(repo: &Repo) -> Result<Vec<String>, AuditError> {
    let mut notes = Vec::new();
    for (name, fetched) in repo.refs_matching("refs/seal-remote/*/audit")? {
        let local = chain::tip(repo);
        if let Some(local) = local {
            if repo.is_ancestor(fetched, local)? {
                continue;
            }
        }
        let remote = name
            .strip_prefix("refs/seal-remote/")
            .and_then(|r| r.strip_suffix("/audit"))
            .unwrap_or(&name);
        match sync::merge_chains(repo, remote, local, fetched) {
            Ok(Some(tip)) => notes.push(format!(
                "took {name} into {REF} (now seq {})",
                chain::seq_of(repo, tip)?
            )),
            Ok(None) => notes.push(format!(
                "{REF} moved while taking {name}; it is taken at the next hook or `git seal audit sync`"
            )),
            Err(sync::SyncError::Unverified { findings, .. }) => notes.push(format!(
                "{name} does not verify ({} finding(s); see `git seal audit verify --ref {name}`); not taken",
                findings.len()
            )),
            Err(e) => notes.push(format!("{name} not taken: {e}")),
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
    // Where the chain begins: coverage asks for entries from here on.
    let head = repo.head_commit()?.map(|(head, _)| head);
    data.insert("commit".into(), json!(head.map(|h| h.to_string())));
    if let Some(head) = head {
        coverage::caught_up(repo, head);
    }
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
