//! Sign-in: sessions, the one answer for every failure, throttling.

use latchkey_core::store::SignInAttemptStore;
use latchkey_core::throttle;

use crate::*;

#[tokio::test]
async fn sign_in_opens_a_session_and_issues_tokens_for_it() {
    let w = World::new().await;
    let user = w.sign_up("alice").await;
    let tokens = w.sign_in("alice", PASSWORD).await.expect("sign in");

    assert_eq!(tokens.expires_in, 600);
    assert_eq!(tokens.expires_at, START + 600);
    let claims = w.claims(&tokens);
    assert_eq!(claims.sub, user.id.to_string());
    assert_eq!(claims.client_id, "default");
    assert!(claims.aud.contains("latchkey"));
    assert_eq!(claims.exp, START + 600);

    let session = w.session(&tokens).await;
    assert_eq!(claims.sid, Some(session.id.to_string()));
    assert_eq!(session.user_id, user.id);
    assert_eq!(session.client_id, "default");
    assert_eq!(session.counter, 0);
    assert_eq!(session.created_at, START);
    assert_eq!(session.last_refreshed_at, START);
    assert_eq!(session.expires_at, START + 90 * 24 * 3600);
    assert_eq!(session.ip.as_deref(), Some(HOME));
    assert_eq!(session.user_agent.as_deref(), Some("capability-tests"));
    assert_eq!(session.revoked_at, None);

    let signed_in = w.audited(AuditKind::SignIn).await;
    assert_eq!(outcomes(&signed_in), [Outcome::Success]);
    assert_eq!(signed_in[0].session_id, Some(session.id));
}

#[tokio::test]
async fn every_failure_costs_one_verification_and_gets_the_same_answer() {
    let w = World::new().await;
    let user = w.sign_up("alice").await;
    let before = w.verifications();
    let mut answers = Vec::new();
    for (username, password) in [
        ("alice", "not the password"),
        ("bob", PASSWORD),
        ("not a username", PASSWORD),
    ] {
        let refused = w.sign_in(username, password).await;
        let Err(e @ AuthError::InvalidCredentials) = refused else {
            panic!("{username}: {refused:?}");
        };
        answers.push(e.to_string());
    }
    // Unknown users are checked against a dummy hash: same work, same time.
    assert_eq!(w.verifications() - before, 3);
    answers.dedup();
    assert_eq!(answers.len(), 1);

    let failures = w.audited(AuditKind::SignIn).await;
    assert_eq!(outcomes(&failures), [Outcome::Failure; 3]);
    let users: Vec<_> = failures.iter().map(|e| e.user_id).collect();
    assert_eq!(users, [Some(user.id), None, None]);
}

#[tokio::test]
async fn over_the_allowance_the_account_is_blocked_even_for_the_right_password() {
    let w = World::with(|p| {
        p.throttle.account.free_failures = 3;
        p.throttle.account.base_delay_seconds = 60;
    })
    .await;
    let user = w.sign_up("alice").await;
    for _ in 0..3 {
        let wrong = w.sign_in_from("alice", "a guess", ELSEWHERE).await;
        assert!(matches!(wrong, Err(AuthError::InvalidCredentials)));
    }
    let lockouts = w.audited(AuditKind::Lockout).await;
    assert_eq!(lockouts.len(), 1);
    assert_eq!(lockouts[0].user_id, Some(user.id));

    // Refused before any hashing, whatever the password.
    let before = w.verifications();
    let blocked = w.sign_in_from("alice", PASSWORD, ELSEWHERE).await;
    assert!(
        matches!(
            blocked,
            Err(AuthError::Throttled {
                retry_after_seconds: 60
            })
        ),
        "{blocked:?}"
    );
    assert_eq!(w.verifications(), before);

    w.clock.advance(60);
    w.sign_in_from("alice", PASSWORD, ELSEWHERE)
        .await
        .expect("the block has ended");
    // Success clears the account's counter.
    let key = throttle::account_key("alice");
    let counters = w.store.throttle_entries(&[key]).await.expect("read");
    assert!(counters.is_empty(), "{counters:?}");
}

#[tokio::test]
async fn the_owner_gets_in_from_a_known_address_while_the_account_is_blocked() {
    let w = World::with(|p| {
        p.throttle.account.free_failures = 2;
        p.throttle.account.base_delay_seconds = 600;
    })
    .await;
    w.sign_up("alice").await;
    w.sign_in_from("alice", PASSWORD, HOME)
        .await
        .expect("owner signs in");
    for _ in 0..2 {
        let wrong = w.sign_in_from("alice", "a guess", ELSEWHERE).await;
        assert!(matches!(wrong, Err(AuthError::InvalidCredentials)));
    }
    let attacker = w.sign_in_from("alice", PASSWORD, ELSEWHERE).await;
    assert!(matches!(attacker, Err(AuthError::Throttled { .. })));

    w.sign_in_from("alice", PASSWORD, HOME)
        .await
        .expect("the owner's address is spared");
    // The attacker's block stands.
    let attacker = w.sign_in_from("alice", PASSWORD, ELSEWHERE).await;
    assert!(matches!(attacker, Err(AuthError::Throttled { .. })));
}

#[tokio::test]
async fn an_operator_unlock_clears_the_accounts_counter() {
    let w = World::with(|p| p.throttle.account.free_failures = 1).await;
    w.sign_up("alice").await;
    let wrong = w.sign_in_from("alice", "a guess", ELSEWHERE).await;
    assert!(matches!(wrong, Err(AuthError::InvalidCredentials)));
    let blocked = w.sign_in("alice", PASSWORD).await;
    assert!(matches!(blocked, Err(AuthError::Throttled { .. })));

    let unlocked = Authority::unlock_account(&*w.store, "ALICE")
        .await
        .expect("unlock");
    assert!(unlocked);
    w.sign_in("alice", PASSWORD).await.expect("unlocked");
    let again = Authority::unlock_account(&*w.store, "alice")
        .await
        .expect("unlock");
    assert!(!again, "nothing left to clear");
}

#[tokio::test]
async fn a_hash_of_an_older_cost_is_replaced_at_sign_in() {
    let w = World::new().await;
    let user = w.sign_up("alice").await;
    let older = Argon2Hashing::new(Argon2Cost {
        memory_kib: 128,
        iterations: 1,
        parallelism: 1,
    })
    .expect("argon2");
    let old_hash = older
        .hash(&Password::for_check(PASSWORD).expect("password"))
        .expect("hash");
    w.store
        .set_password_hash(user.id, &old_hash)
        .await
        .expect("store old hash");

    w.sign_in("alice", PASSWORD).await.expect("sign in");
    let stored = w
        .store
        .user_by_id(user.id)
        .await
        .expect("read")
        .expect("user");
    assert_ne!(stored.password_hash, old_hash);
    assert!(
        stored.password_hash.contains("m=256,t=1,p=1"),
        "{}",
        stored.password_hash
    );
}

#[tokio::test]
async fn a_sign_in_gives_its_attempt_back_with_its_session_and_audit_row() {
    let w = World::new().await;
    let user = w.sign_up("alice").await;
    let wrong = w.sign_in("alice", "a guess").await;
    assert!(matches!(wrong, Err(AuthError::InvalidCredentials)));
    let tokens = w.sign_in("alice", PASSWORD).await.expect("sign in");

    // The account's counter is cleared; the address keeps only the guess.
    let account = throttle::account_key("alice");
    let address = throttle::address_key(HOME);
    let counters = w
        .store
        .throttle_entries(&[account, address.clone()])
        .await
        .expect("read");
    assert_eq!(counters.len(), 1, "{counters:?}");
    assert_eq!((&counters[0].key, counters[0].failures), (&address, 1));
    let session = w.session(&tokens).await;
    let signed_in = w.audited(AuditKind::SignIn).await;
    assert_eq!(outcomes(&signed_in), [Outcome::Failure, Outcome::Success]);
    assert_eq!(signed_in[1].user_id, Some(user.id));
    assert_eq!(signed_in[1].session_id, Some(session.id));
    assert_eq!(signed_in[1].ip.as_deref(), Some(HOME));
}

#[tokio::test]
async fn with_throttling_off_a_sign_in_counts_nothing() {
    let w = World::with(|p| p.throttle.enabled = false).await;
    w.sign_up("alice").await;
    let wrong = w.sign_in("alice", "a guess").await;
    assert!(matches!(wrong, Err(AuthError::InvalidCredentials)));
    w.sign_in("alice", PASSWORD).await.expect("sign in");

    let keys = [throttle::account_key("alice"), throttle::address_key(HOME)];
    let counters = w.store.throttle_entries(&keys).await.expect("read");
    assert!(counters.is_empty(), "{counters:?}");
    assert_eq!(w.audited(AuditKind::SignIn).await.len(), 2);
}
