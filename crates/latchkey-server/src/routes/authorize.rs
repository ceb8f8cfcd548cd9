//! The authorization endpoint (RFC 6749 §4.1, OpenID Connect Core
//! §3.1.2) and the forms of its hosted pages.
//!
//! A request is checked in two steps. Until its client and redirect URI
//! are known to belong together, nothing is sent anywhere: the person sees
//! a page saying what is wrong (an attacker must not turn us into an open
//! redirector). After that, every problem goes back to the client as
//! RFC 6749 §4.1.2.1 says, with `state` and `iss` (RFC 9207).
//!
//! The sign-in and consent forms post the request back as hidden fields;
//! each post is checked again from scratch, and refused unless it came
//! from our own pages.

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use latchkey_core::client::Client;
use latchkey_core::model::User;
use latchkey_core::service::{is_s256_challenge, AuthorizationGrant, CodeRequest};
use latchkey_core::AuthError;
use latchkey_wire::form::Form;
use secrecy::ExposeSecret as _;

use super::hosted_pages::{self as pages, PageForm};
use super::{App, AuthState};
use crate::browser::{self, BROWSER_SESSION_COOKIE};
use crate::extract::RequestOrigin;

/// Longest query string the endpoint reads; real requests are far shorter.
const MAX_QUERY_BYTES: usize = 8 * 1024;
/// Longest `state` and `nonce` kept (they come back in the redirect and
/// the ID token).
const MAX_ECHOED_BYTES: usize = 512;

/// Where answers go once the redirect URI is trusted.
struct Answer {
    redirect_uri: String,
    state: Option<String>,
    issuer: String,
}

/// A 303 to `uri` with `params` added to its query (a registered URI may
/// have one of its own).
pub(super) fn redirect_with(uri: &str, params: &[(&str, &str)]) -> Response {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in params {
        query.append_pair(name, value);
    }
    let query = query.finish();
    let location = match (query.is_empty(), uri.contains('?')) {
        (true, _) => uri.to_owned(),
        (false, true) => format!("{uri}&{query}"),
        (false, false) => format!("{uri}?{query}"),
    };
    match HeaderValue::from_str(&location) {
        Ok(location) => (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response(),
        Err(_) => pages::problem(StatusCode::BAD_REQUEST, "The redirect URI is not usable."),
    }
}

impl Answer {
    fn send(&self, params: &[(&str, &str)]) -> Response {
        let mut all = params.to_vec();
        if let Some(state) = &self.state {
            all.push(("state", state));
        }
        all.push(("iss", &self.issuer));
        redirect_with(&self.redirect_uri, &all)
    }

    fn error(&self, code: &str, description: &str) -> Response {
        self.send(&[("error", code), ("error_description", description)])
    }
}

/// A request checked against its client: what a code for it carries and
/// how the person must be asked.
struct Checked {
    client: Client,
    answer: Answer,
    grant: AuthorizationGrant,
    code_challenge: String,
    nonce: Option<String>,
    prompt_none: bool,
    prompt_login: bool,
    prompt_consent: bool,
    max_age: Option<i64>,
}

/// Step one: the client and a redirect URI registered for it (exactly).
async fn trusted_answer(auth: &AuthState, request: &Form) -> Result<(Client, Answer), Response> {
    let refuse = |text: &str| pages::problem(StatusCode::BAD_REQUEST, text);
    let Some(client_id) = request.get("client_id") else {
        return Err(refuse(
            "The request names no client (client_id is missing).",
        ));
    };
    let client = match auth.known_client(client_id).await {
        Ok(c) => c,
        Err(AuthError::InvalidClient) => {
            return Err(refuse("The request names an unknown client."))
        }
        Err(e) => return Err(unavailable(&e)),
    };
    let Some(redirect_uri) = request.get("redirect_uri") else {
        return Err(refuse("The request has no redirect_uri."));
    };
    if !client.redirect_uris.iter().any(|r| r == redirect_uri) {
        return Err(refuse(
            "The redirect_uri is not registered for this client.",
        ));
    }
    let state = request.get("state").map(str::to_owned);
    let answer = Answer {
        redirect_uri: redirect_uri.to_owned(),
        state,
        issuer: auth.policy().issuer.clone(),
    };
    Ok((client, answer))
}

/// Step two: everything else, answered to the client when wrong.
async fn check(auth: &AuthState, request: &Form) -> Result<Checked, Response> {
    let (client, answer) = trusted_answer(auth, request).await?;
    let invalid = |answer: &Answer, text: &str| answer.error("invalid_request", text);
    if answer
        .state
        .as_ref()
        .is_some_and(|s| s.len() > MAX_ECHOED_BYTES)
    {
        return Err(invalid(&answer, "state is longer than 512 bytes"));
    }
    match request.get("response_type") {
        Some("code") => {}
        Some(_) => {
            return Err(answer.error(
                "unsupported_response_type",
                "only response_type=code is supported",
            ))
        }
        None => return Err(invalid(&answer, "response_type is required")),
    }
    if request.get("response_mode").is_some_and(|m| m != "query") {
        return Err(invalid(&answer, "only response_mode=query is supported"));
    }
    if request.get("request").is_some() {
        return Err(answer.error("request_not_supported", "request objects are not supported"));
    }
    if request.get("request_uri").is_some() {
        return Err(answer.error("request_uri_not_supported", "request_uri is not supported"));
    }
    // RFC 9700 §2.1.1: PKCE with S256, always; `plain` would hand the
    // verifier to whoever sees the request.
    let Some(code_challenge) = request.get("code_challenge") else {
        return Err(invalid(&answer, "code_challenge is required (PKCE)"));
    };
    if request.get("code_challenge_method") != Some("S256") {
        return Err(invalid(&answer, "code_challenge_method must be S256"));
    }
    if !is_s256_challenge(code_challenge) {
        return Err(invalid(
            &answer,
            "code_challenge must be 43 base64url characters (S256)",
        ));
    }
    let nonce = request.get("nonce");
    if nonce.is_some_and(|n| n.len() > MAX_ECHOED_BYTES) {
        return Err(invalid(&answer, "nonce is longer than 512 bytes"));
    }
    let prompts: Vec<&str> = request.get("prompt").unwrap_or("").split(' ').collect();
    let prompt_none = prompts.contains(&"none");
    if prompt_none && prompts.len() > 1 {
        return Err(invalid(
            &answer,
            "prompt=none cannot be combined with other values",
        ));
    }
    let max_age = match request.get("max_age").map(str::parse::<i64>) {
        None => None,
        Some(Ok(age)) if age >= 0 => Some(age),
        Some(_) => return Err(invalid(&answer, "max_age must be a non-negative integer")),
    };
    let grant = match auth.authorization_grant(&client, request.get("scope")) {
        Ok(g) => g,
        Err(AuthError::InvalidScope) => {
            return Err(answer.error(
                "invalid_scope",
                "a requested scope is unknown or not allowed for this client",
            ))
        }
        Err(AuthError::InvalidTarget) => {
            return Err(answer.error("invalid_scope", "the client's audience is not allowed"))
        }
        Err(e) => {
            tracing::warn!(error = %e, "checking an authorization request's scope failed");
            return Err(answer.error("server_error", "try again shortly"));
        }
    };
    Ok(Checked {
        code_challenge: code_challenge.to_owned(),
        nonce: nonce.map(str::to_owned),
        prompt_none,
        prompt_login: prompts.contains(&"login"),
        prompt_consent: prompts.contains(&"consent"),
        max_age,
        client,
        answer,
        grant,
    })
}

fn unavailable(e: &AuthError) -> Response {
    tracing::warn!(error = %e, "authorization request failed");
    pages::problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "The service is temporarily unavailable; try again shortly.",
    )
}

/// The browser session the request's cookie names, if live.
async fn signed_in(auth: &AuthState, headers: &HeaderMap) -> Result<Option<(User, i64)>, Response> {
    let Some(cookie) = browser::cookie_value(headers, BROWSER_SESSION_COOKIE) else {
        return Ok(None);
    };
    match auth.browser_session(cookie).await {
        Ok(found) => Ok(found.map(|(session, user)| (user, session.created_at))),
        Err(e) => Err(unavailable(&e)),
    }
}

/// `GET /oauth/authorize`.
#[utoipa::path(get, path = "/oauth/authorize", tag = "oauth",
    params(
        ("response_type" = String, Query, description = "`code`"),
        ("client_id" = String, Query),
        ("redirect_uri" = String, Query, description = "Exactly as registered for the client"),
        ("scope" = Option<String>, Query, description = "Space-separated; `openid` for an ID token"),
        ("state" = Option<String>, Query),
        ("code_challenge" = String, Query, description = "PKCE, base64url SHA-256 of the verifier"),
        ("code_challenge_method" = String, Query, description = "`S256`"),
        ("nonce" = Option<String>, Query),
        ("prompt" = Option<String>, Query, description = "`none`, `login`, `consent`"),
        ("max_age" = Option<i64>, Query),
    ),
    responses(
        (status = 200, description = "The sign-in or consent page", content_type = "text/html"),
        (status = 303, description = "To the client's redirect URI with `code` (or `error`), `state` and `iss`"),
        (status = 400, description = "A page: the request names no usable client and redirect URI", content_type = "text/html"),
    ))]
pub async fn authorize_get(
    State(auth): State<AuthState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query.unwrap_or_default();
    if query.len() > MAX_QUERY_BYTES {
        return pages::problem(StatusCode::BAD_REQUEST, "The request is too long.");
    }
    match Form::parse(query.as_bytes()) {
        Ok(request) => authorize(&auth, &headers, &request).await,
        Err(e) => pages::problem(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

/// `POST /oauth/authorize` (OpenID Connect Core §3.1.2.1: the same
/// request as a form).
#[utoipa::path(post, path = "/oauth/authorize", tag = "oauth",
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "The parameters of `GET /oauth/authorize`"),
    responses(
        (status = 200, description = "The sign-in or consent page", content_type = "text/html"),
        (status = 303, description = "To the client's redirect URI"),
        (status = 400, description = "A page: no usable client and redirect URI", content_type = "text/html"),
    ))]
pub async fn authorize_post(
    State(auth): State<AuthState>,
    headers: HeaderMap,
    PageForm(request): PageForm,
) -> Response {
    authorize(&auth, &headers, &request).await
}

async fn authorize(auth: &AuthState, headers: &HeaderMap, request: &Form) -> Response {
    let checked = match check(auth, request).await {
        Ok(c) => c,
        Err(page) => return page,
    };
    let session = match signed_in(auth, headers).await {
        Ok(s) => s,
        Err(page) => return page,
    };
    let passes = session.filter(|(_, auth_time)| {
        !checked.prompt_login && auth.authenticated_within(*auth_time, checked.max_age)
    });
    match passes {
        Some((user, auth_time)) => approve(auth, request, &checked, &user, auth_time).await,
        None if checked.prompt_none => checked
            .answer
            .error("login_required", "the user is not signed in"),
        None => pages::sign_in(request, &checked.client.client_id, None, StatusCode::OK),
    }
}

/// The person is signed in: ask for consent if the client needs it, else
/// send the code.
async fn approve(
    auth: &AuthState,
    request: &Form,
    checked: &Checked,
    user: &User,
    auth_time: i64,
) -> Response {
    let needs = match auth
        .needs_consent(&checked.client, user.id, &checked.grant.scope)
        .await
    {
        Ok(n) => n || (checked.client.third_party && checked.prompt_consent),
        Err(e) => return unavailable(&e),
    };
    if needs {
        if checked.prompt_none {
            return checked.answer.error(
                "consent_required",
                "the user has not consented to this client",
            );
        }
        let scopes: Vec<&str> = checked
            .grant
            .scope
            .split(' ')
            .filter(|s| !s.is_empty())
            .collect();
        return pages::consent(request, &checked.client.client_id, &user.username, &scopes);
    }
    send_code(auth, checked, user, auth_time).await
}

async fn send_code(auth: &AuthState, checked: &Checked, user: &User, auth_time: i64) -> Response {
    let request = CodeRequest {
        client: &checked.client,
        redirect_uri: &checked.answer.redirect_uri,
        grant: &checked.grant,
        code_challenge: &checked.code_challenge,
        nonce: checked.nonce.as_deref(),
    };
    match auth.issue_code(&request, user, auth_time).await {
        Ok(code) => checked.answer.send(&[("code", code.expose_secret())]),
        Err(e) => {
            tracing::warn!(error = %e, "issuing an authorization code failed");
            checked
                .answer
                .error("temporarily_unavailable", "try again shortly")
        }
    }
}

/// The request a hosted page's form carried, checked again from scratch,
/// if the form came from one of our own pages.
async fn posted_request(app: &App, headers: &HeaderMap, form: &Form) -> Result<Checked, Response> {
    if !app.browser_origins.is_same_origin_post(headers) {
        return Err(pages::problem(
            StatusCode::FORBIDDEN,
            "This form must be sent from this service's own page.",
        ));
    }
    check(&app.auth, form).await
}

/// `POST /oauth/authorize/sign-in`: the hosted sign-in form.
#[utoipa::path(post, path = "/oauth/authorize/sign-in", tag = "oauth",
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "`username`, `password` and the authorization request's parameters"),
    responses(
        (status = 303, description = "Signed in: to the client's redirect URI with `code` (a third-party client not consented to gets the consent page, 200); or `error`, as from `GET /oauth/authorize`"),
        (status = 200, description = "The consent page", content_type = "text/html"),
        (status = 400, description = "A page: not a form, a parameter repeated, or no usable client and redirect URI; or the sign-in page again: no username or password, or a password the rules refuse", content_type = "text/html"),
        (status = 401, description = "The sign-in page again: wrong username or password", content_type = "text/html"),
        (status = 403, description = "Not posted from our own page", content_type = "text/html"),
        (status = 413, description = "A page: the form is over 16 KiB", content_type = "text/html"),
        (status = 429, description = "Too many failed sign-ins", content_type = "text/html"),
    ))]
pub async fn sign_in_form(
    State(app): State<App>,
    headers: HeaderMap,
    RequestOrigin(origin): RequestOrigin,
    PageForm(request): PageForm,
) -> Response {
    let auth = &app.auth;
    let checked = match posted_request(&app, &headers, &request).await {
        Ok(c) => c,
        Err(page) => return page,
    };
    let (Some(username), Some(password)) = (request.get("username"), request.get("password"))
    else {
        let page = pages::sign_in(
            &request,
            &checked.client.client_id,
            Some("Enter your username and password."),
            StatusCode::BAD_REQUEST,
        );
        return page;
    };
    let signed = match auth.browser_sign_in(username, password, origin).await {
        Ok(s) => s,
        Err(e) => return sign_in_refused(&request, &checked.client.client_id, e),
    };
    // Signing in again (`prompt=login`, `max_age`) replaces the browser's
    // session; the old one must not live on unseen.
    if let Some(old) = browser::cookie_value(&headers, BROWSER_SESSION_COOKIE) {
        if let Err(e) = auth.end_browser_session(old).await {
            tracing::warn!(error = %e, "ending the replaced browser session failed");
        }
    }
    let mut response = approve(
        auth,
        &request,
        &checked,
        &signed.user,
        signed.session.created_at,
    )
    .await;
    if let Some(cookie) = browser::set_session_cookie(&signed.cookie, signed.max_age_seconds) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// The sign-in page again, saying why, in the words of `/v1/sign-in`.
fn sign_in_refused(request: &Form, client_id: &str, e: AuthError) -> Response {
    let (status, text) = match &e {
        AuthError::InvalidCredentials => (StatusCode::UNAUTHORIZED, e.to_string()),
        AuthError::Throttled { .. } => (StatusCode::TOO_MANY_REQUESTS, e.to_string()),
        AuthError::InvalidRequest(_) => (StatusCode::BAD_REQUEST, e.to_string()),
        _ => return unavailable(&e),
    };
    let mut page = pages::sign_in(request, client_id, Some(&text), status);
    if let AuthError::Throttled {
        retry_after_seconds,
    } = e
    {
        if let Ok(v) = HeaderValue::from_str(&retry_after_seconds.to_string()) {
            page.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    page
}

/// `POST /oauth/authorize/consent`: the consent page's answer.
#[utoipa::path(post, path = "/oauth/authorize/consent", tag = "oauth",
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "`decision` (`allow` or `deny`) and the authorization request's parameters"),
    responses(
        (status = 303, description = "To the client's redirect URI: `code`, or `error=access_denied`"),
        (status = 200, description = "The sign-in page: no browser session", content_type = "text/html"),
        (status = 400, description = "A page: not a form, a parameter repeated, or no usable client and redirect URI", content_type = "text/html"),
        (status = 403, description = "Not posted from our own page", content_type = "text/html"),
    ))]
pub async fn consent_form(
    State(app): State<App>,
    headers: HeaderMap,
    RequestOrigin(origin): RequestOrigin,
    PageForm(request): PageForm,
) -> Response {
    let auth = &app.auth;
    let checked = match posted_request(&app, &headers, &request).await {
        Ok(c) => c,
        Err(page) => return page,
    };
    let (user, auth_time) = match signed_in(auth, &headers).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return pages::sign_in(&request, &checked.client.client_id, None, StatusCode::OK)
        }
        Err(page) => return page,
    };
    if request.get("decision") != Some("allow") {
        return checked
            .answer
            .error("access_denied", "the user did not allow the request");
    }
    if let Err(e) = auth
        .grant_consent(&checked.client, user.id, &checked.grant.scope, &origin)
        .await
    {
        return unavailable(&e);
    }
    send_code(auth, &checked, &user, auth_time).await
}
