//! Issue 10 §7: a client cannot write ERROR lines. Requests actix-http cannot parse (a 100 kB URI, a
//! NUL in the request line, bad header bytes) get their 400 and are logged at DEBUG only.
//!
//! Its own test binary, because it installs the process-wide tracing subscriber (flux's own, from
//! `telemetry::install`) with a capturing writer.
// Its helpers sit outside `#[test]` functions, where clippy.toml's test allowance does not reach.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Backend, TestServer};
use flux::topology::{ListenerKind, Target};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing_subscriber::fmt::MakeWriter;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

async fn send_raw(addr: &str, request: &[u8]) -> String {
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The server may answer (and close) before it read everything.
    let _ = conn.write_all(request).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_garbage_writes_no_error_lines() {
    let capture = Capture::default();
    flux::telemetry::install(
        &format!("info,{}=debug", flux::telemetry::CLIENT_TARGET),
        false,
        capture.clone(),
    );
    let t = TestServer::start(Target::Unified, Backend::Sqlite).await;
    let addr = t
        .url(ListenerKind::Unified, "")
        .trim_start_matches("http://")
        .to_owned();

    let long_uri = format!(
        "GET /{} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let requests: Vec<Vec<u8>> = vec![
        long_uri.into_bytes(),
        b"GET /a\0b HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Bad: a\x01\x7fb\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nBad Header\xff: x\r\n\r\n".to_vec(),
    ];
    for request in &requests {
        let answer = send_raw(&addr, request).await;
        assert!(
            answer.starts_with("HTTP/1.1 4"),
            "{:?}",
            answer.chars().take(80).collect::<String>()
        );
    }
    // A normal request still works and is logged as usual.
    assert_eq!(t.get(ListenerKind::Unified, "/health").await.0, 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    t.stop().await;

    let log = String::from_utf8_lossy(&capture.0.lock().unwrap()).into_owned();
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
    assert!(
        errors.is_empty(),
        "ERROR lines written by a client: {errors:#?}"
    );
    assert!(
        log.contains("client connection error"),
        "the client errors are still told at DEBUG: {log}"
    );
}
