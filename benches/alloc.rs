//! Heap allocations on the hot path, counted with a counting global allocator (the budget of
//! STYLE.md Part 3 rule 5: per upstream event only the frame decoder's fixed allocations, per
//! downstream byte none). Prints one table. Run: `cargo bench --bench alloc`.
//!
//! Every figure is measured after a warm-up, so buffers that are reused (simd-json buffers,
//! the translator's scratch, the output buffer) are counted at their steady state.

#![allow(clippy::unwrap_used, clippy::print_stdout)] // A bench that prints its table.

#[path = "support/inputs.rs"]
mod inputs;

use std::alloc::System;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, UNIX_EPOCH};

use ai_gateway::bedrock::eventstream::EventDecoder;
use ai_gateway::body::sse::SseBody;
use ai_gateway::openai::request::ChatCompletionRequest;
use ai_gateway::translate::request::{RequestOptions, to_converse};
use ai_gateway::translate::response::{ResponseMeta, to_chat_completion};
use ai_gateway::translate::stream::StreamTranslator;
use ai_gateway::upstream::sigv4::sign_request;
use aws_credential_types::Credentials;
use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const META: ResponseMeta<'static> = ResponseMeta {
    id: "chatcmpl-0e8d7f3a-5b1c-4c6e-9a2f-1d3b5c7e9f10",
    created: 1_714_564_800,
    model: "claude-3-haiku",
};

/// Allocations and allocated bytes per operation, averaged over `n` runs after two warm-ups.
fn measure(n: usize, mut op: impl FnMut()) -> (f64, f64) {
    op();
    op();
    let region = Region::new(GLOBAL);
    for _ in 0..n {
        op();
    }
    let stats = region.change();
    let allocs = (stats.allocations + stats.reallocations) as f64 / n as f64;
    (allocs, stats.bytes_allocated as f64 / n as f64)
}

/// Upstream body chunks, one per poll.
struct Chunks(std::vec::IntoIter<Bytes>);

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.get_mut().0.next().map(|b| Ok(Frame::data(b))))
    }
}

fn main() {
    let mut rows: Vec<(String, f64, f64)> = Vec::new();
    let mut row = |name: &str, (allocs, bytes): (f64, f64)| rows.push((name.to_owned(), allocs, bytes));

    // --- request translation: parse + Converse body, buffers reused as on a worker thread.
    for (name, body) in [
        (
            "request: 1-turn chat (parse + to_converse)",
            inputs::one_turn_request(),
        ),
        ("request: 20-turn chat", inputs::twenty_turn_request()),
        (
            "request: 20-turn chat with tools",
            inputs::twenty_turn_tools_request(),
        ),
        ("request: 100 KiB prompt", inputs::prompt_100k_request()),
    ] {
        let mut scratch = Vec::with_capacity(body.len() + ai_gateway::json::INPUT_PADDING);
        let mut out = Vec::with_capacity(body.len() + 256);
        let mut ok = true;
        let figure = measure(200, || {
            scratch.clear();
            scratch.extend_from_slice(&body);
            out.clear();
            match ChatCompletionRequest::parse(&mut scratch) {
                Ok(parsed) => ok &= to_converse(&parsed, &RequestOptions::default(), &mut out).is_ok(),
                Err(_) => ok = false,
            }
        });
        if ok {
            row(name, figure);
        } else {
            println!("{name}: skipped (rejected by the translator)");
        }
    }

    // --- non-stream response translation.
    for (name, reply) in [
        (
            "response: 1 KiB text reply (to_chat_completion)",
            inputs::converse_text_reply(),
        ),
        ("response: two tool calls", inputs::converse_tool_reply()),
    ] {
        let mut scratch = Vec::with_capacity(reply.len() + ai_gateway::json::INPUT_PADDING);
        let mut out = Vec::with_capacity(reply.len() + 512);
        row(
            name,
            measure(200, || {
                scratch.clear();
                scratch.extend_from_slice(&reply);
                out.clear();
                to_chat_completion(&mut scratch, &META, &mut out).unwrap();
            }),
        );
    }

    // --- streaming: one text delta, split into decode and translate.
    let start = inputs::message_start_frame();
    let delta = inputs::text_delta_frame();
    let mut decoder = EventDecoder::default();
    let mut translator = StreamTranslator::new(&META, true);
    let mut out = BytesMut::with_capacity(4096);
    decoder.push(&start);
    let first = decoder.next_message().unwrap().unwrap();
    translator.on_message(&first, &mut out).unwrap();
    row(
        "stream event: decode one frame (EventDecoder)",
        measure(1000, || {
            decoder.push(&delta);
            std::hint::black_box(decoder.next_message().unwrap().unwrap());
        }),
    );
    decoder.push(&delta);
    let message = decoder.next_message().unwrap().unwrap();
    row(
        "stream event: translate one delta (StreamTranslator)",
        measure(1000, || {
            out.clear();
            translator.on_message(&message, &mut out).unwrap();
        }),
    );
    row(
        "stream event: decode + translate",
        measure(1000, || {
            out.clear();
            decoder.push(&delta);
            let message = decoder.next_message().unwrap().unwrap();
            translator.on_message(&message, &mut out).unwrap();
        }),
    );

    // --- streaming through SseBody: every upstream frame in its own chunk, every SSE record
    // handed on as the server would take it. Per upstream event, over a 1,000-delta stream.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let whole = inputs::text_stream(1000);
    let mut frames = Vec::new();
    let mut splitter = EventDecoder::default();
    let mut offset = 0;
    splitter.push(&whole);
    while let Some(_message) = splitter.next_message().unwrap() {
        let len = whole.len() - offset - splitter.buffered();
        frames.push(Bytes::copy_from_slice(&whole[offset..offset + len]));
        offset += len;
    }
    let events = frames.len() as f64;
    // Streams `pieces` through an SseBody to its end, taking every frame as hyper would.
    let drain = |pieces: Vec<Bytes>| {
        runtime.block_on(async {
            let body = SseBody::start(
                Chunks(pieces.into_iter()),
                EventDecoder::default(),
                StreamTranslator::new(&META, true),
                Duration::from_secs(60),
                None,
            )
            .await
            .unwrap();
            let mut body = std::pin::pin!(body);
            while let Some(frame) = body.frame().await {
                drop(frame.unwrap());
            }
        });
    };
    let (allocs, bytes) = measure(5, || drain(frames.clone()));
    row(
        "stream event: through SseBody, per upstream event",
        (allocs / events, bytes / events),
    );
    let (allocs_tcp, bytes_tcp) = measure(5, || {
        drain(
            whole
                .chunks(inputs::TCP_PIECE)
                .map(Bytes::copy_from_slice)
                .collect(),
        )
    });
    row(
        "stream: 1,000-delta stream in 1448-byte pieces, per event (incl. setup)",
        (allocs_tcp / events, bytes_tcp / events),
    );

    // --- SigV4 signing of a Converse request (direct path).
    let credentials = Credentials::new(
        "AKIAIOSFODNN7EXAMPLE",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        None,
        None,
        "bench",
    );
    let body = inputs::one_turn_request();
    let time = UNIX_EPOCH + Duration::from_secs(1_714_564_800);
    let template = http::Request::post(
        "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse",
    )
    .header("content-type", "application/json")
    .body(())
    .unwrap();
    let mut req = template.clone();
    row(
        "sigv4: sign one request (headers inserted into an existing map)",
        measure(1000, || {
            sign_request(&mut req, &body, &credentials, "us-east-1", time).unwrap();
        }),
    );

    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(10);
    println!("\n| {:width$} | allocations | bytes allocated |", "operation");
    println!("|{}|-------------|-----------------|", "-".repeat(width + 2));
    for (name, allocs, bytes) in &rows {
        println!("| {name:width$} | {allocs:>11.2} | {bytes:>15.0} |");
    }
}
