//! Request logs carry the path but never the query string. In the
//! `processes` test binary because it is the only test there that runs the
//! server in-process, and the only one installing a `tracing` subscriber
//! (subscribers set per thread race with other tests' threads over which
//! call sites are enabled).

use std::io::Write;
use std::sync::{Arc, Mutex};

use latchkey_testkit::TestServer;

/// What a `tracing` subscriber writes, kept for the test to read.
#[derive(Clone, Default)]
struct CapturedLog(Arc<Mutex<Vec<u8>>>);

impl Write for CapturedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// At `debug`, each request's span names its method and route template,
/// never its path; a token a client put in the query string or an
/// unmatched path appears nowhere in the log. (A
/// single-threaded runtime, so the server's tasks log to this test's
/// subscriber.)
#[tokio::test(flavor = "current_thread")]
async fn request_logs_carry_the_route_but_never_the_path_or_query() {
    let log = CapturedLog::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let s = TestServer::start().await;
    let secret = "QuErYsEcReT0123456789";
    for path in [
        format!("/healthz?access_token={secret}"),
        format!("/v1/me?token={secret}"),
        format!("/v1/nope?refresh_token={secret}&x=1"),
        format!("/v1/{secret}"),
    ] {
        let r = s.http.get(s.url(&path)).send().await.expect("request");
        assert!(r.status().as_u16() < 500, "{path}");
    }
    let text = String::from_utf8_lossy(&log.0.lock().expect("log")).into_owned();
    for route in ["/healthz", "/v1/me", "<unmatched>"] {
        assert!(
            text.contains(&format!("method=GET route={route} request_id=")),
            "no span for {route} in:\n{text}"
        );
    }
    assert!(text.contains(": access status=200 latency_ms="), "{text}");
    assert!(!text.contains(secret), "query string in the log:\n{text}");
    assert!(!text.contains("access_token="), "{text}");
}
