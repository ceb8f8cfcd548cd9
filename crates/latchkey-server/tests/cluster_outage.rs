//! Scale-out under a database outage: three real `latchkey` nodes serve
//! refresh load from several workers while the PostgreSQL server they share
//! is stopped and started again. While it is down every failure is 503
//! `temporarily_unavailable` (never another 5xx, never a 4xx for a valid
//! token); no refresh token acknowledged with 200 is lost (if its
//! successor was being committed when the server went away, retrying it
//! inside the default 10 s grace window yields that successor); and every
//! node serves 200s again within 10 s of PostgreSQL's return, without
//! being restarted.
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
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

const URL_VAR: &str = "LATCHKEY_TEST_DATABASE_URL";
const PASSWORD: &str = "correct horse battery";
/// Every node must stamp the same `iss`; the default names the node's own
/// listen address, which differs per node.
const ISSUER: &str = "http://latchkey.cluster.test";
const NODES: usize = 3;

// ---------------------------------------------------------------------------
// Test kit: schema, nodes, HTTP
// ---------------------------------------------------------------------------

/// The PostgreSQL server to test against, or `None` (after saying so).
fn server_url() -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            eprintln!("skipped: {URL_VAR} is not set");
            None
        }
    }
}

/// `url` with `options=-csearch_path=<schema>` appended.
fn with_search_path(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-csearch_path%3D{schema}")
}

/// `psql` on the PATH, else the newest one of the Debian packages.
fn psql_binary() -> PathBuf {
    let on_path = Command::new("psql")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if on_path {
        return PathBuf::from("psql");
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin/psql"))
        .filter(|p| p.exists())
        .collect();
    found.sort_by_key(|p| {
        p.components()
            .nth(4)
            .and_then(|c| c.as_os_str().to_str()?.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found
        .pop()
        .expect("psql not found (install the postgresql client)")
}

fn psql(server: &str, sql: &str) -> Result<(), String> {
    let out = Command::new(psql_binary())
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", server, "-c", sql])
        .output()
        .map_err(|e| format!("running psql: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// One empty schema on the shared server for one test; dropped on drop.
struct Schema {
    server: String,
    name: String,
}

impl Schema {
    fn create(server: &str, label: &str) -> Self {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_nanos();
        let name = format!(
            "lk_cluster_{label}_{}_{nanos}_{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        psql(server, &format!("CREATE SCHEMA {name}"))
            .unwrap_or_else(|e| panic!("create schema {name}: {e}"));
        Self {
            server: server.to_owned(),
            name,
        }
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let sql = format!(
            "SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS {} CASCADE",
            self.name
        );
        if let Err(e) = psql(&self.server, &sql) {
            eprintln!("dropping schema {}: {e}", self.name);
        }
    }
}

/// One `latchkey serve` process; its JSON log lines are kept.
struct Node {
    child: Child,
    base: String,
    logs: Arc<Mutex<Vec<String>>>,
}

const KEEP_LOG_LINES: usize = 20_000;

/// Spawns a node; `wait_listening` returns its address.
fn spawn_node(
    cluster: &Cluster,
    extra: &[&str],
) -> (Child, mpsc::Receiver<String>, Arc<Mutex<Vec<String>>>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args([
            "--log-json",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--issuer",
            ISSUER,
        ])
        .arg("--data-dir")
        .arg(&cluster.data_dir)
        .arg("--database-url")
        .arg(&cluster.url)
        .arg("--config")
        .arg(&cluster.config)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn latchkey");
    let stdout = child.stdout.take().expect("stdout");
    let logs = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel();
    let keep = logs.clone();
    // Drains the pipe for the node's whole life, so it never blocks on it.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
            if v["fields"]["message"] == "listening" {
                if let Some(addr) = v["fields"]["addr"].as_str() {
                    let _ = tx.send(addr.to_owned());
                }
            }
            let mut logs = keep.lock().unwrap_or_else(|p| p.into_inner());
            if logs.len() < KEEP_LOG_LINES {
                logs.push(line);
            }
        }
    });
    (child, rx, logs)
}

/// Three nodes on one schema and one data directory. Dropping it kills
/// the nodes, then drops the schema.
struct Cluster {
    nodes: Vec<Node>,
    url: String,
    data_dir: PathBuf,
    config: PathBuf,
    _dir: tempfile::TempDir,
    _schema: Schema,
}

impl Cluster {
    /// The first node creates the server secret, the schema and the keys;
    /// the other two then start together.
    fn start(server: &str, label: &str, extra: &[&str]) -> Self {
        let schema = Schema::create(server, label);
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("latchkey.toml");
        std::fs::write(
            &config,
            "[argon2]\nmemory_kib = 256\niterations = 1\nparallelism = 1\n\
             [rate_limits]\nsign_up_per_minute = 0\ntokens_per_minute = 0\n",
        )
        .expect("config");
        let mut cluster = Cluster {
            nodes: Vec::new(),
            url: with_search_path(server, &schema.name),
            data_dir: dir.path().join("data"),
            config,
            _dir: dir,
            _schema: schema,
        };
        for batch in [0..1, 1..NODES] {
            let spawned: Vec<_> = batch.map(|_| spawn_node(&cluster, extra)).collect();
            let mut waiting = Vec::new();
            for (child, rx, logs) in spawned {
                cluster.nodes.push(Node {
                    child,
                    base: String::new(),
                    logs,
                });
                waiting.push((cluster.nodes.len() - 1, rx));
            }
            for (i, rx) in waiting {
                let addr = rx
                    .recv_timeout(Duration::from_secs(60))
                    .unwrap_or_else(|e| {
                        panic!(
                            "node {i} did not start ({e}); log:\n{}",
                            cluster.log_tail(i, 20)
                        )
                    });
                cluster.nodes[i].base = format!("http://{addr}");
            }
        }
        let bases: Vec<&str> = cluster.nodes.iter().map(|n| n.base.as_str()).collect();
        eprintln!("cluster {label}: nodes {bases:?}");
        cluster
    }

    fn bases(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.base.clone()).collect()
    }

    fn log_tail(&self, i: usize, n: usize) -> String {
        let logs = self.nodes[i].logs.lock().unwrap_or_else(|p| p.into_inner());
        logs[logs.len().saturating_sub(n)..].join("\n")
    }

    /// Log lines at WARN or ERROR of every node, `node i: line`.
    fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let logs = node.logs.lock().unwrap_or_else(|p| p.into_inner());
            for line in logs.iter() {
                if line.contains(r#""level":"WARN""#) || line.contains(r#""level":"ERROR""#) {
                    out.push(format!("node {i}: {line}"));
                }
            }
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            let _ = node.child.kill();
            let _ = node.child.wait();
        }
    }
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .expect("http client")
}

/// Status and JSON body (`null` if none); `Err` for transport failures.
async fn send(req: reqwest::RequestBuilder) -> Result<(u16, Value), String> {
    let r = req.send().await.map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    let text = r.text().await.map_err(|e| e.to_string())?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

async fn post(http: &reqwest::Client, url: String, body: Value) -> Result<(u16, Value), String> {
    send(http.post(url).json(&body)).await
}

async fn refresh(http: &reqwest::Client, base: &str, rt: &str) -> Result<(u16, Value), String> {
    post(
        http,
        format!("{base}/v1/tokens/refresh"),
        json!({ "refresh_token": rt }),
    )
    .await
}

async fn sign_in(http: &reqwest::Client, base: &str, user: &str) -> Result<(u16, Value), String> {
    post(
        http,
        format!("{base}/v1/sign-in"),
        json!({ "username": user, "password": PASSWORD }),
    )
    .await
}

/// Signs `user` up on `base` and in; returns (access, refresh).
async fn account(http: &reqwest::Client, base: &str, user: &str) -> (String, String) {
    let r = post(
        http,
        format!("{base}/v1/sign-up"),
        json!({ "username": user, "password": PASSWORD }),
    )
    .await
    .expect("sign-up");
    assert_eq!(r.0, 201, "sign-up of {user}: {}", r.1);
    let (status, t) = sign_in(http, base, user).await.expect("sign-in");
    assert_eq!(status, 200, "sign-in of {user}: {t}");
    (token(&t, "access_token"), token(&t, "refresh_token"))
}

fn token(body: &Value, field: &str) -> String {
    body[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {body}"))
        .to_owned()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

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
    let cluster = Cluster::start(&server, "outage", &[]);
    let http = http_client();
    let bases = cluster.bases();

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
    timeline.phase.store(STOPPING, Ordering::SeqCst);
    let down_at = Instant::now();
    tokio::task::block_in_place(|| pg.stop());
    timeline.phase.store(DOWN, Ordering::SeqCst);
    eprintln!("PostgreSQL stopped ({})", ms(down_at.elapsed()));
    tokio::time::sleep(Duration::from_secs(4)).await;
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

    tokio::time::sleep(Duration::from_secs(12)).await;
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
