//! The revocation feed that resource servers (`latchkey-verify`) follow.
//!
//! Readable without credentials, like the JWKS: an entry is the id of a
//! session or token that no longer works, useless to anyone who reads it,
//! and resource servers should not need a secret to learn what to refuse.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue};
use axum::response::IntoResponse;
use axum::Json;
use latchkey_core::store::FeedPage;
use serde::{Deserialize, Serialize};
use tokio::time::{Duration, Instant};

use super::App;
use crate::error::ApiError;

/// Longest long-poll a client may ask for.
const MAX_WAIT_SECONDS: u64 = 30;

#[derive(Deserialize)]
pub struct FeedQuery {
    after: Option<String>,
    wait: Option<u64>,
}

#[derive(Serialize)]
struct FeedBody {
    entries: Vec<FeedEntry>,
    cursor: String,
}

#[derive(Serialize)]
struct FeedEntry {
    kind: &'static str,
    id: String,
    expires_at: i64,
}

impl From<FeedPage> for FeedBody {
    fn from(page: FeedPage) -> Self {
        Self {
            entries: page
                .entries
                .into_iter()
                .map(|e| FeedEntry {
                    kind: e.kind.as_str(),
                    id: e.id,
                    expires_at: e.expires_at,
                })
                .collect(),
            cursor: page.cursor.to_string(),
        }
    }
}

/// Without `after`: a snapshot of every live entry and the cursor to go on
/// from. With `after`: what came since, waiting up to `wait` seconds for
/// something to come. 410 `cursor_expired` means: take a new snapshot.
pub async fn revocations(
    State(app): State<App>,
    query: Result<Query<FeedQuery>, QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Query(q) = query
        .map_err(|_| ApiError::BadRequest("expected ?after=<cursor>&wait=<seconds 0-30>".into()))?;
    let deadline = Instant::now() + Duration::from_secs(q.wait.unwrap_or(0).min(MAX_WAIT_SECONDS));
    let mut updates = app.feed_updates.clone();
    updates.mark_unchanged();
    let page = loop {
        let page = app.auth.revocation_feed(q.after.as_deref()).await?;
        if !page.entries.is_empty() || q.after.is_none() || Instant::now() >= deadline {
            break page;
        }
        match tokio::time::timeout_at(deadline, updates.changed()).await {
            Ok(Ok(())) => continue,
            _ => break page,
        }
    };
    Ok((
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(FeedBody::from(page)),
    ))
}
