//! Password attempts under the throttle (see [`crate::throttle`]): each
//! sign-in or password-change guess is counted before it is checked,
//! taken back when it succeeds, and audited when it blocks a key or is
//! refused.

use uuid::Uuid;

use super::{Authority, Origin};
use crate::audit::{AuditKind, Outcome};
use crate::clock::UnixTime;
use crate::model::User;
use crate::store::SignInAttemptStore;
use crate::throttle::{self, Admission, AttemptTakeBack, ThrottleEntry};
use crate::AuthError;

/// A password attempt the throttle let through, counted under these keys.
pub(super) struct Attempt {
    /// `None` when the account's counter was left alone (the known-address
    /// exemption).
    account_key: Option<String>,
    address_key: Option<String>,
    /// The counters right after counting it.
    entries: Vec<ThrottleEntry>,
    at: UnixTime,
}

impl Attempt {
    /// What a counted attempt that succeeded gives back: the account's
    /// counter is cleared (the owner proved themselves) and the address
    /// gets its attempt back, with the block it set if it was the last one
    /// counted. The owner getting in through the known-address exemption
    /// does not end the block the attacker elsewhere earned. Nothing when
    /// throttling is off (`None`).
    pub(super) fn take_back(attempt: Option<Self>) -> AttemptTakeBack {
        let Some(attempt) = attempt else {
            return AttemptTakeBack::default();
        };
        let address_key = attempt.address_key;
        AttemptTakeBack {
            clear: attempt.account_key,
            release: attempt
                .entries
                .into_iter()
                .find(|e| address_key.as_deref() == Some(e.key.as_str())),
        }
    }
}

impl Authority {
    /// Whether `user` has a live session from `from`'s address (an unknown
    /// user costs the same query, so the answer takes the same time).
    async fn has_live_session_from(
        &self,
        user: Option<&User>,
        from: &Origin,
        now: UnixTime,
    ) -> Result<bool, AuthError> {
        let Some(ip) = from.ip.as_deref() else {
            return Ok(false);
        };
        let user_id = user.map_or(Uuid::nil(), |u| u.id);
        Ok(self.store.has_live_session_from(user_id, ip, now).await?)
    }

    /// Counts a password attempt against the account and the address
    /// before any hashing, in one atomic store step (see
    /// [`crate::throttle`]); refuses it while either is blocked. With
    /// `spare_known_address`, the account's block is waived at an address
    /// the account has a live session from, where only the address counts.
    /// `None`: throttling is off.
    pub(super) async fn admit_attempt(
        &self,
        account_key: String,
        user: Option<&User>,
        spare_known_address: bool,
        from: &Origin,
    ) -> Result<Option<Attempt>, AuthError> {
        let rules = self.policy.throttle;
        if !rules.enabled {
            return Ok(None);
        }
        let address_key = from.network.as_deref().map(throttle::address_key);
        let mut keys = vec![(account_key.clone(), rules.account)];
        keys.extend(address_key.clone().map(|k| (k, rules.address)));
        let now = self.clock.now();
        let refused = match self.store.reserve_attempt(&keys, now).await? {
            Admission::Admitted(entries) => {
                return Ok(Some(Attempt {
                    account_key: Some(account_key),
                    address_key,
                    entries,
                    at: now,
                }))
            }
            Admission::Refused(entries) => entries,
        };
        let blocks = throttle::Blocks::at(&refused, &account_key, now);
        let known_address = spare_known_address
            && blocks.account.is_some()
            && blocks.address.is_none()
            && self.has_live_session_from(user, from, now).await?;
        let refused = if known_address {
            match self.store.reserve_attempt(&keys[1..], now).await? {
                Admission::Admitted(entries) => {
                    return Ok(Some(Attempt {
                        account_key: None,
                        address_key,
                        entries,
                        at: now,
                    }))
                }
                Admission::Refused(entries) => entries,
            }
        } else {
            refused
        };
        let retry_after_seconds = throttle::Blocks::at(&refused, &account_key, now)
            .retry_after(known_address)
            .unwrap_or(1);
        tracing::debug!(
            ip = from.ip.as_deref().unwrap_or("-"),
            retry_after_seconds,
            "password attempt throttled"
        );
        self.throttled_attempts.note(from.ip.as_deref());
        Err(AuthError::Throttled {
            retry_after_seconds,
        })
    }

    /// A counted attempt failed: it stays counted. Each key it left blocked
    /// is audited as a `lockout` (an unknown user's alike, so the writes do
    /// not tell them apart). Returns whether the account is now blocked.
    pub(super) async fn attempt_failed(
        &self,
        attempt: Option<&Attempt>,
        user_id: Option<Uuid>,
        from: &Origin,
    ) -> bool {
        let Some(attempt) = attempt else {
            return false;
        };
        let mut account_blocked = false;
        for entry in &attempt.entries {
            let Some(blocked_for_seconds) = entry.blocked_for(attempt.at) else {
                continue;
            };
            let is_account = attempt.account_key.as_deref() == Some(entry.key.as_str());
            account_blocked |= is_account;
            tracing::info!(
                attempts = entry.failures,
                blocked_for_seconds,
                kind = if is_account { "account" } else { "address" },
                "password attempts over the allowance; key blocked"
            );
            let user_id = user_id.filter(|_| is_account);
            self.audit(AuditKind::Lockout, Outcome::Throttled, user_id, None, from)
                .await;
        }
        account_blocked
    }

    /// A counted attempt succeeded: gives it back to the throttle on its
    /// own (see [`Attempt::take_back`]). A sign-in does it in the same
    /// transaction as opening its session instead.
    pub(super) async fn attempt_succeeded(
        &self,
        attempt: Option<Attempt>,
    ) -> Result<(), AuthError> {
        let back = Attempt::take_back(attempt);
        if let Some(key) = &back.clear {
            self.store.clear_sign_in_failures(key).await?;
        }
        if let Some(reserved) = &back.release {
            self.store.release_attempt(reserved).await?;
        }
        Ok(())
    }

    /// Clears an account's failed sign-in counter (operator unlock); `true`
    /// if it had one.
    pub async fn unlock_account(
        store: &dyn SignInAttemptStore,
        username: &str,
    ) -> Result<bool, AuthError> {
        Ok(store
            .clear_sign_in_failures(&throttle::account_key(username))
            .await?)
    }
}
