//! The `Store` conformance suite (see `conformance/mod.rs`) against
//! [`PostgresStore`], plus what only a networked, shared database needs:
//! failing fast while the server is unreachable, recovering when it is back,
//! and a revocation feed that misses nothing while several nodes write.
//!
//! The server comes from `LATCHKEY_TEST_DATABASE_URL`, e.g.
//! `postgres://latchkey@127.0.0.1:5433/latchkey` (see
//! `scripts/postgres-test-cluster.sh`). Without it, every test that needs a
//! server prints `skipped: LATCHKEY_TEST_DATABASE_URL is not set` and
//! passes, so `cargo test --workspace` works without PostgreSQL; CI sets it.
//!
//! Each test gets a fresh, empty database of its own: a uniquely named
//! schema, selected with `options=-csearch_path=<schema>` in the URL and
//! dropped when the test ends.

mod conformance;
mod postgres_support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use latchkey_core::model::User;
use latchkey_core::store::{
    FeedRead, Revocation, RevocationKind, RevocationStore, Store, StoreError, UserStore,
};
use latchkey_store::postgres::PostgresOptions;
use latchkey_store::PostgresStore;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OnceCell;
use tokio::task::{AbortHandle, JoinHandle};
use uuid::Uuid;

use postgres_support::{admin, drop_schema, server_url, with_search_path};

/// One empty schema on the shared server for one test.
struct Postgres {
    server: String,
    schema: String,
    created: OnceCell<()>,
}

impl Postgres {
    fn new(server: &str) -> Self {
        Self {
            server: server.to_owned(),
            schema: format!("lk_test_{}", Uuid::new_v4().simple()),
            created: OnceCell::new(),
        }
    }

    /// A backend, or `None` when no server is configured.
    fn from_env() -> Option<Self> {
        server_url().map(|url| Self::new(&url))
    }

    /// The URL of this test's database, through `server` (which may be a
    /// proxy in front of the real one).
    fn url_via(&self, server: &str) -> String {
        with_search_path(server, &self.schema)
    }

    async fn create_schema(&self) {
        self.created
            .get_or_init(|| async {
                admin(&self.server)
                    .await
                    .batch_execute(&format!("CREATE SCHEMA {}", self.schema))
                    .await
                    .expect("create test schema");
            })
            .await;
    }
}

impl conformance::Backend for Postgres {
    async fn open(&self) -> Arc<dyn Store> {
        self.create_schema().await;
        Arc::new(
            PostgresStore::connect(&self.url_via(&self.server), PostgresOptions::default())
                .await
                .expect("connect postgres store"),
        )
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.created.get().is_some() {
            drop_schema(&self.server, &self.schema);
        }
    }
}

conformance::store_conformance_tests!(match Postgres::from_env() {
    Some(backend) => backend,
    None => return,
});

/// Several nodes starting at once on one fresh database: migrations run
/// once, under `pg_advisory_lock`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_opens_share_one_schema() {
    let Some(server) = server_url() else { return };
    conformance::concurrent_first_opens_share_one_schema(|| Postgres::new(&server)).await;
}

// ---------------------------------------------------------------------------
// Server unreachable
// ---------------------------------------------------------------------------

/// How long a call may take to report that the database is unreachable.
const FAIL_FAST: Duration = Duration::from_secs(3);

fn assert_unavailable<T: std::fmt::Debug>(
    what: &str,
    result: Result<T, StoreError>,
    took: Duration,
) {
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{what}: expected Err(StoreError::Unavailable(_)), got {result:?}"
    );
    assert!(took < FAIL_FAST, "{what}: took {took:?} to fail");
}

/// Nothing listens on the port: connecting fails at once with `Unavailable`
/// (retryable), not `Backend`. Needs no server.
#[tokio::test]
async fn closed_port_is_unavailable() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("local addr").port()
    }; // closed here
    let started = Instant::now();
    let result = PostgresStore::connect(
        &format!("postgres://latchkey@127.0.0.1:{port}/latchkey"),
        PostgresOptions::default(),
    )
    .await;
    // The error says where and why, for the operator reading the log.
    if let Err(e) = &result {
        let e = e.to_string();
        let at = format!("connecting to PostgreSQL at 127.0.0.1:{port}: ");
        assert!(e.contains(&at), "{e}");
        assert!(e.contains("Connection refused"), "{e}");
    }
    assert_unavailable("connect to a closed port", result, started.elapsed());
}

/// A TCP proxy in front of the server that can be cut and restored: cutting
/// it closes every connection and the listening port, which is what a
/// store sees when PostgreSQL goes down.
struct Proxy {
    port: u16,
    accept: JoinHandle<()>,
    links: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Proxy {
    async fn start(target: SocketAddr, port: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let links = Arc::new(Mutex::new(Vec::new()));
        let accept = tokio::spawn({
            let links = Arc::clone(&links);
            async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    let link = tokio::spawn(async move {
                        if let Ok(mut outbound) = TcpStream::connect(target).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    links
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(link.abort_handle());
                }
            }
        });
        Self {
            port,
            accept,
            links,
        }
    }

    /// Closes the listening port and every connection through the proxy.
    async fn cut(self) {
        self.accept.abort();
        let _ = self.accept.await;
        for link in self
            .links
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            link.abort();
        }
    }
}

/// `postgres://user@host:port/db?...` with host and port replaced.
fn via_port(server: &str, port: u16) -> String {
    let (scheme, rest) = server.split_once("://").expect("a postgres:// URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let userinfo = authority
        .rsplit_once('@')
        .map(|(user, _)| format!("{user}@"))
        .unwrap_or_default();
    format!("{scheme}://{userinfo}127.0.0.1:{port}{path}")
}

/// Host and port of the server, for the proxy to forward to.
async fn server_addr(server: &str) -> SocketAddr {
    let config: tokio_postgres::Config = server.parse().expect("parse server URL");
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        other => panic!("proxy test needs a TCP host, got {other:?}"),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let mut addrs = tokio::net::lookup_host((host.as_str(), port))
        .await
        .expect("resolve server");
    addrs.next().expect("server address")
}

fn test_user(key: &str) -> User {
    User {
        id: Uuid::new_v4(),
        username: key.to_owned(),
        username_key: key.to_owned(),
        password_hash: "$argon2id$test".to_owned(),
        roles: vec!["user".to_owned()],
        created_at: 1_700_000_000,
        email: None,
        email_verified_at: None,
        disabled_at: None,
    }
}

/// While the server is unreachable every call fails within `FAIL_FAST`
/// with `Unavailable`; once it is back the same store works again without
/// being reopened (the pool drops its dead connections and makes new ones).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_fails_fast_and_store_recovers() {
    let Some(server) = server_url() else { return };
    let backend = Postgres::new(&server);
    backend.create_schema().await;
    let target = server_addr(&server).await;
    let proxy = Proxy::start(target, 0).await;
    let port = proxy.port;
    let store = PostgresStore::connect(
        &backend.url_via(&via_port(&server, port)),
        PostgresOptions::default(),
    )
    .await
    .expect("connect through the proxy");

    let owner = test_user("uma");
    assert!(store.insert_user(&owner).await.expect("insert_user"));
    // Several connections in the pool, all of which the outage will break.
    let reads: Vec<_> = (0..8).map(|_| store.user_by_id(owner.id)).collect();
    for read in reads {
        assert_eq!(read.await.expect("user_by_id"), Some(owner.clone()));
    }

    proxy.cut().await;
    for round in 0..3 {
        let t = Instant::now();
        assert_unavailable(
            &format!("user_by_id, round {round}"),
            store.user_by_id(owner.id).await,
            t.elapsed(),
        );
        let t = Instant::now();
        assert_unavailable(
            &format!("insert_user, round {round}"),
            store.insert_user(&test_user(&format!("u{round}"))).await,
            t.elapsed(),
        );
        let t = Instant::now();
        let entry = Revocation {
            kind: RevocationKind::Token,
            id: format!("jti-{round}"),
            expires_at: 1_700_000_900,
        };
        assert_unavailable(
            &format!("insert_revocation, round {round}"),
            store.insert_revocation(&entry).await,
            t.elapsed(),
        );
        let t = Instant::now();
        assert_unavailable(
            &format!("revocation_feed, round {round}"),
            store
                .revocation_feed(FeedRead::Snapshot { from: 0 }, 1_700_000_000, 100)
                .await,
            t.elapsed(),
        );
    }

    // The server is back on the same address: the next calls just work.
    let proxy = Proxy::start(target, port).await;
    assert_eq!(
        store
            .user_by_id(owner.id)
            .await
            .expect("user_by_id after recovery"),
        Some(owner.clone())
    );
    let late = test_user("victor");
    assert!(store
        .insert_user(&late)
        .await
        .expect("insert_user after recovery"));
    let concurrent: Vec<_> = (0..8).map(|_| store.user_by_id(late.id)).collect();
    for read in concurrent {
        assert_eq!(
            read.await.expect("user_by_id after recovery"),
            Some(late.clone())
        );
    }
    drop(store);
    proxy.cut().await;
}

/// The server ends the store's connections (as a restart or
/// `pg_terminate_backend` does, SQLSTATE 57P01): at worst a call in flight
/// gets `Unavailable`, never `Backend`, and the store carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_connections_are_replaced() {
    let Some(server) = server_url() else { return };
    let backend = Postgres::new(&server);
    backend.create_schema().await;
    let app = backend.schema.clone();
    let url = format!("{}&application_name={app}", backend.url_via(&server));
    let store = PostgresStore::connect(&url, PostgresOptions::default())
        .await
        .expect("connect");
    let owner = test_user("wendy");
    assert!(store.insert_user(&owner).await.expect("insert_user"));

    let admin = admin(&server).await;
    for round in 0..3 {
        let killed: Vec<i32> = admin
            .query(
                "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE application_name = $1",
                &[&app],
            )
            .await
            .expect("terminate")
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert!(!killed.is_empty(), "round {round}: no connection to end");
        // A call racing with the termination may lose its connection.
        match store.user_by_id(owner.id).await {
            Ok(found) => assert_eq!(found, Some(owner.clone())),
            Err(StoreError::Unavailable(_)) => {}
            Err(e) => panic!("round {round}: a lost connection must be Unavailable: {e:?}"),
        }
        // Once the server has closed them, the pool notices and replaces
        // them by itself: the next calls succeed without any error.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !admin
            .query(
                "SELECT 1 FROM pg_stat_activity WHERE pid = ANY($1)",
                &[&killed],
            )
            .await
            .expect("pg_stat_activity")
            .is_empty()
        {
            assert!(
                Instant::now() < deadline,
                "round {round}: backends still alive"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let calls: Vec<_> = (0..4).map(|_| store.user_by_id(owner.id)).collect();
        for call in calls {
            assert_eq!(
                call.await.expect("user_by_id after the connections ended"),
                Some(owner.clone()),
                "round {round}"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Revocation feed across nodes
// ---------------------------------------------------------------------------

/// Two nodes write revocation entries concurrently while a third tails the
/// feed: the tail sees every entry exactly once. Feed order must be commit
/// order for this to hold; with a bare sequence a reader can move its cursor
/// past an entry that commits a moment later and miss it for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_tail_misses_nothing_while_nodes_write() {
    const WRITERS: usize = 8;
    const PER_WRITER: usize = 40;
    const NOW: i64 = 1_700_000_000;
    let Some(server) = server_url() else { return };
    let backend = Postgres::new(&server);
    let nodes = [
        conformance::Backend::open(&backend).await,
        conformance::Backend::open(&backend).await,
    ];
    let reader = conformance::Backend::open(&backend).await;
    let start = reader
        .revocation_feed(FeedRead::Snapshot { from: 0 }, NOW, 1_000)
        .await
        .expect("snapshot")
        .expect("snapshot page");
    assert!(start.entries.is_empty());

    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let node = Arc::clone(&nodes[w % nodes.len()]);
            tokio::spawn(async move {
                for i in 0..PER_WRITER {
                    let entry = Revocation {
                        kind: RevocationKind::Token,
                        id: format!("w{w}-{i}"),
                        expires_at: NOW + 900,
                    };
                    node.insert_revocation(&entry)
                        .await
                        .expect("insert_revocation");
                }
            })
        })
        .collect();

    let mut cursor = start.cursor;
    let mut seen = Vec::new();
    let mut done = false;
    loop {
        // One last read after every writer finished picks up the tail.
        let finished = writers.iter().all(|w| w.is_finished());
        let page = reader
            .revocation_feed(FeedRead::After(cursor), NOW, 1_000)
            .await
            .expect("revocation_feed")
            .expect("cursor must stay valid (nothing is pruned)");
        assert!(page.cursor >= cursor, "cursor went back");
        cursor = page.cursor;
        seen.extend(page.entries.into_iter().map(|e| e.id));
        if done {
            break;
        }
        done = finished;
    }
    for w in writers {
        w.await.expect("writer");
    }

    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "an entry was delivered twice");
    let expected: BTreeSet<String> = (0..WRITERS)
        .flat_map(|w| (0..PER_WRITER).map(move |i| format!("w{w}-{i}")))
        .collect();
    let seen: BTreeSet<String> = seen.into_iter().collect();
    let missed: Vec<_> = expected.difference(&seen).collect();
    assert!(
        missed.is_empty(),
        "the tail missed {} entries: {missed:?}",
        missed.len()
    );
}
