//! Signing keys as the authority uses them: rotation while tokens are out.

use latchkey_core::model::KeyState;
use latchkey_core::store::SigningKeyStore;

use crate::*;

#[tokio::test]
async fn rotation_switches_the_signing_key_and_earlier_tokens_still_verify() {
    let w = World::new().await;
    w.sign_up("alice").await;
    let before = w.sign_in("alice", PASSWORD).await.expect("sign in");
    let old_kid = kid_of(&before.access_token);
    assert_eq!(w.authority.jwks()["keys"].as_array().map(Vec::len), Some(2));

    let rotation = w
        .authority
        .keys()
        .rotate()
        .await
        .expect("rotate")
        .access
        .expect("rotated");
    assert_eq!(rotation.retired, old_kid);

    let after = w.refresh(&before).await.expect("refresh");
    assert_eq!(kid_of(&after.access_token), rotation.current);
    w.claims(&before);
    w.claims(&after);
    let published: Vec<_> = w.authority.jwks()["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect();
    assert_eq!(
        published,
        [
            rotation.current.clone(),
            rotation.next.clone(),
            old_kid.clone()
        ]
    );

    let stored = w.store.signing_keys().await.expect("read");
    let state_of = |kid: &str| {
        stored
            .iter()
            .find(|k| k.kid == kid)
            .map(|k| k.state)
            .expect("stored key")
    };
    assert_eq!(stored.len(), 3);
    assert_eq!(state_of(&old_kid), KeyState::Retired);
    assert_eq!(state_of(&rotation.current), KeyState::Current);
    assert_eq!(state_of(&rotation.next), KeyState::Next);
}

#[tokio::test]
async fn another_node_signs_with_the_new_key_after_its_maintenance_pass() {
    let w = World::new().await;
    let other = w.another_node().await;
    let (service, _) = w.register("svc", ClientKind::Confidential, |_| {}).await;
    let rotation = w
        .authority
        .keys()
        .rotate()
        .await
        .expect("rotate")
        .access
        .expect("rotated");

    let stale = other
        .client_credentials(&service, &Default::default())
        .expect("token");
    assert_eq!(kid_of(&stale.access_token), rotation.retired);
    let pass = other.keys().maintain(None, 5).await.expect("maintain");
    assert!(pass.reloaded);
    assert_eq!(pass.rotated, None);
    let fresh = other
        .client_credentials(&service, &Default::default())
        .expect("token");
    assert_eq!(kid_of(&fresh.access_token), rotation.current);
    // Either node accepts either token.
    for node in [&w.authority, &other] {
        node.authenticate(&stale.access_token).expect("stale token");
        node.authenticate(&fresh.access_token).expect("fresh token");
    }
}
