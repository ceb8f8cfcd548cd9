//! A real SMTP server on loopback for the mail tests: `tests/smtp/sink.py`
//! (PyPI aiosmtpd) as a child process, writing each message it receives
//! to a directory as JSON, which the test reads back.
//!
//! The interpreter is `LATCHKEY_TEST_PYTHON` (CI points it at a virtualenv
//! with `tests/smtp/requirements.txt`), else `python3`. Without aiosmtpd the
//! tests that need the sink print why and pass, unless
//! `LATCHKEY_TEST_REQUIRE_SMTP=1` (CI), where they fail.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub struct SmtpSink {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
    python: String,
    /// `USER:PASSWORD` the server requires, if any.
    auth: Option<String>,
    _tmp: tempfile::TempDir,
}

fn python() -> String {
    std::env::var("LATCHKEY_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/smtp/sink.py")
}

impl SmtpSink {
    /// Whether the sink can run here; `false` after printing why (the
    /// caller returns), a panic where CI requires it.
    pub fn available(test: &str) -> bool {
        let ok = Command::new(python())
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let why = format!(
                "{test}: skipped: `{} -c 'import aiosmtpd'` failed (pip install -r tests/smtp/requirements.txt)",
                python()
            );
            assert!(
                std::env::var("LATCHKEY_TEST_REQUIRE_SMTP").as_deref() != Ok("1"),
                "{why}, and LATCHKEY_TEST_REQUIRE_SMTP=1"
            );
            eprintln!("{why}");
        }
        ok
    }

    /// A sink on a port the kernel picks.
    pub fn start() -> Self {
        Self::start_with_auth(None)
    }

    /// A sink that takes mail only after `AUTH` as `user_password`
    /// (`USER:PASSWORD`).
    pub fn start_with_auth(user_password: Option<&str>) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("mail");
        let mut sink = Self {
            child: None,
            port: 0,
            dir,
            python: python(),
            auth: user_password.map(str::to_owned),
            _tmp: tmp,
        };
        sink.launch();
        sink
    }

    fn launch(&mut self) {
        let mut command = Command::new(&self.python);
        command
            .arg(script())
            .args(["--port", &self.port.to_string(), "--dir"])
            .arg(&self.dir);
        if let Some(auth) = &self.auth {
            command.args(["--auth", auth]);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the SMTP sink");
        let stdout = child.stdout.take().expect("sink stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("sink says where it listens");
        let port = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("sink said {line:?}"));
        self.port = port;
        self.child = Some(child);
    }

    /// `smtp://127.0.0.1:<port>`: plain SMTP, loopback only.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Stops the server; nothing listens on its port until [`Self::resume`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, keeping what it received.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "running");
        self.launch();
    }

    /// Every message received so far, oldest first.
    pub fn messages(&self) -> Vec<Value> {
        let mut numbered: Vec<(u64, PathBuf)> = std::fs::read_dir(&self.dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter_map(|p| {
                        let n = p
                            .file_name()?
                            .to_str()?
                            .strip_suffix(".json")?
                            .parse()
                            .ok()?;
                        Some((n, p))
                    })
                    .collect()
            })
            .unwrap_or_default();
        numbered.sort();
        numbered
            .into_iter()
            .map(|(_, p)| {
                let text = std::fs::read_to_string(&p).expect("read message");
                serde_json::from_str(&text).expect("message JSON")
            })
            .collect()
    }

    /// Waits (at most `within`) until `count` messages have arrived, and
    /// returns them all.
    pub async fn wait_for(&self, count: usize, within: Duration) -> Vec<Value> {
        let started = Instant::now();
        loop {
            let got = self.messages();
            if got.len() >= count {
                return got;
            }
            assert!(
                started.elapsed() < within,
                "{} of {count} messages after {within:?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The token of the link to `path` in a message's plain-text body.
pub fn link_token(message: &Value, path: &str) -> String {
    let text = message["text"].as_str().expect("text body");
    let at = text
        .find(&format!("{path}?token="))
        .unwrap_or_else(|| panic!("no {path} link in {text}"));
    text[at + path.len() + "?token=".len()..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}
