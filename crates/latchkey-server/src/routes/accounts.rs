//! Sign-up, sign-in and the `me` endpoint.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use latchkey_core::model::User;
use latchkey_core::service::GrantRequest;
use latchkey_wire::body::{Account, SignIn, SignUp};

use super::tokens::token_body;
use super::{no_store, AuthState};
use crate::error::ApiError;
use crate::extract::{Caller, JsonBody, RequestOrigin};

fn account(user: &User, with_roles: bool) -> Account<'_> {
    Account {
        id: user.id.to_string(),
        username: &user.username,
        created_at: user.created_at,
        roles: with_roles.then_some(user.roles.as_slice()),
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
    Ok((StatusCode::CREATED, Json(account(&user, false))).into_response())
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
    Ok((no_store(), Json(token_body(tokens))))
}

pub async fn me(
    State(auth): State<AuthState>,
    Caller(claims): Caller,
) -> Result<impl IntoResponse, ApiError> {
    let user = auth.user(&claims).await?;
    Ok(Json(account(&user, true)).into_response())
}
