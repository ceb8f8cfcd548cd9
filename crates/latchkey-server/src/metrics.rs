//! The Prometheus side of the metrics named in [`latchkey_core::metrics`]:
//! the process-wide recorder, the per-request HTTP metrics, and `/metrics`
//! (on the main listener, or alone on `--metrics-listen`).
//!
//! The recorder is global to the process (the `metrics` facade has one), so
//! it is installed once, lazily, and every server in the process renders
//! the same handle; tests running many servers in one process compare
//! counters before and after, never absolute values.

use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};
use std::time::Instant;

use ::metrics::{Counter, Histogram, Label};
use axum::extract::{MatchedPath, Request};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use latchkey_core::metrics as metric;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;

/// The `route` label of requests no route matched: raw paths would make
/// the label set unbounded and can carry ids.
const UNMATCHED_ROUTE: &str = "unmatched";

/// The exposition format's content type (text format 0.0.4).
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's Prometheus handle, installing the recorder on first use.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = with_buckets(PrometheusBuilder::new()).build_recorder();
        let handle = recorder.handle();
        if ::metrics::set_global_recorder(recorder).is_err() {
            // Only if something else in the process installed one first.
            tracing::warn!("a metrics recorder was already installed; /metrics stays empty");
        }
        metric::describe();
        handle
    })
}

/// Histograms (not the exporter's default summaries, which cannot be
/// aggregated across nodes) with the buckets `latchkey_core` defines.
fn with_buckets(builder: PrometheusBuilder) -> PrometheusBuilder {
    let seconds = Matcher::Suffix("_seconds".into());
    let batch = Matcher::Full(metric::STORE_COMMIT_BATCH_SIZE.into());
    match builder
        .set_buckets_for_metric(seconds, metric::SECONDS_BUCKETS)
        .and_then(|b| b.set_buckets_for_metric(batch, metric::BATCH_SIZE_BUCKETS))
    {
        Ok(b) => b,
        // Unreachable: the bucket lists are non-empty constants.
        Err(e) => {
            tracing::warn!(error = %e, "metric buckets refused; histograms become summaries");
            PrometheusBuilder::new()
        }
    }
}

/// `GET /metrics`: the exposition text.
#[utoipa::path(get, path = "/metrics", tag = "meta",
    description = "Prometheus metrics (text exposition format 0.0.4). On the main listener \
        unless the server runs with `--metrics-listen`, which serves it there alone.",
    responses((status = 200, description = "The exposition text", body = String,
        content_type = "text/plain; version=0.0.4; charset=utf-8")))]
pub async fn render() -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
        handle().render(),
    )
        .into_response()
}

/// `/metrics` with its description, for the main router and for
/// `--metrics-listen`.
pub fn routes<S: Clone + Send + Sync + 'static>() -> OpenApiRouter<S> {
    OpenApiRouter::new().routes(routes!(render))
}

/// The router of `--metrics-listen`: `/metrics` and nothing else.
pub fn router() -> Router {
    let (metrics, _) = routes().split_for_parts();
    metrics
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
}

/// Drains histogram samples nobody scraped, so an unscraped server's memory
/// stays flat; run periodically.
pub fn upkeep() {
    handle().run_upkeep();
}

/// The counter and histogram of one (route, method, status).
struct RequestHandles {
    method: &'static str,
    status: StatusCode,
    requests: Counter,
    duration: Histogram,
}

/// Handles by route template, made once per label set: a request then costs
/// a map lookup, a short scan and two atomic updates, never label
/// formatting or a registry lookup.
static REQUEST_HANDLES: OnceLock<RwLock<HashMap<String, Vec<RequestHandles>>>> = OnceLock::new();

/// Middleware: counts and times every request by route template, method
/// and status (the time to the response head).
pub async fn track_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = method_label(request.method());
    let response = next.run(request).await;
    let route = route.as_ref().map_or(UNMATCHED_ROUTE, MatchedPath::as_str);
    record_request(route, method, response.status(), started);
    response
}

/// The `method` label: the standard methods by name, any other as
/// `other` (a client may send any token as a method, and each would
/// otherwise be a new series kept for the life of the process).
fn method_label(method: &Method) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
    ];
    KNOWN
        .into_iter()
        .find(|m| *m == method.as_str())
        .unwrap_or("other")
}

fn record_request(route: &str, method: &'static str, status: StatusCode, started: Instant) {
    let table = REQUEST_HANDLES.get_or_init(|| {
        // Installed before the first handle is made, so none is a no-op.
        handle();
        RwLock::default()
    });
    let find = |hs: &[RequestHandles]| {
        hs.iter()
            .position(|h| h.status == status && h.method == method)
    };
    let record = |h: &RequestHandles| {
        h.requests.increment(1);
        h.duration.record(started.elapsed().as_secs_f64());
    };
    {
        let read = table.read().unwrap_or_else(|p| p.into_inner());
        if let Some(hs) = read.get(route) {
            if let Some(i) = find(hs) {
                record(&hs[i]);
                return;
            }
        }
    }
    let mut write = table.write().unwrap_or_else(|p| p.into_inner());
    let handles = write.entry(route.to_owned()).or_default();
    if let Some(i) = find(handles) {
        record(&handles[i]);
        return;
    }
    let labels = [
        Label::new("route", route.to_owned()),
        Label::new("method", method),
        Label::new("status", status.as_u16().to_string()),
    ];
    let h = RequestHandles {
        method,
        status,
        requests: ::metrics::counter!(metric::HTTP_REQUESTS, labels.iter()),
        duration: ::metrics::histogram!(metric::HTTP_REQUEST_DURATION, labels.iter()),
    };
    record(&h);
    handles.push(h);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_method_label_is_one_of_a_fixed_few() {
        assert_eq!(method_label(&Method::POST), "POST");
        assert_eq!(method_label(&Method::OPTIONS), "OPTIONS");
        for sent in ["FOO", "get", "BREW1", "BREW2"] {
            let method = Method::from_bytes(sent.as_bytes()).expect("a method token");
            assert_eq!(method_label(&method), "other", "{sent}");
        }
    }
}
