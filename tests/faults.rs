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

const FALLBACK_MODELS: &str = "models:
  primary:
    model_id: anthropic.claude-3-haiku-20240307-v1:0
    fallbacks: [backup]
  backup:
    model_id: amazon.nova-lite-v1:0
";

async fn with_fallbacks(dir: &tempfile::TempDir) -> TestEnv {
    let models = dir.path().join("fallbacks.yaml");
    std::fs::write(&models, FALLBACK_MODELS).unwrap();
    let mock = MockConfig {
        fail_models: vec!["anthropic.claude-3-haiku-20240307-v1:0".into()],
        fail_status: 429,
        ..MockConfig::default()
    };
    TestEnv::start_full(mock, None, move |c| {
        c.models = models;
        c.bedrock.retries.max_retries = 0;
    })
    .await
}

#[tokio::test]
async fn a_throttled_model_is_served_by_its_fallback_under_its_own_name() {
    let dir = tempfile::tempdir().unwrap();
    let env = with_fallbacks(&dir).await;
    for stream in [false, true] {
        let reply = env
            .post_json("/v1/chat/completions", &chat("primary", "hi", stream))
            .await;
        assert_eq!(reply.status, 200, "stream={stream}: {}", reply.text());
        assert_eq!(reply.headers["x-ai-gateway-served-by"], "backup");
        let text = reply.text();
        assert!(
            text.contains("\"model\":\"primary\""),
            "the alias the client asked for: {text}"
        );
        assert_eq!(
            env.mock.last_request().unwrap().path.split('/').nth(2),
            Some("amazon.nova-lite-v1%3A0")
        );
    }
    let metrics = env.get("/metrics").await.text();
    assert!(
        metrics.contains(r#"ai_gateway_fallbacks_total{model="primary",target="backup"} 2"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_fallback_gets_the_request_translated_for_its_own_model() {
    // The primary caches prompts, the backup cannot: the backup must get no cache points,
    // and the client is told the marker had no effect.
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("fallbacks.yaml");
    std::fs::write(
        &models,
        "models:
  primary:
    model_id: anthropic.claude-3-haiku-20240307-v1:0
    fallbacks: [backup]
    options:
      supports_prompt_caching: true
  backup:
    model_id: amazon.nova-lite-v1:0
",
    )
    .unwrap();
    let mock = MockConfig {
        fail_models: vec!["anthropic.claude-3-haiku-20240307-v1:0".into()],
        fail_status: 429,
        ..MockConfig::default()
    };
    let env = TestEnv::start_full(mock, None, move |c| {
        c.models = models;
        c.bedrock.retries.max_retries = 0;
    })
    .await;
    let request = serde_json::json!({"model": "primary", "messages": [
        {"role": "system", "content": [{"type": "text", "text": "Rules", "cache_control": {"type": "ephemeral"}}]},
        {"role": "user", "content": "hi"}]});
    let reply = env.post_json("/v1/chat/completions", &request).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.headers["x-ai-gateway-served-by"], "backup");
    assert_eq!(reply.headers["x-ai-gateway-ignored-params"], "cache_control");
    let sent = env.mock.last_request().unwrap();
    assert_eq!(sent.path.split('/').nth(2), Some("amazon.nova-lite-v1%3A0"));
    let body: serde_json::Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(body["system"], serde_json::json!([{"text": "Rules"}]), "{body}");
}

#[tokio::test]
async fn a_repeatedly_failing_model_is_skipped_by_its_circuit_breaker() {
    let dir = tempfile::tempdir().unwrap();
    let env = with_fallbacks(&dir).await;
    for _ in 0..5 {
        assert_eq!(
            env.post_json("/v1/chat/completions", &chat("primary", "hi", false))
                .await
                .status,
            200
        );
    }
    assert_eq!(
        env.mock.calls(),
        10,
        "each request: the primary failed, the fallback answered"
    );
    for _ in 0..3 {
        assert_eq!(
            env.post_json("/v1/chat/completions", &chat("primary", "hi", false))
                .await
                .status,
            200
        );
    }
    assert_eq!(
        env.mock.calls(),
        13,
        "with the breaker open, the primary is not tried"
    );
}

#[tokio::test]
async fn fallbacks_must_name_models_in_the_table() {
    let mapping: ai_gateway::routing::ModelMapping =
        serde_yaml::from_str("models:\n  a:\n    model_id: x\n    fallbacks: [a, nope]\n").unwrap();
    let errors = ai_gateway::routing::ModelTable::from_mapping(&mapping, "us-east-1", None)
        .unwrap_err()
        .to_string();
    assert!(
        errors.contains("models.a.fallbacks: `a` is the model itself"),
        "{errors}"
    );
    assert!(
        errors.contains("models.a.fallbacks: `nope` is not in the model table"),
        "{errors}"
    );
}

/// An upstream that answers every request with `raw` bytes and closes the connection.
async fn raw_upstream(raw: Vec<u8>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let raw = raw.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let _ = socket.read(&mut buf).await;
                let _ = socket.write_all(&raw).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_connection_cut_in_the_middle_of_a_frame_ends_the_stream_with_an_error() {
    use ai_gateway::bedrock::eventstream::encode_event;
    let mut frames = Vec::new();
    encode_event("messageStart", br#"{"role":"assistant"}"#, &mut frames);
    let first = frames.len();
    encode_event(
        "contentBlockDelta",
        br#"{"contentBlockIndex":0,"delta":{"text":"never arrives whole"}}"#,
        &mut frames,
    );
    let cut = first + (frames.len() - first) / 2;
    // A chunked body that stops inside the second frame, without the final chunk.
    let mut raw = b"HTTP/1.1 200 OK\r\ncontent-type: application/vnd.amazon.eventstream\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
    raw.extend_from_slice(format!("{cut:x}\r\n").as_bytes());
    raw.extend_from_slice(&frames[..cut]);
    raw.extend_from_slice(b"\r\n");
    let upstream = raw_upstream(raw).await;
    let env = TestEnv::start_with(|c| c.bedrock.endpoint = Some(upstream)).await;
    let reply = env
        .post_json("/v1/chat/completions", &chat("claude-3-haiku", "hi", true))
        .await;
    assert_eq!(
        reply.status,
        200,
        "the first event arrived whole: {}",
        reply.text()
    );
    let error = reply.stream_error();
    assert_eq!(error["type"], "server_error");
    assert!(!reply.text().contains("never arrives"));
}

#[tokio::test]
async fn a_connection_closed_before_the_headers_is_a_502_after_retries() {
    let upstream = raw_upstream(Vec::new()).await;
    let env = TestEnv::start_with(|c| {
        c.bedrock.endpoint = Some(upstream);
        c.bedrock.retries.base_backoff_ms = 1;
    })
    .await;
    for stream in [false, true] {
        let reply = env
            .post_json("/v1/chat/completions", &chat("claude-3-haiku", "hi", stream))
            .await;
        assert_eq!(reply.status, 502, "{}", reply.text());
        assert_eq!(reply.error()["code"], "upstream_unreachable");
    }
}
