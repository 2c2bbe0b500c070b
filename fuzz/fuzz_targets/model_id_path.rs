//! Any model id: the path encoder yields one path segment of unreserved characters and `%XX`
//! escapes that decodes back to the id, and a route built from it never panics.
#![no_main]

use ai_gateway::routing::{ModelEntry, Route};
use ai_gateway::upstream::sigv4::encode_model_id;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|id: &str| {
    let encoded = encode_model_id(id);
    let bytes = encoded.as_bytes();
    let mut decoded = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("escape");
                assert!(hex.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)), "lower-case hex");
                decoded.push(u8::from_str_radix(hex, 16).expect("hex"));
                i += 3;
            }
            b if b.is_ascii_alphanumeric() || b"-._~".contains(&b) => {
                decoded.push(b);
                i += 1;
            }
            other => panic!("unescaped byte {other:#x} in {encoded}"),
        }
    }
    assert_eq!(decoded, id.as_bytes());
    let entry = ModelEntry::new(id);
    if let Ok(route) = Route::new("alias", &entry, "us-east-1", None) {
        assert!(route.converse_uri.path().ends_with("/converse"));
        assert_eq!(route.converse_uri.path().matches('/').count(), 3, "the id stayed one segment");
    }
});
