//! The server secret belongs to the PostgreSQL database its signing keys
//! are sealed in: a node with no secret (no file in its data directory, no
//! `LATCHKEY_SERVER_SECRET`) refuses a database that already has keys
//! rather than write a new secret, and a node with another secret refuses
//! too, naming where its secret came from. In-process nodes on a schema of
//! their own; skipped without `LATCHKEY_TEST_DATABASE_URL`.

use latchkey_core::clock::SystemClock;
use latchkey_core::secret::Secret;
use latchkey_server::config::DatabaseUrl;
use latchkey_server::RunningServer;
use latchkey_testkit::postgres::*;
use latchkey_testkit::test_settings;

#[tokio::test]
async fn a_node_without_the_databases_secret_refuses_to_start() {
    let Some(server) = server_url() else {
        return;
    };
    let schema = Schema::create(&server, "secret");
    let url = with_search_path(&server, &schema.name);
    let dir = tempfile::tempdir().expect("tempdir");
    let node = |name: &str, secret: Option<&str>| {
        let mut s = test_settings(dir.path().join(name));
        s.database_url = Some(DatabaseUrl::from(url.as_str()));
        s.server_secret = secret.map(Secret::from);
        s
    };
    let start = |settings| RunningServer::start(settings, std::sync::Arc::new(SystemClock));

    // The first node makes the secret (in its data directory) and the keys.
    start(node("first", None))
        .await
        .expect("first node")
        .stop()
        .await;
    let secret = std::fs::read_to_string(dir.path().join("first/server-secret")).expect("secret");

    let missing = dir.path().join("second/server-secret");
    let e = start(node("second", None))
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(
        e.contains(&format!("{} is missing", missing.display())),
        "{e}"
    );
    assert!(e.contains("LATCHKEY_SERVER_SECRET"), "{e}");
    assert!(!missing.exists(), "a new secret was written");

    // A secret of its own (from another database) is not the database's.
    let other_schema = Schema::create(&server, "secret_other");
    let mut other = node("other", None);
    other.database_url = Some(DatabaseUrl::from(
        with_search_path(&server, &other_schema.name).as_str(),
    ));
    start(other).await.expect("other node").stop().await;
    let wrong = std::fs::read_to_string(dir.path().join("other/server-secret")).expect("secret");
    let e = start(node("third", Some(&wrong)))
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(
        e.contains("the server secret from LATCHKEY_SERVER_SECRET does not open signing key"),
        "{e}"
    );

    // The database's own secret, from the environment: it starts.
    start(node("fourth", Some(&secret)))
        .await
        .expect("fourth node")
        .stop()
        .await;
}
