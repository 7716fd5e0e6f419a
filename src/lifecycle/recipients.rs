//! `git seal recipients`: which KEKs new envelopes are wrapped to. The
//! default recipients are the active KEKs; a policy scope (`recipients` in
//! `.seal/policy.json`) names its own for the paths its globs match.
//!
//! Adding a recipient re-wraps the envelopes it should open (the same DEK,
//! wrapped once more; ciphertext unchanged). Removing one re-encrypts every
//! envelope it could open with a fresh DEK, so the removed key opens
//! nothing sealed from now on; history keeps what it had, and the command
//! counts what stays readable.

use std::collections::HashSet;

use serde::Serialize;
use serde_json::{json, Map};

use super::rekey::Mode;
use super::{apply, kek, Journal, KeyState, LifecycleError};
use crate::audit::{self, entry, AuditError};
use crate::keys::record::Status;
use crate::kid::Kid;
use crate::policy::Scope;
use crate::workspace::Workspace;

/// Who new envelopes go to: the default recipients and each scope.
#[derive(Debug, Serialize)]
pub struct Listing {
    pub default: Vec<Kid>,
    pub scopes: Vec<Scope>,
}

pub fn list(ws: &Workspace) -> Listing {
    Listing {
        default: KeyState::of(ws).actives(),
        scopes: ws.policy.file.recipients.clone(),
    }
}

/// What `recipients add` or `remove` did.
#[derive(Debug)]
pub struct Changed {
    pub kid: Kid,
    pub paths: Option<Vec<String>>,
    pub resumed: bool,
    /// A public key was added to `.seal/keys/` first.
    pub imported: bool,
    pub rewrapped: usize,
    pub reencrypted: usize,
    /// Blobs in history (any ref) still wrapped to the removed kid, and
    /// at how many paths.
    pub history_blobs: usize,
    pub history_paths: usize,
    pub audit: Result<bool, AuditError>,
}

fn command_line(verb: &str, who: &str, paths: &Option<Vec<String>>) -> String {
    let mut line = format!("git seal recipients {verb} {who}");
    for glob in paths.iter().flatten() {
        line.push_str(&format!(" --paths '{glob}'"));
    }
    line
}

/// Make `who` (a listed kid, or a teammate's public key, which is added
/// to `.seal/keys/` first) a recipient: of every new envelope, or of the
/// scope `paths`; and re-wrap the envelopes of the index it should open.
pub fn add(
    ws: &Workspace,
    who: &str,
    name: Option<String>,
    paths: Option<Vec<String>>,
) -> Result<Changed, LifecycleError> {
    let wanted = command_line("add", who, &paths);
    let journal = Journal::resume(ws, entry::EVENT_RECIPIENT_ADD, &wanted)?;
    let resumed = journal.is_some();
    let mut imported = false;
    let (kid, mut ws_now) = match Kid::parse(who) {
        Ok(kid) => (kid, None),
        Err(_) => {
            let public = kek::parse_public_key(who)?;
            let kid = Kid::of_x25519(&public);
            if ws.record(&kid).is_some() {
                (kid, None)
            } else {
                kek::add(
                    ws,
                    kek::NewKek::Public {
                        key: who.to_owned(),
                        name,
                    },
                )?;
                imported = true;
                (kid, Some(Workspace::from_repo(ws.repo.reopen()?)?))
            }
        }
    };
    let ws = ws_now.as_mut().map_or(ws, |w| &*w);
    let record = ws
        .record(&kid)
        .ok_or_else(|| LifecycleError::UnknownKid { kid: kid.clone() })?;
    if record.status == Status::Removed {
        return Err(LifecycleError::Refused(format!(
            "{kid} is removed; a removed KEK cannot become a recipient again (add a new one with `git seal kek add`)"
        )));
    }
    if record.public_key.is_none() {
        return Err(crate::workspace::WorkspaceError::NoPublicKey { kid }.into());
    }
    let mut journal = journal.unwrap_or_else(|| Journal::new(entry::EVENT_RECIPIENT_ADD, wanted));
    journal.to = Some(kid.clone());
    journal.paths = paths.clone();
    // Saved by `apply` once re-keying has worked, before anything changes:
    // a run that fails before then (an envelope nobody here can open)
    // leaves nothing to finish.

    let mut state = KeyState::of(ws);
    match &paths {
        None => state.record_mut(&kid)?.status = Status::Active,
        Some(globs) => {
            let defaults = state.actives();
            match state
                .policy
                .recipients
                .iter_mut()
                .find(|s| s.paths == *globs)
            {
                Some(scope) if scope.kids.contains(&kid) => {}
                Some(scope) => scope.kids.push(kid.clone()),
                None => {
                    // A new scope keeps whoever opened these paths before.
                    let mut kids = defaults;
                    if !kids.contains(&kid) {
                        kids.push(kid.clone());
                    }
                    state.policy.recipients.insert(
                        0,
                        Scope {
                            paths: globs.clone(),
                            kids,
                        },
                    );
                }
            }
        }
    }
    let decide = |has: &[Kid], wants: &[Kid]| {
        (wants.contains(&kid) && !has.contains(&kid)).then_some(Mode::Rewrap)
    };
    let (rewrapped, _, tree) = apply(
        ws,
        &mut journal,
        &state,
        &decide,
        &HashSet::new(),
        "recipients add",
    )?;
    let mut data = Map::new();
    data.insert("kid".into(), json!(kid));
    data.insert("paths".into(), json!(paths));
    data.insert("rewrapped".into(), json!(rewrapped));
    data.insert("index_tree".into(), json!(tree.to_string()));
    let audit = audit::on_lifecycle(&ws.repo, entry::EVENT_RECIPIENT_ADD, data);
    Journal::finish(&ws.repo)?;
    Ok(Changed {
        kid,
        paths,
        resumed,
        imported,
        rewrapped,
        reencrypted: 0,
        history_blobs: 0,
        history_paths: 0,
        audit,
    })
}

/// Stop wrapping new envelopes to `kid` (everywhere, or in the scope
/// `paths`), and re-encrypt every envelope of the index it could open
/// there. Refused when it is the last recipient of the default or of a
/// scope.
pub fn remove(
    ws: &Workspace,
    kid: &Kid,
    paths: Option<Vec<String>>,
) -> Result<Changed, LifecycleError> {
    let wanted = command_line("remove", kid.as_str(), &paths);
    let journal = Journal::resume(ws, entry::EVENT_RECIPIENT_REMOVE, &wanted)?;
    let resumed = journal.is_some();
    if ws.record(kid).is_none() {
        return Err(LifecycleError::UnknownKid { kid: kid.clone() });
    }
    let mut state = KeyState::of(ws);
    let mut scopes_hit = 0;
    for scope in &mut state.policy.recipients {
        if paths.as_ref().is_some_and(|globs| scope.paths != *globs) {
            continue;
        }
        if let Some(at) = scope.kids.iter().position(|k| k == kid) {
            if scope.kids.len() == 1 {
                return Err(LifecycleError::Refused(format!(
                    "{kid} is the last recipient of the scope {}: nobody could open those files. Add another first (`git seal recipients add KID --paths GLOB`)",
                    scope.paths.join(", ")
                )));
            }
            scope.kids.remove(at);
            scopes_hit += 1;
        }
    }
    match &paths {
        None => {
            let record = state.record_mut(kid)?;
            if record.status == Status::Active {
                record.status = Status::Retired;
            }
            if state.actives().is_empty() {
                return Err(LifecycleError::Refused(format!(
                    "{kid} is the last default recipient: nobody could open new envelopes. Add another first (`git seal recipients add KID`, or `git seal rotate --from {kid}`)"
                )));
            }
        }
        Some(globs) if scopes_hit == 0 => {
            return Err(LifecycleError::Refused(format!(
                "no recipients scope with exactly the paths {} names {kid} (`git seal recipients list` shows the scopes)",
                globs.join(", ")
            )));
        }
        Some(_) => {}
    }
    // Not a recipient (any more): nothing changes in the records, but the
    // envelopes of the index that still name it (say, merged in from a
    // branch made before) are re-encrypted all the same.
    let mut journal =
        journal.unwrap_or_else(|| Journal::new(entry::EVENT_RECIPIENT_REMOVE, wanted));
    journal.from = Some(kid.clone());
    journal.paths = paths.clone();
    // Saved by `apply` once re-keying has worked, before anything changes:
    // a run that fails before then (an envelope nobody here can open)
    // leaves nothing to finish.
    let decide = |has: &[Kid], wants: &[Kid]| {
        (has.contains(kid) && !wants.contains(kid)).then_some(Mode::Reencrypt)
    };
    let (_, reencrypted, tree) = apply(
        ws,
        &mut journal,
        &state,
        &decide,
        &HashSet::new(),
        "recipients remove",
    )?;
    let (history_blobs, history_paths) = readable_history(ws, kid)?;
    let mut data = Map::new();
    data.insert("kid".into(), json!(kid));
    data.insert("paths".into(), json!(paths));
    data.insert("reencrypted".into(), json!(reencrypted));
    data.insert("history_blobs".into(), json!(history_blobs));
    data.insert("index_tree".into(), json!(tree.to_string()));
    let audit = audit::on_lifecycle(&ws.repo, entry::EVENT_RECIPIENT_REMOVE, data);
    Journal::finish(&ws.repo)?;
    Ok(Changed {
        kid: kid.clone(),
        paths,
        resumed,
        imported: false,
        rewrapped: 0,
        reencrypted,
        history_blobs,
        history_paths,
        audit,
    })
}

/// Blobs reachable from any ref that are envelopes wrapped to `kid` (what
/// its holder can still open), and at how many paths.
fn readable_history(ws: &Workspace, kid: &Kid) -> Result<(usize, usize), LifecycleError> {
    let out = ws.repo.git().run(&["rev-list", "--objects", "--all"])?;
    // Each object is listed once, with the first path it was found at.
    let mut blobs = HashSet::new();
    let mut paths = HashSet::new();
    for record in out.stdout.split(|b| *b == b'\n') {
        let record = String::from_utf8_lossy(record);
        let Some((id, path)) = record.split_once(' ') else {
            continue;
        };
        let Ok(id) = crate::repo::Oid::from_str(id) else {
            continue;
        };
        if super::kids_of(&ws.repo, id)?.is_some_and(|kids| kids.contains(kid)) {
            blobs.insert(id);
            paths.insert(path.to_owned());
        }
    }
    Ok((blobs.len(), paths.len()))
}
