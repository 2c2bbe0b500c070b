//! Any bytes as a Converse response: translation never panics, and a successful translation is
//! a `chat.completion` whose usage adds up.
#![no_main]

use ai_gateway::translate::response::{ResponseMeta, to_chat_completion};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut body = data.to_vec();
    let meta = ResponseMeta { id: "chatcmpl-fuzz", created: 1_714_564_800, model: "fuzz" };
    let mut out = Vec::new();
    if let Ok(usage) = to_chat_completion(&mut body, &meta, &mut out) {
        let v: serde_json::Value = serde_json::from_slice(&out).expect("chat.completion is JSON");
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["usage"]["total_tokens"].as_u64(), Some(usage.total_tokens()));
        let finish = v["choices"][0]["finish_reason"].as_str().expect("finish_reason");
        assert!(["stop", "length", "tool_calls", "content_filter"].contains(&finish), "{finish}");
    }
});
