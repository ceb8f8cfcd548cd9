//! The operator CLI as an operator pipes it: the real `latchkey` binary,
//! whose stdout carries only a command's answer (JSON, TOML or a script)
//! and whose logs, warnings and errors go to stderr without colour codes;
//! operator commands that take no server settings, from flags or from the
//! environment; completions; errors printed once.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// A data directory and config file, and `latchkey` run on them.
struct Site {
    _dir: tempfile::TempDir,
    data_dir: PathBuf,
    config: PathBuf,
}

impl Site {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().join("data");
        let config = dir.path().join("latchkey.toml");
        std::fs::write(&config, "max_access_ttl = \"1h\"\n").expect("write config");
        Self {
            _dir: dir,
            data_dir,
            config,
        }
    }

    fn dir(&self) -> &Path {
        self._dir.path()
    }

    /// `latchkey <args> --data-dir … --config …`, logging at debug to a
    /// pipe, with no `LATCHKEY_*` or colour settings from this environment.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = latchkey(args);
        cmd.arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--config")
            .arg(&self.config);
        cmd
    }
}

/// `latchkey <args>` in a clean environment, logging at debug.
fn latchkey(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_latchkey"));
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        if name.starts_with("LATCHKEY_") || name == "RUST_BACKTRACE" || name == "NO_COLOR" {
            cmd.env_remove(name);
        }
    }
    cmd.args(args)
        .env("LATCHKEY_LOG", "debug")
        .stdin(Stdio::null());
    cmd
}

fn run(mut cmd: Command) -> Output {
    cmd.output().expect("run latchkey")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The command succeeded, printed JSON on stdout, and no colour anywhere.
fn json_out(out: &Output) -> Value {
    assert!(out.status.success(), "failed: {}", text(&out.stderr));
    assert!(!out.stderr.contains(&0x1b), "ANSI escapes in piped stderr");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", text(&out.stdout)))
}

#[test]
fn operator_commands_print_only_json_on_stdout_and_log_to_stderr() {
    let site = Site::new();
    let created = run(site.command(&["clients", "create", "web", "--scope", "read"]));
    assert_eq!(json_out(&created)["client_id"], "web");
    let rotated = run(site.command(&["keys", "rotate"]));
    assert_eq!(json_out(&rotated)["rotated"], true);
    // Its log line went to stderr.
    assert!(
        text(&rotated.stderr).contains("signing keys rotated"),
        "{}",
        text(&rotated.stderr)
    );
    for args in [&["keys", "list"][..], &["clients", "list"]] {
        json_out(&run(site.command(args)));
    }
    let keys = json_out(&run(site.command(&["keys", "list"])));
    assert!(!keys["keys"].as_array().expect("keys").is_empty(), "{keys}");
    // JSON logs go to stderr too.
    let mut cmd = site.command(&["keys", "list"]);
    cmd.arg("--log-json");
    json_out(&run(cmd));
}

#[test]
fn operator_commands_take_no_server_settings() {
    let site = Site::new();
    let help = text(&run(latchkey(&["keys", "--help"])).stdout);
    assert!(
        help.contains("--data-dir") && help.contains("--database-url"),
        "{help}"
    );
    for serve_flag in ["--listen", "--issuer", "--access-ttl", "--hashing-threads"] {
        assert!(
            !help.contains(serve_flag),
            "keys --help shows {serve_flag}:\n{help}"
        );
    }
    let serve_help = text(&run(latchkey(&["serve", "--help"])).stdout);
    assert!(serve_help.contains("--access-ttl"), "{serve_help}");
    // A server setting in the environment does not end up in a new client.
    let mut cmd = site.command(&["clients", "create", "bar"]);
    cmd.env("LATCHKEY_ACCESS_TTL", "15m")
        .env("LATCHKEY_SESSION_LIFETIME", "1d");
    let bar = json_out(&run(cmd));
    assert_eq!(bar["access_ttl"], Value::Null, "{bar}");
    assert_eq!(bar["session_lifetime"], Value::Null, "{bar}");
    let shown = json_out(&run(site.command(&["clients", "show", "bar"])));
    assert_eq!(shown["access_ttl"], Value::Null, "{shown}");
    // Its own flags still count, and are described.
    let baz = json_out(&run(site.command(&[
        "clients",
        "create",
        "baz",
        "--access-ttl",
        "5m",
    ])));
    assert_eq!(baz["access_ttl"], 300, "{baz}");
    let create_help = text(&run(latchkey(&["clients", "create", "--help"])).stdout);
    for flag in [
        "--type",
        "--access-ttl",
        "--refresh-idle-timeout",
        "--session-lifetime",
    ] {
        let line = create_help
            .lines()
            .find(|l| l.contains(flag))
            .unwrap_or_else(|| panic!("{flag} missing:\n{create_help}"));
        let described = line.split_once(flag).map(|(_, d)| d.trim()).unwrap_or("");
        assert!(
            described.len() > 10 || create_help.contains(&format!("{flag} <")),
            "{flag} undescribed:\n{create_help}"
        );
    }
    assert!(
        create_help.contains("Lifetime of its access tokens"),
        "{create_help}"
    );
}

#[test]
fn completions_for_bash_zsh_and_fish() {
    for shell in ["bash", "zsh", "fish"] {
        let out = run(latchkey(&["completions", shell]));
        assert!(out.status.success(), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        assert!(
            script.contains("latchkey") && script.contains("rotate"),
            "{shell}"
        );
    }
    assert!(!run(latchkey(&["completions", "tcsh"])).status.success());
}

#[test]
fn check_config_prints_toml_with_the_files_key_names() {
    let site = Site::new();
    let out = run(site.command(&[
        "check-config",
        "--access-ttl",
        "15m",
        "--listen",
        "localhost:8181",
    ]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    let table: toml::Table = shown.parse().expect("TOML on stdout");
    assert_eq!(table["access_ttl"].as_str(), Some("15m"), "{shown}");
    assert_eq!(table["max_access_ttl"].as_str(), Some("1h"), "{shown}");
    assert_eq!(table["session_lifetime"].as_str(), Some("90d"), "{shown}");
    assert_eq!(
        table["signing_algorithm"].as_str(),
        Some("EdDSA"),
        "{shown}"
    );
    let listen = table["listen"].as_str().expect("listen");
    assert!(
        listen.ends_with(":8181") && !listen.starts_with("0.0.0.0"),
        "{listen}"
    );
    assert!(table["throttle"]["base_delay"].is_str(), "{shown}");
    assert!(table["argon2"]["memory_kib"].is_integer(), "{shown}");
    // It is a config file latchkey reads back to the same settings.
    let again = site.dir().join("again.toml");
    std::fs::write(&again, &shown).expect("write");
    let mut cmd = latchkey(&["check-config", "--config"]);
    cmd.arg(&again);
    let reread = run(cmd);
    assert!(reread.status.success(), "{}", text(&reread.stderr));
    assert_eq!(text(&reread.stdout), shown);
}

#[test]
fn listen_addresses_are_explained() {
    let out = run(latchkey(&["check-config", "--listen", "0.0.0.0:8080"]));
    assert!(out.status.success());
    let warning = text(&out.stderr);
    assert!(
        warning.contains("warning:") && warning.contains("issuer") && warning.contains("--issuer"),
        "{warning}"
    );
    let out = run(latchkey(&[
        "check-config",
        "--listen",
        "[::]:8080",
        "--issuer",
        "https://auth.example.com",
    ]));
    assert!(out.status.success());
    assert!(
        !text(&out.stderr).contains("warning"),
        "{}",
        text(&out.stderr)
    );
    let out = run(latchkey(&[
        "check-config",
        "--listen",
        "auth.example.com:8080",
    ]));
    assert!(!out.status.success());
    let why = text(&out.stderr);
    assert!(
        why.contains("host name") && why.contains("IP address"),
        "{why}"
    );
}

#[test]
fn errors_are_printed_once_with_their_causes_and_no_backtrace() {
    let site = Site::new();
    let missing = site.dir().join("missing.toml");
    let mut cmd = latchkey(&["keys", "list", "--config"]);
    cmd.arg(&missing);
    let out = run(cmd);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(err.starts_with("error: "), "{err}");
    assert_eq!(err.matches("No such file").count(), 1, "{err}");
    assert!(
        !err.contains("backtrace") && !err.contains("Caused by"),
        "{err}"
    );
    // A store that is not there: the error and its cause, once.
    let out = run(site.command(&["keys", "list"]));
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert_eq!(err.matches("error: ").count(), 1, "{err}");
    // Asked for, the backtrace comes too.
    let mut cmd = latchkey(&["keys", "list", "--config"]);
    cmd.arg(&missing).env("RUST_BACKTRACE", "1");
    assert!(text(&run(cmd).stderr).contains("backtrace"));
}
