//! The revocation feed over real HTTP: who may read it, the paginated
//! snapshot, following with `after` and long polls.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use latchkey_core::client::{generate_secret, Client, ClientKind};
use latchkey_testkit::{error_code, TestServer, Tokens};
use serde_json::{json, Value};

/// Most entries in one feed page (core's `FEED_PAGE_LIMIT`).
const PAGE: usize = 1_000;

/// A server with a confidential client `rs` (a resource server) and a
/// public client `web`; `public` sets `public_revocation_feed`.
struct Fixture {
    s: TestServer,
    rs_secret: String,
}

async fn fixture(public: bool) -> Fixture {
    let (rs_secret, hash) = generate_secret().expect("rng");
    let s = TestServer::start_with(|settings| {
        settings.public_revocation_feed = public;
        settings.clients.push(Client {
            kind: ClientKind::Confidential,
            secret_hash: Some(hash),
            ..Client::default_public("rs")
        });
        settings.clients.push(Client::default_public("web"));
    })
    .await;
    Fixture { s, rs_secret }
}

fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

impl Fixture {
    /// `GET /v1/revocations{query}` as the resource server.
    async fn feed(&self, query: &str) -> reqwest::Response {
        self.feed_as(query, Some(&basic("rs", &self.rs_secret)))
            .await
    }

    async fn feed_as(&self, query: &str, authorization: Option<&str>) -> reqwest::Response {
        let mut request = self
            .s
            .http
            .get(self.s.url(&format!("/v1/revocations{query}")));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        request.send().await.expect("request")
    }

    async fn feed_json(&self, query: &str) -> Value {
        let r = self.feed(query).await;
        assert_eq!(r.status(), 200, "{query}");
        r.json().await.expect("json")
    }

    /// Cancels `tokens.access` (one `jti` entry) and returns the session's
    /// next tokens.
    async fn cancel_and_refresh(&self, tokens: &Tokens) -> Tokens {
        let r = self
            .s
            .http
            .post(self.s.url("/v1/tokens/cancel"))
            .bearer_auth(&tokens.access)
            .send()
            .await
            .expect("cancel");
        assert_eq!(r.status(), 204);
        let r = self.s.refresh(&tokens.refresh).await;
        assert_eq!(r.status(), 200);
        Tokens::from(r.json::<Value>().await.expect("json"))
    }
}

fn ids(page: &Value) -> Vec<String> {
    page["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test]
async fn revocation_feed_snapshot_tail_and_long_poll() {
    let f = fixture(false).await;
    let s = &f.s;
    let first = s.new_session("erin").await;
    s.post("/v1/tokens/revoke", json!({"refresh_token": first.refresh}))
        .await;

    let snap = f.feed_json("").await;
    let entries = snap["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["kind"], "sid");
    assert!(entries[0]["expires_at"].is_i64());
    assert!(snap.get("next").is_none(), "one page only: no next");
    let cursor = snap["cursor"].as_str().expect("cursor").to_owned();

    // Nothing new: an immediate empty answer with the same cursor.
    let tail = f.feed_json(&format!("?after={cursor}")).await;
    assert_eq!(tail["entries"], json!([]));
    assert_eq!(tail["cursor"], cursor.as_str());

    // A long poll is answered as soon as something is revoked.
    let second = s.new_session("frank").await;
    let waiting = {
        let request = s
            .http
            .get(s.url(&format!("/v1/revocations?after={cursor}&wait=10")))
            .header("authorization", basic("rs", &f.rs_secret));
        tokio::spawn(async move {
            let started = Instant::now();
            let v: Value = request
                .send()
                .await
                .expect("request")
                .json()
                .await
                .expect("json");
            (v, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = s
        .http
        .post(s.url("/v1/tokens/cancel"))
        .bearer_auth(&second.access)
        .send()
        .await
        .expect("cancel");
    assert_eq!(r.status(), 204);
    let (v, took) = waiting.await.expect("poll");
    assert_eq!(v["entries"][0]["kind"], "jti");
    assert!(took < Duration::from_secs(5), "long poll took {took:?}");
    assert_ne!(v["cursor"], cursor.as_str());

    // Unknown cursors get an explicit answer, never silent gaps.
    for bad in ["?after=999999", "?after=abc", "?after=-5"] {
        let r = f.feed(bad).await;
        assert_eq!(r.status(), 410, "{bad}");
        assert_eq!(error_code(r).await, "cursor_expired");
    }
    let r = f.feed("?after=1&wait=soon").await;
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn feed_cursor_survives_restart() {
    let f = fixture(false).await;
    let t = f.s.new_session("gina").await;
    let snap = f.feed_json("").await;
    let cursor = snap["cursor"].as_str().expect("cursor").to_owned();
    let f = Fixture {
        s: f.s.restart().await,
        rs_secret: f.rs_secret,
    };
    f.s.post("/v1/tokens/revoke", json!({"refresh_token": t.refresh}))
        .await;
    let tail = f.feed_json(&format!("?after={cursor}")).await;
    assert_eq!(tail["entries"].as_array().map(Vec::len), Some(1));
}

/// By default only a confidential client (HTTP Basic, RFC 6749 §2.3.1)
/// reads the feed: anything else is 401 `invalid_client` with
/// `WWW-Authenticate: Basic` and the standard error shape, answered at once
/// even when it asks for a long poll, and before its query is looked at.
#[tokio::test]
async fn revocation_feed_requires_a_confidential_client() {
    let f = fixture(false).await;
    let t = f.s.new_session("hal").await;
    f.s.post("/v1/tokens/revoke", json!({"refresh_token": t.refresh}))
        .await;
    let cursor = f.feed_json("").await["cursor"]
        .as_str()
        .expect("cursor")
        .to_owned();

    let wrong = basic("rs", "not-the-secret");
    let unknown = basic("nobody", &f.rs_secret);
    let public = basic("web", "");
    let public_with_secret = basic("web", &f.rs_secret);
    let default_client = basic("default", "");
    let bearer = format!("Bearer {}", t.access);
    let not_base64 = "Basic ***".to_owned();
    let no_colon = format!("Basic {}", STANDARD.encode("rs"));
    let refused: [(&str, Option<&str>); 9] = [
        ("no credentials", None),
        ("wrong secret", Some(&wrong)),
        ("unknown client", Some(&unknown)),
        ("public client", Some(&public)),
        ("public client with a secret", Some(&public_with_secret)),
        ("the default public client", Some(&default_client)),
        ("a bearer token", Some(&bearer)),
        ("not base64", Some(&not_base64)),
        ("no colon", Some(&no_colon)),
    ];
    for (what, authorization) in refused {
        for query in [
            String::new(),
            format!("?after={cursor}&wait=10"),
            "?page=abc".to_owned(),
            "?after=1&wait=soon".to_owned(),
        ] {
            let started = Instant::now();
            let r = f.feed_as(&query, authorization).await;
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{what} {query}: not answered at once"
            );
            assert_eq!(r.status(), 401, "{what} {query}");
            let challenge = r
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            assert!(
                challenge.starts_with("Basic"),
                "{what} {query}: challenge {challenge:?}"
            );
            assert_eq!(error_code(r).await, "invalid_client", "{what} {query}");
        }
    }

    // The right credentials, for contrast.
    let r = f.feed_as("", Some(&basic("rs", &f.rs_secret))).await;
    assert_eq!(r.status(), 200);
    assert_eq!(ids(&r.json().await.expect("json")).len(), 1);
}

/// `public_revocation_feed = true` restores reading without credentials.
#[tokio::test]
async fn public_revocation_feed_is_readable_without_credentials() {
    let f = fixture(true).await;
    let t = f.s.new_session("ivy").await;
    f.s.post("/v1/tokens/revoke", json!({"refresh_token": t.refresh}))
        .await;
    let r = f.feed_as("", None).await;
    assert_eq!(r.status(), 200);
    let snap: Value = r.json().await.expect("json");
    assert_eq!(ids(&snap).len(), 1);
    let r = f
        .feed_as(
            &format!("?after={}", snap["cursor"].as_str().expect("cursor")),
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    // Credentials, when sent, are not in the way.
    assert_eq!(f.feed("").await.status(), 200);
}

/// A snapshot larger than a page comes in pages of at most 1,000 entries:
/// each but the last names the `next` page; an entry recorded between
/// pages is in a later page; following from the last page's cursor then
/// misses nothing and repeats nothing. A caller that ignores `next` and
/// follows from the first page's cursor gets the rest that way. Bad page
/// tokens get 410 `cursor_expired`; `page` with `after` is a 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_feed_snapshot_is_paginated() {
    const CHAINS: usize = 5;
    const PER_CHAIN: usize = PAGE / CHAINS + 1;
    let f = std::sync::Arc::new(fixture(false).await);
    // 1,005 cancelled access tokens, five sessions at a time.
    let mut tasks = Vec::new();
    for chain in 0..CHAINS {
        let f = std::sync::Arc::clone(&f);
        tasks.push(tokio::spawn(async move {
            let mut tokens = f.s.new_session(&format!("chain{chain}")).await;
            for _ in 0..PER_CHAIN {
                tokens = f.cancel_and_refresh(&tokens).await;
            }
            tokens
        }));
    }
    let mut live = Vec::new();
    for task in tasks {
        live.push(task.await.expect("chain"));
    }
    let recorded = CHAINS * PER_CHAIN;

    let first = f.feed_json("?wait=5").await;
    assert_eq!(ids(&first).len(), PAGE);
    let next = first["next"]
        .as_str()
        .expect("next on a full page")
        .to_owned();
    assert_eq!(first["cursor"], next.as_str());

    // Recorded between the pages: in the second one.
    f.cancel_and_refresh(&live[0]).await;
    let second = f.feed_json(&format!("?page={next}")).await;
    assert!(second.get("next").is_none(), "the last page has no next");
    assert_eq!(ids(&second).len(), recorded + 1 - PAGE);
    let all: BTreeSet<String> = ids(&first).into_iter().chain(ids(&second)).collect();
    assert_eq!(all.len(), recorded + 1, "every entry once");

    let cursor = second["cursor"].as_str().expect("cursor");
    let tail = f.feed_json(&format!("?after={cursor}")).await;
    assert_eq!(tail["entries"], json!([]));
    f.cancel_and_refresh(&live[1]).await;
    let tail = f.feed_json(&format!("?after={cursor}")).await;
    assert_eq!(ids(&tail).len(), 1);
    assert!(!all.contains(&ids(&tail)[0]));

    // Ignoring `next`: following from the first page's cursor.
    let rest = f.feed_json(&format!("?after={next}")).await;
    let mut seen: BTreeSet<String> = ids(&first).into_iter().collect();
    seen.extend(ids(&rest));
    assert_eq!(seen.len(), recorded + 2);

    for bad in ["?page=abc", "?page=-1", "?page=99999999"] {
        let r = f.feed(bad).await;
        assert_eq!(r.status(), 410, "{bad}");
        assert_eq!(error_code(r).await, "cursor_expired");
    }
    let r = f.feed(&format!("?page={next}&after={cursor}")).await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "invalid_request");
}

/// The longest wait the protocol allows is as long as the request timeout:
/// such a poll with nothing to report must still end in its empty page,
/// not in the timeout's bodyless 408 (found while describing the feed's
/// statuses in the OpenAPI document).
#[tokio::test]
async fn the_longest_long_poll_ends_in_a_page_not_a_timeout() {
    let f = fixture(false).await;
    let cursor = f.feed_json("").await["cursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    let started = Instant::now();
    let tail = f.feed_json(&format!("?after={cursor}&wait=30")).await;
    assert_eq!(tail["entries"], json!([]));
    assert_eq!(tail["cursor"], cursor.as_str());
    let held = started.elapsed();
    assert!(
        held >= Duration::from_secs(20) && held < Duration::from_secs(30),
        "held {held:?}"
    );
}
