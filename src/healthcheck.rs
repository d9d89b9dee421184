//! `flux healthcheck`: exit 0 when `/health/ready` answers 200.
//!
//! A bare HTTP/1.1 GET over a TCP socket, so the container image needs no curl and the binary no HTTP
//! client library for one loopback request.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub async fn probe(url: &str, timeout: Duration) -> Result<u16, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs can be probed"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: flux-healthcheck\r\nConnection: close\r\n\r\n"
    );
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(authority)
            .await
            .map_err(|e| format!("cannot connect to {authority}: {e}"))?;
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("cannot send the request: {e}"))?;
        let mut head = vec![0u8; 64];
        let n = stream
            .read(&mut head)
            .await
            .map_err(|e| format!("no answer: {e}"))?;
        let line = String::from_utf8_lossy(&head[..n]);
        line.split_whitespace()
            .nth(1)
            .and_then(|code| code.parse::<u16>().ok())
            .ok_or_else(|| format!("not an HTTP answer: {line:?}"))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("no answer within {}s", timeout.as_secs()))?
}
