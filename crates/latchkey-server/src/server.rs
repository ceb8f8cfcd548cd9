//! Start-up and shutdown: data directory, store, authority, listener.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use latchkey_core::clock::Clock;
use latchkey_core::password::Argon2Hashing;
use latchkey_core::store::StoreError;
use latchkey_core::{AuthError, Authority};
use latchkey_store::SqliteStore;
use tokio::sync::oneshot;
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

/// How often expired revocation entries are dropped from memory.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// A server accepting connections; dropping it does not stop it, `stop` does.
pub struct RunningServer {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    serve: JoinHandle<std::io::Result<()>>,
    prune: JoinHandle<()>,
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
        let app =
            routes::router(authority.clone()).into_make_service_with_connect_info::<SocketAddr>();
        let serve = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        let prune = tokio::spawn(async move {
            let mut tick = tokio::time::interval(PRUNE_EVERY);
            loop {
                tick.tick().await;
                authority.prune_revocations();
            }
        });
        Ok(Self {
            addr,
            shutdown: Some(shutdown),
            serve,
            prune,
        })
    }

    /// Stops accepting, finishes in-flight requests, releases the store.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.prune.abort();
        let _ = (&mut self.serve).await;
        let _ = (&mut self.prune).await;
    }

    /// Runs until the server stops by itself (it only does on error).
    pub async fn wait(&mut self) -> std::io::Result<()> {
        match (&mut self.serve).await {
            Ok(result) => result,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }
}
