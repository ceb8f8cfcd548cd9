//! The real server in-process on 127.0.0.1:0 with a real SQLite file in a
//! temporary directory and a clock the test moves.

use std::path::PathBuf;
use std::sync::Arc;

use latchkey_core::clock::{Clock, ManualClock, SystemClock};
use latchkey_core::password::Argon2Cost;
use latchkey_server::rate_limit::RateLimits;
use latchkey_server::{RunningServer, Settings};
use serde_json::{json, Value};

use crate::http::Tokens;

pub struct TestServer {
    pub base: String,
    pub clock: Arc<ManualClock>,
    pub settings: Settings,
    pub http: reqwest::Client,
    server: Option<RunningServer>,
    _dir: Arc<tempfile::TempDir>,
}

/// Cheap Argon2 so tests spend their time on behaviour, not hashing.
pub fn test_settings(data_dir: PathBuf) -> Settings {
    let listen = "127.0.0.1:0".parse().expect("addr");
    let mut s = Settings::new(listen, data_dir);
    s.policy.issuer = "http://latchkey.test".into();
    s.argon2 = Argon2Cost {
        memory_kib: 256,
        iterations: 1,
        parallelism: 1,
    };
    // Tests make many requests from one address; the tests of the limits
    // themselves turn them back on.
    s.rate_limits = RateLimits {
        sign_up_per_minute: 0,
        tokens_per_minute: 0,
        recovery_per_minute: 0,
    };
    s
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(customise: impl FnOnce(&mut Settings)) -> Self {
        let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
        let mut settings = test_settings(dir.path().join("data"));
        customise(&mut settings);
        let clock = Arc::new(ManualClock::new(SystemClock.now()));
        Self::launch(settings, clock, dir).await
    }

    async fn launch(
        settings: Settings,
        clock: Arc<ManualClock>,
        dir: Arc<tempfile::TempDir>,
    ) -> Self {
        let server = RunningServer::start(settings.clone(), clock.clone())
            .await
            .expect("server starts");
        Self {
            base: format!("http://{}", server.addr),
            clock,
            settings,
            http: reqwest::Client::new(),
            server: Some(server),
            _dir: dir,
        }
    }

    /// A second node on the same data directory (and so the same database
    /// and server secret), with the same clock.
    pub async fn another_node(&self) -> Self {
        Self::launch(self.settings.clone(), self.clock.clone(), self._dir.clone()).await
    }

    /// Stops the server and starts a new one on the same data directory.
    pub async fn restart(mut self) -> Self {
        if let Some(s) = self.server.take() {
            s.stop().await;
        }
        Self::launch(self.settings.clone(), self.clock.clone(), self._dir.clone()).await
    }

    /// Runs the node's signing-key maintenance now (reload from the store,
    /// removal of retired keys whose tokens have expired) instead of waiting
    /// for its periodic tick.
    pub async fn maintain_keys(&self) -> latchkey_core::key_manager::KeyMaintenance {
        self.server
            .as_ref()
            .expect("server running")
            .maintain_keys(None)
            .await
            .expect("key maintenance")
    }

    /// The running node's ID-token signing key (RS256), creating that
    /// lineage in the store on first call.
    pub async fn id_token_key(&self) -> std::sync::Arc<latchkey_core::access_token::SigningKey> {
        self.server
            .as_ref()
            .expect("server running")
            .id_token_key()
            .await
            .expect("ID-token key")
    }

    /// `latchkey audit` on this server's data: the newest `limit` events
    /// (of `user`, since `since` seconds ago), oldest first.
    pub async fn audit_events(
        &self,
        user: Option<&str>,
        since: Option<u64>,
        limit: usize,
    ) -> Vec<Value> {
        latchkey_server::cli::audit::run(
            latchkey_server::cli::audit::AuditArgs {
                location: latchkey_server::config::DataArgs {
                    data_dir: Some(self.settings.data_dir.clone()),
                    ..Default::default()
                },
                user: user.map(str::to_owned),
                since: since.map(std::time::Duration::from_secs),
                limit,
            },
            &*self.clock,
        )
        .await
        .expect("audit")
    }

    /// The token of a fresh password-reset link for the account with this
    /// id (not mailed).
    pub async fn reset_token(&self, user_id: &str) -> String {
        let link = self
            .server
            .as_ref()
            .expect("running")
            .password_reset_link(user_id)
            .await
            .expect("reset link");
        token_of(&link)
    }

    /// The token of a fresh verification link for the account's address
    /// (not mailed).
    pub async fn verification_token(&self, user_id: &str) -> String {
        let link = self
            .server
            .as_ref()
            .expect("running")
            .email_verification_link(user_id)
            .await
            .expect("verification link")
            .expect("the account has an address");
        token_of(&link)
    }

    /// Writes the tallied throttled attempts to the audit log now.
    pub async fn flush_audit(&self) {
        self.server.as_ref().expect("running").flush_audit().await;
    }

    /// The test's clock, in seconds since the epoch.
    pub fn clock_now(&self) -> i64 {
        self.clock.now()
    }

    /// The base URL of the `metrics_listen` listener, when it is set.
    pub fn metrics_base(&self) -> Option<String> {
        let addr = self.server.as_ref()?.metrics_addr?;
        Some(format!("http://{addr}"))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    pub async fn get_bearer(&self, path: &str, token: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    pub async fn sign_up(&self, username: &str, password: &str) -> reqwest::Response {
        self.post(
            "/v1/sign-up",
            json!({"username": username, "password": password}),
        )
        .await
    }

    pub async fn sign_in(&self, username: &str, password: &str) -> reqwest::Response {
        self.post(
            "/v1/sign-in",
            json!({"username": username, "password": password}),
        )
        .await
    }

    /// Signs a new user up and in; returns the token response.
    pub async fn new_session(&self, username: &str) -> Tokens {
        let r = self.sign_up(username, "correct horse battery").await;
        assert!(
            r.status() == 201 || r.status() == 409,
            "sign-up: {}",
            r.status()
        );
        let r = self.sign_in(username, "correct horse battery").await;
        assert_eq!(r.status(), 200);
        Tokens::from(r.json::<Value>().await.expect("json"))
    }

    pub async fn refresh(&self, refresh_token: &str) -> reqwest::Response {
        self.post(
            "/v1/tokens/refresh",
            json!({"refresh_token": refresh_token}),
        )
        .await
    }
}

fn token_of(link: &str) -> String {
    link.split_once("?token=")
        .expect("a link with a token")
        .1
        .to_owned()
}
