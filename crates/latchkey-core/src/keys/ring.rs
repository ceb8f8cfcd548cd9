//! The runtime key ring: the current key of each lineage parsed to sign
//! with, every published key to verify with, and the JWKS document.

use std::sync::Arc;

use serde_json::{json, Value};

use super::{jwk, KeySealer};
use crate::access_token::{Algorithm, SigningKey, VerifyingKeys};
use crate::clock::UnixTime;
use crate::model::{KeyPurpose, KeyState, StoredKey};
use crate::AuthError;

/// What the ring knows of each published key, without key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub kid: String,
    pub alg: Algorithm,
    pub state: KeyState,
    pub purpose: KeyPurpose,
    pub created_at: UnixTime,
    pub activated_at: Option<UnixTime>,
    pub retired_at: Option<UnixTime>,
}

impl KeyInfo {
    fn of(k: &StoredKey, alg: Algorithm) -> Self {
        Self {
            kid: k.kid.clone(),
            alg,
            state: k.state,
            purpose: k.purpose,
            created_at: k.created_at,
            activated_at: k.activated_at,
            retired_at: k.retired_at,
        }
    }

    /// When it started signing (keys from before activation was recorded:
    /// when they were created).
    pub fn active_since(&self) -> UnixTime {
        self.activated_at.unwrap_or(self.created_at)
    }
}

/// The current key of lineage `purpose` among `keys`: normally the only
/// one; should a race ever leave two, every node picks the same (latest
/// activation, then kid).
pub fn pick_current(keys: &[StoredKey], purpose: KeyPurpose) -> Option<&StoredKey> {
    keys.iter()
        .filter(|k| k.state == KeyState::Current && k.purpose == purpose)
        .max_by(|a, b| {
            let since = |k: &StoredKey| k.activated_at.unwrap_or(k.created_at);
            since(a).cmp(&since(b)).then_with(|| a.kid.cmp(&b.kid))
        })
}

/// The keys a node works with: one to sign per lineage, every published
/// one (of both lineages) to verify.
pub struct KeyRing {
    /// The access-token lineage's current key.
    pub signing: Arc<SigningKey>,
    /// The ID-token lineage's current key; `None` until that lineage is
    /// created (on first need, see
    /// [`crate::key_manager::KeyManager::id_token_key`]).
    pub id_token_signing: Option<Arc<SigningKey>>,
    pub verifying: VerifyingKeys,
    /// The JWKS document, rendered once.
    pub jwks: Value,
    /// The published keys in JWKS order: the access lineage, then the ID-token
    /// lineage, each current, next, then retired (most recently retired first).
    pub keys: Vec<KeyInfo>,
}

impl KeyRing {
    /// Builds the ring from the stored keys. Each lineage's current private
    /// key is unsealed and parsed here, once; if `previous` already holds
    /// it, its parsed form is reused (reloads are periodic and RSA parsing is
    /// slow). A published key that cannot be read is left out with a warning
    /// rather than blocking every reload; only an unreadable current key is
    /// an error, and only a missing access-token one (the ID-token lineage
    /// may not exist yet).
    pub fn from_stored(
        keys: &[StoredKey],
        sealer: &KeySealer,
        previous: Option<&KeyRing>,
    ) -> Result<Self, AuthError> {
        let current = pick_current(keys, KeyPurpose::Access)
            .ok_or_else(|| AuthError::Internal("no current signing key".into()))?;
        let signing = parsed(current, previous.map(|p| &p.signing), sealer)?;
        let id_current = pick_current(keys, KeyPurpose::IdToken);
        let id_token_signing = match id_current {
            Some(c) => Some(parsed(
                c,
                previous.and_then(|p| p.id_token_signing.as_ref()),
                sealer,
            )?),
            None => None,
        };

        let lineage = |p: KeyPurpose| match p {
            KeyPurpose::Access => 0,
            KeyPurpose::IdToken => 1,
        };
        let rank = |k: &StoredKey| match k.state {
            _ if k.kid == current.kid || id_current.is_some_and(|c| c.kid == k.kid) => 0,
            KeyState::Current => 1,
            KeyState::Next => 2,
            KeyState::Retired => 3,
        };
        let mut ordered: Vec<&StoredKey> = keys.iter().collect();
        ordered.sort_by(|a, b| {
            lineage(a.purpose)
                .cmp(&lineage(b.purpose))
                .then_with(|| rank(a).cmp(&rank(b)))
                .then_with(|| b.retired_at.cmp(&a.retired_at))
                .then_with(|| b.created_at.cmp(&a.created_at))
                .then_with(|| a.kid.cmp(&b.kid))
        });

        let mut verifying = VerifyingKeys::default();
        let mut jwks = Vec::new();
        let mut infos = Vec::new();
        for k in ordered {
            let Some(alg) = Algorithm::parse(&k.alg) else {
                tracing::warn!(kid = %k.kid, alg = %k.alg, "skipping key of unsupported algorithm");
                continue;
            };
            let Some(jwk) = jwk(&k.kid, alg, &k.public_key) else {
                tracing::warn!(kid = %k.kid, "skipping key with a malformed public key");
                continue;
            };
            if verifying.insert(&k.kid, alg, &k.public_key).is_err() {
                tracing::warn!(kid = %k.kid, "skipping key with an unusable public key");
                continue;
            }
            jwks.push(jwk);
            infos.push(KeyInfo::of(k, alg));
        }
        for c in std::iter::once(current).chain(id_current) {
            if !verifying.contains(&c.kid) {
                return Err(AuthError::Internal(format!(
                    "current signing key {} has an unusable public key",
                    c.kid
                )));
            }
        }
        Ok(Self {
            signing,
            id_token_signing,
            verifying,
            jwks: json!({ "keys": jwks }),
            keys: infos,
        })
    }

    /// Whether `keys` describe exactly this ring (same kids in the same
    /// lineages, states and dates), so a reload can keep it.
    pub fn matches(&self, keys: &[StoredKey]) -> bool {
        if keys.len() != self.keys.len() {
            return false;
        }
        let signs = |purpose, key: Option<&Arc<SigningKey>>| {
            pick_current(keys, purpose).map(|c| c.kid.as_str()) == key.map(|k| k.kid())
        };
        keys.iter().all(|k| {
            self.keys.iter().any(|i| {
                i.kid == k.kid
                    && i.alg.as_str() == k.alg
                    && i.state == k.state
                    && i.purpose == k.purpose
                    && i.created_at == k.created_at
                    && i.activated_at == k.activated_at
                    && i.retired_at == k.retired_at
            })
        }) && signs(KeyPurpose::Access, Some(&self.signing))
            && signs(KeyPurpose::IdToken, self.id_token_signing.as_ref())
    }

    /// The access-token lineage's current key.
    pub fn current(&self) -> Option<&KeyInfo> {
        self.keys.iter().find(|k| k.kid == self.signing.kid())
    }

    /// The ID-token lineage's current key, once that lineage exists.
    pub fn id_token_current(&self) -> Option<&KeyInfo> {
        let kid = self.id_token_signing.as_ref()?.kid();
        self.keys.iter().find(|k| k.kid == kid)
    }
}

/// The parsed private key of `current`: `previous`'s if it is the same key,
/// else unsealed, parsed and checked against the stored public key.
fn parsed(
    current: &StoredKey,
    previous: Option<&Arc<SigningKey>>,
    sealer: &KeySealer,
) -> Result<Arc<SigningKey>, AuthError> {
    let alg = Algorithm::parse(&current.alg)
        .ok_or_else(|| AuthError::Internal(format!("unsupported alg {}", current.alg)))?;
    if let Some(p) = previous.filter(|p| p.kid() == current.kid && p.alg() == alg) {
        return Ok(p.clone());
    }
    let pkcs8 = sealer.open(&current.kid, &current.sealed_private_key)?;
    let key = SigningKey::from_pkcs8(&current.kid, alg, &pkcs8)
        .map_err(|_| AuthError::Internal("stored signing key is unreadable".into()))?;
    if key.public_key() != current.public_key.as_slice() {
        return Err(AuthError::Internal(format!(
            "signing key {} does not match its public key",
            current.kid
        )));
    }
    Ok(Arc::new(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access_token::{verify, AccessClaims, Audience, Expectations};
    use crate::keys::{generate_key, public_key_from_jwk};
    use crate::secret::ServerSecret;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;

    fn sealer() -> KeySealer {
        KeySealer::new(&ServerSecret::generate().expect("rng")).expect("sealer")
    }

    fn key(sealer: &KeySealer, alg: Algorithm, purpose: KeyPurpose, state: KeyState) -> StoredKey {
        generate_key(sealer, alg, purpose, state, 1).expect("key")
    }

    fn claims() -> AccessClaims {
        AccessClaims {
            iss: "i".into(),
            sub: "s".into(),
            aud: Audience::One("a".into()),
            exp: 2000,
            iat: 1000,
            nbf: None,
            jti: "j".into(),
            client_id: "c".into(),
            sid: None,
            scope: None,
            roles: vec![],
        }
    }

    fn expect() -> Expectations {
        Expectations {
            issuer: "i".into(),
            audience: Some("a".into()),
            leeway: 0,
        }
    }

    fn published(ring: &KeyRing) -> Vec<&str> {
        ring.jwks["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| k["kid"].as_str().expect("kid"))
            .collect()
    }

    #[test]
    fn ring_publishes_public_members_only() {
        let sealer = sealer();
        let mut stored = Vec::new();
        for (alg, state) in [
            (Algorithm::EdDsa, KeyState::Current),
            (Algorithm::Es256, KeyState::Next),
            (Algorithm::Rs256, KeyState::Retired),
        ] {
            stored.push(key(&sealer, alg, KeyPurpose::Access, state));
        }
        let ring = KeyRing::from_stored(&stored, &sealer, None).expect("ring");
        let keys = ring.jwks["keys"].as_array().expect("keys");
        assert_eq!(keys.len(), 3);
        let allowed = ["kty", "crv", "x", "y", "n", "e", "kid", "alg", "use"];
        for jwk in keys {
            assert_eq!(jwk["use"], "sig");
            for (member, _) in jwk.as_object().expect("object") {
                assert!(allowed.contains(&member.as_str()), "{member} published");
            }
        }
        assert_eq!(keys[0]["kid"], stored[0].kid.as_str());
        assert_eq!(keys[0]["kty"], "OKP");
        assert_eq!(keys[0]["alg"], "EdDSA");
        assert_eq!(keys[1]["kty"], "EC");
        assert_eq!(keys[1]["crv"], "P-256");
        assert_eq!(keys[1]["alg"], "ES256");
        assert_eq!(keys[2]["kty"], "RSA");
        assert_eq!(keys[2]["e"], "AQAB");
        assert_eq!(keys[2]["alg"], "RS256");
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(keys[2]["n"].as_str().expect("n"))
                .expect("b64")
                .len(),
            256
        );
        assert_eq!(ring.signing.kid(), stored[0].kid);
        assert!(ring.id_token_signing.is_none());
        assert!(ring.id_token_current().is_none());
        for k in &stored {
            assert!(ring.verifying.contains(&k.kid));
        }
    }

    #[test]
    fn every_algorithm_generates_signs_and_verifies_through_its_jwk() {
        let sealer = sealer();
        for alg in Algorithm::ALL {
            let k = key(&sealer, alg, KeyPurpose::Access, KeyState::Current);
            assert_eq!(k.alg, alg.as_str());
            let ring = KeyRing::from_stored(std::slice::from_ref(&k), &sealer, None).expect("ring");
            let token = ring.signing.sign(&claims());
            assert!(verify(&token, &ring.verifying, &expect(), 1000).is_ok());
            // A verifier that only has our JWKS gets the same key back.
            let jwk = &ring.jwks["keys"][0];
            let (kid, parsed_alg, public) = public_key_from_jwk(jwk).expect("jwk parses");
            assert_eq!((kid.as_str(), parsed_alg), (k.kid.as_str(), alg));
            assert_eq!(public, k.public_key);
            let mut v = VerifyingKeys::default();
            v.insert(&kid, parsed_alg, &public).expect("insert");
            assert!(verify(&token, &v, &expect(), 1000).is_ok());
            // The JWK's alg must agree with its key type.
            let mut lying = jwk.clone();
            lying["alg"] = "HS256".into();
            assert!(public_key_from_jwk(&lying).is_none());
        }
    }

    /// Each lineage signs with its own current key; the JWKS and the
    /// verifying keys hold both lineages, the access lineage first.
    #[test]
    fn two_lineages_sign_apart_and_publish_together() {
        let sealer = sealer();
        let (a, i) = (KeyPurpose::Access, KeyPurpose::IdToken);
        let stored = vec![
            key(&sealer, Algorithm::Rs256, i, KeyState::Next),
            key(&sealer, Algorithm::EdDsa, a, KeyState::Next),
            key(&sealer, Algorithm::Rs256, i, KeyState::Current),
            key(&sealer, Algorithm::EdDsa, a, KeyState::Current),
            StoredKey {
                retired_at: Some(5),
                ..key(&sealer, Algorithm::Rs256, i, KeyState::Retired)
            },
        ];
        let ring = KeyRing::from_stored(&stored, &sealer, None).expect("ring");
        assert_eq!(ring.signing.kid(), stored[3].kid);
        assert_eq!(ring.signing.alg(), Algorithm::EdDsa);
        let id = ring.id_token_signing.as_ref().expect("ID-token key");
        assert_eq!(
            (id.kid(), id.alg()),
            (stored[2].kid.as_str(), Algorithm::Rs256)
        );
        assert_eq!(ring.current().map(|k| k.purpose), Some(a));
        assert_eq!(
            ring.id_token_current().map(|k| (k.kid.as_str(), k.purpose)),
            Some((stored[2].kid.as_str(), i))
        );
        let order = [3, 1, 2, 0, 4].map(|n| stored[n].kid.as_str());
        assert_eq!(published(&ring), order);
        let purposes: Vec<KeyPurpose> = ring.keys.iter().map(|k| k.purpose).collect();
        assert_eq!(purposes, [a, a, i, i, i]);
        for k in &stored {
            assert!(ring.verifying.contains(&k.kid));
        }
        assert!(ring.matches(&stored));
        // A key moving to the other lineage is a change.
        let mut moved = stored.clone();
        moved[4].purpose = a;
        assert!(!ring.matches(&moved));
        // Without an access-token current key there is no ring.
        assert!(KeyRing::from_stored(&stored[..3], &sealer, None).is_err());
    }

    #[test]
    fn reload_reuses_the_parsed_signing_keys() {
        let sealer = sealer();
        let keys = vec![
            key(
                &sealer,
                Algorithm::Rs256,
                KeyPurpose::Access,
                KeyState::Current,
            ),
            key(
                &sealer,
                Algorithm::EdDsa,
                KeyPurpose::Access,
                KeyState::Next,
            ),
            key(
                &sealer,
                Algorithm::Rs256,
                KeyPurpose::IdToken,
                KeyState::Current,
            ),
            key(
                &sealer,
                Algorithm::Rs256,
                KeyPurpose::IdToken,
                KeyState::Next,
            ),
        ];
        let first = KeyRing::from_stored(&keys, &sealer, None).expect("ring");
        assert!(first.matches(&keys));
        let second = KeyRing::from_stored(&keys, &sealer, Some(&first)).expect("ring");
        assert!(Arc::ptr_eq(&first.signing, &second.signing));
        let (id1, id2) = (
            first.id_token_signing.as_ref(),
            second.id_token_signing.as_ref(),
        );
        assert!(Arc::ptr_eq(id1.expect("id key"), id2.expect("id key")));
        // The access lineage rotates: its new key is parsed, the ID-token
        // key is still reused.
        let mut rotated = keys.clone();
        rotated[0].state = KeyState::Retired;
        rotated[1].state = KeyState::Current;
        assert!(!first.matches(&rotated));
        let third = KeyRing::from_stored(&rotated, &sealer, Some(&second)).expect("ring");
        assert_eq!(third.signing.kid(), rotated[1].kid);
        assert_eq!(third.signing.alg(), Algorithm::EdDsa);
        let id3 = third.id_token_signing.as_ref().expect("id key");
        assert!(Arc::ptr_eq(id2.expect("id key"), id3));
        // And the other way round.
        let mut id_rotated = rotated.clone();
        id_rotated[2].state = KeyState::Retired;
        id_rotated[3].state = KeyState::Current;
        assert!(!third.matches(&id_rotated));
        let fourth = KeyRing::from_stored(&id_rotated, &sealer, Some(&third)).expect("ring");
        assert!(Arc::ptr_eq(&third.signing, &fourth.signing));
        let id4 = fourth.id_token_signing.as_ref().expect("id key");
        assert_eq!(id4.kid(), id_rotated[3].kid);
    }

    #[test]
    fn a_current_key_sealed_for_another_kid_is_refused() {
        let sealer = sealer();
        for purpose in [KeyPurpose::Access, KeyPurpose::IdToken] {
            let a = key(&sealer, Algorithm::EdDsa, purpose, KeyState::Current);
            let mut b = StoredKey {
                created_at: 0,
                ..key(&sealer, Algorithm::EdDsa, purpose, KeyState::Current)
            };
            b.sealed_private_key = a.sealed_private_key.clone();
            b.kid = "zzz".into();
            b.activated_at = Some(5);
            let mut keys = vec![a, b];
            if purpose == KeyPurpose::IdToken {
                keys.push(key(
                    &sealer,
                    Algorithm::EdDsa,
                    KeyPurpose::Access,
                    KeyState::Current,
                ));
            }
            assert!(
                KeyRing::from_stored(&keys, &sealer, None).is_err(),
                "{purpose:?}"
            );
        }
    }
}
