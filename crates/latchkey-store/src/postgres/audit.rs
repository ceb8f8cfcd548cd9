//! The audit log on PostgreSQL.

use async_trait::async_trait;
use latchkey_core::audit::{AuditEvent, AuditQuery};
use latchkey_core::clock::UnixTime;
use latchkey_core::store::{AuditStore, StoreError};
use tokio_postgres::types::ToSql;

use super::{row_count, PostgresStore};
use crate::sql::audit::{self as sql, event_columns};
use crate::sql::limit;

#[async_trait]
impl AuditStore for PostgresStore {
    async fn insert_audit_event(&self, e: &AuditEvent) -> Result<(), StoreError> {
        self.execute(sql::INSERT.postgres, &AuditRow::new(e).params_with_actor())
            .await
            .map(drop)
    }

    async fn prune_audit_events(
        &self,
        before: UnixTime,
        batch: usize,
    ) -> Result<usize, StoreError> {
        self.execute(sql::PRUNE.postgres, &[&before, &limit(batch)])
            .await
            .map(row_count)
    }

    async fn audit_events(&self, query: &AuditQuery) -> Result<Vec<AuditEvent>, StoreError> {
        // A NULL parameter matches every row; its type must be spelt out.
        let mut events = self
            .query(
                concat!(
                    "SELECT ",
                    event_columns!(),
                    ", actor FROM audit_events
                     WHERE ($1::uuid IS NULL OR user_id = $1) AND ($2::bigint IS NULL OR at >= $2)
                     ORDER BY seq DESC LIMIT $3"
                ),
                &[&query.user_id, &query.since, &limit(query.limit)],
            )
            .await?
            .iter()
            .map(sql::audit_event)
            .collect::<Result<Vec<_>, _>>()?;
        events.reverse();
        Ok(events)
    }
}

/// An event as the parameters of [`sql::INSERT`].
pub(super) struct AuditRow<'a> {
    e: &'a AuditEvent,
    kind: &'static str,
    outcome: &'static str,
    count: i64,
}

impl<'a> AuditRow<'a> {
    pub(super) fn new(e: &'a AuditEvent) -> Self {
        Self {
            e,
            kind: e.kind.as_str(),
            outcome: e.outcome.as_str(),
            count: i64::from(e.count),
        }
    }

    /// The columns every writer sets (`event_columns!`), in order.
    pub(super) fn params(&self) -> [&(dyn ToSql + Sync); 8] {
        [
            &self.e.at,
            &self.kind,
            &self.outcome,
            &self.e.user_id,
            &self.e.session_id,
            &self.e.ip,
            &self.count,
            &self.e.request_id,
        ]
    }

    /// [`Self::params`] and the actor: the parameters of [`sql::INSERT`].
    pub(super) fn params_with_actor(&self) -> [&(dyn ToSql + Sync); 9] {
        let [a, b, c, d, e, f, g, h] = self.params();
        [a, b, c, d, e, f, g, h, &self.e.actor]
    }
}
