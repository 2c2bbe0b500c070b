//! Valid event-stream frames (correct CRCs) around fuzzed JSON payloads and event types, so the
//! fuzzer gets past the framing into the translator's state machine. Checks the OpenAI stream
//! invariants clients rely on, and that the text-delta and small-event shortcuts agree with the
//! parser.
#![no_main]

use ai_gateway::bedrock::eventstream::{EventDecoder, encode_event, encode_exception};
use ai_gateway::bedrock::stream::{EventType, plain_text_delta, small_event};
use ai_gateway::translate::response::ResponseMeta;
use ai_gateway::translate::stream::StreamTranslator;
use arbitrary::Arbitrary;
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

const EVENTS: [&str; 8] = [
    "messageStart",
    "contentBlockStart",
    "contentBlockDelta",
    "contentBlockStop",
    "messageStop",
    "metadata",
    "someFutureEvent",
    "",
];

#[derive(Debug, Arbitrary)]
enum Frame {
    Event { kind: u8, payload: String },
    Exception { payload: String },
    /// A `contentBlockDelta` in the compact shape Bedrock sends for text, around fuzzed text
    /// (put in as it is: escapes and all) and padding.
    TextDelta { index: u32, text: String, padding: Option<String> },
    /// One of the small events as a compact object of fuzzed members (values put in as they
    /// are), the shape the small-event shortcut reads.
    Flat { kind: u8, members: Vec<(u8, String)> },
}

/// The events the small-event shortcut reads.
const SMALL: [&str; 3] = ["messageStart", "contentBlockStop", "messageStop"];
/// Their members, and the padding.
const KEYS: [&str; 4] = ["role", "contentBlockIndex", "stopReason", "p"];

fn flat_payload(members: &[(u8, String)]) -> String {
    let members: Vec<String> =
        members.iter().map(|(key, value)| format!(r#""{}":{value}"#, KEYS[usize::from(*key) % KEYS.len()])).collect();
    format!("{{{}}}", members.join(","))
}

fn text_delta_payload(index: u32, text: &str, padding: Option<&str>) -> String {
    let padding = padding.map(|p| format!(r#","p":"{p}""#)).unwrap_or_default();
    format!(r#"{{"contentBlockIndex":{index},"delta":{{"text":"{text}"}}{padding}}}"#)
}

fuzz_target!(|frames: Vec<Frame>| {
    let mut wire = Vec::new();
    for frame in &frames {
        match frame {
            Frame::Event { kind, payload } => {
                encode_event(EVENTS[usize::from(*kind) % EVENTS.len()], payload.as_bytes(), &mut wire)
            }
            Frame::Exception { payload } => encode_exception("throttlingException", payload.as_bytes(), &mut wire),
            Frame::TextDelta { index, text, padding } => {
                let payload = text_delta_payload(*index, text, padding.as_deref());
                encode_event("contentBlockDelta", payload.as_bytes(), &mut wire)
            }
            Frame::Flat { kind, members } => {
                encode_event(SMALL[usize::from(*kind) % SMALL.len()], flat_payload(members).as_bytes(), &mut wire)
            }
        }
    }
    let meta = ResponseMeta { id: "chatcmpl-fuzz", created: 1, model: "fuzz" };
    let mut translator = StreamTranslator::new(&meta, true);
    let mut decoder = EventDecoder::new(1 << 20);
    decoder.push(&wire);
    let mut out = BytesMut::new();
    while !translator.is_finished() {
        match decoder.next_message().expect("frames written by the encoder decode") {
            Some(message) => {
                if let Err(e) = translator.on_message(&message, &mut out) {
                    translator.on_failure(&e, &mut out);
                }
            }
            None => break,
        }
    }
    translator.on_upstream_end(&mut out);

    let text = std::str::from_utf8(&out).expect("UTF-8");
    let mut roles = 0;
    let mut tool_ids = std::collections::HashMap::new();
    for record in text.split_terminator("\n\n") {
        let data = record.strip_prefix("data: ").expect("data line");
        if data == "[DONE]" {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(data).expect("JSON record");
        let Some(delta) = v["choices"].get(0).map(|c| &c["delta"]) else { continue };
        if delta.get("role").is_some() {
            roles += 1;
        }
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            let index = call["index"].as_u64().expect("tool call index");
            if let Some(id) = call.get("id") {
                assert!(tool_ids.insert(index, id.clone()).is_none(), "tool call id repeated for index {index}");
            } else {
                assert!(tool_ids.contains_key(&index), "arguments before the tool call's opening delta");
            }
        }
    }
    assert!(roles <= 1, "role sent {roles} times");

    // A text delta the fast path takes gives the chunk the parser gives for the same payload
    // (a space added, which only the parser takes).
    for frame in &frames {
        let payload = match frame {
            Frame::Event { payload, .. } => payload.clone(),
            Frame::TextDelta { index, text, padding } => text_delta_payload(*index, text, padding.as_deref()),
            Frame::Flat { members, .. } => flat_payload(members),
            Frame::Exception { .. } => continue,
        };
        // A small event the shortcut takes: the same result and chunk as the parser's, after a
        // tool block opened at index 1.
        for (name, kind) in SMALL.into_iter().zip([EventType::MessageStart, EventType::ContentBlockStop, EventType::MessageStop]) {
            if small_event(kind, payload.as_bytes()).is_none() {
                continue;
            }
            let run = |payload: &str| {
                let mut translator = StreamTranslator::new(&meta, false);
                let mut out = BytesMut::new();
                let start = r#"{"contentBlockIndex":1,"start":{"toolUse":{"toolUseId":"t1","name":"f"}}}"#;
                translator.on_event("contentBlockStart", start.as_bytes(), &mut out).expect("tool start");
                let ok = translator.on_event(name, payload.as_bytes(), &mut out).is_ok();
                (ok, out, translator.is_finished())
            };
            let (fast, parsed) = (run(&payload), run(&payload.replacen('{', "{ ", 1)));
            assert!(fast.0, "a taken small event failed to translate");
            assert_eq!(fast, parsed, "the small-event shortcut and the parser disagree");
        }
        if plain_text_delta(payload.as_bytes()).is_none() {
            continue;
        }
        let spaced = payload.replacen('{', "{ ", 1);
        let (mut fast, mut parsed) = (BytesMut::new(), BytesMut::new());
        let fast_result = StreamTranslator::new(&meta, false).on_event("contentBlockDelta", payload.as_bytes(), &mut fast);
        let parsed_result =
            StreamTranslator::new(&meta, false).on_event("contentBlockDelta", spaced.as_bytes(), &mut parsed);
        assert!(fast_result.is_ok() && parsed_result.is_ok(), "a taken text delta failed to translate");
        assert_eq!(fast, parsed, "the text-delta fast path and the parser disagree");
    }
    let mut indices: Vec<u64> = tool_ids.keys().copied().collect();
    indices.sort_unstable();
    assert!(indices.iter().enumerate().all(|(i, &k)| k == i as u64), "tool call indices not dense: {indices:?}");
});
