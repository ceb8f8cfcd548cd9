//! Upkeep, run periodically by every node: pruning what has expired,
//! writing the throttled attempts counted since the last pass to the audit
//! log, and the readings the server's metrics and readiness probe take.

use super::Authority;
use crate::audit::{AuditEvent, AuditKind, Outcome};
use crate::store::{PruneBefore, StoreError};
use crate::AuthError;

/// Most rows one pruning pass deletes per table.
const PRUNE_BATCH: usize = 500;
/// The audit log grows fastest; a pass a minute must outpace it.
const AUDIT_PRUNE_BATCH: usize = 5_000;

impl Authority {
    /// Drops revocation entries whose tokens have all expired, from memory
    /// and (a batch at a time) from the store, with sessions past their
    /// absolute lifetime, stale throttling counters, expired invite codes
    /// one-time account tokens and authorization codes, and audit records past their retention.
    /// Returns how many rows went from the store.
    pub async fn prune(&self) -> Result<usize, AuthError> {
        let now = self.clock.now();
        self.revocations.prune(now);
        let rules = self.policy.throttle;
        let window = rules
            .account
            .window_seconds
            .max(rules.address.window_seconds);
        let counters = self
            .store
            .prune_sign_in_failures(now.saturating_sub(window), now, PRUNE_BATCH)
            .await?;
        let audit = self
            .store
            .prune_audit_events(
                now.saturating_sub(self.policy.audit_retention_seconds),
                AUDIT_PRUNE_BATCH,
            )
            .await?;
        let invites = self.store.prune_invites(now, PRUNE_BATCH).await?;
        // Reset and verification links nobody followed.
        let account_tokens = self.store.prune_account_tokens(now, PRUNE_BATCH).await?;
        let codes = self
            .store
            .prune_authorization_codes(
                now.saturating_sub(super::authorization::CODE_KEPT_SECONDS),
                PRUNE_BATCH,
            )
            .await?;
        Ok(counters
            + codes
            + audit
            + invites
            + account_tokens
            + self
                .store
                .prune(PruneBefore {
                    revocations: now,
                    sessions: now,
                    batch: PRUNE_BATCH,
                })
                .await?)
    }

    /// Records throttled attempts counted since the last call: one audit
    /// row (and `latchkey::audit` line) per address, with the count. Run by
    /// the upkeep task every minute.
    pub async fn flush_throttled_audit(&self) {
        for (ip, count) in self.throttled_attempts.take() {
            let event = AuditEvent {
                at: self.clock.now(),
                kind: AuditKind::SignIn,
                outcome: Outcome::Throttled,
                user_id: None,
                session_id: None,
                ip,
                count,
                request_id: None,
                actor: None,
            };
            self.record(event).await;
        }
    }

    /// Sessions of all users neither revoked nor expired now; one counting
    /// query, for a periodic gauge.
    pub async fn count_live_sessions(&self) -> Result<u64, AuthError> {
        Ok(self.store.count_live_sessions(self.clock.now()).await?)
    }

    /// Whether the store answers and accepts writes now (the caller bounds
    /// the wait).
    pub async fn ping_store(&self) -> Result<(), StoreError> {
        self.store.ping().await
    }

    /// How long the current signing key has been signing, in seconds;
    /// `None` if no current key is loaded.
    pub fn signing_key_age(&self) -> Option<i64> {
        let ring = self.keys.ring();
        let current = ring.current()?;
        Some(
            self.clock
                .now()
                .saturating_sub(current.active_since())
                .max(0),
        )
    }
}
