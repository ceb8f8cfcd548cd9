//! Request extractors whose failures speak our error format.

use std::net::SocketAddr;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use latchkey_core::service::Origin;
use latchkey_core::AuthError;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body; malformed JSON, wrong types, missing fields, wrong content
/// type and oversized bodies each get a precise 4xx.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(JsonBody(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
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

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::UnsupportedMediaType("expected Content-Type: application/json".into())
        }
        JsonRejection::JsonDataError(e) => ApiError::BadRequest(format!(
            "request body does not match the expected shape: {}",
            e.body_text()
                .rsplit_once(": ")
                .map(|(_, why)| why.to_owned())
                .unwrap_or_default()
        )),
        JsonRejection::JsonSyntaxError(_) => {
            ApiError::BadRequest("request body is not valid JSON".into())
        }
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
        _ => ApiError::BadRequest("request body could not be read".into()),
    }
}

/// The bearer access token of the `Authorization` header (RFC 6750 §2.1),
/// unverified. Tokens in query strings or bodies are not accepted.
pub struct BearerToken(pub String);

impl<S: Send + Sync> FromRequestParts<S> for BearerToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let mut values = parts.headers.get_all(header::AUTHORIZATION).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return Err(AuthError::MissingToken.into());
        };
        let value = value
            .to_str()
            .map_err(|_| AuthError::InvalidToken("non-ASCII authorization header"))?;
        let (scheme, token) = value
            .split_once(' ')
            .ok_or(AuthError::InvalidToken("malformed authorization header"))?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthError::MissingToken.into());
        }
        let token = token.trim();
        if token.is_empty() {
            return Err(AuthError::InvalidToken("empty bearer token").into());
        }
        Ok(BearerToken(token.to_owned()))
    }
}

/// Longest user agent kept on a session; storage per session stays bounded.
const MAX_USER_AGENT_CHARS: usize = 256;

/// Where a request came from: user agent and peer address, for the
/// session list.
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
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_string());
        Ok(RequestOrigin(Origin { user_agent, ip }))
    }
}
