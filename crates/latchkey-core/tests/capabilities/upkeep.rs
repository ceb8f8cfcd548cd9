//! Upkeep: pruning what has expired, and the aggregated throttling record.

use latchkey_core::store::{RevocationStore, SignInAttemptStore};
use latchkey_core::throttle;

use crate::*;

#[tokio::test]
async fn pruning_drops_expired_sessions_and_revocation_entries() {
    let w = World::with(|p| {
        p.session_lifetime_seconds = 3600;
        // No throttling counters: the counts below are sessions and entries.
        p.throttle.enabled = false;
    })
    .await;
    w.sign_up("alice").await;
    let ended = w.sign_in("alice", PASSWORD).await.expect("sign in");
    let ended_id = w.session(&ended).await.id;
    w.authority
        .sign_out(
            &w.claims(&ended),
            latchkey_core::service::SignOutScope::Current,
            &from(HOME),
        )
        .await
        .expect("sign out");
    // The entry lives as long as an access token could: until then, nothing.
    let entry_lifetime = w.policy.max_access_ttl() + w.policy.leeway_seconds;
    w.clock.advance(entry_lifetime - 1);
    assert_eq!(w.authority.prune().await.expect("prune"), 0);
    w.clock.advance(1);
    assert_eq!(w.authority.prune().await.expect("prune"), 1);
    assert!(w
        .store
        .live_revocations(w.now())
        .await
        .expect("read")
        .is_empty());
    // An ended session stays until its absolute lifetime is over.
    assert!(w.store.session(ended_id).await.expect("read").is_some());

    let live = w.sign_in("alice", PASSWORD).await.expect("sign in");
    w.clock.advance(3600 - entry_lifetime);
    assert_eq!(w.authority.prune().await.expect("prune"), 1);
    assert_eq!(w.store.session(ended_id).await.expect("read"), None);
    assert_eq!(w.session(&live).await.revoked_at, None);
}

#[tokio::test]
async fn pruning_drops_stale_throttle_counters_and_old_audit_records() {
    let w = World::with(|p| p.audit_retention_seconds = 24 * 3600).await;
    w.sign_up("alice").await;
    let wrong = w.sign_in_from("alice", "a guess", ELSEWHERE).await;
    assert!(matches!(wrong, Err(AuthError::InvalidCredentials)));
    let keys = [
        throttle::account_key("alice"),
        throttle::address_key(ELSEWHERE),
    ];
    let counters = w.store.throttle_entries(&keys).await.expect("read");
    assert_eq!(counters.len(), 2);
    assert!(!w.audit().await.is_empty());

    w.clock
        .advance(w.policy.throttle.account.window_seconds + 1);
    w.authority.prune().await.expect("prune");
    assert!(w
        .store
        .throttle_entries(&keys)
        .await
        .expect("read")
        .is_empty());
    assert_eq!(w.audit().await.len(), 2, "records within retention stay");

    w.clock.advance(24 * 3600);
    w.authority.prune().await.expect("prune");
    assert!(w.audit().await.is_empty());
}

#[tokio::test]
async fn throttled_attempts_reach_the_audit_log_once_per_address_with_their_count() {
    let w = World::with(|p| {
        p.throttle.account.free_failures = 1;
        p.throttle.account.base_delay_seconds = 600;
    })
    .await;
    w.sign_up("alice").await;
    let wrong = w.sign_in_from("alice", "a guess", ELSEWHERE).await;
    assert!(matches!(wrong, Err(AuthError::InvalidCredentials)));
    for _ in 0..3 {
        let refused = w.sign_in_from("alice", "a guess", ELSEWHERE).await;
        assert!(matches!(refused, Err(AuthError::Throttled { .. })));
    }
    let throttled = |events: Vec<AuditEvent>| -> Vec<_> {
        events
            .into_iter()
            .filter(|e| e.kind == AuditKind::SignIn && e.outcome == Outcome::Throttled)
            .collect()
    };
    assert!(throttled(w.audit().await).is_empty(), "not one row each");

    w.authority.flush_throttled_audit().await;
    let rows = throttled(w.audit().await);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].count, 3);
    assert_eq!(rows[0].ip.as_deref(), Some(ELSEWHERE));
    w.authority.flush_throttled_audit().await;
    assert_eq!(throttled(w.audit().await).len(), 1, "flushed once");
}
