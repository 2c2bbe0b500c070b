//! HTTP/2 to Bedrock (`bedrock.http2`) through the real server and the mock: prior knowledge on
//! an `http://` endpoint, ALPN over TLS, and the pool opening connections as streams fill up.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use ai_gateway::bedrock::eventstream::{EventDecoder, Frame, classify};
use ai_gateway::mock_bedrock::MockConfig;
use support::pool::{ask, open_streams, read_to_done, stream_hello};
use support::relay::{Relay, env_behind_relay, tls_server};
use support::{SseReader, TestEnv, chat, eventually};

fn http2(max_streams: usize) -> impl FnOnce(&mut ai_gateway::config::Config) {
    move |config| {
        config.bedrock.http2 = true;
        config.bedrock.http2_max_streams = max_streams;
    }
}

#[tokio::test]
async fn chat_goes_over_one_reused_http2_connection() {
    let env = TestEnv::start_with(http2(100)).await;
    for _ in 0..3 {
        ask(&env).await;
        stream_hello(&env).await;
    }
    // The mock checked every request's SigV4 signature, and saw each arrive over HTTP/2.
    assert_eq!(env.mock.calls(), 6);
    assert_eq!(env.mock.http2_calls(), 6);
    assert_eq!(env.mock.connections(), 1, "one connection carries them all");
    assert_eq!(
        env.mock.cancelled_streams(),
        0,
        "every stream was read to its end"
    );
}

#[tokio::test]
async fn streams_beyond_a_connections_limit_open_another_connection() {
    let env = TestEnv::start_with(http2(2)).await;
    let open = open_streams(&env, 5).await;
    assert_eq!(
        env.mock.connections(),
        3,
        "two streams a connection: five streams need three connections, no more"
    );
    read_to_done(open).await;
    // All streams are over: the next requests fit on the connections already open.
    for _ in 0..2 {
        ask(&env).await;
    }
    assert_eq!(env.mock.connections(), 3);
    assert_eq!(env.mock.http2_calls(), 7);
}

#[tokio::test]
async fn the_servers_stream_limit_is_kept_when_it_is_lower() {
    let mock = MockConfig {
        http2_max_streams: Some(2),
        ..MockConfig::default()
    };
    let env = TestEnv::start_full(mock, None, http2(100)).await;
    let open = open_streams(&env, 5).await;
    assert_eq!(env.mock.connections(), 3);
    read_to_done(open).await;
}

#[tokio::test]
async fn a_stream_the_client_drops_gives_its_place_back() {
    let env = TestEnv::start_with(http2(1)).await;
    let body = chat("claude-3-haiku", "mock:frames=50 mock:delay_ms=50 go", true);
    let mut reader = SseReader::new(env.open_stream(&body).await);
    assert!(reader.next().await.is_some());
    drop(reader);
    eventually("the mock sees the stream reset", Duration::from_secs(5), || {
        env.mock.cancelled_streams() == 1
    })
    .await;
    // With one stream a connection, a place not given back would open a second connection.
    stream_hello(&env).await;
    assert_eq!(env.mock.connections(), 1);
}

#[tokio::test]
async fn native_passthrough_streams_over_http2() {
    let env = TestEnv::start_with(http2(100)).await;
    let body = serde_json::json!({"messages": [{"role": "user", "content": [{"text": "go mock:frames=3"}]}]});
    let reply = env
        .post(
            "/providers/bedrock/model/nova-lite/converse-stream",
            serde_json::to_vec(&body).unwrap(),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let mut decoder = EventDecoder::default();
    decoder.push(&reply.body);
    let mut events = Vec::new();
    while let Some(message) = decoder.next_message().expect("CRCs intact") {
        if let Frame::Event { event_type, .. } = classify(&message).unwrap() {
            events.push(event_type.to_owned());
        }
    }
    decoder.finish().unwrap();
    assert_eq!(events.iter().filter(|t| *t == "contentBlockDelta").count(), 3);
    assert_eq!(events.last().map(String::as_str), Some("metadata"));
    assert_eq!(env.mock.http2_calls(), 1);
    assert_eq!(env.mock.cancelled_streams(), 0);
}

#[tokio::test]
async fn a_connection_idle_past_the_pool_timeout_is_replaced() {
    let env = TestEnv::start_with(|config| {
        http2(100)(config);
        config.bedrock.pool_idle_timeout_ms = 300;
    })
    .await;
    ask(&env).await;
    ask(&env).await;
    assert_eq!(env.mock.connections(), 1);
    tokio::time::sleep(Duration::from_millis(600)).await;
    ask(&env).await;
    assert_eq!(
        env.mock.connections(),
        2,
        "the idle connection was let go, a new one opened"
    );
}

#[tokio::test]
async fn a_connection_closed_under_the_pool_is_replaced() {
    let (env, relay) = env_behind_relay(None, |config| config.bedrock.http2 = true).await;
    stream_hello(&env).await;
    relay.cut();
    for _ in 0..3 {
        stream_hello(&env).await;
    }
    assert_eq!(relay.accepted(), 2, "one new connection, then reused");
}

/// The gateway with HTTP/2 on, reaching the mock through a TLS relay offering `alpn` and
/// trusting its certificate through `bedrock.ca_file`.
async fn env_behind_tls(alpn: &[&[u8]]) -> (TestEnv, Relay, tempfile::TempDir) {
    let (acceptor, pem) = tls_server(alpn);
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("bedrock-ca.pem");
    std::fs::write(&ca_file, pem).unwrap();
    let (env, relay) = env_behind_relay(Some(acceptor), |config| {
        config.bedrock.http2 = true;
        config.bedrock.ca_file = Some(ca_file);
    })
    .await;
    (env, relay, dir)
}

#[tokio::test]
async fn tls_endpoint_agreeing_on_h2_by_alpn() {
    let (env, _relay, _dir) = env_behind_tls(&[b"h2", b"http/1.1"]).await;
    stream_hello(&env).await;
    assert_eq!(env.mock.http2_calls(), 1);
}

#[tokio::test]
async fn tls_endpoint_without_h2_is_reached_over_http1() {
    // A server offering only HTTP/1.1 picks it; one that ignores ALPN picks no protocol. Either
    // way the gateway drops that connection and reaches the host over HTTP/1.1 from then on.
    for alpn in [&[b"http/1.1".as_slice()][..], &[][..]] {
        let (env, relay, _dir) = env_behind_tls(alpn).await;
        for _ in 0..2 {
            ask(&env).await;
            stream_hello(&env).await;
        }
        assert_eq!(env.mock.calls(), 4, "every request reached the mock, signed");
        assert_eq!(env.mock.http2_calls(), 0);
        assert_eq!(
            relay.accepted(),
            2,
            "the refused HTTP/2 attempt, then one HTTP/1.1 connection reused"
        );
    }
}
