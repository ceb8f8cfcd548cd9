//! The accept loop: HTTP/1.1 over hyper (through hyper-util's server
//! builder), with limits on what a slow, idle or very numerous client can
//! hold.
//!
//! - **Header read timeout** (hyper's, with a Tokio timer): a request head
//!   must arrive within it. In hyper 1.x the timer starts whenever the
//!   connection waits for a head, so it also runs between requests on a
//!   kept-alive connection: an idle kept-alive connection is closed at the
//!   header read timeout when that is the shorter.
//! - **Idle timeout** (ours, on the bytes themselves, so it holds whatever
//!   hyper's timer does or a later hyper changes): a connection on which no
//!   byte was read or written for that long, while no request is being
//!   handled, is closed. It also ends a connection whose client stopped
//!   reading our response.
//! - **Connection cap**: a semaphore permit is taken before each `accept`,
//!   so connections beyond the cap wait in the kernel's listen queue,
//!   costing this process nothing, until one closes.
//! - The request timeout (30 s, a tower layer in `routes`) bounds each
//!   request's handling, body included.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;

use crate::detached;

/// What one client may hold of the server.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

/// Pause after an `accept` error that is not one connection's (e.g. out
/// of file descriptors), rather than spinning on it.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// Serves `app` on `listener` until `stopped` completes; then stops
/// accepting and returns once every connection has finished its in-flight
/// requests.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    stopped: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let builder = Arc::new(builder);
    // `validate` keeps the cap within `u32`.
    let max = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let permits = Arc::new(Semaphore::new(max as usize));
    let (shutdown, shutting_down) = watch::channel(false);
    let mut stopped = pin!(stopped);
    loop {
        let permit = tokio::select! {
            () = &mut stopped => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut stopped => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        let builder = builder.clone();
        let app = app.clone();
        let shutting_down = shutting_down.clone();
        tokio::spawn(async move {
            serve_connection(&builder, stream, peer, app, limits, shutting_down).await;
            drop(permit);
        });
    }
    drop(listener);
    let _ = shutdown.send(true);
    // Every connection holds a permit until it is done.
    let _ = permits.acquire_many(max).await;
    Ok(())
}

/// Errors of one connection, which say nothing about the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

async fn serve_connection(
    builder: &auto::Builder<TokioExecutor>,
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: ConnectionLimits,
    mut shutting_down: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(TrackedStream {
        inner: stream,
        activity: activity.clone(),
    });
    let service_activity = activity.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        // What `into_make_service_with_connect_info` gave handlers.
        request.extensions_mut().insert(ConnectInfo(peer));
        let in_flight = service_activity.request_started();
        // Called by hyper as the request arrives: a password check is
        // detached here, before the client can hang up on it.
        let answer = detached::answer(app.clone(), request);
        async move {
            let response = answer.await;
            drop(in_flight);
            Ok::<_, Infallible>(response)
        }
    });
    let mut connection = pin!(builder.serve_connection(io, service));
    let mut idle = pin!(idle_for(&activity, limits.idle_timeout));
    let mut draining = false;
    loop {
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(%peer, error = %e, "connection ended");
                }
                break;
            }
            () = &mut idle => {
                tracing::debug!(%peer, "idle connection closed");
                break;
            }
            changed = shutting_down.wait_for(|stop| *stop), if !draining => {
                draining = true;
                if changed.is_ok() {
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// When bytes last moved on a connection, and how many of its requests are
/// being handled.
struct Activity {
    opened: Instant,
    /// Milliseconds from `opened`.
    last_moved: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            last_moved: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let since = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_moved.store(since, Ordering::Relaxed);
    }

    fn last_moved(&self) -> Instant {
        self.opened + Duration::from_millis(self.last_moved.load(Ordering::Relaxed))
    }

    fn request_started(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }
}

/// A request being handled; idleness counts from when it is done.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Completes once `activity` has seen no byte move for `timeout` with no
/// request in progress.
async fn idle_for(activity: &Activity, timeout: Duration) {
    loop {
        let now = Instant::now();
        let deadline = if activity.in_flight.load(Ordering::Relaxed) > 0 {
            now + timeout
        } else {
            activity.last_moved() + timeout
        };
        if deadline <= now {
            return;
        }
        tokio::time::sleep_until(deadline).await;
    }
}

/// The TCP stream, noting in [`Activity`] every read or write that moved
/// bytes.
struct TrackedStream {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for TrackedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idleness_counts_from_the_last_byte_or_the_end_of_the_last_request() {
        let activity = Arc::new(Activity::new());
        let timeout = Duration::from_secs(60);
        let started = Instant::now();
        idle_for(&activity, timeout).await;
        assert_eq!(started.elapsed(), timeout);

        tokio::time::advance(Duration::from_secs(5)).await;
        activity.touch();
        let from = Instant::now();
        idle_for(&activity, timeout).await;
        assert_eq!(from.elapsed(), timeout);

        // A request being handled is not idleness, however long it takes.
        let in_flight = activity.request_started();
        let waiting = tokio::spawn({
            let activity = activity.clone();
            async move { idle_for(&activity, timeout).await }
        });
        tokio::time::sleep(timeout * 3).await;
        assert!(!waiting.is_finished());
        drop(in_flight);
        let done = Instant::now();
        waiting.await.expect("idle");
        assert!(done.elapsed() >= timeout - Duration::from_secs(1));
    }
}
