//! Scale-out under a database outage: three real `latchkey` nodes serve
//! refresh load from several workers while the PostgreSQL server they share
//! is stopped and started again. While it is down every failure is 503
//! `temporarily_unavailable` (never another 5xx, never a 4xx for a valid
//! token); no refresh token acknowledged with 200 is lost (if its
//! successor was being committed when the server went away, retrying it
//! inside the default 10 s grace window yields that successor); and every
//! node serves 200s again within 10 s of PostgreSQL's return, without
//! being restarted. `/readyz` follows: 200 before, 503
//! `temporarily_unavailable` (within its 1 s bound, naming no database
//! address) while PostgreSQL is down, 200 again after. And every operation
//! the OpenAPI document says may answer 503 does, to the request that
//! succeeds when the database is up (`support/documented_answers.rs`).
//!
//! A test binary of its own: it restarts the server that every other
//! PostgreSQL test uses, and cargo runs test binaries one after another.
//!
//! The database comes from `LATCHKEY_TEST_DATABASE_URL`; without it the
//! test prints `skipped: LATCHKEY_TEST_DATABASE_URL is not set` and passes.
//! The server must be the cluster of `scripts/postgres-test-cluster.sh` on
//! that URL's port. The restart keeps the cluster's data: the script's own
//! `stop` deletes the cluster directory (and `start` makes a new, empty
//! one), so the test stops and starts the same data directory with that
//! cluster's `pg_ctl`, as the script's user (`postgres` when run as root),
//! with the options the script started it with (`postmaster.opts`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "support/documented_answers.rs"]
mod documented_answers;

use documented_answers::{documented_pairs, Holder, AFTER_LOGOUT, CALLBACK};
use latchkey_testkit::cluster::*;
use latchkey_testkit::http::*;
use latchkey_testkit::postgres::*;

// ---------------------------------------------------------------------------
// Stopping and starting the test cluster, data kept
// ---------------------------------------------------------------------------

/// The cluster of `scripts/postgres-test-cluster.sh` serving `url`.
struct Postgres {
    pg_ctl: PathBuf,
    data: PathBuf,
    log: PathBuf,
    /// `postgres` options it was started with, minus `-D`, shell-quoted.
    options: String,
    as_postgres_user: bool,
    down: bool,
}

impl Postgres {
    fn locate(url: &str) -> Result<Self, String> {
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        let host_port = authority.rsplit('@').next().unwrap_or("");
        let port = host_port
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok())
            .unwrap_or(5432);
        let tmp = std::env::var("TMPDIR")
            .ok()
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| "/tmp".into());
        let state = PathBuf::from(tmp).join(format!("latchkey-pg-{port}.dir"));
        let dir =
            std::fs::read_to_string(&state).map_err(|e| format!("{}: {e}", state.display()))?;
        let dir = PathBuf::from(dir.trim());
        let data = dir.join("data");
        let opts_file = data.join("postmaster.opts");
        let opts = std::fs::read_to_string(&opts_file)
            .map_err(|e| format!("{}: {e}", opts_file.display()))?;
        // `/usr/lib/postgresql/15/bin/postgres "-D" "/tmp/..." "-p" "5433" ...`
        let binary = opts
            .split_whitespace()
            .next()
            .ok_or("empty postmaster.opts")?;
        let pg_ctl = PathBuf::from(binary)
            .parent()
            .ok_or("no bin directory")?
            .join("pg_ctl");
        let mut args: Vec<&str> = opts.split('"').skip(1).step_by(2).collect();
        if let Some(i) = args.iter().position(|a| *a == "-D") {
            args.drain(i..(i + 2).min(args.len()));
        }
        let options = args
            .iter()
            .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
            .collect::<Vec<_>>()
            .join(" ");
        let uid = Command::new("id")
            .arg("-u")
            .output()
            .map_err(|e| format!("id -u: {e}"))?;
        Ok(Self {
            pg_ctl,
            log: dir.join("server.log"),
            data,
            options,
            as_postgres_user: String::from_utf8_lossy(&uid.stdout).trim() == "0",
            down: false,
        })
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<(), String> {
        let mut cmd = if self.as_postgres_user {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&self.pg_ctl);
            c
        } else {
            Command::new(&self.pg_ctl)
        };
        let out = cmd
            .arg("-D")
            .arg(&self.data)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("pg_ctl: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "pg_ctl {args:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// Fast shutdown, as the script's `stop`: sessions are ended, running
    /// transactions rolled back.
    fn stop(&mut self) {
        self.down = true;
        self.pg_ctl(&["-m", "fast", "-w", "-t", "30", "stop"])
            .expect("stop PostgreSQL");
    }

    /// Starts it and waits until it accepts connections.
    fn start(&mut self) {
        let log = self.log.to_string_lossy().into_owned();
        self.pg_ctl(&["-l", &log, "-w", "-t", "30", "-o", &self.options, "start"])
            .expect("start PostgreSQL");
        self.down = false;
    }
}

impl Drop for Postgres {
    /// Never leave the shared test server down, whatever happened.
    fn drop(&mut self) {
        if self.down {
            if let Err(e) = self.pg_ctl(&[
                "-l",
                &self.log.to_string_lossy(),
                "-w",
                "-t",
                "30",
                "-o",
                &self.options,
                "start",
            ]) {
                eprintln!("restarting PostgreSQL after a failure: {e}");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------

/// Phases of the outage, by when a response arrived: `pg_ctl stop` running,
/// the server stopped, `pg_ctl start` running (until it accepts
/// connections), back.
const BEFORE: u8 = 0;
const STOPPING: u8 = 1;
const DOWN: u8 = 2;
const STARTING: u8 = 3;
const BACK: u8 = 4;
const PHASES: [&str; 5] = ["1 before", "2 stopping", "3 down", "4 starting", "5 back"];
const WORKERS: usize = 6;

#[derive(Default)]
struct Stats {
    /// (phase at response, node, outcome) → count.
    counts: BTreeMap<(&'static str, usize, String), u64>,
    violations: Vec<String>,
    /// Per node: first 200 after PostgreSQL started again, and last 503.
    first_ok_back: [Option<Instant>; NODES],
    last_503_back: [Option<Instant>; NODES],
    /// Per worker: the token it held when the server came back (acked
    /// before or while the outage started), and how that token's first
    /// answer after the return went.
    resumed: Vec<String>,
    final_tokens: Vec<(usize, String)>,
}

struct Timeline {
    phase: AtomicU8,
    /// When `pg_ctl start` began and when it returned (server ready).
    start_began: Mutex<Option<Instant>>,
    back_at: Mutex<Option<Instant>>,
}

/// PostgreSQL stopped for 4 s and started again under refresh load from
/// six workers spread round-robin over three nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 6)]
async fn postgres_restart_under_load_loses_nothing_and_nodes_recover() {
    let Some(server) = server_url() else { return };
    let mut pg = match Postgres::locate(&server) {
        Ok(pg) => pg,
        Err(e) => panic!(
            "{URL_VAR} must name the cluster of scripts/postgres-test-cluster.sh, which this test restarts: {e}"
        ),
    };
    // Default grace (10 s): a retry of the last acknowledged token whose
    // successor was committed as the server went away yields that successor.
    // Mail configured (to a loopback port nothing listens on): a password
    // reset request then queues itself in the store, and gets its 503 too.
    let cluster = Cluster::start(
        env!("CARGO_BIN_EXE_latchkey"),
        &server,
        "outage",
        &[
            "--smtp-url",
            "smtp://127.0.0.1:9",
            "--smtp-from",
            "noreply@latchkey.test",
        ],
        None,
    );
    let http = http_client();
    let bases = cluster.bases();
    let client: serde_json::Value = serde_json::from_str(&cluster.operator(&[
        "clients",
        "create",
        "outage",
        "--type",
        "confidential",
        // Its own token administers (the administration API's 503s).
        "--scope",
        "latchkey:admin",
        // The code flow's (UserInfo's and the consents' 503s).
        "--redirect-uri",
        CALLBACK,
        "--post-logout-redirect-uri",
        AFTER_LOGOUT,
    ]))
    .expect("client JSON");
    cluster.operator(&[
        "clients",
        "create",
        "outage-partner",
        "--third-party",
        "--redirect-uri",
        CALLBACK,
    ]);
    let holder = Holder::prepare(
        &http,
        &bases[0],
        "outage",
        "outage",
        client["client_secret"].as_str().expect("client_secret"),
        "outage-partner",
    )
    .await;
    let (doc_status, doc) = send(http.get(format!("{}/openapi.json", bases[0])))
        .await
        .expect("openapi.json");
    assert_eq!(doc_status, 200);

    let stats = Arc::new(Mutex::new(Stats::default()));
    let timeline = Arc::new(Timeline {
        phase: AtomicU8::new(BEFORE),
        start_began: Mutex::new(None),
        back_at: Mutex::new(None),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let hard_deadline = Instant::now() + Duration::from_secs(90);
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let (_at, rt) = account(&http, &bases[w % NODES], &format!("steady{w}")).await;
        let (http, bases, stats, timeline, stop) = (
            http.clone(),
            bases.clone(),
            stats.clone(),
            timeline.clone(),
            stop.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut acked = rt;
            // The token held when the server returned, until its first answer.
            let mut held: Option<String> = None;
            let mut seen_back = false;
            for i in 0..100_000usize {
                if stop.load(Ordering::Relaxed) || Instant::now() > hard_deadline {
                    break;
                }
                let node = (w + i) % NODES;
                let result = refresh(&http, &bases[node], &acked).await;
                let now = Instant::now();
                let phase = timeline.phase.load(Ordering::SeqCst);
                if phase >= STARTING && !seen_back {
                    seen_back = true;
                    held = Some(acked.clone());
                }
                let back_at = *timeline.back_at.lock().unwrap();
                let began = *timeline.start_began.lock().unwrap();
                let (pause, lost) = {
                    let mut s = stats.lock().unwrap();
                    let outcome = match &result {
                        Ok((status, body)) => match body["error"].as_str() {
                            Some(e) => format!("{status} {e}"),
                            None => status.to_string(),
                        },
                        Err(_) => "transport error".to_owned(),
                    };
                    *s.counts
                        .entry((PHASES[phase as usize], node, outcome))
                        .or_default() += 1;
                    match result {
                        Ok((200, t)) => {
                            if began.is_some_and(|b| now >= b) && s.first_ok_back[node].is_none() {
                                s.first_ok_back[node] = Some(now);
                            }
                            if held.take().is_some() {
                                let when = match back_at {
                                    Some(b) => format!("{} after", ms(now - b)),
                                    None => "while pg_ctl start was still waiting,".into(),
                                };
                                s.resumed.push(format!(
                                    "worker {w}: its last acknowledged token answered 200 on node {node} {when} the return"
                                ));
                            }
                            acked = token(&t, "refresh_token");
                            (false, false)
                        }
                        Ok((503, body)) if body["error"] == "temporarily_unavailable" => {
                            if phase >= STARTING {
                                s.last_503_back[node] = Some(now);
                            }
                            (true, false)
                        }
                        Ok((status, body)) => {
                            s.violations.push(format!(
                                "worker {w}, node {node}, phase {}: refresh of the last acknowledged token answered {status} {body}",
                                PHASES[phase as usize]
                            ));
                            // A 4xx: the session is gone, an acknowledged token was lost.
                            (true, (400..500).contains(&status))
                        }
                        Err(e) => {
                            s.violations.push(format!(
                                "worker {w}, node {node}, phase {}: transport error {e}",
                                PHASES[phase as usize]
                            ));
                            (true, false)
                        }
                    }
                };
                if lost {
                    return;
                }
                if pause {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            stats.lock().unwrap().final_tokens.push((w, acked));
        }));
    }

    tokio::time::sleep(Duration::from_secs(3)).await;
    for base in &bases {
        let (status, body) = readyz(&http, base).await;
        assert_eq!(status, 200, "{base}/readyz before the outage: {body}");
    }
    timeline.phase.store(STOPPING, Ordering::SeqCst);
    let down_at = Instant::now();
    tokio::task::block_in_place(|| pg.stop());
    timeline.phase.store(DOWN, Ordering::SeqCst);
    eprintln!("PostgreSQL stopped ({})", ms(down_at.elapsed()));
    for base in &bases {
        let asked = Instant::now();
        let (status, body) = readyz(&http, base).await;
        let took = asked.elapsed();
        assert_eq!(
            status, 503,
            "{base}/readyz while PostgreSQL is down: {body}"
        );
        assert_eq!(body["error"], "temporarily_unavailable", "{body}");
        let description = body["error_description"].as_str().unwrap_or_default();
        assert!(description.contains("database"), "{body}");
        assert!(
            !description.contains("postgres://") && !description.contains("127.0.0.1"),
            "the reason names how the database is reached: {body}"
        );
        assert!(
            took < Duration::from_secs(3),
            "{base}/readyz took {} while PostgreSQL was down",
            ms(took)
        );
    }
    let mut not_unavailable = Vec::new();
    let mut unavailable = 0;
    for (op, status) in documented_pairs(&doc) {
        if status != 503 {
            continue;
        }
        let Some(req) = holder.success(&op) else {
            not_unavailable.push(format!("{op}: no request for it"));
            continue;
        };
        match send(req).await {
            Ok((503, body)) if body["error"] == "temporarily_unavailable" => unavailable += 1,
            other => not_unavailable.push(format!("{op}: {other:?}")),
        }
    }
    assert!(
        not_unavailable.is_empty(),
        "documented 503s not given while PostgreSQL was down:\n{}",
        not_unavailable.join("\n")
    );
    eprintln!("{unavailable} documented 503 answers given while PostgreSQL was down");
    tokio::time::sleep(Duration::from_secs(4).saturating_sub(down_at.elapsed())).await;
    *timeline.start_began.lock().unwrap() = Some(Instant::now());
    timeline.phase.store(STARTING, Ordering::SeqCst);
    tokio::task::block_in_place(|| pg.start());
    let back_at = Instant::now();
    *timeline.back_at.lock().unwrap() = Some(back_at);
    timeline.phase.store(BACK, Ordering::SeqCst);
    eprintln!(
        "PostgreSQL back, {} after the stop began",
        ms(back_at - down_at)
    );

    let mut ready_again = Vec::new();
    for base in &bases {
        loop {
            let (status, body) = readyz(&http, base).await;
            if status == 200 {
                ready_again.push(ms(back_at.elapsed()));
                break;
            }
            assert!(
                back_at.elapsed() < Duration::from_secs(10),
                "{base}/readyz still {status} {body} 10 s after PostgreSQL's return"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    eprintln!("/readyz 200 again on every node, by: {ready_again:?}");
    tokio::time::sleep(Duration::from_secs(12).saturating_sub(back_at.elapsed())).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.expect("worker");
    }

    let stats = std::mem::take(&mut *stats.lock().unwrap());
    let mut by_phase: BTreeMap<(&str, String), u64> = BTreeMap::new();
    for ((phase, node, outcome), n) in &stats.counts {
        eprintln!("  {phase:>6} node {node}: {outcome:<32} {n}");
        *by_phase.entry((phase, outcome.clone())).or_default() += n;
    }
    eprintln!("responses by phase and outcome: {by_phase:?}");
    for line in &stats.resumed {
        eprintln!("  {line}");
    }
    let recovery: Vec<String> = (0..NODES)
        .map(|i| {
            let rel = |t: Option<Instant>| match t {
                Some(t) if t >= back_at => format!("+{}", ms(t - back_at)),
                Some(t) => format!("-{}", ms(back_at - t)),
                None => "none".to_owned(),
            };
            format!(
                "node {i}: first 200 {}, last 503 {}",
                rel(stats.first_ok_back[i]),
                rel(stats.last_503_back[i])
            )
        })
        .collect();
    eprintln!("recovery after PostgreSQL returned: {recovery:?}");
    let warnings = cluster.warnings();
    // tower_http logs every 5xx response at ERROR ("response failed"): the
    // expected 503s are counted above; any other ERROR line is a finding.
    let errors: Vec<&String> = warnings
        .iter()
        .filter(|l| l.contains(r#""level":"ERROR""#))
        .filter(|l| !l.contains("Status code: 503 Service Unavailable"))
        .collect();
    eprintln!(
        "node log: {} WARN/ERROR lines, {} ERROR; first ones:\n{}",
        warnings.len(),
        errors.len(),
        warnings
            .iter()
            .filter(|l| !l.contains("Status code: 503"))
            .take(8)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );

    assert!(
        stats.violations.is_empty(),
        "{} responses other than 200 or 503 temporarily_unavailable, first: {:#?}\nnode errors: {errors:#?}",
        stats.violations.len(),
        &stats.violations[..stats.violations.len().min(20)]
    );
    assert!(
        by_phase
            .get(&(
                PHASES[DOWN as usize],
                "503 temporarily_unavailable".to_owned()
            ))
            .is_some_and(|n| *n > 0),
        "no 503 while PostgreSQL was down: did the outage happen?"
    );
    assert_eq!(
        stats.resumed.len(),
        WORKERS,
        "every worker's held token answered 200 after the return"
    );
    for i in 0..NODES {
        let first = stats.first_ok_back[i].map(|t| t.saturating_duration_since(back_at));
        assert!(
            first.is_some_and(|d| d <= Duration::from_secs(10)),
            "node {i} served no 200 within 10 s of PostgreSQL's return: {recovery:?}"
        );
        let last = stats.last_503_back[i].map(|t| t.saturating_duration_since(back_at));
        assert!(
            last.is_none_or(|d| d <= Duration::from_secs(10)),
            "node {i} still answered 503 more than 10 s after PostgreSQL's return: {recovery:?}"
        );
    }
    // The last acknowledged token of every worker still works, on another node.
    assert_eq!(stats.final_tokens.len(), WORKERS);
    for (w, rt) in &stats.final_tokens {
        let (status, body) = refresh(&http, &bases[(w + 1) % NODES], rt)
            .await
            .expect("final refresh");
        assert_eq!(
            status, 200,
            "worker {w}: last acknowledged token after the load: {body}"
        );
    }
    let reuse: Vec<&String> = warnings
        .iter()
        .filter(|l| l.contains("reuse detected"))
        .collect();
    assert!(
        reuse.is_empty(),
        "a retry was taken for a replay: {reuse:#?}"
    );
    assert!(errors.is_empty(), "nodes logged errors: {errors:#?}");
}

/// `GET /readyz` on `base`: status and JSON body.
async fn readyz(http: &reqwest::Client, base: &str) -> (u16, serde_json::Value) {
    send(http.get(format!("{base}/readyz")))
        .await
        .expect("readyz answers")
}
