//! Validates a Converse request body like Bedrock's runtime does and reads the `mock:`
//! directives of its last user message into a [`Script`] (the language is documented on the
//! parent module).

use std::borrow::Cow;
use std::time::Duration;

use http::StatusCode;
use simd_json::BorrowedValue;
use simd_json::prelude::*;

/// Largest `mock:frames=` count.
const MAX_FRAMES: u32 = 1_000_000;
/// Largest `mock:delay_ms=` / `mock:stall_ms=` / `mock:linger_ms=`.
const MAX_WAIT_MS: u64 = 10 * 60 * 1000;
/// The reply when no text is scripted.
const DEFAULT_TEXT: &str = "Hello from the mock Bedrock runtime.";
/// The signature the mock puts on its reasoning, and the only one it accepts back.
pub(super) const MOCK_SIGNATURE: &str = "bW9jay1yZWFzb25pbmctc2lnbmF0dXJl";

/// A request body Bedrock would reject: always `ValidationException` (400).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Invalid(pub(super) Cow<'static, str>);

/// An HTTP error the script asks for before any body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct HttpError {
    pub(super) status: StatusCode,
    pub(super) name: &'static str,
}

/// The text block of the reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum TextPlan {
    /// These deltas, in order.
    Deltas(Vec<String>),
    /// `tok0 `, `tok1 `, … generated on demand.
    Numbered(u32),
    /// No text block at all.
    None,
}

impl TextPlan {
    pub(super) fn len(&self) -> usize {
        match self {
            Self::Deltas(d) => d.len(),
            Self::Numbered(n) => *n as usize,
            Self::None => 0,
        }
    }

    /// Delta `i` (`i < len()`).
    pub(super) fn delta(&self, i: usize) -> Cow<'_, str> {
        match self {
            Self::Deltas(d) => d.get(i).map_or(Cow::Borrowed(""), |s| Cow::Borrowed(s.as_str())),
            Self::Numbered(_) => Cow::Owned(format!("tok{i} ")),
            Self::None => Cow::Borrowed(""),
        }
    }

    /// The whole text.
    pub(super) fn full(&self) -> String {
        (0..self.len()).map(|i| self.delta(i)).collect()
    }
}

/// One scripted tool call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Tool {
    pub(super) name: String,
    /// Compact JSON object text, as given.
    pub(super) input: String,
}

impl Tool {
    /// The input split into the fragments a stream sends: none for `{}`, otherwise two or
    /// three pieces cut at arbitrary places (inside strings and numbers too).
    pub(super) fn fragments(&self) -> Vec<&str> {
        let s = self.input.as_str();
        if s == "{}" {
            return Vec::new();
        }
        let cut = |at: usize| (at..=s.len()).find(|&i| s.is_char_boundary(i)).unwrap_or(s.len());
        let (a, b) = (cut(s.len() / 3), cut(s.len() * 2 / 3));
        [&s[..a], &s[a..b], &s[b..]]
            .into_iter()
            .filter(|f| !f.is_empty())
            .collect()
    }
}

/// Token counts for the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Usage {
    pub(super) input: u64,
    pub(super) output: u64,
    pub(super) cache_read: u64,
    pub(super) cache_write: u64,
}

impl Usage {
    pub(super) fn total(&self) -> u64 {
        self.input + self.output + self.cache_read + self.cache_write
    }
}

/// What the mock does for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Script {
    /// Reasoning text deltas (a signed reasoning block before everything else).
    pub(super) reasoning: Vec<String>,
    /// An encrypted reasoning block (base64), after the reasoning text.
    pub(super) redacted: Option<String>,
    pub(super) text: TextPlan,
    pub(super) tools: Vec<Tool>,
    pub(super) stop_reason: String,
    pub(super) usage: Usage,
    pub(super) delay: Duration,
    pub(super) stall: Duration,
    /// Stream: how long the body stays open after the last event.
    pub(super) linger: Duration,
    pub(super) status: Option<HttpError>,
    pub(super) first_exception: Option<String>,
    pub(super) mid_exception: Option<String>,
    pub(super) truncate: bool,
    pub(super) bad_crc: bool,
    pub(super) reset: bool,
}

impl Script {
    /// Number of `contentBlockDelta` events the stream carries.
    pub(super) fn delta_count(&self) -> usize {
        self.reasoning_blocks()
            + self.reasoning.len()
            + self.text.len()
            + self.tools.iter().map(|t| t.fragments().len()).sum::<usize>()
    }

    /// Reasoning blocks before the text: the signed one and the redacted one.
    pub(super) fn reasoning_blocks(&self) -> usize {
        usize::from(!self.reasoning.is_empty()) + usize::from(self.redacted.is_some())
    }

    /// Content block index of the text block.
    pub(super) fn text_index(&self) -> usize {
        self.reasoning_blocks()
    }

    /// Content block index of the first tool.
    pub(super) fn first_tool_index(&self) -> usize {
        self.reasoning_blocks() + usize::from(self.text.len() > 0)
    }
}

/// Validates `body` as a Converse request and builds its script.
pub(super) fn parse(body: &[u8]) -> Result<Script, Invalid> {
    let mut scratch = body.to_vec();
    let value = simd_json::to_borrowed_value(&mut scratch).map_err(|_| {
        Invalid(
            "Malformed input request: the body is not valid JSON, please reformat your input and try again."
                .into(),
        )
    })?;
    if !value.is_object() {
        return Err(Invalid(
            "Malformed input request: expected a JSON object, please reformat your input and try again."
                .into(),
        ));
    }
    let messages = value
        .get("messages")
        .and_then(|m| m.as_array())
        .filter(|m| !m.is_empty())
        .ok_or_else(|| {
            Invalid(
                "A conversation must start with a user message. Try again with a conversation that starts \
                 with a user message."
                    .into(),
            )
        })?;

    let mut has_tool_blocks = false;
    let mut user_words = 0u64;
    let mut last_user_text = String::new();
    let mut previous_role: Option<&str> = None;
    for (i, message) in messages.iter().enumerate() {
        let role = message.get("role").and_then(|r| r.as_str()).unwrap_or_default();
        if role != "user" && role != "assistant" {
            return Err(Invalid(
                format!(
                    "1 validation error detected: Value '{role}' at 'messages.{}.member.role' failed to satisfy \
                     constraint: Member must satisfy enum value set: [user, assistant]",
                    i + 1
                )
                .into(),
            ));
        }
        match previous_role {
            None if role != "user" => {
                return Err(Invalid(
                    "A conversation must start with a user message. Try again with a conversation that \
                     starts with a user message."
                        .into(),
                ));
            }
            Some(previous) if previous == role => {
                return Err(Invalid(
                    "A conversation must alternate between user and assistant roles. Make sure the \
                     conversation alternates between user and assistant roles and try again."
                        .into(),
                ));
            }
            _ => {}
        }
        previous_role = Some(role);
        let content = message
            .get("content")
            .and_then(|c| c.as_array())
            .filter(|c| !c.is_empty());
        let Some(content) = content else {
            return Err(Invalid(
                format!(
                    "The content field in the Message object at messages.{i} is empty. Add a ContentBlock \
                     object to the content field and try again."
                )
                .into(),
            ));
        };
        if role == "user" {
            last_user_text.clear();
        }
        for (j, block) in content.iter().enumerate() {
            if !block.is_object() {
                return Err(Invalid(
                    format!("Malformed input request: messages.{i}.content.{j} must be an object.").into(),
                ));
            }
            if block.contains_key("toolUse") || block.contains_key("toolResult") {
                has_tool_blocks = true;
            }
            check_block(block, i, j, role)?;
            if role == "user"
                && let Some(result) = block.get("toolResult")
            {
                // Directives may also come back inside a tool result, so a tool loop can
                // script the model's answer.
                for text in result
                    .get("content")
                    .and_then(|c| c.as_array())
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c.get("text").and_then(|t| t.as_str()))
                {
                    last_user_text.push_str(text);
                    last_user_text.push(' ');
                }
            }
            if let Some(text) = block.get("text") {
                let text = text.as_str().unwrap_or_default();
                if text.trim().is_empty() {
                    return Err(Invalid(
                        format!(
                            "The text field in the ContentBlock object at messages.{i}.content.{j} is blank. \
                             Add text to the text field, and try again."
                        )
                        .into(),
                    ));
                }
                if role == "user" {
                    user_words += text.split_whitespace().count() as u64;
                    last_user_text.push_str(text);
                    last_user_text.push(' ');
                }
            }
        }
    }
    if has_tool_blocks && value.get("toolConfig").is_none() {
        return Err(Invalid(
            "The toolConfig field must be defined when using toolUse and toolResult content blocks.".into(),
        ));
    }
    check_tool_pairing(messages)?;
    if let Some(config) = value.get("toolConfig") {
        check_tool_config(config)?;
    }
    if let Some(config) = value.get("inferenceConfig") {
        check_range(config, "temperature", 0.0, 1.0)?;
        check_range(config, "topP", 0.0, 1.0)?;
        if let Some(max) = config.get("maxTokens")
            && max.as_u64().is_none_or(|m| m < 1)
        {
            return Err(Invalid(
                "1 validation error detected: Value at 'inferenceConfig.maxTokens' failed to satisfy \
                 constraint: Member must have value greater than or equal to 1"
                    .into(),
            ));
        }
    }
    // A forced tool choice makes Claude answer with tool calls only, no text before them.
    let forced = value
        .get("toolConfig")
        .and_then(|c| c.get("toolChoice"))
        .is_some_and(|c| c.contains_key("any") || c.contains_key("tool"));
    directives(&last_user_text, user_words.max(1), forced)
}

/// Bedrock's (and Claude's) rules for the blocks the gateway produces.
fn check_block(block: &BorrowedValue<'_>, i: usize, j: usize, role: &str) -> Result<(), Invalid> {
    let at = |what: &str| format!("messages.{i}.content.{j}.{what}");
    if let Some(image) = block.get("image") {
        let format = image.get("format").and_then(|f| f.as_str()).unwrap_or_default();
        if !matches!(format, "png" | "jpeg" | "gif" | "webp") {
            return Err(Invalid(
                format!("1 validation error detected: Value '{format}' at '{}' failed to satisfy constraint: Member must satisfy enum value set: [png, jpeg, gif, webp]", at("image.format")).into(),
            ));
        }
        check_base64(
            image.get("source").and_then(|s| s.get("bytes")),
            &at("image.source.bytes"),
        )?;
    }
    if let Some(document) = block.get("document") {
        let name = document.get("name").and_then(|n| n.as_str()).unwrap_or_default();
        let valid = (1..=200).contains(&name.len())
            && !name.contains("  ")
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '-' | '(' | ')' | '[' | ']'));
        if !valid {
            return Err(Invalid(
                "The document file name can only contain alphanumeric characters, whitespace characters, hyphens, parentheses, and square brackets. The name can't contain more than one consecutive whitespace character. Try again with a valid document file name.".into(),
            ));
        }
        check_base64(
            document.get("source").and_then(|s| s.get("bytes")),
            &at("document.source.bytes"),
        )?;
    }
    if let Some(tool_use) = block.get("toolUse") {
        if role != "assistant" {
            return Err(Invalid(
                format!(
                    "{}: toolUse blocks are only allowed in assistant messages.",
                    at("toolUse")
                )
                .into(),
            ));
        }
        let id = tool_use
            .get("toolUseId")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        if !is_tool_use_id(id) {
            return Err(Invalid(
                format!("1 validation error detected: Value '{id}' at '{}' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.:-]+", at("toolUse.toolUseId")).into(),
            ));
        }
        if !tool_use.get("input").is_some_and(|v| v.is_object()) {
            return Err(Invalid(
                format!("{}: the tool input must be a JSON object.", at("toolUse.input")).into(),
            ));
        }
    }
    if block.get("toolResult").is_some() && role != "user" {
        return Err(Invalid(
            format!(
                "{}: toolResult blocks are only allowed in user messages.",
                at("toolResult")
            )
            .into(),
        ));
    }
    if let Some(reasoning) = block.get("reasoningContent") {
        if role != "assistant" {
            return Err(Invalid(
                format!(
                    "{}: reasoning is only allowed in assistant messages.",
                    at("reasoningContent")
                )
                .into(),
            ));
        }
        // The provider verifies the signature of reasoning sent back, as Claude does.
        if let Some(text) = reasoning.get("reasoningText")
            && text.get("signature").and_then(|s| s.as_str()) != Some(MOCK_SIGNATURE)
        {
            return Err(Invalid(
                format!("messages.{i}.content.{j}: Invalid `signature` in `thinking` block").into(),
            ));
        }
    }
    if let Some(point) = block.get("cachePoint")
        && point.get("type").and_then(|t| t.as_str()) != Some("default")
    {
        return Err(Invalid(
            format!("{}: the cache point type must be default.", at("cachePoint")).into(),
        ));
    }
    Ok(())
}

fn check_base64(value: Option<&BorrowedValue<'_>>, at: &str) -> Result<(), Invalid> {
    let text = value.and_then(|v| v.as_str()).unwrap_or_default();
    let body = text.trim_end_matches('=');
    let valid = !body.is_empty()
        && text.len().is_multiple_of(4)
        && text.len() - body.len() <= 2
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
    if valid {
        Ok(())
    } else {
        Err(Invalid(
            format!("Malformed input request: {at} is not valid base64.").into(),
        ))
    }
}

fn is_tool_use_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

/// Every `toolUse` answered by a `toolResult` at the start of the next turn, and every
/// `toolResult` answering one of the turn before (Claude's rule).
fn check_tool_pairing(messages: &[BorrowedValue<'_>]) -> Result<(), Invalid> {
    let ids = |m: &BorrowedValue<'_>, key: &str| -> Vec<String> {
        m.get("content")
            .and_then(|c| c.as_array())
            .into_iter()
            .flatten()
            .filter_map(|b| b.get(key))
            .filter_map(|b| b.get("toolUseId").and_then(|v| v.as_str()))
            .map(str::to_owned)
            .collect()
    };
    for (i, message) in messages.iter().enumerate() {
        let results = ids(message, "toolResult");
        let previous_uses = i
            .checked_sub(1)
            .map(|p| ids(&messages[p], "toolUse"))
            .unwrap_or_default();
        if let Some(orphan) = results.iter().find(|r| !previous_uses.contains(r)) {
            return Err(Invalid(
                format!("messages.{i}: the toolResult with toolUseId {orphan} has no toolUse block in the previous message.").into(),
            ));
        }
        let uses = ids(message, "toolUse");
        let next_results = messages
            .get(i + 1)
            .map(|n| ids(n, "toolResult"))
            .unwrap_or_default();
        if let Some(unanswered) = uses.iter().find(|u| !next_results.contains(u)) {
            return Err(Invalid(
                format!("messages.{}: Expected toolResult blocks for the toolUse ids {unanswered} of the previous message.", i + 1).into(),
            ));
        }
        let content = message.get("content").and_then(|c| c.as_array());
        if let Some(blocks) = content {
            let first_other = blocks
                .as_slice()
                .iter()
                .position(|b| !b.contains_key("toolResult") && !b.contains_key("cachePoint"));
            let last_result = blocks
                .as_slice()
                .iter()
                .rposition(|b| b.contains_key("toolResult"));
            if let (Some(other), Some(result)) = (first_other, last_result)
                && other < result
            {
                return Err(Invalid(
                    format!("messages.{i}: toolResult blocks must come before any other content.").into(),
                ));
            }
        }
    }
    Ok(())
}

/// `toolConfig`: at least one tool, valid names, and a named choice that exists.
fn check_tool_config(config: &BorrowedValue<'_>) -> Result<(), Invalid> {
    let tools = config
        .get("tools")
        .and_then(|t| t.as_array())
        .map(Vec::as_slice)
        .unwrap_or_default();
    let names: Vec<&str> = tools
        .iter()
        .filter_map(|t| t.get("toolSpec"))
        .filter_map(|s| s.get("name").and_then(|n| n.as_str()))
        .collect();
    if names.is_empty() {
        return Err(Invalid(
            "1 validation error detected: Value at 'toolConfig.tools' failed to satisfy constraint: Member must have length greater than or equal to 1".into(),
        ));
    }
    for (n, name) in names.iter().enumerate() {
        let valid = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid || names[..n].contains(name) {
            return Err(Invalid(
                format!("The tool name {name} is invalid or not unique.").into(),
            ));
        }
    }
    if let Some(named) = config
        .get("toolChoice")
        .and_then(|c| c.get("tool"))
        .and_then(|t| t.get("name"))
        .and_then(|n| n.as_str())
        && !names.contains(&named)
    {
        return Err(Invalid(
            format!("The tool {named} in toolChoice is not in toolConfig.tools.").into(),
        ));
    }
    Ok(())
}

fn check_range(config: &BorrowedValue<'_>, field: &str, min: f64, max: f64) -> Result<(), Invalid> {
    let Some(value) = config.get(field) else {
        return Ok(());
    };
    match value.cast_f64() {
        Some(v) if (min..=max).contains(&v) => Ok(()),
        Some(v) => Err(Invalid(
            format!(
                "1 validation error detected: Value '{v}' at 'inferenceConfig.{field}' failed to satisfy \
                 constraint: Member must have value {}",
                if v < min {
                    format!("greater than or equal to {min}")
                } else {
                    format!("less than or equal to {max}")
                }
            )
            .into(),
        )),
        None => Err(Invalid(
            format!("Malformed input request: inferenceConfig.{field} must be a number.").into(),
        )),
    }
}

/// Reads the `mock:` tokens of `text`; `user_words` is the default input token count.
fn directives<'t>(text: &'t str, user_words: u64, forced_tool: bool) -> Result<Script, Invalid> {
    let mut words: Vec<String> = Vec::new();
    let mut reasoning: Vec<String> = Vec::new();
    let mut frames: Option<u32> = None;
    let mut no_text = false;
    let mut tools = Vec::new();
    let mut stop = None;
    let mut usage = None;
    let mut script = Script {
        reasoning: Vec::new(),
        redacted: None,
        text: TextPlan::None,
        tools: Vec::new(),
        stop_reason: String::new(),
        usage: Usage {
            input: user_words,
            output: 0,
            cache_read: 0,
            cache_write: 0,
        },
        delay: Duration::ZERO,
        stall: Duration::ZERO,
        linger: Duration::ZERO,
        status: None,
        first_exception: None,
        mid_exception: None,
        truncate: false,
        bad_crc: false,
        reset: false,
    };
    for token in text.split_whitespace() {
        let Some(directive) = token.strip_prefix("mock:") else {
            continue;
        };
        let bad = |why: &str| Invalid(format!("invalid mock directive `{token}`: {why}").into());
        let (key, value) = match directive.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (directive, None),
        };
        let need = |v: Option<&'t str>| {
            v.filter(|v| !v.is_empty())
                .ok_or_else(|| bad("a value is required"))
        };
        match (key, value) {
            ("text", v) => words.push(need(v)?.replace('_', " ")),
            ("reasoning", v) => reasoning.push(need(v)?.replace('_', " ")),
            ("redacted", v) => {
                let data = need(v)?;
                if !data
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
                {
                    return Err(bad("expected base64"));
                }
                script.redacted = Some(data.to_owned());
            }
            ("no_text", None) => no_text = true,
            ("frames", v) => {
                let n: u32 = need(v)?.parse().map_err(|_| bad("expected a number of frames"))?;
                if n > MAX_FRAMES {
                    return Err(bad("at most 1000000 frames"));
                }
                frames = Some(n);
            }
            ("delay_ms", v) => script.delay = wait(need(v)?).ok_or_else(|| bad("expected milliseconds"))?,
            ("stall_ms", v) => script.stall = wait(need(v)?).ok_or_else(|| bad("expected milliseconds"))?,
            ("linger_ms", v) => script.linger = wait(need(v)?).ok_or_else(|| bad("expected milliseconds"))?,
            ("stop", v) => stop = Some(need(v)?.to_owned()),
            ("usage", v) => {
                let numbers: Result<Vec<u64>, _> = need(v)?.split(',').map(str::parse).collect();
                match numbers.as_deref() {
                    Ok(&[input, output]) => usage = Some((input, output, 0, 0)),
                    Ok(&[input, output, read, write]) => usage = Some((input, output, read, write)),
                    _ => return Err(bad("expected IN,OUT or IN,OUT,CACHE_READ,CACHE_WRITE")),
                }
            }
            ("status", v) => {
                script.status = Some(http_error(need(v)?).ok_or_else(|| {
                    bad(
                        "expected throttle, validation, not_found, access_denied, unavailable, internal, \
                         model_timeout, model_not_ready or model_error",
                    )
                })?);
            }
            ("first_exception", v) => {
                script.first_exception =
                    Some(exception_name(need(v)?).ok_or_else(|| bad("expected a camelCase exception type"))?)
            }
            ("mid_exception", v) => {
                script.mid_exception =
                    Some(exception_name(need(v)?).ok_or_else(|| bad("expected a camelCase exception type"))?)
            }
            ("tool", v) => tools.push(tool(need(v)?).map_err(bad)?),
            ("truncate", None) => script.truncate = true,
            ("bad_crc", None) => script.bad_crc = true,
            ("reset", None) => script.reset = true,
            _ => {
                return Err(Invalid(
                    format!("unknown mock directive `{token}` (see the ai_gateway::mock_bedrock docs)")
                        .into(),
                ));
            }
        }
    }
    script.text = match (no_text, frames, words.is_empty()) {
        (true, None, true) => TextPlan::None,
        (false, Some(n), true) => TextPlan::Numbered(n),
        (false, None, false) => {
            let last = words.len() - 1;
            for word in &mut words[..last] {
                word.push(' ');
            }
            TextPlan::Deltas(words)
        }
        (false, None, true) if forced_tool && !tools.is_empty() => TextPlan::None,
        (false, None, true) => {
            TextPlan::Deltas(DEFAULT_TEXT.split_inclusive(' ').map(str::to_owned).collect())
        }
        _ => {
            return Err(Invalid(
                "mock:text, mock:frames and mock:no_text cannot be combined".into(),
            ));
        }
    };
    if let Some(last) = reasoning.len().checked_sub(1) {
        for word in &mut reasoning[..last] {
            word.push(' ');
        }
    }
    script.reasoning = reasoning;
    script.tools = tools;
    script.stop_reason = stop.unwrap_or_else(|| {
        if script.tools.is_empty() {
            "end_turn"
        } else {
            "tool_use"
        }
        .to_owned()
    });
    script.usage.output = script.delta_count() as u64;
    if let Some((input, output, read, write)) = usage {
        script.usage = Usage {
            input,
            output,
            cache_read: read,
            cache_write: write,
        };
    }
    Ok(script)
}

fn wait(ms: &str) -> Option<Duration> {
    ms.parse::<u64>()
        .ok()
        .filter(|&ms| ms <= MAX_WAIT_MS)
        .map(Duration::from_millis)
}

fn exception_name(name: &str) -> Option<String> {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_alphanumeric());
    ok.then(|| name.to_owned())
}

fn tool(spec: &str) -> Result<Tool, &'static str> {
    let (name, input) = spec.split_once(':').ok_or("expected NAME:JSON")?;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err("the tool name must match [a-zA-Z0-9_-]+");
    }
    let mut scratch = input.as_bytes().to_vec();
    let parsed =
        simd_json::to_borrowed_value(&mut scratch).map_err(|_| "the arguments are not valid JSON")?;
    if !parsed.is_object() {
        return Err("the arguments must be a JSON object");
    }
    let input = if parsed.as_object().is_some_and(|o| o.is_empty()) {
        "{}".to_owned()
    } else {
        input.to_owned()
    };
    Ok(Tool {
        name: name.to_owned(),
        input,
    })
}

/// `mock:status=` values.
fn http_error(value: &str) -> Option<HttpError> {
    let (status, name) = match value {
        "throttle" => (StatusCode::TOO_MANY_REQUESTS, "ThrottlingException"),
        "validation" => (StatusCode::BAD_REQUEST, "ValidationException"),
        "not_found" => (StatusCode::NOT_FOUND, "ResourceNotFoundException"),
        "access_denied" => (StatusCode::FORBIDDEN, "AccessDeniedException"),
        "unavailable" => (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailableException"),
        "internal" => (StatusCode::INTERNAL_SERVER_ERROR, "InternalServerException"),
        "model_timeout" => (StatusCode::REQUEST_TIMEOUT, "ModelTimeoutException"),
        "model_not_ready" => (StatusCode::TOO_MANY_REQUESTS, "ModelNotReadyException"),
        "model_error" => (StatusCode::FAILED_DEPENDENCY, "ModelErrorException"),
        _ => return None,
    };
    Some(HttpError { status, name })
}

/// The HTTP error a Converse call gives for an exception a stream would carry as a frame.
pub(super) fn exception_as_http(exception_type: &str) -> (StatusCode, String) {
    let mut name = String::with_capacity(exception_type.len());
    let mut chars = exception_type.chars();
    if let Some(first) = chars.next() {
        name.push(first.to_ascii_uppercase());
        name.push_str(chars.as_str());
    }
    let status = match exception_type {
        "throttlingException" | "modelNotReadyException" => StatusCode::TOO_MANY_REQUESTS,
        "validationException" | "serviceQuotaExceededException" => StatusCode::BAD_REQUEST,
        "accessDeniedException" => StatusCode::FORBIDDEN,
        "resourceNotFoundException" => StatusCode::NOT_FOUND,
        "modelTimeoutException" => StatusCode::REQUEST_TIMEOUT,
        "modelStreamErrorException" | "modelErrorException" => StatusCode::FAILED_DEPENDENCY,
        "serviceUnavailableException" => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (status, name)
}

/// Bedrock's message for an exception, by name in either case (`throttlingException` or
/// `ThrottlingException`).
pub(super) fn exception_message(name: &str) -> &'static str {
    let lower_first = |n: &str| -> String {
        let mut chars = n.chars();
        chars
            .next()
            .map(|c| c.to_ascii_lowercase().to_string() + chars.as_str())
            .unwrap_or_default()
    };
    match lower_first(name).as_str() {
        "throttlingException" => "Too many requests, please wait before trying again.",
        "validationException" => "Malformed input request, please reformat your input and try again.",
        "resourceNotFoundException" => "The provided model identifier is invalid.",
        "accessDeniedException" => "You don't have access to the model with the specified model ID.",
        "serviceUnavailableException" => "Bedrock is unable to process your request.",
        "internalServerException" => "The server encountered an internal error while processing the request.",
        "modelTimeoutException" => "Model has timed out in processing the request. Try your request again.",
        "modelNotReadyException" => "Model is not ready to serve inference requests. Try again later.",
        "modelErrorException" => "The model returned an error while processing the request.",
        "modelStreamErrorException" => "The model stream failed while generating the response.",
        _ => "The mock Bedrock runtime was asked to fail this request.",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_body(text: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "messages": [{"role": "user", "content": [{"text": text}]}]
        }))
        .unwrap()
    }

    fn script(text: &str) -> Script {
        parse(&mk_body(text)).unwrap()
    }

    fn invalid(body: serde_json::Value) -> String {
        parse(&serde_json::to_vec(&body).unwrap())
            .unwrap_err()
            .0
            .into_owned()
    }

    #[test]
    fn default_reply_is_split_into_word_deltas() {
        let s = script("say hi please");
        assert_eq!(
            s.text,
            TextPlan::Deltas(vec![
                "Hello ".into(),
                "from ".into(),
                "the ".into(),
                "mock ".into(),
                "Bedrock ".into(),
                "runtime.".into()
            ])
        );
        assert_eq!(s.stop_reason, "end_turn");
        assert_eq!(
            s.usage,
            Usage {
                input: 3,
                output: 6,
                cache_read: 0,
                cache_write: 0
            }
        );
    }

    #[test]
    fn directives_are_read_from_the_last_user_message_only() {
        let body = serde_json::json!({"messages": [
            {"role": "user", "content": [{"text": "mock:status=throttle one"}]},
            {"role": "assistant", "content": [{"text": "ok"}]},
            {"role": "user", "content": [{"text": "mock:text=Hi"}, {"text": "mock:text=there_you"}]}
        ]});
        let s = parse(&serde_json::to_vec(&body).unwrap()).unwrap();
        assert_eq!(s.status, None);
        assert_eq!(s.text, TextPlan::Deltas(vec!["Hi ".into(), "there you".into()]));
        assert_eq!(s.usage.input, 4);
    }

    #[test]
    fn every_directive_parses() {
        let s = script(
            "mock:frames=3 mock:delay_ms=5 mock:stall_ms=7 mock:linger_ms=9 mock:stop=max_tokens mock:usage=1,2,3,4 \
             mock:first_exception=throttlingException mock:mid_exception=validationException \
             mock:tool=get_weather:{\"city\":\"Paris\"} mock:tool=noop:{} mock:truncate mock:bad_crc mock:reset \
             mock:status=model_timeout",
        );
        assert_eq!(s.text, TextPlan::Numbered(3));
        assert_eq!(s.text.full(), "tok0 tok1 tok2 ");
        assert_eq!(s.delay, Duration::from_millis(5));
        assert_eq!(s.stall, Duration::from_millis(7));
        assert_eq!(s.linger, Duration::from_millis(9));
        assert_eq!(s.stop_reason, "max_tokens");
        assert_eq!(
            s.usage,
            Usage {
                input: 1,
                output: 2,
                cache_read: 3,
                cache_write: 4
            }
        );
        assert_eq!(s.first_exception.as_deref(), Some("throttlingException"));
        assert_eq!(s.mid_exception.as_deref(), Some("validationException"));
        assert_eq!(s.tools.len(), 2);
        assert_eq!(s.tools[1].fragments(), Vec::<&str>::new());
        assert!(s.truncate && s.bad_crc && s.reset);
        assert_eq!(
            s.status,
            Some(HttpError {
                status: StatusCode::REQUEST_TIMEOUT,
                name: "ModelTimeoutException"
            })
        );
    }

    #[test]
    fn tools_default_the_stop_reason_and_split_their_input() {
        let s = script("mock:tool=f:{\"q\":\"\u{e9}t\u{e9}\",\"n\":12345}");
        assert_eq!(s.stop_reason, "tool_use");
        let fragments = s.tools[0].fragments();
        assert!(fragments.len() >= 2, "{fragments:?}");
        assert_eq!(fragments.concat(), s.tools[0].input);
        assert_eq!(s.first_tool_index(), 1);
        assert_eq!(script("mock:no_text mock:tool=f:{}").first_tool_index(), 0);
    }

    #[test]
    fn bad_directives_are_validation_errors() {
        for text in [
            "mock:nope",
            "mock:frames=x",
            "mock:status=teapot",
            "mock:tool=f:[1]",
            "mock:tool=f:{oops",
            "mock:usage=1",
            "mock:text=a mock:frames=2",
            "mock:first_exception=",
        ] {
            assert!(parse(&mk_body(text)).is_err(), "{text}");
        }
    }

    #[test]
    fn bedrock_runtime_rules_are_enforced() {
        let m = invalid(serde_json::json!({"messages": []}));
        assert!(m.contains("must start with a user message"), "{m}");
        let m = invalid(serde_json::json!({"messages": [{"role": "assistant", "content": [{"text": "x"}]}]}));
        assert!(m.contains("must start with a user message"), "{m}");
        let m = invalid(serde_json::json!({"messages": [
            {"role": "user", "content": [{"text": "x"}]}, {"role": "user", "content": [{"text": "y"}]}]}));
        assert!(m.contains("alternate"), "{m}");
        let m = invalid(serde_json::json!({"messages": [{"role": "user", "content": []}]}));
        assert!(m.contains("messages.0 is empty"), "{m}");
        let m = invalid(serde_json::json!({"messages": [{"role": "user", "content": [{"text": "  "}]}]}));
        assert!(m.contains("messages.0.content.0 is blank"), "{m}");
        let m = invalid(serde_json::json!({"messages": [
            {"role": "user", "content": [{"text": "x"}]},
            {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t", "name": "f", "input": {}}}]},
            {"role": "user", "content": [{"toolResult": {"toolUseId": "t", "content": [{"text": "r"}]}}]}]}));
        assert!(m.contains("toolConfig field must be defined"), "{m}");
        let m = invalid(
            serde_json::json!({"messages": [{"role": "user", "content": [{"text": "x"}]}],
            "inferenceConfig": {"temperature": 1.5}}),
        );
        assert!(
            m.contains("inferenceConfig.temperature") && m.contains("less than or equal to 1"),
            "{m}"
        );
        let m = invalid(serde_json::json!({"messages": [{"role": "system", "content": [{"text": "x"}]}]}));
        assert!(m.contains("messages.1.member.role"), "{m}");
        assert!(parse(b"{not json").is_err());
    }

    #[test]
    fn exception_names_convert_for_converse() {
        assert_eq!(
            exception_as_http("throttlingException"),
            (StatusCode::TOO_MANY_REQUESTS, "ThrottlingException".to_owned())
        );
        assert_eq!(
            exception_message("ThrottlingException"),
            exception_message("throttlingException")
        );
    }

    #[test]
    fn reasoning_directives_put_signed_and_redacted_blocks_first() {
        let s =
            script("mock:reasoning=Think mock:reasoning=hard mock:redacted=QUJD mock:text=Hi mock:tool=f:{}");
        assert_eq!(s.reasoning, vec!["Think ".to_owned(), "hard".to_owned()]);
        assert_eq!(s.redacted.as_deref(), Some("QUJD"));
        assert_eq!((s.text_index(), s.first_tool_index()), (2, 3));
        assert_eq!(s.delta_count(), 2 + 2 + 1);
        assert!(parse(&mk_body("mock:redacted=not*b64")).is_err());
    }

    #[test]
    fn directives_in_tool_results_script_the_answer() {
        let s = parse(
            &serde_json::to_vec(&serde_json::json!({"messages": [
                {"role": "user", "content": [{"text": "x"}]},
                {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "f", "input": {}}}]},
                {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "21C mock:text=Warm"}]}}]}],
                "toolConfig": {"tools": [{"toolSpec": {"name": "f", "inputSchema": {"json": {"type": "object"}}}}]}}))
            .unwrap(),
        )
        .unwrap();
        assert_eq!(s.text, TextPlan::Deltas(vec!["Warm".into()]));
    }

    #[test]
    fn claude_rules_for_tools_media_and_reasoning_are_enforced() {
        let tool_config =
            serde_json::json!({"tools": [{"toolSpec": {"name": "f", "inputSchema": {"json": {}}}}]});
        let m = invalid(serde_json::json!({"messages": [
            {"role": "user", "content": [{"text": "x"}]},
            {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "f", "input": {}}}]},
            {"role": "user", "content": [{"text": "no result"}]}], "toolConfig": tool_config}));
        assert!(m.contains("Expected toolResult"), "{m}");
        let m = invalid(serde_json::json!({"messages": [
            {"role": "user", "content": [{"text": "x"}]},
            {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "f", "input": {}}}]},
            {"role": "user", "content": [{"text": "first"}, {"toolResult": {"toolUseId": "t1", "content": []}}]}],
            "toolConfig": tool_config}));
        assert!(m.contains("must come before"), "{m}");
        let m = invalid(serde_json::json!({"messages": [{"role": "user", "content": [
            {"document": {"format": "pdf", "name": "report.pdf", "source": {"bytes": "AAAA"}}}]}]}));
        assert!(m.contains("document file name"), "{m}");
        let m = invalid(serde_json::json!({"messages": [{"role": "user", "content": [
            {"image": {"format": "bmp", "source": {"bytes": "AAAA"}}}]}]}));
        assert!(m.contains("enum value set"), "{m}");
        let m = invalid(serde_json::json!({"messages": [{"role": "user", "content": [
            {"image": {"format": "png", "source": {"bytes": "A A"}}}]}]}));
        assert!(m.contains("base64"), "{m}");
        let m = invalid(
            serde_json::json!({"messages": [{"role": "user", "content": [{"text": "x"}]},
            {"role": "assistant", "content": [{"reasoningContent": {"reasoningText": {"text": "t", "signature": "forged"}}}, {"text": "a"}]},
            {"role": "user", "content": [{"text": "y"}]}]}),
        );
        assert!(m.contains("Invalid `signature`"), "{m}");
        let m = invalid(
            serde_json::json!({"messages": [{"role": "user", "content": [{"text": "x"}]}],
            "toolConfig": {"tools": [{"toolSpec": {"name": "f", "inputSchema": {"json": {}}}}], "toolChoice": {"tool": {"name": "g"}}}}),
        );
        assert!(m.contains("not in toolConfig.tools"), "{m}");
        let m = invalid(
            serde_json::json!({"messages": [{"role": "user", "content": [{"text": "x"}]}], "toolConfig": {"tools": []}}),
        );
        assert!(m.contains("toolConfig.tools"), "{m}");
        let ok = serde_json::json!({"messages": [{"role": "user", "content": [{"text": "x"}]},
            {"role": "assistant", "content": [{"reasoningContent": {"reasoningText": {"text": "t", "signature": MOCK_SIGNATURE}}}, {"text": "a"}]},
            {"role": "user", "content": [{"text": "y"}]}]});
        parse(&serde_json::to_vec(&ok).unwrap()).unwrap();
    }
}
