//! Small JSON writers for the hot path: escaped strings and numbers written straight into a
//! caller's buffer, with no intermediate `String`.

use bytes::BufMut;

/// simd-json's reusable parse buffers, re-exported for callers outside the crate (benches, fuzz
/// targets) so they need not depend on simd-json themselves.
pub use simd_json::Buffers as ParseBuffers;

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

/// The index of the first byte at or after `from` that JSON requires escaped (`"`, `\\`,
/// below 0x20), or `bytes.len()`.
fn next_escape(bytes: &[u8], from: usize) -> usize {
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
    use super::*;

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
