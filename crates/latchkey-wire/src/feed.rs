//! The revocation feed (`GET /v1/revocations`) as both ends see it.
//!
//! Without `after`, a snapshot of every live entry in pages, each but the
//! last naming the `next` one (`?page=<next>`), the last one's cursor being
//! where to follow from; with `after=<cursor>&wait=<s>`, the entries after
//! the cursor, long-polled up to `wait` seconds (at most
//! [`MAX_FEED_WAIT`]). 410 `cursor_expired` means the history a reader
//! would need is gone: it starts over from a snapshot.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::UnixTime;
use crate::revocation::{Revocation, RevocationKind};

/// Longest long-poll the feed protocol allows.
pub const MAX_FEED_WAIT: Duration = Duration::from_secs(30);

/// The query of one feed request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
pub struct FeedQuery {
    /// Follow from this cursor (absent: a snapshot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// The snapshot page a previous page named as `next`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<String>,
    /// Seconds to wait for entries after `after`; capped at
    /// [`MAX_FEED_WAIT`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<u64>,
}

impl FeedQuery {
    /// How long the issuer holds this request open at most.
    pub fn wait(&self) -> Duration {
        Duration::from_secs(self.wait.unwrap_or(0)).min(MAX_FEED_WAIT)
    }
}

/// One page of the feed.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedResponse {
    pub entries: Vec<FeedEntry>,
    pub cursor: String,
    /// On a snapshot page with more after it: the `page` to ask for next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// A revocation as the feed carries it. `kind` stays text on the wire so a
/// kind added later does not stop older readers (they skip it).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedEntry {
    pub kind: String,
    pub id: String,
    pub expires_at: UnixTime,
}

impl From<Revocation> for FeedEntry {
    fn from(r: Revocation) -> Self {
        Self {
            kind: r.kind.as_str().to_owned(),
            id: r.id,
            expires_at: r.expires_at,
        }
    }
}

impl FeedEntry {
    /// The entry as a [`Revocation`]; `None` for a kind this reader does not
    /// know.
    pub fn revocation(self) -> Option<Revocation> {
        Some(Revocation {
            kind: RevocationKind::parse(&self.kind)?,
            id: self.id,
            expires_at: self.expires_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_unknown_kinds_are_skipped() {
        let entry = Revocation {
            kind: RevocationKind::Session,
            id: "s1".into(),
            expires_at: 100,
        };
        let page = FeedResponse {
            entries: vec![FeedEntry::from(entry.clone())],
            cursor: "7".into(),
            next: None,
        };
        let json = serde_json::to_value(&page).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"entries":[{"kind":"sid","id":"s1","expires_at":100}],"cursor":"7"})
        );
        let back: FeedResponse = serde_json::from_value(json).expect("parse");
        assert_eq!(back.entries[0].clone().revocation(), Some(entry));
        let future = FeedEntry {
            kind: "aud".into(),
            id: "x".into(),
            expires_at: 1,
        };
        assert_eq!(future.revocation(), None);
    }

    #[test]
    fn wait_is_capped() {
        let q = FeedQuery {
            wait: Some(3600),
            ..FeedQuery::default()
        };
        assert_eq!(q.wait(), MAX_FEED_WAIT);
        assert_eq!(FeedQuery::default().wait(), Duration::ZERO);
    }
}
