//! The authority: every account and token operation, as the HTTP handlers
//! call them. Each method reads like the rule it implements; persistence goes
//! through [`Store`], time through [`Clock`], hashing through
//! [`PasswordHasher`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use uuid::Uuid;

use crate::access_token::{self, AccessClaims, Audience, Expectations, TokenError};
use crate::audit::{AttemptTally, AuditEvent, AuditKind, Outcome};
use crate::client::{parse_scope, scope_within, Client, ClientKind};
use crate::clock::{Clock, UnixTime};
use crate::key_manager::KeyManager;
use crate::keys::KeyRing;
use crate::password::{Password, PasswordCheck, PasswordHasher};
use crate::refresh_token::RefreshTokenCodec;
use crate::revocation::RevocationSet;
use crate::rotation::{decide, RefreshDecision, RefreshRules};
use crate::secret::ServerSecret;
use crate::store::{
    FeedPage, FeedRead, PruneBefore, Revocation, RevocationKind, Session, Store, User,
};
use crate::throttle::{self, ThrottlePolicy};
use crate::username::Username;
use crate::AuthError;

mod introspection;
mod password_attempts;

/// Token and session rules, all configurable.
#[derive(Debug, Clone)]
pub struct Policy {
    /// `iss` of every access token; also what verifiers are told.
    pub issuer: String,
    /// `aud` of access tokens until clients choose their own.
    pub audience: String,
    /// `client_id` of access tokens until clients are registered.
    pub client_id: String,
    pub access_ttl_seconds: i64,
    pub refresh: RefreshRules,
    /// Absolute session lifetime, from sign-in.
    pub session_lifetime_seconds: i64,
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
}

impl Policy {
    /// Defaults: 10 min access tokens, 10 s grace, 14 days idle, 90 days
    /// absolute, 30 s leeway.
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: "latchkey".into(),
            client_id: "default".into(),
            access_ttl_seconds: 600,
            refresh: RefreshRules {
                grace_seconds: 10,
                idle_timeout_seconds: 14 * 24 * 3600,
            },
            session_lifetime_seconds: 90 * 24 * 3600,
            leeway_seconds: 30,
            max_access_ttl_seconds: None,
            signing_algorithm: access_token::Algorithm::EdDsa,
            throttle: ThrottlePolicy::default(),
            max_sessions_per_user: 50,
            audit_retention_seconds: 90 * 24 * 3600,
        }
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
    /// Granted scopes, space-separated; empty for none.
    pub scope: String,
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
    policy: Policy,
}

const MAX_ROTATION_ATTEMPTS: usize = 3;
/// How long a node trusts its copy of a client: deleted clients and rotated
/// secrets reach every node within this.
const CLIENT_CACHE_SECONDS: i64 = 5;
/// Most revocation-feed entries in one page.
pub const FEED_PAGE_LIMIT: usize = 1000;
/// Most feed pages one `sync_revocations` call reads.
const SYNC_MAX_PAGES: usize = 16;
/// Most rows one pruning pass deletes per table.
const PRUNE_BATCH: usize = 500;
/// The audit log grows fastest; a pass a minute must outpace it.
const AUDIT_PRUNE_BATCH: usize = 5_000;

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
        let (cursor, _) = read_snapshot(&*store, clock.now(), &revocations).await?;
        startup.revocations_loaded = revocations.len();

        let authority = Self {
            store,
            clock,
            hasher,
            refresh_codec: RefreshTokenCodec::new(secret)?,
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

    pub async fn sign_up(
        &self,
        username: &str,
        password: &str,
        from: &Origin,
    ) -> Result<User, AuthError> {
        let result = self.create_account(username, password).await;
        let (outcome, user_id) = match &result {
            Ok(user) => (Outcome::Success, Some(user.id)),
            Err(_) => (Outcome::Failure, None),
        };
        self.audit(AuditKind::SignUp, outcome, user_id, None, from)
            .await;
        result
    }

    async fn create_account(&self, username: &str, password: &str) -> Result<User, AuthError> {
        let name = Username::parse(username)?;
        let password = Password::new_for_account(password)?;
        let user = User {
            id: Uuid::new_v4(),
            username: name.display,
            username_key: name.key,
            password_hash: self.hasher.hash(password).await?,
            roles: Vec::new(),
            created_at: self.clock.now(),
        };
        if !self.store.insert_user(&user).await? {
            return Err(AuthError::UsernameTaken);
        }
        tracing::info!(user_id = %user.id, "account created");
        Ok(user)
    }

    /// The client a request names (the default client when it names none),
    /// authenticated: a confidential client must present its secret.
    pub async fn client(
        &self,
        client_id: Option<&str>,
        secret: Option<&str>,
    ) -> Result<Client, AuthError> {
        let id = client_id.unwrap_or(&self.policy.client_id);
        let now = self.clock.now();
        let cached = self
            .clients
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .filter(|(_, fetched)| now - fetched < CLIENT_CACHE_SECONDS)
            .map(|(client, _)| client.clone());
        let client = match cached {
            Some(c) => c,
            None => {
                let client = match self.store.client(id).await? {
                    Some(c) => c,
                    None if id == self.policy.client_id => Client::default_public(id),
                    // Unknown ids are not cached: a flood of them must not
                    // grow memory.
                    None => return Err(AuthError::InvalidClient),
                };
                self.clients
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id.to_owned(), (client.clone(), now));
                client
            }
        };
        client.authenticate(secret)?;
        Ok(client)
    }

    /// Unknown user, invalid username and wrong password all cost one
    /// Argon2 verification and end in the same error. The attempt is counted
    /// against the account and the address before the password is checked.
    pub async fn sign_in(
        &self,
        username: &str,
        password: &str,
        client: &Client,
        request: &GrantRequest<'_>,
        from: Origin,
    ) -> Result<TokenResponse, AuthError> {
        let grant = client.grant(request.scope, request.audience, &self.policy.audience)?;
        let password = Password::for_check(password)?;
        let user = match Username::parse(username) {
            Ok(name) => self.store.user_by_key(&name.key).await?,
            Err(_) => None,
        };
        let attempt = self
            .admit_attempt(throttle::account_key(username), user.as_ref(), true, &from)
            .await?;
        let check = self
            .hasher
            .verify(
                password.clone(),
                user.as_ref().map(|u| u.password_hash.clone()),
            )
            .await?;
        let (user, needs_rehash) = match (user, check) {
            (Some(u), PasswordCheck::Match { needs_rehash }) => (u, needs_rehash),
            (user, _) => {
                let user_id = user.map(|u| u.id);
                self.audit(AuditKind::SignIn, Outcome::Failure, user_id, None, &from)
                    .await;
                self.attempt_failed(attempt.as_ref(), user_id, &from).await;
                return Err(AuthError::InvalidCredentials);
            }
        };
        self.attempt_succeeded(attempt).await?;
        if needs_rehash {
            let phc = self.hasher.hash(password).await?;
            self.store.set_password_hash(user.id, &phc).await?;
        }

        let now = self.clock.now();
        let lifetime = client
            .session_lifetime_seconds
            .unwrap_or(self.policy.session_lifetime_seconds);
        let session = Session {
            id: Uuid::new_v4(),
            user_id: user.id,
            client_id: client.client_id.clone(),
            audience: grant.audience,
            scope: grant.scope,
            counter: 0,
            created_at: now,
            last_refreshed_at: now,
            expires_at: now.saturating_add(lifetime),
            user_agent: from.user_agent.clone(),
            ip: from.ip.clone(),
            revoked_at: None,
            revoke_reason: None,
        };
        self.store.insert_session(&session).await?;
        self.audit(
            AuditKind::SignIn,
            Outcome::Success,
            Some(user.id),
            Some(session.id),
            &from,
        )
        .await;
        self.end_sessions_beyond_limit(user.id, &from).await?;
        Ok(self.issue(
            &session,
            &user,
            client,
            session.counter,
            &session.scope,
            now,
        ))
    }

    /// Ends the user's least recently used sessions beyond
    /// `max_sessions_per_user`, so one account cannot pile up sessions
    /// without end.
    async fn end_sessions_beyond_limit(
        &self,
        user_id: Uuid,
        from: &Origin,
    ) -> Result<(), AuthError> {
        let now = self.clock.now();
        let expires_at = now.saturating_add(self.policy.revocation_lifetime());
        let ended = self
            .store
            .revoke_sessions_beyond(
                user_id,
                self.policy.max_sessions_per_user,
                now,
                "session_limit",
                expires_at,
            )
            .await?;
        self.publish_session_revocations(&ended, expires_at);
        for id in ended {
            tracing::info!(%user_id, session_id = %id, "session limit reached; least recently used session ended");
            self.audit(
                AuditKind::SessionEvicted,
                Outcome::Success,
                Some(user_id),
                Some(id),
                from,
            )
            .await;
        }
        Ok(())
    }

    /// Rotates a refresh token; see [`crate::rotation`] for the rules. The
    /// token must be presented by the client it was issued to; `scope` may
    /// narrow the new access token's scope, never widen it.
    pub async fn refresh(
        &self,
        refresh_token: &str,
        client: &Client,
        scope: Option<&str>,
        from: &Origin,
    ) -> Result<TokenResponse, AuthError> {
        let Some(presented) = self.refresh_codec.decode(refresh_token) else {
            self.audit(AuditKind::Refresh, Outcome::Failure, None, None, from)
                .await;
            return Err(AuthError::InvalidGrant);
        };
        let mut session_seen = None;
        let result = self
            .rotate(&presented, client, scope, from, &mut session_seen)
            .await;
        match &result {
            Ok(_) => {}
            // Recorded as such where it was detected.
            Err(AuthError::InvalidGrant) if session_seen.is_some_and(|(_, reuse)| reuse) => {}
            Err(_) => {
                let user = session_seen.map(|(user, _)| user);
                self.audit(
                    AuditKind::Refresh,
                    Outcome::Failure,
                    user,
                    Some(presented.session_id),
                    from,
                )
                .await;
            }
        }
        result
    }

    /// The rotation itself; `seen` learns the session's user, and whether
    /// this was a reuse, for the audit log.
    async fn rotate(
        &self,
        presented: &crate::refresh_token::RefreshTokenClaims,
        client: &Client,
        scope: Option<&str>,
        origin: &Origin,
        seen: &mut Option<(Uuid, bool)>,
    ) -> Result<TokenResponse, AuthError> {
        let rules = RefreshRules {
            idle_timeout_seconds: client
                .refresh_idle_timeout_seconds
                .unwrap_or(self.policy.refresh.idle_timeout_seconds),
            ..self.policy.refresh
        };
        for _ in 0..MAX_ROTATION_ATTEMPTS {
            let Some((session, user)) = self.store.session_and_user(presented.session_id).await?
            else {
                return Err(AuthError::InvalidGrant);
            };
            *seen = Some((session.user_id, false));
            if session.client_id != client.client_id {
                return Err(AuthError::InvalidGrant);
            }
            let scope = match scope {
                Some(s) if !scope_within(s, &session.scope)? => {
                    return Err(AuthError::InvalidScope)
                }
                Some(s) => parse_scope(s)?.join(" "),
                None => session.scope.clone(),
            };
            let now = self.clock.now();
            match decide(&session, presented.counter, now, &rules) {
                RefreshDecision::Rotate { from } => {
                    if self.store.advance_session(session.id, from, now).await? {
                        self.audit_refresh(&session, origin).await;
                        return Ok(self.issue(&session, &user, client, from + 1, &scope, now));
                    }
                    // Another request rotated first; decide again on its result.
                }
                RefreshDecision::ReissueCurrent => {
                    self.audit_refresh(&session, origin).await;
                    return Ok(self.issue(&session, &user, client, session.counter, &scope, now));
                }
                RefreshDecision::Reuse => {
                    tracing::warn!(
                        session_id = %session.id,
                        user_id = %session.user_id,
                        "refresh token reuse detected; session revoked"
                    );
                    *seen = Some((session.user_id, true));
                    self.audit(
                        AuditKind::ReuseDetected,
                        Outcome::Success,
                        Some(session.user_id),
                        Some(session.id),
                        origin,
                    )
                    .await;
                    self.end_session(session.id, "refresh_token_reuse").await?;
                    return Err(AuthError::InvalidGrant);
                }
                RefreshDecision::Refuse(_) => return Err(AuthError::InvalidGrant),
            }
        }
        Err(AuthError::Internal(
            "refresh rotation kept losing its compare-and-set".into(),
        ))
    }

    /// RFC 6749 §4.4: a service's own access token, no user, no session, no
    /// refresh token. Confidential clients only. Its `sub` is
    /// `client:<client_id>`, which no user id can equal.
    pub fn client_credentials(
        &self,
        client: &Client,
        request: &GrantRequest<'_>,
    ) -> Result<TokenResponse, AuthError> {
        if client.kind != ClientKind::Confidential {
            return Err(AuthError::UnauthorizedClient);
        }
        let grant = client.grant(request.scope, request.audience, &self.policy.audience)?;
        let now = self.clock.now();
        let (access_token, ttl) = self.mint(
            &client.subject(),
            None,
            client,
            &grant.audience,
            &grant.scope,
            &[],
            now,
        );
        Ok(TokenResponse {
            access_token,
            expires_in: ttl,
            expires_at: now.saturating_add(ttl),
            refresh_token: None,
            scope: grant.scope,
        })
    }

    /// Ends the session a refresh token belongs to. Unknown or forged tokens
    /// are ignored (RFC 7009: the client cannot do anything about them).
    pub async fn revoke_refresh_token(
        &self,
        refresh_token: &str,
        from: &Origin,
    ) -> Result<(), AuthError> {
        let Some(claims) = self.refresh_codec.decode(refresh_token) else {
            self.audit(AuditKind::Revoke, Outcome::Failure, None, None, from)
                .await;
            return Ok(());
        };
        let user = self
            .store
            .session(claims.session_id)
            .await?
            .map(|s| s.user_id);
        self.end_session(claims.session_id, "revoked").await?;
        let outcome = if user.is_some() {
            Outcome::Success
        } else {
            Outcome::Failure
        };
        self.audit(
            AuditKind::Revoke,
            outcome,
            user,
            Some(claims.session_id),
            from,
        )
        .await;
        Ok(())
    }

    /// RFC 7009 revocation of either kind of token by the client it was
    /// issued to. The hint only picks which kind to try first; tokens of
    /// other clients, unknown and invalid tokens are silently ignored.
    pub async fn revoke_token(
        &self,
        token: &str,
        client: &Client,
        from: &Origin,
    ) -> Result<(), AuthError> {
        if let Some(claims) = self.refresh_codec.decode(token) {
            match self.store.session(claims.session_id).await? {
                Some(session) if session.client_id == client.client_id => {
                    self.end_session(session.id, "revoked").await?;
                    self.audit(
                        AuditKind::Revoke,
                        Outcome::Success,
                        Some(session.user_id),
                        Some(session.id),
                        from,
                    )
                    .await;
                }
                _ => {
                    self.audit(AuditKind::Revoke, Outcome::Failure, None, None, from)
                        .await
                }
            }
            return Ok(());
        }
        match self.verify_access_token(token) {
            Ok(claims) if claims.client_id == client.client_id => {
                self.cancel_access_token(&claims, from).await?;
            }
            _ => {
                self.audit(AuditKind::Revoke, Outcome::Failure, None, None, from)
                    .await
            }
        }
        Ok(())
    }

    /// Verifies a bearer access token for Latchkey's own API: signature,
    /// time, issuer, our own audience, and revocation.
    pub fn authenticate(&self, bearer: &str) -> Result<AccessClaims, AuthError> {
        let claims = self.verify_access_token(bearer)?;
        if !claims.aud.contains(&self.policy.audience) {
            return Err(AuthError::InvalidToken(TokenError::WrongAudience));
        }
        if self
            .revocations
            .is_revoked(claims.sid.as_deref(), &claims.jti)
        {
            return Err(AuthError::InvalidToken(TokenError::Revoked));
        }
        Ok(claims)
    }

    /// Signature, time and issuer; any audience this server issues for.
    fn verify_access_token(&self, token: &str) -> Result<AccessClaims, AuthError> {
        let ring = self.key_ring();
        access_token::verify(token, &ring.verifying, &self.expectations, self.clock.now())
            .map_err(AuthError::InvalidToken)
    }

    /// Cancels one access token before it expires (by `jti`, so any
    /// re-encoding of the same token is cancelled too).
    pub async fn cancel_access_token(
        &self,
        claims: &AccessClaims,
        from: &Origin,
    ) -> Result<(), AuthError> {
        let entry = Revocation {
            kind: RevocationKind::Token,
            id: claims.jti.clone(),
            expires_at: claims.exp.saturating_add(self.policy.leeway_seconds),
        };
        self.store.insert_revocation(&entry).await?;
        self.revocations.insert(&entry);
        self.announce_revocation();
        self.audit(
            AuditKind::Revoke,
            Outcome::Success,
            subject(claims).ok(),
            session_of(claims).ok(),
            from,
        )
        .await;
        Ok(())
    }

    /// The user an access token was issued to.
    pub async fn user(&self, caller: &AccessClaims) -> Result<User, AuthError> {
        self.store
            .user_by_id(subject(caller)?)
            .await?
            .ok_or(AuthError::InvalidToken(TokenError::UnknownSubject))
    }

    /// The caller's live sessions, oldest first.
    pub async fn list_sessions(
        &self,
        caller: &AccessClaims,
    ) -> Result<Vec<SessionView>, AuthError> {
        let user_id = subject(caller)?;
        let now = self.clock.now();
        let idle = self.policy.refresh.idle_timeout_seconds;
        let sessions = self.store.live_sessions_of_user(user_id, now).await?;
        Ok(sessions
            .into_iter()
            .map(|session| SessionView {
                expires_at: session
                    .expires_at
                    .min(session.last_refreshed_at.saturating_add(idle)),
                current: caller.sid.as_deref() == Some(session.id.to_string().as_str()),
                session,
            })
            .filter(|v| v.expires_at > now)
            .collect())
    }

    /// Ends one of the caller's sessions. Someone else's session, an unknown
    /// id and an already ended one all look the same: not found.
    pub async fn end_own_session(
        &self,
        caller: &AccessClaims,
        id: &str,
        from: &Origin,
    ) -> Result<(), AuthError> {
        let user_id = subject(caller)?;
        let session = Uuid::parse_str(id).ok();
        let result = match session {
            Some(id) => match self.store.session(id).await? {
                Some(s) if s.user_id == user_id && s.revoked_at.is_none() => {
                    self.end_session(id, "signed_out").await
                }
                _ => Err(AuthError::NotFound),
            },
            None => Err(AuthError::NotFound),
        };
        let outcome = if result.is_ok() {
            Outcome::Success
        } else {
            Outcome::Failure
        };
        self.audit(AuditKind::SignOut, outcome, Some(user_id), session, from)
            .await;
        result
    }

    pub async fn sign_out(
        &self,
        caller: &AccessClaims,
        scope: SignOutScope,
        from: &Origin,
    ) -> Result<(), AuthError> {
        let current = session_of(caller)?;
        self.audit(
            AuditKind::SignOut,
            Outcome::Success,
            subject(caller).ok(),
            Some(current),
            from,
        )
        .await;
        match scope {
            SignOutScope::Current => self.end_session(current, "signed_out").await,
            SignOutScope::Others => {
                self.end_sessions_of(caller, Some(current), "signed_out")
                    .await
            }
            SignOutScope::All => self.end_sessions_of(caller, None, "signed_out").await,
        }
    }

    /// Changes the password and ends every session but the caller's. The
    /// current password is a guess like a sign-in's, throttled against the
    /// same counters; the wrong guess that uses up the account's allowance
    /// also ends the session that made it, so a stolen access token is
    /// worth a handful of guesses, not a stream of them.
    pub async fn change_password(
        &self,
        caller: &AccessClaims,
        current_password: &str,
        new_password: &str,
        from: &Origin,
    ) -> Result<(), AuthError> {
        // Before the password rules: a token with no user gets 401, not 400.
        subject(caller)?;
        let result = self
            .set_new_password(caller, current_password, new_password, from)
            .await;
        let outcome = match &result {
            Ok(()) => Outcome::Success,
            Err(AuthError::Throttled { .. }) => Outcome::Throttled,
            Err(_) => Outcome::Failure,
        };
        self.audit(
            AuditKind::PasswordChange,
            outcome,
            subject(caller).ok(),
            session_of(caller).ok(),
            from,
        )
        .await;
        result
    }

    async fn set_new_password(
        &self,
        caller: &AccessClaims,
        current_password: &str,
        new_password: &str,
        from: &Origin,
    ) -> Result<(), AuthError> {
        let new_password = Password::new_for_account(new_password)?;
        let current_password = Password::for_check(current_password)?;
        let current = session_of(caller)?;
        let user = self.user(caller).await?;
        let attempt = self
            // No known-address waiver: the caller is already signed in, so
            // a block keeps no one out, while a waiver would let a stolen
            // token used from the owner's network guess on.
            .admit_attempt(
                throttle::user_key(&user.username_key),
                Some(&user),
                false,
                from,
            )
            .await?;
        let check = self
            .hasher
            .verify(current_password, Some(user.password_hash.clone()))
            .await?;
        if check == PasswordCheck::Mismatch {
            if self
                .attempt_failed(attempt.as_ref(), Some(user.id), from)
                .await
            {
                tracing::info!(user_id = %user.id, session_id = %current, "password guesses over the allowance; session ended");
                self.end_session(current, "password_attempts").await?;
            }
            return Err(AuthError::WrongCurrentPassword);
        }
        self.attempt_succeeded(attempt).await?;
        let phc = self.hasher.hash(new_password).await?;
        self.store.set_password_hash(user.id, &phc).await?;
        self.end_sessions_of(caller, Some(current), "password_changed")
            .await?;
        tracing::info!(user_id = %user.id, "password changed; other sessions ended");
        Ok(())
    }

    /// A page of the revocation feed: with `after` (a cursor), the entries
    /// recorded since (possibly none); else a page of the snapshot of live
    /// entries, from the `page` token of the previous one (the first page
    /// without). Unknown cursors and tokens: [`AuthError::CursorExpired`].
    pub async fn revocation_feed(
        &self,
        after: Option<&str>,
        page: Option<&str>,
    ) -> Result<FeedPage, AuthError> {
        let parse = |c: &str| c.parse::<i64>().map_err(|_| AuthError::CursorExpired);
        let read = match (after, page) {
            (Some(_), Some(_)) => {
                return Err(AuthError::InvalidRequest(
                    "use either after (to follow) or page (to read a snapshot), not both".into(),
                ))
            }
            (Some(after), None) => FeedRead::After(parse(after)?),
            (None, page) => FeedRead::Snapshot {
                from: page.map(parse).transpose()?.unwrap_or(0),
            },
        };
        self.store
            .revocation_feed(read, self.clock.now(), FEED_PAGE_LIMIT)
            .await?
            .ok_or(AuthError::CursorExpired)
    }

    /// Brings the in-memory revocation set up to date with the store, which
    /// other nodes may have written to. Returns the number of entries read.
    pub async fn sync_revocations(&self) -> Result<usize, AuthError> {
        let now = self.clock.now();
        let mut cursor = self.revocations_cursor.load(Ordering::Acquire);
        let mut read = 0;
        // Bounded, so that a flood of revocations cannot hold one call for
        // long; the next call goes on from the cursor.
        for _ in 0..SYNC_MAX_PAGES {
            let Some(page) = self
                .store
                .revocation_feed(FeedRead::After(cursor), now, FEED_PAGE_LIMIT)
                .await?
            else {
                // Fell too far behind: start again from a snapshot.
                let (cursor, entries) = read_snapshot(&*self.store, now, &self.revocations).await?;
                self.revocations_cursor.fetch_max(cursor, Ordering::AcqRel);
                return Ok(read + entries);
            };
            for entry in &page.entries {
                self.revocations.insert(entry);
            }
            read += page.entries.len();
            cursor = page.cursor;
            self.revocations_cursor.fetch_max(cursor, Ordering::AcqRel);
            if !page.more {
                break;
            }
        }
        Ok(read)
    }

    /// The feed cursor the in-memory set has caught up to.
    pub fn revocations_cursor(&self) -> i64 {
        self.revocations_cursor.load(Ordering::Acquire)
    }

    /// Drops revocation entries whose tokens have all expired, from memory
    /// and (a batch at a time) from the store, with sessions past their
    /// absolute lifetime, stale throttling counters and audit records past
    /// their retention.
    pub async fn prune(&self) -> Result<usize, AuthError> {
        let now = self.clock.now();
        self.revocations.prune(now);
        let rules = self.policy.throttle;
        let window = rules
            .account
            .window_seconds
            .max(rules.address.window_seconds);
        let counters = self
            .store
            .prune_sign_in_failures(now.saturating_sub(window), now, PRUNE_BATCH)
            .await?;
        let audit = self
            .store
            .prune_audit_events(
                now.saturating_sub(self.policy.audit_retention_seconds),
                AUDIT_PRUNE_BATCH,
            )
            .await?;
        Ok(counters
            + audit
            + self
                .store
                .prune(PruneBefore {
                    revocations: now,
                    sessions: now,
                    batch: PRUNE_BATCH,
                })
                .await?)
    }

    async fn end_sessions_of(
        &self,
        caller: &AccessClaims,
        except: Option<Uuid>,
        reason: &str,
    ) -> Result<(), AuthError> {
        let user_id = subject(caller)?;
        let now = self.clock.now();
        let expires_at = now.saturating_add(self.policy.revocation_lifetime());
        let ended = self
            .store
            .revoke_sessions_of_user(user_id, except, now, reason, expires_at)
            .await?;
        self.publish_session_revocations(&ended, expires_at);
        Ok(())
    }

    /// Puts ended sessions in this node's revocation set and wakes feed
    /// readers.
    fn publish_session_revocations(&self, ended: &[Uuid], expires_at: UnixTime) {
        for id in ended {
            self.revocations.insert(&Revocation {
                kind: RevocationKind::Session,
                id: id.to_string(),
                expires_at,
            });
        }
        if !ended.is_empty() {
            self.announce_revocation();
        }
    }

    async fn end_session(&self, session_id: Uuid, reason: &str) -> Result<(), AuthError> {
        let now = self.clock.now();
        let entry = Revocation {
            kind: RevocationKind::Session,
            id: session_id.to_string(),
            expires_at: now.saturating_add(self.policy.revocation_lifetime()),
        };
        if self
            .store
            .revoke_session(session_id, now, reason, &entry)
            .await?
        {
            self.revocations.insert(&entry);
            self.announce_revocation();
        }
        Ok(())
    }

    /// Records an audit event: a `latchkey::audit` tracing line and a row in
    /// the store. A failure to store it is logged, never the request's
    /// failure (the event itself has already happened).
    async fn audit(
        &self,
        kind: AuditKind,
        outcome: Outcome,
        user_id: Option<Uuid>,
        session_id: Option<Uuid>,
        from: &Origin,
    ) {
        self.record(AuditEvent {
            at: self.clock.now(),
            kind,
            outcome,
            user_id,
            session_id,
            ip: from.ip.clone(),
            count: 1,
        })
        .await;
    }

    async fn record(&self, event: AuditEvent) {
        event.emit();
        if let Err(e) = self.store.insert_audit_event(&event).await {
            tracing::warn!(error = %e, kind = event.kind.as_str(), "audit event not stored");
        }
    }

    async fn audit_refresh(&self, session: &Session, from: &Origin) {
        self.audit(
            AuditKind::Refresh,
            Outcome::Success,
            Some(session.user_id),
            Some(session.id),
            from,
        )
        .await;
    }

    /// The most recent audit events (see [`crate::audit::AuditQuery`]).
    pub async fn audit_events(
        store: &dyn Store,
        query: &crate::audit::AuditQuery,
    ) -> Result<Vec<AuditEvent>, AuthError> {
        Ok(store.audit_events(query).await?)
    }

    /// Registers what to call after this node records a revocation, so the
    /// server can wake feed readers at once instead of at its next poll.
    pub fn on_revocation(&self, listener: impl Fn() + Send + Sync + 'static) {
        let _ = self.revocation_listener.set(Box::new(listener));
    }

    fn announce_revocation(&self) {
        if let Some(listener) = self.revocation_listener.get() {
            listener();
        }
    }

    fn issue(
        &self,
        session: &Session,
        user: &User,
        client: &Client,
        counter: u64,
        scope: &str,
        now: UnixTime,
    ) -> TokenResponse {
        let sid = session.id.to_string();
        let (access_token, ttl) = self.mint(
            &user.id.to_string(),
            Some(sid),
            client,
            &session.audience,
            scope,
            &user.roles,
            now,
        );
        TokenResponse {
            access_token,
            expires_in: ttl,
            expires_at: now.saturating_add(ttl),
            refresh_token: Some(self.refresh_codec.encode(session.id, counter)),
            scope: scope.to_owned(),
        }
    }

    /// Signs an access token; returns it with its lifetime in seconds.
    #[allow(clippy::too_many_arguments)]
    fn mint(
        &self,
        sub: &str,
        sid: Option<String>,
        client: &Client,
        audience: &str,
        scope: &str,
        roles: &[String],
        now: UnixTime,
    ) -> (String, i64) {
        let ttl = client
            .access_ttl_seconds
            .unwrap_or(self.policy.access_ttl_seconds)
            .min(self.policy.max_access_ttl());
        let claims = AccessClaims {
            iss: self.policy.issuer.clone(),
            sub: sub.to_owned(),
            aud: Audience::One(if audience.is_empty() {
                self.policy.audience.clone()
            } else {
                audience.to_owned()
            }),
            exp: now.saturating_add(ttl),
            iat: now,
            nbf: None,
            jti: Uuid::new_v4().simple().to_string(),
            client_id: client.client_id.clone(),
            sid,
            scope: (!scope.is_empty()).then(|| scope.to_owned()),
            roles: roles.to_vec(),
        };
        (self.key_ring().signing.sign(&claims), ttl)
    }
}

/// The user a token speaks for. Only sign-in tokens have one: they carry a
/// session and the user's id as `sub`. A client-credentials token (no
/// session, `sub` = `client:<id>`) has none, whatever its client is called.
fn subject(claims: &AccessClaims) -> Result<Uuid, AuthError> {
    if claims.sid.is_none() {
        return Err(AuthError::InvalidToken(TokenError::NoUser));
    }
    Uuid::parse_str(&claims.sub).map_err(|_| AuthError::InvalidToken(TokenError::NoUser))
}

/// The caller's session; only a user's token has one, so client-credentials
/// tokens cannot use session endpoints.
fn session_of(claims: &AccessClaims) -> Result<Uuid, AuthError> {
    subject(claims)?;
    claims
        .sid
        .as_deref()
        .and_then(|sid| Uuid::parse_str(sid).ok())
        .ok_or(AuthError::InvalidToken(TokenError::NoSession))
}

/// Reads every page of a snapshot of the revocation feed into `set`; returns
/// the cursor to follow from and the number of entries read.
async fn read_snapshot(
    store: &dyn Store,
    now: UnixTime,
    set: &RevocationSet,
) -> Result<(i64, usize), AuthError> {
    let mut from = 0;
    let mut read = 0;
    loop {
        let page = store
            .revocation_feed(FeedRead::Snapshot { from }, now, FEED_PAGE_LIMIT)
            .await?
            .ok_or_else(|| AuthError::Internal("revocation snapshot unavailable".into()))?;
        for entry in &page.entries {
            set.insert(entry);
        }
        read += page.entries.len();
        // A full page moves the cursor forward, so this ends.
        if !page.more {
            return Ok((page.cursor, read));
        }
        from = page.cursor;
    }
}
