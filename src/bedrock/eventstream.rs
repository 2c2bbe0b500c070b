//! Incremental AWS event-stream decoding (and encoding, for the mock and tests).
//!
//! [`EventDecoder`] owns one `BytesMut`. Upstream body chunks are appended as they arrive;
//! [`EventDecoder::next_message`] checks the next complete frame (reference: event-stream §2–§4)
//! and returns a [`Message`] that borrows it, so decoding allocates and copies nothing but the
//! header section, kept (each time the event type changes, in practice) so that the next
//! message with the same header bytes is not read again. The prelude CRC and a size cap are
//! checked as soon as 12 bytes are there, before the frame's length is trusted.
//!
//! Decoding is done here rather than with aws-smithy-eventstream's `MessageFrameDecoder`
//! because that decoder copies every header name, string value and the payload into fresh
//! buffers: 8 allocations per Bedrock event, the whole of the stream path's allocations, and
//! about half its decode time (loadtest/README.md). The library stays the reference: a property
//! test and the `bedrock_stream_frames` fuzz target feed both decoders the same frames and
//! require the same verdict, headers and payload. Encoding (the mock, tests) uses the library.

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message as OwnedMessage};
use bytes::{Buf, Bytes, BytesMut};

/// Prelude: total length, headers length, prelude CRC.
const PRELUDE_BYTES: usize = 12;
/// The smallest valid message: prelude plus message CRC.
const MIN_MESSAGE_BYTES: u32 = 16;
/// Default cap on one message. Bedrock's chunks are far smaller; botocore caps headers at
/// 128 KiB and payloads at 24 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: u32 = 24 * 1024 * 1024 + 128 * 1024 + 16;

/// Why the stream cannot be decoded. Any of these is fatal: the stream is never resynchronised.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
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
    /// The message CRC does not match the message.
    #[error("event-stream message checksum mismatch")]
    MessageChecksum,
    /// A header is cut short, has an unknown value type or a name or string that is not UTF-8.
    #[error("invalid event-stream header: {0}")]
    Header(&'static str),
    /// A message lacks the headers that say what it is.
    #[error("event-stream message without `{0}` header")]
    MissingHeader(&'static str),
    /// The body ended inside a message.
    #[error("event stream ended inside a message ({0} bytes pending)")]
    Truncated(usize),
}

/// Incremental decoder over upstream body chunks.
///
/// A chunk given with [`EventDecoder::push_bytes`] while nothing is pending is read where it
/// lies: Bedrock sends about one message per read, so a steady stream is decoded without a
/// copy. Only a partial message is copied, with the chunks after it, into the decoder's own
/// buffer, which is freed again once emptied, so a stream waiting between two events holds no
/// frame buffer, only the copy of the last header section (about 100 bytes for Bedrock's).
#[derive(Debug)]
pub struct EventDecoder {
    /// The chunk being read in place (empty when `buf` is in use).
    chunk: Bytes,
    /// A partial message and what followed it.
    buf: BytesMut,
    /// Length of the message last returned, still at the front of `chunk` or `buf` while it is
    /// borrowed.
    consumed: usize,
    max_message_bytes: u32,
    /// The header section read last.
    last_headers: LastHeaders,
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
            chunk: Bytes::new(),
            buf: BytesMut::new(),
            consumed: 0,
            max_message_bytes,
            last_headers: LastHeaders::default(),
        }
    }

    /// Appends a chunk of the upstream body, read in place when nothing is pending.
    pub fn push_bytes(&mut self, chunk: Bytes) {
        self.release();
        if self.chunk.is_empty() && self.buf.is_empty() {
            self.chunk = chunk;
        } else {
            self.spill();
            self.buf.extend_from_slice(&chunk);
        }
    }

    /// Appends a copy of a chunk of the upstream body.
    pub fn push(&mut self, chunk: &[u8]) {
        self.release();
        self.spill();
        self.buf.extend_from_slice(chunk);
    }

    /// Bytes held that do not yet form a complete message.
    pub fn buffered(&self) -> usize {
        self.chunk.len() + self.buf.len() - self.consumed
    }

    /// Returns the next complete message, `Ok(None)` when more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<Message<'_>>, DecodeError> {
        self.release();
        if !self.chunk.is_empty() {
            if let Some(prelude) = self.chunk.get(..PRELUDE_BYTES) {
                let (total, headers_len) = check_prelude(prelude, self.max_message_bytes)?;
                if self.chunk.len() >= total {
                    self.consumed = total;
                    let frame = &self.chunk[..total];
                    return read_frame(frame, headers_len, Some(&mut self.last_headers)).map(Some);
                }
            }
            // The chunk ends inside a message: keep its tail with what comes next.
            self.spill();
        }
        let Some(prelude) = self.buf.get(..PRELUDE_BYTES) else {
            return Ok(None);
        };
        let (total, headers_len) = check_prelude(prelude, self.max_message_bytes)?;
        if self.buf.len() < total {
            // Make room for the rest once, instead of growing chunk by chunk.
            self.buf.reserve(total - self.buf.len());
            return Ok(None);
        }
        self.consumed = total;
        read_frame(&self.buf[..total], headers_len, Some(&mut self.last_headers)).map(Some)
    }

    /// Called when the upstream body ended: an error if a partial message is left over.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.buffered() {
            0 => Ok(()),
            pending => Err(DecodeError::Truncated(pending)),
        }
    }

    /// Drops the message returned last. An emptied chunk or buffer is let go (the chunk
    /// belongs to hyper's read buffer), so an idle stream holds neither.
    fn release(&mut self) {
        if self.consumed == 0 {
            return;
        }
        if !self.chunk.is_empty() {
            self.chunk.advance(self.consumed);
            if self.chunk.is_empty() {
                self.chunk = Bytes::new();
            }
        } else if self.consumed == self.buf.len() {
            self.buf = BytesMut::new();
        } else {
            self.buf.advance(self.consumed);
        }
        self.consumed = 0;
    }

    /// Moves what is left of the chunk into the buffer.
    fn spill(&mut self) {
        if !self.chunk.is_empty() {
            self.buf.extend_from_slice(&self.chunk);
            self.chunk = Bytes::new();
        }
    }
}

/// Decodes one whole message (prelude, headers, payload, CRC) from `frame`, which holds
/// exactly that message; the caller has checked the prelude CRC and lengths. With `last`, a
/// header section byte for byte the same as the one read before is not read again.
fn read_frame<'b>(
    frame: &'b [u8],
    headers_len: usize,
    last: Option<&'b mut LastHeaders>,
) -> Result<Message<'b>, DecodeError> {
    let (body, crc) = frame.split_at(frame.len() - 4);
    if crc32fast::hash(body) != be32(crc, 0) {
        return Err(DecodeError::MessageChecksum);
    }
    let (headers, payload) = body[PRELUDE_BYTES..].split_at(headers_len);
    let known = match last {
        Some(last) if last.section.as_bytes() == headers => last.known(),
        Some(last) => {
            let (known, spans, text) = read_headers(headers)?;
            last.keep(text, spans);
            known
        }
        None => read_headers(headers)?.0,
    };
    Ok(Message {
        headers,
        payload,
        known,
    })
}

/// Checks every header of a section and finds the known ones (the first of a repeated name
/// counts; the library keeps both) and where their values lie in it; with the section as
/// text when it is UTF-8 throughout.
fn read_headers(headers: &[u8]) -> Result<(Known<'_>, Spans, Option<&str>), DecodeError> {
    let mut known = Known::default();
    let mut spans = Spans::default();
    let mut cursor = HeaderCursor::new(headers);
    while !cursor.is_empty() {
        let (name, value) = cursor.next_header()?;
        if let HeaderValueRef::String(value) = value {
            let (slot, span) = match name {
                ":message-type" => (&mut known.message_type, &mut spans[0]),
                ":event-type" => (&mut known.event_type, &mut spans[1]),
                ":exception-type" => (&mut known.exception_type, &mut spans[2]),
                ":error-code" => (&mut known.error_code, &mut spans[3]),
                ":error-message" => (&mut known.error_message, &mut spans[4]),
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(value);
                // A string value is the last thing the cursor took.
                *span = Some((cursor.at - value.len(), cursor.at));
            }
        }
    }
    Ok((known, spans, cursor.text))
}

/// Where the values of the five [`Known`] headers lie in a header section, in field order.
type Spans = [Option<(usize, usize)>; 5];

/// The header section read last, kept with what was found in it: Bedrock sends the same
/// three headers with every text delta, so a stream reads a section again only when the event
/// type changes.
#[derive(Debug, Default)]
struct LastHeaders {
    /// The section, when it was valid and UTF-8 throughout (Bedrock's are ASCII); empty
    /// otherwise, which matches only an empty section (with no known headers either).
    section: String,
    spans: Spans,
}

impl LastHeaders {
    /// The largest section kept; larger ones are read every time.
    const MAX_BYTES: usize = 512;

    /// Keeps a section just read (`text`, when it is UTF-8) and the spans found in it.
    fn keep(&mut self, text: Option<&str>, spans: Spans) {
        self.section.clear();
        self.spans = Spans::default();
        if let Some(text) = text.filter(|text| text.len() <= Self::MAX_BYTES) {
            self.section.push_str(text);
            self.spans = spans;
        }
    }

    fn known(&self) -> Known<'_> {
        let value = |i: usize| self.spans[i].and_then(|(start, end)| self.section.get(start..end));
        Known {
            message_type: value(0),
            event_type: value(1),
            exception_type: value(2),
            error_code: value(3),
            error_message: value(4),
        }
    }
}

/// Decodes a whole message held in `frame`, checking both CRCs; bytes after it are an error.
pub fn read_message(frame: &[u8]) -> Result<Message<'_>, DecodeError> {
    let prelude = frame
        .get(..PRELUDE_BYTES)
        .ok_or(DecodeError::Truncated(frame.len()))?;
    let (total, headers_len) = check_prelude(prelude, u32::MAX)?;
    if total != frame.len() {
        return Err(DecodeError::InvalidLength(be32(frame, 0)));
    }
    read_frame(frame, headers_len, None)
}

/// Checks the 12-byte prelude (reference: event-stream §4) before its lengths are trusted and
/// returns the message and headers lengths.
fn check_prelude(prelude: &[u8], max_message_bytes: u32) -> Result<(usize, usize), DecodeError> {
    let (total, headers_len) = (be32(prelude, 0), be32(prelude, 4));
    if crc32fast::hash(&prelude[..8]) != be32(prelude, 8) {
        return Err(DecodeError::PreludeChecksum);
    }
    if total < MIN_MESSAGE_BYTES || headers_len > total - MIN_MESSAGE_BYTES {
        return Err(DecodeError::InvalidLength(total));
    }
    if total > max_message_bytes {
        return Err(DecodeError::TooLarge(total));
    }
    Ok((total as usize, headers_len as usize))
}

/// The big-endian `u32` at `at`; the caller has checked the length.
fn be32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Reads the headers of one message (reference: event-stream §3). When the whole section is
/// UTF-8, as Bedrock's (ASCII) are, it is checked once and names and string values are sliced
/// out of it; a slice that does not fall on character boundaries, or any slice of a section
/// that is not UTF-8, is checked on its own.
struct HeaderCursor<'b> {
    bytes: &'b [u8],
    text: Option<&'b str>,
    at: usize,
}

impl<'b> HeaderCursor<'b> {
    fn new(bytes: &'b [u8]) -> Self {
        let text = std::str::from_utf8(bytes).ok();
        Self { bytes, text, at: 0 }
    }

    fn is_empty(&self) -> bool {
        self.at >= self.bytes.len()
    }

    /// The next `n` bytes and where they start.
    fn take(&mut self, n: usize) -> Result<(usize, &'b [u8]), DecodeError> {
        let start = self.at;
        let bytes = self
            .bytes
            .get(start..start.saturating_add(n))
            .ok_or(DecodeError::Header("cut short"))?;
        self.at = start + n;
        Ok((start, bytes))
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?.1[0])
    }

    fn text(&mut self, n: usize, not_utf8: &'static str) -> Result<&'b str, DecodeError> {
        let (start, bytes) = self.take(n)?;
        self.text
            .and_then(|text| text.get(start..start + n))
            .or_else(|| std::str::from_utf8(bytes).ok())
            .ok_or(DecodeError::Header(not_utf8))
    }

    /// Takes one header.
    fn next_header(&mut self) -> Result<(&'b str, HeaderValueRef<'b>), DecodeError> {
        let name_len = self.byte()?;
        let name = self.text(usize::from(name_len), "name is not UTF-8")?;
        let value = match self.byte()? {
            0 => HeaderValueRef::Bool(true),
            1 => HeaderValueRef::Bool(false),
            2 => HeaderValueRef::Byte(self.byte()? as i8),
            3 => {
                let v = self.take(2)?.1;
                HeaderValueRef::Int16(i16::from_be_bytes([v[0], v[1]]))
            }
            4 => HeaderValueRef::Int32(be32(self.take(4)?.1, 0) as i32),
            5 => HeaderValueRef::Int64(i64::from_be_bytes(dword(self.take(8)?.1))),
            value_type @ (6 | 7) => {
                let len = self.take(2)?.1;
                let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
                if value_type == 6 {
                    HeaderValueRef::Bytes(self.take(len)?.1)
                } else {
                    HeaderValueRef::String(self.text(len, "string value is not UTF-8")?)
                }
            }
            8 => HeaderValueRef::Timestamp(i64::from_be_bytes(dword(self.take(8)?.1))),
            9 => {
                let mut uuid = [0; 16];
                uuid.copy_from_slice(self.take(16)?.1);
                HeaderValueRef::Uuid(u128::from_be_bytes(uuid))
            }
            _ => return Err(DecodeError::Header("unknown value type")),
        };
        Ok((name, value))
    }
}

/// The eight bytes at the front of `v`; the caller has checked the length.
fn dword(v: &[u8]) -> [u8; 8] {
    [v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]]
}

/// A header value as it lies in the frame (reference: event-stream §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum HeaderValueRef<'b> {
    Bool(bool),
    Byte(i8),
    Int16(i16),
    Int32(i32),
    Int64(i64),
    Bytes(&'b [u8]),
    String(&'b str),
    /// Milliseconds since the Unix epoch.
    Timestamp(i64),
    Uuid(u128),
}

impl<'a> TryFrom<&'a HeaderValue> for HeaderValueRef<'a> {
    type Error = DecodeError;

    /// The same value as aws-smithy-types holds it (tests compare the two decoders with this).
    fn try_from(value: &'a HeaderValue) -> Result<Self, DecodeError> {
        Ok(match value {
            HeaderValue::Bool(b) => Self::Bool(*b),
            HeaderValue::Byte(n) => Self::Byte(*n),
            HeaderValue::Int16(n) => Self::Int16(*n),
            HeaderValue::Int32(n) => Self::Int32(*n),
            HeaderValue::Int64(n) => Self::Int64(*n),
            HeaderValue::ByteArray(bytes) => Self::Bytes(bytes),
            HeaderValue::String(text) => Self::String(text.as_str()),
            HeaderValue::Timestamp(time) => Self::Timestamp(
                time.to_millis()
                    .map_err(|_| DecodeError::Header("timestamp out of range"))?,
            ),
            HeaderValue::Uuid(uuid) => Self::Uuid(*uuid),
            _ => return Err(DecodeError::Header("unknown value type")),
        })
    }
}

/// The string headers that say what a message is, found while its headers are checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Known<'b> {
    message_type: Option<&'b str>,
    event_type: Option<&'b str>,
    exception_type: Option<&'b str>,
    error_code: Option<&'b str>,
    error_message: Option<&'b str>,
}

/// One decoded message, borrowing the frame it was decoded from. Its headers have been
/// checked; [`Message::headers`] walks them again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'b> {
    headers: &'b [u8],
    payload: &'b [u8],
    known: Known<'b>,
}

impl<'b> Message<'b> {
    /// The payload.
    pub fn payload(&self) -> &'b [u8] {
        self.payload
    }

    /// Every header in frame order (names may repeat).
    pub fn headers(&self) -> impl Iterator<Item = (&'b str, HeaderValueRef<'b>)> + use<'b> {
        let mut cursor = HeaderCursor::new(self.headers);
        std::iter::from_fn(move || {
            if cursor.is_empty() {
                None
            } else {
                cursor.next_header().ok()
            }
        })
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
        payload: &'m [u8],
    },
    /// `:message-type` `exception`: a modeled exception, JSON payload with `message`.
    Exception {
        /// `:exception-type`, e.g. `throttlingException`.
        exception_type: &'m str,
        /// The JSON payload.
        payload: &'m [u8],
    },
    /// `:message-type` `error`: an unmodeled failure described by headers.
    Error {
        /// `:error-code`.
        code: &'m str,
        /// `:error-message`.
        message: &'m str,
    },
}

/// Classifies a message by its `:message-type` header (reference: event-stream §5).
pub fn classify<'m>(message: &Message<'m>) -> Result<Frame<'m>, DecodeError> {
    let known = &message.known;
    let message_type = known
        .message_type
        .ok_or(DecodeError::MissingHeader(":message-type"))?;
    match message_type {
        "event" => Ok(Frame::Event {
            event_type: known
                .event_type
                .ok_or(DecodeError::MissingHeader(":event-type"))?,
            payload: message.payload,
        }),
        "exception" => Ok(Frame::Exception {
            exception_type: known
                .exception_type
                .ok_or(DecodeError::MissingHeader(":exception-type"))?,
            payload: message.payload,
        }),
        // `error` and anything unknown: a generic failure.
        _ => Ok(Frame::Error {
            code: known.error_code.unwrap_or(message_type),
            message: known.error_message.unwrap_or(""),
        }),
    }
}

fn string_header(name: &'static str, value: &str) -> Header {
    Header::new(name, HeaderValue::String(value.to_owned().into()))
}

fn write(message: &OwnedMessage, out: &mut Vec<u8>) {
    // Writing into a Vec cannot fail for header names and values within the encoder's limits,
    // which every caller here (the mock, tests, benches) respects.
    if let Err(e) = write_message_to(message, out) {
        tracing::error!(error = %e, "event-stream encode failed");
    }
}

/// Encodes an event message as Bedrock sends it (`:event-type`, `:content-type`,
/// `:message-type`), appending it to `out`.
pub fn encode_event(event_type: &str, payload: &[u8], out: &mut Vec<u8>) {
    let message = OwnedMessage::new(Bytes::copy_from_slice(payload))
        .add_header(string_header(":event-type", event_type))
        .add_header(string_header(":content-type", "application/json"))
        .add_header(string_header(":message-type", "event"));
    write(&message, out);
}

/// Encodes an exception message (`:exception-type`, `:content-type`, `:message-type`).
pub fn encode_exception(exception_type: &str, payload: &[u8], out: &mut Vec<u8>) {
    let message = OwnedMessage::new(Bytes::copy_from_slice(payload))
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
        // Every piece size, each fed copied, in place, or alternating between the two.
        for (size, feed) in (1..=stream.len()).flat_map(|size| (0..3).map(move |feed| (size, feed))) {
            let mut d = EventDecoder::default();
            let mut got = Vec::new();
            for (i, chunk) in stream.chunks(size).enumerate() {
                if feed == 0 || (feed == 2 && i % 2 == 0) {
                    d.push(chunk);
                } else {
                    d.push_bytes(Bytes::copy_from_slice(chunk));
                }
                while let Some(m) = d.next_message().unwrap() {
                    got.push(match classify(&m).unwrap() {
                        Frame::Event { event_type, payload } => {
                            ("event", event_type.to_owned(), payload.to_vec())
                        }
                        Frame::Exception {
                            exception_type,
                            payload,
                        } => ("exception", exception_type.to_owned(), payload.to_vec()),
                        other => panic!("{other:?}"),
                    });
                }
            }
            d.finish().unwrap();
            assert_eq!(d.buffered(), 0);
            assert_eq!(got.len(), 2, "split {size}, feed {feed}");
            assert_eq!(got[0].0, "event");
            assert_eq!(got[0].1, "contentBlockDelta");
            assert_eq!(
                got[0].2,
                br#"{"contentBlockIndex":0,"delta":{"text":"Hi"},"p":"abcd"}"#
            );
            assert_eq!(got[1].0, "exception");
            assert_eq!(got[1].1, "throttlingException");
            assert!(got[1].2.starts_with(b"{\"message\":\"Too many requests"));
        }
    }

    #[test]
    fn reference_headers_are_read_in_frame_order() {
        let frame = hex(DELTA_HEX);
        let message = read_message(&frame).unwrap();
        let headers: Vec<_> = message.headers().collect();
        assert_eq!(
            headers,
            [
                (":event-type", HeaderValueRef::String("contentBlockDelta")),
                (":content-type", HeaderValueRef::String("application/json")),
                (":message-type", HeaderValueRef::String("event")),
            ]
        );
        let mut longer = frame.clone();
        longer.push(0);
        assert_eq!(read_message(&longer), Err(DecodeError::InvalidLength(0x9f)));
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
        assert_eq!(d.next_message(), Err(DecodeError::MessageChecksum));
    }

    #[test]
    fn a_chunk_read_in_place_is_let_go_once_its_messages_are_read() {
        let mut two = hex(DELTA_HEX);
        two.extend(hex(DELTA_HEX));
        let chunk = Bytes::from(two);
        let mut d = EventDecoder::default();
        d.push_bytes(chunk.clone());
        assert!(d.next_message().unwrap().is_some());
        assert!(d.next_message().unwrap().is_some());
        assert_eq!(d.next_message(), Ok(None));
        // Only the test's own handle is left: the decoder kept no reference to the chunk.
        assert!(chunk.is_unique());
        d.finish().unwrap();
    }

    /// A message with the given headers and payload, as the library writes it.
    fn frame_with(headers: Vec<Header>, payload: &[u8]) -> Vec<u8> {
        let mut message = OwnedMessage::new(Bytes::copy_from_slice(payload));
        for header in headers {
            message = message.add_header(header);
        }
        let mut out = Vec::new();
        write(&message, &mut out);
        out
    }

    #[test]
    fn repeated_header_sections_read_as_when_read_alone() {
        let event = |name: &str| {
            let mut out = Vec::new();
            encode_event(name, b"{}", &mut out);
            out
        };
        let mut exception = Vec::new();
        encode_exception("throttlingException", b"{}", &mut exception);
        let binary = || {
            frame_with(
                vec![
                    Header::new(":message-type", HeaderValue::String("event".into())),
                    Header::new(":event-type", HeaderValue::String("aaaa".into())),
                    Header::new("x-bin", HeaderValue::ByteArray(Bytes::from_static(&[0xff, 0]))),
                ],
                b"{}",
            )
        };
        // Same-length sections that differ in one value, a section that is not UTF-8 (not
        // kept), a message with no headers at all, and repeats of each.
        let frames = [
            event("aaaa"),
            event("aaaa"),
            event("bbbb"),
            event("aaaa"),
            exception.clone(),
            exception,
            binary(),
            binary(),
            frame_with(Vec::new(), b"{}"),
            event("aaaa"),
            frame_with(Vec::new(), b"{}"),
        ];
        let mut d = EventDecoder::default();
        let mut kinds = Vec::new();
        for (i, frame) in frames.iter().enumerate() {
            d.push(frame);
            let message = d.next_message().unwrap().unwrap();
            let alone = read_message(frame).unwrap();
            assert_eq!(message, alone, "frame {i}");
            assert_eq!(classify(&message), classify(&alone), "frame {i}");
            // The cases above, as classified.
            kinds.push(match classify(&message) {
                Ok(Frame::Event { event_type, .. }) => event_type.to_owned(),
                Ok(Frame::Exception { exception_type, .. }) => exception_type.to_owned(),
                Ok(Frame::Error { code, .. }) => format!("error {code}"),
                Err(e) => e.to_string(),
            });
        }
        let missing = DecodeError::MissingHeader(":message-type").to_string();
        assert_eq!(
            kinds,
            [
                "aaaa",
                "aaaa",
                "bbbb",
                "aaaa",
                "throttlingException",
                "throttlingException",
                "aaaa",
                "aaaa",
                &missing,
                "aaaa",
                &missing,
            ]
        );
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
