//! Property: the gateway's borrowing event-stream decoder reads every frame exactly as
//! aws-smithy-eventstream does. Frames are built with correct CRCs around generated header
//! sections (valid headers of every type, with lengths, types, UTF-8 and the headers length
//! sometimes broken), so the comparison reaches header parsing rather than stopping at a
//! checksum. Both must accept the same frames with the same headers and payload, and refuse
//! the same frames.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ai_gateway::bedrock::eventstream::{EventDecoder, HeaderValueRef, read_message};
use aws_smithy_eventstream::frame::read_message_from;
use proptest::prelude::*;

/// One header as generated: a name, a type byte and the bytes that follow it.
#[derive(Debug, Clone)]
struct RawHeader {
    name: Vec<u8>,
    value_type: u8,
    value: Vec<u8>,
}

fn raw_header() -> impl Strategy<Value = RawHeader> {
    let name = prop_oneof![
        8 => "[:a-z-]{0,20}".prop_map(String::into_bytes),
        1 => "\\PC{1,6}".prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>(), 0..8),
    ];
    let value = prop_oneof![
        Just((0u8, Vec::new())),
        Just((1u8, Vec::new())),
        prop::collection::vec(any::<u8>(), 1).prop_map(|v| (2u8, v)),
        prop::collection::vec(any::<u8>(), 2).prop_map(|v| (3u8, v)),
        prop::collection::vec(any::<u8>(), 4).prop_map(|v| (4u8, v)),
        prop::collection::vec(any::<u8>(), 8).prop_map(|v| (5u8, v)),
        prop::collection::vec(any::<u8>(), 0..24).prop_map(|v| (6u8, with_len(&v))),
        "\\PC{0,16}".prop_map(|s| (7u8, with_len(s.as_bytes()))),
        prop::collection::vec(any::<u8>(), 0..8).prop_map(|v| (7u8, with_len(&v))),
        prop::collection::vec(any::<u8>(), 8).prop_map(|v| (8u8, v)),
        prop::collection::vec(any::<u8>(), 16).prop_map(|v| (9u8, v)),
        // An unknown type, or a value of the wrong length for its type.
        (10u8..=255, prop::collection::vec(any::<u8>(), 0..4)),
        (2u8..=9, prop::collection::vec(any::<u8>(), 0..3)),
    ];
    (name, value).prop_map(|(name, (value_type, value))| RawHeader {
        name,
        value_type,
        value,
    })
}

fn with_len(bytes: &[u8]) -> Vec<u8> {
    let mut v = (bytes.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(bytes);
    v
}

/// A frame with both CRCs right. `cut` drops bytes off the end of the header section and
/// `headers_len_delta` misstates its length, both kept inside the frame.
fn frame(headers: &[RawHeader], payload: &[u8], cut: usize, headers_len_delta: i8) -> Vec<u8> {
    let mut section = Vec::new();
    for h in headers {
        section.push(h.name.len().min(255) as u8);
        section.extend_from_slice(&h.name[..h.name.len().min(255)]);
        section.push(h.value_type);
        section.extend_from_slice(&h.value);
    }
    section.truncate(section.len().saturating_sub(cut));
    let total = (12 + section.len() + payload.len() + 4) as u32;
    let headers_len =
        (section.len() as i64 + i64::from(headers_len_delta)).clamp(0, i64::from(total) - 16) as u32;
    let mut out = Vec::new();
    out.extend_from_slice(&total.to_be_bytes());
    out.extend_from_slice(&headers_len.to_be_bytes());
    let prelude_crc = crc32fast::hash(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&section);
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// Both decoders' reading of `frame`: headers in frame order and the payload, or `None` for a
/// refusal.
type Decoded<'f> = Option<(Vec<(&'f str, HeaderValueRef<'f>)>, &'f [u8])>;

fn ours(frame: &[u8]) -> Decoded<'_> {
    let message = read_message(frame).ok()?;
    Some((message.headers().collect(), message.payload()))
}

fn library(message: &Option<aws_smithy_types::event_stream::Message>) -> Decoded<'_> {
    let message = message.as_ref()?;
    let headers = message
        .headers()
        .iter()
        .map(|h| (h.name().as_str(), HeaderValueRef::try_from(h.value()).unwrap()))
        .collect();
    Some((headers, &message.payload()[..]))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn decodes_every_frame_as_the_library_does(
        headers in prop::collection::vec(raw_header(), 0..6),
        payload in prop::collection::vec(any::<u8>(), 0..64),
        cut in prop_oneof![8 => Just(0usize), 1 => 1usize..6],
        headers_len_delta in prop_oneof![8 => Just(0i8), 1 => -3i8..=3],
    ) {
        let frame = frame(&headers, &payload, cut, headers_len_delta);
        let ours = ours(&frame);
        let reference = read_message_from(&frame[..]).ok();
        prop_assert_eq!(&ours, &library(&reference));

        // The streaming decoder gives the same verdict, fed one byte at a time.
        let mut decoder = EventDecoder::default();
        let mut verdict = None;
        for byte in &frame {
            decoder.push(std::slice::from_ref(byte));
            match decoder.next_message() {
                Ok(Some(message)) => verdict = Some(Ok(message.payload().to_vec())),
                Ok(None) => {}
                Err(e) => verdict = Some(Err(e)),
            }
            if verdict.is_some() {
                break;
            }
        }
        let verdict = verdict.expect("a whole frame gives a message or an error");
        prop_assert_eq!(verdict.ok(), ours.map(|(_, payload)| payload.to_vec()));
    }
}

#[test]
fn valid_frames_of_every_header_type_decode_alike() {
    // Sanity for the generator: frames the library writes itself.
    use aws_smithy_types::DateTime;
    use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
    let message = Message::new(&b"{\"a\":1}"[..])
        .add_header(Header::new("t", HeaderValue::Bool(true)))
        .add_header(Header::new("f", HeaderValue::Bool(false)))
        .add_header(Header::new("b", HeaderValue::Byte(-3)))
        .add_header(Header::new("s", HeaderValue::Int16(-300)))
        .add_header(Header::new("i", HeaderValue::Int32(70_000)))
        .add_header(Header::new("l", HeaderValue::Int64(-5_000_000_000)))
        .add_header(Header::new("y", HeaderValue::ByteArray(vec![0, 255].into())))
        .add_header(Header::new(":event-type", HeaderValue::String("é".into())))
        .add_header(Header::new(
            "ts",
            HeaderValue::Timestamp(DateTime::from_millis(1_700_000_000_123)),
        ))
        .add_header(Header::new(
            "u",
            HeaderValue::Uuid(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef),
        ));
    let mut frame = Vec::new();
    aws_smithy_eventstream::frame::write_message_to(&message, &mut frame).unwrap();
    let decoded = ours(&frame).expect("decodes");
    assert_eq!(decoded.0.len(), 10);
    assert_eq!(decoded.0[8], ("ts", HeaderValueRef::Timestamp(1_700_000_000_123)));
    assert_eq!(
        decoded.0[9],
        (
            "u",
            HeaderValueRef::Uuid(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef)
        )
    );
    assert_eq!(Some(decoded), library(&read_message_from(&frame[..]).ok()));
}
