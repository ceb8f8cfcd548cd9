//! Signing-key lifecycle: generation, sealing private keys under the
//! key-encryption key, and the runtime key ring (signing key + published
//! verification keys + JWKS document).

use aws_lc_rs::aead::{self, Aad, Nonce, NONCE_LEN};
use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::Ed25519KeyPair;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::json;

use crate::access_token::{Algorithm, SigningKey, VerifyingKeys};
use crate::clock::UnixTime;
use crate::secret::{fill_random, ServerSecret};
use crate::store::{KeyState, StoredKey};
use crate::AuthError;

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

/// A new Ed25519 key, its kid the RFC 7638 JWK thumbprint of its public key.
pub fn generate_key(
    sealer: &KeySealer,
    state: KeyState,
    now: UnixTime,
) -> Result<StoredKey, AuthError> {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
        .map_err(|_| AuthError::Internal("key generation failed".into()))?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
        .map_err(|_| AuthError::Internal("key generation failed".into()))?;
    let public_key = aws_lc_rs::signature::KeyPair::public_key(&pair)
        .as_ref()
        .to_vec();
    let kid = thumbprint(&public_key);
    Ok(StoredKey {
        sealed_private_key: sealer.seal(&kid, pkcs8.as_ref())?,
        kid,
        alg: Algorithm::EdDsa.as_str().to_owned(),
        state,
        public_key,
        created_at: now,
    })
}

fn thumbprint(ed25519_public: &[u8]) -> String {
    // RFC 7638: members in lexicographic order, no whitespace.
    let canonical = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(ed25519_public)
    );
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, canonical.as_bytes()))
}

/// The keys a node works with: one to sign, all published ones to verify.
pub struct KeyRing {
    pub signing: SigningKey,
    pub verifying: VerifyingKeys,
    /// The JWKS document, rendered once.
    pub jwks: serde_json::Value,
}

impl KeyRing {
    pub fn from_stored(keys: &[StoredKey], sealer: &KeySealer) -> Result<Self, AuthError> {
        let current = keys
            .iter()
            .filter(|k| k.state == KeyState::Current)
            .max_by_key(|k| k.created_at)
            .ok_or_else(|| AuthError::Internal("no current signing key".into()))?;
        let alg = Algorithm::parse(&current.alg)
            .ok_or_else(|| AuthError::Internal(format!("unsupported alg {}", current.alg)))?;
        let pkcs8 = sealer.open(&current.kid, &current.sealed_private_key)?;
        let signing = SigningKey::from_pkcs8(&current.kid, alg, &pkcs8)
            .map_err(|_| AuthError::Internal("stored signing key is unreadable".into()))?;

        let mut verifying = VerifyingKeys::default();
        let mut jwks = Vec::new();
        for k in keys {
            let Some(alg) = Algorithm::parse(&k.alg) else {
                continue;
            };
            verifying
                .insert(&k.kid, alg, &k.public_key)
                .map_err(|_| AuthError::Internal(format!("bad public key {}", k.kid)))?;
            jwks.push(json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": URL_SAFE_NO_PAD.encode(&k.public_key),
                "kid": k.kid,
                "alg": alg.as_str(),
                "use": "sig",
            }));
        }
        Ok(Self {
            signing,
            verifying,
            jwks: json!({ "keys": jwks }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_keys_open_only_with_same_secret_and_kid() {
        let secret = ServerSecret::generate().expect("rng");
        let sealer = KeySealer::new(&secret).expect("sealer");
        let k = generate_key(&sealer, KeyState::Current, 1).expect("key");
        assert!(sealer.open(&k.kid, &k.sealed_private_key).is_ok());
        assert!(sealer.open("other-kid", &k.sealed_private_key).is_err());
        let other = KeySealer::new(&ServerSecret::generate().expect("rng")).expect("sealer");
        assert!(other.open(&k.kid, &k.sealed_private_key).is_err());
        assert!(sealer.open(&k.kid, &[1, 2, 3]).is_err());
    }

    #[test]
    fn ring_publishes_public_members_only() {
        let secret = ServerSecret::generate().expect("rng");
        let sealer = KeySealer::new(&secret).expect("sealer");
        let k = generate_key(&sealer, KeyState::Current, 1).expect("key");
        let ring = KeyRing::from_stored(std::slice::from_ref(&k), &sealer).expect("ring");
        let jwk = &ring.jwks["keys"][0];
        assert_eq!(jwk["kid"], k.kid.as_str());
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["alg"], "EdDSA");
        assert!(jwk.get("d").is_none());
        assert_eq!(ring.signing.kid(), k.kid);
    }
}
