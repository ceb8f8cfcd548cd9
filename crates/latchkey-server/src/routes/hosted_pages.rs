//! The pages of the authorization flow, rendered here with no script at
//! all: sign-in, consent, sign-out confirmation and the error page shown
//! when an authorization request cannot be answered to its client. They
//! share the account pages' style sheet (`/account/account.css`).
//!
//! Everything a request supplied is HTML-escaped; the authorization
//! request travels between the pages as hidden fields (only the
//! parameters the endpoint knows, each checked again when posted).

use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use latchkey_core::mail::escape_html as escape;
use latchkey_wire::form::Form;

use super::oauth::FormBody;
use crate::error::ApiError;

/// A form posted to one of these pages' routes. What cannot be read as a
/// form is answered with a page too (a person's browser made the request),
/// with the status the JSON API would give.
pub struct PageForm(pub Form);

impl<S: Send + Sync> FromRequest<S> for PageForm {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match FormBody::from_request(req, state).await {
            Ok(FormBody(form)) => Ok(PageForm(form)),
            Err(ApiError::PayloadTooLarge) => Err(problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                "The form is too large.",
            )),
            Err(e) => Err(problem(StatusCode::BAD_REQUEST, &e.to_string())),
        }
    }
}

/// No script, styles from here only, never framed (a framed sign-in or
/// consent page invites clickjacking). No `form-action`: the consent form
/// is answered with a redirect to the client, which Chromium checks
/// against it.
const PAGE_CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
    base-uri 'none'; frame-ancestors 'none'";

/// The authorization request's parameters the pages carry along.
pub const REQUEST_PARAMS: [&str; 11] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "nonce",
    "max_age",
    "response_mode",
    "login_hint",
];

fn hidden_fields(request: &Form) -> String {
    REQUEST_PARAMS
        .iter()
        .filter_map(|name| {
            request.get(name).map(|value| {
                format!(
                    "<input type=\"hidden\" name=\"{name}\" value=\"{}\">\n",
                    escape(value)
                )
            })
        })
        .collect()
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"referrer\" content=\"same-origin\">\n<title>{title}</title>\n\
         <link rel=\"stylesheet\" href=\"/account/account.css\">\n</head>\n<body>\n<main>\n\
         <h1>{title}</h1>\n{body}</main>\n</body>\n</html>\n",
        title = escape(title),
    );
    (
        status,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(PAGE_CSP),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            // Not `no-referrer`: with it browsers send `Origin: null` on
            // our own form posts; `same-origin` keeps the origin there and
            // sends nothing to the client's site.
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("same-origin"),
            ),
        ],
        html,
    )
        .into_response()
}

/// The sign-in form, with `problem` above it after a failed attempt.
pub fn sign_in(
    request: &Form,
    client_id: &str,
    problem: Option<&str>,
    status: StatusCode,
) -> Response {
    let problem = problem
        .map(|p| format!("<p class=\"problem\" role=\"alert\">{}</p>\n", escape(p)))
        .unwrap_or_default();
    let username = request.get("login_hint").unwrap_or("");
    let body = format!(
        "<p>to continue to <strong>{client}</strong></p>\n{problem}\
         <form method=\"post\" action=\"/oauth/authorize/sign-in\">\n{hidden}\
         <label for=\"username\">Username</label>\n\
         <input id=\"username\" name=\"username\" autocomplete=\"username\" required value=\"{username}\">\n\
         <label for=\"password\">Password</label>\n\
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\n\
         <button type=\"submit\">Sign in</button>\n</form>\n",
        client = escape(client_id),
        hidden = hidden_fields(request),
        username = escape(username),
    );
    page(status, "Sign in", &body)
}

/// What a scope lets a client do, in words for the consent page.
fn scope_words(scope: &str) -> String {
    match scope {
        "openid" => "Know who you are (your account id)".into(),
        "profile" => "See your username".into(),
        "email" => "See your email address".into(),
        other => format!("Use “{}” on your behalf", escape(other)),
    }
}

/// The consent page of a third-party client: the scopes it asks for and
/// two buttons.
pub fn consent(request: &Form, client_id: &str, username: &str, scopes: &[&str]) -> Response {
    let items: String = scopes
        .iter()
        .map(|s| format!("<li>{}</li>\n", scope_words(s)))
        .collect();
    let body = format!(
        "<p><strong>{client}</strong> asks to act for <strong>{user}</strong>. It may:</p>\n\
         <ul>\n{items}</ul>\n\
         <form method=\"post\" action=\"/oauth/authorize/consent\">\n{hidden}\
         <button type=\"submit\" name=\"decision\" value=\"allow\">Allow</button>\n\
         <button type=\"submit\" name=\"decision\" value=\"deny\" class=\"quiet\">Deny</button>\n\
         </form>\n<p>You can withdraw this later from your account.</p>\n",
        client = escape(client_id),
        user = escape(username),
        hidden = hidden_fields(request),
    );
    page(StatusCode::OK, "Allow access?", &body)
}

/// An authorization request that cannot be sent back to its client (no
/// trustworthy redirect URI), or a refused form: said to the person.
pub fn problem(status: StatusCode, text: &str) -> Response {
    let body = format!("<p class=\"problem\" role=\"alert\">{}</p>\n", escape(text));
    page(status, "Sign-in cannot continue", &body)
}

/// Asks before signing out when nothing in the request proves the app
/// asked for it (no `id_token_hint`): a link on another site must not sign
/// people out.
pub fn confirm_sign_out(request: &Form) -> Response {
    let hidden: String = ["client_id", "post_logout_redirect_uri", "state"]
        .iter()
        .filter_map(|name| {
            request.get(name).map(|v| {
                format!(
                    "<input type=\"hidden\" name=\"{name}\" value=\"{}\">\n",
                    escape(v)
                )
            })
        })
        .collect();
    let body = format!(
        "<form method=\"post\" action=\"/oauth/logout\">\n{hidden}\
         <input type=\"hidden\" name=\"confirm\" value=\"yes\">\n\
         <button type=\"submit\">Sign out</button>\n</form>\n"
    );
    page(StatusCode::OK, "Sign out?", &body)
}

pub fn signed_out() -> Response {
    page(StatusCode::OK, "Signed out", "<p>You are signed out.</p>\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_request_values_is_inert() {
        assert_eq!(
            escape(r#"<script>"x"&'y'</script>"#),
            "&lt;script&gt;&quot;x&quot;&amp;&#39;y&#39;&lt;/script&gt;"
        );
        let form =
            Form::parse(b"state=%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E&evil=1").expect("form");
        let hidden = hidden_fields(&form);
        assert!(hidden.contains("value=\"&quot;&gt;&lt;script&gt;"));
        assert!(!hidden.contains("evil"), "only known parameters travel");
    }
}
