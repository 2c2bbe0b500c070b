//! The HTTP/1.1 keep-alive pool to Bedrock (the default) through the real server and the
//! mock: reuse, one connection per request in flight, idle limits, and connections that end
//! under the pool.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use support::pool::{ask, open_streams, read_to_done, stream_hello};
use support::relay::env_behind_relay;
use support::{SseReader, TestEnv, chat, eventually};

#[tokio::test]
async fn requests_one_after_another_reuse_one_connection() {
    let env = TestEnv::start().await;
    for _ in 0..3 {
        ask(&env).await;
        stream_hello(&env).await;
    }
    assert_eq!(env.mock.calls(), 6, "the mock checked six signatures");
    assert_eq!(env.mock.http2_calls(), 0);
    assert_eq!(
        env.mock.connections(),
        1,
        "one keep-alive connection carries them all"
    );
}

#[tokio::test]
async fn each_request_in_flight_has_a_connection_and_they_are_reused() {
    let env = TestEnv::start().await;
    let open = open_streams(&env, 4).await;
    assert_eq!(env.mock.connections(), 4);
    read_to_done(open).await;
    // Every stream was read out: its connection is idle again, and the next burst takes them.
    let open = open_streams(&env, 4).await;
    read_to_done(open).await;
    ask(&env).await;
    assert_eq!(env.mock.connections(), 4);
    assert_eq!(env.mock.cancelled_streams(), 0);
}

#[tokio::test]
async fn idle_connections_beyond_the_limit_are_closed() {
    let env = TestEnv::start_with(|config| config.bedrock.pool_max_idle_per_host = 2).await;
    read_to_done(open_streams(&env, 4).await).await;
    assert_eq!(env.mock.connections(), 4);
    // Two of the four were kept: a second burst of four opens two more.
    read_to_done(open_streams(&env, 4).await).await;
    assert_eq!(env.mock.connections(), 6);
}

#[tokio::test]
async fn after_a_stream_the_client_drops_the_next_requests_get_a_new_connection() {
    let env = TestEnv::start().await;
    let body = chat("claude-3-haiku", "mock:frames=50 mock:delay_ms=50 go", true);
    let mut reader = SseReader::new(env.open_stream(&body).await);
    assert!(reader.next().await.is_some());
    drop(reader);
    eventually(
        "the mock sees the stream end early",
        Duration::from_secs(5),
        || env.mock.cancelled_streams() == 1,
    )
    .await;
    // The half-read response's connection is not reused: the next request opens another.
    stream_hello(&env).await;
    ask(&env).await;
    assert_eq!(env.mock.connections(), 2);
}

#[tokio::test]
async fn a_connection_idle_past_the_pool_timeout_is_replaced() {
    let env = TestEnv::start_with(|config| config.bedrock.pool_idle_timeout_ms = 300).await;
    ask(&env).await;
    ask(&env).await;
    assert_eq!(env.mock.connections(), 1);
    tokio::time::sleep(Duration::from_millis(700)).await;
    ask(&env).await;
    assert_eq!(
        env.mock.connections(),
        2,
        "the idle connection was let go, a new one opened"
    );
}

#[tokio::test]
async fn a_connection_closed_while_idle_is_left_out_without_an_error() {
    // No retry to hide a failed request: the pool itself must not use a dead connection.
    let (env, relay) = env_behind_relay(None, |config| config.bedrock.retries.max_retries = 0).await;
    ask(&env).await;
    relay.cut();
    // The gateway's side sees the connection end.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..3 {
        ask(&env).await;
        stream_hello(&env).await;
    }
    assert_eq!(relay.accepted(), 2, "one new connection, then reused");
}
