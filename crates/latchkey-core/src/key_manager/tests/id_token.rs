//! The ID-token lineage beside the access-token one: created on first
//! need, RS256, rotated and removed on the same rules, never touching the
//! other lineage, and its tokens never taken for access tokens.

use std::time::Instant;

use super::*;
use crate::access_token::TokenError;

const ID: KeyPurpose = KeyPurpose::IdToken;

fn ktys(m: &KeyManager) -> Vec<String> {
    m.jwks()["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kty"].as_str().expect("kty").to_owned())
        .collect()
}

/// Creates the lineage through `m` and says how long that took.
async fn create_lineage(m: &KeyManager) -> Arc<SigningKey> {
    let started = Instant::now();
    let key = m.id_token_key().await.expect("ID-token key");
    eprintln!(
        "creating the ID-token lineage (two RS256 keys) took {:?}",
        started.elapsed()
    );
    key
}

#[test]
fn the_lineage_is_created_on_first_need_and_published_beside_the_access_keys() {
    block_on(async {
        let f = Fixture::new();
        let (m, created) = f.node(Algorithm::EdDsa).await;
        let (stale, _) = f.node(Algorithm::EdDsa).await;
        assert_eq!(created.len(), 2, "only the access-token lineage at start");
        assert_eq!(f.store.count_of(ID, KeyState::Current), 0);
        assert!(m.ring().id_token_signing.is_none());
        assert_eq!(ktys(&m), ["OKP", "OKP"]);

        let key = create_lineage(&m).await;
        assert_eq!(key.alg(), Algorithm::Rs256);
        assert_eq!(f.store.count_of(ID, KeyState::Current), 1);
        assert_eq!(f.store.count_of(ID, KeyState::Next), 1);
        assert_eq!(ktys(&m), ["OKP", "OKP", "RSA", "RSA"]);
        for jwk in m.jwks()["keys"].as_array().expect("keys") {
            assert_eq!(jwk["use"], "sig");
            assert!(jwk.get("d").is_none());
        }
        let ring = m.ring();
        assert_eq!(ring.id_token_current().map(|k| k.purpose), Some(ID));
        assert_eq!(published(&m)[0], ring.signing.kid(), "access key first");
        assert!(m.ring().verifying.contains(key.kid()));

        // Asked again: the same parsed key, nothing created.
        let again = m.id_token_key().await.expect("ID-token key");
        assert!(Arc::ptr_eq(&key, &again));
        // A node started before the lineage existed finds it in the store
        // rather than creating another; one started after loads it.
        let found = stale.id_token_key().await.expect("ID-token key");
        assert_eq!(found.kid(), key.kid());
        let (later, created) = f.node(Algorithm::EdDsa).await;
        assert!(created.is_empty());
        let loaded = later.ring().id_token_signing.clone();
        assert_eq!(loaded.as_ref().map(|k| k.kid()), Some(key.kid()));
        assert_eq!(f.store.count_of(ID, KeyState::Current), 1);
        assert_eq!(f.store.count_of(ID, KeyState::Next), 1);
    });
}

/// Nodes creating the lineage at once: each insert is "unless this lineage
/// has a key in that state", so one current and one next result.
#[test]
fn racing_creations_make_one_lineage() {
    block_on(async {
        let f = Fixture::new();
        let (a, _) = f.node(Algorithm::EdDsa).await;
        let sealer = f.sealer();
        let now = f.clock.now();
        // Both read "no ID-token key" before either wrote.
        let first =
            generate_key(&sealer, Algorithm::Rs256, ID, KeyState::Current, now).expect("key");
        let second =
            generate_key(&sealer, Algorithm::Rs256, ID, KeyState::Current, now).expect("key");
        assert!(f
            .store
            .insert_signing_key_if_none(&first)
            .await
            .expect("insert"));
        assert!(!f
            .store
            .insert_signing_key_if_none(&second)
            .await
            .expect("insert"));
        // The access lineage's keys in that state do not count.
        assert_eq!(f.store.count_of(ACCESS, KeyState::Current), 1);
        let key = a.id_token_key().await.expect("ID-token key");
        assert_eq!(key.kid(), first.kid);
        assert_eq!(f.store.count_of(ID, KeyState::Current), 1);
        assert_eq!(f.store.count_of(ID, KeyState::Next), 1);
    });
}

#[test]
fn an_id_token_is_refused_as_an_access_token() {
    block_on(async {
        let f = Fixture::new();
        let (m, _) = f.node(Algorithm::EdDsa).await;
        let key = m.id_token_key().await.expect("ID-token key");
        let now = f.clock.now();
        // Claims an access token would carry, so only the header differs.
        let access = token(&m, now);
        let claims = serde_json::json!({
            "iss": "i", "sub": "u", "aud": "a", "exp": now + TTL, "iat": now,
            "jti": "j", "client_id": "c",
        });
        let id_token = key.sign_jwt(&claims);
        assert!(verifies(&m, &access, now));
        let expect = Expectations {
            issuer: "i".into(),
            audience: Some("a".into()),
            leeway: LEEWAY,
        };
        assert_eq!(
            verify(&id_token, &m.ring().verifying, &expect, now),
            Err(TokenError::UnsupportedHeader)
        );
    });
}

#[test]
fn rotation_rotates_each_lineage_by_its_own_compare_and_set() {
    block_on(async {
        let f = Fixture::new();
        let (m, _) = f.node(Algorithm::EdDsa).await;
        // Without the lineage only the access keys rotate, and nothing is
        // created for ID tokens.
        let r = m.rotate().await.expect("rotate");
        assert!(r.access.is_some());
        assert_eq!((r.id_token, r.id_token_lineage), (None, false));
        assert_eq!(f.store.count_of(ID, KeyState::Next), 0);

        let id_key = create_lineage(&m).await;
        let id_next = f.store.signing_keys().await.expect("keys");
        let id_next = id_next
            .iter()
            .find(|k| k.purpose == ID && k.state == KeyState::Next)
            .expect("next ID-token key")
            .kid
            .clone();
        let access_before = m.ring().signing.kid().to_owned();
        let r = m.rotate().await.expect("rotate");
        assert!(r.id_token_lineage);
        let access = r.access.expect("access rotated");
        let id = r.id_token.expect("ID-token lineage rotated");
        assert_eq!((access.purpose, id.purpose), (ACCESS, ID));
        assert_eq!(access.retired, access_before);
        assert_eq!(
            (id.retired.as_str(), id.current.as_str()),
            (id_key.kid(), id_next.as_str())
        );
        let ring = m.ring();
        assert_eq!(ring.signing.kid(), access.current);
        let now_signing = ring.id_token_signing.as_ref().expect("ID-token key");
        assert_eq!(now_signing.kid(), id.current);
        assert_eq!(now_signing.alg(), Algorithm::Rs256);
        for purpose in [ACCESS, ID] {
            assert_eq!(f.store.count_of(purpose, KeyState::Current), 1);
            assert_eq!(f.store.count_of(purpose, KeyState::Next), 1);
        }
        assert_eq!(f.store.count_of(ID, KeyState::Retired), 1);

        // A compare-and-set names a key of its own lineage: the other
        // lineage's current key is never "current" to it.
        let sealer = f.sealer();
        let now = f.clock.now();
        let crossed = rotate_from(
            f.store.as_ref(),
            &sealer,
            Algorithm::EdDsa,
            ACCESS,
            &id.current,
            now,
        )
        .await
        .expect("rotate");
        assert_eq!(crossed, None);
        // Rotating one lineage leaves the other as it was.
        let id_keys = |keys: Vec<StoredKey>| -> Vec<StoredKey> {
            let mut keys: Vec<_> = keys.into_iter().filter(|k| k.purpose == ID).collect();
            keys.sort_by(|a, b| a.kid.cmp(&b.kid));
            keys
        };
        let before = id_keys(f.store.signing_keys().await.expect("keys"));
        rotate_lineage(f.store.as_ref(), &sealer, Algorithm::EdDsa, ACCESS, now)
            .await
            .expect("rotate")
            .expect("rotated");
        assert_eq!(id_keys(f.store.signing_keys().await.expect("keys")), before);
    });
}

#[test]
fn scheduled_rotation_and_removal_cover_both_lineages() {
    block_on(async {
        let f = Fixture::new();
        let (m, _) = f.node(Algorithm::EdDsa).await;
        let every = 3600;
        // The ID-token lineage starts signing `gap` later than the access
        // one (less than a retired key's retention, so both overlap).
        let gap = 100;
        f.clock.advance(gap);
        create_lineage(&m).await;
        f.clock.advance(every - gap);
        let pass = m
            .maintain(Some(every), PROPAGATION)
            .await
            .expect("maintain");
        assert!(pass.rotated.is_some());
        assert_eq!(pass.id_token_rotated, None, "not due yet");
        f.clock.advance(gap);
        let pass = m
            .maintain(Some(every), PROPAGATION)
            .await
            .expect("maintain");
        assert_eq!(pass.rotated, None);
        let id = pass.id_token_rotated.expect("ID-token lineage rotated");
        assert_eq!(id.purpose, ID);
        let signing = m.ring().id_token_signing.clone();
        assert_eq!(signing.as_ref().map(|k| k.kid()), Some(id.current.as_str()));
        // A second node checking at the same moment does not rotate again.
        let (b, _) = f.node(Algorithm::EdDsa).await;
        let pass = b
            .maintain(Some(every), PROPAGATION)
            .await
            .expect("maintain");
        assert_eq!((pass.rotated, pass.id_token_rotated), (None, None));

        // Each retired key goes once its tokens have expired (the same
        // retention for both lineages).
        f.clock.advance(TTL + LEEWAY + PROPAGATION - gap);
        let pass = m.maintain(None, PROPAGATION).await.expect("maintain");
        assert_eq!(pass.removed, 0);
        f.clock.advance(1);
        assert_eq!(m.maintain(None, PROPAGATION).await.expect("m").removed, 1);
        assert_eq!(f.store.count_of(ACCESS, KeyState::Retired), 0);
        assert_eq!(f.store.count_of(ID, KeyState::Retired), 1);
        f.clock.advance(gap);
        assert_eq!(m.maintain(None, PROPAGATION).await.expect("m").removed, 1);
        assert_eq!(f.store.count(KeyState::Retired), 0);
        assert_eq!(ktys(&m), ["OKP", "OKP", "RSA", "RSA"]);
    });
}
