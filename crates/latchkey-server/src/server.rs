//! Start-up and shutdown: data directory, store, authority, listener.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use latchkey_core::clock::Clock;
use latchkey_core::password::Argon2Hashing;
use latchkey_core::store::StoreError;
use latchkey_core::{AuthError, Authority};
use latchkey_store::SqliteStore;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::config::{ConfigError, Settings};
use crate::data_dir::{self, DataDirError};
use crate::hashing_pool::HashingPool;
use crate::routes;

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

/// How often expired revocation entries and sessions are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// How often the node catches up with revocations in the store (written by
/// this node or, sharing a database, by others): bounds how stale the
/// in-memory set and long-polling feed readers can be.
const SYNC_REVOCATIONS_EVERY: Duration = Duration::from_millis(200);

/// A server accepting connections; dropping it does not stop it, `stop` does.
pub struct RunningServer {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    serve: JoinHandle<std::io::Result<()>>,
    background: JoinHandle<()>,
}

impl RunningServer {
    /// Opens (or creates) the data directory and starts listening. `clock` is
    /// injectable so tests can move time.
    pub async fn start(settings: Settings, clock: Arc<dyn Clock>) -> Result<Self, StartError> {
        settings.validate()?;
        let dir = data_dir::prepare(&settings.data_dir)?;
        let store = Arc::new(SqliteStore::open(&dir.database)?);
        let hasher = Arc::new(HashingPool::new(
            Argon2Hashing::new(settings.argon2)?,
            settings.hashing_threads,
        ));
        let (authority, startup) =
            Authority::open(store, clock, hasher, &dir.secret, settings.policy.clone()).await?;
        for what in &dir.created {
            tracing::info!("created {what}");
        }
        if let Some(kid) = &startup.created_signing_key {
            tracing::info!(kid, "created signing key");
        }
        let authority = Arc::new(authority);

        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .map_err(|source| StartError::Listen {
                addr: settings.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Listen {
            addr: settings.listen,
            source,
        })?;
        tracing::info!(%addr, issuer = %settings.policy.issuer, data_dir = %settings.data_dir.display(), "listening");

        let (shutdown, stopped) = oneshot::channel::<()>();
        let (feed_tx, feed_updates) = watch::channel(authority.revocations_cursor());
        let app = routes::router(routes::App {
            auth: authority.clone(),
            feed_updates,
        })
        .into_make_service_with_connect_info::<SocketAddr>();
        let serve = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        let background = tokio::spawn(maintain(authority, feed_tx));
        Ok(Self {
            addr,
            shutdown: Some(shutdown),
            serve,
            background,
        })
    }

    /// Stops accepting, finishes in-flight requests, releases the store.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.background.abort();
        let _ = (&mut self.serve).await;
        let _ = (&mut self.background).await;
    }

    /// Runs until the server stops by itself (it only does on error).
    pub async fn wait(&mut self) -> std::io::Result<()> {
        match (&mut self.serve).await {
            Ok(result) => result,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }
}

/// Background upkeep: keep the revocation set in step with the store (and
/// wake long-polling feed readers), and prune what has expired.
async fn maintain(authority: Arc<Authority>, feed: watch::Sender<i64>) {
    let mut sync = tokio::time::interval(SYNC_REVOCATIONS_EVERY);
    sync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut prune = tokio::time::interval(PRUNE_EVERY);
    loop {
        tokio::select! {
            _ = sync.tick() => {
                if let Err(e) = authority.sync_revocations().await {
                    tracing::warn!(error = %e, "revocation sync failed");
                }
                feed.send_if_modified(|cursor| {
                    let latest = authority.revocations_cursor();
                    std::mem::replace(cursor, latest) != latest
                });
            }
            _ = prune.tick() => {
                match authority.prune().await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(rows = n, "pruned expired rows"),
                    Err(e) => tracing::warn!(error = %e, "pruning failed"),
                }
            }
        }
    }
}
