//! A resource server that accepts Latchkey access tokens.
//!
//! ```sh
//! cargo run --release --bin latchkey -- serve          # the issuer, 127.0.0.1:8080
//! cargo run -p latchkey-verify --example resource_server -- http://127.0.0.1:8080 127.0.0.1:3000
//! curl -s 127.0.0.1:3000/whoami -H "authorization: Bearer $AT"
//! ```
//!
//! Arguments win over environment variables: `LATCHKEY_ISSUER` (default
//! `http://127.0.0.1:8080`), `LISTEN` (default `127.0.0.1:3000`),
//! `LATCHKEY_AUDIENCE` (default `latchkey`, the server's default audience),
//! `LATCHKEY_EXPECTED_ISSUER` (the `iss` in tokens, if it differs from the
//! URL the issuer is reached at), `LATCHKEY_CLIENT_ID` and
//! `LATCHKEY_CLIENT_SECRET` (a confidential client, e.g. from
//! `latchkey clients create api --type confidential`: the issuer serves its
//! revocation feed only to such clients unless `public_revocation_feed`).

use std::sync::Arc;

use axum::routing::get;
use axum::{Json, Router};
use latchkey_verify::{Claims, Options, Verifier};
use serde_json::{json, Value};

async fn whoami(claims: Claims) -> Json<Value> {
    Json(json!({ "sub": claims.sub, "sid": claims.sid, "roles": claims.roles }))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let mut args = std::env::args().skip(1);
    let env = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let issuer = args
        .next()
        .unwrap_or_else(|| env("LATCHKEY_ISSUER", "http://127.0.0.1:8080"));
    let listen = args
        .next()
        .unwrap_or_else(|| env("LISTEN", "127.0.0.1:3000"));
    let audience = env("LATCHKEY_AUDIENCE", "latchkey");

    let mut options = Options::default();
    if let Ok(iss) = std::env::var("LATCHKEY_EXPECTED_ISSUER") {
        options = options.expected_issuer(iss);
    }
    if let (Ok(id), Ok(secret)) = (
        std::env::var("LATCHKEY_CLIENT_ID"),
        std::env::var("LATCHKEY_CLIENT_SECRET"),
    ) {
        options = options.client_credentials(id, secret);
    }
    let verifier = Arc::new(Verifier::with_options(&issuer, &audience, options).await?);
    tracing::info!(%issuer, %audience, kids = ?verifier.key_ids(), "verifier ready");

    let app = Router::new()
        .route("/whoami", get(whoami))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(verifier);
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    tracing::info!(addr = %listener.local_addr()?, "resource server listening");
    axum::serve(listener, app).await?;
    Ok(())
}
