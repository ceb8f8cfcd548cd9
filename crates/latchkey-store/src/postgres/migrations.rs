//! Schema migrations, applied in order at start-up; the one-row table
//! `schema_version` records how many have run. The list is the one both
//! databases share (`crate::sql::schema`), in PostgreSQL's types.
//!
//! Several nodes may start at once on one new database: each takes the
//! session-level advisory lock [`MIGRATION_LOCK`] on a connection of its own
//! before it even creates `schema_version`, so exactly one of them applies
//! each migration and the others find it done. That connection is closed
//! afterwards, which releases the lock whatever happened in between.
//! A database at a higher version than this binary knows is refused
//! before any migration runs.

use latchkey_core::store::StoreError;
use tokio_postgres::{Client, Config};

use super::tls::RustlsConnect;
use super::{connect_error, pg_error};
use crate::sql::schema::ColumnTypes;

/// Advisory-lock key held while migrating ("latchk" + 1).
pub(super) const MIGRATION_LOCK: i64 = 0x6c61_7463_686b_0001;

/// How long a node waits for another node's migrations (and how long one
/// migration may run) before giving up.
const MIGRATION_TIMEOUT: &str = "60s";

/// PostgreSQL's words for the shared schema.
const TYPES: ColumnTypes = ColumnTypes {
    uuid: "UUID",
    int: "BIGINT",
    bytes: "BYTEA",
    json: "JSONB",
    bool: "BOOLEAN",
    false_value: "FALSE",
    seq: "BIGSERIAL PRIMARY KEY",
    table: "",
    keyed_table: "",
};

/// Brings the schema up to date on a dedicated connection.
pub(super) async fn migrate(
    config: &Config,
    tls: RustlsConnect,
    target: &str,
) -> Result<(), StoreError> {
    let (mut client, connection) = config
        .connect(tls)
        .await
        .map_err(|e| connect_error(target, e))?;
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
    let found: i32 = client
        .query_one("SELECT version FROM schema_version WHERE id = 1", &[])
        .await
        .map_err(pg_error)?
        .try_get(0)
        .map_err(pg_error)?;
    crate::sql::schema::refuse_newer(found.into())?;
    for (version, sql) in (1i32..).zip(TYPES.render()) {
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
            tx.batch_execute(&sql).await.map_err(pg_error)?;
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
