//! `cargo xtask <task>`: the project's tasks, each the command a developer
//! or CI would otherwise type, run from the repository root.
//!
//! - `ci`: all of CI, `.ci/run` (prints each stage's duration and the total).
//! - `test [ARGS]`: README's test command, `cargo test --workspace [ARGS]`,
//!   with the throwaway PostgreSQL cluster of
//!   `scripts/postgres-test-cluster.sh` started (left running; `bash
//!   scripts/postgres-test-cluster.sh stop` removes it) so the PostgreSQL
//!   tests run too, unless `LATCHKEY_TEST_DATABASE_URL` is already set.
//! - `bench [a|b|c]`: the micro-benchmarks (`cargo bench` of latchkey-core
//!   and latchkey-verify), then `bench/measure.sh` (flood, memory, cold start;
//!   all three parts unless named).
//! - `fuzz [TARGET...]`: `fuzz/run.sh`, every target (or the named ones) for
//!   `FUZZ_SECONDS` (default 60) each.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const USAGE: &str =
    "usage: cargo xtask ci | test [CARGO TEST ARGS] | bench [a|b|c] | fuzz [TARGET...]";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let task = args.next();
    let rest: Vec<String> = args.collect();
    let root = repository_root();
    let outcome = match task.as_deref() {
        Some("ci") => run(Command::new("bash").arg(".ci/run"), &root),
        Some("test") => test(&root, &rest),
        Some("bench") => bench(&root, &rest),
        Some("fuzz") => run(Command::new("bash").arg("fuzz/run.sh").args(&rest), &root),
        _ => Err(USAGE.to_owned()),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root: this crate's parent directory.
fn repository_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

fn run(command: &mut Command, root: &Path) -> Result<(), String> {
    let status = command
        .current_dir(root)
        .status()
        .map_err(|e| format!("{command:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{command:?}: {status}"))
    }
}

fn test(root: &Path, cargo_args: &[String]) -> Result<(), String> {
    let mut cargo = Command::new(cargo());
    cargo.args(["test", "--workspace"]).args(cargo_args);
    if std::env::var_os("LATCHKEY_TEST_DATABASE_URL").is_none() {
        let cluster = "scripts/postgres-test-cluster.sh";
        run(Command::new("bash").args([cluster, "start"]), root)?;
        // The URL, and the CA of the cluster's TLS certificate for the
        // TLS tests.
        for (subcommand, variable) in [
            ("url", "LATCHKEY_TEST_DATABASE_URL"),
            ("ca", "LATCHKEY_TEST_DATABASE_CA"),
        ] {
            let out = Command::new("bash")
                .args([cluster, subcommand])
                .current_dir(root)
                .output()
                .map_err(|e| format!("{cluster} {subcommand}: {e}"))?;
            cargo.env(variable, String::from_utf8_lossy(&out.stdout).trim());
        }
    }
    run(&mut cargo, root)
}

fn bench(root: &Path, measure_parts: &[String]) -> Result<(), String> {
    run(
        Command::new(cargo()).args(["bench", "-p", "latchkey-core", "-p", "latchkey-verify"]),
        root,
    )?;
    run(
        Command::new("bash")
            .arg("bench/measure.sh")
            .args(measure_parts),
        root,
    )
}

/// The cargo that runs this task, so a toolchain override carries over.
fn cargo() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}
