//! The administration API, `/admin/v1`: accounts, their sessions, reset
//! links and invite codes, for a confidential client's own token with the
//! `latchkey:admin` scope ([`AdminCaller`]). Each handler finds the account
//! and calls one `Authority` method; the rules live in core
//! (`service/administration.rs`, `service/invites.rs`).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use latchkey_core::model::User;
use latchkey_core::service::administration::{AccountChange, NewAccount};
use latchkey_wire::admin::{
    AdminUser, CreateInvite, CreateUser, CreatedUser, EndedSessions, InviteBody, LinkBody,
    PatchUser, UserListQuery, UserPageBody,
};
use latchkey_wire::body::SessionList;
use secrecy::ExposeSecret;

use super::openapi::{NotJson, TooLarge, Unavailable};
use super::sessions::session_item;
use super::AuthState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{AdminCaller, AdminCallerWithBody, JsonBody, OptionalJsonBody, RequestOrigin};

/// An account as the administration API and the CLI show it.
pub fn admin_user(user: User) -> AdminUser {
    AdminUser {
        id: user.id.to_string(),
        username: user.username,
        created_at: user.created_at,
        roles: user.roles,
        email: user.email.map(|e| e.address),
        email_verified_at: user.email_verified_at,
        disabled: user.disabled_at.is_some(),
        disabled_at: user.disabled_at,
    }
}

/// Accounts by normalised username, a page at a time; `query` is a
/// substring of the normalised username or the lower-cased email.
#[utoipa::path(get, path = "/admin/v1/users", tag = "admin", params(UserListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of accounts; `next_cursor` while more follow", body = UserPageBody),
        (status = 400, description = "`invalid_request`: a malformed query, limit or cursor", body = ErrorBody),
        (status = 401, description = "`invalid_token`: no, malformed, expired or revoked access token", body = ErrorBody, headers(("WWW-Authenticate" = String))),
        (status = 403, description = "`insufficient_scope`: not a client's token with `latchkey:admin`", body = ErrorBody, headers(("WWW-Authenticate" = String))),
        Unavailable,
    ))]
pub async fn list_users(
    State(auth): State<AuthState>,
    AdminCaller(_): AdminCaller,
    query: Result<Query<UserListQuery>, QueryRejection>,
) -> Result<Json<UserPageBody>, ApiError> {
    let Query(q) =
        query.map_err(|_| ApiError::BadRequest("expected ?query=&limit=<1-200>&cursor=".into()))?;
    let page = auth
        .admin_users(q.query.as_deref(), q.limit, q.cursor.as_deref())
        .await?;
    Ok(Json(UserPageBody {
        users: page.users.into_iter().map(admin_user).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// One account.
#[utoipa::path(get, path = "/admin/v1/users/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "The account's id (a UUID)")),
    responses(
        (status = 200, description = "The account", body = AdminUser),
        (status = 400, description = "`invalid_request`: the id is not a UUID", body = ErrorBody),
        (status = 401, description = "`invalid_token`", body = ErrorBody, headers(("WWW-Authenticate" = String))),
        (status = 403, description = "`insufficient_scope`", body = ErrorBody, headers(("WWW-Authenticate" = String))),
        (status = 404, description = "`not_found`", body = ErrorBody),
        Unavailable,
    ))]
pub async fn show_user(
    State(auth): State<AuthState>,
    AdminCaller(_): AdminCaller,
    Path(id): Path<String>,
) -> Result<Json<AdminUser>, ApiError> {
    Ok(Json(admin_user(auth.admin_user(&id).await?)))
}

/// Creates an account under the sign-up rules. Without a password the
/// answer carries `set_password_link` (7 days, one use); until it is used
/// the account cannot be signed in to.
#[utoipa::path(post, path = "/admin/v1/users", tag = "admin", request_body = CreateUser,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The account (and, without a password, the link to set one)", body = CreatedUser),
        (status = 400, description = "`invalid_request`: a username, password, email or role rule broken", body = ErrorBody),
        (status = 401, description = "`invalid_token`", body = ErrorBody, headers(("WWW-Authenticate" = String))),
        (status = 403, description = "`insufficient_scope`", body = ErrorBody, headers(("WWW-Authenticate" = String))),
        (status = 409, description = "`username_taken` or `email_taken`", body = ErrorBody),
        TooLarge,
        NotJson,
        Unavailable,
    ))]
pub async fn create_user(
    State(auth): State<AuthState>,
    RequestOrigin(origin): RequestOrigin,
    AdminCallerWithBody(actor, JsonBody(body)): AdminCallerWithBody<JsonBody<CreateUser>>,
) -> Result<impl IntoResponse, ApiError> {
    let created = auth
        .admin_create_user(
            NewAccount {
                username: &body.username,
                password: body.password.as_deref(),
                email: body.email.as_deref(),
                roles: body.roles.unwrap_or_default(),
            },
            &actor,
            &origin,
        )
        .await?;
    let (link, expires_at) = match created.set_password_link {
        Some(l) => (Some(l.link.expose_secret().to_owned()), Some(l.expires_at)),
        None => (None, None),
    };
    Ok((
        StatusCode::CREATED,
        Json(CreatedUser {
            user: admin_user(created.user),
            set_password_link: link,
            set_password_link_expires_at: expires_at,
        }),
    ))
}

/// Changes roles, email (unverified; `""` removes it) or `disabled`.
/// Disabling ends every session at once, revocations published.
#[utoipa::path(patch, path = "/admin/v1/users/{id}", tag = "admin", request_body = PatchUser,
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The account's id (a UUID)")),
    responses(
        (status = 200, description = "The account as changed", body = AdminUser),
        (status = 400, description = "`invalid_request`: a malformed id, email or role", body = ErrorBody),
        (status = 401, description = "`invalid_token`", body = ErrorBody, headers(("WWW-Authenticate" = String))),
        (status = 403, description = "`insufficient_scope`", body = ErrorBody, headers(("WWW-Authenticate" = String))),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`email_taken`", body = ErrorBody),
        TooLarge,
        NotJson,
        Unavailable,
    ))]
pub async fn patch_user(
    State(auth): State<AuthState>,
    RequestOrigin(origin): RequestOrigin,
    Path(id): Path<String>,
    AdminCallerWithBody(actor, JsonBody(body)): AdminCallerWithBody<JsonBody<PatchUser>>,
) -> Result<Json<AdminUser>, ApiError> {
    let user = auth.admin_user(&id).await?;
    let change = AccountChange {
        disabled: body.disabled,
        roles: body.roles,
        email: body.email,
    };
    let user = auth
        .admin_update_user(&user, change, &actor, &origin)
        .await?;
    Ok(Json(admin_user(user)))
}

/// Deletes the account: its sessions end (revocations published), then it
/// goes with its sessions, tokens and throttle counter. The audit log
/// keeps its id.
#[utoipa::path(delete, path = "/admin/v1/users/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "The account's id (a UUID)")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "`invalid_request`: the id is not a UUID", body = ErrorBody),
        (status = 401, description = "`invalid_token`", body = ErrorBody, headers(("WWW-Authenticate" = String))),
        (status = 403, description = "`insufficient_scope`", body = ErrorBody, headers(("WWW-Authenticate" = String))),
        (status = 404, description = "`not_found`", body = ErrorBody),
        Unavailable,
    ))]
pub async fn delete_user(
    State(auth): State<AuthState>,
    RequestOrigin(origin): RequestOrigin,
    AdminCaller(actor): AdminCaller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let user = auth.admin_user(&id).await?;
    auth.admin_delete_user(&user, &actor, &origin).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The account's live sessions, oldest first (`current` is always false).
#[utoipa::path(get, path = "/admin/v1/users/{id}/sessions", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "The account's id (a UUID)")),
    responses(
        (status = 200, description = "Live sessions", body = SessionList),
        (status = 400, description = "`invalid_request`: the id is not a UUID", body = ErrorBody),
        (status = 401, description = "`invalid_token`", body = ErrorBody, headers(("WWW-Authenticate" = String))),
        (status = 403, description = "`insufficient_scope`", body = ErrorBody, headers(("WWW-Authenticate" = String))),
        (status = 404, description = "`not_found`", body = ErrorBody),
        Unavailable,
    ))]
pub async fn list_sessions(
    State(auth): State<AuthState>,
    AdminCaller(_): AdminCaller,
    Path(id): Path<String>,
) -> Result<Json<SessionList>, ApiError> {
    let user = auth.admin_user(&id).await?;
    let sessions = auth.admin_sessions(&user).await?;
    Ok(Json(SessionList {
        sessions: sessions.into_iter().map(session_item).collect(),
    }))
}

/// Ends every session of the account at once (revocations published).
#[utoipa::path(delete, path = "/admin/v1/users/{id}/sessions", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "The account's id (a UUID)")),
    responses(
        (status = 200, description = "How many sessions ended", body = EndedSessions),
        (status = 400, description = "`invalid_request`: the id is not a UUID", body = ErrorBody),
        (status = 401, description = "`invalid_token`", body = ErrorBody, headers(("WWW-Authenticate" = String))),
        (status = 403, description = "`insufficient_scope`", body = ErrorBody, headers(("WWW-Authenticate" = String))),
        (status = 404, description = "`not_found`", body = ErrorBody),
        Unavailable,
    ))]
pub async fn end_sessions(
    State(auth): State<AuthState>,
    RequestOrigin(origin): RequestOrigin,
    AdminCaller(actor): AdminCaller,
    Path(id): Path<String>,
) -> Result<Json<EndedSessions>, ApiError> {
    let user = auth.admin_user(&id).await?;
    let ended = auth.admin_end_sessions(&user, &actor, &origin).await?;
    Ok(Json(EndedSessions { ended }))
}

/// A one-time password-reset link for the account (30 minutes); issuing
/// one voids the account's older ones.
#[utoipa::path(post, path = "/admin/v1/users/{id}/password-reset", tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The account's id (a UUID)")),
    responses(
        (status = 200, description = "The link and when it stops working", body = LinkBody),
        (status = 400, description = "`invalid_request`: the id is not a UUID", body = ErrorBody),
        (status = 401, description = "`invalid_token`", body = ErrorBody, headers(("WWW-Authenticate" = String))),
        (status = 403, description = "`insufficient_scope`", body = ErrorBody, headers(("WWW-Authenticate" = String))),
        (status = 404, description = "`not_found`", body = ErrorBody),
        Unavailable,
    ))]
pub async fn reset_link(
    State(auth): State<AuthState>,
    RequestOrigin(origin): RequestOrigin,
    AdminCaller(actor): AdminCaller,
    Path(id): Path<String>,
) -> Result<Json<LinkBody>, ApiError> {
    let user = auth.admin_user(&id).await?;
    let link = auth.admin_reset_link(&user, &actor, &origin).await?;
    Ok(Json(LinkBody {
        link: link.link.expose_secret().to_owned(),
        expires_at: link.expires_at,
    }))
}

/// A single-use invite code for sign-up by invitation (`sign_up =
/// "invite"`), with an expiry (default 7 days) and the roles its account
/// starts with.
#[utoipa::path(post, path = "/admin/v1/invites", tag = "admin", request_body = CreateInvite,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The code (shown once) and its expiry", body = InviteBody),
        (status = 400, description = "`invalid_request`: `expires_in` out of range or a bad role", body = ErrorBody),
        (status = 401, description = "`invalid_token`", body = ErrorBody, headers(("WWW-Authenticate" = String))),
        (status = 403, description = "`insufficient_scope`", body = ErrorBody, headers(("WWW-Authenticate" = String))),
        TooLarge,
        NotJson,
        Unavailable,
    ))]
pub async fn create_invite(
    State(auth): State<AuthState>,
    RequestOrigin(origin): RequestOrigin,
    AdminCallerWithBody(actor, OptionalJsonBody(body)): AdminCallerWithBody<
        OptionalJsonBody<CreateInvite>,
    >,
) -> Result<impl IntoResponse, ApiError> {
    let invite = auth
        .create_invite(
            body.expires_in,
            body.roles.unwrap_or_default(),
            &actor,
            &origin,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(InviteBody {
            code: invite.code.expose_secret().to_owned(),
            expires_at: invite.expires_at,
            roles: invite.roles,
        }),
    ))
}
