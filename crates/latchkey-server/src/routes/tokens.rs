//! Refresh, revoke and cancel. Tokens travel in bodies and headers, never
//! in URLs, where proxies and access logs would keep them.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use latchkey_core::TokenResponse;
use latchkey_wire::body::{RefreshRequest, RevokeRequest, TokenBody};

use super::openapi::{NotJson, Throttled, TooLarge, Unavailable};
use super::{no_store, AuthState};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Caller, JsonBody, RequestOrigin};

/// The body of every token response: sign-in, refresh and `/oauth/token`.
pub fn token_body(t: TokenResponse) -> TokenBody {
    TokenBody {
        access_token: t.access_token,
        token_type: "Bearer",
        expires_in: t.expires_in,
        expires_at: t.expires_at,
        refresh_token: t.refresh_token,
        scope: t.scope,
    }
}

/// Spends a refresh token for a new access and refresh token.
#[utoipa::path(post, path = "/v1/tokens/refresh", tag = "tokens", request_body = RefreshRequest,
    responses(
        (status = 200, description = "The token response, with the successor refresh token", body = TokenBody),
        (status = 400, description = "`invalid_request` or `invalid_scope`", body = ErrorBody),
        (status = 401, description = "`invalid_grant` (sign in again) or `invalid_client`", body = ErrorBody, headers(("WWW-Authenticate" = String))),
        TooLarge,
        NotJson,
        Throttled,
        Unavailable,
    ))]
pub async fn refresh(
    State(auth): State<AuthState>,
    RequestOrigin(origin): RequestOrigin,
    JsonBody(body): JsonBody<RefreshRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let client = auth
        .client(body.client_id.as_deref(), body.client_secret.as_deref())
        .await?;
    let tokens = auth
        .refresh(&body.refresh_token, &client, body.scope.as_deref(), &origin)
        .await?;
    Ok((no_store(), Json(token_body(tokens))))
}

/// Ends a refresh token's session; unknown tokens are fine too.
#[utoipa::path(post, path = "/v1/tokens/revoke", tag = "tokens", request_body = RevokeRequest,
    responses(
        (status = 204, description = "Revoked (or never valid)"),
        (status = 400, description = "`invalid_request`: malformed body", body = ErrorBody),
        TooLarge,
        NotJson,
        Throttled,
        Unavailable,
    ))]
pub async fn revoke(
    State(auth): State<AuthState>,
    RequestOrigin(origin): RequestOrigin,
    JsonBody(body): JsonBody<RevokeRequest>,
) -> Result<StatusCode, ApiError> {
    auth.revoke_refresh_token(&body.refresh_token, &origin)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Cancels the presented access token (its `jti`) here and on every
/// resource server following the feed.
#[utoipa::path(post, path = "/v1/tokens/cancel", tag = "tokens", security(("bearer" = [])),
    responses(
        (status = 204, description = "Cancelled"),
        (status = 401, description = "`invalid_token`: no, malformed, expired, revoked or userless access token", body = ErrorBody, headers(("WWW-Authenticate" = String))),
        Unavailable,
    ))]
pub async fn cancel(
    State(auth): State<AuthState>,
    RequestOrigin(origin): RequestOrigin,
    Caller(claims): Caller,
) -> Result<StatusCode, ApiError> {
    auth.cancel_access_token(&claims, &origin).await?;
    Ok(StatusCode::NO_CONTENT)
}
