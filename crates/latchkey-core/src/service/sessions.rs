//! Sessions: the caller's list, ending one or all of them, and the cap on
//! how many one user may have (applied as a sign-in opens one). Every
//! ending also revokes the session's access tokens (a `sid` entry in the
//! revocation set).

use uuid::Uuid;

use super::tokens::{session_of, subject};
use super::{Authority, Origin, SessionView, SignOutScope};
use crate::access_token::AccessClaims;
use crate::audit::{AuditKind, Outcome};
use crate::clock::UnixTime;
use crate::store::{Revocation, RevocationKind, SessionLimit};
use crate::AuthError;

impl Authority {
    /// The caller's live sessions, oldest first.
    pub async fn list_sessions(
        &self,
        caller: &AccessClaims,
    ) -> Result<Vec<SessionView>, AuthError> {
        let user_id = subject(caller)?;
        let current = session_of(caller).ok();
        self.live_session_views(user_id, current).await
    }

    /// The user's live sessions, oldest first; `current` is marked.
    pub(super) async fn live_session_views(
        &self,
        user_id: Uuid,
        current: Option<Uuid>,
    ) -> Result<Vec<SessionView>, AuthError> {
        let now = self.clock.now();
        let idle = self.policy.refresh.idle_timeout_seconds;
        let sessions = self.store.live_sessions_of_user(user_id, now).await?;
        Ok(sessions
            .into_iter()
            .map(|session| SessionView {
                expires_at: session
                    .expires_at
                    .min(session.last_refreshed_at.saturating_add(idle)),
                current: current == Some(session.id),
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
        // `session_of` has checked the caller has a user.
        let user_id = subject(caller)?;
        self.audit(
            AuditKind::SignOut,
            Outcome::Success,
            Some(user_id),
            Some(current),
            from,
        )
        .await;
        match scope {
            SignOutScope::Current => self.end_session(current, "signed_out").await,
            SignOutScope::Others => self
                .end_sessions_of(user_id, Some(current), "signed_out")
                .await
                .map(drop),
            SignOutScope::All => self
                .end_sessions_of(user_id, None, "signed_out")
                .await
                .map(drop),
        }
    }

    /// The cap a sign-in at `now` opens its session under: the user's least
    /// recently used live sessions beyond `max_sessions_per_user` end, so
    /// one account cannot pile up sessions without end.
    pub(super) fn session_limit(&self, now: UnixTime) -> SessionLimit {
        SessionLimit {
            keep: self.policy.max_sessions_per_user,
            reason: "session_limit",
            entry_expires_at: now.saturating_add(self.policy.revocation_lifetime()),
        }
    }

    /// Sessions a sign-in ended under `limit` (already revoked in the
    /// store): into this node's revocation set, each audited as evicted.
    pub(super) async fn sessions_evicted(
        &self,
        user_id: Uuid,
        ended: &[Uuid],
        limit: &SessionLimit,
        from: &Origin,
    ) {
        self.publish_session_revocations(ended, limit.entry_expires_at);
        for &id in ended {
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
    }

    /// Ends every live session of the user but `except`; returns how many
    /// ended.
    pub(super) async fn end_sessions_of(
        &self,
        user_id: Uuid,
        except: Option<Uuid>,
        reason: &str,
    ) -> Result<usize, AuthError> {
        let now = self.clock.now();
        let expires_at = now.saturating_add(self.policy.revocation_lifetime());
        let ended = self
            .store
            .revoke_sessions_of_user(user_id, except, now, reason, expires_at)
            .await?;
        self.publish_session_revocations(&ended, expires_at);
        Ok(ended.len())
    }

    /// Ends one session, unless it has ended already.
    pub(super) async fn end_session(
        &self,
        session_id: Uuid,
        reason: &str,
    ) -> Result<(), AuthError> {
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

    /// Puts ended sessions in this node's revocation set and wakes feed
    /// readers.
    pub(super) fn publish_session_revocations(&self, ended: &[Uuid], expires_at: UnixTime) {
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
}
