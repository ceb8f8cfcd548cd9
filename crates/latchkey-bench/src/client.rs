//! One HTTP/1.1 keep-alive connection per worker, on hyper's low-level
//! connection API (no pool, no redirects, no decompression).

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::guard::{ensure_loopback, Target, TargetError};

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The loopback guard refused the address (should never happen after [`crate::guard::parse_target`]).
    #[error(transparent)]
    Guard(#[from] TargetError),
    /// TCP connect failed on every address.
    #[error("connect to {addr}: {source}")]
    Connect {
        /// Last address tried.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// HTTP handshake or exchange failed.
    #[error("http: {0}")]
    Http(#[from] hyper::Error),
}

/// A keep-alive connection.
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
}

impl Conn {
    /// Connects to the first target address that answers.
    pub async fn connect(target: &Target) -> Result<Conn, ClientError> {
        let mut last = None;
        for &addr in &target.addrs {
            ensure_loopback(addr)?;
            match TcpStream::connect(addr).await {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    let (sender, conn) =
                        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
                    tokio::spawn(async move {
                        // Ends when the worker drops its sender or the peer closes.
                        let _ = conn.await;
                    });
                    return Ok(Conn { sender });
                }
                Err(e) => last = Some((addr, e)),
            }
        }
        let (addr, source) = last.expect("a target has at least one address");
        Err(ClientError::Connect { addr, source })
    }

    /// Whether the peer closed the connection (then the worker reconnects).
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// Sends one request and reads the whole answer.
    pub async fn send(
        &mut self,
        req: Request<Full<Bytes>>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        self.sender.ready().await?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

/// Builds a request by hand: method, origin-form URI, `Host`, and only the
/// headers given.
pub fn build_request(
    method: &http::Method,
    uri: &http::Uri,
    host: &HeaderValue,
    content_type: Option<&HeaderValue>,
    authorization: Option<&HeaderValue>,
    body: Bytes,
) -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::new(body));
    *req.method_mut() = method.clone();
    *req.uri_mut() = uri.clone();
    let h = req.headers_mut();
    h.insert(http::header::HOST, host.clone());
    if let Some(ct) = content_type {
        h.insert(http::header::CONTENT_TYPE, ct.clone());
    }
    if let Some(auth) = authorization {
        h.insert(http::header::AUTHORIZATION, auth.clone());
    }
    req
}
