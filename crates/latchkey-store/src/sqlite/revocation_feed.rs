//! The revocation feed: paginated snapshots of the live entries and
//! the tail after a cursor, each page read consistently.

use super::*;

impl SqliteStore {
    pub(super) async fn read_feed(
        &self,
        read: FeedRead,
        now: UnixTime,
        limit: usize,
    ) -> Result<Option<FeedPage>, StoreError> {
        let limit = limit.max(1);
        // One row past the page tells whether more remain.
        let rows = i64::try_from(limit).map_or(i64::MAX, |l| l.saturating_add(1));
        self.read(|c| {
            // One read transaction: the entries and the cursor agree.
            let tx = c.unchecked_transaction()?;
            let (latest, pruned_through): (i64, i64) = tx.query_row(
                "SELECT (SELECT ifnull(max(seq), 0) FROM revocations),
                        (SELECT pruned_through FROM feed_state WHERE id = 1)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            // Feed cursors only grow; AUTOINCREMENT never reuses one.
            let latest = latest.max(pruned_through);
            let seq_row = |r: &Row<'_>| Ok((r.get::<_, i64>("seq")?, revocation_row(r)?));
            let page = match read {
                FeedRead::Snapshot { from } | FeedRead::After(from)
                    if from < 0 || from > latest =>
                {
                    None
                }
                // Pruning dropped entries a follower has not seen; a
                // snapshot page misses nothing by it (they had expired).
                FeedRead::After(after) if after < pruned_through => None,
                FeedRead::Snapshot { from } => Some(
                    tx.prepare_cached(
                        "SELECT seq, kind, id, expires_at FROM revocations
                         WHERE seq > ?1 AND seq <= ?2 AND expires_at > ?3
                         ORDER BY seq LIMIT ?4",
                    )?
                    .query_map(params![from, latest, now, rows], seq_row)?
                    .collect::<rusqlite::Result<_>>()?,
                ),
                FeedRead::After(after) => Some(
                    tx.prepare_cached(
                        "SELECT seq, kind, id, expires_at FROM revocations
                         WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                    )?
                    .query_map(params![after, rows], seq_row)?
                    .collect::<rusqlite::Result<_>>()?,
                ),
            };
            tx.finish()?;
            Ok(page.map(|rows| FeedPage::from_rows(rows, limit, latest)))
        })
    }
}
