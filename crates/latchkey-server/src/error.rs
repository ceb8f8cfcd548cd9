//! The one place where errors become HTTP responses: RFC 6749/6750 error
//! codes in `{"error", "error_description"}`, `WWW-Authenticate` on 401.
//! Internal details go to the log, never to the client.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use latchkey_core::AuthError;
use latchkey_wire::authorization::BearerError;
use latchkey_wire::form::FormError;
use latchkey_wire::TokenError;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A domain error on Latchkey's own `/v1` API.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// A domain error on an RFC 6749/7009/7662 endpoint, where the RFCs fix
    /// the status codes (e.g. `invalid_grant` is 400 there).
    #[error(transparent)]
    OAuth(AuthError),
    /// No bearer token was presented at all (RFC 6750 §3.1: answered
    /// without an error code in the challenge).
    #[error("missing bearer token")]
    MissingToken,
    /// The request itself is malformed (bad JSON, wrong types, bad header).
    #[error("{0}")]
    BadRequest(String),
    #[error("grant_type is not supported (supported: authorization_code, refresh_token, client_credentials)")]
    UnsupportedGrantType,
    #[error("request body is larger than the limit")]
    PayloadTooLarge,
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("no such route")]
    NotFound,
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    /// `/readyz`: what is not ready, in words safe to show (never how the
    /// database is reached).
    #[error("not ready: {0}")]
    NotReady(&'static str),
    /// A request authenticated by the refresh cookie that another site
    /// could have made: not from a trusted origin, or not JSON.
    #[error("a request that uses the refresh cookie must come from this service's own or an allowed origin, as Content-Type: application/json")]
    CrossSiteRequest,
    /// This node's per-address request limit for the route was reached.
    #[error("too many requests from this address; try again in {retry_after_seconds} s")]
    RateLimited { retry_after_seconds: u64 },
}

/// The body of every error response (also a schema of the OpenAPI
/// document).
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    /// An RFC 6749/6750 error code, or one of ours (`not_found`,
    /// `username_taken`, `cursor_expired`, ...).
    #[schema(example = "invalid_request")]
    error: &'a str,
    /// What went wrong, for a developer to read.
    error_description: &'a str,
}

/// Error code of every 429 (throttled sign-in and per-address rate limits):
/// the client is going too fast and should wait `Retry-After` seconds. We
/// use RFC 8628's `slow_down` rather than `temporarily_unavailable`, which
/// clients read as "the server is down".
pub const SLOW_DOWN: &str = "slow_down";

const BEARER_REALM: &str = r#"Bearer realm="latchkey""#;
const BASIC_REALM: &str = r#"Basic realm="latchkey""#;

/// Status, error code and `WWW-Authenticate` challenge of a domain error.
fn classify(e: &AuthError, oauth: bool) -> (StatusCode, &'static str, Option<String>) {
    let bad = StatusCode::BAD_REQUEST;
    match e {
        AuthError::InvalidRequest(_) => (bad, "invalid_request", None),
        AuthError::UsernameTaken => (StatusCode::CONFLICT, "username_taken", None),
        AuthError::EmailTaken => (StatusCode::CONFLICT, "email_taken", None),
        // RFC 6750 §3.1: the token is good but not for this.
        AuthError::InsufficientScope => (
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            Some(format!(
                r#"{BEARER_REALM}, error="insufficient_scope", scope="{}""#,
                latchkey_core::service::administration::ADMIN_SCOPE
            )),
        ),
        AuthError::InvalidInvite => (StatusCode::FORBIDDEN, "invalid_invite", None),
        AuthError::SignUpDisabled => (StatusCode::FORBIDDEN, "sign_up_disabled", None),
        // A 400, not a 401: the link's token is no credential of a session,
        // and clients read 401 as "sign in again".
        AuthError::InvalidLinkToken => (bad, "invalid_grant", None),
        AuthError::TooManyMails { .. } => (StatusCode::TOO_MANY_REQUESTS, SLOW_DOWN, None),
        AuthError::WrongCurrentPassword => (bad, "invalid_grant", None),
        AuthError::NotFound => (StatusCode::NOT_FOUND, "not_found", None),
        AuthError::CursorExpired => (StatusCode::GONE, "cursor_expired", None),
        // RFC 6749 §5.2: 400 on the token endpoint; on /v1 a 401 tells the
        // app plainly to sign the user in again.
        // Only the token endpoint takes codes.
        AuthError::InvalidCode => (bad, "invalid_grant", None),
        AuthError::InvalidCredentials | AuthError::InvalidGrant if oauth => {
            (bad, "invalid_grant", None)
        }
        AuthError::InvalidCredentials | AuthError::InvalidGrant => (
            StatusCode::UNAUTHORIZED,
            "invalid_grant",
            Some(BEARER_REALM.to_owned()),
        ),
        AuthError::InvalidClient => (
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            Some(BASIC_REALM.to_owned()),
        ),
        AuthError::UnauthorizedClient => (bad, "unauthorized_client", None),
        AuthError::InvalidScope => (bad, "invalid_scope", None),
        AuthError::InvalidTarget => (bad, "invalid_target", None),
        AuthError::InvalidToken(reason) => {
            tracing::debug!(%reason, "bearer token rejected");
            (
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                Some(format!(
                    r#"{BEARER_REALM}, error="invalid_token", error_description="{}""#,
                    TokenError::public_description(*reason)
                )),
            )
        }
        // Throttled sign-in: the same answer whether or not the account
        // exists, and the password was not checked.
        AuthError::Throttled { .. } => (StatusCode::TOO_MANY_REQUESTS, SLOW_DOWN, None),
        AuthError::Unavailable | AuthError::Overloaded => (
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            None,
        ),
        AuthError::Internal(detail) => {
            tracing::error!(%detail, "internal error");
            (StatusCode::INTERNAL_SERVER_ERROR, "server_error", None)
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, challenge) = match &self {
            ApiError::Auth(e) => classify(e, false),
            ApiError::OAuth(e) => classify(e, true),
            // RFC 6750 §3.1: no error code when no credentials were sent.
            ApiError::MissingToken => (
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                Some(BEARER_REALM.to_owned()),
            ),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request", None),
            ApiError::UnsupportedGrantType => {
                (StatusCode::BAD_REQUEST, "unsupported_grant_type", None)
            }
            ApiError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "invalid_request", None),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "invalid_request", None)
            }
            ApiError::CrossSiteRequest => (StatusCode::FORBIDDEN, "invalid_request", None),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found", None),
            ApiError::MethodNotAllowed => {
                (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", None)
            }
            ApiError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, SLOW_DOWN, None),
            ApiError::NotReady(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                None,
            ),
        };
        let retry_after = match &self {
            ApiError::Auth(
                AuthError::Throttled {
                    retry_after_seconds,
                }
                | AuthError::TooManyMails {
                    retry_after_seconds,
                },
            )
            | ApiError::OAuth(AuthError::Throttled {
                retry_after_seconds,
            }) => Some(u64::try_from(*retry_after_seconds).unwrap_or(1).max(1)),
            ApiError::RateLimited {
                retry_after_seconds,
            } => Some((*retry_after_seconds).max(1)),
            _ => None,
        };
        let description = match &self {
            ApiError::Auth(AuthError::InvalidToken(reason))
            | ApiError::OAuth(AuthError::InvalidToken(reason)) => {
                TokenError::public_description(*reason).to_owned()
            }
            ApiError::Auth(AuthError::Internal(_)) | ApiError::OAuth(AuthError::Internal(_)) => {
                "internal error".to_owned()
            }
            other => other.to_string(),
        };
        let mut response = (
            status,
            Json(ErrorBody {
                error: code,
                error_description: &description,
            }),
        )
            .into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if let Some(value) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let Some(seconds) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<BearerError> for ApiError {
    fn from(e: BearerError) -> Self {
        match e {
            BearerError::Missing => ApiError::MissingToken,
            BearerError::Malformed => AuthError::InvalidToken(TokenError::Malformed).into(),
        }
    }
}

impl From<FormError> for ApiError {
    fn from(e: FormError) -> Self {
        ApiError::BadRequest(e.to_string())
    }
}
