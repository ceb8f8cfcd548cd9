//! End to end against the real `latchkey` server (in-process, 127.0.0.1:0,
//! SQLite in a temporary directory): its JWKS and its revocation feed.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::wait_until;
use latchkey_core::clock::SystemClock;
use latchkey_core::password::Argon2Cost;
use latchkey_server::{RunningServer, Settings};
use latchkey_verify::{Options, Verifier, VerifyError};
use serde_json::{json, Value};

const ISSUER: &str = "http://latchkey.test";
const AUDIENCE: &str = "latchkey";

async fn sign_in(http: &reqwest::Client, base: &str, user: &str) -> Value {
    let creds = json!({"username": user, "password": "correct horse battery"});
    let r = http
        .post(format!("{base}/v1/sign-up"))
        .json(&creds)
        .send()
        .await
        .expect("sign-up");
    assert_eq!(r.status(), 201);
    let r = http
        .post(format!("{base}/v1/sign-in"))
        .json(&creds)
        .send()
        .await
        .expect("sign-in");
    assert_eq!(r.status(), 200);
    r.json().await.expect("token response")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_the_real_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = Settings::new(
        "127.0.0.1:0".parse().expect("addr"),
        dir.path().join("data"),
    );
    settings.policy.issuer = ISSUER.into();
    settings.policy.audience = AUDIENCE.into();
    // Cheap hashing: this test is about tokens, not passwords.
    settings.argon2 = Argon2Cost {
        memory_kib: 256,
        iterations: 1,
        parallelism: 1,
    };
    let server = RunningServer::start(settings, Arc::new(SystemClock))
        .await
        .expect("server starts");
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();

    let verifier = Verifier::with_options(
        &base,
        AUDIENCE,
        Options::default()
            .expected_issuer(ISSUER)
            .feed_wait(Duration::from_secs(2)),
    )
    .await
    .expect("verifier");
    // The current key, and possibly the next one published ahead of use.
    assert!(!verifier.key_ids().is_empty());
    assert!(verifier.feed_last_success().is_some(), "feed snapshot");

    // Cancel one access token: its jti reaches us through the feed.
    let alice = sign_in(&http, &base, "alice").await;
    let access = alice["access_token"].as_str().expect("access_token");
    let claims = verifier.verify(access).expect("fresh token verifies");
    assert!(!claims.sub.is_empty());
    let r = http
        .post(format!("{base}/v1/tokens/cancel"))
        .bearer_auth(access)
        .send()
        .await
        .expect("cancel");
    assert_eq!(r.status(), 204);
    let t0 = Instant::now();
    assert!(
        wait_until(Duration::from_secs(5), || matches!(
            verifier.verify(access),
            Err(VerifyError::Revoked)
        ))
        .await,
        "cancelled token still accepted"
    );
    let cancel_latency = t0.elapsed();

    // End a session by revoking its refresh token: its sid reaches us.
    let bob = sign_in(&http, &base, "bob").await;
    let access = bob["access_token"].as_str().expect("access_token");
    assert!(verifier.verify(access).is_ok());
    let r = http
        .post(format!("{base}/v1/tokens/revoke"))
        .json(&json!({"refresh_token": bob["refresh_token"]}))
        .send()
        .await
        .expect("revoke");
    assert_eq!(r.status(), 204);
    assert!(
        wait_until(Duration::from_secs(5), || matches!(
            verifier.verify(access),
            Err(VerifyError::Revoked)
        ))
        .await,
        "token of an ended session still accepted"
    );
    assert!(
        cancel_latency < Duration::from_secs(2),
        "revocation took {cancel_latency:?}"
    );
    server.stop().await;
}
