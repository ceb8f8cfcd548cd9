//! Several real `latchkey` nodes on one PostgreSQL database
//! (`LATCHKEY_TEST_DATABASE_URL`; skipped without it). The outage test,
//! which restarts that PostgreSQL server, is a binary of its own:
//! `cluster_outage.rs`.

mod admin;
mod audit;
mod nodes;
mod secret;

use std::process::Command;

use latchkey_testkit::cluster::Cluster;

/// Runs an operator command (`latchkey ARGS…`) on the cluster's data
/// directory, database and config, and returns its stdout; panics with
/// its output if it fails.
fn operator_command(cluster: &Cluster, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(args)
        .arg("--data-dir")
        .arg(&cluster.data_dir)
        .arg("--database-url")
        .arg(&cluster.url)
        .arg("--config")
        .arg(&cluster.config)
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
