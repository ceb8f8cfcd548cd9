//! `metrics_listen`: the real binary serves `/metrics` on its own listener
//! and not on the main one, and — a process of its own, so nothing else
//! moves its counters — sign-ins, refreshes and requests move them by
//! exactly what was done.

use latchkey_testkit::exposition::Exposition;
use latchkey_testkit::http::{account, post, refresh, sign_in, token, PASSWORD};
use latchkey_testkit::process::ServerProcess;
use serde_json::json;

/// A port free a moment ago on 127.0.0.1.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

async fn scrape(http: &reqwest::Client, metrics: &str) -> Exposition {
    let r = http
        .get(format!("{metrics}/metrics"))
        .send()
        .await
        .expect("scrape");
    assert_eq!(r.status(), 200);
    let text = r.text().await.expect("body");
    Exposition::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_listen_serves_exact_counts_apart_from_the_api() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let config = dir.path().join("latchkey.toml");
    // No grace: presenting a rotated token again is reuse at once. One free
    // failure per account, so the second is throttled.
    std::fs::write(
        &config,
        format!(
            "metrics_listen = \"127.0.0.1:{port}\"\nrefresh_grace = 0\n\
             [argon2]\nmemory_kib = 256\niterations = 1\nparallelism = 1\n\
             [rate_limits]\ntokens_per_minute = 0\nsign_up_per_minute = 0\n\
             [throttle]\naccount_free_failures = 1\n"
        ),
    )
    .expect("config");
    let server = ServerProcess::start(
        env!("CARGO_BIN_EXE_latchkey"),
        &dir.path().join("data"),
        &config,
    );
    let base = &server.base;
    let metrics = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();

    let r = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 404, "/metrics is not on the main listener");

    let before = scrape(&http, &metrics).await;
    let (_, rt) = account(&http, base, "counted").await;
    let (status, rotated) = refresh(&http, base, &rt).await.expect("refresh");
    assert_eq!(status, 200, "{rotated}");
    let (status, _) = refresh(&http, base, &rt).await.expect("replay");
    assert_eq!(status, 401, "the replay is reuse");
    let (status, _) = refresh(&http, base, &token(&rotated, "refresh_token"))
        .await
        .expect("refresh of an ended session");
    assert_eq!(status, 401);
    // Wrong passwords until the account is throttled.
    let (mut failures, mut throttled) = (0.0, 0.0);
    for _ in 0..5 {
        let (status, body) = post(
            &http,
            format!("{base}/v1/sign-in"),
            json!({ "username": "counted", "password": format!("not {PASSWORD}") }),
        )
        .await
        .expect("sign-in");
        match status {
            401 => failures += 1.0,
            429 => {
                throttled += 1.0;
                break;
            }
            other => panic!("wrong password answered {other} {body}"),
        }
    }
    assert_eq!(throttled, 1.0, "throttled within five failures");
    let after = scrape(&http, &metrics).await;

    let moved =
        |name: &str, labels: &[(&str, &str)]| after.sum(name, labels) - before.sum(name, labels);
    let sign_ins = "latchkey_sign_ins_total";
    assert_eq!(moved(sign_ins, &[("outcome", "success")]), 1.0);
    assert_eq!(moved(sign_ins, &[("outcome", "failure")]), failures);
    assert_eq!(moved(sign_ins, &[("outcome", "throttled")]), throttled);
    let refreshes = "latchkey_refreshes_total";
    assert_eq!(moved(refreshes, &[("outcome", "rotated")]), 1.0);
    assert_eq!(moved(refreshes, &[("outcome", "reuse_detected")]), 1.0);
    assert_eq!(moved(refreshes, &[("outcome", "refused")]), 1.0);
    assert_eq!(moved(refreshes, &[("outcome", "reissued_in_grace")]), 0.0);
    let requests = "latchkey_http_requests_total";
    let sign_in_route = ("route", "/v1/sign-in");
    assert_eq!(moved(requests, &[sign_in_route, ("status", "200")]), 1.0);
    assert_eq!(
        moved(requests, &[sign_in_route, ("status", "401")]),
        failures
    );
    assert_eq!(
        moved(requests, &[sign_in_route, ("status", "429")]),
        throttled
    );
    assert_eq!(
        moved(
            requests,
            &[("route", "/v1/tokens/refresh"), ("method", "POST")]
        ),
        3.0
    );
    assert_eq!(
        moved(requests, &[("route", "/v1/sign-up"), ("status", "201")]),
        1.0
    );
    // The 404 of /metrics on the main listener, under no raw path.
    assert_eq!(
        after.sum(requests, &[("route", "unmatched"), ("status", "404")]),
        1.0
    );
    // Sign-up hashed once; the sign-in and each failed one verified once
    // (the throttled one never reached the hashing pool).
    assert_eq!(
        moved("latchkey_password_hash_wait_seconds_count", &[]),
        2.0 + failures
    );
    assert!(moved("latchkey_store_commit_seconds_count", &[]) >= 1.0);
    assert_eq!(after.sum("latchkey_password_hash_queue_depth", &[]), 0.0);

    // Nothing but /metrics on the metrics listener.
    let (status, _) = sign_in(&http, &metrics, "counted").await.expect("request");
    assert_eq!(status, 404);
}
