//! `/health`, `/ready`, `/v1/models`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::json;
use support::TestEnv;

#[tokio::test]
async fn health_is_the_documented_body() {
    let env = TestEnv::start().await;
    let reply = env.get("/health").await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json(),
        json!({"status": "healthy", "service": "ai-gateway"})
    );
}

#[tokio::test]
async fn ready_when_models_and_credentials_are_there() {
    let env = TestEnv::start().await;
    let reply = env.get("/ready").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["status"], "ready");
}

#[tokio::test]
async fn models_lists_every_alias_in_openai_shape() {
    let env = TestEnv::start().await;
    let v = env.get("/v1/models").await.json();
    assert_eq!(v["object"], "list");
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "claude-3-haiku",
            "cohere-embed",
            "nova-lite",
            "profile",
            "titan-embed"
        ]
    );
    for m in v["data"].as_array().unwrap() {
        assert_eq!(m["object"], "model");
        assert!(m["created"].is_u64());
        assert!(m["owned_by"].is_string());
    }
    assert_eq!(v["data"][2]["owned_by"], "amazon");
}

#[tokio::test]
async fn one_model_by_id_and_404_for_unknown() {
    let env = TestEnv::start().await;
    let reply = env.get("/v1/models/claude-3-haiku").await;
    assert_eq!(
        reply.json(),
        json!({"id": "claude-3-haiku", "object": "model", "created": 1_700_000_000u64, "owned_by": "anthropic"})
    );
    let reply = env.get("/v1/models/gpt-9").await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.error()["code"], "model_not_found");
}
