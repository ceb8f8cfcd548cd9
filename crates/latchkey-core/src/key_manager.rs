//! The signing-key lifecycle (docs/ARCHITECTURE.md, Keys):
//!
//! **next** (published in JWKS, not yet signing) → **current** (signing) →
//! **retired** (published until every token it signed has expired) →
//! removed.
//!
//! There are two independent lineages ([`KeyPurpose`]), each with its own
//! current and next key: access tokens in the configured algorithm, created
//! at the first start, and OpenID Connect ID tokens in RS256, created on
//! first need ([`KeyManager::id_token_key`]: RSA key generation is slow and
//! most deployments never issue an ID token).
//!
//! Every state change is one conditional write in the store, so several
//! nodes (and a CLI) may rotate at once: rotation is a compare-and-set on the
//! current kid they saw, and the loser changes nothing. Nodes do not talk to
//! each other; each reloads the key set from the store periodically
//! ([`KeyManager::maintain`]), so all of them sign with the new current key
//! within one reload interval and verify with every published key.

use std::sync::{Arc, RwLock};

use crate::access_token::{Algorithm, SigningKey};
use crate::clock::{Clock, UnixTime};
use crate::keys::{KeyInfo, KeyRing, KeySealer};
use crate::model::{KeyPurpose, KeyState};
use crate::secret::ServerSecret;
use crate::store::SigningKeyStore;
use crate::AuthError;

mod lifecycle;
#[cfg(test)]
mod tests;

use lifecycle::rotate_from;
pub use lifecycle::{
    ensure_keys, removable_at, rotate, rotate_lineage, Rotation, Rotations, ID_TOKEN_ALGORITHM,
};

/// What one [`KeyManager::maintain`] pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KeyMaintenance {
    /// The access-token lineage's scheduled rotation.
    pub rotated: Option<Rotation>,
    /// The ID-token lineage's scheduled rotation (once that lineage exists).
    pub id_token_rotated: Option<Rotation>,
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
    /// Loads the keys, creating on first start a current and a next
    /// access-token key (and a next key for databases that only have a
    /// current one); the ID-token lineage waits for its first use. Returns
    /// the kids it created.
    pub async fn open(
        store: Arc<dyn SigningKeyStore>,
        clock: Arc<dyn Clock>,
        secret: &ServerSecret,
        algorithm: Algorithm,
        retention_seconds: i64,
    ) -> Result<(Self, Vec<String>), AuthError> {
        let sealer = KeySealer::new(secret)?;
        let created = ensure_keys(
            store.as_ref(),
            &sealer,
            algorithm,
            KeyPurpose::Access,
            clock.now(),
        )
        .await?;
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

    /// The current key of the ID-token lineage (RS256), to sign ID tokens
    /// with [`SigningKey::sign_jwt`]. On first need, creates that lineage's
    /// current and next keys (each insert race-safe, so nodes asking at once
    /// create one lineage between them) and reloads. Creating it generates
    /// two RSA keys on the calling thread: tens to hundreds of milliseconds,
    /// once per deployment.
    pub async fn id_token_key(&self) -> Result<Arc<SigningKey>, AuthError> {
        if let Some(key) = &self.ring().id_token_signing {
            return Ok(key.clone());
        }
        let created = ensure_keys(
            self.store.as_ref(),
            &self.sealer,
            ID_TOKEN_ALGORITHM,
            KeyPurpose::IdToken,
            self.clock.now(),
        )
        .await?;
        for k in &created {
            tracing::info!(kid = %k.kid, alg = %k.alg, state = k.state.as_str(), "created ID-token signing key");
        }
        self.reload().await?;
        self.ring()
            .id_token_signing
            .clone()
            .ok_or_else(|| AuthError::Internal("no current ID-token signing key".into()))
    }

    /// Re-reads the keys from the store (other nodes or the CLI may have
    /// rotated). Cheap when nothing changed: the ring is kept as it is, and
    /// even when it changed the parsed current keys are reused if they
    /// still sign. `true` if the ring changed.
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
        if let Some(id) = &ring.id_token_signing {
            if previous.id_token_signing.as_ref().map(|k| k.kid()) != Some(id.kid()) {
                tracing::info!(kid = %id.kid(), alg = %id.alg(), "now signing ID tokens with a new key");
            }
        }
        *self.ring.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(ring);
        Ok(true)
    }

    /// Rotates every lineage now (access tokens in the configured
    /// algorithm; ID tokens, if that lineage exists, in RS256) and reloads.
    pub async fn rotate(&self) -> Result<Rotations, AuthError> {
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
    /// 1. rotate each lineage if `rotate_every` is set and its current key
    ///    has signed for at least that long (a compare-and-set, so nodes
    ///    checking at the same moment rotate once);
    /// 2. delete retired keys (of either lineage) whose tokens have all
    ///    expired, allowing `propagation_seconds` for nodes that signed with
    ///    a key until their next reload;
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
        if let Some(every) = rotate_every {
            done.rotated = self
                .rotate_if_due(ring.current(), self.algorithm, every, now)
                .await?;
            done.id_token_rotated = self
                .rotate_if_due(ring.id_token_current(), ID_TOKEN_ALGORITHM, every, now)
                .await?;
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
        if done.rotated.is_some() || done.id_token_rotated.is_some() || done.removed > 0 {
            done.reloaded |= self.reload().await?;
        }
        Ok(done)
    }

    /// Rotates the lineage of `current` (as this node last saw it) if it
    /// has signed for `every` seconds; nothing for a lineage that does not
    /// exist.
    async fn rotate_if_due(
        &self,
        current: Option<&KeyInfo>,
        alg: Algorithm,
        every: i64,
        now: UnixTime,
    ) -> Result<Option<Rotation>, AuthError> {
        let Some(current) = current else {
            return Ok(None);
        };
        if now.saturating_sub(current.active_since()) < every {
            return Ok(None);
        }
        let store = self.store.as_ref();
        // Make sure a next key exists to promote (it always should).
        ensure_keys(store, &self.sealer, alg, current.purpose, now).await?;
        rotate_from(store, &self.sealer, alg, current.purpose, &current.kid, now).await
    }
}
