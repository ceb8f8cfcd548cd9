//! OpenID Connect beyond the authorization endpoint: UserInfo (Core §5.3),
//! RP-initiated logout (the `end_session_endpoint`), and the consents a
//! user gave third-party clients (`/v1/consents`).

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use latchkey_core::service::UserInfo;
use latchkey_core::AuthError;
use latchkey_wire::authorization::bearer_token;
use latchkey_wire::form::Form;
use serde::Serialize;

use super::authorize::redirect_with;
use super::hosted_pages::{self as pages, PageForm};
use super::openapi::Unavailable;
use super::{App, AuthState};
use crate::browser::{self, BROWSER_SESSION_COOKIE};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Caller, RequestOrigin};

/// The UserInfo answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct UserInfoBody {
    /// The user's id (the `sub` of their tokens).
    sub: String,
    /// With scope `profile`: the username.
    #[serde(skip_serializing_if = "Option::is_none")]
    preferred_username: Option<String>,
    /// With scope `email`, when the account has an address.
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email_verified: Option<bool>,
}

impl From<UserInfo> for UserInfoBody {
    fn from(u: UserInfo) -> Self {
        Self {
            sub: u.sub,
            preferred_username: u.preferred_username,
            email: u.email,
            email_verified: u.email_verified,
        }
    }
}

/// Claims about the user a bearer token (granted scope `openid`, any of
/// our audiences) speaks for.
#[utoipa::path(get, path = "/userinfo", tag = "openid", security(("bearer" = [])),
    responses(
        (status = 200, description = "The user's claims, by the token's scopes", body = UserInfoBody),
        (status = 401, description = "`invalid_token`", body = ErrorBody, headers(("WWW-Authenticate" = String))),
        (status = 403, description = "`insufficient_scope`: the token was not granted `openid`", body = ErrorBody, headers(("WWW-Authenticate" = String))),
        Unavailable,
    ))]
pub async fn userinfo(State(auth): State<AuthState>, headers: HeaderMap) -> Response {
    let answer = async {
        let token = bearer_token(&headers)?;
        Ok::<_, ApiError>(Json(UserInfoBody::from(auth.userinfo(token).await?)))
    };
    match answer.await {
        Ok(body) => body.into_response(),
        Err(ApiError::Auth(AuthError::InsufficientScope)) => (
            StatusCode::FORBIDDEN,
            [(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(
                    r#"Bearer realm="latchkey", error="insufficient_scope", scope="openid""#,
                ),
            )],
            Json(serde_json::json!({
                "error": "insufficient_scope",
                "error_description": "the access token was not granted the openid scope",
            })),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

/// The same, as OpenID Connect Core §5.3.1 allows.
#[utoipa::path(post, path = "/userinfo", tag = "openid", operation_id = "userinfo_post",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user's claims", body = UserInfoBody),
        (status = 401, description = "`invalid_token`", body = ErrorBody, headers(("WWW-Authenticate" = String))),
        (status = 403, description = "`insufficient_scope`", body = ErrorBody, headers(("WWW-Authenticate" = String))),
        Unavailable,
    ))]
pub async fn userinfo_post(auth: State<AuthState>, headers: HeaderMap) -> Response {
    userinfo(auth, headers).await
}

/// RP-initiated logout, `GET`: with a valid `id_token_hint` it signs out at
/// once; without one it asks first.
#[utoipa::path(get, path = "/oauth/logout", tag = "openid",
    params(
        ("id_token_hint" = Option<String>, Query, description = "An ID token we issued to the client (expired is fine)"),
        ("post_logout_redirect_uri" = Option<String>, Query, description = "Registered for the client"),
        ("client_id" = Option<String>, Query),
        ("state" = Option<String>, Query),
    ),
    responses(
        (status = 303, description = "Signed out: to `post_logout_redirect_uri` with `state`"),
        (status = 200, description = "Signed out, or asked to confirm (no hint)", content_type = "text/html"),
        (status = 400, description = "A page: bad hint or unregistered redirect URI", content_type = "text/html"),
    ))]
pub async fn logout_get(
    State(app): State<App>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    match Form::parse(query.unwrap_or_default().as_bytes()) {
        Ok(request) => logout(&app, &headers, &request, false).await,
        Err(e) => pages::problem(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

/// RP-initiated logout as a form post (also the confirmation's answer).
#[utoipa::path(post, path = "/oauth/logout", tag = "openid", operation_id = "logout_post",
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "The parameters of `GET /oauth/logout`; `confirm=yes` from our confirmation page"),
    responses(
        (status = 303, description = "Signed out: to `post_logout_redirect_uri`"),
        (status = 200, description = "Signed out, or asked to confirm", content_type = "text/html"),
        (status = 400, description = "A page: bad hint or unregistered redirect URI", content_type = "text/html"),
    ))]
pub async fn logout_post(
    State(app): State<App>,
    headers: HeaderMap,
    PageForm(request): PageForm,
) -> Response {
    let confirmed =
        request.get("confirm") == Some("yes") && app.browser_origins.is_same_origin_post(&headers);
    logout(&app, &headers, &request, confirmed).await
}

async fn logout(app: &App, headers: &HeaderMap, request: &Form, confirmed: bool) -> Response {
    let auth = &app.auth;
    let bad = |text: &str| pages::problem(StatusCode::BAD_REQUEST, text);
    let hint = match request.get("id_token_hint").map(|t| auth.id_token_hint(t)) {
        None => None,
        Some(Ok(claims)) => Some(claims),
        Some(Err(_)) => return bad("The id_token_hint is not an ID token of this service."),
    };
    let client_id = hint
        .as_ref()
        .map(|h| h.aud.as_str())
        .or(request.get("client_id"));
    if hint.is_some()
        && request
            .get("client_id")
            .is_some_and(|c| Some(c) != client_id)
    {
        return bad("client_id does not match the id_token_hint.");
    }
    let redirect = match request.get("post_logout_redirect_uri") {
        None => None,
        Some(uri) => {
            let registered = match client_id {
                Some(id) => auth
                    .known_client(id)
                    .await
                    .is_ok_and(|c| c.post_logout_redirect_uris.iter().any(|r| r == uri)),
                None => false,
            };
            if !registered {
                return bad("The post_logout_redirect_uri is not registered for this client.");
            }
            Some(uri)
        }
    };
    if hint.is_none() && !confirmed {
        return pages::confirm_sign_out(request);
    }
    let cookie = browser::cookie_value(headers, BROWSER_SESSION_COOKIE);
    if let Err(e) = auth.rp_logout(hint.as_ref(), cookie).await {
        tracing::warn!(error = %e, "logout failed");
        return pages::problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "The service is temporarily unavailable; try again shortly.",
        );
    }
    let mut response = match redirect {
        Some(uri) => {
            let state: Vec<(&str, &str)> = request
                .get("state")
                .map(|s| ("state", s))
                .into_iter()
                .collect();
            redirect_with(uri, &state)
        }
        None => pages::signed_out(),
    };
    response
        .headers_mut()
        .append(header::SET_COOKIE, browser::clear_session_cookie());
    response
}

/// A consent the caller gave a client.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ConsentItem {
    client_id: String,
    /// Consented scopes, space-separated.
    scope: String,
    granted_at: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ConsentList {
    consents: Vec<ConsentItem>,
}

/// The clients the caller consented to, and to what.
#[utoipa::path(get, path = "/v1/consents", tag = "sessions", security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's consents, by client id", body = ConsentList),
        (status = 401, description = "`invalid_token`", body = ErrorBody, headers(("WWW-Authenticate" = String))),
        Unavailable,
    ))]
pub async fn consents(
    State(auth): State<AuthState>,
    Caller(caller): Caller,
) -> Result<Json<ConsentList>, ApiError> {
    let consents = auth.consents(&caller).await?;
    Ok(Json(ConsentList {
        consents: consents
            .into_iter()
            .map(|c| ConsentItem {
                client_id: c.client_id,
                scope: c.scope,
                granted_at: c.granted_at,
            })
            .collect(),
    }))
}

/// Withdraws a consent; the caller's sessions of that client end with it.
#[utoipa::path(delete, path = "/v1/consents/{client_id}", tag = "sessions", security(("bearer" = [])),
    params(("client_id" = String, Path)),
    responses(
        (status = 204, description = "Withdrawn"),
        (status = 401, description = "`invalid_token`", body = ErrorBody, headers(("WWW-Authenticate" = String))),
        (status = 404, description = "`not_found`: no consent to that client", body = ErrorBody),
        Unavailable,
    ))]
pub async fn withdraw_consent(
    State(auth): State<AuthState>,
    RequestOrigin(origin): RequestOrigin,
    Caller(caller): Caller,
    Path(client_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    auth.withdraw_consent(&caller, &client_id, &origin).await?;
    Ok(StatusCode::NO_CONTENT)
}
