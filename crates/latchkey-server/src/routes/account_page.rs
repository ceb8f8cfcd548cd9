//! The account pages, from the binary's own files (`assets/account/`), so
//! they need no build step and no other server:
//! - `/account`: a person signs in, sees who they are and where they are
//!   signed in, ends sessions and changes their password, through the
//!   compiled `@latchkey/client` (`client/`, from `clients/js`) with cookie
//!   delivery, so the refresh token never reaches its scripts;
//! - `/account/reset-password?token=…` and `/account/verify-email?token=…`,
//!   where the links in our mails lead. Their script takes the token out of
//!   the address bar as it reads it and posts only when the person presses
//!   the button, so a mail scanner that opens the link consumes nothing;
//!   `Referrer-Policy: no-referrer` keeps the token from leaking.

use axum::extract::Path;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, ErrorBody};

/// Nothing but this binary's own files, and requests to this origin; never
/// framed (its buttons end sessions), never leaking its URL.
const ACCOUNT_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

macro_rules! asset {
    ($name:literal, $type:literal) => {
        (
            $name,
            $type,
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/assets/account/",
                $name
            )),
        )
    };
}

/// Every file of the page: name under `/account/`, content type, content.
const FILES: &[(&str, &str, &str)] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("account.js", "text/javascript; charset=utf-8"),
    asset!("account.css", "text/css; charset=utf-8"),
    asset!("reset-password.html", "text/html; charset=utf-8"),
    asset!("verify-email.html", "text/html; charset=utf-8"),
    asset!("recovery.js", "text/javascript; charset=utf-8"),
    asset!("client/index.js", "text/javascript; charset=utf-8"),
    asset!("client/client.js", "text/javascript; charset=utf-8"),
    asset!("client/errors.js", "text/javascript; charset=utf-8"),
    asset!("client/events.js", "text/javascript; charset=utf-8"),
    asset!("client/lock.js", "text/javascript; charset=utf-8"),
    asset!("client/storage.js", "text/javascript; charset=utf-8"),
    asset!("client/tabs.js", "text/javascript; charset=utf-8"),
    asset!("client/types.js", "text/javascript; charset=utf-8"),
];

fn serve(name: &str) -> Response {
    let Some((_, content_type, content)) = FILES.iter().find(|(n, _, _)| *n == name) else {
        return ApiError::NotFound.into_response();
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(ACCOUNT_CSP),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
        ],
        *content,
    )
        .into_response()
}

/// The account page (HTML, served from the binary).
#[utoipa::path(get, path = "/account", tag = "pages",
    responses((status = 200, description = "An HTML page", content_type = "text/html")))]
pub async fn account_page() -> Response {
    serve("index.html")
}

/// The page a password-reset link opens: a form for the new password.
#[utoipa::path(get, path = "/account/reset-password", tag = "pages",
    params(("token" = Option<String>, Query, description = "The link's token (read by the page's script, not by the server)")),
    responses((status = 200, description = "An HTML page", content_type = "text/html")))]
pub async fn reset_password_page() -> Response {
    serve("reset-password.html")
}

/// The page an email-verification link opens.
#[utoipa::path(get, path = "/account/verify-email", tag = "pages",
    params(("token" = Option<String>, Query, description = "The link's token (read by the page's script, not by the server)")),
    responses((status = 200, description = "An HTML page", content_type = "text/html")))]
pub async fn verify_email_page() -> Response {
    serve("verify-email.html")
}

/// The pages' scripts and style.
#[utoipa::path(get, path = "/account/{file}", tag = "pages",
    params(("file" = String, Path, description = "A file name", example = "account.js")),
    responses(
        (status = 200, description = "A file of the page"),
        (status = 404, description = "No such file", body = ErrorBody),
    ))]
pub async fn account_file(Path(file): Path<String>) -> Response {
    // Each page has one URL: its own route.
    if file.ends_with(".html") {
        return ApiError::NotFound.into_response();
    }
    serve(&file)
}

/// The compiled `@latchkey/client` modules the page imports.
#[utoipa::path(get, path = "/account/client/{file}", tag = "pages",
    params(("file" = String, Path, description = "A module of the client", example = "index.js")),
    responses(
        (status = 200, description = "A JavaScript module"),
        (status = 404, description = "No such file", body = ErrorBody),
    ))]
pub async fn account_client_module(Path(file): Path<String>) -> Response {
    serve(&format!("client/{file}"))
}
