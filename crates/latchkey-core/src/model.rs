//! The domain's records: accounts, sessions and signing keys, as the rules
//! in [`crate::service`] and [`crate::key_manager`] read and write them and
//! the stores keep them.

use uuid::Uuid;

use crate::clock::UnixTime;
use crate::email::Email;

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
    /// Unique among accounts by its key.
    pub email: Option<Email>,
    /// When the owner proved they read `email`; cleared when it changes.
    pub email_verified_at: Option<UnixTime>,
    /// A disabled account cannot sign in and has no live session.
    pub disabled_at: Option<UnixTime>,
}

/// What a one-time account token ([`crate::account_token`]) lets its
/// bearer do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountTokenPurpose {
    /// Set a new password (a reset link, or an invitation to choose one).
    PasswordReset,
    /// Prove that the account's owner reads the address in `email`.
    EmailVerification,
}

impl AccountTokenPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PasswordReset => "password_reset",
            Self::EmailVerification => "email_verification",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "password_reset" => Some(Self::PasswordReset),
            "email_verification" => Some(Self::EmailVerification),
            _ => None,
        }
    }
}

/// A one-time account token as stored: only its hash, never the token.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredAccountToken {
    /// SHA-256 of the token as sent.
    pub token_hash: [u8; 32],
    pub user_id: Uuid,
    pub purpose: AccountTokenPurpose,
    /// The address an email verification proves (the token is void if the
    /// account's address changed since).
    pub email: Option<String>,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
}

impl std::fmt::Debug for StoredAccountToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredAccountToken")
            .field("user_id", &self.user_id)
            .field("purpose", &self.purpose)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// What an outbox row asks the mail worker to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxKind {
    /// Send the message in the row.
    Mail,
    /// Someone asked for a password reset of the account named by
    /// `recipient` (a username or an address): the worker finds out whether
    /// a reset link is to be mailed, so the request itself does the same
    /// work whether or not the account exists.
    PasswordResetRequest,
}

impl OutboxKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mail => "mail",
            Self::PasswordResetRequest => "password_reset_request",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "mail" => Some(Self::Mail),
            "password_reset_request" => Some(Self::PasswordResetRequest),
            _ => None,
        }
    }
}

/// A row of the mail outbox. A message's bodies hold the link it sends,
/// a secret: the row is deleted once the message is sent or given up.
#[derive(Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    pub id: Uuid,
    pub kind: OutboxKind,
    /// The address to send to ([`OutboxKind::Mail`]), or the account a
    /// reset was asked for (`username:<name>` or `email:<address>`).
    pub recipient: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
    pub created_at: UnixTime,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Due from then on (while claimed: when the claim lapses).
    pub next_attempt_at: UnixTime,
}

impl std::fmt::Debug for OutboxMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxMessage")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("attempts", &self.attempts)
            .field("next_attempt_at", &self.next_attempt_at)
            .finish_non_exhaustive()
    }
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

/// What a signing key signs. Each purpose is its own lineage (next →
/// current → retired → removed), rotated by its own compare-and-set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyPurpose {
    /// Access tokens, in the server's configured algorithm.
    Access,
    /// OpenID Connect ID tokens, always RS256 (the one algorithm every
    /// relying party must accept); created on first need.
    IdToken,
}

impl KeyPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyPurpose::Access => "access",
            KeyPurpose::IdToken => "id_token",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "access" => Some(KeyPurpose::Access),
            "id_token" => Some(KeyPurpose::IdToken),
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
    /// The lineage it belongs to.
    pub purpose: KeyPurpose,
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

/// An invite code as stored: only its hash. Taking it (as a sign-up
/// creates its account) deletes it, so it is used once.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredInvite {
    /// SHA-256 of the code as given out.
    pub code_hash: [u8; 32],
    /// Roles the invited account starts with.
    pub roles: Vec<String>,
    /// Who issued it (`client:<id>` or `cli`).
    pub created_by: String,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
}

impl std::fmt::Debug for StoredInvite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredInvite")
            .field("roles", &self.roles)
            .field("created_by", &self.created_by)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Which accounts a page of the account list holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserQuery {
    /// Accounts whose username key or email key contains this (already in
    /// [`crate::username::search_key`] form); empty: all.
    pub contains: String,
    /// Only accounts whose username key sorts after this one (the last of
    /// the previous page); `None`: from the start.
    pub after: Option<String>,
    /// At most this many.
    pub limit: usize,
}

/// An authorization code as stored (RFC 6749 §4.1): only its hash. It is
/// kept a while after it is redeemed, so a second use is recognised and
/// the tokens of the first can be revoked (§4.1.2).
#[derive(Clone, PartialEq, Eq)]
pub struct StoredAuthorizationCode {
    /// SHA-256 of the code as sent.
    pub code_hash: [u8; 32],
    pub client_id: String,
    /// The redirect URI of the request; the token request must repeat it.
    pub redirect_uri: String,
    /// PKCE S256 challenge: base64url SHA-256 of the client's verifier.
    pub code_challenge: String,
    pub user_id: Uuid,
    /// The session its tokens open, chosen when the code is issued so that
    /// a second use of the code can end it.
    pub session_id: Uuid,
    /// Granted scopes (space-separated) and the access tokens' audience.
    pub scope: String,
    pub audience: String,
    /// The client's `nonce`, repeated in the ID token.
    pub nonce: Option<String>,
    /// When the user last typed their password (OpenID `auth_time`).
    pub auth_time: UnixTime,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
    /// When it was exchanged; `None` until then.
    pub redeemed_at: Option<UnixTime>,
}

impl std::fmt::Debug for StoredAuthorizationCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredAuthorizationCode")
            .field("client_id", &self.client_id)
            .field("user_id", &self.user_id)
            .field("session_id", &self.session_id)
            .field("expires_at", &self.expires_at)
            .field("redeemed_at", &self.redeemed_at)
            .finish_non_exhaustive()
    }
}

/// What presenting an authorization code found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeRedemption {
    /// Not redeemed before: it is now, by this request alone.
    First(StoredAuthorizationCode),
    /// Redeemed already: a replay (or a stolen copy).
    Again(StoredAuthorizationCode),
    Unknown,
}

/// A user's consent to what a third-party client may ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    pub user_id: Uuid,
    pub client_id: String,
    /// Consented scopes, space-separated; a later request for more asks again.
    pub scope: String,
    pub granted_at: UnixTime,
}
