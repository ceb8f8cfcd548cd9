//! The revocation set on PostgreSQL, and its feed: paginated snapshots of
//! the live entries and the tail after a cursor, each page read
//! consistently.

use std::time::Instant;

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use latchkey_core::clock::UnixTime;
use latchkey_core::store::{FeedPage, FeedRead, Revocation, RevocationStore, StoreError};
use tokio_postgres::IsolationLevel;

use super::{commit, feed_writer, pg_error, tx_execute, tx_query, PostgresStore};
use crate::sql::revocations as sql;
use crate::sql::revocations::{FeedQuery, FeedState};

#[async_trait]
impl RevocationStore for PostgresStore {
    async fn insert_revocation(&self, entry: &Revocation) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let started = Instant::now();
        let tx = feed_writer(&mut client).await?;
        insert_revocation(&tx, entry).await?;
        commit(tx, started).await
    }

    async fn live_revocations(&self, now: UnixTime) -> Result<Vec<Revocation>, StoreError> {
        self.query(sql::LIVE.postgres, &[&now])
            .await?
            .iter()
            .map(sql::revocation)
            .collect()
    }

    async fn revocation_feed(
        &self,
        read: FeedRead,
        now: UnixTime,
        limit: usize,
    ) -> Result<Option<FeedPage>, StoreError> {
        let rows = sql::page_rows(limit);
        let mut client = self.client().await?;
        // One snapshot: the entries and the cursor agree.
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(pg_error)?;
        let state = tx_query(&tx, sql::FEED_STATE.postgres, &[]).await?;
        let state = FeedState::from_row(
            state
                .first()
                .ok_or_else(|| StoreError::Backend("feed state: no row".into()))?,
        )?;
        let found = match state.query(read) {
            None => None,
            Some(FeedQuery::Snapshot { from, latest }) => Some(
                tx_query(
                    &tx,
                    sql::SNAPSHOT_PAGE.postgres,
                    &[&from, &latest, &now, &rows],
                )
                .await?,
            ),
            Some(FeedQuery::After(after)) => {
                Some(tx_query(&tx, sql::PAGE_AFTER.postgres, &[&after, &rows]).await?)
            }
        };
        tx.commit().await.map_err(pg_error)?;
        let Some(found) = found else {
            return Ok(None);
        };
        let rows = found
            .iter()
            .map(sql::feed_entry)
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Some(FeedPage::from_rows(rows, limit.max(1), state.latest)))
    }
}

/// Inserts one entry; `tx` holds the feed lock ([`feed_writer`]).
pub(super) async fn insert_revocation(
    tx: &Transaction<'_>,
    e: &Revocation,
) -> Result<(), StoreError> {
    tx_execute(
        tx,
        sql::INSERT.postgres,
        &[&e.kind.as_str(), &e.id, &e.expires_at],
    )
    .await
    .map(drop)
}
