//! Sessions on PostgreSQL. A revocation and its feed entry commit in one
//! transaction that holds the feed lock.

use std::time::Instant;

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use latchkey_core::audit::AuditEvent;
use latchkey_core::clock::UnixTime;
use latchkey_core::model::{Session, User};
use latchkey_core::store::{
    PruneBefore, Revocation, RevocationKind, RotationGuard, SessionOpening, SessionStore,
    StoreError,
};
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::audit::AuditRow;
use super::revocations::insert_revocation;
use super::sign_in_attempts::TakeBack;
use super::{
    commit, counter_param, feed_writer, lock_feed, pg_error, tx_execute, tx_query, PostgresStore,
};
use crate::sql::audit as audit_sql;
use crate::sql::sessions as sql;
use crate::sql::sign_in_attempts as attempts;
use crate::sql::{limit, users, Columns};

#[async_trait]
impl SessionStore for PostgresStore {
    async fn insert_session(&self, s: &Session) -> Result<(), StoreError> {
        self.execute(sql::INSERT.postgres, &SessionRow::new(s)?.params())
            .await
            .map(drop)
    }

    async fn open_session(&self, o: &SessionOpening) -> Result<Vec<Uuid>, StoreError> {
        let s = &o.session;
        let session = SessionRow::new(s)?;
        let session = session.params();
        let event = AuditRow::new(&o.audit);
        let event = event.params_with_actor();
        let [first, second] = TakeBack::in_key_order(&o.attempt);
        let keep = limit(o.limit.keep);
        let beyond_params: [&(dyn ToSql + Sync); 3] = [&s.user_id, &keep, &s.created_at];
        let mut client = self.client().await?;
        let started = Instant::now();
        let tx = client.transaction().await.map_err(pg_error)?;
        // Prepared first (a connection's cache keeps them), so that the
        // statements below are sent in order as they are polled and run
        // pipelined: one round trip.
        let (insert, audit, clear, release, beyond) = tokio::try_join!(
            tx.prepare_cached(sql::INSERT.postgres),
            tx.prepare_cached(audit_sql::INSERT.postgres),
            tx.prepare_cached(attempts::CLEAR.postgres),
            tx.prepare_cached(attempts::RELEASE.postgres),
            tx.prepare_cached(sql::BEYOND_LIMIT.postgres),
        )
        .map_err(pg_error)?;
        let (_, _, _, _, over) = tokio::try_join!(
            biased;
            tx.execute(&insert, &session),
            tx.execute(&audit, &event),
            TakeBack::run(first, &tx, &clear, &release),
            TakeBack::run(second, &tx, &clear, &release),
            tx.query(&beyond, &beyond_params),
        )
        .map_err(pg_error)?;
        let over = over
            .iter()
            .map(|r| r.uuid("id"))
            .collect::<Result<Vec<_>, _>>()?;
        // Most sign-ins are within the limit and never queue for the feed
        // lock; the others take it before their entries and hold it to
        // commit.
        let ended = if over.is_empty() {
            over
        } else {
            lock_feed(&tx).await?;
            let ended = tx_query(
                &tx,
                sql::REVOKE_LISTED.postgres,
                &[&over, &s.created_at, &o.limit.reason],
            )
            .await?
            .iter()
            .map(|r| r.uuid("id"))
            .collect::<Result<Vec<_>, _>>()?;
            insert_session_revocations(&tx, &ended, o.limit.entry_expires_at).await?;
            ended
        };
        commit(tx, started).await?;
        Ok(ended)
    }

    async fn session(&self, id: Uuid) -> Result<Option<Session>, StoreError> {
        self.query_opt(sql::BY_ID.postgres, &[&id])
            .await?
            .as_ref()
            .map(sql::session)
            .transpose()
    }

    async fn session_and_user(&self, id: Uuid) -> Result<Option<(Session, User)>, StoreError> {
        self.query_opt(sql::WITH_USER.postgres, &[&id])
            .await?
            .as_ref()
            .map(|r| Ok((sql::session(r)?, users::user(r)?)))
            .transpose()
    }

    async fn read_and_advance(
        &self,
        id: Uuid,
        guard: &RotationGuard,
        audit: &AuditEvent,
    ) -> Result<Option<(Session, User, bool)>, StoreError> {
        let row = self
            .query_opt(
                sql::READ_AND_ADVANCE.postgres,
                &[
                    &id,
                    &counter_param(guard.counter)?,
                    &guard.now,
                    &guard.client_id,
                    &guard.idle_cutoff(),
                    &audit.at,
                    &audit.kind.as_str(),
                    &audit.outcome.as_str(),
                    &audit.ip,
                    &i64::from(audit.count),
                    &audit.request_id,
                ],
            )
            .await?;
        row.map(|r| Ok((sql::session(&r)?, users::user(&r)?, r.value("moved")?)))
            .transpose()
    }

    async fn advance_session(
        &self,
        id: Uuid,
        from_counter: u64,
        now: UnixTime,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let row = AuditRow::new(audit);
        let [at, kind, outcome, user_id, session_id, ip, count, request_id] = row.params();
        let from = counter_param(from_counter)?;
        let n = self
            .execute(
                sql::ADVANCE_AND_AUDIT.postgres,
                &[
                    &id, &from, &now, at, kind, outcome, user_id, session_id, ip, count, request_id,
                ],
            )
            .await?;
        Ok(n == 1)
    }

    async fn revoke_session(
        &self,
        id: Uuid,
        now: UnixTime,
        reason: &str,
        entry: &Revocation,
    ) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let started = Instant::now();
        let tx = feed_writer(&mut client).await?;
        let n = tx_execute(&tx, sql::REVOKE.postgres, &[&id, &now, &reason]).await?;
        if n == 1 {
            insert_revocation(&tx, entry).await?;
        }
        commit(tx, started).await?;
        Ok(n == 1)
    }

    async fn live_sessions_of_user(
        &self,
        user_id: Uuid,
        now: UnixTime,
    ) -> Result<Vec<Session>, StoreError> {
        self.query(sql::LIVE_OF_USER.postgres, &[&user_id, &now])
            .await?
            .iter()
            .map(sql::session)
            .collect()
    }

    async fn has_live_session_from(
        &self,
        user_id: Uuid,
        ip: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        match self
            .query_opt(sql::LIVE_FROM_ADDRESS.postgres, &[&user_id, &ip, &now])
            .await?
        {
            Some(row) => row.value("live"),
            None => Ok(false),
        }
    }

    async fn count_live_sessions(&self, now: UnixTime) -> Result<u64, StoreError> {
        let live: i64 = match self.query_opt(sql::COUNT_LIVE.postgres, &[&now]).await? {
            Some(row) => row.value("live")?,
            None => 0,
        };
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
        let mut client = self.client().await?;
        let started = Instant::now();
        let tx = feed_writer(&mut client).await?;
        let ids = tx_query(
            &tx,
            sql::REVOKE_ALL_OF_USER.postgres,
            &[&user_id, &except, &now, &reason],
        )
        .await?
        .iter()
        .map(|r| r.uuid("id"))
        .collect::<Result<Vec<_>, _>>()?;
        insert_session_revocations(&tx, &ids, entry_expires_at).await?;
        commit(tx, started).await?;
        Ok(ids)
    }

    async fn prune(&self, before: PruneBefore) -> Result<usize, StoreError> {
        // One statement, so one transaction. SKIP LOCKED: nodes pruning at
        // the same time take disjoint batches and never wait for each other
        // (nor for a session being refreshed: it goes in a later batch).
        let rows = self
            .query(
                "WITH gone AS (
                     DELETE FROM revocations WHERE seq IN (
                         SELECT seq FROM revocations WHERE expires_at <= $1
                         LIMIT $3 FOR UPDATE SKIP LOCKED)
                     RETURNING seq),
                 bump AS (
                     UPDATE feed_state SET pruned_through = greatest(pruned_through, g.top)
                     FROM (SELECT max(seq) AS top FROM gone) g
                     WHERE feed_state.id = 1 AND g.top IS NOT NULL),
                 ended AS (
                     DELETE FROM sessions WHERE id IN (
                         SELECT id FROM sessions WHERE expires_at <= $2
                         LIMIT $3 FOR UPDATE SKIP LOCKED)
                     RETURNING id)
                 SELECT (SELECT count(*) FROM gone) + (SELECT count(*) FROM ended) AS deleted",
                &[&before.revocations, &before.sessions, &limit(before.batch)],
            )
            .await?;
        let deleted: i64 = match rows.first() {
            Some(row) => row.value("deleted")?,
            None => 0,
        };
        usize::try_from(deleted).map_err(|e| StoreError::Backend(format!("deleted rows: {e}")))
    }
}

/// A session as the parameters of [`sql::INSERT`].
struct SessionRow<'a> {
    s: &'a Session,
    counter: i64,
}

impl<'a> SessionRow<'a> {
    fn new(s: &'a Session) -> Result<Self, StoreError> {
        Ok(Self {
            s,
            counter: counter_param(s.counter)?,
        })
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 13] {
        let s = self.s;
        [
            &s.id,
            &s.user_id,
            &s.client_id,
            &self.counter,
            &s.created_at,
            &s.last_refreshed_at,
            &s.expires_at,
            &s.user_agent,
            &s.ip,
            &s.revoked_at,
            &s.revoke_reason,
            &s.audience,
            &s.scope,
        ]
    }
}

/// A `sid` entry for each session ended, in the order given, so its access
/// tokens stop too.
pub(super) async fn insert_session_revocations(
    tx: &Transaction<'_>,
    ids: &[Uuid],
    expires_at: UnixTime,
) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    let entry_ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    tx_execute(
        tx,
        "INSERT INTO revocations (kind, id, expires_at)
         SELECT $1::text, t.id, $3::bigint FROM unnest($2::text[]) WITH ORDINALITY AS t(id, n)
         ORDER BY t.n",
        &[&RevocationKind::Session.as_str(), &entry_ids, &expires_at],
    )
    .await
    .map(drop)
}
