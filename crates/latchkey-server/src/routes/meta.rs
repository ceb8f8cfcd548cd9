//! Key publication and health probes.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::IntoResponse;
use axum::Json;

use super::openapi::KeySet;
use super::AuthState;

/// RFC 7517 key set: public members only. Short caching, because the next
/// key is published before it signs anything.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "meta",
    responses((status = 200, description = "The key set", body = KeySet)))]
pub async fn jwks(State(auth): State<AuthState>) -> impl IntoResponse {
    (
        [(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=60"),
        )],
        Json(auth.jwks()),
    )
}

/// Liveness.
#[utoipa::path(get, path = "/healthz", tag = "meta",
    responses((status = 200, description = "`ok`", body = String, content_type = "text/plain")))]
pub async fn healthz() -> &'static str {
    "ok"
}

#[utoipa::path(get, path = "/readyz", tag = "meta",
    responses((status = 200, description = "`ready`", body = String, content_type = "text/plain")))]
/// Ready once the authority is open, which happens before we listen.
pub async fn readyz() -> &'static str {
    "ready"
}
