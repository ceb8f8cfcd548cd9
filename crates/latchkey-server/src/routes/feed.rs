//! The revocation feed that resource servers (`latchkey-verify`) follow.
//!
//! Readable by confidential clients only (HTTP Basic), unless the operator
//! sets `public_revocation_feed`: its entries are session ids with their
//! sign-out times, which tell an outsider how many sessions each user has
//! and when they end them.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::IntoResponse;
use axum::Json;
use latchkey_core::client::ClientKind;
use latchkey_core::store::FeedPage;
use latchkey_core::AuthError;
use serde::{Deserialize, Serialize};
use tokio::time::{Duration, Instant};

use super::basic_auth::BasicCredentials;
use super::App;
use crate::error::ApiError;

/// Longest long-poll a client may ask for.
const MAX_WAIT_SECONDS: u64 = 30;

#[derive(Deserialize)]
pub struct FeedQuery {
    after: Option<String>,
    page: Option<String>,
    wait: Option<u64>,
}

#[derive(Serialize)]
struct FeedBody {
    entries: Vec<FeedEntry>,
    cursor: String,
    /// On a snapshot page with more after it: the `page` to ask for next.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

#[derive(Serialize)]
struct FeedEntry {
    kind: &'static str,
    id: String,
    expires_at: i64,
}

impl FeedBody {
    fn new(page: FeedPage, snapshot: bool) -> Self {
        let cursor = page.cursor.to_string();
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
            next: (snapshot && page.more).then(|| cursor.clone()),
            cursor,
        }
    }
}

/// Without `after`: a page of the snapshot of every live entry (the first,
/// or the one `page` names), with `next` while more pages follow, and the
/// cursor to go on from. With `after`: what came since, waiting up to
/// `wait` seconds for something to come. 410 `cursor_expired` means: take a
/// new snapshot.
pub async fn revocations(
    State(app): State<App>,
    headers: HeaderMap,
    query: Result<Query<FeedQuery>, QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    // Before anything else, so an unauthenticated caller can make this
    // node neither read the store nor hold a long poll open.
    if !app.public_revocation_feed {
        authenticate_resource_server(&app, &headers).await?;
    }
    let Query(q) = query.map_err(|_| {
        ApiError::BadRequest("expected ?after=<cursor>&wait=<seconds 0-30> or ?page=<next>".into())
    })?;
    let snapshot = q.after.is_none();
    let deadline = Instant::now() + Duration::from_secs(q.wait.unwrap_or(0).min(MAX_WAIT_SECONDS));
    let mut updates = app.feed_updates.clone();
    updates.mark_unchanged();
    let page = loop {
        let page = app
            .auth
            .revocation_feed(q.after.as_deref(), q.page.as_deref())
            .await?;
        if !page.entries.is_empty() || snapshot || Instant::now() >= deadline {
            break page;
        }
        match tokio::time::timeout_at(deadline, updates.changed()).await {
            Ok(Ok(())) => continue,
            _ => break page,
        }
    };
    Ok((
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(FeedBody::new(page, snapshot)),
    ))
}

/// A confidential client's id and secret in `Authorization: Basic`; anything
/// else (nothing, another scheme, a public client) is 401 `invalid_client`.
async fn authenticate_resource_server(app: &App, headers: &HeaderMap) -> Result<(), ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or(AuthError::InvalidClient)?;
    let credentials = BasicCredentials::parse(value)?;
    let secret = credentials.secret.ok_or(AuthError::InvalidClient)?;
    let client = app
        .auth
        .client(Some(&credentials.id), Some(&secret))
        .await?;
    if client.kind != ClientKind::Confidential {
        return Err(AuthError::InvalidClient.into());
    }
    Ok(())
}
