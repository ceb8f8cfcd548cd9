//! Sessions: the caller's list, ending them, signing out, the cap.

use latchkey_core::access_token::TokenError;
use latchkey_core::service::SignOutScope;

use crate::*;

#[tokio::test]
async fn the_list_shows_live_sessions_and_marks_the_callers() {
    let w = World::new().await;
    w.sign_up("alice").await;
    let here = w.sign_in("alice", PASSWORD).await.expect("sign in");
    w.clock.advance(10);
    let there = w.sign_in("alice", PASSWORD).await.expect("sign in");

    let list = w
        .authority
        .list_sessions(&w.claims(&here))
        .await
        .expect("list");
    let ids: Vec<_> = list.iter().map(|v| (v.session.id, v.current)).collect();
    assert_eq!(
        ids,
        [
            (w.session(&here).await.id, true),
            (w.session(&there).await.id, false)
        ]
    );
    // Idle expiry comes before the absolute one.
    assert_eq!(
        list[0].expires_at,
        START + w.policy.refresh.idle_timeout_seconds
    );

    w.authority
        .sign_out(&w.claims(&there), SignOutScope::Current, &from(HOME))
        .await
        .expect("sign out");
    let list = w
        .authority
        .list_sessions(&w.claims(&here))
        .await
        .expect("list");
    assert_eq!(list.len(), 1);
}

#[tokio::test]
async fn ending_ones_own_session_revokes_it_and_its_tokens() {
    let w = World::new().await;
    w.sign_up("alice").await;
    let here = w.sign_in("alice", PASSWORD).await.expect("sign in");
    let there = w.sign_in("alice", PASSWORD).await.expect("sign in");
    let id = w.session(&there).await.id;

    w.authority
        .end_own_session(&w.claims(&here), &id.to_string(), &from(HOME))
        .await
        .expect("end session");
    let ended = w.session(&there).await;
    assert_eq!(ended.revoke_reason.as_deref(), Some("signed_out"));
    assert!(refused_for(
        w.authority.authenticate(&there.access_token),
        TokenError::Revoked
    ));
    assert!(matches!(
        w.refresh(&there).await,
        Err(AuthError::InvalidGrant)
    ));
    w.claims(&here);
    let signed_out = w.audited(AuditKind::SignOut).await;
    assert_eq!(outcomes(&signed_out), [Outcome::Success]);
    assert_eq!(signed_out[0].session_id, Some(id));
}

#[tokio::test]
async fn someone_elses_session_an_unknown_id_and_garbage_are_all_not_found() {
    let w = World::new().await;
    w.sign_up("alice").await;
    w.sign_up("bob").await;
    let alice = w.sign_in("alice", PASSWORD).await.expect("sign in");
    let bob = w.sign_in("bob", PASSWORD).await.expect("sign in");
    let bobs = w.session(&bob).await.id.to_string();
    let unknown = Uuid::new_v4().to_string();

    for id in [bobs.as_str(), unknown.as_str(), "not-a-session"] {
        let refused = w
            .authority
            .end_own_session(&w.claims(&alice), id, &from(HOME))
            .await;
        assert!(matches!(refused, Err(AuthError::NotFound)), "{id}");
    }
    assert_eq!(w.session(&bob).await.revoked_at, None);
    w.claims(&bob);
    assert_eq!(
        outcomes(&w.audited(AuditKind::SignOut).await),
        [Outcome::Failure; 3]
    );
}

#[tokio::test]
async fn sign_out_ends_the_current_session_the_others_or_all() {
    let w = World::new().await;
    w.sign_up("alice").await;
    let mut tokens = Vec::new();
    for _ in 0..4 {
        tokens.push(w.sign_in("alice", PASSWORD).await.expect("sign in"));
    }
    let live = |t: &TokenResponse| w.authority.authenticate(&t.access_token).is_ok();

    w.authority
        .sign_out(&w.claims(&tokens[0]), SignOutScope::Current, &from(HOME))
        .await
        .expect("sign out");
    assert_eq!(
        tokens.iter().map(live).collect::<Vec<_>>(),
        [false, true, true, true]
    );

    w.authority
        .sign_out(&w.claims(&tokens[1]), SignOutScope::Others, &from(HOME))
        .await
        .expect("sign out others");
    assert_eq!(
        tokens.iter().map(live).collect::<Vec<_>>(),
        [false, true, false, false]
    );
    for t in &tokens[2..] {
        assert_eq!(
            w.session(t).await.revoke_reason.as_deref(),
            Some("signed_out")
        );
    }

    let fresh = w.sign_in("alice", PASSWORD).await.expect("sign in");
    w.authority
        .sign_out(&w.claims(&fresh), SignOutScope::All, &from(HOME))
        .await
        .expect("sign out everywhere");
    assert!(!live(&fresh));
    assert!(!live(&tokens[1]));
    let left = w
        .store
        .live_sessions_of_user(w.session(&fresh).await.user_id, w.now())
        .await
        .expect("read");
    assert!(left.is_empty());
}

#[tokio::test]
async fn a_sign_in_beyond_the_cap_ends_the_least_recently_used_session() {
    let w = World::with(|p| p.max_sessions_per_user = 2).await;
    let user = w.sign_up("alice").await;
    let oldest = w.sign_in("alice", PASSWORD).await.expect("sign in");
    w.clock.advance(10);
    let middle = w.sign_in("alice", PASSWORD).await.expect("sign in");
    w.clock.advance(10);
    // Using the oldest makes the middle one the least recently used.
    let oldest = w.refresh(&oldest).await.expect("refresh");
    w.clock.advance(10);
    let newest = w.sign_in("alice", PASSWORD).await.expect("sign in");

    let evicted = w.session(&middle).await;
    assert_eq!(evicted.revoke_reason.as_deref(), Some("session_limit"));
    assert!(refused_for(
        w.authority.authenticate(&middle.access_token),
        TokenError::Revoked
    ));
    w.claims(&oldest);
    w.claims(&newest);
    let live = w
        .store
        .live_sessions_of_user(user.id, w.now())
        .await
        .expect("read");
    assert_eq!(live.len(), 2);
    let events = w.audited(AuditKind::SessionEvicted).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].session_id, Some(evicted.id));
}

#[tokio::test]
async fn a_client_token_has_no_sessions() {
    let w = World::new().await;
    let (service, _) = w.register("svc", ClientKind::Confidential, |_| {}).await;
    let own = w
        .authority
        .client_credentials(&service, &Default::default())
        .expect("client credentials");
    let claims = w.claims(&own);
    assert_eq!(claims.sid, None);
    assert!(own.refresh_token.is_none());
    let listed = w.authority.list_sessions(&claims).await;
    assert!(matches!(listed, Err(AuthError::InvalidToken(r)) if r == TokenError::NoUser));
    let signed_out = w
        .authority
        .sign_out(&claims, SignOutScope::All, &from(HOME))
        .await;
    assert!(matches!(signed_out, Err(AuthError::InvalidToken(_))));
}
