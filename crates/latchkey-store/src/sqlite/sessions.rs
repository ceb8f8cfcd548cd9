//! Sessions on SQLite. Every write is one step of the group-committing
//! writer, so a revocation and its feed entry commit together.

use async_trait::async_trait;
use latchkey_core::audit::AuditEvent;
use latchkey_core::clock::UnixTime;
use latchkey_core::model::{Session, User};
use latchkey_core::store::{
    PruneBefore, Revocation, RevocationKind, SessionOpening, SessionStore, StoreError,
};
use rusqlite::{params, Connection, OptionalExtension};
use uuid::Uuid;

use super::audit::insert_audit_event;
use super::revocations::insert_revocation;
use super::sign_in_attempts::take_back_attempt;
use super::{counter_param, SqliteStore};
use crate::sql::sessions as sql;
use crate::sql::{limit, users, Columns};

#[async_trait]
impl SessionStore for SqliteStore {
    async fn insert_session(&self, session: &Session) -> Result<(), StoreError> {
        let s = session.clone();
        self.writer.write(move |c| insert_session(c, &s)).await
    }

    async fn open_session(&self, opening: &SessionOpening) -> Result<Vec<Uuid>, StoreError> {
        let o = opening.clone();
        // One writer step: all of it commits together or, failing, none.
        self.writer
            .write(move |c| {
                insert_session(c, &o.session)?;
                insert_audit_event(c, &o.audit)?;
                take_back_attempt(c, &o.attempt)?;
                let s = &o.session;
                let ids: Vec<Uuid> = c
                    .prepare_cached(sql::REVOKE_BEYOND_LIMIT.sqlite)?
                    .query_map(
                        params![
                            s.user_id.as_bytes(),
                            limit(o.limit.keep),
                            s.created_at,
                            o.limit.reason
                        ],
                        |r| r.uuid("id"),
                    )?
                    .collect::<rusqlite::Result<_>>()?;
                insert_session_revocations(c, &ids, o.limit.entry_expires_at)?;
                Ok(ids)
            })
            .await
    }

    async fn session(&self, id: Uuid) -> Result<Option<Session>, StoreError> {
        self.read(|c| {
            c.prepare_cached(sql::BY_ID.sqlite)?
                .query_row([id.as_bytes()], |r| sql::session(r))
                .optional()
        })
    }

    async fn session_and_user(&self, id: Uuid) -> Result<Option<(Session, User)>, StoreError> {
        self.read(|c| {
            c.prepare_cached(sql::WITH_USER.sqlite)?
                .query_row([id.as_bytes()], |r| Ok((sql::session(r)?, users::user(r)?)))
                .optional()
        })
    }

    async fn advance_session(
        &self,
        id: Uuid,
        from_counter: u64,
        now: UnixTime,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let audit = audit.clone();
        self.writer
            .write(move |c| {
                let n = c.prepare_cached(sql::ADVANCE.sqlite)?.execute(params![
                    id.as_bytes(),
                    counter_param(from_counter)?,
                    now
                ])?;
                if n == 1 {
                    insert_audit_event(c, &audit)?;
                }
                Ok(n == 1)
            })
            .await
    }

    async fn revoke_session(
        &self,
        id: Uuid,
        now: UnixTime,
        reason: &str,
        entry: &Revocation,
    ) -> Result<bool, StoreError> {
        let reason = reason.to_owned();
        let entry = entry.clone();
        self.writer
            .write(move |c| {
                let n = c.prepare_cached(sql::REVOKE.sqlite)?.execute(params![
                    id.as_bytes(),
                    now,
                    reason
                ])?;
                if n == 1 {
                    insert_revocation(c, &entry)?;
                }
                Ok(n == 1)
            })
            .await
    }

    async fn live_sessions_of_user(
        &self,
        user_id: Uuid,
        now: UnixTime,
    ) -> Result<Vec<Session>, StoreError> {
        self.read(|c| {
            c.prepare_cached(sql::LIVE_OF_USER.sqlite)?
                .query_map(params![user_id.as_bytes(), now], |r| sql::session(r))?
                .collect()
        })
    }

    async fn has_live_session_from(
        &self,
        user_id: Uuid,
        ip: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.read(|c| {
            c.prepare_cached(sql::LIVE_FROM_ADDRESS.sqlite)?
                .query_row(params![user_id.as_bytes(), ip, now], |r| r.value("live"))
        })
    }

    async fn count_live_sessions(&self, now: UnixTime) -> Result<u64, StoreError> {
        let live: i64 = self.read(|c| {
            c.prepare_cached(sql::COUNT_LIVE.sqlite)?
                .query_row([now], |r| r.value("live"))
        })?;
        Ok(u64::try_from(live).unwrap_or(0))
    }

    async fn revoke_sessions_of_user(
        &self,
        user_id: Uuid,
        except: Option<Uuid>,
        now: UnixTime,
        reason: &str,
        entry_expires_at: UnixTime,
    ) -> Result<Vec<Uuid>, StoreError> {
        let reason = reason.to_owned();
        self.writer
            .write(move |c| {
                let ids: Vec<Uuid> = c
                    .prepare_cached(sql::REVOKE_ALL_OF_USER.sqlite)?
                    .query_map(
                        params![
                            user_id.as_bytes(),
                            except.as_ref().map(|u| u.as_bytes()),
                            now,
                            reason
                        ],
                        |r| r.uuid("id"),
                    )?
                    .collect::<rusqlite::Result<_>>()?;
                insert_session_revocations(c, &ids, entry_expires_at)?;
                Ok(ids)
            })
            .await
    }

    async fn prune(&self, before: PruneBefore) -> Result<usize, StoreError> {
        let batch = limit(before.batch);
        self.writer
            .write(move |c| {
                let pruned: Vec<i64> = c
                    .prepare_cached(
                        "DELETE FROM revocations WHERE seq IN (
                             SELECT seq FROM revocations WHERE expires_at <= ?1 LIMIT ?2)
                         RETURNING seq",
                    )?
                    .query_map(params![before.revocations, batch], |r| r.get::<_, i64>(0))?
                    .collect::<rusqlite::Result<_>>()?;
                if let Some(seq) = pruned.iter().max() {
                    c.prepare_cached(
                        "UPDATE feed_state SET pruned_through = max(pruned_through, ?1) WHERE id = 1",
                    )?
                    .execute([seq])?;
                }
                let mut deleted = pruned.len();
                deleted += c
                    .prepare_cached(
                        "DELETE FROM sessions WHERE id IN (
                             SELECT id FROM sessions WHERE expires_at <= ?1 LIMIT ?2)",
                    )?
                    .execute(params![before.sessions, batch])?;
                Ok(deleted)
            })
            .await
    }
}

fn insert_session(c: &Connection, s: &Session) -> rusqlite::Result<()> {
    c.prepare_cached(sql::INSERT.sqlite)?
        .execute(params![
            s.id.as_bytes(),
            s.user_id.as_bytes(),
            s.client_id,
            counter_param(s.counter)?,
            s.created_at,
            s.last_refreshed_at,
            s.expires_at,
            s.user_agent,
            s.ip,
            s.revoked_at,
            s.revoke_reason,
            s.audience,
            s.scope
        ])
        .map(drop)
}

/// A `sid` entry for each session ended, so its access tokens stop too.
pub(super) fn insert_session_revocations(
    c: &Connection,
    ids: &[Uuid],
    expires_at: UnixTime,
) -> rusqlite::Result<()> {
    for id in ids {
        insert_revocation(
            c,
            &Revocation {
                kind: RevocationKind::Session,
                id: id.to_string(),
                expires_at,
            },
        )?;
    }
    Ok(())
}
