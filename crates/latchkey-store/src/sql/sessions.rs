//! Sessions: the session row and the statements both databases share.
//! Ending sessions in bulk and pruning differ (locking, `LIMIT` forms) and
//! live with each backend.

use latchkey_core::model::Session;

use super::{audit::event_columns, statement, users::user_columns, Columns, Sql};

/// The columns [`session`] reads, from `sessions s`; aliased so they can be
/// read beside a user's.
macro_rules! session_columns {
    () => {
        "s.id AS sid, s.user_id, s.client_id, s.audience, s.scope, s.counter, \
         s.created_at AS s_created_at, s.last_refreshed_at, s.expires_at, s.user_agent, s.ip, \
         s.revoked_at, s.revoke_reason"
    };
}

pub(crate) const INSERT: Sql = statement!(
    "INSERT INTO sessions (id, user_id, client_id, counter, created_at, last_refreshed_at, \
     expires_at, user_agent, ip, revoked_at, revoke_reason, audience, scope) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
);

pub(crate) const BY_ID: Sql = statement!(
    "SELECT ",
    session_columns!(),
    " FROM sessions s WHERE s.id = ?1"
);

/// Everything a refresh reads: session `?1` with its user.
macro_rules! with_user {
    () => {
        concat!(
            "SELECT ",
            session_columns!(),
            ", ",
            user_columns!(),
            " FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = ?1"
        )
    };
}

pub(crate) const WITH_USER: Sql = statement!(with_user!());

/// The refresh's compare-and-set: moves only if the counter is still `?2`.
macro_rules! advance {
    () => {
        "UPDATE sessions SET counter = counter + 1, last_refreshed_at = ?3 \
         WHERE id = ?1 AND counter = ?2 AND revoked_at IS NULL"
    };
}

/// [`advance!`] alone: SQLite runs it and the audit insert in one step of
/// its writer (it cannot write inside a `WITH`).
pub(crate) const ADVANCE: Sql = statement!(advance!());

/// [`advance!`] and the rotation's audit row (`?4`… in
/// [`event_columns!`] order) in one statement, one round trip: the row is
/// inserted only if the counter moved. PostgreSQL's form.
pub(crate) const ADVANCE_AND_AUDIT: Sql = statement!(
    "WITH moved AS (",
    advance!(),
    " RETURNING id) INSERT INTO audit_events (",
    event_columns!(),
    ") SELECT ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11 FROM moved"
);

/// The refresh in one statement, one round trip (PostgreSQL's form): the
/// session with its user as they were (`cur`; every part of a statement sees
/// one snapshot) and, where [`RotationGuard`] admits the session, the
/// rotation and its audit row. `?2` counter, `?3` now, `?4` client, `?5`
/// idle cutoff; `?6`… the audit row in [`event_columns!`] order without
/// its user, which is the session's.
///
/// [`RotationGuard`]: latchkey_core::rotation::RotationGuard
pub(crate) const READ_AND_ADVANCE: Sql = statement!(
    "WITH cur AS (",
    with_user!(),
    "), moved AS (",
    advance!(),
    " AND expires_at > ?3 AND last_refreshed_at > ?5 AND client_id = ?4 \
     RETURNING id, user_id), logged AS (INSERT INTO audit_events (",
    event_columns!(),
    ") SELECT ?6, ?7, ?8, moved.user_id, moved.id, ?9, ?10, ?11 FROM moved) \
     SELECT cur.*, EXISTS (SELECT 1 FROM moved) AS moved FROM cur"
);

pub(crate) const REVOKE: Sql = statement!(
    "UPDATE sessions SET revoked_at = ?2, revoke_reason = ?3 \
     WHERE id = ?1 AND revoked_at IS NULL"
);

/// Every unrevoked session of user `?1` but `?2` (which may be NULL).
pub(crate) const REVOKE_ALL_OF_USER: Sql = statement!(
    "UPDATE sessions SET revoked_at = ?3, revoke_reason = ?4 \
     WHERE user_id = ?1 AND revoked_at IS NULL AND id IS DISTINCT FROM ?2 \
     RETURNING id"
);

/// User `?1`'s sessions live at `?3`, most recently refreshed first (the
/// newest sign-in first among equals): the session limit keeps the first
/// `?2` and ends the rest.
macro_rules! by_recent_use {
    () => {
        "SELECT id FROM sessions WHERE user_id = ?1 AND revoked_at IS NULL AND expires_at > ?3 \
         ORDER BY last_refreshed_at DESC, created_at DESC"
    };
}

/// Ends the sessions beyond the limit ([`by_recent_use!`]) at `?3` with
/// reason `?4`. SQLite's form: one step of its writer, so finding and
/// ending them is atomic (its `OFFSET` needs a `LIMIT`; -1 is none).
pub(crate) const REVOKE_BEYOND_LIMIT: Sql = statement!(
    "UPDATE sessions SET revoked_at = ?3, revoke_reason = ?4 WHERE id IN (",
    by_recent_use!(),
    " LIMIT -1 OFFSET ?2) RETURNING id"
);

/// The sessions beyond the limit ([`by_recent_use!`]). PostgreSQL's form
/// reads them first, without the feed lock, which it takes only to end
/// some ([`REVOKE_LISTED`]).
pub(crate) const BEYOND_LIMIT: Sql = statement!(by_recent_use!(), " OFFSET ?2");

/// Ends those of the sessions `?1` (an array) not ended yet, at `?2` with
/// reason `?3`. PostgreSQL's.
pub(crate) const REVOKE_LISTED: Sql = statement!(
    "UPDATE sessions SET revoked_at = ?2, revoke_reason = ?3 \
     WHERE id = ANY(?1) AND revoked_at IS NULL RETURNING id"
);

pub(crate) const LIVE_OF_USER: Sql = statement!(
    "SELECT ",
    session_columns!(),
    " FROM sessions s WHERE s.user_id = ?1 AND s.revoked_at IS NULL AND s.expires_at > ?2 \
     ORDER BY s.created_at"
);

pub(crate) const LIVE_FROM_ADDRESS: Sql = statement!(
    "SELECT EXISTS (SELECT 1 FROM sessions \
     WHERE user_id = ?1 AND ip = ?2 AND revoked_at IS NULL AND expires_at > ?3) AS live"
);

/// Sessions of every user live at `?1`, for the live-sessions gauge (read a
/// few times a minute, never per request).
pub(crate) const COUNT_LIVE: Sql = statement!(
    "SELECT COUNT(*) AS live FROM sessions WHERE revoked_at IS NULL AND expires_at > ?1"
);

pub(crate) fn session<R: Columns>(row: &R) -> Result<Session, R::Error> {
    let counter: i64 = row.value("counter")?;
    Ok(Session {
        id: row.uuid("sid")?,
        user_id: row.uuid("user_id")?,
        client_id: row.value("client_id")?,
        audience: row.value("audience")?,
        scope: row.value("scope")?,
        counter: u64::try_from(counter).map_err(|e| R::invalid("counter", e.to_string()))?,
        created_at: row.value("s_created_at")?,
        last_refreshed_at: row.value("last_refreshed_at")?,
        expires_at: row.value("expires_at")?,
        user_agent: row.value("user_agent")?,
        ip: row.value("ip")?,
        revoked_at: row.value("revoked_at")?,
        revoke_reason: row.value("revoke_reason")?,
    })
}
