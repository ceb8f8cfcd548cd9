//! Browser sign-in sessions: what the hosted sign-in page opens, so a
//! person signed in once passes through later authorization requests
//! without typing the password again.
//!
//! One is a [`Session`] like any other (listed in `/v1/sessions`, ended by
//! sign-out everywhere, by disabling the account, by the session cap) under
//! a client id no registered client can have, so no token endpoint ever
//! accepts it. Its cookie is a MAC'd session id under its own key
//! ([`RefreshTokenCodec::browser_sessions`]): nothing of it is stored.
//!
//! [`RefreshTokenCodec::browser_sessions`]: crate::refresh_token::RefreshTokenCodec::browser_sessions

use super::sign_in::NewSession;
use super::{Authority, Origin};
use crate::clock::UnixTime;
use crate::model::{Session, User};
use crate::AuthError;

/// The client id of browser sessions: the colon keeps it out of
/// [`crate::client::validate_client_id`]'s reach, so no client is called so.
pub const BROWSER_CLIENT_ID: &str = "latchkey:browser";

/// A browser session just opened: the cookie to set and how long it lasts.
pub struct BrowserSignIn {
    /// The cookie's value (a secret: never logged).
    pub cookie: String,
    pub session: Session,
    pub user: User,
    pub max_age_seconds: i64,
}

impl Authority {
    /// The hosted page's sign-in: the same password check, throttle, timing
    /// and audit as the password grant, opening a browser session.
    pub async fn browser_sign_in(
        &self,
        username: &str,
        password: &str,
        from: Origin,
    ) -> Result<BrowserSignIn, AuthError> {
        let new = NewSession {
            client_id: BROWSER_CLIENT_ID.to_owned(),
            audience: String::new(),
            scope: String::new(),
            lifetime_seconds: self.policy.browser_session_seconds,
        };
        let (session, user) = self.password_sign_in(username, password, new, from).await?;
        Ok(BrowserSignIn {
            cookie: self.browser_codec.encode(session.id, 0),
            max_age_seconds: session.expires_at.saturating_sub(session.created_at),
            session,
            user,
        })
    }

    /// The live browser session a cookie names, with its user; `None` for
    /// anything else (forged, ended, expired, a disabled account).
    pub async fn browser_session(
        &self,
        cookie: &str,
    ) -> Result<Option<(Session, User)>, AuthError> {
        let Some(claims) = self.browser_codec.decode(cookie) else {
            return Ok(None);
        };
        let now = self.clock.now();
        Ok(self
            .store
            .session_and_user(claims.session_id)
            .await?
            .filter(|(s, u)| {
                s.client_id == BROWSER_CLIENT_ID
                    && s.revoked_at.is_none()
                    && s.expires_at > now
                    && u.disabled_at.is_none()
            }))
    }

    /// Ends the browser session a cookie names, if it is live.
    pub async fn end_browser_session(&self, cookie: &str) -> Result<(), AuthError> {
        if let Some((session, _)) = self.browser_session(cookie).await? {
            self.end_session(session.id, "signed_out").await?;
        }
        Ok(())
    }

    /// Whether the person typed their password recently enough for a
    /// client's `max_age` (OpenID Connect Core §3.1.2.1).
    pub fn authenticated_within(&self, auth_time: UnixTime, max_age: Option<i64>) -> bool {
        max_age.is_none_or(|m| self.clock.now().saturating_sub(auth_time) <= m)
    }
}
