//! Start-up and shutdown: data directory, store, authority, listener, and
//! the accept loop that serves connections within their limits.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::metrics::gauge;
use latchkey_core::access_token::SigningKey;
use latchkey_core::clock::Clock;
use latchkey_core::key_manager::KeyMaintenance;
use latchkey_core::keys::KeySealer;
use latchkey_core::metrics as metric;
use latchkey_core::password::Argon2Hashing;
use latchkey_core::store::{Store, StoreError};
use latchkey_core::{AuthError, Authority};
use latchkey_store::postgres::PostgresOptions;
use latchkey_store::{PostgresStore, SqliteStore};
use tokio::sync::{oneshot, watch, Notify};
use tokio::task::JoinHandle;

use crate::browser::BrowserOrigins;
use crate::client_address::AddressResolution;
use crate::config::{whole_seconds, ConfigError, Settings};
use crate::data_dir::{self, DataDir, DataDirError};
use crate::hashing_pool::HashingPool;
use crate::rate_limit::RateLimiter;
use crate::routes;

mod connections;

pub use connections::ConnectionLimits;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("data directory: {0}")]
    DataDir(#[from] DataDirError),
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Auth(#[from] AuthError),
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// How often every node re-reads the signing keys from the store. Nodes do
/// not notify each other: after a rotation (by another node, the CLI or the
/// schedule) a node keeps signing with the old key for at most this long,
/// and verifies tokens of a new key only once it has reloaded. The next key
/// is published a whole rotation interval ahead, so only signing lags.
/// 5 s keeps that lag small for one indexed read of a handful of rows.
const RELOAD_KEYS_EVERY: Duration = Duration::from_secs(5);
/// A retired key is kept this much longer than its tokens' lifetime plus
/// leeway, for tokens signed by nodes that had not yet reloaded (two reload
/// intervals, so one slow or missed reload is covered too).
pub(crate) const KEY_PROPAGATION_SECONDS: i64 = 2 * RELOAD_KEYS_EVERY.as_secs() as i64;

/// How often the live-sessions gauge is refreshed: one counting query.
const COUNT_SESSIONS_EVERY: Duration = Duration::from_secs(15);

/// How often expired revocation entries and sessions are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// How often the node catches up with revocations in the store (written by
/// this node or, sharing a database, by others): bounds how stale the
/// in-memory set and long-polling feed readers can be.
const SYNC_REVOCATIONS_EVERY: Duration = Duration::from_millis(200);

/// A server accepting connections; dropping it does not stop it, `stop` does.
pub struct RunningServer {
    pub addr: SocketAddr,
    /// Where `/metrics` is served when `metrics_listen` is set.
    pub metrics_addr: Option<SocketAddr>,
    authority: Arc<Authority>,
    shutdown: Option<oneshot::Sender<()>>,
    serve: JoinHandle<std::io::Result<()>>,
    /// The `metrics_listen` listener's shutdown and task.
    metrics_serve: Option<(oneshot::Sender<()>, JoinHandle<std::io::Result<()>>)>,
    background: JoinHandle<()>,
    /// Sends what is in the outbox; `None` without SMTP settings.
    mail_worker: Option<JoinHandle<()>>,
}

impl RunningServer {
    /// Opens (or creates) the data directory and starts listening. `clock` is
    /// injectable so tests can move time.
    pub async fn start(settings: Settings, clock: Arc<dyn Clock>) -> Result<Self, StartError> {
        // Before anything records (opening the store commits).
        crate::metrics::handle();
        // Bind first: with port 0 the default issuer must name the real port.
        let (listener, addr) = bind(settings.listen).await?;
        let metrics_listener = match settings.metrics_listen {
            Some(at) => Some(bind(at).await?),
            None => None,
        };
        let mut policy = settings.policy.clone();
        // Mail goes out exactly when there is a worker to send it.
        policy.mail_enabled = settings.smtp.is_some();
        if policy.issuer == format!("http://{}", settings.listen) {
            policy.issuer = format!("http://{addr}");
        }
        let (dir, store) = open_data(&settings, IfMissing::Create).await?;
        for client in &settings.clients {
            store.upsert_client(client).await?;
        }
        let hasher = password_hasher(&settings, settings.hashing_threads)?;
        let (authority, startup) =
            Authority::open(store, clock, hasher, &dir.secret, policy.clone()).await?;
        for what in &dir.created {
            tracing::info!("created {what}");
        }
        for kid in &startup.created_signing_keys {
            tracing::info!(kid, "created signing key");
        }
        let authority = Arc::new(authority);

        tracing::info!(%addr, issuer = %policy.issuer, data_dir = %settings.data_dir.display(), "listening");

        let (shutdown, stopped) = oneshot::channel::<()>();
        let (feed_tx, feed_updates) = watch::channel(authority.revocations_cursor());
        let browser_origins = Arc::new(BrowserOrigins::new(
            policy.public_url(),
            &settings.cors_allowed_origins,
        ));
        browser_origins.set_registered(authority.sync_clients().await?);
        let app = routes::router(routes::App {
            auth: authority.clone(),
            feed_updates,
            public_revocation_feed: settings.public_revocation_feed,
            sign_up_limit: RateLimiter::per_minute(settings.rate_limits.sign_up_per_minute),
            tokens_limit: RateLimiter::per_minute(settings.rate_limits.tokens_per_minute),
            recovery_limit: RateLimiter::per_minute(settings.rate_limits.recovery_per_minute),
            serve_metrics: settings.metrics_listen.is_none(),
            browser_origins: browser_origins.clone(),
            client_addresses: Arc::new(AddressResolution {
                proxies: settings.trusted_proxies.clone(),
                prefixes: settings.network_prefixes,
            }),
        });
        let limits = ConnectionLimits {
            header_read_timeout: settings.header_read_timeout,
            idle_timeout: settings.idle_timeout,
            max_connections: settings.max_connections,
        };
        let metrics_addr = metrics_listener.as_ref().map(|(_, at)| *at);
        let metrics_serve = metrics_listener.map(|(listener, at)| {
            tracing::info!(addr = %at, "serving /metrics");
            let (stop, stopped) = oneshot::channel::<()>();
            let task = tokio::spawn(connections::serve(
                listener,
                crate::metrics::router(),
                limits,
                async {
                    let _ = stopped.await;
                },
            ));
            (stop, task)
        });
        let serve = tokio::spawn(connections::serve(listener, app, limits, async {
            let _ = stopped.await;
        }));
        let rotate_every = settings.key_rotation_interval.map(whole_seconds);
        let background = tokio::spawn(maintain(
            authority.clone(),
            feed_tx,
            rotate_every,
            browser_origins,
        ));
        let mail_worker = match &settings.smtp {
            Some(smtp) => Some(
                crate::mail::spawn_worker(authority.clone(), smtp)
                    .map_err(|e| StartError::Config(ConfigError::Invalid(e)))?,
            ),
            None => {
                tracing::info!("mail is not configured: no reset or verification links are mailed");
                None
            }
        };
        Ok(Self {
            authority,
            addr,
            metrics_addr,
            metrics_serve,
            shutdown: Some(shutdown),
            serve,
            background,
            mail_worker,
        })
    }

    /// Stops accepting, finishes in-flight requests, releases the store.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.background.abort();
        if let Some(worker) = self.mail_worker.take() {
            // What it had claimed is due again when the claim lapses.
            worker.abort();
            let _ = worker.await;
        }
        if let Some((stop, task)) = self.metrics_serve.take() {
            let _ = stop.send(());
            let _ = task.await;
        }
        let _ = (&mut self.serve).await;
        let _ = (&mut self.background).await;
        self.authority.flush_throttled_audit().await;
    }

    /// Runs one signing-key maintenance pass now (reload, scheduled
    /// rotation, removal of expired retired keys) instead of waiting for the
    /// next tick; for tests and operators' tooling.
    pub async fn maintain_keys(
        &self,
        rotate_every: Option<i64>,
    ) -> Result<KeyMaintenance, AuthError> {
        self.authority
            .keys()
            .maintain(rotate_every, KEY_PROPAGATION_SECONDS)
            .await
    }

    /// The ID-token signing key, creating that lineage on first need (see
    /// `KeyManager::id_token_key`); for tests and operators' tooling.
    pub async fn id_token_key(&self) -> Result<Arc<SigningKey>, AuthError> {
        self.authority.keys().id_token_key().await
    }

    /// Writes the throttled attempts tallied since the last minute's flush
    /// to the audit log now; for tests and operators' tooling.
    pub async fn flush_audit(&self) {
        self.authority.flush_throttled_audit().await;
    }

    /// A password-reset link (30 minutes) for the account with this id (as
    /// `/v1/me` shows it), returned rather than mailed; for tests and
    /// operators' tooling.
    pub async fn password_reset_link(&self, user_id: &str) -> Result<String, AuthError> {
        let id = parse_user_id(user_id)?;
        let link = self
            .authority
            .password_reset_link(id, latchkey_core::service::RESET_LINK_SECONDS)
            .await?;
        Ok(secrecy_expose(&link))
    }

    /// A verification link for the account's current address (`None`
    /// without one), returned rather than mailed; for tests and operators'
    /// tooling.
    pub async fn email_verification_link(
        &self,
        user_id: &str,
    ) -> Result<Option<String>, AuthError> {
        let id = parse_user_id(user_id)?;
        let link = self.authority.email_verification_link(id).await?;
        Ok(link.as_ref().map(secrecy_expose))
    }

    /// Runs until the server stops by itself (it only does on error).
    pub async fn wait(&mut self) -> std::io::Result<()> {
        match (&mut self.serve).await {
            Ok(result) => result,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }
}

/// A listener on `at`, and the address it got (the port, for port 0).
async fn bind(at: SocketAddr) -> Result<(tokio::net::TcpListener, SocketAddr), StartError> {
    let listen_error = |source| StartError::Listen { addr: at, source };
    let listener = tokio::net::TcpListener::bind(at)
        .await
        .map_err(listen_error)?;
    let addr = listener.local_addr().map_err(listen_error)?;
    Ok((listener, addr))
}

/// What [`open_data`] does when the data directory or its database is not
/// there yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IfMissing {
    /// Create them (and the server secret).
    Create,
    /// Refuse, rather than work on a fresh, empty store.
    Refuse,
}

/// Opens the data directory and the store it names: SQLite in the
/// directory, or PostgreSQL at `database_url`. What `serve` and the
/// operator commands share. Refuses a store whose signing keys the server
/// secret cannot open: one that has keys but no secret is found for (a
/// database restored without its secret; no new secret is generated), or
/// one sealed with another secret.
pub(crate) async fn open_data(
    settings: &Settings,
    if_missing: IfMissing,
) -> Result<(DataDir, Arc<dyn Store>), StartError> {
    settings.validate()?;
    let sqlite_missing = settings.database_url.is_none()
        && !settings.data_dir.join(data_dir::DATABASE_FILE).exists();
    if if_missing == IfMissing::Refuse && (sqlite_missing || !settings.data_dir.exists()) {
        return Err(StartError::DataDir(DataDirError::Io {
            path: settings.data_dir.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no data here; start `latchkey serve` once or pass --data-dir",
            ),
        }));
    }
    let prepared = data_dir::prepare(&settings.data_dir, settings.server_secret.as_ref())?;
    let new_database = settings.database_url.is_none() && !prepared.database.exists();
    let store: Arc<dyn Store> = match &settings.database_url {
        Some(url) => {
            let options = PostgresOptions {
                max_connections: settings.database_max_connections,
                ..PostgresOptions::default()
            };
            Arc::new(PostgresStore::connect(url.expose(), options).await?)
        }
        None => Arc::new(SqliteStore::open(&prepared.database)?),
    };
    let keys = store.signing_keys().await?;
    if !prepared.has_secret() && !keys.is_empty() {
        return Err(DataDirError::SecretMissing {
            path: prepared.secret_path().to_owned(),
        }
        .into());
    }
    let mut dir = prepared.finish()?;
    if new_database {
        dir.created
            .push(format!("database {}", dir.database.display()));
    }
    // A wrong secret would otherwise surface as an undecryptable key.
    let sealer = KeySealer::new(&dir.secret)?;
    if let Some(key) = keys
        .iter()
        .find(|k| sealer.open(&k.kid, &k.sealed_private_key).is_err())
    {
        return Err(DataDirError::WrongSecret {
            from: dir.secret_source.clone(),
            kid: key.kid.clone(),
        }
        .into());
    }
    Ok((dir, store))
}

/// A hashing pool of `threads` threads with the settings' Argon2 cost,
/// pepper and queue.
pub(crate) fn password_hasher(
    settings: &Settings,
    threads: usize,
) -> Result<Arc<HashingPool>, StartError> {
    let pepper = settings
        .password_pepper
        .as_ref()
        .map(|p| p.expose().as_bytes());
    Ok(Arc::new(HashingPool::new(
        Argon2Hashing::with_pepper(settings.argon2, pepper)?,
        threads,
        settings.hashing_queue(),
    )))
}

/// Background upkeep: keep the revocation set in step with the store (and
/// wake long-polling feed readers), prune what has expired, and keep the
/// signing keys in step (reload, scheduled rotation, removal).
async fn maintain(
    authority: Arc<Authority>,
    feed: watch::Sender<i64>,
    rotate_every: Option<i64>,
    origins: Arc<BrowserOrigins>,
) {
    // A revocation recorded here is synced at once rather than at the next
    // tick, so feed readers learn of it in milliseconds.
    let revoked = Arc::new(Notify::new());
    let signal = revoked.clone();
    authority.on_revocation(move || signal.notify_one());
    let mut keys = tokio::time::interval(RELOAD_KEYS_EVERY);
    keys.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sync = tokio::time::interval(SYNC_REVOCATIONS_EVERY);
    sync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut prune = tokio::time::interval(PRUNE_EVERY);
    let mut count_sessions = tokio::time::interval(COUNT_SESSIONS_EVERY);
    count_sessions.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut caught_up = Instant::now();
    loop {
        tokio::select! {
            _ = sync.tick() => sync_revocations(&authority, &feed, &mut caught_up).await,
            _ = revoked.notified() => sync_revocations(&authority, &feed, &mut caught_up).await,
            _ = count_sessions.tick() => {
                match authority.count_live_sessions().await {
                    Ok(n) => gauge!(metric::LIVE_SESSIONS).set(n as f64),
                    Err(e) => tracing::debug!(error = %e, "counting live sessions failed"),
                }
                match authority.outbox_depth().await {
                    Ok(n) => gauge!(metric::OUTBOX_DEPTH).set(n as f64),
                    Err(e) => tracing::debug!(error = %e, "counting the mail outbox failed"),
                }
            }
            _ = keys.tick() => {
                crate::metrics::upkeep();
                match authority.keys().maintain(rotate_every, KEY_PROPAGATION_SECONDS).await {
                    Ok(done) => {
                        for r in done.rotated.iter().chain(&done.id_token_rotated) {
                            tracing::info!(purpose = r.purpose.as_str(), retired = %r.retired, current = %r.current, next = %r.next, "scheduled key rotation");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "signing-key maintenance failed"),
                }
                if let Some(age) = authority.signing_key_age() {
                    gauge!(metric::SIGNING_KEY_AGE).set(age as f64);
                }
                // Clients registered or changed by `latchkey clients` on any
                // node reach CORS (and, with redirect URIs, have their ID-token
                // keys made) within one tick.
                match authority.sync_clients().await {
                    Ok(registered) => origins.set_registered(registered),
                    Err(e) => tracing::debug!(error = %e, "reading clients' origins failed"),
                }
            }
            _ = prune.tick() => {
                authority.flush_throttled_audit().await;
                match authority.prune().await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(rows = n, "pruned expired rows"),
                    Err(e) => tracing::warn!(error = %e, "pruning failed"),
                }
            }
        }
    }
}

/// Catches the revocation set up with the store and wakes long-polling feed
/// readers when the cursor moved. `caught_up` is when the last sync that
/// read the feed to its end started: this node's view is that old, which
/// the feed-lag gauge shows (it grows while the store is unreachable).
async fn sync_revocations(
    authority: &Authority,
    feed: &watch::Sender<i64>,
    caught_up: &mut Instant,
) {
    let started = Instant::now();
    match authority.sync_revocations().await {
        Ok(_) => *caught_up = started,
        Err(e) => tracing::warn!(error = %e, "revocation sync failed"),
    }
    gauge!(metric::REVOCATION_FEED_LAG).set(caught_up.elapsed().as_secs_f64());
    feed.send_if_modified(|cursor| {
        let latest = authority.revocations_cursor();
        std::mem::replace(cursor, latest) != latest
    });
}

fn parse_user_id(user_id: &str) -> Result<uuid::Uuid, AuthError> {
    user_id
        .parse()
        .map_err(|_| AuthError::InvalidRequest("not a user id".to_owned()))
}

fn secrecy_expose(link: &secrecy::SecretString) -> String {
    use secrecy::ExposeSecret as _;
    link.expose_secret().to_owned()
}
