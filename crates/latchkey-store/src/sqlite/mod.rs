//! The embedded SQLite store: one file, WAL, `synchronous=FULL` (an
//! acknowledged write survives power loss), one group-committing writer
//! thread and a few read connections.

mod account_tokens;
mod audit;
mod authorization;
mod clients;
mod invites;
mod migrations;
mod outbox;
mod revocations;
mod sessions;
mod sign_in_attempts;
mod signing_keys;
mod users;
mod writer;

use std::path::Path;
use std::sync::Mutex;

use latchkey_core::store::{HealthStore, StoreError};
use rusqlite::types::{Type, ValueRef};
use rusqlite::{Connection, OpenFlags, Row};
use uuid::Uuid;

use crate::sql::{ColumnValue, Columns};

use writer::Writer;

/// Read connections, one per core. Reads are primary-key lookups served
/// from the page cache in microseconds, so they run inline on the caller's
/// thread (handing them to a blocking pool would cost more than the read),
/// and no more of them run at once than the runtime has threads, one per
/// core. Each connection keeps its own page cache, so more would only add
/// memory.
fn readers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

pub struct SqliteStore {
    writer: Writer,
    readers: Vec<Mutex<Connection>>,
}

impl SqliteStore {
    /// Opens (creating if needed, with mode 0600) the database file and
    /// brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        create_private_file(path)
            .map_err(|e| StoreError::Backend(format!("creating {}: {e}", path.display())))?;
        let mut conn = Connection::open(path).map_err(store_error)?;
        configure(&conn).map_err(store_error)?;
        migrations::refuse_newer_schema(&conn)?;
        enable_wal(&conn).map_err(store_error)?;
        migrations::migrate(&mut conn).map_err(store_error)?;

        let readers = (0..readers())
            .map(|_| {
                let c = Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                configure(&c)?;
                Ok(Mutex::new(c))
            })
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(store_error)?;
        let writer = Writer::start(conn)
            .map_err(|e| StoreError::Backend(format!("starting writer thread: {e}")))?;
        Ok(Self { writer, readers })
    }

    /// Whether the writer can take the write lock and commit, now.
    async fn ping_writer(&self) -> Result<(), StoreError> {
        self.writer.write(|_| Ok(())).await
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        // Take any idle connection; wait on the first one if all are busy.
        let guard = self
            .readers
            .iter()
            .find_map(|m| m.try_lock().ok())
            .unwrap_or_else(|| self.readers[0].lock().unwrap_or_else(|p| p.into_inner()));
        f(&guard).map_err(store_error)
    }
}

#[async_trait::async_trait]
impl HealthStore for SqliteStore {
    /// A no-op step of the writer: answered only after its batch's
    /// `BEGIN IMMEDIATE` took the write lock and its `COMMIT` went through,
    /// so a stopped writer, a locked or read-only file fails it.
    async fn ping(&self) -> Result<(), StoreError> {
        self.ping_writer().await
    }
}

/// Statements a connection keeps prepared: room for every one the store
/// runs (the writer uses about 30), so none is evicted and parsed again.
const CACHED_STATEMENTS: usize = 64;

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_prepared_statement_cache_capacity(CACHED_STATEMENTS);
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Plans that never depend on bound values: otherwise SQLite expires a
    // statement whose plan looked at one each time rusqlite's cache clears
    // its bindings, and every cached statement is parsed again on reuse
    // (a quarter of a refresh's CPU).
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

/// Switching to WAL needs a moment of exclusive access, which the busy
/// handler does not wait for; retry briefly when another process opening
/// the same new file holds it.
fn enable_wal(conn: &Connection) -> rusqlite::Result<()> {
    let mut attempt = 0;
    loop {
        let mode: rusqlite::Result<String> =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0));
        match mode {
            Ok(_) => return Ok(()),
            Err(e)
                if attempt < 50
                    && e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) =>
            {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(unix)]
fn create_private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map(drop)
}

#[cfg(not(unix))]
fn create_private_file(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

pub(crate) fn store_error(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode::*;
    match e.sqlite_error_code() {
        Some(DatabaseBusy | DatabaseLocked | CannotOpen | DiskFull | SystemIoFailure) => {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Backend(e.to_string()),
    }
}

impl Columns for Row<'_> {
    type Error = rusqlite::Error;

    fn value<T: ColumnValue>(&self, column: &str) -> rusqlite::Result<T> {
        self.get(column)
    }

    fn optional_uuid(&self, column: &str) -> rusqlite::Result<Option<Uuid>> {
        match self.get_ref(column)? {
            ValueRef::Null => Ok(None),
            ValueRef::Blob(bytes) => Uuid::from_slice(bytes)
                .map(Some)
                .map_err(|e| Self::invalid(column, e.to_string())),
            other => Err(Self::invalid(
                column,
                format!("{} where a UUID was expected", other.data_type()),
            )),
        }
    }

    fn invalid(column: &str, problem: String) -> rusqlite::Error {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            Type::Text,
            Box::<dyn std::error::Error + Send + Sync>::from(format!("column {column}: {problem}")),
        )
    }
}

/// Session counters are `u64` in the domain and `INTEGER` (i64) in SQLite.
fn counter_param(c: u64) -> rusqlite::Result<i64> {
    i64::try_from(c).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

#[cfg(test)]
mod tests {
    use rusqlite::StatementStatus;

    use super::*;
    use crate::sql::sessions::{
        LIVE_FROM_ADDRESS, LIVE_OF_USER, REVOKE_ALL_OF_USER, REVOKE_BEYOND_LIMIT, WITH_USER,
    };

    /// rusqlite clears a cached statement's bindings when it is put back,
    /// and SQLite expires a statement whose plan looked at a bound value
    /// when its bindings are cleared, so without the planner-stability
    /// setting the refresh's read was parsed again on every use.
    #[test]
    fn a_cached_statement_is_not_parsed_again_when_reused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(&dir.path().join("latchkey.db")).expect("open");
        let reader = store.readers[0].lock().expect("reader");
        for _ in 0..3 {
            let mut statement = reader.prepare_cached(WITH_USER.sqlite).expect("prepare");
            let mut rows = statement.query([Uuid::nil().as_bytes()]).expect("query");
            assert!(rows.next().expect("step").is_none());
        }
        let statement = reader.prepare_cached(WITH_USER.sqlite).expect("prepare");
        assert_eq!(statement.get_status(StatementStatus::RePrepare), 0);
    }

    /// Ended sessions stay until they expire; what reads a user's live
    /// sessions (the session limit on every sign-in among them) must not
    /// walk the ended ones too.
    #[test]
    fn a_users_live_sessions_are_found_without_their_ended_ones() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(&dir.path().join("latchkey.db")).expect("open");
        let reader = store.readers[0].lock().expect("reader");
        for sql in [
            REVOKE_BEYOND_LIMIT.sqlite,
            REVOKE_ALL_OF_USER.sqlite,
            LIVE_OF_USER.sqlite,
            LIVE_FROM_ADDRESS.sqlite,
        ] {
            let mut plan = reader
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .expect("explain");
            let unbound = vec![rusqlite::types::Null; plan.parameter_count()];
            let steps: Vec<String> = plan
                .query_map(rusqlite::params_from_iter(unbound), |r| {
                    r.get::<_, String>(3)
                })
                .and_then(|rows| rows.collect())
                .unwrap_or_default();
            assert!(
                steps.iter().any(|s| s.contains("sessions_live_by_user")),
                "{sql}: {steps:?}"
            );
        }
    }
}
