//! The audit entry format: `entry.json` in each chain commit's tree
//! (docs/audit.md). Parsing is strict (unknown fields are refused) so that
//! an entry means exactly what it says; writing is canonical.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub const SCHEMA: &str = "git-seal.audit/v1";
/// The only file in an entry commit's tree.
pub const FILE: &str = "entry.json";

/// Events with a meaning to the verifier (others are recorded as data).
pub const EVENT_INIT: &str = "init";
pub const EVENT_SIGNER_ADD: &str = "signer-add";
pub const EVENT_CHAIN_MERGE: &str = "chain-merge";
pub const EVENT_SIGNER_REMOVE: &str = "signer-remove";

/// Key lifecycle events (SPEC §3a; docs/audit.md gives their data).
pub const EVENT_KEK_ADD: &str = "kek-add";
pub const EVENT_ROTATE: &str = "rotate";
pub const EVENT_KEK_REMOVE: &str = "kek-remove";
pub const EVENT_KEK_DESTROY: &str = "kek-destroy";
pub const EVENT_RECIPIENT_ADD: &str = "recipient-add";
pub const EVENT_RECIPIENT_REMOVE: &str = "recipient-remove";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub schema: String,
    pub seq: u64,
    pub time: String,
    pub actor: Actor,
    pub event: String,
    pub data: Map<String, Value>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    pub name: String,
    pub email: String,
    /// SSH fingerprint (`SHA256:…`) of the key that signs the entry.
    pub signer: String,
}

/// What is wrong with an `entry.json`.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    #[error("{FILE} is not a valid entry: {0}")]
    Json(serde_json::Error),
    #[error("unknown schema {0:?} (expected {SCHEMA})")]
    Schema(String),
    #[error("seq is 0 (sequence numbers start at 1)")]
    ZeroSeq,
    #[error("time {0:?} is not RFC 3339 UTC")]
    Time(String),
    #[error("event {0:?} is not an event name")]
    Event(String),
    #[error("actor.signer {0:?} is not an SSH SHA256 fingerprint")]
    Signer(String),
    #[error("{event} entry without data.{field} (a string)")]
    MissingData { event: String, field: &'static str },
    #[error("signer-remove entry's data.fingerprint {0:?} is not an SSH SHA256 fingerprint")]
    RemoveFingerprint(String),
    #[error("data holds the number {0}, which is not a whole number (entries record ids, paths, kids and counts)")]
    Fraction(String),
}

/// A number in `value` that is not a whole number, if any. Entries never
/// record one, and a JSON fraction does not survive a parse and a write
/// unchanged, so the text of an entry would not say what was signed.
fn fraction_in(value: &Value) -> Option<&serde_json::Number> {
    match value {
        Value::Number(n) if !(n.is_i64() || n.is_u64()) => Some(n),
        Value::Array(items) => items.iter().find_map(fraction_in),
        Value::Object(fields) => fields.values().find_map(fraction_in),
        _ => None,
    }
}

impl Entry {
    /// Canonical text: two-space indented JSON, keys in field order (data
    /// keys sorted), one final newline.
    pub fn to_text(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("entry serializes");
        text.push('\n');
        text
    }

    /// Parse and check an entry; the error says what is wrong.
    pub fn parse(bytes: &[u8]) -> Result<Entry, EntryError> {
        let entry: Entry = serde_json::from_slice(bytes).map_err(EntryError::Json)?;
        entry.check()?;
        Ok(entry)
    }

    fn check(&self) -> Result<(), EntryError> {
        if self.schema != SCHEMA {
            return Err(EntryError::Schema(self.schema.clone()));
        }
        if self.seq == 0 {
            return Err(EntryError::ZeroSeq);
        }
        if !self.time.ends_with('Z') || humantime::parse_rfc3339(&self.time).is_err() {
            return Err(EntryError::Time(self.time.clone()));
        }
        if !is_event_name(&self.event) {
            return Err(EntryError::Event(self.event.clone()));
        }
        if !self.actor.signer.starts_with("SHA256:") {
            return Err(EntryError::Signer(self.actor.signer.clone()));
        }
        if let Some(n) = self.data.values().find_map(fraction_in) {
            return Err(EntryError::Fraction(n.to_string()));
        }
        let required: &[&'static str] = match self.event.as_str() {
            EVENT_SIGNER_ADD => &["public_key", "fingerprint", "email"],
            EVENT_SIGNER_REMOVE => &["fingerprint"],
            _ => &[],
        };
        if let Some(field) = required
            .iter()
            .find(|f| !self.data.get(**f).is_some_and(Value::is_string))
        {
            return Err(EntryError::MissingData {
                event: self.event.clone(),
                field,
            });
        }
        if self.event == EVENT_SIGNER_REMOVE {
            let fingerprint = self.data_str("fingerprint").unwrap_or_default();
            if !fingerprint.starts_with("SHA256:") {
                return Err(EntryError::RemoveFingerprint(fingerprint.to_owned()));
            }
        }
        Ok(())
    }

    pub fn data_str(&self, field: &str) -> Option<&str> {
        self.data.get(field).and_then(Value::as_str)
    }

    /// The strings in the array `data.FIELD` (none if it is not an array).
    pub fn data_strs(&self, field: &str) -> Vec<&str> {
        self.data
            .get(field)
            .and_then(Value::as_array)
            .map(|items| items.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }
}

/// Lowercase words joined by `-` (`seal`, `signer-add`).
pub fn is_event_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 40
        && name
            .split('-')
            .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Entry {
        let mut data = Map::new();
        data.insert("commit".into(), Value::String("ab".repeat(20)));
        Entry {
            schema: SCHEMA.into(),
            seq: 3,
            time: "2026-11-23T10:00:00Z".into(),
            actor: Actor {
                name: "Ada".into(),
                email: "ada@example.test".into(),
                signer: "SHA256:abc".into(),
            },
            event: "seal".into(),
            data,
        }
    }

    /// Found by fuzzing (fuzz/ `audit`): a fraction in `data` did not
    /// survive a parse and a write (8.888888888888889e+43 came back as
    /// 8.88888888888889e+43), so the entry's text would not say what was
    /// signed. Entries never record fractions: refused, nested or not.
    #[test]
    fn fractions_in_data_are_refused_found_by_fuzzing() {
        for number in ["8.888888888888889e+43", "88888.8888888", "1.0"] {
            let mut entry = sample();
            entry
                .data
                .insert("paths".into(), serde_json::json!([{"kids": []}]));
            let text = entry
                .to_text()
                .replace("\"kids\": []", &format!("\"kids\": [{number}]"));
            assert!(text.contains(number), "{text}");
            let err = Entry::parse(text.as_bytes()).unwrap_err();
            assert!(matches!(err, EntryError::Fraction(_)), "{number}: {err}");
        }
        let mut whole = sample();
        whole
            .data
            .insert("count".into(), serde_json::json!(u64::MAX));
        assert_eq!(Entry::parse(whole.to_text().as_bytes()).unwrap(), whole);
    }

    #[test]
    fn round_trip_is_canonical() {
        let text = sample().to_text();
        assert!(text.starts_with("{\n  \"schema\": \"git-seal.audit/v1\",\n  \"seq\": 3,"));
        assert!(text.ends_with("}\n"));
        assert_eq!(Entry::parse(text.as_bytes()).unwrap(), sample());
    }

    /// `signer-remove` names the signer it removes by a fingerprint string;
    /// anything else is refused at parse time, as for `signer-add`.
    #[test]
    fn signer_remove_needs_a_fingerprint_string() {
        let with = |data: Value| {
            let mut entry = sample();
            entry.event = EVENT_SIGNER_REMOVE.into();
            entry.data = data.as_object().unwrap().clone();
            Entry::parse(entry.to_text().as_bytes())
        };
        let good = with(serde_json::json!({"fingerprint": "SHA256:abc"})).unwrap();
        assert_eq!(good.data_str("fingerprint"), Some("SHA256:abc"));
        for bad in [
            serde_json::json!({}),
            serde_json::json!({"fingerprint": 7}),
            serde_json::json!({"fingerprint": null}),
            serde_json::json!({"fingerprint": ["SHA256:abc"]}),
        ] {
            let err = with(bad.clone()).unwrap_err();
            assert!(
                matches!(&err, EntryError::MissingData { event, field: "fingerprint" } if event == EVENT_SIGNER_REMOVE),
                "{bad}: {err}"
            );
            assert!(err
                .to_string()
                .contains("signer-remove entry without data.fingerprint"));
        }
        let err = with(serde_json::json!({"fingerprint": "MD5:ab:cd"})).unwrap_err();
        assert!(matches!(err, EntryError::RemoveFingerprint(_)), "{err}");
        // signer-add still says which of its fields is missing.
        let mut add = sample();
        add.event = EVENT_SIGNER_ADD.into();
        add.data =
            serde_json::json!({"public_key": "ssh-ed25519 AAAA", "fingerprint": "SHA256:abc"})
                .as_object()
                .unwrap()
                .clone();
        let err = Entry::parse(add.to_text().as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "signer-add entry without data.email (a string)"
        );
    }

    #[test]
    fn refuses_unknown_fields_schema_time_and_events() {
        let text = sample().to_text();
        let extra = text.replacen("\"seq\"", "\"extra\": 1,\n  \"seq\"", 1);
        assert!(Entry::parse(extra.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("unknown field"));
        let schema = text.replace("audit/v1", "audit/v9");
        assert!(Entry::parse(schema.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("schema"));
        let time = text.replace("10:00:00Z", "10:00:00+01:00");
        assert!(Entry::parse(time.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("time"));
        let event = text.replace("\"seal\"", "\"Seal!\"");
        assert!(Entry::parse(event.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("event"));
        let seq = text.replace("\"seq\": 3", "\"seq\": 0");
        assert!(Entry::parse(seq.as_bytes()).is_err());
        assert!(is_event_name("signer-add") && !is_event_name("a--b") && !is_event_name(""));
    }
}
