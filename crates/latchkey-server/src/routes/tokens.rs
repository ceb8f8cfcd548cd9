//! Refresh, revoke and cancel. Tokens travel in bodies, headers and the
//! refresh cookie, never in URLs, where proxies and access logs would keep
//! them.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use latchkey_core::{AuthError, TokenResponse};
use latchkey_wire::body::{RefreshRequest, RevokeRequest, TokenBody, TokenDelivery};

use super::openapi::{CrossSite, NotJson, Throttled, TooLarge, Unavailable};
use super::{no_store, AuthState};
use crate::browser::{self, RefreshCookie};
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
        id_token: t.id_token,
    }
}

/// The token response of a grant that opens or continues a session, with
/// the refresh token where `delivery` says: in the body, or in the
/// HttpOnly cookie (kept for the session's remaining lifetime) and not in
/// the body.
pub fn token_answer(tokens: TokenResponse, delivery: TokenDelivery) -> Response {
    let now = tokens.expires_at - tokens.expires_in;
    let cookie = match (delivery, &tokens.refresh_token, tokens.session_expires_at) {
        (TokenDelivery::Cookie, Some(token), Some(ends)) => {
            browser::set_refresh_cookie(token, ends - now)
        }
        _ => None,
    };
    let mut body = token_body(tokens);
    if delivery == TokenDelivery::Cookie {
        body.refresh_token = None;
    }
    let mut response = (no_store(), Json(body)).into_response();
    if let Some(cookie) = cookie {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// `response` with the refresh cookie removed.
pub fn clearing_refresh_cookie(mut response: Response) -> Response {
    response
        .headers_mut()
        .append(header::SET_COOKIE, browser::clear_refresh_cookie());
    response
}

/// Spends a refresh token for a new access and refresh token. The token
/// comes from the body or, without one there, from the refresh cookie; the
/// successor goes where `token_delivery` says, by default where the token
/// came from.
#[utoipa::path(post, path = "/v1/tokens/refresh", tag = "tokens", request_body = RefreshRequest,
    responses(
        (status = 200, description = "The token response, with the successor refresh token in the body or in the `__Host-latchkey_refresh` cookie", body = TokenBody,
            headers(("Set-Cookie" = String, description = "The successor in the refresh cookie (cookie delivery)"))),
        (status = 400, description = "`invalid_request` (e.g. no refresh token in the body or a cookie) or `invalid_scope`", body = ErrorBody),
        (status = 401, description = "`invalid_grant` (sign in again; the refresh cookie is cleared) or `invalid_client`", body = ErrorBody, headers(("WWW-Authenticate" = String))),
        CrossSite,
        TooLarge,
        NotJson,
        Throttled,
        Unavailable,
    ))]
pub async fn refresh(
    State(auth): State<AuthState>,
    RequestOrigin(origin): RequestOrigin,
    cookie: RefreshCookie,
    JsonBody(body): JsonBody<RefreshRequest>,
) -> Result<Response, ApiError> {
    let (token, from_cookie) = match body.refresh_token.as_deref() {
        Some(token) => (token, false),
        None => (cookie.admit()?.ok_or_else(no_refresh_token)?, true),
    };
    let client = auth
        .client(body.client_id.as_deref(), body.client_secret.as_deref())
        .await?;
    let delivery = body.token_delivery.unwrap_or(if from_cookie {
        TokenDelivery::Cookie
    } else {
        TokenDelivery::Body
    });
    match auth
        .refresh(token, &client, body.scope.as_deref(), &origin)
        .await
    {
        Ok(tokens) => Ok(token_answer(tokens, delivery)),
        // A cookie that no longer works is cleared, so the page knows to
        // sign in again and the browser stops sending it.
        Err(e) if from_cookie && matches!(e, AuthError::InvalidGrant) => {
            Ok(clearing_refresh_cookie(ApiError::from(e).into_response()))
        }
        Err(e) => Err(e.into()),
    }
}

fn no_refresh_token() -> ApiError {
    ApiError::BadRequest("no refresh_token in the body and no refresh cookie".into())
}

/// Ends a refresh token's session; unknown tokens are fine too. The token
/// comes from the body or, without one there, from the refresh cookie,
/// which the answer clears.
#[utoipa::path(post, path = "/v1/tokens/revoke", tag = "tokens", request_body = RevokeRequest,
    responses(
        (status = 204, description = "Revoked (or never valid); the refresh cookie is cleared",
            headers(("Set-Cookie" = String, description = "Clears the refresh cookie"))),
        (status = 400, description = "`invalid_request`: malformed body, or no refresh token in the body or a cookie", body = ErrorBody),
        CrossSite,
        TooLarge,
        NotJson,
        Throttled,
        Unavailable,
    ))]
pub async fn revoke(
    State(auth): State<AuthState>,
    RequestOrigin(origin): RequestOrigin,
    cookie: RefreshCookie,
    JsonBody(body): JsonBody<RevokeRequest>,
) -> Result<Response, ApiError> {
    let token = match body.refresh_token.as_deref() {
        Some(token) => token,
        None => cookie.admit()?.ok_or_else(no_refresh_token)?,
    };
    auth.revoke_refresh_token(token, &origin).await?;
    Ok(clearing_refresh_cookie(
        StatusCode::NO_CONTENT.into_response(),
    ))
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
