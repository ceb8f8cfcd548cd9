//! The revocation feed other nodes and resource servers follow, and this
//! node's in-memory copy of the revocation set, kept up to date from it.

use std::sync::atomic::Ordering;

use super::Authority;
use crate::clock::UnixTime;
use crate::revocation::RevocationSet;
use crate::store::{FeedPage, FeedRead, RevocationStore};
use crate::AuthError;

/// Most revocation-feed entries in one page.
pub const FEED_PAGE_LIMIT: usize = 1000;
/// Most feed pages one `sync_revocations` call reads.
const SYNC_MAX_PAGES: usize = 16;

impl Authority {
    /// A page of the revocation feed: with `after` (a cursor), the entries
    /// recorded since (possibly none); else a page of the snapshot of live
    /// entries, from the `page` token of the previous one (the first page
    /// without). Unknown cursors and tokens: [`AuthError::CursorExpired`].
    pub async fn revocation_feed(
        &self,
        after: Option<&str>,
        page: Option<&str>,
    ) -> Result<FeedPage, AuthError> {
        let parse = |c: &str| c.parse::<i64>().map_err(|_| AuthError::CursorExpired);
        let read = match (after, page) {
            (Some(_), Some(_)) => {
                return Err(AuthError::InvalidRequest(
                    "use either after (to follow) or page (to read a snapshot), not both".into(),
                ))
            }
            (Some(after), None) => FeedRead::After(parse(after)?),
            (None, page) => FeedRead::Snapshot {
                from: page.map(parse).transpose()?.unwrap_or(0),
            },
        };
        self.store
            .revocation_feed(read, self.clock.now(), FEED_PAGE_LIMIT)
            .await?
            .ok_or(AuthError::CursorExpired)
    }

    /// Brings the in-memory revocation set up to date with the store, which
    /// other nodes may have written to. Returns the number of entries read.
    pub async fn sync_revocations(&self) -> Result<usize, AuthError> {
        let now = self.clock.now();
        let mut cursor = self.revocations_cursor.load(Ordering::Acquire);
        let mut read = 0;
        // Bounded, so that a flood of revocations cannot hold one call for
        // long; the next call goes on from the cursor.
        for _ in 0..SYNC_MAX_PAGES {
            let Some(page) = self
                .store
                .revocation_feed(FeedRead::After(cursor), now, FEED_PAGE_LIMIT)
                .await?
            else {
                // Fell too far behind: start again from a snapshot.
                let (cursor, entries) = read_snapshot(&*self.store, now, &self.revocations).await?;
                self.revocations_cursor.fetch_max(cursor, Ordering::AcqRel);
                return Ok(read + entries);
            };
            for entry in &page.entries {
                self.revocations.insert(entry);
            }
            read += page.entries.len();
            cursor = page.cursor;
            self.revocations_cursor.fetch_max(cursor, Ordering::AcqRel);
            if !page.more {
                break;
            }
        }
        Ok(read)
    }

    /// The feed cursor the in-memory set has caught up to.
    pub fn revocations_cursor(&self) -> i64 {
        self.revocations_cursor.load(Ordering::Acquire)
    }

    /// Registers what to call after this node records a revocation, so the
    /// server can wake feed readers at once instead of at its next poll.
    pub fn on_revocation(&self, listener: impl Fn() + Send + Sync + 'static) {
        let _ = self.revocation_listener.set(Box::new(listener));
    }

    pub(super) fn announce_revocation(&self) {
        if let Some(listener) = self.revocation_listener.get() {
            listener();
        }
    }
}

/// Reads every page of a snapshot of the revocation feed into `set`; returns
/// the cursor to follow from and the number of entries read.
pub(super) async fn read_snapshot(
    store: &dyn RevocationStore,
    now: UnixTime,
    set: &RevocationSet,
) -> Result<(i64, usize), AuthError> {
    let mut from = 0;
    let mut read = 0;
    loop {
        let page = store
            .revocation_feed(FeedRead::Snapshot { from }, now, FEED_PAGE_LIMIT)
            .await?
            .ok_or_else(|| AuthError::Internal("revocation snapshot unavailable".into()))?;
        for entry in &page.entries {
            set.insert(entry);
        }
        read += page.entries.len();
        // A full page moves the cursor forward, so this ends.
        if !page.more {
            return Ok((page.cursor, read));
        }
        from = page.cursor;
    }
}
