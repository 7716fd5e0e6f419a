//! What became of a KEK whose private half is not here (SPEC §3a), so that
//! "no usable key" can say whether installing a key would help at all.
//!
//! A KEK's record says whether it is retired or removed; the audit chain
//! says when `kek remove` removed it and when `kek remove --destroy` erased
//! its private half, and who did. The chain is what every clone shares
//! whatever commit is checked out: an old commit's records still call a
//! destroyed KEK active. This only reads, and is *not* verification
//! (`audit verify` is): what it finds explains a failure, it never decides
//! anything.

use std::collections::{BTreeSet, HashMap};

use super::{chain, entry, from_chain_cached};
use crate::keys::record::{KekRecord, Status};
use crate::kid::Kid;
use crate::printable::escape;
use crate::repo::Repo;

/// `.git/seal/kek-fates`: what [`from_chain_cached`] keeps of the chain.
const CACHE: &str = "kek-fates";
const CACHE_FORMAT: &str = "git-seal kek-fates v1";

/// What became of one KEK.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fate {
    /// `kek remove --destroy` erased its private half (a `kek-destroy`
    /// entry that erased something): `on` is the entry's date, `by` its
    /// actor.
    Destroyed { on: String, by: String },
    /// `kek remove` marked it removed (a `kek-remove` entry, else its
    /// record); a copy of its private half may survive somewhere.
    Removed { on: Option<(String, String)> },
    /// Replaced by a rotation or no longer a recipient: its key file was
    /// archived where that ran.
    Retired,
}

/// The fates of the KEKs that the chain or the records know of.
#[derive(Debug, Default)]
pub struct Fates(HashMap<Kid, Fate>);

/// What to say about an envelope none of whose keys is here.
#[derive(Debug, PartialEq, Eq)]
pub struct Explained {
    /// What became of its KEKs, one clause for each whose fate is known.
    pub says: String,
    /// What can still be done, if anything.
    pub fix: Option<String>,
}

/// The advice for an envelope none of whose keys is here: `install` when
/// nothing is known of its KEKs' fate, else what became of them and what
/// can still be done, then `again` (e.g. "run `git seal unlock` again")
/// unless that is installing.
pub fn advice(explained: Option<Explained>, install: &str, again: &str) -> String {
    match explained {
        None => install.to_owned(),
        Some(Explained { says, fix: None }) => says,
        Some(Explained {
            says,
            fix: Some(fix),
        }) if fix == install => format!("{says}; {fix}"),
        Some(Explained {
            says,
            fix: Some(fix),
        }) => format!("{says}; {fix}, then {again}"),
    }
}

impl Fates {
    /// From the audit chain here (`kek-remove` and `kek-destroy` entries)
    /// and `records` (the statuses `removed` and `retired`). A chain that
    /// cannot be read counts as saying nothing.
    pub fn read(repo: &Repo, records: &[KekRecord]) -> Fates {
        let mut fates = HashMap::new();
        for record in records {
            let fate = match record.status {
                Status::Removed => Fate::Removed { on: None },
                Status::Retired => Fate::Retired,
                Status::Active | Status::Pending => continue,
            };
            fates.insert(record.kid.clone(), fate);
        }
        // Lines `kid \t event \t time \t actor`, sorted: each kid's first
        // removal and first erasure win.
        for line in ends(repo) {
            let mut fields = line.splitn(4, '\t');
            let (Some(kid), Some(event), Some(time), Some(by)) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            let Ok(kid) = Kid::parse(kid) else { continue };
            let on = date_of(time);
            match (event, fates.get(&kid)) {
                (_, Some(Fate::Destroyed { .. })) => {}
                (entry::EVENT_KEK_DESTROY, _) => {
                    fates.insert(
                        kid,
                        Fate::Destroyed {
                            on,
                            by: by.to_owned(),
                        },
                    );
                }
                (entry::EVENT_KEK_REMOVE, Some(Fate::Removed { on: Some(_) })) => {}
                (entry::EVENT_KEK_REMOVE, _) => {
                    fates.insert(
                        kid,
                        Fate::Removed {
                            on: Some((on, by.to_owned())),
                        },
                    );
                }
                _ => {}
            }
        }
        Fates(fates)
    }

    pub fn of(&self, kid: &Kid) -> Option<&Fate> {
        self.0.get(kid)
    }

    /// What to say about an envelope wrapped to `kids`, none of whose
    /// private halves is here; `install` is the advice for a KEK that is
    /// simply not installed here. `None` when no kid's fate is known (the
    /// caller's usual message stands).
    pub fn explain(&self, kids: &[Kid], install: &str) -> Option<Explained> {
        let mut says = Vec::new();
        let mut unknown = 0;
        let mut may_survive = Vec::new();
        for kid in kids {
            match self.of(kid) {
                None => unknown += 1,
                Some(fate) => {
                    says.push(fate.say(kid));
                    if !matches!(fate, Fate::Destroyed { .. }) {
                        may_survive.push(kid.as_str());
                    }
                }
            }
        }
        if says.is_empty() {
            return None;
        }
        let fix = if unknown > 0 {
            Some(install.to_owned())
        } else if let [kid] = may_survive.as_slice() {
            Some(format!(
                "bring its private half here if a copy survives: `git seal kek export {kid} --out FILE` where it is kept, then `git seal kek import FILE` here (or put it in GIT_SEAL_KEK)"
            ))
        } else if !may_survive.is_empty() {
            Some(format!(
                "bring the private half of one of {} here if a copy survives: `git seal kek export KID --out FILE` where it is kept, then `git seal kek import FILE` here (or put it in GIT_SEAL_KEK)",
                may_survive.join(", ")
            ))
        } else {
            None
        };
        Some(Explained {
            says: says.join("; "),
            fix,
        })
    }
}

impl Fate {
    /// One clause on what became of `kid` and what that means for history
    /// sealed to it (docs/threat-model.md: history sealed to a removed key
    /// stays readable to that key; crypto-erasure reaches one machine).
    fn say(&self, kid: &Kid) -> String {
        match self {
            Fate::Destroyed { on, by } => format!(
                "{kid} was destroyed on {on} by `git seal kek remove --destroy` ({by}): its private half was erased, so this history cannot be opened with it; only a copy kept outside git-seal's reach (a CI secret, another machine, a backup) could still open it"
            ),
            Fate::Removed { on: Some((on, by)) } => format!(
                "{kid} was removed on {on} by `git seal kek remove` ({by}): it seals nothing new, but history sealed to it still opens with its private half wherever a copy survives"
            ),
            Fate::Removed { on: None } => format!(
                "{kid} is removed (its record in .seal/keys/ says so): it seals nothing new, but history sealed to it still opens with its private half wherever a copy survives"
            ),
            Fate::Retired => format!(
                "{kid} is retired (replaced by `git seal rotate`, or no longer a recipient): history sealed to it still opens with its private half, archived in the key directory's archive/ where that ran"
            ),
        }
    }
}

/// The day of an entry's RFC 3339 time (`2026-11-25T04:47:03Z`).
fn date_of(time: &str) -> String {
    time.get(..10).unwrap_or(time).to_owned()
}

/// The chain's `kek-remove` entries and its `kek-destroy` entries that
/// erased something, as `kid \t event \t time \t actor` lines (kept in
/// `.git/seal/kek-fates` and read forward from there).
fn ends(repo: &Repo) -> BTreeSet<String> {
    let Some(tip) = chain::tip(repo) else {
        return BTreeSet::new();
    };
    let one_line = |text: &str| escape(text).replace('\t', " ");
    from_chain_cached(repo, tip, CACHE, CACHE_FORMAT, |lines, entry| {
        let erased = entry
            .data
            .get("erased")
            .and_then(serde_json::Value::as_array)
            .is_some_and(|erased| !erased.is_empty());
        let event = match entry.event.as_str() {
            entry::EVENT_KEK_REMOVE => entry::EVENT_KEK_REMOVE,
            entry::EVENT_KEK_DESTROY if erased => entry::EVENT_KEK_DESTROY,
            _ => return,
        };
        let Some(kid) = entry.data_str("kid").filter(|k| Kid::parse(k).is_ok()) else {
            return;
        };
        lines.insert(format!(
            "{kid}\t{event}\t{}\t{} <{}>",
            one_line(&entry.time),
            one_line(&entry.actor.name),
            one_line(&entry.actor.email)
        ));
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kid(n: u8) -> Kid {
        Kid::parse(&format!("k_{:016x}", n)).unwrap()
    }

    fn fates(list: &[(u8, Fate)]) -> Fates {
        Fates(list.iter().map(|(n, f)| (kid(*n), f.clone())).collect())
    }

    #[test]
    fn nothing_known_leaves_the_usual_message() {
        let known = fates(&[(1, Fate::Retired)]);
        assert_eq!(known.explain(&[kid(2), kid(3)], "install it"), None);
    }

    #[test]
    fn a_destroyed_kek_alone_leaves_nothing_to_install() {
        let destroyed = Fate::Destroyed {
            on: "2026-11-25".into(),
            by: "A <a@x>".into(),
        };
        let known = fates(&[(1, destroyed)]);
        let said = known.explain(&[kid(1)], "install it").unwrap();
        assert!(
            said.says.contains("was destroyed on 2026-11-25")
                && said.says.contains("`git seal kek remove --destroy`")
                && said.says.contains("cannot be opened"),
            "{said:?}"
        );
        assert_eq!(said.fix, None);
        // Another recipient whose fate is not known may still be installed.
        let said = known.explain(&[kid(1), kid(2)], "install it").unwrap();
        assert_eq!(said.fix.as_deref(), Some("install it"));
    }

    #[test]
    fn a_removed_or_retired_kek_may_still_be_brought_here() {
        let known = fates(&[
            (
                1,
                Fate::Removed {
                    on: Some(("2026-11-25".into(), "A <a@x>".into())),
                },
            ),
            (2, Fate::Retired),
        ]);
        let said = known.explain(&[kid(1)], "install it").unwrap();
        assert!(said.says.contains("was removed on 2026-11-25"), "{said:?}");
        let fix = said.fix.unwrap();
        assert!(
            fix.contains(&format!("git seal kek export {}", kid(1))),
            "{fix}"
        );
        let said = known.explain(&[kid(1), kid(2)], "install it").unwrap();
        assert!(said.says.contains("is retired"), "{said:?}");
        assert!(said.fix.unwrap().contains("one of"));
    }
}
