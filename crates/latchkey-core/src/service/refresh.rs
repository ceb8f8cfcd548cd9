//! Refresh: rotating a refresh token (see [`crate::rotation`] for the
//! rules). Each rotation is a compare-and-set on the session's counter, so
//! of two requests presenting the same token one rotates and the other
//! decides again on its result: the grace window or reuse detection.
//!
//! A successful refresh is one store step
//! ([`crate::store::SessionStore::read_and_advance`]): the session read with
//! its user and, if [`RotationGuard`] admits it, the compare-and-set with its
//! audit row in the same transaction. On PostgreSQL that is one statement,
//! one round trip; on SQLite a read, then one write of the group-committing
//! writer. When the step does not rotate, the session as read decides (the
//! grace window, reuse detection, a refusal). A refresh within the grace
//! window moves nothing and writes only its audit row.

use uuid::Uuid;

use super::{Authority, Origin, TokenResponse};
use crate::audit::{AuditEvent, AuditKind, Outcome};
use crate::client::{parse_scope, scope_within, Client};
use crate::clock::UnixTime;
use crate::metrics::{self, RefreshOutcome};
use crate::model::{Session, User};
use crate::refresh_token::RefreshTokenClaims;
use crate::rotation::{decide, RefreshDecision, RefreshRules, RotationGuard};
use crate::AuthError;

/// How often a rotation that keeps losing its compare-and-set decides again
/// before giving up.
const MAX_ROTATION_ATTEMPTS: usize = 3;

/// Why a rotation did not issue tokens.
enum RotationFailure {
    /// A reused refresh token: the session has been ended, and the event
    /// audited where it was detected.
    ReuseDetected,
    /// Refused or failed; `user_id` is the session's user once it was read,
    /// for the audit record of the failure.
    Failed {
        error: AuthError,
        user_id: Option<Uuid>,
    },
}

/// One decision on the session as read.
enum RotationStep {
    Issued(TokenResponse),
    /// Another request rotated between our read and our write.
    LostRace,
    ReuseDetected,
}

impl Authority {
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
            metrics::refresh(RefreshOutcome::Refused);
            self.audit(AuditKind::Refresh, Outcome::Failure, None, None, from)
                .await;
            return Err(AuthError::InvalidGrant);
        };
        // Rotations and grace reissues are counted where they are decided.
        match self.rotate(&presented, client, scope, from).await {
            Ok(tokens) => Ok(tokens),
            Err(RotationFailure::ReuseDetected) => {
                metrics::refresh(RefreshOutcome::ReuseDetected);
                Err(AuthError::InvalidGrant)
            }
            Err(RotationFailure::Failed { error, user_id }) => {
                // An outage refuses nothing: it is counted by status only.
                if !matches!(error, AuthError::Unavailable | AuthError::Internal(_)) {
                    metrics::refresh(RefreshOutcome::Refused);
                }
                self.audit(
                    AuditKind::Refresh,
                    Outcome::Failure,
                    user_id,
                    Some(presented.session_id),
                    from,
                )
                .await;
                Err(error)
            }
        }
    }

    /// The rotation itself: reads the session and decides, again if another
    /// request rotated in between.
    async fn rotate(
        &self,
        presented: &RefreshTokenClaims,
        client: &Client,
        scope: Option<&str>,
        origin: &Origin,
    ) -> Result<TokenResponse, RotationFailure> {
        let mut user_id = None;
        for attempt in 0..MAX_ROTATION_ATTEMPTS {
            // First, the common case in one store step: read and rotate if
            // the rules allow. A narrowed scope must be checked before
            // anything moves, so it takes the read-then-decide path.
            let read = if attempt == 0 && scope.is_none() {
                let (guard, event) = self.rotation_guard(presented, client, origin);
                let read = self
                    .store
                    .read_and_advance(presented.session_id, &guard, &event)
                    .await;
                if let Ok(Some((session, user, true))) = read {
                    if user.disabled_at.is_none() {
                        return Ok(self.rotated(&session, &user, client, event, guard.now));
                    }
                    let error = self.end_disabled_session(&session).await;
                    return Err(RotationFailure::Failed {
                        error,
                        user_id: Some(session.user_id),
                    });
                }
                read
            } else {
                self.store
                    .session_and_user(presented.session_id)
                    .await
                    .map(|read| read.map(|(session, user)| (session, user, false)))
            };
            let step = match read {
                Ok(Some((session, user, _))) => {
                    user_id = Some(session.user_id);
                    self.rotate_step(session, &user, presented.counter, client, scope, origin)
                        .await
                }
                Ok(None) => Err(AuthError::InvalidGrant),
                Err(e) => Err(e.into()),
            };
            match step {
                Ok(RotationStep::Issued(tokens)) => return Ok(tokens),
                Ok(RotationStep::LostRace) => {}
                Ok(RotationStep::ReuseDetected) => return Err(RotationFailure::ReuseDetected),
                Err(error) => return Err(RotationFailure::Failed { error, user_id }),
            }
        }
        Err(RotationFailure::Failed {
            error: AuthError::Internal("refresh rotation kept losing its compare-and-set".into()),
            user_id,
        })
    }

    /// What rotating `presented` requires, and the audit row a rotation
    /// appends (the store sets its user, known once the session is read).
    fn rotation_guard(
        &self,
        presented: &RefreshTokenClaims,
        client: &Client,
        origin: &Origin,
    ) -> (RotationGuard, AuditEvent) {
        let guard = RotationGuard {
            counter: presented.counter,
            client_id: client.client_id.clone(),
            now: self.clock.now(),
            rules: self.refresh_rules(client),
        };
        let event = AuditEvent {
            at: guard.now,
            ..self.audit_event(
                AuditKind::Refresh,
                Outcome::Success,
                None,
                Some(presented.session_id),
                origin,
            )
        };
        (guard, event)
    }

    /// Tokens for a session this request rotated at `now` (`session` as
    /// read before it moved), with the session's own scope.
    fn rotated(
        &self,
        session: &Session,
        user: &User,
        client: &Client,
        event: AuditEvent,
        now: UnixTime,
    ) -> TokenResponse {
        metrics::refresh(RefreshOutcome::Rotated);
        AuditEvent {
            user_id: Some(session.user_id),
            ..event
        }
        .emit();
        self.issue(
            session,
            user,
            client,
            session.counter + 1,
            &session.scope,
            now,
        )
    }

    /// A disabled account's session that is still live (a sign-in that
    /// raced the disabling opened it after its sessions were ended): it
    /// ends now, and the refresh is refused like any dead session's.
    async fn end_disabled_session(&self, session: &Session) -> AuthError {
        match self.end_session(session.id, "account_disabled").await {
            Ok(()) => AuthError::InvalidGrant,
            Err(e) => e,
        }
    }

    fn refresh_rules(&self, client: &Client) -> RefreshRules {
        RefreshRules {
            idle_timeout_seconds: client
                .refresh_idle_timeout_seconds
                .unwrap_or(self.policy.refresh.idle_timeout_seconds),
            ..self.policy.refresh
        }
    }

    /// Decides on the session as read, for a token with `counter`.
    async fn rotate_step(
        &self,
        session: Session,
        user: &User,
        counter: u64,
        client: &Client,
        scope: Option<&str>,
        origin: &Origin,
    ) -> Result<RotationStep, AuthError> {
        if session.client_id != client.client_id {
            return Err(AuthError::InvalidGrant);
        }
        if user.disabled_at.is_some() {
            return Err(self.end_disabled_session(&session).await);
        }
        let scope = match scope {
            Some(s) if !scope_within(s, &session.scope)? => return Err(AuthError::InvalidScope),
            Some(s) => parse_scope(s)?.join(" "),
            None => session.scope.clone(),
        };
        let rules = self.refresh_rules(client);
        let now = self.clock.now();
        match decide(&session, counter, now, &rules) {
            RefreshDecision::Rotate { from } => {
                let event = self.refresh_event(&session, origin);
                if !self
                    .store
                    .advance_session(session.id, from, now, &event)
                    .await?
                {
                    return Ok(RotationStep::LostRace);
                }
                event.emit();
                metrics::refresh(RefreshOutcome::Rotated);
                Ok(RotationStep::Issued(self.issue(
                    &session,
                    user,
                    client,
                    from + 1,
                    &scope,
                    now,
                )))
            }
            RefreshDecision::ReissueCurrent => {
                self.record(self.refresh_event(&session, origin)).await;
                metrics::refresh(RefreshOutcome::ReissuedInGrace);
                Ok(RotationStep::Issued(self.issue(
                    &session,
                    user,
                    client,
                    session.counter,
                    &scope,
                    now,
                )))
            }
            RefreshDecision::Reuse => {
                tracing::warn!(
                    session_id = %session.id,
                    user_id = %session.user_id,
                    "refresh token reuse detected; session revoked"
                );
                self.audit(
                    AuditKind::ReuseDetected,
                    Outcome::Success,
                    Some(session.user_id),
                    Some(session.id),
                    origin,
                )
                .await;
                self.end_session(session.id, "refresh_token_reuse").await?;
                Ok(RotationStep::ReuseDetected)
            }
            RefreshDecision::Refuse(_) => Err(AuthError::InvalidGrant),
        }
    }
}
