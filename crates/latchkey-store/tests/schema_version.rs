//! A database migrated by a newer Latchkey is refused by both stores with
//! the typed error, and left as it was. The PostgreSQL half needs
//! `LATCHKEY_TEST_DATABASE_URL` and is skipped without it.

mod postgres_support;

use latchkey_core::store::StoreError;
use latchkey_store::postgres::PostgresOptions;
use latchkey_store::{PostgresStore, SqliteStore};
use postgres_support::{admin, server_url, TestSchema};

fn assert_too_new(e: StoreError, found: i64) {
    let text = e.to_string();
    match e {
        StoreError::SchemaTooNew { found: f, known } => {
            assert_eq!(f, found);
            assert!(known < found);
            assert_eq!(
                text,
                format!("the database schema is version {found}, this binary knows up to {known}: upgrade latchkey")
            );
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[test]
fn sqlite_refuses_a_newer_schema_and_leaves_it_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("latchkey.db");
    drop(SqliteStore::open(&path).expect("first open migrates"));
    let conn = rusqlite::Connection::open(&path).expect("open");
    let known: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    conn.pragma_update(None, "user_version", known + 3)
        .expect("bump");
    drop(conn);

    match SqliteStore::open(&path) {
        Ok(_) => panic!("opened a newer schema"),
        Err(e) => assert_too_new(e, known + 3),
    }
    let conn = rusqlite::Connection::open(&path).expect("open");
    let after: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(after, known + 3);
}

#[tokio::test]
async fn postgres_refuses_a_newer_schema_and_leaves_it_alone() {
    let Some(server) = server_url() else {
        return;
    };
    let schema = TestSchema::create(&server).await;
    let url = schema.url(&server);
    drop(
        PostgresStore::connect(&url, PostgresOptions::default())
            .await
            .expect("first connect migrates"),
    );
    let admin = admin(&server).await;
    let version = format!("{}.schema_version", schema.name);
    let known: i32 = admin
        .query_one(&format!("SELECT version FROM {version}"), &[])
        .await
        .expect("version")
        .get(0);
    admin
        .execute(
            &format!("UPDATE {version} SET version = $1"),
            &[&(known + 3)],
        )
        .await
        .expect("bump");

    let e = PostgresStore::connect(&url, PostgresOptions::default())
        .await
        .expect_err("a newer schema");
    assert_too_new(e, i64::from(known + 3));
    let after: i32 = admin
        .query_one(&format!("SELECT version FROM {version}"), &[])
        .await
        .expect("version")
        .get(0);
    assert_eq!(after, known + 3);
}
