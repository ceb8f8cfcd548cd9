//! Public keys as JWKs (RFC 7517) and their thumbprints (RFC 7638), and
//! reading a published key set into [`VerifyingKeys`]. The issuer renders
//! its keys and resource servers read them back with the same rules (key
//! types, `alg` agreeing with the key, `use: sig`, sizes).

use aws_lc_rs::digest;
use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rsa::PublicKeyComponents;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;

use crate::jws::{Algorithm, VerifyingKeys};

/// The required public members of a key's JWK (RFC 7638 §3.2), as
/// (name, base64url or literal value) pairs in lexicographic order.
fn required_members(alg: Algorithm, public_key: &[u8]) -> Option<Vec<(&'static str, String)>> {
    let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    Some(match alg {
        Algorithm::EdDsa | Algorithm::Ed25519 => {
            if public_key.len() != 32 {
                return None;
            }
            vec![
                ("crv", "Ed25519".into()),
                ("kty", "OKP".into()),
                ("x", b64(public_key)),
            ]
        }
        Algorithm::Es256 => {
            // Uncompressed SEC1 point: 0x04 ‖ x ‖ y.
            if public_key.len() != 65 || public_key[0] != 4 {
                return None;
            }
            vec![
                ("crv", "P-256".into()),
                ("kty", "EC".into()),
                ("x", b64(&public_key[1..33])),
                ("y", b64(&public_key[33..])),
            ]
        }
        Algorithm::Rs256 => {
            let key = aws_lc_rs::rsa::PublicKey::from_der(public_key).ok()?;
            vec![
                ("e", b64(key.exponent().big_endian_without_leading_zero())),
                ("kty", "RSA".into()),
                ("n", b64(key.modulus().big_endian_without_leading_zero())),
            ]
        }
    })
}

/// RFC 7638 JWK thumbprint (SHA-256, base64url): required members in
/// lexicographic order, no whitespace.
pub fn thumbprint(alg: Algorithm, public_key: &[u8]) -> Option<String> {
    let members = required_members(alg, public_key)?;
    let mut canonical = serde_json::Map::new();
    for (name, value) in members {
        canonical.insert(name.to_owned(), Value::String(value));
    }
    // serde_json's map is ordered by key (no `preserve_order`), and every
    // value is a plain base64url or ASCII string, so this is the RFC form.
    let text = Value::Object(canonical).to_string();
    Some(URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, text.as_bytes())))
}

/// The public JWK of a key (RFC 7517): `kty` and its public members, `kid`,
/// `alg`, `use: sig`. Never a private member: it is built from the public
/// key alone.
pub fn jwk(kid: &str, alg: Algorithm, public_key: &[u8]) -> Option<Value> {
    let mut jwk = serde_json::Map::new();
    for (name, value) in required_members(alg, public_key)? {
        jwk.insert(name.to_owned(), Value::String(value));
    }
    jwk.insert("kid".into(), kid.into());
    jwk.insert("alg".into(), alg.as_str().into());
    jwk.insert("use".into(), "sig".into());
    Some(Value::Object(jwk))
}

/// Reads a published JWK back into `(kid, alg, public key)` in the form
/// [`VerifyingKeys::insert`] takes, for verifiers that consume our JWKS.
/// `None` for keys that are not signing keys of one of our algorithms, or
/// whose `alg` (when present) disagrees with the key type.
pub fn public_key_from_jwk(jwk: &Value) -> Option<(String, Algorithm, Vec<u8>)> {
    let text = |name: &str| jwk.get(name).and_then(Value::as_str);
    let bytes = |name: &str| text(name).and_then(|v| URL_SAFE_NO_PAD.decode(v).ok());
    if jwk.get("use").is_some_and(|u| u.as_str() != Some("sig")) {
        return None;
    }
    let (alg, public) = match (text("kty")?, text("crv")) {
        // Named by its `alg` when that is RFC 9864's fully specified name.
        ("OKP", Some("Ed25519")) if text("alg") == Some("Ed25519") => {
            (Algorithm::Ed25519, bytes("x")?)
        }
        ("OKP", Some("Ed25519")) => (Algorithm::EdDsa, bytes("x")?),
        ("EC", Some("P-256")) => {
            let (x, y) = (bytes("x")?, bytes("y")?);
            if x.len() != 32 || y.len() != 32 {
                return None;
            }
            let mut point = Vec::with_capacity(65);
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            (Algorithm::Es256, point)
        }
        ("RSA", _) => {
            let components = PublicKeyComponents {
                n: bytes("n")?,
                e: bytes("e")?,
            };
            let spki = components.as_der().ok()?;
            let key = aws_lc_rs::rsa::PublicKey::from_der(spki.as_ref()).ok()?;
            (Algorithm::Rs256, key.as_ref().to_vec())
        }
        _ => return None,
    };
    if jwk
        .get("alg")
        .is_some_and(|a| a.as_str() != Some(alg.as_str()))
    {
        return None;
    }
    // Round-trip through our own rendering: rejects malformed points/sizes.
    required_members(alg, &public)?;
    Some((text("kid")?.to_owned(), alg, public))
}

/// One immutable snapshot of the published keys; replaced whole on refetch so
/// that a key removed from the JWKS stops verifying at once.
pub struct KeySet {
    pub keys: VerifyingKeys,
    pub kids: Vec<String>,
}

impl KeySet {
    pub fn empty() -> Self {
        KeySet {
            keys: VerifyingKeys::default(),
            kids: Vec::new(),
        }
    }
}

#[derive(Deserialize)]
struct Jwks {
    // Each key read loosely: one key of a future type, or with a member of an
    // unexpected JSON type, is skipped without blinding us to the others.
    keys: Vec<Value>,
}

/// Parses a JWKS document, keeping the signing keys of our algorithms and
/// ignoring the rest. Fails only when the document as a whole is not a key
/// set.
pub fn parse_jwks(json: &[u8]) -> Result<KeySet, serde_json::Error> {
    let doc: Jwks = serde_json::from_slice(json)?;
    let mut set = KeySet::empty();
    for jwk in doc.keys {
        let Some((kid, alg, public)) = public_key_from_jwk(&jwk) else {
            tracing::debug!(%jwk, "skipping unusable JWK");
            continue;
        };
        if set.keys.insert(&kid, alg, &public).is_ok() {
            set.kids.push(kid);
        } else {
            tracing::debug!(kid, "skipping JWK whose public key does not parse");
        }
    }
    Ok(set)
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
        let set = parse_jwks(doc.to_string().as_bytes()).expect("parse");
        assert_eq!(set.kids, vec!["good".to_owned(), "bare".to_owned()]);
    }

    #[test]
    fn rejects_non_key_sets() {
        for bad in ["", "[]", "{}", r#"{"keys":{}}"#, "null"] {
            assert!(parse_jwks(bad.as_bytes()).is_err(), "{bad}");
        }
        let empty = parse_jwks(br#"{"keys":[]}"#).expect("empty set is valid");
        assert!(empty.kids.is_empty());
    }
}
