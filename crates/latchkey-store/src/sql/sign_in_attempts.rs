//! Sign-in throttling counters: the counter row and the statements both
//! databases share. Reserving an attempt differs (SQLite's writer runs one
//! step at a time; PostgreSQL locks the rows) and lives with each backend.

use latchkey_core::store::ThrottleEntry;

use super::{statement, Columns, Sql};

/// The columns [`throttle_entry`] reads, from `sign_in_failures`.
macro_rules! counter_columns {
    () => {
        "key, failures, last_failure_at, blocked_until"
    };
}
pub(crate) use counter_columns;

/// Takes back the attempt counted as failure `?2` at `?3` under key `?1`,
/// and the block it set if nothing was counted since. Every SET expression
/// sees the row as it was.
pub(crate) const RELEASE: Sql = statement!(
    "UPDATE sign_in_failures \
     SET failures = CASE WHEN failures > 0 THEN failures - 1 ELSE 0 END, \
         blocked_until = CASE WHEN failures = ?2 AND last_failure_at = ?3 AND blocked_until > ?3 \
                              THEN ?3 ELSE blocked_until END \
     WHERE key = ?1"
);

pub(crate) const CLEAR: Sql = statement!("DELETE FROM sign_in_failures WHERE key = ?1");

/// Up to `?3` counters last counted before `?1` whose block ended by `?2`.
pub(crate) const PRUNE: Sql = statement!(
    "DELETE FROM sign_in_failures WHERE key IN (\
     SELECT key FROM sign_in_failures \
     WHERE last_failure_at < ?1 AND blocked_until <= ?2 LIMIT ?3)"
);

pub(crate) fn throttle_entry<R: Columns>(row: &R) -> Result<ThrottleEntry, R::Error> {
    Ok(ThrottleEntry {
        key: row.value("key")?,
        failures: row.count("failures")?,
        last_failure_at: row.value("last_failure_at")?,
        blocked_until: row.value("blocked_until")?,
    })
}
