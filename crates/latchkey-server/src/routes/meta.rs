//! Key publication and health probes.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::IntoResponse;
use axum::Json;

use super::AuthState;

/// RFC 7517 key set: public members only. Short caching, because the next
/// key is published before it signs anything.
pub async fn jwks(State(auth): State<AuthState>) -> impl IntoResponse {
    (
        [(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=60"),
        )],
        Json(auth.jwks()),
    )
}

pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready once the authority is open, which happens before we listen.
pub async fn readyz() -> &'static str {
    "ready"
}
