//! The key lifecycle against a store that keeps only signing keys; the
//! ID-token lineage beside the access-token one in [`id_token`].

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::lifecycle::rotate_from;
use super::*;
use crate::access_token::{verify, AccessClaims, Audience, Expectations};
use crate::clock::{ManualClock, UnixTime};
use crate::keys::generate_key;
use crate::model::{KeyPurpose, StoredKey};
use crate::store::StoreError;

mod id_token;

/// Just enough of a store for the key lifecycle: the key table, with the
/// same conditional-write semantics as the real stores.
#[derive(Default)]
struct KeyStore {
    keys: Mutex<HashMap<String, StoredKey>>,
}

impl KeyStore {
    fn states(&self) -> Vec<(String, KeyState)> {
        self.keys
            .lock()
            .expect("lock")
            .values()
            .map(|k| (k.kid.clone(), k.state))
            .collect()
    }

    fn count(&self, state: KeyState) -> usize {
        self.states().iter().filter(|(_, s)| *s == state).count()
    }

    /// How many keys of lineage `purpose` are in `state`.
    fn count_of(&self, purpose: KeyPurpose, state: KeyState) -> usize {
        let keys = self.keys.lock().expect("lock");
        keys.values()
            .filter(|k| k.purpose == purpose && k.state == state)
            .count()
    }
}

#[async_trait]
impl SigningKeyStore for KeyStore {
    async fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        Ok(self.keys.lock().expect("lock").values().cloned().collect())
    }

    async fn insert_signing_key(&self, key: &StoredKey) -> Result<(), StoreError> {
        let mut keys = self.keys.lock().expect("lock");
        if keys.contains_key(&key.kid) {
            return Err(StoreError::Backend("duplicate kid".into()));
        }
        keys.insert(key.kid.clone(), key.clone());
        Ok(())
    }

    async fn insert_signing_key_if_none(&self, key: &StoredKey) -> Result<bool, StoreError> {
        let mut keys = self.keys.lock().expect("lock");
        if keys
            .values()
            .any(|k| k.state == key.state && k.purpose == key.purpose)
        {
            return Ok(false);
        }
        keys.insert(key.kid.clone(), key.clone());
        Ok(true)
    }

    async fn rotate_signing_keys(
        &self,
        expected_current_kid: &str,
        new_next: &StoredKey,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let mut keys = self.keys.lock().expect("lock");
        let lineage = new_next.purpose;
        let current_ok = keys
            .get(expected_current_kid)
            .is_some_and(|k| k.state == KeyState::Current && k.purpose == lineage);
        let next = keys
            .values()
            .filter(|k| k.state == KeyState::Next && k.purpose == lineage)
            .min_by(|a, b| a.created_at.cmp(&b.created_at).then(a.kid.cmp(&b.kid)))
            .map(|k| k.kid.clone());
        let Some(next) = next.filter(|_| current_ok) else {
            return Ok(false);
        };
        for k in keys.values_mut() {
            if k.state == KeyState::Current && k.purpose == lineage {
                k.state = KeyState::Retired;
                k.retired_at = Some(now);
            }
        }
        if let Some(k) = keys.get_mut(&next) {
            k.state = KeyState::Current;
            k.activated_at = Some(now);
        }
        keys.insert(new_next.kid.clone(), new_next.clone());
        Ok(true)
    }

    async fn delete_retired_keys_before(&self, before: UnixTime) -> Result<usize, StoreError> {
        let mut keys = self.keys.lock().expect("lock");
        let n = keys.len();
        keys.retain(|_, k| {
            !(k.state == KeyState::Retired && k.retired_at.is_some_and(|t| t < before))
        });
        Ok(n - keys.len())
    }
}

/// Runs a future whose awaits all complete at once (the test store
/// never blocks), without an async runtime.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

const TTL: i64 = 600;
const ACCESS: KeyPurpose = KeyPurpose::Access;
const LEEWAY: i64 = 30;
const PROPAGATION: i64 = 5;

struct Fixture {
    store: Arc<KeyStore>,
    clock: Arc<ManualClock>,
    secret: ServerSecret,
}

impl Fixture {
    fn new() -> Self {
        Self {
            store: Arc::new(KeyStore::default()),
            clock: Arc::new(ManualClock::new(1_000_000)),
            secret: ServerSecret::generate().expect("rng"),
        }
    }

    async fn node(&self, alg: Algorithm) -> (KeyManager, Vec<String>) {
        KeyManager::open(
            self.store.clone(),
            self.clock.clone(),
            &self.secret,
            alg,
            TTL + LEEWAY,
        )
        .await
        .expect("open")
    }

    fn sealer(&self) -> KeySealer {
        KeySealer::new(&self.secret).expect("sealer")
    }
}

fn token(m: &KeyManager, now: UnixTime) -> String {
    m.ring().signing.sign(&AccessClaims {
        iss: "i".into(),
        sub: "u".into(),
        aud: Audience::One("a".into()),
        exp: now + TTL,
        iat: now,
        nbf: None,
        jti: "j".into(),
        client_id: "c".into(),
        sid: None,
        scope: None,
        roles: vec![],
    })
}

fn verifies(m: &KeyManager, token: &str, now: UnixTime) -> bool {
    let expect = Expectations {
        issuer: "i".into(),
        audience: Some("a".into()),
        leeway: LEEWAY,
    };
    verify(token, &m.ring().verifying, &expect, now).is_ok()
}

fn kid_of(token: &str) -> String {
    use base64::Engine as _;
    let h = token.split('.').next().expect("header");
    let v: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(h)
            .expect("b64"),
    )
    .expect("json");
    v["kid"].as_str().expect("kid").to_owned()
}

fn published(m: &KeyManager) -> Vec<String> {
    m.jwks()["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect()
}

#[test]
fn first_start_creates_current_and_next_and_publishes_both() {
    block_on(async {
        let f = Fixture::new();
        let (m, created) = f.node(Algorithm::EdDsa).await;
        assert_eq!(created.len(), 2);
        assert_eq!(f.store.count(KeyState::Current), 1);
        assert_eq!(f.store.count(KeyState::Next), 1);
        let ring = m.ring();
        assert_eq!(published(&m).len(), 2);
        assert_eq!(published(&m)[0], ring.signing.kid(), "current listed first");
        // A second start creates nothing.
        let (_, again) = f.node(Algorithm::EdDsa).await;
        assert!(again.is_empty());
    });
}

#[test]
fn a_database_with_only_a_current_key_gets_a_next_key() {
    block_on(async {
        let f = Fixture::new();
        let old = generate_key(
            &f.sealer(),
            Algorithm::EdDsa,
            KeyPurpose::Access,
            KeyState::Current,
            5,
        )
        .expect("key");
        f.store.insert_signing_key(&old).await.expect("insert");
        let (m, created) = f.node(Algorithm::EdDsa).await;
        assert_eq!(created.len(), 1);
        assert_eq!(m.ring().signing.kid(), old.kid);
        assert_eq!(f.store.count(KeyState::Next), 1);
    });
}

#[test]
fn rotation_walks_the_lifecycle_and_old_tokens_keep_verifying() {
    block_on(async {
        let f = Fixture::new();
        let (m, _) = f.node(Algorithm::EdDsa).await;
        let t0 = f.clock.now();
        let first = m.ring().signing.kid().to_owned();
        let next = published(&m)[1].clone();
        let old_token = token(&m, t0);

        let r = m.rotate().await.expect("rotate").access.expect("rotated");
        assert_eq!(r.retired, first);
        assert_eq!(r.current, next, "the pre-published key starts signing");
        assert_eq!(kid_of(&token(&m, t0)), next);
        assert_eq!(
            published(&m),
            vec![next.clone(), r.next.clone(), first.clone()]
        );
        assert!(verifies(&m, &old_token, t0 + 1));

        // Retired key stays until its tokens have expired (+ propagation).
        f.clock.advance(TTL + LEEWAY + PROPAGATION);
        let done = m.maintain(None, PROPAGATION).await.expect("maintain");
        assert_eq!(done.removed, 0);
        assert!(published(&m).contains(&first));
        f.clock.advance(1);
        let done = m.maintain(None, PROPAGATION).await.expect("maintain");
        assert_eq!(done.removed, 1);
        assert!(done.reloaded);
        assert_eq!(published(&m), vec![next, r.next]);
        assert!(!verifies(&m, &old_token, f.clock.now() - TTL));
    });
}

#[test]
fn concurrent_rotations_rotate_once() {
    block_on(async {
        let f = Fixture::new();
        let (a, _) = f.node(Algorithm::EdDsa).await;
        let (b, _) = f.node(Algorithm::EdDsa).await;
        let sealer = f.sealer();
        let kid = a.ring().signing.kid().to_owned();
        // Both saw the same current key; only the first compare-and-set wins.
        let now = f.clock.now();
        let first = rotate_from(
            f.store.as_ref(),
            &sealer,
            Algorithm::EdDsa,
            ACCESS,
            &kid,
            now,
        )
        .await
        .expect("rotate");
        let second = rotate_from(
            f.store.as_ref(),
            &sealer,
            Algorithm::EdDsa,
            ACCESS,
            &kid,
            now,
        )
        .await
        .expect("rotate");
        assert!(first.is_some());
        assert_eq!(second, None);
        assert_eq!(f.store.count(KeyState::Current), 1);
        assert_eq!(f.store.count(KeyState::Next), 1);
        assert_eq!(f.store.count(KeyState::Retired), 1);
        // Nodes converge on reload.
        a.reload().await.expect("reload");
        b.reload().await.expect("reload");
        assert_eq!(a.ring().signing.kid(), b.ring().signing.kid());
        assert_eq!(published(&a), published(&b));
    });
}

#[test]
fn scheduled_rotation_counts_from_activation_and_happens_once() {
    block_on(async {
        let f = Fixture::new();
        let (a, _) = f.node(Algorithm::EdDsa).await;
        let (b, _) = f.node(Algorithm::EdDsa).await;
        let every = 3600;
        assert_eq!(
            a.maintain(Some(every), PROPAGATION)
                .await
                .expect("m")
                .rotated,
            None
        );
        f.clock.advance(every);
        let ra = a.maintain(Some(every), PROPAGATION).await.expect("m");
        let rb = b.maintain(Some(every), PROPAGATION).await.expect("m");
        assert!(ra.rotated.is_some());
        assert_eq!(
            rb.rotated, None,
            "b reloads, sees a fresh key, does not rotate"
        );
        assert_eq!(f.store.count(KeyState::Retired), 1);
        assert_eq!(a.ring().signing.kid(), b.ring().signing.kid());
        // The new current key was created an hour ago (as next) but only
        // started signing now: no immediate second rotation.
        f.clock.advance(every - 1);
        assert_eq!(
            b.maintain(Some(every), PROPAGATION)
                .await
                .expect("m")
                .rotated,
            None
        );
        f.clock.advance(1);
        assert!(b
            .maintain(Some(every), PROPAGATION)
            .await
            .expect("m")
            .rotated
            .is_some());
    });
}

#[test]
fn switching_algorithm_is_a_rotation() {
    block_on(async {
        let f = Fixture::new();
        let (ed, _) = f.node(Algorithm::EdDsa).await;
        let old_token = token(&ed, f.clock.now());
        // The node restarts configured for ES256: existing keys stay.
        let (es, created) = f.node(Algorithm::Es256).await;
        assert!(created.is_empty());
        assert_eq!(es.ring().signing.alg(), Algorithm::EdDsa);
        // First rotation: the EdDSA next key signs, an ES256 key is next.
        let r1 = es.rotate().await.expect("rotate").access.expect("rotated");
        assert_eq!(es.ring().signing.alg(), Algorithm::EdDsa);
        // Second: the ES256 key signs.
        let r2 = es.rotate().await.expect("rotate").access.expect("rotated");
        assert_eq!(r2.current, r1.next);
        assert_eq!(es.ring().signing.alg(), Algorithm::Es256);
        let new_token = token(&es, f.clock.now());
        assert!(verifies(&es, &new_token, f.clock.now()));
        assert!(verifies(&es, &old_token, f.clock.now()));
        let jwks = es.jwks();
        let ktys: Vec<&str> = jwks["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| k["kty"].as_str().expect("kty"))
            .collect();
        assert_eq!(ktys, vec!["EC", "EC", "OKP", "OKP"]);
    });
}

#[test]
fn every_algorithm_can_run_the_whole_lifecycle() {
    block_on(async {
        for alg in [Algorithm::Es256, Algorithm::Rs256] {
            let f = Fixture::new();
            let (m, _) = f.node(alg).await;
            let t = token(&m, f.clock.now());
            assert_eq!(m.ring().signing.alg(), alg);
            m.rotate().await.expect("rotate").access.expect("rotated");
            assert!(verifies(&m, &t, f.clock.now()));
            assert_eq!(m.ring().signing.alg(), alg);
            assert_ne!(kid_of(&token(&m, f.clock.now())), kid_of(&t));
        }
    });
}
