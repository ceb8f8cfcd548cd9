//! The attacks of issue 11 that target password checking and accounts,
//! each reproduced over real HTTP on loopback (bounded in count and time):
//! guesses raced past the throttle, an abandoned sign-in flood, password
//! change as a guessing oracle, sessions without end, and an audit log
//! flooded by throttled attempts.

use std::time::{Duration, Instant};

use latchkey_core::password::Argon2Cost;
use latchkey_server::client_address::TrustedProxies;
use latchkey_testkit::{error_code, TestServer, Tokens};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

const PASSWORD: &str = "correct horse battery";

/// A sign-in of a client at `ip`, forwarded by a trusted proxy on loopback.
fn sign_in_from(t: &TestServer, ip: &str, user: &str, password: &str) -> reqwest::RequestBuilder {
    t.http
        .post(t.url("/v1/sign-in"))
        .header("x-forwarded-for", ip)
        .json(&json!({"username": user, "password": password}))
}

fn behind_loopback_proxy(s: &mut latchkey_server::Settings) {
    s.trusted_proxies = TrustedProxies::parse(&["127.0.0.1"]).expect("proxies");
}

/// 60 wrong guesses for one account from one address, all at once: the
/// counters are reserved before hashing, so only the allowance (5) is ever
/// evaluated, and the right password right after is refused too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_wrong_guesses_evaluate_at_most_the_allowance() {
    let t = TestServer::start().await;
    assert_eq!(t.sign_up("alice", PASSWORD).await.status(), 201);
    let guesses: Vec<_> = (0..60)
        .map(|i| {
            let request = t
                .http
                .post(t.url("/v1/sign-in"))
                .json(&json!({"username": "alice", "password": format!("guess number {i}")}));
            tokio::spawn(async move { request.send().await.expect("request") })
        })
        .collect();
    let (mut evaluated, mut throttled) = (0, 0);
    for g in guesses {
        let r = g.await.expect("task");
        match r.status().as_u16() {
            401 => evaluated += 1,
            429 => {
                assert!(r.headers().contains_key("retry-after"));
                assert_eq!(error_code(r).await, "slow_down");
                throttled += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((evaluated, throttled), (5, 55));
    let r = t.sign_in("alice", PASSWORD).await;
    assert_eq!(r.status(), 429, "the right password right after is refused");
}

/// Sends a sign-in and hangs up without reading the answer.
async fn abandoned_sign_in(addr: std::net::SocketAddr, ip: &str, user: String) {
    let body = json!({"username": user, "password": "a wrong password"}).to_string();
    let request = format!(
        "POST /v1/sign-in HTTP/1.1\r\nhost: {addr}\r\nx-forwarded-for: {ip}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    if let Ok(mut s) = tokio::net::TcpStream::connect(addr).await {
        let _ = s.write_all(request.as_bytes()).await;
    }
}

/// 1,000 sign-ins sent from two addresses and abandoned at once: queued
/// work whose requester is gone is skipped, every attempt is still counted
/// against its address (so both end up throttled), and a real user at a
/// third address signs in meanwhile and right after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_sign_in_flood_costs_no_hashing_and_spares_real_users() {
    let t = TestServer::start_with(|s| {
        behind_loopback_proxy(s);
        // The default cost: hashing is what the flood tries to waste.
        s.argon2 = Argon2Cost::default();
        s.hashing_threads = 1;
    })
    .await;
    assert_eq!(t.sign_up("carol", PASSWORD).await.status(), 201);
    let addr: std::net::SocketAddr = t.base.trim_start_matches("http://").parse().expect("addr");
    let flood_started = Instant::now();
    let flood = tokio::spawn(async move {
        let mut sent = Vec::new();
        for i in 0..1000 {
            let ip = if i % 2 == 0 {
                "198.51.100.1"
            } else {
                "203.0.113.1"
            };
            sent.push(tokio::spawn(abandoned_sign_in(
                addr,
                ip,
                format!("nobody{i}"),
            )));
        }
        for s in sent {
            let _ = s.await;
        }
    });
    // A real user during the flood: answered at once, either signed in or
    // told to come back (503 with Retry-After when the queue is full of
    // work someone still waits for).
    let during = Instant::now();
    let r = sign_in_from(&t, "192.0.2.10", "carol", PASSWORD)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("request");
    let during = (during.elapsed(), r.status().as_u16());
    assert!(
        [200, 503].contains(&during.1),
        "during the flood: {during:?}"
    );
    flood.await.expect("flood");
    let flood_ended = Instant::now();
    // Right after it, the real user gets in, retrying as told.
    loop {
        let r = sign_in_from(&t, "192.0.2.10", "carol", PASSWORD)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .expect("request");
        if r.status() == 200 {
            break;
        }
        assert_eq!(r.status(), 503);
        assert!(flood_ended.elapsed() < Duration::from_secs(2));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let after = flood_ended.elapsed();
    assert!(
        after < Duration::from_secs(2),
        "right after the flood: {after:?}"
    );
    eprintln!(
        "flood of 1000 sent in {:?}; real sign-in during it {during:?}, right after {after:?}",
        flood_ended - flood_started
    );
    // Every flooding address spent its allowance and is throttled now.
    for ip in ["198.51.100.1", "203.0.113.1"] {
        let r = sign_in_from(&t, ip, "carol", PASSWORD)
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 429, "{ip} is throttled");
    }
}

/// A hashing queue that is full refuses at once with 503 and
/// `Retry-After`, instead of letting requests wait behind work it cannot
/// catch up with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_hashing_queue_refuses_at_once() {
    let t = TestServer::start_with(|s| {
        behind_loopback_proxy(s);
        s.argon2 = Argon2Cost::default();
        s.hashing_threads = 1;
        s.hashing_queue = Some(2);
    })
    .await;
    let requests: Vec<_> = (0..12)
        .map(|i| {
            let r = sign_in_from(&t, &format!("192.0.2.{i}"), &format!("user{i}"), PASSWORD);
            tokio::spawn(async move {
                let started = Instant::now();
                let r = r.send().await.expect("request");
                (r, started.elapsed())
            })
        })
        .collect();
    let mut refused = 0;
    for request in requests {
        let (r, took) = request.await.expect("task");
        match r.status().as_u16() {
            401 => {}
            503 => {
                assert_eq!(r.headers()["retry-after"], "1");
                assert_eq!(error_code(r).await, "temporarily_unavailable");
                assert!(took < Duration::from_secs(5), "refused at once: {took:?}");
                refused += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(refused > 0, "12 at once cannot fit 1 thread and 2 places");
}

async fn change_password(t: &TestServer, access: &str, current: &str) -> reqwest::Response {
    t.http
        .post(t.url("/v1/password"))
        .bearer_auth(access)
        .json(&json!({"current_password": current, "new_password": "another fine passphrase"}))
        .send()
        .await
        .expect("request")
}

/// Password change guesses count against the account like sign-in's: of 60
/// concurrent guesses with one stolen access token, at most 5 are
/// evaluated, and the session that made them is ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_change_guesses_are_throttled_and_end_the_session() {
    let t = TestServer::start().await;
    let owner = t.new_session("dave").await;
    let stolen = t.new_session("dave").await;
    let guesses: Vec<_> = (0..60)
        .map(|i| {
            let request = t
                .http
                .post(t.url("/v1/password"))
                .bearer_auth(&stolen.access)
                .json(&json!({"current_password": format!("guess {i}"), "new_password": "another fine passphrase"}));
            tokio::spawn(async move { request.send().await.expect("request") })
        })
        .collect();
    let mut statuses = Vec::new();
    for g in guesses {
        statuses.push(g.await.expect("task").status().as_u16());
    }
    let evaluated = statuses.iter().filter(|s| **s == 400).count();
    assert!(evaluated <= 5, "{evaluated} guesses evaluated");
    assert!(
        statuses.iter().all(|s| [400, 401, 429].contains(s)),
        "{statuses:?}"
    );
    // The guessing session is over: neither its access nor its refresh
    // token works, and the right password cannot be tried with it.
    assert_eq!(t.get_bearer("/v1/me", &stolen.access).await.status(), 401);
    assert_eq!(t.refresh(&stolen.refresh).await.status(), 401);
    assert_eq!(
        change_password(&t, &stolen.access, PASSWORD).await.status(),
        401
    );
    // The owner's own session is untouched; once the block has passed,
    // the owner changes the password.
    assert_eq!(t.get_bearer("/v1/me", &owner.access).await.status(), 200);
    assert_eq!(
        change_password(&t, &owner.access, PASSWORD).await.status(),
        429
    );
    t.clock.advance(2);
    assert_eq!(
        change_password(&t, &owner.access, PASSWORD).await.status(),
        204
    );
}

/// A user's live sessions are capped: the sign-in beyond the cap ends the
/// least recently used session, its tokens stop working, and the audit
/// log says so.
#[tokio::test]
async fn sessions_per_user_are_capped_least_recently_used_first() {
    let t = TestServer::start_with(|s| s.policy.max_sessions_per_user = 3).await;
    let first = t.new_session("erin").await;
    t.clock.advance(1);
    let second = t.new_session("erin").await;
    t.clock.advance(1);
    let third = t.new_session("erin").await;
    // The first is used again: the second is now the least recently used.
    t.clock.advance(5);
    let r = t.refresh(&first.refresh).await;
    assert_eq!(r.status(), 200);
    let first = Tokens::from(r.json::<Value>().await.expect("json"));
    let fourth = {
        let r = t.sign_in("erin", PASSWORD).await;
        assert_eq!(r.status(), 200);
        Tokens::from(r.json::<Value>().await.expect("json"))
    };
    assert_eq!(t.get_bearer("/v1/me", &second.access).await.status(), 401);
    assert_eq!(t.refresh(&second.refresh).await.status(), 401);
    for live in [&first, &third, &fourth] {
        assert_eq!(t.get_bearer("/v1/me", &live.access).await.status(), 200);
    }
    let sessions: Value = t
        .get_bearer("/v1/sessions", &fourth.access)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(sessions["sessions"].as_array().expect("list").len(), 3);
    let log = t.audit_events(None, None, 10_000).await;
    assert_eq!(
        log.iter()
            .filter(|e| e["kind"] == "session_evicted")
            .count(),
        1
    );
}

/// Throttled attempts cost one audit record per address and minute, with
/// their count, instead of one each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_attempts_cannot_flood_the_audit_log() {
    let t = TestServer::start_with(behind_loopback_proxy).await;
    for ip in ["198.51.100.7", "198.51.100.8"] {
        for i in 0..300 {
            let r = sign_in_from(&t, ip, "frank", &format!("guess {i}"))
                .send()
                .await
                .expect("request");
            assert!([401, 429].contains(&r.status().as_u16()));
        }
    }
    t.flush_audit().await;
    let log = t.audit_events(None, None, 10_000).await;
    let throttled: Vec<&Value> = log.iter().filter(|e| e["outcome"] == "throttled").collect();
    // Per address: its lockout records, then one tally.
    let tallies: Vec<(String, u64)> = throttled
        .iter()
        .filter(|e| e["kind"] == "sign_in")
        .map(|e| {
            (
                e["ip"].as_str().expect("ip").to_owned(),
                e["count"].as_u64().expect("count"),
            )
        })
        .collect();
    assert_eq!(tallies.len(), 2, "{tallies:?}");
    let failures = log
        .iter()
        .filter(|e| e["kind"] == "sign_in" && e["outcome"] == "failure")
        .count() as u64;
    let tallied: u64 = tallies.iter().map(|(_, n)| n).sum();
    assert_eq!(tallied + failures, 600, "every attempt accounted for");
    assert!(log.len() < 40, "{} records for 600 attempts", log.len());
}

/// CPU time (user + system) the process `pid` has used, from /proc.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the line, in clock ticks (100 a second).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("comm")
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    Duration::from_millis(ticks * 10)
}

/// A scope of distinct tokens filling about `bytes`.
fn distinct_scope(bytes: usize) -> String {
    let mut scope = String::new();
    let mut i = 0;
    while scope.len() + 8 < bytes {
        scope.push_str(&format!("s{i} "));
        i += 1;
    }
    scope
}

/// Every route, with the largest hostile input it accepts (bodies at the
/// route's limit, 60 KB headers), costs the server bounded CPU before the
/// password or token check: the worst of them, measured on the real binary
/// (a debug build here) over 100 requests each, stays under 10 ms a request.
/// Before the bounds, a 200 KB scope alone took 1.5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_its_largest_hostile_input_with_bounded_work() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("latchkey.toml");
    // Nothing cuts a hostile request short: no throttle, no rate limit, and
    // Argon2 cheap enough that the password check itself costs ~nothing.
    std::fs::write(
        &config,
        "[argon2]\nmemory_kib = 256\niterations = 1\nparallelism = 1\n\
         [throttle]\nenabled = false\n\
         [rate_limits]\nsign_up_per_minute = 0\ntokens_per_minute = 0\n",
    )
    .expect("config");
    let server = latchkey_testkit::process::ServerProcess::start(
        env!("CARGO_BIN_EXE_latchkey"),
        &dir.path().join("data"),
        &config,
    );
    let pid = server.child.id();
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", server.base);
    let password_body = 16 * 1024 - 200;
    let body = 64 * 1024 - 200;
    let header = 60_000;
    let fdfa = "\u{FDFA}".repeat(password_body / 3);
    let garbage_token = format!("{}x", "e30.".repeat(header / 4));
    let bearer = format!("Bearer {garbage_token}");
    let basic = format!("Basic {}", "QUFB".repeat(header / 4));
    let long = "A".repeat(body);
    let form_scope = distinct_scope(body).replace(' ', "+");
    let cases: Vec<(&str, reqwest::RequestBuilder)> = vec![
        ("sign-up: username of U+FDFA", http.post(url("/v1/sign-up")).json(&json!({"username": fdfa, "password": PASSWORD}))),
        ("sign-up: long password", http.post(url("/v1/sign-up")).json(&json!({"username": "x", "password": "p".repeat(password_body)}))),
        ("sign-in: scope of distinct tokens", http.post(url("/v1/sign-in")).json(&json!({"username": "x", "password": PASSWORD, "scope": distinct_scope(password_body)}))),
        ("sign-in: username of U+FDFA", http.post(url("/v1/sign-in")).json(&json!({"username": fdfa, "password": PASSWORD}))),
        ("sign-in: nested unknown fields", http.post(url("/v1/sign-in")).header("content-type", "application/json").body(format!("{{\"username\":\"x\",\"password\":\"y\",{}}}", (0..password_body / 12).map(|i| format!("\"k{i}\":[[1]]")).collect::<Vec<_>>().join(",")))),
        ("password: long body, forged bearer", http.post(url("/v1/password")).header("authorization", &bearer).json(&json!({"current_password": "p".repeat(password_body / 2), "new_password": "q".repeat(password_body / 2)}))),
        ("me: forged bearer", http.get(url("/v1/me")).header("authorization", &bearer)),
        ("sessions: forged bearer", http.get(url("/v1/sessions")).header("authorization", &bearer)),
        ("end session: long id", http.delete(url(&format!("/v1/sessions/{}", "a".repeat(8000)))).header("authorization", &bearer)),
        ("sign-out: long body", http.post(url("/v1/sign-out")).header("authorization", &bearer).json(&json!({"scope": long}))),
        ("cancel: forged bearer", http.post(url("/v1/tokens/cancel")).header("authorization", &bearer)),
        ("refresh: long token and scope", http.post(url("/v1/tokens/refresh")).json(&json!({"refresh_token": format!("lkr_{}", &long[..body / 2]), "scope": distinct_scope(body / 2)}))),
        ("revoke: long token", http.post(url("/v1/tokens/revoke")).json(&json!({"refresh_token": format!("lkr_{long}")}))),
        ("oauth token: scope of distinct tokens", http.post(url("/oauth/token")).header("content-type", "application/x-www-form-urlencoded").body(format!("grant_type=refresh_token&refresh_token=lkr_x&scope={form_scope}"))),
        ("oauth token: long Basic", http.post(url("/oauth/token")).header("authorization", &basic).header("content-type", "application/x-www-form-urlencoded").body(format!("grant_type=client_credentials&scope={form_scope}"))),
        ("oauth revoke: long token", http.post(url("/oauth/revoke")).header("content-type", "application/x-www-form-urlencoded").body(format!("token={long}&client_id=default"))),
        ("oauth introspect: long token", http.post(url("/oauth/introspect")).header("authorization", &basic).header("content-type", "application/x-www-form-urlencoded").body(format!("token={long}"))),
        ("revocation feed: long cursor", http.get(url(&format!("/v1/revocations?after={}", "9".repeat(8000)))).header("authorization", &basic)),
        ("jwks", http.get(url("/.well-known/jwks.json")).header("authorization", &bearer)),
        ("metadata", http.get(url("/.well-known/oauth-authorization-server")).header("authorization", &bearer)),
        ("unknown route", http.post(url(&format!("/{}", "x".repeat(8000)))).body(long.clone())),
    ];
    const EACH: u32 = 100;
    let mut worst = (Duration::ZERO, "");
    for (name, request) in cases {
        let mut answered = None;
        let before = cpu_time(pid);
        for _ in 0..EACH {
            let r = request
                .try_clone()
                .expect("clonable")
                .timeout(Duration::from_secs(10))
                .send()
                .await
                .expect("request");
            let status = r.status();
            assert!(
                status.is_client_error() || status.is_success(),
                "{name}: {status}"
            );
            let body = r.bytes().await.expect("body");
            // Nothing of the hostile input is echoed back at length.
            assert!(body.len() < 4096, "{name}: {} byte answer", body.len());
            answered = Some(status);
        }
        let per_request = (cpu_time(pid) - before) / EACH;
        eprintln!("{name}: {answered:?}, {per_request:?} of server CPU per request");
        if per_request > worst.0 {
            worst = (per_request, name);
        }
    }
    assert!(
        worst.0 < Duration::from_millis(10),
        "{} costs {:?} of CPU per request",
        worst.1,
        worst.0
    );
}
