//! Durability under `kill -9`, checked with the load harness's own records
//! (`latchkey-bench --record`): the real binary, a real SQLite file, real
//! HTTP, three kills at different moments of a refresh load on one data dir.
//!
//! What the server promises and this test asserts after each restart:
//! - every worker's newest acknowledged refresh token still refreshes (200).
//!   If the worker's last refresh got no answer (`in_flight_refresh_token`,
//!   which is that same acknowledged token), the server may have rotated it
//!   before dying; then the acknowledged token is the previous one, inside
//!   the grace window, and still answers 200 with the committed successor.
//!   Either way the session is not treated as replayed: the token returned
//!   then refreshes too;
//! - every revocation answered 204 before the kill still holds (401), and
//!   that session is gone from its user's session list;
//! - every worker's session list is readable and marks exactly one current
//!   session.
//!
//! The harness binary is the one `LATCHKEY_BENCH_BIN` names, else the one
//! cargo built next to the `latchkey` binary (`cargo test --workspace`
//! builds it; the test fails saying so if it is missing). Nothing is built
//! from inside the test.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use latchkey_testkit::process::{sibling_binary, ServerProcess};
use serde_json::{json, Value};

const WORKERS: usize = 16;
const PASSWORD: &str = "correct horse battery";

/// The harness binary: `LATCHKEY_BENCH_BIN`, else the one cargo built next
/// to the `latchkey` binary (`cargo test --workspace` builds both).
fn bench_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("LATCHKEY_BENCH_BIN") {
        return PathBuf::from(p);
    }
    sibling_binary(Path::new(env!("CARGO_BIN_EXE_latchkey")), "latchkey-bench")
}

async fn post(http: &reqwest::Client, url: String, body: Value) -> Option<(u16, Value)> {
    let r = http.post(url).json(&body).send().await.ok()?;
    let status = r.status().as_u16();
    Some((status, r.json::<Value>().await.unwrap_or(Value::Null)))
}

async fn sessions(http: &reqwest::Client, base: &str, access: &str) -> (u16, Value) {
    let r = http
        .get(format!("{base}/v1/sessions"))
        .bearer_auth(access)
        .send()
        .await
        .expect("GET /v1/sessions");
    let status = r.status().as_u16();
    (status, r.json::<Value>().await.unwrap_or(Value::Null))
}

/// Exactly one session marked current, every entry well-formed.
fn assert_session_list(list: &Value, what: &str) -> usize {
    let entries = list["sessions"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: no sessions array: {list}"));
    for s in entries {
        assert!(
            s["id"].is_string() && s["created_at"].is_number() && s["expires_at"].is_number(),
            "{what}: malformed session entry {s}"
        );
    }
    let current = entries.iter().filter(|s| s["current"] == true).count();
    assert_eq!(current, 1, "{what}: {current} current sessions in {list}");
    entries.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_recorded_refresh_load() {
    let bench = bench_binary();
    let t_start = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("latchkey.toml");
    // Cheap Argon2 so setup is quick; a 30 s grace window so the check after
    // a restart always falls inside it.
    std::fs::write(
        &config,
        "refresh_grace = \"30s\"\n[rate_limits]\ntokens_per_minute = 0\nsign_up_per_minute = 0\n[argon2]\nmemory_kib = 256\niterations = 1\nparallelism = 1\n",
    )
    .expect("config");
    let data = dir.path().join("data");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");

    let mut server = ServerProcess::start(env!("CARGO_BIN_EXE_latchkey"), &data, &config);
    for (round, kill_after_ms) in [(0u32, 300u64), (1, 1200), (2, 2500)] {
        let base = server.base.clone();
        let records = dir.path().join(format!("records-{round}.jsonl"));
        let err_log = dir.path().join(format!("bench-{round}.err"));
        let mut load = Command::new(&bench)
            .args(["--target", &base, "--scenario", "refresh", "--workers"])
            .arg(WORKERS.to_string())
            .args(["--duration", "20s", "--max-requests", "2000000"])
            .args(["--run-id", &format!("durability-{round}")])
            .args(["--password", PASSWORD])
            .arg("--record")
            .arg(&records)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err_log).expect("log"))
            .spawn()
            .expect("spawn latchkey-bench");
        // Wait for the timed phase to start.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let log = std::fs::read_to_string(&err_log).unwrap_or_default();
            if log.contains("setup done") {
                break;
            }
            if let Ok(Some(status)) = load.try_wait() {
                panic!("round {round}: latchkey-bench exited during setup ({status}): {log}");
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: bench setup: {log}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        // Revocations with their own sessions, during the load, until the kill.
        let revoked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let revoker = {
            let (http, base, revoked) = (http.clone(), base.clone(), revoked.clone());
            tokio::spawn(async move {
                for k in 0..200u32 {
                    let user = format!("revoke-{round}-{k}");
                    let creds = json!({"username": user, "password": PASSWORD});
                    let Some((201, _)) =
                        post(&http, format!("{base}/v1/sign-up"), creds.clone()).await
                    else {
                        return;
                    };
                    let Some((200, t)) = post(&http, format!("{base}/v1/sign-in"), creds).await
                    else {
                        return;
                    };
                    let rt = t["refresh_token"].as_str().expect("token").to_owned();
                    let body = json!({"refresh_token": rt});
                    match post(&http, format!("{base}/v1/tokens/revoke"), body).await {
                        Some((204, _)) => revoked.lock().unwrap().push((user, rt)),
                        Some((s, b)) => panic!("revoke answered {s}: {b}"),
                        None => return,
                    }
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
            })
        };

        tokio::time::sleep(Duration::from_millis(kill_after_ms)).await;
        server.child.kill().expect("kill -9");
        server.child.wait().expect("reap");
        let killed_at = Instant::now();
        let acked_revocations = revoked.lock().unwrap().clone();
        revoker.await.expect("revoker");

        // The harness notices the dead server and writes its records.
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = load.try_wait().expect("wait bench") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = load.kill();
                panic!("round {round}: latchkey-bench did not stop after the kill");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(status.success(), "round {round}: latchkey-bench {status}");
        let recs: Vec<Value> = std::fs::read_to_string(&records)
            .expect("records")
            .lines()
            .map(|l| serde_json::from_str(l).expect("record line"))
            .collect();
        assert_eq!(recs.len(), WORKERS, "round {round}: one record per worker");
        assert!(
            recs.iter().any(|r| r["stop_reason"] != "deadline"),
            "round {round}: the kill came after the load had ended"
        );

        server = ServerProcess::start(env!("CARGO_BIN_EXE_latchkey"), &data, &config);
        let base = server.base.clone();
        let (mut in_flight, mut rotations) = (0, 0);
        for r in &recs {
            let w = &r["worker"];
            let acked = r["refresh_token"]
                .as_str()
                .unwrap_or_else(|| panic!("round {round} worker {w}: no acknowledged token"));
            rotations += r["rotations"].as_u64().unwrap_or(0);
            if let Some(t) = r["in_flight_refresh_token"].as_str() {
                in_flight += 1;
                // The harness only ever presents its newest acknowledged token.
                assert_eq!(t, acked, "round {round} worker {w}: in-flight token");
            }
            let (s, t) = post(
                &http,
                format!("{base}/v1/tokens/refresh"),
                json!({"refresh_token": acked}),
            )
            .await
            .expect("refresh after restart");
            assert_eq!(
                s, 200,
                "round {round} worker {w}: acknowledged refresh token lost \
                 (in flight: {}): {t}",
                r["in_flight_outcome"]
            );
            // Not treated as a replay: the successor refreshes too.
            let next = t["refresh_token"].as_str().expect("token");
            let (s, t) = post(
                &http,
                format!("{base}/v1/tokens/refresh"),
                json!({"refresh_token": next}),
            )
            .await
            .expect("second refresh");
            assert_eq!(s, 200, "round {round} worker {w}: session ended: {t}");
            let access = t["access_token"].as_str().expect("access");
            let (s, list) = sessions(&http, &base, access).await;
            assert_eq!(s, 200, "round {round} worker {w}: sessions: {list}");
            assert_session_list(&list, &format!("round {round} worker {w}"));
        }
        for (user, rt) in &acked_revocations {
            let (s, b) = post(
                &http,
                format!("{base}/v1/tokens/refresh"),
                json!({"refresh_token": rt}),
            )
            .await
            .expect("refresh of revoked");
            assert_eq!(
                s, 401,
                "round {round}: revocation of {user} acknowledged, then lost: {b}"
            );
            // The revoked session is not listed; the new one is the only one.
            let creds = json!({"username": user, "password": PASSWORD});
            let (s, t) = post(&http, format!("{base}/v1/sign-in"), creds)
                .await
                .expect("sign-in");
            assert_eq!(s, 200, "round {round}: sign-in of {user}: {t}");
            let (s, list) = sessions(&http, &base, t["access_token"].as_str().unwrap()).await;
            assert_eq!(s, 200, "round {round}: sessions of {user}: {list}");
            let n = assert_session_list(&list, &format!("round {round} {user}"));
            assert_eq!(
                n, 1,
                "round {round}: revoked session of {user} still listed"
            );
        }
        eprintln!(
            "durability round {round}: killed after {kill_after_ms} ms of load; {} workers, \
             {rotations} acknowledged rotations, {in_flight} refreshes in flight at the kill, \
             {} acknowledged revocations; all held (checked {:.2} s after the kill)",
            recs.len(),
            acked_revocations.len(),
            killed_at.elapsed().as_secs_f64()
        );
    }
    drop(server);
    eprintln!(
        "durability: 3 rounds in {:.1} s",
        t_start.elapsed().as_secs_f64()
    );
}
