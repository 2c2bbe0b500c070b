use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use bytes::Bytes;
use serde_json::{Value, json};

use super::*;
use crate::translate::response::ResponseShape;

const META: ResponseMeta<'static> = ResponseMeta {
    id: "chatcmpl-1",
    created: 1_714_564_800,
    model: "claude-3-haiku",
};

fn mk_translator(include_usage: bool) -> StreamTranslator {
    StreamTranslator::new(&META, include_usage)
}

/// Feeds events and returns the SSE records written, each parsed (or `[DONE]` as a string).
fn feed(t: &mut StreamTranslator, events: &[(&str, &str)]) -> Vec<Value> {
    let mut out = BytesMut::new();
    for (event_type, payload) in events {
        t.on_event(event_type, payload.as_bytes(), &mut out).unwrap();
    }
    records(&out)
}

fn records(out: &[u8]) -> Vec<Value> {
    std::str::from_utf8(out)
        .unwrap()
        .split_terminator("\n\n")
        .map(|r| {
            let body = r.strip_prefix("data: ").unwrap();
            if body == "[DONE]" {
                Value::String("[DONE]".into())
            } else {
                serde_json::from_str(body).unwrap()
            }
        })
        .collect()
}

fn deltas(records: &[Value]) -> Vec<Value> {
    records
        .iter()
        .filter_map(|r| {
            r.get("choices")
                .and_then(|c| c.get(0))
                .map(|c| c["delta"].clone())
        })
        .collect()
}

/// One encoded event-stream frame with string headers.
fn mk_message(headers: &[(&'static str, &str)], payload: &str) -> Vec<u8> {
    let mut m = Message::new(Bytes::copy_from_slice(payload.as_bytes()));
    for (name, value) in headers {
        m = m.add_header(Header::new(*name, HeaderValue::String(value.to_string().into())));
    }
    let mut frame = Vec::new();
    aws_smithy_eventstream::frame::write_message_to(&m, &mut frame).unwrap();
    frame
}

fn decoded(frame: &[u8]) -> crate::bedrock::eventstream::Message<'_> {
    crate::bedrock::eventstream::read_message(frame).unwrap()
}

const START: (&str, &str) = ("messageStart", r#"{"role":"assistant","p":"abc"}"#);
const STOP_END: (&str, &str) = ("messageStop", r#"{"stopReason":"end_turn"}"#);
const METADATA: (&str, &str) = (
    "metadata",
    r#"{"usage":{"inputTokens":3,"outputTokens":2,"totalTokens":5},"metrics":{"latencyMs":1}}"#,
);

fn text(i: u32, s: &str) -> (String, String) {
    (
        "contentBlockDelta".into(),
        json!({"contentBlockIndex": i, "delta": {"text": s}, "p": "xyz"}).to_string(),
    )
}

fn feed_owned(t: &mut StreamTranslator, events: &[(String, String)]) -> Vec<Value> {
    let borrowed: Vec<(&str, &str)> = events.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    feed(t, &borrowed)
}

#[test]
fn text_stream_has_role_text_finish_and_done() {
    let mut t = mk_translator(false);
    let mut r = feed(&mut t, &[START]);
    r.extend(feed_owned(&mut t, &[text(0, "Hel"), text(0, "lo")]));
    r.extend(feed(
        &mut t,
        &[
            ("contentBlockStop", r#"{"contentBlockIndex":0}"#),
            STOP_END,
            METADATA,
        ],
    ));
    assert_eq!(
        deltas(&r),
        vec![
            json!({"role": "assistant", "content": ""}),
            json!({"content": "Hel"}),
            json!({"content": "lo"}),
            json!({})
        ]
    );
    assert_eq!(r[3]["choices"][0]["finish_reason"], "stop");
    assert_eq!(r.last().unwrap(), "[DONE]");
    assert!(r[0].get("usage").is_none());
    assert!(t.is_finished());
    assert_eq!(t.usage().unwrap().input_tokens, 3);
}

#[test]
fn role_chunk_is_sent_once_even_without_message_start() {
    let mut t = mk_translator(false);
    let r = feed_owned(&mut t, &[text(0, "a"), text(0, "b")]);
    assert_eq!(
        deltas(&r),
        vec![
            json!({"role": "assistant", "content": ""}),
            json!({"content": "a"}),
            json!({"content": "b"})
        ]
    );
    let mut t = mk_translator(false);
    let r = feed(&mut t, &[START, START]);
    assert_eq!(r.len(), 1);
}

#[test]
fn empty_text_deltas_emit_nothing() {
    let mut t = mk_translator(false);
    feed(&mut t, &[START]);
    assert!(feed_owned(&mut t, &[text(0, "")]).is_empty());
}

#[test]
fn usage_chunk_is_sent_only_when_requested() {
    let mut t = mk_translator(true);
    let r = feed(&mut t, &[START, STOP_END, METADATA]);
    assert_eq!(r.len(), 4);
    assert_eq!(r[0]["usage"], Value::Null);
    assert_eq!(r[1]["usage"], Value::Null);
    assert_eq!(r[2]["choices"], json!([]));
    assert_eq!(
        r[2]["usage"],
        json!({"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5,
               "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0}})
    );
    assert_eq!(r[3], "[DONE]");

    let mut t = mk_translator(false);
    let r = feed(&mut t, &[START, STOP_END, METADATA]);
    assert_eq!(r.len(), 3);
    assert!(r.iter().all(|r| r.get("usage").is_none()));
}

#[test]
fn tool_calls_use_a_dense_index_and_send_id_and_name_once() {
    let mut t = mk_translator(false);
    let r = feed(
        &mut t,
        &[
            START,
            (
                "contentBlockDelta",
                r#"{"contentBlockIndex":0,"delta":{"text":"Checking."}}"#,
            ),
            ("contentBlockStop", r#"{"contentBlockIndex":0}"#),
            (
                "contentBlockStart",
                r#"{"contentBlockIndex":3,"start":{"toolUse":{"toolUseId":"tooluse_A","name":"f"}}}"#,
            ),
            (
                "contentBlockDelta",
                r#"{"contentBlockIndex":3,"delta":{"toolUse":{"input":"{\"a\":"}}}"#,
            ),
            (
                "contentBlockDelta",
                r#"{"contentBlockIndex":3,"delta":{"toolUse":{"input":""}}}"#,
            ),
            (
                "contentBlockDelta",
                r#"{"contentBlockIndex":3,"delta":{"toolUse":{"input":"1}"}}}"#,
            ),
            ("contentBlockStop", r#"{"contentBlockIndex":3}"#),
            ("messageStop", r#"{"stopReason":"tool_use"}"#),
        ],
    );
    assert_eq!(
        deltas(&r),
        vec![
            json!({"role": "assistant", "content": ""}),
            json!({"content": "Checking."}),
            json!({"tool_calls": [{"index": 0, "id": "tooluse_A", "type": "function", "function": {"name": "f", "arguments": ""}}]}),
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":"}}]}),
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
            json!({}),
        ]
    );
    assert_eq!(r.last().unwrap()["choices"][0]["finish_reason"], "tool_calls");
}

#[test]
fn tool_without_input_gets_empty_object_arguments() {
    let mut t = mk_translator(false);
    let r = feed(
        &mut t,
        &[
            (
                "contentBlockStart",
                r#"{"contentBlockIndex":0,"start":{"toolUse":{"toolUseId":"t1","name":"get_time"}}}"#,
            ),
            ("contentBlockStop", r#"{"contentBlockIndex":0}"#),
            ("contentBlockStop", r#"{"contentBlockIndex":0}"#),
        ],
    );
    assert_eq!(
        deltas(&r)[2],
        json!({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]})
    );
    assert_eq!(r.len(), 3, "a repeated stop sends nothing more");
}

#[test]
fn tool_input_for_an_unknown_block_is_a_protocol_error() {
    let mut t = mk_translator(false);
    let mut out = BytesMut::new();
    let err = t
        .on_event(
            "contentBlockDelta",
            br#"{"contentBlockIndex":2,"delta":{"toolUse":{"input":"{}"}}}"#,
            &mut out,
        )
        .unwrap_err();
    assert!(matches!(err, Error::UpstreamProtocol(_)));
}

#[test]
fn tool_use_stop_without_tool_calls_finishes_with_stop() {
    let mut t = mk_translator(false);
    let r = feed(&mut t, &[START, ("messageStop", r#"{"stopReason":"tool_use"}"#)]);
    assert_eq!(r[1]["choices"][0]["finish_reason"], "stop");
}

#[test]
fn max_tokens_stop_finishes_with_length() {
    let mut t = mk_translator(false);
    let r = feed(
        &mut t,
        &[START, ("messageStop", r#"{"stopReason":"max_tokens"}"#)],
    );
    assert_eq!(r[1]["choices"][0]["finish_reason"], "length");
}

#[test]
fn malformed_stop_reason_is_an_error_record_without_done() {
    let mut t = mk_translator(true);
    let r = feed(
        &mut t,
        &[
            START,
            ("messageStop", r#"{"stopReason":"malformed_tool_use"}"#),
            METADATA,
        ],
    );
    assert_eq!(r.len(), 2);
    assert_eq!(r[1]["error"]["code"], "malformed_tool_use");
    assert_eq!(r[1]["error"]["type"], "server_error");
    assert!(t.is_finished());
    let mut out = BytesMut::new();
    t.on_upstream_end(&mut out);
    assert!(out.is_empty());
}

#[test]
fn reasoning_goes_to_extension_deltas_and_unknown_events_are_ignored() {
    let mut t = mk_translator(false);
    feed(&mut t, &[START]);
    let r = feed(
        &mut t,
        &[
            (
                "contentBlockDelta",
                r#"{"contentBlockIndex":0,"delta":{"reasoningContent":{"text":"hmm"}}}"#,
            ),
            (
                "contentBlockDelta",
                r#"{"contentBlockIndex":0,"delta":{"reasoningContent":{"signature":"sig"}}}"#,
            ),
            ("contentBlockStop", r#"{"contentBlockIndex":0}"#),
            (
                "contentBlockDelta",
                r#"{"contentBlockIndex":1,"delta":{"reasoningContent":{"redactedContent":"QUJD"}}}"#,
            ),
            ("contentBlockStop", r#"{"contentBlockIndex":1}"#),
            ("somethingNew", "not even json"),
        ],
    );
    assert_eq!(
        deltas(&r),
        vec![
            json!({"reasoning_content": "hmm"}),
            json!({"reasoning_signature": "sig"}),
            json!({"redacted_reasoning": ["QUJD"]}),
        ]
    );
    assert!(
        r.iter()
            .all(|c| c["choices"][0]["delta"].get("content").is_none())
    );
}

fn tool_start(i: u32, id: &str, name: &str) -> (String, String) {
    (
        "contentBlockStart".into(),
        json!({"contentBlockIndex": i, "start": {"toolUse": {"toolUseId": id, "name": name}}}).to_string(),
    )
}

fn tool_input(i: u32, s: &str) -> (String, String) {
    (
        "contentBlockDelta".into(),
        json!({"contentBlockIndex": i, "delta": {"toolUse": {"input": s}}}).to_string(),
    )
}

fn block_stop(i: u32) -> (String, String) {
    (
        "contentBlockStop".into(),
        json!({"contentBlockIndex": i}).to_string(),
    )
}

fn owned(e: (&str, &str)) -> (String, String) {
    (e.0.to_owned(), e.1.to_owned())
}

#[test]
fn structured_output_tool_input_streams_as_content_and_finishes_with_stop() {
    let shape = ResponseShape {
        json_tool: Some("answer".into()),
        ..ResponseShape::default()
    };
    let mut t = StreamTranslator::with_shape(&META, false, shape);
    let r = feed_owned(
        &mut t,
        &[
            owned(START),
            tool_start(0, "tooluse_1", "answer"),
            tool_input(0, "{\"n\":"),
            tool_input(0, "42}"),
            block_stop(0),
            owned(("messageStop", r#"{"stopReason":"tool_use"}"#)),
            owned(METADATA),
        ],
    );
    assert_eq!(
        deltas(&r),
        vec![
            json!({"role": "assistant", "content": ""}),
            json!({"content": "{\"n\":"}),
            json!({"content": "42}"}),
            json!({}),
        ]
    );
    assert_eq!(r[r.len() - 2]["choices"][0]["finish_reason"], "stop");
}

#[test]
fn structured_output_tool_without_input_streams_an_empty_object() {
    let shape = ResponseShape {
        json_tool: Some("answer".into()),
        ..ResponseShape::default()
    };
    let mut t = StreamTranslator::with_shape(&META, false, shape);
    let r = feed_owned(
        &mut t,
        &[owned(START), tool_start(0, "t", "answer"), block_stop(0)],
    );
    assert_eq!(deltas(&r)[1], json!({"content": "{}"}));
}

#[test]
fn legacy_functions_stream_one_function_call() {
    let shape = ResponseShape {
        legacy_functions: true,
        ..ResponseShape::default()
    };
    let mut t = StreamTranslator::with_shape(&META, false, shape);
    let r = feed_owned(
        &mut t,
        &[
            owned(START),
            tool_start(0, "tooluse_1", "f"),
            tool_input(0, "{\"a\":1}"),
            block_stop(0),
            tool_start(1, "tooluse_2", "g"),
            tool_input(1, "{}"),
            block_stop(1),
            owned(("messageStop", r#"{"stopReason":"tool_use"}"#)),
        ],
    );
    assert_eq!(
        deltas(&r),
        vec![
            json!({"role": "assistant", "content": ""}),
            json!({"function_call": {"name": "f", "arguments": ""}}),
            json!({"function_call": {"arguments": "{\"a\":1}"}}),
            json!({}),
        ]
    );
    assert_eq!(r.last().unwrap()["choices"][0]["finish_reason"], "function_call");
}

#[test]
fn suppressed_tool_calls_are_not_streamed() {
    let shape = ResponseShape {
        suppress_tool_calls: true,
        ..ResponseShape::default()
    };
    let mut t = StreamTranslator::with_shape(&META, false, shape);
    let r = feed_owned(
        &mut t,
        &[
            owned(START),
            text(0, "Sure."),
            block_stop(0),
            tool_start(1, "tooluse_1", "f"),
            tool_input(1, "{}"),
            block_stop(1),
            owned(("messageStop", r#"{"stopReason":"tool_use"}"#)),
        ],
    );
    assert_eq!(
        deltas(&r),
        vec![
            json!({"role": "assistant", "content": ""}),
            json!({"content": "Sure."}),
            json!({})
        ]
    );
    assert_eq!(r.last().unwrap()["choices"][0]["finish_reason"], "stop");
}

#[test]
fn tool_indexes_skip_blocks_that_are_not_tool_calls() {
    let shape = ResponseShape {
        json_tool: Some("answer".into()),
        ..ResponseShape::default()
    };
    let mut t = StreamTranslator::with_shape(&META, false, shape);
    let r = feed_owned(
        &mut t,
        &[
            owned(START),
            tool_start(0, "t0", "answer"),
            block_stop(0),
            tool_start(1, "t1", "lookup"),
            block_stop(1),
        ],
    );
    assert_eq!(r[2]["choices"][0]["delta"]["tool_calls"][0]["index"], 0);
    assert_eq!(r[2]["choices"][0]["delta"]["tool_calls"][0]["id"], "t1");
}

#[test]
fn malformed_payload_is_an_error_for_the_caller() {
    let mut t = mk_translator(false);
    let mut out = BytesMut::new();
    for (event, payload) in [
        ("contentBlockDelta", "{not json"),
        ("messageStop", r#"{"reason":"x"}"#),
        ("contentBlockStop", r#"{"contentBlockIndex":"zero"}"#),
    ] {
        let err = t.on_event(event, payload.as_bytes(), &mut out).unwrap_err();
        assert!(matches!(err, Error::UpstreamProtocol(_)), "{event}");
    }
    assert!(out.is_empty());
    t.on_failure(&Error::UpstreamProtocol("bad".into()), &mut out);
    let r = records(&out);
    assert_eq!(r[0]["error"]["code"], "upstream_protocol_error");
    assert!(t.is_finished());
}

#[test]
fn metadata_after_message_stop_ends_with_done_and_missing_metadata_ends_at_upstream_end() {
    let mut t = mk_translator(true);
    let mut out = BytesMut::new();
    for (e, p) in [START, STOP_END] {
        t.on_event(e, p.as_bytes(), &mut out).unwrap();
    }
    assert!(!t.is_finished());
    t.on_upstream_end(&mut out);
    let r = records(&out);
    assert_eq!(r.last().unwrap(), "[DONE]");
    assert!(
        r.iter().all(|r| r.get("choices") != Some(&json!([]))),
        "no usage chunk without metadata"
    );
    assert!(t.is_finished());
    assert_eq!(t.usage(), None);
}

#[test]
fn upstream_end_before_message_stop_is_a_truncation_error() {
    let mut t = mk_translator(false);
    let mut out = BytesMut::new();
    t.on_event(START.0, START.1.as_bytes(), &mut out).unwrap();
    t.on_upstream_end(&mut out);
    let r = records(&out);
    assert_eq!(
        r[1],
        json!({"error": {"message": "the Bedrock stream ended before the response was complete",
                         "type": "server_error", "param": null, "code": "upstream_stream_truncated"}})
    );
    assert!(t.is_finished());
}

#[test]
fn exception_frame_becomes_a_final_error_record() {
    let mut t = mk_translator(false);
    let mut out = BytesMut::new();
    t.on_event(START.0, START.1.as_bytes(), &mut out).unwrap();
    let m = mk_message(
        &[
            (":exception-type", "throttlingException"),
            (":content-type", "application/json"),
            (":message-type", "exception"),
        ],
        r#"{"message":"Too many requests, please wait before trying again."}"#,
    );
    t.on_message(&decoded(&m), &mut out).unwrap();
    let r = records(&out);
    assert_eq!(
        r[1],
        json!({"error": {"message": "Too many requests, please wait before trying again.",
                         "type": "rate_limit_error", "param": null, "code": "rate_limit_exceeded"}})
    );
    assert!(t.is_finished());
    let before = out.len();
    t.on_message(
        &decoded(&mk_message(
            &[(":message-type", "event"), (":event-type", "contentBlockDelta")],
            "{}",
        )),
        &mut out,
    )
    .unwrap();
    t.on_upstream_end(&mut out);
    t.on_failure(&Error::Internal("late"), &mut out);
    assert_eq!(out.len(), before, "nothing follows the error record");
}

#[test]
fn exception_without_a_readable_message_uses_its_type() {
    let mut t = mk_translator(false);
    let mut out = BytesMut::new();
    let m = mk_message(
        &[
            (":exception-type", "modelStreamErrorException"),
            (":message-type", "exception"),
        ],
        "<html>",
    );
    t.on_message(&decoded(&m), &mut out).unwrap();
    let r = records(&out);
    assert_eq!(r[0]["error"]["message"], "modelStreamErrorException");
    assert_eq!(r[0]["error"]["code"], "upstream_stream_error");
}

#[test]
fn error_frame_uses_its_headers() {
    let mut t = mk_translator(false);
    let mut out = BytesMut::new();
    let m = mk_message(
        &[
            (":message-type", "error"),
            (":error-code", "InternalFailure"),
            (":error-message", "something broke"),
        ],
        "",
    );
    t.on_message(&decoded(&m), &mut out).unwrap();
    let r = records(&out);
    assert_eq!(r[0]["error"]["message"], "something broke");
    assert_eq!(r[0]["error"]["type"], "server_error");
    assert!(t.is_finished());
}

#[test]
fn message_without_type_header_is_an_error_for_the_caller() {
    let mut t = mk_translator(false);
    let mut out = BytesMut::new();
    let err = t
        .on_message(
            &decoded(&mk_message(&[(":event-type", "messageStart")], "{}")),
            &mut out,
        )
        .unwrap_err();
    assert!(matches!(err, Error::UpstreamProtocol(_)));
}

#[test]
fn event_message_is_dispatched_by_its_event_type() {
    let mut t = mk_translator(false);
    let mut out = BytesMut::new();
    let m = mk_message(
        &[
            (":event-type", "contentBlockDelta"),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        r#"{"contentBlockIndex":0,"delta":{"text":"Hi"},"p":"abcd"}"#,
    );
    t.on_message(&decoded(&m), &mut out).unwrap();
    assert_eq!(deltas(&records(&out))[1], json!({"content": "Hi"}));
}

#[test]
fn on_failure_writes_the_errors_own_fields() {
    let mut t = mk_translator(false);
    let mut out = BytesMut::new();
    t.on_failure(&Error::UpstreamTimeout(crate::error::TimeoutKind::Idle), &mut out);
    let r = records(&out);
    assert_eq!(
        r[0],
        json!({"error": {"message": "timed out waiting for Bedrock (idle)", "type": "server_error",
                         "param": null, "code": "timeout"}})
    );
}

#[test]
fn parser_reuses_its_buffers_across_payloads_of_different_sizes() {
    let mut t = mk_translator(false);
    let long = "x".repeat(5000);
    let r = feed_owned(&mut t, &[text(0, &long), text(0, "y"), text(0, "a\"b\\c\u{1}")]);
    assert_eq!(deltas(&r)[1]["content"].as_str().unwrap().len(), 5000);
    assert_eq!(deltas(&r)[2], json!({"content": "y"}));
    assert_eq!(deltas(&r)[3], json!({"content": "a\"b\\c\u{1}"}));
}

/// A `contentBlockDelta` payload in Bedrock's compact shape around `text` (as it stands in the
/// JSON, escaped).
fn compact_text_delta(index: &str, text: &str, padding: Option<&str>) -> String {
    let padding = padding.map(|p| format!(r#","p":"{p}""#)).unwrap_or_default();
    format!(r#"{{"contentBlockIndex":{index},"delta":{{"text":"{text}"}}{padding}}}"#)
}

proptest::proptest! {
    /// Whatever the text-delta fast path accepts, the parser reads alike: the same payload with
    /// one space added (which only the parser takes) gives the same chunk bytes.
    #[test]
    fn text_delta_fast_path_writes_what_the_parser_writes(
        index in proptest::prop_oneof!["0", "[1-9][0-9]{0,10}", "0[0-9]", ""],
        pieces in proptest::collection::vec(
            proptest::prop_oneof![
                "\\PC{0,4}",
                r#"\\["\\/bfnrtux]"#,
                r#"\\u[0-9a-fA-F]{4}"#,
                "[\u{0}-\u{1f}\"\\\\]",
            ],
            0..6,
        ),
        padding in proptest::option::of("[a-z\"\\\\\u{1}]{0,6}"),
    ) {
        let payload = compact_text_delta(&index, &pieces.concat(), padding.as_deref());
        let spaced = payload.replacen('{', "{ ", 1);
        let (mut fast, mut parsed) = (BytesMut::new(), BytesMut::new());
        let fast_result = mk_translator(false).on_event("contentBlockDelta", payload.as_bytes(), &mut fast);
        let parsed_result = mk_translator(false).on_event("contentBlockDelta", spaced.as_bytes(), &mut parsed);
        if crate::bedrock::stream::plain_text_delta(payload.as_bytes()).is_some() {
            proptest::prop_assert!(fast_result.is_ok() && parsed_result.is_ok());
            proptest::prop_assert_eq!(fast, parsed);
        }
    }

    /// Text as the chunk writer escapes it (what Bedrock sends for ordinary text) takes the
    /// fast path, and the client reads the text back.
    #[test]
    fn escaped_text_takes_the_fast_path(text in "\\PC*|[a\n\r\t\u{8}\u{c}\"\\\\]*", index: u32) {
        let mut escaped = Vec::new();
        json::write_str_contents(&mut escaped, &text);
        let escaped = String::from_utf8(escaped).unwrap();
        let payload = compact_text_delta(&index.to_string(), &escaped, Some("abcdefgh"));
        let accepted = crate::bedrock::stream::plain_text_delta(payload.as_bytes());
        proptest::prop_assert_eq!(accepted, Some(escaped.as_bytes()));
        let records = feed(&mut mk_translator(false), &[("contentBlockDelta", &payload)]);
        let expected = if text.is_empty() { 0 } else { 2 };
        proptest::prop_assert_eq!(records.len(), expected);
        if !text.is_empty() {
            proptest::prop_assert_eq!(&deltas(&records)[1], &json!({"content": text}));
        }
    }
}

/// A JSON value for a member of a small event's payload: what Bedrock sends and what the
/// shortcut must leave to the parser.
fn member_value() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::strategy::Strategy as _;
    // Weighted towards what the shortcut takes, so that most payloads reach the comparison.
    proptest::prop_oneof![
        3 => "[a-z_]{0,8}".prop_map(|s| format!(r#""{s}""#)),
        // `0` is no block; `1` is the open tool block's index.
        3 => "0|1",
        1 => r#""[a-z\\\u{1}"\u{e9}]{0,4}""#,
        1 => "[1-9][0-9]{0,10}|0[0-9]|-1|1\\.5|1e3",
        1 => "null|true|\\{\\}|\\[\\]|\\{\"a\":1\\}",
    ]
}

proptest::proptest! {
    /// Whatever the small-event shortcut accepts, the parser reads alike: the same payload with
    /// one space added (which only the parser takes) gives the same result and chunk bytes,
    /// after a stream with a tool block open at index 1.
    #[test]
    fn small_event_shortcut_writes_what_the_parser_writes(
        members in proptest::collection::vec(
            (proptest::prop_oneof!["role", "stopReason", "contentBlockIndex", "p"], member_value()),
            0..4,
        ),
    ) {
        let body: Vec<String> = members.iter().map(|(k, v)| format!(r#""{k}":{v}"#)).collect();
        let payload = format!("{{{}}}", body.join(","));
        let spaced = payload.replacen('{', "{ ", 1);
        for (name, kind) in [
            ("messageStart", EventType::MessageStart),
            ("contentBlockStop", EventType::ContentBlockStop),
            ("messageStop", EventType::MessageStop),
        ] {
            let run = |payload: &str| {
                let mut t = mk_translator(false);
                feed_owned(&mut t, &[tool_start(1, "t1", "get_time")]);
                let mut out = BytesMut::new();
                let ok = t.on_event(name, payload.as_bytes(), &mut out).is_ok();
                (ok, out, t.is_finished())
            };
            if small_event(kind, payload.as_bytes()).is_some() {
                let (fast, parsed) = (run(&payload), run(&spaced));
                proptest::prop_assert!(fast.0, "{}", payload);
                proptest::prop_assert_eq!(fast, parsed, "{}", payload);
            }
        }
    }
}
