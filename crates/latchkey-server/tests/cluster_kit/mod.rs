//! Test kit for the scale-out tests (`cluster.rs`, `cluster_outage.rs`):
//! real `latchkey` nodes on one PostgreSQL schema of their own, and the
//! HTTP calls the tests make against them.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

pub const URL_VAR: &str = "LATCHKEY_TEST_DATABASE_URL";
pub const PASSWORD: &str = "correct horse battery";
/// Every node must stamp the same `iss`; the default names the node's own
/// listen address, which differs per node.
pub const ISSUER: &str = "http://latchkey.cluster.test";
pub const NODES: usize = 3;

/// The PostgreSQL server to test against, or `None` (after saying so).
pub fn server_url() -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            eprintln!("skipped: {URL_VAR} is not set");
            None
        }
    }
}

/// `url` with `options=-csearch_path=<schema>` appended.
pub fn with_search_path(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-csearch_path%3D{schema}")
}

/// `psql` on the PATH, else the newest one of the Debian packages.
pub fn psql_binary() -> PathBuf {
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

pub fn psql(server: &str, sql: &str) -> Result<(), String> {
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
pub struct Schema {
    pub server: String,
    pub name: String,
}

impl Schema {
    pub fn create(server: &str, label: &str) -> Self {
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
pub struct Node {
    pub child: Child,
    pub base: String,
    pub logs: Arc<Mutex<Vec<String>>>,
}

pub const KEEP_LOG_LINES: usize = 20_000;

/// Spawns a node; `wait_listening` returns its address.
pub fn spawn_node(
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
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub url: String,
    pub data_dir: PathBuf,
    pub config: PathBuf,
    _dir: tempfile::TempDir,
    _schema: Schema,
}

impl Cluster {
    /// The first node creates the server secret, the schema and the keys;
    /// the other two then start together, or `stagger` apart (each node
    /// reloads keys every 5 s from its start: staggered nodes disagree for
    /// a while about which key signs).
    pub fn start(server: &str, label: &str, extra: &[&str], stagger: Option<Duration>) -> Self {
        let schema = Schema::create(server, label);
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("latchkey.toml");
        std::fs::write(
            &config,
            "max_sessions_per_user = 100000\n\
             [argon2]\nmemory_kib = 256\niterations = 1\nparallelism = 1\n\
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
        let batches = match stagger {
            None => vec![0..1, 1..NODES],
            Some(_) => (0..NODES).map(|i| i..i + 1).collect(),
        };
        for batch in batches {
            if let (Some(pause), false) = (stagger, cluster.nodes.is_empty()) {
                std::thread::sleep(pause);
            }
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

    pub fn base(&self, i: usize) -> &str {
        &self.nodes[i % NODES].base
    }

    pub fn bases(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.base.clone()).collect()
    }

    pub fn log_tail(&self, i: usize, n: usize) -> String {
        let logs = self.nodes[i].logs.lock().unwrap_or_else(|p| p.into_inner());
        logs[logs.len().saturating_sub(n)..].join("\n")
    }

    /// Log lines at WARN or ERROR of every node, `node i: line`.
    pub fn warnings(&self) -> Vec<String> {
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

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .expect("http client")
}

/// Status and JSON body (`null` if none); `Err` for transport failures.
pub async fn send(req: reqwest::RequestBuilder) -> Result<(u16, Value), String> {
    let r = req.send().await.map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    let text = r.text().await.map_err(|e| e.to_string())?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

pub async fn post(
    http: &reqwest::Client,
    url: String,
    body: Value,
) -> Result<(u16, Value), String> {
    send(http.post(url).json(&body)).await
}

pub async fn refresh(http: &reqwest::Client, base: &str, rt: &str) -> Result<(u16, Value), String> {
    post(
        http,
        format!("{base}/v1/tokens/refresh"),
        json!({ "refresh_token": rt }),
    )
    .await
}

pub async fn me(http: &reqwest::Client, base: &str, at: &str) -> Result<(u16, Value), String> {
    send(http.get(format!("{base}/v1/me")).bearer_auth(at)).await
}

pub async fn sign_in(
    http: &reqwest::Client,
    base: &str,
    user: &str,
) -> Result<(u16, Value), String> {
    post(
        http,
        format!("{base}/v1/sign-in"),
        json!({ "username": user, "password": PASSWORD }),
    )
    .await
}

/// Signs `user` up on `base` and in; returns (access, refresh).
pub async fn account(http: &reqwest::Client, base: &str, user: &str) -> (String, String) {
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

pub fn token(body: &Value, field: &str) -> String {
    body[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {body}"))
        .to_owned()
}

pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}
