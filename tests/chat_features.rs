//! Chat features end to end over loopback: tools (a full tool loop, streamed and not), images,
//! documents, reasoning with its round trip, prompt caching, structured output, the `bedrock`
//! extension object, the deprecated function API and the ignored-params header. The mock
//! Bedrock checks each Converse body the way Bedrock and Claude do (tool pairing, document
//! names, base64, reasoning signatures) before it answers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{Value, json};
use support::TestEnv;

/// Aliases with different capabilities, all served by the mock.
const MODELS: &str = r#"models:
  claude:
    model_id: anthropic.claude-3-haiku-20240307-v1:0
    options:
      supports_named_tool_choice: true
      supports_prompt_caching: true
      reasoning:
        thinking_budgets: {low: 1024, high: 4096}
  structured:
    model_id: amazon.nova-lite-v1:0
    options:
      supports_structured_output: true
  plain:
    model_id: meta.llama3-8b-instruct-v1:0
  guarded:
    model_id: amazon.nova-lite-v1:0
    options:
      guardrail: {identifier: gr-default, version: "2"}
"#;

/// The gateway and the mock, with [`MODELS`] as the model table.
async fn start() -> (TestEnv, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models.yaml");
    std::fs::write(&models, MODELS).unwrap();
    let env = TestEnv::start_with(|c| c.models = models).await;
    (env, dir)
}

async fn complete(env: &TestEnv, body: &Value) -> Value {
    let reply = env.post_json("/v1/chat/completions", body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()
}

/// The Converse body the mock received last.
fn sent(env: &TestEnv) -> Value {
    serde_json::from_slice(&env.mock.last_request().unwrap().body).unwrap()
}

/// Merges stream deltas the way the OpenAI SDK's accumulator does (`lib/streaming/_deltas.py`):
/// strings are concatenated, except `index` and `type`; lists of objects merge by `index`;
/// lists of plain values are extended.
fn accumulate(acc: &mut Value, delta: &Value) {
    let (Some(acc), Some(delta)) = (acc.as_object_mut(), delta.as_object()) else {
        return;
    };
    for (key, value) in delta {
        let Some(current) = acc.get_mut(key).filter(|c| !c.is_null()) else {
            acc.insert(key.clone(), value.clone());
            continue;
        };
        if key == "index" || key == "type" {
            *current = value.clone();
            continue;
        }
        match (current, value) {
            (Value::String(a), Value::String(b)) => a.push_str(b),
            (current @ Value::Object(_), Value::Object(_)) => accumulate(current, value),
            (Value::Array(a), Value::Array(b)) => {
                if a.iter().all(|x| !x.is_object()) {
                    a.extend(b.iter().cloned());
                    continue;
                }
                for entry in b {
                    let index = entry["index"].as_u64().expect("list entries carry an index") as usize;
                    if index < a.len() {
                        accumulate(&mut a[index], entry);
                    } else {
                        a.insert(index, entry.clone());
                    }
                }
            }
            (current, value) => *current = value.clone(),
        }
    }
}

/// A stream's final message, finish reason and usage, accumulated like the SDK does.
async fn stream(env: &TestEnv, body: &Value) -> (Value, String, Value) {
    let mut body = body.clone();
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let reply = env.post_json("/v1/chat/completions", &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let data = reply.sse_data();
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{data:?}");
    let mut message = json!({});
    let mut finish = String::new();
    let mut usage = Value::Null;
    for chunk in &data[..data.len() - 1] {
        let v: Value = serde_json::from_str(chunk).unwrap();
        assert!(v.get("error").is_none(), "{v}");
        if let Some(choice) = v["choices"].get(0) {
            accumulate(&mut message, &choice["delta"]);
            if let Some(reason) = choice["finish_reason"].as_str() {
                finish = reason.to_owned();
            }
        } else {
            usage = v["usage"].clone();
        }
    }
    (message, finish, usage)
}

fn weather_tools() -> Value {
    json!([
        {"type": "function", "function": {"name": "get_weather", "description": "Current weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
        {"type": "function", "function": {"name": "get_time"}}
    ])
}

const TWO_CALLS: &str = r#"Weather and time in Paris? mock:text=Checking. mock:tool=get_weather:{"city":"Paris"} mock:tool=get_time:{}"#;

#[tokio::test]
async fn tool_loop_with_two_parallel_calls_round_trips() {
    let (env, _dir) = start().await;
    let mut messages = vec![json!({"role": "user", "content": TWO_CALLS})];
    let v = complete(
        &env,
        &json!({"model": "claude", "messages": messages, "tools": weather_tools(), "tool_choice": "auto"}),
    )
    .await;
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    let message = choice["message"].clone();
    assert_eq!(message["content"], "Checking.");
    let calls = message["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(
        calls[0],
        json!({"id": "tooluse_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}})
    );
    assert_eq!(
        calls[1]["function"],
        json!({"name": "get_time", "arguments": "{}"})
    );
    let first = sent(&env);
    assert_eq!(first["toolConfig"]["toolChoice"], json!({"auto": {}}));
    assert_eq!(first["toolConfig"]["tools"].as_array().unwrap().len(), 2);

    messages.push(message);
    messages.push(json!({"role": "tool", "tool_call_id": "tooluse_1", "content": "{\"temp_c\":21}"}));
    messages
        .push(json!({"role": "tool", "tool_call_id": "tooluse_2", "content": "14:05 mock:text=Sunny,_21C."}));
    let v = complete(
        &env,
        &json!({"model": "claude", "messages": messages, "tools": weather_tools()}),
    )
    .await;
    assert_eq!(v["choices"][0]["message"]["content"], "Sunny, 21C.");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    let second = sent(&env);
    assert_eq!(
        second["messages"][2],
        json!({"role": "user", "content": [
            {"toolResult": {"toolUseId": "tooluse_1", "content": [{"text": "{\"temp_c\":21}"}]}},
            {"toolResult": {"toolUseId": "tooluse_2", "content": [{"text": "14:05 mock:text=Sunny,_21C."}]}}]})
    );
    assert_eq!(
        second["messages"][1]["content"][1],
        json!({"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Paris"}}})
    );
}

#[tokio::test]
async fn streamed_tool_calls_accumulate_to_the_same_calls() {
    let (env, _dir) = start().await;
    let body = json!({"model": "claude", "messages": [{"role": "user", "content": TWO_CALLS}], "tools": weather_tools()});
    let (message, finish, usage) = stream(&env, &body).await;
    assert_eq!(finish, "tool_calls");
    assert_eq!(message["role"], "assistant");
    assert_eq!(message["content"], "Checking.");
    assert_eq!(
        message["tool_calls"],
        json!([
            {"index": 0, "id": "tooluse_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
            {"index": 1, "id": "tooluse_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
        ])
    );
    assert!(usage["total_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn history_with_tool_calls_is_accepted_without_tools() {
    let (env, _dir) = start().await;
    let messages = json!([
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_abc", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "call_abc", "content": "21C"},
        {"role": "user", "content": "Summarize."}
    ]);
    let v = complete(&env, &json!({"model": "plain", "messages": messages})).await;
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        sent(&env)["toolConfig"],
        json!({"tools": [{"toolSpec": {"name": "get_weather", "inputSchema": {"json": {"type": "object"}}}}]})
    );
    // tool_choice none with that history: stubs, and a call made anyway never reaches the client.
    let mut messages = messages;
    messages[3]["content"] = json!("Summarize. mock:text=Done mock:tool=get_weather:{}");
    let v = complete(
        &env,
        &json!({"model": "plain", "messages": messages, "tools": weather_tools(), "tool_choice": "none"}),
    )
    .await;
    assert_eq!(v["choices"][0]["message"]["content"], "Done");
    assert!(v["choices"][0]["message"].get("tool_calls").is_none());
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert!(sent(&env)["toolConfig"].get("toolChoice").is_none());
}

#[tokio::test]
async fn unanswered_tool_calls_and_bad_arguments_are_400s_naming_the_message() {
    let (env, _dir) = start().await;
    let reply = env
        .post_json(
            "/v1/chat/completions",
            &json!({"model": "claude", "messages": [
                {"role": "user", "content": "a"},
                {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "r"}]}),
        )
        .await;
    assert_eq!(reply.status, 400);
    let e = reply.error();
    assert_eq!(e["param"], "messages[1].tool_calls[0].function.arguments");
    assert_eq!(e["code"], "invalid_value");
    let reply = env
        .post_json(
            "/v1/chat/completions",
            &json!({"model": "claude", "messages": [
                {"role": "user", "content": "a"},
                {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "user", "content": "never answered"}]}),
        )
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error()["param"], "messages[1].tool_calls[0].id");
    assert_eq!(env.mock.calls(), 0);
}

#[tokio::test]
async fn named_tool_choice_needs_a_flagged_model() {
    let (env, _dir) = start().await;
    let body = |model: &str| {
        json!({"model": model, "messages": [{"role": "user", "content": "x mock:tool=get_time:{}"}],
               "tools": weather_tools(), "tool_choice": {"type": "function", "function": {"name": "get_time"}}})
    };
    let v = complete(&env, &body("claude")).await;
    assert_eq!(
        v["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "get_time"
    );
    assert_eq!(
        sent(&env)["toolConfig"]["toolChoice"],
        json!({"tool": {"name": "get_time"}})
    );
    let reply = env.post_json("/v1/chat/completions", &body("plain")).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error()["param"], "tool_choice");
}

#[tokio::test]
async fn images_and_documents_reach_bedrock_as_blocks() {
    let (env, _dir) = start().await;
    let v = complete(
        &env,
        &json!({"model": "claude", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is in these?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}},
            {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0xLjQ=", "filename": "Annual report.2024.pdf"}}]}]}),
    )
    .await;
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        sent(&env)["messages"][0]["content"],
        json!([
            {"text": "What is in these?"},
            {"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}},
            {"document": {"format": "pdf", "name": "Annual report-2024", "source": {"bytes": "JVBERi0xLjQ="}}}
        ])
    );
}

#[tokio::test]
async fn image_urls_are_refused_when_fetching_is_off() {
    let (env, _dir) = start().await;
    let reply = env
        .post_json(
            "/v1/chat/completions",
            &json!({"model": "claude", "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "http://127.0.0.1:9/cat.png"}}]}]}),
        )
        .await;
    assert_eq!(reply.status, 400);
    let e = reply.error();
    assert_eq!(e["param"], "messages[0].content[0].image_url.url");
    assert_eq!(e["code"], "unsupported_value");
    assert_eq!(env.mock.calls(), 0);
}

/// A loopback server for image URLs: `/cat.png` is a PNG, `/page` is HTML.
async fn image_server() -> std::net::SocketAddr {
    use http_body_util::Full;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(|req: http::Request<hyper::body::Incoming>| async move {
                        let (content_type, body): (&str, &[u8]) = match req.uri().path() {
                            "/cat.png" => ("image/png", b"\x89PNG\r\n\x1a\n"),
                            _ => ("text/html", b"<html></html>"),
                        };
                        Ok::<_, std::convert::Infallible>(
                            http::Response::builder()
                                .header("content-type", content_type)
                                .body(Full::new(bytes::Bytes::from_static(body)))
                                .unwrap(),
                        )
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn image_urls_are_fetched_when_enabled() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models.yaml");
    std::fs::write(&models, MODELS).unwrap();
    let env = TestEnv::start_with(|c| {
        c.models = models;
        c.translate.image_fetch.enabled = true;
        // The image server is on loopback, which only this test switch allows.
        c.translate.image_fetch.allow_loopback = true;
    })
    .await;
    let server = image_server().await;
    let url = format!("http://localhost:{}/cat.png", server.port());
    complete(
        &env,
        &json!({"model": "claude", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": url}}]}]}),
    )
    .await;
    assert_eq!(
        sent(&env)["messages"][0]["content"][1],
        json!({"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}})
    );
    let reply = env
        .post_json(
            "/v1/chat/completions",
            &json!({"model": "claude", "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": format!("http://localhost:{}/page", server.port())}}]}]}),
        )
        .await;
    assert_eq!(reply.status, 400);
    let e = reply.error();
    assert_eq!(e["code"], "invalid_image_url");
    assert_eq!(e["param"], "messages[0].content[0].image_url.url");
    let reply = env
        .post_json(
            "/v1/chat/completions",
            &json!({"model": "claude", "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "http://10.0.0.1/cat.png"}}]}]}),
        )
        .await;
    assert_eq!(reply.status, 400);
    assert!(
        reply.error()["message"]
            .as_str()
            .unwrap()
            .contains("not a public address")
    );
}

const REASONING: &str = "Think mock:reasoning=Let_me mock:reasoning=think. mock:text=Answer.";

#[tokio::test]
async fn reasoning_comes_back_in_extension_fields_and_round_trips() {
    let (env, _dir) = start().await;
    let ask = json!({"role": "user", "content": REASONING});
    let v = complete(
        &env,
        &json!({"model": "claude", "messages": [ask], "reasoning_effort": "low"}),
    )
    .await;
    let message = v["choices"][0]["message"].clone();
    assert_eq!(message["content"], "Answer.");
    assert_eq!(message["reasoning_content"], "Let me think.");
    let signature = message["reasoning_signature"].as_str().unwrap().to_owned();
    let first = sent(&env);
    assert_eq!(
        first["additionalModelRequestFields"],
        json!({"thinking": {"type": "enabled", "budget_tokens": 1024}})
    );
    assert!(first["inferenceConfig"]["maxTokens"].as_u64().unwrap() > 1024);

    let (streamed, finish, _) = stream(
        &env,
        &json!({"model": "claude", "messages": [ask], "reasoning_effort": "low"}),
    )
    .await;
    assert_eq!(finish, "stop");
    assert_eq!(streamed["reasoning_content"], "Let me think.");
    assert_eq!(streamed["reasoning_signature"], signature.as_str());
    assert_eq!(streamed["content"], "Answer.");

    // The client sends the assistant message back as it got it; the mock verifies the signature.
    let follow_up = json!({"model": "claude", "reasoning_effort": "low", "messages": [
        ask, message, {"role": "user", "content": "And then?"}]});
    complete(&env, &follow_up).await;
    assert_eq!(
        sent(&env)["messages"][1]["content"][0],
        json!({"reasoningContent": {"reasoningText": {"text": "Let me think.", "signature": signature}}})
    );
    let mut forged = follow_up.clone();
    forged["messages"][1]["reasoning_signature"] = json!("forged");
    let reply = env.post_json("/v1/chat/completions", &forged).await;
    assert_eq!(reply.status, 400, "{}", reply.text());
}

#[tokio::test]
async fn redacted_reasoning_is_returned_and_sent_back() {
    let (env, _dir) = start().await;
    let ask = json!({"role": "user", "content": "x mock:reasoning=hm mock:redacted=QUJDRA== mock:text=Ok"});
    let (message, _, _) = stream(&env, &json!({"model": "claude", "messages": [ask]})).await;
    assert_eq!(message["redacted_reasoning"], json!(["QUJDRA=="]));
    let mut message = message;
    message.as_object_mut().unwrap().remove("role");
    message["role"] = json!("assistant");
    complete(
        &env,
        &json!({"model": "claude", "messages": [ask, message, {"role": "user", "content": "y"}]}),
    )
    .await;
    assert_eq!(
        sent(&env)["messages"][1]["content"][1],
        json!({"reasoningContent": {"redactedContent": "QUJDRA=="}})
    );
}

#[tokio::test]
async fn reasoning_effort_without_a_mapping_is_a_400() {
    let (env, _dir) = start().await;
    let reply = env
        .post_json(
            "/v1/chat/completions",
            &json!({"model": "plain", "messages": [{"role": "user", "content": "x"}], "reasoning_effort": "high"}),
        )
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error()["param"], "reasoning_effort");
}

#[tokio::test]
async fn structured_output_is_emulated_with_a_forced_tool_in_both_modes() {
    let (env, _dir) = start().await;
    let body = json!({"model": "claude", "messages": [{"role": "user", "content": r#"Pick mock:tool=pick:{"n":42,"why":"answer"}"#}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "pick", "schema":
            {"type": "object", "properties": {"n": {"type": "integer"}, "why": {"type": "string"}}}}}});
    let v = complete(&env, &body).await;
    let choice = &v["choices"][0];
    assert_eq!(choice["message"]["content"], r#"{"n":42,"why":"answer"}"#);
    assert!(choice["message"].get("tool_calls").is_none());
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(
        sent(&env)["toolConfig"]["toolChoice"],
        json!({"tool": {"name": "pick"}})
    );
    let (message, finish, _) = stream(&env, &body).await;
    assert_eq!(message["content"], r#"{"n":42,"why":"answer"}"#);
    assert!(message.get("tool_calls").is_none());
    assert_eq!(finish, "stop");
}

#[tokio::test]
async fn json_object_and_native_structured_output() {
    let (env, _dir) = start().await;
    let v = complete(
        &env,
        &json!({"model": "plain", "messages": [{"role": "user", "content": r#"x mock:tool=json_response:{"ok":true}"#}],
            "response_format": {"type": "json_object"}}),
    )
    .await;
    assert_eq!(v["choices"][0]["message"]["content"], r#"{"ok":true}"#);
    assert_eq!(sent(&env)["toolConfig"]["toolChoice"], json!({"any": {}}));

    let v = complete(
        &env,
        &json!({"model": "structured", "messages": [{"role": "user", "content": r#"x mock:text={"ok":true}"#}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": {"type": "object"}}}}),
    )
    .await;
    assert_eq!(v["choices"][0]["message"]["content"], r#"{"ok":true}"#);
    let body = sent(&env);
    assert!(body.get("toolConfig").is_none());
    assert_eq!(
        body["outputConfig"]["textFormat"]["structure"]["jsonSchema"]["schema"],
        "{\"type\":\"object\"}"
    );
}

#[tokio::test]
async fn cache_control_becomes_cache_points_and_cache_writes_are_reported() {
    let (env, _dir) = start().await;
    let v = complete(
        &env,
        &json!({"model": "claude", "messages": [
            {"role": "system", "content": [{"type": "text", "text": "Long rules", "cache_control": {"type": "ephemeral"}}]},
            {"role": "user", "content": [{"type": "text", "text": "Question mock:usage=5,7,0,300", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]}],
            "tools": [{"type": "function", "function": {"name": "f"}, "cache_control": {"type": "ephemeral"}}]}),
    )
    .await;
    assert_eq!(v["usage"]["prompt_tokens"], 305);
    assert_eq!(v["usage"]["prompt_tokens_details"]["cache_write_tokens"], 300);
    let body = sent(&env);
    assert_eq!(body["system"][1], json!({"cachePoint": {"type": "default"}}));
    assert_eq!(
        body["messages"][0]["content"][1],
        json!({"cachePoint": {"type": "default", "ttl": "1h"}})
    );
    assert_eq!(
        body["toolConfig"]["tools"][1],
        json!({"cachePoint": {"type": "default"}})
    );
}

#[tokio::test]
async fn ignored_fields_are_listed_in_a_response_header() {
    let (env, _dir) = start().await;
    let body = json!({"model": "plain", "messages": [{"role": "user", "name": "bob", "content": "x"}],
        "seed": 7, "store": false, "cache_control_is_not_a_field": null});
    let reply = env.post_json("/v1/chat/completions", &body).await;
    assert_eq!(reply.status, 400, "unknown fields are still rejected");
    let mut body = body;
    body.as_object_mut()
        .unwrap()
        .remove("cache_control_is_not_a_field");
    let reply = env.post_json("/v1/chat/completions", &body).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.headers["x-ai-gateway-ignored-params"],
        "seed,store,messages[].name"
    );
    body["stream"] = json!(true);
    let reply = env.post_json("/v1/chat/completions", &body).await;
    assert_eq!(
        reply.headers["x-ai-gateway-ignored-params"],
        "seed,store,messages[].name"
    );
    let reply = env
        .post_json(
            "/v1/chat/completions",
            &json!({"model": "plain", "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    assert!(reply.headers.get("x-ai-gateway-ignored-params").is_none());
}

#[tokio::test]
async fn bedrock_extension_and_model_guardrail_reach_the_request() {
    let (env, _dir) = start().await;
    complete(
        &env,
        &json!({"model": "guarded", "user": "user-7", "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    let body = sent(&env);
    assert_eq!(
        body["guardrailConfig"],
        json!({"guardrailIdentifier": "gr-default", "guardrailVersion": "2"})
    );
    assert_eq!(body["requestMetadata"], json!({"user": "user-7"}));
    complete(
        &env,
        &json!({"model": "guarded", "messages": [{"role": "user", "content": "x"}],
            "bedrock": {"guardrailConfig": {"guardrailIdentifier": "gr-mine", "guardrailVersion": "DRAFT", "trace": "enabled"},
                        "performanceConfig": {"latency": "optimized"}, "additionalModelRequestFields": {"top_k": 40}}}),
    )
    .await;
    let body = sent(&env);
    assert_eq!(body["guardrailConfig"]["guardrailIdentifier"], "gr-mine");
    assert_eq!(body["performanceConfig"], json!({"latency": "optimized"}));
    assert_eq!(body["additionalModelRequestFields"], json!({"top_k": 40}));
    let v = complete(
        &env,
        &json!({"model": "guarded", "messages": [{"role": "user", "content": "x mock:stop=guardrail_intervened mock:text=Blocked."}]}),
    )
    .await;
    assert_eq!(v["choices"][0]["finish_reason"], "content_filter");
}

#[tokio::test]
async fn deprecated_functions_get_function_call_replies() {
    let (env, _dir) = start().await;
    let functions = json!([{"name": "get_time", "parameters": {"type": "object", "properties": {}}}]);
    let v = complete(
        &env,
        &json!({"model": "claude", "messages": [{"role": "user", "content": "x mock:tool=get_time:{}"}], "functions": functions}),
    )
    .await;
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "function_call");
    assert_eq!(
        choice["message"]["function_call"],
        json!({"name": "get_time", "arguments": "{}"})
    );
    let (message, finish, _) = stream(
        &env,
        &json!({"model": "claude", "messages": [{"role": "user", "content": "x mock:tool=get_time:{}"}], "functions": functions}),
    )
    .await;
    assert_eq!(finish, "function_call");
    assert_eq!(
        message["function_call"],
        json!({"name": "get_time", "arguments": "{}"})
    );
    let v = complete(
        &env,
        &json!({"model": "claude", "functions": functions, "messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": null, "function_call": {"name": "get_time", "arguments": "{}"}},
            {"role": "function", "name": "get_time", "content": "14:05 mock:text=It_is_14:05."}]}),
    )
    .await;
    assert_eq!(v["choices"][0]["message"]["content"], "It is 14:05.");
}
