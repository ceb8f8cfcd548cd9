//! Sign-up, sign-in and the `me` endpoint.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use latchkey_core::store::User;
use serde::{Deserialize, Serialize};

use super::tokens::TokenBody;
use super::{no_store, AuthState};
use crate::error::ApiError;
use crate::extract::{BearerToken, Client, JsonBody};

#[derive(Deserialize)]
pub struct Credentials {
    username: String,
    password: String,
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
    JsonBody(body): JsonBody<Credentials>,
) -> Result<impl IntoResponse, ApiError> {
    let user = auth.sign_up(&body.username, &body.password).await?;
    Ok((StatusCode::CREATED, Json(Account::new(&user, false))).into_response())
}

pub async fn sign_in(
    State(auth): State<AuthState>,
    Client(client): Client,
    JsonBody(body): JsonBody<Credentials>,
) -> Result<impl IntoResponse, ApiError> {
    let tokens = auth.sign_in(&body.username, &body.password, client).await?;
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
