//! Refresh: rotation, the grace window, reuse detection, and who may refresh.

use crate::*;

#[tokio::test]
async fn a_refresh_rotates_the_token_and_moves_the_sessions_counter() {
    let w = World::new().await;
    w.sign_up("alice").await;
    let first = w.sign_in("alice", PASSWORD).await.expect("sign in");
    w.clock.advance(5);

    let second = w.refresh(&first).await.expect("refresh");
    assert_ne!(refresh_token(&second), refresh_token(&first));
    assert_eq!(w.claims(&second).sid, w.claims(&first).sid);
    let session = w.session(&second).await;
    assert_eq!(session.counter, 1);
    assert_eq!(session.last_refreshed_at, START + 5);
    assert_eq!(second.expires_at, START + 5 + 600);

    let refreshed = w.audited(AuditKind::Refresh).await;
    assert_eq!(outcomes(&refreshed), [Outcome::Success]);
    assert_eq!(refreshed[0].session_id, Some(session.id));
}

#[tokio::test]
async fn the_previous_token_within_the_grace_window_gets_the_same_successor() {
    let w = World::new().await;
    w.sign_up("alice").await;
    let first = w.sign_in("alice", PASSWORD).await.expect("sign in");
    let second = w.refresh(&first).await.expect("refresh");
    w.clock.advance(w.policy.refresh.grace_seconds - 1);

    // A second tab with the old token: the same successor, no new rotation.
    let tab = w.refresh(&first).await.expect("within the grace window");
    assert_eq!(refresh_token(&tab), refresh_token(&second));
    assert_eq!(w.session(&tab).await.counter, 1);
    assert_eq!(w.session(&tab).await.revoked_at, None);
}

#[tokio::test]
async fn reuse_after_the_grace_window_ends_the_session() {
    let w = World::new().await;
    let user = w.sign_up("alice").await;
    let first = w.sign_in("alice", PASSWORD).await.expect("sign in");
    let second = w.refresh(&first).await.expect("refresh");
    w.clock.advance(w.policy.refresh.grace_seconds + 1);

    let replay = w.refresh(&first).await;
    assert!(matches!(replay, Err(AuthError::InvalidGrant)));
    let session = w.session(&second).await;
    assert_eq!(
        session.revoke_reason.as_deref(),
        Some("refresh_token_reuse")
    );
    // Recorded once, as reuse: not also as a failed refresh.
    let reuse = w.audited(AuditKind::ReuseDetected).await;
    assert_eq!(reuse.len(), 1);
    assert_eq!(reuse[0].user_id, Some(user.id));
    assert_eq!(reuse[0].session_id, Some(session.id));
    assert_eq!(
        outcomes(&w.audited(AuditKind::Refresh).await),
        [Outcome::Success]
    );

    // The legitimate holder is out too: refresh and access tokens alike.
    assert!(matches!(
        w.refresh(&second).await,
        Err(AuthError::InvalidGrant)
    ));
    assert!(refused_for(
        w.authority.authenticate(&second.access_token),
        TokenError::Revoked
    ));
}

#[tokio::test]
async fn an_idle_session_cannot_be_refreshed_and_the_failure_names_its_user() {
    let w = World::new().await;
    let user = w.sign_up("alice").await;
    let tokens = w.sign_in("alice", PASSWORD).await.expect("sign in");
    w.clock.advance(w.policy.refresh.idle_timeout_seconds);

    assert!(matches!(
        w.refresh(&tokens).await,
        Err(AuthError::InvalidGrant)
    ));
    let failed = w.audited(AuditKind::Refresh).await;
    assert_eq!(outcomes(&failed), [Outcome::Failure]);
    assert_eq!(failed[0].user_id, Some(user.id));
    assert_eq!(failed[0].session_id, Some(w.session(&tokens).await.id));
}

#[tokio::test]
async fn a_session_ends_at_its_absolute_lifetime_however_often_it_is_refreshed() {
    let w = World::with(|p| p.session_lifetime_seconds = 3 * 3600).await;
    w.sign_up("alice").await;
    let mut tokens = w.sign_in("alice", PASSWORD).await.expect("sign in");
    for _ in 0..2 {
        w.clock.advance(3600);
        tokens = w.refresh(&tokens).await.expect("refresh within lifetime");
    }
    w.clock.advance(3600);
    assert!(matches!(
        w.refresh(&tokens).await,
        Err(AuthError::InvalidGrant)
    ));
}

#[tokio::test]
async fn a_refresh_token_works_only_for_its_client() {
    let w = World::new().await;
    w.sign_up("alice").await;
    let tokens = w.sign_in("alice", PASSWORD).await.expect("sign in");
    let (other, _) = w.register("other-app", ClientKind::Public, |_| {}).await;

    let refused = w
        .authority
        .refresh(refresh_token(&tokens), &other, None, &from(HOME))
        .await;
    assert!(matches!(refused, Err(AuthError::InvalidGrant)));
    let session = w.session(&tokens).await;
    assert_eq!(session.counter, 0);
    assert_eq!(session.revoked_at, None);
}

#[tokio::test]
async fn a_refresh_may_narrow_the_scope_never_widen_it() {
    let w = World::new().await;
    w.sign_up("alice").await;
    let (app, _) = w
        .register("app", ClientKind::Public, |c| {
            c.scopes = vec!["read".into(), "write".into()];
        })
        .await;
    let tokens = w
        .authority
        .sign_in("alice", PASSWORD, &app, &Default::default(), from(HOME))
        .await
        .expect("sign in");
    assert_eq!(tokens.scope, "read write");
    assert_eq!(w.session(&tokens).await.scope, "read write");

    let narrow = w
        .authority
        .refresh(refresh_token(&tokens), &app, Some("read"), &from(HOME))
        .await
        .expect("narrowed");
    assert_eq!(narrow.scope, "read");
    assert_eq!(w.claims(&narrow).scope.as_deref(), Some("read"));
    // The session keeps what was granted at sign-in.
    assert_eq!(w.session(&narrow).await.scope, "read write");

    let wider = w
        .authority
        .refresh(
            refresh_token(&narrow),
            &app,
            Some("read admin"),
            &from(HOME),
        )
        .await;
    assert!(matches!(wider, Err(AuthError::InvalidScope)));
    assert_eq!(w.session(&narrow).await.counter, 1);
}

#[tokio::test]
async fn a_forged_token_is_refused_and_audited_without_a_user() {
    let w = World::new().await;
    let client = w.default_client().await;
    let forged = format!("lkr_{}", "A".repeat(76));
    let refused = w
        .authority
        .refresh(&forged, &client, None, &from(ELSEWHERE))
        .await;
    assert!(matches!(refused, Err(AuthError::InvalidGrant)));
    let failed = w.audited(AuditKind::Refresh).await;
    assert_eq!(outcomes(&failed), [Outcome::Failure]);
    assert_eq!((failed[0].user_id, failed[0].session_id), (None, None));
    assert_eq!(failed[0].ip.as_deref(), Some(ELSEWHERE));
}
