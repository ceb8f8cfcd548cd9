//! Several real `latchkey` nodes on one PostgreSQL schema of their own and
//! one data directory (the shared server secret), for the scale-out tests.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use crate::postgres::{with_search_path, Schema};
use crate::process::listening_address;

/// Every node must stamp the same `iss`; the default names the node's own
/// listen address, which differs per node.
pub const ISSUER: &str = "http://latchkey.cluster.test";
pub const NODES: usize = 3;

/// One `latchkey serve` process; its JSON log lines are kept.
pub struct Node {
    pub child: Child,
    pub base: String,
    pub logs: Arc<Mutex<Vec<String>>>,
}

pub const KEEP_LOG_LINES: usize = 20_000;

/// Spawns a node; its address arrives on the receiver once it listens.
fn spawn_node(
    cluster: &Cluster,
    extra: &[&str],
) -> (Child, mpsc::Receiver<String>, Arc<Mutex<Vec<String>>>) {
    let mut child = Command::new(&cluster.bin)
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
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn latchkey");
    let stderr = child.stderr.take().expect("stderr");
    let logs = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel();
    let keep = logs.clone();
    // Drains the pipe for the node's whole life, so it never blocks on it.
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(addr) = listening_address(&line) {
                let _ = tx.send(addr);
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
    /// The `latchkey` binary the nodes run.
    pub bin: PathBuf,
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
    pub fn start(
        bin: impl AsRef<Path>,
        server: &str,
        label: &str,
        extra: &[&str],
        stagger: Option<Duration>,
    ) -> Self {
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
            bin: bin.as_ref().to_path_buf(),
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

    /// Runs an operator command (`latchkey ARGS…`) on the cluster's data
    /// directory, database and config, and returns its stdout; panics with
    /// its output if it fails.
    pub fn operator(&self, args: &[&str]) -> String {
        let out = Command::new(&self.bin)
            .args(args)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--database-url")
            .arg(&self.url)
            .arg("--config")
            .arg(&self.config)
            .env("LATCHKEY_LOG", "error")
            .output()
            .unwrap_or_else(|e| panic!("run latchkey {args:?}: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "latchkey {args:?} failed: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
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
