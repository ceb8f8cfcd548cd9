//! The domain's error type. The server maps each variant to an HTTP status
//! and an RFC 6749/6750 error code in exactly one place.

use latchkey_wire::TokenError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum AuthError {
    /// The request is well-formed but breaks a rule (password too short, ...).
    /// The message names the rule and is safe to show the client.
    #[error("{0}")]
    InvalidRequest(String),

    #[error("username is already taken")]
    UsernameTaken,

    /// Another account has this email address.
    /// An address another account already has.
    #[error("email address is already in use by another account")]
    EmailTaken,

    /// A valid token that lacks what the operation needs (RFC 6750 §3.1):
    /// a user's token, or a client's without the `latchkey:admin` scope,
    /// on the administration API.
    #[error("the access token lacks the scope this operation requires")]
    InsufficientScope,

    /// Sign-up is by invitation and the code is missing, unknown, used or
    /// expired: one answer for all of them.
    #[error("a valid invite code is required to sign up")]
    InvalidInvite,

    /// Sign-up is closed on this server.
    #[error("sign-up is disabled on this server")]
    SignUpDisabled,

    /// A password-reset or email-verification token that is unknown, used,
    /// expired or no longer applies: one answer for all of them.
    #[error("the link is invalid, expired or already used")]
    InvalidLinkToken,

    /// This account was sent a mail too recently.
    #[error("a mail was sent to this account recently; try again in {retry_after_seconds} s")]
    TooManyMails { retry_after_seconds: i64 },

    /// Unknown user or wrong password: one answer for both, on purpose.
    #[error("invalid username or password")]
    InvalidCredentials,

    /// Password change with a wrong current password. Not a 401: the
    /// bearer token was fine, and clients treat 401 as "sign in again".
    #[error("current password is incorrect")]
    WrongCurrentPassword,

    /// A refresh token that is unknown, forged, expired, revoked or replayed.
    /// Deliberately says no more than that.
    #[error("refresh token is invalid, expired or revoked")]
    InvalidGrant,

    /// An authorization code that is unknown, used, expired, or presented
    /// with another client, redirect URI or PKCE verifier than it was issued
    /// for. One answer for all of them.
    #[error("authorization code is invalid, expired, already used, or not for this client, redirect URI and code verifier")]
    InvalidCode,

    /// A bearer access token that failed verification; the server decides
    /// how much of the reason the client is told.
    #[error("access token rejected: {0}")]
    InvalidToken(TokenError),

    /// Client authentication failed (unknown client, wrong or missing
    /// secret, a secret from a public client).
    #[error("client authentication failed")]
    InvalidClient,

    /// The client may not use this grant type.
    #[error("client is not allowed to use this grant type")]
    UnauthorizedClient,

    #[error("requested scope is invalid or exceeds what was granted")]
    InvalidScope,

    /// RFC 8707: an audience the client may not ask for.
    #[error("requested audience is not allowed for this client")]
    InvalidTarget,

    /// Not there, or not the caller's: one answer for both (no enumeration).
    #[error("not found")]
    NotFound,

    /// A revocation-feed cursor that is unknown or older than what is kept.
    #[error("cursor expired; start again from a snapshot")]
    CursorExpired,

    /// Too many failed sign-ins for this account or from this address:
    /// refused without checking the password. Unknown and existing accounts
    /// are throttled alike.
    #[error("too many failed sign-ins; try again in {retry_after_seconds} s")]
    Throttled { retry_after_seconds: i64 },

    #[error("storage is temporarily unavailable")]
    Unavailable,

    /// The password-hashing queue is full: refused at once, without
    /// hashing, so a flood cannot queue up unbounded work.
    #[error("too many password checks in progress; try again shortly")]
    Overloaded,

    /// Something that should never happen; details go to the log only.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<crate::store::StoreError> for AuthError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::Unavailable(_) => AuthError::Unavailable,
            crate::store::StoreError::Backend(msg) => AuthError::Internal(msg),
            e @ crate::store::StoreError::SchemaTooNew { .. } => AuthError::Internal(e.to_string()),
        }
    }
}
