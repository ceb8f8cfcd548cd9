//! The `Store` conformance suite (see `conformance/mod.rs`) against
//! [`SqliteStore`] on a real database file in a temporary directory: one
//! `#[tokio::test]` per contract, each with its own empty database.

mod conformance;

use std::path::PathBuf;
use std::sync::Arc;

use latchkey_core::store::Store;
use latchkey_store::SqliteStore;
use tempfile::TempDir;

/// One SQLite database file, deleted with the directory when the test ends.
struct Sqlite {
    dir: TempDir,
}

impl Sqlite {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("create temp dir"),
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("latchkey.db")
    }
}

impl conformance::Backend for Sqlite {
    async fn open(&self) -> Arc<dyn Store> {
        Arc::new(SqliteStore::open(&self.path()).expect("open sqlite store"))
    }
}

conformance::store_conformance_tests!(Sqlite::new());

/// Two processes opening one new file at once must not break each other
/// (each migration re-reads the schema version under the write lock).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_opens_share_one_schema() {
    conformance::concurrent_first_opens_share_one_schema(Sqlite::new).await;
}
