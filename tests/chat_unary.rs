//! Non-streaming chat completions end to end: client → gateway → mock Bedrock (SigV4 checked).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{Value, json};
use support::{TestEnv, chat};

#[tokio::test]
async fn text_reply_is_a_chat_completion_with_the_alias_as_model() {
    let env = TestEnv::start().await;
    let reply = env
        .post_json(
            "/v1/chat/completions",
            &chat("claude-3-haiku", "Hello there", false),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.headers["content-type"], "application/json");
    let v = reply.json();
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "claude-3-haiku");
    assert!(v["created"].as_u64().unwrap() > 1_700_000_000);
    let choice = &v["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(
        choice["message"]["content"],
        "Hello from the mock Bedrock runtime."
    );
    assert_eq!(choice["finish_reason"], "stop");
    let usage = &v["usage"];
    assert_eq!(
        usage["total_tokens"],
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );
    assert_eq!(env.mock.calls(), 1);
    let recorded = env.mock.last_request().unwrap();
    assert_eq!(
        recorded.path,
        "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
    );
}

#[tokio::test]
async fn cache_tokens_are_added_into_prompt_tokens() {
    let env = TestEnv::start().await;
    let reply = env
        .post_json(
            "/v1/chat/completions",
            &chat("claude-3-haiku", "hi mock:usage=12,40,100,8", false),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let usage = reply.json()["usage"].clone();
    assert_eq!(usage["prompt_tokens"], 120);
    assert_eq!(usage["completion_tokens"], 40);
    assert_eq!(usage["total_tokens"], 160);
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 100);
}

#[tokio::test]
async fn max_tokens_stop_reason_becomes_length() {
    let env = TestEnv::start().await;
    let reply = env
        .post_json(
            "/v1/chat/completions",
            &chat("claude-3-haiku", "hi mock:stop=max_tokens", false),
        )
        .await;
    assert_eq!(reply.json()["choices"][0]["finish_reason"], "length");
}

#[tokio::test]
async fn inference_parameters_and_system_prompt_reach_bedrock() {
    let env = TestEnv::start().await;
    let body = json!({
        "model": "claude-3-haiku",
        "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in English."}]},
            {"role": "user", "content": "first"},
            {"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "text", "text": ""}]},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "third"}
        ],
        "temperature": 0.25, "top_p": 0.9, "max_completion_tokens": 64, "max_tokens": 10, "stop": "END"
    });
    let reply = env.post_json("/v1/chat/completions", &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let sent: Value = serde_json::from_slice(&env.mock.last_request().unwrap().body).unwrap();
    assert_eq!(
        sent["system"],
        json!([{"text": "Be terse."}, {"text": "Answer in English."}])
    );
    assert_eq!(
        sent["messages"],
        json!([
            {"role": "user", "content": [{"text": "first"}, {"text": "second"}]},
            {"role": "assistant", "content": [{"text": "ok"}]},
            {"role": "user", "content": [{"text": "third"}]}
        ])
    );
    assert_eq!(
        sent["inferenceConfig"],
        json!({"maxTokens": 64, "temperature": 0.25, "topP": 0.9, "stopSequences": ["END"]})
    );
    assert!(
        sent.get("model").is_none(),
        "the model id belongs in the path only"
    );
}

#[tokio::test]
async fn inference_profile_arn_is_encoded_and_signed_for_its_region() {
    let env = TestEnv::start().await;
    let reply = env
        .post_json("/v1/chat/completions", &chat("profile", "hello", false))
        .await;
    assert_eq!(
        reply.status,
        200,
        "the mock verifies the signature: {}",
        reply.text()
    );
    assert_eq!(reply.json()["model"], "profile");
    let recorded = env.mock.last_request().unwrap();
    assert_eq!(
        recorded.path,
        "/model/arn%3Aaws%3Abedrock%3Aus-west-2%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-3-haiku-20240307-v1%3A0/converse"
    );
    let auth = recorded
        .headers
        .iter()
        .find(|(k, _)| k == "authorization")
        .unwrap()
        .1
        .clone();
    assert!(auth.contains("/us-west-2/bedrock/aws4_request"), "{auth}");
}

#[tokio::test]
async fn client_headers_are_not_forwarded_or_signed() {
    let env = TestEnv::start().await;
    let request = http::Request::post(env.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .header("authorization", "Bearer sk-client-secret")
        .header("x-forwarded-for", "10.1.2.3")
        .header("openai-organization", "org-1");
    let reply = support::send(
        &env.client,
        request,
        serde_json::to_vec(&chat("claude-3-haiku", "hi", false))
            .unwrap()
            .into(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let recorded = env.mock.last_request().unwrap();
    let names: Vec<&str> = recorded.headers.iter().map(|(k, _)| k.as_str()).collect();
    assert!(
        !names.contains(&"x-forwarded-for") && !names.contains(&"openai-organization"),
        "{names:?}"
    );
    let auth = &recorded
        .headers
        .iter()
        .find(|(k, _)| k == "authorization")
        .unwrap()
        .1;
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256") && auth.contains("SignedHeaders=content-type;host;x-amz-date,"),
        "{auth}"
    );
}

#[tokio::test]
async fn request_id_is_echoed_or_generated() {
    let env = TestEnv::start().await;
    let request = http::Request::get(env.url("/health")).header("x-request-id", "req-abc-123");
    let reply = support::send(&env.client, request, bytes::Bytes::new()).await;
    assert_eq!(reply.headers["x-request-id"], "req-abc-123");
    let reply = env.get("/health").await;
    assert_eq!(reply.headers["x-request-id"].len(), 32);
}
