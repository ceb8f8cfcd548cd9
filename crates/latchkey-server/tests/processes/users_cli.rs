//! `latchkey users …` as an operator runs it: the real binary on the data
//! directory a running server (also the real binary) is using. Every
//! subcommand prints JSON on stdout (one also a table); what it does is
//! seen by the running server: sessions it ends are refused within the
//! store's revocation interval, roles reach the next token.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use latchkey_testkit::process::ServerProcess;
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse battery";

fn users(data_dir: &Path, config: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_latchkey"));
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        if name.starts_with("LATCHKEY_") {
            cmd.env_remove(name);
        }
    }
    cmd.arg("users")
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--config")
        .arg(config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn latchkey");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.unwrap_or("").as_bytes())
        .expect("write stdin");
    drop(input);
    child.wait_with_output().expect("run latchkey")
}

fn json_of(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

struct Site {
    _dir: tempfile::TempDir,
    data_dir: PathBuf,
    config: PathBuf,
    server: ServerProcess,
    http: reqwest::Client,
}

impl Site {
    fn users(&self, args: &[&str]) -> Value {
        json_of(&users(&self.data_dir, &self.config, args, None))
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.server.base))
            .json(&body)
            .send()
            .await
            .expect("request");
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn sign_in(&self, username: &str) -> (u16, Value) {
        self.post(
            "/v1/sign-in",
            json!({"username": username, "password": PASSWORD}),
        )
        .await
    }

    async fn me(&self, access: &str) -> u16 {
        self.http
            .get(format!("{}/v1/me", self.server.base))
            .bearer_auth(access)
            .send()
            .await
            .expect("request")
            .status()
            .as_u16()
    }

    /// Waits (at most 2 s) until `access` is refused: the server reads the
    /// revocations the CLI wrote every 200 ms.
    async fn refused_soon(&self, access: &str) {
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.me(access).await != 401 {
            assert!(Instant::now() < deadline, "still accepted after 2 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_users_subcommand_works_on_the_data_of_a_running_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let config = dir.path().join("latchkey.toml");
    std::fs::write(
        &config,
        "sign_up = \"invite\"\n[rate_limits]\ntokens_per_minute = 0\nsign_up_per_minute = 0\n\
         [argon2]\nmemory_kib = 256\niterations = 1\nparallelism = 1\n",
    )
    .expect("config");
    let server = ServerProcess::start(env!("CARGO_BIN_EXE_latchkey"), &data_dir, &config);
    let site = Site {
        _dir: dir,
        data_dir,
        config,
        server,
        http: reqwest::Client::new(),
    };

    // create, with the password on stdin (never a flag), and roles.
    let out = users(
        &site.data_dir,
        &site.config,
        &["create", "Alice", "--password-stdin", "--role", "ops"],
        Some(&format!("{PASSWORD}\n")),
    );
    let alice = json_of(&out);
    assert_eq!(
        (alice["username"].as_str(), &alice["roles"]),
        (Some("Alice"), &json!(["ops"]))
    );
    assert!(alice.get("set_password_link").is_none());
    let id = alice["id"].as_str().expect("id").to_owned();
    let (status, tokens) = site.sign_in("alice").await;
    assert_eq!(status, 200);
    let access = tokens["access_token"].as_str().expect("at").to_owned();

    // list, show (by name and by id), and a table once.
    let list = site.users(&["list", "--query", "ali"]);
    assert_eq!(list["users"][0]["id"], id.as_str());
    assert_eq!(site.users(&["show", "alice"])["id"], id.as_str());
    assert_eq!(site.users(&["show", &id])["username"], "Alice");
    let table = users(
        &site.data_dir,
        &site.config,
        &["list", "--format", "table"],
        None,
    );
    assert!(table.status.success());
    let table = String::from_utf8_lossy(&table.stdout).into_owned();
    let mut lines = table.lines();
    assert!(
        lines
            .next()
            .is_some_and(|h| h.contains("USERNAME") && h.contains("ID")),
        "{table}"
    );
    assert!(
        lines
            .next()
            .is_some_and(|row| row.contains("Alice") && row.contains(&id)),
        "{table}"
    );

    // set-roles reaches the next refresh; sessions lists the session.
    let roles = site.users(&["set-roles", "alice", "editor", "beta"]);
    assert_eq!(roles["roles"], json!(["editor", "beta"]));
    let sessions = site.users(&["sessions", "alice"]);
    assert_eq!(sessions["sessions"].as_array().map(Vec::len), Some(1));
    let (status, refreshed) = site
        .post(
            "/v1/tokens/refresh",
            json!({"refresh_token": tokens["refresh_token"]}),
        )
        .await;
    assert_eq!(status, 200);
    let refresh = refreshed["refresh_token"].clone();

    // disable: the running server refuses the session within its interval.
    assert_eq!(site.users(&["disable", "alice"])["disabled"], true);
    site.refused_soon(refreshed["access_token"].as_str().expect("at"))
        .await;
    let (status, _) = site
        .post("/v1/tokens/refresh", json!({"refresh_token": refresh}))
        .await;
    assert_eq!(status, 401);
    assert_eq!(site.sign_in("alice").await.0, 401);
    assert_eq!(site.users(&["enable", "alice"])["disabled"], false);
    let (status, tokens) = site.sign_in("alice").await;
    assert_eq!(status, 200);
    // The first access token, of the same session, went with it.
    assert_eq!(site.me(&access).await, 401);

    // end-sessions, reset-link, unlock.
    assert_eq!(site.users(&["end-sessions", "alice"])["ended"], 1);
    site.refused_soon(tokens["access_token"].as_str().expect("at"))
        .await;
    let reset = site.users(&["reset-link", "alice"]);
    assert!(reset["link"]
        .as_str()
        .is_some_and(|l| l.contains("/account/reset-password?token=")));
    assert_eq!(site.users(&["unlock", "alice"])["unlocked"], false);

    // invite: the code signs someone up on the invite-only server.
    let invite = site.users(&["invite", "--expires-in", "1h", "--role", "beta"]);
    let (status, _) = site
        .post(
            "/v1/sign-up",
            json!({"username": "carol", "password": PASSWORD, "invite": invite["code"]}),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(
        site.post(
            "/v1/sign-up",
            json!({"username": "dan", "password": PASSWORD})
        )
        .await
        .0,
        403
    );

    // create without a password: a link, no sign-in; delete.
    let bob = site.users(&["create", "bob", "--email", "bob@example.com"]);
    assert!(bob["set_password_link"].as_str().is_some());
    assert_eq!(site.sign_in("bob").await.0, 401);
    assert_eq!(site.users(&["delete", "bob"])["deleted"], true);
    let gone = users(&site.data_dir, &site.config, &["show", "bob"], None);
    assert!(!gone.status.success());
    assert!(gone.stdout.is_empty());
    assert!(
        String::from_utf8_lossy(&gone.stderr).contains("no account has the id or username \"bob\"")
    );

    // Each action is in the audit log with the actor `cli`.
    let audit = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(["audit", "--data-dir"])
        .arg(&site.data_dir)
        .arg("--config")
        .arg(&site.config)
        .output()
        .expect("audit");
    let kinds: Vec<(String, String)> = String::from_utf8_lossy(&audit.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json line"))
        .filter(|e| e["actor"].is_string())
        .map(|e| {
            (
                e["kind"].as_str().unwrap_or("").to_owned(),
                e["actor"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    for kind in [
        "admin_user_created",
        "admin_user_updated",
        "admin_user_disabled",
        "admin_user_enabled",
        "admin_sessions_ended",
        "admin_reset_link",
        "admin_invite_created",
        "admin_user_deleted",
    ] {
        assert!(
            kinds.contains(&(kind.to_owned(), "cli".to_owned())),
            "{kind}: {kinds:?}"
        );
    }
}
