//! The revocation feed follower.
//!
//! Protocol (`GET {issuer}/v1/revocations`): without `after`, a snapshot of
//! every live entry plus a cursor; with `after=<cursor>&wait=<s>`, the
//! entries after the cursor, long-polled up to `wait` seconds; 410
//! `cursor_expired` means the history we would need is gone, so we start
//! over from a snapshot that *replaces* the set (a merge would keep entries
//! the server has since dropped, and miss nothing it still has).

use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use latchkey_core::revocation::RevocationSet;
use latchkey_core::store::{Revocation, RevocationKind};
use reqwest::StatusCode;
use serde::Deserialize;

use crate::options::FailMode;
use crate::verifier::Shared;
use crate::VerifyError;

#[derive(Deserialize)]
struct Page {
    entries: Vec<Entry>,
    cursor: String,
}

#[derive(Deserialize)]
struct Entry {
    kind: String,
    id: String,
    expires_at: i64,
}

enum Poll {
    Page(Page),
    CursorExpired,
}

async fn poll(shared: &Shared, cursor: Option<&str>) -> Result<Poll, VerifyError> {
    let opts = &shared.opts;
    let client = shared
        .client
        .as_ref()
        .ok_or_else(|| VerifyError::Config("no HTTP client".into()))?;
    let mut request = client.get(&shared.feed_url);
    let timeout = match cursor {
        Some(after) => {
            let wait = opts.feed_wait.as_secs().to_string();
            request = request.query(&[("after", after), ("wait", wait.as_str())]);
            opts.feed_wait + opts.http_timeout
        }
        None => opts.http_timeout,
    };
    let response = request.timeout(timeout).send().await?;
    match response.status() {
        StatusCode::OK => Ok(Poll::Page(response.json().await?)),
        StatusCode::GONE => Ok(Poll::CursorExpired),
        status => Err(VerifyError::Feed(format!("unexpected status {status}"))),
    }
}

fn entries(raw: Vec<Entry>) -> impl Iterator<Item = Revocation> {
    raw.into_iter().filter_map(|e| {
        let Some(kind) = RevocationKind::parse(&e.kind) else {
            // A kind added to the protocol later must not stop the feed.
            tracing::debug!(kind = %e.kind, "ignoring revocation entry of unknown kind");
            return None;
        };
        Some(Revocation {
            kind,
            id: e.id,
            expires_at: e.expires_at,
        })
    })
}

/// Entries are kept `leeway` past their expiry: a token of theirs is still
/// accepted by the `exp` check for that long.
fn prune_horizon(shared: &Shared) -> i64 {
    shared.opts.clock.now().saturating_sub(shared.expect.leeway)
}

fn apply_snapshot(shared: &Shared, page: Page) -> String {
    let set = RevocationSet::default();
    for entry in entries(page.entries) {
        set.insert(&entry);
    }
    set.prune(prune_horizon(shared));
    tracing::debug!(entries = set.len(), "revocation snapshot loaded");
    shared.replace_revocations(set);
    shared.mark_feed_ok();
    page.cursor
}

fn apply_tail(shared: &Shared, page: Page) -> String {
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
    match poll(shared, None).await {
        Ok(Poll::Page(page)) => Some(apply_snapshot(shared, page)),
        Ok(Poll::CursorExpired) => None,
        Err(e) => {
            tracing::warn!(url = %shared.feed_url, error = %e,
                "revocation feed unreachable at start-up; retrying in the background");
            None
        }
    }
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
        let error = match poll(shared, cursor.as_deref()).await {
            Ok(Poll::Page(page)) => {
                let empty_tail = cursor.is_some() && page.entries.is_empty();
                cursor = Some(match cursor {
                    None => apply_snapshot(shared, page),
                    Some(_) => apply_tail(shared, page),
                });
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
            Ok(Poll::CursorExpired) if cursor.is_some() && expired_in_a_row == 0 => {
                tracing::info!("revocation feed cursor expired; taking a new snapshot");
                cursor = None;
                expired_in_a_row += 1;
                continue;
            }
            Ok(Poll::CursorExpired) => {
                cursor = None;
                expired_in_a_row += 1;
                VerifyError::Feed("cursor refused right after a snapshot".into())
            }
            Err(e) => e,
        };
        if failing {
            tracing::debug!(error = %error, "revocation feed still failing");
        } else {
            tracing::warn!(url = %shared.feed_url, error = %error, "revocation feed poll failed");
            failing = true;
        }
        warn_if_stale(shared);
        tokio::time::sleep(jitter(backoff)).await;
        backoff = (backoff * 2).min(max);
    }
}

fn warn_if_stale(shared: &Shared) {
    use std::sync::atomic::Ordering;
    if !shared.feed_stale() || shared.stale_warned.swap(true, Ordering::AcqRel) {
        return;
    }
    let bound = shared.opts.feed_stale_after;
    match shared.opts.fail_mode {
        FailMode::Open => tracing::warn!(
            ?bound,
            "revocation feed unreachable past its bound; FAIL-OPEN: accepting tokens \
             without up-to-date revocations"
        ),
        FailMode::Closed => tracing::error!(
            ?bound,
            "revocation feed unreachable past its bound; FAIL-CLOSED: refusing every token"
        ),
    }
}

/// Between half and all of `d`, so verifiers that lost the issuer together
/// do not reconnect in lockstep.
fn jitter(d: Duration) -> Duration {
    let random = RandomState::new().hash_one(std::time::Instant::now());
    let fraction = 0.5 + (random % 1024) as f64 / 2048.0;
    d.mul_f64(fraction)
}
