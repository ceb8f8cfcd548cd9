//! The PostgreSQL store, for several stateless Latchkey nodes sharing one
//! database (DESIGN.md §5). Same contract and semantics as the SQLite store;
//! all coordination between nodes happens in the database:
//!
//! - **Refresh** is two statements, one round trip each once the pool's
//!   connection has them prepared: `session_and_user` (one `SELECT` with a
//!   `JOIN`) and `advance_session` (one compare-and-set `UPDATE ... WHERE id
//!   = $1 AND counter = $2 AND revoked_at IS NULL`). Row-level locking makes
//!   exactly one of several racing nodes win.
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
//! - **Errors:** connection refused or lost, pool wait or connect timeouts,
//!   SQLSTATE class `08` (connection exception), `57P01`-`57P03` (server
//!   shutting down, crashed, starting up), `53300` (too many connections)
//!   and `57014` (statement timeout / cancelled) are
//!   [`StoreError::Unavailable`]; everything else, e.g. a broken constraint,
//!   is [`StoreError::Backend`].

mod migrations;
mod revocation_feed;
mod sign_in_attempts;

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime, Transaction,
};
use latchkey_core::audit::{AuditEvent, AuditKind, AuditQuery, Outcome};
use latchkey_core::client::{Client, ClientKind};
use latchkey_core::clock::UnixTime;
use latchkey_core::model::{KeyState, Session, StoredKey, User};
use latchkey_core::store::{
    AuditStore, ClientStore, FeedPage, FeedRead, PruneBefore, Revocation, RevocationKind,
    RevocationStore, SessionStore, SignInAttemptStore, SigningKeyStore, StoreError, ThrottleEntry,
    UserStore,
};
use latchkey_core::throttle::{Admission, ThrottleRule};
use tokio_postgres::types::{FromSql, ToSql};
use tokio_postgres::{IsolationLevel, NoTls, Row};
use uuid::Uuid;

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
    /// when the server cannot be reached.
    pub async fn connect(url: &str, options: PostgresOptions) -> Result<Self, StoreError> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Backend(format!("invalid PostgreSQL URL: {e}")))?;
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

        migrations::migrate(&config).await?;

        let manager = Manager::from_config(
            config,
            NoTls,
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
        Ok(Self { pool })
    }

    async fn client(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(pool_error)
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

impl PostgresStore {
    /// Inserts `client`; `on_conflict` says what happens when its id exists.
    async fn write_client(&self, client: &Client, on_conflict: &str) -> Result<u64, StoreError> {
        let json = |v: &Vec<String>| {
            serde_json::to_string(v).map_err(|e| StoreError::Backend(e.to_string()))
        };
        self.execute(
            &format!(
                "INSERT INTO clients (client_id, kind, secret_hash, audiences, scopes, access_ttl,
                     refresh_idle_timeout, session_lifetime, created_at, introspect_any)
                 VALUES ($1, $2, $3, $4::text::jsonb, $5::text::jsonb, $6, $7, $8, $9, $10)
                 {on_conflict}"
            ),
            &[
                &client.client_id,
                &client.kind.as_str(),
                &client.secret_hash,
                &json(&client.audiences)?,
                &json(&client.scopes)?,
                &client.access_ttl_seconds,
                &client.refresh_idle_timeout_seconds,
                &client.session_lifetime_seconds,
                &client.created_at,
                &client.introspect_any,
            ],
        )
        .await
    }
}

/// Starts a transaction that may insert revocation entries: it holds the
/// feed lock from its first statement until it ends, so entries become
/// visible in `seq` order (see the module documentation).
async fn feed_writer(client: &mut Object) -> Result<Transaction<'_>, StoreError> {
    let tx = client.transaction().await.map_err(pg_error)?;
    tx_execute(&tx, "SELECT pg_advisory_xact_lock($1)", &[&FEED_LOCK]).await?;
    Ok(tx)
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

/// With `unless_state_exists`, inserts only if no key is in the new key's
/// state; `true` if a row was written.
async fn insert_signing_key(
    tx: &Transaction<'_>,
    k: &StoredKey,
    unless_state_exists: bool,
) -> Result<bool, StoreError> {
    let guard = if unless_state_exists {
        " WHERE NOT EXISTS (SELECT 1 FROM signing_keys WHERE state = $3)"
    } else {
        ""
    };
    let n = tx_execute(
        tx,
        &format!(
            "INSERT INTO signing_keys (kid, alg, state, sealed_private_key, public_key, created_at,
                                       activated_at, retired_at)
             SELECT $1::text, $2::text, $3::text, $4::bytea, $5::bytea, $6::bigint,
                    $7::bigint, $8::bigint{guard}"
        ),
        &[
            &k.kid,
            &k.alg,
            &k.state.as_str(),
            &k.sealed_private_key,
            &k.public_key,
            &k.created_at,
            &k.activated_at,
            &k.retired_at,
        ],
    )
    .await?;
    Ok(n == 1)
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

/// A `sid` entry for each session ended, in the order given, so its access
/// tokens stop too.
async fn insert_session_revocations(
    tx: &Transaction<'_>,
    ids: &[Uuid],
    expires_at: UnixTime,
) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    let entry_ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    tx_execute(
        tx,
        "INSERT INTO revocations (kind, id, expires_at)
         SELECT $1::text, t.id, $3::bigint FROM unnest($2::text[]) WITH ORDINALITY AS t(id, n)
         ORDER BY t.n",
        &[&RevocationKind::Session.as_str(), &entry_ids, &expires_at],
    )
    .await
    .map(drop)
}

async fn insert_revocation(tx: &Transaction<'_>, e: &Revocation) -> Result<(), StoreError> {
    tx_execute(
        tx,
        "INSERT INTO revocations (kind, id, expires_at) VALUES ($1, $2, $3)",
        &[&e.kind.as_str(), &e.id, &e.expires_at],
    )
    .await
    .map(drop)
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

fn pool_error(e: PoolError) -> StoreError {
    match e {
        PoolError::Timeout(kind) => {
            StoreError::Unavailable(format!("no database connection in time ({kind:?} timeout)"))
        }
        PoolError::Backend(e) => pg_error(e),
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
    let msg = e.to_string();
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

const USER_COLUMNS: &str = "u.id, u.username, u.username_key, u.password_hash, \
     u.roles::text AS roles, u.created_at";
const SESSION_COLUMNS: &str =
    "s.id AS sid, s.user_id, s.client_id, s.audience, s.scope, s.counter, s.created_at AS s_created_at, \
     s.last_refreshed_at, s.expires_at, s.user_agent, s.ip, s.revoked_at, s.revoke_reason";

fn col<'a, T: FromSql<'a>>(row: &'a Row, name: &str) -> Result<T, StoreError> {
    row.try_get(name)
        .map_err(|e| StoreError::Backend(format!("column {name}: {e}")))
}

fn user_row(row: &Row) -> Result<User, StoreError> {
    let roles: &str = col(row, "roles")?;
    Ok(User {
        id: col(row, "id")?,
        username: col(row, "username")?,
        username_key: col(row, "username_key")?,
        password_hash: col(row, "password_hash")?,
        roles: serde_json::from_str(roles)
            .map_err(|e| StoreError::Backend(format!("column roles: {e}")))?,
        created_at: col(row, "created_at")?,
    })
}

fn session_row(row: &Row) -> Result<Session, StoreError> {
    let counter: i64 = col(row, "counter")?;
    Ok(Session {
        id: col(row, "sid")?,
        user_id: col(row, "user_id")?,
        client_id: col(row, "client_id")?,
        audience: col(row, "audience")?,
        scope: col(row, "scope")?,
        counter: u64::try_from(counter)
            .map_err(|e| StoreError::Backend(format!("column counter: {e}")))?,
        created_at: col(row, "s_created_at")?,
        last_refreshed_at: col(row, "last_refreshed_at")?,
        expires_at: col(row, "expires_at")?,
        user_agent: col(row, "user_agent")?,
        ip: col(row, "ip")?,
        revoked_at: col(row, "revoked_at")?,
        revoke_reason: col(row, "revoke_reason")?,
    })
}

fn revocation_row(row: &Row) -> Result<Revocation, StoreError> {
    let kind: &str = col(row, "kind")?;
    Ok(Revocation {
        kind: RevocationKind::parse(kind)
            .ok_or_else(|| StoreError::Backend(format!("revocation kind {kind}")))?,
        id: col(row, "id")?,
        expires_at: col(row, "expires_at")?,
    })
}

fn key_row(row: &Row) -> Result<StoredKey, StoreError> {
    let state: &str = col(row, "state")?;
    Ok(StoredKey {
        kid: col(row, "kid")?,
        alg: col(row, "alg")?,
        state: KeyState::parse(state)
            .ok_or_else(|| StoreError::Backend(format!("key state {state}")))?,
        sealed_private_key: col(row, "sealed_private_key")?,
        public_key: col(row, "public_key")?,
        created_at: col(row, "created_at")?,
        activated_at: col(row, "activated_at")?,
        retired_at: col(row, "retired_at")?,
    })
}

const CLIENT_COLUMNS: &str = "client_id, kind, secret_hash, audiences::text AS audiences, \
     scopes::text AS scopes, access_ttl, refresh_idle_timeout, session_lifetime, created_at, \
     introspect_any";

fn client_row(row: &Row) -> Result<Client, StoreError> {
    let kind: &str = col(row, "kind")?;
    let list = |name: &str| -> Result<Vec<String>, StoreError> {
        serde_json::from_str(col(row, name)?)
            .map_err(|e| StoreError::Backend(format!("column {name}: {e}")))
    };
    Ok(Client {
        client_id: col(row, "client_id")?,
        kind: ClientKind::parse(kind)
            .ok_or_else(|| StoreError::Backend(format!("client kind {kind}")))?,
        secret_hash: col(row, "secret_hash")?,
        audiences: list("audiences")?,
        scopes: list("scopes")?,
        access_ttl_seconds: col(row, "access_ttl")?,
        refresh_idle_timeout_seconds: col(row, "refresh_idle_timeout")?,
        session_lifetime_seconds: col(row, "session_lifetime")?,
        introspect_any: col(row, "introspect_any")?,
        created_at: col(row, "created_at")?,
    })
}

fn throttle_row(row: &Row) -> Result<ThrottleEntry, StoreError> {
    let failures: i64 = col(row, "failures")?;
    Ok(ThrottleEntry {
        key: col(row, "key")?,
        failures: u32::try_from(failures.max(0)).unwrap_or(u32::MAX),
        last_failure_at: col(row, "last_failure_at")?,
        blocked_until: col(row, "blocked_until")?,
    })
}

fn audit_row(row: &Row) -> Result<AuditEvent, StoreError> {
    let kind: &str = col(row, "kind")?;
    let outcome: &str = col(row, "outcome")?;
    Ok(AuditEvent {
        at: col(row, "at")?,
        kind: AuditKind::parse(kind)
            .ok_or_else(|| StoreError::Backend(format!("audit kind {kind}")))?,
        outcome: Outcome::parse(outcome)
            .ok_or_else(|| StoreError::Backend(format!("audit outcome {outcome}")))?,
        user_id: col(row, "user_id")?,
        session_id: col(row, "session_id")?,
        ip: col(row, "ip")?,
        count: u32::try_from(col::<i64>(row, "count")?.max(0)).unwrap_or(u32::MAX),
    })
}

fn counter_param(c: u64) -> Result<i64, StoreError> {
    i64::try_from(c).map_err(|e| StoreError::Backend(format!("counter {c}: {e}")))
}

fn limit_param(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

// ---------------------------------------------------------------------------
// The contract
// ---------------------------------------------------------------------------

#[async_trait]
impl UserStore for PostgresStore {
    async fn insert_user(&self, user: &User) -> Result<bool, StoreError> {
        let roles =
            serde_json::to_string(&user.roles).map_err(|e| StoreError::Backend(e.to_string()))?;
        let n = self
            .execute(
                "INSERT INTO users (id, username, username_key, password_hash, roles, created_at)
                 VALUES ($1, $2, $3, $4, $5::text::jsonb, $6)
                 ON CONFLICT (username_key) DO NOTHING",
                &[
                    &user.id,
                    &user.username,
                    &user.username_key,
                    &user.password_hash,
                    &roles,
                    &user.created_at,
                ],
            )
            .await?;
        Ok(n == 1)
    }

    async fn user_by_key(&self, username_key: &str) -> Result<Option<User>, StoreError> {
        self.query_opt(
            &format!("SELECT {USER_COLUMNS} FROM users u WHERE u.username_key = $1"),
            &[&username_key],
        )
        .await?
        .as_ref()
        .map(user_row)
        .transpose()
    }

    async fn user_by_id(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        self.query_opt(
            &format!("SELECT {USER_COLUMNS} FROM users u WHERE u.id = $1"),
            &[&id],
        )
        .await?
        .as_ref()
        .map(user_row)
        .transpose()
    }

    async fn set_password_hash(&self, user_id: Uuid, phc: &str) -> Result<(), StoreError> {
        self.execute(
            "UPDATE users SET password_hash = $2 WHERE id = $1",
            &[&user_id, &phc],
        )
        .await
        .map(drop)
    }
}

#[async_trait]
impl SessionStore for PostgresStore {
    async fn insert_session(&self, s: &Session) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO sessions (id, user_id, client_id, counter, created_at,
                last_refreshed_at, expires_at, user_agent, ip, revoked_at, revoke_reason,
                audience, scope)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            &[
                &s.id,
                &s.user_id,
                &s.client_id,
                &counter_param(s.counter)?,
                &s.created_at,
                &s.last_refreshed_at,
                &s.expires_at,
                &s.user_agent,
                &s.ip,
                &s.revoked_at,
                &s.revoke_reason,
                &s.audience,
                &s.scope,
            ],
        )
        .await
        .map(drop)
    }

    async fn session(&self, id: Uuid) -> Result<Option<Session>, StoreError> {
        self.query_opt(
            &format!("SELECT {SESSION_COLUMNS} FROM sessions s WHERE s.id = $1"),
            &[&id],
        )
        .await?
        .as_ref()
        .map(session_row)
        .transpose()
    }

    async fn session_and_user(&self, id: Uuid) -> Result<Option<(Session, User)>, StoreError> {
        self.query_opt(
            &format!(
                "SELECT {SESSION_COLUMNS}, {USER_COLUMNS}
                 FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1"
            ),
            &[&id],
        )
        .await?
        .as_ref()
        .map(|r| Ok((session_row(r)?, user_row(r)?)))
        .transpose()
    }

    async fn advance_session(
        &self,
        id: Uuid,
        from_counter: u64,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let n = self
            .execute(
                "UPDATE sessions SET counter = counter + 1, last_refreshed_at = $3
                 WHERE id = $1 AND counter = $2 AND revoked_at IS NULL",
                &[&id, &counter_param(from_counter)?, &now],
            )
            .await?;
        Ok(n == 1)
    }

    async fn revoke_session(
        &self,
        id: Uuid,
        now: UnixTime,
        reason: &str,
        entry: &Revocation,
    ) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = feed_writer(&mut client).await?;
        let n = tx_execute(
            &tx,
            "UPDATE sessions SET revoked_at = $2, revoke_reason = $3
             WHERE id = $1 AND revoked_at IS NULL",
            &[&id, &now, &reason],
        )
        .await?;
        if n == 1 {
            insert_revocation(&tx, entry).await?;
        }
        tx.commit().await.map_err(pg_error)?;
        Ok(n == 1)
    }

    async fn live_sessions_of_user(
        &self,
        user_id: Uuid,
        now: UnixTime,
    ) -> Result<Vec<Session>, StoreError> {
        self.query(
            &format!(
                "SELECT {SESSION_COLUMNS} FROM sessions s
                 WHERE s.user_id = $1 AND s.revoked_at IS NULL AND s.expires_at > $2
                 ORDER BY s.created_at"
            ),
            &[&user_id, &now],
        )
        .await?
        .iter()
        .map(session_row)
        .collect()
    }

    async fn has_live_session_from(
        &self,
        user_id: Uuid,
        ip: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let rows = self
            .query(
                "SELECT EXISTS (SELECT 1 FROM sessions
                 WHERE user_id = $1 AND ip = $2 AND revoked_at IS NULL AND expires_at > $3)",
                &[&user_id, &ip, &now],
            )
            .await?;
        Ok(rows.first().is_some_and(|r| r.get::<_, bool>(0)))
    }

    async fn revoke_sessions_of_user(
        &self,
        user_id: Uuid,
        except: Option<Uuid>,
        now: UnixTime,
        reason: &str,
        entry_expires_at: UnixTime,
    ) -> Result<Vec<Uuid>, StoreError> {
        let mut client = self.client().await?;
        let tx = feed_writer(&mut client).await?;
        let ids = tx_query(
            &tx,
            "UPDATE sessions SET revoked_at = $3, revoke_reason = $4
             WHERE user_id = $1 AND revoked_at IS NULL AND id IS DISTINCT FROM $2
             RETURNING id",
            &[&user_id, &except, &now, &reason],
        )
        .await?
        .iter()
        .map(|r| col::<Uuid>(r, "id"))
        .collect::<Result<Vec<_>, _>>()?;
        insert_session_revocations(&tx, &ids, entry_expires_at).await?;
        tx.commit().await.map_err(pg_error)?;
        Ok(ids)
    }

    async fn revoke_sessions_beyond(
        &self,
        user_id: Uuid,
        keep: usize,
        now: UnixTime,
        reason: &str,
        entry_expires_at: UnixTime,
    ) -> Result<Vec<Uuid>, StoreError> {
        let keep = limit_param(keep);
        // Most sign-ins are within the limit: find that out without the
        // feed lock every revocation writer queues for.
        let over = self
            .query(
                "SELECT id FROM sessions
                 WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $3
                 ORDER BY last_refreshed_at DESC, created_at DESC OFFSET $2",
                &[&user_id, &keep, &now],
            )
            .await?
            .iter()
            .map(|r| col::<Uuid>(r, "id"))
            .collect::<Result<Vec<_>, _>>()?;
        if over.is_empty() {
            return Ok(over);
        }
        let mut client = self.client().await?;
        let tx = feed_writer(&mut client).await?;
        let ids = tx_query(
            &tx,
            "UPDATE sessions SET revoked_at = $2, revoke_reason = $3
             WHERE id = ANY($1) AND revoked_at IS NULL
             RETURNING id",
            &[&over, &now, &reason],
        )
        .await?
        .iter()
        .map(|r| col::<Uuid>(r, "id"))
        .collect::<Result<Vec<_>, _>>()?;
        insert_session_revocations(&tx, &ids, entry_expires_at).await?;
        tx.commit().await.map_err(pg_error)?;
        Ok(ids)
    }

    async fn prune(&self, before: PruneBefore) -> Result<usize, StoreError> {
        // One statement, so one transaction. SKIP LOCKED: nodes pruning at
        // the same time take disjoint batches and never wait for each other
        // (nor for a session being refreshed: it goes in a later batch).
        let rows = self
            .query(
                "WITH gone AS (
                     DELETE FROM revocations WHERE seq IN (
                         SELECT seq FROM revocations WHERE expires_at <= $1
                         LIMIT $3 FOR UPDATE SKIP LOCKED)
                     RETURNING seq),
                 bump AS (
                     UPDATE feed_state SET pruned_through = greatest(pruned_through, g.top)
                     FROM (SELECT max(seq) AS top FROM gone) g
                     WHERE feed_state.id = 1 AND g.top IS NOT NULL),
                 ended AS (
                     DELETE FROM sessions WHERE id IN (
                         SELECT id FROM sessions WHERE expires_at <= $2
                         LIMIT $3 FOR UPDATE SKIP LOCKED)
                     RETURNING id)
                 SELECT (SELECT count(*) FROM gone) + (SELECT count(*) FROM ended) AS deleted",
                &[
                    &before.revocations,
                    &before.sessions,
                    &limit_param(before.batch),
                ],
            )
            .await?;
        let deleted: i64 = match rows.first() {
            Some(row) => col(row, "deleted")?,
            None => 0,
        };
        usize::try_from(deleted).map_err(|e| StoreError::Backend(format!("deleted rows: {e}")))
    }
}

#[async_trait]
impl RevocationStore for PostgresStore {
    async fn insert_revocation(&self, entry: &Revocation) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = feed_writer(&mut client).await?;
        insert_revocation(&tx, entry).await?;
        tx.commit().await.map_err(pg_error)
    }

    async fn live_revocations(&self, now: UnixTime) -> Result<Vec<Revocation>, StoreError> {
        self.query(
            "SELECT kind, id, expires_at FROM revocations WHERE expires_at > $1",
            &[&now],
        )
        .await?
        .iter()
        .map(revocation_row)
        .collect()
    }

    async fn revocation_feed(
        &self,
        read: FeedRead,
        now: UnixTime,
        limit: usize,
    ) -> Result<Option<FeedPage>, StoreError> {
        self.read_feed(read, now, limit).await
    }
}

#[async_trait]
impl SignInAttemptStore for PostgresStore {
    async fn throttle_entries(&self, keys: &[String]) -> Result<Vec<ThrottleEntry>, StoreError> {
        self.query(
            "SELECT key, failures, last_failure_at, blocked_until
             FROM sign_in_failures WHERE key = ANY($1)",
            &[&keys],
        )
        .await?
        .iter()
        .map(throttle_row)
        .collect()
    }

    async fn reserve_attempt(
        &self,
        keys: &[(String, ThrottleRule)],
        now: UnixTime,
    ) -> Result<Admission, StoreError> {
        self.reserve(keys, now).await
    }

    async fn release_attempt(&self, reserved: &ThrottleEntry) -> Result<(), StoreError> {
        self.release(reserved).await
    }

    async fn clear_sign_in_failures(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self
            .execute("DELETE FROM sign_in_failures WHERE key = $1", &[&key])
            .await?
            == 1)
    }

    async fn prune_sign_in_failures(
        &self,
        before: UnixTime,
        now: UnixTime,
        batch: usize,
    ) -> Result<usize, StoreError> {
        let n = self
            .execute(
                "DELETE FROM sign_in_failures WHERE key IN (
                     SELECT key FROM sign_in_failures
                     WHERE last_failure_at < $1 AND blocked_until <= $2 LIMIT $3)",
                &[&before, &now, &limit_param(batch)],
            )
            .await?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }
}

#[async_trait]
impl AuditStore for PostgresStore {
    async fn insert_audit_event(&self, e: &AuditEvent) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO audit_events (at, kind, outcome, user_id, session_id, ip, count)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &e.at,
                &e.kind.as_str(),
                &e.outcome.as_str(),
                &e.user_id,
                &e.session_id,
                &e.ip,
                &i64::from(e.count),
            ],
        )
        .await
        .map(drop)
    }

    async fn prune_audit_events(
        &self,
        before: UnixTime,
        batch: usize,
    ) -> Result<usize, StoreError> {
        let n = self
            .execute(
                "DELETE FROM audit_events WHERE seq IN (
                     SELECT seq FROM audit_events WHERE at < $1 LIMIT $2)",
                &[&before, &limit_param(batch)],
            )
            .await?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    async fn audit_events(&self, query: &AuditQuery) -> Result<Vec<AuditEvent>, StoreError> {
        let mut events = self
            .query(
                "SELECT at, kind, outcome, user_id, session_id, ip, count FROM audit_events
                 WHERE ($1::uuid IS NULL OR user_id = $1) AND ($2::bigint IS NULL OR at >= $2)
                 ORDER BY seq DESC LIMIT $3",
                &[&query.user_id, &query.since, &limit_param(query.limit)],
            )
            .await?
            .iter()
            .map(audit_row)
            .collect::<Result<Vec<_>, _>>()?;
        events.reverse();
        Ok(events)
    }
}

#[async_trait]
impl ClientStore for PostgresStore {
    async fn client(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
        self.query_opt(
            &format!("SELECT {CLIENT_COLUMNS} FROM clients WHERE client_id = $1"),
            &[&client_id],
        )
        .await?
        .as_ref()
        .map(client_row)
        .transpose()
    }

    async fn clients(&self) -> Result<Vec<Client>, StoreError> {
        // Byte order, as SQLite sorts text, whatever the database's collation.
        self.query(
            &format!("SELECT {CLIENT_COLUMNS} FROM clients ORDER BY client_id COLLATE \"C\""),
            &[],
        )
        .await?
        .iter()
        .map(client_row)
        .collect()
    }

    async fn insert_client(&self, client: &Client) -> Result<bool, StoreError> {
        self.write_client(client, "ON CONFLICT (client_id) DO NOTHING")
            .await
            .map(|n| n == 1)
    }

    async fn upsert_client(&self, client: &Client) -> Result<(), StoreError> {
        // Replaces the whole row, as SQLite's INSERT OR REPLACE does.
        self.write_client(
            client,
            "ON CONFLICT (client_id) DO UPDATE SET kind = EXCLUDED.kind,
                 secret_hash = EXCLUDED.secret_hash, audiences = EXCLUDED.audiences,
                 scopes = EXCLUDED.scopes, access_ttl = EXCLUDED.access_ttl,
                 refresh_idle_timeout = EXCLUDED.refresh_idle_timeout,
                 session_lifetime = EXCLUDED.session_lifetime, created_at = EXCLUDED.created_at,
                 introspect_any = EXCLUDED.introspect_any",
        )
        .await
        .map(drop)
    }

    async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError> {
        let n = self
            .execute("DELETE FROM clients WHERE client_id = $1", &[&client_id])
            .await?;
        Ok(n == 1)
    }

    async fn set_client_secret(
        &self,
        client_id: &str,
        secret_hash: &[u8],
    ) -> Result<bool, StoreError> {
        let n = self
            .execute(
                "UPDATE clients SET secret_hash = $2
                 WHERE client_id = $1 AND kind = 'confidential'",
                &[&client_id, &secret_hash],
            )
            .await?;
        Ok(n == 1)
    }
}

#[async_trait]
impl SigningKeyStore for PostgresStore {
    async fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        self.query(
            "SELECT kid, alg, state, sealed_private_key, public_key, created_at,
                    activated_at, retired_at
             FROM signing_keys ORDER BY created_at, kid COLLATE \"C\"",
            &[],
        )
        .await?
        .iter()
        .map(key_row)
        .collect()
    }

    async fn insert_signing_key(&self, key: &StoredKey) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = keys_writer(&mut client).await?;
        insert_signing_key(&tx, key, false).await?;
        tx.commit().await.map_err(pg_error)
    }

    async fn insert_signing_key_if_none(&self, key: &StoredKey) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = keys_writer(&mut client).await?;
        let inserted = insert_signing_key(&tx, key, true).await?;
        tx.commit().await.map_err(pg_error)?;
        Ok(inserted)
    }

    async fn rotate_signing_keys(
        &self,
        expected_current_kid: &str,
        new_next: &StoredKey,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        // Under the keys lock, so the check and the three writes are atomic
        // with respect to every other node's key writes.
        let tx = keys_writer(&mut client).await?;
        let current_ok = !tx_query(
            &tx,
            "SELECT 1 FROM signing_keys WHERE kid = $1 AND state = 'current'",
            &[&expected_current_kid],
        )
        .await?
        .is_empty();
        let promote: Option<String> = match tx_query(
            &tx,
            "SELECT kid FROM signing_keys WHERE state = 'next'
             ORDER BY created_at, kid COLLATE \"C\" LIMIT 1",
            &[],
        )
        .await?
        .first()
        {
            Some(row) => Some(col(row, "kid")?),
            None => None,
        };
        let (true, Some(promote)) = (current_ok, promote) else {
            // Nothing written: ends the transaction (and the lock) at once.
            tx.rollback().await.map_err(pg_error)?;
            return Ok(false);
        };
        tx_execute(
            &tx,
            "UPDATE signing_keys SET state = 'retired', retired_at = $1 WHERE state = 'current'",
            &[&now],
        )
        .await?;
        tx_execute(
            &tx,
            "UPDATE signing_keys SET state = 'current', activated_at = $2 WHERE kid = $1",
            &[&promote, &now],
        )
        .await?;
        insert_signing_key(&tx, new_next, false).await?;
        tx.commit().await.map_err(pg_error)?;
        Ok(true)
    }

    async fn delete_retired_keys_before(&self, before: UnixTime) -> Result<usize, StoreError> {
        let n = self
            .execute(
                "DELETE FROM signing_keys WHERE state = 'retired' AND retired_at < $1",
                &[&before],
            )
            .await?;
        usize::try_from(n).map_err(|e| StoreError::Backend(format!("deleted keys: {e}")))
    }
}
