//! The OAuth 2.0 surface: token (RFC 6749 §4–6: authorization_code,
//! refresh_token and client_credentials grants), revocation (RFC 7009),
//! introspection (RFC 7662) and server metadata (RFC 8414, also served as
//! OpenID Connect Discovery). Form bodies in, JSON out.

use axum::extract::{FromRequest, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use latchkey_core::access_token::Algorithm;
use latchkey_core::client::Client;
use latchkey_core::model::KeyPurpose;
use latchkey_core::service::{GrantRequest, Introspection, OPENID_SCOPES};
use latchkey_core::AuthError;
use latchkey_wire::authorization::BasicCredentials;
use latchkey_wire::body::TokenBody;
use latchkey_wire::form::Form;
use serde_json::{json, Map, Value};

use super::openapi::{Throttled, TooLarge, Unavailable};
use super::tokens::token_body;
use super::{no_store, AuthState};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{media_type, read_body, RequestOrigin};
use crate::routes::openapi::{IntrospectionAnswer, ServerMetadata, TokenCheckForm, TokenForm};

/// An `application/x-www-form-urlencoded` body, parsed by the wire crate's
/// rules.
pub struct FormBody(pub Form);

impl<S: Send + Sync> FromRequest<S> for FormBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if media_type(req.headers()).as_deref() != Some("application/x-www-form-urlencoded") {
            return Err(ApiError::BadRequest(
                "expected Content-Type: application/x-www-form-urlencoded".into(),
            ));
        }
        let bytes = read_body(req, state).await?;
        Ok(FormBody(Form::parse(&bytes)?))
    }
}

/// Client credentials from `Authorization: Basic` (client_secret_basic) or
/// the body (client_secret_post); using both is an error (RFC 6749 §2.3).
struct ClientCredentials {
    id: Option<String>,
    secret: Option<String>,
}

fn client_credentials(headers: &HeaderMap, form: &Form) -> Result<ClientCredentials, ApiError> {
    let invalid = || ApiError::OAuth(AuthError::InvalidClient);
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(ClientCredentials {
            id: form.get("client_id").map(str::to_owned),
            secret: form.get("client_secret").map(str::to_owned),
        });
    };
    if form.get("client_secret").is_some() {
        return Err(ApiError::BadRequest(
            "use one client authentication method, not two".into(),
        ));
    }
    let basic = BasicCredentials::parse(value).ok_or_else(invalid)?;
    if form
        .get("client_id")
        .is_some_and(|body_id| body_id != basic.id)
    {
        return Err(invalid());
    }
    Ok(ClientCredentials {
        id: Some(basic.id),
        secret: basic.secret,
    })
}

async fn authenticate_client(
    auth: &AuthState,
    headers: &HeaderMap,
    form: &Form,
) -> Result<Client, ApiError> {
    let creds = client_credentials(headers, form)?;
    auth.client(creds.id.as_deref(), creds.secret.as_deref())
        .await
        .map_err(ApiError::OAuth)
}

/// RFC 6749 token endpoint: `authorization_code` (with PKCE),
/// `refresh_token` and `client_credentials` grants.
#[utoipa::path(post, path = "/oauth/token", tag = "oauth",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    security((), ("client_basic" = [])),
    responses(
        (status = 200, description = "The token response", body = TokenBody),
        (status = 400, description = "RFC 6749 §5.2: `invalid_request`, `invalid_grant`, `invalid_scope`, `invalid_target`, `unauthorized_client`, `unsupported_grant_type`", body = ErrorBody),
        (status = 401, description = "`invalid_client`", body = ErrorBody, headers(("WWW-Authenticate" = String))),
        TooLarge,
        Throttled,
        Unavailable,
    ))]
pub async fn token(
    State(auth): State<AuthState>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    FormBody(form): FormBody,
) -> Result<Response, ApiError> {
    let grant_type = form.require("grant_type")?;
    let creds = client_credentials(&headers, &form)?;
    // A service acting for itself must say who it is: without any client
    // authentication there is no client to issue to (not the default one).
    if grant_type == "client_credentials" && creds.id.is_none() {
        return Err(ApiError::OAuth(AuthError::InvalidClient));
    }
    let client = auth
        .client(creds.id.as_deref(), creds.secret.as_deref())
        .await
        .map_err(ApiError::OAuth)?;
    let scope = form.get("scope");
    let tokens = match grant_type {
        "authorization_code" => auth
            .exchange_code(
                form.require("code")?,
                &client,
                form.require("redirect_uri")?,
                form.require("code_verifier")?,
                &origin,
            )
            .await
            .map_err(ApiError::OAuth)?,
        "refresh_token" => auth
            .refresh(form.require("refresh_token")?, &client, scope, &origin)
            .await
            .map_err(ApiError::OAuth)?,
        "client_credentials" => {
            let request = GrantRequest {
                scope,
                // RFC 8707 names it `resource`; many clients say `audience`.
                audience: form.get("audience").or(form.get("resource")),
            };
            auth.client_credentials(&client, &request)
                .map_err(ApiError::OAuth)?
        }
        _ => return Err(ApiError::UnsupportedGrantType),
    };
    Ok((no_store(), Json(token_body(tokens))).into_response())
}

/// RFC 7009 revocation of a refresh or access token.
#[utoipa::path(post, path = "/oauth/revoke", tag = "oauth", operation_id = "oauth_revoke",
    request_body(content = TokenCheckForm, content_type = "application/x-www-form-urlencoded"),
    security((), ("client_basic" = [])),
    responses(
        (status = 200, description = "Revoked, or unknown (nothing to do); empty body"),
        (status = 400, description = "`invalid_request`, or `unauthorized_client`: the token was issued to another client (left alone, RFC 7009 §2.1)", body = ErrorBody),
        (status = 401, description = "`invalid_client`", body = ErrorBody, headers(("WWW-Authenticate" = String))),
        TooLarge,
        Throttled,
        Unavailable,
    ))]
pub async fn revoke(
    State(auth): State<AuthState>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    FormBody(form): FormBody,
) -> Result<Response, ApiError> {
    let token = form.require("token")?;
    let client = authenticate_client(&auth, &headers, &form).await?;
    auth.revoke_token(token, &client, &origin)
        .await
        .map_err(ApiError::OAuth)?;
    Ok((StatusCode::OK, no_store()).into_response())
}

#[utoipa::path(post, path = "/oauth/introspect", tag = "oauth",
    request_body(content = TokenCheckForm, content_type = "application/x-www-form-urlencoded"),
    security(("client_basic" = [])),
    responses(
        (status = 200, description = "RFC 7662 answer", body = IntrospectionAnswer),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 401, description = "`invalid_client`: a confidential client is required", body = ErrorBody, headers(("WWW-Authenticate" = String))),
        TooLarge,
        Throttled,
        Unavailable,
    ))]
/// Answers a confidential client about its own tokens (any client's if it
/// is registered with `introspect_any`); everything else gets exactly
/// `{"active":false}`, with the same status and headers.
pub async fn introspect(
    State(auth): State<AuthState>,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    FormBody(form): FormBody,
) -> Result<Response, ApiError> {
    let token = form.require("token")?;
    let client = authenticate_client(&auth, &headers, &form).await?;
    let issuer = &auth.policy().issuer;
    let answer = auth
        .introspect(token, &client, &origin)
        .await
        .map_err(ApiError::OAuth)?;
    let body = match answer {
        Introspection::Inactive => json!({ "active": false }),
        Introspection::Access(claims) => {
            let mut v = serde_json::to_value(&claims).unwrap_or_default();
            if let Some(obj) = v.as_object_mut() {
                obj.insert("active".into(), Value::Bool(true));
                obj.insert("token_type".into(), "Bearer".into());
            }
            v
        }
        Introspection::Refresh {
            session,
            user,
            expires_at,
        } => {
            let mut obj = Map::new();
            // RFC 7662 §2.2: `token_type` is an access token's type
            // (RFC 6749 §7.1), which a refresh token has none of.
            obj.insert("active".into(), Value::Bool(true));
            obj.insert("client_id".into(), session.client_id.into());
            obj.insert("sub".into(), user.id.to_string().into());
            obj.insert("username".into(), user.username.into());
            obj.insert("iss".into(), issuer.clone().into());
            obj.insert("iat".into(), session.created_at.into());
            obj.insert("exp".into(), expires_at.into());
            obj.insert("sid".into(), session.id.to_string().into());
            if !session.scope.is_empty() {
                obj.insert("scope".into(), session.scope.into());
            }
            Value::Object(obj)
        }
    };
    Ok((no_store(), Json(body)).into_response())
}

#[utoipa::path(get, path = "/.well-known/oauth-authorization-server", tag = "oauth",
    responses((status = 200, description = "RFC 8414 metadata", body = ServerMetadata)))]
/// RFC 8414 metadata, which is also the OpenID Provider's configuration
/// (OpenID Connect Discovery §3).
pub async fn metadata(State(auth): State<AuthState>) -> impl IntoResponse {
    let issuer = auth.policy().issuer.clone();
    let base = issuer.trim_end_matches('/');
    // An Ed25519 key's tokens verify under either name of the scheme
    // (RFC 8037's EdDSA, RFC 9864's Ed25519), so both are supported.
    let access_algorithm = auth.keys().algorithm();
    let mut algs: Vec<&str> = match access_algorithm.is_ed25519() {
        true => vec![Algorithm::EdDsa.as_str(), Algorithm::Ed25519.as_str()],
        false => vec![access_algorithm.as_str()],
    };
    // RS256 (what OpenID requires every provider to offer, the default)
    // and, for clients registered for it, the access tokens' algorithm.
    let mut id_token_algs = vec![Algorithm::Rs256.as_str()];
    id_token_algs.extend(algs.iter().filter(|a| **a != Algorithm::Rs256.as_str()));
    // Keys of the configured algorithm's past (a change takes effect
    // through rotation) still verify; the ID-token keys sign no access token.
    for key in auth.keys().ring().keys.iter() {
        if key.purpose == KeyPurpose::Access && !algs.contains(&key.alg.as_str()) {
            algs.push(key.alg.as_str());
        }
    }
    algs.sort_unstable();
    let client_auth = ["client_secret_basic", "client_secret_post", "none"];
    (
        // Cacheable, and its CORS headers depend on the asker's origin.
        [
            (header::CACHE_CONTROL, "public, max-age=300"),
            (header::VARY, "origin"),
        ],
        Json(json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{base}/oauth/authorize"),
            "token_endpoint": format!("{base}/oauth/token"),
            "userinfo_endpoint": format!("{base}/userinfo"),
            "end_session_endpoint": format!("{base}/oauth/logout"),
            "revocation_endpoint": format!("{base}/oauth/revoke"),
            "introspection_endpoint": format!("{base}/oauth/introspect"),
            "jwks_uri": format!("{base}/.well-known/jwks.json"),
            "scopes_supported": OPENID_SCOPES,
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "code_challenge_methods_supported": ["S256"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": id_token_algs,
            "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "sid", "preferred_username", "email", "email_verified"],
            "prompt_values_supported": ["none", "login", "consent"],
            "authorization_response_iss_parameter_supported": true,
            "token_endpoint_auth_methods_supported": client_auth,
            "revocation_endpoint_auth_methods_supported": client_auth,
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "access_token_signing_alg_values_supported": algs,
        })),
    )
}

/// The same document, where OpenID Connect Discovery looks for it.
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "oauth",
    responses((status = 200, description = "OpenID Provider configuration (the RFC 8414 metadata)", body = ServerMetadata)))]
pub async fn openid_configuration(auth: State<AuthState>) -> impl IntoResponse {
    metadata(auth).await
}
