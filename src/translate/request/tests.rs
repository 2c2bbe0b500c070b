use serde_json::{Value, json};

use super::*;
use crate::error::Error;

/// Parses `body` and translates it; the Converse body as a JSON value.
fn translate_with(body: &str, opts: &RequestOptions) -> Result<Value, InvalidRequest> {
    let mut buf = body.as_bytes().to_vec();
    let req = ChatCompletionRequest::parse(&mut buf)?;
    let mut out = Vec::new();
    to_converse(&req, opts, &mut out)?;
    Ok(serde_json::from_slice(&out).unwrap())
}

/// Translates `body` for a model with `model` options (YAML) and the fetched `images`; the
/// Converse body as a JSON value and what else the translation decided.
fn translate_for(
    body: &str,
    model: &str,
    images: &[FetchedImage],
) -> Result<(Value, Translation), InvalidRequest> {
    let model: ModelOptions = serde_yaml::from_str(model).unwrap();
    assert!(model.problems().is_empty(), "{:?}", model.problems());
    let mut buf = body.as_bytes().to_vec();
    let req = ChatCompletionRequest::parse(&mut buf)?;
    let opts = RequestOptions::default();
    let cx = Context {
        options: &opts,
        model: &model,
        images,
    };
    let mut out = Vec::new();
    let translation = to_converse_with(&req, &cx, &mut out)?;
    Ok((serde_json::from_slice(&out).unwrap(), translation))
}

#[track_caller]
fn rejected_for(body: &str, model: &str, param: &str, code: &str) -> InvalidRequest {
    let err = translate_for(body, model, &[]).unwrap_err();
    assert_eq!(err.param.as_deref(), Some(param), "{err:?}");
    assert_eq!(err.code, Some(code), "{err:?}");
    err
}

fn translate(body: &str) -> Result<Value, InvalidRequest> {
    translate_with(body, &RequestOptions::default())
}

/// A request with one user message plus the given top-level members.
fn mk_body(extra: &str) -> String {
    let sep = if extra.is_empty() { "" } else { "," };
    format!(r#"{{"model":"m","messages":[{{"role":"user","content":"hi"}}]{sep}{extra}}}"#)
}

fn with_messages(messages: &str) -> String {
    format!(r#"{{"model":"m","messages":{messages}}}"#)
}

#[track_caller]
fn assert_rejected(body: &str, param: &str, code: &str) -> InvalidRequest {
    let err = translate(body).unwrap_err();
    assert_eq!(err.param.as_deref(), Some(param), "{err:?}");
    assert_eq!(err.code, Some(code), "{err:?}");
    assert_eq!(Error::from(err.clone()).status(), http::StatusCode::BAD_REQUEST);
    err
}

// === message shape (mapping §3) ===

#[test]
fn plain_user_message_becomes_one_text_block() {
    assert_eq!(
        translate(&mk_body("")).unwrap(),
        json!({"messages": [{"role": "user", "content": [{"text": "hi"}]}]})
    );
}

#[test]
fn system_and_developer_are_hoisted_in_order_with_empty_text_dropped() {
    let v = translate(&with_messages(
        r#"[{"role":"system","content":"You are a travel assistant."},
            {"role":"developer","content":[{"type":"text","text":"Answer in English."},{"type":"text","text":""}]},
            {"role":"user","content":"Hi"},
            {"role":"system","content":""},
            {"role":"assistant","content":"Hello"},
            {"role":"developer","content":"Be brief."},
            {"role":"user","content":"Bye"}]"#,
    ))
    .unwrap();
    assert_eq!(
        v["system"],
        json!([{"text": "You are a travel assistant."}, {"text": "Answer in English."}, {"text": "Be brief."}])
    );
    assert_eq!(
        v["messages"],
        json!([
            {"role": "user", "content": [{"text": "Hi"}]},
            {"role": "assistant", "content": [{"text": "Hello"}]},
            {"role": "user", "content": [{"text": "Bye"}]}
        ])
    );
}

#[test]
fn consecutive_same_role_messages_merge_into_one_turn() {
    let v = translate(&with_messages(
        r#"[{"role":"user","content":"a"},{"role":"user","content":[{"type":"text","text":"b"},{"type":"text","text":"c"}]},
            {"role":"assistant","content":"d"},{"role":"assistant","content":[{"type":"text","text":"e"}]},
            {"role":"user","content":"f"}]"#,
    ))
    .unwrap();
    assert_eq!(
        v["messages"],
        json!([
            {"role": "user", "content": [{"text": "a"}, {"text": "b"}, {"text": "c"}]},
            {"role": "assistant", "content": [{"text": "d"}, {"text": "e"}]},
            {"role": "user", "content": [{"text": "f"}]}
        ])
    );
}

#[test]
fn empty_assistant_messages_are_dropped_and_their_neighbours_merge() {
    let v = translate(&with_messages(
        r#"[{"role":"user","content":"a"},{"role":"assistant","content":""},{"role":"assistant","content":null},
            {"role":"user","content":"b"}]"#,
    ))
    .unwrap();
    assert_eq!(
        v["messages"],
        json!([{"role": "user", "content": [{"text": "a"}, {"text": "b"}]}])
    );
}

#[test]
fn empty_user_text_merges_away_when_the_turn_has_other_text() {
    let v = translate(&with_messages(
        r#"[{"role":"user","content":""},{"role":"user","content":[{"type":"text","text":""},{"type":"text","text":"x"}]}]"#,
    ))
    .unwrap();
    assert_eq!(
        v["messages"],
        json!([{"role": "user", "content": [{"text": "x"}]}])
    );
}

#[test]
fn user_turn_with_no_text_is_rejected() {
    let err = assert_rejected(
        &with_messages(
            r#"[{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"user","content":""}]"#,
        ),
        "messages[2].content",
        "invalid_value",
    );
    assert_eq!(
        err.message,
        "message content must not be empty or only whitespace"
    );
}

#[test]
fn blank_text_is_dropped_like_empty_text() {
    // Bedrock rejects a text block holding only whitespace.
    let v = translate(&with_messages(
        r#"[{"role":"system","content":" \n"},{"role":"user","content":[{"type":"text","text":"\r"},{"type":"text","text":"x"}]},
            {"role":"assistant","content":"\t"},{"role":"user","content":"y"}]"#,
    ))
    .unwrap();
    assert!(v.get("system").is_none(), "{v}");
    assert_eq!(
        v["messages"],
        json!([{"role": "user", "content": [{"text": "x"}, {"text": "y"}]}])
    );
    assert_rejected(
        &with_messages(r#"[{"role":"user","content":"\r\n "}]"#),
        "messages[0].content",
        "invalid_value",
    );
}

#[test]
fn assistant_refusal_parts_are_sent_as_text() {
    let v = translate(&with_messages(
        r#"[{"role":"user","content":"a"},{"role":"assistant","content":[{"type":"refusal","refusal":"I can't."}]},
            {"role":"user","content":"why"}]"#,
    ))
    .unwrap();
    assert_eq!(
        v["messages"][1],
        json!({"role": "assistant", "content": [{"text": "I can't."}]})
    );
}

#[test]
fn trailing_assistant_message_is_kept_as_a_prefill() {
    let v = translate(&with_messages(
        r#"[{"role":"user","content":"a"},{"role":"assistant","content":"The answer is"}]"#,
    ))
    .unwrap();
    assert_eq!(v["messages"][1]["role"], "assistant");
}

#[test]
fn message_names_are_ignored() {
    let v = translate(&with_messages(
        r#"[{"role":"user","name":"alice","content":"a"}]"#,
    ))
    .unwrap();
    assert_eq!(
        v["messages"],
        json!([{"role": "user", "content": [{"text": "a"}]}])
    );
}

#[test]
fn conversation_must_start_with_a_user_message() {
    for messages in [
        r#"[{"role":"assistant","content":"hi"},{"role":"user","content":"a"}]"#,
        r#"[{"role":"system","content":"only system"}]"#,
        r#"[{"role":"system","content":"s"},{"role":"assistant","content":"x"}]"#,
    ] {
        let err = assert_rejected(&with_messages(messages), "messages", "invalid_value");
        assert_eq!(err.message, "conversation must start with a user message");
    }
}

#[test]
fn system_text_before_the_first_user_turn_does_not_count_as_a_turn() {
    let v = translate(&with_messages(
        r#"[{"role":"system","content":"s"},{"role":"user","content":"u"}]"#,
    ))
    .unwrap();
    assert_eq!(v["messages"][0]["role"], "user");
}

#[test]
fn empty_messages_array_is_rejected() {
    assert_rejected(&with_messages("[]"), "messages", "invalid_value");
}

#[test]
fn missing_content_is_named() {
    assert_rejected(
        &with_messages(r#"[{"role":"user"}]"#),
        "messages[0].content",
        "missing_required_parameter",
    );
    assert_rejected(
        &with_messages(r#"[{"role":"system","content":null},{"role":"user","content":"a"}]"#),
        "messages[0].content",
        "missing_required_parameter",
    );
    assert_rejected(
        &with_messages(r#"[{"role":"user","content":[{"type":"text"}]}]"#),
        "messages[0].content[0].text",
        "missing_required_parameter",
    );
}

#[test]
fn part_types_a_role_cannot_carry_are_invalid() {
    assert_rejected(
        &with_messages(
            r#"[{"role":"system","content":[{"type":"image_url","image_url":{"url":"x"}}]},{"role":"user","content":"a"}]"#,
        ),
        "messages[0].content[0].type",
        "invalid_value",
    );
    assert_rejected(
        &with_messages(r#"[{"role":"user","content":[{"type":"refusal","refusal":"no"}]}]"#),
        "messages[0].content[0].type",
        "invalid_value",
    );
    let err = assert_rejected(
        &with_messages(r#"[{"role":"user","content":[{"type":"video","video":{}}]}]"#),
        "messages[0].content[0].type",
        "invalid_value",
    );
    assert_eq!(err.message, "unknown content part type `video`");
}

// === inference parameters (mapping §2) ===

#[test]
fn max_completion_tokens_is_preferred_over_max_tokens() {
    let v = translate(&mk_body(r#""max_completion_tokens":100,"max_tokens":50"#)).unwrap();
    assert_eq!(v["inferenceConfig"], json!({"maxTokens": 100}));
    let v = translate(&mk_body(r#""max_tokens":50"#)).unwrap();
    assert_eq!(v["inferenceConfig"], json!({"maxTokens": 50}));
}

#[test]
fn default_max_tokens_applies_only_when_the_client_sets_no_limit() {
    let opts = RequestOptions {
        default_max_tokens: Some(4096),
        ..RequestOptions::default()
    };
    let v = translate_with(&mk_body(""), &opts).unwrap();
    assert_eq!(v["inferenceConfig"], json!({"maxTokens": 4096}));
    let v = translate_with(&mk_body(r#""max_tokens":7"#), &opts).unwrap();
    assert_eq!(v["inferenceConfig"], json!({"maxTokens": 7}));
}

#[test]
fn no_limits_means_no_inference_config() {
    let v = translate(&mk_body("")).unwrap();
    assert!(v.get("inferenceConfig").is_none());
    assert!(v.get("system").is_none());
}

#[test]
fn token_limits_below_one_or_above_i32_are_invalid() {
    assert_rejected(
        &mk_body(r#""max_completion_tokens":0"#),
        "max_completion_tokens",
        "invalid_value",
    );
    assert_rejected(&mk_body(r#""max_tokens":-5"#), "max_tokens", "invalid_value");
    assert_rejected(
        &mk_body(r#""max_tokens":2147483648"#),
        "max_tokens",
        "invalid_value",
    );
    let v = translate(&mk_body(r#""max_tokens":2147483647"#)).unwrap();
    assert_eq!(v["inferenceConfig"]["maxTokens"], 2_147_483_647);
}

#[test]
fn temperature_up_to_one_passes_through() {
    for t in ["0", "0.3", "1", "1.0"] {
        let v = translate(&mk_body(&format!(r#""temperature":{t}"#))).unwrap();
        assert_eq!(
            v["inferenceConfig"]["temperature"].as_f64(),
            Some(t.parse::<f64>().unwrap())
        );
    }
}

#[test]
fn temperature_above_one_is_rejected_by_default() {
    let err = assert_rejected(
        &mk_body(r#""temperature":1.5"#),
        "temperature",
        "unsupported_value",
    );
    assert_eq!(
        err.message,
        "temperature 1.5 is above 1, the maximum Bedrock accepts; send a value between 0 and 1"
    );
}

#[test]
fn temperature_above_one_is_clamped_when_configured() {
    let opts = RequestOptions {
        temperature: TemperaturePolicy::Clamp,
        default_max_tokens: None,
    };
    let v = translate_with(&mk_body(r#""temperature":2"#), &opts).unwrap();
    assert_eq!(v["inferenceConfig"]["temperature"].as_f64(), Some(1.0));
}

#[test]
fn temperature_outside_openai_range_is_invalid_under_any_policy() {
    let clamp = RequestOptions {
        temperature: TemperaturePolicy::Clamp,
        default_max_tokens: None,
    };
    for t in ["2.5", "-0.1"] {
        let body = mk_body(&format!(r#""temperature":{t}"#));
        assert_rejected(&body, "temperature", "invalid_value");
        let err = translate_with(&body, &clamp).unwrap_err();
        assert_eq!(err.code, Some("invalid_value"));
    }
}

#[test]
fn top_p_must_be_within_zero_and_one() {
    let v = translate(&mk_body(r#""top_p":0.9"#)).unwrap();
    assert_eq!(v["inferenceConfig"]["topP"].as_f64(), Some(0.9));
    assert_rejected(&mk_body(r#""top_p":1.5"#), "top_p", "invalid_value");
}

#[test]
fn stop_string_becomes_a_one_element_list() {
    let v = translate(&mk_body(r#""stop":"\n\nUser:""#)).unwrap();
    assert_eq!(v["inferenceConfig"], json!({"stopSequences": ["\n\nUser:"]}));
}

#[test]
fn stop_list_passes_through_and_an_empty_list_sends_nothing() {
    let v = translate(&mk_body(r#""stop":["a","b","c","d","e"]"#)).unwrap();
    assert_eq!(
        v["inferenceConfig"]["stopSequences"],
        json!(["a", "b", "c", "d", "e"])
    );
    let v = translate(&mk_body(r#""stop":[]"#)).unwrap();
    assert!(v.get("inferenceConfig").is_none());
}

#[test]
fn empty_stop_strings_are_invalid() {
    assert_rejected(&mk_body(r#""stop":"""#), "stop", "invalid_value");
    assert_rejected(&mk_body(r#""stop":["a",""]"#), "stop[1]", "invalid_value");
}

#[test]
fn too_many_stop_sequences_are_invalid() {
    let list = vec!["\"x\""; MAX_STOP_SEQUENCES + 1].join(",");
    assert_rejected(&mk_body(&format!(r#""stop":[{list}]"#)), "stop", "invalid_value");
}

#[test]
fn service_tier_maps_per_reference() {
    assert!(
        translate(&mk_body(r#""service_tier":"auto""#))
            .unwrap()
            .get("serviceTier")
            .is_none()
    );
    for tier in ["default", "flex", "priority"] {
        let v = translate(&mk_body(&format!(r#""service_tier":"{tier}""#))).unwrap();
        assert_eq!(v["serviceTier"], json!({"type": tier}));
    }
    assert_rejected(
        &mk_body(r#""service_tier":"scale""#),
        "service_tier",
        "unsupported_value",
    );
    assert_rejected(
        &mk_body(r#""service_tier":"fast""#),
        "service_tier",
        "unsupported_value",
    );
    assert_rejected(
        &mk_body(r#""service_tier":"turbo""#),
        "service_tier",
        "invalid_value",
    );
}

// === rejected and ignored parameters (mapping §2) ===

#[test]
fn unknown_top_level_key_is_unsupported_parameter_named_by_key() {
    let err = assert_rejected(
        &mk_body(r#""frobnicate":true"#),
        "frobnicate",
        "unsupported_parameter",
    );
    assert_eq!(err.message, "unrecognized request argument supplied: frobnicate");
}

#[test]
fn n_above_one_is_unsupported_and_below_one_invalid() {
    translate(&mk_body(r#""n":1"#)).unwrap();
    assert_rejected(&mk_body(r#""n":2"#), "n", "unsupported_value");
    assert_rejected(&mk_body(r#""n":0"#), "n", "invalid_value");
}

#[test]
fn logprobs_and_logit_bias_are_rejected_only_when_they_ask_for_something() {
    translate(&mk_body(r#""logprobs":false,"top_logprobs":0,"logit_bias":{}"#)).unwrap();
    assert_rejected(&mk_body(r#""logprobs":true"#), "logprobs", "unsupported_value");
    assert_rejected(
        &mk_body(r#""top_logprobs":3"#),
        "top_logprobs",
        "unsupported_value",
    );
    assert_rejected(
        &mk_body(r#""logit_bias":{"50256":-100}"#),
        "logit_bias",
        "unsupported_value",
    );
}

#[test]
fn non_zero_penalties_are_rejected() {
    translate(&mk_body(r#""frequency_penalty":0,"presence_penalty":0.0"#)).unwrap();
    assert_rejected(
        &mk_body(r#""frequency_penalty":0.5"#),
        "frequency_penalty",
        "unsupported_value",
    );
    assert_rejected(
        &mk_body(r#""presence_penalty":-1"#),
        "presence_penalty",
        "unsupported_value",
    );
}

#[test]
fn audio_output_is_rejected() {
    translate(&mk_body(r#""modalities":["text"]"#)).unwrap();
    assert_rejected(
        &mk_body(r#""modalities":["text","audio"]"#),
        "modalities",
        "unsupported_value",
    );
    assert_rejected(
        &mk_body(r#""modalities":["video"]"#),
        "modalities",
        "invalid_value",
    );
    assert_rejected(
        &mk_body(r#""audio":{"voice":"alloy","format":"wav"}"#),
        "audio",
        "unsupported_parameter",
    );
}

#[test]
fn web_search_and_moderation_are_rejected() {
    assert_rejected(
        &mk_body(r#""web_search_options":{}"#),
        "web_search_options",
        "unsupported_parameter",
    );
    assert_rejected(
        &mk_body(r#""moderation":{"model":"x"}"#),
        "moderation",
        "unsupported_parameter",
    );
}

#[test]
fn stream_options_require_stream() {
    assert_rejected(
        &mk_body(r#""stream_options":{"include_usage":true}"#),
        "stream_options",
        "invalid_value",
    );
    assert_rejected(
        &mk_body(r#""stream":false,"stream_options":{"include_usage":true}"#),
        "stream_options",
        "invalid_value",
    );
    let v = translate(&mk_body(
        r#""stream":true,"stream_options":{"include_usage":true,"include_obfuscation":true}"#,
    ))
    .unwrap();
    assert_eq!(v, translate(&mk_body("")).unwrap());
}

#[test]
fn reasoning_effort_none_passes_and_other_levels_are_rejected() {
    translate(&mk_body(r#""reasoning_effort":"none""#)).unwrap();
    assert_rejected(
        &mk_body(r#""reasoning_effort":"high""#),
        "reasoning_effort",
        "unsupported_value",
    );
}

// === the worked example of mapping §3.5 ===

const REFERENCE_EXAMPLE: &str = r#"{"model": "claude-sonnet",
 "messages": [
  {"role": "system", "content": "You are a travel assistant."},
  {"role": "developer", "content": [{"type": "text", "text": "Answer in English."}]},
  {"role": "user", "content": [
     {"type": "text", "text": "What's the weather and time in Paris? See my photo."},
     {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}}]},
  {"role": "assistant", "content": null, "tool_calls": [
     {"id": "call_w1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
     {"id": "call_t1", "type": "function", "function": {"name": "get_time", "arguments": ""}}]},
  {"role": "tool", "tool_call_id": "call_w1", "content": "{\"temp_c\":21}"},
  {"role": "tool", "tool_call_id": "call_t1", "content": [{"type": "text", "text": "14:05 CET"}]},
  {"role": "user", "content": "Thanks! Should I bring an umbrella?"}],
 "tools": [
  {"type": "function", "function": {"name": "get_weather", "description": "Current weather for a city",
     "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
  {"type": "function", "function": {"name": "get_time"}}],
 "tool_choice": "auto", "max_completion_tokens": 1024, "temperature": 0.3,
 "stop": "\n\nUser:", "stream": true, "stream_options": {"include_usage": true}}"#;

#[test]
fn reference_example_text_parts_translate_as_in_mapping() {
    // §3.5 with only what the text scope covers: the system/developer hoisting, the first user
    // text, and the inference parameters give exactly the reference's Converse members.
    let body = r#"{"model": "claude-sonnet",
     "messages": [
      {"role": "system", "content": "You are a travel assistant."},
      {"role": "developer", "content": [{"type": "text", "text": "Answer in English."}]},
      {"role": "user", "content": [{"type": "text", "text": "What's the weather and time in Paris? See my photo."}]}],
     "max_completion_tokens": 1024, "temperature": 0.3,
     "stop": "\n\nUser:", "stream": true, "stream_options": {"include_usage": true}}"#;
    assert_eq!(
        translate(body).unwrap(),
        json!({"system": [{"text": "You are a travel assistant."}, {"text": "Answer in English."}],
               "messages": [{"role": "user", "content": [{"text": "What's the weather and time in Paris? See my photo."}]}],
               "inferenceConfig": {"maxTokens": 1024, "temperature": 0.3, "stopSequences": ["\n\nUser:"]}})
    );
}

#[test]
fn harmless_parameters_are_ignored_and_reported() {
    let plain = translate(&mk_body("")).unwrap();
    let (v, t) = translate_for(
        &mk_body(
            r#""seed":42,"store":true,"prediction":{"type":"content","content":"x"},"verbosity":"low",
               "prompt_cache_key":"k","prompt_cache_retention":"24h","prompt_cache_options":{},"service_tier":"auto",
               "parallel_tool_calls":true,"response_format":{"type":"text"},"n":1,"logprobs":false"#,
        ),
        "{}",
        &[],
    )
    .unwrap();
    assert_eq!(v, plain);
    assert_eq!(
        t.ignored.to_string(),
        "seed,store,prediction,verbosity,prompt_cache_key,prompt_cache_retention,prompt_cache_options"
    );
}

#[test]
fn reference_example_translates_exactly_as_in_mapping() {
    // mapping §3.5: the OpenAI request and the ConverseStream body given there, verbatim.
    let expected = json!({"system": [{"text": "You are a travel assistant."}, {"text": "Answer in English."}],
     "messages": [
      {"role": "user", "content": [
         {"text": "What's the weather and time in Paris? See my photo."},
         {"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}}]},
      {"role": "assistant", "content": [
         {"toolUse": {"toolUseId": "call_w1", "name": "get_weather", "input": {"city": "Paris"}}},
         {"toolUse": {"toolUseId": "call_t1", "name": "get_time", "input": {}}}]},
      {"role": "user", "content": [
         {"toolResult": {"toolUseId": "call_w1", "content": [{"text": "{\"temp_c\":21}"}]}},
         {"toolResult": {"toolUseId": "call_t1", "content": [{"text": "14:05 CET"}]}},
         {"text": "Thanks! Should I bring an umbrella?"}]}],
     "toolConfig": {"tools": [
       {"toolSpec": {"name": "get_weather", "description": "Current weather for a city",
          "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}},
       {"toolSpec": {"name": "get_time", "inputSchema": {"json": {"type": "object", "properties": {}}}}}],
       "toolChoice": {"auto": {}}},
     "inferenceConfig": {"maxTokens": 1024, "temperature": 0.3, "stopSequences": ["\n\nUser:"]}});
    let (v, t) = translate_for(REFERENCE_EXAMPLE, "{}", &[]).unwrap();
    assert_eq!(v, expected);
    assert_eq!(t.ignored.to_string(), "image_url.detail");
    assert_eq!(t.response, ResponseShape::default());
}

#[test]
fn converse_body_borrows_the_clients_strings() {
    let mut buf = mk_body(r#""stop":"END""#).into_bytes();
    let req = ChatCompletionRequest::parse(&mut buf).unwrap();
    let (opts, model) = (RequestOptions::default(), ModelOptions::default());
    let cx = Context {
        options: &opts,
        model: &model,
        images: &[],
    };
    let (converse, _) = to_converse_request(&req, &cx).unwrap();
    let crate::bedrock::converse::ContentBlock::Text(text) = converse.messages[0].content[0] else {
        panic!("text block expected");
    };
    let Some(crate::openai::request::Content::Text(original)) = req.messages[0].content else {
        panic!("string content expected");
    };
    assert!(std::ptr::eq(text, original));
}

mod extensions;
mod media;
mod reasoning;
mod tools;
