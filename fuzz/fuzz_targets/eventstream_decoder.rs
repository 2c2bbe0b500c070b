//! Differential: the gateway's event-stream decoder against aws-smithy-eventstream's. The
//! fuzzer writes the header section and payload; the frame around them gets correct CRCs (and
//! a headers length the fuzzer may misstate), so every input reaches header parsing. Both
//! decoders must accept the same frames with the same headers and payload, and refuse the same.
#![no_main]

use ai_gateway::bedrock::eventstream::{HeaderValueRef, read_message};
use arbitrary::Arbitrary;
use aws_smithy_eventstream::frame::read_message_from;
use aws_smithy_types::event_stream::HeaderValue;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    headers: Vec<u8>,
    payload: Vec<u8>,
    headers_len_delta: i8,
}

fuzz_target!(|input: Input| {
    let total = 12 + input.headers.len() + input.payload.len() + 4;
    let Ok(total) = u32::try_from(total) else { return };
    let headers_len =
        (input.headers.len() as i64 + i64::from(input.headers_len_delta)).clamp(0, i64::from(total) - 16) as u32;
    let mut frame = Vec::with_capacity(total as usize);
    frame.extend_from_slice(&total.to_be_bytes());
    frame.extend_from_slice(&headers_len.to_be_bytes());
    let prelude_crc = crc32fast::hash(&frame);
    frame.extend_from_slice(&prelude_crc.to_be_bytes());
    frame.extend_from_slice(&input.headers);
    frame.extend_from_slice(&input.payload);
    let crc = crc32fast::hash(&frame);
    frame.extend_from_slice(&crc.to_be_bytes());

    let ours = read_message(&frame).ok().map(|m| {
        let headers: Vec<(String, String)> = m
            .headers()
            .map(|(name, value)| {
                let value = match value {
                    HeaderValueRef::Bool(b) => format!("bool {b}"),
                    HeaderValueRef::Byte(n) => format!("byte {n}"),
                    HeaderValueRef::Int16(n) => format!("int16 {n}"),
                    HeaderValueRef::Int32(n) => format!("int32 {n}"),
                    HeaderValueRef::Int64(n) => format!("int64 {n}"),
                    HeaderValueRef::Bytes(b) => format!("bytes {b:?}"),
                    HeaderValueRef::String(s) => format!("string {s:?}"),
                    HeaderValueRef::Timestamp(ms) => format!("timestamp {ms}"),
                    HeaderValueRef::Uuid(u) => format!("uuid {u:x}"),
                };
                (name.to_owned(), value)
            })
            .collect();
        (headers, m.payload().to_vec())
    });
    let library = read_message_from(&frame[..]).ok().map(|m| {
        let headers: Vec<(String, String)> = m
            .headers()
            .iter()
            .map(|h| {
                let value = match h.value() {
                    HeaderValue::Bool(b) => format!("bool {b}"),
                    HeaderValue::Byte(n) => format!("byte {n}"),
                    HeaderValue::Int16(n) => format!("int16 {n}"),
                    HeaderValue::Int32(n) => format!("int32 {n}"),
                    HeaderValue::Int64(n) => format!("int64 {n}"),
                    HeaderValue::ByteArray(b) => format!("bytes {:?}", &b[..]),
                    HeaderValue::String(s) => format!("string {:?}", s.as_str()),
                    HeaderValue::Timestamp(t) => format!("timestamp {}", t.to_millis().expect("millis")),
                    HeaderValue::Uuid(u) => format!("uuid {u:x}"),
                    other => panic!("unknown header value {other:?}"),
                };
                (h.name().as_str().to_owned(), value)
            })
            .collect();
        (headers, m.payload().to_vec())
    });
    assert_eq!(ours, library, "decoders disagree on {frame:?}");
});
