//! The revocation set and its feed: the entry row, the statements both
//! databases share, and how a feed read is checked against the feed's
//! state. Inserting several entries and pruning differ (PostgreSQL
//! serialises feed writers under a lock) and live with each backend.

use latchkey_core::store::{FeedRead, Revocation, RevocationKind};

use super::{statement, Columns, Sql};

pub(crate) const INSERT: Sql =
    statement!("INSERT INTO revocations (kind, id, expires_at) VALUES (?1, ?2, ?3)");

pub(crate) const LIVE: Sql =
    statement!("SELECT kind, id, expires_at FROM revocations WHERE expires_at > ?1");

/// The newest cursor and how far pruning went, read with a page so the
/// two agree.
pub(crate) const FEED_STATE: Sql = statement!(
    "SELECT (SELECT coalesce(max(seq), 0) FROM revocations) AS latest, \
     (SELECT pruned_through FROM feed_state WHERE id = 1) AS pruned_through"
);

/// A snapshot page: entries after `?1` up to the newest `?2` that are live
/// at `?3`, at most `?4` rows.
pub(crate) const SNAPSHOT_PAGE: Sql = statement!(
    "SELECT seq, kind, id, expires_at FROM revocations \
     WHERE seq > ?1 AND seq <= ?2 AND expires_at > ?3 ORDER BY seq LIMIT ?4"
);

/// Following: every entry after `?1`, at most `?2` rows.
pub(crate) const PAGE_AFTER: Sql = statement!(
    "SELECT seq, kind, id, expires_at FROM revocations WHERE seq > ?1 ORDER BY seq LIMIT ?2"
);

pub(crate) fn revocation<R: Columns>(row: &R) -> Result<Revocation, R::Error> {
    let kind: String = row.value("kind")?;
    Ok(Revocation {
        kind: RevocationKind::parse(&kind)
            .ok_or_else(|| R::invalid("kind", format!("revocation kind {kind}")))?,
        id: row.value("id")?,
        expires_at: row.value("expires_at")?,
    })
}

/// A feed row: its cursor and its entry.
pub(crate) fn feed_entry<R: Columns>(row: &R) -> Result<(i64, Revocation), R::Error> {
    Ok((row.value("seq")?, revocation(row)?))
}

/// The feed as one read sees it ([`FEED_STATE`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct FeedState {
    /// The newest cursor: where a complete page ends.
    pub latest: i64,
    /// The highest cursor whose entry was pruned.
    pub pruned_through: i64,
}

/// How a checked read goes on.
pub(crate) enum FeedQuery {
    /// [`SNAPSHOT_PAGE`] from `from` up to the newest entry.
    Snapshot { from: i64, latest: i64 },
    /// [`PAGE_AFTER`] `after`.
    After(i64),
}

impl FeedState {
    pub(crate) fn from_row<R: Columns>(row: &R) -> Result<Self, R::Error> {
        let latest: i64 = row.value("latest")?;
        let pruned_through: i64 = row.value("pruned_through")?;
        Ok(Self {
            // Feed cursors only grow; neither database reuses a `seq`.
            latest: latest.max(pruned_through),
            pruned_through,
        })
    }

    /// The query for `read`, or `None` when the reader must take a new
    /// snapshot instead.
    pub(crate) fn query(&self, read: FeedRead) -> Option<FeedQuery> {
        match read {
            FeedRead::Snapshot { from } | FeedRead::After(from)
                if from < 0 || from > self.latest =>
            {
                None
            }
            // Pruning dropped entries a follower has not seen; a snapshot
            // page misses nothing by it (they had expired).
            FeedRead::After(after) if after < self.pruned_through => None,
            FeedRead::Snapshot { from } => Some(FeedQuery::Snapshot {
                from,
                latest: self.latest,
            }),
            FeedRead::After(after) => Some(FeedQuery::After(after)),
        }
    }
}

/// Rows to ask for a page of `limit` entries (at least 1): one more tells
/// whether more remain.
pub(crate) fn page_rows(limit: usize) -> i64 {
    super::limit(limit.max(1)).saturating_add(1)
}
