//! The services' clock and the timestamp spelling of REST bodies, events and audit records.

use chrono::{DateTime, SubsecRound, Utc};

/// Timestamps are kept to the microsecond, the precision both databases store.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// REST/audit timestamp format: `2026-02-08T14:30:00.000Z`.
pub fn ts(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
