//! Access and refresh tokens: minting them, verifying a bearer token, and
//! reading whose a token is.

use uuid::Uuid;

use super::{Authority, TokenResponse};
use crate::access_token::{self, AccessClaims, Audience, TokenError};
use crate::client::Client;
use crate::clock::UnixTime;
use crate::model::{Session, User};
use crate::AuthError;

/// Whom an access token speaks for.
pub(super) enum Holder<'a> {
    /// A signed-in user, through one of their sessions.
    User { user: &'a User, session_id: Uuid },
    /// A client acting for itself (client credentials): no user, no session.
    Client,
}

impl Authority {
    /// Verifies a bearer access token for Latchkey's own API: signature,
    /// time, issuer, our own audience, and revocation.
    pub fn authenticate(&self, bearer: &str) -> Result<AccessClaims, AuthError> {
        let claims = self.verify_access_token(bearer)?;
        if !claims.aud.contains(&self.policy.audience) {
            return Err(AuthError::InvalidToken(TokenError::WrongAudience));
        }
        self.not_revoked(claims)
    }

    /// `claims` unless their token or its session was revoked.
    pub(super) fn not_revoked(&self, claims: AccessClaims) -> Result<AccessClaims, AuthError> {
        if self
            .revocations
            .is_revoked(claims.sid.as_deref(), &claims.jti)
        {
            return Err(AuthError::InvalidToken(TokenError::Revoked));
        }
        Ok(claims)
    }

    /// Signature, time and issuer; any audience this server issues for.
    pub(super) fn verify_access_token(&self, token: &str) -> Result<AccessClaims, AuthError> {
        let ring = self.key_ring();
        access_token::verify(token, &ring.verifying, &self.expectations, self.clock.now())
            .map_err(AuthError::InvalidToken)
    }

    /// An access token for the session's user and the refresh token with
    /// `counter`.
    pub(super) fn issue(
        &self,
        session: &Session,
        user: &User,
        client: &Client,
        counter: u64,
        scope: &str,
        now: UnixTime,
    ) -> TokenResponse {
        let holder = Holder::User {
            user,
            session_id: session.id,
        };
        let (access_token, ttl) = self.mint(holder, client, &session.audience, scope, now);
        TokenResponse {
            access_token,
            expires_in: ttl,
            expires_at: now.saturating_add(ttl),
            refresh_token: Some(self.refresh_codec.encode(session.id, counter)),
            session_expires_at: Some(session.expires_at),
            scope: scope.to_owned(),
            id_token: None,
        }
    }

    /// Signs an access token; returns it with its lifetime in seconds.
    pub(super) fn mint(
        &self,
        holder: Holder<'_>,
        client: &Client,
        audience: &str,
        scope: &str,
        now: UnixTime,
    ) -> (String, i64) {
        let ttl = client
            .access_ttl_seconds
            .unwrap_or(self.policy.access_ttl_seconds)
            .min(self.policy.max_access_ttl());
        let (sub, sid, roles) = match holder {
            Holder::User { user, session_id } => (
                user.id.to_string(),
                Some(session_id.to_string()),
                user.roles.clone(),
            ),
            Holder::Client => (client.subject(), None, Vec::new()),
        };
        let claims = AccessClaims {
            iss: self.policy.issuer.clone(),
            sub,
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
            roles,
        };
        (self.key_ring().signing.sign(&claims), ttl)
    }
}

/// The user a token speaks for. Only sign-in tokens have one: they carry a
/// session and the user's id as `sub`. A client-credentials token (no
/// session, `sub` = `client:<id>`) has none, whatever its client is called.
pub(super) fn subject(claims: &AccessClaims) -> Result<Uuid, AuthError> {
    if claims.sid.is_none() {
        return Err(AuthError::InvalidToken(TokenError::NoUser));
    }
    Uuid::parse_str(&claims.sub).map_err(|_| AuthError::InvalidToken(TokenError::NoUser))
}

/// The caller's session; only a user's token has one, so client-credentials
/// tokens cannot use session endpoints.
pub(super) fn session_of(claims: &AccessClaims) -> Result<Uuid, AuthError> {
    subject(claims)?;
    claims
        .sid
        .as_deref()
        .and_then(|sid| Uuid::parse_str(sid).ok())
        .ok_or(AuthError::InvalidToken(TokenError::NoSession))
}
