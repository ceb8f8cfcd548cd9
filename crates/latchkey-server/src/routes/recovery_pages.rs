//! The two pages the links in our mails lead to,
//! `/account/reset-password?token=…` and `/account/verify-email?token=…`,
//! with their one script and style sheet, embedded in the binary. Their
//! CSP allows nothing but those files and requests to this origin, and
//! `Referrer-Policy: no-referrer` keeps the token in the URL from leaking
//! to anything the page might link to. The script removes the token from
//! the address bar as it reads it, and posts only when the user presses
//! the button, so a mail scanner that opens the link consumes nothing.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

const RESET_PASSWORD_HTML: &str = include_str!("recovery_pages/reset-password.html");
const VERIFY_EMAIL_HTML: &str = include_str!("recovery_pages/verify-email.html");
const SCRIPT: &str = include_str!("recovery_pages/recovery.js");
const STYLE: &str = include_str!("recovery_pages/recovery.css");

/// This origin's script, style and API only; no framing, no forms posted
/// anywhere (the script posts with `fetch`).
pub const PAGES_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

fn page(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(PAGES_CSP),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response()
}

/// The page a password-reset link opens: a form for the new password.
#[utoipa::path(get, path = "/account/reset-password", tag = "pages",
    params(("token" = Option<String>, Query, description = "The link's token (read by the page's script, not by the server)")),
    responses((status = 200, description = "An HTML page", content_type = "text/html")))]
pub async fn reset_password_page() -> Response {
    page("text/html; charset=utf-8", RESET_PASSWORD_HTML)
}

/// The page an email-verification link opens.
#[utoipa::path(get, path = "/account/verify-email", tag = "pages",
    params(("token" = Option<String>, Query, description = "The link's token (read by the page's script, not by the server)")),
    responses((status = 200, description = "An HTML page", content_type = "text/html")))]
pub async fn verify_email_page() -> Response {
    page("text/html; charset=utf-8", VERIFY_EMAIL_HTML)
}

/// The pages' script.
#[utoipa::path(get, path = "/account/recovery.js", tag = "pages",
    responses((status = 200, description = "JavaScript", content_type = "text/javascript")))]
pub async fn recovery_script() -> Response {
    page("text/javascript; charset=utf-8", SCRIPT)
}

/// The pages' style sheet.
#[utoipa::path(get, path = "/account/recovery.css", tag = "pages",
    responses((status = 200, description = "CSS", content_type = "text/css")))]
pub async fn recovery_style() -> Response {
    page("text/css; charset=utf-8", STYLE)
}
