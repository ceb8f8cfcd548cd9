//! PostgreSQL for the tests: the server named by `LATCHKEY_TEST_DATABASE_URL`
//! (see `scripts/postgres-test-cluster.sh`) and one fresh schema per test,
//! created and dropped with `psql`.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub const URL_VAR: &str = "LATCHKEY_TEST_DATABASE_URL";

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
