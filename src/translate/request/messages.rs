//! `messages` → `system` + Converse turns (reference: mapping §3): role mapping, merging of
//! consecutive same-role messages, tool calls and results, reasoning sent back, content parts
//! and cache markers, then the post-conversion checks of §3.4.

use std::borrow::Cow;

use super::media::{self, DocumentNames};
use super::tools::{is_tool_name, missing};
use super::{Context, Ignored};
use crate::bedrock::converse::{
    CachePoint, ContentBlock, ConversationRole, JsonValue, Message, ReasoningContent, ReasoningText,
    SystemContentBlock, ToolResult, ToolResultContent, ToolUse,
};
use crate::error::InvalidRequest;
use crate::openai::request::{
    CacheControl, ChatCompletionRequest, Content, ContentPart, Message as ChatMessage, Role,
};

/// The converted conversation.
#[derive(Debug, Default)]
pub(super) struct Converted<'a> {
    pub(super) system: Vec<SystemContentBlock<'a>>,
    pub(super) messages: Vec<Message<'a>>,
    pub(super) history: History<'a>,
}

/// What the conversation says about tools, for `toolConfig`.
#[derive(Debug, Default)]
pub(super) struct History<'a> {
    /// Some turn holds a `toolUse` or `toolResult` block, so Bedrock needs a `toolConfig`.
    pub(super) has_tool_blocks: bool,
    /// Names of the tools called in the history, in first-seen order.
    pub(super) tool_names: Vec<&'a str>,
}

/// A Bedrock turn being built, with the OpenAI message that opened it (for error paths).
#[derive(Debug)]
struct Turn<'a> {
    message: Message<'a>,
    first: usize,
    /// Where the next tool result goes: tool results (with their cache points) stay at the
    /// front of a user turn, as Claude requires, even when user text was merged in first.
    results_end: usize,
}

/// Where a `toolUse` came from.
#[derive(Debug)]
struct UseOrigin<'a> {
    turn: usize,
    id: Cow<'a, str>,
    message: usize,
    call: usize,
}

/// Where a `toolResult` came from.
#[derive(Debug)]
struct ResultOrigin<'a> {
    turn: usize,
    id: Cow<'a, str>,
    message: usize,
}

struct Builder<'a, 'c> {
    cx: &'c Context<'a>,
    ignored: &'c mut Ignored,
    system: Vec<SystemContentBlock<'a>>,
    turns: Vec<Turn<'a>>,
    uses: Vec<UseOrigin<'a>>,
    results: Vec<ResultOrigin<'a>>,
    tool_names: Vec<&'a str>,
    documents: DocumentNames,
    /// The id given to the last assistant `function_call`, until a `function` message answers it.
    pending_function: Option<Cow<'a, str>>,
}

/// Whether a text part carries anything: Bedrock rejects blank text (empty or whitespace
/// only) in any block, so such parts are left out like empty ones.
fn has_text(text: &str) -> bool {
    !text.trim().is_empty()
}

/// Converts `messages` (reference: mapping §3.2): system and developer text is hoisted into
/// `system`, empty and blank text is dropped, and consecutive same-role messages merge into
/// one turn, which satisfies Bedrock's alternation rule.
pub(super) fn convert<'a>(
    req: &'a ChatCompletionRequest<'a>,
    cx: &Context<'a>,
    ignored: &mut Ignored,
) -> Result<Converted<'a>, InvalidRequest> {
    let messages = &req.messages;
    if messages.is_empty() {
        return Err(InvalidRequest::invalid(
            "messages",
            "`messages` must contain at least one message",
        ));
    }
    let mut b = Builder {
        cx,
        ignored,
        system: Vec::new(),
        turns: Vec::with_capacity(messages.len()),
        uses: Vec::new(),
        results: Vec::new(),
        tool_names: Vec::new(),
        documents: DocumentNames::default(),
        pending_function: None,
    };
    for (i, m) in messages.iter().enumerate() {
        if m.name.is_some() && m.role != Role::Function {
            b.ignored.add("messages[].name");
        }
        match m.role {
            Role::System | Role::Developer => b.system_message(m, i)?,
            Role::User => b.user_message(m, i)?,
            Role::Assistant => b.assistant_message(m, i)?,
            Role::Tool => b.tool_message(m, i)?,
            Role::Function => b.function_message(m, i)?,
        }
    }
    b.check()?;
    let history = History {
        has_tool_blocks: !b.uses.is_empty() || !b.results.is_empty(),
        tool_names: b.tool_names,
    };
    Ok(Converted {
        system: b.system,
        messages: b.turns.into_iter().map(|t| t.message).collect(),
        history,
    })
}

// === impl Builder ===

impl<'a> Builder<'a, '_> {
    /// The turn to append to: the last one if it has `role`, else a new one.
    fn open_turn(&mut self, role: ConversationRole, first: usize) -> usize {
        if self.turns.last().is_none_or(|t| t.message.role != role) {
            self.turns.push(Turn {
                message: Message {
                    role,
                    content: Vec::new(),
                },
                first,
                results_end: 0,
            });
        }
        self.turns.len() - 1
    }

    fn push(&mut self, turn: usize, block: ContentBlock<'a>) {
        self.turns[turn].message.content.push(block);
    }

    /// Adds a cache point after the turn's last block (none when the turn is still empty).
    fn push_cache_point(&mut self, turn: usize, point: Option<CachePoint<'a>>) {
        let content = &mut self.turns[turn].message.content;
        if let Some(point) = point
            && content.last().is_some_and(|b| !b.is_cache_point())
        {
            content.push(ContentBlock::CachePoint(point));
        }
    }

    /// The cache point a `cache_control` marker asks for, if the model caches.
    fn cache_point(
        &mut self,
        marker: Option<&CacheControl<'a>>,
        param: impl FnOnce() -> String,
    ) -> Result<Option<CachePoint<'a>>, InvalidRequest> {
        let Some(marker) = marker else {
            return Ok(None);
        };
        if marker.kind != "ephemeral" {
            return Err(InvalidRequest::invalid(
                format!("{}.type", param()),
                format!(
                    "unknown cache_control type `{}`; expected `ephemeral`",
                    marker.kind
                ),
            ));
        }
        if let Some(ttl) = marker.ttl
            && !matches!(ttl, "5m" | "1h")
        {
            return Err(InvalidRequest::invalid(
                format!("{}.ttl", param()),
                format!("unsupported cache_control ttl `{ttl}`; expected `5m` or `1h`"),
            ));
        }
        if !self.cx.model.supports_prompt_caching {
            self.ignored.add("cache_control");
            return Ok(None);
        }
        Ok(Some(CachePoint::new(marker.ttl)))
    }

    /// `prompt_cache_breakpoint` on a part: a cache point with the default time to live.
    fn breakpoint(&mut self, part: &ContentPart<'a>) -> Option<CachePoint<'a>> {
        part.prompt_cache_breakpoint?;
        if self.cx.model.supports_prompt_caching {
            Some(CachePoint::new(None))
        } else {
            self.ignored.add("prompt_cache_breakpoint");
            None
        }
    }

    fn system_message(&mut self, m: &'a ChatMessage<'a>, i: usize) -> Result<(), InvalidRequest> {
        let content = m.content.as_ref().ok_or_else(|| missing_content(i))?;
        match content {
            Content::Text(text) => {
                if has_text(text) {
                    self.system.push(SystemContentBlock::Text(text));
                }
            }
            Content::Parts(parts) => {
                for (j, part) in parts.iter().enumerate() {
                    let text = part_text(part, i, j, m.role)?;
                    if has_text(text) {
                        self.system.push(SystemContentBlock::Text(text));
                    }
                    let point = self.cache_point(part.cache_control.as_ref(), || {
                        format!("messages[{i}].content[{j}].cache_control")
                    })?;
                    let point = point.or_else(|| self.breakpoint(part));
                    self.push_system_cache_point(point);
                }
            }
        }
        let point = self.cache_point(m.cache_control.as_ref(), || {
            format!("messages[{i}].cache_control")
        })?;
        self.push_system_cache_point(point);
        Ok(())
    }

    fn push_system_cache_point(&mut self, point: Option<CachePoint<'a>>) {
        if let Some(point) = point
            && self
                .system
                .last()
                .is_some_and(|b| !matches!(b, SystemContentBlock::CachePoint(_)))
        {
            self.system.push(SystemContentBlock::CachePoint(point));
        }
    }

    fn user_message(&mut self, m: &'a ChatMessage<'a>, i: usize) -> Result<(), InvalidRequest> {
        let content = m.content.as_ref().ok_or_else(|| missing_content(i))?;
        let turn = self.open_turn(ConversationRole::User, i);
        match content {
            Content::Text(text) => {
                if has_text(text) {
                    self.push(turn, ContentBlock::Text(text));
                }
            }
            Content::Parts(parts) => {
                for (j, part) in parts.iter().enumerate() {
                    if let Some(block) = self.user_part(part, i, j)? {
                        self.push(turn, block);
                    }
                    let point = self.cache_point(part.cache_control.as_ref(), || {
                        format!("messages[{i}].content[{j}].cache_control")
                    })?;
                    let point = point.or_else(|| self.breakpoint(part));
                    self.push_cache_point(turn, point);
                }
            }
        }
        let point = self.cache_point(m.cache_control.as_ref(), || {
            format!("messages[{i}].cache_control")
        })?;
        self.push_cache_point(turn, point);
        Ok(())
    }

    fn user_part(
        &mut self,
        part: &'a ContentPart<'a>,
        i: usize,
        j: usize,
    ) -> Result<Option<ContentBlock<'a>>, InvalidRequest> {
        let param = |member: &str| format!("messages[{i}].content[{j}].{member}");
        match part.kind {
            "text" => {
                let text = part.text.ok_or_else(|| missing(param("text")))?;
                Ok(has_text(text).then_some(ContentBlock::Text(text)))
            }
            "image_url" => {
                let image = part.image_url.ok_or_else(|| missing(param("image_url")))?;
                if image.detail.is_some() {
                    self.ignored.add("image_url.detail");
                }
                media::image(image.url, self.cx.images, || param("image_url.url")).map(Some)
            }
            "input_audio" => {
                if !self.cx.model.supports_audio_input {
                    return Err(InvalidRequest::unsupported_value(
                        param("type"),
                        "`input_audio` content parts are not supported by this model",
                    ));
                }
                let audio = part.input_audio.ok_or_else(|| missing(param("input_audio")))?;
                media::audio(&audio, |member| param(&format!("input_audio.{member}"))).map(Some)
            }
            "file" => {
                let file = part.file.ok_or_else(|| missing(param("file")))?;
                media::document(&file, &mut self.documents, |member| {
                    param(&format!("file.{member}"))
                })
                .map(Some)
            }
            "refusal" => Err(InvalidRequest::invalid(
                param("type"),
                "`refusal` content parts are not allowed in user messages",
            )),
            other => Err(InvalidRequest::invalid(
                param("type"),
                format!("unknown content part type `{other}`"),
            )),
        }
    }

    fn assistant_message(&mut self, m: &'a ChatMessage<'a>, i: usize) -> Result<(), InvalidRequest> {
        if m.audio.is_some() {
            return Err(InvalidRequest::unsupported_parameter(
                format!("messages[{i}].audio"),
                "audio is not supported",
            ));
        }
        // Blocks go into the turn as they are made; an assistant message that adds none (content
        // "" and no tool calls) leaves no trace, and its neighbours merge.
        let mut blocks: Vec<ContentBlock<'a>> = Vec::new();
        let mut calls: Vec<(Cow<'a, str>, usize)> = Vec::new();
        match (m.reasoning_content, m.reasoning_signature) {
            (Some(text), Some(signature)) if !text.is_empty() => {
                blocks.push(ContentBlock::ReasoningContent(ReasoningContent::ReasoningText(
                    ReasoningText {
                        text,
                        signature: Some(signature),
                    },
                )));
            }
            // Unsigned reasoning cannot be verified by the provider and would be rejected.
            (Some(text), _) if !text.is_empty() => self.ignored.add("messages[].reasoning_content"),
            (None | Some(_), Some(_)) => self.ignored.add("messages[].reasoning_signature"),
            _ => {}
        }
        for redacted in m.redacted_reasoning.iter().flatten() {
            if !redacted.is_empty() {
                blocks.push(ContentBlock::ReasoningContent(ReasoningContent::RedactedContent(
                    redacted,
                )));
            }
        }
        let mut points: Vec<(usize, CachePoint<'a>)> = Vec::new();
        if let Some(content) = &m.content {
            match content {
                Content::Text(text) => {
                    if has_text(text) {
                        blocks.push(ContentBlock::Text(text));
                    }
                }
                Content::Parts(parts) => {
                    for (j, part) in parts.iter().enumerate() {
                        let text = part_text(part, i, j, m.role)?;
                        if has_text(text) {
                            blocks.push(ContentBlock::Text(text));
                        }
                        let point = self.cache_point(part.cache_control.as_ref(), || {
                            format!("messages[{i}].content[{j}].cache_control")
                        })?;
                        if let Some(point) = point.or_else(|| self.breakpoint(part)) {
                            points.push((blocks.len(), point));
                        }
                    }
                }
            }
        }
        for (j, call) in m.tool_calls.iter().flatten().enumerate() {
            let param = |member: &str| format!("messages[{i}].tool_calls[{j}].{member}");
            match call.kind {
                None | Some("function") => {}
                Some("custom") => {
                    return Err(InvalidRequest::unsupported_value(
                        param("type"),
                        "custom tool calls are not supported through Bedrock; use `function` tools",
                    ));
                }
                Some(other) => {
                    return Err(InvalidRequest::invalid(
                        param("type"),
                        format!("unknown tool call type `{other}`; expected `function`"),
                    ));
                }
            }
            let function = call.function.ok_or_else(|| missing(param("function")))?;
            if !is_tool_name(function.name) {
                return Err(InvalidRequest::invalid(
                    param("function.name"),
                    "tool names must be 1 to 64 characters of a-z, A-Z, 0-9, `_` and `-`",
                ));
            }
            if call.id.is_empty() {
                return Err(InvalidRequest::invalid(
                    param("id"),
                    "tool call ids must not be empty",
                ));
            }
            let input = parse_arguments(function.arguments).map_err(|why| {
                InvalidRequest::invalid(param("function.arguments"), format!("`arguments` {why}"))
            })?;
            let id = tool_use_id(call.id);
            calls.push((id.clone(), j));
            self.note_tool_name(function.name);
            blocks.push(ContentBlock::ToolUse(ToolUse {
                tool_use_id: id,
                name: function.name,
                input,
            }));
        }
        if let Some(function) = m.function_call {
            if m.tool_calls.as_ref().is_some_and(|c| !c.is_empty()) {
                return Err(InvalidRequest::invalid(
                    format!("messages[{i}].function_call"),
                    "send either `tool_calls` or the deprecated `function_call`, not both",
                ));
            }
            let param = |member: &str| format!("messages[{i}].function_call.{member}");
            if !is_tool_name(function.name) {
                return Err(InvalidRequest::invalid(
                    param("name"),
                    "function names must be 1 to 64 characters of a-z, A-Z, 0-9, `_` and `-`",
                ));
            }
            let input = parse_arguments(function.arguments)
                .map_err(|why| InvalidRequest::invalid(param("arguments"), format!("`arguments` {why}")))?;
            // The deprecated form has no call ids; the call and its `function` answer share one
            // derived from the message position.
            let id: Cow<'a, str> = Cow::Owned(format!("call_function_{i}"));
            calls.push((id.clone(), 0));
            self.pending_function = Some(id.clone());
            self.note_tool_name(function.name);
            blocks.push(ContentBlock::ToolUse(ToolUse {
                tool_use_id: id,
                name: function.name,
                input,
            }));
        }
        let message_point = self.cache_point(m.cache_control.as_ref(), || {
            format!("messages[{i}].cache_control")
        })?;
        if blocks.is_empty() {
            return Ok(());
        }
        let turn = self.open_turn(ConversationRole::Assistant, i);
        let mut points = points.into_iter().peekable();
        for (n, block) in blocks.into_iter().enumerate() {
            while let Some((_, point)) = points.next_if(|(at, _)| *at == n) {
                self.push_cache_point(turn, Some(point));
            }
            self.push(turn, block);
        }
        for (_, point) in points {
            self.push_cache_point(turn, Some(point));
        }
        self.push_cache_point(turn, message_point);
        for (id, call) in calls {
            self.uses.push(UseOrigin {
                turn,
                id,
                message: i,
                call,
            });
        }
        Ok(())
    }

    fn tool_message(&mut self, m: &'a ChatMessage<'a>, i: usize) -> Result<(), InvalidRequest> {
        let id = m
            .tool_call_id
            .ok_or_else(|| missing(format!("messages[{i}].tool_call_id")))?;
        if id.is_empty() {
            return Err(InvalidRequest::invalid(
                format!("messages[{i}].tool_call_id"),
                "`tool_call_id` must not be empty",
            ));
        }
        let content = m.content.as_ref().ok_or_else(|| missing_content(i))?;
        let mut texts = Vec::new();
        let mut points = Vec::new();
        match content {
            Content::Text(text) => {
                if has_text(text) {
                    texts.push(ToolResultContent::Text(text));
                }
            }
            Content::Parts(parts) => {
                for (j, part) in parts.iter().enumerate() {
                    let text = part_text(part, i, j, m.role)?;
                    if has_text(text) {
                        texts.push(ToolResultContent::Text(text));
                    }
                    let point = self.cache_point(part.cache_control.as_ref(), || {
                        format!("messages[{i}].content[{j}].cache_control")
                    })?;
                    points.extend(point.or_else(|| self.breakpoint(part)));
                }
            }
        }
        points.extend(self.cache_point(m.cache_control.as_ref(), || {
            format!("messages[{i}].cache_control")
        })?);
        self.push_result(i, tool_use_id(id), texts, points.first().copied());
        Ok(())
    }

    fn function_message(&mut self, m: &'a ChatMessage<'a>, i: usize) -> Result<(), InvalidRequest> {
        if m.name.is_none() {
            return Err(missing(format!("messages[{i}].name")));
        }
        let id = self.pending_function.take().ok_or_else(|| {
            InvalidRequest::invalid(
                format!("messages[{i}].role"),
                "a `function` message must answer the `function_call` of the assistant message before it",
            )
        })?;
        let mut texts = Vec::new();
        match &m.content {
            Some(Content::Text(text)) if has_text(text) => texts.push(ToolResultContent::Text(text)),
            None | Some(Content::Text(_)) => {}
            Some(Content::Parts(parts)) => {
                for (j, part) in parts.iter().enumerate() {
                    let text = part_text(part, i, j, m.role)?;
                    if has_text(text) {
                        texts.push(ToolResultContent::Text(text));
                    }
                }
            }
        }
        self.push_result(i, id, texts, None);
        Ok(())
    }

    /// Puts a tool result at the front of the current user turn, after the results already
    /// there.
    fn push_result(
        &mut self,
        i: usize,
        id: Cow<'a, str>,
        content: Vec<ToolResultContent<'a>>,
        point: Option<CachePoint<'a>>,
    ) {
        let turn = self.open_turn(ConversationRole::User, i);
        self.results.push(ResultOrigin {
            turn,
            id: id.clone(),
            message: i,
        });
        let t = &mut self.turns[turn];
        let at = t.results_end.min(t.message.content.len());
        t.message.content.insert(
            at,
            ContentBlock::ToolResult(ToolResult {
                tool_use_id: id,
                content,
            }),
        );
        t.results_end = at + 1;
        if let Some(point) = point {
            t.message.content.insert(at + 1, ContentBlock::CachePoint(point));
            t.results_end = at + 2;
        }
    }

    fn note_tool_name(&mut self, name: &'a str) {
        if !self.tool_names.contains(&name) {
            self.tool_names.push(name);
        }
    }

    /// The post-conversion checks of mapping §3.4, each a clear 400 instead of Bedrock's.
    fn check(&self) -> Result<(), InvalidRequest> {
        match self.turns.first() {
            Some(t) if t.message.role == ConversationRole::User => {}
            _ => {
                return Err(InvalidRequest::invalid(
                    "messages",
                    "conversation must start with a user message",
                ));
            }
        }
        if let Some(empty) = self.turns.iter().find(|t| t.message.content.is_empty()) {
            return Err(InvalidRequest::invalid(
                format!("messages[{}].content", empty.first),
                "message content must not be empty or only whitespace",
            ));
        }
        for (n, u) in self.uses.iter().enumerate() {
            if self.uses[..n].iter().any(|o| o.turn == u.turn && o.id == u.id) {
                return Err(InvalidRequest::invalid(
                    format!("messages[{}].tool_calls[{}].id", u.message, u.call),
                    format!("tool call id `{}` is used twice in one assistant turn", u.id),
                ));
            }
            let answered = self.results.iter().any(|r| r.turn == u.turn + 1 && r.id == u.id);
            if !answered {
                return Err(InvalidRequest::invalid(
                    format!("messages[{}].tool_calls[{}].id", u.message, u.call),
                    format!(
                        "tool call `{}` has no result: answer every tool call with a `tool` message right after the assistant message",
                        u.id
                    ),
                ));
            }
        }
        for (n, r) in self.results.iter().enumerate() {
            let called = r.turn > 0 && self.uses.iter().any(|u| u.turn + 1 == r.turn && u.id == r.id);
            if !called {
                return Err(InvalidRequest::invalid(
                    format!("messages[{}].tool_call_id", r.message),
                    format!(
                        "`tool_call_id` `{}` does not answer a tool call of the assistant message before it",
                        r.id
                    ),
                ));
            }
            if self.results[..n].iter().any(|o| o.turn == r.turn && o.id == r.id) {
                return Err(InvalidRequest::invalid(
                    format!("messages[{}].tool_call_id", r.message),
                    format!("tool call `{}` is answered twice", r.id),
                ));
            }
        }
        Ok(())
    }
}

fn missing_content(i: usize) -> InvalidRequest {
    missing(format!("messages[{i}].content"))
}

/// The text of a part of a system, developer, assistant, tool or function message, checking
/// that its type is one the role may carry.
fn part_text<'a>(part: &ContentPart<'a>, i: usize, j: usize, role: Role) -> Result<&'a str, InvalidRequest> {
    let param = |member: &str| format!("messages[{i}].content[{j}].{member}");
    match (part.kind, role) {
        ("text", _) => part.text.ok_or_else(|| missing(param("text"))),
        ("refusal", Role::Assistant) => part.refusal.ok_or_else(|| missing(param("refusal"))),
        (kind @ ("image_url" | "input_audio" | "file" | "refusal"), role) => Err(InvalidRequest::invalid(
            param("type"),
            format!(
                "`{kind}` content parts are not allowed in {} messages",
                role.as_str()
            ),
        )),
        (other, _) => Err(InvalidRequest::invalid(
            param("type"),
            format!("unknown content part type `{other}`"),
        )),
    }
}

/// Parses tool-call arguments (reference: mapping §3.2 `parse_arguments`): blank means `{}`;
/// anything else must be a JSON object. The error text completes "`arguments` …".
pub(super) fn parse_arguments(text: &str) -> Result<JsonValue<'static>, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Ok(JsonValue::empty_object());
    }
    let mut scratch = trimmed.as_bytes().to_vec();
    let value: JsonValue<'_> = simd_json::serde::from_slice(&mut scratch)
        .map_err(|e| format!("is not valid JSON ({e}); send the arguments as a JSON object in a string"))?;
    if !value.is_object() {
        return Err("must be a JSON object".to_owned());
    }
    Ok(value.into_owned())
}

/// `[a-zA-Z0-9_.:-]{1,64}`: what Bedrock accepts as a tool-use id.
fn is_tool_use_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

/// Maps a client tool-call id to one Bedrock accepts (reference: mapping §3.2 `map_id`): ids
/// that already comply (OpenAI's `call_…`, Bedrock's `tooluse_…`) pass unchanged; others get
/// a deterministic digest, so a call and its result still match.
pub(super) fn tool_use_id(id: &str) -> Cow<'_, str> {
    if is_tool_use_id(id) {
        return Cow::Borrowed(id);
    }
    // Two FNV-1a passes with different offsets: deterministic and well spread. Not a security
    // boundary: a collision only confuses the client's own conversation.
    let hash = |offset: u64| {
        id.bytes().fold(offset, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    };
    Cow::Owned(format!(
        "t_{:016x}{:016x}",
        hash(0xcbf2_9ce4_8422_2325),
        hash(0x6c62_272e_07bb_0142)
    ))
}
