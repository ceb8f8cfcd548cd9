//! Password recovery and the account's email address: forgot (always
//! 202), reset with a link's token, set the address, verify it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use latchkey_core::service::ForgotBy;
use latchkey_wire::body::{Account, ForgotPassword, ResetPassword, SetEmail, VerifyEmail};

use super::accounts::account;
use super::openapi::{NotJson, Throttled, TooLarge, Unavailable};
use super::{App, AuthState};
use crate::client_address::ClientNetwork;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{CallerWithBody, JsonBody, RequestOrigin};

/// Asks for a password-reset link by username or email. Always 202, in the
/// same time whether or not the account exists or has a verified address
/// (the request is only queued); the link is mailed to the account's
/// verified address only, at most once a minute per account. Requests over
/// the per-address limit get 202 too, and nothing is queued.
#[utoipa::path(post, path = "/v1/password/forgot", tag = "accounts", request_body = ForgotPassword,
    responses(
        (status = 202, description = "Accepted (whatever the account)"),
        (status = 400, description = "`invalid_request`: malformed body, or not exactly one of `username` and `email`", body = ErrorBody),
        TooLarge,
        NotJson,
        Unavailable,
    ))]
pub async fn forgot(
    State(app): State<App>,
    network: Option<Extension<ClientNetwork>>,
    JsonBody(body): JsonBody<ForgotPassword>,
) -> Result<StatusCode, ApiError> {
    let by = match (&body.username, &body.email) {
        (Some(name), None) => ForgotBy::Username(name),
        (None, Some(email)) => ForgotBy::Email(email),
        _ => {
            return Err(ApiError::BadRequest(
                "give exactly one of username and email".to_owned(),
            ))
        }
    };
    if let (Some(limiter), Some(Extension(ClientNetwork(net)))) = (&app.recovery_limit, network) {
        if limiter.check(&net).is_err() {
            // Told nothing: a 429 here would differ from what an unknown
            // account gets no more than a 202 does, but it would tell a
            // prober when to slow down.
            tracing::info!(network = %net, "password reset requests over the address's limit; ignored");
            return Ok(StatusCode::ACCEPTED);
        }
    }
    app.auth.forgot_password(by).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Sets a new password with the token of a reset link. The password rules
/// are those of sign-up, checked before the token is used (a refused
/// password leaves the link working). Every session of the account ends
/// and its failed sign-ins are forgotten.
#[utoipa::path(post, path = "/v1/password/reset", tag = "accounts", request_body = ResetPassword,
    responses(
        (status = 204, description = "The password is set; every session ended"),
        (status = 400, description = "`invalid_grant`: the token is unknown, used or expired (one answer); or `invalid_request`: malformed body or a password rule broken", body = ErrorBody),
        TooLarge,
        NotJson,
        Throttled,
        Unavailable,
    ))]
pub async fn reset(
    State(auth): State<AuthState>,
    RequestOrigin(origin): RequestOrigin,
    JsonBody(body): JsonBody<ResetPassword>,
) -> Result<StatusCode, ApiError> {
    auth.reset_password(&body.token, &body.new_password, &origin)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets the caller's email address, unverified, and mails a verification
/// link to it (valid 24 h). Setting the verified address again changes
/// nothing and sends nothing.
#[utoipa::path(post, path = "/v1/email", tag = "accounts", security(("bearer" = [])),
    request_body = SetEmail,
    responses(
        (status = 200, description = "The account with its new address", body = Account),
        (status = 400, description = "`invalid_request`: malformed body or not a plain email address", body = ErrorBody),
        (status = 401, description = "`invalid_token`: no, malformed, expired, revoked or userless access token", body = ErrorBody, headers(("WWW-Authenticate" = String))),
        (status = 409, description = "`email_taken`: another account has the address", body = ErrorBody),
        TooLarge,
        NotJson,
        Throttled,
        Unavailable,
    ))]
pub async fn set_email(
    State(auth): State<AuthState>,
    RequestOrigin(origin): RequestOrigin,
    CallerWithBody(caller, JsonBody(body)): CallerWithBody<JsonBody<SetEmail>>,
) -> Result<Response, ApiError> {
    let user = auth.set_email(&caller, &body.email, &origin).await?;
    Ok(Json(account(&user, true)).into_response())
}

/// Marks the address verified with the token of a verification link, if
/// the account's address is still the one the link was sent to.
#[utoipa::path(post, path = "/v1/email/verify", tag = "accounts", request_body = VerifyEmail,
    responses(
        (status = 204, description = "Verified"),
        (status = 400, description = "`invalid_grant`: the token is unknown, used, expired or for an address the account no longer has (one answer); or `invalid_request`: malformed body", body = ErrorBody),
        TooLarge,
        NotJson,
        Throttled,
        Unavailable,
    ))]
pub async fn verify_email(
    State(auth): State<AuthState>,
    RequestOrigin(origin): RequestOrigin,
    JsonBody(body): JsonBody<VerifyEmail>,
) -> Result<StatusCode, ApiError> {
    auth.verify_email(&body.token, &origin).await?;
    Ok(StatusCode::NO_CONTENT)
}
