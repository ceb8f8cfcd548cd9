//! The lifecycle's state changes in the store: creating what is missing,
//! rotating, and when a retired key may go. Each is one conditional write
//! within one lineage, safe to race with other nodes and the CLI.

use crate::access_token::Algorithm;
use crate::clock::UnixTime;
use crate::keys::{generate_key, pick_current, KeySealer};
use crate::model::{KeyPurpose, KeyState, StoredKey};
use crate::store::SigningKeyStore;
use crate::AuthError;

/// The one algorithm of the ID-token lineage: OpenID Connect requires
/// RS256 to be available, and no relying party may be assumed to take more.
pub const ID_TOKEN_ALGORITHM: Algorithm = Algorithm::Rs256;

/// What a rotation of one lineage did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// The lineage rotated.
    pub purpose: KeyPurpose,
    /// The key that stopped signing.
    pub retired: String,
    /// The former next key, signing now.
    pub current: String,
    /// The freshly generated key, published from now on.
    pub next: String,
}

/// What rotating every lineage did; each lineage is its own
/// compare-and-set, so one may lose a race the other wins.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rotations {
    /// The access-token lineage; `None` if another rotation won.
    pub access: Option<Rotation>,
    /// The ID-token lineage; `None` if it does not exist (see
    /// `id_token_lineage`) or another rotation won.
    pub id_token: Option<Rotation>,
    /// Whether the ID-token lineage exists: it is created on first need,
    /// and only then rotated.
    pub id_token_lineage: bool,
}

/// Creates what is missing of one current and one next key of lineage
/// `purpose`, each in `alg`; returns the keys it created. Safe to race: a
/// key is only inserted if its lineage has none in its state.
pub async fn ensure_keys(
    store: &dyn SigningKeyStore,
    sealer: &KeySealer,
    alg: Algorithm,
    purpose: KeyPurpose,
    now: UnixTime,
) -> Result<Vec<StoredKey>, AuthError> {
    let stored = store.signing_keys().await?;
    let mut created = Vec::new();
    for state in [KeyState::Current, KeyState::Next] {
        if stored
            .iter()
            .any(|k| k.state == state && k.purpose == purpose)
        {
            continue;
        }
        let key = generate_key(sealer, alg, purpose, state, now)?;
        if store.insert_signing_key_if_none(&key).await? {
            created.push(key);
        }
    }
    Ok(created)
}

/// Rotates every lineage that exists: the access-token lineage (created
/// if missing) with a new next key in `alg`, and the ID-token lineage, if
/// it has been created, with a new RS256 key.
pub async fn rotate(
    store: &dyn SigningKeyStore,
    sealer: &KeySealer,
    alg: Algorithm,
    now: UnixTime,
) -> Result<Rotations, AuthError> {
    let access = rotate_lineage(store, sealer, alg, KeyPurpose::Access, now).await?;
    let stored = store.signing_keys().await?;
    let id_token_lineage = pick_current(&stored, KeyPurpose::IdToken).is_some();
    let id_token = if id_token_lineage {
        rotate_lineage(store, sealer, ID_TOKEN_ALGORITHM, KeyPurpose::IdToken, now).await?
    } else {
        None
    };
    Ok(Rotations {
        access,
        id_token,
        id_token_lineage,
    })
}

/// Rotates lineage `purpose`: current → retired, next → current, a new key
/// in `alg` → next, creating first what is missing of a current and a next
/// key. `None` if another node or CLI rotated between our read and our
/// write (that rotation stands; ours does nothing).
pub async fn rotate_lineage(
    store: &dyn SigningKeyStore,
    sealer: &KeySealer,
    alg: Algorithm,
    purpose: KeyPurpose,
    now: UnixTime,
) -> Result<Option<Rotation>, AuthError> {
    ensure_keys(store, sealer, alg, purpose, now).await?;
    let before = store.signing_keys().await?;
    let expected = pick_current(&before, purpose)
        .ok_or_else(|| AuthError::Internal(format!("no current {} key", purpose.as_str())))?
        .kid
        .clone();
    rotate_from(store, sealer, alg, purpose, &expected, now).await
}

/// One rotation of lineage `purpose` as a compare-and-set on
/// `expected_current`.
pub(super) async fn rotate_from(
    store: &dyn SigningKeyStore,
    sealer: &KeySealer,
    alg: Algorithm,
    purpose: KeyPurpose,
    expected_current: &str,
    now: UnixTime,
) -> Result<Option<Rotation>, AuthError> {
    let next = generate_key(sealer, alg, purpose, KeyState::Next, now)?;
    if !store
        .rotate_signing_keys(expected_current, &next, now)
        .await?
    {
        return Ok(None);
    }
    let after = store.signing_keys().await?;
    let current = pick_current(&after, purpose)
        .map(|k| k.kid.clone())
        .unwrap_or_default();
    tracing::info!(
        purpose = purpose.as_str(),
        retired = expected_current,
        current,
        next = %next.kid,
        alg = %alg,
        "signing keys rotated"
    );
    Ok(Some(Rotation {
        purpose,
        retired: expected_current.to_owned(),
        current,
        next: next.kid,
    }))
}

/// When a retired key may go: every token it signed has expired, allowing
/// for nodes that kept signing with it until their next reload
/// (`propagation_seconds`). `None` for keys that are not retired. The same
/// for both lineages: an ID token lives no longer than an access token.
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
