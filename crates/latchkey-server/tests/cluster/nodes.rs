//! Scale-out: three real `latchkey` processes sharing one PostgreSQL
//! database and one data directory (the shared server secret) behave as
//! one service: parallel refreshes spread over the nodes converge on one
//! successor, replay and sign-out revoke everywhere within 2 s, and a key
//! rotation under load never produces a token some node refuses.
//!
//! The database comes from `LATCHKEY_TEST_DATABASE_URL` (see
//! `scripts/postgres-test-cluster.sh`); without it every test prints
//! `skipped: LATCHKEY_TEST_DATABASE_URL is not set` and passes. Each test
//! works in a schema of its own (`options=-csearch_path=<schema>`), created
//! and dropped with `psql`, and kills its nodes when it ends, also on panic.
//! PostgreSQL restarts are in `cluster_outage.rs`, a test binary of its own.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::Value;

use latchkey_testkit::cluster::*;
use latchkey_testkit::http::*;
use latchkey_testkit::postgres::*;

/// The `kid` in a JWT's header.
fn kid_of(jwt: &str) -> String {
    let header = jwt.split('.').next().expect("jwt header");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .expect("base64url header");
    let v: Value = serde_json::from_slice(&bytes).expect("json header");
    v["kid"].as_str().expect("kid").to_owned()
}

async fn jwks_kids(http: &reqwest::Client, base: &str) -> BTreeSet<String> {
    let (status, body) = send(http.get(format!("{base}/.well-known/jwks.json")))
        .await
        .expect("jwks");
    assert_eq!(status, 200, "jwks: {body}");
    body["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect()
}

/// Polls `/v1/me` with `at` on every node until it answers 401; returns
/// per node how long after `since` the first 401 came (`None`: still 200
/// at `since + give_up`). Any other answer fails the test.
async fn time_until_refused(
    http: &reqwest::Client,
    bases: &[String],
    at: &str,
    since: Instant,
    give_up: Duration,
) -> Vec<Option<Duration>> {
    let polls: Vec<_> = bases
        .iter()
        .cloned()
        .map(|base| {
            let (http, at) = (http.clone(), at.to_owned());
            tokio::spawn(async move {
                for _ in 0..100_000u32 {
                    let (status, body) = me(&http, &base, &at).await.expect("GET /v1/me");
                    match status {
                        401 => return Some(since.elapsed()),
                        200 => {}
                        _ => panic!("{base}/v1/me answered {status}: {body}"),
                    }
                    if since.elapsed() > give_up {
                        return None;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                None
            })
        })
        .collect();
    let mut out = Vec::new();
    for p in polls {
        out.push(p.await.expect("poll task"));
    }
    out
}

fn fmt_times(times: &[Option<Duration>]) -> String {
    times
        .iter()
        .enumerate()
        .map(|(i, t)| match t {
            Some(d) => format!("node {i}: {}", ms(*d)),
            None => format!("node {i}: NOT REFUSED"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------
// 1. Parallel refreshes over three nodes, then replay
// ---------------------------------------------------------------------------

/// 30 refreshes of one token at once, round-robin over the nodes (tabs
/// behind a load balancer): all succeed with one and the same successor.
/// After the grace window the old token is a replay: 401, and the session
/// is dead on every node, its access tokens refused within 2 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_refreshes_converge_and_a_replay_revokes_everywhere() {
    let Some(server) = server_url() else { return };
    let cluster = Cluster::start(
        env!("CARGO_BIN_EXE_latchkey"),
        &server,
        "refresh",
        &["--refresh-grace", "1s"],
        None,
    );
    let http = http_client();
    let (at0, rt0) = account(&http, cluster.base(0), "tabs").await;

    // Warm up: open the HTTP connections of the burst and the nodes'
    // database connections, so the burst is short.
    let warm: Vec<_> = (0..30)
        .map(|i| {
            let (http, base, at) = (http.clone(), cluster.base(i).to_owned(), at0.clone());
            tokio::spawn(async move { me(&http, &base, &at).await })
        })
        .collect();
    for w in warm {
        let (status, body) = w.await.expect("warm-up task").expect("warm-up");
        assert_eq!(status, 200, "warm-up /v1/me: {body}");
    }

    // The grace window is counted in whole seconds (`now < last_refreshed
    // + 1`): a burst straddling a second boundary would see part of its
    // requests after a 1 s window. Start just after a boundary.
    let into_second = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .subsec_nanos();
    tokio::time::sleep(
        Duration::from_nanos(u64::from(1_000_000_000 - into_second)) + Duration::from_millis(20),
    )
    .await;

    let started = Instant::now();
    let burst: Vec<_> = (0..30)
        .map(|i| {
            let (http, base, rt) = (http.clone(), cluster.base(i).to_owned(), rt0.clone());
            tokio::spawn(async move { (i % NODES, refresh(&http, &base, &rt).await) })
        })
        .collect();
    let mut successors = BTreeSet::new();
    let mut access_tokens = BTreeSet::from([at0.clone()]);
    let mut per_node = [0usize; NODES];
    for task in burst {
        let (node, result) = task.await.expect("refresh task");
        let (status, body) = result.expect("refresh");
        assert_eq!(status, 200, "parallel refresh on node {node}: {body}");
        successors.insert(token(&body, "refresh_token"));
        access_tokens.insert(token(&body, "access_token"));
        per_node[node] += 1;
    }
    let burst_took = started.elapsed();
    eprintln!(
        "30 parallel refreshes (per node {per_node:?}) took {}: {} distinct successor(s), {} distinct access tokens",
        ms(burst_took),
        successors.len(),
        access_tokens.len() - 1
    );
    assert_eq!(
        successors.len(),
        1,
        "parallel refreshes diverged: {successors:?}"
    );
    let rt1 = successors.pop_first().expect("successor");
    assert_ne!(rt1, rt0);
    let bases = cluster.bases();
    for at in &access_tokens {
        for base in &bases {
            let (status, body) = me(&http, base, at).await.expect("me");
            assert_eq!(status, 200, "{base}/v1/me before the replay: {body}");
        }
    }

    // Past the 1 s grace window (whole seconds: wait for the second after next).
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let (status, body) = refresh(&http, cluster.base(2), &rt0).await.expect("replay");
    let revoked_at = Instant::now();
    assert_eq!(
        status, 401,
        "replay of the old token after the grace window: {body}"
    );
    assert_eq!(body["error"], "invalid_grant");

    let any_at = access_tokens
        .iter()
        .next()
        .expect("an access token")
        .clone();
    let times =
        time_until_refused(&http, &bases, &any_at, revoked_at, Duration::from_secs(5)).await;
    eprintln!(
        "replay on node 2 -> access token refused by /v1/me: {}",
        fmt_times(&times)
    );
    for (i, t) in times.iter().enumerate() {
        assert!(
            t.is_some_and(|t| t <= Duration::from_secs(2)),
            "node {i} still accepted the revoked session's access token: {}",
            fmt_times(&times)
        );
    }

    for (i, base) in bases.iter().enumerate() {
        let (status, body) = refresh(&http, base, &rt1).await.expect("successor");
        assert_eq!(status, 401, "node {i}: successor after the replay: {body}");
        let (status, body) = refresh(&http, base, &rt0).await.expect("old token");
        assert_eq!(status, 401, "node {i}: old token after the replay: {body}");
        for at in &access_tokens {
            let (status, body) = me(&http, base, at).await.expect("me");
            assert_eq!(
                status, 401,
                "node {i}: access token of the revoked session: {body}"
            );
        }
    }
    let reuse_logged = cluster
        .warnings()
        .iter()
        .filter(|l| l.contains("reuse detected"))
        .count();
    assert_eq!(
        reuse_logged,
        1,
        "one replay, one reuse warning: {:#?}",
        cluster.warnings()
    );
}

// ---------------------------------------------------------------------------
// 2. Sign-out on one node reaches the others
// ---------------------------------------------------------------------------

/// Sign-out on node A: nodes B and C refuse the session's access token
/// within 2 s (they re-read revocations every 200 ms); A at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sign_out_on_one_node_is_refused_by_the_others_within_2s() {
    let Some(server) = server_url() else { return };
    let cluster = Cluster::start(
        env!("CARGO_BIN_EXE_latchkey"),
        &server,
        "signout",
        &[],
        None,
    );
    let http = http_client();
    let bases = cluster.bases();
    let mut recording = Vec::new();
    let mut others = Vec::new();
    for round in 0..6 {
        let a = round % NODES;
        let (at, _rt) = account(&http, cluster.base(a), &format!("leaver{round}")).await;
        for base in &bases {
            let (status, body) = me(&http, base, &at).await.expect("me");
            assert_eq!(status, 200, "{base}/v1/me before sign-out: {body}");
        }
        let sent = Instant::now();
        let (status, body) = send(
            http.post(format!("{}/v1/sign-out", cluster.base(a)))
                .bearer_auth(&at),
        )
        .await
        .expect("sign-out");
        let acked = Instant::now();
        assert_eq!(status, 204, "sign-out on node {a}: {body}");
        let times = time_until_refused(&http, &bases, &at, acked, Duration::from_secs(5)).await;
        eprintln!(
            "round {round}: sign-out on node {a} (request took {}); refused after the 204 by {}",
            ms(acked - sent),
            fmt_times(&times)
        );
        for (i, t) in times.iter().enumerate() {
            assert!(
                t.is_some_and(|t| t <= Duration::from_secs(2)),
                "round {round}: node {i} accepted a signed-out session's token too long: {}",
                fmt_times(&times)
            );
            let t = t.expect("checked");
            if i == a {
                recording.push(t);
            } else {
                others.push(t);
            }
        }
    }
    let max = |v: &[Duration]| v.iter().max().copied().unwrap_or_default();
    let mean = |v: &[Duration]| v.iter().sum::<Duration>() / v.len().max(1) as u32;
    eprintln!(
        "sign-out propagation: recording node max {} mean {}; other nodes max {} mean {} ({} samples)",
        ms(max(&recording)),
        ms(mean(&recording)),
        ms(max(&others)),
        ms(mean(&others)),
        others.len()
    );
}

// ---------------------------------------------------------------------------
// 3. Key rotation under load
// ---------------------------------------------------------------------------

/// One minted access token as the load saw it.
struct Minted {
    node: usize,
    /// When the request that minted it was sent.
    sent: Instant,
    kid: String,
}

#[derive(Default)]
struct LoadLog {
    minted: Vec<Minted>,
    /// Every 10th access token, for a final check on every node.
    sample: Vec<String>,
    failures: Vec<String>,
    verified: u64,
}

/// `latchkey keys rotate` on the cluster's data directory and database.
fn rotate_with_cli(cluster: &Cluster) -> Value {
    let stdout = cluster.operator(&["keys", "rotate"]);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("keys rotate output ({e}): {stdout}"))
}

/// Sign-ins and refreshes on every node while the CLI rotates the keys:
/// every access token any node mints verifies on every node, during and
/// after; the new next key reaches every JWKS within 6 s and every node
/// signs with the promoted key within 6 s. The nodes start 1.7 s apart, so
/// their 5 s key reloads are out of phase: for seconds some nodes sign
/// with the promoted key while others still sign with the retired one.
#[tokio::test(flavor = "multi_thread", worker_threads = 6)]
async fn key_rotation_under_load_keeps_every_token_valid_on_every_node() {
    let Some(server) = server_url() else { return };
    let cluster = Cluster::start(
        env!("CARGO_BIN_EXE_latchkey"),
        &server,
        "keys",
        &[],
        Some(Duration::from_millis(1700)),
    );
    let http = http_client();
    let bases = cluster.bases();

    let mut before = Vec::new();
    for base in &bases {
        before.push(jwks_kids(&http, base).await);
    }
    assert!(
        before.iter().all(|k| *k == before[0]),
        "JWKS differ: {before:?}"
    );
    assert_eq!(
        before[0].len(),
        2,
        "a current and a next key: {:?}",
        before[0]
    );

    let log = Arc::new(Mutex::new(LoadLog::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let hard_deadline = Instant::now() + Duration::from_secs(40);
    let mut workers = Vec::new();
    for w in 0..2 * NODES {
        let node = w % NODES;
        let (http, bases, log, stop) = (http.clone(), bases.clone(), log.clone(), stop.clone());
        let user = format!("rotor{w}");
        let (at, rt) = account(&http, &bases[node], &user).await;
        log.lock().unwrap().sample.push(at);
        workers.push(tokio::spawn(async move {
            let mut rt = rt;
            for i in 0..20_000u32 {
                if stop.load(Ordering::Relaxed) || Instant::now() > hard_deadline {
                    break;
                }
                let sent = Instant::now();
                // Mostly refreshes; every 5th a fresh sign-in (new session).
                let (what, result) = if i % 5 == 4 {
                    ("sign-in", sign_in(&http, &bases[node], &user).await)
                } else {
                    ("refresh", refresh(&http, &bases[node], &rt).await)
                };
                let t = match result {
                    Ok((200, t)) => t,
                    other => {
                        log.lock().unwrap().failures.push(format!(
                            "worker {w}: {what} on node {node} answered {other:?}"
                        ));
                        break;
                    }
                };
                rt = token(&t, "refresh_token");
                let at = token(&t, "access_token");
                let kid = kid_of(&at);
                for (v, base) in bases.iter().enumerate() {
                    match me(&http, base, &at).await {
                        Ok((200, _)) => log.lock().unwrap().verified += 1,
                        other => log.lock().unwrap().failures.push(format!(
                            "token by node {node} (kid {kid}, sent {:?} after start) refused by node {v}: {other:?}",
                            sent.elapsed()
                        )),
                    }
                }
                let mut log = log.lock().unwrap();
                if i % 10 == 0 {
                    log.sample.push(at);
                }
                log.minted.push(Minted { node, sent, kid });
            }
        }));
    }

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let cli_started = Instant::now();
    let rotation = {
        let c = &cluster;
        tokio::task::block_in_place(|| rotate_with_cli(c))
    };
    let rotated_at = Instant::now();
    eprintln!("keys rotate ({}): {rotation}", ms(rotated_at - cli_started));
    assert_eq!(rotation["rotated"], true, "{rotation}");
    let retired = rotation["retired"].as_str().expect("retired").to_owned();
    let current = rotation["current"].as_str().expect("current").to_owned();
    let next = rotation["next"].as_str().expect("next").to_owned();
    assert!(before[0].contains(&retired) && before[0].contains(&current));
    assert!(!before[0].contains(&next));

    // The new next key appears in every node's JWKS.
    let mut jwks_after = vec![None; NODES];
    for _ in 0..200 {
        for (i, base) in bases.iter().enumerate() {
            if jwks_after[i].is_none() && jwks_kids(&http, base).await.contains(&next) {
                jwks_after[i] = Some(rotated_at.elapsed());
            }
        }
        if jwks_after.iter().all(Option::is_some) || rotated_at.elapsed() > Duration::from_secs(10)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "new next key {next} in JWKS after the CLI returned: {}",
        fmt_times(&jwks_after)
    );
    for (i, t) in jwks_after.iter().enumerate() {
        assert!(
            t.is_some_and(|t| t <= Duration::from_secs(6)),
            "node {i}: new key not in JWKS within 6 s: {}",
            fmt_times(&jwks_after)
        );
    }

    // Load for 12 s after the rotation: every node reloads keys twice.
    tokio::time::sleep(
        (rotated_at + Duration::from_secs(12)).saturating_duration_since(Instant::now()),
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.expect("worker");
    }

    let log = std::mem::take(&mut *log.lock().unwrap());
    let mut by_kid: BTreeMap<(usize, String), usize> = BTreeMap::new();
    let mut switched = vec![None; NODES];
    let mut stale_late = Vec::new();
    let mut new_early = 0;
    for m in &log.minted {
        *by_kid.entry((m.node, m.kid.clone())).or_default() += 1;
        if m.kid == current {
            if m.sent < cli_started {
                new_early += 1;
            }
            let t = m.sent.saturating_duration_since(rotated_at);
            if switched[m.node].is_none_or(|s| t < s) {
                switched[m.node] = Some(t);
            }
        } else if m.sent > rotated_at + Duration::from_secs(6) {
            stale_late.push(format!(
                "node {} kid {} at +{:?}",
                m.node,
                m.kid,
                m.sent - rotated_at
            ));
        }
    }
    eprintln!(
        "{} tokens minted, {} /v1/me checks passed; tokens per (node, kid): {by_kid:?}",
        log.minted.len(),
        log.verified
    );
    eprintln!(
        "first token with the promoted key {current}, per node, after the CLI returned: {}",
        fmt_times(&switched)
    );
    assert!(
        log.failures.is_empty(),
        "{} failures, first: {:#?}",
        log.failures.len(),
        &log.failures[..log.failures.len().min(20)]
    );
    assert!(
        log.minted.len() > 100,
        "too little load: {}",
        log.minted.len()
    );
    assert_eq!(new_early, 0, "tokens with the next key before the rotation");
    assert!(
        stale_late.is_empty(),
        "old key still signing 6 s after the rotation: {stale_late:?}"
    );
    for (i, t) in switched.iter().enumerate() {
        assert!(
            t.is_some_and(|t| t <= Duration::from_secs(6)),
            "node {i} never signed with {current}"
        );
    }

    // After: every sampled token (old and new key) still verifies everywhere,
    // and every node publishes the same three keys.
    for at in &log.sample {
        for base in &bases {
            let (status, body) = me(&http, base, at).await.expect("me");
            assert_eq!(
                status,
                200,
                "{base}: sampled token (kid {}) after the load: {body}",
                kid_of(at)
            );
        }
    }
    for base in &bases {
        let kids = jwks_kids(&http, base).await;
        assert_eq!(
            kids,
            BTreeSet::from([retired.clone(), current.clone(), next.clone()]),
            "{base}"
        );
    }
    let errors: Vec<_> = cluster
        .warnings()
        .into_iter()
        .filter(|l| l.contains("ERROR"))
        .collect();
    assert!(errors.is_empty(), "errors logged: {errors:#?}");
}
