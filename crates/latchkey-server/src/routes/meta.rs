//! Key publication and the health probes: `/healthz` (liveness) and
//! `/readyz` (readiness).

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;

use super::openapi::KeySet;
use super::AuthState;
use crate::error::{ApiError, ErrorBody};

/// The body of a ready `/readyz`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// Always `ready`.
    #[schema(example = "ready")]
    status: &'static str,
}

/// How long the readiness probe waits for the store.
const READY_TIMEOUT: Duration = Duration::from_secs(1);

/// RFC 7517 key set: public members only. Short caching, because the next
/// key is published before it signs anything.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "meta",
    responses((status = 200, description = "The key set", body = KeySet)))]
pub async fn jwks(State(auth): State<AuthState>) -> impl IntoResponse {
    (
        [
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=60"),
            ),
            // Cacheable, and its CORS headers depend on the asker's origin.
            (header::VARY, HeaderValue::from_static("origin")),
        ],
        Json(auth.jwks()),
    )
}

/// Liveness: the process answers. Nothing else is checked, so an outage of
/// the database never gets the process restarted.
#[utoipa::path(get, path = "/healthz", tag = "meta",
    responses((status = 200, description = "`ok`", body = String, content_type = "text/plain")))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the store answers (SQLite: its writer commits; PostgreSQL:
/// `SELECT 1`) within [`READY_TIMEOUT`], and a signing key is loaded.
/// Otherwise 503 naming what is not ready, never how the database is
/// reached (the URL may hold a password); the details go to the log.
#[utoipa::path(get, path = "/readyz", tag = "meta",
    responses(
        (status = 200, description = "Ready: the store answers and a signing key is loaded", body = Readiness),
        (status = 503, description = "`temporarily_unavailable`: not ready, and which part", body = ErrorBody)))]
pub async fn readyz(State(auth): State<AuthState>) -> Result<Json<Readiness>, ApiError> {
    match tokio::time::timeout(READY_TIMEOUT, auth.ping_store()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: store check failed");
            return Err(ApiError::NotReady(
                "the database is not reachable or not writable",
            ));
        }
        Err(_) => {
            tracing::warn!("readiness: store check timed out");
            return Err(ApiError::NotReady("the database did not answer within 1 s"));
        }
    }
    if auth.signing_key_age().is_none() {
        return Err(ApiError::NotReady("no signing key is loaded"));
    }
    Ok(Json(Readiness { status: "ready" }))
}
