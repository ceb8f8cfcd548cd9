//! Reading an RFC 7517 key set into the verifying keys of core.

use latchkey_core::access_token::VerifyingKeys;
use latchkey_core::keys::public_key_from_jwk;
use serde::Deserialize;

use crate::VerifyError;

/// One immutable snapshot of the published keys; replaced whole on refetch so
/// that a key removed from the JWKS stops verifying at once.
pub(crate) struct KeySet {
    pub(crate) keys: VerifyingKeys,
    pub(crate) kids: Vec<String>,
}

#[derive(Deserialize)]
struct Jwks {
    // Each key read loosely: one key of a future type, or with a member of an
    // unexpected JSON type, is skipped without blinding us to the others.
    keys: Vec<serde_json::Value>,
}

/// Parses a JWKS document, keeping the signing keys of our algorithms and
/// ignoring the rest. Fails only when the document as a whole is not a key
/// set.
pub(crate) fn parse(json: &[u8]) -> Result<KeySet, VerifyError> {
    let doc: Jwks = serde_json::from_slice(json)
        .map_err(|e| VerifyError::Discovery(format!("JWKS is not a key set: {e}")))?;
    let mut keys = VerifyingKeys::default();
    let mut kids = Vec::new();
    for jwk in doc.keys {
        // Core owns the JWK rules (key types, `alg` agreeing with the key,
        // `use: sig`, sizes), so the issuer and we read keys alike.
        let Some((kid, alg, public)) = public_key_from_jwk(&jwk) else {
            tracing::debug!(%jwk, "skipping unusable JWK");
            continue;
        };
        if keys.insert(&kid, alg, &public).is_ok() {
            kids.push(kid);
        } else {
            tracing::debug!(kid, "skipping JWK whose public key does not parse");
        }
    }
    Ok(KeySet { keys, kids })
}

#[cfg(test)]
mod tests {
    use super::*;

    const X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    #[test]
    fn keeps_only_signing_keys_of_our_algorithms() {
        let doc = serde_json::json!({"keys": [
            {"kty":"OKP","crv":"Ed25519","x":X,"kid":"good","alg":"EdDSA","use":"sig"},
            {"kty":"OKP","crv":"Ed25519","x":X,"kid":"bare"},
            {"kty":"OKP","crv":"Ed25519","x":X,"kid":"enc","alg":"EdDSA","use":"enc"},
            {"kty":"OKP","crv":"Ed25519","x":X,"kid":"rs","alg":"RS256","use":"sig"},
            {"kty":"RSA","e":"AQAB","kid":"rsa-without-n","alg":"RS256"},
            {"kty":"OKP","crv":"X25519","x":X,"kid":"x25519"},
            {"kty":"OKP","crv":"Ed25519","x":"AAAA","kid":"short"},
            {"kty":"OKP","crv":"Ed25519","x":"!!","kid":"notb64"},
            {"kty":"OKP","crv":"Ed25519","x":X},
            {"kty":"OKP","crv":"Ed25519","x":X,"kid":7},
            1,
            "key",
        ]});
        let set = parse(doc.to_string().as_bytes()).expect("parse");
        assert_eq!(set.kids, vec!["good".to_owned(), "bare".to_owned()]);
    }

    #[test]
    fn rejects_non_key_sets() {
        for bad in ["", "[]", "{}", r#"{"keys":{}}"#, "null"] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad}");
        }
        let empty = parse(br#"{"keys":[]}"#).expect("empty set is valid");
        assert!(empty.kids.is_empty());
    }
}
