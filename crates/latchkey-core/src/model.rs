//! The domain's records: accounts, sessions and signing keys, as the rules
//! in [`crate::service`] and [`crate::key_manager`] read and write them and
//! the stores keep them.

use uuid::Uuid;

use crate::clock::UnixTime;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: Uuid,
    /// As typed at sign-up (NFKC), for display.
    pub username: String,
    /// The normalised, unique form (see [`crate::username::Username`]).
    pub username_key: String,
    pub password_hash: String,
    pub roles: Vec<String>,
    pub created_at: UnixTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: Uuid,
    pub user_id: Uuid,
    pub client_id: String,
    /// `aud` of the session's access tokens.
    pub audience: String,
    /// Scopes granted at sign-in (space-separated); refreshes may narrow
    /// them for one access token, never widen.
    pub scope: String,
    /// The counter of the one refresh token that is current.
    pub counter: u64,
    pub created_at: UnixTime,
    /// Last rotation (or sign-in): drives the idle timeout and grace window.
    pub last_refreshed_at: UnixTime,
    /// Absolute end of the session, fixed at sign-in.
    pub expires_at: UnixTime,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub revoked_at: Option<UnixTime>,
    pub revoke_reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Published in JWKS, not yet signing.
    Next,
    /// Signing.
    Current,
    /// Published until every token it signed has expired.
    Retired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Next => "next",
            KeyState::Current => "current",
            KeyState::Retired => "retired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "next" => Some(KeyState::Next),
            "current" => Some(KeyState::Current),
            "retired" => Some(KeyState::Retired),
            _ => None,
        }
    }
}

/// A signing key as stored: the private key is sealed under a key derived
/// from the server secret, so the database alone does not reveal it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub kid: String,
    pub alg: String,
    pub state: KeyState,
    pub sealed_private_key: Vec<u8>,
    pub public_key: Vec<u8>,
    pub created_at: UnixTime,
    /// When it became current (started signing); `None` for a key that has
    /// not yet, and for keys activated before this was recorded.
    pub activated_at: Option<UnixTime>,
    /// When it stopped signing; it stays published until every token it
    /// signed has expired.
    pub retired_at: Option<UnixTime>,
}
