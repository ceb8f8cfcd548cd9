//! `/metrics` and `/readyz` on the in-process server. The metrics recorder
//! is process-wide and other tests in this binary run at the same time, so
//! counters are compared before and after, and only as "moved by at least"
//! (the `processes` tests check exact amounts against a server process of
//! its own).

use latchkey_testkit::exposition::Exposition;
use latchkey_testkit::{error_code, TestServer};
use serde_json::Value;

/// Every family the server exports, with its type.
pub const FAMILIES: &[(&str, &str)] = &[
    ("latchkey_http_requests_total", "counter"),
    ("latchkey_http_request_duration_seconds", "histogram"),
    ("latchkey_sign_ins_total", "counter"),
    ("latchkey_refreshes_total", "counter"),
    ("latchkey_password_hash_queue_depth", "gauge"),
    ("latchkey_password_hash_wait_seconds", "histogram"),
    ("latchkey_store_commit_batch_size", "histogram"),
    ("latchkey_store_commit_seconds", "histogram"),
    ("latchkey_revocation_feed_lag_seconds", "gauge"),
    ("latchkey_live_sessions", "gauge"),
    ("latchkey_signing_key_age_seconds", "gauge"),
];

async fn scrape(s: &TestServer) -> Exposition {
    let r = s.http.get(s.url("/metrics")).send().await.expect("scrape");
    assert_eq!(r.status(), 200);
    let content_type = r.headers()["content-type"].to_str().expect("ascii");
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = r.text().await.expect("body");
    Exposition::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn moved(before: &Exposition, after: &Exposition, name: &str, labels: &[(&str, &str)]) -> f64 {
    after.sum(name, labels) - before.sum(name, labels)
}

#[tokio::test]
async fn counters_move_with_sign_ins_refreshes_and_requests() {
    let s = TestServer::start().await;
    let before = scrape(&s).await;

    let tokens = s.new_session("metrics-user").await;
    assert_eq!(
        s.sign_in("metrics-user", "wrong password!!").await.status(),
        401
    );
    let r = s.refresh(&tokens.refresh).await;
    assert_eq!(r.status(), 200);
    let rotated: Value = r.json().await.expect("json");
    // Past the grace window, the first token again is reuse.
    s.clock.advance(s.settings.policy.refresh.grace_seconds + 1);
    let r = s.refresh(&tokens.refresh).await;
    assert_eq!(error_code(r).await, "invalid_grant");
    // The session has ended, so its newest token is refused.
    let newest = rotated["refresh_token"].as_str().expect("refresh_token");
    assert_eq!(s.refresh(newest).await.status(), 401);
    // A route with a parameter, and one that matches no route.
    let r = s
        .http
        .delete(s.url("/v1/sessions/0badc0de-0000-4000-8000-000000000000"))
        .bearer_auth(&tokens.access)
        .send()
        .await
        .expect("request");
    assert!(r.status().is_client_error());
    let r = s
        .http
        .get(s.url("/v1/no-such-route-7f3a9"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 404);

    let after = scrape(&s).await;
    for (family, kind) in FAMILIES {
        assert_eq!(
            after.types.get(*family).map(String::as_str),
            Some(*kind),
            "{family}"
        );
    }
    let at_least = |name: &str, labels: &[(&str, &str)], n: f64| {
        let d = moved(&before, &after, name, labels);
        assert!(
            d >= n,
            "{name}{labels:?} moved by {d}, expected at least {n}"
        );
    };
    at_least("latchkey_sign_ins_total", &[("outcome", "success")], 1.0);
    at_least("latchkey_sign_ins_total", &[("outcome", "failure")], 1.0);
    at_least("latchkey_refreshes_total", &[("outcome", "rotated")], 1.0);
    at_least(
        "latchkey_refreshes_total",
        &[("outcome", "reuse_detected")],
        1.0,
    );
    at_least("latchkey_refreshes_total", &[("outcome", "refused")], 1.0);
    let sign_in_200 = [
        ("route", "/v1/sign-in"),
        ("method", "POST"),
        ("status", "200"),
    ];
    at_least("latchkey_http_requests_total", &sign_in_200, 1.0);
    at_least(
        "latchkey_http_request_duration_seconds_count",
        &sign_in_200,
        1.0,
    );
    at_least(
        "latchkey_http_requests_total",
        &[("route", "/v1/sign-in"), ("status", "401")],
        1.0,
    );
    at_least(
        "latchkey_http_requests_total",
        &[("route", "/v1/sessions/{id}"), ("method", "DELETE")],
        1.0,
    );
    at_least(
        "latchkey_http_requests_total",
        &[("route", "unmatched"), ("status", "404")],
        1.0,
    );
    at_least("latchkey_password_hash_wait_seconds_count", &[], 3.0);
    at_least("latchkey_store_commit_seconds_count", &[], 1.0);
    at_least("latchkey_store_commit_batch_size_sum", &[], 1.0);

    // Raw paths never become labels: only route templates do.
    for sample in after.series("latchkey_http_requests_total") {
        let route = &sample.labels["route"];
        assert!(route == "unmatched" || route.starts_with('/'), "{route}");
        assert!(
            !route.contains("0badc0de") && !route.contains("7f3a9"),
            "{route}"
        );
    }
    // A histogram's +Inf bucket holds every observation (of the same
    // series: CORS preflights to the route are answered too, as OPTIONS).
    let inf = after.sum(
        "latchkey_http_request_duration_seconds_bucket",
        &[
            ("route", "/v1/sign-in"),
            ("method", "POST"),
            ("status", "200"),
            ("le", "+Inf"),
        ],
    );
    assert_eq!(
        inf,
        after.sum("latchkey_http_request_duration_seconds_count", &sign_in_200)
    );
    assert!(after.sum("latchkey_signing_key_age_seconds", &[]) >= 0.0);
}

#[tokio::test]
async fn readyz_answers_ready_and_healthz_stays_liveness() {
    let s = TestServer::start().await;
    let r = s.http.get(s.url("/readyz")).send().await.expect("readyz");
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["status"], "ready");
    let r = s.http.get(s.url("/healthz")).send().await.expect("healthz");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.expect("body"), "ok");
}

#[tokio::test]
async fn with_metrics_listen_the_main_listener_has_no_metrics() {
    let s = TestServer::start_with(|settings| {
        settings.metrics_listen = Some("127.0.0.1:0".parse().expect("addr"));
    })
    .await;
    let r = s.http.get(s.url("/metrics")).send().await.expect("request");
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(r).await, "not_found");
    let metrics = s.metrics_base().expect("metrics listener");
    let r = s
        .http
        .get(format!("{metrics}/metrics"))
        .send()
        .await
        .expect("scrape");
    assert_eq!(r.status(), 200);
    let text = r.text().await.expect("body");
    let scraped = Exposition::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(scraped.types.contains_key("latchkey_http_requests_total"));
    // Only /metrics there: the API stays on the main listener.
    let r = s
        .http
        .get(format!("{metrics}/v1/me"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 404);
}
