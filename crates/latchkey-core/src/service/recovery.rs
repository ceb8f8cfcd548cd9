//! Account recovery: one-time links that let a person set a new password
//! without the old one (see [`crate::account_token`]), mailed on request to
//! the account's verified address.
//!
//! A request (`forgot_password`) only puts itself in the outbox, the same
//! store write whether or not the account exists or has a verified
//! address, so neither its answer nor its time tells; the mail worker
//! answers it later (`answer_reset_request`).

use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use super::{Authority, Origin};
use crate::account_token;
use crate::audit::{AuditKind, Outcome};
use crate::email::{Email, MAX_EMAIL_BYTES};
use crate::mail::MailValues;
use crate::model::{AccountTokenPurpose, OutboxKind, StoredAccountToken, User};
use crate::password::Password;
use crate::throttle;
use crate::username::{Username, MAX_USERNAME_BYTES};
use crate::AuthError;

/// Which account a password reset is asked for.
#[derive(Debug, Clone, Copy)]
pub enum ForgotBy<'a> {
    Username(&'a str),
    Email(&'a str),
}

/// How a queued request names its account in the outbox row.
const BY_USERNAME: &str = "username:";
const BY_EMAIL: &str = "email:";

/// Where a reset link leads: the page the binary serves.
pub const RESET_PASSWORD_PATH: &str = "/account/reset-password";
/// A reset link works this long after it was issued.
pub const RESET_LINK_SECONDS: i64 = 30 * 60;

impl Authority {
    /// Issues a password-reset token for `user_id`, voiding the user's
    /// older ones, and returns the link to `lifetime_seconds` of use. When
    /// mail is configured and the account has a verified address, the link
    /// is also mailed there.
    pub async fn password_reset_link(
        &self,
        user_id: Uuid,
        lifetime_seconds: i64,
    ) -> Result<SecretString, AuthError> {
        let link = self.issue_reset_link(user_id, lifetime_seconds).await?;
        if self.policy.mail_enabled {
            if let Some(user) = self.store.user_by_id(user_id).await? {
                if let Some(email) = verified_email(&user) {
                    self.mail_reset_link(&user, email, &link, lifetime_seconds)
                        .await?;
                }
            }
        }
        Ok(link)
    }

    async fn issue_reset_link(
        &self,
        user_id: Uuid,
        lifetime_seconds: i64,
    ) -> Result<SecretString, AuthError> {
        let minted = account_token::mint()?;
        let now = self.clock.now();
        self.store
            .issue_account_token(&StoredAccountToken {
                token_hash: minted.hash,
                user_id,
                purpose: AccountTokenPurpose::PasswordReset,
                email: None,
                created_at: now,
                expires_at: now + lifetime_seconds,
            })
            .await?;
        Ok(account_token::link(
            self.policy.public_url(),
            RESET_PASSWORD_PATH,
            &minted.token,
        ))
    }

    async fn mail_reset_link(
        &self,
        user: &User,
        to: &Email,
        link: &SecretString,
        lifetime_seconds: i64,
    ) -> Result<(), AuthError> {
        self.enqueue_mail(
            &to.address,
            &self.policy.mail_templates.password_reset,
            &MailValues {
                link: link.expose_secret(),
                username: &user.username,
                expires_in_minutes: lifetime_seconds / 60,
            },
        )
        .await
    }

    /// Someone forgot the password of the account with this username or
    /// address. Always `Ok` for any well-formed identifier: the request is
    /// put in the outbox, answered later by the mail worker.
    pub async fn forgot_password(&self, by: ForgotBy<'_>) -> Result<(), AuthError> {
        let (prefix, identifier) = match by {
            ForgotBy::Username(name) => (BY_USERNAME, name),
            ForgotBy::Email(address) => (BY_EMAIL, address),
        };
        // Bounded before anything else; the same rule for every account.
        let identifier = identifier.trim();
        if identifier.is_empty() || identifier.len() > MAX_USERNAME_BYTES.max(MAX_EMAIL_BYTES) {
            return Err(AuthError::InvalidRequest(
                "username or email must be 1 to 256 bytes".to_owned(),
            ));
        }
        if !self.policy.mail_enabled {
            tracing::info!("password reset asked for, but mail is not configured: nothing sent");
            return Ok(());
        }
        self.enqueue(
            OutboxKind::PasswordResetRequest,
            &format!("{prefix}{identifier}"),
            "",
            (String::new(), String::new()),
        )
        .await
    }

    /// The mail worker's half of [`Self::forgot_password`]: a reset link
    /// to the account's verified address, if it has one and was not sent a
    /// mail too recently; nothing otherwise.
    pub(super) async fn answer_reset_request(&self, request: &str) -> Result<(), AuthError> {
        let user = if let Some(address) = request.strip_prefix(BY_EMAIL) {
            match Email::parse(address) {
                Ok(email) => self.store.user_by_email(&email.key).await?,
                Err(_) => None,
            }
        } else {
            match Username::parse(request.strip_prefix(BY_USERNAME).unwrap_or(request)) {
                Ok(name) => self.store.user_by_key(&name.key).await?,
                Err(_) => None,
            }
        };
        let Some(user) = user.filter(|u| u.disabled_at.is_none()) else {
            tracing::info!("password reset asked for an unknown or disabled account: nothing sent");
            return Ok(());
        };
        let Some(email) = verified_email(&user) else {
            tracing::info!(user_id = %user.id, "password reset asked for an account without a verified email: nothing sent");
            return Ok(());
        };
        if let Err(wait) = self.mail_allowance.take(user.id, self.clock.now()) {
            tracing::info!(user_id = %user.id, retry_in_seconds = wait, "password reset asked for too often: nothing sent");
            return Ok(());
        }
        let link = self.issue_reset_link(user.id, RESET_LINK_SECONDS).await?;
        self.mail_reset_link(&user, email, &link, RESET_LINK_SECONDS)
            .await?;
        tracing::info!(user_id = %user.id, "password reset link mailed");
        Ok(())
    }

    /// Sets a new password with a reset link's token: the password rules
    /// are checked first (a weak password leaves the token usable), then
    /// the token is taken (single use), every session of the account ends
    /// and its sign-in throttle counter is cleared.
    pub async fn reset_password(
        &self,
        token: &str,
        new_password: &str,
        from: &Origin,
    ) -> Result<(), AuthError> {
        let result = self.reset_with_token(token, new_password).await;
        let (outcome, user_id) = match &result {
            Ok(user_id) => (Outcome::Success, Some(*user_id)),
            Err(_) => (Outcome::Failure, None),
        };
        self.audit(AuditKind::PasswordReset, outcome, user_id, None, from)
            .await;
        result.map(drop)
    }

    /// [`Self::reset_password`]'s work; the account's id.
    async fn reset_with_token(&self, token: &str, new_password: &str) -> Result<Uuid, AuthError> {
        let new_password = Password::new_for_account(new_password)?;
        let hash = account_token::lookup_hash(token).ok_or(AuthError::InvalidLinkToken)?;
        let taken = self
            .store
            .take_account_token(&hash, AccountTokenPurpose::PasswordReset, self.clock.now())
            .await?
            .ok_or(AuthError::InvalidLinkToken)?;
        let user = self
            .store
            .user_by_id(taken.user_id)
            .await?
            .filter(|u| u.disabled_at.is_none())
            .ok_or(AuthError::InvalidLinkToken)?;
        let phc = self.hasher.hash(new_password).await?;
        self.store.set_password_hash(user.id, &phc).await?;
        self.end_sessions_of(user.id, None, "password_reset")
            .await?;
        self.store
            .clear_sign_in_failures(&throttle::user_key(&user.username_key))
            .await?;
        tracing::info!(user_id = %user.id, "password reset through a link; every session ended");
        Ok(user.id)
    }
}

fn verified_email(user: &User) -> Option<&Email> {
    user.email
        .as_ref()
        .filter(|_| user.email_verified_at.is_some())
}
