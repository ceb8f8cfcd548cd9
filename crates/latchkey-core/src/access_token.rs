//! Access tokens: JWTs per RFC 9068 in JWS compact form, signed with Ed25519.
//!
//! Signing uses a key pair parsed once at start-up (re-parsing per token
//! would double the cost of a refresh). Verification is strict per RFC 8725:
//! the algorithm comes from our key, never from the token; `typ` must be
//! `at+jwt`; unknown `crit` is refused; header fields that point at other
//! keys (`jku`, `jwk`, `x5u`, `x5c`) are never followed.

use std::collections::HashMap;

use aws_lc_rs::signature::{self, Ed25519KeyPair, KeyPair as _, ParsedPublicKey};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::clock::UnixTime;

pub const TOKEN_TYPE: &str = "at+jwt";
/// No token we mint comes near this; longer input is refused unparsed.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    EdDsa,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::EdDsa => "EdDSA",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "EdDSA" => Some(Algorithm::EdDsa),
            _ => None,
        }
    }
}

/// `aud` may be one string or an array (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub fn contains(&self, aud: &str) -> bool {
        match self {
            Audience::One(a) => a == aud,
            Audience::Many(v) => v.iter().any(|a| a == aud),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: Audience,
    pub exp: UnixTime,
    pub iat: UnixTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<UnixTime>,
    pub jti: String,
    pub client_id: String,
    pub sid: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("unsupported token header")]
    UnsupportedHeader,
    #[error("unknown signing key")]
    UnknownKey,
    #[error("bad signature")]
    BadSignature,
    #[error("invalid claims")]
    InvalidClaims,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("wrong issuer")]
    WrongIssuer,
    #[error("wrong audience")]
    WrongAudience,
}

impl TokenError {
    pub fn reason(self) -> &'static str {
        match self {
            TokenError::Malformed => "malformed token",
            TokenError::UnsupportedHeader => "unsupported token header",
            TokenError::UnknownKey => "unknown signing key",
            TokenError::BadSignature => "bad signature",
            TokenError::InvalidClaims => "invalid claims",
            TokenError::Expired => "token expired",
            TokenError::NotYetValid => "token not yet valid",
            TokenError::WrongIssuer => "wrong issuer",
            TokenError::WrongAudience => "wrong audience",
        }
    }
}

/// A private signing key, parsed once.
pub struct SigningKey {
    kid: String,
    alg: Algorithm,
    pair: Ed25519KeyPair,
    /// base64url of the JOSE header, the same for every token of this key.
    header_b64: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({}, {})", self.kid, self.alg.as_str())
    }
}

#[derive(Serialize)]
struct HeaderOut<'a> {
    alg: &'a str,
    typ: &'a str,
    kid: &'a str,
}

impl SigningKey {
    pub fn from_pkcs8(kid: &str, alg: Algorithm, pkcs8: &[u8]) -> Result<Self, TokenError> {
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|_| TokenError::Malformed)?;
        let header = serde_json::to_vec(&HeaderOut {
            alg: alg.as_str(),
            typ: TOKEN_TYPE,
            kid,
        })
        .map_err(|_| TokenError::Malformed)?;
        Ok(Self {
            kid: kid.to_owned(),
            alg,
            pair,
            header_b64: URL_SAFE_NO_PAD.encode(header),
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn public_key(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    pub fn sign(&self, claims: &AccessClaims) -> String {
        // Serialising a struct of strings and integers cannot fail.
        let payload = serde_json::to_vec(claims).unwrap_or_default();
        let mut out = String::with_capacity(self.header_b64.len() + payload.len() * 4 / 3 + 100);
        out.push_str(&self.header_b64);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut out);
        let sig = self.pair.sign(out.as_bytes());
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(sig.as_ref(), &mut out);
        out
    }
}

/// Public keys accepted for verification, by `kid`.
#[derive(Default)]
pub struct VerifyingKeys {
    keys: HashMap<String, (Algorithm, ParsedPublicKey)>,
}

impl VerifyingKeys {
    pub fn insert(
        &mut self,
        kid: &str,
        alg: Algorithm,
        public_key: &[u8],
    ) -> Result<(), TokenError> {
        let parsed = match alg {
            Algorithm::EdDsa => ParsedPublicKey::new(&signature::ED25519, public_key),
        }
        .map_err(|_| TokenError::Malformed)?;
        self.keys.insert(kid.to_owned(), (alg, parsed));
        Ok(())
    }
}

/// What a token must say to be accepted here.
#[derive(Debug, Clone)]
pub struct Expectations {
    pub issuer: String,
    pub audience: String,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    pub leeway: i64,
}

#[derive(Deserialize)]
struct HeaderIn {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

/// Verifies signature, header and registered claims. Revocation is the
/// caller's business (it needs state).
pub fn verify(
    token: &str,
    keys: &VerifyingKeys,
    expect: &Expectations,
    now: UnixTime,
) -> Result<AccessClaims, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let header_json = URL_SAFE_NO_PAD
        .decode(h)
        .map_err(|_| TokenError::Malformed)?;
    let header: HeaderIn =
        serde_json::from_slice(&header_json).map_err(|_| TokenError::Malformed)?;
    let typ_ok = header.typ.as_deref().is_some_and(|t| {
        t.eq_ignore_ascii_case(TOKEN_TYPE) || t.eq_ignore_ascii_case("application/at+jwt")
    });
    if !typ_ok || header.crit.is_some() {
        return Err(TokenError::UnsupportedHeader);
    }
    let kid = header.kid.ok_or(TokenError::UnknownKey)?;
    let (alg, key) = keys.keys.get(&kid).ok_or(TokenError::UnknownKey)?;
    // The key decides the algorithm; a token naming another one is forged.
    if header.alg != alg.as_str() {
        return Err(TokenError::UnsupportedHeader);
    }
    let sig = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| TokenError::Malformed)?;
    let signed_len = h.len() + 1 + p.len();
    key.verify_sig(&token.as_bytes()[..signed_len], &sig)
        .map_err(|_| TokenError::BadSignature)?;

    let payload = URL_SAFE_NO_PAD
        .decode(p)
        .map_err(|_| TokenError::Malformed)?;
    let claims: AccessClaims =
        serde_json::from_slice(&payload).map_err(|_| TokenError::InvalidClaims)?;
    if claims.iss != expect.issuer {
        return Err(TokenError::WrongIssuer);
    }
    if !claims.aud.contains(&expect.audience) {
        return Err(TokenError::WrongAudience);
    }
    if now >= claims.exp.saturating_add(expect.leeway) {
        return Err(TokenError::Expired);
    }
    if claims
        .nbf
        .is_some_and(|nbf| nbf > now.saturating_add(expect.leeway))
        || claims.iat > now.saturating_add(expect.leeway)
    {
        return Err(TokenError::NotYetValid);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;

    fn key(kid: &str) -> SigningKey {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("keygen");
        SigningKey::from_pkcs8(kid, Algorithm::EdDsa, pkcs8.as_ref()).expect("key")
    }

    fn keys_for(k: &SigningKey) -> VerifyingKeys {
        let mut v = VerifyingKeys::default();
        v.insert(k.kid(), Algorithm::EdDsa, k.public_key())
            .expect("insert");
        v
    }

    fn claims(now: UnixTime) -> AccessClaims {
        AccessClaims {
            iss: "http://issuer".into(),
            sub: "user".into(),
            aud: Audience::One("api".into()),
            exp: now + 600,
            iat: now,
            nbf: None,
            jti: "j".into(),
            client_id: "default".into(),
            sid: "s".into(),
            roles: vec![],
        }
    }

    fn expect() -> Expectations {
        Expectations {
            issuer: "http://issuer".into(),
            audience: "api".into(),
            leeway: 5,
        }
    }

    fn b64(v: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).expect("json"))
    }

    /// A token with arbitrary header and payload, signed by `k`.
    fn forge(k: &SigningKey, header: serde_json::Value, payload: serde_json::Value) -> String {
        let signing_input = format!("{}.{}", b64(&header), b64(&payload));
        let sig = k.pair.sign(signing_input.as_bytes());
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }

    #[test]
    fn round_trip() {
        let k = key("k1");
        let t = k.sign(&claims(1000));
        assert_eq!(verify(&t, &keys_for(&k), &expect(), 1000), Ok(claims(1000)));
    }

    #[test]
    fn header_says_at_jwt_and_kid() {
        let k = key("k1");
        let t = k.sign(&claims(1000));
        let h = t.split('.').next().expect("header");
        let v: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).expect("b64")).expect("json");
        assert_eq!(
            v,
            serde_json::json!({"alg":"EdDSA","typ":"at+jwt","kid":"k1"})
        );
    }

    #[test]
    fn time_rules() {
        let k = key("k1");
        let keys = keys_for(&k);
        let t = k.sign(&claims(1000));
        assert_eq!(verify(&t, &keys, &expect(), 1604), Ok(claims(1000)));
        assert_eq!(verify(&t, &keys, &expect(), 1605), Err(TokenError::Expired));
        assert_eq!(
            verify(&t, &keys, &expect(), 990),
            Err(TokenError::NotYetValid)
        );
    }

    #[test]
    fn wrong_issuer_audience_key() {
        let k = key("k1");
        let t = k.sign(&claims(1000));
        let mut e = expect();
        e.issuer = "http://other".into();
        assert_eq!(
            verify(&t, &keys_for(&k), &e, 1000),
            Err(TokenError::WrongIssuer)
        );
        let mut e = expect();
        e.audience = "other".into();
        assert_eq!(
            verify(&t, &keys_for(&k), &e, 1000),
            Err(TokenError::WrongAudience)
        );
        let other = key("k1");
        assert_eq!(
            verify(&t, &keys_for(&other), &expect(), 1000),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            verify(&t, &VerifyingKeys::default(), &expect(), 1000),
            Err(TokenError::UnknownKey)
        );
    }

    #[test]
    fn hostile_headers() {
        let k = key("k1");
        let keys = keys_for(&k);
        let body = serde_json::to_value(claims(1000)).expect("json");
        let cases = [
            serde_json::json!({"alg":"none","typ":"at+jwt","kid":"k1"}),
            serde_json::json!({"alg":"HS256","typ":"at+jwt","kid":"k1"}),
            serde_json::json!({"alg":"EdDSA","kid":"k1"}),
            serde_json::json!({"alg":"EdDSA","typ":"JWT","kid":"k1"}),
            serde_json::json!({"alg":"EdDSA","typ":"at+jwt"}),
            serde_json::json!({"alg":"EdDSA","typ":"at+jwt","kid":"../../etc/passwd"}),
            serde_json::json!({"alg":"EdDSA","typ":"at+jwt","kid":"k1","crit":["exp"]}),
        ];
        for h in cases {
            let t = forge(&k, h.clone(), body.clone());
            assert!(verify(&t, &keys, &expect(), 1000).is_err(), "{h} accepted");
        }
        // Unsigned token with alg none
        let none = format!(
            "{}.{}.",
            b64(&serde_json::json!({"alg":"none","typ":"at+jwt","kid":"k1"})),
            b64(&body)
        );
        assert!(verify(&none, &keys, &expect(), 1000).is_err());
    }

    #[test]
    fn hostile_claims() {
        let k = key("k1");
        let keys = keys_for(&k);
        let h = serde_json::json!({"alg":"EdDSA","typ":"at+jwt","kid":"k1"});
        let mut base = serde_json::to_value(claims(1000)).expect("json");
        for (field, value) in [
            ("exp", serde_json::json!("2000")),
            ("exp", serde_json::json!(-1)),
            ("sub", serde_json::json!(null)),
            ("sid", serde_json::Value::Null),
        ] {
            let mut c = base.clone();
            c[field] = value;
            assert!(verify(&forge(&k, h.clone(), c), &keys, &expect(), 1000).is_err());
        }
        if let Some(obj) = base.as_object_mut() {
            obj.remove("jti");
        }
        assert!(verify(&forge(&k, h.clone(), base), &keys, &expect(), 1000).is_err());
        // exp as 1e309 cannot be written by serde_json; craft it by hand.
        let payload = URL_SAFE_NO_PAD.encode(
            br#"{"iss":"http://issuer","sub":"u","aud":"api","exp":1e309,"iat":1000,"jti":"j","client_id":"c","sid":"s"}"#,
        );
        let input = format!("{}.{payload}", b64(&h));
        let sig = k.pair.sign(input.as_bytes());
        let t = format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()));
        assert!(verify(&t, &keys, &expect(), 1000).is_err());
    }

    #[test]
    fn tampering_is_detected() {
        let k = key("k1");
        let keys = keys_for(&k);
        let t = k.sign(&claims(1000));
        // flip one bit in the signature
        let (input, sig) = t.rsplit_once('.').expect("three parts");
        let mut raw = URL_SAFE_NO_PAD.decode(sig).expect("b64");
        raw[10] ^= 1;
        let flipped = format!("{input}.{}", URL_SAFE_NO_PAD.encode(raw));
        assert_eq!(
            verify(&flipped, &keys, &expect(), 1000),
            Err(TokenError::BadSignature)
        );
        for bad in [
            "",
            "a.b",
            "a.b.c.d",
            &format!("{t}="),
            &format!("{t}.x"),
            &"A".repeat(MAX_TOKEN_BYTES + 1),
        ] {
            assert!(verify(bad, &keys, &expect(), 1000).is_err());
        }
    }
}
