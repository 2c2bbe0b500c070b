//! JSON on the hot path: parsing in place with simd-json's working memory kept per thread,
//! and small writers for escaped strings and numbers straight into a caller's buffer.
//!
//! Every parse goes through [`parse_in_place`] or [`parse_copy`]. simd-json needs three
//! buffers besides the input (the structural index, a string buffer and the tape), and
//! `from_slice` allocates all of them afresh and copies the input into a padded buffer of its
//! own. Here they live in one thread-local `ParseState` that each parse takes and puts back,
//! and the input is padded where it lies, so a parse allocates nothing once a worker thread has
//! seen a document of that size. A held stream keeps no parse buffers of its own.

use std::cell::Cell;

use bytes::BufMut;
use simd_json::{Buffers, Deserializer, Tape};

/// The spare bytes [`parse_in_place`] appends to its input.
pub use simd_json::INPUT_PADDING;

/// Documents up to this size leave their grown buffers to the thread for the next parse;
/// larger ones get buffers of their own, so a rare huge request does not pin memory on every
/// worker thread.
const REUSE_UP_TO: usize = 64 * 1024;

/// simd-json's working memory for one parse.
struct ParseState {
    buffers: Buffers,
    /// Empty between parses; only its allocation is kept.
    tape: Option<Tape<'static>>,
}

impl ParseState {
    fn new(len: usize) -> Self {
        Self {
            buffers: Buffers::new(len),
            tape: None,
        }
    }
}

thread_local! {
    /// Taken for the length of one parse and put back, so a parse inside `f` (none today)
    /// would get fresh buffers rather than a borrow conflict.
    static STATE: Cell<Option<ParseState>> = const { Cell::new(None) };
    /// The copy of a document that must stay untouched (an event payload inside a frame).
    static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Parses the JSON document in `input` in place and hands the deserializer to `f`; values
/// borrowed from the document (strings without escapes) point into `input`.
///
/// `input` is extended with [`INPUT_PADDING`] spaces, which leaves the document the
/// same JSON, and strings with escapes are rewritten inside it. Allocate it with that much spare
/// capacity to avoid a reallocation. `Err` is a syntax error (or invalid UTF-8); errors of `f`
/// are its own.
pub fn parse_in_place<'de, R>(
    input: &'de mut Vec<u8>,
    f: impl FnOnce(&mut Deserializer<'de>) -> R,
) -> Result<R, simd_json::Error> {
    let len = input.len();
    input.resize(len + INPUT_PADDING, b' ');
    let reuse = len <= REUSE_UP_TO;
    let mut state = reuse
        .then(|| STATE.take())
        .flatten()
        .unwrap_or_else(|| ParseState::new(len));
    let mut tape: Tape<'de> = state
        .tape
        .take()
        .map_or_else(|| Tape::null().reset(), Tape::reset);
    let input: &'de mut [u8] = input.as_mut_slice();
    let result = match simd_json::fill_tape_padded(input, len, &mut state.buffers, &mut tape) {
        Ok(()) => {
            let mut deserializer = Deserializer::from_tape(tape);
            let value = f(&mut deserializer);
            state.tape = Some(deserializer.into_tape().reset());
            Ok(value)
        }
        Err(e) => {
            state.tape = Some(tape.reset());
            Err(e)
        }
    };
    if reuse {
        STATE.set(Some(state));
    }
    result
}

/// [`parse_in_place`] on a copy of `document` in a thread-local scratch buffer, for input
/// that must stay as it is. `f` cannot keep borrows of the copy.
pub fn parse_copy<R>(
    document: &[u8],
    f: impl for<'de> FnOnce(&mut Deserializer<'de>) -> R,
) -> Result<R, simd_json::Error> {
    let mut scratch = SCRATCH.take();
    scratch.clear();
    scratch.reserve(document.len() + INPUT_PADDING);
    scratch.extend_from_slice(document);
    let result = parse_in_place(&mut scratch, f);
    if scratch.capacity() <= REUSE_UP_TO + INPUT_PADDING {
        SCRATCH.set(scratch);
    }
    result
}

/// Writes `s` as a JSON string literal (with quotes), escaping per RFC 8259.
pub fn write_str<B: BufMut>(out: &mut B, s: &str) {
    out.put_u8(b'"');
    write_str_contents(out, s);
    out.put_u8(b'"');
}

/// Writes the escaped contents of a JSON string, without the surrounding quotes.
///
/// Runs of bytes that need no escape (almost all text) are found eight bytes at a time and
/// copied in one `put_slice`.
pub fn write_str_contents<B: BufMut>(out: &mut B, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        i = next_escape(bytes, i);
        let Some(&b) = bytes.get(i) else { break };
        out.put_slice(&bytes[start..i]);
        match b {
            b'"' => out.put_slice(b"\\\""),
            b'\\' => out.put_slice(b"\\\\"),
            b'\n' => out.put_slice(b"\\n"),
            b'\r' => out.put_slice(b"\\r"),
            b'\t' => out.put_slice(b"\\t"),
            0x08 => out.put_slice(b"\\b"),
            0x0c => out.put_slice(b"\\f"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.put_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 0xf)],
                ]);
            }
        }
        i += 1;
        start = i;
    }
    out.put_slice(&bytes[start..]);
}

/// Whether `bytes` holds no byte that JSON requires escaped (`"`, `\\`, below 0x20). Written
/// without an early exit so that it compiles to a vector loop.
pub(crate) fn is_plain(bytes: &[u8]) -> bool {
    !bytes
        .iter()
        .fold(false, |hit, &b| hit | (b < 0x20) | (b == b'"') | (b == b'\\'))
}

/// The index of the first byte at or after `from` that JSON requires escaped (`"`, `\\`,
/// below 0x20), or `bytes.len()`.
pub(crate) fn next_escape(bytes: &[u8], from: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let needs_escape = |b: u8| b < 0x20 || b == b'"' || b == b'\\';
    let mut i = from;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        // A zero byte in `w ^ c` marks a byte equal to `c`; `w - 0x20` borrows from bytes
        // below 0x20. Bytes >= 0x80 (UTF-8) can set false alarms, which the byte scan below
        // clears.
        let quote = w ^ (ONES * u64::from(b'"'));
        let backslash = w ^ (ONES * u64::from(b'\\'));
        let hits = (quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (w.wrapping_sub(ONES * 0x20) & !w);
        if hits & HIGHS != 0 {
            break;
        }
        i += 8;
    }
    while let Some(&b) = bytes.get(i) {
        if needs_escape(b) {
            return i;
        }
        i += 1;
        // Back to whole words once past the byte that raised the alarm.
        if i % 8 == from % 8 && bytes.len() - i >= 8 {
            return next_escape(bytes, i);
        }
    }
    bytes.len()
}

/// Writes an unsigned integer.
pub fn write_u64<B: BufMut>(out: &mut B, n: u64) {
    out.put_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Writes a finite float in the shortest form that round-trips; non-finite values as `null`.
pub fn write_f64<B: BufMut>(out: &mut B, n: f64) {
    if n.is_finite() {
        out.put_slice(ryu::Buffer::new().format_finite(n).as_bytes());
    } else {
        out.put_slice(b"null");
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Deserialize, Debug, PartialEq)]
    struct Doc<'a> {
        #[serde(borrow)]
        text: std::borrow::Cow<'a, str>,
        n: u64,
    }

    fn doc(json: &str) -> Result<(String, u64), String> {
        let mut input = json.as_bytes().to_vec();
        parse_in_place(&mut input, |d| Doc::deserialize(d))
            .map_err(|e| e.to_string())?
            .map(|doc| (doc.text.into_owned(), doc.n))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn reused_buffers_parse_each_document_on_its_own() {
        // A long document, then shorter ones, a syntax error and a type error in between:
        // nothing of an earlier parse may leak into a later one.
        let long = format!(r#"{{"text":"{}","n":1}}"#, "x".repeat(10_000));
        assert_eq!(doc(&long).unwrap(), ("x".repeat(10_000), 1));
        assert_eq!(doc(r#"{"text":"a\nb","n":2}"#).unwrap(), ("a\nb".into(), 2));
        assert!(doc(r#"{"text":"unterminated"#).is_err());
        assert!(doc(r#"{"text":1,"n":2}"#).is_err());
        assert_eq!(doc(r#"{"n":3,"text":"é"}"#).unwrap(), ("é".into(), 3));
        // Larger than the reuse limit: parsed with buffers of its own, then small ones again.
        let huge = format!(r#"{{"text":"{}","n":4}}"#, "y".repeat(REUSE_UP_TO + 1));
        assert_eq!(doc(&huge).unwrap().1, 4);
        assert_eq!(doc(r#"{"text":"","n":5}"#).unwrap(), (String::new(), 5));
    }

    #[test]
    fn in_place_parsing_pads_with_whitespace_and_borrows_the_input() {
        let mut input = br#"{"text":"plain","n":7}"#.to_vec();
        let len = input.len();
        let borrowed = parse_in_place(&mut input, |d| {
            Doc::deserialize(d).map(|doc| matches!(doc.text, std::borrow::Cow::Borrowed("plain")))
        });
        assert!(matches!(borrowed, Ok(Ok(true))));
        assert_eq!(input.len(), len + INPUT_PADDING);
        assert!(input[len..].iter().all(|&b| b == b' '));
    }

    #[test]
    fn copies_leave_the_document_untouched() {
        let document = br#"{"text":"a\"b","n":8}"#;
        let n = parse_copy(document, |d| Doc::deserialize(d).map(|doc| doc.n)).unwrap();
        assert_eq!(n.unwrap(), 8);
        assert_eq!(document, br#"{"text":"a\"b","n":8}"#);
    }

    fn esc(s: &str) -> String {
        let mut v = Vec::new();
        write_str(&mut v, s);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn escapes_round_trip_through_a_json_parser() {
        for s in [
            "plain",
            "quote \" backslash \\",
            "nl\n cr\r tab\t",
            "\u{0}\u{1f}\u{7f}",
            "é 日本 🙂",
            "",
        ] {
            let encoded = esc(s);
            let back: String = serde_json::from_str(&encoded).unwrap();
            assert_eq!(back, s);
        }
        assert_eq!(esc("a\u{1}b"), "\"a\\u0001b\"");
    }

    #[test]
    fn escapes_at_every_position_of_a_word() {
        let specials = ['"', '\\', '\n', '\u{1}', '\u{1f}', 'é', '\u{7f}', ' '];
        for len in 0..20 {
            for at in 0..len {
                for c in specials {
                    let mut s: String = "abcdefghijklmnopqrstuvwxyz".chars().take(len).collect();
                    s.replace_range(
                        s.char_indices()
                            .nth(at)
                            .map(|(i, ch)| i..i + ch.len_utf8())
                            .unwrap(),
                        &c.to_string(),
                    );
                    let encoded = esc(&s);
                    let back: String = serde_json::from_str(&encoded).unwrap();
                    assert_eq!(back, s, "{encoded}");
                    assert_eq!(encoded, serde_json::to_string(&s).unwrap(), "{s:?}");
                }
            }
        }
    }

    #[test]
    fn numbers() {
        let mut v = Vec::new();
        write_u64(&mut v, 1_714_564_800);
        v.push(b' ');
        write_f64(&mut v, 0.3);
        v.push(b' ');
        write_f64(&mut v, f64::NAN);
        assert_eq!(v, b"1714564800 0.3 null");
    }
}
