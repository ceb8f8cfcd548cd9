//! `kill -9` under refresh load loses no acknowledged write: the real
//! binary, a real SQLite file, real HTTP.

use std::time::{Duration, Instant};

use latchkey_testkit::process::ServerProcess;
use serde_json::{json, Value};

async fn post(http: &reqwest::Client, url: String, body: Value) -> Option<(u16, Value)> {
    let r = http.post(url).json(&body).send().await.ok()?;
    let status = r.status().as_u16();
    let body = r.json::<Value>().await.unwrap_or(Value::Null);
    Some((status, body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_acknowledged_refresh() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("latchkey.toml");
    std::fs::write(
        &config,
        "[argon2]\nmemory_kib = 256\niterations = 1\nparallelism = 1\n\
         [rate_limits]\ntokens_per_minute = 0\n",
    )
    .expect("config");
    let data = dir.path().join("data");
    let http = reqwest::Client::new();

    for round in 0..3u64 {
        let server = ServerProcess::start(env!("CARGO_BIN_EXE_latchkey"), &data, &config);
        let base = server.base.clone();
        // Each worker: its own account and session, refreshing in a loop and
        // remembering the newest token the server acknowledged.
        let mut workers = Vec::new();
        for w in 0..4 {
            let http = http.clone();
            let base = base.clone();
            workers.push(tokio::spawn(async move {
                let user = format!("crash-{round}-{w}");
                let creds = json!({"username": user, "password": "correct horse battery"});
                post(&http, format!("{base}/v1/sign-up"), creds.clone()).await;
                let (_, t) = post(&http, format!("{base}/v1/sign-in"), creds)
                    .await
                    .expect("sign-in");
                let mut acked = t["refresh_token"].as_str().expect("token").to_owned();
                let mut revoked = None;
                let deadline = Instant::now() + Duration::from_secs(10);
                for i in 0..100_000u32 {
                    if Instant::now() > deadline {
                        break;
                    }
                    let body = json!({"refresh_token": acked});
                    match post(&http, format!("{base}/v1/tokens/refresh"), body).await {
                        Some((200, t)) => {
                            acked = t["refresh_token"].as_str().expect("token").to_owned();
                        }
                        Some((status, body)) => panic!("refresh answered {status}: {body}"),
                        None => break, // the server is gone
                    }
                    // Now and then, a second session revoked with an ack.
                    if i == 5 && w == 0 {
                        let creds = json!({"username": user, "password": "correct horse battery"});
                        if let Some((200, t)) =
                            post(&http, format!("{base}/v1/sign-in"), creds).await
                        {
                            let rt = t["refresh_token"].as_str().expect("token").to_owned();
                            let r = post(
                                &http,
                                format!("{base}/v1/tokens/revoke"),
                                json!({"refresh_token": rt}),
                            )
                            .await;
                            if r.is_some() {
                                revoked = Some(rt);
                            }
                        }
                    }
                }
                (acked, revoked)
            }));
        }
        // Kill at a different moment each round.
        tokio::time::sleep(Duration::from_millis(300 + 250 * round)).await;
        let mut server = server;
        server.child.kill().expect("kill -9");
        server.child.wait().expect("reap");

        let mut results = Vec::new();
        for w in workers {
            results.push(w.await.expect("worker"));
        }
        let server = ServerProcess::start(env!("CARGO_BIN_EXE_latchkey"), &data, &config);
        for (acked, revoked) in results {
            // The newest acknowledged token works: either it is current, or
            // its in-flight successor committed and the grace window hands
            // that successor over.
            let r = post(
                &http,
                format!("{}/v1/tokens/refresh", server.base),
                json!({"refresh_token": acked}),
            )
            .await
            .expect("refresh after restart");
            assert_eq!(r.0, 200, "round {round}: acknowledged token lost: {}", r.1);
            if let Some(rt) = revoked {
                let r = post(
                    &http,
                    format!("{}/v1/tokens/refresh", server.base),
                    json!({"refresh_token": rt}),
                )
                .await
                .expect("refresh of revoked");
                assert_eq!(r.0, 401, "round {round}: acknowledged revocation lost");
            }
        }
        let mut server = server;
        server.child.kill().expect("kill");
        server.child.wait().expect("reap");
    }
}
