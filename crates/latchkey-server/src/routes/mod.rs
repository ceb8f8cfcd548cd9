//! The route table. Each handler: extract, call one `Authority` method,
//! shape the response. Routes are registered with `routes!`, which also
//! takes each handler's `#[utoipa::path]` into the OpenAPI document: a
//! route cannot be added without its description (the `openapi` tests
//! check that no route bypasses this).

mod account_page;
mod accounts;
pub mod admin;
mod authorize;
mod feed;
mod hosted_pages;
mod meta;
mod oauth;
pub mod openapi;
mod openid;
mod recovery;
mod sessions;
mod tokens;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, FromRef, MatchedPath, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware;
use axum::Router;
use latchkey_core::Authority;
use tokio::sync::watch;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnFailure, TraceLayer};
use tracing::Span;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::browser::{self, BrowserOrigins};
use crate::client_address::{self, AddressResolution};
use crate::error::ApiError;
use crate::rate_limit::{self, RateLimiter};
use crate::request_id;

/// Bodies above this are refused with 413 before they are parsed.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The same for the routes that take a password (sign-up, sign-in, password
/// change): room for the longest password the password rule accepts (1024
/// bytes) many times over, JSON escapes included, so a too-long password
/// still gets the rule's precise 400; anything larger is 413 unread.
pub const MAX_PASSWORD_BODY_BYTES: usize = 16 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What most handlers need.
pub type AuthState = Arc<Authority>;

/// Router state: the authority, and news of revocation-feed progress for
/// long-polling readers.
#[derive(Clone)]
pub struct App {
    pub auth: AuthState,
    /// The newest feed cursor this node has seen; changes wake long polls.
    pub feed_updates: watch::Receiver<i64>,
    /// Whether the feed is readable without a confidential client's
    /// credentials.
    pub public_revocation_feed: bool,
    /// Per-address limits of this node; `None`: unlimited.
    pub sign_up_limit: Option<Arc<RateLimiter>>,
    pub tokens_limit: Option<Arc<RateLimiter>>,
    /// Password recovery and email routes; a limited forgot still answers
    /// 202 (the handler checks it), the others 429.
    pub recovery_limit: Option<Arc<RateLimiter>>,
    /// Whether `/metrics` is on this router (else on `--metrics-listen`).
    pub serve_metrics: bool,
    /// Whose `X-Forwarded-For` is believed, and the network lengths
    /// clients are counted under.
    pub client_addresses: Arc<AddressResolution>,
    /// Origins whose pages may call the API and use the refresh cookie.
    pub browser_origins: Arc<BrowserOrigins>,
}

impl FromRef<App> for Arc<BrowserOrigins> {
    fn from_ref(app: &App) -> Self {
        app.browser_origins.clone()
    }
}

/// `routes` with `limiter` in front of each of them, if there is one.
fn limited(routes: OpenApiRouter<App>, limiter: Option<Arc<RateLimiter>>) -> OpenApiRouter<App> {
    match limiter {
        Some(l) => routes.route_layer(middleware::from_fn_with_state(l, rate_limit::limit)),
        None => routes,
    }
}

impl FromRef<App> for AuthState {
    fn from_ref(app: &App) -> Self {
        app.auth.clone()
    }
}

/// Every route with its description; the rate limiters are layers, which
/// the document does not see.
fn api(
    sign_up_limit: Option<Arc<RateLimiter>>,
    tokens_limit: Option<Arc<RateLimiter>>,
    recovery_limit: Option<Arc<RateLimiter>>,
    serve_metrics: bool,
) -> OpenApiRouter<App> {
    let sign_up = limited(
        OpenApiRouter::new().routes(routes!(accounts::sign_up)),
        sign_up_limit,
    );
    let reset = limited(
        OpenApiRouter::new().routes(routes!(recovery::reset)),
        recovery_limit.clone(),
    );
    let email_routes = limited(
        OpenApiRouter::new()
            .routes(routes!(recovery::set_email))
            .routes(routes!(recovery::verify_email)),
        recovery_limit,
    );
    let password_routes = OpenApiRouter::new()
        .merge(sign_up)
        .merge(reset)
        .routes(routes!(accounts::sign_in))
        .routes(routes!(authorize::sign_in_form))
        .routes(routes!(sessions::change_password))
        .route_layer(DefaultBodyLimit::max(MAX_PASSWORD_BODY_BYTES));
    let token_endpoints = limited(
        OpenApiRouter::new()
            .routes(routes!(tokens::refresh))
            .routes(routes!(tokens::revoke))
            .routes(routes!(oauth::token))
            .routes(routes!(oauth::revoke))
            .routes(routes!(oauth::introspect)),
        tokens_limit,
    );
    let metrics = if serve_metrics {
        crate::metrics::routes()
    } else {
        OpenApiRouter::new()
    };
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(metrics)
        .merge(password_routes)
        .merge(token_endpoints)
        .merge(email_routes)
        .routes(routes!(recovery::forgot))
        .routes(routes!(account_page::reset_password_page))
        .routes(routes!(account_page::verify_email_page))
        .routes(routes!(accounts::me))
        .routes(routes!(tokens::cancel))
        .routes(routes!(sessions::list))
        .routes(routes!(sessions::end))
        .routes(routes!(sessions::sign_out))
        .routes(routes!(feed::revocations))
        .routes(routes!(authorize::authorize_get, authorize::authorize_post))
        .routes(routes!(authorize::consent_form))
        .routes(routes!(openid::userinfo, openid::userinfo_post))
        .routes(routes!(openid::logout_get, openid::logout_post))
        .routes(routes!(openid::consents))
        .routes(routes!(openid::withdraw_consent))
        .routes(routes!(oauth::metadata))
        .routes(routes!(oauth::openid_configuration))
        .routes(routes!(meta::jwks))
        .routes(routes!(meta::healthz))
        .routes(routes!(meta::readyz))
        .routes(routes!(openapi::document))
        .routes(routes!(openapi::docs_page))
        .routes(routes!(openapi::docs_file))
        .routes(routes!(account_page::account_page))
        .routes(routes!(account_page::account_file))
        .routes(routes!(account_page::account_client_module))
        .routes(routes!(admin::list_users, admin::create_user))
        .routes(routes!(
            admin::show_user,
            admin::patch_user,
            admin::delete_user
        ))
        .routes(routes!(admin::list_sessions, admin::end_sessions))
        .routes(routes!(admin::reset_link))
        .routes(routes!(admin::create_invite))
}

/// The OpenAPI document of [`router`]'s routes, as served.
pub fn openapi_document() -> serde_json::Value {
    openapi::finish(api(None, None, None, true).into_openapi())
}

pub fn router(app: App) -> Router {
    let (routes, _) = api(
        app.sign_up_limit.clone(),
        app.tokens_limit.clone(),
        app.recovery_limit.clone(),
        app.serve_metrics,
    )
    .split_for_parts();
    let client_addresses = app.client_addresses.clone();
    let cors = browser::BrowserCorsLayer::new(app.browser_origins.clone());
    routes
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(app)
        // One `layer` call: axum wraps every route in each layer it is
        // given and boxes the result, and a request clones every box on its
        // way in; one composed stack is one box per request instead of
        // nine. Outermost first.
        .layer(
            ServiceBuilder::new()
                // A client's id that is not short and plain is dropped, so
                // the next layer makes a fresh one.
                .layer(middleware::map_request(request_id::drop_unfit))
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(PropagateRequestIdLayer::x_request_id())
                // A 5xx is a warning: a 503 while the database restarts is
                // expected, and real failures are logged as errors where
                // they happen.
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(request_span)
                        .on_response(access_log)
                        .on_failure(DefaultOnFailure::new().level(tracing::Level::WARN)),
                )
                // Responses carry personal data or tokens unless the handler
                // says otherwise (JWKS and metadata set their public
                // caching); errors and timeouts too, hence outside
                // everything that answers.
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("no-store"),
                ))
                // Outside the timeout, so a 408 is counted too.
                .layer(middleware::from_fn(crate::metrics::track_request))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    REQUEST_TIMEOUT,
                ))
                .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
                // Outside the route layers, so the rate limits see the
                // result.
                .layer(middleware::from_fn_with_state(
                    client_addresses,
                    client_address::resolve,
                ))
                // Innermost, so a browser's preflight is answered before
                // any route and every answer to an allowed origin (errors
                // too) is readable.
                .layer(cors),
        )
}

/// The route of requests no route matched: never the raw path, which is
/// the client's to choose (unbounded, and maybe a token).
const UNMATCHED_ROUTE: &str = "<unmatched>";

/// The span of each request, which every log line of the request carries:
/// method, route template and request id. Never the path or the URI: a
/// path segment or a query string may hold a token (we accept none there,
/// but clients send them anyway), and a log is no place for them.
fn request_span(request: &Request) -> Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED_ROUTE, MatchedPath::as_str);
    tracing::info_span!(
        "request",
        method = %request.method(),
        route = %route,
        request_id = request_id::of(request.headers()).map(tracing::field::display),
    )
}

/// The access log: one line per request, in its span, when the response
/// starts.
fn access_log(response: &axum::response::Response, latency: Duration, _span: &Span) {
    tracing::info!(
        status = response.status().as_u16(),
        // Microseconds are plenty, and print without float noise.
        latency_ms = latency.as_micros() as f64 / 1000.0,
        "access"
    );
}

/// `Cache-Control: no-store` and `Pragma: no-cache` for responses that carry
/// tokens (RFC 6749 §5.1).
fn no_store() -> [(header::HeaderName, HeaderValue); 2] {
    [
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (header::PRAGMA, HeaderValue::from_static("no-cache")),
    ]
}
