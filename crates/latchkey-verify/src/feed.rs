//! The revocation feed follower.
//!
//! The protocol is [`latchkey_wire::feed`]'s (`GET {issuer}/v1/revocations`,
//! here with the client credentials as HTTP Basic when set). On 410
//! `cursor_expired` we start over from a snapshot that *replaces* the set (a
//! merge would keep entries the server has since dropped, and miss nothing
//! it still has).

use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use latchkey_wire::feed::{FeedEntry, FeedQuery, FeedResponse};
use latchkey_wire::revocation::{Revocation, RevocationSet};
use reqwest::header::AUTHORIZATION;
use reqwest::StatusCode;

use crate::shared::Shared;
use crate::VerifyError;

/// Most pages one snapshot may take (a million entries at the issuer's
/// page size), so a misbehaving issuer cannot keep us paging for ever.
const MAX_SNAPSHOT_PAGES: usize = 1_000;

/// Which feed request to make.
enum Read<'a> {
    /// A snapshot page: the first, or the one a previous page named.
    Snapshot(Option<&'a str>),
    /// What came after a cursor, long-polled.
    After(&'a str),
}

enum Poll {
    Page(FeedResponse),
    CursorExpired,
}

async fn poll(shared: &Shared, read: Read<'_>) -> Result<Poll, VerifyError> {
    let opts = &shared.opts;
    let client = shared
        .client
        .as_ref()
        .ok_or_else(|| VerifyError::Config("no HTTP client".into()))?;
    let mut request = client.get(&shared.feed_url);
    if let Some(authorization) = &shared.feed_authorization {
        request = request.header(AUTHORIZATION, authorization.clone());
    }
    let (query, timeout) = match read {
        Read::After(after) => (
            FeedQuery {
                after: Some(after.to_owned()),
                wait: Some(opts.feed_wait.as_secs()),
                ..FeedQuery::default()
            },
            opts.feed_wait + opts.http_timeout,
        ),
        Read::Snapshot(page) => (
            FeedQuery {
                page: page.map(str::to_owned),
                ..FeedQuery::default()
            },
            opts.http_timeout,
        ),
    };
    request = request.query(&query);
    let response = request.timeout(timeout).send().await?;
    match response.status() {
        StatusCode::OK => Ok(Poll::Page(response.json().await?)),
        StatusCode::GONE => Ok(Poll::CursorExpired),
        StatusCode::UNAUTHORIZED => Err(VerifyError::Feed(
            "the issuer refused the client credentials (401): the feed needs a confidential \
             client's id and secret (Options::client_credentials)"
                .into(),
        )),
        status => Err(VerifyError::Feed(format!("unexpected status {status}"))),
    }
}

fn entries(raw: Vec<FeedEntry>) -> impl Iterator<Item = Revocation> {
    raw.into_iter().filter_map(|e| {
        let kind = e.kind.clone();
        let entry = e.revocation();
        if entry.is_none() {
            // A kind added to the protocol later must not stop the feed.
            tracing::debug!(%kind, "ignoring revocation entry of unknown kind");
        }
        entry
    })
}

/// Entries are kept `leeway` past their expiry: a token of theirs is still
/// accepted by the `exp` check for that long.
fn prune_horizon(shared: &Shared) -> i64 {
    shared.opts.clock.now().saturating_sub(shared.expect.leeway)
}

/// Reads every page of a snapshot into a new set; `None` when the issuer
/// refused a page token (start over).
async fn read_snapshot(shared: &Shared) -> Result<Option<(RevocationSet, String)>, VerifyError> {
    let set = RevocationSet::default();
    let mut page: Option<String> = None;
    for _ in 0..MAX_SNAPSHOT_PAGES {
        let read = match poll(shared, Read::Snapshot(page.as_deref())).await? {
            Poll::Page(read) => read,
            Poll::CursorExpired => return Ok(None),
        };
        for entry in entries(read.entries) {
            set.insert(&entry);
        }
        match read.next {
            None => return Ok(Some((set, read.cursor))),
            Some(next) if page.as_ref() == Some(&next) => {
                return Err(VerifyError::Feed("snapshot page token did not move".into()))
            }
            Some(next) => page = Some(next),
        }
    }
    Err(VerifyError::Feed(format!(
        "snapshot longer than {MAX_SNAPSHOT_PAGES} pages"
    )))
}

/// Installs a complete snapshot: only now is the data current again.
fn apply_snapshot(shared: &Shared, set: RevocationSet) {
    set.prune(prune_horizon(shared));
    tracing::debug!(entries = set.len(), "revocation snapshot loaded");
    shared.replace_revocations(set);
    shared.mark_feed_ok();
}

fn apply_tail(shared: &Shared, page: FeedResponse) -> String {
    let set = shared.revocations();
    for entry in entries(page.entries) {
        set.insert(&entry);
    }
    set.prune(prune_horizon(shared));
    shared.mark_feed_ok();
    page.cursor
}

/// The snapshot taken before `Verifier::new` returns; `None` leaves it to
/// the follower.
pub(crate) async fn first_snapshot(shared: &Shared) -> Option<String> {
    match read_snapshot(shared).await {
        Ok(Some((set, cursor))) => {
            apply_snapshot(shared, set);
            Some(cursor)
        }
        Ok(None) => None,
        Err(e) => {
            shared.mark_feed_failed();
            tracing::warn!(url = %shared.feed_url, error = %e,
                "revocation feed unreachable at start-up; retrying in the background");
            None
        }
    }
}

/// What one round of following did.
enum Step {
    /// Read on from this cursor; `true` for a tail that brought nothing.
    Moved(String, bool),
    CursorExpired,
}

/// Follows the feed until the task is aborted.
pub(crate) async fn follow(shared: &Shared, mut cursor: Option<String>) {
    let min = shared.opts.feed_backoff_min;
    let max = shared.opts.feed_backoff_max;
    let mut backoff = min;
    let mut failing = false;
    // A snapshot whose cursor is refused at once would otherwise loop
    // without pause; the second 410 in a row backs off like an error.
    let mut expired_in_a_row = 0u32;
    loop {
        let polled_at = std::time::Instant::now();
        let step = match cursor.as_deref() {
            None => read_snapshot(shared).await.map(|read| match read {
                Some((set, next)) => {
                    apply_snapshot(shared, set);
                    Step::Moved(next, false)
                }
                None => Step::CursorExpired,
            }),
            Some(after) => poll(shared, Read::After(after))
                .await
                .map(|read| match read {
                    Poll::Page(page) => {
                        let empty = page.entries.is_empty();
                        Step::Moved(apply_tail(shared, page), empty)
                    }
                    Poll::CursorExpired => Step::CursorExpired,
                }),
        };
        let error = match step {
            Ok(Step::Moved(next, empty_tail)) => {
                cursor = Some(next);
                if failing {
                    tracing::info!("revocation feed polling resumed");
                }
                failing = false;
                backoff = min;
                expired_in_a_row = 0;
                if empty_tail {
                    // An issuer that answers at once instead of long-polling
                    // must not get a busy loop from every verifier.
                    let floor = min.saturating_sub(polled_at.elapsed());
                    tokio::time::sleep(floor).await;
                }
                continue;
            }
            Ok(Step::CursorExpired) if cursor.is_some() && expired_in_a_row == 0 => {
                tracing::info!("revocation feed cursor expired; taking a new snapshot");
                cursor = None;
                expired_in_a_row += 1;
                continue;
            }
            Ok(Step::CursorExpired) => {
                cursor = None;
                expired_in_a_row += 1;
                VerifyError::Feed("cursor refused right after a snapshot".into())
            }
            Err(e) => e,
        };
        shared.mark_feed_failed();
        if failing {
            tracing::debug!(error = %error, "revocation feed still failing");
        } else {
            tracing::warn!(url = %shared.feed_url, error = %error, "revocation feed poll failed");
            failing = true;
        }
        warn_if_refusing(shared);
        tokio::time::sleep(jitter(backoff)).await;
        backoff = (backoff * 2).min(max);
    }
}

/// Says once per outage that every token is being refused.
fn warn_if_refusing(shared: &Shared) {
    use std::sync::atomic::Ordering;
    if !shared.feed_refuses() || shared.stale_warned.swap(true, Ordering::AcqRel) {
        return;
    }
    if shared.feed_stale() {
        tracing::error!(
            bound = ?shared.opts.max_staleness,
            "revocation data older than max_staleness; refusing every token until the feed answers"
        );
    } else {
        tracing::error!(
            "revocation feed failing; FAIL-CLOSED: refusing every token until it answers"
        );
    }
}

/// Between half and all of `d`, so verifiers that lost the issuer together
/// do not reconnect in lockstep.
fn jitter(d: Duration) -> Duration {
    let random = RandomState::new().hash_one(std::time::Instant::now());
    let fraction = 0.5 + (random % 1024) as f64 / 2048.0;
    d.mul_f64(fraction)
}
