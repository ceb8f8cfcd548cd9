//! OpenID Connect: ID tokens (Core §2), signed by the ID-token key lineage
//! (RS256, which every OpenID library accepts) or, for a client registered
//! for it, by the access tokens' key; the UserInfo endpoint's claims (§5.3)
//! by scope; and RP-initiated logout's `id_token_hint`.

use uuid::Uuid;

use super::tokens::subject;
use super::Authority;
use crate::access_token::{Algorithm, TokenError};
use crate::client::{parse_scope, Client};
use crate::clock::UnixTime;
use crate::model::{Session, StoredAuthorizationCode, User};
use crate::AuthError;
pub use latchkey_wire::jws::id_token::IdClaims;

/// Scopes about the user rather than an API: the user grants them, no
/// client registers them.
pub const OPENID_SCOPES: [&str; 3] = ["openid", "profile", "email"];

/// The UserInfo answer: `sub` always, the rest by scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub sub: String,
    pub preferred_username: Option<String>,
    pub email: Option<String>,
    pub email_verified: Option<bool>,
}

impl UserInfo {
    fn of(user: &User, scope: &str) -> Result<Self, AuthError> {
        let scopes = parse_scope(scope)?;
        let email = scopes
            .contains(&"email")
            .then_some(user.email.as_ref())
            .flatten();
        Ok(Self {
            sub: user.id.to_string(),
            preferred_username: scopes.contains(&"profile").then(|| user.username.clone()),
            email: email.map(|e| e.address.clone()),
            email_verified: email.map(|_| user.email_verified_at.is_some()),
        })
    }
}

impl Authority {
    /// The ID token of a code exchange: who signed in, when, for which
    /// client, in which session, with the client's nonce.
    pub(super) async fn id_token(
        &self,
        code: &StoredAuthorizationCode,
        session: &Session,
        user: &User,
        client: &Client,
        now: UnixTime,
    ) -> Result<String, AuthError> {
        let info = UserInfo::of(user, &session.scope)?;
        let claims = IdClaims {
            iss: self.policy.issuer.clone(),
            sub: info.sub,
            aud: session.client_id.clone(),
            exp: now.saturating_add(self.policy.access_ttl_seconds),
            iat: now,
            auth_time: code.auth_time,
            nonce: code.nonce.clone(),
            sid: session.id.to_string(),
            preferred_username: info.preferred_username,
            email: info.email,
            email_verified: info.email_verified,
        };
        let access_key = self.key_ring().signing.clone();
        let key = match client.id_token_algorithm {
            Some(alg) if alg != Algorithm::Rs256 && access_key.alg().accepts(alg.as_str()) => {
                access_key
            }
            Some(alg) if alg != Algorithm::Rs256 => {
                // The access algorithm changed since the client chose it.
                tracing::warn!(client = %client.client_id, %alg, "ID token signed with RS256: the access tokens' key is no longer of the client's algorithm");
                self.keys.id_token_key().await?
            }
            _ => self.keys.id_token_key().await?,
        };
        Ok(key.sign_jwt(&claims))
    }

    /// UserInfo (OpenID Connect Core §5.3) for a bearer access token of any
    /// audience we issue, granted scope `openid`.
    pub async fn userinfo(&self, bearer: &str) -> Result<UserInfo, AuthError> {
        let claims = self.not_revoked(self.verify_access_token(bearer)?)?;
        let scope = claims.scope.clone().unwrap_or_default();
        if !parse_scope(&scope)?.contains(&"openid") {
            return Err(AuthError::InsufficientScope);
        }
        match self.store.user_by_id(subject(&claims)?).await? {
            Some(user) if user.disabled_at.is_none() => UserInfo::of(&user, &scope),
            _ => Err(AuthError::InvalidToken(TokenError::Revoked)),
        }
    }

    /// The claims of an `id_token_hint`: one of our ID tokens, expired or
    /// not (a logout often comes after it expired).
    pub fn id_token_hint(&self, token: &str) -> Result<IdClaims, AuthError> {
        let ring = self.key_ring();
        latchkey_wire::jws::id_token::verify_signature_and_issuer(
            token,
            &ring.verifying,
            &self.policy.issuer,
        )
        .map_err(AuthError::InvalidToken)
    }

    /// RP-initiated logout: ends the session the hint's tokens belong to
    /// (if it is still its user's and client's) and the browser session.
    pub async fn rp_logout(
        &self,
        hint: Option<&IdClaims>,
        browser_cookie: Option<&str>,
    ) -> Result<(), AuthError> {
        if let Some(hint) = hint {
            if let Ok(id) = Uuid::parse_str(&hint.sid) {
                let owned =
                    self.store.session(id).await?.is_some_and(|s| {
                        s.user_id.to_string() == hint.sub && s.client_id == hint.aud
                    });
                if owned {
                    self.end_session(id, "signed_out").await?;
                }
            }
        }
        if let Some(cookie) = browser_cookie {
            self.end_browser_session(cookie).await?;
        }
        Ok(())
    }
}
