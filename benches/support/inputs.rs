//! Bench inputs shared by the criterion benches and `alloc.rs`: OpenAI requests of three
//! shapes, Converse replies, and ConverseStream frames as Bedrock sends them (every payload
//! padded with `"p"`, as in `tests/fixtures`).

#![allow(dead_code)] // Each bench target uses a different subset.

use ai_gateway::bedrock::eventstream::encode_event;

/// A TCP segment's worth of payload on a 1500-byte MTU path: how a stream arrives from afar.
pub(crate) const TCP_PIECE: usize = 1448;

const PADDING: &str = "abcdefghijklmnopqrstuvwxyzABCDEF";

/// One user turn, the shape of most chat traffic.
pub(crate) fn one_turn_request() -> Vec<u8> {
    br#"{"model":"claude-3-haiku","messages":[{"role":"user","content":"Hello! Can you summarise the plot of Hamlet in two sentences?"}],"max_tokens":256,"temperature":0.7,"stream":true,"stream_options":{"include_usage":true}}"#.to_vec()
}

/// A system prompt and 20 alternating turns of about 300 bytes each.
pub(crate) fn twenty_turn_request() -> Vec<u8> {
    let mut messages = vec![
        r#"{"role":"system","content":"You are a concise assistant. Answer in plain text, cite sources when you can, and say so when you do not know."}"#.to_owned(),
    ];
    for i in 0..20 {
        let role = if i % 2 == 0 { "user" } else { "assistant" };
        messages.push(format!(
            r#"{{"role":"{role}","content":"Turn {i}: the quick brown fox jumps over the lazy dog; \"quoted\" text, a tab\t, a newline\n and some more words to reach a realistic length for a chat turn in a long conversation about nothing in particular."}}"#
        ));
    }
    format!(
        r#"{{"model":"claude-3-haiku","messages":[{}],"max_tokens":1024,"temperature":0.3,"top_p":0.9,"stop":["\n\nHuman:"],"stream":true}}"#,
        messages.join(",")
    )
    .into_bytes()
}

/// The 20-turn conversation with three tools defined and tool calls and results in its
/// history. Used only where the translator accepts tools.
pub(crate) fn twenty_turn_tools_request() -> Vec<u8> {
    let tools = r#"[{"type":"function","function":{"name":"get_weather","description":"Current weather for a city","parameters":{"type":"object","properties":{"city":{"type":"string"},"units":{"type":"string","enum":["c","f"]}},"required":["city"]}}},{"type":"function","function":{"name":"get_time","description":"Local time in a city","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}},{"type":"function","function":{"name":"search","description":"Web search","parameters":{"type":"object","properties":{"q":{"type":"string"},"n":{"type":"integer"}},"required":["q"]}}}]"#;
    let mut messages = Vec::new();
    for i in 0..5 {
        messages.push(format!(
            r#"{{"role":"user","content":"Question {i}: what is the weather and the time in Paris?"}}"#
        ));
        messages.push(format!(
            r#"{{"role":"assistant","content":null,"tool_calls":[{{"id":"call_{i}a","type":"function","function":{{"name":"get_weather","arguments":"{{\"city\":\"Paris\",\"units\":\"c\"}}"}}}},{{"id":"call_{i}b","type":"function","function":{{"name":"get_time","arguments":"{{\"city\":\"Paris\"}}"}}}}]}}"#
        ));
        messages.push(format!(
            r#"{{"role":"tool","tool_call_id":"call_{i}a","content":"{{\"temp\":21,\"sky\":\"clear\"}}"}}"#
        ));
        messages.push(format!(
            r#"{{"role":"tool","tool_call_id":"call_{i}b","content":"14:05"}}"#
        ));
        messages.push(format!(r#"{{"role":"assistant","content":"It is 21 degrees and clear in Paris, and the local time is 14:05 (answer {i})."}}"#));
    }
    messages.truncate(20);
    if messages.last().is_some_and(|m| !m.contains(r#""role":"user""#)) {
        messages.push(r#"{"role":"user","content":"Thanks. And tomorrow?"}"#.to_owned());
    }
    format!(
        r#"{{"model":"claude-3-haiku","messages":[{}],"tools":{tools},"tool_choice":"auto","max_tokens":1024,"stream":true}}"#,
        messages.join(",")
    )
    .into_bytes()
}

/// One user message of 100 KiB of prose with the escapes real text carries.
pub(crate) fn prompt_100k_request() -> Vec<u8> {
    let line = r#"Lorem ipsum dolor sit amet, \"consectetur\" adipiscing elit; sed do eiusmod tempor incididunt ut labore.\n"#;
    let mut text = String::with_capacity(100 * 1024 + line.len());
    while text.len() < 100 * 1024 {
        text.push_str(line);
    }
    format!(
        r#"{{"model":"claude-3-haiku","messages":[{{"role":"user","content":"Summarise this document:\n{text}"}}],"max_tokens":512}}"#
    )
    .into_bytes()
}

/// A Converse reply with one text block of about 1 KiB.
pub(crate) fn converse_text_reply() -> Vec<u8> {
    let text = "The quick brown fox jumps over the lazy dog. ".repeat(23);
    format!(
        r#"{{"output":{{"message":{{"role":"assistant","content":[{{"text":"{text}"}}]}}}},"stopReason":"end_turn","usage":{{"inputTokens":25,"outputTokens":230,"totalTokens":255,"cacheReadInputTokens":0,"cacheWriteInputTokens":0}},"metrics":{{"latencyMs":812}}}}"#
    )
    .into_bytes()
}

/// The tool-call reply of `tests/fixtures/unary-tool-calls`.
pub(crate) fn converse_tool_reply() -> Vec<u8> {
    include_bytes!("../../tests/fixtures/unary-tool-calls/bedrock_response.json").to_vec()
}

fn event(event_type: &str, fields: &str, out: &mut Vec<u8>) {
    let payload = format!(r#"{{{fields},"p":"{PADDING}"}}"#);
    encode_event(event_type, payload.as_bytes(), out);
}

/// `messageStart` alone.
pub(crate) fn message_start_frame() -> Vec<u8> {
    let mut out = Vec::new();
    event("messageStart", r#""role":"assistant""#, &mut out);
    out
}

/// One text delta of a typical token or two.
pub(crate) fn text_delta_frame() -> Vec<u8> {
    let mut out = Vec::new();
    event(
        "contentBlockDelta",
        r#""contentBlockIndex":0,"delta":{"text":" jumps over"}"#,
        &mut out,
    );
    out
}

/// A complete stream: `messageStart`, `deltas` text deltas, the stop events and `metadata`.
pub(crate) fn text_stream(deltas: usize) -> Vec<u8> {
    let mut out = message_start_frame();
    let delta = text_delta_frame();
    for _ in 0..deltas {
        out.extend_from_slice(&delta);
    }
    event("contentBlockStop", r#""contentBlockIndex":0"#, &mut out);
    event("messageStop", r#""stopReason":"end_turn""#, &mut out);
    event(
        "metadata",
        r#""usage":{"inputTokens":25,"outputTokens":1000,"totalTokens":1025},"metrics":{"latencyMs":4000}"#,
        &mut out,
    );
    out
}
