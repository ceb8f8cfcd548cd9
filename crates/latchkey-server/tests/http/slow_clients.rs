//! Slow, idle and very numerous clients, over raw TCP on loopback: a
//! request head trickled byte by byte and a silent connection are closed at
//! the header read timeout, an idle kept-alive connection at the idle
//! timeout, keep-alive still serves request after request, and connections
//! beyond `max_connections` wait in the listen queue, costing the server
//! neither file descriptors nor memory, until one closes.

use std::time::{Duration, Instant};

use latchkey_testkit::process::ServerProcess;
use latchkey_testkit::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: latchkey.test\r\n\r\n";

async fn connect(base: &str) -> TcpStream {
    let addr = base.trim_start_matches("http://");
    TcpStream::connect(addr).await.expect("connect")
}

/// Reads one response to `GET /healthz` (its body is `ok`); `None` if none
/// came within `limit` or the connection closed first.
async fn read_healthz(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut response = Vec::new();
    let mut chunk = [0u8; 1024];
    let read = async {
        while !response.ends_with(b"\r\n\r\nok") {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => response.extend_from_slice(&chunk[..n]),
            }
        }
        true
    };
    match tokio::time::timeout(limit, read).await {
        Ok(true) => Some(String::from_utf8_lossy(&response).into_owned()),
        _ => None,
    }
}

/// How long until the server closes `stream` (end of stream or reset),
/// reading and discarding what it sends; `None` if it is still open after
/// `limit`. While waiting, `trickle` bytes are sent one every `every`.
async fn time_until_closed(
    stream: &mut TcpStream,
    limit: Duration,
    trickle: Option<Duration>,
) -> Option<Duration> {
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + limit;
    let every = trickle.unwrap_or(limit);
    let mut next_byte = tokio::time::Instant::now() + every;
    let mut chunk = [0u8; 1024];
    loop {
        tokio::select! {
            read = stream.read(&mut chunk) => match read {
                Ok(0) | Err(_) => return Some(started.elapsed()),
                Ok(_) => {}
            },
            () = tokio::time::sleep_until(next_byte), if trickle.is_some() => {
                if stream.write_all(b"a").await.is_err() {
                    return Some(started.elapsed());
                }
                next_byte += every;
            }
            () = tokio::time::sleep_until(deadline) => return None,
        }
    }
}

/// At the real default (10 s): a client that sends part of a request head
/// and then one byte every 3 s, and one that sends nothing, are both closed
/// at the header read timeout; the trickle does not extend it.
#[tokio::test]
async fn trickled_and_silent_request_heads_are_cut_at_the_header_read_timeout() {
    let s = TestServer::start().await;
    assert_eq!(s.settings.header_read_timeout, Duration::from_secs(10));
    let mut trickling = connect(&s.base).await;
    trickling
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: latchkey.test\r\nX-Slow: ")
        .await
        .expect("write");
    let mut silent = connect(&s.base).await;
    let limit = Duration::from_secs(20);
    let (trickled, quiet) = tokio::join!(
        time_until_closed(&mut trickling, limit, Some(Duration::from_secs(3))),
        time_until_closed(&mut silent, limit, None),
    );
    for (who, closed) in [("trickling", trickled), ("silent", quiet)] {
        let closed = closed.unwrap_or_else(|| panic!("{who}: still open after {limit:?}"));
        assert!(
            closed >= Duration::from_secs(9) && closed <= Duration::from_secs(13),
            "{who}: closed after {closed:?}"
        );
    }
    // The server itself is fine.
    let mut fresh = connect(&s.base).await;
    fresh.write_all(HEALTHZ).await.expect("write");
    assert!(read_healthz(&mut fresh, Duration::from_secs(5))
        .await
        .is_some());
}

/// An idle kept-alive connection is closed at the idle timeout, here far
/// shorter than the header read timeout, so it is our timer that holds.
#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_at_the_idle_timeout() {
    let s = TestServer::start_with(|s| {
        s.idle_timeout = Duration::from_secs(1);
        s.header_read_timeout = Duration::from_secs(30);
    })
    .await;
    let mut c = connect(&s.base).await;
    c.write_all(HEALTHZ).await.expect("write");
    let response = read_healthz(&mut c, Duration::from_secs(5))
        .await
        .expect("response");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let closed = time_until_closed(&mut c, Duration::from_secs(10), None)
        .await
        .expect("closed");
    assert!(
        closed >= Duration::from_millis(800) && closed <= Duration::from_secs(3),
        "closed after {closed:?}"
    );
}

/// Keep-alive still works: one connection serves request after request,
/// for longer in all than the idle timeout, since each resets it.
#[tokio::test]
async fn a_kept_alive_connection_serves_several_requests() {
    let s = TestServer::start_with(|s| s.idle_timeout = Duration::from_secs(2)).await;
    let mut c = connect(&s.base).await;
    let started = Instant::now();
    for i in 0..6 {
        c.write_all(HEALTHZ).await.expect("write");
        let response = read_healthz(&mut c, Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("no response to request {i}"));
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(!response.to_ascii_lowercase().contains("connection: close"));
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    assert!(started.elapsed() > Duration::from_secs(3));
}

/// With `max_connections = 2`, a third connection is not served while the
/// two are open, and is as soon as one of them closes.
#[tokio::test]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let s = TestServer::start_with(|s| s.max_connections = 2).await;
    let mut first = connect(&s.base).await;
    let mut second = connect(&s.base).await;
    for c in [&mut first, &mut second] {
        c.write_all(HEALTHZ).await.expect("write");
        assert!(read_healthz(c, Duration::from_secs(5)).await.is_some());
    }
    let mut third = connect(&s.base).await;
    third.write_all(HEALTHZ).await.expect("write");
    assert_eq!(
        read_healthz(&mut third, Duration::from_secs(1)).await,
        None,
        "the third connection was served while two were open"
    );
    drop(first);
    let response = read_healthz(&mut third, Duration::from_secs(5))
        .await
        .expect("served once a connection closed");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    // The second is still served as before.
    second.write_all(HEALTHZ).await.expect("write");
    assert!(read_healthz(&mut second, Duration::from_secs(5))
        .await
        .is_some());
}

fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd list")
        .count()
}

fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// The real binary with `max_connections = 4`: 100 more connections, each
/// having sent a 48 KiB request head, add no file descriptor and (next to
/// the ~3 MB they cost once accepted and read) no memory to the server:
/// they wait in the kernel's listen queue. Closing the four lets them in.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_connections_cost_the_server_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("latchkey.toml");
    std::fs::write(
        &config,
        "max_connections = 4\n[argon2]\nmemory_kib = 256\niterations = 1\nparallelism = 1\n",
    )
    .expect("config");
    let server = ServerProcess::start(
        env!("CARGO_BIN_EXE_latchkey"),
        &dir.path().join("data"),
        &config,
    );
    let pid = server.child.id();
    let mut served = Vec::new();
    for _ in 0..4 {
        let mut c = connect(&server.base).await;
        c.write_all(HEALTHZ).await.expect("write");
        assert!(read_healthz(&mut c, Duration::from_secs(5)).await.is_some());
        served.push(c);
    }
    let descriptors = open_descriptors(pid);
    let resident = resident_kib(pid);

    let padded = format!(
        "GET /healthz HTTP/1.1\r\nHost: latchkey.test\r\nX-Pad: {}\r\n\r\n",
        "p".repeat(48 * 1024)
    );
    let mut waiting = Vec::new();
    // Fewer than the listen queue holds (128), or connecting itself waits.
    for _ in 0..100 {
        let mut c = connect(&server.base).await;
        c.write_all(padded.as_bytes()).await.expect("write");
        waiting.push(c);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let grown_descriptors = open_descriptors(pid).saturating_sub(descriptors);
    let grown_kib = resident_kib(pid).saturating_sub(resident);
    assert!(
        grown_descriptors <= 1,
        "{grown_descriptors} more descriptors"
    );
    assert!(grown_kib < 1024, "resident memory grew by {grown_kib} KiB");

    drop(served);
    let response = read_healthz(&mut waiting[0], Duration::from_secs(10))
        .await
        .expect("a waiting connection is served once others close");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}
