//! Translator and decoder throughput: request translation (parse + Converse body), non-stream
//! response translation, and the streaming path per frame and per 1,000-frame stream fed in
//! TCP-sized pieces. Run: `cargo bench --bench translate`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Bench setup.

#[path = "support/inputs.rs"]
mod inputs;

use std::hint::black_box;

use ai_gateway::bedrock::eventstream::EventDecoder;
use ai_gateway::openai::request::ChatCompletionRequest;
use ai_gateway::translate::request::{RequestOptions, to_converse};
use ai_gateway::translate::response::{ResponseMeta, to_chat_completion};
use ai_gateway::translate::stream::StreamTranslator;
use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const META: ResponseMeta<'static> = ResponseMeta {
    id: "chatcmpl-0e8d7f3a-5b1c-4c6e-9a2f-1d3b5c7e9f10",
    created: 1_714_564_800,
    model: "claude-3-haiku",
};

/// Parses a copy of `body` (simd-json rewrites its input, as the gateway's own buffer) and
/// writes the Converse body, reusing every buffer as the gateway's worker thread does.
fn translate_request(body: &[u8], scratch: &mut Vec<u8>, out: &mut Vec<u8>) -> Result<(), String> {
    scratch.clear();
    scratch.extend_from_slice(body);
    out.clear();
    let parsed = ChatCompletionRequest::parse(scratch).map_err(|e| e.message.to_string())?;
    to_converse(&parsed, &RequestOptions::default(), out).map_err(|e| e.message.to_string())
}

fn request(c: &mut Criterion) {
    let mut group = c.benchmark_group("request");
    let cases = [
        ("one_turn", inputs::one_turn_request()),
        ("twenty_turn", inputs::twenty_turn_request()),
        ("twenty_turn_tools", inputs::twenty_turn_tools_request()),
        ("prompt_100k", inputs::prompt_100k_request()),
    ];
    for (name, body) in cases {
        let mut scratch = Vec::with_capacity(body.len() + ai_gateway::json::INPUT_PADDING);
        let mut out = Vec::with_capacity(body.len() + 256);
        if let Err(e) = translate_request(&body, &mut scratch, &mut out) {
            eprintln!("request/{name}: skipped, the translator rejects it: {e}");
            continue;
        }
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| translate_request(black_box(&body), &mut scratch, &mut out).unwrap());
        });
    }
    group.finish();
}

fn response(c: &mut Criterion) {
    let mut group = c.benchmark_group("response");
    for (name, reply) in [
        ("text_1k", inputs::converse_text_reply()),
        ("tool_calls", inputs::converse_tool_reply()),
    ] {
        let mut scratch = Vec::with_capacity(reply.len());
        let mut out = Vec::with_capacity(reply.len() + 512);
        group.throughput(Throughput::Bytes(reply.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                scratch.clear();
                scratch.extend_from_slice(&reply);
                out.clear();
                to_chat_completion(black_box(&mut scratch), &META, &mut out).unwrap()
            });
        });
    }
    group.finish();
}

fn stream(c: &mut Criterion) {
    let mut group = c.benchmark_group("stream");

    // One text delta: decode the frame and translate it into one SSE record, on a stream
    // already past `messageStart` (the steady state of a long answer).
    let start = inputs::message_start_frame();
    let delta = inputs::text_delta_frame();
    let mut decoder = EventDecoder::default();
    let mut translator = StreamTranslator::new(&META, true);
    let mut out = BytesMut::with_capacity(4096);
    decoder.push(&start);
    let message = decoder.next_message().unwrap().unwrap();
    translator.on_message(&message, &mut out).unwrap();
    group.throughput(Throughput::Bytes(delta.len() as u64));
    group.bench_function("delta_frame", |b| {
        b.iter(|| {
            out.clear();
            decoder.push(black_box(&delta));
            let message = decoder.next_message().unwrap().unwrap();
            translator.on_message(&message, &mut out).unwrap();
        });
    });

    // A whole 1,000-delta stream arriving in TCP-sized pieces, as SseBody sees it: push each
    // piece, translate every complete frame, hand the output on.
    let whole = inputs::text_stream(1000);
    for (name, piece) in [
        ("stream_1000_tcp_pieces", inputs::TCP_PIECE),
        ("stream_1000_16k_pieces", 16 * 1024),
    ] {
        group.throughput(Throughput::Bytes(whole.len() as u64));
        group.bench_function(name, |b| {
            let mut out = BytesMut::with_capacity(64 * 1024);
            b.iter(|| {
                let mut decoder = EventDecoder::default();
                let mut translator = StreamTranslator::new(&META, true);
                let mut records = 0usize;
                for chunk in black_box(&whole).chunks(piece) {
                    decoder.push(chunk);
                    while let Some(message) = decoder.next_message().unwrap() {
                        translator.on_message(&message, &mut out).unwrap();
                    }
                    records += out.len();
                    out.clear();
                }
                assert!(translator.is_finished());
                records
            });
        });
    }
    group.finish();
}

criterion_group!(benches, request, response, stream);
criterion_main!(benches);
