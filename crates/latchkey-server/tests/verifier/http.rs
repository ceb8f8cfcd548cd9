//! The axum extractor and the tower layer, served on 127.0.0.1:0.

use std::sync::Arc;
use std::time::Duration;

use crate::issuer::{key, now, token, wait_until, FeedMode, Issuer, AUDIENCE};
use axum::extract::{Extension, FromRef};
use axum::routing::get;
use axum::Router;
use latchkey_verify::{AccessClaims, Claims, Options, RequireBearer, Verifier};
use serde_json::Value;

#[derive(Clone)]
struct AppState {
    verifier: Arc<Verifier>,
}

impl FromRef<AppState> for Arc<Verifier> {
    fn from_ref(s: &AppState) -> Self {
        Arc::clone(&s.verifier)
    }
}

async fn by_extractor(claims: Claims) -> String {
    claims.sub.clone()
}

async fn by_layer(Extension(claims): Extension<AccessClaims>) -> String {
    claims.sub
}

async fn serve(verifier: Arc<Verifier>) -> String {
    let app = Router::new()
        .route("/extractor", get(by_extractor))
        .with_state(AppState {
            verifier: Arc::clone(&verifier),
        })
        .merge(
            Router::new()
                .route("/layer", get(by_layer))
                .layer(RequireBearer::new(verifier)),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

struct Answer {
    status: u16,
    challenge: Option<String>,
    body: Value,
    text: String,
}

async fn get_with(client: &reqwest::Client, url: &str, auth: Option<&str>) -> Answer {
    let mut request = client.get(url);
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = response.text().await.expect("body");
    Answer {
        status,
        challenge,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extractor_and_layer_accept_and_refuse_alike() {
    let k1 = key("k1");
    let issuer = Issuer::start(&[&k1]).await;
    let verifier = Arc::new(
        Verifier::with_options(
            &issuer.base,
            AUDIENCE,
            Options::default().feed_wait(Duration::from_secs(1)),
        )
        .await
        .expect("verifier"),
    );
    let api = serve(Arc::clone(&verifier)).await;
    let client = reqwest::Client::new();
    let good = token(&k1, &issuer.base, "s1", "j1");
    let revoked = token(&k1, &issuer.base, "s2", "j2");
    let expired = k1.sign(&crate::issuer::claims(
        &issuer.base,
        now() - 3600,
        "s1",
        "j1",
    ));
    issuer.revoke("sid", "s2", now() + 600);
    assert!(wait_until(Duration::from_secs(3), || verifier.revocation_count() == 1).await);

    for path in ["/extractor", "/layer"] {
        let url = format!("{api}{path}");

        let ok = get_with(&client, &url, Some(&format!("Bearer {good}"))).await;
        assert_eq!((ok.status, ok.text.as_str()), (200, "user-s1"), "{path}");
        // The scheme is case-insensitive (RFC 7235).
        let ok = get_with(&client, &url, Some(&format!("bearer {good}"))).await;
        assert_eq!(ok.status, 200, "{path}");

        // No credentials: a bare challenge, no error code (RFC 6750 §3.1).
        for auth in [None, Some("Basic dXNlcjpwYXNz")] {
            let a = get_with(&client, &url, auth).await;
            assert_eq!(a.status, 401, "{path} {auth:?}");
            assert_eq!(a.challenge.as_deref(), Some("Bearer"), "{path} {auth:?}");
            assert_eq!(a.body["error"], "invalid_token");
        }

        for (bad, why) in [
            // The issuer's words: expiry told apart, every other reason one.
            (format!("Bearer {expired}"), "the access token expired"),
            (
                format!("Bearer {revoked}"),
                "the access token is invalid or revoked",
            ),
            (
                "Bearer not-a-token".to_owned(),
                "the access token is invalid or revoked",
            ),
            (
                "Bearer ".to_owned() + &good[..good.len() - 2],
                "the access token is invalid or revoked",
            ),
        ] {
            let a = get_with(&client, &url, Some(&bad)).await;
            assert_eq!(a.status, 401, "{path} {why}");
            assert_eq!(
                a.challenge.unwrap_or_default(),
                format!(r#"Bearer error="invalid_token", error_description="{why}""#),
                "{path}"
            );
            assert_eq!(a.body["error"], "invalid_token", "{path}");
            assert_eq!(a.body["error_description"], why, "{path}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_revocation_data_is_503_not_401() {
    let k1 = key("k1");
    let issuer = Issuer::start(&[&k1]).await;
    let verifier = Arc::new(
        Verifier::with_options(
            &issuer.base,
            AUDIENCE,
            Options::default()
                .feed_wait(Duration::from_secs(1))
                .max_staleness(Duration::from_millis(1500))
                .feed_backoff(Duration::from_millis(50), Duration::from_millis(200)),
        )
        .await
        .expect("verifier"),
    );
    let api = serve(Arc::clone(&verifier)).await;
    let client = reqwest::Client::new();
    let good = format!("Bearer {}", token(&k1, &issuer.base, "s1", "j1"));
    issuer.set_feed(FeedMode::Down);
    assert!(wait_until(Duration::from_secs(5), || verifier.feed_is_stale()).await);
    for path in ["/extractor", "/layer"] {
        let a = get_with(&client, &format!("{api}{path}"), Some(&good)).await;
        assert_eq!(a.status, 503, "{path}");
        assert_eq!(a.challenge, None);
        assert_eq!(a.body["error"], "temporarily_unavailable");
    }
}
