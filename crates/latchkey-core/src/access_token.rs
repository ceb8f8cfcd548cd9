//! Access tokens: JWTs per RFC 9068 in JWS compact form, signed with
//! Ed25519 (`EdDSA`, the default), ECDSA P-256 (`ES256`) or RSA PKCS#1 v1.5
//! (`RS256`).
//!
//! Signing uses a key pair parsed once when the key set is (re)loaded
//! (re-parsing per token would double the cost of a refresh, and for RSA
//! far more). The format, the claims and verification (strict per RFC 8725)
//! are [`latchkey_wire::jws`]'s, re-exported here.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

// The token format and its verification are the wire crate's, shared with
// resource servers; this module adds signing.
use latchkey_wire::jws::encode_header;
pub use latchkey_wire::jws::{
    verify, AccessClaims, Algorithm, Audience, Expectations, TokenError, VerifyingKeys,
    MAX_TOKEN_BYTES, TOKEN_TYPE,
};

/// A parsed private key of one of the [`Algorithm`]s.
enum Signer {
    Ed25519(Ed25519KeyPair),
    Ecdsa(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// A private signing key, parsed once.
pub struct SigningKey {
    kid: String,
    alg: Algorithm,
    signer: Signer,
    /// The public key in the form we store and verify with: Ed25519 raw 32
    /// bytes, P-256 uncompressed point, RSA PKCS#1 `RSAPublicKey` DER.
    public_key: Vec<u8>,
    /// base64url of the JOSE header, the same for every token of this key.
    header_b64: String,
    rng: SystemRandom,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({}, {})", self.kid, self.alg.as_str())
    }
}

impl SigningKey {
    /// Parses a PKCS#8 private key of algorithm `alg`; a key of another
    /// type is refused.
    pub fn from_pkcs8(kid: &str, alg: Algorithm, pkcs8: &[u8]) -> Result<Self, TokenError> {
        let bad = |_| TokenError::Malformed;
        let (signer, public_key) = match alg {
            Algorithm::EdDsa | Algorithm::Ed25519 => {
                let pair = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(bad)?;
                let public = pair.public_key().as_ref().to_vec();
                (Signer::Ed25519(pair), public)
            }
            Algorithm::Es256 => {
                let pair =
                    EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
                        .map_err(bad)?;
                let public = pair.public_key().as_ref().to_vec();
                (Signer::Ecdsa(pair), public)
            }
            Algorithm::Rs256 => {
                let pair = RsaKeyPair::from_pkcs8(pkcs8).map_err(bad)?;
                if pair.public_modulus_len() * 8 < 2048 {
                    return Err(TokenError::Malformed);
                }
                let public = pair.public_key().as_ref().to_vec();
                (Signer::Rsa(pair), public)
            }
        };
        let header_b64 = encode_header(alg, kid)?;
        Ok(Self {
            kid: kid.to_owned(),
            alg,
            signer,
            public_key,
            header_b64,
            rng: SystemRandom::new(),
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The public key as stored and as [`VerifyingKeys::insert`] takes it.
    pub fn public_key(&self) -> &[u8] {
        &self.public_key
    }

    /// The raw JWS signature over `input`. ECDSA and RSA signing only fail
    /// on internal library errors (allocation); the token then carries an
    /// empty signature, which no verifier accepts, and the failure is logged.
    fn signature(&self, input: &[u8]) -> Vec<u8> {
        let result = match &self.signer {
            Signer::Ed25519(pair) => Ok(pair.sign(input).as_ref().to_vec()),
            Signer::Ecdsa(pair) => pair.sign(&self.rng, input).map(|sig| sig.as_ref().to_vec()),
            Signer::Rsa(pair) => {
                let mut sig = vec![0u8; pair.public_modulus_len()];
                pair.sign(&signature::RSA_PKCS1_SHA256, &self.rng, input, &mut sig)
                    .map(|()| sig)
            }
        };
        result.unwrap_or_else(|_| {
            tracing::error!(kid = %self.kid, alg = %self.alg, "signing failed");
            Vec::new()
        })
    }

    pub fn sign(&self, claims: &AccessClaims) -> String {
        // Serialising a struct of strings and integers cannot fail.
        let payload = serde_json::to_vec(claims).unwrap_or_default();
        let mut out = String::with_capacity(self.header_b64.len() + payload.len() * 4 / 3 + 100);
        out.push_str(&self.header_b64);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut out);
        let sig = self.signature(out.as_bytes());
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(&sig, &mut out);
        out
    }

    /// Any other JWT this key signs (an OpenID Connect ID token): header
    /// `{"alg","kid","typ":"JWT"}`. Not `at+jwt`, so access-token
    /// verification (here and in resource servers) refuses it: such a token
    /// can never be used as an access token.
    pub fn sign_jwt<T: serde::Serialize>(&self, claims: &T) -> String {
        #[derive(serde::Serialize)]
        struct Header<'a> {
            alg: &'a str,
            kid: &'a str,
            typ: &'a str,
        }
        let header = Header {
            alg: self.alg.as_str(),
            kid: &self.kid,
            typ: "JWT",
        };
        let json = |value: Result<Vec<u8>, serde_json::Error>| {
            value.unwrap_or_else(|e| {
                // Only a caller's claims type that serde cannot write as
                // JSON (a map with non-string keys); no verifier parses the
                // empty payload that results.
                tracing::error!(kid = %self.kid, error = %e, "JWT claims are not JSON");
                Vec::new()
            })
        };
        let mut out = URL_SAFE_NO_PAD.encode(json(serde_json::to_vec(&header)));
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(json(serde_json::to_vec(claims)), &mut out);
        let sig = self.signature(out.as_bytes());
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(&sig, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::UnixTime;
    use aws_lc_rs::rand::SystemRandom;

    fn key(kid: &str) -> SigningKey {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("keygen");
        SigningKey::from_pkcs8(kid, Algorithm::EdDsa, pkcs8.as_ref()).expect("key")
    }

    fn pkcs8_of(alg: Algorithm) -> Vec<u8> {
        let rng = SystemRandom::new();
        match alg {
            Algorithm::EdDsa | Algorithm::Ed25519 => Ed25519KeyPair::generate_pkcs8(&rng)
                .expect("keygen")
                .as_ref()
                .to_vec(),
            Algorithm::Es256 => {
                EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .expect("keygen")
                    .as_ref()
                    .to_vec()
            }
            Algorithm::Rs256 => {
                use aws_lc_rs::encoding::AsDer as _;
                let pair = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("keygen");
                pair.as_der().expect("pkcs8").as_ref().to_vec()
            }
        }
    }

    fn key_of(alg: Algorithm, kid: &str) -> SigningKey {
        SigningKey::from_pkcs8(kid, alg, &pkcs8_of(alg)).expect("key")
    }

    fn keys_for(k: &SigningKey) -> VerifyingKeys {
        let mut v = VerifyingKeys::default();
        v.insert(k.kid(), k.alg(), k.public_key()).expect("insert");
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
            sid: Some("s".into()),
            scope: None,
            roles: vec![],
        }
    }

    fn expect() -> Expectations {
        Expectations {
            issuer: "http://issuer".into(),
            audience: Some("api".into()),
            leeway: 5,
        }
    }

    fn b64(v: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).expect("json"))
    }

    /// A token with arbitrary header and payload, signed by `k`.
    fn forge(k: &SigningKey, header: serde_json::Value, payload: serde_json::Value) -> String {
        let signing_input = format!("{}.{}", b64(&header), b64(&payload));
        let sig = k.signature(signing_input.as_bytes());
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(&sig))
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

    /// An ID token's header says `JWT`, so no access-token verifier takes
    /// it, whatever its claims and whichever key signed it.
    #[test]
    fn a_jwt_is_never_an_access_token() {
        for alg in Algorithm::ALL {
            let k = key_of(alg, "id1");
            let t = k.sign_jwt(&claims(1000));
            let h = t.split('.').next().expect("header");
            let v: serde_json::Value =
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).expect("b64")).expect("json");
            let expected = serde_json::json!({"alg": alg.as_str(), "kid": "id1", "typ": "JWT"});
            assert_eq!(v, expected);
            assert_eq!(
                verify(&t, &keys_for(&k), &expect(), 1000),
                Err(TokenError::UnsupportedHeader),
                "{alg}"
            );
        }
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
        e.audience = Some("other".into());
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
            ("client_id", serde_json::Value::Null),
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
        let sig = k.signature(input.as_bytes());
        let t = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&sig));
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

    #[test]
    fn es256_and_rs256_round_trip() {
        for alg in [Algorithm::Es256, Algorithm::Rs256] {
            let k = key_of(alg, "k1");
            let t = k.sign(&claims(1000));
            let h = t.split('.').next().expect("header");
            let v: serde_json::Value =
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).expect("b64")).expect("json");
            assert_eq!(v["alg"], alg.as_str());
            assert_eq!(verify(&t, &keys_for(&k), &expect(), 1000), Ok(claims(1000)));
            // A fresh key of the same type under the same kid does not verify it.
            let other = key_of(alg, "k1");
            assert_eq!(
                verify(&t, &keys_for(&other), &expect(), 1000),
                Err(TokenError::BadSignature)
            );
        }
        // Signature sizes: ES256 is fixed r ‖ s (64 bytes), RS256 the modulus.
        let es = key_of(Algorithm::Es256, "e").sign(&claims(1));
        let rs = key_of(Algorithm::Rs256, "r").sign(&claims(1));
        let sig_len = |t: &str| {
            URL_SAFE_NO_PAD
                .decode(t.rsplit('.').next().expect("sig"))
                .expect("b64")
                .len()
        };
        assert_eq!(sig_len(&es), 64);
        assert_eq!(sig_len(&rs), 256);
    }

    #[test]
    fn private_key_must_match_the_declared_algorithm() {
        for declared in Algorithm::ALL {
            for actual in Algorithm::ALL {
                let parsed = SigningKey::from_pkcs8("k", declared, &pkcs8_of(actual));
                // EdDSA and Ed25519 are two names of one key type.
                let same_keys =
                    declared == actual || (declared.is_ed25519() && actual.is_ed25519());
                assert_eq!(parsed.is_ok(), same_keys, "{declared} from {actual}");
            }
        }
        for alg in Algorithm::ALL {
            let mut v = VerifyingKeys::default();
            assert!(v.insert("k", alg, b"not a key").is_err());
        }
    }

    /// The key decides the algorithm: a header naming any other one is
    /// refused before the signature is looked at, whoever signed it.
    #[test]
    fn cross_algorithm_confusion_is_refused() {
        let ed = key_of(Algorithm::EdDsa, "ed");
        let ec = key_of(Algorithm::Es256, "ec");
        let rsa = key_of(Algorithm::Rs256, "rsa");
        let mut keys = VerifyingKeys::default();
        for k in [&ed, &ec, &rsa] {
            keys.insert(k.kid(), k.alg(), k.public_key())
                .expect("insert");
        }
        let body = serde_json::to_value(claims(1000)).expect("json");
        let header = |alg: &str, kid: &str| serde_json::json!({"alg":alg,"typ":"at+jwt","kid":kid});
        // Each honest token verifies.
        for k in [&ed, &ec, &rsa] {
            let t = forge(k, header(k.alg().as_str(), k.kid()), body.clone());
            assert!(verify(&t, &keys, &expect(), 1000).is_ok(), "{}", k.kid());
        }
        // Every (kid, header alg, signer) combination where the header alg is
        // not the kid's algorithm.
        for target in [&ed, &ec, &rsa] {
            for signer in [&ed, &ec, &rsa] {
                if signer.alg() == target.alg() {
                    continue;
                }
                let t = forge(
                    signer,
                    header(signer.alg().as_str(), target.kid()),
                    body.clone(),
                );
                assert_eq!(
                    verify(&t, &keys, &expect(), 1000),
                    Err(TokenError::UnsupportedHeader),
                    "{} header on {} kid",
                    signer.alg(),
                    target.kid()
                );
            }
        }
        // The header claims the kid's own algorithm but another key signed.
        let t = forge(&rsa, header("ES256", "ec"), body.clone());
        assert_eq!(
            verify(&t, &keys, &expect(), 1000),
            Err(TokenError::BadSignature)
        );
        let t = forge(&ed, header("ES256", "ec"), body);
        assert_eq!(
            verify(&t, &keys, &expect(), 1000),
            Err(TokenError::BadSignature)
        );
    }

    /// HS256 keyed with the public key (as raw bytes, base64url or JWK
    /// text) is the classic confusion attack on libraries that take `alg`
    /// from the token.
    #[test]
    fn hs256_with_public_key_as_secret_is_refused() {
        use aws_lc_rs::hmac;
        for alg in Algorithm::ALL {
            let k = key_of(alg, "k1");
            let keys = keys_for(&k);
            let body = serde_json::to_value(claims(1000)).expect("json");
            let input = format!(
                "{}.{}",
                b64(&serde_json::json!({"alg":"HS256","typ":"at+jwt","kid":"k1"})),
                b64(&body)
            );
            let encoded = URL_SAFE_NO_PAD.encode(k.public_key());
            for secret in [k.public_key(), encoded.as_bytes()] {
                let mac = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), input.as_bytes());
                let t = format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref()));
                assert_eq!(
                    verify(&t, &keys, &expect(), 1000),
                    Err(TokenError::UnsupportedHeader),
                    "{alg}"
                );
            }
        }
    }

    /// CVE-2022-21449 ("psychic signatures"): r = s = 0 must not verify, nor
    /// r = s = n, nor a DER-encoded signature where JWS wants r ‖ s.
    #[test]
    fn degenerate_ecdsa_signatures_are_refused() {
        let k = key_of(Algorithm::Es256, "ec");
        let keys = keys_for(&k);
        let t = k.sign(&claims(1000));
        let input = t.rsplit_once('.').expect("parts").0;
        let n = [
            0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2,
            0xfc, 0x63, 0x25, 0x51u8,
        ];
        let mut r_s_n = n.to_vec();
        r_s_n.extend_from_slice(&n);
        let der = EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            &pkcs8_of_ec_from(&k),
        )
        .map(|p| {
            p.sign(&SystemRandom::new(), input.as_bytes())
                .expect("sign")
                .as_ref()
                .to_vec()
        })
        .unwrap_or_default();
        for sig in [vec![0u8; 64], r_s_n, vec![0u8; 0], vec![0u8; 1], der] {
            let forged = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&sig));
            assert_eq!(
                verify(&forged, &keys, &expect(), 1000),
                Err(TokenError::BadSignature)
            );
        }
        // The unmodified token still verifies.
        assert!(verify(&t, &keys, &expect(), 1000).is_ok());
    }

    /// The EC key's PKCS#8 document, for re-parsing it with another encoding.
    fn pkcs8_of_ec_from(k: &SigningKey) -> Vec<u8> {
        match &k.signer {
            Signer::Ecdsa(pair) => pair.to_pkcs8v1().expect("pkcs8").as_ref().to_vec(),
            _ => Vec::new(),
        }
    }
}
