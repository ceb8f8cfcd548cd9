//! `latchkey keys rotate` and `latchkey keys list`: signing-key operations
//! on both lineages (access tokens; ID tokens once that lineage exists).
//! Running nodes pick a rotation up on their next key reload, within
//! seconds.

use clap::{Args, Subcommand};
use latchkey_core::access_token::Algorithm;
use latchkey_core::clock::Clock;
use latchkey_core::key_manager::{self, removable_at, Rotation, Rotations, ID_TOKEN_ALGORITHM};
use latchkey_core::keys::{pick_current, KeySealer};
use latchkey_core::model::{KeyPurpose, KeyState};
use serde_json::{json, Value};

use super::CommandError;
use crate::config::{parse_algorithm, DataArgs, Settings};
use crate::server::{open_data, IfMissing, KEY_PROPAGATION_SECONDS};
use crate::StartError;

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(flatten)]
    pub location: DataArgs,
    #[command(subcommand)]
    pub action: KeysAction,
}

#[derive(Debug, Clone, Copy, Subcommand)]
pub enum KeysAction {
    /// Rotate: the current key retires, the next key starts signing, a new
    /// key (in the configured signing algorithm) is published as next; the
    /// ID-token keys (RS256), if created, rotate alike
    Rotate {
        /// Algorithm of the new next access-token key: EdDSA, Ed25519, ES256
        /// or RS256 [default: the config file's `signing_algorithm`, else
        /// EdDSA]
        #[arg(long, value_parser = parse_algorithm)]
        signing_algorithm: Option<Algorithm>,
    },
    /// List the signing keys with their purpose, state and dates (never key
    /// material)
    List,
}

/// Runs one action; returns what to print (JSON).
pub async fn run(args: KeysArgs, clock: &dyn Clock) -> Result<Value, CommandError> {
    let mut settings = args.location.settings()?;
    match args.action {
        KeysAction::Rotate { signing_algorithm } => {
            if let Some(alg) = signing_algorithm {
                settings.policy.signing_algorithm = alg;
            }
            let rotated = rotate_keys(&settings, clock).await?;
            Ok(rotated_answer(&rotated, settings.policy.signing_algorithm))
        }
        KeysAction::List => Ok(json!({ "keys": list_keys(&settings, clock).await? })),
    }
}

/// What `keys rotate` prints: the access-token lineage's rotation (its
/// new next key in `algorithm`) as it always has, and the ID-token
/// lineage's under `id_token` (`null` until that lineage exists).
pub fn rotated_answer(rotated: &Rotations, algorithm: Algorithm) -> Value {
    let mut answer = rotation_answer(rotated.access.as_ref(), algorithm);
    answer["id_token"] = if rotated.id_token_lineage {
        rotation_answer(rotated.id_token.as_ref(), ID_TOKEN_ALGORITHM)
    } else {
        Value::Null
    };
    answer
}

/// What `keys rotate` prints of one lineage's rotation (`None`: another
/// rotation won).
fn rotation_answer(rotation: Option<&Rotation>, algorithm: Algorithm) -> Value {
    match rotation {
        Some(r) => json!({
            "rotated": true,
            "retired": r.retired,
            "current": r.current,
            "next": r.next,
            "algorithm": algorithm.as_str(),
        }),
        None => json!({
            "rotated": false,
            "reason": "another rotation happened at the same moment; it stands",
        }),
    }
}

/// Rotates the signing keys in `settings.data_dir`'s database, each lineage
/// (the ID-token one only if it exists) by a compare-and-set on its current
/// key, so racing a node's scheduled rotation or another CLI rotates each
/// once. A lineage's rotation is `None` if the other one won.
pub async fn rotate_keys(settings: &Settings, clock: &dyn Clock) -> Result<Rotations, StartError> {
    let (dir, store) = open_data(settings, IfMissing::Refuse).await?;
    let sealer = KeySealer::new(&dir.secret)?;
    let rotated = key_manager::rotate(
        store.as_ref(),
        &sealer,
        settings.policy.signing_algorithm,
        clock.now(),
    )
    .await?;
    Ok(rotated)
}

/// The signing keys, the access-token lineage's first, then the ID-token
/// lineage's; in each current first, then next, then retired (newest
/// first), with when each retired key will be removed from the JWKS.
pub async fn list_keys(settings: &Settings, clock: &dyn Clock) -> Result<Vec<Value>, StartError> {
    let (_dir, store) = open_data(settings, IfMissing::Refuse).await?;
    let mut keys = store.signing_keys().await?;
    let signing: Vec<String> = [KeyPurpose::Access, KeyPurpose::IdToken]
        .into_iter()
        .filter_map(|purpose| pick_current(&keys, purpose).map(|k| k.kid.clone()))
        .collect();
    let rank = |state: KeyState| match state {
        KeyState::Current => 0,
        KeyState::Next => 1,
        KeyState::Retired => 2,
    };
    keys.sort_by(|a, b| {
        a.purpose
            .cmp(&b.purpose)
            .then_with(|| rank(a.state).cmp(&rank(b.state)))
            .then_with(|| b.retired_at.cmp(&a.retired_at))
            .then_with(|| b.created_at.cmp(&a.created_at))
    });
    let retention = settings.policy.max_access_ttl() + settings.policy.leeway_seconds;
    let now = clock.now();
    Ok(keys
        .iter()
        .map(|k| {
            json!({
                "kid": k.kid,
                "alg": k.alg,
                "state": k.state.as_str(),
                "purpose": k.purpose.as_str(),
                "signing": signing.contains(&k.kid),
                "created_at": k.created_at,
                "activated_at": k.activated_at,
                "retired_at": k.retired_at,
                "removable_at": removable_at(k.retired_at, retention, KEY_PROPAGATION_SECONDS),
                "age_seconds": now.saturating_sub(k.activated_at.unwrap_or(k.created_at)),
            })
        })
        .collect())
}
