//! Microbenchmarks of the operations on every hot path, so regressions show:
//! minting an access token, decoding and checking a refresh token, verifying
//! an access token (first and repeated sight). `cargo bench -p latchkey-core`.

use latchkey_core::access_token::{
    self, AccessClaims, Algorithm, Audience, Expectations, SigningKey, VerifyingKeys,
};
use latchkey_core::keys::generate_pkcs8;
use latchkey_core::password::{Argon2Cost, Argon2Hashing, Argon2Memory, Password};
use latchkey_core::refresh_token::RefreshTokenCodec;
use latchkey_core::secret::ServerSecret;
use uuid::Uuid;

fn main() {
    divan::main();
}

const NOW: i64 = 1_800_000_000;

fn claims() -> AccessClaims {
    AccessClaims {
        iss: "http://127.0.0.1:8080".into(),
        sub: Uuid::new_v4().to_string(),
        aud: Audience::One("latchkey".into()),
        exp: NOW + 600,
        iat: NOW,
        nbf: None,
        jti: Uuid::new_v4().simple().to_string(),
        client_id: "default".into(),
        sid: Some(Uuid::new_v4().to_string()),
        scope: None,
        roles: Vec::new(),
    }
}

fn key(alg: Algorithm) -> SigningKey {
    let pkcs8 = generate_pkcs8(alg).expect("keygen");
    SigningKey::from_pkcs8("bench", alg, &pkcs8).expect("key")
}

#[divan::bench(args = [Algorithm::EdDsa, Algorithm::Es256, Algorithm::Rs256])]
fn mint_access_token(bencher: divan::Bencher, alg: Algorithm) {
    let key = key(alg);
    let claims = claims();
    bencher.bench(|| key.sign(divan::black_box(&claims)));
}

fn expectations() -> Expectations {
    Expectations {
        issuer: "http://127.0.0.1:8080".into(),
        audience: Some("latchkey".into()),
        leeway: 30,
    }
}

fn verifying_keys(key: &SigningKey) -> VerifyingKeys {
    let mut keys = VerifyingKeys::default();
    keys.insert(key.kid(), key.alg(), key.public_key())
        .expect("insert");
    keys
}

/// A token the key set has not seen: the signature is checked (a fresh
/// key set for every run, built outside the timing).
#[divan::bench(args = [Algorithm::EdDsa, Algorithm::Es256, Algorithm::Rs256])]
fn verify_access_token(bencher: divan::Bencher, alg: Algorithm) {
    let key = key(alg);
    let token = key.sign(&claims());
    let expect = expectations();
    bencher
        .with_inputs(|| verifying_keys(&key))
        .bench_local_refs(|keys| {
            access_token::verify(divan::black_box(&token), keys, &expect, NOW)
        });
}

/// The same token again, as a client sends it with every call: the key set
/// remembers its signature was checked.
#[divan::bench(args = [Algorithm::EdDsa, Algorithm::Es256, Algorithm::Rs256])]
fn verify_access_token_again(bencher: divan::Bencher, alg: Algorithm) {
    let key = key(alg);
    let token = key.sign(&claims());
    let keys = verifying_keys(&key);
    let expect = expectations();
    bencher.bench(|| access_token::verify(divan::black_box(&token), &keys, &expect, NOW));
}

#[divan::bench]
fn refresh_token_encode(bencher: divan::Bencher) {
    let codec = RefreshTokenCodec::new(&ServerSecret::generate().expect("rng")).expect("codec");
    let sid = Uuid::new_v4();
    bencher.bench(|| codec.encode(divan::black_box(sid), 42));
}

#[divan::bench]
fn refresh_token_decode_and_mac(bencher: divan::Bencher) {
    let codec = RefreshTokenCodec::new(&ServerSecret::generate().expect("rng")).expect("codec");
    let token = codec.encode(Uuid::new_v4(), 42);
    bencher.bench(|| codec.decode(divan::black_box(&token)));
}

/// What a sign-in spends on the password: one Argon2id verification at the
/// default cost, in reused memory as the hashing threads do. The yardstick
/// for the server's CPU per sign-in.
#[divan::bench(sample_count = 30)]
fn argon2id_verify_default_cost(bencher: divan::Bencher) {
    let hashing = Argon2Hashing::new(Argon2Cost::default()).expect("hashing");
    let password = Password::for_check("correct horse battery staple").expect("password");
    let phc = hashing.hash(&password).expect("hash");
    let mut memory = Argon2Memory::default();
    bencher.bench_local(|| hashing.verify_in(&password, Some(&phc), &mut memory));
}
