//! OpenAI chat request → Converse request body (reference: mapping §2, §3).
//!
//! Every OpenAI parameter is honoured, ignored because ignoring it is harmless, or rejected
//! with a 400 that names it; nothing is dropped silently. The Converse body borrows every
//! string from the parsed request and is serialized straight into the caller's buffer.

use std::borrow::Cow;

use crate::bedrock::converse::{
    ContentBlock, ConversationRole, ConverseRequest, InferenceConfig, Message, ServiceTier,
    SystemContentBlock,
};
use crate::error::InvalidRequest;
use crate::openai::request::{
    ChatCompletionRequest, Content, ContentPart, Message as ChatMessage, Role, Stop, ToolChoice,
};

/// Bedrock's limit on the `stopSequences` list. OpenAI documents at most 4; more are passed
/// through, and a model with a lower limit answers with Bedrock's own validation error.
pub const MAX_STOP_SEQUENCES: usize = 2500;

/// Per-deployment choices that change how a request is translated.
#[derive(Debug, Clone, Default)]
pub struct RequestOptions {
    /// What to do with a `temperature` above Bedrock's maximum of 1.
    pub temperature: TemperaturePolicy,
    /// `maxTokens` to send when the client sets no limit; `None` lets Bedrock use the model's
    /// maximum.
    pub default_max_tokens: Option<u32>,
}

/// What to do with an OpenAI `temperature` in (1, 2], which Bedrock's 0..=1 range cannot
/// express. Rescaling silently would change every request's meaning, so it is never done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TemperaturePolicy {
    /// Answer 400 `unsupported_value`.
    #[default]
    Reject,
    /// Send 1.0.
    Clamp,
}

/// Translates a parsed chat request into a Converse request body appended to `out`.
pub fn to_converse(
    req: &ChatCompletionRequest<'_>,
    opts: &RequestOptions,
    out: &mut Vec<u8>,
) -> Result<(), InvalidRequest> {
    let converse = to_converse_request(req, opts)?;
    simd_json::serde::to_writer(out, &converse).map_err(|e| InvalidRequest {
        // Serializing these types into a Vec has no failure mode; kept as an error, not a panic.
        message: format!("could not encode the Bedrock request: {e}").into(),
        param: None,
        code: None,
    })
}

/// Builds the Converse request, borrowing every string from `req`.
pub fn to_converse_request<'a>(
    req: &ChatCompletionRequest<'a>,
    opts: &RequestOptions,
) -> Result<ConverseRequest<'a>, InvalidRequest> {
    check_parameters(req)?;
    let (system, messages) = convert_messages(&req.messages)?;
    let inference_config = inference_config(req, opts)?;
    Ok(ConverseRequest {
        system,
        messages,
        inference_config: (!inference_config.is_empty()).then_some(inference_config),
        service_tier: service_tier(req.service_tier)?,
    })
}

// === parameters ===

/// Rejects what Bedrock cannot honour (reference: mapping §2). Parameters that are harmless to
/// ignore are not mentioned here: `seed`, `store`, `user`, `safety_identifier`, `metadata`,
/// `prediction`, `verbosity`, `prompt_cache_key`, `prompt_cache_retention`,
/// `prompt_cache_options`, `stream_options.include_obfuscation`.
fn check_parameters(req: &ChatCompletionRequest<'_>) -> Result<(), InvalidRequest> {
    if let Some(key) = req.unknown.first() {
        return Err(InvalidRequest::unsupported_parameter(
            key.to_string(),
            format!("unrecognized request argument supplied: {key}"),
        ));
    }
    if req.functions.is_some() {
        return Err(InvalidRequest::unsupported_parameter(
            "functions",
            "`functions` is deprecated and not supported; use `tools`",
        ));
    }
    if req.function_call.is_some() {
        return Err(InvalidRequest::unsupported_parameter(
            "function_call",
            "`function_call` is deprecated and not supported; use `tool_choice`",
        ));
    }
    match req.n {
        Some(n) if n < 1 => return Err(InvalidRequest::invalid("n", "`n` must be at least 1")),
        Some(n) if n > 1 => {
            return Err(InvalidRequest::unsupported_value(
                "n",
                "`n` greater than 1 is not supported: Bedrock returns one choice; send separate requests",
            ));
        }
        _ => {}
    }
    if req.stream_options.is_some() && !req.stream {
        return Err(InvalidRequest::invalid(
            "stream_options",
            "`stream_options` is only allowed when `stream` is true",
        ));
    }
    if req.logprobs == Some(true) {
        return Err(InvalidRequest::unsupported_value(
            "logprobs",
            "log probabilities are not available from Bedrock; remove `logprobs`",
        ));
    }
    if req.top_logprobs.is_some_and(|k| k != 0) {
        return Err(InvalidRequest::unsupported_value(
            "top_logprobs",
            "log probabilities are not available from Bedrock; remove `top_logprobs`",
        ));
    }
    if req.logit_bias.is_some_and(|n| n > 0) {
        return Err(InvalidRequest::unsupported_value(
            "logit_bias",
            "`logit_bias` is not supported by Bedrock; remove it",
        ));
    }
    for (param, value) in [
        ("frequency_penalty", req.frequency_penalty),
        ("presence_penalty", req.presence_penalty),
    ] {
        if value.is_some_and(|v| v != 0.0) {
            return Err(InvalidRequest::unsupported_value(
                param,
                format!("`{param}` is not supported by Bedrock; send 0 or leave it out"),
            ));
        }
    }
    if let Some(modalities) = &req.modalities {
        for m in modalities {
            match *m {
                "text" => {}
                "audio" => {
                    return Err(InvalidRequest::unsupported_value(
                        "modalities",
                        "audio output is not supported; use `[\"text\"]`",
                    ));
                }
                other => {
                    return Err(InvalidRequest::invalid(
                        "modalities",
                        format!("unknown modality `{other}`; expected `text`"),
                    ));
                }
            }
        }
    }
    if req.audio.is_some() {
        return Err(InvalidRequest::unsupported_parameter(
            "audio",
            "audio output is not supported; remove `audio`",
        ));
    }
    if req.web_search_options.is_some() {
        return Err(InvalidRequest::unsupported_parameter(
            "web_search_options",
            "built-in web search is not available through Bedrock; remove `web_search_options`",
        ));
    }
    if req.moderation.is_some() {
        return Err(InvalidRequest::unsupported_parameter(
            "moderation",
            "moderated completions are not available through Bedrock; remove `moderation`",
        ));
    }
    if req.tools.is_some_and(|n| n > 0) {
        return Err(InvalidRequest::unsupported_parameter(
            "tools",
            "tool calling is not supported by this gateway yet; remove `tools`",
        ));
    }
    match req.tool_choice {
        // With no tools, "none" and "auto" both mean "answer in text": nothing to send.
        None | Some(ToolChoice::Mode("none" | "auto")) => {}
        Some(_) => {
            return Err(InvalidRequest::unsupported_value(
                "tool_choice",
                "tool calling is not supported by this gateway yet; leave out `tool_choice` or send \"none\"",
            ));
        }
    }
    if req.parallel_tool_calls == Some(false) {
        return Err(InvalidRequest::unsupported_value(
            "parallel_tool_calls",
            "`parallel_tool_calls: false` cannot be enforced through Bedrock; leave it out",
        ));
    }
    if let Some(format) = req.response_format {
        match format.kind {
            "text" => {}
            "json_object" => {
                return Err(InvalidRequest::unsupported_value(
                    "response_format",
                    "`json_object` response format has no Bedrock equivalent; use `text`",
                ));
            }
            "json_schema" => {
                return Err(InvalidRequest::unsupported_value(
                    "response_format",
                    "`json_schema` response format is not supported by this gateway yet; use `text`",
                ));
            }
            other => {
                return Err(InvalidRequest::invalid(
                    "response_format.type",
                    format!(
                        "unknown response format `{other}`; expected `text`, `json_object` or `json_schema`"
                    ),
                ));
            }
        }
    }
    match req.reasoning_effort {
        None | Some("none") => {}
        Some(_) => {
            return Err(InvalidRequest::unsupported_value(
                "reasoning_effort",
                "`reasoning_effort` is not supported for this model; leave it out or send \"none\"",
            ));
        }
    }
    Ok(())
}

fn service_tier(tier: Option<&str>) -> Result<Option<ServiceTier<'_>>, InvalidRequest> {
    match tier {
        None | Some("auto") => Ok(None),
        Some(tier @ ("default" | "flex" | "priority")) => Ok(Some(ServiceTier { tier })),
        Some(tier @ ("scale" | "fast")) => Err(InvalidRequest::unsupported_value(
            "service_tier",
            format!("service tier `{tier}` is not available on Bedrock; use auto, default, flex or priority"),
        )),
        Some(other) => Err(InvalidRequest::invalid(
            "service_tier",
            format!("unknown service tier `{other}`; expected auto, default, flex or priority"),
        )),
    }
}

fn inference_config<'a>(
    req: &ChatCompletionRequest<'a>,
    opts: &RequestOptions,
) -> Result<InferenceConfig<'a>, InvalidRequest> {
    let max_completion_tokens = token_limit("max_completion_tokens", req.max_completion_tokens)?;
    let max_tokens = token_limit("max_tokens", req.max_tokens)?;
    let temperature = match req.temperature {
        None => None,
        Some(t) if !(0.0..=2.0).contains(&t) => {
            return Err(InvalidRequest::invalid(
                "temperature",
                "`temperature` must be between 0 and 2",
            ));
        }
        Some(t) if t > 1.0 => match opts.temperature {
            TemperaturePolicy::Clamp => Some(1.0),
            TemperaturePolicy::Reject => {
                return Err(InvalidRequest::unsupported_value(
                    "temperature",
                    format!(
                        "temperature {t} is above 1, the maximum Bedrock accepts; send a value between 0 and 1"
                    ),
                ));
            }
        },
        Some(t) => Some(t),
    };
    let top_p = match req.top_p {
        Some(p) if !(0.0..=1.0).contains(&p) => {
            return Err(InvalidRequest::invalid(
                "top_p",
                "`top_p` must be between 0 and 1",
            ));
        }
        p => p,
    };
    Ok(InferenceConfig {
        max_tokens: max_completion_tokens.or(max_tokens).or(opts.default_max_tokens),
        temperature,
        top_p,
        stop_sequences: stop_sequences(req.stop.as_ref())?,
    })
}

fn token_limit(param: &'static str, value: Option<i64>) -> Result<Option<u32>, InvalidRequest> {
    // Bedrock's maxTokens is a 32-bit signed integer.
    match value {
        None => Ok(None),
        Some(v) if v < 1 => Err(InvalidRequest::invalid(
            param,
            format!("`{param}` must be at least 1"),
        )),
        Some(v) => u32::try_from(v)
            .ok()
            .filter(|&v| i32::try_from(v).is_ok())
            .map(Some)
            .ok_or_else(|| InvalidRequest::invalid(param, format!("`{param}` must be at most 2147483647"))),
    }
}

fn stop_sequences<'a>(stop: Option<&Stop<'a>>) -> Result<Vec<&'a str>, InvalidRequest> {
    match stop {
        None => Ok(Vec::new()),
        Some(Stop::One(s)) => {
            if s.is_empty() {
                return Err(InvalidRequest::invalid(
                    "stop",
                    "stop sequences must not be empty",
                ));
            }
            Ok(vec![*s])
        }
        Some(Stop::Many(list)) => {
            if list.len() > MAX_STOP_SEQUENCES {
                return Err(InvalidRequest::invalid(
                    "stop",
                    format!("at most {MAX_STOP_SEQUENCES} stop sequences are allowed"),
                ));
            }
            if let Some(i) = list.iter().position(|s| s.is_empty()) {
                return Err(InvalidRequest::invalid(
                    format!("stop[{i}]"),
                    "stop sequences must not be empty",
                ));
            }
            Ok(list.clone())
        }
    }
}

// === messages ===

/// A Bedrock turn being built, with the OpenAI message that opened it (for error paths).
struct Turn<'a> {
    message: Message<'a>,
    first: usize,
}

/// Converts `messages` (reference: mapping §3.2): system and developer text is hoisted into
/// `system`, empty text is dropped, and consecutive same-role messages merge into one turn,
/// which satisfies Bedrock's alternation rule.
fn convert_messages<'a>(
    messages: &[ChatMessage<'a>],
) -> Result<(Vec<SystemContentBlock<'a>>, Vec<Message<'a>>), InvalidRequest> {
    if messages.is_empty() {
        return Err(InvalidRequest::invalid(
            "messages",
            "`messages` must contain at least one message",
        ));
    }
    let mut system = Vec::new();
    let mut turns: Vec<Turn<'a>> = Vec::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        match m.role {
            Role::System | Role::Developer => {
                let content = m.content.as_ref().ok_or_else(|| missing_content(i))?;
                for_each_text(content, i, m.role, |text| {
                    if !text.is_empty() {
                        system.push(SystemContentBlock::Text(text));
                    }
                })?;
            }
            Role::User => {
                let content = m.content.as_ref().ok_or_else(|| missing_content(i))?;
                let turn = open_turn(&mut turns, ConversationRole::User, i);
                for_each_text(content, i, m.role, |text| {
                    if !text.is_empty() {
                        turn.push(ContentBlock::Text(text));
                    }
                })?;
            }
            Role::Assistant => {
                check_assistant_members(m, i)?;
                let mut blocks = Vec::new();
                if let Some(content) = &m.content {
                    for_each_text(content, i, m.role, |text| {
                        if !text.is_empty() {
                            blocks.push(ContentBlock::Text(text));
                        }
                    })?;
                }
                // An assistant message with nothing to say (e.g. content "") is dropped.
                if !blocks.is_empty() {
                    open_turn(&mut turns, ConversationRole::Assistant, i).extend(blocks);
                }
            }
            Role::Tool => {
                return Err(InvalidRequest::unsupported_value(
                    format!("messages[{i}].role"),
                    "tool messages are not supported by this gateway yet",
                ));
            }
            Role::Function => {
                return Err(InvalidRequest::unsupported_value(
                    format!("messages[{i}].role"),
                    "the deprecated `function` role is not supported; use `tool` messages",
                ));
            }
        }
    }
    match turns.first() {
        Some(t) if t.message.role == ConversationRole::User => {}
        _ => {
            return Err(InvalidRequest::invalid(
                "messages",
                "conversation must start with a user message",
            ));
        }
    }
    if let Some(empty) = turns.iter().find(|t| t.message.content.is_empty()) {
        return Err(InvalidRequest::invalid(
            format!("messages[{}].content", empty.first),
            "message content must not be empty",
        ));
    }
    Ok((system, turns.into_iter().map(|t| t.message).collect()))
}

/// The turn to append to: the last one if it has `role`, else a new one.
fn open_turn<'t, 'a>(
    turns: &'t mut Vec<Turn<'a>>,
    role: ConversationRole,
    first: usize,
) -> &'t mut Vec<ContentBlock<'a>> {
    if turns.last().is_none_or(|t| t.message.role != role) {
        turns.push(Turn {
            message: Message {
                role,
                content: Vec::new(),
            },
            first,
        });
    }
    // Non-empty: either the last turn had this role or one was just pushed.
    let last = turns.len() - 1;
    &mut turns[last].message.content
}

/// Members of an assistant message that belong to features Bedrock or this gateway lacks.
fn check_assistant_members(m: &ChatMessage<'_>, i: usize) -> Result<(), InvalidRequest> {
    if m.tool_calls.is_some_and(|n| n > 0) {
        return Err(InvalidRequest::unsupported_parameter(
            format!("messages[{i}].tool_calls"),
            "tool calling is not supported by this gateway yet",
        ));
    }
    if m.function_call.is_some() {
        return Err(InvalidRequest::unsupported_parameter(
            format!("messages[{i}].function_call"),
            "`function_call` is deprecated and not supported; use `tool_calls`",
        ));
    }
    if m.audio.is_some() {
        return Err(InvalidRequest::unsupported_parameter(
            format!("messages[{i}].audio"),
            "audio is not supported",
        ));
    }
    Ok(())
}

fn missing_content(i: usize) -> InvalidRequest {
    InvalidRequest {
        message: format!("missing required parameter: `messages[{i}].content`").into(),
        param: Some(format!("messages[{i}].content").into()),
        code: Some("missing_required_parameter"),
    }
}

/// Calls `f` with each text of `content` (a string, or the text of each part), checking that
/// every part's type is one `role` may carry.
fn for_each_text<'a>(
    content: &Content<'a>,
    i: usize,
    role: Role,
    mut f: impl FnMut(&'a str),
) -> Result<(), InvalidRequest> {
    match content {
        Content::Text(text) => f(text),
        Content::Parts(parts) => {
            for (j, part) in parts.iter().enumerate() {
                f(part_text(part, i, j, role)?);
            }
        }
    }
    Ok(())
}

fn part_text<'a>(part: &ContentPart<'a>, i: usize, j: usize, role: Role) -> Result<&'a str, InvalidRequest> {
    let param = |member: &str| -> Cow<'static, str> { format!("messages[{i}].content[{j}].{member}").into() };
    let required = |member: &'static str, value: Option<&'a str>| {
        value.ok_or_else(|| InvalidRequest {
            message: format!("missing required parameter: `messages[{i}].content[{j}].{member}`").into(),
            param: Some(param(member)),
            code: Some("missing_required_parameter"),
        })
    };
    match (part.kind, role) {
        ("text", _) => required("text", part.text),
        ("refusal", Role::Assistant) => required("refusal", part.refusal),
        ("image_url" | "input_audio" | "file", Role::User) => Err(InvalidRequest::unsupported_value(
            param("type"),
            format!(
                "`{}` content parts are not supported by this gateway yet",
                part.kind
            ),
        )),
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

#[cfg(test)]
mod tests;
