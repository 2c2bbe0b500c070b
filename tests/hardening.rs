//! Connection-level limits over raw sockets: request head size, connections at once, idle
//! connections, and the request id echoed or generated.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use support::TestEnv;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the end of the first response head, or EOF.
async fn read_head(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await.unwrap();
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test]
async fn an_oversized_request_head_gets_431() {
    let env = TestEnv::start_with(|c| c.limits.max_header_bytes = 16 * 1024).await;
    let mut stream = TcpStream::connect(env.gateway.addr()).await.unwrap();
    let filler = "a".repeat(32 * 1024);
    let request = format!("GET /health HTTP/1.1\r\nhost: x\r\nx-filler: {filler}\r\n\r\n");
    // The server may stop reading once it has seen enough.
    let _ = stream.write_all(request.as_bytes()).await;
    let head = tokio::time::timeout(Duration::from_secs(10), read_head(&mut stream))
        .await
        .unwrap();
    assert!(head.starts_with("HTTP/1.1 431"), "{head:?}");

    // A head under the limit is fine.
    let mut stream = TcpStream::connect(env.gateway.addr()).await.unwrap();
    let request = format!(
        "GET /health HTTP/1.1\r\nhost: x\r\nx-filler: {}\r\n\r\n",
        &filler[..8 * 1024]
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    assert!(read_head(&mut stream).await.starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_until_one_closes() {
    let env = TestEnv::start_with(|c| c.limits.max_connections = 1).await;
    let addr = env.gateway.addr();
    let first = TcpStream::connect(addr).await.unwrap();
    // Give the server the chance to take the only slot with the first connection.
    let mut probe = TcpStream::connect(addr).await.unwrap();
    probe
        .write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut chunk = [0u8; 64];
    assert!(
        tokio::time::timeout(Duration::from_millis(300), probe.read(&mut chunk))
            .await
            .is_err(),
        "a second connection was served while the first held the only slot"
    );
    drop(first);
    let head = tokio::time::timeout(Duration::from_secs(10), read_head(&mut probe))
        .await
        .unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head:?}");
}

#[tokio::test]
async fn an_idle_connection_is_closed_but_a_slow_request_is_not() {
    let env = TestEnv::start_with(|c| {
        c.timeouts.client_idle_ms = 200;
        // Longer than the test, so only the idle timeout can close the connection.
        c.timeouts.client_header_read_ms = 120_000;
    })
    .await;
    let mut stream = TcpStream::connect(env.gateway.addr()).await.unwrap();
    // A request that takes longer than the idle timeout to answer is not cut off.
    let body = r#"{"model":"claude-3-haiku","messages":[{"role":"user","content":"hi mock:stall_ms=600"}]}"#;
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let head = tokio::time::timeout(Duration::from_secs(10), read_head(&mut stream))
        .await
        .unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head:?}");
    // Then, with nothing in flight, the server closes the connection.
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "idle connection still open");
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let env = TestEnv::start().await;
    let request = http::Request::get(env.url("/health")).header("x-request-id", "trace-me-42");
    let reply = support::send(&env.client, request, bytes::Bytes::new()).await;
    assert_eq!(reply.headers["x-request-id"], "trace-me-42");
    let reply = env.get("/health").await;
    assert_eq!(reply.headers["x-request-id"].len(), 32);
}
