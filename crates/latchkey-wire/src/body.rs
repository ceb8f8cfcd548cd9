//! The JSON bodies of Latchkey's HTTP API (`/v1`), requests and responses.
//! Field names are the public contract. No request body implements `Debug`:
//! several carry passwords or tokens. With the `openapi` feature each also
//! describes itself as a JSON schema for the server's OpenAPI document.

use serde::{Deserialize, Serialize};

use crate::clock::UnixTime;

/// `POST /v1/sign-up`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Deserialize)]
pub struct SignUp {
    pub username: String,
    pub password: String,
    /// An operator's invite code: required when sign-up is by invitation.
    #[serde(default)]
    pub invite: Option<String>,
    /// Optional; stored unverified, and a verification link is mailed to it.
    #[cfg_attr(feature = "openapi", schema(example = "ann@example.com"))]
    pub email: Option<String>,
}

/// `POST /v1/sign-in`: credentials, and optionally the client (app) signing
/// in with what it asks for. Without `client_id`, the default client.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Deserialize)]
pub struct SignIn {
    pub username: String,
    pub password: String,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub scope: Option<String>,
    pub audience: Option<String>,
    /// Where the refresh token goes; `body` when absent.
    pub token_delivery: Option<TokenDelivery>,
}

/// Where a token response puts the refresh token.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenDelivery {
    /// In the JSON body, as `refresh_token`.
    Body,
    /// In the `__Host-latchkey_refresh` cookie (HttpOnly, Secure,
    /// SameSite=Strict), out of reach of the page's scripts; the body
    /// carries no `refresh_token`.
    Cookie,
}

/// `POST /v1/tokens/refresh`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Deserialize)]
pub struct RefreshRequest {
    /// Absent: the `__Host-latchkey_refresh` cookie's (cookie delivery).
    pub refresh_token: Option<String>,
    /// The client the token was issued to; the default client when absent.
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    /// Narrower scope for the new access token.
    pub scope: Option<String>,
    /// Where the successor goes; by default where this one came from.
    pub token_delivery: Option<TokenDelivery>,
}

/// `POST /v1/tokens/revoke`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Deserialize)]
pub struct RevokeRequest {
    /// Absent: the `__Host-latchkey_refresh` cookie's.
    pub refresh_token: Option<String>,
}

/// `POST /v1/sign-out`; every field optional, so an empty body is allowed.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Deserialize, Default)]
pub struct SignOutBody {
    #[serde(default)]
    pub scope: SignOutScope,
}

/// Which sessions a sign-out ends.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignOutScope {
    /// The caller's session.
    #[default]
    Current,
    /// Every other session of the caller's.
    Others,
    All,
}

/// `POST /v1/password`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Deserialize)]
pub struct PasswordChange {
    pub current_password: String,
    pub new_password: String,
}

/// `POST /v1/password/forgot`: the account by `username` or by `email`
/// (exactly one).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Deserialize)]
pub struct ForgotPassword {
    pub username: Option<String>,
    #[cfg_attr(feature = "openapi", schema(example = "ann@example.com"))]
    pub email: Option<String>,
}

/// `POST /v1/password/reset`: the token of a reset link and the new
/// password.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Deserialize)]
pub struct ResetPassword {
    pub token: String,
    pub new_password: String,
}

/// `POST /v1/email`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Deserialize)]
pub struct SetEmail {
    #[cfg_attr(feature = "openapi", schema(example = "ann@example.com"))]
    pub email: String,
}

/// `POST /v1/email/verify`: the token of a verification link.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Deserialize)]
pub struct VerifyEmail {
    pub token: String,
}

/// The token response of RFC 6749 §5.1, plus `expires_at` (unix seconds)
/// so clients can refresh a little before expiry without their own clock
/// arithmetic. Sign-in, refresh and `/oauth/token` all answer it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Serialize)]
pub struct TokenBody {
    pub access_token: String,
    /// Always `Bearer`.
    #[cfg_attr(feature = "openapi", schema(example = "Bearer"))]
    pub token_type: &'static str,
    pub expires_in: i64,
    pub expires_at: UnixTime,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub scope: String,
    /// OpenID Connect ID token: an authorization code exchanged with scope
    /// `openid`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

/// An account, as sign-up (without roles) and `/v1/me` (with) show it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Serialize)]
pub struct Account<'a> {
    pub id: String,
    pub username: &'a str,
    pub created_at: UnixTime,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roles: Option<&'a [String]>,
    /// The account's email address, if it has one.
    pub email: Option<&'a str>,
    /// Whether its owner proved they read it (followed the verification
    /// link).
    pub email_verified: bool,
}

/// `GET /v1/sessions`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Serialize)]
pub struct SessionList {
    pub sessions: Vec<SessionItem>,
}

/// A live session as its owner sees it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Serialize)]
pub struct SessionItem {
    pub id: String,
    /// The app it was opened for; `latchkey:browser` for a sign-in on the
    /// hosted sign-in page (the browser session).
    pub client_id: String,
    pub created_at: UnixTime,
    pub last_refreshed_at: UnixTime,
    /// When it ends unless refreshed.
    pub expires_at: UnixTime,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// Whether the caller's access token belongs to it.
    pub current: bool,
}

/// No request body of ours nests more than a couple of levels.
pub const MAX_JSON_DEPTH: usize = 32;

/// Whether arrays and objects nest deeper than `max` anywhere in `json`
/// (brackets inside strings do not count). Linear, allocation-free: serde_json
/// limits the depth of what it deserialises, but skips unknown fields without
/// that limit, so a body is checked whole before it is parsed.
pub fn nesting_exceeds(json: &[u8], max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in json {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_is_measured_outside_strings() {
        assert!(!nesting_exceeds(br#"{"a":[1,{"b":2}]}"#, 3));
        assert!(nesting_exceeds(br#"{"a":[1,{"b":[2]}]}"#, 3));
        assert!(!nesting_exceeds(br#"{"a":"[[[[[[[[\"[[[["}"#, 1));
        assert!(nesting_exceeds("[".repeat(10_000).as_bytes(), 32));
    }

    #[test]
    fn sign_out_scope_is_lowercase_and_defaults_to_current() {
        let body: SignOutBody = serde_json::from_str("{}").expect("empty object");
        assert_eq!(body.scope, SignOutScope::Current);
        let body: SignOutBody = serde_json::from_str(r#"{"scope":"others"}"#).expect("others");
        assert_eq!(body.scope, SignOutScope::Others);
        assert!(serde_json::from_str::<SignOutBody>(r#"{"scope":"All"}"#).is_err());
    }
}
