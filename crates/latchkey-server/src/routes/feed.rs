//! The revocation feed that resource servers (`latchkey-verify`) follow.
//!
//! Readable by confidential clients only (HTTP Basic), unless the operator
//! sets `public_revocation_feed`: its entries are session ids with their
//! sign-out times, which tell an outsider how many sessions each user has
//! and when they end them.

use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::IntoResponse;
use axum::Json;
use latchkey_core::client::ClientKind;
use latchkey_core::store::FeedPage;
use latchkey_core::AuthError;
use latchkey_wire::authorization::BasicCredentials;
use latchkey_wire::feed::{FeedEntry, FeedQuery, FeedResponse};
use tokio::time::Instant;

use super::openapi::Unavailable;
use super::{App, REQUEST_TIMEOUT};
use crate::error::{ApiError, ErrorBody};

/// The longest this node holds a long poll. The protocol allows 30 s, as
/// long as the request timeout: a poll held that long would be cut off
/// with a bodyless 408 instead of its empty page, so it ends a little
/// earlier (the reader polls again either way).
const LONGEST_HOLD: Duration = REQUEST_TIMEOUT.saturating_sub(Duration::from_secs(3));

/// The feed page of a store read: on a snapshot page with more after it,
/// `next` names the page to ask for next.
fn feed_response(page: FeedPage, snapshot: bool) -> FeedResponse {
    let cursor = page.cursor.to_string();
    FeedResponse {
        entries: page.entries.into_iter().map(FeedEntry::from).collect(),
        next: (snapshot && page.more).then(|| cursor.clone()),
        cursor,
    }
}

#[utoipa::path(get, path = "/v1/revocations", tag = "feed", params(FeedQuery),
    security(("client_basic" = [])),
    responses(
        (status = 200, description = "A snapshot page, or the entries after the cursor", body = FeedResponse),
        (status = 400, description = "`invalid_request`: both `after` and `page`, or a malformed query", body = ErrorBody),
        (status = 401, description = "`invalid_client`: no confidential client's credentials (unless the feed is public)", body = ErrorBody, headers(("WWW-Authenticate" = String))),
        (status = 410, description = "`cursor_expired`: take a new snapshot", body = ErrorBody),
        Unavailable,
    ))]
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
    let deadline = Instant::now() + q.wait().min(LONGEST_HOLD);
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
        Json(feed_response(page, snapshot)),
    ))
}

/// A confidential client's id and secret in `Authorization: Basic`; anything
/// else (nothing, another scheme, a public client) is 401 `invalid_client`.
async fn authenticate_resource_server(app: &App, headers: &HeaderMap) -> Result<(), ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or(AuthError::InvalidClient)?;
    let credentials = BasicCredentials::parse(value).ok_or(AuthError::InvalidClient)?;
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
