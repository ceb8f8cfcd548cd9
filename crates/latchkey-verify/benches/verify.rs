//! Cost of accepting one access token, layer by layer:
//! (a) the bare Ed25519 check of the signing input (aws-lc-rs),
//! (b) `latchkey_wire::jws::verify` (decoding, header and claims
//!     rules around (a)) of a token the key set has not seen,
//! (c) `Verifier::verify`: (b) plus the key-set snapshot and the revocation
//!     lookups, with 10 000 entries in the set.
//! Target: (c) within 10 % of (a).
//! Then (b) and (c) again for a token already checked, as a client sends the
//! same one with every call: the key set remembers the signature was good.
//! The first-sight runs cycle through twice as many distinct tokens as a key
//! set remembers, so none of them is remembered.
//!
//! `cargo bench -p latchkey-verify`

use std::cell::Cell;
use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _, ParsedPublicKey, ED25519};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use divan::{black_box, Bencher};
use latchkey_verify::{Options, Revocation, RevocationKind, Verifier};
use latchkey_wire::jws::{self, AccessClaims, Algorithm, Audience, Expectations, VerifyingKeys};
use serde_json::json;

const ISSUER: &str = "https://auth.example.com";
const AUDIENCE: &str = "api";
const REVOKED_ENTRIES: usize = 10_000;

struct Fixture {
    token: String,
    /// Distinct tokens, more than a key set remembers.
    unseen: Vec<String>,
    signing_input: Vec<u8>,
    signature: Vec<u8>,
    public: ParsedPublicKey,
    keys: VerifyingKeys,
    expect: Expectations,
    verifier: Verifier,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("keygen");
    let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("key");
    let public_key = key.public_key().as_ref().to_vec();
    let at = now();
    // A token shaped like the server's: a session, a couple of roles.
    let claims = AccessClaims {
        iss: ISSUER.into(),
        sub: "3f1c9a52-8c1e-4a57-9d0b-6f1e2d3c4b5a".into(),
        aud: Audience::One(AUDIENCE.into()),
        exp: at + 3600,
        iat: at,
        nbf: None,
        jti: "0b9e7d6c-5a4b-4c3d-8e2f-1a0b9c8d7e6f".into(),
        client_id: "default".into(),
        sid: Some("7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d".into()),
        scope: None,
        roles: vec!["user".into(), "billing".into()],
    };
    let signing_input = |claims: &AccessClaims| {
        format!(
            "{}.{}",
            jws::encode_header(Algorithm::EdDsa, "k1").expect("header"),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims"))
        )
    };
    let sign = |input: &str| {
        let signature = key.sign(input.as_bytes()).as_ref().to_vec();
        let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&signature));
        (token, signature)
    };
    let input = signing_input(&claims);
    let (token, signature) = sign(&input);
    let unseen = (0..2 * jws::CHECKED_TOKENS_CAPACITY)
        .map(|i| {
            let claims = AccessClaims {
                jti: format!("{i:032x}"),
                ..claims.clone()
            };
            sign(&signing_input(&claims)).0
        })
        .collect();

    let mut keys = VerifyingKeys::default();
    keys.insert("k1", Algorithm::EdDsa, &public_key)
        .expect("insert");
    let jwks = json!({"keys": [{
        "kty": "OKP", "crv": "Ed25519", "kid": "k1", "alg": "EdDSA", "use": "sig",
        "x": URL_SAFE_NO_PAD.encode(&public_key),
    }]});
    let verifier = Verifier::from_jwks(&jwks.to_string(), ISSUER, AUDIENCE, Options::default())
        .expect("verifier");
    for i in 0..REVOKED_ENTRIES {
        let kind = if i % 2 == 0 {
            RevocationKind::Session
        } else {
            RevocationKind::Token
        };
        verifier.insert_revocation(&Revocation {
            kind,
            id: format!("{i:08x}-revoked-{i}"),
            expires_at: at + 3600,
        });
    }
    assert_eq!(verifier.revocation_count(), REVOKED_ENTRIES);
    assert!(verifier.verify(&token).is_ok(), "fixture token must verify");

    Fixture {
        public: ParsedPublicKey::new(&ED25519, &public_key).expect("public key"),
        signing_input: input.as_bytes().to_vec(),
        signature,
        token,
        unseen,
        keys,
        expect: Expectations {
            issuer: ISSUER.into(),
            audience: Some(AUDIENCE.into()),
            leeway: 30,
        },
        verifier,
    }
});

/// (a)
#[divan::bench(sample_count = 1000)]
fn a_raw_ed25519_verify_sig(bencher: Bencher) {
    let f = &*FIXTURE;
    bencher.bench(|| {
        f.public
            .verify_sig(black_box(&f.signing_input), black_box(&f.signature))
            .is_ok()
    });
}

/// The next of the fixture's unseen tokens, round and round.
fn next_unseen<'a>(f: &'a Fixture, turn: &Cell<usize>) -> &'a str {
    let i = turn.get();
    turn.set((i + 1) % f.unseen.len());
    &f.unseen[i]
}

/// (b)
#[divan::bench(sample_count = 1000)]
fn b_wire_access_token_verify(bencher: Bencher) {
    let f = &*FIXTURE;
    let at = now();
    let turn = Cell::new(0);
    bencher.bench_local(|| {
        jws::verify(black_box(next_unseen(f, &turn)), &f.keys, &f.expect, at).is_ok()
    });
}

/// (c)
#[divan::bench(sample_count = 1000)]
fn c_verifier_verify_10k_revoked(bencher: Bencher) {
    let f = &*FIXTURE;
    let turn = Cell::new(0);
    bencher.bench_local(|| f.verifier.verify(black_box(next_unseen(f, &turn))).is_ok());
}

/// (b), the token seen before.
#[divan::bench(sample_count = 1000)]
fn d_wire_access_token_verify_again(bencher: Bencher) {
    let f = &*FIXTURE;
    let at = now();
    bencher.bench(|| jws::verify(black_box(&f.token), &f.keys, &f.expect, at).is_ok());
}

/// (c), the token seen before.
#[divan::bench(sample_count = 1000)]
fn e_verifier_verify_again_10k_revoked(bencher: Bencher) {
    let f = &*FIXTURE;
    bencher.bench(|| f.verifier.verify(black_box(&f.token)).is_ok());
}

fn main() {
    // Build the fixture (keygen, 10 000 inserts) outside any measurement.
    LazyLock::force(&FIXTURE);
    divan::main();
}
