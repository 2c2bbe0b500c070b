//! `POST /v1/embeddings` over InvokeModel (Titan Text Embeddings v2, Cohere Embed).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use base64::Engine;
use serde_json::{Value, json};
use support::TestEnv;

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

#[tokio::test]
async fn titan_embeds_each_input_in_order_with_dimensions_and_usage() {
    let env = TestEnv::start().await;
    let reply = env
        .post_json(
            "/v1/embeddings",
            &json!({"model": "titan-embed", "input": ["the cat", "a dog barks"], "dimensions": 256}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let v = reply.json();
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], "titan-embed");
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    for (i, item) in data.iter().enumerate() {
        assert_eq!(item["object"], "embedding");
        assert_eq!(item["index"], i);
        assert_eq!(item["embedding"].as_array().unwrap().len(), 256);
    }
    assert_ne!(data[0]["embedding"], data[1]["embedding"]);
    assert_eq!(v["usage"], json!({"prompt_tokens": 5, "total_tokens": 5}));
    let sent: Value = serde_json::from_slice(&env.mock.last_request().unwrap().body).unwrap();
    assert_eq!(
        sent,
        json!({"inputText": "a dog barks", "dimensions": 256, "normalize": true})
    );
    assert_eq!(
        env.mock.last_request().unwrap().path,
        "/model/amazon.titan-embed-text-v2%3A0/invoke"
    );
}

#[tokio::test]
async fn base64_encoding_is_the_same_vector_as_float() {
    let env = TestEnv::start().await;
    let as_float = env
        .post_json(
            "/v1/embeddings",
            &json!({"model": "titan-embed", "input": "hello"}),
        )
        .await
        .json();
    let as_b64 = env
        .post_json(
            "/v1/embeddings",
            &json!({"model": "titan-embed", "input": "hello", "encoding_format": "base64"}),
        )
        .await
        .json();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(as_b64["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let decoded: Vec<f32> = bytes
        .chunks(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(decoded.len(), 1024);
    assert_eq!(decoded, floats(&as_float["data"][0]["embedding"]));
}

#[tokio::test]
async fn cohere_sends_one_call_for_many_texts() {
    let env = TestEnv::start().await;
    let reply = env
        .post_json(
            "/v1/embeddings",
            &json!({"model": "cohere-embed", "input": ["one", "two words", "three"]}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let v = reply.json();
    assert_eq!(v["data"].as_array().unwrap().len(), 3);
    assert_eq!(v["usage"]["prompt_tokens"], 4);
    assert_eq!(env.mock.calls(), 1);
    let sent: Value = serde_json::from_slice(&env.mock.last_request().unwrap().body).unwrap();
    assert_eq!(sent["texts"], json!(["one", "two words", "three"]));
}

#[tokio::test]
async fn bad_embedding_requests_name_the_field() {
    let env = TestEnv::start().await;
    for (body, status, param) in [
        (json!({"model": "titan-embed", "input": [1, 2]}), 400, "input"),
        (
            json!({"model": "titan-embed", "input": "x", "dimensions": 100}),
            400,
            "dimensions",
        ),
        (json!({"model": "claude-3-haiku", "input": "x"}), 400, "model"),
        (json!({"model": "nope", "input": "x"}), 404, "model"),
    ] {
        let reply = env.post_json("/v1/embeddings", &body).await;
        assert_eq!(reply.status, status, "{body}: {}", reply.text());
        assert_eq!(reply.error()["param"], param, "{body}");
    }
    let reply = env
        .post_json("/v1/chat/completions", &support::chat("titan-embed", "x", false))
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error()["param"], "model");
    assert_eq!(env.mock.calls(), 0);
}
