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
pub fn write_str_contents<B: BufMut>(out: &mut B, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => {
                out.put_slice(&bytes[start..i]);
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.put_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 0xf)],
                ]);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.put_slice(&bytes[start..i]);
        out.put_slice(escape);
        start = i + 1;
    }
    out.put_slice(&bytes[start..]);
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
