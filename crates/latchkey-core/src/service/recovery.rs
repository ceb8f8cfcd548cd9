//! Account recovery: one-time links that let a person set a new password
//! without the old one (see [`crate::account_token`]).

use secrecy::SecretString;
use uuid::Uuid;

use super::Authority;
use crate::account_token;
use crate::model::{AccountTokenPurpose, StoredAccountToken};
use crate::AuthError;

/// Where a reset link leads: the page the binary serves.
pub const RESET_PASSWORD_PATH: &str = "/account/reset-password";
/// A reset link works this long after it was issued.
pub const RESET_LINK_SECONDS: i64 = 30 * 60;

impl Authority {
    /// Issues a password-reset token for `user_id`, voiding the user's
    /// older ones, and returns the link to `lifetime_seconds` of use.
    pub async fn password_reset_link(
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
}
