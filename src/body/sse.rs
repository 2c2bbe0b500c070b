//! `SseBody`: the streaming response body, an `http_body::Body` state machine.
//!
//! It owns the upstream body, the incremental event-stream decoder and the
//! [`StreamTranslator`]. Each `poll_frame` reads what the upstream connection has, decodes every
//! complete message, translates it into SSE records and yields them at once; only a partial
//! message is ever held. Nothing is spawned and nothing is buffered beyond that: when the
//! client stops reading, hyper stops polling, the upstream connection is not read either, and
//! TCP flow control pushes back on Bedrock. When the client goes away the body is dropped, and
//! the upstream request with it.
//!
//! After the headers are sent, failures are data: an exception frame, a decode error or an
//! idle timeout becomes one final `data: {"error":…}` record and the stream ends cleanly.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame};
use serde::Deserialize;
use tokio::time::{Instant, Sleep};

use crate::bedrock::eventstream::{self, EventDecoder};
use crate::bedrock::stream::ExceptionEvent;
use crate::error::{Error, TimeoutKind};
use crate::translate::response::Usage;
use crate::translate::stream::StreamTranslator;
use crate::upstream::UpstreamBody;

/// How long to keep reading an upstream body after the stream is complete, so that its
/// connection goes back to the pool rather than being closed. Bedrock ends the body right
/// after the `metadata` event, so this is normally immediate.
const DRAIN_DEADLINE: Duration = Duration::from_secs(1);

/// How many turns of the scheduler a complete stream waits for the upstream body's end before
/// its last records go out without it: two are needed with hyper's HTTP/1.1 client (see
/// [`SseBody::poll_upstream_end`]), one more is spare.
const END_TURNS: u8 = 3;

/// How a stream ended, for the access log and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamOutcome {
    /// `[DONE]` was sent.
    Ok,
    /// Bedrock sent an exception, broke the framing, or the connection failed.
    UpstreamError,
    /// No upstream data within the idle deadline.
    Timeout,
    /// The client went away before the end.
    ClientCancelled,
}

impl StreamOutcome {
    /// Label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::UpstreamError => "upstream_error",
            Self::Timeout => "timeout",
            Self::ClientCancelled => "client_cancelled",
        }
    }
}

/// Called exactly once when the stream ends or is dropped.
pub type EndHook = Box<dyn FnOnce(StreamOutcome, Option<Usage>) + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading and translating upstream frames.
    Streaming,
    /// The client has everything; reading the upstream body to its end so the connection can
    /// be reused.
    Draining,
    /// Nothing more to do.
    Done,
}

/// The translated stream.
pub struct SseBody<B = UpstreamBody> {
    upstream: Option<B>,
    decoder: EventDecoder,
    translator: StreamTranslator,
    out: BytesMut,
    /// When waiting for Bedrock stops: the idle deadline (last data plus `idle_timeout`), or
    /// once the client has everything, the drain deadline.
    deadline: Instant,
    /// The timer for `deadline`, made and moved only when the body waits for Bedrock (see
    /// [`SseBody::poll_deadline`]).
    timer: Option<Pin<Box<Sleep>>>,
    idle_timeout: Duration,
    state: State,
    /// Turns of the scheduler left to wait for the upstream body's end once the stream is
    /// complete (see [`SseBody::poll_upstream_end`]).
    end_turns: u8,
    outcome: Option<StreamOutcome>,
    on_end: Option<EndHook>,
}

impl<B> std::fmt::Debug for SseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseBody")
            .field("state", &self.state)
            .field("buffered", &self.decoder.buffered())
            .field("pending_out", &self.out.len())
            .finish_non_exhaustive()
    }
}

impl<B> SseBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    /// Reads the upstream body until its first message and decides: an exception or error
    /// frame is returned as an [`Error`] so the client still gets a real status code; an event
    /// is translated and the body is returned, ready to stream, holding that first output.
    pub async fn start(
        upstream: B,
        decoder: EventDecoder,
        translator: StreamTranslator,
        idle_timeout: Duration,
        on_end: Option<EndHook>,
    ) -> Result<Self, Error> {
        let mut body = Self {
            upstream: Some(upstream),
            decoder,
            translator,
            // Allocated when there is something to write and handed to hyper whole with each
            // frame, so a stream waiting for Bedrock holds no output buffer.
            out: BytesMut::new(),
            deadline: Instant::now() + idle_timeout,
            timer: None,
            idle_timeout,
            state: State::Streaming,
            end_turns: END_TURNS,
            outcome: None,
            on_end,
        };
        match poll_fn(|cx| body.poll_first_message(cx)).await {
            Ok(()) => {
                // A stream complete in its first read (a short reply) goes out whole, with the
                // end of the response, in the write that carries the headers.
                poll_fn(|cx| body.poll_upstream_end(cx)).await;
                Ok(body)
            }
            Err(e) => {
                // Not a stream the client will see: no end-of-stream accounting.
                body.on_end = None;
                Err(e)
            }
        }
    }

    fn poll_first_message(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        loop {
            match self.decoder.next_message() {
                Ok(Some(message)) => {
                    let first = first_message(&message, &mut self.translator, room(&mut self.out));
                    if first.is_ok() {
                        // The first event may already complete the stream (a one-message reply).
                        self.drain_decoder();
                    }
                    return Poll::Ready(first);
                }
                Ok(None) => {}
                Err(e) => return Poll::Ready(Err(Error::UpstreamProtocol(e.to_string().into()))),
            }
            let Some(upstream) = self.upstream.as_mut() else {
                return Poll::Ready(Err(Error::Internal("stream polled after its end")));
            };
            match Pin::new(upstream).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        self.take_bytes(data);
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    return Poll::Ready(Err(Error::UpstreamConnect(
                        format!("reading the stream: {e}").into(),
                    )));
                }
                Poll::Ready(None) => {
                    return Poll::Ready(Err(Error::UpstreamProtocol(
                        "the stream ended before its first event".into(),
                    )));
                }
                Poll::Pending => {
                    ready!(self.poll_deadline(cx));
                    return Poll::Ready(Err(Error::UpstreamTimeout(TimeoutKind::Idle)));
                }
            }
        }
    }

    /// Translates every complete buffered message.
    fn drain_decoder(&mut self) {
        while !self.translator.is_finished() {
            match self.decoder.next_message() {
                Ok(Some(message)) => {
                    if let Err(e) = self.translator.on_message(&message, room(&mut self.out)) {
                        self.fail(&e, StreamOutcome::UpstreamError);
                    }
                }
                Ok(None) => break,
                Err(e) => self.fail(
                    &Error::UpstreamProtocol(e.to_string().into()),
                    StreamOutcome::UpstreamError,
                ),
            }
        }
        if self.translator.is_finished() {
            self.settle_outcome();
        }
    }

    fn fail(&mut self, err: &Error, outcome: StreamOutcome) {
        if !self.translator.is_finished() {
            tracing::warn!(error = %err, kind = err.kind(), "stream failed after headers were sent");
            self.translator.on_failure(err, room(&mut self.out));
        }
        self.outcome.get_or_insert(outcome);
        // A failed upstream connection is not reusable.
        self.upstream = None;
        self.state = State::Done;
    }

    /// Records how the translator ended the stream (`[DONE]` or an error record), unless a
    /// failure already set the outcome.
    fn settle_outcome(&mut self) {
        if self.outcome.is_none() {
            self.outcome = Some(if self.translator.ended_with_error() {
                StreamOutcome::UpstreamError
            } else {
                StreamOutcome::Ok
            });
        }
    }

    /// Polls the timer for `deadline`, making it or moving it there first.
    ///
    /// The timer is touched only here, when the upstream body has nothing to read. So a
    /// stream whose bytes are all there when read sets no timer, and a finished stream whose
    /// body end came with its last event (Bedrock's usual case) does not move its timer to the
    /// drain deadline. That move is the costly one: a timer moved earlier is taken out of
    /// tokio's wheel and put back under the driver's lock, and one earlier than every other
    /// timer makes tokio wake its I/O driver with an eventfd write. Moving a timer later, as
    /// the idle deadline moves with each read, only updates its deadline.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let deadline = self.deadline;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        timer.as_mut().poll(cx)
    }

    /// Buffers a piece of the upstream body and restarts the idle deadline.
    fn take_bytes(&mut self, data: Bytes) {
        self.decoder.push_bytes(data);
        self.deadline = Instant::now() + self.idle_timeout;
        // A read that holds many events: the records are about as long as the events they
        // come from (the fast mock's 20-delta stream: 4,484 bytes in, 5,053 out), so room for
        // the buffered bytes and a quarter more, beside the room one record asks for, fills
        // one allocation instead of doubling it every few records. A read of one event keeps
        // the allocation `room` makes. `out` is empty here: it is handed on before the
        // upstream is read again.
        let buffered = self.decoder.buffered();
        if buffered > RECORD_BYTES {
            self.out.reserve(RECORD_BYTES + buffered + buffered / 4);
        }
    }

    /// Once the last records are written, reads the upstream body to its end, for a few turns
    /// of the scheduler at most, before they are handed out: hyper then writes the end of the
    /// response with them, where it would otherwise follow in a write and a packet of its own.
    ///
    /// Bedrock ends its body right behind the last event, often in the same read, but hyper's
    /// connection task hands that end over only after this body has taken the data before it,
    /// once the task has run again: two turns of the scheduler (counted for 2,020 streams under
    /// load; every one took two). A body that has not ended by then is read on by `poll_frame` as
    /// before, so a slow end never holds the records back for longer. The end drops the
    /// upstream body, which gives its connection back to the pool.
    fn poll_upstream_end(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.translator.is_finished() {
            return Poll::Ready(());
        }
        while let Some(upstream) = self.upstream.as_mut() {
            match Pin::new(upstream).poll_frame(cx) {
                // Nothing after the last event is the client's.
                Poll::Ready(Some(Ok(_))) => {}
                Poll::Ready(Some(Err(_)) | None) => self.upstream = None,
                Poll::Pending if self.end_turns > 0 => {
                    self.end_turns -= 1;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Poll::Pending => break,
            }
        }
        Poll::Ready(())
    }

    fn end(&mut self) {
        if let Some(hook) = self.on_end.take() {
            hook(self.outcome.unwrap_or(StreamOutcome::Ok), self.translator.usage());
        }
    }
}

impl<B> Body for SseBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        loop {
            if !this.out.is_empty() {
                ready!(this.poll_upstream_end(cx));
                return Poll::Ready(Some(Ok(Frame::data(std::mem::take(&mut this.out).freeze()))));
            }
            if this.state == State::Streaming && this.translator.is_finished() {
                this.state = State::Draining;
                this.deadline = Instant::now() + DRAIN_DEADLINE.min(this.idle_timeout);
            }
            let Some(upstream) = this.upstream.as_mut() else {
                this.state = State::Done;
                this.end();
                return Poll::Ready(None);
            };
            if this.state == State::Done {
                this.upstream = None;
                continue;
            }
            match Pin::new(upstream).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if this.state == State::Streaming
                        && let Ok(data) = frame.into_data()
                    {
                        this.take_bytes(data);
                        this.drain_decoder();
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    if this.state == State::Streaming {
                        let err = Error::UpstreamConnect(format!("reading the stream: {e}").into());
                        this.fail(&err, StreamOutcome::UpstreamError);
                    } else {
                        this.upstream = None;
                    }
                }
                Poll::Ready(None) => {
                    if this.state == State::Streaming {
                        match this.decoder.finish() {
                            Ok(()) => this.translator.on_upstream_end(room(&mut this.out)),
                            Err(e) => {
                                let err = Error::UpstreamProtocol(e.to_string().into());
                                this.fail(&err, StreamOutcome::UpstreamError);
                            }
                        }
                        this.settle_outcome();
                    }
                    // Fully read: dropping it now returns the connection to the pool.
                    this.upstream = None;
                }
                Poll::Pending => {
                    if this.poll_deadline(cx).is_pending() {
                        return Poll::Pending;
                    }
                    if this.state == State::Streaming {
                        this.fail(&Error::UpstreamTimeout(TimeoutKind::Idle), StreamOutcome::Timeout);
                    } else {
                        // Bedrock did not end the body in time: give up on reusing it.
                        this.upstream = None;
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.upstream.is_none() && self.out.is_empty()
    }
}

impl<B> Drop for SseBody<B> {
    fn drop(&mut self) {
        if let Some(hook) = self.on_end.take() {
            let outcome = match self.outcome {
                Some(outcome) if self.out.is_empty() => outcome,
                _ => StreamOutcome::ClientCancelled,
            };
            hook(outcome, self.translator.usage());
        }
    }
}

/// Room for the records of one upstream message (a text delta is one record of about 300
/// bytes), so writing them does not grow the buffer piece by piece.
const RECORD_BYTES: usize = 512;

/// `out`, with at least [`RECORD_BYTES`] of spare capacity.
fn room(out: &mut BytesMut) -> &mut BytesMut {
    out.reserve(RECORD_BYTES);
    out
}

/// The stream's first message: an exception or error is the request's [`Error`], so the client
/// still gets a real status code; an event is translated into `out`.
fn first_message(
    message: &eventstream::Message<'_>,
    translator: &mut StreamTranslator,
    out: &mut BytesMut,
) -> Result<(), Error> {
    match eventstream::classify(message) {
        Ok(eventstream::Frame::Exception {
            exception_type,
            payload,
        }) => Err(Error::upstream(
            exception_type,
            0,
            &exception_message(payload),
            None,
        )),
        Ok(eventstream::Frame::Error { code, message }) => Err(Error::upstream(code, 0, message, None)),
        Ok(eventstream::Frame::Event { .. }) => translator.on_message(message, out),
        Err(e) => Err(Error::UpstreamProtocol(e.to_string().into())),
    }
}

/// The `message` of an exception payload (`{"message":"…"}`), or a generic text.
pub fn exception_message(payload: &[u8]) -> String {
    crate::json::parse_copy(payload, |payload| {
        ExceptionEvent::deserialize(payload)
            .ok()
            .and_then(|event| event.text().map(str::to_owned))
    })
    .ok()
    .flatten()
    .unwrap_or_else(|| "Bedrock reported an error in the stream".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::tests::Chunked;
    use crate::mock_bedrock::fast;
    use crate::translate::response::ResponseMeta;
    use http_body_util::BodyExt;

    /// A stream started on `upstream` as the chat handler starts one, past its first event.
    async fn start<B>(upstream: B) -> SseBody<B>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: std::fmt::Display,
    {
        let meta = ResponseMeta {
            id: "chatcmpl-1",
            created: 1,
            model: "claude-3-haiku",
        };
        let translator = StreamTranslator::new(&meta, false);
        SseBody::start(
            upstream,
            EventDecoder::default(),
            translator,
            Duration::from_secs(60),
            None,
        )
        .await
        .expect("the first event")
    }

    /// The deadline timer is made only when the body waits for Bedrock. A runtime without
    /// timers panics on making or polling one, so a stream read whole through one (in one
    /// chunk, and in two cut inside a message) shows that none was touched.
    #[test]
    fn a_stream_whose_bytes_are_all_there_sets_no_timer() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        // Two text deltas, as the mock's fast mode sends them (with Bedrock's `p` padding).
        let whole = fast::text_stream(2);
        let cut = whole.len() / 2;
        for chunks in [vec![whole.clone()], vec![whole.slice(..cut), whole.slice(cut..)]] {
            let sse = runtime.block_on(async {
                let body = start(Chunked(chunks)).await;
                body.collect().await.expect("infallible").to_bytes()
            });
            let sse = std::str::from_utf8(&sse).expect("UTF-8");
            assert_eq!(sse.matches(r#""content":"tok ""#).count(), 2, "{sse}");
            assert!(sse.ends_with("data: [DONE]\n\n"), "{sse}");
        }
    }

    /// Bedrock's body as hyper's connection task hands it over: the chunks, then `turns`
    /// polls that find nothing yet (each wakes the body's task, as the connection task does
    /// when it runs), then the end.
    struct LateEnd {
        chunks: Vec<Bytes>,
        turns: usize,
    }

    impl Body for LateEnd {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            let this = self.get_mut();
            if !this.chunks.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(this.chunks.remove(0)))));
            }
            if this.turns > 0 {
                this.turns -= 1;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Poll::Ready(None)
        }
    }

    /// Two text deltas, as the mock's fast mode sends them (with Bedrock's `p` padding), in one
    /// chunk, followed by the end `turns` polls later.
    async fn start_late(turns: usize) -> SseBody<LateEnd> {
        start(LateEnd {
            chunks: vec![fast::text_stream(2)],
            turns,
        })
        .await
    }

    /// A stream whose body ends right behind its last event is handed to hyper as one frame
    /// that ends the body, so the records and the end of the response go out in one write.
    #[tokio::test]
    async fn a_complete_stream_goes_out_with_the_end_of_the_response() {
        for turns in [0, 1, 2] {
            let mut body = start_late(turns).await;
            let frame = body.frame().await.expect("a frame").expect("infallible");
            let records = frame.into_data().expect("data");
            let records = std::str::from_utf8(&records).expect("UTF-8");
            assert_eq!(records.matches(r#""content":"tok ""#).count(), 2, "{records}");
            assert!(records.ends_with("data: [DONE]\n\n"), "{records}");
            assert!(
                body.is_end_stream(),
                "turns {turns}: the body should end with this frame"
            );
        }
    }

    /// An end that is slow to come does not hold the last records back: they go out, and the
    /// body ends when the upstream one does.
    #[tokio::test]
    async fn a_late_upstream_end_does_not_hold_the_records_back() {
        let mut body = start_late(50).await;
        let frame = body.frame().await.expect("a frame").expect("infallible");
        let records = frame.into_data().expect("data");
        assert!(records.ends_with(b"data: [DONE]\n\n"));
        assert!(!body.is_end_stream());
        assert!(body.frame().await.is_none());
        assert!(body.is_end_stream());
    }
}
