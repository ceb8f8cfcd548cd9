//! Signing-key material: generation in each [`Algorithm`], sealing private
//! keys under the key-encryption key, JWK rendering and RFC 7638 key ids,
//! and the runtime key ring ([`ring`]: signing keys + published verification
//! keys + JWKS document). The lifecycle of each lineage (next → current →
//! retired → removed) is in [`crate::key_manager`].

use aws_lc_rs::aead::{self, Aad, Nonce, NONCE_LEN};
use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair};

use crate::access_token::{Algorithm, SigningKey};
use crate::clock::UnixTime;
use crate::model::{KeyPurpose, KeyState, StoredKey};
use crate::secret::{fill_random, ServerSecret};
use crate::AuthError;
// The JWK format is the wire crate's, shared with resource servers.
pub use latchkey_wire::jwk::{jwk, public_key_from_jwk};

mod ring;
pub use ring::{pick_current, KeyInfo, KeyRing};

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

/// A new key of algorithm `alg` for the lineage `purpose`, in lifecycle
/// state `state`, its kid the RFC 7638 JWK thumbprint of its public key,
/// its private key sealed.
pub fn generate_key(
    sealer: &KeySealer,
    alg: Algorithm,
    purpose: KeyPurpose,
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
        purpose,
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sealer() -> KeySealer {
        KeySealer::new(&ServerSecret::generate().expect("rng")).expect("sealer")
    }

    #[test]
    fn sealed_keys_open_only_with_same_secret_and_kid() {
        let sealer = sealer();
        let k = generate_key(
            &sealer,
            Algorithm::EdDsa,
            KeyPurpose::Access,
            KeyState::Current,
            1,
        )
        .expect("key");
        assert!(sealer.open(&k.kid, &k.sealed_private_key).is_ok());
        assert!(sealer.open("other-kid", &k.sealed_private_key).is_err());
        let other = KeySealer::new(&ServerSecret::generate().expect("rng")).expect("sealer");
        assert!(other.open(&k.kid, &k.sealed_private_key).is_err());
        assert!(sealer.open(&k.kid, &[1, 2, 3]).is_err());
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
            for purpose in [KeyPurpose::Access, KeyPurpose::IdToken] {
                let k = generate_key(&sealer, alg, purpose, KeyState::Next, 1).expect("key");
                assert_eq!(k.kid, thumbprint(alg, &k.public_key).expect("thumbprint"));
                assert_eq!(k.kid.len(), 43);
                assert_eq!(k.activated_at, None);
                assert_eq!(k.purpose, purpose);
            }
        }
    }
}
