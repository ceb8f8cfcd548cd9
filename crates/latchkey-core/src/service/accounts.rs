//! Accounts: sign-up, the caller's own account, and password change.

use uuid::Uuid;

use super::invites::SignUpMode;
use super::tokens::{session_of, subject};
use super::{Authority, Origin};
use crate::access_token::AccessClaims;
use crate::access_token::TokenError;
use crate::audit::{AuditKind, Outcome};
use crate::email::Email;
use crate::model::User;
use crate::password::{Password, PasswordCheck};
use crate::throttle;
use crate::username::Username;
use crate::AuthError;

impl Authority {
    /// Sign-up as the server's [`SignUpMode`] allows: open, with an
    /// invite code, or not at all. An `email` is stored unverified and a
    /// verification link is mailed to it (when mail is configured).
    pub async fn sign_up(
        &self,
        username: &str,
        password: &str,
        invite: Option<&str>,
        email: Option<&str>,
        from: &Origin,
    ) -> Result<User, AuthError> {
        let result = match self.policy.sign_up {
            SignUpMode::Open => {
                self.create_account(username, password, email, Vec::new())
                    .await
            }
            SignUpMode::Invite => {
                self.sign_up_invited(username, password, invite, email)
                    .await
            }
            SignUpMode::Closed => Err(AuthError::SignUpDisabled),
        };
        let (outcome, user_id) = match &result {
            Ok(user) => (Outcome::Success, Some(user.id)),
            Err(_) => (Outcome::Failure, None),
        };
        self.audit(AuditKind::SignUp, outcome, user_id, None, from)
            .await;
        let user = result?;
        tracing::info!(user_id = %user.id, "account created");
        if let Some(email) = &user.email {
            // A new account has its whole allowance; taken so it counts.
            let _ = self.mail_allowance.take(user.id, self.clock.now());
            // The account exists: a failure to queue the mail is logged,
            // and the owner can ask again (`POST /v1/email`).
            if let Err(e) = self.send_verification(&user, email).await {
                tracing::warn!(user_id = %user.id, error = %e, "verification mail not queued");
            }
        }
        Ok(user)
    }

    /// A new account with `roles`: the rules of every input are checked,
    /// and a taken address refused, before the password is hashed.
    pub(super) async fn create_account(
        &self,
        username: &str,
        password: &str,
        email: Option<&str>,
        roles: Vec<String>,
    ) -> Result<User, AuthError> {
        let name = Username::parse(username)?;
        let password = Password::new_for_account(password)?;
        let email = email.map(Email::parse).transpose()?;
        if let Some(e) = &email {
            if self.store.user_by_email(&e.key).await?.is_some() {
                return Err(AuthError::EmailTaken);
            }
        }
        let phc = self.hasher.hash(password).await?;
        self.insert_account(name, phc, roles, email).await
    }

    /// The user an access token was issued to.
    pub async fn user(&self, caller: &AccessClaims) -> Result<User, AuthError> {
        self.user_by_id(subject(caller)?).await
    }

    async fn user_by_id(&self, user_id: Uuid) -> Result<User, AuthError> {
        self.store
            .user_by_id(user_id)
            .await?
            .ok_or(AuthError::InvalidToken(TokenError::UnknownSubject))
    }

    /// Changes the password and ends every session but the caller's. The
    /// current password is a guess like a sign-in's, throttled against the
    /// same counters; the wrong guess that uses up the account's allowance
    /// also ends the session that made it, so a stolen access token is
    /// worth a handful of guesses, not a stream of them.
    pub async fn change_password(
        &self,
        caller: &AccessClaims,
        current_password: &str,
        new_password: &str,
        from: &Origin,
    ) -> Result<(), AuthError> {
        // Before the password rules: a token with no user gets 401, not 400.
        let user_id = subject(caller)?;
        let result = self
            .set_new_password(caller, user_id, current_password, new_password, from)
            .await;
        let outcome = match &result {
            Ok(()) => Outcome::Success,
            Err(AuthError::Throttled { .. }) => Outcome::Throttled,
            Err(_) => Outcome::Failure,
        };
        self.audit(
            AuditKind::PasswordChange,
            outcome,
            Some(user_id),
            session_of(caller).ok(),
            from,
        )
        .await;
        result
    }

    async fn set_new_password(
        &self,
        caller: &AccessClaims,
        user_id: Uuid,
        current_password: &str,
        new_password: &str,
        from: &Origin,
    ) -> Result<(), AuthError> {
        let new_password = Password::new_for_account(new_password)?;
        let current_password = Password::for_check(current_password)?;
        let current = session_of(caller)?;
        let user = self.user_by_id(user_id).await?;
        let attempt = self
            // No known-address waiver: the caller is already signed in, so
            // a block keeps no one out, while a waiver would let a stolen
            // token used from the owner's network guess on.
            .admit_attempt(
                throttle::user_key(&user.username_key),
                Some(&user),
                false,
                from,
            )
            .await?;
        let check = self
            .hasher
            .verify(current_password, Some(user.password_hash.clone()))
            .await?;
        if check == PasswordCheck::Mismatch {
            if self
                .attempt_failed(attempt.as_ref(), Some(user.id), from)
                .await
            {
                tracing::info!(user_id = %user.id, session_id = %current, "password guesses over the allowance; session ended");
                self.end_session(current, "password_attempts").await?;
            }
            return Err(AuthError::WrongCurrentPassword);
        }
        self.attempt_succeeded(attempt).await?;
        let phc = self.hasher.hash(new_password).await?;
        self.store.set_password_hash(user.id, &phc).await?;
        self.end_sessions_of(user.id, Some(current), "password_changed")
            .await?;
        tracing::info!(user_id = %user.id, "password changed; other sessions ended");
        Ok(())
    }
}
