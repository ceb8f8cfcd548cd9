//! The authorization-code flow (RFC 6749 §4.1) with PKCE (RFC 7636, `S256`
//! only, as RFC 9700 asks): what a client may ask a user for, consent to
//! third-party clients, codes, and their exchange for tokens.
//!
//! A code is 256 random bits, stored only as its SHA-256, single use and
//! valid for [`CODE_LIFETIME_SECONDS`]. Its session id is chosen when it is
//! issued, so presenting it a second time ends the session its first use
//! opened (§4.1.2) — a stolen code that races its owner's exchange gains
//! nothing lasting.

use aws_lc_rs::digest;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use secrecy::SecretString;
use subtle::ConstantTimeEq as _;
use uuid::Uuid;

use super::openid::OPENID_SCOPES;
use super::tokens::subject;
use super::{Authority, Origin, TokenResponse};
use crate::access_token::AccessClaims;
use crate::account_token;
use crate::audit::{AuditKind, Outcome};
use crate::client::{parse_scope, Client};
use crate::model::{CodeRedemption, Consent, Session, StoredAuthorizationCode, User};
use crate::store::{AttemptTakeBack, SessionOpening};
use crate::AuthError;

/// How long a code may wait for its exchange.
pub const CODE_LIFETIME_SECONDS: i64 = 60;
/// How long after it expires a code is still recognised, so a late replay
/// still ends the session its first use opened.
pub(super) const CODE_KEPT_SECONDS: i64 = 3600;

/// What an authorization request asks for, checked against the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationGrant {
    /// Space-separated, in the request's order: OpenID scopes (the user's
    /// to grant) and the client's registered API scopes.
    pub scope: String,
    pub audience: String,
}

/// An authorization request the user approved: what its code carries.
pub struct CodeRequest<'a> {
    pub client: &'a Client,
    pub redirect_uri: &'a str,
    pub grant: &'a AuthorizationGrant,
    /// PKCE `S256` challenge (checked well-formed by the caller).
    pub code_challenge: &'a str,
    pub nonce: Option<&'a str>,
}

impl Authority {
    /// The grant a client's authorization request asks for. OpenID scopes
    /// (`openid`, `profile`, `email`) concern the user, who decides; any
    /// other scope must be one the client is registered for. No `scope` at
    /// all asks for every scope the client has.
    pub fn authorization_grant(
        &self,
        client: &Client,
        scope: Option<&str>,
    ) -> Result<AuthorizationGrant, AuthError> {
        let Some(requested) = scope else {
            let g = client.grant(None, None, &self.policy.audience)?;
            return Ok(AuthorizationGrant {
                scope: g.scope,
                audience: g.audience,
            });
        };
        let requested = parse_scope(requested)?;
        let api: Vec<&str> = requested
            .iter()
            .copied()
            .filter(|s| !OPENID_SCOPES.contains(s))
            .collect();
        let g = client.grant(Some(&api.join(" ")), None, &self.policy.audience)?;
        Ok(AuthorizationGrant {
            scope: requested.join(" "),
            audience: g.audience,
        })
    }

    /// Whether the user must be asked before `client` gets `scope`: only
    /// third-party clients ask, and only for scopes not consented before.
    pub async fn needs_consent(
        &self,
        client: &Client,
        user_id: Uuid,
        scope: &str,
    ) -> Result<bool, AuthError> {
        if !client.third_party {
            return Ok(false);
        }
        let Some(consent) = self.store.consent(user_id, &client.client_id).await? else {
            return Ok(true);
        };
        let granted = parse_scope(&consent.scope)?;
        Ok(!parse_scope(scope)?.iter().all(|s| granted.contains(s)))
    }

    /// Remembers the user's consent to `scope` for `client`, adding to what
    /// they consented to before.
    pub async fn grant_consent(
        &self,
        client: &Client,
        user_id: Uuid,
        scope: &str,
        from: &Origin,
    ) -> Result<(), AuthError> {
        let before = self.store.consent(user_id, &client.client_id).await?;
        let mut scopes: Vec<&str> = before
            .as_ref()
            .map(|c| parse_scope(&c.scope))
            .transpose()?
            .unwrap_or_default();
        for s in parse_scope(scope)? {
            if !scopes.contains(&s) {
                scopes.push(s);
            }
        }
        self.store
            .save_consent(&Consent {
                user_id,
                client_id: client.client_id.clone(),
                scope: scopes.join(" "),
                granted_at: self.clock.now(),
            })
            .await?;
        self.audit(
            AuditKind::ConsentGranted,
            Outcome::Success,
            Some(user_id),
            None,
            from,
        )
        .await;
        Ok(())
    }

    /// The caller's consents, by client id.
    pub async fn consents(&self, caller: &AccessClaims) -> Result<Vec<Consent>, AuthError> {
        Ok(self.store.consents_of_user(subject(caller)?).await?)
    }

    /// Withdraws the caller's consent to a client and ends the caller's
    /// sessions of that client: what it was allowed, it no longer is.
    pub async fn withdraw_consent(
        &self,
        caller: &AccessClaims,
        client_id: &str,
        from: &Origin,
    ) -> Result<(), AuthError> {
        let user_id = subject(caller)?;
        if !self.store.withdraw_consent(user_id, client_id).await? {
            return Err(AuthError::NotFound);
        }
        let now = self.clock.now();
        for session in self.store.live_sessions_of_user(user_id, now).await? {
            if session.client_id == client_id {
                self.end_session(session.id, "consent_withdrawn").await?;
            }
        }
        self.audit(
            AuditKind::ConsentWithdrawn,
            Outcome::Success,
            Some(user_id),
            None,
            from,
        )
        .await;
        Ok(())
    }

    /// A code for `user`, who typed their password at `auth_time`.
    pub async fn issue_code(
        &self,
        request: &CodeRequest<'_>,
        user: &User,
        auth_time: i64,
    ) -> Result<SecretString, AuthError> {
        let minted = account_token::mint()?;
        let now = self.clock.now();
        self.store
            .insert_authorization_code(&StoredAuthorizationCode {
                code_hash: minted.hash,
                client_id: request.client.client_id.clone(),
                redirect_uri: request.redirect_uri.to_owned(),
                code_challenge: request.code_challenge.to_owned(),
                user_id: user.id,
                session_id: Uuid::new_v4(),
                scope: request.grant.scope.clone(),
                audience: request.grant.audience.clone(),
                nonce: request.nonce.map(str::to_owned),
                auth_time,
                created_at: now,
                expires_at: now.saturating_add(CODE_LIFETIME_SECONDS),
                redeemed_at: None,
            })
            .await?;
        Ok(minted.token)
    }

    /// RFC 6749 §4.1.3: a code for tokens. Every failure is
    /// [`AuthError::InvalidCode`] (`invalid_grant`)
    /// and leaves the code spent; a code presented again ends the session
    /// its first use opened.
    pub async fn exchange_code(
        &self,
        code: &str,
        client: &Client,
        redirect_uri: &str,
        code_verifier: &str,
        from: &Origin,
    ) -> Result<TokenResponse, AuthError> {
        let Some(hash) = account_token::lookup_hash(code) else {
            return Err(AuthError::InvalidCode);
        };
        let now = self.clock.now();
        let code = match self.store.redeem_authorization_code(&hash, now).await? {
            CodeRedemption::First(code) => code,
            CodeRedemption::Again(code) => {
                self.end_session(code.session_id, "code_reused").await?;
                self.audit(
                    AuditKind::CodeReuse,
                    Outcome::Failure,
                    Some(code.user_id),
                    Some(code.session_id),
                    from,
                )
                .await;
                return Err(AuthError::InvalidCode);
            }
            CodeRedemption::Unknown => return Err(AuthError::InvalidCode),
        };
        let valid = code.client_id == client.client_id
            && code.redirect_uri == redirect_uri
            && code.expires_at > now
            && pkce_matches(&code.code_challenge, code_verifier);
        let user = match self.store.user_by_id(code.user_id).await? {
            Some(u) if valid && u.disabled_at.is_none() => u,
            _ => {
                self.audit(
                    AuditKind::CodeExchange,
                    Outcome::Failure,
                    Some(code.user_id),
                    None,
                    from,
                )
                .await;
                return Err(AuthError::InvalidCode);
            }
        };
        let session = self.open_code_session(&code, client, &user, from).await?;
        let mut tokens = self.issue(&session, &user, client, 0, &session.scope, now);
        if parse_scope(&session.scope)?.contains(&"openid") {
            tokens.id_token = Some(self.id_token(&code, &session, &user, client, now).await?);
        }
        Ok(tokens)
    }

    async fn open_code_session(
        &self,
        code: &StoredAuthorizationCode,
        client: &Client,
        user: &User,
        from: &Origin,
    ) -> Result<Session, AuthError> {
        let now = self.clock.now();
        let lifetime = client
            .session_lifetime_seconds
            .unwrap_or(self.policy.session_lifetime_seconds);
        let session = Session {
            id: code.session_id,
            user_id: user.id,
            client_id: client.client_id.clone(),
            audience: code.audience.clone(),
            scope: code.scope.clone(),
            counter: 0,
            created_at: now,
            last_refreshed_at: now,
            expires_at: now.saturating_add(lifetime),
            user_agent: from.user_agent.clone(),
            ip: from.ip.clone(),
            revoked_at: None,
            revoke_reason: None,
        };
        let opening = SessionOpening {
            audit: self.audit_event(
                AuditKind::CodeExchange,
                Outcome::Success,
                Some(user.id),
                Some(session.id),
                from,
            ),
            session,
            attempt: AttemptTakeBack::default(),
            limit: self.session_limit(now),
        };
        let ended = self.store.open_session(&opening).await?;
        opening.audit.emit();
        self.sessions_evicted(user.id, &ended, &opening.limit, from)
            .await;
        Ok(opening.session)
    }
}

/// Whether a PKCE challenge is well formed: `S256` output, base64url of 32
/// bytes.
pub fn is_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// RFC 7636 §4.6: `BASE64URL(SHA256(verifier)) == challenge`, for a
/// verifier of 43-128 unreserved characters, compared in constant time.
fn pkce_matches(challenge: &str, verifier: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    if !well_formed {
        return false;
    }
    let digest = digest::digest(&digest::SHA256, verifier.as_bytes());
    let computed = URL_SAFE_NO_PAD.encode(digest.as_ref());
    bool::from(computed.as_bytes().ct_eq(challenge.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7636 Appendix B's example.
    #[test]
    fn pkce_s256_matches_the_rfc_example() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(is_s256_challenge(challenge));
        assert!(pkce_matches(challenge, verifier));
        assert!(!pkce_matches(challenge, &verifier.replace('d', "e")));
        assert!(!pkce_matches(challenge, challenge));
        // `plain` (the challenge is the verifier) never passes.
        assert!(!pkce_matches(verifier, verifier));
        assert!(!pkce_matches(challenge, "short"));
        assert!(!pkce_matches(challenge, &"a".repeat(129)));
    }
}
