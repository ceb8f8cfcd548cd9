//! The caller's sessions: list, end one, sign out, change password.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use latchkey_core::service::{SessionView, SignOutScope};
use serde::{Deserialize, Serialize};

use super::AuthState;
use crate::error::ApiError;
use crate::extract::{BearerToken, JsonBody, OptionalJsonBody, RequestOrigin};

#[derive(Serialize)]
pub struct SessionList {
    sessions: Vec<SessionItem>,
}

#[derive(Serialize)]
struct SessionItem {
    id: String,
    created_at: i64,
    last_refreshed_at: i64,
    expires_at: i64,
    user_agent: Option<String>,
    ip: Option<String>,
    current: bool,
}

impl From<SessionView> for SessionItem {
    fn from(v: SessionView) -> Self {
        Self {
            id: v.session.id.to_string(),
            created_at: v.session.created_at,
            last_refreshed_at: v.session.last_refreshed_at,
            expires_at: v.expires_at,
            user_agent: v.session.user_agent,
            ip: v.session.ip,
            current: v.current,
        }
    }
}

pub async fn list(
    State(auth): State<AuthState>,
    BearerToken(token): BearerToken,
) -> Result<Json<SessionList>, ApiError> {
    let caller = auth.authenticate(&token)?;
    let sessions = auth.list_sessions(&caller).await?;
    Ok(Json(SessionList {
        sessions: sessions.into_iter().map(SessionItem::from).collect(),
    }))
}

pub async fn end(
    State(auth): State<AuthState>,
    RequestOrigin(origin): RequestOrigin,
    BearerToken(token): BearerToken,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let caller = auth.authenticate(&token)?;
    auth.end_own_session(&caller, &id, &origin).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Default)]
pub struct SignOutBody {
    #[serde(default)]
    scope: Scope,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Scope {
    #[default]
    Current,
    Others,
    All,
}

pub async fn sign_out(
    State(auth): State<AuthState>,
    RequestOrigin(origin): RequestOrigin,
    BearerToken(token): BearerToken,
    OptionalJsonBody(body): OptionalJsonBody<SignOutBody>,
) -> Result<StatusCode, ApiError> {
    let caller = auth.authenticate(&token)?;
    let scope = match body.scope {
        Scope::Current => SignOutScope::Current,
        Scope::Others => SignOutScope::Others,
        Scope::All => SignOutScope::All,
    };
    auth.sign_out(&caller, scope, &origin).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct PasswordChange {
    current_password: String,
    new_password: String,
}

pub async fn change_password(
    State(auth): State<AuthState>,
    RequestOrigin(origin): RequestOrigin,
    BearerToken(token): BearerToken,
    JsonBody(body): JsonBody<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    let caller = auth.authenticate(&token)?;
    auth.change_password(&caller, &body.current_password, &body.new_password, &origin)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
