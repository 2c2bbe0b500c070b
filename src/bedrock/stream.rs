//! ConverseStream event payloads (reference: event-stream §6), deserialized in place into
//! borrowed types, and the event type named by the `:event-type` header.
//!
//! Every payload carries a random-length padding member `p`, and new members appear over time:
//! unknown members are skipped, never rejected.

use serde::Deserialize;

pub use crate::bedrock::converse::TokenUsage;
use crate::json;

/// The `:event-type` of an event message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// `messageStart`: the assistant message begins.
    MessageStart,
    /// `contentBlockStart`: a tool-use (or server-tool result, image) block begins.
    ContentBlockStart,
    /// `contentBlockDelta`: a fragment of a block.
    ContentBlockDelta,
    /// `contentBlockStop`: a block ends.
    ContentBlockStop,
    /// `messageStop`: generation ended, with the stop reason.
    MessageStop,
    /// `metadata`: usage and metrics, after `messageStop`.
    Metadata,
    /// An event this gateway does not know; skipped, since Bedrock adds members over time.
    Unknown,
}

impl EventType {
    /// Reads the `:event-type` header value.
    pub fn from_name(name: &str) -> Self {
        match name {
            "messageStart" => Self::MessageStart,
            "contentBlockStart" => Self::ContentBlockStart,
            "contentBlockDelta" => Self::ContentBlockDelta,
            "contentBlockStop" => Self::ContentBlockStop,
            "messageStop" => Self::MessageStop,
            "metadata" => Self::Metadata,
            _ => Self::Unknown,
        }
    }
}

/// `messageStart` payload.
#[derive(Debug, Deserialize)]
pub struct MessageStartEvent<'a> {
    /// Always `assistant` in practice.
    #[serde(borrow)]
    pub role: Option<&'a str>,
}

/// `contentBlockStart` payload.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentBlockStartEvent<'a> {
    /// Position of the block among all output blocks (text, reasoning and tool blocks alike).
    pub content_block_index: u32,
    /// The union saying what kind of block starts; may be `{}`.
    #[serde(borrow, default)]
    pub start: ContentBlockStart<'a>,
}

/// The `start` union of `contentBlockStart`; members other than `toolUse` are skipped.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentBlockStart<'a> {
    /// A tool call begins.
    #[serde(borrow)]
    pub tool_use: Option<ToolUseBlockStart<'a>>,
}

/// `start.toolUse`: the call's id and tool name (sent once, before any input fragment).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUseBlockStart<'a> {
    /// Bedrock's tool-use id (`tooluse_…`).
    pub tool_use_id: &'a str,
    /// The tool name.
    pub name: &'a str,
}

/// `contentBlockDelta` payload.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentBlockDeltaEvent<'a> {
    /// Position of the block among all output blocks.
    pub content_block_index: u32,
    /// The union holding the fragment.
    #[serde(borrow, default)]
    pub delta: ContentBlockDelta<'a>,
}

/// The `delta` union. `citation`, `image` and `toolResult` members are skipped: OpenAI's
/// chunk has no place for them.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentBlockDelta<'a> {
    /// A piece of text.
    #[serde(borrow)]
    pub text: Option<&'a str>,
    /// A fragment of a tool call's JSON input.
    #[serde(borrow)]
    pub tool_use: Option<ToolUseBlockDelta<'a>>,
    /// A piece of the model's reasoning.
    #[serde(borrow)]
    pub reasoning_content: Option<ReasoningContentBlockDelta<'a>>,
}

/// `delta.reasoningContent`: a union of `text`, `signature` (sent at the end of the block) and
/// `redactedContent` (base64).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReasoningContentBlockDelta<'a> {
    /// A piece of reasoning text.
    #[serde(borrow)]
    pub text: Option<&'a str>,
    /// The signature over the block's reasoning text.
    #[serde(borrow)]
    pub signature: Option<&'a str>,
    /// Encrypted reasoning.
    #[serde(borrow)]
    pub redacted_content: Option<&'a str>,
}

/// `delta.toolUse`: a fragment of the JSON text of the tool input, split anywhere.
#[derive(Debug, Deserialize)]
pub struct ToolUseBlockDelta<'a> {
    /// The fragment.
    #[serde(borrow, default)]
    pub input: &'a str,
}

/// `contentBlockStop` payload.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentBlockStopEvent {
    /// The block that ended.
    pub content_block_index: u32,
}

/// `messageStop` payload.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageStopEvent<'a> {
    /// Why generation stopped; same values as Converse's `stopReason`.
    pub stop_reason: &'a str,
}

/// `metadata` payload; `metrics`, `trace` and the rest are skipped.
#[derive(Debug, Deserialize)]
pub struct MetadataEvent {
    /// Token counts for the whole response.
    pub usage: Option<TokenUsage>,
}

/// The payload of an exception message (`throttlingException`, …): `{"message": "…"}` plus
/// members such as `originalStatusCode`. Both spellings of `message` occur.
#[derive(Debug, Default, Deserialize)]
pub struct ExceptionEvent<'a> {
    /// The error text.
    #[serde(borrow)]
    pub message: Option<&'a str>,
    /// The same, as some services spell it.
    #[serde(borrow, rename = "Message")]
    pub message_pascal: Option<&'a str>,
}

impl<'a> ExceptionEvent<'a> {
    /// The message, whichever spelling carried it.
    pub fn text(&self) -> Option<&'a str> {
        self.message.or(self.message_pascal)
    }
}

/// The text of a `contentBlockDelta` payload in the compact shape Bedrock sends for text,
/// `{"contentBlockIndex":N,"delta":{"text":"…"},"p":"…"}` (`p` optional), as it stands in the
/// payload, escapes and all: exactly what [`crate::json::write_str_contents`] writes for the
/// unescaped text, so it goes into the chunk as is. `None` for any other shape, and for text
/// with an escape that writer would spell otherwise (`\/`, `\uXXXX`): those payloads are parsed
/// in full, which gives the same chunk.
///
/// Most events of a stream are text deltas; this spares each the JSON parse and the
/// re-escaping (benches/translate.rs, stream rows).
pub fn plain_text_delta(payload: &[u8]) -> Option<&[u8]> {
    if !payload.is_ascii() {
        std::str::from_utf8(payload).ok()?;
    }
    let rest = payload.strip_prefix(br#"{"contentBlockIndex":"#)?;
    // The index, a u32.
    let mut at = 0;
    small_uint(rest, &mut at)?;
    let rest = rest[at..].strip_prefix(br#","delta":{"text":""#)?;
    let mut i = 0;
    loop {
        i = json::next_escape(rest, i);
        match *rest.get(i)? {
            b'"' => break,
            b'\\' => match *rest.get(i + 1)? {
                b'"' | b'\\' | b'n' | b'r' | b't' | b'b' | b'f' => i += 2,
                _ => return None,
            },
            _ => return None,
        }
    }
    let (text, tail) = rest.split_at(i);
    let tail = tail.strip_prefix(b"\"}")?;
    if tail == b"}" {
        return Some(text);
    }
    let padding = tail.strip_prefix(br#","p":""#)?.strip_suffix(b"\"}")?;
    json::is_plain(padding).then_some(text)
}

/// The events whose payloads are a few flat members, read without the parser by
/// [`small_event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmallEvent<'a> {
    /// `messageStart` (its `role`, optional, is not used).
    MessageStart,
    /// `contentBlockStop`.
    ContentBlockStop {
        /// `contentBlockIndex`.
        index: u32,
    },
    /// `messageStop`.
    MessageStop {
        /// `stopReason`.
        stop_reason: &'a str,
    },
}

/// A `messageStart`, `contentBlockStop` or `messageStop` payload read without the parser, when
/// it is a compact object of plain members (see `flat_members`) that the event's type would
/// deserialize from: each member it reads present once and of its type. `None` otherwise
/// (another event, nested members, whitespace, escapes), and the payload is parsed in full,
/// which reads the same members.
///
/// These are three of a text stream's five kinds of event, each a JSON parse of its own
/// otherwise (loadtest/README.md, "Repeated header sections and small events").
pub fn small_event(kind: EventType, payload: &[u8]) -> Option<SmallEvent<'_>> {
    let name: &[u8] = match kind {
        EventType::MessageStart => b"role",
        EventType::ContentBlockStop => b"contentBlockIndex",
        EventType::MessageStop => b"stopReason",
        _ => return None,
    };
    let mut found = None;
    flat_members(payload, |key, value| {
        if key == name {
            // A repeated member is the deserializer's error to report.
            if found.replace(value).is_some() {
                return None;
            }
        }
        Some(())
    })?;
    match (kind, found) {
        (EventType::MessageStart, None | Some(FlatValue::Str(_))) => Some(SmallEvent::MessageStart),
        (EventType::ContentBlockStop, Some(FlatValue::U32(index))) => {
            Some(SmallEvent::ContentBlockStop { index })
        }
        (EventType::MessageStop, Some(FlatValue::Str(stop_reason))) => Some(SmallEvent::MessageStop {
            stop_reason: std::str::from_utf8(stop_reason).ok()?,
        }),
        _ => None,
    }
}

/// A member value [`flat_members`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FlatValue<'a> {
    /// A string without escapes (UTF-8, as the whole payload is).
    Str(&'a [u8]),
    /// An unsigned integer within `u32`.
    U32(u32),
}

/// Calls `member` with each member of `payload`, in order, when it is a compact JSON object
/// (no whitespace) whose values are all strings without escapes or unsigned integers within
/// `u32`, as `{"p":"abcd","role":"assistant"}`. `None` for anything else, and when `member`
/// returns `None`.
fn flat_members<'a>(
    bytes: &'a [u8],
    mut member: impl FnMut(&'a [u8], FlatValue<'a>) -> Option<()>,
) -> Option<()> {
    if !bytes.is_ascii() {
        std::str::from_utf8(bytes).ok()?;
    }
    if bytes.first() != Some(&b'{') {
        return None;
    }
    let mut at = 1;
    if bytes.get(at) == Some(&b'}') {
        return (bytes.len() == 2).then_some(());
    }
    loop {
        let key = plain_string(bytes, &mut at)?;
        if bytes.get(at) != Some(&b':') {
            return None;
        }
        at += 1;
        let value = match bytes.get(at)? {
            b'"' => FlatValue::Str(plain_string(bytes, &mut at)?),
            _ => FlatValue::U32(small_uint(bytes, &mut at)?),
        };
        member(key, value)?;
        match bytes.get(at)? {
            b',' => at += 1,
            b'}' => return (at + 1 == bytes.len()).then_some(()),
            _ => return None,
        }
    }
}

/// The string starting with the quote at `at`, when it has no escape and no control byte;
/// `at` moves past its closing quote.
fn plain_string<'a>(bytes: &'a [u8], at: &mut usize) -> Option<&'a [u8]> {
    if bytes.get(*at) != Some(&b'"') {
        return None;
    }
    let start = *at + 1;
    let end = json::next_escape(bytes, start);
    if bytes.get(end) != Some(&b'"') {
        return None;
    }
    *at = end + 1;
    bytes.get(start..end)
}

/// The unsigned integer at `at` (JSON spelling: no leading zero), when it fits in a `u32`; `at`
/// moves past its digits. A fraction or exponent after them is left for the caller to refuse.
fn small_uint(bytes: &[u8], at: &mut usize) -> Option<u32> {
    let number = bytes.get(*at..)?;
    let digits = number.iter().take_while(|b| b.is_ascii_digit()).count();
    let number = &number[..digits];
    if digits == 0 || (digits > 1 && number[0] == b'0') {
        return None;
    }
    *at += digits;
    number
        .iter()
        .try_fold(0u32, |n, d| n.checked_mul(10)?.checked_add(u32::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_are_exact_and_unknown_ones_are_not_errors() {
        assert_eq!(
            EventType::from_name("contentBlockDelta"),
            EventType::ContentBlockDelta
        );
        assert_eq!(EventType::from_name("metadata"), EventType::Metadata);
        assert_eq!(EventType::from_name("ContentBlockDelta"), EventType::Unknown);
        assert_eq!(EventType::from_name("somethingNew"), EventType::Unknown);
    }

    #[test]
    fn payloads_ignore_padding_and_unknown_members() {
        let mut raw =
            br#"{"contentBlockIndex":1,"delta":{"toolUse":{"input":"{\"city\":"}},"p":"abcdefgh"}"#.to_vec();
        let ev: ContentBlockDeltaEvent<'_> = simd_json::serde::from_slice(&mut raw).unwrap();
        assert_eq!(ev.content_block_index, 1);
        assert_eq!(ev.delta.tool_use.unwrap().input, "{\"city\":");

        let mut raw =
            br#"{"contentBlockIndex":0,"delta":{"reasoningContent":{"text":"hm"}},"p":"x"}"#.to_vec();
        let ev: ContentBlockDeltaEvent<'_> = simd_json::serde::from_slice(&mut raw).unwrap();
        assert!(ev.delta.text.is_none() && ev.delta.tool_use.is_none());
        assert_eq!(ev.delta.reasoning_content.unwrap().text, Some("hm"));
    }

    #[test]
    fn plain_text_deltas_are_read_as_bedrock_sends_them() {
        let accepted: [(&[u8], &[u8]); 6] = [
            (
                br#"{"contentBlockIndex":0,"delta":{"text":"Hello"},"p":"abcdefghijkl"}"#,
                b"Hello",
            ),
            (
                br#"{"contentBlockIndex":12,"delta":{"text":" world"}}"#,
                b" world",
            ),
            (
                br#"{"contentBlockIndex":0,"delta":{"text":"say \"hi\"\n\tC:\\ \b\f\r"},"p":"ab"}"#,
                br#"say \"hi\"\n\tC:\\ \b\f\r"#,
            ),
            (
                "{\"contentBlockIndex\":0,\"delta\":{\"text\":\"caf\u{e9} \u{1f600}\"},\"p\":\"\"}"
                    .as_bytes(),
                "caf\u{e9} \u{1f600}".as_bytes(),
            ),
            (br#"{"contentBlockIndex":0,"delta":{"text":""},"p":"a"}"#, b""),
            (br#"{"contentBlockIndex":4294967295,"delta":{"text":"x"}}"#, b"x"),
        ];
        for (payload, text) in accepted {
            assert_eq!(
                plain_text_delta(payload),
                Some(text),
                "{}",
                String::from_utf8_lossy(payload)
            );
        }
        let parsed_in_full: [&[u8]; 17] = [
            // Escapes the chunk writer spells otherwise.
            br#"{"contentBlockIndex":0,"delta":{"text":"caf\u00e9"}}"#,
            br#"{"contentBlockIndex":0,"delta":{"text":"a\/b"}}"#,
            // Not JSON, or not this shape.
            br#"{"contentBlockIndex":0,"delta":{"text":"a\x"}}"#,
            b"{\"contentBlockIndex\":0,\"delta\":{\"text\":\"a\nb\"}}",
            br#"{"contentBlockIndex":01,"delta":{"text":"a"}}"#,
            br#"{"contentBlockIndex":4294967296,"delta":{"text":"a"}}"#,
            br#"{"contentBlockIndex":,"delta":{"text":"a"}}"#,
            br#"{ "contentBlockIndex":0,"delta":{"text":"a"}}"#,
            br#"{"contentBlockIndex":0,"delta":{"text":"a"} }"#,
            br#"{"contentBlockIndex":0,"delta":{"text":"a","x":1}}"#,
            br#"{"contentBlockIndex":0,"delta":{"toolUse":{"input":"{}"}}}"#,
            br#"{"contentBlockIndex":0,"delta":{"text":"a"},"p":"a\"b"}"#,
            br#"{"contentBlockIndex":0,"delta":{"text":"a"},"p":"ab"},"q":1}"#,
            br#"{"contentBlockIndex":0,"delta":{"text":"a"},"p":"ab"}x"#,
            br#"{"contentBlockIndex":0,"delta":{"text":"a"}"#,
            br#"{"contentBlockIndex":0,"delta":{"text":"a\"#,
            b"{\"contentBlockIndex\":0,\"delta\":{\"text\":\"\xff\"}}",
        ];
        for payload in parsed_in_full {
            assert_eq!(
                plain_text_delta(payload),
                None,
                "{}",
                String::from_utf8_lossy(payload)
            );
        }
    }

    #[test]
    fn content_block_start_tolerates_an_empty_start() {
        let mut raw = br#"{"contentBlockIndex":0,"start":{}}"#.to_vec();
        let ev: ContentBlockStartEvent<'_> = simd_json::serde::from_slice(&mut raw).unwrap();
        assert!(ev.start.tool_use.is_none());
    }

    #[test]
    fn metadata_usage_defaults_missing_cache_counts_to_zero() {
        let mut raw =
            br#"{"usage":{"inputTokens":20,"outputTokens":12,"totalTokens":32},"metrics":{"latencyMs":345}}"#
                .to_vec();
        let ev: MetadataEvent = simd_json::serde::from_slice(&mut raw).unwrap();
        let usage = ev.usage.unwrap();
        assert_eq!((usage.input_tokens, usage.output_tokens), (20, 12));
        assert_eq!(usage.cache_write_input_tokens, 0);
    }

    #[test]
    fn small_events_are_read_as_bedrock_sends_them() {
        use EventType::{ContentBlockDelta, ContentBlockStop, MessageStart, MessageStop};
        let accepted: [(EventType, &[u8], SmallEvent<'_>); 8] = [
            (
                MessageStart,
                br#"{"p":"abcd","role":"assistant"}"#,
                SmallEvent::MessageStart,
            ),
            (
                MessageStart,
                br#"{"role":"assistant","p":"abcd"}"#,
                SmallEvent::MessageStart,
            ),
            (MessageStart, b"{}", SmallEvent::MessageStart),
            (
                ContentBlockStop,
                br#"{"contentBlockIndex":3,"p":"ab"}"#,
                SmallEvent::ContentBlockStop { index: 3 },
            ),
            (
                ContentBlockStop,
                br#"{"p":"","contentBlockIndex":4294967295}"#,
                SmallEvent::ContentBlockStop { index: u32::MAX },
            ),
            (
                MessageStop,
                br#"{"p":"abcdefgh","stopReason":"end_turn"}"#,
                SmallEvent::MessageStop {
                    stop_reason: "end_turn",
                },
            ),
            (
                MessageStop,
                br#"{"stopReason":"tool_use","n":12}"#,
                SmallEvent::MessageStop {
                    stop_reason: "tool_use",
                },
            ),
            (
                MessageStop,
                "{\"stopReason\":\"caf\u{e9}\"}".as_bytes(),
                SmallEvent::MessageStop {
                    stop_reason: "caf\u{e9}",
                },
            ),
        ];
        for (kind, payload, event) in accepted {
            assert_eq!(
                small_event(kind, payload),
                Some(event),
                "{}",
                String::from_utf8_lossy(payload)
            );
        }
        let parsed_in_full: [(EventType, &[u8]); 20] = [
            // What the deserializer refuses: a repeated or mistyped member, a missing one.
            (MessageStart, br#"{"role":"assistant","role":"user"}"#),
            (MessageStart, br#"{"role":1}"#),
            (ContentBlockStop, b"{}"),
            (ContentBlockStop, br#"{"contentBlockIndex":"3"}"#),
            (ContentBlockStop, br#"{"contentBlockIndex":4294967296}"#),
            (ContentBlockStop, br#"{"contentBlockIndex":-1}"#),
            (MessageStop, br#"{"stopReason":"a","stopReason":"b"}"#),
            // Not flat or not compact, escapes, numbers the shortcut does not read.
            (MessageStart, br#"{"role":null}"#),
            (ContentBlockStop, br#"{"contentBlockIndex":01}"#),
            (ContentBlockStop, br#"{"contentBlockIndex":1.0}"#),
            (ContentBlockStop, br#"{"contentBlockIndex":1e2}"#),
            (MessageStop, br#"{"stopReason":"end\nturn"}"#),
            (
                MessageStop,
                br#"{"stopReason":"x","additionalModelResponseFields":{"a":1}}"#,
            ),
            (MessageStop, br#"{ "stopReason":"x"}"#),
            (MessageStop, br#"{"stopReason":"x"}x"#),
            (MessageStop, br#"{"stopReason":"x",}"#),
            (MessageStop, br#"{"stopReason":"x""#),
            (MessageStop, b"{\"stopReason\":\"x\",\"p\":\"\x01\"}"),
            (MessageStop, b"{\"stopReason\":\"x\",\"p\":\"\xff\"}"),
            // Another event.
            (ContentBlockDelta, br#"{"contentBlockIndex":0}"#),
        ];
        for (kind, payload) in parsed_in_full {
            assert_eq!(
                small_event(kind, payload),
                None,
                "{}",
                String::from_utf8_lossy(payload)
            );
        }
    }
}
