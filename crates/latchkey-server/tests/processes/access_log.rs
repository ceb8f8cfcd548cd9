//! The server's request logs as an operator reads them, from the real
//! `latchkey serve`: one access line per request (method, route template,
//! status, latency, request id; never the query string), the request id in
//! every line of the request and in its audit record, hostile request ids
//! replaced, no colour codes in piped stderr and nothing on stdout.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const QUERY_SECRET: &str = "QuErYsEcReT-access-token-0123456789";

struct Served {
    _dir: tempfile::TempDir,
    data_dir: PathBuf,
    config: PathBuf,
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
    base: String,
}

impl Served {
    fn start(json_logs: bool) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().join("data");
        let config = dir.path().join("latchkey.toml");
        std::fs::write(
            &config,
            "[argon2]\nmemory_kib = 256\niterations = 1\nparallelism = 1\n",
        )
        .expect("write config");
        let stdout = dir.path().join("stdout");
        let stderr = dir.path().join("stderr");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_latchkey"));
        if json_logs {
            cmd.arg("--log-json");
        }
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy().into_owned();
            if name.starts_with("LATCHKEY_") || name == "NO_COLOR" {
                cmd.env_remove(name);
            }
        }
        let child = cmd
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data_dir)
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("spawn latchkey serve");
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = loop {
            assert!(Instant::now() < deadline, "server did not start");
            let log = std::fs::read_to_string(&stderr).unwrap_or_default();
            let addr = log.lines().find_map(|line| {
                if json_logs {
                    latchkey_testkit::process::listening_address(line)
                } else {
                    line.contains("listening")
                        .then(|| line.split_once("addr=")?.1.split(' ').next())
                        .flatten()
                        .map(str::to_owned)
                }
            });
            if let Some(addr) = addr {
                break addr;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        Self {
            _dir: dir,
            data_dir,
            config,
            child,
            stdout,
            stderr,
            base: format!("http://{addr}"),
        }
    }

    /// Stops it (SIGTERM, so shutdown logs too); its stdout and stderr.
    fn stop(&mut self) -> (Vec<u8>, Vec<u8>) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().expect("wait").is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        (
            std::fs::read(&self.stdout).expect("stdout"),
            std::fs::read(&self.stderr).expect("stderr"),
        )
    }

    /// `latchkey audit` on its data: the events, as JSON.
    fn audit(&self) -> Vec<Value> {
        let out = Command::new(env!("CARGO_BIN_EXE_latchkey"))
            .args(["audit", "--data-dir"])
            .arg(&self.data_dir)
            .arg("--config")
            .arg(&self.config)
            .env("LATCHKEY_LOG", "warn")
            .output()
            .expect("latchkey audit");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Requests with chosen request ids; what the server answered with.
async fn drive(base: &str) -> Vec<(String, Option<String>)> {
    let http = reqwest::Client::new();
    let mut answered = Vec::new();
    let mut send = async |req: reqwest::RequestBuilder, sent: &str| {
        let r = req.send().await.expect("request");
        assert!(r.status().as_u16() < 500);
        let id = r
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        answered.push((sent.to_owned(), id));
    };
    let get = |path: &str, id: &[u8]| {
        http.get(format!("{base}{path}")).header(
            "x-request-id",
            reqwest::header::HeaderValue::from_bytes(id).expect("header value"),
        )
    };
    send(
        get(
            &format!("/healthz?access_token={QUERY_SECRET}"),
            b"probe-1.a_B",
        ),
        "probe-1.a_B",
    )
    .await;
    send(
        get(&format!("/v1/nope/{QUERY_SECRET}"), b"unmatched-2"),
        "unmatched-2",
    )
    .await;
    let sign_up = http
        .post(format!("{base}/v1/sign-up"))
        .header("x-request-id", "sign-up-3")
        .json(&json!({"username": "alice", "password": "correct horse battery"}));
    send(sign_up, "sign-up-3").await;
    let long = "x".repeat(65);
    send(get("/healthz", long.as_bytes()), &long).await;
    for hostile in ["forged\tstatus=500", "a b", "evil\"quote", "caf\u{e9}"] {
        send(get("/healthz", hostile.as_bytes()), hostile).await;
    }
    send(http.get(format!("{base}/healthz")), "").await;
    answered
}

async fn request_ids_and_access_log(json_logs: bool) {
    let mut served = Served::start(json_logs);
    let answered = drive(&served.base).await;
    for (sent, answer) in &answered[..3] {
        assert_eq!(answer.as_deref(), Some(sent.as_str()), "a plain id is kept");
    }
    for (sent, answer) in &answered[3..] {
        let answer = answer.as_deref().expect("an id is always returned");
        assert_ne!(answer, sent, "a hostile or missing id is replaced");
        assert_eq!(answer.len(), 36, "a fresh UUID: {answer}");
    }
    let audit = served.audit();
    let (stdout, stderr) = served.stop();
    assert!(
        stdout.is_empty(),
        "stdout: {}",
        String::from_utf8_lossy(&stdout)
    );
    assert!(!stderr.contains(&0x1b), "ANSI escapes in piped stderr");
    let log = String::from_utf8_lossy(&stderr).into_owned();
    assert!(
        !log.contains(QUERY_SECRET),
        "query or path secret in the log:\n{log}"
    );
    assert!(!log.contains("access_token"), "{log}");
    for (sent, _) in &answered[3..] {
        if !sent.is_empty() {
            assert!(
                !log.contains(sent.as_str()),
                "hostile id {sent:?} logged:\n{log}"
            );
        }
    }

    let sign_up = audit
        .iter()
        .find(|e| e["kind"] == "sign_up")
        .expect("sign-up audited");
    assert_eq!(sign_up["request_id"], "sign-up-3", "{sign_up}");

    // The access lines, each with its span's fields.
    let lines: Vec<&str> = log.lines().collect();
    let access = |id: &str| -> Value {
        lines
            .iter()
            .find_map(|line| access_fields(line, json_logs).filter(|f| f["request_id"] == id))
            .unwrap_or_else(|| panic!("no access line for {id}:\n{log}"))
    };
    let probe = access("probe-1.a_B");
    assert_eq!(probe["method"], "GET");
    assert_eq!(probe["route"], "/healthz");
    assert_eq!(probe["status"], "200");
    assert!(
        probe["latency_ms"]
            .as_str()
            .is_some_and(|l| l.parse::<f64>().is_ok()),
        "{probe}"
    );
    let unmatched = access("unmatched-2");
    assert_eq!(unmatched["route"], "<unmatched>");
    assert_eq!(unmatched["status"], "404");
    let created = access("sign-up-3");
    assert_eq!(
        (&created["method"], &created["route"]),
        (&json!("POST"), &json!("/v1/sign-up"))
    );
    assert_eq!(created["status"], "201");
    // Every line of the sign-up, the audit line included, names the request.
    let audit_line = lines
        .iter()
        .find(|l| l.contains("latchkey::audit") && l.contains("sign_up"))
        .unwrap_or_else(|| panic!("no audit line:\n{log}"));
    assert!(audit_line.contains("sign-up-3"), "{audit_line}");
}

/// An access line's fields (span's and event's), as strings; `None` for
/// other lines.
fn access_fields(line: &str, json_logs: bool) -> Option<Value> {
    if json_logs {
        let v: Value = serde_json::from_str(line).ok()?;
        if v["fields"]["message"] != "access" {
            return None;
        }
        let mut fields = serde_json::Map::new();
        for source in [&v["span"], &v["fields"]] {
            for (k, val) in source.as_object()? {
                let s = val.as_str().map_or_else(|| val.to_string(), str::to_owned);
                fields.insert(k.clone(), Value::String(s));
            }
        }
        return Some(Value::Object(fields));
    }
    // `… request{method=GET route=/healthz request_id=x}: …: access status=200 latency_ms=1.2`
    if !line.contains(": access ") {
        return None;
    }
    let mut fields = serde_json::Map::new();
    for word in line.split([' ', '{', '}']) {
        if let Some((k, v)) = word.trim_end_matches(':').split_once('=') {
            fields.insert(k.to_owned(), Value::String(v.to_owned()));
        }
    }
    Some(Value::Object(fields))
}

#[tokio::test]
async fn access_log_and_request_ids_in_text_logs() {
    request_ids_and_access_log(false).await;
}

#[tokio::test]
async fn access_log_and_request_ids_in_json_logs() {
    request_ids_and_access_log(true).await;
}
