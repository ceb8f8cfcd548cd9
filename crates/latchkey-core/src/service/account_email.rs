//! The account's email address: setting it (unverified) mails a one-time
//! verification link to it; following the link marks it verified, if the
//! account's address is still the one the link proves.

use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use super::tokens::{session_of, subject};
use super::{Authority, Origin};
use crate::access_token::AccessClaims;
use crate::account_token;
use crate::audit::{AuditKind, Outcome};
use crate::email::Email;
use crate::mail::MailValues;
use crate::model::{AccountTokenPurpose, StoredAccountToken, User};
use crate::AuthError;

/// Where a verification link leads: the page the binary serves.
pub const VERIFY_EMAIL_PATH: &str = "/account/verify-email";
/// A verification link works this long after it was issued.
pub const VERIFY_LINK_SECONDS: i64 = 24 * 3600;

impl Authority {
    /// Sets the caller's address (unverified, unless it is the verified one
    /// already) and mails a verification link to it. Refused with
    /// `TooManyMails` before anything changes if the account was sent a
    /// mail too recently, and with `EmailTaken` if another account has it.
    pub async fn set_email(
        &self,
        caller: &AccessClaims,
        raw: &str,
        from: &Origin,
    ) -> Result<User, AuthError> {
        let email = Email::parse(raw)?;
        let user_id = subject(caller)?;
        let user = self
            .store
            .user_by_id(user_id)
            .await?
            .ok_or(AuthError::InvalidToken(
                crate::access_token::TokenError::UnknownSubject,
            ))?;
        let unchanged_and_verified = user.email_verified_at.is_some()
            && user.email.as_ref().is_some_and(|e| e.key == email.key);
        if unchanged_and_verified {
            return Ok(user);
        }
        if self.policy.mail_enabled {
            self.mail_allowance
                .take(user.id, self.clock.now())
                .map_err(|retry_after_seconds| AuthError::TooManyMails {
                    retry_after_seconds,
                })?;
        }
        if !self.store.set_email(user.id, &email).await? {
            return Err(AuthError::EmailTaken);
        }
        self.audit(
            AuditKind::EmailChanged,
            Outcome::Success,
            Some(user.id),
            session_of(caller).ok(),
            from,
        )
        .await;
        self.send_verification(&user, &email).await?;
        tracing::info!(user_id = %user.id, "email address set; verification sent");
        Ok(User {
            email: Some(email),
            email_verified_at: None,
            ..user
        })
    }

    /// Mails a verification link for `email` to it (nothing without mail).
    pub(super) async fn send_verification(
        &self,
        user: &User,
        email: &Email,
    ) -> Result<(), AuthError> {
        if !self.policy.mail_enabled {
            tracing::info!(user_id = %user.id, "mail is not configured: no verification link sent");
            return Ok(());
        }
        let link = self.issue_verification_link(user.id, email).await?;
        self.enqueue_mail(
            &email.address,
            &self.policy.mail_templates.verify_email,
            &MailValues {
                link: link.expose_secret(),
                username: &user.username,
                expires_in_minutes: VERIFY_LINK_SECONDS / 60,
            },
        )
        .await
    }

    /// A verification link for the account's current address, voiding
    /// older ones; `None` if it has none. Not mailed: for operators'
    /// tooling and tests (the mailed one is [`Self::set_email`]'s).
    pub async fn email_verification_link(
        &self,
        user_id: Uuid,
    ) -> Result<Option<SecretString>, AuthError> {
        let Some(email) = self.store.user_by_id(user_id).await?.and_then(|u| u.email) else {
            return Ok(None);
        };
        self.issue_verification_link(user_id, &email)
            .await
            .map(Some)
    }

    async fn issue_verification_link(
        &self,
        user_id: Uuid,
        email: &Email,
    ) -> Result<SecretString, AuthError> {
        let minted = account_token::mint()?;
        let now = self.clock.now();
        self.store
            .issue_account_token(&StoredAccountToken {
                token_hash: minted.hash,
                user_id,
                purpose: AccountTokenPurpose::EmailVerification,
                email: Some(email.key.clone()),
                created_at: now,
                expires_at: now + VERIFY_LINK_SECONDS,
            })
            .await?;
        Ok(account_token::link(
            self.policy.public_url(),
            VERIFY_EMAIL_PATH,
            &minted.token,
        ))
    }

    /// Marks an address verified with a verification link's token (single
    /// use), if the account's address is still the one it proves.
    pub async fn verify_email(&self, token: &str, from: &Origin) -> Result<(), AuthError> {
        let result = self.verify_with_token(token).await;
        let (outcome, user_id) = match &result {
            Ok(user_id) => (Outcome::Success, Some(*user_id)),
            Err(_) => (Outcome::Failure, None),
        };
        self.audit(AuditKind::EmailVerified, outcome, user_id, None, from)
            .await;
        result.map(drop)
    }

    /// [`Self::verify_email`]'s work; the account's id.
    async fn verify_with_token(&self, token: &str) -> Result<Uuid, AuthError> {
        let hash = account_token::lookup_hash(token).ok_or(AuthError::InvalidLinkToken)?;
        let now = self.clock.now();
        let taken = self
            .store
            .take_account_token(&hash, AccountTokenPurpose::EmailVerification, now)
            .await?
            .ok_or(AuthError::InvalidLinkToken)?;
        let key = taken.email.ok_or(AuthError::InvalidLinkToken)?;
        if !self
            .store
            .mark_email_verified(taken.user_id, &key, now)
            .await?
        {
            return Err(AuthError::InvalidLinkToken);
        }
        tracing::info!(user_id = %taken.user_id, "email address verified");
        Ok(taken.user_id)
    }
}
