//! Golden fixtures: every case under `tests/fixtures/<case>/` through the translators, with no
//! network. Each stream fixture is encoded into real event-stream frames and fed through the
//! decoder at every split size from one byte to the whole stream; every split must give the
//! same bytes. `BLESS=1 cargo test --test golden` rewrites the expected files; read the diff.
//!
//! A case directory holds:
//! - `case.yaml`: the values the gateway injects (id, clock, alias), the options (gateway-wide
//!   and the model's, as model-mapping.yaml writes them), and the request fields the gateway
//!   reports as ignored (`ignored`, the `x-ai-gateway-ignored-params` value);
//! - `openai_request.json`: what the client sends;
//! - `bedrock_request.json` (the Converse body, compared as JSON values) or
//!   `expected_error.json` (the 400 body, exact bytes) when the request is rejected;
//! - unary: `bedrock_response.json` and `expected.json` (exact bytes of the response body, or
//!   of the error body when `status` in `case.yaml` is not 200);
//! - stream: `bedrock_stream.jsonl`, one upstream message per line
//!   (`{"event": …, "payload": {…}}` or `{"exception": …, "payload": {…}}`), and
//!   `expected.sse` (exact bytes).

// The helpers below are test code outside `#[test]` functions, which clippy's in-test
// allowances do not reach; a failed fixture should stop the run loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::{Path, PathBuf};

use ai_gateway::Error;
use ai_gateway::bedrock::eventstream::{EventDecoder, encode_event, encode_exception};
use ai_gateway::openai::request::ChatCompletionRequest;
use ai_gateway::translate::request::{
    Context, ModelOptions, RequestOptions, TemperaturePolicy, Translation, to_converse_with,
};
use ai_gateway::translate::response::{ResponseMeta, ResponseShape, to_chat_completion_with};
use ai_gateway::translate::stream::StreamTranslator;
use bytes::BytesMut;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;

/// Bytes kept as they are in a path segment (reference: bedrock-converse §2).
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseSpec {
    /// What the case pins, for the reader.
    #[allow(dead_code)]
    description: String,
    /// The response id the gateway would assign.
    id: String,
    /// The clock value the gateway would read.
    created: u64,
    /// The alias the client sends and the responses echo.
    model: String,
    /// The Bedrock model the alias resolves to.
    bedrock_model_id: String,
    /// The path the request goes to (the mock Bedrock checks it).
    upstream_path: String,
    /// Whether the client asked for a stream.
    stream: bool,
    /// `stream_options.include_usage`.
    #[serde(default)]
    include_usage: bool,
    /// HTTP status of a unary response (200 unless the translation fails).
    #[serde(default = "ok_status")]
    status: u16,
    /// Translation options, as the config would set them.
    #[serde(default)]
    options: CaseOptions,
    /// The model's options, as its model-mapping.yaml entry would set them.
    #[serde(default)]
    model_options: ModelOptions,
    /// The request fields reported as ignored, comma-separated.
    #[serde(default)]
    ignored: String,
}

fn ok_status() -> u16 {
    200
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseOptions {
    #[serde(default)]
    temperature: TemperaturePolicy,
    default_max_tokens: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamLine {
    event: Option<String>,
    exception: Option<String>,
    payload: serde_json::Value,
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn bless() -> bool {
    std::env::var_os("BLESS").is_some_and(|v| v != "0")
}

fn cases() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("case.yaml").is_file())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no fixtures found");
    dirs
}

fn read(dir: &Path, name: &str) -> Vec<u8> {
    fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{}: {e}", dir.join(name).display()))
}

/// Compares `actual` with the file's bytes (a single trailing newline in the file is allowed,
/// so editors can keep one); under `BLESS` a differing file is rewritten.
fn check_exact(dir: &Path, name: &str, actual: &[u8]) {
    let path = dir.join(name);
    let mut expected = fs::read(&path).unwrap_or_default();
    if expected.last() == Some(&b'\n') && actual.last() != Some(&b'\n') {
        expected.pop();
    }
    if expected == actual {
        return;
    }
    if bless() {
        fs::write(&path, actual).unwrap();
        return;
    }
    panic!(
        "{} differs\n--- expected\n{}\n--- actual\n{}",
        path.display(),
        String::from_utf8_lossy(&expected),
        String::from_utf8_lossy(actual)
    );
}

/// Compares as JSON values; under `BLESS` a differing file is rewritten (pretty, keys sorted).
fn check_json(dir: &Path, name: &str, actual: &[u8]) {
    let actual: serde_json::Value = serde_json::from_slice(actual).unwrap();
    let path = dir.join(name);
    let expected: Option<serde_json::Value> =
        fs::read(&path).ok().map(|b| serde_json::from_slice(&b).unwrap());
    if expected.as_ref() == Some(&actual) {
        return;
    }
    if bless() {
        let mut text = serde_json::to_string_pretty(&actual).unwrap();
        text.push('\n');
        fs::write(&path, text).unwrap();
        return;
    }
    assert_eq!(Some(actual), expected, "{} differs", path.display());
}

fn load_spec(dir: &Path) -> CaseSpec {
    serde_yaml::from_slice(&read(dir, "case.yaml")).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

fn meta(spec: &CaseSpec) -> ResponseMeta<'_> {
    ResponseMeta {
        id: &spec.id,
        created: spec.created,
        model: &spec.model,
    }
}

/// The request half of a case: parse, translate, compare; the reply shape the translation
/// decided, or `None` when the request is rejected.
fn run_request(dir: &Path, spec: &CaseSpec) -> Option<ResponseShape> {
    let mut body = read(dir, "openai_request.json");
    let opts = RequestOptions {
        temperature: spec.options.temperature,
        default_max_tokens: spec.options.default_max_tokens,
    };
    assert!(
        spec.model_options.problems().is_empty(),
        "{}: model_options: {:?}",
        dir.display(),
        spec.model_options.problems()
    );
    let cx = Context {
        options: &opts,
        model: &spec.model_options,
        images: &[],
    };
    let translated = ChatCompletionRequest::parse(&mut body).and_then(|req| {
        assert_eq!(req.model, spec.model, "{}: model", dir.display());
        assert_eq!(req.stream, spec.stream, "{}: stream", dir.display());
        assert_eq!(
            req.include_usage(),
            spec.include_usage,
            "{}: include_usage",
            dir.display()
        );
        let mut out = Vec::new();
        to_converse_with(&req, &cx, &mut out).map(|t| (out, t))
    });
    let expects_error = dir.join("expected_error.json").is_file();
    match translated {
        Ok((converse, Translation { response, ignored })) => {
            assert!(
                !expects_error || bless(),
                "{}: request was accepted",
                dir.display()
            );
            check_json(dir, "bedrock_request.json", &converse);
            assert_eq!(ignored.to_string(), spec.ignored, "{}: ignored", dir.display());
            Some(response)
        }
        Err(invalid) => {
            assert!(
                expects_error || bless(),
                "{}: request rejected: {invalid:?}",
                dir.display()
            );
            let err = Error::from(invalid);
            assert_eq!(err.status(), http::StatusCode::BAD_REQUEST);
            let mut out = Vec::new();
            err.write_body(&mut out);
            check_exact(dir, "expected_error.json", &out);
            None
        }
    }
}

fn check_upstream_path(dir: &Path, spec: &CaseSpec) {
    let operation = if spec.stream {
        "converse-stream"
    } else {
        "converse"
    };
    let path = format!(
        "/model/{}/{operation}",
        utf8_percent_encode(&spec.bedrock_model_id, UNRESERVED)
    );
    assert_eq!(spec.upstream_path, path, "{}: upstream_path", dir.display());
}

fn run_unary(dir: &Path, spec: &CaseSpec, shape: &ResponseShape) {
    let mut body = read(dir, "bedrock_response.json");
    let mut out = Vec::new();
    let status = match to_chat_completion_with(&mut body, &meta(spec), shape, &mut out) {
        Ok(_) => 200,
        Err(e) => {
            out.clear();
            e.write_body(&mut out);
            e.status().as_u16()
        }
    };
    assert_eq!(status, spec.status, "{}: status", dir.display());
    check_exact(dir, "expected.json", &out);
}

/// Encodes `bedrock_stream.jsonl` into event-stream frames, as Bedrock sends them.
fn encode_stream(dir: &Path) -> Vec<u8> {
    let text = String::from_utf8(read(dir, "bedrock_stream.jsonl")).unwrap();
    let mut frames = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let line: StreamLine =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{} line {}: {e}", dir.display(), n + 1));
        let payload = serde_json::to_vec(&line.payload).unwrap();
        match (line.event, line.exception) {
            (Some(event), None) => encode_event(&event, &payload, &mut frames),
            (None, Some(exception)) => encode_exception(&exception, &payload, &mut frames),
            _ => panic!(
                "{} line {}: exactly one of event, exception",
                dir.display(),
                n + 1
            ),
        }
    }
    frames
}

/// What the SSE body does with an upstream body delivered in `split`-byte pieces.
fn translate_stream(frames: &[u8], split: usize, spec: &CaseSpec, shape: &ResponseShape) -> Vec<u8> {
    let mut decoder = EventDecoder::default();
    let mut translator = StreamTranslator::with_shape(&meta(spec), spec.include_usage, shape.clone());
    let mut out = BytesMut::new();
    'chunks: for chunk in frames.chunks(split) {
        decoder.push(chunk);
        loop {
            match decoder.next_message() {
                Ok(Some(message)) => {
                    if let Err(e) = translator.on_message(&message, &mut out) {
                        translator.on_failure(&e, &mut out);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    translator.on_failure(&Error::UpstreamProtocol(e.to_string().into()), &mut out);
                }
            }
            if translator.is_finished() {
                break 'chunks;
            }
        }
    }
    if !translator.is_finished() {
        match decoder.finish() {
            Ok(()) => translator.on_upstream_end(&mut out),
            Err(e) => translator.on_failure(&Error::UpstreamProtocol(e.to_string().into()), &mut out),
        }
    }
    out.to_vec()
}

fn run_stream(dir: &Path, spec: &CaseSpec, shape: &ResponseShape) {
    let frames = encode_stream(dir);
    let whole = translate_stream(&frames, frames.len(), spec, shape);
    for split in 1..frames.len() {
        let got = translate_stream(&frames, split, spec, shape);
        assert!(
            got == whole,
            "{}: split {split} gives different bytes\n--- whole\n{}\n--- split\n{}",
            dir.display(),
            String::from_utf8_lossy(&whole),
            String::from_utf8_lossy(&got)
        );
    }
    check_exact(dir, "expected.sse", &whole);
}

#[test]
fn golden_fixtures() {
    for dir in cases() {
        let spec = load_spec(&dir);
        check_upstream_path(&dir, &spec);
        let shape = run_request(&dir, &spec);
        let accepted = shape.is_some();
        let shape = shape.unwrap_or_default();
        let unary = dir.join("bedrock_response.json").is_file();
        let stream = dir.join("bedrock_stream.jsonl").is_file();
        assert!(
            !(unary && stream),
            "{}: a case is unary or stream, not both",
            dir.display()
        );
        assert!(
            accepted || !(unary || stream),
            "{}: a rejected request has no response",
            dir.display()
        );
        if unary {
            assert!(!spec.stream, "{}: unary case with stream: true", dir.display());
            run_unary(&dir, &spec, &shape);
        }
        if stream {
            assert!(spec.stream, "{}: stream case with stream: false", dir.display());
            run_stream(&dir, &spec, &shape);
        }
    }
}

/// The worked example of mapping §7.4, checked against the reference transcript itself and not
/// only against a blessed file: the SDK accumulator was run on exactly these bytes.
#[test]
fn tool_call_stream_matches_the_reference_transcript() {
    let dir = fixtures_dir().join("stream-tool-call-two-blocks");
    let spec = load_spec(&dir);
    let frames = encode_stream(&dir);
    let got = translate_stream(&frames, 7, &spec, &ResponseShape::default());
    let c = r#"data: {"id":"chatcmpl-7f3c9a2e-5b1d-4c8e-9a6f-0d2b4e6a8c10","object":"chat.completion.chunk","created":1714564800,"model":"claude-3-haiku","choices":"#;
    let expected = [
        r#"[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":null}"#,
        r#"[{"index":0,"delta":{"content":"Checking."},"logprobs":null,"finish_reason":null}],"usage":null}"#,
        r#"[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"tooluse_Q1","type":"function","function":{"name":"get_weather","arguments":""}}]},"logprobs":null,"finish_reason":null}],"usage":null}"#,
        r#"[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]},"logprobs":null,"finish_reason":null}],"usage":null}"#,
        r#"[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]},"logprobs":null,"finish_reason":null}],"usage":null}"#,
        r#"[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"tooluse_Q2","type":"function","function":{"name":"get_time","arguments":""}}]},"logprobs":null,"finish_reason":null}],"usage":null}"#,
        r#"[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"{}"}}]},"logprobs":null,"finish_reason":null}],"usage":null}"#,
        r#"[{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}],"usage":null}"#,
        r#"[],"usage":{"prompt_tokens":112,"completion_tokens":40,"total_tokens":152,"prompt_tokens_details":{"cached_tokens":100,"cache_write_tokens":0}}}"#,
    ]
    .iter()
    .map(|rest| format!("{c}{rest}\n\n"))
    .collect::<String>()
        + "data: [DONE]\n\n";
    assert_eq!(String::from_utf8(got).unwrap(), expected);
}
