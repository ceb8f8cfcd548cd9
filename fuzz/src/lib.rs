//! The fuzz harnesses, one function per target, shared by the libFuzzer
//! binaries in `fuzz_targets/` and by the plain `cargo test` replay below.
//!
//! Each harness checks more than "does not panic": whatever a parser
//! accepts must round-trip to exactly the input, so a second spelling of a
//! token (base64 slack bits, padding, re-serialised JSON) is a finding.
//!
//! The harnesses call the real parsers and body types of `latchkey-wire`,
//! the ones the server and the verifier use; nothing here restates them.

use std::sync::OnceLock;

use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};
use latchkey_core::access_token::{
    self, AccessClaims, Algorithm, Audience, Expectations, SigningKey, VerifyingKeys,
};
use latchkey_core::password::Password;
use latchkey_core::refresh_token::RefreshTokenCodec;
use latchkey_core::secret::ServerSecret;
use latchkey_core::service::administration::{valid_roles, MAX_ROLES, MAX_ROLE_BYTES};
use latchkey_core::username::Username;
use latchkey_wire::admin::{CreateInvite, CreateUser, PatchUser};
use latchkey_wire::authorization::{bearer_token, BasicCredentials};
use latchkey_wire::body::{
    nesting_exceeds, PasswordChange, RefreshRequest, RevokeRequest, SignIn, SignOutBody, SignUp,
    MAX_JSON_DEPTH,
};
use latchkey_wire::feed::FeedResponse;
use latchkey_wire::form::Form;

pub const ISSUER: &str = "http://latchkey.test";
pub const AUDIENCE: &str = "latchkey";
/// The fixed "now" of the access-token harness; seed tokens are minted
/// around it so they verify.
pub const NOW: i64 = 1_700_000_000;

/// A fixed server secret (two versions, so version lookup is exercised).
const SECRET: &str = "1 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\n\
                      2 ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8\n";

pub fn refresh_codec() -> &'static RefreshTokenCodec {
    static CODEC: OnceLock<RefreshTokenCodec> = OnceLock::new();
    CODEC.get_or_init(|| {
        let secret = ServerSecret::parse(SECRET).expect("secret");
        RefreshTokenCodec::new(&secret).expect("codec")
    })
}

/// The signing keys behind the verifying key set: Ed25519 and P-256 from
/// fixed private keys (so seed tokens stay valid), RSA generated per run
/// (RSA keys cannot be derived from a seed cheaply).
pub struct Keys {
    pub ed: SigningKey,
    pub ec: SigningKey,
    pub rsa: SigningKey,
    pub verifying: VerifyingKeys,
}

pub const ED_KID: &str = "ed-key";
pub const EC_KID: &str = "ec-key";
pub const RSA_KID: &str = "rsa-key";

pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let ed_pkcs8 = Ed25519KeyPair::from_seed_unchecked(&[7u8; 32])
            .expect("seed")
            .to_pkcs8()
            .expect("pkcs8");
        let ed = SigningKey::from_pkcs8(ED_KID, Algorithm::EdDsa, ed_pkcs8.as_ref()).expect("ed");
        // RFC 5915 ECPrivateKey with a fixed scalar; the public key is derived.
        let mut ec_der = vec![0x30, 0x31, 0x02, 0x01, 0x01, 0x04, 0x20];
        ec_der.extend_from_slice(&[0x11; 32]);
        ec_der.extend_from_slice(&[
            0xa0, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
        ]);
        let ec_pkcs8 =
            EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_FIXED_SIGNING, &ec_der)
                .expect("ec key")
                .to_pkcs8v1()
                .expect("pkcs8");
        let ec = SigningKey::from_pkcs8(EC_KID, Algorithm::Es256, ec_pkcs8.as_ref()).expect("ec");
        let rsa_der = {
            use aws_lc_rs::encoding::AsDer as _;
            aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .expect("rsa keygen")
                .as_der()
                .expect("pkcs8")
                .as_ref()
                .to_vec()
        };
        let rsa = SigningKey::from_pkcs8(RSA_KID, Algorithm::Rs256, &rsa_der).expect("rsa");
        let mut verifying = VerifyingKeys::default();
        for k in [&ed, &ec, &rsa] {
            verifying
                .insert(k.kid(), k.alg(), k.public_key())
                .expect("insert");
        }
        Keys {
            ed,
            ec,
            rsa,
            verifying,
        }
    })
}

pub fn expectations() -> Expectations {
    Expectations {
        issuer: ISSUER.into(),
        audience: Some(AUDIENCE.into()),
        leeway: 30,
    }
}

/// Claims of the seed tokens.
pub fn sample_claims() -> AccessClaims {
    AccessClaims {
        iss: ISSUER.into(),
        sub: "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9".into(),
        aud: Audience::One(AUDIENCE.into()),
        exp: NOW + 600,
        iat: NOW,
        nbf: None,
        jti: "f0e1d2c3-b4a5-4697-8877-665544332211".into(),
        client_id: "default".into(),
        sid: Some("11111111-2222-4333-8444-555555555555".into()),
        scope: Some("read write".into()),
        roles: vec!["admin".into()],
    }
}

/// `refresh_token_decode`: any string; an accepted token must be the
/// one canonical encoding of what it decodes to.
pub fn refresh_token_decode(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let codec = refresh_codec();
    if let Some(claims) = codec.decode(text) {
        // `encode` mints with the newest secret version; tokens of older
        // versions are checked by their first byte instead.
        let reencoded = codec.encode(claims.session_id, claims.counter);
        let same_version = reencoded.get(4..5) == text.get(4..5);
        assert!(
            !same_version || reencoded == text,
            "refresh token accepted in a non-canonical spelling: {text:?} (canonical {reencoded:?})"
        );
        assert_eq!(text.len(), latchkey_core::refresh_token::TOKEN_LEN);
    }
}

/// `access_token_verify`: any string against a real key set. Whatever
/// verifies must meet the expectations and, for the deterministic Ed25519
/// key, be byte for byte the token the key mints for those claims (so no
/// second spelling of a signed token verifies).
pub fn access_token_verify(data: &[u8]) {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let keys = keys();
    let expect = expectations();
    if let Ok(claims) = access_token::verify(token, &keys.verifying, &expect, NOW) {
        assert_eq!(claims.iss, ISSUER);
        assert!(claims.aud.contains(AUDIENCE));
        assert!(NOW < claims.exp.saturating_add(expect.leeway));
        let header = token.split('.').next().unwrap_or_default();
        let header: serde_json::Value = URL_SAFE_NO_PAD
            .decode(header)
            .ok()
            .and_then(|h| serde_json::from_slice(&h).ok())
            .expect("verified token has a JSON header");
        let kid = header["kid"].as_str().expect("kid");
        assert!(
            [ED_KID, EC_KID, RSA_KID].contains(&kid),
            "verified under unknown kid {kid}"
        );
        if kid == ED_KID {
            assert_eq!(
                token,
                keys.ed.sign(&claims),
                "a token that is not the canonical Ed25519 token verified"
            );
        }
    }
}

/// `json_bodies`: the server's body shapes (the wire crate's types, after
/// the server's nesting check), the feed's page as verifiers read it, and
/// the account-field rules.
pub fn json_bodies(data: &[u8]) {
    if nesting_exceeds(data, MAX_JSON_DEPTH) {
        return;
    }
    let _ = serde_json::from_slice::<SignUp>(data);
    let _ = serde_json::from_slice::<RevokeRequest>(data);
    let _ = serde_json::from_slice::<SignOutBody>(data);
    let _ = serde_json::from_slice::<PasswordChange>(data);
    if let Ok(page) = serde_json::from_slice::<FeedResponse>(data) {
        // What a verifier reads, the issuer writes the same way.
        let text = serde_json::to_vec(&page).expect("serialise");
        let again: FeedResponse = serde_json::from_slice(&text).expect("reparse");
        assert_eq!(again, page, "feed page does not round-trip");
        for entry in page.entries {
            let _ = entry.revocation();
        }
    }
    if let Ok(body) = serde_json::from_slice::<SignIn>(data) {
        account_fields(&body.username, &body.password);
    }
    if let Ok(body) = serde_json::from_slice::<RefreshRequest>(data) {
        if let Some(token) = body.refresh_token {
            let _ = refresh_codec().decode(&token);
        }
    }
    // The administration bodies (read after the caller is authorised, but
    // still nobody's input to trust).
    if let Ok(body) = serde_json::from_slice::<CreateUser>(data) {
        account_fields(&body.username, body.password.as_deref().unwrap_or(""));
        if let Some(given) = body.roles {
            roles(given);
        }
    }
    if let Ok(body) = serde_json::from_slice::<PatchUser>(data) {
        if let Some(given) = body.roles {
            roles(given);
        }
    }
    if let Ok(body) = serde_json::from_slice::<CreateInvite>(data) {
        if let Some(given) = body.roles {
            roles(given);
        }
    }
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        // What parses re-serialises and parses again. (Not compared for
        // equality: serde_json's float parsing is not exact by default, and
        // that is serde_json's business, not a property of our code.)
        let text = serde_json::to_vec(&value).expect("serialise");
        let _: serde_json::Value = serde_json::from_slice(&text).expect("reparse");
    }
    if let Ok(text) = std::str::from_utf8(data) {
        account_fields(text, text);
    }
}

/// Roles an operator gives: what is accepted is within the limits, each
/// given role once, in the order given.
fn roles(given: Vec<String>) {
    if let Ok(kept) = valid_roles(given.clone()) {
        assert!(kept.len() <= MAX_ROLES);
        let mut firsts = given.clone();
        let mut seen = std::collections::HashSet::new();
        firsts.retain(|r| seen.insert(r.clone()));
        assert_eq!(
            kept, firsts,
            "roles are the given ones, deduplicated in order"
        );
        assert!(kept.iter().all(|r| !r.is_empty()
            && r.len() <= MAX_ROLE_BYTES
            && r.bytes().all(|b| b.is_ascii_graphic())));
    }
}

fn account_fields(username: &str, password: &str) {
    if let Ok(name) = Username::parse(username) {
        assert!(!name.display.is_empty() && !name.key.is_empty());
        // A normalised name is accepted again, as the same account.
        let again = Username::parse(&name.display).expect("normalised name re-parses");
        assert_eq!(again.key, name.key, "normalisation is not idempotent");
    }
    let _ = Password::new_for_account(password);
    let _ = Password::for_check(password);
}

/// `form_body`: form parsing round-trips, Basic
/// credentials round-trip through their encoding, the Bearer rule holds, and
/// the token-bearing fields go through the token decoders.
pub fn form_body(data: &[u8]) {
    if let Ok(form) = Form::parse(data) {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (k, v) in form.iter() {
            ser.append_pair(k, v);
        }
        let again = Form::parse(ser.finish().as_bytes()).expect("re-encoded form parses");
        assert_eq!(again, form, "form does not round-trip");
        for name in ["refresh_token", "token"] {
            if let Some(token) = form.get(name) {
                let _ = refresh_codec().decode(token);
                let _ = access_token::verify(token, &keys().verifying, &expectations(), NOW);
            }
        }
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for value in [
        text.to_owned(),
        format!("Basic {text}"),
        format!("Bearer {text}"),
    ] {
        let Ok(value) = HeaderValue::from_str(&value) else {
            continue;
        };
        if let Some(creds) = BasicCredentials::parse(&value) {
            let secret = creds.secret.as_deref().unwrap_or_default();
            let encoded = BasicCredentials::header_value(&creds.id, secret).expect("encodes");
            let back = BasicCredentials::parse(&encoded).expect("re-encoded credentials parse");
            assert_eq!(back, creds, "Basic credentials do not round-trip");
        }
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, value);
        if let Ok(token) = bearer_token(&headers) {
            // RFC 6750 b64token: nothing that could smuggle a second value.
            assert!(!token.is_empty(), "empty bearer token accepted");
            assert!(
                !token.contains([' ', ',', '"', '\t']),
                "bearer token with a separator accepted: {token:?}"
            );
        }
    }
}

/// Seed inputs per target, for `cargo test` and for regenerating
/// `corpus/` (`cargo test -- --ignored write_seed_corpus`).
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let claims = sample_claims();
    match target {
        "refresh_token_decode" => {
            let codec = refresh_codec();
            let id = "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9"
                .parse()
                .expect("uuid");
            vec![
                codec.encode(id, 0).into_bytes(),
                codec.encode(id, u64::MAX).into_bytes(),
                b"lkr_".to_vec(),
            ]
        }
        "access_token_verify" => {
            let k = keys();
            let mut ed_expired = claims.clone();
            ed_expired.exp = NOW - 3600;
            vec![
                k.ed.sign(&claims).into_bytes(),
                k.ec.sign(&claims).into_bytes(),
                k.rsa.sign(&claims).into_bytes(),
                k.ed.sign(&ed_expired).into_bytes(),
            ]
        }
        "json_bodies" => vec![
            br#"{"username":"alice","password":"correct horse battery"}"#.to_vec(),
            br#"{"username":"ALICE","password":"x","client_id":"web","scope":"read","audience":"api"}"#.to_vec(),
            format!(
                r#"{{"refresh_token":"{}","client_id":"web"}}"#,
                String::from_utf8(seeds("refresh_token_decode")[0].clone()).expect("utf8")
            )
            .into_bytes(),
            br#"{"scope":"others"}"#.to_vec(),
            br#"{"entries":[{"kind":"sid","id":"s1","expires_at":100}],"cursor":"7","next":"7"}"#
                .to_vec(),
            br#"{"current_password":"a","new_password":"\u00e9t\u00e9 \ud83d\ude00"}"#.to_vec(),
            "Ａｌｉｃｅ\u{200b}ß".as_bytes().to_vec(),
        ],
        "form_body" => vec![
            b"grant_type=refresh_token&refresh_token=lkr_abc&scope=read+write".to_vec(),
            b"grant_type=client_credentials&client_id=svc&client_secret=lkc_x%2By&audience=jobs-api"
                .to_vec(),
            b"token=a&token=b&token_type_hint=".to_vec(),
            b"c3ZjOmxrY19zZWNyZXQ=".to_vec(),
            b"eyJhbGciOiJFZERTQSJ9.e30.c2ln".to_vec(),
        ],
        _ => Vec::new(),
    }
}

/// A harness: takes one input, panics on a finding.
pub type Harness = fn(&[u8]);

pub const TARGETS: [(&str, Harness); 4] = [
    ("refresh_token_decode", refresh_token_decode),
    ("access_token_verify", access_token_verify),
    ("json_bodies", json_bodies),
    ("form_body", form_body),
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn corpus_dir(target: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("corpus")
            .join(target)
    }

    /// xorshift64*: reproducible pseudo-random inputs without a crate.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    /// Bytes that matter to these parsers, for mutations to splice in.
    const INTERESTING: &[&[u8]] = &[
        b".",
        b"=",
        b"%",
        b"&",
        b"+",
        b":",
        b"\"",
        b"{",
        b"}",
        b"[",
        b"]",
        b"\\u0000",
        b"\0",
        b"lkr_",
        b"eyJ",
        b"-",
        b"_",
        b" ",
        b"\xff",
        b"\xc3\xa9",
        b"1e309",
        b"null",
    ];

    fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
        let mut out = input.to_vec();
        for _ in 0..=rng.below(4) {
            let pos = rng.below(out.len() + 1);
            match rng.below(6) {
                0 if !out.is_empty() => {
                    let i = rng.below(out.len());
                    out[i] ^= 1 << rng.below(8);
                }
                1 if !out.is_empty() => {
                    let i = rng.below(out.len());
                    out[i] = rng.next() as u8;
                }
                2 if pos < out.len() => {
                    let end = (pos + 1 + rng.below(8)).min(out.len());
                    out.drain(pos..end);
                }
                3 => {
                    let piece = INTERESTING[rng.below(INTERESTING.len())];
                    out.splice(pos..pos, piece.iter().copied());
                }
                4 if !out.is_empty() => {
                    let i = rng.below(out.len());
                    let c = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                        .as_bytes()[rng.below(64)];
                    out[i] = c;
                }
                _ => {
                    let len = rng.below(16);
                    let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                    out.splice(pos..pos, bytes);
                }
            }
        }
        out
    }

    fn iterations() -> usize {
        std::env::var("FUZZ_ITERATIONS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(5_000)
    }

    /// Replays every corpus file (the committed seeds and anything a fuzz
    /// run left there) and then mutated seeds and random bytes.
    #[test]
    fn replay_corpus_and_random_inputs() {
        for (name, target) in TARGETS {
            let mut inputs = seeds(name);
            if let Ok(dir) = std::fs::read_dir(corpus_dir(name)) {
                for entry in dir.flatten() {
                    inputs.push(std::fs::read(entry.path()).expect("read corpus file"));
                }
            }
            assert!(!inputs.is_empty(), "{name}: no seeds");
            for input in &inputs {
                target(input);
            }
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ name.len() as u64);
            for i in 0..iterations() {
                let input = if i % 8 == 0 {
                    (0..rng.below(200)).map(|_| rng.next() as u8).collect()
                } else {
                    let seed = &inputs[rng.below(inputs.len())];
                    mutate(&mut rng, seed)
                };
                target(&input);
            }
        }
    }

    /// The seed tokens really are valid, so the harnesses start from
    /// accepted inputs and the oracles are exercised.
    #[test]
    fn seeds_are_accepted() {
        let k = keys();
        for token in &seeds("access_token_verify")[..3] {
            let token = std::str::from_utf8(token).expect("utf8");
            assert!(
                access_token::verify(token, &k.verifying, &expectations(), NOW).is_ok(),
                "{token}"
            );
        }
        for token in &seeds("refresh_token_decode")[..2] {
            let token = std::str::from_utf8(token).expect("utf8");
            assert!(refresh_codec().decode(token).is_some());
        }
    }

    /// Writes the seeds into `corpus/` (tokens from the fixed keys; the
    /// RSA seed changes per run, so it is written but only parses).
    #[test]
    #[ignore = "run by hand to regenerate corpus/"]
    fn write_seed_corpus() {
        for (name, _) in TARGETS {
            let dir = corpus_dir(name);
            std::fs::create_dir_all(&dir).expect("mkdir");
            for (i, seed) in seeds(name).iter().enumerate() {
                std::fs::write(dir.join(format!("seed-{i}")), seed).expect("write");
            }
        }
    }
}
