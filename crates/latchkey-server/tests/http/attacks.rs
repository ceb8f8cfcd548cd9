//! Attacks on the bearer-token surface over real HTTP, each of which must
//! end in 401 `invalid_token` (or `invalid_grant` for the refresh
//! endpoint) and never a 5xx. Tokens are forged the way an attacker would:
//! from a genuine token's parts, with the genuine signature kept where that
//! makes the attack sharper, or signed with an attacker-held Ed25519 key
//! (every such forgery is first checked to be valid under that key, so only
//! the server's trust decisions stand between it and acceptance).
//!
//! Attacks that need a token the server itself signed with a modified
//! header or claims (e.g. `typ: JWT` or a future `nbf` under the genuine
//! key) cannot be mounted from outside; those cases are sent
//! attacker-signed and fail on the signature, which is noted per test.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use latchkey_core::access_token::{self, Algorithm, Expectations, VerifyingKeys};
use latchkey_core::client::Client;
use latchkey_core::clock::Clock as _;
use latchkey_testkit::{TestServer, Tokens};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ISSUER: &str = "http://latchkey.test";
const AUDIENCE: &str = "latchkey";

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn b64_json(v: &Value) -> String {
    b64(&serde_json::to_vec(v).expect("json"))
}

fn segment_json(seg: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(seg).expect("b64")).expect("json")
}

/// (header, payload, signature) segments of a compact JWS.
fn split(token: &str) -> (String, String, String) {
    let mut it = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (it.next(), it.next(), it.next(), it.next()) else {
        panic!("not three segments: {token}");
    };
    (h.to_owned(), p.to_owned(), s.to_owned())
}

fn signature_bytes(token: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(split(token).2).expect("b64")
}

/// A token with the given header and payload segments and raw signature.
fn assemble(header_b64: &str, payload_b64: &str, sig: &[u8]) -> String {
    format!("{header_b64}.{payload_b64}.{}", b64(sig))
}

/// GET /v1/me with `token`; panics on a 5xx. Returns status and error code.
async fn me(s: &TestServer, token: &str) -> (u16, String) {
    let r = s.get_bearer("/v1/me", token).await;
    let status = r.status().as_u16();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert!(
        status < 500,
        "server error {status} for {token:.120}: {body}"
    );
    if status == 401 {
        assert!(
            challenge.is_some_and(|c| c.starts_with("Bearer")),
            "401 without a Bearer challenge"
        );
        assert!(body["error_description"].is_string(), "{body}");
    }
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}

/// The attack must be refused with 401 invalid_token.
async fn assert_refused(s: &TestServer, token: &str, what: &str) {
    let (status, code) = me(s, token).await;
    assert_eq!(
        (status, code.as_str()),
        (401, "invalid_token"),
        "ATTACK ACCEPTED OR MISHANDLED: {what}"
    );
}

async fn assert_accepted(s: &TestServer, token: &str, what: &str) {
    let (status, code) = me(s, token).await;
    assert_eq!(status, 200, "{what}: {code}");
}

/// A server with a signed-in user, and what an attacker can see of it.
struct Target {
    s: TestServer,
    tokens: Tokens,
    /// The kid of the genuine token (the current signing key).
    kid: String,
    /// That key's JWK as published.
    jwk: Value,
    header: Value,
    claims: Value,
}

impl Target {
    async fn new() -> Self {
        Self::on(TestServer::start().await).await
    }

    async fn on(s: TestServer) -> Self {
        let tokens = s.new_session("alice").await;
        let (h, p, _) = split(&tokens.access);
        let header = segment_json(&h);
        let claims = segment_json(&p);
        let kid = header["kid"].as_str().expect("kid").to_owned();
        let jwks: Value = s
            .http
            .get(s.url("/.well-known/jwks.json"))
            .send()
            .await
            .expect("jwks")
            .json()
            .await
            .expect("json");
        let jwk = jwks["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .find(|k| k["kid"] == kid.as_str())
            .expect("token's key is published")
            .clone();
        assert_accepted(&s, &tokens.access, "genuine token").await;
        Self {
            s,
            tokens,
            kid,
            jwk,
            header,
            claims,
        }
    }

    /// The genuine token's segments.
    fn parts(&self) -> (String, String, String) {
        split(&self.tokens.access)
    }

    /// The genuine header with `changes` merged in (null removes a member).
    fn header_with(&self, changes: Value) -> Value {
        merge(&self.header, changes)
    }

    fn claims_with(&self, changes: Value) -> Value {
        merge(&self.claims, changes)
    }

    /// Still up and still accepting genuine tokens after the attacks.
    async fn still_serving(&self) {
        assert_accepted(
            &self.s,
            &self.tokens.access,
            "genuine token after the attacks",
        )
        .await;
    }
}

fn merge(base: &Value, changes: Value) -> Value {
    let mut out = base.clone();
    if let (Some(o), Value::Object(c)) = (out.as_object_mut(), changes) {
        for (k, v) in c {
            if v.is_null() {
                o.remove(&k);
            } else {
                o.insert(k, v);
            }
        }
    }
    out
}

/// Someone holding an Ed25519 key of their own.
struct Attacker {
    key: forge::Ed25519,
}

impl Attacker {
    fn new() -> Self {
        Self {
            key: forge::Ed25519::from_seed(&forge::sha256(b"the attacker's seed")),
        }
    }

    const KID: &'static str = "attacker-key";

    fn jwk(&self) -> Value {
        json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": b64(&self.key.public),
            "kid": Self::KID,
            "alg": "EdDSA",
            "use": "sig",
        })
    }

    /// Signs raw header and payload JSON texts.
    fn sign_raw(&self, header: &[u8], payload: &[u8]) -> String {
        let input = format!("{}.{}", b64(header), b64(payload));
        let sig = self.key.sign(input.as_bytes());
        format!("{input}.{}", b64(&sig))
    }

    fn sign(&self, header: &Value, claims: &Value) -> String {
        self.sign_raw(
            &serde_json::to_vec(header).expect("json"),
            &serde_json::to_vec(claims).expect("json"),
        )
    }

    /// Asserts that `token` verifies under the attacker's key with the
    /// server's own expectations: a verifier that trusted the attacker's
    /// key (via `jwk`, `jku`, a kid lookup gone wrong...) would accept it.
    fn assert_valid_forgery(&self, token: &str, kid: &str, now: i64) {
        let mut keys = VerifyingKeys::default();
        keys.insert(kid, Algorithm::EdDsa, &self.key.public)
            .expect("attacker key");
        let expect = Expectations {
            issuer: ISSUER.into(),
            audience: Some(AUDIENCE.into()),
            leeway: 30,
        };
        if let Err(e) = access_token::verify(token, &keys, &expect, now) {
            panic!("forgery is not even valid under the attacker key: {e}");
        }
    }
}

#[test]
fn attacker_crypto_matches_rfc_vectors() {
    // FIPS 180-2 "abc"
    assert_eq!(
        hex::encode(forge::sha256(b"abc")),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(
        hex::encode(forge::sha512(b"abc")),
        "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
         2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
    );
    // RFC 4231 test case 2
    assert_eq!(
        hex::encode(forge::hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    // RFC 8032 §7.1 test 1 and test 2
    let seed: [u8; 32] =
        hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
            .expect("hex")
            .try_into()
            .expect("32");
    let k = forge::Ed25519::from_seed(&seed);
    assert_eq!(
        hex::encode(k.public),
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    );
    assert_eq!(
        hex::encode(k.sign(b"")),
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bac\
         c61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    );
    let seed: [u8; 32] =
        hex::decode("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")
            .expect("hex")
            .try_into()
            .expect("32");
    let k = forge::Ed25519::from_seed(&seed);
    assert_eq!(
        hex::encode(k.sign(&[0x72])),
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e\
         458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
    );
}

/// `alg: none` in every capitalisation, with and without a kid, with an
/// empty signature, no signature segment, or the genuine signature kept.
#[tokio::test]
async fn alg_none_is_refused() {
    let t = Target::new().await;
    let (_, payload, sig) = t.parts();
    for alg in ["none", "None", "NONE", "nOnE"] {
        for header in [
            t.header_with(json!({"alg": alg})),
            t.header_with(json!({"alg": alg, "kid": null})),
            json!({"alg": alg, "typ": "JWT"}),
            json!({"alg": alg}),
        ] {
            let h = b64_json(&header);
            for token in [
                format!("{h}.{payload}."),
                format!("{h}.{payload}"),
                format!("{h}.{payload}.{sig}"),
            ] {
                assert_refused(&t.s, &token, &format!("alg {alg}: {header}")).await;
            }
        }
    }
    t.still_serving().await;
}

/// RS/ES-to-HS confusion: HS256 keyed with our public key in every form
/// an attacker could guess a confused verifier would use.
#[tokio::test]
async fn hs256_keyed_with_the_public_key_is_refused() {
    let t = Target::new().await;
    let (_, payload, _) = t.parts();
    let x = t.jwk["x"].as_str().expect("x").to_owned();
    let raw = URL_SAFE_NO_PAD.decode(&x).expect("b64");
    assert_eq!(raw.len(), 32, "Ed25519 public key");
    let mut spki = hex::decode("302a300506032b6570032100").expect("hex");
    spki.extend_from_slice(&raw);
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        STANDARD.encode(&spki)
    );
    let jwk_text = serde_json::to_string(&t.jwk).expect("json");
    let jwk_pretty = serde_json::to_string_pretty(&t.jwk).expect("json");
    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("raw 32-byte key", raw.clone()),
        ("base64url x", x.clone().into_bytes()),
        ("JWK JSON", jwk_text.into_bytes()),
        ("JWK JSON pretty", jwk_pretty.into_bytes()),
        ("PEM", pem.clone().into_bytes()),
        (
            "PEM without final newline",
            pem.trim_end().as_bytes().to_vec(),
        ),
        ("SPKI DER", spki),
    ];
    for header in [
        t.header_with(json!({"alg": "HS256"})),
        t.header_with(json!({"alg": "HS256", "kid": null})),
        json!({"alg": "HS256", "typ": "JWT"}),
    ] {
        let input = format!("{}.{payload}", b64_json(&header));
        for (name, secret) in &secrets {
            let mac = forge::hmac_sha256(secret, input.as_bytes());
            let token = format!("{input}.{}", b64(&mac));
            assert_refused(&t.s, &token, &format!("HS256 with {name}, {header}")).await;
        }
    }
    t.still_serving().await;
}

/// The genuine kid with another algorithm named in the header.
#[tokio::test]
async fn real_kid_with_another_alg_is_refused() {
    let t = Target::new().await;
    let attacker = Attacker::new();
    let (_, payload, sig) = t.parts();
    let raw = URL_SAFE_NO_PAD
        .decode(t.jwk["x"].as_str().expect("x"))
        .expect("b64");
    for alg in [
        "ES256", "RS256", "HS256", "PS256", "ES512", "HS512", "eddsa", "EDDSA", "Ed25519",
    ] {
        let header = t.header_with(json!({"alg": alg}));
        let input = format!("{}.{payload}", b64_json(&header));
        let forged_sigs: Vec<(&str, Vec<u8>)> = vec![
            (
                "genuine signature kept",
                URL_SAFE_NO_PAD.decode(&sig).expect("b64"),
            ),
            ("64 junk bytes", vec![0x5a; 64]),
            ("256 junk bytes", vec![0xa5; 256]),
            (
                "HMAC under the public key",
                forge::hmac_sha256(&raw, input.as_bytes()).to_vec(),
            ),
            (
                "attacker Ed25519",
                attacker.key.sign(input.as_bytes()).to_vec(),
            ),
        ];
        for (name, s) in forged_sigs {
            let token = format!("{input}.{}", b64(&s));
            assert_refused(&t.s, &token, &format!("kid with alg {alg}, {name}")).await;
        }
    }
    t.still_serving().await;
}

/// kid values aimed at file, SQL or memory handling, attacker-signed and
/// with the genuine signature kept.
#[tokio::test]
async fn hostile_kid_values_are_refused() {
    let t = Target::new().await;
    let attacker = Attacker::new();
    let (_, payload, sig) = t.parts();
    let kids = [
        json!("../../etc/passwd"),
        json!("../../../../../../dev/null"),
        json!("' OR 1=1 --"),
        json!("\" OR \"\"=\""),
        json!("x".repeat(10 * 1024)),
        json!(""),
        json!(format!("{}\u{0}", t.kid)),
        json!(format!("{} ", t.kid)),
        json!(t.kid.to_uppercase()),
        json!([t.kid]),
        json!({"kid": t.kid}),
        json!(1),
        json!(null),
    ];
    for kid in kids {
        let mut header = t.header.clone();
        header["kid"] = kid.clone();
        let shown = format!("{kid:.60}");
        let forged = attacker.sign(&header, &t.claims);
        assert_refused(&t.s, &forged, &format!("attacker-signed, kid {shown}")).await;
        let kept = format!("{}.{payload}.{sig}", b64_json(&header));
        assert_refused(&t.s, &kept, &format!("genuine signature, kid {shown}")).await;
    }
    t.still_serving().await;
}

/// Headers that point a verifier at another key (jku, x5u, jwk, x5c),
/// signed with the attacker's key they name. None may be followed: a
/// listener standing in for the attacker's key server must see no
/// connection at all.
#[tokio::test]
async fn key_reference_headers_are_refused_and_never_fetched() {
    let t = Target::new().await;
    let attacker = Attacker::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let connections = Arc::new(AtomicUsize::new(0));
    let seen = connections.clone();
    let accept = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    let url = format!("http://127.0.0.1:{port}/.well-known/jwks.json");
    let x5u = format!("http://127.0.0.1:{port}/cert.pem");
    let mut spki = hex::decode("302a300506032b6570032100").expect("hex");
    spki.extend_from_slice(&attacker.key.public);
    let x5c = json!([STANDARD.encode(&spki)]);
    let jwk = attacker.jwk();
    let references = [
        json!({"jku": url}),
        json!({"x5u": x5u}),
        json!({"jwk": jwk}),
        json!({"x5c": x5c}),
        json!({"jku": url, "x5u": x5u, "jwk": jwk, "x5c": x5c}),
    ];
    let now = t.s.clock.now();
    for reference in references {
        for kid in [json!(Attacker::KID), json!(t.kid), Value::Null] {
            let header = merge(
                &t.header_with(json!({"kid": kid.clone()})),
                reference.clone(),
            );
            let token = attacker.sign(&header, &t.claims);
            if let Some(kid) = kid.as_str() {
                attacker.assert_valid_forgery(&token, kid, now);
            }
            assert_refused(&t.s, &token, &format!("kid {kid}, {reference}")).await;
        }
    }
    t.still_serving().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "the server fetched an attacker-supplied key URL"
    );
    // The listener does count connections.
    drop(tokio::net::TcpStream::connect(("127.0.0.1", port)).await);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(connections.load(Ordering::SeqCst), 1);
    accept.abort();
}

/// `typ` variants. Acceptance of `AT+JWT` / `application/at+jwt` would
/// need a token the server signed with that header, which cannot be made
/// from outside, so only rejections are tested: attacker-signed tokens
/// with the genuine kid or the attacker's kid fail whatever the typ.
#[tokio::test]
async fn typ_variants_signed_by_an_attacker_are_refused() {
    let t = Target::new().await;
    let attacker = Attacker::new();
    let (_, payload, sig) = t.parts();
    for typ in [
        Value::Null,
        json!("JWT"),
        json!("jwt"),
        json!("at+jwt"),
        json!("AT+JWT"),
        json!("application/at+jwt"),
        json!("application/jwt"),
        json!(["at+jwt"]),
    ] {
        for kid in [json!(t.kid), json!(Attacker::KID)] {
            let header = t.header_with(json!({"typ": typ.clone(), "kid": kid.clone()}));
            let token = attacker.sign(&header, &t.claims);
            assert_refused(&t.s, &token, &format!("typ {typ}, kid {kid}")).await;
        }
        // Genuine signature kept, typ changed: the signed header differs.
        if !typ.is_null() && typ != json!("at+jwt") {
            let header = t.header_with(json!({"typ": typ.clone()}));
            let token = format!("{}.{payload}.{sig}", b64_json(&header));
            assert_refused(&t.s, &token, &format!("typ {typ}, genuine signature")).await;
        }
    }
    t.still_serving().await;
}

/// Refresh token as bearer; access token as refresh token.
#[tokio::test]
async fn refresh_and_access_tokens_are_not_interchangeable() {
    let t = Target::new().await;
    assert_refused(&t.s, &t.tokens.refresh, "refresh token as bearer").await;
    let r = t.s.refresh(&t.tokens.access).await;
    assert_eq!(r.status(), 401, "access token as refresh token");
    assert_eq!(latchkey_testkit::error_code(r).await, "invalid_grant");
    let r =
        t.s.http
            .post(t.s.url("/oauth/token"))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", t.tokens.access.as_str()),
            ])
            .send()
            .await
            .expect("request");
    assert_eq!(
        r.status(),
        400,
        "access token as refresh token at /oauth/token"
    );
    assert_eq!(latchkey_testkit::error_code(r).await, "invalid_grant");
    // Neither attempt hurt the genuine pair.
    t.still_serving().await;
    assert_eq!(t.s.refresh(&t.tokens.refresh).await.status(), 200);
}

/// Re-signed with another issuer or audience by the attacker.
#[tokio::test]
async fn wrong_issuer_or_audience_is_refused() {
    let t = Target::new().await;
    let attacker = Attacker::new();
    let (header, _, sig) = t.parts();
    for change in [
        json!({"iss": "http://evil.test"}),
        json!({"iss": "http://latchkey.test/"}),
        json!({"iss": "HTTP://LATCHKEY.TEST"}),
        json!({"aud": "evil"}),
        json!({"aud": ["evil"]}),
        json!({"aud": []}),
        json!({"aud": "LATCHKEY"}),
    ] {
        let claims = t.claims_with(change.clone());
        for kid in [json!(t.kid), json!(Attacker::KID)] {
            let token = attacker.sign(&t.header_with(json!({"kid": kid})), &claims);
            assert_refused(&t.s, &token, &format!("attacker-signed {change}")).await;
        }
        let kept = format!("{header}.{}.{sig}", b64_json(&claims));
        assert_refused(&t.s, &kept, &format!("genuine signature, {change}")).await;
    }
    t.still_serving().await;
}

/// A genuine token, minted by this server for another audience through a
/// client allowed to ask for it, is not accepted by our own API.
#[tokio::test]
async fn genuine_token_for_another_audience_is_refused() {
    let s = TestServer::start_with(|settings| {
        settings.clients.push(Client {
            audiences: vec!["api".into(), "latchkey".into()],
            ..Client::default_public("web")
        });
    })
    .await;
    s.sign_up("alice", "correct horse battery").await;
    let sign_in = |audience: &'static str| {
        s.post(
            "/v1/sign-in",
            json!({"username": "alice", "password": "correct horse battery",
                   "client_id": "web", "audience": audience}),
        )
    };
    let r = sign_in("api").await;
    assert_eq!(r.status(), 200);
    let api = Tokens::from(r.json::<Value>().await.expect("json"));
    assert_eq!(segment_json(&split(&api.access).1)["aud"], "api");
    assert_refused(&s, &api.access, "genuine token with aud api").await;
    let r = sign_in("latchkey").await;
    assert_eq!(r.status(), 200);
    let ours = Tokens::from(r.json::<Value>().await.expect("json"));
    assert_accepted(&s, &ours.access, "same client, our audience").await;
}

/// Each required claim removed, attacker-signed and with the genuine
/// signature kept.
#[tokio::test]
async fn missing_required_claims_are_refused() {
    let t = Target::new().await;
    let attacker = Attacker::new();
    let (header, _, sig) = t.parts();
    for claim in ["iss", "sub", "aud", "exp", "iat", "jti", "client_id"] {
        let claims = t.claims_with(json!({ claim: null }));
        assert!(claims.get(claim).is_none());
        let token = attacker.sign(&t.header, &claims);
        assert_refused(&t.s, &token, &format!("attacker-signed without {claim}")).await;
        let kept = format!("{header}.{}.{sig}", b64_json(&claims));
        assert_refused(&t.s, &kept, &format!("genuine signature without {claim}")).await;
    }
    let empty = attacker.sign(&t.header, &json!({}));
    assert_refused(&t.s, &empty, "empty claims").await;
    let not_object = attacker.sign(&t.header, &json!([t.claims]));
    assert_refused(&t.s, &not_object, "claims array").await;
    t.still_serving().await;
}

/// `exp` is enforced with exactly the configured 30 s leeway.
#[tokio::test]
async fn expired_token_is_refused_after_the_leeway() {
    let t = Target::new().await;
    let iat = t.claims["iat"].as_i64().expect("iat");
    let exp = t.claims["exp"].as_i64().expect("exp");
    assert_eq!(exp - iat, 600);
    assert_eq!(t.s.clock.now(), iat);
    t.s.clock.advance(600 + 29);
    assert_accepted(&t.s, &t.tokens.access, "inside the leeway").await;
    t.s.clock.advance(1);
    let r = t.s.get_bearer("/v1/me", &t.tokens.access).await;
    assert_eq!(r.status(), 401);
    let challenge = r.headers()["www-authenticate"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"], "invalid_token");
    assert_eq!(v["error_description"], "the access token expired");
    t.s.clock.advance(100_000);
    assert_refused(&t.s, &t.tokens.access, "long expired").await;
}

/// `nbf` in the future and hostile `exp` values. These need the genuine
/// key to be meaningful and so are attacker-signed (and kept-signature)
/// forgeries: they fail on the signature; what is tested is that the
/// server answers 401 without choking on the values.
#[tokio::test]
async fn future_nbf_and_hostile_exp_values_are_refused() {
    let t = Target::new().await;
    let attacker = Attacker::new();
    let (header_b64, _, sig) = t.parts();
    let now = t.s.clock.now();
    let mut payloads: Vec<(String, Vec<u8>)> = [
        json!({"nbf": now + 3600}),
        json!({"nbf": i64::MAX}),
        json!({"exp": (now + 600).to_string()}),
        json!({"exp": -1}),
        json!({"exp": i64::MIN}),
        json!({"exp": i64::MAX}),
        json!({"exp": u64::MAX}),
        json!({"exp": (now + 600) as f64 + 0.5}),
        json!({"exp": null}),
        json!({"exp": true}),
        json!({"iat": i64::MIN}),
        json!({"iat": "now"}),
    ]
    .into_iter()
    .map(|change| {
        let text = serde_json::to_vec(&t.claims_with(change.clone())).expect("json");
        (change.to_string(), text)
    })
    .collect();
    // Numbers serde_json will not write: patched into the text.
    let text = serde_json::to_string(&t.claims).expect("json");
    let exp = t.claims["exp"].to_string();
    for replacement in [
        "1e309",
        "-1e309",
        "99999999999999999999999999",
        "1.7e308",
        "0x7fffffff",
    ] {
        let patched = text.replace(&format!("\"exp\":{exp}"), &format!("\"exp\":{replacement}"));
        assert_ne!(patched, text);
        payloads.push((format!("exp {replacement}"), patched.into_bytes()));
    }
    let header = serde_json::to_vec(&t.header).expect("json");
    for (what, payload) in payloads {
        let token = attacker.sign_raw(&header, &payload);
        assert_refused(&t.s, &token, &format!("attacker-signed {what}")).await;
        let kept = format!("{header_b64}.{}.{sig}", b64(&payload));
        assert_refused(&t.s, &kept, &format!("genuine signature, {what}")).await;
    }
    t.still_serving().await;
}

/// One bit flipped at every byte position of the signature, one at a
/// time (bit `i % 8` of byte `i`, so every bit position is used too).
#[tokio::test]
async fn every_single_bit_flip_in_the_signature_is_refused() {
    let t = Target::new().await;
    let (h, p, _) = t.parts();
    let sig = signature_bytes(&t.tokens.access);
    assert_eq!(sig.len(), 64);
    for i in 0..sig.len() {
        let mut flipped = sig.clone();
        flipped[i] ^= 1 << (i % 8);
        assert_refused(
            &t.s,
            &assemble(&h, &p, &flipped),
            &format!("bit flip at byte {i}"),
        )
        .await;
    }
    // Truncated, extended, empty.
    for (what, bad) in [
        ("truncated", sig[..63].to_vec()),
        ("extended", [sig.as_slice(), &[0]].concat()),
        ("doubled", [sig.as_slice(), sig.as_slice()].concat()),
        ("empty", Vec::new()),
    ] {
        assert_refused(&t.s, &assemble(&h, &p, &bad), what).await;
    }
    t.still_serving().await;
}

/// base64url has slack bits in the last character: 64 bytes take 86
/// characters and the last one carries only 2 data bits. A lenient
/// decoder would accept 15 other spellings of the same signature.
#[tokio::test]
async fn non_canonical_base64_spellings_are_refused() {
    let t = Target::new().await;
    let (h, p, s) = t.parts();
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let last = *s.as_bytes().last().expect("non-empty");
    let index = ALPHABET.iter().position(|&c| c == last).expect("base64url");
    assert_eq!(index & 0x0f, 0, "canonical last character");
    for other in 1..16 {
        let c = ALPHABET[(index & !0x0f) | other] as char;
        let token = format!("{h}.{p}.{}{c}", &s[..s.len() - 1]);
        assert_refused(&t.s, &token, &format!("signature ending in {c}")).await;
    }
    // The same for the header and payload segments, when they have slack.
    for (which, seg) in [("header", &h), ("payload", &p)] {
        if seg.len() % 4 == 0 {
            continue;
        }
        let slack = if seg.len() % 4 == 2 { 0x0f } else { 0x03 };
        let last = *seg.as_bytes().last().expect("non-empty");
        let index = ALPHABET.iter().position(|&c| c == last).expect("base64url");
        for other in 1..=slack {
            let c = ALPHABET[(index & !slack) | other] as char;
            let changed = format!("{}{c}", &seg[..seg.len() - 1]);
            let token = if which == "header" {
                format!("{changed}.{p}.{s}")
            } else {
                format!("{h}.{changed}.{s}")
            };
            assert_refused(&t.s, &token, &format!("{which} ending in {c}")).await;
        }
    }
    t.still_serving().await;
}
/// Wrong number of segments, padding, whitespace, other alphabets.
#[tokio::test]
async fn malformed_token_shapes_are_refused() {
    let t = Target::new().await;
    let (h, p, s) = t.parts();
    let token = &t.tokens.access;
    let mut cases: Vec<(String, String)> = vec![
        ("one segment".into(), h.clone()),
        ("two segments".into(), format!("{h}.{p}")),
        ("four segments".into(), format!("{token}.{s}")),
        ("four segments, empty last".into(), format!("{token}.")),
        ("five segments".into(), format!("{h}.{p}.{s}.{h}.{p}")),
        ("JWE-like".into(), format!("{h}..{p}.{s}.{s}")),
        ("leading dot".into(), format!(".{token}")),
        ("empty header".into(), format!(".{p}.{s}")),
        ("empty payload".into(), format!("{h}..{s}")),
        ("dots only".into(), "..".into()),
        ("padding on header".into(), format!("{h}==.{p}.{s}")),
        ("padding on payload".into(), format!("{h}.{p}=.{s}")),
        ("padding on signature".into(), format!("{h}.{p}.{s}==")),
        ("padding on all".into(), format!("{h}=.{p}=.{s}=")),
        (
            "space in payload".into(),
            format!("{h}.{} {}.{s}", &p[..10], &p[10..]),
        ),
        (
            "tab in signature".into(),
            format!("{h}.{p}.{}\t{}", &s[..10], &s[10..]),
        ),
        ("space after a dot".into(), format!("{h}. {p}.{s}")),
        ("percent-encoded".into(), token.replace('.', "%2E")),
        ("standard base64".into(), STANDARD.encode(token.as_bytes())),
    ];
    // Proper padding (what a standard decoder wants) on each segment.
    let pad = |seg: &str| format!("{seg}{}", "=".repeat((4 - seg.len() % 4) % 4));
    cases.push((
        "proper padding".into(),
        format!("{}.{}.{}", pad(&h), pad(&p), pad(&s)),
    ));
    // The standard alphabet where base64url differs.
    let std_alphabet = token.replace('-', "+").replace('_', "/");
    if std_alphabet != *token {
        cases.push(("standard alphabet".into(), std_alphabet));
    }
    for (what, bad) in cases {
        assert_refused(&t.s, &bad, &what).await;
    }
    t.still_serving().await;
}

/// Duplicate keys: a parser that takes the last value would see `none`
/// (or another subject) while the signature check saw the first. Sent
/// with the genuine signature kept and attacker-signed.
#[tokio::test]
async fn duplicate_json_keys_are_refused() {
    let t = Target::new().await;
    let attacker = Attacker::new();
    let (h, p, s) = t.parts();
    let kid = &t.kid;
    let headers = [
        format!(r#"{{"alg":"EdDSA","alg":"none","typ":"at+jwt","kid":"{kid}"}}"#),
        format!(r#"{{"alg":"none","alg":"EdDSA","typ":"at+jwt","kid":"{kid}"}}"#),
        format!(r#"{{"alg":"EdDSA","alg":"EdDSA","typ":"at+jwt","kid":"{kid}"}}"#),
        format!(
            r#"{{"alg":"EdDSA","typ":"at+jwt","kid":"{kid}","kid":"{}"}}"#,
            Attacker::KID
        ),
        format!(
            r#"{{"alg":"EdDSA","typ":"at+jwt","kid":"{}","kid":"{kid}"}}"#,
            Attacker::KID
        ),
    ];
    let claims_text = String::from_utf8(URL_SAFE_NO_PAD.decode(&p).expect("b64")).expect("utf8");
    for header in &headers {
        let kept = format!("{}.{p}.{s}", b64(header.as_bytes()));
        assert_refused(&t.s, &kept, &format!("genuine signature, header {header}")).await;
        let forged = attacker.sign_raw(header.as_bytes(), claims_text.as_bytes());
        assert_refused(&t.s, &forged, &format!("attacker-signed, header {header}")).await;
    }
    let body = claims_text.strip_prefix('{').expect("object");
    for dup in [
        r#""sub":"00000000-0000-0000-0000-000000000000","#.to_owned(),
        r#""aud":"evil","#.to_owned(),
        format!(r#""exp":{},"#, i64::MAX),
        r#""roles":["admin"],"#.to_owned(),
    ] {
        // First occurrence is the injected one...
        let first = format!("{{{dup}{body}");
        // ...or the last one.
        let last = format!(
            "{}, {}}}",
            &claims_text[..claims_text.len() - 1],
            dup.trim_end_matches(',')
        );
        for claims in [first, last] {
            let kept = format!("{h}.{}.{s}", b64(claims.as_bytes()));
            assert_refused(&t.s, &kept, &format!("genuine signature, claims {claims}")).await;
            let forged = attacker.sign_raw(
                &serde_json::to_vec(&t.header).expect("json"),
                claims.as_bytes(),
            );
            assert_refused(&t.s, &forged, &format!("attacker-signed, claims {claims}")).await;
        }
    }
    t.still_serving().await;
}

/// `crit` naming anything (RFC 7515 §4.1.11: unknown critical extensions
/// must be refused).
#[tokio::test]
async fn unknown_crit_is_refused() {
    let t = Target::new().await;
    let attacker = Attacker::new();
    let (_, p, s) = t.parts();
    for crit in [
        json!({"crit": ["exp"]}),
        json!({"crit": ["b64"], "b64": false}),
        json!({"crit": ["x-unknown"], "x-unknown": 1}),
        json!({"crit": []}),
        json!({"crit": "alg"}),
    ] {
        let header = t.header_with(crit.clone());
        let kept = format!("{}.{p}.{s}", b64_json(&header));
        assert_refused(&t.s, &kept, &format!("genuine signature, {crit}")).await;
        for kid in [json!(t.kid), json!(Attacker::KID)] {
            let token = attacker.sign(&merge(&header, json!({"kid": kid})), &t.claims);
            assert_refused(&t.s, &token, &format!("attacker-signed, {crit}")).await;
        }
    }
    t.still_serving().await;
}

/// A cancelled token stays refused however it is re-encoded: claims
/// re-serialised (other key order, whitespace) with the original signature
/// kept, and the very same bytes followed by junk.
#[tokio::test]
async fn cancelled_token_stays_refused_in_any_encoding() {
    let t = Target::new().await;
    let (h, p, s) = t.parts();
    let r =
        t.s.http
            .post(t.s.url("/v1/tokens/cancel"))
            .bearer_auth(&t.tokens.access)
            .send()
            .await
            .expect("request");
    assert_eq!(r.status(), 204);
    let token = &t.tokens.access;
    assert_refused(&t.s, token, "cancelled token").await;

    let claims_text = String::from_utf8(URL_SAFE_NO_PAD.decode(&p).expect("b64")).expect("utf8");
    // Reverse key order by hand (serde_json's map sorts keys).
    let obj = t.claims.as_object().expect("object");
    let reversed = format!(
        "{{{}}}",
        obj.iter()
            .rev()
            .map(|(k, v)| format!("{}:{v}", Value::String(k.clone())))
            .collect::<Vec<_>>()
            .join(",")
    );
    let reencodings = [
        (
            "pretty",
            serde_json::to_string_pretty(&t.claims).expect("json"),
        ),
        ("reversed keys", reversed),
        ("leading space", format!(" {claims_text}")),
        ("trailing newline", format!("{claims_text}\n")),
        (
            "escaped character",
            claims_text.replacen("latchkey", "l\\u0061tchkey", 1),
        ),
    ];
    for (what, text) in reencodings {
        assert_ne!(text, claims_text);
        let forged = format!("{h}.{}.{s}", b64(text.as_bytes()));
        assert_refused(&t.s, &forged, &format!("cancelled token, claims {what}")).await;
    }
    let header_text = String::from_utf8(URL_SAFE_NO_PAD.decode(&h).expect("b64")).expect("utf8");
    let forged = format!("{}.{p}.{s}", b64(format!(" {header_text}").as_bytes()));
    assert_refused(&t.s, &forged, "cancelled token, header re-encoded").await;
    for junk in [".x", ".", "..", &format!(".{s}"), "=", " x"] {
        let forged = format!("{token}{junk}");
        assert_refused(&t.s, &forged, &format!("cancelled token + {junk:?}")).await;
    }
    // Its session is otherwise alive: the refresh token still works.
    assert_eq!(t.s.refresh(&t.tokens.refresh).await.status(), 200);
}

/// CVE-2022-21449 ("psychic signatures"): with ES256 keys, a signature of
/// r = s = 0 (and its relatives) must not verify.
#[tokio::test]
async fn ecdsa_degenerate_signatures_are_refused() {
    let s = TestServer::start_with(|settings| {
        settings.policy.signing_algorithm = Algorithm::Es256;
    })
    .await;
    let t = Target::on(s).await;
    assert_eq!(t.header["alg"], "ES256");
    assert_eq!(t.jwk["kty"], "EC");
    let (h, p, _) = t.parts();
    let sig = signature_bytes(&t.tokens.access);
    assert_eq!(sig.len(), 64);
    let n = hex::decode("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551")
        .expect("hex");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("r = s = 0", vec![0u8; 64]),
        ("r = s = n", [n.as_slice(), n.as_slice()].concat()),
        ("r = 0, genuine s", [&[0u8; 32][..], &sig[32..]].concat()),
        ("genuine r, s = 0", [&sig[..32], &[0u8; 32][..]].concat()),
        (
            "r = s = 0, DER",
            hex::decode("3006020100020100").expect("hex"),
        ),
        ("32 zero bytes", vec![0u8; 32]),
        ("empty", Vec::new()),
    ];
    for (what, bad) in cases {
        assert_refused(&t.s, &assemble(&h, &p, &bad), what).await;
    }
    for i in [0, 31, 32, 63] {
        let mut flipped = sig.clone();
        flipped[i] ^= 0x80;
        assert_refused(
            &t.s,
            &assemble(&h, &p, &flipped),
            &format!("ES256 flip {i}"),
        )
        .await;
    }
    t.still_serving().await;
}

/// Sends raw HTTP/1.1 bytes; returns the status (0 if the server closed
/// without answering) and the response text.
async fn raw_http(s: &TestServer, head: &str) -> (u16, String) {
    let addr = s.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut rd, mut wr) = stream.split();
    let write = async {
        // The server may answer and close before reading everything.
        let _ = wr.write_all(head.as_bytes()).await;
    };
    let read = async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        while let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_secs(10), rd.read(&mut chunk)).await
        {
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        buf
    };
    let ((), buf) = tokio::join!(write, read);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn me_request(s: &TestServer, headers: &[String]) -> String {
    let host = s.base.trim_start_matches("http://");
    let mut req = format!("GET /v1/me HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    req
}

/// Authorization header variants.
#[tokio::test]
async fn authorization_header_variants() {
    let t = Target::new().await;
    let token = &t.tokens.access;
    let status_with = |value: String| {
        let req =
            t.s.http
                .get(t.s.url("/v1/me"))
                .header("authorization", value);
        async move {
            let r = req.send().await.expect("request");
            let status = r.status().as_u16();
            let v: Value = r.json().await.unwrap_or(Value::Null);
            assert!(status < 500, "server error {status}: {v}");
            (status, v["error"].as_str().unwrap_or_default().to_owned())
        }
    };
    let refused = (401, "invalid_token".to_owned());
    // Refused.
    for value in [
        format!("Bearer Bearer {token}"),
        format!("Bearer {token} {token}"),
        format!("Bearer {token},{token}"),
        format!("Basic {}", STANDARD.encode("alice:correct horse battery")),
        format!("Basic {token}"),
        format!("Token {token}"),
        format!("Bearer:{token}"),
        format!("Bearer\t{token}"),
        token.clone(),
        "Bearer".into(),
        "Bearer ".into(),
        "Bearer    ".into(),
        String::new(),
    ] {
        assert_eq!(status_with(value.clone()).await, refused, "{value:.80}");
    }
    // Accepted: the scheme is case-insensitive (RFC 9110 §11.1) and
    // surrounding whitespace is not part of the token.
    for value in [
        format!("bearer {token}"),
        format!("BEARER {token}"),
        format!("Bearer {token}   "),
        format!("Bearer  {token}"),
    ] {
        assert_eq!(status_with(value.clone()).await.0, 200, "{value:.80}");
    }

    // Two Authorization headers: ambiguous, refused even if both are valid.
    for pair in [
        [format!("Bearer {token}"), format!("Bearer {token}")],
        [format!("Bearer {token}"), "Bearer junk".to_owned()],
        ["Bearer junk".to_owned(), format!("Bearer {token}")],
        [format!("Bearer {token}"), "Basic YTpi".to_owned()],
    ] {
        let headers = [
            format!("Authorization: {}", pair[0]),
            format!("Authorization: {}", pair[1]),
        ];
        let (status, text) = raw_http(&t.s, &me_request(&t.s, &headers)).await;
        assert_eq!(
            status, 401,
            "two Authorization headers {pair:?}: {text:.300}"
        );
        assert!(text.contains("invalid_token"), "{text:.300}");
    }
    // Non-UTF-8 / obs-text bytes in the header.
    let (status, text) = raw_http(
        &t.s,
        &me_request(&t.s, &[format!("Authorization: Bearer {token}\u{e9}")]),
    )
    .await;
    assert_eq!(status, 401, "{text:.300}");

    // 100 KB Authorization header, and a 100 KB other header next to a
    // valid token: any of 431/400/401, never 5xx or a dropped connection.
    let huge = "A".repeat(100 * 1024);
    let (status, text) = raw_http(
        &t.s,
        &me_request(&t.s, &[format!("Authorization: Bearer {huge}")]),
    )
    .await;
    eprintln!("100 KB Authorization header: {status}");
    assert!(
        [400, 401, 431].contains(&status),
        "100 KB Authorization header: {status} {text:.300}"
    );
    let (status, text) = raw_http(
        &t.s,
        &me_request(
            &t.s,
            &[
                format!("Authorization: Bearer {token}"),
                format!("X-Junk: {huge}"),
            ],
        ),
    )
    .await;
    eprintln!("100 KB X-Junk header with a valid token: {status}");
    assert!(
        [200, 400, 431].contains(&status),
        "100 KB junk header: {status} {text:.300}"
    );
    t.still_serving().await;
}

/// A confidential client registered under a user's id (a UUID) gets a
/// client-credentials token. Its subject is `client:<id>`, never the user's,
/// and every `/v1` user endpoint refuses it with 401 `invalid_token`
/// (before it would be the user's `/v1/me`). Cancelling itself still works:
/// that touches only the presented token.
#[tokio::test]
async fn client_named_like_a_user_never_acts_as_that_user() {
    use latchkey_core::client::{generate_secret, ClientKind};

    let mut s = TestServer::start().await;
    let alice = s.new_session("alice").await;
    let me: Value = s
        .get_bearer("/v1/me", &alice.access)
        .await
        .json()
        .await
        .expect("json");
    let alice_id = me["id"].as_str().expect("id").to_owned();
    let alice_sid = segment_json(&split(&alice.access).1)["sid"]
        .as_str()
        .expect("sid")
        .to_owned();

    let (secret, hash) = generate_secret().expect("rng");
    s.settings.clients.push(Client {
        kind: ClientKind::Confidential,
        secret_hash: Some(hash),
        ..Client::default_public(&alice_id)
    });
    let s = s.restart().await;
    let r = s
        .http
        .post(s.url("/oauth/token"))
        .basic_auth(&alice_id, Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token");
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.expect("json");
    let token = t["access_token"].as_str().expect("at").to_owned();
    let claims = segment_json(&split(&token).1);
    assert_eq!(claims["sub"], format!("client:{alice_id}").as_str());
    assert_eq!(claims["aud"], AUDIENCE, "a token for our own API");
    assert!(claims.get("sid").is_none());

    let refused = |what: &'static str, r: reqwest::Response| async move {
        let status = r.status().as_u16();
        let challenge = r
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body: Value = r.json().await.expect("json");
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_token")),
            "ATTACK ACCEPTED OR MISHANDLED: {what}: {body}"
        );
        assert!(body["error_description"].is_string(), "{what}: {body}");
        assert!(
            challenge.is_some_and(|c| c.starts_with("Bearer")),
            "{what}: no Bearer challenge"
        );
    };
    assert_refused(&s, &token, "client token on /v1/me").await;
    refused("/v1/sessions", s.get_bearer("/v1/sessions", &token).await).await;
    let http = &s.http;
    refused(
        "DELETE /v1/sessions/{alice's}",
        http.delete(s.url(&format!("/v1/sessions/{alice_sid}")))
            .bearer_auth(&token)
            .send()
            .await
            .expect("request"),
    )
    .await;
    for scope in ["current", "others", "all"] {
        refused(
            "/v1/sign-out",
            http.post(s.url("/v1/sign-out"))
                .bearer_auth(&token)
                .json(&json!({ "scope": scope }))
                .send()
                .await
                .expect("request"),
        )
        .await;
    }
    // Refused as a token before the password rules see the body.
    for new_password in ["x", "a perfectly good new passphrase"] {
        refused(
            "/v1/password",
            http.post(s.url("/v1/password"))
                .bearer_auth(&token)
                .json(&json!({"current_password": "correct horse battery",
                               "new_password": new_password}))
                .send()
                .await
                .expect("request"),
        )
        .await;
    }

    // Alice is untouched: same account, same session, same password.
    assert_accepted(&s, &alice.access, "alice after the attempts").await;
    let sessions: Value = s
        .get_bearer("/v1/sessions", &alice.access)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(sessions["sessions"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        s.sign_in("alice", "correct horse battery").await.status(),
        200
    );

    let r = http
        .post(s.url("/v1/tokens/cancel"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 204, "a client may cancel its own token");
    assert_accepted(&s, &alice.access, "alice after the client's cancel").await;
}

/// The attacker's cryptography: SHA-256, HMAC-SHA256, SHA-512 and Ed25519
/// signing from aws-lc-rs (attackers bring their own libraries). Each is
/// checked against its RFC test vector in `attacker_crypto_matches_rfc_vectors`.
mod forge {
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
    use aws_lc_rs::{digest, hmac};

    pub fn sha256(msg: &[u8]) -> [u8; 32] {
        digest::digest(&digest::SHA256, msg)
            .as_ref()
            .try_into()
            .expect("32 bytes")
    }

    pub fn sha512(msg: &[u8]) -> [u8; 64] {
        digest::digest(&digest::SHA512, msg)
            .as_ref()
            .try_into()
            .expect("64 bytes")
    }

    pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
        hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), msg)
            .as_ref()
            .try_into()
            .expect("32 bytes")
    }

    /// An Ed25519 key pair from a 32-byte seed (RFC 8032 §5.1.5).
    pub struct Ed25519 {
        pair: Ed25519KeyPair,
        pub public: [u8; 32],
    }

    impl Ed25519 {
        pub fn from_seed(seed: &[u8; 32]) -> Self {
            let pair = Ed25519KeyPair::from_seed_unchecked(seed).expect("Ed25519 seed");
            let public = pair.public_key().as_ref().try_into().expect("32 bytes");
            Self { pair, public }
        }

        /// RFC 8032 §5.1.6.
        pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
            self.pair.sign(msg).as_ref().try_into().expect("64 bytes")
        }
    }
}
