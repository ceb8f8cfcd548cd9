//! Schema migrations, applied in order at start-up; the one-row table
//! `schema_version` records how many have run. The list mirrors the SQLite
//! migrations one for one (same version numbers, same tables and columns).
//!
//! Several nodes may start at once on one new database: each takes the
//! session-level advisory lock [`MIGRATION_LOCK`] on a connection of its own
//! before it even creates `schema_version`, so exactly one of them applies
//! each migration and the others find it done. That connection is closed
//! afterwards, which releases the lock whatever happened in between.

use latchkey_core::store::StoreError;
use tokio_postgres::{Client, Config, NoTls};

use super::pg_error;

/// Advisory-lock key held while migrating ("latchk" + 1).
pub(super) const MIGRATION_LOCK: i64 = 0x6c61_7463_686b_0001;

/// How long a node waits for another node's migrations (and how long one
/// migration may run) before giving up.
const MIGRATION_TIMEOUT: &str = "60s";

const MIGRATIONS: &[&str] = &[
    // 1: accounts, sessions, revocation set, signing keys.
    r#"
    CREATE TABLE users (
        id            UUID PRIMARY KEY,
        username      TEXT NOT NULL,
        username_key  TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        roles         JSONB NOT NULL DEFAULT '[]',
        created_at    BIGINT NOT NULL
    );

    -- One row per sign-in, updated in place on every refresh: storage per
    -- session is constant however often it rotates.
    CREATE TABLE sessions (
        id                UUID PRIMARY KEY,
        user_id           UUID NOT NULL REFERENCES users(id),
        client_id         TEXT NOT NULL,
        counter           BIGINT NOT NULL,
        created_at        BIGINT NOT NULL,
        last_refreshed_at BIGINT NOT NULL,
        expires_at        BIGINT NOT NULL,
        user_agent        TEXT,
        ip                TEXT,
        revoked_at        BIGINT,
        revoke_reason     TEXT
    );
    CREATE INDEX sessions_by_user ON sessions(user_id);

    -- seq is the cursor of the revocation feed. Every transaction that
    -- inserts here holds the feed advisory lock, so seq order is commit order.
    CREATE TABLE revocations (
        seq        BIGSERIAL PRIMARY KEY,
        kind       TEXT NOT NULL,
        id         TEXT NOT NULL,
        expires_at BIGINT NOT NULL
    );
    CREATE INDEX revocations_by_expiry ON revocations(expires_at);

    CREATE TABLE signing_keys (
        kid                TEXT PRIMARY KEY,
        alg                TEXT NOT NULL,
        state              TEXT NOT NULL,
        sealed_private_key BYTEA NOT NULL,
        public_key         BYTEA NOT NULL,
        created_at         BIGINT NOT NULL
    );
    "#,
    // 2: revocation-feed bookkeeping and session pruning.
    r#"
    -- Highest feed cursor whose entry was pruned: older cursors may have
    -- missed entries and must start again from a snapshot.
    CREATE TABLE feed_state (
        id             INTEGER PRIMARY KEY CHECK (id = 1),
        pruned_through BIGINT NOT NULL
    );
    INSERT INTO feed_state (id, pruned_through) VALUES (1, 0);
    CREATE INDEX sessions_by_expiry ON sessions(expires_at);
    "#,
    // 3: OAuth clients; what each session was granted.
    r#"
    CREATE TABLE clients (
        client_id            TEXT PRIMARY KEY,
        kind                 TEXT NOT NULL,
        secret_hash          BYTEA,
        audiences            JSONB NOT NULL,
        scopes               JSONB NOT NULL,
        access_ttl           BIGINT,
        refresh_idle_timeout BIGINT,
        session_lifetime     BIGINT,
        created_at           BIGINT NOT NULL
    );
    ALTER TABLE sessions ADD COLUMN audience TEXT NOT NULL DEFAULT '';
    ALTER TABLE sessions ADD COLUMN scope TEXT NOT NULL DEFAULT '';
    "#,
    // 4: signing-key lifecycle: when a key started and stopped signing.
    r#"
    ALTER TABLE signing_keys ADD COLUMN activated_at BIGINT;
    ALTER TABLE signing_keys ADD COLUMN retired_at BIGINT;
    "#,
    // 5: failed sign-in counters, per account and per client address.
    r#"
    CREATE TABLE sign_in_failures (
        key             TEXT PRIMARY KEY,
        failures        BIGINT NOT NULL,
        last_failure_at BIGINT NOT NULL,
        blocked_until   BIGINT NOT NULL
    );
    CREATE INDEX sign_in_failures_by_time ON sign_in_failures(last_failure_at);
    "#,
    // 6: the audit log (never a secret or a token).
    r#"
    CREATE TABLE audit_events (
        seq        BIGSERIAL PRIMARY KEY,
        at         BIGINT NOT NULL,
        kind       TEXT NOT NULL,
        outcome    TEXT NOT NULL,
        user_id    UUID,
        session_id UUID,
        ip         TEXT
    );
    CREATE INDEX audit_events_by_user ON audit_events(user_id, seq);
    CREATE INDEX audit_events_by_time ON audit_events(at);
    "#,
    // 7: aggregated audit rows (throttled attempts: one row per address and
    // minute with how many there were).
    r#"
    ALTER TABLE audit_events ADD COLUMN count BIGINT NOT NULL DEFAULT 1;
    "#,
    // 8: clients that may introspect any client's tokens (resource servers).
    r#"
    ALTER TABLE clients ADD COLUMN introspect_any BOOLEAN NOT NULL DEFAULT FALSE;
    "#,
];

/// Brings the schema up to date on a dedicated connection.
pub(super) async fn migrate(config: &Config) -> Result<(), StoreError> {
    let (mut client, connection) = config.connect(NoTls).await.map_err(pg_error)?;
    let driver = tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "migration connection ended");
        }
    });
    let result = migrate_locked(&mut client).await;
    // Closing the connection releases the advisory lock, also on failure.
    drop(client);
    let _ = driver.await;
    result
}

async fn migrate_locked(client: &mut Client) -> Result<(), StoreError> {
    client
        .batch_execute(&format!("SET statement_timeout = '{MIGRATION_TIMEOUT}'"))
        .await
        .map_err(pg_error)?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg_error)?;
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_version (
                 id      INTEGER PRIMARY KEY CHECK (id = 1),
                 version INTEGER NOT NULL
             );
             INSERT INTO schema_version (id, version) VALUES (1, 0)
                 ON CONFLICT (id) DO NOTHING;",
        )
        .await
        .map_err(pg_error)?;
    for (version, sql) in (1i32..).zip(MIGRATIONS) {
        let tx = client.transaction().await.map_err(pg_error)?;
        let done: i32 = tx
            .query_one(
                "SELECT version FROM schema_version WHERE id = 1 FOR UPDATE",
                &[],
            )
            .await
            .map_err(pg_error)?
            .try_get(0)
            .map_err(pg_error)?;
        if done < version {
            tx.batch_execute(sql).await.map_err(pg_error)?;
            tx.execute(
                "UPDATE schema_version SET version = $1 WHERE id = 1",
                &[&version],
            )
            .await
            .map_err(pg_error)?;
            tracing::info!(version, "applied PostgreSQL migration");
        }
        tx.commit().await.map_err(pg_error)?;
    }
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg_error)?;
    Ok(())
}
