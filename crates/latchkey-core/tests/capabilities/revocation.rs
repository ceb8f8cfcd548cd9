//! Revocation: RFC 7009, the revocation set, and the feed other nodes follow.

use latchkey_core::access_token::TokenError;
use latchkey_core::service::SignOutScope;
use latchkey_core::store::{RevocationKind, RevocationStore};

use crate::*;

#[tokio::test]
async fn a_cancelled_access_token_is_refused_here_and_reaches_the_store() {
    let w = World::new().await;
    w.sign_up("alice").await;
    let tokens = w.sign_in("alice", PASSWORD).await.expect("sign in");
    let claims = w.claims(&tokens);

    w.authority
        .cancel_access_token(&claims, &from(HOME))
        .await
        .expect("cancel");
    assert!(refused_for(
        w.authority.authenticate(&tokens.access_token),
        TokenError::Revoked
    ));
    let entries = w.store.live_revocations(w.now()).await.expect("read");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].kind, RevocationKind::Token);
    assert_eq!(entries[0].id, claims.jti);
    assert_eq!(entries[0].expires_at, claims.exp + w.policy.leeway_seconds);
    // Only that token: the session goes on.
    let next = w.refresh(&tokens).await.expect("refresh");
    w.claims(&next);

    // A node started afterwards loads the set.
    let late = w.another_node().await;
    assert!(refused_for(
        late.authenticate(&tokens.access_token),
        TokenError::Revoked
    ));
}

#[tokio::test]
async fn an_ended_session_reaches_a_running_node_through_the_feed() {
    let w = World::new().await;
    w.sign_up("alice").await;
    let tokens = w.sign_in("alice", PASSWORD).await.expect("sign in");
    let other = w.another_node().await;
    let cursor = other.revocations_cursor();
    other
        .authenticate(&tokens.access_token)
        .expect("valid on the other node");

    w.authority
        .sign_out(&w.claims(&tokens), SignOutScope::Current, &from(HOME))
        .await
        .expect("sign out");
    // Until it syncs, the other node has not heard.
    other
        .authenticate(&tokens.access_token)
        .expect("not yet synced");
    assert_eq!(other.sync_revocations().await.expect("sync"), 1);
    assert!(other.revocations_cursor() > cursor);
    assert!(refused_for(
        other.authenticate(&tokens.access_token),
        TokenError::Revoked
    ));
    assert_eq!(other.sync_revocations().await.expect("sync"), 0);
}

#[tokio::test]
async fn the_feed_pages_a_snapshot_and_follows_from_a_cursor() {
    let w = World::new().await;
    w.sign_up("alice").await;
    let first = w.sign_in("alice", PASSWORD).await.expect("sign in");
    let second = w.sign_in("alice", PASSWORD).await.expect("sign in");
    w.authority
        .sign_out(&w.claims(&first), SignOutScope::Current, &from(HOME))
        .await
        .expect("sign out");

    let snapshot = w
        .authority
        .revocation_feed(None, None)
        .await
        .expect("snapshot");
    assert_eq!(snapshot.entries.len(), 1);
    assert_eq!(
        snapshot.entries[0].id,
        sid_of(&first.access_token).to_string()
    );
    assert!(!snapshot.more);

    let cursor = snapshot.cursor.to_string();
    let quiet = w
        .authority
        .revocation_feed(Some(&cursor), None)
        .await
        .expect("follow");
    assert!(quiet.entries.is_empty());
    w.authority
        .sign_out(&w.claims(&second), SignOutScope::Current, &from(HOME))
        .await
        .expect("sign out");
    let news = w
        .authority
        .revocation_feed(Some(&cursor), None)
        .await
        .expect("follow");
    let ids: Vec<_> = news.entries.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids, [sid_of(&second.access_token).to_string()]);

    let both = w.authority.revocation_feed(Some(&cursor), Some("0")).await;
    assert!(matches!(both, Err(AuthError::InvalidRequest(_))));
    for bad in ["x", "-1", "999999"] {
        let expired = w.authority.revocation_feed(Some(bad), None).await;
        assert!(matches!(expired, Err(AuthError::CursorExpired)), "{bad}");
    }
}

#[tokio::test]
async fn rfc7009_revocation_acts_only_for_the_client_the_token_was_issued_to() {
    let w = World::new().await;
    w.sign_up("alice").await;
    let tokens = w.sign_in("alice", PASSWORD).await.expect("sign in");
    let default = w.default_client().await;
    let (other, _) = w.register("other-app", ClientKind::Public, |_| {}).await;

    // Another client's attempts are refused (RFC 7009 §2.1) and change
    // nothing; a token that is no token is ignored.
    for token in [refresh_token(&tokens), tokens.access_token.as_str()] {
        let refused = w
            .authority
            .revoke_token(token, &other, &from(ELSEWHERE))
            .await;
        assert!(
            matches!(refused, Err(AuthError::UnauthorizedClient)),
            "{refused:?}"
        );
    }
    w.authority
        .revoke_token("garbage", &other, &from(ELSEWHERE))
        .await
        .expect("ignored");
    assert_eq!(w.session(&tokens).await.revoked_at, None);
    w.claims(&tokens);
    assert_eq!(
        outcomes(&w.audited(AuditKind::Revoke).await),
        [Outcome::Failure; 3]
    );

    w.authority
        .revoke_token(refresh_token(&tokens), &default, &from(HOME))
        .await
        .expect("revoke");
    assert_eq!(
        w.session(&tokens).await.revoke_reason.as_deref(),
        Some("revoked")
    );
    assert!(refused_for(
        w.authority.authenticate(&tokens.access_token),
        TokenError::Revoked
    ));
}

#[tokio::test]
async fn revoking_an_unknown_refresh_token_succeeds_and_changes_nothing() {
    let w = World::new().await;
    w.authority
        .revoke_refresh_token("lkr_not-a-token", &from(HOME))
        .await
        .expect("ignored");
    assert!(w
        .store
        .live_revocations(w.now())
        .await
        .expect("read")
        .is_empty());
    assert_eq!(
        outcomes(&w.audited(AuditKind::Revoke).await),
        [Outcome::Failure]
    );
}

#[tokio::test]
async fn the_listener_hears_of_every_revocation_this_node_records() {
    let w = World::new().await;
    let heard = Arc::new(AtomicUsize::new(0));
    let counter = heard.clone();
    w.authority.on_revocation(move || {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    w.sign_up("alice").await;
    let first = w.sign_in("alice", PASSWORD).await.expect("sign in");
    let second = w.sign_in("alice", PASSWORD).await.expect("sign in");
    assert_eq!(heard.load(Ordering::SeqCst), 0);

    w.authority
        .cancel_access_token(&w.claims(&first), &from(HOME))
        .await
        .expect("cancel");
    assert_eq!(heard.load(Ordering::SeqCst), 1);
    w.authority
        .sign_out(&w.claims(&second), SignOutScope::All, &from(HOME))
        .await
        .expect("sign out");
    assert_eq!(heard.load(Ordering::SeqCst), 2);
}
