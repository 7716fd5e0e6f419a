//! `git seal rotate`: a new KEK version replaces an active one among the
//! recipients; every envelope of the index wrapped to the old one is
//! re-wrapped (or, with `reencrypt`, re-encrypted) to the new recipients;
//! the old KEK is retired and its key file archived, so history still
//! opens. History itself is never rewritten.

use std::collections::HashSet;

use serde_json::{json, Map};

use super::rekey::{self, Mode};
use super::{apply, Journal, KeyState, LifecycleError};
use crate::audit::{self, entry, AuditError};
use crate::keys::file::FileKeys;
use crate::keys::record::{KekRecord, Status};
use crate::keys::{self, KeyError, KeyProvider, OpenError, ProviderInfo};
use crate::kid::Kid;
use crate::progress::Progress;
use crate::repo::Oid;
use crate::workspace::Workspace;

#[derive(Debug, Default)]
pub struct Options<'a> {
    pub from: Option<Kid>,
    pub to: Option<Kid>,
    pub reencrypt: bool,
    /// Where a new KEK is made (default: this clone's provider).
    pub provider: Option<&'a ProviderInfo>,
    /// The KMS key that guards a new KEK (`aws-kms`).
    pub kms_key: Option<String>,
}

/// What `rotate` did.
#[derive(Debug)]
pub struct Rotated {
    pub from: Kid,
    pub to: Kid,
    /// A new KEK was made (not `--to` an added one).
    pub created: bool,
    /// This run finished one that was interrupted.
    pub resumed: bool,
    pub rewrapped: usize,
    pub reencrypted: usize,
    pub index_tree: String,
    /// The retired KEK's key file moved to the archive.
    pub archived: bool,
    /// Envelopes got fresh DEKs (`--reencrypt`).
    pub reencrypt: bool,
    /// Whether the audit entry was appended (a failure does not undo the
    /// rotation, which is staged).
    pub audit: Result<bool, AuditError>,
}

fn command_line(from: &Kid, to: &Kid, reencrypt: bool, provider: Option<&str>) -> String {
    format!(
        "git seal rotate --from {from} --to {to}{}{}",
        if reencrypt { " --reencrypt" } else { "" },
        provider
            .map(|p| format!(" --provider {p}"))
            .unwrap_or_default()
    )
}

/// The KEK `rotate` replaces by default: the one active KEK whose private
/// half is here.
fn default_from(ws: &Workspace) -> Result<Kid, LifecycleError> {
    let here: Vec<&KekRecord> = ws.actives().filter(|k| ws.keys().has(&k.kid)).collect();
    match here.as_slice() {
        [one] => Ok(one.kid.clone()),
        [] => Err(LifecycleError::Refused(format!(
            "no active KEK's private half is here ({} active: {}); rotate needs it to re-wrap the envelopes. Bring it here (`git seal kek import FILE`) or rotate where it is",
            ws.actives().count(),
            ws.actives().map(|k| k.kid.as_str()).collect::<Vec<_>>().join(", ")
        ))),
        many => Err(LifecycleError::Refused(format!(
            "several active KEKs have their private half here ({}); say which to replace with --from KID",
            many.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// Rotate in `ws`, which may be loaded without the install lock's check
/// ([`Workspace::load`]): rotate checks it unless it finishes a custody move.
pub fn rotate(ws: &Workspace, options: Options<'_>) -> Result<Rotated, LifecycleError> {
    if crate::filter::lock_marker(&ws.repo).exists() {
        return Err(LifecycleError::Locked);
    }
    let journal = Journal::resume(ws, entry::EVENT_ROTATE, "git seal rotate")?;
    // A move to another custody that was interrupted may have written the
    // new records but not yet moved the lock (or the reverse): finishing it
    // is what settles the lock. Anything else runs under the lock.
    if journal.as_ref().is_none_or(|j| j.provider.is_none()) {
        ws.check_install_lock()?;
    }
    let resumed = journal.is_some();
    let (mut journal, made, proven) = match journal {
        Some(journal) => {
            for (given, planned, what) in [
                (&options.from, &journal.from, "--from"),
                (&options.to, &journal.to, "--to"),
            ] {
                if given.is_some() && given != planned {
                    return Err(LifecycleError::Interrupted {
                        running: journal.command.clone(),
                        wanted: format!(
                            "git seal rotate {what} {}",
                            given.as_ref().expect("given")
                        ),
                    });
                }
            }
            if options.reencrypt && !journal.reencrypt {
                return Err(LifecycleError::Interrupted {
                    running: journal.command.clone(),
                    wanted: "git seal rotate --reencrypt".into(),
                });
            }
            if let Some(given) = options.provider.filter(|p| p.name() != ws.provider.name()) {
                if journal.provider.as_deref() != Some(given.name()) {
                    return Err(LifecycleError::Interrupted {
                        running: journal.command.clone(),
                        wanted: format!("git seal rotate --provider {}", given.name()),
                    });
                }
            }
            let from = journal.from.clone().expect("a rotate journal names from");
            // What kept the interrupted run from finishing may be here
            // still (an envelope that does not open): say that, not just
            // "run it again".
            let proven = prove_opens(ws, &from, Again::Finish(&journal.command))?;
            (journal, None, proven)
        }
        None => start(ws, &options)?,
    };
    let created = made.is_some();
    let from = journal.from.clone().expect("a rotate journal names from");
    let to = journal.to.clone().expect("a rotate journal names to");
    let reencrypt = journal.reencrypt;
    // The provider the new KEK lives in, when the clone moves to it.
    let moving_to = journal
        .provider
        .as_deref()
        .map(keys::provider)
        .transpose()?;

    let mut state = KeyState::of(ws);
    if let Some(provider) = moving_to {
        // Envelopes are wrapped to a token KEK through the token.
        state.wrapper = std::sync::Arc::from(provider.open(Some(&ws.repo), &ws.keks)?);
    }
    if state.record(&to).is_none() {
        // Made by this rotation; its record is written with the others.
        let record = match made.or_else(|| journal.made.clone()) {
            Some(record) => record,
            None => record_of_key_made(ws, &to)?,
        };
        state.keks.push(record);
    }
    state.record_mut(&to)?.status = Status::Active;
    state.record_mut(&from)?.status = Status::Retired;
    for scope in &mut state.policy.recipients {
        if let Some(at) = scope.kids.iter().position(|k| *k == from) {
            if scope.kids.contains(&to) {
                scope.kids.remove(at);
            } else {
                scope.kids[at] = to.clone();
            }
        }
    }
    let mode = if reencrypt {
        Mode::Reencrypt
    } else {
        Mode::Rewrap
    };
    let decide = |has: &[Kid], _wants: &[Kid]| has.contains(&from).then_some(mode);
    let (rewrapped, reencrypted, tree) =
        apply(ws, &mut journal, &state, &decide, &proven, "rotate")?;

    // The install lock moves with a rotation to another provider.
    if let Some(provider) = moving_to {
        ws.repo
            .config_set(crate::workspace::PROVIDER_KEY, provider.name())?;
        if provider.custody() == "hsm" {
            keys::pkcs11::remember_settings(&ws.repo)?;
        }
    }
    let archived = match FileKeys::open_default() {
        Ok(files) => files.archive(&from)?,
        Err(_) => false,
    };
    let mut data = Map::new();
    data.insert("from".into(), json!(from));
    data.insert("to".into(), json!(to));
    data.insert("reencrypt".into(), json!(reencrypt));
    data.insert("rewrapped".into(), json!(rewrapped));
    data.insert("reencrypted".into(), json!(reencrypted));
    data.insert("index_tree".into(), json!(tree.to_string()));
    let audit = audit::on_lifecycle(&ws.repo, entry::EVENT_ROTATE, data);
    Journal::finish(&ws.repo)?;
    Ok(Rotated {
        from,
        to,
        created,
        resumed,
        reencrypt,
        rewrapped,
        reencrypted,
        index_tree: tree.to_string(),
        archived,
        audit,
    })
}

/// Check the request and record it in a new journal; make the new KEK
/// unless `--to` names one. Returns the journal, the new KEK's record and
/// the index blobs proven to open.
fn start(
    ws: &Workspace,
    options: &Options<'_>,
) -> Result<(Journal, Option<KekRecord>, HashSet<Oid>), LifecycleError> {
    let from = match &options.from {
        Some(kid) => kid.clone(),
        None => default_from(ws)?,
    };
    let record = ws
        .record(&from)
        .ok_or_else(|| LifecycleError::UnknownKid { kid: from.clone() })?;
    // A retired KEK is rotated away from again on a branch that still has
    // envelopes wrapped to it (made before the rotation): they are
    // re-wrapped to the KEK that replaced it, and nothing new is made.
    let finishing = record.status == Status::Retired;
    if !finishing && record.status != Status::Active {
        return Err(LifecycleError::Refused(format!(
            "{from} is {}: only an active KEK is rotated, or a retired one that envelopes here still name (`git seal kek list` shows which are)",
            record.status.as_str()
        )));
    }
    let opener = keys::for_opening(Some(ws.shared_keys()))?;
    if !opener.has(&from) {
        return Err(LifecycleError::Refused(format!(
            "cannot rotate {from}: its private half is not here, so the envelopes wrapped to it cannot be re-wrapped. Run this where the key is, or bring it here with `git seal kek import FILE`"
        )));
    }
    // Before anything is made: every envelope to re-key must name a key
    // that is here (a scope may name only other people's keys).
    let here = opener.available();
    let stuck: Vec<String> = super::envelopes_here(ws)?
        .into_iter()
        .filter(|(place, _, _, kids)| {
            *place == super::Place::Index
                && kids.contains(&from)
                && !kids.iter().any(|k| here.contains(k))
        })
        .map(|(_, path, _, _)| path)
        .collect();
    if !stuck.is_empty() {
        return Err(LifecycleError::Refused(format!(
            "cannot rotate {from}: {} envelope(s) of the index name it but no key that is here, e.g. {}; run this where one of their keys is",
            stuck.len(),
            stuck.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
        )));
    }
    let given_to = match &options.to {
        Some(kid) => {
            let record = ws
                .record(kid)
                .ok_or_else(|| LifecycleError::UnknownKid { kid: kid.clone() })?;
            let fits = if finishing {
                record.status == Status::Active
            } else {
                matches!(record.status, Status::Pending | Status::Retired)
            };
            if kid == &from || !fits {
                return Err(LifecycleError::Refused(format!(
                    "--to {kid} is {}: it must be {}",
                    if kid == &from {
                        "the KEK being replaced"
                    } else {
                        record.status.as_str()
                    },
                    if finishing {
                        "an active KEK"
                    } else {
                        "a pending KEK (added with `git seal kek add`)"
                    }
                )));
            }
            // Something must be able to wrap to it (its public key, or
            // this clone's token).
            crate::workspace::target_among(&ws.keks, kid, &ws.shared_keys())?;
            Some(kid.clone())
        }
        None if finishing => Some(ws.active()?.kid.clone()),
        None => None,
    };
    // Every envelope to re-key must open before anything is made or
    // written: a rotation that cannot finish must not leave a journal
    // that says it was interrupted, nor a key that no record lists.
    let proven = prove_opens(ws, &from, Again::Start(options))?;
    let (to, made) = match given_to {
        Some(kid) => (kid, None),
        None => {
            let record = new_kek(ws, options.provider, options.kms_key.as_deref())?;
            (record.kid.clone(), Some(record))
        }
    };
    let moving_to = options
        .provider
        .filter(|p| p.name() != ws.provider.name())
        .map(|p| p.name().to_owned());
    let mut journal = Journal::new(
        entry::EVENT_ROTATE,
        command_line(&from, &to, options.reencrypt, moving_to.as_deref()),
    );
    journal.from = Some(from);
    journal.to = Some(to);
    journal.reencrypt = options.reencrypt;
    journal.provider = moving_to;
    journal.made = made.clone();
    journal.save(&ws.repo)?;
    Ok((journal, made, proven))
}

/// How the user runs the rotation again, once what stopped it is fixed.
#[derive(Clone, Copy, Debug)]
enum Again<'a> {
    /// A new rotation, with these options.
    Start(&'a Options<'a>),
    /// An interrupted one, by the command its journal names.
    Finish(&'a str),
}

impl Again<'_> {
    fn command(self) -> String {
        match self {
            Again::Finish(command) => command.to_owned(),
            Again::Start(options) => {
                let mut line = String::from("git seal rotate");
                for (flag, value) in [
                    ("--from", options.from.as_ref().map(Kid::as_str)),
                    ("--to", options.to.as_ref().map(Kid::as_str)),
                    ("--provider", options.provider.map(|p| p.name())),
                    ("--kms-key", options.kms_key.as_deref()),
                ] {
                    if let Some(value) = value {
                        line.push_str(&format!(" {flag} {}", shell_word(value)));
                    }
                }
                if options.reencrypt {
                    line.push_str(" --reencrypt");
                }
                line
            }
        }
    }
}

/// Open every envelope of the index that is wrapped to `from` (each
/// distinct blob once, on every core): the DEK unwrapped, the content's tag
/// checked. What re-keying would refuse is refused here, before a rotation
/// changes anything. Returns the blobs that opened.
fn prove_opens(
    ws: &Workspace,
    from: &Kid,
    again: Again<'_>,
) -> Result<HashSet<Oid>, LifecycleError> {
    let keys = keys::for_opening(Some(ws.shared_keys()))?;
    let paths = ws.sealed_index_paths()?;
    let progress = Progress::new("rotate: checking", paths.len(), "envelopes");
    let picks = |has: &[Kid]| has.contains(from);
    let (proven, failed) = rekey::prove(&ws.repo, &keys, &paths, &picks, &progress)?;
    if failed.is_empty() {
        return Ok(proven);
    }
    // `git restore --staged` mends a path whose envelope HEAD holds whole;
    // `--worktree` too where the work tree holds an envelope (that one,
    // most likely) rather than plaintext the user may have edited.
    let head = ws.repo.head_tree_id()?;
    let mut failures = Vec::with_capacity(failed.len());
    for unopened in failed {
        let mut mends = Vec::new();
        for path in &unopened.paths {
            let at_head = match head {
                Some(tree) => ws.repo.blob_in_tree(tree, path)?,
                None => None,
            };
            let mend = if at_head.is_some_and(|id| id != unopened.id) {
                let enveloped = std::fs::read(ws.root.join(path))
                    .is_ok_and(|text| crate::envelope::format::might_be_envelope(&text));
                Mend::Restore {
                    worktree: enveloped,
                }
            } else {
                Mend::Reseal
            };
            mends.push(mend);
        }
        failures.push((unopened, mends));
    }
    Err(LifecycleError::Unopened(Box::new(Unopened {
        from: from.clone(),
        resuming: match again {
            Again::Finish(command) => Some(command.to_owned()),
            Again::Start(_) => None,
        },
        again: again.command(),
        failures,
    })))
}

/// Envelopes of the index that a rotation must re-key but that do not
/// open here, found before it changed anything (or before it went on with
/// an interrupted one).
#[derive(Debug)]
pub struct Unopened {
    from: Kid,
    /// The interrupted rotation this run was to finish.
    resuming: Option<String>,
    /// The command that runs the rotation again.
    again: String,
    /// Each blob that does not open, and how to mend each of its paths.
    failures: Vec<(rekey::Unopened, Vec<Mend>)>,
}

/// How a path whose envelope was altered is mended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mend {
    /// HEAD holds another envelope there: put it back in the index (and in
    /// the work tree, when that holds an envelope, not plaintext).
    Restore { worktree: bool },
    /// Sealed again from its plaintext.
    Reseal,
}

impl std::fmt::Display for Unopened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (first, _) = &self.failures[0];
        match &self.resuming {
            Some(command) => write!(
                f,
                "cannot finish the interrupted `{command}`: {}",
                first.error
            )?,
            None => write!(f, "cannot rotate {}: {}", self.from, first.error)?,
        }
        let others: Vec<&str> = self
            .failures
            .iter()
            .flat_map(|(u, _)| &u.paths)
            .skip(1)
            .map(String::as_str)
            .collect();
        if !others.is_empty() {
            let shown: Vec<&str> = others.iter().take(5).copied().collect();
            write!(
                f,
                "; {} more envelope(s) of the index do not open: {}{}",
                others.len(),
                shown.join(", "),
                if others.len() > shown.len() {
                    ", …"
                } else {
                    ""
                }
            )?;
        }
        if self.resuming.is_none() {
            write!(f, "; nothing was changed")?;
        }
        Ok(())
    }
}

impl std::error::Error for Unopened {}

impl Unopened {
    /// What to do about it, when git-seal knows: damaged envelopes are
    /// mended from HEAD or sealed again from their plaintext; an envelope
    /// wrapped to no key that is here is re-keyed where one is.
    pub fn hint(&self) -> Option<String> {
        let mut restore = Vec::new();
        let mut restore_both = Vec::new();
        let mut reseal = Vec::new();
        let mut no_key = false;
        for (unopened, mends) in &self.failures {
            match &unopened.error {
                rekey::RekeyError::Open {
                    source: OpenError::NoUsableKey { .. },
                    ..
                } => no_key = true,
                rekey::RekeyError::Open {
                    source: OpenError::Content { .. } | OpenError::Key(KeyError::Unwrap { .. }),
                    ..
                }
                | rekey::RekeyError::Format { .. } => {
                    for (path, mend) in unopened.paths.iter().zip(mends) {
                        let word = shell_word(path);
                        match mend {
                            Mend::Restore { worktree: false } => restore.push(word),
                            Mend::Restore { worktree: true } => restore_both.push(word),
                            Mend::Reseal => reseal.push(word),
                        }
                    }
                }
                // A provider's own failure (a token, KMS) names its fix.
                _ => return None,
            }
        }
        let mut fixes = Vec::new();
        if !restore.is_empty() {
            fixes.push(format!(
                "put HEAD's envelope back in the index with `git restore --staged -- {}` (the work tree keeps its file)",
                restore.join(" ")
            ));
        }
        if !restore_both.is_empty() {
            fixes.push(format!(
                "put HEAD's envelope back with `git restore --staged --worktree -- {}`",
                restore_both.join(" ")
            ));
        }
        if !reseal.is_empty() {
            fixes.push(format!(
                "seal the file again from its plaintext: write the plaintext to the work tree and run `git add -- {}` (or stop tracking it: `git rm --cached -- {}`)",
                reseal.join(" "),
                reseal.join(" ")
            ));
        }
        if no_key {
            fixes.push(
                "run it where a key the envelope is wrapped to is, or bring one here with `git seal kek import FILE`".to_owned(),
            );
        }
        Some(format!(
            "{}{}; then run `{}` again",
            match restore.len() + restore_both.len() + reseal.len() {
                0 => "",
                1 => "the envelope was altered after it was sealed: ",
                _ => "those envelopes were altered after they were sealed: ",
            },
            fixes.join("; "),
            self.again
        ))
    }
}

/// `text` as one shell word: as it is when it needs no quoting, else in
/// single quotes.
fn shell_word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+:@,=%".contains(&b));
    if plain {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// The record of a KEK that an interrupted rotation made, when its journal
/// does not carry it (written before journals did): its key file was stored
/// before the journal named it.
fn record_of_key_made(ws: &Workspace, kid: &Kid) -> Result<KekRecord, LifecycleError> {
    let files = FileKeys::open_default()?;
    let Some(secret) = files.load(kid) else {
        return Err(LifecycleError::Refused(format!(
            "the interrupted rotation made {kid}, whose key file is no longer in {}; start again by removing {} and running `git seal rotate`",
            files.dir().display(),
            Journal::path(&ws.repo).display()
        )));
    };
    let mut record = KekRecord::new_x25519(&secret?.public(), super::next_version(ws));
    record.status = Status::Pending;
    Ok(record)
}

/// Make a new KEK version with `provider` (default: this clone's): its
/// private half is stored there (under `kms_key`, default the active
/// KMS-guarded KEK's, for `aws-kms`); its record, `pending`, is returned
/// for the caller to write.
pub(crate) fn new_kek(
    ws: &Workspace,
    provider: Option<&ProviderInfo>,
    kms_key: Option<&str>,
) -> Result<KekRecord, LifecycleError> {
    let provider = provider.unwrap_or(ws.provider);
    let same_key = ws.actives().find_map(|k| k.kms_key.as_deref());
    let kms_key = kms_key.or(same_key.filter(|_| provider.custody() == "kms"));
    let Some(made) = provider.make(&ws.repo, super::next_version(ws), kms_key) else {
        return Err(LifecycleError::Refused(format!(
            "the {} provider cannot make a KEK here; make it with --provider file, then hand its private half to where it is used with `git seal kek export KID --out FILE`",
            provider.name()
        )));
    };
    let mut record = made?.record;
    record.status = Status::Pending;
    Ok(record)
}
