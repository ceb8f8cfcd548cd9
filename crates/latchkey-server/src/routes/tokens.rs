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
use crate::extract::{BearerToken, JsonBody, RequestOrigin};

/// The token response of RFC 6749 §5.1, plus `expires_at` (unix seconds)
/// so clients can refresh a little before expiry without their own clock
/// arithmetic.
#[derive(Serialize)]
pub struct TokenBody {
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
    expires_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    scope: String,
}

impl From<TokenResponse> for TokenBody {
    fn from(t: TokenResponse) -> Self {
        Self {
            access_token: t.access_token,
            token_type: "Bearer",
            expires_in: t.expires_in,
            expires_at: t.expires_at,
            refresh_token: t.refresh_token,
            scope: t.scope,
        }
    }
}

#[derive(Deserialize)]
pub struct RefreshRequest {
    refresh_token: String,
    /// The client the token was issued to; the default client when absent.
    client_id: Option<String>,
    client_secret: Option<String>,
    /// Narrower scope for the new access token.
    scope: Option<String>,
}

#[derive(Deserialize)]
pub struct RevokeRequest {
    refresh_token: String,
}

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
    Ok((no_store(), Json(TokenBody::from(tokens))))
}

pub async fn revoke(
    State(auth): State<AuthState>,
    RequestOrigin(origin): RequestOrigin,
    JsonBody(body): JsonBody<RevokeRequest>,
) -> Result<StatusCode, ApiError> {
    auth.revoke_refresh_token(&body.refresh_token, &origin)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn cancel(
    State(auth): State<AuthState>,
    RequestOrigin(origin): RequestOrigin,
    BearerToken(token): BearerToken,
) -> Result<StatusCode, ApiError> {
    let claims = auth.authenticate(&token)?;
    auth.cancel_access_token(&claims, &origin).await?;
    Ok(StatusCode::NO_CONTENT)
}
