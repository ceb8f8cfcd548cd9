//! Schema migrations, applied in order at start-up; `PRAGMA user_version`
//! records how many have run; a higher version than this binary knows is
//! refused before anything is written.

use latchkey_core::store::StoreError;
use rusqlite::Connection;

use crate::sql::schema::ColumnTypes;

/// SQLite's words for the shared schema: `STRICT` tables, UUIDs as 16-byte
/// blobs, JSON as text; tables keyed by anything but an integer are
/// clustered on their key (`WITHOUT ROWID`).
const TYPES: ColumnTypes = ColumnTypes {
    uuid: "BLOB",
    int: "INTEGER",
    bytes: "BLOB",
    json: "TEXT",
    bool: "INTEGER",
    false_value: "0",
    seq: "INTEGER PRIMARY KEY AUTOINCREMENT",
    table: " STRICT",
    keyed_table: " STRICT, WITHOUT ROWID",
};

/// Refuses a file that a newer Latchkey has migrated.
pub fn refuse_newer_schema(conn: &Connection) -> Result<(), StoreError> {
    let found: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| StoreError::Backend(format!("reading the schema version: {e}")))?;
    crate::sql::schema::refuse_newer(found)
}

/// Each migration runs in its own IMMEDIATE transaction that re-reads the
/// version under the write lock, so several processes opening one new file
/// at once apply each migration exactly once.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    for (version, sql) in (1i64..).zip(TYPES.render()) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let done: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if done < version {
            tx.execute_batch(&sql)?;
            tx.pragma_update(None, "user_version", version)?;
        }
        tx.commit()?;
    }
    Ok(())
}
