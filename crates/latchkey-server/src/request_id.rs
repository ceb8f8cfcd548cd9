//! Request ids (`x-request-id`): which a client may choose, and reading
//! the one a request carries. The router's layers keep a fit id, make a
//! UUID otherwise and send it back; the id is in every log line of the
//! request (its span) and in its audit records.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName};

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client-sent request id kept.
pub const MAX_CHARS: usize = 64;

/// Whether `id` may be logged and stored as a request id: a client must
/// not be able to forge log lines or fill the audit log through it.
pub fn is_fit(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_CHARS
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Removes a client's `x-request-id` unless it sent exactly one, and a fit
/// one, so the request-id layer makes a fresh one.
pub async fn drop_unfit(mut request: Request) -> Request {
    let headers = request.headers_mut();
    let mut sent = headers.get_all(&X_REQUEST_ID).iter();
    let keep = match (sent.next(), sent.next()) {
        (Some(id), None) => is_fit(id.as_bytes()),
        (None, _) => true,
        (Some(_), Some(_)) => false,
    };
    if !keep {
        headers.remove(&X_REQUEST_ID);
    }
    request
}

/// The request's id, once [`drop_unfit`] and the request-id layers have
/// vetted or made it.
pub fn of(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(&X_REQUEST_ID)
        .filter(|v| is_fit(v.as_bytes()))
        .and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_plain_ids_are_fit() {
        for fit in [
            "a",
            "req-1.b_C",
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert!(is_fit(fit.as_bytes()), "{fit}");
        }
        let too_long = "x".repeat(MAX_CHARS + 1);
        for unfit in [
            "",
            "a b",
            "a\tb",
            "a\nb",
            "x\u{1b}[31m",
            "caf\u{e9}",
            "a=b",
            "\"q\"",
            &too_long,
        ] {
            assert!(!is_fit(unfit.as_bytes()), "{unfit:?}");
        }
    }

    #[tokio::test]
    async fn two_ids_or_an_unfit_one_are_dropped() {
        let with = |ids: &[&str]| {
            let mut b = Request::builder();
            for id in ids {
                b = b.header("x-request-id", *id);
            }
            b.body(axum::body::Body::empty()).expect("request")
        };
        let kept = drop_unfit(with(&["plain-1"])).await;
        assert_eq!(of(kept.headers()), Some("plain-1"));
        for ids in [&["plain-1", "plain-2"][..], &["a b"], &[]] {
            let dropped = drop_unfit(with(ids)).await;
            assert!(dropped.headers().get(&X_REQUEST_ID).is_none(), "{ids:?}");
        }
    }
}
