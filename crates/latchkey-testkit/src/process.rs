//! Binaries of the workspace as child processes: where to find them
//! (never built from inside a test) and `latchkey serve` on 127.0.0.1:0.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary `name` in the same directory as `bin` (the same target
/// directory and profile); panics saying what to build if it is missing.
pub fn sibling_binary(bin: &Path, name: &str) -> PathBuf {
    let sibling = bin.with_file_name(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        sibling.exists(),
        "{} not found: build it first (`cargo build --bin {name}`, or run \
         `cargo test --workspace`, which builds it)",
        sibling.display()
    );
    sibling
}

/// The address in a `--log-json` line that says the server listens.
pub fn listening_address(line: &str) -> Option<String> {
    let v: Value = serde_json::from_str(line).ok()?;
    if v["fields"]["message"] != "listening" {
        return None;
    }
    v["fields"]["addr"].as_str().map(str::to_owned)
}

/// The `latchkey` binary serving on 127.0.0.1:0; killed when dropped.
pub struct ServerProcess {
    pub child: Child,
    pub base: String,
}

impl ServerProcess {
    /// `bin serve` on `data_dir` with `config`, once it says where it
    /// listens.
    pub fn start(bin: impl AsRef<Path>, data_dir: &Path, config: &Path) -> Self {
        let mut child = Command::new(bin.as_ref())
            .args([
                "--log-json",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
            ])
            .arg(data_dir)
            .arg("--config")
            .arg(config)
            .stdout(Stdio::inherit())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn latchkey");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = loop {
            assert!(Instant::now() < deadline, "server did not start");
            let line = lines.next().expect("server exited").expect("read");
            if let Some(addr) = listening_address(&line) {
                break addr;
            }
        };
        // Keep draining logs so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self {
            child,
            base: format!("http://{addr}"),
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
