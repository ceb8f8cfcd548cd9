//! Abuse resistance over HTTP: failed sign-ins throttled per account and per
//! address through the store (so every node sees them), the owner's escape
//! from a stranger's block, the operator's unlock, client addresses behind
//! trusted proxies, and the per-address rate limits of sign-up and token
//! endpoints.

use latchkey_core::throttle::ThrottleRule;
use latchkey_server::cli::users::{self, UsersAction, UsersArgs};
use latchkey_server::client_address::TrustedProxies;
use latchkey_server::config::DataArgs;
use latchkey_server::rate_limit::RateLimits;
use latchkey_testkit::{error_code, TestServer};
use serde_json::json;

const PASSWORD: &str = "correct horse battery";

/// Status, error code and `Retry-After` of a sign-in.
async fn attempt(t: &TestServer, user: &str, password: &str) -> (u16, String, Option<u64>) {
    outcome(t.sign_in(user, password).await).await
}

/// A sign-in of a client at `ip`, forwarded by a proxy on loopback.
async fn attempt_from(
    t: &TestServer,
    ip: &str,
    user: &str,
    password: &str,
) -> (u16, String, Option<u64>) {
    outcome(sign_in_from(t, ip, user, password).await).await
}

async fn sign_in_from(t: &TestServer, ip: &str, user: &str, password: &str) -> reqwest::Response {
    t.http
        .post(t.url("/v1/sign-in"))
        .header("x-forwarded-for", format!("{ip}, 127.0.0.1"))
        .json(&json!({"username": user, "password": password}))
        .send()
        .await
        .expect("request")
}

async fn outcome(r: reqwest::Response) -> (u16, String, Option<u64>) {
    let status = r.status().as_u16();
    let retry_after = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    if status == 200 {
        return (status, String::new(), retry_after);
    }
    (status, error_code(r).await, retry_after)
}

fn throttled(seconds: u64) -> (u16, String, Option<u64>) {
    (429, "slow_down".into(), Some(seconds))
}

fn refused() -> (u16, String, Option<u64>) {
    (401, "invalid_grant".into(), None)
}

#[tokio::test]
async fn account_is_throttled_after_its_allowance_without_checking_the_password() {
    let t = TestServer::start().await;
    assert_eq!(t.sign_up("alice", PASSWORD).await.status(), 201);
    // Five free attempts, counted before the password is checked: the
    // fifth uses the allowance up, so the sixth must wait 1 s.
    for _ in 0..5 {
        assert_eq!(attempt(&t, "alice", "wrong password").await, refused());
    }
    // Blocked: even the right password is not checked. Another spelling of
    // the same name is the same account.
    assert_eq!(attempt(&t, "alice", PASSWORD).await, throttled(1));
    assert_eq!(attempt(&t, "ALICE", PASSWORD).await, throttled(1));
    // Others are not affected.
    t.new_session("bob").await;

    // Once the block has passed, the owner gets in, which resets the count.
    t.clock.advance(1);
    assert_eq!(attempt(&t, "alice", PASSWORD).await.0, 200);
    for _ in 0..4 {
        assert_eq!(attempt(&t, "alice", "wrong password").await, refused());
    }
    assert_eq!(attempt(&t, "alice", PASSWORD).await.0, 200);
}

#[tokio::test]
async fn unknown_users_are_throttled_exactly_like_accounts() {
    let t = TestServer::start().await;
    assert_eq!(t.sign_up("alice", PASSWORD).await.status(), 201);
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..8 {
        known.push(attempt(&t, "alice", "wrong password").await);
        unknown.push(attempt(&t, "mallory", "wrong password").await);
    }
    assert_eq!(known, unknown);
    assert_eq!(known[7], throttled(1));
}

#[tokio::test]
async fn delays_double_up_to_the_cap_and_counters_decay() {
    let t = TestServer::start_with(|s| {
        s.policy.throttle.account = ThrottleRule {
            free_failures: 2,
            window_seconds: 600,
            base_delay_seconds: 1,
            max_delay_seconds: 8,
        };
    })
    .await;
    assert_eq!(t.sign_up("alice", PASSWORD).await.status(), 201);
    for _ in 0..2 {
        assert_eq!(attempt(&t, "alice", "wrong").await, refused());
    }
    for expected in [1, 2, 4, 8, 8, 8] {
        assert_eq!(attempt(&t, "alice", "wrong").await, throttled(expected));
        t.clock.advance(i64::try_from(expected).expect("small"));
        assert_eq!(attempt(&t, "alice", "wrong").await, refused());
    }
    assert_eq!(attempt(&t, "alice", PASSWORD).await, throttled(8));
    // A stranger blocks the owner for at most the cap at a time; a quiet
    // window later the count starts again from zero.
    t.clock.advance(600);
    for _ in 0..2 {
        assert_eq!(attempt(&t, "alice", "wrong").await, refused());
    }
    assert_eq!(attempt(&t, "alice", "wrong").await, throttled(1));
}

#[tokio::test]
async fn address_is_throttled_across_usernames_and_success_does_not_reset_it() {
    let t = TestServer::start_with(|s| {
        s.policy.throttle.address.free_failures = 4;
    })
    .await;
    t.new_session("owner").await;
    for i in 0..3 {
        assert_eq!(
            attempt(&t, &format!("guess{i}"), "wrong").await,
            refused(),
            "{i}"
        );
        // The attacker's own account signing in does not clear the address.
        assert_eq!(attempt(&t, "owner", PASSWORD).await.0, 200);
    }
    assert_eq!(attempt(&t, "guess3", "wrong").await, refused());
    assert_eq!(attempt(&t, "guess9", "wrong").await, throttled(1));
    assert_eq!(attempt(&t, "owner", PASSWORD).await, throttled(1));
    t.clock.advance(1);
    assert_eq!(attempt(&t, "owner", PASSWORD).await.0, 200);
}

/// Loopback is the proxy; clients are told apart by `X-Forwarded-For`.
fn behind_proxy(s: &mut latchkey_server::Settings) {
    s.trusted_proxies = TrustedProxies::parse(&["127.0.0.1", "::1"]).expect("proxies");
}

#[tokio::test]
async fn a_stranger_cannot_lock_the_owner_out_of_an_address_it_uses() {
    let t = TestServer::start_with(behind_proxy).await;
    let owner = "198.51.100.20";
    let stranger = "203.0.113.66";
    assert_eq!(t.sign_up("alice", PASSWORD).await.status(), 201);
    assert_eq!(attempt_from(&t, owner, "alice", PASSWORD).await.0, 200);

    // The stranger uses up the account's allowance and blocks it ...
    for _ in 0..5 {
        assert_eq!(
            attempt_from(&t, stranger, "alice", "guess").await,
            refused()
        );
    }
    assert_eq!(
        attempt_from(&t, stranger, "alice", PASSWORD).await,
        throttled(1)
    );
    // ... everywhere but where the owner already has a session.
    assert_eq!(
        attempt_from(&t, "192.0.2.1", "alice", PASSWORD).await,
        throttled(1)
    );
    let r = sign_in_from(&t, owner, "alice", PASSWORD).await;
    assert_eq!(r.status(), 200);
    let tokens = latchkey_testkit::Tokens::from(r.json::<serde_json::Value>().await.expect("json"));
    // The owner's success there does not lift the stranger's block, and the
    // owner's sessions list shows the forwarded address.
    assert_eq!(
        attempt_from(&t, stranger, "alice", PASSWORD).await,
        throttled(1)
    );
    let sessions: serde_json::Value = t
        .get_bearer("/v1/sessions", &tokens.access)
        .await
        .json()
        .await
        .expect("json");
    let ips: Vec<&str> = sessions["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .filter_map(|s| s["ip"].as_str())
        .collect();
    assert_eq!(ips, vec![owner, owner], "{sessions}");

    // The exemption does not cover an address blocked on its own account.
    let t = TestServer::start_with(|s| {
        behind_proxy(s);
        s.policy.throttle.address.free_failures = 2;
    })
    .await;
    assert_eq!(t.sign_up("alice", PASSWORD).await.status(), 201);
    assert_eq!(attempt_from(&t, owner, "alice", PASSWORD).await.0, 200);
    for name in ["x", "y"] {
        assert_eq!(attempt_from(&t, owner, name, "guess").await, refused());
    }
    assert_eq!(
        attempt_from(&t, owner, "alice", PASSWORD).await,
        throttled(1)
    );
}

#[tokio::test]
async fn forwarded_addresses_count_only_from_trusted_proxies() {
    // Behind the proxy each client address has its own allowance.
    let t = TestServer::start_with(|s| {
        behind_proxy(s);
        s.policy.throttle.address.free_failures = 2;
    })
    .await;
    for name in ["a", "b"] {
        assert_eq!(attempt_from(&t, "203.0.113.1", name, "x").await, refused());
    }
    assert_eq!(
        attempt_from(&t, "203.0.113.1", "d", "x").await,
        throttled(1)
    );
    assert_eq!(attempt_from(&t, "203.0.113.2", "d", "x").await, refused());

    // Without trusted proxies the header is the client's word and ignored:
    // every "address" is loopback's.
    let t = TestServer::start_with(|s| s.policy.throttle.address.free_failures = 2).await;
    for (i, name) in ["a", "b"].into_iter().enumerate() {
        let ip = format!("203.0.113.{i}");
        assert_eq!(attempt_from(&t, &ip, name, "x").await, refused());
    }
    assert_eq!(
        attempt_from(&t, "203.0.113.9", "d", "x").await,
        throttled(1)
    );
}

#[tokio::test]
async fn throttling_is_shared_by_nodes_on_one_database() {
    let a = TestServer::start().await;
    let b = a.another_node().await;
    assert_eq!(a.sign_up("alice", PASSWORD).await.status(), 201);
    for node in [&a, &b, &a, &b, &a] {
        assert_eq!(attempt(node, "alice", "wrong").await, refused());
    }
    assert_eq!(attempt(&a, "alice", PASSWORD).await, throttled(1));
    assert_eq!(attempt(&b, "alice", PASSWORD).await, throttled(1));
}

#[tokio::test]
async fn operator_unlock_clears_the_block_at_once() {
    let t = TestServer::start_with(|s| {
        s.policy.throttle.account.base_delay_seconds = 600;
        s.policy.throttle.account.max_delay_seconds = 900;
    })
    .await;
    assert_eq!(t.sign_up("alice", PASSWORD).await.status(), 201);
    for _ in 0..5 {
        assert_eq!(attempt(&t, "alice", "wrong").await, refused());
    }
    assert_eq!(attempt(&t, "alice", PASSWORD).await, throttled(600));

    let unlock = |username: &str| UsersArgs {
        location: DataArgs {
            data_dir: Some(t.settings.data_dir.clone()),
            ..DataArgs::default()
        },
        format: users::Format::Json,
        action: UsersAction::Unlock {
            username: username.to_owned(),
        },
    };
    let out = users::run(unlock("Alice")).await.expect("unlock");
    assert_eq!(out, json!({"username": "Alice", "unlocked": true}));
    assert_eq!(attempt(&t, "alice", PASSWORD).await.0, 200);
    let out = users::run(unlock("alice")).await.expect("unlock");
    assert_eq!(out["unlocked"], false);
}

#[tokio::test]
async fn throttling_can_be_turned_off() {
    let t = TestServer::start_with(|s| s.policy.throttle.enabled = false).await;
    assert_eq!(t.sign_up("alice", PASSWORD).await.status(), 201);
    for _ in 0..20 {
        assert_eq!(attempt(&t, "alice", "wrong").await, refused());
    }
    assert_eq!(attempt(&t, "alice", PASSWORD).await.0, 200);
}

#[tokio::test]
async fn sign_up_and_token_endpoints_are_rate_limited_per_address() {
    let t = TestServer::start_with(|s| {
        s.rate_limits = RateLimits {
            sign_up_per_minute: 3,
            tokens_per_minute: 5,
            recovery_per_minute: 0,
        };
    })
    .await;
    for i in 0..3 {
        assert_eq!(t.sign_up(&format!("u{i}"), PASSWORD).await.status(), 201);
    }
    let r = t.sign_up("u3", PASSWORD).await;
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=21).contains(&retry), "{retry}");
    assert_eq!(error_code(r).await, "slow_down");

    // Sign-in is not limited by these (it is throttled on failures).
    let tokens = {
        let r = t.sign_in("u0", PASSWORD).await;
        assert_eq!(r.status(), 200);
        latchkey_testkit::Tokens::from(r.json::<serde_json::Value>().await.expect("json"))
    };
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(t.refresh("lkr_bogus").await.status().as_u16());
    }
    statuses.push(
        t.post("/v1/tokens/revoke", json!({"refresh_token": "lkr_bogus"}))
            .await
            .status()
            .as_u16(),
    );
    statuses.push(t.refresh(&tokens.refresh).await.status().as_u16());
    statuses.push(t.refresh(&tokens.refresh).await.status().as_u16());
    let r = t
        .http
        .post(t.url("/oauth/token"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "x")])
        .send()
        .await
        .expect("request");
    statuses.push(r.status().as_u16());
    assert_eq!(statuses, vec![401, 401, 401, 204, 200, 429, 429]);
    // Bearer endpoints are not limited.
    assert_eq!(t.get_bearer("/v1/me", &tokens.access).await.status(), 200);
}

#[tokio::test]
async fn hostile_usernames_are_counted_like_any_other() {
    let t = TestServer::start_with(|s| s.policy.throttle.address.free_failures = 1000).await;
    // As long as fits in the password routes' 16 KiB body limit.
    let long = "ä".repeat(7_000);
    for name in [
        "'; DELETE FROM sign_in_failures; --",
        "nul\u{0}byte",
        "with space",
        "",
        long.as_str(),
    ] {
        for _ in 0..5 {
            assert_eq!(attempt(&t, name, "wrong").await, refused(), "{name:.40}");
        }
        assert_eq!(attempt(&t, name, "wrong").await, throttled(1), "{name:.40}");
    }
}
