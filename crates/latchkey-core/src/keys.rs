//! Signing-key material: generation in each [`Algorithm`], sealing private
//! keys under the key-encryption key, JWK rendering and RFC 7638 key ids,
//! and the runtime key ring (signing key + published verification keys +
//! JWKS document). The lifecycle (next → current → retired → removed) is in
//! [`crate::key_manager`].

use std::sync::Arc;

use aws_lc_rs::aead::{self, Aad, Nonce, NONCE_LEN};
use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair};
use serde_json::{json, Value};

use crate::access_token::{Algorithm, SigningKey, VerifyingKeys};
// The JWK format is the wire crate's, shared with resource servers.
use crate::clock::UnixTime;
use crate::model::{KeyState, StoredKey};
use crate::secret::{fill_random, ServerSecret};
use crate::AuthError;
pub use latchkey_wire::jwk::{jwk, public_key_from_jwk};

/// Seals and opens private keys. The key-encryption key is derived from the
/// server secret, so a copy of the database alone reveals no private key.
pub struct KeySealer {
    /// (secret version, AES-256-GCM key); the last one seals.
    keys: Vec<(u8, aead::LessSafeKey)>,
}

const SEAL_PURPOSE: &[u8] = b"latchkey signing-key encryption v1";

impl KeySealer {
    pub fn new(secret: &ServerSecret) -> Result<Self, AuthError> {
        let keys = secret
            .versions()
            .iter()
            .map(|v| Ok((v.version, v.aead_key(SEAL_PURPOSE)?)))
            .collect::<Result<Vec<_>, AuthError>>()?;
        Ok(Self { keys })
    }

    /// `version ‖ nonce ‖ ciphertext ‖ tag`, with the kid as associated data
    /// so a sealed key cannot be swapped onto another row.
    pub fn seal(&self, kid: &str, private_key: &[u8]) -> Result<Vec<u8>, AuthError> {
        let (version, key) = &self.keys[self.keys.len() - 1];
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce)?;
        let mut buf = private_key.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(kid.as_bytes()),
            &mut buf,
        )
        .map_err(|_| AuthError::Internal("sealing key failed".into()))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + buf.len());
        out.push(*version);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        Ok(out)
    }

    pub fn open(&self, kid: &str, sealed: &[u8]) -> Result<Vec<u8>, AuthError> {
        let fail = || {
            AuthError::Internal(format!(
                "cannot decrypt signing key {kid}: wrong server secret or corrupt row"
            ))
        };
        if sealed.len() < 1 + NONCE_LEN {
            return Err(fail());
        }
        let (_, key) = self
            .keys
            .iter()
            .find(|(v, _)| *v == sealed[0])
            .ok_or_else(fail)?;
        let nonce =
            Nonce::try_assume_unique_for_key(&sealed[1..1 + NONCE_LEN]).map_err(|_| fail())?;
        let mut buf = sealed[1 + NONCE_LEN..].to_vec();
        let plain = key
            .open_in_place(nonce, Aad::from(kid.as_bytes()), &mut buf)
            .map_err(|_| fail())?;
        Ok(plain.to_vec())
    }
}

/// A new key pair as an unencrypted PKCS#8 document (only ever held in
/// memory until it is sealed).
pub fn generate_pkcs8(alg: Algorithm) -> Result<Vec<u8>, AuthError> {
    let fail = |_| AuthError::Internal(format!("{alg} key generation failed"));
    let rng = SystemRandom::new();
    Ok(match alg {
        Algorithm::EdDsa | Algorithm::Ed25519 => Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(fail)?
            .as_ref()
            .to_vec(),
        Algorithm::Es256 => {
            EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(fail)?
                .as_ref()
                .to_vec()
        }
        Algorithm::Rs256 => RsaKeyPair::generate(KeySize::Rsa2048)
            .map_err(fail)?
            .as_der()
            .map_err(fail)?
            .as_ref()
            .to_vec(),
    })
}

/// A new key of algorithm `alg` in lifecycle state `state`, its kid the
/// RFC 7638 JWK thumbprint of its public key, its private key sealed.
pub fn generate_key(
    sealer: &KeySealer,
    alg: Algorithm,
    state: KeyState,
    now: UnixTime,
) -> Result<StoredKey, AuthError> {
    let pkcs8 = generate_pkcs8(alg)?;
    // Parse it as the ring will, so a key we cannot sign with is never stored.
    let parsed = SigningKey::from_pkcs8("new", alg, &pkcs8)
        .map_err(|_| AuthError::Internal(format!("generated {alg} key is unusable")))?;
    let public_key = parsed.public_key().to_vec();
    let kid = thumbprint(alg, &public_key)?;
    Ok(StoredKey {
        sealed_private_key: sealer.seal(&kid, &pkcs8)?,
        kid,
        alg: alg.as_str().to_owned(),
        state,
        public_key,
        created_at: now,
        activated_at: (state == KeyState::Current).then_some(now),
        retired_at: None,
    })
}

/// RFC 7638 JWK thumbprint (SHA-256, base64url) of a key.
pub fn thumbprint(alg: Algorithm, public_key: &[u8]) -> Result<String, AuthError> {
    latchkey_wire::jwk::thumbprint(alg, public_key)
        .ok_or_else(|| AuthError::Internal(format!("malformed {alg} public key")))
}

/// What the ring knows of each published key, without key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub kid: String,
    pub alg: Algorithm,
    pub state: KeyState,
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

/// The current key among `keys`: normally the only one; should a race ever
/// leave two, every node picks the same (latest activation, then kid).
pub fn pick_current(keys: &[StoredKey]) -> Option<&StoredKey> {
    keys.iter()
        .filter(|k| k.state == KeyState::Current)
        .max_by(|a, b| {
            let since = |k: &StoredKey| k.activated_at.unwrap_or(k.created_at);
            since(a).cmp(&since(b)).then_with(|| a.kid.cmp(&b.kid))
        })
}

/// The keys a node works with: one to sign, all published ones to verify.
pub struct KeyRing {
    pub signing: Arc<SigningKey>,
    pub verifying: VerifyingKeys,
    /// The JWKS document, rendered once.
    pub jwks: Value,
    /// The published keys in JWKS order: current, next, then retired
    /// (most recently retired first).
    pub keys: Vec<KeyInfo>,
}

impl KeyRing {
    /// Builds the ring from the stored keys. The current key's private key is
    /// unsealed and parsed here, once; if `previous` already holds it, its
    /// parsed form is reused (reloads are periodic and RSA parsing is slow).
    /// A published key that cannot be read is left out with a warning rather
    /// than blocking every reload; only an unreadable current key is an error.
    pub fn from_stored(
        keys: &[StoredKey],
        sealer: &KeySealer,
        previous: Option<&KeyRing>,
    ) -> Result<Self, AuthError> {
        let current = pick_current(keys)
            .ok_or_else(|| AuthError::Internal("no current signing key".into()))?;
        let alg = Algorithm::parse(&current.alg)
            .ok_or_else(|| AuthError::Internal(format!("unsupported alg {}", current.alg)))?;
        let signing = match previous {
            Some(p) if p.signing.kid() == current.kid && p.signing.alg() == alg => {
                p.signing.clone()
            }
            _ => {
                let pkcs8 = sealer.open(&current.kid, &current.sealed_private_key)?;
                let key = SigningKey::from_pkcs8(&current.kid, alg, &pkcs8)
                    .map_err(|_| AuthError::Internal("stored signing key is unreadable".into()))?;
                if key.public_key() != current.public_key.as_slice() {
                    return Err(AuthError::Internal(format!(
                        "signing key {} does not match its public key",
                        current.kid
                    )));
                }
                Arc::new(key)
            }
        };

        let rank = |k: &StoredKey| match k.state {
            _ if k.kid == current.kid => 0,
            KeyState::Current => 1,
            KeyState::Next => 2,
            KeyState::Retired => 3,
        };
        let mut ordered: Vec<&StoredKey> = keys.iter().collect();
        ordered.sort_by(|a, b| {
            rank(a)
                .cmp(&rank(b))
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
        if !verifying.contains(&current.kid) {
            return Err(AuthError::Internal(format!(
                "current signing key {} has an unusable public key",
                current.kid
            )));
        }
        Ok(Self {
            signing,
            verifying,
            jwks: json!({ "keys": jwks }),
            keys: infos,
        })
    }

    /// Whether `keys` describe exactly this ring (same kids in the same
    /// states and dates), so a reload can keep it.
    pub fn matches(&self, keys: &[StoredKey]) -> bool {
        if keys.len() != self.keys.len() {
            return false;
        }
        keys.iter().all(|k| {
            self.keys.iter().any(|i| {
                i.kid == k.kid
                    && i.alg.as_str() == k.alg
                    && i.state == k.state
                    && i.created_at == k.created_at
                    && i.activated_at == k.activated_at
                    && i.retired_at == k.retired_at
            })
        }) && pick_current(keys).is_some_and(|c| c.kid == self.signing.kid())
    }

    pub fn current(&self) -> Option<&KeyInfo> {
        self.keys.iter().find(|k| k.kid == self.signing.kid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access_token::{verify, AccessClaims, Audience, Expectations};
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;

    fn sealer() -> KeySealer {
        KeySealer::new(&ServerSecret::generate().expect("rng")).expect("sealer")
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

    #[test]
    fn sealed_keys_open_only_with_same_secret_and_kid() {
        let sealer = sealer();
        let k = generate_key(&sealer, Algorithm::EdDsa, KeyState::Current, 1).expect("key");
        assert!(sealer.open(&k.kid, &k.sealed_private_key).is_ok());
        assert!(sealer.open("other-kid", &k.sealed_private_key).is_err());
        let other = KeySealer::new(&ServerSecret::generate().expect("rng")).expect("sealer");
        assert!(other.open(&k.kid, &k.sealed_private_key).is_err());
        assert!(sealer.open(&k.kid, &[1, 2, 3]).is_err());
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
            stored.push(generate_key(&sealer, alg, state, 1).expect("key"));
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
        for k in &stored {
            assert!(ring.verifying.contains(&k.kid));
        }
    }

    #[test]
    fn every_algorithm_generates_signs_and_verifies_through_its_jwk() {
        let sealer = sealer();
        for alg in Algorithm::ALL {
            let k = generate_key(&sealer, alg, KeyState::Current, 1).expect("key");
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

    /// RFC 7638 §3.1's example key and its published thumbprint.
    #[test]
    fn rsa_thumbprint_matches_rfc_7638_example() {
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let jwk = json!({"kty": "RSA", "e": "AQAB", "n": n, "kid": "x"});
        let (_, alg, public) = public_key_from_jwk(&jwk).expect("parses");
        assert_eq!(
            thumbprint(alg, &public).expect("thumbprint"),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn kid_is_the_thumbprint_of_each_key_type() {
        let sealer = sealer();
        for alg in Algorithm::ALL {
            let k = generate_key(&sealer, alg, KeyState::Next, 1).expect("key");
            assert_eq!(k.kid, thumbprint(alg, &k.public_key).expect("thumbprint"));
            assert_eq!(k.kid.len(), 43);
            assert_eq!(k.activated_at, None);
        }
    }

    #[test]
    fn reload_reuses_the_parsed_signing_key() {
        let sealer = sealer();
        let current = generate_key(&sealer, Algorithm::Rs256, KeyState::Current, 1).expect("key");
        let next = generate_key(&sealer, Algorithm::EdDsa, KeyState::Next, 1).expect("key");
        let keys = vec![current, next];
        let first = KeyRing::from_stored(&keys, &sealer, None).expect("ring");
        assert!(first.matches(&keys));
        let second = KeyRing::from_stored(&keys, &sealer, Some(&first)).expect("ring");
        assert!(Arc::ptr_eq(&first.signing, &second.signing));
        let mut rotated = keys.clone();
        rotated[0].state = KeyState::Retired;
        rotated[1].state = KeyState::Current;
        assert!(!first.matches(&rotated));
        let third = KeyRing::from_stored(&rotated, &sealer, Some(&second)).expect("ring");
        assert_eq!(third.signing.kid(), rotated[1].kid);
        assert_eq!(third.signing.alg(), Algorithm::EdDsa);
    }

    #[test]
    fn a_current_key_sealed_for_another_kid_is_refused() {
        let sealer = sealer();
        let a = generate_key(&sealer, Algorithm::EdDsa, KeyState::Current, 1).expect("key");
        let mut b = generate_key(&sealer, Algorithm::EdDsa, KeyState::Current, 0).expect("key");
        b.sealed_private_key = a.sealed_private_key.clone();
        b.kid = "zzz".into();
        b.activated_at = Some(5);
        assert!(KeyRing::from_stored(&[a, b], &sealer, None).is_err());
    }
}
