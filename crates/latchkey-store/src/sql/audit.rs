//! The audit log: the event row and the statements both databases share.
//! The filtered read differs (PostgreSQL must be told the type of a
//! parameter that may be NULL) and lives with each backend.

use latchkey_core::audit::{AuditEvent, AuditKind, Outcome};

use super::{statement, Columns, Sql};

/// The columns of an event every writer sets; [`audit_event`] reads
/// these and `actor` (set only by operators' actions, through [`INSERT`]).
macro_rules! event_columns {
    () => {
        "at, kind, outcome, user_id, session_id, ip, count, request_id"
    };
}
pub(crate) use event_columns;

pub(crate) const INSERT: Sql = statement!(
    "INSERT INTO audit_events (",
    event_columns!(),
    ", actor) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
);

/// Up to `?2` events older than `?1`.
pub(crate) const PRUNE: Sql = statement!(
    "DELETE FROM audit_events WHERE seq IN (\
     SELECT seq FROM audit_events WHERE at < ?1 LIMIT ?2)"
);

pub(crate) fn audit_event<R: Columns>(row: &R) -> Result<AuditEvent, R::Error> {
    let kind: String = row.value("kind")?;
    let outcome: String = row.value("outcome")?;
    Ok(AuditEvent {
        at: row.value("at")?,
        kind: AuditKind::parse(&kind)
            .ok_or_else(|| R::invalid("kind", format!("audit kind {kind}")))?,
        outcome: Outcome::parse(&outcome)
            .ok_or_else(|| R::invalid("outcome", format!("audit outcome {outcome}")))?,
        user_id: row.optional_uuid("user_id")?,
        session_id: row.optional_uuid("session_id")?,
        ip: row.value("ip")?,
        count: row.count("count")?,
        request_id: row.value("request_id")?,
        actor: row.value("actor")?,
    })
}
