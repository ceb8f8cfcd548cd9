//! End to end against the real `latchkey` server (in-process, 127.0.0.1:0,
//! SQLite in a temporary directory): its JWKS and its revocation feed, which
//! it serves to confidential clients only.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::issuer::wait_until;
use latchkey_core::client::{generate_secret, Client, ClientKind};
use latchkey_core::clock::SystemClock;
use latchkey_server::{RunningServer, Settings};
use latchkey_verify::{FailMode, Options, TokenError, Verifier, VerifyError};
use serde_json::{json, Value};

const ISSUER: &str = "http://latchkey.test";
const AUDIENCE: &str = "latchkey";

/// The confidential client the verifiers authenticate as.
const RS: &str = "resource-server";

/// The real server in-process, SQLite in `dir`, with the confidential
/// client [`RS`] whose secret is `rs_secret`.
fn settings(dir: &tempfile::TempDir, rs_secret_hash: &[u8]) -> Settings {
    // The kit's settings: cheap hashing (these tests are about tokens, not
    // passwords) and the issuer [`ISSUER`].
    let mut settings = latchkey_testkit::test_settings(dir.path().join("data"));
    settings.policy.issuer = ISSUER.into();
    settings.policy.audience = AUDIENCE.into();
    settings.clients.push(Client {
        kind: ClientKind::Confidential,
        secret_hash: Some(rs_secret_hash.to_vec()),
        ..Client::default_public(RS)
    });
    settings
}

/// The real server on 127.0.0.1:0; returns it, its base URL, its settings
/// (to restart it on the same address) and the [`RS`] client's secret.
async fn start_server(dir: &tempfile::TempDir) -> (RunningServer, String, Settings, String) {
    let (secret, hash) = generate_secret().expect("rng");
    let mut settings = settings(dir, &hash);
    let server = RunningServer::start(settings.clone(), Arc::new(SystemClock))
        .await
        .expect("server starts");
    settings.listen = server.addr;
    let base = format!("http://{}", server.addr);
    (server, base, settings, secret)
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
    let (server, base, _, secret) = start_server(&dir).await;
    let http = reqwest::Client::new();

    let verifier = Verifier::with_options(
        &base,
        AUDIENCE,
        Options::default()
            .expected_issuer(ISSUER)
            .client_credentials(RS, &secret)
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
            Err(VerifyError::Token(TokenError::Revoked))
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
            Err(VerifyError::Token(TokenError::Revoked))
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

/// An ID token from the server's ID-token key (RS256, published in the
/// JWKS, header `typ: JWT`) carrying an access token's very claims: the
/// verifier knows its key and still refuses it, as the server's own API
/// does. An ID token is never an access token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_token_is_refused_as_an_access_token() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;

    let dir = tempfile::tempdir().expect("tempdir");
    let (server, base, _, _) = start_server(&dir).await;
    let http = reqwest::Client::new();
    let id_key = server.id_token_key().await.expect("ID-token key");
    let verifier = Verifier::with_options(
        &base,
        AUDIENCE,
        Options::default()
            .expected_issuer(ISSUER)
            .follow_feed(false),
    )
    .await
    .expect("verifier");
    assert!(verifier.key_ids().contains(&id_key.kid().to_owned()));

    let alice = sign_in(&http, &base, "alice").await;
    let access = alice["access_token"].as_str().expect("access_token");
    verifier.verify(access).expect("the access token verifies");
    let payload = access.split('.').nth(1).expect("payload");
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("json");
    let id_token = id_key.sign_jwt(&claims);
    assert!(matches!(
        verifier.verify(&id_token),
        Err(VerifyError::Token(TokenError::UnsupportedHeader))
    ));
    let r = http
        .get(format!("{base}/v1/me"))
        .bearer_auth(&id_token)
        .send()
        .await
        .expect("me");
    assert_eq!(r.status(), 401);
    server.stop().await;
}

/// Issue 3's promise, measured: after `sign-out`, a resource server built on
/// this crate rejects that session's unexpired access token within 2 s.
/// 100 trials; run with `--nocapture` to see median and max.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_out_reaches_the_verifier_within_two_seconds() {
    const TRIALS: usize = 100;
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, base, _, secret) = start_server(&dir).await;
    let http = reqwest::Client::new();
    let verifier = Verifier::with_options(
        &base,
        AUDIENCE,
        Options::default()
            .expected_issuer(ISSUER)
            .client_credentials(RS, &secret),
    )
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
            if matches!(
                verifier.verify(access),
                Err(VerifyError::Token(TokenError::Revoked))
            ) {
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

/// Without the credentials of a confidential client the real server does
/// not serve the feed: the verifier starts (the JWKS is public) but never
/// gets revocation data; with them it does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_needs_client_credentials() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, base, _, secret) = start_server(&dir).await;
    let options = || {
        Options::default()
            .expected_issuer(ISSUER)
            .feed_wait(Duration::from_secs(1))
            .feed_backoff(Duration::from_millis(50), Duration::from_millis(200))
    };
    for (what, opts) in [
        ("no credentials", options()),
        (
            "wrong secret",
            options().client_credentials(RS, "not-the-secret"),
        ),
        (
            "a public client",
            options().client_credentials("default", "x"),
        ),
    ] {
        let v = Verifier::with_options(&base, AUDIENCE, opts)
            .await
            .expect("the JWKS needs no credentials");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(v.feed_last_success().is_none(), "{what}: feed served");
    }
    let v = Verifier::with_options(&base, AUDIENCE, options().client_credentials(RS, &secret))
        .await
        .expect("verifier");
    assert!(v.feed_last_success().is_some(), "credentials accepted");
    let debug = format!("{:?} {:?}", options().client_credentials(RS, &secret), v);
    assert!(!debug.contains(&secret), "the secret shows in Debug output");
    server.stop().await;
}

/// Fail-open by default, but not for ever: with the real server gone, a
/// valid token is still accepted at first, then refused with `FeedStale`
/// once the revocation data is older than `max_staleness`; when the server
/// is back the verifier catches up (a sign-out made after the restart
/// reaches it) and accepts tokens again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_revocation_data_fails_closed_until_the_feed_is_back() {
    const MAX_STALENESS: Duration = Duration::from_secs(3);
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, base, settings, secret) = start_server(&dir).await;
    let http = reqwest::Client::new();
    let verifier = Verifier::with_options(
        &base,
        AUDIENCE,
        Options::default()
            .expected_issuer(ISSUER)
            .client_credentials(RS, &secret)
            .feed_wait(Duration::from_secs(1))
            .max_staleness(MAX_STALENESS)
            .feed_backoff(Duration::from_millis(50), Duration::from_millis(200))
            .http_timeout(Duration::from_secs(2)),
    )
    .await
    .expect("verifier");
    let kept = sign_in(&http, &base, "kept").await;
    let kept = kept["access_token"].as_str().expect("access_token");
    let ended = sign_in(&http, &base, "ended").await;
    let ended = ended["access_token"].as_str().expect("access_token");
    assert!(verifier.verify(kept).is_ok());

    server.stop().await;
    let stopped = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        verifier.verify(kept).is_ok(),
        "fail-open while the data is younger than max_staleness"
    );
    assert!(
        wait_until(MAX_STALENESS * 3, || matches!(
            verifier.verify(kept),
            Err(VerifyError::FeedStale)
        ))
        .await,
        "still accepting {:?} after the server stopped",
        stopped.elapsed()
    );
    assert!(verifier.feed_is_stale());
    assert!(
        verifier
            .feed_last_success()
            .is_some_and(|age| age > MAX_STALENESS),
        "refused before max_staleness"
    );

    let server = RunningServer::start(settings, Arc::new(SystemClock))
        .await
        .expect("server restarts on the same address");
    assert!(
        wait_until(Duration::from_secs(10), || verifier.verify(kept).is_ok()).await,
        "no recovery after the server came back"
    );
    let r = http
        .post(format!("{base}/v1/sign-out"))
        .bearer_auth(ended)
        .send()
        .await
        .expect("sign-out");
    assert_eq!(r.status(), 204);
    assert!(
        wait_until(Duration::from_secs(5), || matches!(
            verifier.verify(ended),
            Err(VerifyError::Token(TokenError::Revoked))
        ))
        .await,
        "a sign-out after the restart did not reach the verifier"
    );

    // Fail-closed refuses from the first failed request, and recovers too.
    let closed = Verifier::with_options(
        &base,
        AUDIENCE,
        Options::default()
            .expected_issuer(ISSUER)
            .client_credentials(RS, &secret)
            .feed_wait(Duration::from_secs(1))
            .max_staleness(MAX_STALENESS)
            .feed_backoff(Duration::from_millis(50), Duration::from_millis(200))
            .fail_mode(FailMode::Closed),
    )
    .await
    .expect("verifier");
    assert!(closed.verify(kept).is_ok());
    server.stop().await;
    assert!(
        wait_until(Duration::from_secs(3), || matches!(
            closed.verify(kept),
            Err(VerifyError::FeedStale)
        ))
        .await
    );
    assert!(!closed.feed_is_stale(), "refused before max_staleness");
}
