//! Why a token was refused, or why the verifier could not be set up.

use latchkey_core::access_token::TokenError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum VerifyError {
    // One variant per `TokenError`, so callers match on a single enum.
    #[error("malformed token")]
    Malformed,
    #[error("unsupported token header")]
    UnsupportedHeader,
    /// The token names a `kid` the cached JWKS does not hold (yet).
    #[error("unknown signing key")]
    UnknownKey,
    #[error("bad signature")]
    BadSignature,
    #[error("invalid claims")]
    InvalidClaims,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("wrong issuer")]
    WrongIssuer,
    #[error("wrong audience")]
    WrongAudience,

    /// The token's `sid` or `jti` is in the revocation set.
    #[error("token revoked")]
    Revoked,
    /// The revocation data is older than `max_staleness` (or, in
    /// fail-closed mode, the feed is failing): we cannot tell whether the
    /// token was revoked, so we refuse it until the feed answers again.
    #[error("revocation data is stale: the revocation feed cannot be reached")]
    FeedStale,
    /// No `Authorization: Bearer` header (only the axum integration
    /// produces this).
    #[error("missing bearer token")]
    MissingToken,

    /// The issuer's JWKS could not be fetched or understood.
    #[error("JWKS discovery failed: {0}")]
    Discovery(String),
    /// The revocation feed answered something outside its contract.
    #[error("revocation feed: {0}")]
    Feed(String),
    #[error("HTTP error: {0}")]
    Http(#[from] reqwest::Error),
    #[error("invalid verifier configuration: {0}")]
    Config(String),
}

impl From<TokenError> for VerifyError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Malformed => VerifyError::Malformed,
            TokenError::UnsupportedHeader => VerifyError::UnsupportedHeader,
            TokenError::UnknownKey => VerifyError::UnknownKey,
            TokenError::BadSignature => VerifyError::BadSignature,
            TokenError::InvalidClaims => VerifyError::InvalidClaims,
            TokenError::Expired => VerifyError::Expired,
            TokenError::NotYetValid => VerifyError::NotYetValid,
            TokenError::WrongIssuer => VerifyError::WrongIssuer,
            TokenError::WrongAudience => VerifyError::WrongAudience,
        }
    }
}

impl VerifyError {
    /// Whether the presented token itself was refused (the client should get
    /// a new one), as opposed to the verifier being unable to decide.
    pub fn is_token_error(&self) -> bool {
        !matches!(
            self,
            VerifyError::FeedStale
                | VerifyError::MissingToken
                | VerifyError::Discovery(_)
                | VerifyError::Feed(_)
                | VerifyError::Http(_)
                | VerifyError::Config(_)
        )
    }
}
