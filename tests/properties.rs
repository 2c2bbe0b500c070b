//! Property: any valid ConverseStream event sequence, cut into pieces at any byte boundaries,
//! is translated to exactly the SSE bytes it gives when fed whole, and those bytes are a
//! well-formed OpenAI stream whose text is the concatenation of the upstream deltas.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ai_gateway::bedrock::eventstream::{EventDecoder, encode_event};
use ai_gateway::translate::response::ResponseMeta;
use ai_gateway::translate::stream::StreamTranslator;
use bytes::BytesMut;
use proptest::prelude::*;
use serde_json::{Value, json};

#[derive(Debug, Clone)]
enum Block {
    Text(Vec<String>),
    Tool { name: String, fragments: Vec<String> },
}

fn block() -> impl Strategy<Value = Block> {
    prop_oneof![
        prop::collection::vec("\\PC{1,12}", 1..6).prop_map(Block::Text),
        ("[a-z_]{1,10}", prop::collection::vec("[ -~]{0,8}", 0..4))
            .prop_map(|(name, fragments)| Block::Tool { name, fragments }),
    ]
}

/// The upstream bytes for these blocks, and the text the client must end up with.
fn encode(blocks: &[Block], usage: (u64, u64)) -> (Vec<u8>, String) {
    let mut wire = Vec::new();
    let mut text = String::new();
    let mut event =
        |kind: &str, payload: Value| encode_event(kind, payload.to_string().as_bytes(), &mut wire);
    event("messageStart", json!({"role": "assistant", "p": "abc"}));
    for (i, b) in blocks.iter().enumerate() {
        match b {
            Block::Text(deltas) => {
                for d in deltas {
                    text.push_str(d);
                    event(
                        "contentBlockDelta",
                        json!({"contentBlockIndex": i, "delta": {"text": d}}),
                    );
                }
            }
            Block::Tool { name, fragments } => {
                event(
                    "contentBlockStart",
                    json!({"contentBlockIndex": i, "start": {"toolUse": {"toolUseId": format!("tooluse_{i}"), "name": name}}}),
                );
                for f in fragments {
                    event(
                        "contentBlockDelta",
                        json!({"contentBlockIndex": i, "delta": {"toolUse": {"input": f}}}),
                    );
                }
            }
        }
        event("contentBlockStop", json!({"contentBlockIndex": i}));
    }
    let has_tools = blocks.iter().any(|b| matches!(b, Block::Tool { .. }));
    event(
        "messageStop",
        json!({"stopReason": if has_tools { "tool_use" } else { "end_turn" }}),
    );
    event(
        "metadata",
        json!({"usage": {"inputTokens": usage.0, "outputTokens": usage.1, "totalTokens": usage.0 + usage.1}, "metrics": {"latencyMs": 1}}),
    );
    (wire, text)
}

fn translate(wire: &[u8], cuts: &[usize]) -> Vec<u8> {
    let meta = ResponseMeta {
        id: "chatcmpl-prop",
        created: 1,
        model: "m",
    };
    let mut translator = StreamTranslator::new(&meta, true);
    let mut decoder = EventDecoder::default();
    let mut out = BytesMut::new();
    let mut ends: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
    ends.sort_unstable();
    ends.push(wire.len());
    let mut start = 0;
    for (i, end) in ends.into_iter().enumerate() {
        if end <= start {
            continue;
        }
        // Pieces alternate between the copying and the in-place path of the decoder.
        if i % 2 == 0 {
            decoder.push(&wire[start..end]);
        } else {
            decoder.push_bytes(bytes::Bytes::copy_from_slice(&wire[start..end]));
        }
        start = end;
        while let Some(message) = decoder.next_message().unwrap() {
            translator.on_message(&message, &mut out).unwrap();
        }
    }
    decoder.finish().unwrap();
    translator.on_upstream_end(&mut out);
    out.to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_split_gives_the_same_well_formed_stream(
        blocks in prop::collection::vec(block(), 0..5),
        cuts in prop::collection::vec(any::<usize>(), 0..40),
        usage in (0u64..10_000, 0u64..10_000),
    ) {
        let (wire, text) = encode(&blocks, usage);
        let whole = translate(&wire, &[]);
        let split = translate(&wire, &cuts);
        prop_assert_eq!(&whole, &split);

        let sse = String::from_utf8(whole).unwrap();
        prop_assert!(sse.ends_with("data: [DONE]\n\n"));
        let chunks: Vec<Value> = sse
            .split_terminator("\n\n")
            .map(|r| r.strip_prefix("data: ").unwrap())
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        let content: String = chunks
            .iter()
            .filter_map(|c| c["choices"].get(0).and_then(|ch| ch["delta"]["content"].as_str()))
            .collect();
        prop_assert_eq!(content, text);
        let usage_chunk = chunks.last().unwrap();
        prop_assert_eq!(usage_chunk["usage"]["completion_tokens"].as_u64(), Some(usage.1));
        let tools = blocks.iter().filter(|b| matches!(b, Block::Tool { .. })).count();
        let opened = chunks
            .iter()
            .filter_map(|c| c["choices"].get(0).and_then(|ch| ch["delta"]["tool_calls"].as_array()))
            .flatten()
            .filter(|t| t.get("id").is_some())
            .count();
        prop_assert_eq!(opened, tools, "one opening delta per tool call");
    }
}
