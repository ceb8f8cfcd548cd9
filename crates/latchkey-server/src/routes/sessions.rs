//! The caller's sessions: list, end one, sign out, change password.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use latchkey_core::service::{SessionView, SignOutScope};
use latchkey_wire::body::{PasswordChange, SessionItem, SessionList, SignOutBody};

use super::openapi::{NotJson, Throttled, TooLarge, Unavailable};
use super::tokens::clearing_refresh_cookie;
use super::AuthState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Caller, CallerWithBody, JsonBody, OptionalJsonBody, RequestOrigin};

pub(super) fn session_item(v: SessionView) -> SessionItem {
    SessionItem {
        id: v.session.id.to_string(),
        client_id: v.session.client_id,
        created_at: v.session.created_at,
        last_refreshed_at: v.session.last_refreshed_at,
        expires_at: v.expires_at,
        user_agent: v.session.user_agent,
        ip: v.session.ip,
        current: v.current,
    }
}

/// The caller's live sessions, oldest first.
#[utoipa::path(get, path = "/v1/sessions", tag = "sessions", security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's live sessions", body = SessionList),
        (status = 401, description = "`invalid_token`: no, malformed, expired, revoked or userless access token", body = ErrorBody, headers(("WWW-Authenticate" = String))),
        Unavailable,
    ))]
pub async fn list(
    State(auth): State<AuthState>,
    Caller(caller): Caller,
) -> Result<Json<SessionList>, ApiError> {
    let sessions = auth.list_sessions(&caller).await?;
    Ok(Json(SessionList {
        sessions: sessions.into_iter().map(session_item).collect(),
    }))
}

/// Ends one of the caller's sessions.
#[utoipa::path(delete, path = "/v1/sessions/{id}", tag = "sessions", security(("bearer" = [])),
    params(("id" = String, Path, description = "A session id from `GET /v1/sessions`")),
    responses(
        (status = 204, description = "Ended"),
        (status = 401, description = "`invalid_token`: no, malformed, expired, revoked or userless access token", body = ErrorBody, headers(("WWW-Authenticate" = String))),
        (status = 404, description = "`not_found`: not a live session of the caller's", body = ErrorBody),
        Unavailable,
    ))]
pub async fn end(
    State(auth): State<AuthState>,
    RequestOrigin(origin): RequestOrigin,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    auth.end_own_session(&caller, &id, &origin).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ends the caller's session, the others, or all; the body is optional.
/// Ending the caller's own session also clears the refresh cookie.
#[utoipa::path(post, path = "/v1/sign-out", tag = "sessions", security(("bearer" = [])),
    request_body(content = Option<SignOutBody>, description = "Optional; default scope `current`"),
    responses(
        (status = 204, description = "Signed out",
            headers(("Set-Cookie" = String, description = "Clears the refresh cookie (scopes `current` and `all`)"))),
        (status = 400, description = "`invalid_request`: malformed body or unknown scope", body = ErrorBody),
        (status = 401, description = "`invalid_token`: no, malformed, expired, revoked or userless access token", body = ErrorBody, headers(("WWW-Authenticate" = String))),
        TooLarge,
        NotJson,
        Unavailable,
    ))]
pub async fn sign_out(
    State(auth): State<AuthState>,
    RequestOrigin(origin): RequestOrigin,
    CallerWithBody(caller, OptionalJsonBody(body)): CallerWithBody<OptionalJsonBody<SignOutBody>>,
) -> Result<Response, ApiError> {
    auth.sign_out(&caller, body.scope, &origin).await?;
    let signed_out = StatusCode::NO_CONTENT.into_response();
    Ok(match body.scope {
        SignOutScope::Others => signed_out,
        SignOutScope::Current | SignOutScope::All => clearing_refresh_cookie(signed_out),
    })
}

/// Changes the caller's password; every other session ends.
#[utoipa::path(post, path = "/v1/password", tag = "sessions", security(("bearer" = [])),
    request_body = PasswordChange,
    responses(
        (status = 204, description = "Changed"),
        (status = 400, description = "`invalid_grant` (wrong current password) or `invalid_request` (a rule broken)", body = ErrorBody),
        (status = 401, description = "`invalid_token`: no, malformed, expired, revoked or userless access token", body = ErrorBody, headers(("WWW-Authenticate" = String))),
        TooLarge,
        NotJson,
        Throttled,
        Unavailable,
    ))]
pub async fn change_password(
    State(auth): State<AuthState>,
    RequestOrigin(origin): RequestOrigin,
    CallerWithBody(caller, JsonBody(body)): CallerWithBody<JsonBody<PasswordChange>>,
) -> Result<StatusCode, ApiError> {
    auth.change_password(&caller, &body.current_password, &body.new_password, &origin)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
