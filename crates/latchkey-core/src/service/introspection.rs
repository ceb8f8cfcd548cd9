//! RFC 7662 introspection, scoped to the tokens a client may be told about.

use uuid::Uuid;

use super::tokens::{session_of, subject};
use super::{Authority, Introspection, Origin};
use crate::audit::{AuditKind, Outcome};
use crate::client::{Client, ClientKind};
use crate::AuthError;

impl Authority {
    /// RFC 7662 introspection of either kind of token, by a confidential
    /// client. It is told about tokens issued to it, or to any client if it
    /// is registered with `introspect_any`; any other token is
    /// [`Introspection::Inactive`], like an unknown, invalid, expired or
    /// revoked one, so the answer reveals nothing about it. Audited.
    pub async fn introspect(
        &self,
        token: &str,
        caller: &Client,
        from: &Origin,
    ) -> Result<Introspection, AuthError> {
        if caller.kind != ClientKind::Confidential {
            return Err(AuthError::InvalidClient);
        }
        let (answer, user_id, session_id) = self.introspection_for(token, caller).await?;
        let outcome = match answer {
            Introspection::Inactive => Outcome::Failure,
            _ => Outcome::Success,
        };
        self.audit(AuditKind::Introspect, outcome, user_id, session_id, from)
            .await;
        Ok(answer)
    }

    /// The answer, with the token's user and session when `caller` may be
    /// told about the token (for the audit log).
    async fn introspection_for(
        &self,
        token: &str,
        caller: &Client,
    ) -> Result<(Introspection, Option<Uuid>, Option<Uuid>), AuthError> {
        const UNSEEN: (Introspection, Option<Uuid>, Option<Uuid>) =
            (Introspection::Inactive, None, None);
        if let Some(presented) = self.refresh_codec.decode(token) {
            let Some((session, user)) = self.store.session_and_user(presented.session_id).await?
            else {
                return Ok(UNSEEN);
            };
            // Checked first, so another client's token costs the same
            // whatever its state.
            if !caller.may_introspect_tokens_of(&session.client_id) {
                return Ok(UNSEEN);
            }
            let (user_id, session_id) = (Some(session.user_id), Some(session.id));
            let issuer_idle = if session.client_id == caller.client_id {
                caller.refresh_idle_timeout_seconds
            } else {
                self.store
                    .client(&session.client_id)
                    .await?
                    .and_then(|c| c.refresh_idle_timeout_seconds)
            };
            let idle = issuer_idle.unwrap_or(self.policy.refresh.idle_timeout_seconds);
            let now = self.clock.now();
            // Active only if using it now would work, without using it.
            let usable = presented.counter == session.counter
                && session.revoked_at.is_none()
                && now < session.expires_at
                && now < session.last_refreshed_at.saturating_add(idle);
            let answer = if usable {
                Introspection::Refresh {
                    expires_at: session
                        .expires_at
                        .min(session.last_refreshed_at.saturating_add(idle)),
                    session,
                    user,
                }
            } else {
                Introspection::Inactive
            };
            return Ok((answer, user_id, session_id));
        }
        let Ok(claims) = self.verify_access_token(token) else {
            return Ok(UNSEEN);
        };
        if !caller.may_introspect_tokens_of(&claims.client_id) {
            return Ok(UNSEEN);
        }
        let (user_id, session_id) = (subject(&claims).ok(), session_of(&claims).ok());
        let answer = if self
            .revocations
            .is_revoked(claims.sid.as_deref(), &claims.jti)
        {
            Introspection::Inactive
        } else {
            Introspection::Access(claims)
        };
        Ok((answer, user_id, session_id))
    }
}
