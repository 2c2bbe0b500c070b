//! Arbitrary bytes as an upstream event stream, cut at fuzzer-chosen offsets: the decoder and
//! translator never panic, the output is well-formed SSE, and it does not depend on where the
//! bytes were cut.
#![no_main]

use ai_gateway::bedrock::eventstream::EventDecoder;
use ai_gateway::translate::response::ResponseMeta;
use ai_gateway::translate::stream::StreamTranslator;
use arbitrary::Arbitrary;
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    stream: Vec<u8>,
    cuts: Vec<u16>,
    include_usage: bool,
}

fuzz_target!(|input: Input| {
    let whole = translate(&input.stream, &[], input.include_usage);
    let split = translate(&input.stream, &input.cuts, input.include_usage);
    assert_eq!(whole, split, "output depends on read boundaries");
    check_sse(&whole);
});

/// Feeds `stream` in pieces ending at `cuts` (then the rest) and returns all SSE output,
/// driving the decoder and translator exactly as the streaming body does.
fn translate(stream: &[u8], cuts: &[u16], include_usage: bool) -> Vec<u8> {
    let meta = ResponseMeta { id: "chatcmpl-fuzz", created: 1, model: "fuzz" };
    let mut translator = StreamTranslator::new(&meta, include_usage);
    let mut decoder = EventDecoder::new(64 * 1024);
    let mut out = BytesMut::new();
    let mut start = 0;
    let mut ends: Vec<usize> = cuts.iter().map(|&c| usize::from(c).min(stream.len())).collect();
    ends.sort_unstable();
    ends.push(stream.len());
    'feed: for (i, end) in ends.into_iter().enumerate() {
        if end <= start {
            continue;
        }
        // Alternate the decoder's copying and in-place paths.
        if i % 2 == 0 {
            decoder.push(&stream[start..end]);
        } else {
            decoder.push_bytes(bytes::Bytes::copy_from_slice(&stream[start..end]));
        }
        start = end;
        while !translator.is_finished() {
            match decoder.next_message() {
                Ok(Some(message)) => {
                    if let Err(e) = translator.on_message(&message, &mut out) {
                        translator.on_failure(&e, &mut out);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    translator.on_failure(&ai_gateway::Error::UpstreamProtocol(e.to_string().into()), &mut out);
                    break 'feed;
                }
            }
        }
        if translator.is_finished() {
            break;
        }
    }
    if !translator.is_finished() {
        match decoder.finish() {
            Ok(()) => translator.on_upstream_end(&mut out),
            Err(e) => translator.on_failure(&ai_gateway::Error::UpstreamProtocol(e.to_string().into()), &mut out),
        }
    }
    out.to_vec()
}

/// Every record is `data: <JSON or [DONE]>\n\n`, and the stream ends with `[DONE]` or an error.
fn check_sse(out: &[u8]) {
    let text = std::str::from_utf8(out).expect("SSE is UTF-8");
    assert!(text.ends_with("\n\n"), "stream does not end with a complete record");
    let records: Vec<&str> = text.split_terminator("\n\n").collect();
    for (i, record) in records.iter().enumerate() {
        let data = record.strip_prefix("data: ").expect("data line");
        assert!(!data.contains('\n'), "multi-line data");
        if data == "[DONE]" {
            assert_eq!(i, records.len() - 1, "[DONE] is last");
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(data).expect("record is JSON");
        if v.get("error").is_some() {
            assert_eq!(i, records.len() - 1, "an error record is last");
        }
    }
}
