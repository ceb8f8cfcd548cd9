//! The caller's sessions: list, end one, sign out, change password.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use latchkey_core::service::SessionView;
use latchkey_wire::body::{PasswordChange, SessionItem, SessionList, SignOutBody};

use super::AuthState;
use crate::error::ApiError;
use crate::extract::{Caller, CallerWithBody, JsonBody, OptionalJsonBody, RequestOrigin};

fn session_item(v: SessionView) -> SessionItem {
    SessionItem {
        id: v.session.id.to_string(),
        created_at: v.session.created_at,
        last_refreshed_at: v.session.last_refreshed_at,
        expires_at: v.expires_at,
        user_agent: v.session.user_agent,
        ip: v.session.ip,
        current: v.current,
    }
}

pub async fn list(
    State(auth): State<AuthState>,
    Caller(caller): Caller,
) -> Result<Json<SessionList>, ApiError> {
    let sessions = auth.list_sessions(&caller).await?;
    Ok(Json(SessionList {
        sessions: sessions.into_iter().map(session_item).collect(),
    }))
}

pub async fn end(
    State(auth): State<AuthState>,
    RequestOrigin(origin): RequestOrigin,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    auth.end_own_session(&caller, &id, &origin).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn sign_out(
    State(auth): State<AuthState>,
    RequestOrigin(origin): RequestOrigin,
    CallerWithBody(caller, OptionalJsonBody(body)): CallerWithBody<OptionalJsonBody<SignOutBody>>,
) -> Result<StatusCode, ApiError> {
    auth.sign_out(&caller, body.scope, &origin).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn change_password(
    State(auth): State<AuthState>,
    RequestOrigin(origin): RequestOrigin,
    CallerWithBody(caller, JsonBody(body)): CallerWithBody<JsonBody<PasswordChange>>,
) -> Result<StatusCode, ApiError> {
    auth.change_password(&caller, &body.current_password, &body.new_password, &origin)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
