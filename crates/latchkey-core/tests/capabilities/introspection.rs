//! RFC 7662 introspection, scoped to the tokens a client may be told about.

use latchkey_core::service::Introspection;

use crate::*;

#[tokio::test]
async fn only_a_confidential_client_may_introspect() {
    let w = World::new().await;
    w.sign_up("alice").await;
    let tokens = w.sign_in("alice", PASSWORD).await.expect("sign in");
    let public = w.default_client().await;
    let refused = w
        .authority
        .introspect(&tokens.access_token, &public, &from(HOME))
        .await;
    assert!(matches!(refused, Err(AuthError::InvalidClient)));
}

#[tokio::test]
async fn a_client_is_told_about_its_own_tokens_while_they_would_work() {
    let w = World::new().await;
    let user = w.sign_up("alice").await;
    let (app, _) = w.register("app", ClientKind::Confidential, |_| {}).await;
    let tokens = w
        .authority
        .sign_in("alice", PASSWORD, &app, &Default::default(), from(HOME))
        .await
        .expect("sign in");

    let answer = w
        .authority
        .introspect(refresh_token(&tokens), &app, &from(HOME))
        .await
        .expect("introspect");
    let Introspection::Refresh {
        session,
        user: owner,
        expires_at,
    } = answer
    else {
        panic!("refresh token not active: {answer:?}");
    };
    assert_eq!(owner, user);
    assert_eq!(session.id, sid_of(&tokens.access_token));
    assert_eq!(expires_at, START + w.policy.refresh.idle_timeout_seconds);

    let answer = w
        .authority
        .introspect(&tokens.access_token, &app, &from(HOME))
        .await
        .expect("introspect");
    let Introspection::Access(claims) = answer else {
        panic!("access token not active: {answer:?}");
    };
    assert_eq!(claims.sub, user.id.to_string());

    // A rotated-away refresh token and a cancelled access token: inactive.
    let next = w
        .authority
        .refresh(refresh_token(&tokens), &app, None, &from(HOME))
        .await
        .expect("refresh");
    w.authority
        .cancel_access_token(&w.claims(&next), &from(HOME))
        .await
        .expect("cancel");
    for token in [refresh_token(&tokens), next.access_token.as_str()] {
        let answer = w
            .authority
            .introspect(token, &app, &from(HOME))
            .await
            .expect("introspect");
        assert!(matches!(answer, Introspection::Inactive), "{answer:?}");
    }
    assert_eq!(
        outcomes(&w.audited(AuditKind::Introspect).await),
        [
            Outcome::Success,
            Outcome::Success,
            Outcome::Failure,
            Outcome::Failure
        ]
    );
}

#[tokio::test]
async fn another_clients_tokens_are_inactive_unless_it_may_introspect_any() {
    let w = World::new().await;
    w.sign_up("alice").await;
    let tokens = w.sign_in("alice", PASSWORD).await.expect("sign in");
    let (nosy, _) = w.register("nosy", ClientKind::Confidential, |_| {}).await;
    let (resource, _) = w
        .register("resource-server", ClientKind::Confidential, |c| {
            c.introspect_any = true
        })
        .await;

    for token in [tokens.access_token.as_str(), refresh_token(&tokens)] {
        let answer = w
            .authority
            .introspect(token, &nosy, &from(HOME))
            .await
            .expect("introspect");
        assert!(matches!(answer, Introspection::Inactive), "{answer:?}");
    }
    // Told nothing, so the audit names no one.
    let unseen = w.audited(AuditKind::Introspect).await;
    assert!(unseen
        .iter()
        .all(|e| e.user_id.is_none() && e.session_id.is_none()));

    let answer = w
        .authority
        .introspect(&tokens.access_token, &resource, &from(HOME))
        .await
        .expect("introspect");
    assert!(matches!(answer, Introspection::Access(_)), "{answer:?}");
    let answer = w
        .authority
        .introspect(refresh_token(&tokens), &resource, &from(HOME))
        .await
        .expect("introspect");
    assert!(
        matches!(answer, Introspection::Refresh { .. }),
        "{answer:?}"
    );
}
