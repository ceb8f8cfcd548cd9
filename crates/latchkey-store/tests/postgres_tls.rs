//! TLS to PostgreSQL, against the test cluster of
//! `scripts/postgres-test-cluster.sh`, which speaks TLS with a certificate
//! for `localhost` and `127.0.0.1` signed by a throwaway CA
//! (`LATCHKEY_TEST_DATABASE_CA`, printed by the script's `ca`), and leaves
//! a second, unrelated CA (`other-ca.crt`) beside it. Each `sslmode` is
//! checked for what it must accept and refuse, and whether the store's
//! connections really are encrypted (the server's `pg_stat_ssl`). Skipped
//! without `LATCHKEY_TEST_DATABASE_URL` and `LATCHKEY_TEST_DATABASE_CA`.

mod postgres_support;

use std::path::PathBuf;

use latchkey_core::model::User;
use latchkey_core::store::{StoreError, UserStore};
use latchkey_store::postgres::PostgresOptions;
use latchkey_store::PostgresStore;
use postgres_support::{admin, server_url, TestSchema};
use uuid::Uuid;

const CA_VAR: &str = "LATCHKEY_TEST_DATABASE_CA";

/// The test server and what a URL to it is made of.
struct Server {
    url: String,
    user: String,
    port: u16,
    dbname: String,
    ca: PathBuf,
    other_ca: PathBuf,
}

impl Server {
    fn from_env() -> Option<Self> {
        let url = server_url()?;
        let Some(ca) = std::env::var_os(CA_VAR).filter(|v| !v.is_empty()) else {
            eprintln!("skipped: {CA_VAR} is not set");
            return None;
        };
        let ca = PathBuf::from(ca);
        let config: tokio_postgres::Config = url.parse().expect("test server URL");
        Some(Self {
            user: config.get_user().unwrap_or("postgres").to_owned(),
            port: config.get_ports().first().copied().unwrap_or(5432),
            dbname: config.get_dbname().unwrap_or("postgres").to_owned(),
            other_ca: ca.with_file_name("other-ca.crt"),
            ca,
            url,
        })
    }

    /// A URL to `host` (connecting to `hostaddr` if given) with `params`.
    fn url(&self, host: &str, hostaddr: Option<&str>, params: &str) -> String {
        let mut url = format!(
            "postgres://{}@{host}:{}/{}?{params}",
            self.user, self.port, self.dbname
        );
        if let Some(addr) = hostaddr {
            url.push_str(&format!("&hostaddr={addr}"));
        }
        url
    }
}

fn user() -> User {
    User {
        id: Uuid::new_v4(),
        username: "tls".into(),
        username_key: "tls".into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        roles: vec![],
        created_at: 1_700_000_000,
        email: None,
        email_verified_at: None,
        disabled_at: None,
    }
}

/// Opens the store at `url` on a fresh schema, writes and reads a user
/// back, and says whether its connection is encrypted (by the server's
/// own account).
async fn works_over(server: &Server, url: &str) -> Result<bool, StoreError> {
    let schema = TestSchema::create(&server.url).await;
    let app = format!("lk_tls_{}", Uuid::new_v4().simple());
    let url = schema.url(&format!("{url}&application_name={app}"));
    let store = PostgresStore::connect(&url, PostgresOptions::default()).await?;
    let u = user();
    assert!(store.insert_user(&u).await?);
    assert_eq!(store.user_by_id(u.id).await?.map(|x| x.id), Some(u.id));
    let row = admin(&server.url)
        .await
        .query_one(
            "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = $1",
            &[&app],
        )
        .await
        .expect("pg_stat_ssl");
    let encrypted: Option<bool> = row.get(0);
    drop(store);
    Ok(encrypted.expect("the store's connection is open"))
}

fn refused(result: Result<bool, StoreError>) -> String {
    match result {
        Ok(_) => panic!("connected, but should have been refused"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn verify_full_connects_to_the_names_in_the_certificate_over_tls() {
    let Some(server) = Server::from_env() else {
        return;
    };
    let ca = server.ca.display().to_string();
    for host in ["127.0.0.1", "localhost"] {
        let url = server.url(host, None, &format!("sslmode=verify-full&sslrootcert={ca}"));
        assert!(
            works_over(&server, &url).await.expect(host),
            "{host}: not encrypted"
        );
    }
}

#[tokio::test]
async fn verify_full_refuses_a_server_signed_by_another_ca_and_says_why() {
    let Some(server) = Server::from_env() else {
        return;
    };
    let other = server.other_ca.display().to_string();
    let url = server.url(
        "127.0.0.1",
        None,
        &format!("sslmode=verify-full&sslrootcert={other}"),
    );
    let e = refused(works_over(&server, &url).await);
    let at = format!("connecting to PostgreSQL at 127.0.0.1:{}", server.port);
    assert!(e.contains(&at), "{e}");
    assert!(e.contains("TLS handshake"), "{e}");
    assert!(e.contains("UnknownIssuer"), "{e}");
}

#[tokio::test]
async fn verify_full_refuses_a_host_name_the_certificate_does_not_name() {
    let Some(server) = Server::from_env() else {
        return;
    };
    let ca = server.ca.display().to_string();
    let url = server.url(
        "db.invalid",
        Some("127.0.0.1"),
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );
    let e = refused(works_over(&server, &url).await);
    assert!(e.contains("db.invalid"), "{e}");
    assert!(e.contains("certificate not valid for name"), "{e}");
}

#[tokio::test]
async fn verify_ca_checks_the_chain_but_not_the_host_name() {
    let Some(server) = Server::from_env() else {
        return;
    };
    let ca = server.ca.display().to_string();
    let url = server.url(
        "db.invalid",
        Some("127.0.0.1"),
        &format!("sslmode=verify-ca&sslrootcert={ca}"),
    );
    assert!(works_over(&server, &url).await.expect("verify-ca"));

    let other = server.other_ca.display().to_string();
    let url = server.url(
        "127.0.0.1",
        None,
        &format!("sslmode=verify-ca&sslrootcert={other}"),
    );
    assert!(refused(works_over(&server, &url).await).contains("UnknownIssuer"));
}

#[tokio::test]
async fn require_encrypts_without_verifying_unless_given_a_ca() {
    let Some(server) = Server::from_env() else {
        return;
    };
    let url = server.url("db.invalid", Some("127.0.0.1"), "sslmode=require");
    assert!(works_over(&server, &url).await.expect("require"));
    // With sslrootcert, require verifies the chain, as libpq does.
    let other = server.other_ca.display().to_string();
    let url = server.url(
        "127.0.0.1",
        None,
        &format!("sslmode=require&sslrootcert={other}"),
    );
    assert!(refused(works_over(&server, &url).await).contains("UnknownIssuer"));
}

#[tokio::test]
async fn disable_stays_plain_and_the_default_prefers_tls() {
    let Some(server) = Server::from_env() else {
        return;
    };
    let url = server.url("127.0.0.1", None, "sslmode=disable");
    assert!(!works_over(&server, &url).await.expect("disable"));
    let url = server.url("127.0.0.1", None, "connect_timeout=5");
    assert!(works_over(&server, &url).await.expect("prefer"));
}

#[tokio::test]
async fn a_missing_ca_file_is_named() {
    let Some(server) = Server::from_env() else {
        return;
    };
    let url = server.url(
        "127.0.0.1",
        None,
        "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
    );
    let e = refused(works_over(&server, &url).await);
    assert!(e.contains("sslrootcert /nonexistent/ca.pem"), "{e}");
}
