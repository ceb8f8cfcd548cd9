//! Why a token was refused, or why the verifier could not be set up.

pub use latchkey_wire::TokenError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum VerifyError {
    /// The presented token itself was refused, for the same typed reason
    /// the issuer uses ([`TokenError::Revoked`] when its `sid` or `jti` is
    /// in the revocation set; [`TokenError::UnknownKey`] when its `kid` is
    /// not in the cached JWKS, yet).
    #[error(transparent)]
    Token(#[from] TokenError),

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

impl VerifyError {
    /// Whether the presented token itself was refused (the client should get
    /// a new one), as opposed to the verifier being unable to decide.
    pub fn is_token_error(&self) -> bool {
        matches!(self, VerifyError::Token(_))
    }

    /// The reason the token was refused, if it was.
    pub fn token_error(&self) -> Option<TokenError> {
        match self {
            VerifyError::Token(reason) => Some(*reason),
            _ => None,
        }
    }
}
