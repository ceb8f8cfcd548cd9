//! The revocation feed: paginated snapshots of the live entries and
//! the tail after a cursor, each page read consistently.

use super::*;

impl PostgresStore {
    pub(super) async fn read_feed(
        &self,
        read: FeedRead,
        now: UnixTime,
        limit: usize,
    ) -> Result<Option<FeedPage>, StoreError> {
        let limit = limit.max(1);
        // One row past the page tells whether more remain.
        let rows = limit_param(limit).saturating_add(1);
        let mut client = self.client().await?;
        // One snapshot: the entries and the cursor agree.
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(pg_error)?;
        let state = tx_query(
            &tx,
            "SELECT (SELECT coalesce(max(seq), 0) FROM revocations) AS latest,
                    (SELECT pruned_through FROM feed_state WHERE id = 1) AS pruned_through",
            &[],
        )
        .await?;
        let state = state
            .first()
            .ok_or_else(|| StoreError::Backend("feed state: no row".into()))?;
        let latest: i64 = col(state, "latest")?;
        let pruned_through: i64 = col(state, "pruned_through")?;
        // Feed cursors only grow; a sequence never hands out a value twice.
        let latest = latest.max(pruned_through);
        let found = match read {
            FeedRead::Snapshot { from } | FeedRead::After(from) if from < 0 || from > latest => {
                None
            }
            // Pruning dropped entries a follower has not seen; a snapshot
            // page misses nothing by it (they had expired).
            FeedRead::After(after) if after < pruned_through => None,
            FeedRead::Snapshot { from } => Some(
                tx_query(
                    &tx,
                    "SELECT seq, kind, id, expires_at FROM revocations
                     WHERE seq > $1 AND seq <= $2 AND expires_at > $3
                     ORDER BY seq LIMIT $4",
                    &[&from, &latest, &now, &rows],
                )
                .await?,
            ),
            FeedRead::After(after) => Some(
                tx_query(
                    &tx,
                    "SELECT seq, kind, id, expires_at FROM revocations
                     WHERE seq > $1 ORDER BY seq LIMIT $2",
                    &[&after, &rows],
                )
                .await?,
            ),
        };
        tx.commit().await.map_err(pg_error)?;
        let Some(found) = found else {
            return Ok(None);
        };
        let rows = found
            .iter()
            .map(|row| Ok((col(row, "seq")?, revocation_row(row)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Some(FeedPage::from_rows(rows, limit, latest)))
    }
}
