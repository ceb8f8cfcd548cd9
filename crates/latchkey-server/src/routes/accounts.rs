//! Sign-up, sign-in and the `me` endpoint.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use latchkey_core::model::User;
use latchkey_core::service::GrantRequest;
use serde::{Deserialize, Serialize};

use super::tokens::TokenBody;
use super::{no_store, AuthState};
use crate::error::ApiError;
use crate::extract::{BearerToken, JsonBody, RequestOrigin};

#[derive(Deserialize)]
pub struct SignUp {
    username: String,
    password: String,
}

/// Sign-in: credentials, and optionally the client (app) signing in with
/// what it asks for. Without `client_id`, the default client.
#[derive(Deserialize)]
pub struct SignIn {
    username: String,
    password: String,
    client_id: Option<String>,
    client_secret: Option<String>,
    scope: Option<String>,
    audience: Option<String>,
}

#[derive(Serialize)]
struct Account<'a> {
    id: String,
    username: &'a str,
    created_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    roles: Option<&'a [String]>,
}

impl<'a> Account<'a> {
    fn new(user: &'a User, with_roles: bool) -> Self {
        Self {
            id: user.id.to_string(),
            username: &user.username,
            created_at: user.created_at,
            roles: with_roles.then_some(user.roles.as_slice()),
        }
    }
}

pub async fn sign_up(
    State(auth): State<AuthState>,
    RequestOrigin(origin): RequestOrigin,
    JsonBody(body): JsonBody<SignUp>,
) -> Result<impl IntoResponse, ApiError> {
    let user = auth
        .sign_up(&body.username, &body.password, &origin)
        .await?;
    Ok((StatusCode::CREATED, Json(Account::new(&user, false))).into_response())
}

pub async fn sign_in(
    State(auth): State<AuthState>,
    RequestOrigin(origin): RequestOrigin,
    JsonBody(body): JsonBody<SignIn>,
) -> Result<impl IntoResponse, ApiError> {
    let client = auth
        .client(body.client_id.as_deref(), body.client_secret.as_deref())
        .await?;
    let request = GrantRequest {
        scope: body.scope.as_deref(),
        audience: body.audience.as_deref(),
    };
    let tokens = auth
        .sign_in(&body.username, &body.password, &client, &request, origin)
        .await?;
    Ok((no_store(), Json(TokenBody::from(tokens))))
}

pub async fn me(
    State(auth): State<AuthState>,
    BearerToken(token): BearerToken,
) -> Result<impl IntoResponse, ApiError> {
    let claims = auth.authenticate(&token)?;
    let user = auth.user(&claims).await?;
    Ok(Json(Account::new(&user, true)).into_response())
}
