//! The lifecycle's state changes in the store: creating what is missing,
//! rotating, and when a retired key may go. Each is one conditional write,
//! safe to race with other nodes and the CLI.

use crate::access_token::Algorithm;
use crate::clock::UnixTime;
use crate::keys::{generate_key, pick_current, KeySealer};
use crate::model::{KeyState, StoredKey};
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

pub(super) async fn rotate_from(
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
