//! The HTTP edge over real HTTP: per-address limits count an IPv6 client's
//! whole /64, and responses carrying personal data or tokens (and errors)
//! are `Cache-Control: no-store` while public documents keep their caching.
//! (Request logs: `request_logs.rs`.)

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use latchkey_core::client::{generate_secret, Client, ClientKind};
use latchkey_server::client_address::TrustedProxies;
use latchkey_server::rate_limit::RateLimits;
use latchkey_testkit::TestServer;
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse battery";

/// A sign-up by a client at `ip`, forwarded by a trusted proxy on loopback.
async fn sign_up_from(s: &TestServer, ip: &str, username: &str) -> reqwest::Response {
    s.http
        .post(s.url("/v1/sign-up"))
        .header("x-forwarded-for", ip)
        .json(&json!({"username": username, "password": PASSWORD}))
        .send()
        .await
        .expect("request")
}

/// Two addresses of one /64 share a limit; an address of another /64 has
/// its own, and IPv4 addresses are counted one by one. The session list
/// still shows the full address.
#[tokio::test]
async fn ipv6_addresses_of_one_64_share_a_limit() {
    let s = TestServer::start_with(|s| {
        s.trusted_proxies = TrustedProxies::parse(&["127.0.0.1"]).expect("proxies");
        s.rate_limits = RateLimits {
            sign_up_per_minute: 2,
            tokens_per_minute: 0,
            recovery_per_minute: 0,
        };
    })
    .await;
    assert_eq!(
        sign_up_from(&s, "2001:db8:1:2::1", "a1").await.status(),
        201
    );
    assert_eq!(
        sign_up_from(&s, "2001:db8:1:2:ffff:ffff:ffff:fffe", "a2")
            .await
            .status(),
        201
    );
    let r = sign_up_from(&s, "2001:db8:1:2:abcd::9", "a3").await;
    assert_eq!(r.status(), 429, "a third address of the same /64");
    let retry_after: u64 = r.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=30).contains(&retry_after), "{retry_after}");
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"], "slow_down");
    assert!(v["error_description"].is_string());

    assert_eq!(
        sign_up_from(&s, "2001:db8:1:3::1", "b1").await.status(),
        201,
        "another /64 has its own limit"
    );
    for (i, ip) in ["198.51.100.1", "198.51.100.2", "198.51.100.3"]
        .iter()
        .enumerate()
    {
        assert_eq!(
            sign_up_from(&s, ip, &format!("c{i}")).await.status(),
            201,
            "{ip}"
        );
    }

    // The session records the address itself, not its network.
    let r = s
        .http
        .post(s.url("/v1/sign-in"))
        .header("x-forwarded-for", "2001:db8:1:2::1")
        .json(&json!({"username": "a1", "password": PASSWORD}))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    let access = r.json::<Value>().await.expect("json")["access_token"]
        .as_str()
        .expect("access token")
        .to_owned();
    let sessions: Value = s
        .get_bearer("/v1/sessions", &access)
        .await
        .json()
        .await
        .expect("json");
    assert!(
        sessions.to_string().contains("\"2001:db8:1:2::1\""),
        "{sessions}"
    );
}

fn cache_control(r: &reqwest::Response) -> String {
    r.headers()
        .get("cache-control")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Every response with personal data or tokens, and every error, says
/// `no-store`; JWKS and the metadata documents keep their public caching.
#[tokio::test]
async fn personal_data_tokens_and_errors_are_not_stored() {
    let (svc_secret, hash) = generate_secret().expect("rng");
    let s = TestServer::start_with(|s| {
        s.clients.push(Client {
            kind: ClientKind::Confidential,
            secret_hash: Some(hash),
            audiences: vec!["jobs-api".into()],
            scopes: vec!["jobs".into()],
            ..Client::default_public("svc")
        });
        s.rate_limits.sign_up_per_minute = 1;
    })
    .await;
    let mut checked = Vec::new();
    let mut expect_no_store = |what: &str, r: &reqwest::Response, status: u16| {
        assert_eq!(r.status().as_u16(), status, "{what}");
        assert_eq!(cache_control(r), "no-store", "{what}");
        checked.push(what.to_owned());
    };

    let r = s.sign_up("alice", PASSWORD).await;
    expect_no_store("sign-up", &r, 201);
    let r = s.sign_up("bob", PASSWORD).await;
    expect_no_store("sign-up rate limited", &r, 429);
    let r = s.sign_in("alice", PASSWORD).await;
    expect_no_store("sign-in", &r, 200);
    let tokens: Value = r.json().await.expect("json");
    let access = tokens["access_token"].as_str().expect("at").to_owned();
    let refresh = tokens["refresh_token"].as_str().expect("rt").to_owned();

    let r = s.get_bearer("/v1/me", &access).await;
    expect_no_store("me", &r, 200);
    let r = s.get_bearer("/v1/sessions", &access).await;
    expect_no_store("sessions", &r, 200);
    let r = s.refresh(&refresh).await;
    expect_no_store("refresh", &r, 200);
    let r = s
        .http
        .post(s.url("/oauth/introspect"))
        .header(
            "authorization",
            format!("Basic {}", STANDARD.encode(format!("svc:{svc_secret}"))),
        )
        .form(&[("token", access.as_str())])
        .send()
        .await
        .expect("request");
    expect_no_store("introspect", &r, 200);

    // Errors.
    let r = s.sign_in("alice", "wrong password here").await;
    expect_no_store("sign-in refused", &r, 401);
    let r = s.get_bearer("/v1/me", "not-a-token").await;
    expect_no_store("bad token", &r, 401);
    let r = s.http.get(s.url("/v1/nope")).send().await.expect("request");
    expect_no_store("unknown route", &r, 404);
    let r = s
        .http
        .post(s.url("/v1/sign-in"))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .expect("request");
    expect_no_store("bad JSON", &r, 400);
    let r = s
        .http
        .post(s.url("/v1/sign-in"))
        .header("content-type", "application/json")
        .body(vec![b' '; 20 * 1024])
        .send()
        .await
        .expect("request");
    expect_no_store("body too large", &r, 413);
    assert_eq!(checked.len(), 12);

    // Public documents keep their caching.
    for (path, caching) in [
        ("/.well-known/jwks.json", "public, max-age=60"),
        (
            "/.well-known/oauth-authorization-server",
            "public, max-age=300",
        ),
        ("/.well-known/openid-configuration", "public, max-age=300"),
    ] {
        let r = s.http.get(s.url(path)).send().await.expect("request");
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(cache_control(&r), caching, "{path}");
    }
}
