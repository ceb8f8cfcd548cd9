//! The authority: every account and token operation, as the HTTP handlers
//! call them. Each method reads like the rule it implements; persistence goes
//! through the capability traits of [`crate::store`], time through
//! [`Clock`], hashing through [`PasswordHasher`].
//!
//! [`Authority`] is the one facade; its behaviour lives in one file per
//! capability:
//!
//! | file | what it does |
//! |---|---|
//! | `accounts` | sign-up, the caller's account, password change |
//! | `sign_in` | the password grant: a new session, within the session cap |
//! | `clients` | which client is asking; the client-credentials grant |
//! | `refresh` | refresh-token rotation, grace window, reuse detection |
//! | `tokens` | minting access tokens, verifying them, whose they are |
//! | `sessions` | listing and ending sessions, signing out |
//! | `revoke` | RFC 7009 revocation of either kind of token |
//! | `feed` | the revocation feed, and this node's copy of the set |
//! | `introspection` | RFC 7662 introspection |
//! | `password_attempts` | password guesses under the throttle |
//! | `recovery` | one-time links to set a new password, mailed on request |
//! | `account_email` | the account's address and its verification |
//! | `outbox` | the mail outbox the server's mail worker empties |
//! | `administration` | operators' account management (API and CLI) |
//! | `invites` | sign-up modes and invite codes |
//! | `browser_session` | the hosted sign-in page's session and its cookie |
//! | `authorization` | the authorization-code flow: codes, PKCE, consent |
//! | `openid` | ID tokens, userinfo, RP-initiated logout |
//! | `audit_log` | recording audit events |
//! | `upkeep` | pruning and other periodic work |
//!
//! Each has its tests, against the real SQLite store and without HTTP, in
//! the module of the same name under `tests/capabilities/`.

use std::collections::HashMap;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, OnceLock, RwLock};

use crate::access_token::{self, AccessClaims, Expectations};
use crate::audit::AttemptTally;
use crate::client::Client;
use crate::clock::{Clock, UnixTime};
use crate::key_manager::KeyManager;
use crate::keys::KeyRing;
use crate::mail::{MailAllowance, MailTemplates};
use crate::model::{Session, User};
use crate::password::PasswordHasher;
use crate::refresh_token::RefreshTokenCodec;
use crate::revocation::RevocationSet;
use crate::rotation::RefreshRules;
use crate::secret::ServerSecret;
use crate::store::Store;
use crate::throttle::ThrottlePolicy;
use crate::AuthError;

mod account_email;
mod accounts;
pub mod administration;
mod audit_log;
mod authorization;
mod browser_session;
mod clients;
mod feed;
mod introspection;
pub mod invites;
mod openid;
mod outbox;
mod password_attempts;
mod recovery;
mod refresh;
mod revoke;
mod sessions;
mod sign_in;
mod tokens;
mod upkeep;

pub use account_email::{VERIFY_EMAIL_PATH, VERIFY_LINK_SECONDS};
pub use authorization::{
    is_s256_challenge, AuthorizationGrant, CodeRequest, CODE_LIFETIME_SECONDS,
};
pub use browser_session::{BrowserSignIn, BROWSER_CLIENT_ID};
pub use feed::FEED_PAGE_LIMIT;
pub use invites::SignUpMode;
pub use openid::{IdClaims, UserInfo, OPENID_SCOPES};
pub use outbox::OUTBOX_LEASE_SECONDS;
pub use recovery::{ForgotBy, RESET_LINK_SECONDS, RESET_PASSWORD_PATH};

/// Token and session rules, all configurable.
#[derive(Debug, Clone)]
pub struct Policy {
    /// `iss` of every access token; also what verifiers are told.
    pub issuer: String,
    /// Base of the links people follow (password reset, email
    /// verification); `None`: the issuer.
    pub public_url: Option<String>,
    /// `aud` of access tokens until clients choose their own.
    pub audience: String,
    /// `client_id` of access tokens until clients are registered.
    pub client_id: String,
    pub access_ttl_seconds: i64,
    pub refresh: RefreshRules,
    /// Absolute session lifetime, from sign-in.
    pub session_lifetime_seconds: i64,
    /// How long the hosted sign-in page's browser session lets a person
    /// through without their password.
    pub browser_session_seconds: i64,
    /// Clock skew tolerated when verifying `exp`/`nbf`.
    pub leeway_seconds: i64,
    /// Longest access-token lifetime any client may have; `None`: the
    /// default `access_ttl_seconds`. Revocation entries live this long.
    pub max_access_ttl_seconds: Option<i64>,
    /// Algorithm of newly generated signing keys; changing it takes effect
    /// through rotation (see [`crate::key_manager`]).
    pub signing_algorithm: access_token::Algorithm,
    /// Password attempts per account and per address (see
    /// [`crate::throttle`]).
    pub throttle: ThrottlePolicy,
    /// Live sessions one user may have; a sign-in beyond it ends the least
    /// recently used one.
    pub max_sessions_per_user: usize,
    /// Audit records older than this are pruned.
    pub audit_retention_seconds: i64,
    /// Who may sign up.
    pub sign_up: SignUpMode,
    /// Whether mail can be sent (SMTP is configured): without it nothing is
    /// put in the outbox and recovery links are not mailed.
    pub mail_enabled: bool,
    /// The mails' templates.
    pub mail_templates: MailTemplates,
}

impl Policy {
    /// Defaults: 10 min access tokens, 10 s grace, 14 days idle, 90 days
    /// absolute, 30 s leeway.
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            public_url: None,
            audience: "latchkey".into(),
            client_id: "default".into(),
            access_ttl_seconds: 600,
            refresh: RefreshRules {
                grace_seconds: 10,
                idle_timeout_seconds: 14 * 24 * 3600,
            },
            session_lifetime_seconds: 90 * 24 * 3600,
            browser_session_seconds: 12 * 3600,
            leeway_seconds: 30,
            max_access_ttl_seconds: None,
            signing_algorithm: access_token::Algorithm::EdDsa,
            throttle: ThrottlePolicy::default(),
            max_sessions_per_user: 50,
            audit_retention_seconds: 90 * 24 * 3600,
            sign_up: SignUpMode::Open,
            mail_enabled: false,
            mail_templates: MailTemplates::default(),
        }
    }

    pub fn public_url(&self) -> &str {
        self.public_url.as_deref().unwrap_or(&self.issuer)
    }

    pub fn max_access_ttl(&self) -> i64 {
        self.max_access_ttl_seconds
            .unwrap_or(self.access_ttl_seconds)
            .max(self.access_ttl_seconds)
    }

    /// Until this long after a revocation, some access token it affects may
    /// still verify; after it, the entry can go.
    fn revocation_lifetime(&self) -> i64 {
        self.max_access_ttl() + self.leeway_seconds
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenResponse {
    pub access_token: String,
    pub expires_in: i64,
    pub expires_at: UnixTime,
    /// None for client-credentials tokens.
    pub refresh_token: Option<String>,
    /// When the refresh token's session ends however it is used (its
    /// absolute lifetime); None without a refresh token.
    pub session_expires_at: Option<UnixTime>,
    /// Granted scopes, space-separated; empty for none.
    pub scope: String,
    /// The OpenID Connect ID token, for a code exchanged with scope `openid`.
    pub id_token: Option<String>,
}

/// What a client asks for besides the grant itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrantRequest<'a> {
    pub scope: Option<&'a str>,
    pub audience: Option<&'a str>,
}

/// RFC 7662's answer, before it becomes JSON.
#[derive(Debug, Clone)]
pub enum Introspection {
    Inactive,
    Access(AccessClaims),
    Refresh {
        session: Session,
        user: User,
        /// When it stops working unless used: idle or absolute expiry.
        expires_at: UnixTime,
    },
}

/// Where a sign-in came from, recorded on the session.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// The network per-address limits count `ip` under (its /64 for IPv6
    /// by default), so one holder of many addresses is one client.
    pub network: Option<String>,
    /// The request's id (`x-request-id`), recorded in its audit events.
    pub request_id: Option<String>,
}

/// Which sessions `sign_out` ends: the request body's own enum.
pub use latchkey_wire::body::SignOutScope;

/// A live session as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionView {
    pub session: Session,
    /// When it ends unless refreshed: the earlier of idle and absolute expiry.
    pub expires_at: UnixTime,
    /// Whether the caller's access token belongs to it.
    pub current: bool,
}

/// What [`Authority::open`] had to create, for the start-up log.
#[derive(Debug, Default)]
pub struct Startup {
    /// Kids of the signing keys created (current and/or next).
    pub created_signing_keys: Vec<String>,
    pub revocations_loaded: usize,
}

pub struct Authority {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    hasher: Arc<dyn PasswordHasher>,
    refresh_codec: RefreshTokenCodec,
    /// Browser session cookies: the same construction, its own key.
    browser_codec: RefreshTokenCodec,
    keys: KeyManager,
    revocations: RevocationSet,
    /// Feed cursor up to which `revocations` has caught up with the store.
    revocations_cursor: AtomicI64,
    revocation_listener: OnceLock<Box<dyn Fn() + Send + Sync>>,
    /// Registered clients by id with when they were read: a refresh should
    /// not pay a database read for data that changes a few times a year.
    clients: RwLock<HashMap<String, (Client, UnixTime)>>,
    expectations: Expectations,
    /// Throttled attempts not yet in the audit log (aggregated per minute).
    throttled_attempts: AttemptTally,
    /// Mails sent per account lately (see [`MailAllowance`]).
    mail_allowance: MailAllowance,
    /// Told when something was put in the outbox (wakes the mail worker).
    outbox_listener: OnceLock<Box<dyn Fn() + Send + Sync>>,
    policy: Policy,
}

impl Authority {
    /// Loads keys and the revocation set, creating a signing key on first
    /// start.
    pub async fn open(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        hasher: Arc<dyn PasswordHasher>,
        secret: &ServerSecret,
        policy: Policy,
    ) -> Result<(Self, Startup), AuthError> {
        let mut startup = Startup::default();
        // A retired key stays published while any token it signed may
        // still verify.
        let (keys, created) = KeyManager::open(
            store.clone(),
            clock.clone(),
            secret,
            policy.signing_algorithm,
            policy.max_access_ttl() + policy.leeway_seconds,
        )
        .await?;
        startup.created_signing_keys = created;

        let revocations = RevocationSet::default();
        let (cursor, _) = feed::read_snapshot(&*store, clock.now(), &revocations).await?;
        startup.revocations_loaded = revocations.len();

        let authority = Self {
            store,
            clock,
            hasher,
            refresh_codec: RefreshTokenCodec::new(secret)?,
            browser_codec: RefreshTokenCodec::browser_sessions(secret)?,
            keys,
            revocations,
            revocations_cursor: AtomicI64::new(cursor),
            revocation_listener: OnceLock::new(),
            clients: RwLock::default(),
            expectations: Expectations {
                issuer: policy.issuer.clone(),
                // Checked per use: our own API wants our audience, while
                // introspection and revocation take tokens minted for any.
                audience: None,
                leeway: policy.leeway_seconds,
            },
            throttled_attempts: AttemptTally::default(),
            mail_allowance: MailAllowance::default(),
            outbox_listener: OnceLock::new(),
            policy,
        };
        Ok((authority, startup))
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn jwks(&self) -> serde_json::Value {
        self.key_ring().jwks.clone()
    }

    fn key_ring(&self) -> Arc<KeyRing> {
        self.keys.ring()
    }

    /// The signing keys: reload, rotation, scheduled maintenance.
    pub fn keys(&self) -> &KeyManager {
        &self.keys
    }
}
