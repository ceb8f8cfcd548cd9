//! The server secret belongs to its database: the real binary on a real
//! SQLite file refuses to start without the secret its signing keys were
//! sealed with (a database restored without its `server-secret`), writes
//! no new one, and refuses a secret that is not the database's, naming the
//! file or variable it needs; with the right secret back it starts.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use latchkey_testkit::process::ServerProcess;

const BIN: &str = env!("CARGO_BIN_EXE_latchkey");

/// `latchkey serve` on `data`, expected to exit by itself: its exit
/// status and everything it printed.
fn serve_until_exit(data: &Path, config: &Path, env: Option<(&str, &str)>) -> (bool, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .arg("--config")
        .arg(config)
        .env_remove("LATCHKEY_SERVER_SECRET")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some((k, v)) = env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn latchkey");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the server started instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut printed = String::new();
    for pipe in [
        child.stdout.take().map(|p| Box::new(p) as Box<dyn Read>),
        child.stderr.take().map(|p| Box::new(p) as Box<dyn Read>),
    ]
    .into_iter()
    .flatten()
    {
        let mut pipe = pipe;
        pipe.read_to_string(&mut printed).expect("read output");
    }
    (status.success(), printed)
}

#[test]
fn a_database_without_its_secret_is_refused_and_no_new_secret_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("latchkey.toml");
    std::fs::write(
        &config,
        "[argon2]\nmemory_kib = 256\niterations = 1\nparallelism = 1\n",
    )
    .expect("config");
    let data = dir.path().join("data");
    let other = dir.path().join("other");
    // Two databases, each with its signing keys sealed by its own secret.
    drop(ServerProcess::start(BIN, &data, &config));
    drop(ServerProcess::start(BIN, &other, &config));
    let secret_file = data.join("server-secret");
    let backup = dir.path().join("secret-backup");
    std::fs::rename(&secret_file, &backup).expect("take the secret away");

    let (ok, printed) = serve_until_exit(&data, &config, None);
    assert!(!ok, "started without its secret:\n{printed}");
    assert!(
        printed.contains(&format!("{} is missing", secret_file.display())),
        "{printed}"
    );
    assert!(printed.contains("LATCHKEY_SERVER_SECRET"), "{printed}");
    assert!(!secret_file.exists(), "a new secret was written");

    // Operator commands refuse alike.
    let out = Command::new(BIN)
        .args(["keys", "list", "--data-dir"])
        .arg(&data)
        .arg("--config")
        .arg(&config)
        .env_remove("LATCHKEY_SERVER_SECRET")
        .output()
        .expect("run latchkey keys list");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is missing"));
    assert!(!secret_file.exists(), "a new secret was written");

    // Another database's secret, in the file or the environment.
    let wrong = std::fs::read_to_string(other.join("server-secret")).expect("other secret");
    std::fs::write(&secret_file, &wrong).expect("write wrong secret");
    let (ok, printed) = serve_until_exit(&data, &config, None);
    assert!(!ok, "started with another database's secret:\n{printed}");
    assert!(
        printed.contains(&format!(
            "the server secret from {} does not open signing key",
            secret_file.display()
        )),
        "{printed}"
    );
    assert!(!printed.contains(wrong.trim()), "the secret was printed");
    std::fs::remove_file(&secret_file).expect("remove wrong secret");
    let (ok, printed) = serve_until_exit(&data, &config, Some(("LATCHKEY_SERVER_SECRET", &wrong)));
    assert!(!ok);
    assert!(
        printed.contains("the server secret from LATCHKEY_SERVER_SECRET does not open"),
        "{printed}"
    );

    // The right secret back: it starts.
    std::fs::rename(&backup, &secret_file).expect("restore the secret");
    drop(ServerProcess::start(BIN, &data, &config));
}
