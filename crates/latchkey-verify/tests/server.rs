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

/// The real server in-process on 127.0.0.1:0, SQLite in `dir`.
async fn start_server(dir: &tempfile::TempDir) -> (RunningServer, String) {
    let mut settings = Settings::new(
        "127.0.0.1:0".parse().expect("addr"),
        dir.path().join("data"),
    );
    settings.policy.issuer = ISSUER.into();
    settings.policy.audience = AUDIENCE.into();
    // Cheap hashing: these tests are about tokens, not passwords.
    settings.argon2 = Argon2Cost {
        memory_kib: 256,
        iterations: 1,
        parallelism: 1,
    };
    let server = RunningServer::start(settings, Arc::new(SystemClock))
        .await
        .expect("server starts");
    let base = format!("http://{}", server.addr);
    (server, base)
}

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
    let (server, base) = start_server(&dir).await;
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

/// Issue 3's promise, measured: after `sign-out`, a resource server built on
/// this crate rejects that session's unexpired access token within 2 s.
/// 100 trials; run with `--nocapture` to see median and max.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_out_reaches_the_verifier_within_two_seconds() {
    const TRIALS: usize = 100;
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, base) = start_server(&dir).await;
    let http = reqwest::Client::new();
    let verifier =
        Verifier::with_options(&base, AUDIENCE, Options::default().expected_issuer(ISSUER))
            .await
            .expect("verifier");

    let creds = json!({"username": "propagation", "password": "correct horse battery"});
    let r = http
        .post(format!("{base}/v1/sign-up"))
        .json(&creds)
        .send()
        .await
        .expect("sign-up");
    assert_eq!(r.status(), 201);
    let mut latencies = Vec::with_capacity(TRIALS);
    for trial in 0..TRIALS {
        let t: Value = http
            .post(format!("{base}/v1/sign-in"))
            .json(&creds)
            .send()
            .await
            .expect("sign-in")
            .json()
            .await
            .expect("json");
        let access = t["access_token"].as_str().expect("access_token");
        assert!(
            verifier.verify(access).is_ok(),
            "trial {trial}: fresh token"
        );
        let r = http
            .post(format!("{base}/v1/sign-out"))
            .bearer_auth(access)
            .send()
            .await
            .expect("sign-out");
        assert_eq!(r.status(), 204);
        // Clock starts when the server acknowledged the sign-out.
        let acknowledged = Instant::now();
        // Poll every millisecond: the measurement's own resolution.
        let mut rejected = false;
        while acknowledged.elapsed() < Duration::from_secs(5) {
            if matches!(verifier.verify(access), Err(VerifyError::Revoked)) {
                rejected = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let took = acknowledged.elapsed();
        assert!(rejected, "trial {trial}: still accepted after 5 s");
        assert!(
            took < Duration::from_secs(2),
            "trial {trial}: took {took:?}"
        );
        latencies.push(took);
    }
    latencies.sort();
    eprintln!(
        "revocation propagation over {TRIALS} sign-outs: median {:?}, p90 {:?}, max {:?}",
        latencies[TRIALS / 2],
        latencies[TRIALS * 9 / 10],
        latencies[TRIALS - 1]
    );
    server.stop().await;
}
