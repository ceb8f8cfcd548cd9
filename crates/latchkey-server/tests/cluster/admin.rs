//! The administration API on a cluster: disabling or deleting an account
//! through one node ends its sessions on every node (access tokens refused
//! through the revocation set, refresh tokens at once), as an operator
//! client with `latchkey:admin` created by `latchkey clients create`.

use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;

use latchkey_testkit::cluster::*;
use latchkey_testkit::http::*;
use latchkey_testkit::postgres::*;

/// Polls `/v1/me` with `at` on every node until each answers 401; returns
/// how long after `since` each did (panics on any other answer or after
/// `give_up`).
async fn refused_everywhere(
    http: &reqwest::Client,
    bases: &[String],
    at: &str,
    since: Instant,
    give_up: Duration,
) -> Vec<Duration> {
    let mut out = Vec::new();
    for base in bases {
        loop {
            let (status, body) = me(http, base, at).await.expect("GET /v1/me");
            match status {
                401 => break,
                200 => assert!(
                    since.elapsed() < give_up,
                    "{base} still accepts after {give_up:?}"
                ),
                _ => panic!("{base}/v1/me answered {status}: {body}"),
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        out.push(since.elapsed());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn disabling_or_deleting_on_one_node_ends_the_sessions_on_every_node() {
    let Some(server) = server_url() else { return };
    let cluster = Cluster::start(env!("CARGO_BIN_EXE_latchkey"), &server, "admin", &[], None);
    let created = cluster.operator(&[
        "clients",
        "create",
        "ops",
        "--type",
        "confidential",
        "--scope",
        "latchkey:admin",
    ]);
    let created: Value = serde_json::from_str(&created).expect("clients create JSON");
    let secret = created["client_secret"].as_str().expect("secret");
    let http = http_client();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("ops:{secret}"));
    let (status, body) = send(
        http.post(format!("{}/oauth/token", cluster.base(0)))
            .header("authorization", format!("Basic {basic}"))
            .form(&[("grant_type", "client_credentials")]),
    )
    .await
    .expect("token");
    assert_eq!(status, 200, "{body}");
    let admin = token(&body, "access_token");
    let bases = cluster.bases();

    for (round, action) in ["disable", "delete"].into_iter().enumerate() {
        // Sessions opened on nodes 1 and 2; the action goes to node 0.
        let (at, rt) = account(&http, cluster.base(1), &format!("user{round}")).await;
        let (status, second) = sign_in(&http, cluster.base(2), &format!("user{round}"))
            .await
            .expect("sign-in");
        assert_eq!(status, 200, "{second}");
        let (at2, rt2) = (
            token(&second, "access_token"),
            token(&second, "refresh_token"),
        );
        let (status, me_body) = me(&http, cluster.base(0), &at).await.expect("me");
        assert_eq!(status, 200, "{me_body}");
        let id = me_body["id"].as_str().expect("id").to_owned();
        let request = match action {
            "disable" => http
                .patch(format!("{}/admin/v1/users/{id}", cluster.base(0)))
                .json(&serde_json::json!({"disabled": true})),
            _ => http.delete(format!("{}/admin/v1/users/{id}", cluster.base(0))),
        };
        let (status, body) = send(request.bearer_auth(&admin)).await.expect(action);
        let acked = Instant::now();
        assert!(status == 200 || status == 204, "{action}: {status} {body}");
        for at in [&at, &at2] {
            let times = refused_everywhere(&http, &bases, at, acked, Duration::from_secs(2)).await;
            eprintln!("{action}: access token refused on nodes 0, 1, 2 after {times:?}");
            assert!(
                times.iter().all(|t| *t <= Duration::from_millis(1500)),
                "{times:?}"
            );
        }
        for (node, rt) in [(1, &rt), (2, &rt2)] {
            let (status, body) = refresh(&http, cluster.base(node), rt)
                .await
                .expect("refresh");
            assert_eq!(status, 401, "{action}: refresh on node {node}: {body}");
        }
    }
}
