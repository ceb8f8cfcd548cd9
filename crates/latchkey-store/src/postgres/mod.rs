//! The PostgreSQL store, for several stateless Latchkey nodes sharing one
//! database (docs/ARCHITECTURE.md, Storage and durability). Same contract and semantics as the SQLite store;
//! all coordination between nodes happens in the database:
//!
//! - **Refresh** is two statements, one round trip each once the pool's
//!   connection has them prepared: `session_and_user` (one `SELECT` with a
//!   `JOIN`) and `advance_session` (one compare-and-set `UPDATE ... WHERE
//!   id = $1 AND counter = $2 AND revoked_at IS NULL` that inserts the
//!   audit row in the same statement when it moved). Row-level locking
//!   makes exactly one of several racing nodes win.
//! - **Sign-in** opens its session in one transaction (`open_session`):
//!   after `BEGIN`, the session, its audit row, the throttle counters given
//!   back and the read of sessions beyond the limit go out pipelined, one
//!   round trip, then `COMMIT`. Only a sign-in over the limit takes the
//!   feed lock, to end sessions.
//! - **Revocation feed order is commit order.** A `BIGSERIAL` alone is not
//!   enough: sequence values are handed out at insert time but become
//!   visible at commit, so entry 8 may be visible before entry 7, and a
//!   reader that moved its cursor to 8 would never see 7. Every transaction
//!   that inserts revocation rows therefore first takes
//!   `pg_advisory_xact_lock(FEED_LOCK)`, held until it commits: the next
//!   writer draws its `seq` only after the previous one is visible, so a
//!   reader that sees `seq = n` has seen every committed entry below `n`.
//!   Revocations are rare, so serialising them costs nothing measurable.
//!   Snapshot and cursor are read in one `REPEATABLE READ` transaction.
//! - **Pool:** `deadpool-postgres`, bounded (default 16 connections), with a
//!   wait timeout (default 2 s) so requests fail fast with
//!   [`StoreError::Unavailable`] when PostgreSQL is down or saturated, and
//!   `statement_timeout` (default 5 s) set on every connection at start-up.
//!   A connection that the server closed is noticed when it goes back to
//!   the pool or is next taken, dropped, and replaced by a new one: the
//!   store recovers by itself when the server returns.
//! - **TLS:** libpq's `sslmode` and `sslrootcert` in the connection string
//!   ([`connection_string`]), rustls on aws-lc-rs ([`tls`]).
//! - **Errors:** a failed connection names its host and port and the whole
//!   cause chain ("connecting to PostgreSQL at 127.0.0.1:5432: error
//!   performing TLS handshake: invalid peer certificate: UnknownIssuer"),
//!   never the password. Connection refused or lost, pool wait or connect timeouts,
//!   SQLSTATE class `08` (connection exception), `57P01`-`57P03` (server
//!   shutting down, crashed, starting up), `53300` (too many connections)
//!   and `57014` (statement timeout / cancelled) are
//!   [`StoreError::Unavailable`]; everything else, e.g. a broken constraint,
//!   is [`StoreError::Backend`].

mod account_tokens;
mod audit;
mod authorization;
mod clients;
pub mod connection_string;
mod invites;
mod migrations;
mod outbox;
mod revocations;
mod sessions;
mod sign_in_attempts;
mod signing_keys;
pub mod tls;
mod users;

use std::time::Duration;

use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime, Transaction,
};
use latchkey_core::store::{HealthStore, StoreError};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use uuid::Uuid;

use self::connection_string::{error_chain, ConnectionString};
use self::tls::RustlsConnect;
use crate::sql::{ColumnValue, Columns};

/// Advisory-lock key that serialises every transaction inserting into
/// `revocations` ("latchk" + 2), so that feed order is commit order.
const FEED_LOCK: i64 = 0x6c61_7463_686b_0002;

/// Advisory-lock key that serialises signing-key writes ("latchk" + 3).
const KEYS_LOCK: i64 = 0x6c61_7463_686b_0003;

/// How a [`PostgresStore`] uses its connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresOptions {
    /// Connections this node keeps open at most.
    pub max_connections: usize,
    /// How long a request waits for a free connection before it fails with
    /// [`StoreError::Unavailable`].
    pub wait_timeout: Duration,
    /// How long opening one connection may take (unless the URL sets
    /// `connect_timeout` itself).
    pub connect_timeout: Duration,
    /// The server cancels any statement running longer than this
    /// (`statement_timeout`, set on every connection; a `-c
    /// statement_timeout=...` in the URL's `options` wins).
    pub statement_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            wait_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(2),
            statement_timeout: Duration::from_secs(5),
        }
    }
}

pub struct PostgresStore {
    pool: Pool,
    /// `host:port` of the server, for errors.
    target: String,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("pool", &self.pool.status())
            .finish()
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (a `postgres://` URL or a libpq
    /// key-value string), brings its schema up to date under an advisory
    /// lock (safe when several nodes start at once), and returns a store
    /// backed by a connection pool. Fails with [`StoreError::Unavailable`]
    /// when the server cannot be reached (naming host, port and why), and
    /// with [`StoreError::SchemaTooNew`] on a database a newer Latchkey
    /// migrated.
    pub async fn connect(url: &str, options: PostgresOptions) -> Result<Self, StoreError> {
        let ConnectionString { mut config, tls } =
            ConnectionString::parse(url).map_err(|e| StoreError::Backend(e.to_string()))?;
        let tls = RustlsConnect::new(&tls).map_err(|e| StoreError::Backend(e.to_string()))?;
        let target = connection_string::target(&config);
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.connect_timeout);
        }
        // Ours first: a `-c statement_timeout=...` in the URL comes later and wins.
        let ours = format!(
            "-c statement_timeout={}",
            options.statement_timeout.as_millis()
        );
        let startup_options = match config.get_options() {
            Some(theirs) if !theirs.trim().is_empty() => format!("{ours} {theirs}"),
            _ => ours,
        };
        config.options(startup_options);
        if config.get_application_name().is_none() {
            config.application_name("latchkey");
        }

        migrations::migrate(&config, tls.clone(), &target).await?;

        let manager = Manager::from_config(
            config,
            tls,
            ManagerConfig {
                // A closed connection is noticed without a round trip.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.max_connections.max(1))
            .wait_timeout(Some(options.wait_timeout))
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.connect_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Backend(format!("building connection pool: {e}")))?;
        Ok(Self { pool, target })
    }

    async fn client(&self) -> Result<Object, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| pool_error(&self.target, e))
    }

    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(sql).await.map_err(pg_error)?;
        client.query(&stmt, params).await.map_err(pg_error)
    }

    async fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, StoreError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(sql).await.map_err(pg_error)?;
        client.query_opt(&stmt, params).await.map_err(pg_error)
    }

    async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(sql).await.map_err(pg_error)?;
        client.execute(&stmt, params).await.map_err(pg_error)
    }
}

#[async_trait::async_trait]
impl HealthStore for PostgresStore {
    /// `SELECT 1` on a pooled connection: the server is reachable and
    /// answering. A pool connection that the server closed is replaced on
    /// the way, so this also tells when the database is back.
    async fn ping(&self) -> Result<(), StoreError> {
        self.query_opt("SELECT 1", &[]).await.map(drop)
    }
}

/// Records one committed transaction's time for the store-commit metrics
/// (a PostgreSQL transaction is one request's writes: batch size 1).
fn record_commit(started: std::time::Instant) {
    metrics::histogram!(latchkey_core::metrics::STORE_COMMIT_BATCH_SIZE).record(1.0);
    metrics::histogram!(latchkey_core::metrics::STORE_COMMIT)
        .record(started.elapsed().as_secs_f64());
}

/// Commits `tx`, begun at `started`, and records it (see [`record_commit`]).
async fn commit(tx: Transaction<'_>, started: std::time::Instant) -> Result<(), StoreError> {
    tx.commit().await.map_err(pg_error)?;
    record_commit(started);
    Ok(())
}

/// Starts a transaction that may insert revocation entries: it holds the
/// feed lock from its first statement until it ends, so entries become
/// visible in `seq` order (see the module documentation).
async fn feed_writer(client: &mut Object) -> Result<Transaction<'_>, StoreError> {
    let tx = client.transaction().await.map_err(pg_error)?;
    lock_feed(&tx).await?;
    Ok(tx)
}

/// Takes the feed lock in `tx` until it ends; before `tx` inserts any
/// revocation entry (see [`feed_writer`]).
async fn lock_feed(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx_execute(tx, "SELECT pg_advisory_xact_lock($1)", &[&FEED_LOCK])
        .await
        .map(drop)
}

/// Starts a transaction that writes signing keys. Key writes are
/// conditional on the other keys ("unless a current key exists", "only if
/// this key is still current"), which a row lock cannot guard, so they are
/// serialised by an advisory lock instead; they happen a few times a year.
async fn keys_writer(client: &mut Object) -> Result<Transaction<'_>, StoreError> {
    let tx = client.transaction().await.map_err(pg_error)?;
    tx_execute(&tx, "SELECT pg_advisory_xact_lock($1)", &[&KEYS_LOCK]).await?;
    Ok(tx)
}

async fn tx_execute(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, StoreError> {
    let stmt = tx.prepare_cached(sql).await.map_err(pg_error)?;
    tx.execute(&stmt, params).await.map_err(pg_error)
}

async fn tx_query(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, StoreError> {
    let stmt = tx.prepare_cached(sql).await.map_err(pg_error)?;
    tx.query(&stmt, params).await.map_err(pg_error)
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

fn pool_error(target: &str, e: PoolError) -> StoreError {
    match e {
        PoolError::Timeout(kind) => StoreError::Unavailable(format!(
            "no connection to PostgreSQL at {target} in time ({kind:?} timeout)"
        )),
        // The pool only reports a driver error when opening a connection.
        PoolError::Backend(e) => connect_error(target, e),
        PoolError::Closed => StoreError::Unavailable("connection pool is closed".into()),
        PoolError::NoRuntimeSpecified => {
            StoreError::Backend("connection pool has no runtime".into())
        }
        PoolError::PostCreateHook(e) => StoreError::Backend(e.to_string()),
    }
}

/// SQLSTATEs that mean "the database cannot serve this right now".
fn is_unavailable_code(code: &str) -> bool {
    code.starts_with("08") // connection exception
        || matches!(
            code,
            "57P01" // admin_shutdown (also pg_terminate_backend)
                | "57P02" // crash_shutdown
                | "57P03" // cannot_connect_now (starting up, shutting down)
                | "53300" // too_many_connections
                | "57014" // query_canceled (statement_timeout)
        )
}

/// A failed attempt to open a connection to `target`, with its causes.
pub(crate) fn connect_error(target: &str, e: tokio_postgres::Error) -> StoreError {
    match pg_error(e) {
        StoreError::Unavailable(m) => {
            StoreError::Unavailable(format!("connecting to PostgreSQL at {target}: {m}"))
        }
        StoreError::Backend(m) => {
            StoreError::Backend(format!("connecting to PostgreSQL at {target}: {m}"))
        }
        other => other,
    }
}

pub(crate) fn pg_error(e: tokio_postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let msg = format!("{} {}: {}", db.severity(), code, db.message());
        return if is_unavailable_code(code) {
            StoreError::Unavailable(msg)
        } else {
            StoreError::Backend(msg)
        };
    }
    let msg = error_chain(&e);
    if e.is_closed() || has_io_source(&e) || msg.starts_with("timeout") {
        StoreError::Unavailable(msg)
    } else {
        StoreError::Backend(msg)
    }
}

/// Refused, reset or timed-out sockets all surface as an `io::Error` cause.
fn has_io_source(e: &tokio_postgres::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    false
}

// ---------------------------------------------------------------------------
// Rows
// ---------------------------------------------------------------------------

impl Columns for Row {
    type Error = StoreError;

    fn value<T: ColumnValue>(&self, column: &str) -> Result<T, StoreError> {
        self.try_get(column)
            .map_err(|e| Self::invalid(column, e.to_string()))
    }

    fn optional_uuid(&self, column: &str) -> Result<Option<Uuid>, StoreError> {
        self.try_get(column)
            .map_err(|e| Self::invalid(column, e.to_string()))
    }

    fn invalid(column: &str, problem: String) -> StoreError {
        StoreError::Backend(format!("column {column}: {problem}"))
    }
}

/// Session counters are `u64` in the domain and `BIGINT` here.
fn counter_param(c: u64) -> Result<i64, StoreError> {
    i64::try_from(c).map_err(|e| StoreError::Backend(format!("counter {c}: {e}")))
}

/// A row count as the domain takes it.
fn row_count(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}
