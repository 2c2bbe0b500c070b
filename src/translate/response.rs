//! Converse response → `chat.completion` (reference: mapping §5, §6), and the stop-reason and
//! usage rules the stream translator shares.

use serde::Deserialize;

use crate::bedrock::converse::{ConverseResponse, TokenUsage};
use crate::error::Error;
use crate::openai::response::{self, ChatCompletion, CompletionUsage, MessageReasoning, ToolCall};

/// The values of a response that do not come from Bedrock's body: the caller picks them
/// (request id, clock, alias) so the translation stays pure.
#[derive(Debug, Clone, Copy)]
pub struct ResponseMeta<'a> {
    /// The complete response id, `chatcmpl-…`.
    pub id: &'a str,
    /// Unix seconds.
    pub created: u64,
    /// The model alias the client sent.
    pub model: &'a str,
}

/// How a reply must be shaped, as the request translation decided (see
/// [`crate::translate::request::Translation`]). The default is the plain mapping.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseShape {
    /// The structured-output emulation tool: its input is the JSON the client asked for, so it
    /// is returned as `content`, never as a tool call.
    pub json_tool: Option<Box<str>>,
    /// The client used the deprecated `functions`: the first call is returned as
    /// `function_call` with `finish_reason` `function_call` (the old API has one call per
    /// turn; further calls are dropped).
    pub legacy_functions: bool,
    /// The client sent `tool_choice: "none"`: calls the model makes anyway are dropped.
    pub suppress_tool_calls: bool,
}

/// What a tool-use block of the reply becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolUseRole {
    /// A tool call (or the legacy `function_call`).
    Call,
    /// Its input is the message content (structured-output emulation).
    Content,
    /// Not surfaced.
    Dropped,
}

impl ResponseShape {
    /// What a tool-use block calling `name` becomes.
    pub fn tool_use_role(&self, name: &str) -> ToolUseRole {
        if self.json_tool.as_deref() == Some(name) {
            ToolUseRole::Content
        } else if self.suppress_tool_calls {
            ToolUseRole::Dropped
        } else {
            ToolUseRole::Call
        }
    }

    /// The finish reason to report for a turn with tool calls, per the shape.
    pub fn call_finish_reason(&self, reason: &'static str) -> &'static str {
        if self.legacy_functions && reason == "tool_calls" {
            "function_call"
        } else {
            reason
        }
    }
}

/// Token counts as Bedrock reports them. `input_tokens` excludes cached and cache-written
/// tokens, so OpenAI's `prompt_tokens` is the sum of the three (reference: mapping §6.2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Input tokens neither read from nor written to the prompt cache.
    pub input_tokens: u64,
    /// Generated tokens.
    pub output_tokens: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read_tokens: u64,
    /// Input tokens written to the prompt cache.
    pub cache_write_tokens: u64,
}

impl Usage {
    /// OpenAI's `prompt_tokens`: every input token, cached or not.
    pub fn prompt_tokens(&self) -> u64 {
        self.input_tokens
            .saturating_add(self.cache_read_tokens)
            .saturating_add(self.cache_write_tokens)
    }

    /// OpenAI's `total_tokens`, computed rather than copied from Bedrock's `totalTokens`.
    pub fn total_tokens(&self) -> u64 {
        self.prompt_tokens().saturating_add(self.output_tokens)
    }

    /// The OpenAI `usage` object.
    pub fn to_openai(&self) -> CompletionUsage {
        CompletionUsage {
            prompt_tokens: self.prompt_tokens(),
            completion_tokens: self.output_tokens,
            total_tokens: self.total_tokens(),
            cached_tokens: self.cache_read_tokens,
            cache_write_tokens: self.cache_write_tokens,
        }
    }
}

impl From<&TokenUsage> for Usage {
    fn from(u: &TokenUsage) -> Self {
        Self {
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cache_read_tokens: u.cache_read_input_tokens,
            cache_write_tokens: u.cache_write_input_tokens,
        }
    }
}

/// Maps Bedrock's `stopReason` to OpenAI's `finish_reason` (reference: mapping §6.1).
///
/// `malformed_model_output` and `malformed_tool_use` are errors: `Err` carries that word, which
/// becomes the error code. `tool_use` is `tool_calls` only if a tool call was actually emitted.
/// Unknown future values are reported as `stop`.
pub fn finish_reason(stop_reason: &str, has_tool_calls: bool) -> Result<&'static str, &'static str> {
    match stop_reason {
        "end_turn" | "stop_sequence" => Ok("stop"),
        "max_tokens" | "model_context_window_exceeded" => Ok("length"),
        "tool_use" if has_tool_calls => Ok("tool_calls"),
        "guardrail_intervened" | "content_filtered" => Ok("content_filter"),
        "malformed_model_output" => Err("malformed_model_output"),
        "malformed_tool_use" => Err("malformed_tool_use"),
        "tool_use" => Ok("stop"),
        other => {
            tracing::debug!(stop_reason = other, "unknown Bedrock stopReason reported as stop");
            Ok("stop")
        }
    }
}

/// Translates a Converse response body into a `chat.completion` body appended to `out`,
/// returning the usage for metrics. The body is parsed in place (simd-json rewrites it and
/// pads it with spaces: [`crate::json::parse_in_place`]).
///
/// A body that is not a Converse response, or has no `output.message`, is
/// [`Error::UpstreamProtocol`] (502); the `malformed_*` stop reasons are
/// [`Error::MalformedModelOutput`].
pub fn to_chat_completion(
    converse_body: &mut Vec<u8>,
    meta: &ResponseMeta<'_>,
    out: &mut Vec<u8>,
) -> Result<Usage, Error> {
    to_chat_completion_with(converse_body, meta, &ResponseShape::default(), out)
}

/// [`to_chat_completion`] for a reply shaped by the request (structured-output emulation,
/// legacy functions, suppressed tool calls).
pub fn to_chat_completion_with(
    converse_body: &mut Vec<u8>,
    meta: &ResponseMeta<'_>,
    shape: &ResponseShape,
    out: &mut Vec<u8>,
) -> Result<Usage, Error> {
    let body = crate::json::parse_in_place(converse_body, |d| ConverseResponse::deserialize(d))
        .and_then(|body| body)
        .map_err(unreadable)?;
    let message = body
        .output
        .and_then(|o| o.message)
        .ok_or_else(|| Error::UpstreamProtocol("the Converse response has no output message".into()))?;

    let mut texts: Vec<&str> = Vec::new();
    let mut calls: Vec<ToolCall<'_>> = Vec::new();
    let mut reasoning: Vec<&str> = Vec::new();
    let mut signature: Option<&str> = None;
    let mut redacted: Vec<&str> = Vec::new();
    for block in &message.content {
        if let Some(text) = block.text {
            texts.push(text);
        } else if let Some(tool_use) = &block.tool_use {
            let arguments = tool_use.input.as_ref().map_or("{}", |d| d.0.as_str());
            match shape.tool_use_role(tool_use.name) {
                ToolUseRole::Call => calls.push(ToolCall {
                    id: tool_use.tool_use_id,
                    name: tool_use.name,
                    arguments,
                }),
                ToolUseRole::Content => texts.push(arguments),
                ToolUseRole::Dropped => {
                    tracing::debug!(
                        tool = tool_use.name,
                        "tool call dropped: the client sent tool_choice none"
                    );
                }
            }
        } else if let Some(cited) = &block.citations_content {
            texts.extend(cited.content.iter().filter_map(|c| c.text));
        } else if let Some(r) = &block.reasoning_content {
            // Reasoning never goes into `content` (reference: mapping §6.3).
            if let Some(t) = &r.reasoning_text {
                reasoning.push(t.text);
                signature = t.signature.or(signature);
            }
            redacted.extend(r.redacted_content);
        }
    }

    let mut function_call = None;
    if shape.legacy_functions {
        if calls.len() > 1 {
            tracing::debug!(
                calls = calls.len(),
                "legacy function_call reply keeps only the first call"
            );
        }
        function_call = calls.first().copied();
        calls.clear();
    }
    let has_calls = !calls.is_empty() || function_call.is_some();
    let finish_reason = finish_reason(body.stop_reason.unwrap_or("end_turn"), has_calls)
        .map_err(Error::MalformedModelOutput)?;
    let usage = body.usage.as_ref().map(Usage::from).unwrap_or_default();
    response::write_chat_completion(
        out,
        &ChatCompletion {
            id: meta.id,
            created: meta.created,
            model: meta.model,
            content: &texts,
            reasoning: MessageReasoning {
                text: &reasoning,
                signature,
                redacted: &redacted,
            },
            tool_calls: &calls,
            function_call,
            finish_reason: shape.call_finish_reason(finish_reason),
            usage: usage.to_openai(),
            service_tier: body.service_tier.map(|t| t.tier),
        },
    );
    Ok(usage)
}

fn unreadable(e: simd_json::Error) -> Error {
    Error::UpstreamProtocol(format!("could not read the Converse response: {e}").into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const META: ResponseMeta<'static> = ResponseMeta {
        id: "chatcmpl-1",
        created: 1_714_564_800,
        model: "claude-3-haiku",
    };

    fn run(body: &str) -> Result<(serde_json::Value, Usage), Error> {
        let mut raw = body.as_bytes().to_vec();
        let mut out = Vec::new();
        let usage = to_chat_completion(&mut raw, &META, &mut out)?;
        Ok((serde_json::from_slice(&out).unwrap(), usage))
    }

    #[test]
    fn stop_reasons_map_per_reference_table() {
        assert_eq!(finish_reason("end_turn", false), Ok("stop"));
        assert_eq!(finish_reason("stop_sequence", false), Ok("stop"));
        assert_eq!(finish_reason("max_tokens", false), Ok("length"));
        assert_eq!(
            finish_reason("model_context_window_exceeded", false),
            Ok("length")
        );
        assert_eq!(finish_reason("tool_use", true), Ok("tool_calls"));
        assert_eq!(finish_reason("tool_use", false), Ok("stop"));
        assert_eq!(finish_reason("guardrail_intervened", false), Ok("content_filter"));
        assert_eq!(finish_reason("content_filtered", false), Ok("content_filter"));
        assert_eq!(
            finish_reason("malformed_model_output", false),
            Err("malformed_model_output")
        );
        assert_eq!(
            finish_reason("malformed_tool_use", true),
            Err("malformed_tool_use")
        );
        assert_eq!(finish_reason("something_new", false), Ok("stop"));
    }

    #[test]
    fn prompt_tokens_include_cache_reads_and_writes() {
        let u = Usage {
            input_tokens: 12,
            output_tokens: 40,
            cache_read_tokens: 100,
            cache_write_tokens: 5,
        };
        assert_eq!(u.prompt_tokens(), 117);
        assert_eq!(u.total_tokens(), 157);
    }

    #[test]
    fn text_blocks_are_concatenated_and_tool_uses_become_tool_calls() {
        let (v, usage) = run(r#"{"output":{"message":{"role":"assistant","content":[
                {"text":"Let me "},{"text":"check."},
                {"toolUse":{"toolUseId":"tooluse_1","name":"get_weather","input":{"city":"Paris"}}},
                {"toolUse":{"toolUseId":"tooluse_2","name":"get_time","input":{}}}]}},
                "stopReason":"tool_use","usage":{"inputTokens":10,"outputTokens":5,"totalTokens":15},
                "metrics":{"latencyMs":1}}"#)
        .unwrap();
        let message = &v["choices"][0]["message"];
        assert_eq!(message["content"], "Let me check.");
        assert_eq!(message["tool_calls"][0]["id"], "tooluse_1");
        assert_eq!(
            message["tool_calls"][0]["function"]["arguments"],
            "{\"city\":\"Paris\"}"
        );
        assert_eq!(message["tool_calls"][1]["function"]["arguments"], "{}");
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(usage.output_tokens, 5);
    }

    #[test]
    fn only_tool_calls_gives_null_content() {
        let (v, _) = run(r#"{"output":{"message":{"role":"assistant","content":[
                {"toolUse":{"toolUseId":"t","name":"f","input":{}}}]}},"stopReason":"tool_use",
                "usage":{"inputTokens":1,"outputTokens":1,"totalTokens":2},"metrics":{"latencyMs":1}}"#)
        .unwrap();
        assert!(v["choices"][0]["message"]["content"].is_null());
    }

    #[test]
    fn no_blocks_gives_empty_string_content() {
        let (v, _) = run(
            r#"{"output":{"message":{"role":"assistant","content":[]}},"stopReason":"end_turn",
                "usage":{"inputTokens":1,"outputTokens":0,"totalTokens":1},"metrics":{"latencyMs":1}}"#,
        )
        .unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "");
    }

    #[test]
    fn reasoning_is_never_put_into_content() {
        let (v, _) = run(r#"{"output":{"message":{"role":"assistant","content":[
                {"reasoningContent":{"reasoningText":{"text":"secret","signature":"s"}}},{"text":"Hi"}]}},
                "stopReason":"end_turn","usage":{"inputTokens":1,"outputTokens":1,"totalTokens":2},
                "metrics":{"latencyMs":1}}"#)
        .unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "Hi");
    }

    #[test]
    fn malformed_stop_reasons_are_errors_with_that_code() {
        for word in ["malformed_model_output", "malformed_tool_use"] {
            let body = format!(
                r#"{{"output":{{"message":{{"role":"assistant","content":[]}}}},"stopReason":"{word}",
                "usage":{{"inputTokens":1,"outputTokens":1,"totalTokens":2}},"metrics":{{"latencyMs":1}}}}"#
            );
            let err = run(&body).unwrap_err();
            assert_eq!(err.status(), http::StatusCode::BAD_GATEWAY);
            assert_eq!(err.code(), Some(word));
            assert_eq!(err.openai_type(), "server_error");
        }
    }

    #[test]
    fn missing_output_is_an_upstream_protocol_error() {
        let err = run(r#"{"stopReason":"end_turn","usage":{"inputTokens":1}}"#).unwrap_err();
        assert!(matches!(err, Error::UpstreamProtocol(_)));
        assert_eq!(err.status(), http::StatusCode::BAD_GATEWAY);
    }

    #[test]
    fn unreadable_body_is_an_upstream_protocol_error() {
        for body in ["", "<html>", "[1,2]", r#"{"output":{"message":{"content":"x"}}}"#] {
            let err = run(body).unwrap_err();
            assert!(matches!(err, Error::UpstreamProtocol(_)), "{body}");
        }
    }

    #[test]
    fn service_tier_is_echoed_when_reported() {
        let (v, _) = run(
            r#"{"output":{"message":{"role":"assistant","content":[{"text":"x"}]}},"stopReason":"end_turn",
                "usage":{"inputTokens":1,"outputTokens":1,"totalTokens":2},"metrics":{"latencyMs":1},
                "serviceTier":{"type":"priority"}}"#,
        )
        .unwrap();
        assert_eq!(v["service_tier"], "priority");
    }

    fn run_shaped(body: &str, shape: &ResponseShape) -> serde_json::Value {
        let mut raw = body.as_bytes().to_vec();
        let mut out = Vec::new();
        to_chat_completion_with(&mut raw, &META, shape, &mut out).unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    const TWO_CALLS: &str = r#"{"output":{"message":{"role":"assistant","content":[
        {"toolUse":{"toolUseId":"tooluse_1","name":"f","input":{"a":1}}},
        {"toolUse":{"toolUseId":"tooluse_2","name":"g","input":{}}}]}},"stopReason":"tool_use",
        "usage":{"inputTokens":1,"outputTokens":1,"totalTokens":2},"metrics":{"latencyMs":1}}"#;

    #[test]
    fn reasoning_is_returned_in_extension_members() {
        let (v, _) = run(r#"{"output":{"message":{"role":"assistant","content":[
                {"reasoningContent":{"reasoningText":{"text":"Let me ","signature":"c2ln"}}},
                {"reasoningContent":{"redactedContent":"QUJD"}},{"text":"Hi"}]}},
                "stopReason":"end_turn","usage":{"inputTokens":1,"outputTokens":1,"totalTokens":2},
                "metrics":{"latencyMs":1}}"#)
        .unwrap();
        let message = &v["choices"][0]["message"];
        assert_eq!(message["content"], "Hi");
        assert_eq!(message["reasoning_content"], "Let me ");
        assert_eq!(message["reasoning_signature"], "c2ln");
        assert_eq!(message["redacted_reasoning"], serde_json::json!(["QUJD"]));
    }

    #[test]
    fn messages_without_reasoning_carry_no_extension_members() {
        let (v, _) = run(
            r#"{"output":{"message":{"role":"assistant","content":[{"text":"Hi"}]}},
                "stopReason":"end_turn","usage":{"inputTokens":1,"outputTokens":1,"totalTokens":2},
                "metrics":{"latencyMs":1}}"#,
        )
        .unwrap();
        let message = v["choices"][0]["message"].as_object().unwrap();
        assert!(!message.contains_key("reasoning_content"));
        assert!(!message.contains_key("reasoning_signature"));
        assert!(!message.contains_key("redacted_reasoning"));
    }

    #[test]
    fn structured_output_tool_input_becomes_the_content() {
        let shape = ResponseShape {
            json_tool: Some("g".into()),
            ..ResponseShape::default()
        };
        let v = run_shaped(
            r#"{"output":{"message":{"role":"assistant","content":[
                {"toolUse":{"toolUseId":"tooluse_1","name":"g","input":{"n":42,"s":"x"}}}]}},"stopReason":"tool_use",
                "usage":{"inputTokens":1,"outputTokens":1,"totalTokens":2},"metrics":{"latencyMs":1}}"#,
            &shape,
        );
        let choice = &v["choices"][0];
        assert_eq!(choice["message"]["content"], r#"{"n":42,"s":"x"}"#);
        assert!(choice["message"].get("tool_calls").is_none());
        assert_eq!(choice["finish_reason"], "stop");
    }

    #[test]
    fn legacy_functions_get_the_first_call_as_function_call() {
        let shape = ResponseShape {
            legacy_functions: true,
            ..ResponseShape::default()
        };
        let v = run_shaped(TWO_CALLS, &shape);
        let choice = &v["choices"][0];
        assert!(choice["message"]["content"].is_null());
        assert_eq!(
            choice["message"]["function_call"],
            serde_json::json!({"name": "f", "arguments": "{\"a\":1}"})
        );
        assert!(choice["message"].get("tool_calls").is_none());
        assert_eq!(choice["finish_reason"], "function_call");
    }

    #[test]
    fn suppressed_tool_calls_are_dropped() {
        let shape = ResponseShape {
            suppress_tool_calls: true,
            ..ResponseShape::default()
        };
        let v = run_shaped(TWO_CALLS, &shape);
        let choice = &v["choices"][0];
        assert_eq!(choice["message"]["content"], "");
        assert!(choice["message"].get("tool_calls").is_none());
        assert_eq!(choice["finish_reason"], "stop");
    }
}
