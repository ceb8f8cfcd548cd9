//! Upkeep, run periodically by every node: pruning what has expired, and
//! writing the throttled attempts counted since the last pass to the audit
//! log.

use super::Authority;
use crate::audit::{AuditEvent, AuditKind, Outcome};
use crate::store::PruneBefore;
use crate::AuthError;

/// Most rows one pruning pass deletes per table.
const PRUNE_BATCH: usize = 500;
/// The audit log grows fastest; a pass a minute must outpace it.
const AUDIT_PRUNE_BATCH: usize = 5_000;

impl Authority {
    /// Drops revocation entries whose tokens have all expired, from memory
    /// and (a batch at a time) from the store, with sessions past their
    /// absolute lifetime, stale throttling counters and audit records past
    /// their retention. Returns how many rows went from the store.
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
        Ok(counters
            + audit
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
            };
            self.record(event).await;
        }
    }
}
