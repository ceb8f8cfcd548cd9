//! axum and tower integration: the [`Claims`] extractor and the
//! [`RequireBearer`] layer, both answering refusals the RFC 6750 way.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use latchkey_wire::authorization::{self, BearerError};
use latchkey_wire::jws::AccessClaims;
use latchkey_wire::TokenError;
use tower::{Layer, Service};

use crate::{Verifier, VerifyError};

/// The verified claims of the request's bearer token. Usable as a handler
/// argument whenever an `Arc<Verifier>` can be had from the router state
/// (`FromRef`); reuses the claims [`RequireBearer`] already verified, if it
/// ran.
#[derive(Debug, Clone)]
pub struct Claims(pub AccessClaims);

impl std::ops::Deref for Claims {
    type Target = AccessClaims;

    fn deref(&self) -> &AccessClaims {
        &self.0
    }
}

impl<S> FromRequestParts<S> for Claims
where
    Arc<Verifier>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = VerifyError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(claims) = parts.extensions.get::<AccessClaims>() {
            return Ok(Claims(claims.clone()));
        }
        let verifier = Arc::<Verifier>::from_ref(state);
        let token = bearer_token(&parts.headers)?;
        let claims = verifier.verify_async(token).await?;
        parts.extensions.insert(claims.clone());
        Ok(Claims(claims))
    }
}

/// The token of the single `Authorization: Bearer` header, by the rule the
/// issuer applies too ([`latchkey_wire::authorization::bearer_token`]);
/// query strings and bodies are never searched.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, VerifyError> {
    authorization::bearer_token(headers).map_err(|e| match e {
        BearerError::Missing => VerifyError::MissingToken,
        BearerError::Malformed => TokenError::Malformed.into(),
    })
}

#[derive(serde::Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    error_description: String,
}

/// 401 `invalid_token` with a `WWW-Authenticate` challenge for a refused or
/// missing token (no error code when none was sent, RFC 6750 §3.1); 503
/// when the verifier cannot decide (stale feed in fail-closed mode), since
/// a new token would not help and clients should not stampede the issuer.
impl IntoResponse for VerifyError {
    fn into_response(self) -> Response {
        let (status, error, challenge) = match &self {
            VerifyError::MissingToken => (StatusCode::UNAUTHORIZED, "invalid_token", None),
            VerifyError::Token(reason) => {
                tracing::debug!(%reason, "bearer token refused");
                (
                    StatusCode::UNAUTHORIZED,
                    "invalid_token",
                    Some(format!(
                        r#" error="invalid_token", error_description="{}""#,
                        reason.public_description()
                    )),
                )
            }
            e => {
                tracing::warn!(error = %e, "bearer check could not be completed");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    None,
                )
            }
        };
        let description = match &self {
            // The same words as the issuer's: the reason itself goes to
            // the log, never to whoever sent the token.
            VerifyError::Token(reason) => reason.public_description().to_owned(),
            VerifyError::MissingToken => self.to_string(),
            // Internal details stay in the log.
            _ => "token verification is temporarily unavailable".to_owned(),
        };
        let mut response = (
            status,
            Json(ErrorBody {
                error,
                error_description: description,
            }),
        )
            .into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if status == StatusCode::UNAUTHORIZED {
            let challenge = format!("Bearer{}", challenge.unwrap_or_default());
            if let Ok(value) = HeaderValue::from_str(&challenge) {
                headers.insert(header::WWW_AUTHENTICATE, value);
            }
        } else {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// A tower layer that refuses requests without a valid bearer token and
/// hands the verified [`AccessClaims`] to the inner service in the request
/// extensions.
#[derive(Clone)]
pub struct RequireBearer {
    verifier: Arc<Verifier>,
}

impl RequireBearer {
    pub fn new(verifier: Arc<Verifier>) -> Self {
        Self { verifier }
    }
}

impl<S> Layer<S> for RequireBearer {
    type Service = RequireBearerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireBearerService {
            inner,
            verifier: Arc::clone(&self.verifier),
        }
    }
}

#[derive(Clone)]
pub struct RequireBearerService<S> {
    inner: S,
    verifier: Arc<Verifier>,
}

impl<S, B> Service<Request<B>> for RequireBearerService<S>
where
    S: Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // The instance polled ready is the one that must serve this call;
        // leave a fresh clone behind for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = Arc::clone(&self.verifier);
        Box::pin(async move {
            let verified = match bearer_token(request.headers()) {
                Ok(token) => verifier.verify_async(token).await,
                Err(e) => Err(e),
            };
            match verified {
                Ok(claims) => {
                    request.extensions_mut().insert(claims);
                    inner.call(request).await
                }
                Err(e) => Ok(e.into_response()),
            }
        })
    }
}
