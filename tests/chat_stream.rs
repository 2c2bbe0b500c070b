//! Streaming chat completions end to end over loopback sockets.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{SseReader, TestEnv, chat, content_of, eventually};

fn parse(chunks: &[String]) -> Vec<Value> {
    chunks
        .iter()
        .filter(|c| c.as_str() != "[DONE]")
        .map(|c| serde_json::from_str(c).unwrap())
        .collect()
}

#[tokio::test]
async fn stream_sends_role_once_then_content_then_finish_then_done() {
    let env = TestEnv::start().await;
    let reply = env
        .post_json("/v1/chat/completions", &chat("claude-3-haiku", "Hello", true))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(
        reply.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let data = reply.sse_data();
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks = parse(&data);
    let id = chunks[0]["id"].as_str().unwrap();
    assert!(id.starts_with("chatcmpl-"));
    for c in &chunks {
        assert_eq!(c["id"], id, "one id for the whole stream");
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["model"], "claude-3-haiku");
        assert!(c.get("usage").is_none(), "no usage field without include_usage");
    }
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let roles = chunks
        .iter()
        .filter(|c| c["choices"][0]["delta"].get("role").is_some())
        .count();
    assert_eq!(roles, 1, "role is sent exactly once");
    assert_eq!(content_of(&data), "Hello from the mock Bedrock runtime.");
    let text_chunks = chunks
        .iter()
        .filter(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|s| !s.is_empty())
        })
        .count();
    assert!(
        text_chunks >= 5,
        "one chunk per upstream delta, got {text_chunks}"
    );
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert_eq!(last["choices"][0]["delta"], json!({}));
}

#[tokio::test]
async fn include_usage_adds_one_usage_chunk_before_done() {
    let env = TestEnv::start().await;
    let mut body = chat("claude-3-haiku", "Hi mock:usage=7,9,3,0", true);
    body["stream_options"] = json!({"include_usage": true});
    let reply = env.post_json("/v1/chat/completions", &body).await;
    let data = reply.sse_data();
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks = parse(&data);
    let usage_chunk = chunks.last().unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"]["prompt_tokens"], 10);
    assert_eq!(usage_chunk["usage"]["completion_tokens"], 9);
    assert_eq!(usage_chunk["usage"]["total_tokens"], 19);
    assert_eq!(usage_chunk["usage"]["prompt_tokens_details"]["cached_tokens"], 3);
    for c in &chunks[..chunks.len() - 1] {
        assert_eq!(c["usage"], Value::Null, "every other chunk carries usage: null");
    }
}

#[tokio::test]
async fn chunks_reach_the_client_as_frames_arrive() {
    let env = TestEnv::start().await;
    let response = env
        .open_stream(&chat(
            "claude-3-haiku",
            "go mock:frames=20 mock:delay_ms=100",
            true,
        ))
        .await;
    assert_eq!(response.status(), 200);
    let mut reader = SseReader::new(response);
    // The role chunk comes from messageStart; the first content chunk from the first delta.
    loop {
        let (data, _) = reader.next().await.expect("stream ended before any content");
        let v: Value = serde_json::from_str(&data).unwrap();
        if v["choices"][0]["delta"]["content"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
        {
            break;
        }
    }
    let sent = env.mock.frames_sent();
    assert!(
        sent < 5,
        "first content chunk held by the client while the mock had sent only {sent} frames"
    );
    let mut rest = Vec::new();
    while let Some((data, _)) = reader.next().await {
        rest.push(data);
    }
    assert_eq!(rest.last().unwrap(), "[DONE]");
}

#[tokio::test]
async fn exception_before_first_event_keeps_its_status() {
    let env = TestEnv::start().await;
    let reply = env
        .post_json(
            "/v1/chat/completions",
            &chat(
                "claude-3-haiku",
                "x mock:first_exception=throttlingException",
                true,
            ),
        )
        .await;
    assert_eq!(reply.status, 429, "{}", reply.text());
    assert!(reply.headers.contains_key("retry-after"));
    assert_eq!(reply.error()["type"], "rate_limit_error");
}

#[tokio::test]
async fn mid_stream_exception_becomes_a_final_error_record_without_done() {
    let env = TestEnv::start().await;
    let reply = env
        .post_json(
            "/v1/chat/completions",
            &chat(
                "claude-3-haiku",
                "x mock:mid_exception=modelStreamErrorException",
                true,
            ),
        )
        .await;
    assert_eq!(reply.status, 200);
    let error = reply.stream_error();
    assert_eq!(error["type"], "server_error");
    assert_eq!(error["code"], "upstream_stream_error");
    assert!(
        !content_of(&reply.sse_data()).is_empty(),
        "text before the failure is delivered"
    );
}

#[tokio::test]
async fn truncated_upstream_stream_ends_with_an_error_record() {
    let env = TestEnv::start().await;
    let reply = env
        .post_json(
            "/v1/chat/completions",
            &chat("claude-3-haiku", "x mock:truncate", true),
        )
        .await;
    assert_eq!(reply.stream_error()["code"], "upstream_stream_truncated");
}

#[tokio::test]
async fn corrupt_frame_ends_the_stream_with_an_error_record() {
    let env = TestEnv::start().await;
    let reply = env
        .post_json(
            "/v1/chat/completions",
            &chat("claude-3-haiku", "x mock:bad_crc", true),
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.stream_error()["code"], "upstream_protocol_error");
}

#[tokio::test]
async fn idle_upstream_times_out_with_an_error_record() {
    let env = TestEnv::start_with(|c| c.timeouts.idle_ms = 300).await;
    let reply = env
        .post_json(
            "/v1/chat/completions",
            &chat("claude-3-haiku", "x mock:stall_ms=3000", true),
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.stream_error()["code"], "timeout");
}

#[tokio::test]
async fn finished_streams_read_bedrocks_body_to_its_end() {
    let env = TestEnv::start().await;
    for _ in 0..3 {
        let reply = env
            .post_json("/v1/chat/completions", &chat("claude-3-haiku", "Hello", true))
            .await;
        assert_eq!(reply.sse_data().last().unwrap(), "[DONE]");
    }
    // A body dropped before its end would close the connection instead of pooling it.
    assert_eq!(env.mock.cancelled_streams(), 0);
}

#[tokio::test]
async fn a_body_left_open_after_the_last_event_is_given_up_within_the_drain_deadline() {
    let env = TestEnv::start().await;
    let started = Instant::now();
    let reply = env
        .post_json(
            "/v1/chat/completions",
            &chat("claude-3-haiku", "Hello mock:linger_ms=30000", true),
        )
        .await;
    assert_eq!(reply.status, 200);
    let data = reply.sse_data();
    assert_eq!(data.last().unwrap(), "[DONE]");
    assert_eq!(content_of(&data), "Hello from the mock Bedrock runtime.");
    // The drain deadline is 1 s; the mock would keep the body open for 30.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the response ended only after {:?}",
        started.elapsed()
    );
    eventually("the mock sees its body dropped", Duration::from_secs(5), || {
        env.mock.cancelled_streams() == 1
    })
    .await;
}

#[tokio::test]
async fn a_stream_longer_than_the_idle_timeout_is_not_cut_while_frames_keep_coming() {
    let env = TestEnv::start_with(|c| c.timeouts.idle_ms = 300).await;
    // Ten frames 100 ms apart: a second in all, never 300 ms without data.
    let reply = env
        .post_json(
            "/v1/chat/completions",
            &chat("claude-3-haiku", "x mock:frames=10 mock:delay_ms=100", true),
        )
        .await;
    assert_eq!(reply.status, 200);
    let data = reply.sse_data();
    assert_eq!(data.last().unwrap(), "[DONE]", "{data:?}");
    assert_eq!(
        content_of(&data),
        "tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7 tok8 tok9 "
    );
}

#[tokio::test]
async fn client_disconnect_cancels_the_upstream_stream() {
    let env = TestEnv::start().await;
    let response = env
        .open_stream(&chat(
            "claude-3-haiku",
            "x mock:frames=50 mock:delay_ms=100",
            true,
        ))
        .await;
    let mut reader = SseReader::new(response);
    reader.next().await.expect("first chunk");
    eventually("mock stream active", Duration::from_secs(5), || {
        env.mock.active_streams() == 1
    })
    .await;
    drop(reader);
    eventually("mock sees the cancel", Duration::from_secs(5), || {
        env.mock.cancelled_streams() == 1
    })
    .await;
    assert_eq!(env.mock.active_streams(), 0);
}

#[tokio::test]
async fn stop_sequence_and_length_map_to_finish_reasons() {
    let env = TestEnv::start().await;
    for (directive, want) in [
        ("mock:stop=stop_sequence", "stop"),
        ("mock:stop=max_tokens", "length"),
        ("mock:stop=content_filtered", "content_filter"),
    ] {
        let reply = env
            .post_json(
                "/v1/chat/completions",
                &chat("claude-3-haiku", &format!("x {directive}"), true),
            )
            .await;
        let chunks = parse(&reply.sse_data());
        assert_eq!(
            chunks.last().unwrap()["choices"][0]["finish_reason"],
            want,
            "{directive}"
        );
    }
}
