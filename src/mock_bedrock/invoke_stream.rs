//! The mock's InvokeModelWithResponseStream for Anthropic Messages bodies: the words of the
//! last user turn come back as `content_block_delta` chunks between `message_start` and
//! `message_stop`, each model-native event base64-encoded in a `chunk` event's `bytes`, and
//! the last one carries `amazon-bedrock-invocationMetrics` as Bedrock adds it. All frames go
//! out in one body write: the mock's streaming of frames one by one is ConverseStream's.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::{HeaderValue, Response, header};
use serde::Deserialize;

use super::reply::MockBody;
use super::{insert_request_id, validation_error};
use crate::bedrock::eventstream::encode_event;
use crate::json;

#[derive(Deserialize)]
struct MessagesRequest {
    messages: Vec<NativeMessage>,
}

#[derive(Deserialize)]
struct NativeMessage {
    role: String,
    content: NativeContent,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NativeContent {
    Text(String),
    Blocks(Vec<NativeBlock>),
}

#[derive(Deserialize)]
struct NativeBlock {
    #[serde(default)]
    text: String,
}

/// Answers an InvokeModelWithResponseStream call for `model_id`.
pub(super) fn invoke_stream(request_id: &str, model_id: &str, body: &[u8]) -> Response<MockBody> {
    let invalid = |message: &str| validation_error(request_id, message);
    if !model_id.contains("anthropic.") {
        return invalid("The mock Bedrock runtime streams InvokeModel for Anthropic models only.");
    }
    let mut scratch = body.to_vec();
    let Ok(request) = simd_json::serde::from_slice::<MessagesRequest>(&mut scratch) else {
        return invalid("Malformed input request: expected {\"messages\": [...], ...}");
    };
    let text = |content: &NativeContent| match content {
        NativeContent::Text(text) => text.clone(),
        NativeContent::Blocks(blocks) => blocks
            .iter()
            .map(|b| b.text.as_str())
            .collect::<Vec<_>>()
            .join(" "),
    };
    let input_tokens: u64 = request
        .messages
        .iter()
        .map(|m| text(&m.content).split_whitespace().count() as u64)
        .sum::<u64>()
        .max(1);
    let Some(last) = request.messages.iter().rev().find(|m| m.role == "user") else {
        return invalid("Malformed input request: no user message");
    };
    let last = text(&last.content);
    let words: Vec<&str> = last.split_whitespace().collect();
    let output_tokens = words.len().max(1) as u64;

    let mut frames = Vec::with_capacity(1024);
    let mut chunk = |native: &[u8]| {
        let mut payload = Vec::with_capacity(native.len() * 4 / 3 + 16);
        payload.extend_from_slice(b"{\"bytes\":\"");
        payload.extend_from_slice(BASE64.encode(native).as_bytes());
        payload.extend_from_slice(b"\"}");
        encode_event("chunk", &payload, &mut frames);
    };
    let mut native = Vec::with_capacity(256);
    native.extend_from_slice(b"{\"type\":\"message_start\",\"message\":{\"id\":\"msg_mock\",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
    json::write_str(&mut native, model_id);
    native.extend_from_slice(b",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":");
    json::write_u64(&mut native, input_tokens);
    native.extend_from_slice(b",\"output_tokens\":1}}}");
    chunk(&native);
    chunk(br#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#);
    for word in &words {
        native.clear();
        native.extend_from_slice(
            br#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"#,
        );
        json::write_str(&mut native, &format!("{word} "));
        native.extend_from_slice(b"}}");
        chunk(&native);
    }
    chunk(br#"{"type":"content_block_stop","index":0}"#);
    native.clear();
    native.extend_from_slice(br#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":"#);
    json::write_u64(&mut native, output_tokens);
    native.extend_from_slice(b"}}");
    chunk(&native);
    native.clear();
    native.extend_from_slice(
        br#"{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":"#,
    );
    json::write_u64(&mut native, input_tokens);
    native.extend_from_slice(b",\"outputTokenCount\":");
    json::write_u64(&mut native, output_tokens);
    native.extend_from_slice(b",\"invocationLatency\":1,\"firstByteLatency\":1}}");
    chunk(&native);

    let mut response = Response::new(MockBody::full(frames));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.amazon.eventstream"),
    );
    headers.insert(
        "x-amzn-bedrock-content-type",
        HeaderValue::from_static("application/json"),
    );
    insert_request_id(headers, request_id);
    response
}
