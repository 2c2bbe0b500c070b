//! The mock's replies: the Converse JSON document, and the ConverseStream body produced
//! frame by frame by a task that feeds a small bounded channel.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::Counters;
use super::script::{MOCK_SIGNATURE, Script, Usage, exception_message};
use crate::bedrock::eventstream::{encode_event, encode_exception};
use crate::json;

/// Frames buffered between the producer and the connection: small, so a slow reader holds
/// the producer back instead of the mock queueing the whole reply.
const STREAM_CHANNEL_FRAMES: usize = 2;
/// Letters the `"p"` padding field is cut from, as Bedrock's padding looks.
const PADDING: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// The body failure `mock:reset` injects: the connection (HTTP/1.1) or stream (HTTP/2) is
/// reset instead of ending cleanly.
#[derive(Debug, thiserror::Error)]
#[error("the mock Bedrock runtime reset the response (mock:reset)")]
pub(super) struct InjectedReset;

type Chunk = Result<Bytes, InjectedReset>;

/// Every response body the mock sends.
#[derive(Debug)]
pub(super) enum MockBody {
    /// One buffer (JSON replies and errors).
    Full(Option<Bytes>),
    /// An event stream, frame by frame.
    Stream(StreamBody),
    /// Fails at the first poll.
    Reset,
}

impl MockBody {
    pub(super) fn full(bytes: impl Into<Bytes>) -> Self {
        Self::Full(Some(bytes.into()))
    }
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = InjectedReset;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, InjectedReset>>> {
        match self.get_mut() {
            Self::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Self::Stream(stream) => stream.poll_next(cx),
            Self::Reset => Poll::Ready(Some(Err(InjectedReset))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Self::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Self::Full(None) => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

/// The receiving end of a stream: counts itself active while alive, and cancelled if it is
/// dropped before the producer finished (the client went away).
#[derive(Debug)]
pub(super) struct StreamBody {
    rx: mpsc::Receiver<Chunk>,
    counters: Arc<Counters>,
    finished: bool,
}

impl StreamBody {
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, InjectedReset>>> {
        match ready!(self.rx.poll_recv(cx)) {
            Some(Ok(bytes)) => {
                self.counters.frames_sent.fetch_add(1, Ordering::Relaxed);
                Poll::Ready(Some(Ok(Frame::data(bytes))))
            }
            Some(Err(reset)) => {
                self.finished = true;
                Poll::Ready(Some(Err(reset)))
            }
            None => {
                self.finished = true;
                Poll::Ready(None)
            }
        }
    }
}

impl Drop for StreamBody {
    fn drop(&mut self) {
        self.counters.active_streams.fetch_sub(1, Ordering::Relaxed);
        if !self.finished {
            self.counters.cancelled_streams.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Starts producing `script` as an event stream. The producer task ends when the script is
/// done or as soon as the returned body is dropped.
pub(super) fn stream(script: Script, counters: Arc<Counters>, started: Instant) -> StreamBody {
    let (tx, rx) = mpsc::channel(STREAM_CHANNEL_FRAMES);
    counters.active_streams.fetch_add(1, Ordering::Relaxed);
    tokio::spawn(async move {
        let mut out = Emitter {
            delay: script.delay,
            tx,
            sent: 0,
            corrupt_next: false,
        };
        // `Err` only means the client went away; there is nobody left to tell.
        let _ = produce(&script, &mut out, started).await;
    });
    StreamBody {
        rx,
        counters,
        finished: false,
    }
}

/// The receiver is gone.
struct Closed;

struct Emitter {
    tx: mpsc::Sender<Chunk>,
    delay: Duration,
    sent: u64,
    corrupt_next: bool,
}

impl Emitter {
    /// Sleeps, or returns early with `Closed` when the body is dropped meanwhile.
    async fn pause(&self, wait: Duration) -> Result<(), Closed> {
        if wait.is_zero() {
            return Ok(());
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => Ok(()),
            () = self.tx.closed() => Err(Closed),
        }
    }

    async fn send(&mut self, chunk: Chunk) -> Result<(), Closed> {
        if self.sent > 0 {
            self.pause(self.delay).await?;
        }
        self.sent += 1;
        self.tx.send(chunk).await.map_err(|_| Closed)
    }

    /// Sends one event whose payload is `{fields,"p":"…"}`.
    async fn event(&mut self, event_type: &str, fields: &[u8]) -> Result<(), Closed> {
        let mut payload = Vec::with_capacity(fields.len() + 64);
        payload.push(b'{');
        payload.extend_from_slice(fields);
        write_padding(&mut payload);
        payload.push(b'}');
        let mut frame = Vec::with_capacity(payload.len() + 96);
        encode_event(event_type, &payload, &mut frame);
        if std::mem::take(&mut self.corrupt_next)
            && let Some(last) = frame.last_mut()
        {
            // The last byte belongs to the message CRC.
            *last ^= 0xff;
        }
        self.send(Ok(Bytes::from(frame))).await
    }

    async fn exception(&mut self, exception_type: &str) -> Result<(), Closed> {
        let mut frame = Vec::with_capacity(192);
        encode_exception(exception_type, &exception_payload(exception_type), &mut frame);
        self.send(Ok(Bytes::from(frame))).await
    }
}

/// The event sequence of reference event-stream §7, with the script's faults injected.
async fn produce(script: &Script, out: &mut Emitter, started: Instant) -> Result<(), Closed> {
    if let Some(exception) = &script.first_exception {
        return out.exception(exception).await;
    }
    out.event("messageStart", br#""role":"assistant""#).await?;
    out.corrupt_next = script.bad_crc;
    let mut fields = Vec::with_capacity(128);
    let mut block = 0u64;
    if !script.reasoning.is_empty() {
        // Reasoning text first, then its signature as a separate delta (event-stream §7).
        for delta in &script.reasoning {
            reasoning_delta(&mut fields, block, "text", delta);
            out.event("contentBlockDelta", &fields).await?;
        }
        reasoning_delta(&mut fields, block, "signature", MOCK_SIGNATURE);
        out.event("contentBlockDelta", &fields).await?;
        block_stop(&mut fields, block);
        out.event("contentBlockStop", &fields).await?;
        block += 1;
    }
    if let Some(redacted) = &script.redacted {
        reasoning_delta(&mut fields, block, "redactedContent", redacted);
        out.event("contentBlockDelta", &fields).await?;
        block_stop(&mut fields, block);
        out.event("contentBlockStop", &fields).await?;
    }
    let text_index = script.text_index() as u64;
    if script.text.len() == 0 {
        out.pause(script.stall).await?;
    }
    for i in 0..script.text.len() {
        fields.clear();
        fields.extend_from_slice(b"\"contentBlockIndex\":");
        json::write_u64(&mut fields, text_index);
        fields.extend_from_slice(br#","delta":{"text":"#);
        json::write_str(&mut fields, &script.text.delta(i));
        fields.push(b'}');
        out.event("contentBlockDelta", &fields).await?;
        if i == 0 {
            out.pause(script.stall).await?;
        }
    }
    if let Some(exception) = &script.mid_exception {
        return out.exception(exception).await;
    }
    if script.truncate {
        return Ok(());
    }
    if script.reset {
        return out.send(Err(InjectedReset)).await;
    }
    if script.text.len() > 0 {
        block_stop(&mut fields, text_index);
        out.event("contentBlockStop", &fields).await?;
    }
    for (n, tool) in script.tools.iter().enumerate() {
        let index = script.first_tool_index() + n;
        fields.clear();
        fields.extend_from_slice(b"\"contentBlockIndex\":");
        json::write_u64(&mut fields, index as u64);
        fields.extend_from_slice(br#","start":{"toolUse":{"toolUseId":"#);
        write_tool_use_id(&mut fields, n);
        fields.extend_from_slice(b",\"name\":");
        json::write_str(&mut fields, &tool.name);
        fields.extend_from_slice(b"}}");
        out.event("contentBlockStart", &fields).await?;
        for fragment in tool.fragments() {
            fields.clear();
            fields.extend_from_slice(b"\"contentBlockIndex\":");
            json::write_u64(&mut fields, index as u64);
            fields.extend_from_slice(br#","delta":{"toolUse":{"input":"#);
            json::write_str(&mut fields, fragment);
            fields.extend_from_slice(b"}}");
            out.event("contentBlockDelta", &fields).await?;
        }
        fields.clear();
        fields.extend_from_slice(b"\"contentBlockIndex\":");
        json::write_u64(&mut fields, index as u64);
        out.event("contentBlockStop", &fields).await?;
    }
    fields.clear();
    fields.extend_from_slice(b"\"stopReason\":");
    json::write_str(&mut fields, &script.stop_reason);
    out.event("messageStop", &fields).await?;
    fields.clear();
    write_usage_and_metrics(&mut fields, &script.usage, started);
    out.event("metadata", &fields).await?;
    out.pause(script.linger).await
}

fn reasoning_delta(fields: &mut Vec<u8>, block: u64, member: &str, value: &str) {
    fields.clear();
    fields.extend_from_slice(b"\"contentBlockIndex\":");
    json::write_u64(fields, block);
    fields.extend_from_slice(br#","delta":{"reasoningContent":{"#);
    json::write_str(fields, member);
    fields.push(b':');
    json::write_str(fields, value);
    fields.extend_from_slice(b"}}");
}

fn block_stop(fields: &mut Vec<u8>, block: u64) {
    fields.clear();
    fields.extend_from_slice(b"\"contentBlockIndex\":");
    json::write_u64(fields, block);
}

/// The Converse reply document (reference: bedrock-converse §5).
pub(super) fn converse_json(script: &Script, started: Instant) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + script.text.len() * 8);
    out.extend_from_slice(br#"{"output":{"message":{"role":"assistant","content":["#);
    let mut first = true;
    if !script.reasoning.is_empty() {
        out.extend_from_slice(br#"{"reasoningContent":{"reasoningText":{"text":"#);
        json::write_str(&mut out, &script.reasoning.concat());
        out.extend_from_slice(br#","signature":"#);
        json::write_str(&mut out, MOCK_SIGNATURE);
        out.extend_from_slice(b"}}}");
        first = false;
    }
    if let Some(redacted) = &script.redacted {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        out.extend_from_slice(br#"{"reasoningContent":{"redactedContent":"#);
        json::write_str(&mut out, redacted);
        out.extend_from_slice(b"}}");
    }
    if script.text.len() > 0 {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        out.extend_from_slice(br#"{"text":"#);
        json::write_str(&mut out, &script.text.full());
        out.push(b'}');
    }
    for (n, tool) in script.tools.iter().enumerate() {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        out.extend_from_slice(br#"{"toolUse":{"toolUseId":"#);
        write_tool_use_id(&mut out, n);
        out.extend_from_slice(b",\"name\":");
        json::write_str(&mut out, &tool.name);
        out.extend_from_slice(b",\"input\":");
        out.extend_from_slice(tool.input.as_bytes());
        out.extend_from_slice(b"}}");
    }
    out.extend_from_slice(br#"]}},"stopReason":"#);
    json::write_str(&mut out, &script.stop_reason);
    out.push(b',');
    write_usage_and_metrics(&mut out, &script.usage, started);
    out.push(b'}');
    out
}

/// `{"message":…}` for an exception (plus the extra members of `modelStreamErrorException`).
pub(super) fn exception_payload(exception_type: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(b"{\"message\":");
    json::write_str(&mut out, exception_message(exception_type));
    if exception_type.eq_ignore_ascii_case("modelStreamErrorException") {
        out.extend_from_slice(br#","originalStatusCode":500,"originalMessage":"upstream model failure""#);
    }
    out.push(b'}');
    out
}

/// `tooluse_<n>`, numbered from 1 in reply order.
fn write_tool_use_id(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(b"\"tooluse_");
    json::write_u64(out, n as u64 + 1);
    out.push(b'"');
}

fn write_usage_and_metrics(out: &mut Vec<u8>, usage: &Usage, started: Instant) {
    out.extend_from_slice(br#""usage":{"inputTokens":"#);
    json::write_u64(out, usage.input);
    out.extend_from_slice(br#","outputTokens":"#);
    json::write_u64(out, usage.output);
    out.extend_from_slice(br#","totalTokens":"#);
    json::write_u64(out, usage.total());
    out.extend_from_slice(br#","cacheReadInputTokens":"#);
    json::write_u64(out, usage.cache_read);
    out.extend_from_slice(br#","cacheWriteInputTokens":"#);
    json::write_u64(out, usage.cache_write);
    out.extend_from_slice(br#"},"metrics":{"latencyMs":"#);
    json::write_u64(
        out,
        u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    );
    out.push(b'}');
}

fn write_padding(out: &mut Vec<u8>) {
    out.extend_from_slice(b",\"p\":\"");
    out.extend_from_slice(&PADDING[..fastrand::usize(1..=PADDING.len())]);
    out.push(b'"');
}
