//! The harness binary's argument checks, run before any request. (Also why
//! `cargo test --workspace` builds the binary, which latchkey-server's
//! durability test drives.)

use std::process::Command;

#[test]
fn record_is_refused_outside_the_refresh_and_mixed_scenarios() {
    let out = Command::new(env!("CARGO_BIN_EXE_latchkey-bench"))
        .args(["--scenario", "sign-in", "--record", "records.jsonl"])
        .args(["--target", "http://127.0.0.1:9"])
        .output()
        .expect("run latchkey-bench");
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--record applies to the refresh and mixed scenarios"),
        "{stderr}"
    );
}

fn refused_with(args: &[&str], message: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_latchkey-bench"))
        .args(args)
        .args(["--target", "http://127.0.0.1:9"])
        .output()
        .expect("run latchkey-bench");
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(message), "{stderr}");
}

#[test]
fn rate_must_be_positive() {
    for rate in ["0", "-5", "NaN", "inf"] {
        refused_with(
            &["--scenario", "me", &format!("--rate={rate}")],
            "--rate must be a positive number of requests per second",
        );
    }
}

#[test]
fn server_pid_must_be_a_live_process() {
    // Above the kernel's largest pid (2^22): no such process.
    refused_with(
        &["--scenario", "me", "--server-pid", "4294967295"],
        "reading /proc/4294967295/stat",
    );
}
