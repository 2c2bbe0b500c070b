//! Faults between the gateway and Bedrock: what is retried (only failures before Bedrock
//! produced anything), what is not, and how broken streams end.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use ai_gateway::mock_bedrock::MockConfig;
use support::{TestEnv, chat};

fn failing(first: u64, status: u16) -> MockConfig {
    MockConfig {
        fail_first: first,
        fail_status: status,
        ..MockConfig::default()
    }
}

#[tokio::test]
async fn transient_503_before_the_first_byte_is_retried_and_succeeds() {
    let env = TestEnv::start_full(failing(2, 503), None, |_| {}).await;
    for stream in [false, true] {
        let reply = env
            .post_json("/v1/chat/completions", &chat("claude-3-haiku", "hi", stream))
            .await;
        assert_eq!(reply.status, 200, "stream={stream}: {}", reply.text());
    }
    // Two injected failures, then two successes.
    assert_eq!(env.mock.calls(), 4);
}

#[tokio::test]
async fn throttling_is_retried_up_to_the_configured_count_then_surfaces_as_429() {
    let env = TestEnv::start_full(failing(100, 429), None, |c| {
        c.bedrock.retries.max_retries = 3;
        c.bedrock.retries.base_backoff_ms = 5;
    })
    .await;
    let reply = env
        .post_json("/v1/chat/completions", &chat("claude-3-haiku", "hi", false))
        .await;
    assert_eq!(reply.status, 429);
    assert!(reply.headers.contains_key("retry-after"));
    assert_eq!(env.mock.calls(), 4, "one attempt and three retries");
}

#[tokio::test]
async fn retries_can_be_turned_off() {
    let env = TestEnv::start_full(failing(1, 500), None, |c| c.bedrock.retries.max_retries = 0).await;
    let reply = env
        .post_json("/v1/chat/completions", &chat("claude-3-haiku", "hi", false))
        .await;
    assert_eq!(reply.status, 502);
    assert_eq!(env.mock.calls(), 1);
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let env = TestEnv::start().await;
    let reply = env
        .post_json(
            "/v1/chat/completions",
            &chat("claude-3-haiku", "x mock:status=validation", false),
        )
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(env.mock.calls(), 1);
}

#[tokio::test]
async fn nothing_is_retried_once_the_stream_has_started() {
    let env = TestEnv::start().await;
    let reply = env
        .post_json(
            "/v1/chat/completions",
            &chat(
                "claude-3-haiku",
                "x mock:mid_exception=serviceUnavailableException",
                true,
            ),
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.stream_error()["code"], "service_unavailable");
    assert_eq!(env.mock.calls(), 1);
}

#[tokio::test]
async fn a_frame_over_the_size_limit_ends_the_stream_with_an_error() {
    let env = TestEnv::start_with(|c| c.limits.max_event_bytes = 1024).await;
    let long_word = "x".repeat(2048);
    let reply = env
        .post_json(
            "/v1/chat/completions",
            &chat("claude-3-haiku", &format!("mock:text={long_word}"), true),
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.stream_error()["code"], "upstream_protocol_error");
}

#[tokio::test]
async fn reset_during_a_unary_reply_is_a_502() {
    let env = TestEnv::start().await;
    let reply = env
        .post_json(
            "/v1/chat/completions",
            &chat("claude-3-haiku", "x mock:reset", false),
        )
        .await;
    assert_eq!(reply.status, 502, "{}", reply.text());
    reply.error();
}
