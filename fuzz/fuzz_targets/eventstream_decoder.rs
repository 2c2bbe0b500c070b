//! Differential: the gateway's event-stream decoder against aws-smithy-eventstream's. The
//! fuzzer writes the header section and payload; the frame around them gets correct CRCs (and
//! a headers length the fuzzer may misstate), so every input reaches header parsing. Both
//! decoders must accept the same frames with the same headers and payload, and refuse the same.
#![no_main]

use ai_gateway::bedrock::eventstream::{HeaderValueRef, read_message};
use arbitrary::Arbitrary;
use aws_smithy_eventstream::frame::read_message_from;
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

    let ours = read_message(&frame).ok();
    let ours = ours.as_ref().map(|m| (m.headers().collect::<Vec<_>>(), m.payload()));
    let library = read_message_from(&frame[..]).ok();
    let library = library.as_ref().map(|m| {
        let headers: Vec<_> = m
            .headers()
            .iter()
            .map(|h| (h.name().as_str(), HeaderValueRef::try_from(h.value()).expect("a known header type")))
            .collect();
        (headers, &m.payload()[..])
    });
    assert_eq!(ours, library, "decoders disagree on {frame:?}");
});
