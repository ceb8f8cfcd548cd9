//! Sign-in, the password grant: a checked password opens a new session.
//!
//! A successful sign-in is two durable writes: the attempt counted before
//! the password is checked (its own commit, so parallel guesses cannot
//! slip past the allowance), then one transaction that opens the session
//! with its audit row, gives the attempt back and applies the session
//! limit ([`crate::store::SessionStore::open_session`]).

use uuid::Uuid;

use super::password_attempts::Attempt;
use super::{Authority, GrantRequest, Origin, TokenResponse};
use crate::audit::{AuditKind, Outcome};
use crate::client::Client;
use crate::metrics::{self, SignInOutcome};
use crate::model::{Session, User};
use crate::password::{Password, PasswordCheck};
use crate::store::SessionOpening;
use crate::throttle;
use crate::username::Username;
use crate::AuthError;

/// The session a checked password opens.
pub(super) struct NewSession {
    pub client_id: String,
    pub audience: String,
    pub scope: String,
    pub lifetime_seconds: i64,
}

impl Authority {
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
        let new = NewSession {
            client_id: client.client_id.clone(),
            audience: grant.audience,
            scope: grant.scope,
            lifetime_seconds: client
                .session_lifetime_seconds
                .unwrap_or(self.policy.session_lifetime_seconds),
        };
        let (session, user) = self.password_sign_in(username, password, new, from).await?;
        Ok(self.issue(
            &session,
            &user,
            client,
            session.counter,
            &session.scope,
            session.created_at,
        ))
    }

    /// Checks the password and opens `new` for its user; every sign-in
    /// (the password grant, the hosted sign-in page) goes through here, so
    /// all have the same throttle, timing and audit.
    pub(super) async fn password_sign_in(
        &self,
        username: &str,
        password: &str,
        new: NewSession,
        from: Origin,
    ) -> Result<(Session, User), AuthError> {
        let result = self.check_and_open(username, password, new, from).await;
        // Bad requests, overload and outages are no sign-in outcome: the
        // HTTP metrics count them by status.
        match &result {
            Ok(_) => metrics::sign_in(SignInOutcome::Success),
            Err(AuthError::InvalidCredentials) => metrics::sign_in(SignInOutcome::Failure),
            Err(AuthError::Throttled { .. }) => metrics::sign_in(SignInOutcome::Throttled),
            Err(_) => {}
        }
        result
    }

    async fn check_and_open(
        &self,
        username: &str,
        password: &str,
        new: NewSession,
        from: Origin,
    ) -> Result<(Session, User), AuthError> {
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
            // A disabled account's password is checked all the same, so
            // it is refused in the time and words of a wrong one.
            (Some(u), PasswordCheck::Match { needs_rehash }) if u.disabled_at.is_none() => {
                (u, needs_rehash)
            }
            (user, _) => {
                let user_id = user.map(|u| u.id);
                self.audit(AuditKind::SignIn, Outcome::Failure, user_id, None, &from)
                    .await;
                self.attempt_failed(attempt.as_ref(), user_id, &from).await;
                return Err(AuthError::InvalidCredentials);
            }
        };
        if needs_rehash {
            let rehashed = async {
                let phc = self.hasher.hash(password).await?;
                Ok::<_, AuthError>(self.store.set_password_hash(user.id, &phc).await?)
            };
            if let Err(e) = rehashed.await {
                // The password was right: its attempt is given back all the same.
                self.attempt_succeeded(attempt).await?;
                return Err(e);
            }
        }

        let now = self.clock.now();
        let session = Session {
            id: Uuid::new_v4(),
            user_id: user.id,
            client_id: new.client_id,
            audience: new.audience,
            scope: new.scope,
            counter: 0,
            created_at: now,
            last_refreshed_at: now,
            expires_at: now.saturating_add(new.lifetime_seconds),
            user_agent: from.user_agent.clone(),
            ip: from.ip.clone(),
            revoked_at: None,
            revoke_reason: None,
        };
        let opening = SessionOpening {
            audit: self.audit_event(
                AuditKind::SignIn,
                Outcome::Success,
                Some(user.id),
                Some(session.id),
                &from,
            ),
            session,
            attempt: Attempt::take_back(attempt),
            limit: self.session_limit(now),
        };
        let ended = self.store.open_session(&opening).await?;
        opening.audit.emit();
        self.sessions_evicted(user.id, &ended, &opening.limit, &from)
            .await;
        Ok((opening.session, user))
    }
}
