//! Sign-up, sign-in and the `me` endpoint.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use latchkey_core::model::User;
use latchkey_core::service::GrantRequest;
use latchkey_wire::body::{Account, SignIn, SignUp, TokenBody, TokenDelivery};

use super::openapi::{NotJson, Throttled, TooLarge, Unavailable};
use super::tokens::token_answer;
use super::AuthState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Caller, JsonBody, RequestOrigin};

pub(super) fn account(user: &User, with_roles: bool) -> Account<'_> {
    Account {
        id: user.id.to_string(),
        username: &user.username,
        created_at: user.created_at,
        roles: with_roles.then_some(user.roles.as_slice()),
        email: user.email.as_ref().map(|e| e.address.as_str()),
        email_verified: user.email.is_some() && user.email_verified_at.is_some(),
    }
}

/// Creates an account. Usernames are NFKC + case-folded; passwords are 8
/// characters to 1024 bytes and not a common one. When sign-up is by
/// invitation, `invite` must be an unused, unexpired invite code.
#[utoipa::path(post, path = "/v1/sign-up", tag = "accounts", request_body = SignUp,
    responses(
        (status = 201, description = "The new account (without roles)", body = Account,
            links(("SignIn" = (operation_id = "sign_in", description = "Sign the new account in",
                request_body = json!({"username": "$request.body#/username", "password": "$request.body#/password"}))))),
        (status = 400, description = "`invalid_request`: malformed body or a username/password rule broken", body = ErrorBody),
        (status = 403, description = "`invalid_invite` (by invitation: the code is missing, unknown, used or expired) or `sign_up_disabled`", body = ErrorBody),
        (status = 409, description = "`username_taken`, or `email_taken`: another account has the address", body = ErrorBody),
        TooLarge,
        NotJson,
        Throttled,
        Unavailable,
    ))]
pub async fn sign_up(
    State(auth): State<AuthState>,
    RequestOrigin(origin): RequestOrigin,
    JsonBody(body): JsonBody<SignUp>,
) -> Result<impl IntoResponse, ApiError> {
    let user = auth
        .sign_up(
            &body.username,
            &body.password,
            body.invite.as_deref(),
            body.email.as_deref(),
            &origin,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(account(&user, false))).into_response())
}

/// Signs in with a password; optionally as a client with a scope and
/// audience. With `"token_delivery": "cookie"` the refresh token is set as
/// the HttpOnly `__Host-latchkey_refresh` cookie instead of being in the
/// body.
#[utoipa::path(post, path = "/v1/sign-in", tag = "accounts", request_body = SignIn,
    responses(
        (status = 200, description = "The token response", body = TokenBody,
            headers(("Set-Cookie" = String, description = "The refresh token in the refresh cookie (cookie delivery)")),
            links(
                ("Refresh" = (operation_id = "refresh", description = "Spend the refresh token",
                    request_body = json!({"refresh_token": "$response.body#/refresh_token"}))),
                ("Revoke" = (operation_id = "revoke", description = "End the new session",
                    request_body = json!({"refresh_token": "$response.body#/refresh_token"}))),
            )),
        (status = 400, description = "`invalid_request`, `invalid_scope` or `invalid_target`", body = ErrorBody),
        (status = 401, description = "`invalid_grant` (unknown user or wrong password, one answer) or `invalid_client`", body = ErrorBody, headers(("WWW-Authenticate" = String))),
        TooLarge,
        NotJson,
        Throttled,
        Unavailable,
    ))]
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
    Ok(token_answer(
        tokens,
        body.token_delivery.unwrap_or(TokenDelivery::Body),
    ))
}

/// The caller's account, with roles.
#[utoipa::path(get, path = "/v1/me", tag = "accounts", security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's account", body = Account),
        (status = 401, description = "`invalid_token`: no, malformed, expired, revoked or userless access token", body = ErrorBody, headers(("WWW-Authenticate" = String))),
        Unavailable,
    ))]
pub async fn me(
    State(auth): State<AuthState>,
    Caller(claims): Caller,
) -> Result<impl IntoResponse, ApiError> {
    let user = auth.user(&claims).await?;
    Ok(Json(account(&user, true)).into_response())
}
