//! Access tokens on the wire: JWTs per RFC 9068 in JWS compact form, signed
//! with Ed25519 (`EdDSA`, the default), ECDSA P-256 (`ES256`) or RSA
//! PKCS#1 v1.5 (`RS256`), and their verification.
//!
//! Verification is strict per RFC 8725: the algorithm comes from our key,
//! never from the token; `typ` must be `at+jwt`; unknown `crit` is refused;
//! header fields that point at other keys (`jku`, `jwk`, `x5u`, `x5c`) are
//! never followed. The issuer and every resource server verify with this one
//! function; signing lives with the keys, in `latchkey-core`.

use std::collections::HashMap;

use aws_lc_rs::signature::{self, ParsedPublicKey};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::clock::UnixTime;

mod checked;
pub mod id_token;
/// How many checked tokens a key set remembers.
pub use checked::CAPACITY as CHECKED_TOKENS_CAPACITY;

pub const TOKEN_TYPE: &str = "at+jwt";
/// No token we mint comes near this; longer input is refused unparsed.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// JWS algorithms we sign with. Each key has exactly one; the key, never
/// the token, decides which one a signature is checked with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    /// Ed25519 (RFC 8037): small, fast, deterministic. The default, under
    /// RFC 8037's name `EdDSA`, which every verifier we test knows.
    #[default]
    EdDsa,
    /// The same Ed25519 signatures under RFC 9864's fully specified name
    /// `Ed25519`. Tokens of either name verify against keys of either.
    Ed25519,
    /// ECDSA on P-256 with SHA-256, fixed-length `r ‖ s` signatures.
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048-bit keys.
    Rs256,
}

impl Algorithm {
    pub const ALL: [Algorithm; 4] = [
        Algorithm::EdDsa,
        Algorithm::Ed25519,
        Algorithm::Es256,
        Algorithm::Rs256,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::EdDsa => "EdDSA",
            Algorithm::Ed25519 => "Ed25519",
            Algorithm::Es256 => "ES256",
            Algorithm::Rs256 => "RS256",
        }
    }

    /// The JOSE name, exactly (RFC 7518 names are case-sensitive).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "EdDSA" => Some(Algorithm::EdDsa),
            "Ed25519" => Some(Algorithm::Ed25519),
            "ES256" => Some(Algorithm::Es256),
            "RS256" => Some(Algorithm::Rs256),
            _ => None,
        }
    }

    fn verification(self) -> &'static dyn signature::VerificationAlgorithm {
        match self {
            Algorithm::EdDsa | Algorithm::Ed25519 => &signature::ED25519,
            Algorithm::Es256 => &signature::ECDSA_P256_SHA256_FIXED,
            Algorithm::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        }
    }
}

impl Algorithm {
    /// Whether a token whose header names `alg` may be checked with a key
    /// of this algorithm: its own name, or, for Ed25519 keys, either name
    /// of the one signature scheme (RFC 8037's `EdDSA`, RFC 9864's
    /// `Ed25519`).
    pub fn accepts(self, alg: &str) -> bool {
        match self {
            Algorithm::EdDsa | Algorithm::Ed25519 => alg == "EdDSA" || alg == "Ed25519",
            _ => alg == self.as_str(),
        }
    }

    /// Whether keys of this algorithm are Ed25519 keys.
    pub fn is_ed25519(self) -> bool {
        matches!(self, Algorithm::EdDsa | Algorithm::Ed25519)
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
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
    /// The session; absent on client-credentials tokens, which have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Space-separated granted scopes (RFC 9068 §2.2.3), when any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

/// Why an access token was refused: one typed reason for the issuer's own
/// checks and for every resource server's. Its text is safe to show the
/// client (it says nothing about keys or secrets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("unsupported token header")]
    UnsupportedHeader,
    /// The token names a `kid` the key set does not hold (yet).
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
    /// Its `sid` or `jti` is in the revocation set.
    #[error("token revoked")]
    Revoked,
    /// A client's own token (client credentials) where a user's is needed.
    #[error("token has no user")]
    NoUser,
    /// A user's token whose `sid` names no session.
    #[error("token has no session")]
    NoSession,
    /// The user the token was issued to no longer exists.
    #[error("unknown subject")]
    UnknownSubject,
}

impl TokenError {
    /// What a client is told. Expired is worth telling apart (the client
    /// should refresh), and so is a client's own token where a user's is
    /// needed; every other failure gets one message, so forgeries learn
    /// nothing. The variant itself is for logs.
    pub fn public_description(self) -> &'static str {
        match self {
            TokenError::Expired => "the access token expired",
            TokenError::NoUser => "the access token has no user (a client's own token)",
            _ => "the access token is invalid or revoked",
        }
    }
}

#[derive(Serialize)]
struct HeaderOut<'a> {
    alg: &'a str,
    typ: &'a str,
    kid: &'a str,
}

/// base64url of the JOSE header of every token `kid` signs.
pub fn encode_header(alg: Algorithm, kid: &str) -> Result<String, TokenError> {
    let header = serde_json::to_vec(&HeaderOut {
        alg: alg.as_str(),
        typ: TOKEN_TYPE,
        kid,
    })
    .map_err(|_| TokenError::Malformed)?;
    Ok(URL_SAFE_NO_PAD.encode(header))
}

/// Public keys accepted for verification, by `kid`, and the tokens they
/// have already checked.
#[derive(Default)]
pub struct VerifyingKeys {
    keys: HashMap<String, (Algorithm, ParsedPublicKey)>,
    checked: checked::CheckedTokens,
}

impl VerifyingKeys {
    /// Adds a public key in the form signing keys expose it: Ed25519 raw
    /// 32 bytes, P-256 uncompressed point, RSA PKCS#1 `RSAPublicKey` DER.
    pub fn insert(
        &mut self,
        kid: &str,
        alg: Algorithm,
        public_key: &[u8],
    ) -> Result<(), TokenError> {
        let parsed = ParsedPublicKey::new(alg.verification(), public_key)
            .map_err(|_| TokenError::Malformed)?;
        // A token checked by a key this replaces proves nothing now.
        self.checked.clear();
        self.keys.insert(kid.to_owned(), (alg, parsed));
        Ok(())
    }

    pub fn contains(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// What a token must say to be accepted here.
#[derive(Debug, Clone)]
pub struct Expectations {
    pub issuer: String,
    /// The audience that must be in `aud`; `None` accepts any (for an
    /// issuer introspecting or revoking tokens it minted for others).
    pub audience: Option<String>,
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
/// caller's business (it needs state). A token `keys` checked before skips
/// the signature check; its claims are checked again.
pub fn verify(
    token: &str,
    keys: &VerifyingKeys,
    expect: &Expectations,
    now: UnixTime,
) -> Result<AccessClaims, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::Malformed);
    }
    if let Some(claims) = keys.checked.get(token) {
        return check_claims(claims, expect, now);
    }
    let claims = check_claims(check_signature(token, keys)?, expect, now)?;
    keys.checked.insert(token, &claims, now);
    Ok(claims)
}

/// The header, the signature and the payload's form.
fn check_signature(token: &str, keys: &VerifyingKeys) -> Result<AccessClaims, TokenError> {
    let access_typ = |typ: Option<&str>| {
        typ.is_some_and(|t| {
            t.eq_ignore_ascii_case(TOKEN_TYPE) || t.eq_ignore_ascii_case("application/at+jwt")
        })
    };
    let payload = signed_payload(token, keys, access_typ)?;
    serde_json::from_slice(&payload).map_err(|_| TokenError::InvalidClaims)
}

/// The payload of a compact JWS that a key of `keys` signed, whose header
/// has a `typ` that `typ_ok` accepts and no `crit`.
fn signed_payload(
    token: &str,
    keys: &VerifyingKeys,
    typ_ok: impl Fn(Option<&str>) -> bool,
) -> Result<Vec<u8>, TokenError> {
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
    if !typ_ok(header.typ.as_deref()) || header.crit.is_some() {
        return Err(TokenError::UnsupportedHeader);
    }
    let kid = header.kid.ok_or(TokenError::UnknownKey)?;
    let (alg, key) = keys.keys.get(&kid).ok_or(TokenError::UnknownKey)?;
    // The key decides the algorithm; a token naming another one is forged.
    if !alg.accepts(&header.alg) {
        return Err(TokenError::UnsupportedHeader);
    }
    let sig = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| TokenError::Malformed)?;
    let signed_len = h.len() + 1 + p.len();
    key.verify_sig(&token.as_bytes()[..signed_len], &sig)
        .map_err(|_| TokenError::BadSignature)?;
    URL_SAFE_NO_PAD.decode(p).map_err(|_| TokenError::Malformed)
}

/// Issuer, audience and times.
fn check_claims(
    claims: AccessClaims,
    expect: &Expectations,
    now: UnixTime,
) -> Result<AccessClaims, TokenError> {
    if claims.iss != expect.issuer {
        return Err(TokenError::WrongIssuer);
    }
    if expect
        .audience
        .as_deref()
        .is_some_and(|aud| !claims.aud.contains(aud))
    {
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
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};

    fn pair() -> Ed25519KeyPair {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("keygen");
        Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("pair")
    }

    fn token(pair: &Ed25519KeyPair, header: &str, claims: &serde_json::Value) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = pair.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }

    fn claims() -> serde_json::Value {
        serde_json::json!({"iss":"http://issuer","sub":"u","aud":["api","other"],
            "exp":1600,"iat":1000,"jti":"j","client_id":"c","sid":"s"})
    }

    fn expect() -> Expectations {
        Expectations {
            issuer: "http://issuer".into(),
            audience: Some("api".into()),
            leeway: 5,
        }
    }

    #[test]
    fn ed25519_keys_take_either_name_of_the_scheme() {
        let k = pair();
        for key_alg in [Algorithm::EdDsa, Algorithm::Ed25519] {
            let mut keys = VerifyingKeys::default();
            keys.insert("k1", key_alg, k.public_key().as_ref())
                .expect("insert");
            for name in ["EdDSA", "Ed25519"] {
                let header = format!(r#"{{"alg":"{name}","typ":"at+jwt","kid":"k1"}}"#);
                assert!(
                    verify(&token(&k, &header, &claims()), &keys, &expect(), 1000).is_ok(),
                    "{key_alg} key, {name} token"
                );
            }
            for other in ["ES256", "RS256", "ed25519", "EdDSA ", "none"] {
                let header = format!(r#"{{"alg":"{other}","typ":"at+jwt","kid":"k1"}}"#);
                assert_eq!(
                    verify(&token(&k, &header, &claims()), &keys, &expect(), 1000),
                    Err(TokenError::UnsupportedHeader),
                    "{key_alg} key, {other:?} token"
                );
            }
        }
        assert!(!Algorithm::Es256.accepts("Ed25519"));
        assert_eq!(Algorithm::parse("Ed25519"), Some(Algorithm::Ed25519));
    }

    #[test]
    fn verifies_what_our_header_describes_and_nothing_else() {
        let k = pair();
        let mut keys = VerifyingKeys::default();
        keys.insert("k1", Algorithm::EdDsa, k.public_key().as_ref())
            .expect("insert");
        let ours = String::from_utf8(
            URL_SAFE_NO_PAD
                .decode(encode_header(Algorithm::EdDsa, "k1").expect("header"))
                .expect("b64"),
        )
        .expect("utf8");
        let t = token(&k, &ours, &claims());
        let verified = verify(&t, &keys, &expect(), 1000).expect("verifies");
        assert_eq!(
            verified.aud,
            Audience::Many(vec!["api".into(), "other".into()])
        );
        assert_eq!(verify(&t, &keys, &expect(), 1605), Err(TokenError::Expired));
        for (header, why) in [
            (
                r#"{"alg":"ES256","typ":"at+jwt","kid":"k1"}"#,
                TokenError::UnsupportedHeader,
            ),
            (
                r#"{"alg":"EdDSA","typ":"JWT","kid":"k1"}"#,
                TokenError::UnsupportedHeader,
            ),
            (
                r#"{"alg":"EdDSA","typ":"at+jwt","kid":"k1","crit":["x"]}"#,
                TokenError::UnsupportedHeader,
            ),
            (
                r#"{"alg":"EdDSA","typ":"at+jwt","kid":"k2"}"#,
                TokenError::UnknownKey,
            ),
            (r#"{"alg":"EdDSA","typ":"at+jwt"}"#, TokenError::UnknownKey),
        ] {
            assert_eq!(
                verify(&token(&k, header, &claims()), &keys, &expect(), 1000),
                Err(why),
                "{header}"
            );
        }
    }

    #[test]
    fn reasons_read_as_the_clients_are_told() {
        assert_eq!(TokenError::Expired.to_string(), "token expired");
        assert_eq!(TokenError::Revoked.to_string(), "token revoked");
        assert_eq!(TokenError::Malformed.to_string(), "malformed token");
    }

    fn ours(k: &Ed25519KeyPair, claims: &serde_json::Value) -> String {
        token(k, r#"{"alg":"EdDSA","typ":"at+jwt","kid":"k1"}"#, claims)
    }

    fn keys_of(k: &Ed25519KeyPair) -> VerifyingKeys {
        let mut keys = VerifyingKeys::default();
        keys.insert("k1", Algorithm::EdDsa, k.public_key().as_ref())
            .expect("insert");
        keys
    }

    #[test]
    fn a_checked_token_is_remembered_but_its_claims_are_checked_every_time() {
        let k = pair();
        let keys = keys_of(&k);
        let t = ours(&k, &claims());
        let first = verify(&t, &keys, &expect(), 1000).expect("verifies");
        assert_eq!(keys.checked.len(), 1);
        assert_eq!(verify(&t, &keys, &expect(), 1000), Ok(first));
        assert_eq!(keys.checked.len(), 1);
        // Time, issuer and audience are not remembered.
        assert_eq!(verify(&t, &keys, &expect(), 1605), Err(TokenError::Expired));
        let mut elsewhere = expect();
        elsewhere.issuer = "http://other".into();
        assert_eq!(
            verify(&t, &keys, &elsewhere, 1000),
            Err(TokenError::WrongIssuer)
        );
        elsewhere = expect();
        elsewhere.audience = Some("third".into());
        assert_eq!(
            verify(&t, &keys, &elsewhere, 1000),
            Err(TokenError::WrongAudience)
        );
        // Any other byte string is checked in full: the same token with its
        // signature's last character changed, or with a byte appended.
        let mut tampered = t.clone();
        let last = tampered.pop().expect("non-empty");
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        assert!(verify(&tampered, &keys, &expect(), 1000).is_err());
        assert!(verify(&format!("{t}A"), &keys, &expect(), 1000).is_err());
        // A refused token is not remembered.
        let expired = ours(
            &k,
            &serde_json::json!({"iss":"http://issuer","sub":"u",
            "aud":"api","exp":900,"iat":800,"jti":"j2","client_id":"c","sid":"s"}),
        );
        assert_eq!(
            verify(&expired, &keys, &expect(), 1000),
            Err(TokenError::Expired)
        );
        assert_eq!(keys.checked.len(), 1);
    }

    #[test]
    fn replacing_a_key_forgets_what_the_old_one_checked() {
        let old = pair();
        let mut keys = keys_of(&old);
        let t = ours(&old, &claims());
        verify(&t, &keys, &expect(), 1000).expect("verifies");
        keys.insert("k1", Algorithm::EdDsa, pair().public_key().as_ref())
            .expect("insert");
        assert_eq!(
            verify(&t, &keys, &expect(), 1000),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn the_memory_of_checked_tokens_is_bounded() {
        let k = pair();
        let keys = keys_of(&k);
        for i in 0..checked::CAPACITY + 10 {
            let mut c = claims();
            c["jti"] = serde_json::json!(i.to_string());
            verify(&ours(&k, &c), &keys, &expect(), 1000).expect("verifies");
            assert!(keys.checked.len() <= checked::CAPACITY);
        }
        assert!(keys.checked.len() >= 10);
    }
}
