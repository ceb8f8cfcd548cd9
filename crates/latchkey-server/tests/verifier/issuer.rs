//! A tiny issuer for the tests: JWKS and the revocation feed per the
//! contract the real server implements, on 127.0.0.1:0, with counters and
//! switches to break it on purpose.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::Ed25519KeyPair;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use latchkey_core::access_token::{AccessClaims, Algorithm, Audience, SigningKey};
use serde_json::{json, Value};
use tokio::sync::Notify;

pub const AUDIENCE: &str = "api";

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub fn key(kid: &str) -> SigningKey {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("keygen");
    SigningKey::from_pkcs8(kid, Algorithm::EdDsa, pkcs8.as_ref()).expect("key")
}

/// Rendered by core, exactly as the issuer publishes it.
pub fn jwk(k: &SigningKey) -> Value {
    latchkey_core::keys::jwk(k.kid(), k.alg(), k.public_key()).expect("jwk")
}

pub fn jwks(keys: &[&SigningKey]) -> String {
    json!({ "keys": keys.iter().map(|k| jwk(k)).collect::<Vec<_>>() }).to_string()
}

pub fn claims(issuer: &str, at: i64, sid: &str, jti: &str) -> AccessClaims {
    AccessClaims {
        iss: issuer.to_owned(),
        sub: format!("user-{sid}"),
        aud: Audience::One(AUDIENCE.to_owned()),
        exp: at + 600,
        iat: at,
        nbf: None,
        jti: jti.to_owned(),
        client_id: "default".to_owned(),
        sid: Some(sid.to_owned()),
        scope: None,
        roles: vec![],
    }
}

pub fn token(k: &SigningKey, issuer: &str, sid: &str, jti: &str) -> String {
    k.sign(&claims(issuer, now(), sid, jti))
}

/// Polls `cond` every 20 ms for at most `limit`.
pub async fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedMode {
    Up,
    /// Answers 503 to every feed request.
    Down,
}

#[derive(Default)]
struct Log {
    /// (sequence, kind, id, expires_at)
    entries: Vec<(u64, String, String, i64)>,
    next_seq: u64,
    /// Cursors below this get 410.
    oldest_cursor: u64,
}

pub struct Issuer {
    pub base: String,
    keys: Mutex<Vec<Value>>,
    pub jwks_hits: AtomicUsize,
    pub snapshots: AtomicUsize,
    pub tails: AtomicUsize,
    feed_down: AtomicBool,
    /// Most entries in one snapshot page.
    snapshot_page_size: AtomicUsize,
    log: Mutex<Log>,
    changed: Notify,
}

impl Issuer {
    /// Starts the issuer; the server task lives as long as the runtime.
    pub async fn start(keys: &[&SigningKey]) -> Arc<Issuer> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let issuer = Arc::new(Issuer {
            base: format!("http://{addr}"),
            keys: Mutex::new(keys.iter().map(|k| jwk(k)).collect()),
            jwks_hits: AtomicUsize::new(0),
            snapshots: AtomicUsize::new(0),
            tails: AtomicUsize::new(0),
            feed_down: AtomicBool::new(false),
            snapshot_page_size: AtomicUsize::new(usize::MAX),
            log: Mutex::new(Log {
                next_seq: 1,
                ..Log::default()
            }),
            changed: Notify::new(),
        });
        let app = Router::new()
            .route("/.well-known/jwks.json", get(jwks_route))
            .route("/v1/revocations", get(feed_route))
            .with_state(Arc::clone(&issuer));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        issuer
    }

    pub fn publish(&self, keys: &[&SigningKey]) {
        *self.keys.lock().expect("lock") = keys.iter().map(|k| jwk(k)).collect();
    }

    pub fn revoke(&self, kind: &str, id: &str, expires_at: i64) {
        let mut log = self.log.lock().expect("lock");
        let seq = log.next_seq;
        log.next_seq += 1;
        log.entries
            .push((seq, kind.to_owned(), id.to_owned(), expires_at));
        drop(log);
        self.changed.notify_waiters();
    }

    /// Forgets the history: every cursor handed out so far gets 410, and the
    /// live set becomes `entries`.
    pub fn compact_to(&self, entries: &[(&str, &str, i64)]) {
        let mut log = self.log.lock().expect("lock");
        // Skip one sequence number so that even a fully caught-up cursor is
        // older than the new oldest one.
        log.next_seq += 1;
        log.oldest_cursor = log.next_seq - 1;
        log.entries.clear();
        for (kind, id, exp) in entries {
            let seq = log.next_seq;
            log.next_seq += 1;
            log.entries
                .push((seq, (*kind).to_owned(), (*id).to_owned(), *exp));
        }
        drop(log);
        self.changed.notify_waiters();
    }

    pub fn set_snapshot_page_size(&self, size: usize) {
        self.snapshot_page_size.store(size, Ordering::SeqCst);
    }

    pub fn set_feed(&self, mode: FeedMode) {
        self.feed_down
            .store(mode == FeedMode::Down, Ordering::SeqCst);
        self.changed.notify_waiters();
    }
}

async fn jwks_route(State(issuer): State<Arc<Issuer>>) -> Json<Value> {
    issuer.jwks_hits.fetch_add(1, Ordering::SeqCst);
    Json(json!({ "keys": issuer.keys.lock().expect("lock").clone() }))
}

fn listed(entries: &[(u64, String, String, i64)]) -> Vec<Value> {
    entries
        .iter()
        .map(|(_, kind, id, exp)| json!({"kind": kind, "id": id, "expires_at": exp}))
        .collect()
}

fn page(entries: &[(u64, String, String, i64)], cursor: u64) -> Response {
    Json(json!({"entries": listed(entries), "cursor": cursor.to_string()})).into_response()
}

/// A snapshot page that names the next one.
fn snapshot_page(entries: &[(u64, String, String, i64)], next: u64) -> Response {
    let next = next.to_string();
    Json(json!({"entries": listed(entries), "cursor": next, "next": next})).into_response()
}

async fn feed_route(
    State(issuer): State<Arc<Issuer>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let down = || {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "temporarily_unavailable"})),
        )
            .into_response()
    };
    if issuer.feed_down.load(Ordering::SeqCst) {
        return down();
    }
    let Some(after) = q.get("after") else {
        issuer.snapshots.fetch_add(1, Ordering::SeqCst);
        let from = match q.get("page").map(|p| p.parse::<u64>()) {
            None => 0,
            Some(Ok(from)) => from,
            Some(Err(_)) => {
                return (StatusCode::GONE, Json(json!({"error": "cursor_expired"}))).into_response()
            }
        };
        let size = issuer.snapshot_page_size.load(Ordering::SeqCst);
        let log = issuer.log.lock().expect("lock");
        let live: Vec<_> = log
            .entries
            .iter()
            .filter(|e| e.0 > from && e.3 > now())
            .cloned()
            .collect();
        if live.len() > size {
            return snapshot_page(&live[..size], live[size - 1].0);
        }
        return page(&live, log.next_seq - 1);
    };
    issuer.tails.fetch_add(1, Ordering::SeqCst);
    let Ok(after) = after.parse::<u64>() else {
        return (StatusCode::GONE, Json(json!({"error": "cursor_expired"}))).into_response();
    };
    let wait: u64 = q
        .get("wait")
        .and_then(|w| w.parse().ok())
        .unwrap_or(0)
        .min(30);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    loop {
        // Registered before checking, so a change between check and wait is
        // not lost.
        let notified = issuer.changed.notified();
        if issuer.feed_down.load(Ordering::SeqCst) {
            return down();
        }
        {
            let log = issuer.log.lock().expect("lock");
            if after < log.oldest_cursor || after >= log.next_seq {
                return (
                    StatusCode::GONE,
                    Json(json!({"error": "cursor_expired", "error_description": "start over"})),
                )
                    .into_response();
            }
            let newer: Vec<_> = log
                .entries
                .iter()
                .filter(|e| e.0 > after)
                .cloned()
                .collect();
            if !newer.is_empty() {
                return page(&newer, log.next_seq - 1);
            }
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            let log = issuer.log.lock().expect("lock");
            return page(&[], log.next_seq - 1);
        }
    }
}
