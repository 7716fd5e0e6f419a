//! Choosing entries for `git seal audit log`: by the paths an entry names,
//! its actor, its event and its time. Pure: it judges entries already read
//! and does no I/O. Also what an entry names ([`paths_of`], [`kids_of`]),
//! which the log prints.

use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::approvals;
use super::entry::{self, Entry};
use crate::policy;

/// Every event git-seal writes (docs/audit.md), for `--event`: a name not
/// here would match nothing, which is more likely a typo than a wish.
pub const EVENTS: &[&str] = &[
    entry::EVENT_INIT,
    "seal",
    approvals::EVENT_POLICY,
    "merge",
    "rewrite",
    "migrate",
    entry::EVENT_SIGNER_ADD,
    entry::EVENT_SIGNER_REMOVE,
    entry::EVENT_CHAIN_MERGE,
    approvals::EVENT_UNSEAL_PATH,
    approvals::EVENT_ACCEPT_FINDING,
    entry::EVENT_KEK_ADD,
    entry::EVENT_ROTATE,
    entry::EVENT_KEK_REMOVE,
    entry::EVENT_KEK_DESTROY,
    entry::EVENT_RECIPIENT_ADD,
    entry::EVENT_RECIPIENT_REMOVE,
];

#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("unknown event {name:?} (events: {})", EVENTS.join(", "))]
    UnknownEvent { name: String },
    #[error("{text:?} is not a time (RFC 3339, e.g. 2026-11-23T10:00:00Z or 2026-11-23T11:00:00+01:00, or a date, YYYY-MM-DD)")]
    BadTime { text: String },
}

/// Which entries to list; every condition given must hold.
#[derive(Debug, Default)]
pub struct Filter {
    /// The path as given (tidied), and as a glob if it is one.
    path: Option<(String, Option<globset::GlobMatcher>)>,
    actor: Option<String>,
    events: Vec<String>,
    since: Option<SystemTime>,
    /// Entries at or after this are left out.
    before: Option<SystemTime>,
}

impl Filter {
    /// `--path`: a path names itself and everything under it (a
    /// directory), and a glob as in the policy (globset, `/` literal, a
    /// glob without `/` matching at any depth) matches what it matches. A
    /// pattern that is not a valid glob (`[x`) is still a path: file
    /// names may hold any of a glob's characters.
    pub fn path(mut self, pattern: &str) -> Filter {
        let glob = policy::pattern_matcher(pattern).ok();
        let plain = pattern.trim_start_matches("./").trim_end_matches('/');
        self.path = Some((plain.to_owned(), glob));
        self
    }

    /// `--actor`: part of the name or email (any case), or the start of
    /// the signer's fingerprint (`SHA256:…`, exact case).
    pub fn actor(mut self, text: &str) -> Filter {
        self.actor = Some(text.to_owned());
        self
    }

    /// `--event`, repeatable: any of these events.
    pub fn event(mut self, name: &str) -> Result<Filter, FilterError> {
        if !EVENTS.contains(&name) {
            return Err(FilterError::UnknownEvent {
                name: name.to_owned(),
            });
        }
        self.events.push(name.to_owned());
        Ok(self)
    }

    /// `--since`: entries made at or after this time (a date: its start,
    /// UTC).
    pub fn since(mut self, text: &str) -> Result<Filter, FilterError> {
        self.since = Some(parse_time(text)?.0);
        Ok(self)
    }

    /// `--until`: entries made at or before this time (a date: through its
    /// end, UTC).
    pub fn until(mut self, text: &str) -> Result<Filter, FilterError> {
        let (at, date) = parse_time(text)?;
        let span = if date {
            Duration::from_secs(24 * 60 * 60)
        } else {
            Duration::from_nanos(1)
        };
        self.before = Some(at + span);
        Ok(self)
    }

    pub fn matches(&self, entry: &Entry) -> bool {
        if !self.events.is_empty() && !self.events.contains(&entry.event) {
            return false;
        }
        if let Some(text) = &self.actor {
            let lower = text.to_lowercase();
            let actor = &entry.actor;
            if !(actor.name.to_lowercase().contains(&lower)
                || actor.email.to_lowercase().contains(&lower)
                || actor.signer.starts_with(text.as_str()))
            {
                return false;
            }
        }
        if self.since.is_some() || self.before.is_some() {
            // The verifier refuses an entry whose time does not parse.
            let Ok(time) = humantime::parse_rfc3339(&entry.time) else {
                return false;
            };
            if self.since.is_some_and(|since| time < since)
                || self.before.is_some_and(|before| time >= before)
            {
                return false;
            }
        }
        if let Some((plain, glob)) = &self.path {
            let under = |path: &str| {
                path == plain
                    || path
                        .strip_prefix(plain.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            };
            if !paths_of(entry)
                .iter()
                .any(|path| under(path) || glob.as_ref().is_some_and(|g| g.is_match(path)))
            {
                return false;
            }
        }
        true
    }
}

/// A time as `--since`/`--until` take it, and whether it was a date.
/// RFC 3339 with `Z` or an offset (`+01:00`), or `YYYY-MM-DD` (UTC).
fn parse_time(text: &str) -> Result<(SystemTime, bool), FilterError> {
    let bad = || FilterError::BadTime {
        text: text.to_owned(),
    };
    let is_date = |t: &str| {
        t.len() == 10
            && t.bytes().enumerate().all(|(i, b)| {
                if i == 4 || i == 7 {
                    b == b'-'
                } else {
                    b.is_ascii_digit()
                }
            })
    };
    if is_date(text) {
        let at = humantime::parse_rfc3339(&format!("{text}T00:00:00Z")).map_err(|_| bad())?;
        return Ok((at, true));
    }
    if !is_date(text.get(..10).unwrap_or_default()) {
        return Err(bad());
    }
    if let Some(utc) = text.strip_suffix(['Z', 'z']) {
        let at = humantime::parse_rfc3339(&format!("{utc}Z")).map_err(|_| bad())?;
        return Ok((at, false));
    }
    // `±HH:MM` at the end: the local time there, less the offset, is UTC.
    let split = text.len().checked_sub(6).ok_or_else(bad)?;
    let (local, offset) = text.split_at(split);
    let sign = match offset.as_bytes()[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return Err(bad()),
    };
    let hours: u64 = offset[1..3].parse().map_err(|_| bad())?;
    let minutes: u64 = offset[4..6].parse().map_err(|_| bad())?;
    if &offset[3..4] != ":" || hours > 23 || minutes > 59 {
        return Err(bad());
    }
    let local = humantime::parse_rfc3339(&format!("{local}Z")).map_err(|_| bad())?;
    let shift = Duration::from_secs((hours * 60 + minutes) * 60);
    let at = if sign > 0 {
        local.checked_sub(shift)
    } else {
        local.checked_add(shift)
    };
    Ok((at.ok_or_else(bad)?, false))
}

/// The repository paths (and path globs, for recipient scopes) an entry
/// names: `data.path`, and `data.paths` whether its items are strings or
/// `{path, …}` records.
pub fn paths_of(entry: &Entry) -> Vec<&str> {
    let mut paths: Vec<&str> = entry.data_str("path").into_iter().collect();
    if let Some(items) = entry.data.get("paths").and_then(Value::as_array) {
        for item in items {
            let path = item
                .as_str()
                .or_else(|| item.get("path").and_then(Value::as_str));
            paths.extend(path);
        }
    }
    paths
}

/// The kids an entry names (`kids`, `kid`, a rotation's `from` and `to`,
/// and each path record's `kids`), each once, in the order met.
pub fn kids_of(entry: &Entry) -> Vec<&str> {
    let mut found: Vec<&str> = entry.data_strs("kids");
    for field in ["kid", "from", "to"] {
        if field == "kid" || entry.event == entry::EVENT_ROTATE {
            found.extend(entry.data_str(field));
        }
    }
    for item in entry
        .data
        .get("paths")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let kids = item.get("kids").and_then(Value::as_array);
        found.extend(kids.into_iter().flatten().filter_map(Value::as_str));
    }
    let mut kids = Vec::with_capacity(found.len());
    for kid in found {
        if !kids.contains(&kid) {
            kids.push(kid);
        }
    }
    kids
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(event: &str, time: &str, data: Value) -> Entry {
        Entry {
            schema: entry::SCHEMA.into(),
            seq: 2,
            time: time.into(),
            actor: entry::Actor {
                name: "Ada Lovelace".into(),
                email: "ada@example.test".into(),
                signer: "SHA256:AbCdEf".into(),
            },
            event: event.into(),
            data: data.as_object().unwrap().clone(),
        }
    }

    fn seal(path: &str) -> Entry {
        let record = json!({"path": path, "change": "added", "blob": null, "kids": ["k_1", "k_2"]});
        entry("seal", "2026-03-04T05:06:07Z", json!({"paths": [record]}))
    }

    #[test]
    fn paths_match_themselves_their_directories_and_globs() {
        let e = seal("secrets/db/prod.env");
        for pattern in [
            "secrets/db/prod.env",
            "secrets",
            "secrets/db/",
            "./secrets",
            "*.env",
            "secrets/**",
            "prod.env",
        ] {
            assert!(Filter::default().path(pattern).matches(&e), "{pattern}");
        }
        for pattern in ["secret", "secrets/db/prod", "db/**", "*.txt"] {
            assert!(!Filter::default().path(pattern).matches(&e), "{pattern}");
        }
        let accept = entry(
            approvals::EVENT_ACCEPT_FINDING,
            "2026-03-04T05:06:07Z",
            json!({"path": "old/leak.env"}),
        );
        assert!(Filter::default().path("old").matches(&accept));
        let unseal = entry(
            approvals::EVENT_UNSEAL_PATH,
            "2026-03-04T05:06:07Z",
            json!({"paths": ["a.txt"]}),
        );
        assert!(Filter::default().path("a.txt").matches(&unseal));
        // Not a glob: still a path.
        let odd = entry(
            approvals::EVENT_UNSEAL_PATH,
            "2026-03-04T05:06:07Z",
            json!({"paths": ["a[1].txt", "b[.txt"]}),
        );
        assert!(Filter::default().path("b[.txt").matches(&odd));
        assert!(Filter::default().path("a[1].txt").matches(&odd));
    }

    #[test]
    fn actor_matches_name_email_or_fingerprint() {
        let e = seal("a");
        for text in ["lovelace", "ADA@", "SHA256:AbC", "SHA256:AbCdEf"] {
            assert!(Filter::default().actor(text).matches(&e), "{text}");
        }
        for text in ["bea", "SHA256:abc", "AbCdEf"] {
            assert!(!Filter::default().actor(text).matches(&e), "{text}");
        }
    }

    #[test]
    fn unknown_events_are_refused_with_the_list() {
        let err = Filter::default().event("seals").unwrap_err().to_string();
        assert!(
            err.contains("\"seals\"") && err.contains("accept-finding, "),
            "{err}"
        );
        let filter = Filter::default()
            .event("init")
            .unwrap()
            .event("seal")
            .unwrap();
        assert!(filter.matches(&seal("a")));
        assert!(!Filter::default().event("init").unwrap().matches(&seal("a")));
    }

    #[test]
    fn since_and_until_take_rfc3339_and_dates_inclusively() {
        let e = seal("a"); // 2026-03-04T05:06:07Z
        let keeps = |since: Option<&str>, until: Option<&str>| {
            let mut filter = Filter::default();
            if let Some(t) = since {
                filter = filter.since(t).unwrap();
            }
            if let Some(t) = until {
                filter = filter.until(t).unwrap();
            }
            filter.matches(&e)
        };
        assert!(keeps(Some("2026-03-04"), Some("2026-03-04")));
        assert!(keeps(
            Some("2026-03-04T05:06:07Z"),
            Some("2026-03-04T05:06:07Z")
        ));
        assert!(keeps(Some("2026-03-04T06:06:07+01:00"), None));
        assert!(!keeps(Some("2026-03-04T06:06:08+01:00"), None));
        assert!(keeps(None, Some("2026-03-04T00:06:07-05:00")));
        assert!(!keeps(None, Some("2026-03-04T00:06:06-05:00")));
        assert!(!keeps(Some("2026-03-05"), None));
        assert!(!keeps(None, Some("2026-03-03")));
        assert!(!keeps(Some("2026-03-04T05:06:07.5Z"), None));
        for bad in [
            "yesterday",
            "2026-3-4",
            "2026-03-04T05:06:07",
            "2026-03-04 05:06",
            "",
        ] {
            assert!(
                matches!(
                    Filter::default().since(bad),
                    Err(FilterError::BadTime { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn kids_are_collected_once_each() {
        assert_eq!(kids_of(&seal("a")), ["k_1", "k_2"]);
        let rotate = entry(
            entry::EVENT_ROTATE,
            "2026-03-04T05:06:07Z",
            json!({"from": "k_a", "to": "k_b"}),
        );
        assert_eq!(kids_of(&rotate), ["k_a", "k_b"]);
        let init = entry("init", "2026-03-04T05:06:07Z", json!({"kids": ["k_a"]}));
        assert_eq!(kids_of(&init), ["k_a"]);
        let policy = entry("policy", "2026-03-04T05:06:07Z", json!({"from": "x"}));
        assert!(kids_of(&policy).is_empty());
    }
}
