//! The revocation set on SQLite, and its feed: paginated snapshots of the
//! live entries and the tail after a cursor, each page read consistently.

use async_trait::async_trait;
use latchkey_core::clock::UnixTime;
use latchkey_core::store::{FeedPage, FeedRead, Revocation, RevocationStore, StoreError};
use rusqlite::{params, Connection};

use super::SqliteStore;
use crate::sql::revocations as sql;
use crate::sql::revocations::{FeedQuery, FeedState};

#[async_trait]
impl RevocationStore for SqliteStore {
    async fn insert_revocation(&self, entry: &Revocation) -> Result<(), StoreError> {
        let entry = entry.clone();
        self.writer
            .write(move |c| insert_revocation(c, &entry))
            .await
    }

    async fn live_revocations(&self, now: UnixTime) -> Result<Vec<Revocation>, StoreError> {
        self.read(|c| {
            c.prepare_cached(sql::LIVE.sqlite)?
                .query_map([now], |r| sql::revocation(r))?
                .collect()
        })
    }

    async fn revocation_feed(
        &self,
        read: FeedRead,
        now: UnixTime,
        limit: usize,
    ) -> Result<Option<FeedPage>, StoreError> {
        let rows = sql::page_rows(limit);
        self.read(|c| {
            // One read transaction: the entries and the cursor agree.
            let tx = c.unchecked_transaction()?;
            let state = tx
                .prepare_cached(sql::FEED_STATE.sqlite)?
                .query_row([], |r| FeedState::from_row(r))?;
            let page = match state.query(read) {
                None => None,
                Some(FeedQuery::Snapshot { from, latest }) => Some(
                    tx.prepare_cached(sql::SNAPSHOT_PAGE.sqlite)?
                        .query_map(params![from, latest, now, rows], |r| sql::feed_entry(r))?
                        .collect::<rusqlite::Result<_>>()?,
                ),
                Some(FeedQuery::After(after)) => Some(
                    tx.prepare_cached(sql::PAGE_AFTER.sqlite)?
                        .query_map(params![after, rows], |r| sql::feed_entry(r))?
                        .collect::<rusqlite::Result<_>>()?,
                ),
            };
            tx.finish()?;
            Ok(page.map(|rows| FeedPage::from_rows(rows, limit.max(1), state.latest)))
        })
    }
}

pub(super) fn insert_revocation(c: &Connection, e: &Revocation) -> rusqlite::Result<()> {
    c.prepare_cached(sql::INSERT.sqlite)?
        .execute(params![e.kind.as_str(), e.id, e.expires_at])
        .map(drop)
}
