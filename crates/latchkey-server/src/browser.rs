//! What browser apps need beyond the JSON API: which web origins may call
//! it (CORS), and the refresh token in an HttpOnly cookie with the checks
//! that keep another site from spending it (CSRF).
//!
//! A cookie is sent by the browser on its own, so a request it
//! authenticates is only honoured when it could not have been forged by
//! another site: its `Origin` is this service's own or an allowed one, and
//! it is `Content-Type: application/json`, which a cross-origin page can
//! only send after a CORS preflight that names an allowed origin.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use std::task::{Context, Poll};

use axum::extract::{FromRef, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use futures_util::future::{Either, Map};
use futures_util::FutureExt as _;
use tower::util::Oneshot;
use tower::{Layer, Service, ServiceExt as _};
use tower_http::cors::{AllowOrigin, Cors, CorsLayer};

use crate::error::ApiError;
use crate::extract::media_type;

/// The cookie's name: `__Host-` makes the browser refuse it unless it is
/// `Secure`, has `Path=/` and no `Domain`, so no sibling subdomain can set
/// or shadow it.
pub const REFRESH_COOKIE: &str = "__Host-latchkey_refresh";

/// The hosted sign-in page's session: `SameSite=Lax`, so it comes along
/// when a client's page sends the browser to the authorization endpoint
/// (a top-level navigation) and on no cross-site subrequest or POST.
pub const BROWSER_SESSION_COOKIE: &str = "__Host-latchkey_session";

/// How long a browser may cache a preflight's answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// Web origins (`scheme://host[:port]`, lower-case, without a default
/// port) that may call the API from a page, with credentials.
#[derive(Debug, Default)]
pub struct BrowserOrigins {
    /// This service's own origin (from its public URL).
    own: Option<String>,
    /// The server-wide list (`cors_allowed_origins`).
    allowed: HashSet<String>,
    /// Registered clients' `allowed_origins`, refreshed from the store
    /// every few seconds ([`Self::set_registered`]).
    registered: RwLock<HashSet<String>>,
}

impl BrowserOrigins {
    /// `public_url`'s origin and the configured origins, each already
    /// checked by [`parse_origin`].
    pub fn new(public_url: &str, allowed: &[String]) -> Self {
        Self {
            own: parse_origin(public_url).ok(),
            allowed: allowed
                .iter()
                .filter_map(|o| parse_origin(o).ok())
                .collect(),
            registered: RwLock::default(),
        }
    }

    /// Replaces the registered clients' origins.
    pub fn set_registered(&self, origins: impl IntoIterator<Item = String>) {
        let origins = origins
            .into_iter()
            .filter_map(|o| parse_origin(&o).ok())
            .collect();
        *self.registered.write().unwrap_or_else(|p| p.into_inner()) = origins;
    }

    /// Whether a page on `origin` may call the API cross-origin.
    pub fn allows_cross_origin(&self, origin: &str) -> bool {
        self.allowed.contains(origin)
            || self
                .registered
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .contains(origin)
    }

    /// Whether a form post came from this service's own pages: its
    /// `Origin` is ours, or the browser says `Sec-Fetch-Site: same-origin`.
    /// A request with neither is refused: another site's page could have
    /// posted it (login CSRF, forced consent).
    pub fn is_same_origin_post(&self, headers: &HeaderMap) -> bool {
        let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
        let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
        match (origin, fetch_site) {
            (Some(o), _) if self.own.as_deref() == Some(o) => true,
            (_, Some(site)) => site == "same-origin",
            _ => false,
        }
    }

    /// Whether `origin` is this service or an allowed origin.
    fn trusts(&self, origin: &str) -> bool {
        self.own.as_deref() == Some(origin) || self.allows_cross_origin(origin)
    }
}

/// An origin as browsers send it, from a configured value or a URL:
/// scheme and host lower-cased, a default port dropped, no path.
pub fn parse_origin(url: &str) -> Result<String, String> {
    let refuse = || format!("{url:?} is not an origin like https://app.example.com");
    let (scheme, rest) = url.split_once("://").ok_or_else(refuse)?;
    let scheme = scheme.to_ascii_lowercase();
    let authority = rest.split('/').next().unwrap_or("");
    let path = &rest[authority.len()..];
    if !(scheme == "http" || scheme == "https")
        || authority.is_empty()
        || url.contains(['@', '?', '#', ' '])
        || !(path.is_empty() || path == "/")
    {
        return Err(refuse());
    }
    let authority = authority.to_ascii_lowercase();
    let default_port = if scheme == "https" { ":443" } else { ":80" };
    let authority = authority.strip_suffix(default_port).unwrap_or(&authority);
    Ok(format!("{scheme}://{authority}"))
}

/// The CORS layer: preflights from an allowed origin are answered with
/// that exact origin, credentials allowed, the methods and headers the API
/// takes, and a max age; any other origin gets no `Access-Control-Allow-*`
/// header at all, so its page can read nothing. Requests without an
/// `Origin` header (no browser sent them cross-origin) pass it by: it cost
/// every API call a fifth of its CPU.
#[derive(Clone)]
pub struct BrowserCorsLayer {
    cors: Arc<CorsLayer>,
}

impl BrowserCorsLayer {
    pub fn new(origins: Arc<BrowserOrigins>) -> Self {
        let cors = CorsLayer::new()
            .allow_origin(AllowOrigin::predicate(move |origin, _| {
                origin
                    .to_str()
                    .is_ok_and(|o| origins.allows_cross_origin(o))
            }))
            .allow_credentials(true)
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::HeaderName::from_static("x-request-id"),
            ])
            .expose_headers([
                header::RETRY_AFTER,
                header::WWW_AUTHENTICATE,
                header::HeaderName::from_static("x-request-id"),
            ])
            .max_age(PREFLIGHT_MAX_AGE);
        Self {
            cors: Arc::new(cors),
        }
    }
}

impl<S: Clone> Layer<S> for BrowserCorsLayer {
    type Service = BrowserCors<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BrowserCors {
            cors: self.cors.clone(),
            inner,
        }
    }
}

/// [`BrowserCorsLayer`]'s service. The CORS service is made only for the
/// requests that need it: axum clones a route's whole stack for every
/// request, and a second clone of the route cost more than CORS itself.
#[derive(Clone)]
pub struct BrowserCors<S> {
    inner: S,
    cors: Arc<CorsLayer>,
}

type Finish<E> = fn(Result<Response, E>) -> Result<Response, E>;

impl<S> Service<Request> for BrowserCors<S>
where
    S: Service<Request, Response = Response> + Clone,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<S::Future, Map<Oneshot<Cors<S>, Request>, Finish<S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if request.headers().contains_key(header::ORIGIN) {
            let cors = self.cors.layer(self.inner.clone());
            Either::Right(cors.oneshot(request).map(finish_cors as Finish<S::Error>))
        } else {
            Either::Left(self.inner.call(request))
        }
    }
}

/// Finishes the CORS layer's answers: a preflight (the only answer that
/// carries `Access-Control-Allow-Methods`) is 204 No Content (the layer
/// answers 200 with an empty body), and an origin that is not allowed gets
/// no CORS header at all (the layer adds the ones that do not depend on the
/// origin to every answer).
fn finish_cors<E>(response: Result<Response, E>) -> Result<Response, E> {
    let mut response = response?;
    let headers = response.headers_mut();
    if !headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN) {
        for name in [
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            header::ACCESS_CONTROL_ALLOW_METHODS,
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            header::ACCESS_CONTROL_MAX_AGE,
        ] {
            headers.remove(name);
        }
    } else if headers.contains_key(header::ACCESS_CONTROL_ALLOW_METHODS)
        && response.status() == StatusCode::OK
    {
        *response.status_mut() = StatusCode::NO_CONTENT;
    }
    Ok(response)
}

/// The refresh cookie a request carries, if any, checked against CSRF
/// when it is used ([`RefreshCookie::admit`]).
pub struct RefreshCookie {
    token: Option<String>,
    trusted_origin: bool,
}

impl<S> FromRequestParts<S> for RefreshCookie
where
    Arc<BrowserOrigins>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let origins = Arc::<BrowserOrigins>::from_ref(state);
        let headers = &parts.headers;
        let token = cookie_value(headers, REFRESH_COOKIE).map(str::to_owned);
        let json = media_type(headers).as_deref() == Some("application/json");
        // Refused before the body is read: a page on another site can send
        // the cookie with a form or a text/plain body without a preflight.
        if token.is_some() && !json {
            return Err(ApiError::CrossSiteRequest);
        }
        let trusted_origin = headers
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok())
            .is_some_and(|o| origins.trusts(o));
        Ok(Self {
            token,
            trusted_origin,
        })
    }
}

impl RefreshCookie {
    /// The token in the cookie, if the request may use it: refused with 403
    /// `invalid_request` unless the request came from a trusted origin (it
    /// is JSON, or the extractor had refused it). `None` without a cookie.
    pub fn admit(&self) -> Result<Option<&str>, ApiError> {
        match &self.token {
            None => Ok(None),
            Some(_) if !self.trusted_origin => Err(ApiError::CrossSiteRequest),
            Some(token) => Ok(Some(token)),
        }
    }
}

/// The value of cookie `name` in the request's `Cookie` headers (the first
/// if there are several).
pub fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.trim_matches('"'))
        .filter(|value| !value.is_empty())
}

/// `Set-Cookie` for `token`, kept `max_age_seconds` (the session's
/// remaining lifetime).
pub fn set_refresh_cookie(token: &str, max_age_seconds: i64) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{REFRESH_COOKIE}={token}; Max-Age={}; Path=/; Secure; HttpOnly; SameSite=Strict",
        max_age_seconds.max(0)
    ))
    .ok()
}

/// `Set-Cookie` for a browser session's cookie.
pub fn set_session_cookie(value: &str, max_age_seconds: i64) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{BROWSER_SESSION_COOKIE}={value}; Max-Age={}; Path=/; Secure; HttpOnly; SameSite=Lax",
        max_age_seconds.max(0)
    ))
    .ok()
}

/// `Set-Cookie` that removes the browser session's cookie.
pub fn clear_session_cookie() -> HeaderValue {
    HeaderValue::from_static(
        "__Host-latchkey_session=; Max-Age=0; Path=/; Secure; HttpOnly; SameSite=Lax",
    )
}

/// `Set-Cookie` that removes the refresh cookie.
pub fn clear_refresh_cookie() -> HeaderValue {
    HeaderValue::from_static(
        "__Host-latchkey_refresh=; Max-Age=0; Path=/; Secure; HttpOnly; SameSite=Strict",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_compared_as_browsers_send_them() {
        assert_eq!(
            parse_origin("HTTPS://App.Example.com:443/").as_deref(),
            Ok("https://app.example.com")
        );
        assert_eq!(
            parse_origin("http://127.0.0.1:8081").as_deref(),
            Ok("http://127.0.0.1:8081")
        );
        for bad in [
            "app.example.com",
            "ftp://x",
            "https://",
            "https://a@b.example",
            "https://a.example/path",
            "https://a.example?x",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
        let o = BrowserOrigins::new(
            "https://id.example.com/",
            &["https://app.example.com".into()],
        );
        assert!(o.trusts("https://id.example.com"));
        assert!(o.trusts("https://app.example.com"));
        assert!(!o.allows_cross_origin("https://id.example.com"));
        assert!(!o.trusts("https://evil.example"));
        assert!(!o.trusts("null"));
    }

    #[test]
    fn the_cookie_is_found_among_others_and_only_by_its_name() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; x__Host-latchkey_refresh=no"),
        );
        h.append(
            header::COOKIE,
            HeaderValue::from_static("__Host-latchkey_refresh=lkr_abc; b=2"),
        );
        assert_eq!(cookie_value(&h, REFRESH_COOKIE), Some("lkr_abc"));
        let mut empty = HeaderMap::new();
        empty.append(
            header::COOKIE,
            HeaderValue::from_static("__Host-latchkey_refresh="),
        );
        assert_eq!(cookie_value(&empty, REFRESH_COOKIE), None);
    }
}
