//! The audit log on SQLite.

use async_trait::async_trait;
use latchkey_core::audit::{AuditEvent, AuditQuery};
use latchkey_core::clock::UnixTime;
use latchkey_core::store::{AuditStore, StoreError};
use rusqlite::{params, Connection};

use super::SqliteStore;
use crate::sql::audit::{self as sql, event_columns};
use crate::sql::limit;

#[async_trait]
impl AuditStore for SqliteStore {
    async fn insert_audit_event(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let e = event.clone();
        self.writer.write(move |c| insert_audit_event(c, &e)).await
    }

    async fn prune_audit_events(
        &self,
        before: UnixTime,
        batch: usize,
    ) -> Result<usize, StoreError> {
        let batch = limit(batch);
        self.writer
            .write(move |c| {
                c.prepare_cached(sql::PRUNE.sqlite)?
                    .execute(params![before, batch])
            })
            .await
    }

    async fn audit_events(&self, query: &AuditQuery) -> Result<Vec<AuditEvent>, StoreError> {
        let user = query.user_id.as_ref().map(|u| u.as_bytes());
        let mut events = self.read(|c| {
            // A NULL parameter matches every row.
            c.prepare_cached(concat!(
                "SELECT ",
                event_columns!(),
                ", actor FROM audit_events
                 WHERE (?1 IS NULL OR user_id = ?1) AND (?2 IS NULL OR at >= ?2)
                 ORDER BY seq DESC LIMIT ?3"
            ))?
            .query_map(params![user, query.since, limit(query.limit)], |r| {
                sql::audit_event(r)
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        events.reverse();
        Ok(events)
    }
}

/// Appends `e` within the writer's current transaction.
pub(super) fn insert_audit_event(c: &Connection, e: &AuditEvent) -> rusqlite::Result<()> {
    c.prepare_cached(sql::INSERT.sqlite)?
        .execute(params![
            e.at,
            e.kind.as_str(),
            e.outcome.as_str(),
            e.user_id.as_ref().map(|u| u.as_bytes()),
            e.session_id.as_ref().map(|u| u.as_bytes()),
            e.ip,
            e.count,
            e.request_id,
            e.actor
        ])
        .map(drop)
}
