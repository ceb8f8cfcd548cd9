//! The PostgreSQL server of the tests (`LATCHKEY_TEST_DATABASE_URL`, see
//! `scripts/postgres-test-cluster.sh`) and one fresh schema per test, for
//! the test files beside the conformance suite.

#![allow(dead_code)] // Each test file uses part of it.

use uuid::Uuid;

pub const URL_VAR: &str = "LATCHKEY_TEST_DATABASE_URL";

/// The server to test against, or `None` (after saying so) without one.
pub fn server_url() -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            eprintln!("skipped: {URL_VAR} is not set");
            None
        }
    }
}

/// An admin connection to the server (plain, as the tests' own).
pub async fn admin(server: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(server, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to {URL_VAR}: {e}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// One empty schema for one test, dropped when the test ends.
pub struct TestSchema {
    pub server: String,
    pub name: String,
}

impl TestSchema {
    pub async fn create(server: &str) -> Self {
        let name = format!("lk_test_{}", Uuid::new_v4().simple());
        admin(server)
            .await
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await
            .expect("create test schema");
        Self {
            server: server.to_owned(),
            name,
        }
    }

    /// `url` (the server's, perhaps with other parameters) on this schema.
    pub fn url(&self, url: &str) -> String {
        with_search_path(url, &self.name)
    }
}

/// `url` with `options=-csearch_path=<schema>` appended.
pub fn with_search_path(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-csearch_path%3D{schema}")
}

/// Drops `schema` and everything in it. Runs from `Drop`, perhaps inside a
/// test's runtime, so on a thread and runtime of its own.
pub fn drop_schema(server: &str, schema: &str) {
    let (server, schema) = (server.to_owned(), schema.to_owned());
    let _ = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            let _ = admin(&server)
                .await
                .batch_execute(&format!(
                    "SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS {schema} CASCADE"
                ))
                .await;
        });
    })
    .join();
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        drop_schema(&self.server, &self.name);
    }
}
