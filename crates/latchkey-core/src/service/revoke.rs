//! RFC 7009 revocation: ending the session a refresh token belongs to, or
//! cancelling one access token before it expires.

use super::tokens::{session_of, subject};
use super::{Authority, Origin};
use crate::access_token::AccessClaims;
use crate::audit::{AuditKind, Outcome};
use crate::client::Client;
use crate::store::{Revocation, RevocationKind};
use crate::AuthError;

impl Authority {
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
    /// issued to. Unknown and invalid tokens are ignored (the client can do
    /// nothing about them); a token issued to another client is refused
    /// with `UnauthorizedClient` and left alone (RFC 7009 §2.1).
    pub async fn revoke_token(
        &self,
        token: &str,
        client: &Client,
        from: &Origin,
    ) -> Result<(), AuthError> {
        if let Some(claims) = self.refresh_codec.decode(token) {
            match self.store.session(claims.session_id).await? {
                Some(session) if session.client_id != client.client_id => {
                    self.audit(AuditKind::Revoke, Outcome::Failure, None, None, from)
                        .await;
                    return Err(AuthError::UnauthorizedClient);
                }
                Some(session) => {
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
                None => {
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
            Ok(_) => {
                self.audit(AuditKind::Revoke, Outcome::Failure, None, None, from)
                    .await;
                return Err(AuthError::UnauthorizedClient);
            }
            _ => {
                self.audit(AuditKind::Revoke, Outcome::Failure, None, None, from)
                    .await
            }
        }
        Ok(())
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
}
