//! Any bytes as a chat-completions body: parsing and translation never panic, and whatever the
//! translator accepts is a JSON object.
#![no_main]

use ai_gateway::openai::request::ChatCompletionRequest;
use ai_gateway::translate::request::{RequestOptions, TemperaturePolicy, to_converse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buf = data.to_vec();
    let Ok(request) = ChatCompletionRequest::parse(&mut buf) else { return };
    for temperature in [TemperaturePolicy::Reject, TemperaturePolicy::Clamp] {
        let options = RequestOptions { temperature, default_max_tokens: Some(256), ..RequestOptions::default() };
        let mut out = Vec::new();
        if to_converse(&request, &options, &mut out).is_ok() {
            let value: serde_json::Value = serde_json::from_slice(&out).expect("Converse body is JSON");
            assert!(value.is_object());
            assert!(value["messages"].as_array().is_some_and(|m| !m.is_empty()), "a request with no turns was accepted");
        }
    }
});

