//! When a KEK is due for rotation (SPEC §3a): an active KEK is due
//! `rotate_after_days` (the policy's, default 730) after its `created_at`.
//! Pure: the caller passes `now`, so nothing here reads a clock.
//!
//! Only active KEKs are judged. A pending KEK is not a recipient yet, and a
//! retired or removed one no longer is: rotating them would change nothing
//! new envelopes are wrapped to. `status`, `doctor` and `check` all ask
//! [`expiry`] and say what it found with [`Expiry::describe`], so the three
//! agree on the date and the words.

use std::time::{Duration, SystemTime};

use super::record::{KekRecord, Status};
use crate::kid::Kid;

/// An active KEK this close to its due date is due soon.
pub const SOON_DAYS: u64 = 30;

const DAY_SECS: u64 = 86_400;

/// Where an active KEK stands against its due date.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Due {
    /// More than [`SOON_DAYS`] to go.
    Ok,
    /// Due within [`SOON_DAYS`]: `days_left` whole days, rounded up (1 on
    /// the last day before it is due).
    DueSoon { days_left: u64 },
    /// Due date reached: `days_over` whole days since (0 on the day).
    Overdue { days_over: u64 },
}

impl Due {
    /// As named in `--json` output (`due_state`).
    pub fn as_str(self) -> &'static str {
        match self {
            Due::Ok => "ok",
            Due::DueSoon { .. } => "due-soon",
            Due::Overdue { .. } => "overdue",
        }
    }
}

/// An active KEK's due date and where a moment stands against it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expiry {
    pub due: SystemTime,
    pub state: Due,
    /// The cadence it was judged by, for messages.
    pub rotate_after_days: u32,
    /// The moment it was judged at.
    pub judged_at: SystemTime,
}

impl Expiry {
    /// The due date as RFC 3339 UTC with seconds.
    pub fn due_rfc3339(&self) -> String {
        humantime::format_rfc3339_seconds(self.due).to_string()
    }

    /// The due date's day (`2028-01-02`), as messages name it.
    pub fn due_date(&self) -> String {
        let mut text = self.due_rfc3339();
        text.truncate("YYYY-MM-DD".len());
        text
    }

    /// Days until due, rounded up; once due, minus the whole days since
    /// (for `--json`).
    pub fn due_in_days(&self) -> i64 {
        let days = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        match self.state {
            Due::Ok => days(days_until(self.due, self.judged_at)),
            Due::DueSoon { days_left } => days(days_left),
            Due::Overdue { days_over } => -days(days_over),
        }
    }

    /// Does this need someone to act (due soon or overdue)?
    pub fn needs_rotation(&self) -> bool {
        self.state != Due::Ok
    }

    /// What to say about `kid`, naming it and the due date; the command
    /// that fixes it is [`rotate_fix`].
    pub fn describe(&self, kid: &Kid) -> String {
        let cadence = format!("every {} days by rotate_after_days", self.rotate_after_days);
        match self.state {
            Due::Overdue { days_over } => format!(
                "KEK {kid} is overdue for rotation: it was due on {} ({days_over} day(s) ago; {cadence})",
                self.due_date()
            ),
            Due::Ok | Due::DueSoon { .. } => format!(
                "KEK {kid} is due for rotation on {} (in {} day(s); {cadence})",
                self.due_date(),
                self.due_in_days()
            ),
        }
    }

    /// [`Expiry::describe`] and the command that fixes it, as one line.
    pub fn advice(&self, kid: &Kid) -> String {
        format!("{}; run `{}`", self.describe(kid), rotate_fix(kid))
    }
}

/// The command that rotates `kid` out.
pub fn rotate_fix(kid: &Kid) -> String {
    format!("git seal rotate --from {kid}")
}

/// When a KEK created at `created` is due, `days` after it (`None`: past
/// what the clock can hold, which is never).
pub fn due_at(created: SystemTime, days: u32) -> Option<SystemTime> {
    created.checked_add(Duration::from_secs(u64::from(days) * DAY_SECS))
}

/// Where `now` stands against `due`.
pub fn classify(due: SystemTime, now: SystemTime) -> Due {
    match due.duration_since(now) {
        Err(over) => Due::Overdue {
            days_over: over.duration().as_secs() / DAY_SECS,
        },
        Ok(left) if left.is_zero() => Due::Overdue { days_over: 0 },
        Ok(_) => match days_until(due, now) {
            left if left <= SOON_DAYS => Due::DueSoon { days_left: left },
            _ => Due::Ok,
        },
    }
}

/// Whole days from `now` to `due`, rounded up (0 if due).
fn days_until(due: SystemTime, now: SystemTime) -> u64 {
    due.duration_since(now)
        .map_or(0, |left| left.as_secs().div_ceil(DAY_SECS))
}

/// An active KEK's due date under a cadence of `days`, judged at `now`;
/// `None` for a KEK that is not active, or whose `created_at` does not
/// parse (loading a record refuses that, so only a record built in code
/// can get here with one).
pub fn expiry(record: &KekRecord, days: u32, now: SystemTime) -> Option<Expiry> {
    if record.status != Status::Active {
        return None;
    }
    let due = due_at(record.created()?, days)?;
    Some(Expiry {
        due,
        state: classify(due, now),
        rotate_after_days: days,
        judged_at: now,
    })
}

/// The active KEKs of `records` that are due soon or overdue at `now`,
/// in the records' order.
pub fn needing_rotation(
    records: &[KekRecord],
    days: u32,
    now: SystemTime,
) -> Vec<(&KekRecord, Expiry)> {
    records
        .iter()
        .filter_map(|record| Some((record, expiry(record, days, now)?)))
        .filter(|(_, expiry)| expiry.needs_rotation())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> SystemTime {
        humantime::parse_rfc3339(text).unwrap()
    }

    fn record(created_at: &str, status: Status) -> KekRecord {
        let secret = crate::secret::KekSecret::generate();
        KekRecord {
            created_at: created_at.to_owned(),
            status,
            ..KekRecord::new_x25519(&secret.public(), 1)
        }
    }

    #[test]
    fn due_is_created_at_plus_the_cadence() {
        let created = at("2024-01-01T00:00:00Z");
        assert_eq!(due_at(created, 730), Some(at("2025-12-31T00:00:00Z")));
        assert_eq!(due_at(created, 1), Some(at("2024-01-02T00:00:00Z")));
        assert_eq!(due_at(created, 0), Some(created));
        // The largest cadence a policy can hold does not panic.
        assert!(due_at(created, u32::MAX).is_none_or(|due| due > created));
    }

    #[test]
    fn classify_ok_soon_and_overdue_at_their_edges() {
        let due = at("2026-03-01T12:00:00Z");
        let before = |secs: u64| due - Duration::from_secs(secs);
        let after = |secs: u64| due + Duration::from_secs(secs);
        assert_eq!(classify(due, before(31 * DAY_SECS)), Due::Ok);
        assert_eq!(classify(due, before(30 * DAY_SECS + 1)), Due::Ok);
        assert_eq!(
            classify(due, before(30 * DAY_SECS)),
            Due::DueSoon { days_left: 30 }
        );
        assert_eq!(classify(due, before(1)), Due::DueSoon { days_left: 1 });
        assert_eq!(classify(due, due), Due::Overdue { days_over: 0 });
        assert_eq!(
            classify(due, after(DAY_SECS - 1)),
            Due::Overdue { days_over: 0 }
        );
        assert_eq!(
            classify(due, after(3 * DAY_SECS)),
            Due::Overdue { days_over: 3 }
        );
    }

    #[test]
    fn only_active_keks_are_judged() {
        let now = at("2030-01-01T00:00:00Z");
        for status in [Status::Pending, Status::Retired, Status::Removed] {
            assert_eq!(
                expiry(&record("2020-01-01T00:00:00Z", status), 730, now),
                None
            );
        }
        let active = record("2020-01-01T00:00:00Z", Status::Active);
        let found = expiry(&active, 730, now).unwrap();
        assert!(matches!(found.state, Due::Overdue { .. }));
        assert_eq!(found.due_date(), "2021-12-31");
        assert_eq!(found.due_rfc3339(), "2021-12-31T00:00:00Z");
        // A created_at that is not RFC 3339 has no due date.
        let bad = record("last tuesday", Status::Active);
        assert_eq!(expiry(&bad, 730, now), None);
        // Ok is not due soon, but still says when it will be.
        let fresh = record("2029-12-01T00:00:00Z", Status::Active);
        let later = expiry(&fresh, 730, now).unwrap();
        assert_eq!(later.state, Due::Ok);
        assert!(!later.needs_rotation());
        assert!(later.describe(&fresh.kid).ends_with(
            "due for rotation on 2031-12-01 (in 699 day(s); every 730 days by rotate_after_days)"
        ));
    }

    #[test]
    fn messages_name_the_kid_the_date_and_the_fix() {
        let now = at("2026-01-10T00:00:00Z");
        let overdue = record("2025-01-01T00:00:00Z", Status::Active);
        let soon = record("2025-12-15T00:00:00Z", Status::Active);
        let fine = record("2026-01-09T00:00:00Z", Status::Active);
        let retired = record("2000-01-01T00:00:00Z", Status::Retired);
        let records = [overdue.clone(), soon.clone(), fine, retired];
        let found = needing_rotation(&records, 45, now);
        assert_eq!(found.len(), 2);
        let (kek, due) = &found[0];
        assert_eq!(kek.kid, overdue.kid);
        assert_eq!(
            due.describe(&kek.kid),
            format!("KEK {} is overdue for rotation: it was due on 2025-02-15 (329 day(s) ago; every 45 days by rotate_after_days)", overdue.kid)
        );
        assert!(due
            .advice(&kek.kid)
            .ends_with(&format!("; run `git seal rotate --from {}`", overdue.kid)));
        let (kek, due) = &found[1];
        assert_eq!(kek.kid, soon.kid);
        assert_eq!(
            due.describe(&kek.kid),
            format!("KEK {} is due for rotation on 2026-01-29 (in 19 day(s); every 45 days by rotate_after_days)", soon.kid)
        );
    }

    #[test]
    fn due_in_days_counts_down_then_goes_negative() {
        let now = at("2026-01-10T00:00:00Z");
        let days = |created: &str, cadence| {
            expiry(&record(created, Status::Active), cadence, now)
                .unwrap()
                .due_in_days()
        };
        assert_eq!(days("2026-01-01T00:00:00Z", 29), 20);
        assert_eq!(days("2026-01-01T00:00:00Z", 4), -5);
        assert_eq!(days("2026-01-10T00:00:00Z", 0), 0);
        assert_eq!(days("2026-01-01T00:00:00Z", 100), 91);
    }
}
