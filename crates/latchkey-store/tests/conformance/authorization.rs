//! Contracts of the authorization-code flow's records: codes are redeemed
//! exactly once (replays are told apart from unknown codes) and pruned
//! after expiry; consents are per user and client, replaced, listed and
//! withdrawn, and go with their account.

use latchkey_core::model::{CodeRedemption, Consent, StoredAuthorizationCode};

use super::*;

fn code(user_id: Uuid, byte: u8, expires_at: UnixTime) -> StoredAuthorizationCode {
    StoredAuthorizationCode {
        code_hash: [byte; 32],
        client_id: "web".into(),
        redirect_uri: "https://app.example/cb?x=1".into(),
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        user_id,
        session_id: Uuid::new_v4(),
        scope: "openid profile".into(),
        audience: "api".into(),
        nonce: Some("n-ü".into()),
        auth_time: T0 - 5,
        created_at: T0,
        expires_at,
        redeemed_at: None,
    }
}

pub async fn authorization_codes_are_redeemed_once_and_replays_recognised(backend: &impl Backend) {
    let store = backend.open().await;
    let u = user("alice");
    must_insert_user(&*store, &u).await;
    let c = code(u.id, 1, T0 + 60);
    store.insert_authorization_code(&c).await.expect("insert");
    let mut no_nonce = code(u.id, 2, T0 + 60);
    no_nonce.nonce = None;
    store
        .insert_authorization_code(&no_nonce)
        .await
        .expect("insert");

    // Of many concurrent redemptions exactly one is first.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.redeem_authorization_code(&[1; 32], T0 + 1).await
        }));
    }
    let mut first = Vec::new();
    let mut again = 0;
    for t in tasks {
        match t.await.expect("task").expect("redeem") {
            CodeRedemption::First(got) => first.push(got),
            CodeRedemption::Again(got) => {
                assert_eq!(got.redeemed_at, Some(T0 + 1));
                again += 1;
            }
            CodeRedemption::Unknown => panic!("a stored code is known"),
        }
    }
    assert_eq!((first.len(), again), (1, 7));
    assert_eq!(
        first[0],
        StoredAuthorizationCode {
            redeemed_at: Some(T0 + 1),
            ..c.clone()
        },
        "every field round-trips"
    );
    match store
        .redeem_authorization_code(&[2; 32], T0)
        .await
        .expect("redeem")
    {
        CodeRedemption::First(got) => assert_eq!(got.nonce, None),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        store
            .redeem_authorization_code(&[9; 32], T0)
            .await
            .expect("redeem"),
        CodeRedemption::Unknown
    );

    // Pruned once expired before the cut-off, a batch at a time.
    for b in 10..15 {
        store
            .insert_authorization_code(&code(u.id, b, T0 - 100))
            .await
            .expect("insert");
    }
    assert_eq!(
        store
            .prune_authorization_codes(T0 - 50, 3)
            .await
            .expect("prune"),
        3
    );
    assert_eq!(
        store
            .prune_authorization_codes(T0 - 50, 3)
            .await
            .expect("prune"),
        2
    );
    assert_eq!(
        store
            .prune_authorization_codes(T0 - 50, 3)
            .await
            .expect("prune"),
        0
    );
    assert!(matches!(
        store
            .redeem_authorization_code(&[1; 32], T0)
            .await
            .expect("redeem"),
        CodeRedemption::Again(_)
    ));
}

pub async fn consents_are_per_user_and_client_and_go_with_the_account(backend: &impl Backend) {
    let store = backend.open().await;
    let (a, b) = (user("alice"), user("bob"));
    must_insert_user(&*store, &a).await;
    must_insert_user(&*store, &b).await;
    let consent = |u: &User, client: &str, scope: &str, at: UnixTime| Consent {
        user_id: u.id,
        client_id: client.into(),
        scope: scope.into(),
        granted_at: at,
    };
    assert_eq!(store.consent(a.id, "partner").await.expect("read"), None);
    store
        .save_consent(&consent(&a, "partner", "openid", T0))
        .await
        .expect("save");
    store
        .save_consent(&consent(&a, "partner", "openid email", T0 + 1))
        .await
        .expect("replace");
    store
        .save_consent(&consent(&a, "atlas", "openid", T0))
        .await
        .expect("save");
    store
        .save_consent(&consent(&b, "partner", "openid", T0))
        .await
        .expect("save");
    assert_eq!(
        store.consent(a.id, "partner").await.expect("read"),
        Some(consent(&a, "partner", "openid email", T0 + 1))
    );
    let listed: Vec<String> = store
        .consents_of_user(a.id)
        .await
        .expect("list")
        .into_iter()
        .map(|c| c.client_id)
        .collect();
    assert_eq!(listed, ["atlas", "partner"]);
    assert!(store
        .withdraw_consent(a.id, "partner")
        .await
        .expect("withdraw"));
    assert!(!store
        .withdraw_consent(a.id, "partner")
        .await
        .expect("withdraw"));
    assert_eq!(store.consent(a.id, "partner").await.expect("read"), None);
    assert!(
        store
            .consent(b.id, "partner")
            .await
            .expect("read")
            .is_some(),
        "bob's stays"
    );

    store
        .delete_user(b.id, "account:bob", T0, T0 + DAY)
        .await
        .expect("delete");
    assert!(store.consents_of_user(b.id).await.expect("list").is_empty());
}
