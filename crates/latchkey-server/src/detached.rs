//! Requests that check a password run to completion on their own task,
//! whether or not their client waits for the answer.
//!
//! A client that sends a sign-in and hangs up at once must still have spent
//! an attempt (or a flood of abandoned guesses would never be throttled),
//! and the store writes of a sign-in must not stop half-way because its
//! connection went. But the Argon2 work that only the departed client
//! wanted should not be done: the task carries a [`Requester`] flag that is
//! raised when the connection's side stops waiting, and the hashing pool
//! skips a queued job whose requester has gone.
//!
//! The task is spawned when hyper hands the request over, before anything
//! polls it: hyper drops a connection's pending request, unpolled, as soon
//! as it sees the client close.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower::Service;

tokio::task_local! {
    static REQUESTER: Requester;
}

/// Whether the client a detached request came from still waits for it.
#[derive(Debug, Clone, Default)]
pub struct Requester(Arc<AtomicBool>);

impl Requester {
    /// The requester of the task running now; `None` outside a detached
    /// request.
    pub fn current() -> Option<Self> {
        REQUESTER.try_with(Clone::clone).ok()
    }

    pub fn is_gone(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Raises the flag when the waiting side is dropped before the answer.
struct WaitingSide(Requester);

impl Drop for WaitingSide {
    fn drop(&mut self) {
        (self.0).0.store(true, Ordering::Relaxed);
    }
}

/// Whether a request is one that checks a password.
fn checks_password(method: &Method, path: &str) -> bool {
    method == Method::POST && matches!(path, "/v1/sign-in" | "/v1/sign-up" | "/v1/password")
}

/// The app's answer to `request`: a password check is detached at once (see
/// the module documentation), anything else is answered on the caller's
/// task.
pub fn answer<B>(
    mut app: Router,
    request: Request<B>,
) -> Pin<Box<dyn Future<Output = Response> + Send>>
where
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let request = request.map(axum::body::Body::new);
    let checks = checks_password(request.method(), request.uri().path());
    let handling = async move {
        match app.call(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    };
    if checks {
        Box::pin(detach(handling))
    } else {
        Box::pin(handling)
    }
}

/// Runs `handling` on a task of its own and waits for its answer; see the
/// module documentation.
fn detach<F>(handling: F) -> impl Future<Output = Response> + Send
where
    F: Future<Output = Response> + Send + 'static,
{
    let requester = Requester::default();
    let waiting = WaitingSide(requester.clone());
    let task = tokio::spawn(REQUESTER.scope(requester, handling));
    async move {
        let answer = task.await;
        drop(waiting);
        answer.unwrap_or_else(|e| {
            tracing::error!(error = %e, "detached request failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn the_task_runs_on_and_sees_its_requester_leave() {
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let (seen_tx, seen_rx) = tokio::sync::oneshot::channel();
        let waiting = detach(async move {
            let requester = Requester::current().expect("inside a detached request");
            let _ = started_tx.send(requester.is_gone());
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = seen_tx.send(requester.is_gone());
            StatusCode::OK.into_response()
        });
        assert_eq!(started_rx.await.ok(), Some(false), "still waited for");
        // The client hangs up before the answer.
        drop(waiting);
        let gone = tokio::time::timeout(Duration::from_secs(5), seen_rx)
            .await
            .expect("the task went on")
            .expect("answer");
        assert!(gone);
        assert!(Requester::current().is_none());
    }

    #[tokio::test]
    async fn a_waiting_client_gets_the_answer() {
        let answer = detach(async { StatusCode::CREATED.into_response() }).await;
        assert_eq!(answer.status(), StatusCode::CREATED);
    }
}
