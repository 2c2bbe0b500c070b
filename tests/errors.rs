//! Every failure a client can cause or meet gets an OpenAI-shaped error with the right status.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use ai_gateway::mock_bedrock::MockConfig;
use ai_gateway::upstream::sigv4::{SigV4Signer, UpstreamAuth};
use aws_credential_types::Credentials;
use serde_json::json;
use support::{TestEnv, chat};

#[tokio::test]
async fn malformed_json_is_400_and_says_where() {
    let env = TestEnv::start().await;
    let reply = env
        .post(
            "/v1/chat/completions",
            &b"{\"model\": \"claude-3-haiku\", \"messages\": [}"[..],
        )
        .await;
    assert_eq!(reply.status, 400);
    let e = reply.error();
    assert_eq!(e["type"], "invalid_request_error");
    let message = e["message"].as_str().unwrap();
    assert!(message.contains("JSON") && message.contains("byte"), "{message}");
    assert_eq!(env.mock.calls(), 0);
}

#[tokio::test]
async fn empty_body_is_400() {
    let env = TestEnv::start().await;
    let reply = env.post("/v1/chat/completions", &b""[..]).await;
    assert_eq!(reply.status, 400);
    reply.error();
}

#[tokio::test]
async fn missing_and_mistyped_fields_name_the_param() {
    let env = TestEnv::start().await;
    let cases = [
        (json!({"model": "claude-3-haiku"}), "messages"),
        (json!({"messages": [{"role": "user", "content": "x"}]}), "model"),
        (
            json!({"model": "claude-3-haiku", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}),
            "temperature",
        ),
        (
            json!({"model": "claude-3-haiku", "messages": [{"role": "user", "content": 5}]}),
            "messages[0].content",
        ),
        (json!({"model": "claude-3-haiku", "messages": []}), "messages"),
    ];
    for (body, param) in cases {
        let reply = env.post_json("/v1/chat/completions", &body).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.text());
        assert_eq!(reply.error()["param"], param, "{body}");
    }
}

#[tokio::test]
async fn parameters_bedrock_cannot_honour_are_rejected_by_name() {
    let env = TestEnv::start().await;
    for (field, value) in [
        ("n", json!(2)),
        ("logprobs", json!(true)),
        ("top_logprobs", json!(3)),
        ("modalities", json!(["text", "audio"])),
        ("temperature", json!(1.5)),
        ("not_a_field", json!(1)),
    ] {
        let mut body = chat("claude-3-haiku", "x", false);
        body[field] = value;
        let reply = env.post_json("/v1/chat/completions", &body).await;
        assert_eq!(reply.status, 400, "{field}: {}", reply.text());
        let e = reply.error();
        assert_eq!(e["param"], field, "{e}");
        assert_eq!(reply.headers["x-should-retry"], "false");
    }
    assert_eq!(env.mock.calls(), 0, "nothing rejected reaches Bedrock");
}

#[tokio::test]
async fn temperature_above_one_is_clamped_when_configured() {
    let env = TestEnv::start_with(|c| {
        c.translate.temperature = ai_gateway::translate::request::TemperaturePolicy::Clamp
    })
    .await;
    let mut body = chat("claude-3-haiku", "x", false);
    body["temperature"] = json!(1.7);
    let reply = env.post_json("/v1/chat/completions", &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let sent: serde_json::Value = serde_json::from_slice(&env.mock.last_request().unwrap().body).unwrap();
    assert_eq!(sent["inferenceConfig"]["temperature"], 1.0);
}

#[tokio::test]
async fn body_over_the_limit_is_413() {
    let env = TestEnv::start_with(|c| c.limits.max_body_bytes = 4096).await;
    let big = "a".repeat(8000);
    let reply = env
        .post_json("/v1/chat/completions", &chat("claude-3-haiku", &big, false))
        .await;
    assert_eq!(reply.status, 413);
    assert_eq!(reply.error()["code"], "request_too_large");
}

#[tokio::test]
async fn unknown_model_is_404_model_not_found() {
    let env = TestEnv::start().await;
    let reply = env
        .post_json("/v1/chat/completions", &chat("gpt-4o", "x", false))
        .await;
    assert_eq!(reply.status, 404);
    let e = reply.error();
    assert_eq!(e["code"], "model_not_found");
    assert!(e["message"].as_str().unwrap().contains("gpt-4o"));
}

#[tokio::test]
async fn upstream_errors_map_to_openai_statuses_and_keep_the_message() {
    let env = TestEnv::start().await;
    for (status, want, openai_type) in [
        ("throttle", 429, "rate_limit_error"),
        ("validation", 400, "invalid_request_error"),
        ("not_found", 404, "invalid_request_error"),
        ("access_denied", 403, "permission_error"),
        ("unavailable", 503, "server_error"),
        ("internal", 502, "server_error"),
        ("model_timeout", 504, "server_error"),
    ] {
        for stream in [false, true] {
            let reply = env
                .post_json(
                    "/v1/chat/completions",
                    &chat("claude-3-haiku", &format!("x mock:status={status}"), stream),
                )
                .await;
            assert_eq!(reply.status, want, "{status} stream={stream}: {}", reply.text());
            let e = reply.error();
            assert_eq!(e["type"], openai_type, "{status}");
            assert!(!e["message"].as_str().unwrap().is_empty());
        }
    }
    let reply = env
        .post_json(
            "/v1/chat/completions",
            &chat("claude-3-haiku", "x mock:status=throttle", false),
        )
        .await;
    assert!(reply.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn rejected_gateway_credentials_are_502_not_401() {
    let wrong = Credentials::new(
        ai_gateway::mock_bedrock::MOCK_ACCESS_KEY_ID,
        "not-the-secret",
        None,
        None,
        "test",
    );
    let env = TestEnv::start_full(
        MockConfig::default(),
        Some(UpstreamAuth::SigV4(SigV4Signer::from_static(wrong))),
        |_| {},
    )
    .await;
    let reply = env
        .post_json("/v1/chat/completions", &chat("claude-3-haiku", "x", false))
        .await;
    assert_eq!(reply.status, 502, "{}", reply.text());
    assert_eq!(reply.error()["code"], "upstream_auth_error");
}

#[tokio::test]
async fn unreachable_bedrock_is_502_upstream_unreachable() {
    let closed = support::unused_addr();
    let env = TestEnv::start_with(|c| c.bedrock.endpoint = Some(format!("http://{closed}"))).await;
    let reply = env
        .post_json("/v1/chat/completions", &chat("claude-3-haiku", "x", true))
        .await;
    assert_eq!(reply.status, 502, "{}", reply.text());
    assert_eq!(reply.error()["code"], "upstream_unreachable");
}

#[tokio::test]
async fn unknown_path_is_404_and_wrong_method_is_405() {
    let env = TestEnv::start().await;
    let reply = env.get("/v1/nothing-here").await;
    assert_eq!(reply.status, 404);
    reply.error();
    let reply = env.get("/v1/chat/completions").await;
    assert_eq!(reply.status, 405);
    reply.error();
}

#[tokio::test]
async fn slow_response_headers_are_504_timeout() {
    let env = TestEnv::start_with(|c| c.timeouts.response_headers_ms = 300).await;
    let reply = env
        .post_json(
            "/v1/chat/completions",
            &chat("claude-3-haiku", "x mock:stall_ms=3000", false),
        )
        .await;
    assert_eq!(reply.status, 504, "{}", reply.text());
    assert_eq!(reply.error()["code"], "timeout");
    assert_eq!(reply.headers["x-should-retry"], "true");
}

#[tokio::test]
async fn upstream_reset_mid_stream_ends_with_an_error_record() {
    let env = TestEnv::start().await;
    let reply = env
        .post_json(
            "/v1/chat/completions",
            &chat("claude-3-haiku", "x mock:reset", true),
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.stream_error()["type"], "server_error");
}
