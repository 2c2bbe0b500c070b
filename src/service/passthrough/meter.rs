//! Token usage of a relayed reply, read on the side as its bytes pass, so native calls count
//! against the key's tokens per minute like chat completions. The relay never waits for it and
//! never changes a byte: a reply the meter cannot read is simply not charged.
//!
//! - `converse`: the body (up to [`MAX_METERED_BODY`]) is kept and its `usage` read at the end.
//! - `converse-stream`: the frames are decoded in place alongside the relay and the `metadata`
//!   event's `usage` is taken.
//! - `invoke`: Bedrock's `x-amzn-bedrock-input-token-count` and `-output-token-count` headers.
//! - `invoke-with-response-stream`: the frames are decoded in place alongside the relay and
//!   the last `chunk` event is kept; at the end its model-native bytes are read for the
//!   `amazon-bedrock-invocationMetrics` object Bedrock adds to it (`inputTokenCount`,
//!   `outputTokenCount`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http::HeaderMap;
use serde::Deserialize;

use super::NativeOperation;
use crate::auth::Grant;
use crate::bedrock::converse::ConverseResponse;
use crate::bedrock::eventstream::{DecodeError, EventDecoder, Frame, classify};
use crate::bedrock::stream::MetadataEvent;
use crate::body::sse::StreamOutcome;
use crate::translate::response::Usage;

/// A `converse` reply larger than this is relayed without being read for usage.
pub const MAX_METERED_BODY: usize = 1024 * 1024;

/// Reads usage out of one relayed reply and settles the request's grant when it ends.
#[derive(Debug)]
pub struct Meter {
    grant: Option<Grant>,
    reading: Reading,
    usage: Option<Usage>,
}

#[derive(Debug)]
enum Reading {
    /// `converse`: the body so far.
    Body(Vec<u8>),
    /// `converse-stream`: usage is read from the `metadata` event as it passes.
    Metadata(Box<EventDecoder>),
    /// `invoke-with-response-stream`: the last `chunk` event's payload so far.
    LastChunk(Box<EventDecoder>, Vec<u8>),
    Nothing,
}

impl Meter {
    /// A meter for `operation`'s 2xx reply with these headers; `grant` is settled at the end.
    pub fn new(grant: Grant, operation: NativeOperation, headers: &HeaderMap) -> Self {
        let (reading, usage) = match operation {
            NativeOperation::Converse => (Reading::Body(Vec::new()), None),
            NativeOperation::ConverseStream => (Reading::Metadata(Box::default()), None),
            NativeOperation::Invoke => (Reading::Nothing, usage_from_headers(headers)),
            NativeOperation::InvokeWithResponseStream => {
                (Reading::LastChunk(Box::default(), Vec::new()), None)
            }
        };
        Self {
            grant: Some(grant),
            reading,
            usage,
        }
    }

    /// Looks at one relayed chunk.
    pub fn observe(&mut self, chunk: &Bytes) {
        let decoded = match &mut self.reading {
            Reading::Body(body) => {
                if body.len() + chunk.len() <= MAX_METERED_BODY {
                    body.extend_from_slice(chunk);
                } else {
                    self.reading = Reading::Nothing;
                }
                return;
            }
            Reading::Metadata(decoder) => {
                let usage = &mut self.usage;
                for_each_event(decoder, chunk, |event_type, payload| {
                    if event_type == "metadata"
                        && let Some(read) = metadata_usage(payload)
                    {
                        *usage = Some(read);
                    }
                })
            }
            Reading::LastChunk(decoder, last) => for_each_event(decoder, chunk, |event_type, payload| {
                if event_type == "chunk" {
                    last.clear();
                    last.extend_from_slice(payload);
                }
            }),
            Reading::Nothing => return,
        };
        if decoded.is_err() {
            self.reading = Reading::Nothing;
        }
    }

    /// The reply ended (`complete`) or was dropped before its end: charges what was read.
    pub fn finish(&mut self, complete: bool) {
        let Some(grant) = self.grant.take() else {
            return;
        };
        match &mut self.reading {
            Reading::Body(body) => {
                let mut body = std::mem::take(body);
                self.usage = crate::json::parse_in_place(&mut body, |d| {
                    ConverseResponse::deserialize(d)
                        .ok()
                        .and_then(|reply| reply.usage.as_ref().map(Usage::from))
                })
                .ok()
                .flatten();
            }
            Reading::LastChunk(_, last) => self.usage = invocation_metrics(last),
            Reading::Metadata(_) | Reading::Nothing => {}
        }
        let outcome = if complete {
            StreamOutcome::Ok
        } else {
            StreamOutcome::ClientCancelled
        };
        grant.settle(outcome, self.usage);
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        self.finish(false);
    }
}

/// Feeds `chunk` to `decoder` and hands the type and payload of each event it completes to
/// `on_event`; an error when the stream cannot be decoded.
fn for_each_event(
    decoder: &mut EventDecoder,
    chunk: &Bytes,
    mut on_event: impl FnMut(&str, &[u8]),
) -> Result<(), DecodeError> {
    decoder.push_bytes(chunk.clone());
    while let Some(message) = decoder.next_message()? {
        if let Ok(Frame::Event { event_type, payload }) = classify(&message) {
            on_event(event_type, payload);
        }
    }
    Ok(())
}

/// A ConverseStream `metadata` event's usage.
fn metadata_usage(payload: &[u8]) -> Option<Usage> {
    crate::json::parse_copy(payload, |d| {
        MetadataEvent::deserialize(d)
            .ok()
            .and_then(|event| event.usage.as_ref().map(Usage::from))
    })
    .ok()
    .flatten()
}

/// The usage in an InvokeModelWithResponseStream `chunk` event's payload
/// (`{"bytes": "<base64>"}`), if its model-native JSON carries
/// `amazon-bedrock-invocationMetrics`.
fn invocation_metrics(payload: &[u8]) -> Option<Usage> {
    #[derive(Deserialize)]
    struct Chunk<'a> {
        #[serde(borrow)]
        bytes: std::borrow::Cow<'a, str>,
    }
    #[derive(Deserialize)]
    struct Native {
        #[serde(rename = "amazon-bedrock-invocationMetrics")]
        metrics: Option<InvocationMetrics>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct InvocationMetrics {
        input_token_count: u64,
        #[serde(default)]
        output_token_count: u64,
    }
    if payload.is_empty() {
        return None;
    }
    let native = crate::json::parse_copy(payload, |d| {
        Chunk::deserialize(d)
            .ok()
            .and_then(|chunk| BASE64.decode(chunk.bytes.as_bytes()).ok())
    })
    .ok()
    .flatten()?;
    let metrics = crate::json::parse_copy(&native, |d| Native::deserialize(d).ok())
        .ok()
        .flatten()?
        .metrics?;
    Some(Usage {
        input_tokens: metrics.input_token_count,
        output_tokens: metrics.output_token_count,
        ..Usage::default()
    })
}

/// `invoke`'s usage from Bedrock's token-count headers.
fn usage_from_headers(headers: &HeaderMap) -> Option<Usage> {
    let count = |name: &str| -> Option<u64> { headers.get(name)?.to_str().ok()?.parse().ok() };
    let input_tokens = count("x-amzn-bedrock-input-token-count")?;
    let output_tokens = count("x-amzn-bedrock-output-token-count").unwrap_or(0);
    Some(Usage {
        input_tokens,
        output_tokens,
        ..Usage::default()
    })
}
