//! The API's OpenAPI 3.1 description and its two readers: the document at
//! `GET /openapi.json` and a Swagger UI page at `GET /docs`.
//!
//! The operations come from the handlers' `#[utoipa::path]` annotations,
//! gathered by the route table (`routes!` in `mod.rs`), so a route and its
//! description are registered together. This module adds what no handler
//! owns: the document's info, the security schemes, and the schemas of the
//! bodies that are built as JSON values or parsed from forms rather than
//! (de)serialised from one wire type.
//!
//! Swagger UI is compiled into the binary (`utoipa-swagger-ui`'s vendored
//! copy) and its page may load nothing from anywhere else (CSP below).

use std::sync::{Arc, LazyLock};

use axum::extract::Path;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use latchkey_core::AuthError;
use serde_json::{json, Value};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_swagger_ui::Config;

use crate::error::{ApiError, ErrorBody};

/// Where the document is served (the page fetches it from there).
const DOCUMENT_PATH: &str = "/openapi.json";

/// The part of the document no handler owns. Paths are added by the route
/// table.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Latchkey",
        description = "Sign-up, sign-in, refresh-token rotation, sessions, OAuth 2.0 token, \
            revocation and introspection endpoints, the revocation feed for resource servers, \
            and key publication. Errors are always `{\"error\", \"error_description\"}`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    modifiers(&SecuritySchemes),
    components(schemas(ErrorBody)),
    tags(
        (name = "accounts", description = "Sign-up, sign-in and the caller's account"),
        (name = "tokens", description = "Refresh, revoke and cancel"),
        (name = "sessions", description = "The caller's sessions"),
        (name = "feed", description = "The revocation feed resource servers follow"),
        (name = "oauth", description = "RFC 6749 token, RFC 7009 revocation, RFC 7662 introspection, RFC 8414 metadata"),
        (name = "meta", description = "Keys, health and this description"),
        (name = "pages", description = "Pages for people, served from the binary"),
        (name = "admin", description = "Administration: accounts, their sessions, reset links and invites (a client's own token with `latchkey:admin`)"),
    )
)]
pub struct ApiDoc;

/// `bearer`: a user's (or client's) access token; `client_basic`: a
/// client's id and secret (`client_secret_basic`). `client_secret_post`
/// has no OpenAPI scheme: it is the `client_id`/`client_secret` fields of
/// the OAuth forms, described there.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.bearer_format = Some("JWT".into());
        bearer.description =
            Some("An access token (RFC 9068 JWT) in `Authorization: Bearer`.".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
        let mut basic = Http::new(HttpAuthScheme::Basic);
        basic.description = Some(
            "A client's id and secret, each form-urlencoded before base64 (client_secret_basic, \
             RFC 6749 §2.3.1). Alternatively `client_id`/`client_secret` in the form \
             (client_secret_post); not both."
                .into(),
        );
        components.add_security_scheme("client_basic", SecurityScheme::Http(basic));
    }
}

// The error answers many operations share, each described once (and named
// in an operation's `responses(...)` by its type).

/// 413, for every operation with a body.
#[derive(utoipa::IntoResponses)]
#[response(status = 413, description = "Body over the route's limit")]
#[allow(dead_code)] // Describes an answer the error mapping builds.
pub struct TooLarge(ErrorBody<'static>);

/// 415, for every operation with a JSON body.
#[derive(utoipa::IntoResponses)]
#[response(status = 415, description = "Not a JSON Content-Type")]
#[allow(dead_code)] // Describes an answer the error mapping builds.
pub struct NotJson(ErrorBody<'static>);

/// 429, for every rate-limited or throttled operation.
#[derive(utoipa::IntoResponses)]
#[response(status = 429, description = "Throttled: `slow_down`, with Retry-After",
    headers(("Retry-After" = u64, description = "Seconds to wait")))]
#[allow(dead_code)] // Describes an answer the error mapping builds.
pub struct Throttled(ErrorBody<'static>);

/// 403, for every operation that may be authenticated by the refresh
/// cookie.
#[derive(utoipa::IntoResponses)]
#[response(
    status = 403,
    description = "`invalid_request`: the refresh cookie was sent from an origin that is neither this service's nor allowed, or not as Content-Type: application/json"
)]
#[allow(dead_code)] // Describes an answer the error mapping builds.
pub struct CrossSite(ErrorBody<'static>);

/// 503, for every operation that hashes a password or reads the store.
#[derive(utoipa::IntoResponses)]
#[response(
    status = 503,
    description = "`temporarily_unavailable`: hashing queue full or database unreachable; Retry-After: 1"
)]
#[allow(dead_code)] // Describes an answer the error mapping builds.
pub struct Unavailable(ErrorBody<'static>);

/// `POST /oauth/token`'s form (RFC 6749 §6 and §4.4).
#[derive(ToSchema)]
#[allow(dead_code)] // Describes a form that `Form` parses field by field.
pub struct TokenForm {
    /// `refresh_token` or `client_credentials`.
    #[schema(example = "refresh_token")]
    grant_type: String,
    /// With `grant_type=refresh_token`.
    refresh_token: Option<String>,
    /// Space-separated; may narrow, never widen.
    scope: Option<String>,
    /// With `client_credentials`: the audience asked for.
    audience: Option<String>,
    /// RFC 8707's name for `audience`.
    resource: Option<String>,
    /// client_secret_post, or a public client naming itself.
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// `POST /oauth/revoke`'s and `POST /oauth/introspect`'s form.
#[derive(ToSchema)]
#[allow(dead_code)] // Describes a form that `Form` parses field by field.
pub struct TokenCheckForm {
    /// A refresh or an access token.
    token: String,
    token_type_hint: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// RFC 7662 §2.2. Inactive tokens (unknown, expired, revoked, another
/// client's) are exactly `{"active": false}`; the other members describe an
/// active access token (`token_type` `Bearer`, its claims) or refresh
/// token (no `token_type`: RFC 7662 §2.2 means an access token's type).
#[derive(ToSchema)]
#[allow(dead_code)] // Built as a JSON value by the handler.
pub struct IntrospectionAnswer {
    active: bool,
    /// `Bearer` for an access token; absent for a refresh token.
    token_type: Option<String>,
    iss: Option<String>,
    sub: Option<String>,
    /// One audience, or several.
    #[schema(value_type = Option<Object>, no_recursion)]
    aud: Option<serde_json::Value>,
    exp: Option<i64>,
    iat: Option<i64>,
    nbf: Option<i64>,
    jti: Option<String>,
    client_id: Option<String>,
    sid: Option<String>,
    scope: Option<String>,
    roles: Option<Vec<String>>,
    /// Refresh tokens: the user's name.
    username: Option<String>,
}

/// RFC 8414 authorization server metadata.
#[derive(ToSchema)]
#[allow(dead_code)] // Built as a JSON value by the handler.
pub struct ServerMetadata {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    userinfo_endpoint: String,
    end_session_endpoint: String,
    revocation_endpoint: String,
    introspection_endpoint: String,
    jwks_uri: String,
    scopes_supported: Vec<String>,
    grant_types_supported: Vec<String>,
    response_types_supported: Vec<String>,
    response_modes_supported: Vec<String>,
    code_challenge_methods_supported: Vec<String>,
    subject_types_supported: Vec<String>,
    id_token_signing_alg_values_supported: Vec<String>,
    claims_supported: Vec<String>,
    prompt_values_supported: Vec<String>,
    authorization_response_iss_parameter_supported: bool,
    token_endpoint_auth_methods_supported: Vec<String>,
    revocation_endpoint_auth_methods_supported: Vec<String>,
    introspection_endpoint_auth_methods_supported: Vec<String>,
    /// The algorithms of the published keys (our own member).
    access_token_signing_alg_values_supported: Vec<String>,
}

/// RFC 7517 key set: public members only.
#[derive(ToSchema)]
#[allow(dead_code)] // Built as a JSON value by the key manager.
pub struct KeySet {
    keys: Vec<PublicKey>,
}

/// One public key: `crv`/`x`(/`y`) for EC and OKP keys, `n`/`e` for RSA.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PublicKey {
    kty: String,
    kid: String,
    alg: String,
    #[schema(rename = "use")]
    key_use: String,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

/// The document as JSON, with what utoipa cannot be told: an optional
/// request body is absent or a `T`, not `T | null` (a JSON `null` is
/// refused like any other wrong shape).
pub fn finish(document: utoipa::openapi::OpenApi) -> Value {
    let mut document = serde_json::to_value(document).unwrap_or_default();
    let operations = document["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut());
    for operation in operations {
        let Some(content) = operation.pointer_mut("/requestBody/content") else {
            continue;
        };
        for media in content
            .as_object_mut()
            .into_iter()
            .flat_map(|c| c.values_mut())
        {
            let Some(one_of) = media.pointer("/schema/oneOf").and_then(Value::as_array) else {
                continue;
            };
            let mut not_null = one_of.iter().filter(|s| **s != json!({"type": "null"}));
            if let (Some(only), None) = (not_null.next(), not_null.next()) {
                media["schema"] = only.clone();
            }
        }
    }
    document
}

/// The document, serialised once: it is the same for every request.
static DOCUMENT: LazyLock<Vec<u8>> = LazyLock::new(|| {
    serde_json::to_vec(&super::openapi_document()).unwrap_or_else(|e| {
        tracing::error!(error = %e, "the OpenAPI document did not serialise");
        Vec::new()
    })
});

/// Swagger UI's settings: our document, and no validator badge (it would
/// send the document to a third party).
static SWAGGER_CONFIG: LazyLock<Arc<Config<'static>>> =
    LazyLock::new(|| Arc::new(Config::from(DOCUMENT_PATH).validator_url("none")));

/// Only this binary's own scripts and styles; Swagger UI sets inline style
/// attributes and draws icons from `data:` URIs.
const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// The OpenAPI 3.1 description of this API.
#[utoipa::path(get, path = "/openapi.json", tag = "meta",
    responses((status = 200, description = "This document", content_type = "application/json")))]
pub async fn document() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        DOCUMENT.as_slice(),
    )
        .into_response()
}

/// The API documentation page (Swagger UI, served from the binary).
#[utoipa::path(get, path = "/docs", tag = "meta",
    responses((status = 200, description = "An HTML page", content_type = "text/html")))]
pub async fn docs_page() -> Response {
    swagger_file("index.html")
}

/// The page's scripts and styles.
#[utoipa::path(get, path = "/docs/{file}", tag = "meta",
    params(("file" = String, Path, description = "A file name", example = "swagger-ui.css")),
    responses(
        (status = 200, description = "A file of the page"),
        (status = 404, description = "No such file", body = ErrorBody),
    ))]
pub async fn docs_file(Path(file): Path<String>) -> Response {
    // `/docs` serves the index itself; this keeps one URL for the page.
    if file == "index.html" {
        return ApiError::NotFound.into_response();
    }
    swagger_file(&file)
}

fn swagger_file(name: &str) -> Response {
    let file = match utoipa_swagger_ui::serve(name, SWAGGER_CONFIG.clone()) {
        Ok(Some(file)) => file,
        Ok(None) => return ApiError::NotFound.into_response(),
        Err(e) => {
            let detail = format!("Swagger UI file {name}: {e}");
            return ApiError::Auth(AuthError::Internal(detail)).into_response();
        }
    };
    let mut bytes = file.bytes.into_owned();
    if name == "index.html" {
        // Served at `/docs` (no trailing slash): its relative links must
        // still resolve under `/docs/`.
        bytes = String::from_utf8_lossy(&bytes)
            .replace("\"./", "\"/docs/")
            .replace("href=\"index.css\"", "href=\"/docs/index.css\"")
            .into_bytes();
    }
    let content_type = HeaderValue::from_str(&file.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    (
        [
            (header::CONTENT_TYPE, content_type),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(DOCS_CSP),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            ),
        ],
        bytes,
    )
        .into_response()
}
