//! The signing-key lifecycle (docs/ARCHITECTURE.md, Keys):
//!
//! **next** (published in JWKS, not yet signing) → **current** (signing) →
//! **retired** (published until every token it signed has expired) →
//! removed.
//!
//! Every state change is one conditional write in the store, so several
//! nodes (and a CLI) may rotate at once: rotation is a compare-and-set on the
//! current kid they saw, and the loser changes nothing. Nodes do not talk to
//! each other; each reloads the key set from the store periodically
//! ([`KeyManager::maintain`]), so all of them sign with the new current key
//! within one reload interval and verify with every published key.

use std::sync::{Arc, RwLock};

use crate::access_token::Algorithm;
use crate::clock::{Clock, UnixTime};
use crate::keys::{generate_key, pick_current, KeyRing, KeySealer};
use crate::model::{KeyState, StoredKey};
use crate::secret::ServerSecret;
use crate::store::SigningKeyStore;
use crate::AuthError;

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// The key that stopped signing.
    pub retired: String,
    /// The former next key, signing now.
    pub current: String,
    /// The freshly generated key, published from now on.
    pub next: String,
}

/// Creates what is missing of one current and one next key, each in
/// `alg`; returns the keys it created. Safe to race: a key is only
/// inserted if none in its state exists.
pub async fn ensure_keys(
    store: &dyn SigningKeyStore,
    sealer: &KeySealer,
    alg: Algorithm,
    now: UnixTime,
) -> Result<Vec<StoredKey>, AuthError> {
    let stored = store.signing_keys().await?;
    let mut created = Vec::new();
    for state in [KeyState::Current, KeyState::Next] {
        if stored.iter().any(|k| k.state == state) {
            continue;
        }
        let key = generate_key(sealer, alg, state, now)?;
        if store.insert_signing_key_if_none(&key).await? {
            created.push(key);
        }
    }
    Ok(created)
}

/// Rotates the keys: current → retired, next → current, a new key in `alg`
/// → next. `None` if another node or CLI rotated between our read and our
/// write (that rotation stands; ours does nothing).
pub async fn rotate(
    store: &dyn SigningKeyStore,
    sealer: &KeySealer,
    alg: Algorithm,
    now: UnixTime,
) -> Result<Option<Rotation>, AuthError> {
    ensure_keys(store, sealer, alg, now).await?;
    let before = store.signing_keys().await?;
    let expected = pick_current(&before)
        .ok_or_else(|| AuthError::Internal("no current signing key".into()))?
        .kid
        .clone();
    rotate_from(store, sealer, alg, &expected, now).await
}

async fn rotate_from(
    store: &dyn SigningKeyStore,
    sealer: &KeySealer,
    alg: Algorithm,
    expected_current: &str,
    now: UnixTime,
) -> Result<Option<Rotation>, AuthError> {
    let next = generate_key(sealer, alg, KeyState::Next, now)?;
    if !store
        .rotate_signing_keys(expected_current, &next, now)
        .await?
    {
        return Ok(None);
    }
    let after = store.signing_keys().await?;
    let current = pick_current(&after)
        .map(|k| k.kid.clone())
        .unwrap_or_default();
    tracing::info!(
        retired = expected_current,
        current,
        next = %next.kid,
        alg = %alg,
        "signing keys rotated"
    );
    Ok(Some(Rotation {
        retired: expected_current.to_owned(),
        current,
        next: next.kid,
    }))
}

/// When a retired key may go: every token it signed has expired, allowing
/// for nodes that kept signing with it until their next reload
/// (`propagation_seconds`). `None` for keys that are not retired.
pub fn removable_at(
    key_retired_at: Option<UnixTime>,
    retention_seconds: i64,
    propagation_seconds: i64,
) -> Option<UnixTime> {
    key_retired_at.map(|t| {
        t.saturating_add(retention_seconds)
            .saturating_add(propagation_seconds)
    })
}

/// What one [`KeyManager::maintain`] pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KeyMaintenance {
    pub rotated: Option<Rotation>,
    /// Retired keys deleted because all their tokens have expired.
    pub removed: usize,
    /// Whether the in-memory key set changed.
    pub reloaded: bool,
}

/// A node's view of the signing keys: the ring it signs and verifies with,
/// reloaded from the store.
pub struct KeyManager {
    store: Arc<dyn SigningKeyStore>,
    clock: Arc<dyn Clock>,
    sealer: KeySealer,
    algorithm: Algorithm,
    /// How long after retirement a key's tokens may still verify: the longest
    /// access-token lifetime plus the verification leeway.
    retention_seconds: i64,
    ring: RwLock<Arc<KeyRing>>,
}

impl KeyManager {
    /// Loads the keys, creating on first start a current and a next key
    /// (and a next key for databases that only have a current one). Returns
    /// the kids it created.
    pub async fn open(
        store: Arc<dyn SigningKeyStore>,
        clock: Arc<dyn Clock>,
        secret: &ServerSecret,
        algorithm: Algorithm,
        retention_seconds: i64,
    ) -> Result<(Self, Vec<String>), AuthError> {
        let sealer = KeySealer::new(secret)?;
        let created = ensure_keys(store.as_ref(), &sealer, algorithm, clock.now()).await?;
        for k in &created {
            tracing::info!(kid = %k.kid, alg = %k.alg, state = k.state.as_str(), "created signing key");
        }
        let stored = store.signing_keys().await?;
        let ring = KeyRing::from_stored(&stored, &sealer, None)?;
        let manager = Self {
            store,
            clock,
            sealer,
            algorithm,
            retention_seconds,
            ring: RwLock::new(Arc::new(ring)),
        };
        Ok((manager, created.into_iter().map(|k| k.kid).collect()))
    }

    /// The ring to sign and verify with right now.
    pub fn ring(&self) -> Arc<KeyRing> {
        self.ring.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn jwks(&self) -> serde_json::Value {
        self.ring().jwks.clone()
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Re-reads the keys from the store (other nodes or the CLI may have
    /// rotated). Cheap when nothing changed: the ring is kept as it is, and
    /// even when it changed the parsed current key is reused if it still
    /// signs. `true` if the ring changed.
    pub async fn reload(&self) -> Result<bool, AuthError> {
        let stored = self.store.signing_keys().await?;
        let previous = self.ring();
        if previous.matches(&stored) {
            return Ok(false);
        }
        let ring = KeyRing::from_stored(&stored, &self.sealer, Some(&previous))?;
        if ring.signing.kid() != previous.signing.kid() {
            tracing::info!(kid = %ring.signing.kid(), alg = %ring.signing.alg(), "now signing with a new key");
        }
        *self.ring.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(ring);
        Ok(true)
    }

    /// Rotates now (in the configured algorithm) and reloads.
    pub async fn rotate(&self) -> Result<Option<Rotation>, AuthError> {
        let rotated = rotate(
            self.store.as_ref(),
            &self.sealer,
            self.algorithm,
            self.clock.now(),
        )
        .await?;
        self.reload().await?;
        Ok(rotated)
    }

    /// One maintenance pass, run periodically by every node:
    /// 1. rotate if `rotate_every` is set and the current key has signed for
    ///    at least that long (a compare-and-set, so nodes checking at the
    ///    same moment rotate once);
    /// 2. delete retired keys whose tokens have all expired, allowing
    ///    `propagation_seconds` for nodes that signed with a key until their
    ///    next reload;
    /// 3. reload the key set.
    ///
    /// Steps 1 and 2 are decided on the in-memory ring first, so a pass with
    /// nothing to do costs one read.
    pub async fn maintain(
        &self,
        rotate_every: Option<i64>,
        propagation_seconds: i64,
    ) -> Result<KeyMaintenance, AuthError> {
        let mut done = KeyMaintenance {
            reloaded: self.reload().await?,
            ..KeyMaintenance::default()
        };
        let now = self.clock.now();
        let ring = self.ring();
        if let (Some(every), Some(current)) = (rotate_every, ring.current()) {
            if now.saturating_sub(current.active_since()) >= every {
                // Make sure a next key exists to promote (it always should).
                ensure_keys(self.store.as_ref(), &self.sealer, self.algorithm, now).await?;
                done.rotated = rotate_from(
                    self.store.as_ref(),
                    &self.sealer,
                    self.algorithm,
                    &current.kid,
                    now,
                )
                .await?;
            }
        }
        let expired = ring.keys.iter().any(|k| {
            k.state == KeyState::Retired
                && removable_at(k.retired_at, self.retention_seconds, propagation_seconds)
                    .is_some_and(|t| t < now)
        });
        if expired {
            let before = now
                .saturating_sub(self.retention_seconds)
                .saturating_sub(propagation_seconds);
            done.removed = self.store.delete_retired_keys_before(before).await?;
            if done.removed > 0 {
                tracing::info!(keys = done.removed, "removed retired signing keys");
            }
        }
        if done.rotated.is_some() || done.removed > 0 {
            done.reloaded |= self.reload().await?;
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::access_token::{verify, AccessClaims, Audience, Expectations};
    use crate::clock::ManualClock;
    use crate::store::StoreError;

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
            if keys.values().any(|k| k.state == key.state) {
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
            let current_ok = keys
                .get(expected_current_kid)
                .is_some_and(|k| k.state == KeyState::Current);
            let next = keys
                .values()
                .filter(|k| k.state == KeyState::Next)
                .min_by(|a, b| a.created_at.cmp(&b.created_at).then(a.kid.cmp(&b.kid)))
                .map(|k| k.kid.clone());
            let Some(next) = next.filter(|_| current_ok) else {
                return Ok(false);
            };
            for k in keys.values_mut() {
                if k.state == KeyState::Current {
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
            let old =
                generate_key(&f.sealer(), Algorithm::EdDsa, KeyState::Current, 5).expect("key");
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

            let r = m.rotate().await.expect("rotate").expect("rotated");
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
            let first = rotate_from(f.store.as_ref(), &sealer, Algorithm::EdDsa, &kid, now)
                .await
                .expect("rotate");
            let second = rotate_from(f.store.as_ref(), &sealer, Algorithm::EdDsa, &kid, now)
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
            let r1 = es.rotate().await.expect("rotate").expect("rotated");
            assert_eq!(es.ring().signing.alg(), Algorithm::EdDsa);
            // Second: the ES256 key signs.
            let r2 = es.rotate().await.expect("rotate").expect("rotated");
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
                m.rotate().await.expect("rotate").expect("rotated");
                assert!(verifies(&m, &t, f.clock.now()));
                assert_eq!(m.ring().signing.alg(), alg);
                assert_ne!(kid_of(&token(&m, f.clock.now())), kid_of(&t));
            }
        });
    }
}
