//! Refresh, revoke and cancel. Tokens travel in bodies and headers, never
//! in URLs, where proxies and access logs would keep them.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use latchkey_core::TokenResponse;
use serde::{Deserialize, Serialize};

use super::{no_store, AuthState};
use crate::error::ApiError;
use crate::extract::{BearerToken, JsonBody};

#[derive(Serialize)]
pub struct TokenBody {
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
    expires_at: i64,
    refresh_token: String,
}

impl From<TokenResponse> for TokenBody {
    fn from(t: TokenResponse) -> Self {
        Self {
            access_token: t.access_token,
            token_type: "Bearer",
            expires_in: t.expires_in,
            expires_at: t.expires_at,
            refresh_token: t.refresh_token,
        }
    }
}

#[derive(Deserialize)]
pub struct RefreshTokenBody {
    refresh_token: String,
}

pub async fn refresh(
    State(auth): State<AuthState>,
    JsonBody(body): JsonBody<RefreshTokenBody>,
) -> Result<impl IntoResponse, ApiError> {
    let tokens = auth.refresh(&body.refresh_token).await?;
    Ok((no_store(), Json(TokenBody::from(tokens))))
}

pub async fn revoke(
    State(auth): State<AuthState>,
    JsonBody(body): JsonBody<RefreshTokenBody>,
) -> Result<StatusCode, ApiError> {
    auth.revoke_refresh_token(&body.refresh_token).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn cancel(
    State(auth): State<AuthState>,
    BearerToken(token): BearerToken,
) -> Result<StatusCode, ApiError> {
    let claims = auth.authenticate(&token)?;
    auth.cancel_access_token(&claims).await?;
    Ok(StatusCode::NO_CONTENT)
}
