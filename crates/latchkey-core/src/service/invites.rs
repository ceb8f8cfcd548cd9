//! Who may sign up: anyone (`open`), holders of an invite code (`invite`)
//! or no one (`closed`, accounts come from operators). Invite codes are
//! issued by operators, single use, kept only as hashes; a sign-up takes
//! its code atomically before the account is created and gives it back if
//! the account cannot be (e.g. the username is taken), so of two sign-ups
//! with one code exactly one gets an account.

use secrecy::SecretString;

use super::administration::valid_roles;
use super::{Authority, Origin};
use crate::account_token;
use crate::audit::AuditKind;
use crate::model::{StoredInvite, User};
use crate::password::Password;
use crate::username::Username;
use crate::AuthError;

/// Who may use `POST /v1/sign-up`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SignUpMode {
    #[default]
    Open,
    /// Only with an invite code from an operator.
    Invite,
    /// Not at all: 403 `sign_up_disabled`.
    Closed,
}

impl SignUpMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Invite => "invite",
            Self::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Open, Self::Invite, Self::Closed]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

/// An invite code works this long unless its issuer says otherwise, and
/// at most and at least this long.
pub const DEFAULT_INVITE_SECONDS: i64 = 7 * 24 * 3600;
pub const MAX_INVITE_SECONDS: i64 = 90 * 24 * 3600;
pub const MIN_INVITE_SECONDS: i64 = 60;

/// An invite code just issued: the code itself goes to the caller once.
pub struct Invite {
    pub code: SecretString,
    pub expires_at: crate::clock::UnixTime,
    pub roles: Vec<String>,
}

impl Authority {
    /// Issues a single-use invite code, good for `expires_in` seconds
    /// (default 7 days), whose account starts with `roles`.
    pub async fn create_invite(
        &self,
        expires_in: Option<i64>,
        roles: Vec<String>,
        actor: &str,
        from: &Origin,
    ) -> Result<Invite, AuthError> {
        let lifetime = expires_in.unwrap_or(DEFAULT_INVITE_SECONDS);
        if !(MIN_INVITE_SECONDS..=MAX_INVITE_SECONDS).contains(&lifetime) {
            return Err(AuthError::InvalidRequest(format!(
                "expires_in must be {MIN_INVITE_SECONDS} to {MAX_INVITE_SECONDS} seconds"
            )));
        }
        let roles = valid_roles(roles)?;
        let minted = account_token::mint()?;
        let now = self.clock.now();
        let expires_at = now.saturating_add(lifetime);
        self.store
            .insert_invite(&StoredInvite {
                code_hash: minted.hash,
                roles: roles.clone(),
                created_by: actor.to_owned(),
                created_at: now,
                expires_at,
            })
            .await?;
        self.admin_audit(AuditKind::AdminInviteCreated, None, actor, from)
            .await;
        Ok(Invite {
            code: minted.token,
            expires_at,
            roles,
        })
    }

    /// Sign-up by invitation: the rules of the request first (cheap, and a
    /// 400 should not spend the code), then the code is taken, then the
    /// account created; a failure after the take gives the code back.
    pub(super) async fn sign_up_invited(
        &self,
        username: &str,
        password: &str,
        invite: Option<&str>,
        email: Option<&str>,
    ) -> Result<User, AuthError> {
        Username::parse(username)?;
        Password::new_for_account(password)?;
        let hash = invite
            .and_then(account_token::lookup_hash)
            .ok_or(AuthError::InvalidInvite)?;
        let taken = self
            .store
            .take_invite(&hash, self.clock.now())
            .await?
            .ok_or(AuthError::InvalidInvite)?;
        let created = self
            .create_account(username, password, email, taken.roles.clone())
            .await;
        if created.is_err() {
            if let Err(e) = self.store.insert_invite(&taken).await {
                tracing::warn!(error = %e, "an invite code could not be given back after a failed sign-up");
            }
        }
        created
    }
}
