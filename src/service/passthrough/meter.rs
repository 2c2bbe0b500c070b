//! Token usage of a relayed reply, read on the side as its bytes pass, so native calls count
//! against the key's tokens per minute like chat completions. The relay never waits for it and
//! never changes a byte: a reply the meter cannot read is simply not charged.
//!
//! - `converse`: the body (up to [`MAX_METERED_BODY`]) is kept and its `usage` read at the end.
//! - `converse-stream`: the frames are decoded in place alongside the relay and the `metadata`
//!   event's `usage` is taken.
//! - `invoke`: Bedrock's `x-amzn-bedrock-input-token-count` and `-output-token-count` headers.
//! - `invoke-with-response-stream`: model-native chunks with no common usage shape: not
//!   charged.

use bytes::Bytes;
use http::HeaderMap;
use serde::Deserialize;

use super::NativeOperation;
use crate::auth::Grant;
use crate::bedrock::converse::ConverseResponse;
use crate::bedrock::eventstream::{EventDecoder, Frame, classify};
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
    Body(Vec<u8>),
    Frames(Box<EventDecoder>),
    Nothing,
}

impl Meter {
    /// A meter for `operation`'s 2xx reply with these headers; `grant` is settled at the end.
    pub fn new(grant: Grant, operation: NativeOperation, headers: &HeaderMap) -> Self {
        let (reading, usage) = match operation {
            NativeOperation::Converse => (Reading::Body(Vec::new()), None),
            NativeOperation::ConverseStream => (Reading::Frames(Box::default()), None),
            NativeOperation::Invoke => (Reading::Nothing, usage_from_headers(headers)),
            NativeOperation::InvokeWithResponseStream => (Reading::Nothing, None),
        };
        Self {
            grant: Some(grant),
            reading,
            usage,
        }
    }

    /// Looks at one relayed chunk.
    pub fn observe(&mut self, chunk: &Bytes) {
        match &mut self.reading {
            Reading::Body(body) => {
                if body.len() + chunk.len() <= MAX_METERED_BODY {
                    body.extend_from_slice(chunk);
                } else {
                    self.reading = Reading::Nothing;
                }
            }
            Reading::Frames(decoder) => {
                decoder.push_bytes(chunk.clone());
                loop {
                    match decoder.next_message() {
                        Ok(Some(message)) => {
                            if let Ok(Frame::Event {
                                event_type: "metadata",
                                payload,
                            }) = classify(&message)
                                && let Ok(Some(usage)) = crate::json::parse_copy(payload, |d| {
                                    MetadataEvent::deserialize(d)
                                        .ok()
                                        .and_then(|event| event.usage.as_ref().map(Usage::from))
                                })
                            {
                                self.usage = Some(usage);
                            }
                        }
                        Ok(None) => break,
                        Err(_) => {
                            self.reading = Reading::Nothing;
                            break;
                        }
                    }
                }
            }
            Reading::Nothing => {}
        }
    }

    /// The reply ended (`complete`) or was dropped before its end: charges what was read.
    pub fn finish(&mut self, complete: bool) {
        let Some(grant) = self.grant.take() else {
            return;
        };
        if let Reading::Body(body) = &mut self.reading {
            let mut body = std::mem::take(body);
            self.usage = crate::json::parse_in_place(&mut body, |d| {
                ConverseResponse::deserialize(d)
                    .ok()
                    .and_then(|reply| reply.usage.as_ref().map(Usage::from))
            })
            .ok()
            .flatten();
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
