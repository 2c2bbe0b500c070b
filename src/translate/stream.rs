//! ConverseStream events → `chat.completion.chunk` SSE records (reference: mapping §7,
//! event-stream §6–§7).
//!
//! [`StreamTranslator`] holds the per-stream state of mapping §7.2 and appends zero or more
//! `data: …\n\n` records to the caller's buffer for each upstream message. A text delta in the
//! compact shape Bedrock sends goes into its chunk as it stands in the payload, without a parse
//! ([`plain_text_delta`]), and so are the few flat members of `messageStart`, `contentBlockStop`
//! and `messageStop` read ([`small_event`]); other payloads are parsed in a copy with the worker
//! thread's simd-json buffers ([`json::parse_copy`]), so a steady stream allocates nothing per
//! event and an idle one holds no parse buffers.

use bytes::BytesMut;
use serde::Deserialize;
use simd_json::Deserializer;

use crate::bedrock::eventstream::{self, Frame};
use crate::bedrock::stream::{
    ContentBlockDeltaEvent, ContentBlockStartEvent, ContentBlockStopEvent, EventType, ExceptionEvent,
    MessageStartEvent, MessageStopEvent, MetadataEvent, SmallEvent, plain_text_delta, small_event,
};
use crate::error::{Error, classify_bedrock, write_error_object};
use crate::json;
use crate::openai::response::{ChunkWriter, DONE_RECORD};
use crate::translate::response::{ResponseMeta, ResponseShape, ToolUseRole, Usage, finish_reason};

/// Error code of the record sent when Bedrock's body ends before `messageStop`.
pub const TRUNCATED_CODE: &str = "upstream_stream_truncated";

/// Per-stream translation state; one per response, not shared.
#[derive(Debug)]
pub struct StreamTranslator {
    state: State,
}

#[derive(Debug)]
struct State {
    chunks: ChunkWriter,
    include_usage: bool,
    role_sent: bool,
    /// `messageStop` was translated into the finish chunk.
    stopped: bool,
    /// `[DONE]` or an error record was written; nothing follows.
    finished: bool,
    /// The stream ended with an error record rather than `[DONE]`.
    failed: bool,
    /// One entry per tool-use block of this response, in order. Bounded by the blocks one
    /// response can hold (its output token limit).
    tools: Vec<ToolBlock>,
    /// Tool calls surfaced so far; the next one gets this OpenAI index.
    calls: u32,
    /// How the request asked for the reply to be shaped.
    shape: ResponseShape,
    usage: Option<Usage>,
}

#[derive(Debug, Clone, Copy)]
struct ToolBlock {
    /// Bedrock's `contentBlockIndex`, which also counts text and reasoning blocks.
    block: u32,
    /// What the block becomes for the client.
    kind: ToolBlockKind,
    /// Whether a non-empty arguments fragment was sent.
    args_sent: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ToolBlockKind {
    /// A tool call with this OpenAI index (dense, in order of appearance).
    Call(u32),
    /// The deprecated `function_call`.
    Function,
    /// Its input is streamed as `content` (structured-output emulation).
    Content,
    /// Not surfaced.
    Dropped,
}

// === impl StreamTranslator ===

impl StreamTranslator {
    /// Starts a stream; renders the constant head of every chunk once.
    pub fn new(meta: &ResponseMeta<'_>, include_usage: bool) -> Self {
        Self::with_shape(meta, include_usage, ResponseShape::default())
    }

    /// Starts a stream whose reply is shaped by the request (structured-output emulation,
    /// legacy functions, suppressed tool calls).
    pub fn with_shape(meta: &ResponseMeta<'_>, include_usage: bool, shape: ResponseShape) -> Self {
        Self {
            state: State {
                chunks: ChunkWriter::new(meta.id, meta.created, meta.model, include_usage),
                include_usage,
                role_sent: false,
                stopped: false,
                finished: false,
                failed: false,
                tools: Vec::new(),
                calls: 0,
                shape,
                usage: None,
            },
        }
    }

    /// Dispatches one decoded event-stream message. Events become zero or more SSE records; an
    /// exception or error message becomes one final `data: {"error":…}` record (no `[DONE]`).
    ///
    /// `Err` means the message could not be understood (missing headers, malformed payload):
    /// the caller ends the stream with [`StreamTranslator::on_failure`].
    pub fn on_message(
        &mut self,
        message: &eventstream::Message<'_>,
        out: &mut BytesMut,
    ) -> Result<(), Error> {
        if self.state.finished {
            return Ok(());
        }
        match eventstream::classify(message) {
            Ok(Frame::Event { event_type, payload }) => self.on_event(event_type, payload, out),
            Ok(Frame::Exception {
                exception_type,
                payload,
            }) => {
                self.on_exception(exception_type, payload, out);
                Ok(())
            }
            Ok(Frame::Error { code, message }) => {
                let class = classify_bedrock(code, 0, message);
                let text = if message.is_empty() { code } else { message };
                self.state
                    .error_record(out, text, class.openai_type, None, class.code);
                Ok(())
            }
            Err(e) => Err(Error::UpstreamProtocol(e.to_string().into())),
        }
    }

    /// Translates one event, named by its `:event-type`, with its JSON payload.
    pub fn on_event(&mut self, event_type: &str, payload: &[u8], out: &mut BytesMut) -> Result<(), Error> {
        let kind = EventType::from_name(event_type);
        if self.state.finished || kind == EventType::Unknown {
            return Ok(());
        }
        if kind == EventType::ContentBlockDelta
            && let Some(text) = plain_text_delta(payload)
        {
            // The same chunk as the parsed path below writes.
            let state = &mut self.state;
            if !state.stopped && !text.is_empty() {
                state.ensure_role(out);
                state.chunks.content_escaped(out, text);
            }
            return Ok(());
        }
        if let Some(event) = small_event(kind, payload) {
            self.state.on_small(event, out);
            return Ok(());
        }
        let malformed = |e: simd_json::Error| {
            Error::UpstreamProtocol(format!("malformed `{event_type}` event: {e}").into())
        };
        let state = &mut self.state;
        json::parse_copy(payload, |payload| state.on_event(kind, payload, &malformed, out))
            .map_err(malformed)?
    }

    /// Ends the stream after a gateway-side failure once headers were sent (idle timeout,
    /// undecodable frame): one final error record, no `[DONE]`.
    pub fn on_failure(&mut self, err: &Error, out: &mut BytesMut) {
        if self.state.finished {
            return;
        }
        self.state
            .error_record(out, &err.to_string(), err.openai_type(), err.param(), err.code());
    }

    /// The upstream body ended. After `messageStop` that is a normal end (`metadata` may be
    /// missing): `[DONE]`. Before it, the response is incomplete: an error record with code
    /// [`TRUNCATED_CODE`].
    pub fn on_upstream_end(&mut self, out: &mut BytesMut) {
        if self.state.finished {
            return;
        }
        if self.state.stopped {
            self.state.done(out);
        } else {
            self.state.error_record(
                out,
                "the Bedrock stream ended before the response was complete",
                "server_error",
                None,
                Some(TRUNCATED_CODE),
            );
        }
    }

    /// Whether the stream is over: `[DONE]` or an error record was written.
    pub fn is_finished(&self) -> bool {
        self.state.finished
    }

    /// Whether the stream ended with an error record rather than `[DONE]`.
    pub fn ended_with_error(&self) -> bool {
        self.state.failed
    }

    /// Usage from the `metadata` event, once it arrived.
    pub fn usage(&self) -> Option<Usage> {
        self.state.usage
    }

    fn on_exception(&mut self, exception_type: &str, payload: &[u8], out: &mut BytesMut) {
        let state = &mut self.state;
        let mut record = |message: &str| {
            let class = classify_bedrock(exception_type, 0, message);
            state.error_record(out, message, class.openai_type, None, class.code);
        };
        let parsed = json::parse_copy(payload, |payload| {
            let event = ExceptionEvent::deserialize(payload).unwrap_or_default();
            record(event.text().filter(|m| !m.is_empty()).unwrap_or(exception_type));
        });
        if parsed.is_err() {
            record(exception_type);
        }
    }
}

// === impl State ===

impl State {
    /// One event whose payload is parsed and waiting in `payload`.
    fn on_event(
        &mut self,
        kind: EventType,
        payload: &mut Deserializer<'_>,
        malformed: &impl Fn(simd_json::Error) -> Error,
        out: &mut BytesMut,
    ) -> Result<(), Error> {
        let state = self;
        match kind {
            EventType::MessageStart => {
                MessageStartEvent::deserialize(&mut *payload).map_err(malformed)?;
                state.on_small(SmallEvent::MessageStart, out);
            }
            EventType::ContentBlockStart => {
                let event = ContentBlockStartEvent::deserialize(&mut *payload).map_err(malformed)?;
                if let Some(tool_use) = event.start.tool_use
                    && !state.stopped
                {
                    state.ensure_role(out);
                    let kind = match state.shape.tool_use_role(tool_use.name) {
                        ToolUseRole::Content => ToolBlockKind::Content,
                        ToolUseRole::Dropped => ToolBlockKind::Dropped,
                        // The deprecated API has one call per turn: later ones are dropped.
                        ToolUseRole::Call if state.shape.legacy_functions => {
                            if state.calls == 0 {
                                state.chunks.function_call_start(out, tool_use.name);
                                state.calls = 1;
                                ToolBlockKind::Function
                            } else {
                                ToolBlockKind::Dropped
                            }
                        }
                        ToolUseRole::Call => {
                            let index = state.calls;
                            state.calls = state.calls.saturating_add(1);
                            state
                                .chunks
                                .tool_call_start(out, index, tool_use.tool_use_id, tool_use.name);
                            ToolBlockKind::Call(index)
                        }
                    };
                    state.tools.push(ToolBlock {
                        block: event.content_block_index,
                        kind,
                        args_sent: false,
                    });
                }
                // toolResult and image blocks have no OpenAI equivalent.
            }
            EventType::ContentBlockDelta => {
                let event = ContentBlockDeltaEvent::deserialize(&mut *payload).map_err(malformed)?;
                if state.stopped {
                    return Ok(());
                }
                if let Some(text) = event.delta.text {
                    if !text.is_empty() {
                        state.ensure_role(out);
                        state.chunks.content(out, text);
                    }
                } else if let Some(tool_use) = event.delta.tool_use {
                    let Some(position) = state.tool_position(event.content_block_index) else {
                        return Err(Error::UpstreamProtocol(
                            format!(
                                "tool input for content block {} without a toolUse start",
                                event.content_block_index
                            )
                            .into(),
                        ));
                    };
                    if !tool_use.input.is_empty() {
                        state.arguments(out, position, tool_use.input);
                    }
                } else if let Some(reasoning) = event.delta.reasoning_content {
                    // Reasoning goes to the extension members, never into `content`.
                    if let Some(text) = reasoning.text.filter(|t| !t.is_empty()) {
                        state.ensure_role(out);
                        state.chunks.reasoning(out, text);
                    }
                    if let Some(signature) = reasoning.signature.filter(|s| !s.is_empty()) {
                        state.ensure_role(out);
                        state.chunks.reasoning_signature(out, signature);
                    }
                    if let Some(data) = reasoning.redacted_content.filter(|d| !d.is_empty()) {
                        state.ensure_role(out);
                        state.chunks.redacted_reasoning(out, data);
                    }
                }
                // Citation, image and tool-result deltas have no place in a chunk.
            }
            EventType::ContentBlockStop => {
                let event = ContentBlockStopEvent::deserialize(&mut *payload).map_err(malformed)?;
                let index = event.content_block_index;
                state.on_small(SmallEvent::ContentBlockStop { index }, out);
            }
            EventType::MessageStop => {
                let event = MessageStopEvent::deserialize(&mut *payload).map_err(malformed)?;
                let stop_reason = event.stop_reason;
                state.on_small(SmallEvent::MessageStop { stop_reason }, out);
            }
            EventType::Metadata => {
                let event = MetadataEvent::deserialize(&mut *payload).map_err(malformed)?;
                if let Some(usage) = &event.usage {
                    state.usage = Some(Usage::from(usage));
                }
                if state.stopped {
                    state.done(out);
                }
            }
            EventType::Unknown => {}
        }
        Ok(())
    }

    /// One of the events read by [`small_event`] or the parser alike.
    fn on_small(&mut self, event: SmallEvent<'_>, out: &mut BytesMut) {
        match event {
            SmallEvent::MessageStart => {
                if !self.stopped {
                    self.ensure_role(out);
                }
            }
            SmallEvent::ContentBlockStop { index } => {
                if let Some(position) = self.tool_position(index)
                    && !self.stopped
                    && !self.tools[position].args_sent
                {
                    // A tool without arguments may stream no fragment at all; clients must
                    // still get a JSON object, not "".
                    self.arguments(out, position, "{}");
                }
            }
            SmallEvent::MessageStop { .. } if self.stopped => {}
            SmallEvent::MessageStop { stop_reason } => match finish_reason(stop_reason, self.calls > 0) {
                Ok(reason) => {
                    self.ensure_role(out);
                    self.chunks.finish(out, self.shape.call_finish_reason(reason));
                    self.stopped = true;
                }
                Err(code) => {
                    let err = Error::MalformedModelOutput(code);
                    self.error_record(out, &err.to_string(), err.openai_type(), None, err.code());
                }
            },
        }
    }

    fn ensure_role(&mut self, out: &mut BytesMut) {
        if !self.role_sent {
            self.role_sent = true;
            self.chunks.role(out);
        }
    }

    /// The entry of the tool-use block started at `block`.
    fn tool_position(&self, block: u32) -> Option<usize> {
        self.tools.iter().rposition(|t| t.block == block)
    }

    /// Sends a fragment of the input of tool-use block `position`, as its kind requires.
    fn arguments(&mut self, out: &mut BytesMut, position: usize, fragment: &str) {
        let Some(tool) = self.tools.get_mut(position) else {
            return;
        };
        tool.args_sent = true;
        match tool.kind {
            ToolBlockKind::Call(index) => self.chunks.tool_call_arguments(out, index, fragment),
            ToolBlockKind::Function => self.chunks.function_call_arguments(out, fragment),
            ToolBlockKind::Content => self.chunks.content(out, fragment),
            ToolBlockKind::Dropped => {}
        }
    }

    fn done(&mut self, out: &mut BytesMut) {
        if self.include_usage
            && let Some(usage) = &self.usage
        {
            self.chunks.usage(out, &usage.to_openai());
        }
        out.extend_from_slice(DONE_RECORD);
        self.finished = true;
    }

    /// Writes `data: {"error":{…}}\n\n` and finishes the stream. Error path only, so the
    /// temporary buffer is acceptable.
    fn error_record(
        &mut self,
        out: &mut BytesMut,
        message: &str,
        openai_type: &str,
        param: Option<&str>,
        code: Option<&str>,
    ) {
        let mut record = Vec::with_capacity(96 + message.len());
        record.extend_from_slice(b"data: ");
        write_error_object(&mut record, message, openai_type, param, code);
        record.extend_from_slice(b"\n\n");
        out.extend_from_slice(&record);
        self.finished = true;
        self.failed = true;
    }
}

#[cfg(test)]
mod tests;
