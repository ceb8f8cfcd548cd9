//! Request extractors whose failures speak our error format.

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use latchkey_core::access_token::AccessClaims;
use latchkey_core::service::Origin;
use latchkey_wire::authorization::bearer_token;
use latchkey_wire::body::{nesting_exceeds, MAX_JSON_DEPTH};
use serde::de::DeserializeOwned;

use crate::client_address::{ClientAddress, ClientNetwork};
use crate::error::ApiError;
use crate::routes::AuthState;

/// A JSON body; malformed JSON, wrong types, missing fields, wrong content
/// type and oversized bodies each get a precise 4xx.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType(
                "expected Content-Type: application/json".into(),
            ));
        }
        let bytes = read_body(req, state).await?;
        // serde_json limits the depth of what it deserialises, but skips
        // unknown fields without that limit: check the whole body first.
        if nesting_exceeds(&bytes, MAX_JSON_DEPTH) {
            return Err(ApiError::BadRequest(format!(
                "request body nests deeper than {MAX_JSON_DEPTH} levels"
            )));
        }
        axum::Json::<T>::from_bytes(&bytes)
            .map(|axum::Json(v)| JsonBody(v))
            .map_err(json_rejection)
    }
}

fn is_json(headers: &axum::http::HeaderMap) -> bool {
    media_type(headers).is_some_and(|m| {
        m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
    })
}

/// The request's media type, lower-cased, without parameters.
pub fn media_type(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
}

/// The whole body, within the route's body limit (413 above it).
pub async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::BadRequest("request body could not be read".into())
        }
    })
}

/// Like [`JsonBody`], but an empty body means `T::default()`: for requests
/// whose every field is optional.
pub struct OptionalJsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let has_body = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_none_or(|len| len != "0")
            && req.headers().contains_key(header::CONTENT_TYPE);
        if has_body {
            JsonBody::from_request(req, state)
                .await
                .map(|JsonBody(v)| OptionalJsonBody(v))
        } else {
            Ok(OptionalJsonBody(T::default()))
        }
    }
}

/// Longest part of a deserialisation error passed on to the client.
const MAX_REASON_CHARS: usize = 200;

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonDataError(e) => {
            // serde quotes the offending value; an attacker's 64 KiB string
            // need not come back whole.
            let why: String = e
                .body_text()
                .rsplit_once(": ")
                .map(|(_, why)| why.chars().take(MAX_REASON_CHARS).collect())
                .unwrap_or_default();
            ApiError::BadRequest(format!(
                "request body does not match the expected shape: {why}"
            ))
        }
        JsonRejection::JsonSyntaxError(_) => {
            ApiError::BadRequest("request body is not valid JSON".into())
        }
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
        _ => ApiError::BadRequest("request body could not be read".into()),
    }
}

/// The caller of a `/v1` endpoint: the claims of the request's bearer token
/// (RFC 6750 §2.1; never from a query string or body), verified for
/// signature, time, issuer, our audience and revocation before the handler
/// runs. Endpoints that take a body use [`CallerWithBody`].
pub struct Caller(pub AccessClaims);

impl<S> FromRequestParts<S> for Caller
where
    AuthState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let token = bearer_token(&parts.headers)?;
        Ok(Caller(AuthState::from_ref(state).authenticate(token)?))
    }
}

/// The caller of a `/v1` endpoint that takes a body, and the body `B`. The
/// token is checked first, so a forged one costs no parsing; but when it is
/// refused the body is still read to its end (within the route's limit)
/// before the 401 goes out: answering while the client is still sending
/// closes the connection under it, and the client sees a reset, not a 401.
pub struct CallerWithBody<B>(pub AccessClaims, pub B);

impl<S, B> FromRequest<S> for CallerWithBody<B>
where
    AuthState: FromRef<S>,
    S: Send + Sync,
    B: FromRequest<S, Rejection = ApiError>,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (Caller(claims), body) = caller_then_body(req, state).await?;
        Ok(Self(claims, body))
    }
}

/// The caller `C` from the request's head, then the body `B`; a refused
/// caller's body is still read to its end (see [`CallerWithBody`]).
async fn caller_then_body<S, C, B>(req: Request, state: &S) -> Result<(C, B), ApiError>
where
    S: Send + Sync,
    C: FromRequestParts<S, Rejection = ApiError>,
    B: FromRequest<S, Rejection = ApiError>,
{
    let (mut parts, body) = req.into_parts();
    let caller = C::from_request_parts(&mut parts, state).await;
    let req = Request::from_parts(parts, body);
    match caller {
        Ok(caller) => Ok((caller, B::from_request(req, state).await?)),
        Err(refused) => {
            // Read, never parsed; the answer is the refusal either way.
            let _ = read_body(req, state).await;
            Err(refused)
        }
    }
}

/// The caller of an `/admin/v1` endpoint: a verified bearer token (as
/// [`Caller`]) that is a client's own with the `latchkey:admin` scope
/// (else 403 `insufficient_scope`); `.0` is the actor recorded in the
/// audit log, `client:<client_id>`.
pub struct AdminCaller(pub String);

impl<S> FromRequestParts<S> for AdminCaller
where
    AuthState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Caller(claims) = Caller::from_request_parts(parts, state).await?;
        Ok(AdminCaller(
            AuthState::from_ref(state).administrator(&claims)?,
        ))
    }
}

/// [`AdminCaller`] and a body `B`, checked in that order, the body read to
/// its end even when the caller is refused (see [`CallerWithBody`]).
pub struct AdminCallerWithBody<B>(pub String, pub B);

impl<S, B> FromRequest<S> for AdminCallerWithBody<B>
where
    AuthState: FromRef<S>,
    S: Send + Sync,
    B: FromRequest<S, Rejection = ApiError>,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (AdminCaller(actor), body) = caller_then_body(req, state).await?;
        Ok(Self(actor, body))
    }
}

/// Longest user agent kept on a session; storage per session stays bounded.
const MAX_USER_AGENT_CHARS: usize = 256;

/// Where a request came from: user agent, client address (for the session
/// list and the audit log) and the network it is counted under (for the
/// sign-in address throttle).
pub struct RequestOrigin(pub Origin);

impl<S: Send + Sync> FromRequestParts<S> for RequestOrigin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(MAX_USER_AGENT_CHARS).collect());
        let ip = parts
            .extensions
            .get::<ClientAddress>()
            .map(|ClientAddress(ip)| ip.to_string());
        let network = parts
            .extensions
            .get::<ClientNetwork>()
            .map(ClientNetwork::to_string);
        let request_id = crate::request_id::of(&parts.headers).map(str::to_owned);
        Ok(RequestOrigin(Origin {
            user_agent,
            ip,
            network,
            request_id,
        }))
    }
}
