//! Incremental AWS event-stream decoding (and encoding, for the mock and tests).
//!
//! [`EventDecoder`] owns one `BytesMut` and aws-smithy-eventstream's `MessageFrameDecoder`.
//! Upstream body chunks are appended as they arrive; [`EventDecoder::next_message`] returns
//! each complete message and keeps only the partial tail. Before trusting a frame's length it
//! checks the prelude CRC and a size cap itself, because the library only checks the prelude
//! once the whole (possibly 4 GiB) frame has arrived (reference: event-stream §11).

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder, write_message_to};
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use bytes::{Bytes, BytesMut};

/// Prelude: total length, headers length, prelude CRC.
const PRELUDE_BYTES: usize = 12;
/// The smallest valid message: prelude plus message CRC.
const MIN_MESSAGE_BYTES: u32 = 16;
/// Default cap on one message. Bedrock's chunks are far smaller; botocore caps headers at
/// 128 KiB and payloads at 24 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: u32 = 24 * 1024 * 1024 + 128 * 1024 + 16;

/// Why the stream cannot be decoded. Any of these is fatal: the stream is never resynchronised.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The prelude CRC does not match its eight bytes.
    #[error("event-stream prelude checksum mismatch")]
    PreludeChecksum,
    /// The lengths in the prelude are impossible.
    #[error("event-stream message length {0} is invalid")]
    InvalidLength(u32),
    /// The message is larger than the configured cap.
    #[error("event-stream message of {0} bytes exceeds the limit")]
    TooLarge(u32),
    /// The library rejected the frame (message CRC, header encoding).
    #[error("invalid event-stream message: {0}")]
    Frame(String),
    /// A message lacks the headers that say what it is.
    #[error("event-stream message without `{0}` header")]
    MissingHeader(&'static str),
    /// The body ended inside a message.
    #[error("event stream ended inside a message ({0} bytes pending)")]
    Truncated(usize),
}

/// Incremental decoder over upstream body chunks.
#[derive(Debug)]
pub struct EventDecoder {
    buf: BytesMut,
    frames: MessageFrameDecoder,
    max_message_bytes: u32,
}

impl Default for EventDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_MESSAGE_BYTES)
    }
}

impl EventDecoder {
    /// A decoder that rejects messages larger than `max_message_bytes`.
    pub fn new(max_message_bytes: u32) -> Self {
        Self {
            // Bedrock's frames are a few hundred bytes, and the buffer grows to a frame's
            // declared size when one is larger. Starting at 1 KiB rather than 8 KiB took the load
            // test's memory per held stream from 51.2 to 47.5 KiB.
            buf: BytesMut::with_capacity(1024),
            frames: MessageFrameDecoder::new(),
            max_message_bytes,
        }
    }

    /// Appends a chunk of the upstream body.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// Bytes held that do not yet form a complete message.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Returns the next complete message, `Ok(None)` when more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<Message>, DecodeError> {
        if self.buf.len() < PRELUDE_BYTES {
            return Ok(None);
        }
        let total = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
        let prelude_crc = u32::from_be_bytes([self.buf[8], self.buf[9], self.buf[10], self.buf[11]]);
        if crc32fast::hash(&self.buf[..8]) != prelude_crc {
            return Err(DecodeError::PreludeChecksum);
        }
        if total < MIN_MESSAGE_BYTES {
            return Err(DecodeError::InvalidLength(total));
        }
        if total > self.max_message_bytes {
            return Err(DecodeError::TooLarge(total));
        }
        if self.buf.len() < total as usize {
            // Make room for the rest once, instead of growing chunk by chunk.
            self.buf.reserve(total as usize - self.buf.len());
            return Ok(None);
        }
        // The whole message is buffered, so the library decodes it in one call and keeps no
        // state between calls.
        let mut frame = self.buf.split_to(total as usize);
        match self.frames.decode_frame(&mut frame) {
            Ok(DecodedFrame::Complete(message)) => Ok(Some(message)),
            Ok(DecodedFrame::Incomplete) => Err(DecodeError::InvalidLength(total)),
            Err(e) => Err(DecodeError::Frame(e.to_string())),
        }
    }

    /// Called when the upstream body ended: an error if a partial message is left over.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Truncated(self.buf.len()))
        }
    }
}

/// What one decoded message means.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'m> {
    /// `:message-type` `event`: a member of the stream union, JSON payload.
    Event {
        /// `:event-type`, e.g. `contentBlockDelta`.
        event_type: &'m str,
        /// The JSON payload.
        payload: &'m Bytes,
    },
    /// `:message-type` `exception`: a modeled exception, JSON payload with `message`.
    Exception {
        /// `:exception-type`, e.g. `throttlingException`.
        exception_type: &'m str,
        /// The JSON payload.
        payload: &'m Bytes,
    },
    /// `:message-type` `error`: an unmodeled failure described by headers.
    Error {
        /// `:error-code`.
        code: &'m str,
        /// `:error-message`.
        message: &'m str,
    },
}

/// Looks a string header up by name (headers carry no order; names may repeat, first wins).
pub fn header_str<'m>(message: &'m Message, name: &str) -> Option<&'m str> {
    message
        .headers()
        .iter()
        .find(|h| h.name().as_str() == name)
        .and_then(|h| h.value().as_string().ok())
        .map(|s| s.as_str())
}

/// Classifies a message by its `:message-type` header, without allocating.
pub fn classify(message: &Message) -> Result<Frame<'_>, DecodeError> {
    let message_type =
        header_str(message, ":message-type").ok_or(DecodeError::MissingHeader(":message-type"))?;
    match message_type {
        "event" => Ok(Frame::Event {
            event_type: header_str(message, ":event-type")
                .ok_or(DecodeError::MissingHeader(":event-type"))?,
            payload: message.payload(),
        }),
        "exception" => Ok(Frame::Exception {
            exception_type: header_str(message, ":exception-type")
                .ok_or(DecodeError::MissingHeader(":exception-type"))?,
            payload: message.payload(),
        }),
        // `error` and anything unknown: a generic failure.
        _ => Ok(Frame::Error {
            code: header_str(message, ":error-code").unwrap_or(message_type),
            message: header_str(message, ":error-message").unwrap_or(""),
        }),
    }
}

fn string_header(name: &'static str, value: &str) -> Header {
    Header::new(name, HeaderValue::String(value.to_owned().into()))
}

fn write(message: &Message, out: &mut Vec<u8>) {
    // Writing into a Vec cannot fail for header names and values within the encoder's limits,
    // which every caller here (the mock, tests, benches) respects.
    if let Err(e) = write_message_to(message, out) {
        tracing::error!(error = %e, "event-stream encode failed");
    }
}

/// Encodes an event message as Bedrock sends it (`:event-type`, `:content-type`,
/// `:message-type`), appending it to `out`.
pub fn encode_event(event_type: &str, payload: &[u8], out: &mut Vec<u8>) {
    let message = Message::new(Bytes::copy_from_slice(payload))
        .add_header(string_header(":event-type", event_type))
        .add_header(string_header(":content-type", "application/json"))
        .add_header(string_header(":message-type", "event"));
    write(&message, out);
}

/// Encodes an exception message (`:exception-type`, `:content-type`, `:message-type`).
pub fn encode_exception(exception_type: &str, payload: &[u8], out: &mut Vec<u8>) {
    let message = Message::new(Bytes::copy_from_slice(payload))
        .add_header(string_header(":exception-type", exception_type))
        .add_header(string_header(":content-type", "application/json"))
        .add_header(string_header(":message-type", "exception"));
    write(&message, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    // reference/event-stream.md §8 and §9.
    const DELTA_HEX: &str = "0000009f00000057c37babff0b3a6576656e742d74797065070011636f6e74656e74426c6f636b44656c74610d3a636f6e74656e742d747970650700106170706c69636174696f6e2f6a736f6e0d3a6d6573736167652d747970650700056576656e747b22636f6e74656e74426c6f636b496e646578223a302c2264656c7461223a7b2274657874223a224869227d2c2270223a2261626364227df2ace5ff";
    const THROTTLE_HEX: &str = "000000b2000000613590d5d30f3a657863657074696f6e2d747970650700137468726f74746c696e67457863657074696f6e0d3a636f6e74656e742d747970650700106170706c69636174696f6e2f6a736f6e0d3a6d6573736167652d74797065070009657863657074696f6e7b226d657373616765223a22546f6f206d616e792072657175657374732c20706c656173652077616974206265666f726520747279696e6720616761696e2e227de8ffb26a";

    #[test]
    fn decodes_reference_frames_at_every_split() {
        let mut stream = hex(DELTA_HEX);
        stream.extend(hex(THROTTLE_HEX));
        for size in 1..=stream.len() {
            let mut d = EventDecoder::default();
            let mut got = Vec::new();
            for chunk in stream.chunks(size) {
                d.push(chunk);
                while let Some(m) = d.next_message().unwrap() {
                    got.push(m);
                }
            }
            d.finish().unwrap();
            assert_eq!(got.len(), 2, "split {size}");
            match classify(&got[0]).unwrap() {
                Frame::Event { event_type, payload } => {
                    assert_eq!(event_type, "contentBlockDelta");
                    assert_eq!(
                        &payload[..],
                        br#"{"contentBlockIndex":0,"delta":{"text":"Hi"},"p":"abcd"}"#
                    );
                }
                other => panic!("{other:?}"),
            }
            match classify(&got[1]).unwrap() {
                Frame::Exception {
                    exception_type,
                    payload,
                } => {
                    assert_eq!(exception_type, "throttlingException");
                    assert!(payload.starts_with(b"{\"message\":\"Too many requests"));
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn encoder_reproduces_reference_bytes() {
        let mut out = Vec::new();
        encode_event(
            "contentBlockDelta",
            br#"{"contentBlockIndex":0,"delta":{"text":"Hi"},"p":"abcd"}"#,
            &mut out,
        );
        assert_eq!(out, hex(DELTA_HEX));
        out.clear();
        encode_exception(
            "throttlingException",
            br#"{"message":"Too many requests, please wait before trying again."}"#,
            &mut out,
        );
        assert_eq!(out, hex(THROTTLE_HEX));
    }

    #[test]
    fn corrupt_prelude_is_rejected_before_the_frame_arrives() {
        let mut frame = hex(DELTA_HEX);
        frame[3] = 0xff; // length now disagrees with the prelude CRC
        let mut d = EventDecoder::default();
        d.push(&frame[..12]);
        assert_eq!(d.next_message(), Err(DecodeError::PreludeChecksum));
    }

    #[test]
    fn oversized_frame_is_rejected_from_its_prelude() {
        let mut prelude = Vec::new();
        prelude.extend_from_slice(&0x4000_0000u32.to_be_bytes());
        prelude.extend_from_slice(&0u32.to_be_bytes());
        let crc = crc32fast::hash(&prelude);
        prelude.extend_from_slice(&crc.to_be_bytes());
        let mut d = EventDecoder::new(1024);
        d.push(&prelude);
        assert_eq!(d.next_message(), Err(DecodeError::TooLarge(0x4000_0000)));
    }

    #[test]
    fn bad_message_crc_is_an_error() {
        let mut frame = hex(DELTA_HEX);
        let last = frame.len() - 1;
        frame[last] ^= 1;
        let mut d = EventDecoder::default();
        d.push(&frame);
        assert!(matches!(d.next_message(), Err(DecodeError::Frame(_))));
    }

    #[test]
    fn partial_message_at_end_is_truncation() {
        let frame = hex(DELTA_HEX);
        let mut d = EventDecoder::default();
        d.push(&frame[..40]);
        assert_eq!(d.next_message(), Ok(None));
        assert_eq!(d.finish(), Err(DecodeError::Truncated(40)));
    }
}
