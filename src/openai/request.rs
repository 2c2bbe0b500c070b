//! The chat-completions request (reference: openai-chat §2, §3), parsed in place with
//! simd-json into borrowed types: strings point into the request buffer, which simd-json
//! unescapes in place, so parsing copies no field.
//!
//! The top-level object, messages, content and `stop` use hand-written visitors. They record
//! unknown top-level keys instead of failing (the translator rejects them by name), avoid the
//! buffering that `#[serde(flatten)]` and untagged enums cause, and note the JSON path of a
//! value of the wrong type so the 400 names it as OpenAI's `param` (`messages[2].content`).
//! `null` for an optional member means "not set", as in OpenAI's API.

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer as _, IgnoredAny, MapAccess, SeqAccess, Visitor};
use simd_json::ErrorType;

use crate::bedrock::converse::{GuardrailConfig, JsonValue, PerformanceConfig, PromptVariables, StrMap};
use crate::error::InvalidRequest;

/// A `POST /v1/chat/completions` body. Every member OpenAI defines is read, so each one can be
/// honoured, ignored or rejected deliberately by the translator.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatCompletionRequest<'a> {
    /// The model alias.
    pub model: &'a str,
    /// The conversation, in order.
    pub messages: Vec<Message<'a>>,
    /// Whether to answer with an SSE stream.
    pub stream: bool,
    /// `stream_options`.
    pub stream_options: Option<StreamOptions>,
    /// `max_completion_tokens`.
    pub max_completion_tokens: Option<i64>,
    /// `max_tokens` (legacy name of the same limit).
    pub max_tokens: Option<i64>,
    /// `temperature`, OpenAI range 0..=2.
    pub temperature: Option<f64>,
    /// `top_p`, 0..=1.
    pub top_p: Option<f64>,
    /// `stop`.
    pub stop: Option<Stop<'a>>,
    /// `n`, the number of choices.
    pub n: Option<i64>,
    /// `tools`.
    pub tools: Option<Vec<Tool<'a>>>,
    /// `tool_choice`.
    pub tool_choice: Option<ToolChoice<'a>>,
    /// `parallel_tool_calls`.
    pub parallel_tool_calls: Option<bool>,
    /// `response_format`.
    pub response_format: Option<ResponseFormat<'a>>,
    /// `reasoning_effort`.
    pub reasoning_effort: Option<&'a str>,
    /// `verbosity`.
    pub verbosity: Option<&'a str>,
    /// `seed`.
    pub seed: Option<i64>,
    /// `logprobs`.
    pub logprobs: Option<bool>,
    /// `top_logprobs`.
    pub top_logprobs: Option<i64>,
    /// `logit_bias`: the number of entries.
    pub logit_bias: Option<usize>,
    /// `frequency_penalty`.
    pub frequency_penalty: Option<f64>,
    /// `presence_penalty`.
    pub presence_penalty: Option<f64>,
    /// `user`.
    pub user: Option<&'a str>,
    /// `safety_identifier`.
    pub safety_identifier: Option<&'a str>,
    /// `prompt_cache_key`.
    pub prompt_cache_key: Option<&'a str>,
    /// `prompt_cache_retention`.
    pub prompt_cache_retention: Option<&'a str>,
    /// `prompt_cache_options` (present or not).
    pub prompt_cache_options: Option<Present>,
    /// `metadata`: string values only.
    pub metadata: Option<StrMap<'a>>,
    /// `store`.
    pub store: Option<bool>,
    /// `service_tier`.
    pub service_tier: Option<&'a str>,
    /// `modalities`.
    pub modalities: Option<Vec<&'a str>>,
    /// `audio` (present or not).
    pub audio: Option<Present>,
    /// `prediction` (present or not).
    pub prediction: Option<Present>,
    /// `web_search_options` (present or not).
    pub web_search_options: Option<Present>,
    /// `moderation` (present or not).
    pub moderation: Option<Present>,
    /// `functions`, the deprecated predecessor of `tools`.
    pub functions: Option<Vec<FunctionDefinition<'a>>>,
    /// `function_call`, the deprecated predecessor of `tool_choice`.
    pub function_call: Option<FunctionCallChoice<'a>>,
    /// `bedrock`: the gateway's extension object for Bedrock-only request members.
    pub bedrock: Option<BedrockExtension<'a>>,
    /// Top-level keys the gateway does not know, in order of appearance.
    pub unknown: Vec<&'a str>,
}

/// `stream_options`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct StreamOptions {
    /// Send a final chunk with `usage`.
    pub include_usage: Option<bool>,
    /// Pad chunks with an `obfuscation` field (the gateway never pads).
    pub include_obfuscation: Option<bool>,
}

/// `stop`: one string or a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop<'a> {
    /// `"stop": "END"`.
    One(&'a str),
    /// `"stop": ["END", "###"]`.
    Many(Vec<&'a str>),
}

/// One element of `tools`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Tool<'a> {
    /// `function` (or `custom`, which Bedrock cannot express).
    #[serde(rename = "type", borrow)]
    pub kind: &'a str,
    /// The function of a `function` tool.
    #[serde(borrow, default)]
    pub function: Option<FunctionDefinition<'a>>,
    /// Anthropic-style prompt-cache marker: cache everything up to and including this tool.
    #[serde(borrow, default)]
    pub cache_control: Option<CacheControl<'a>>,
}

/// A function a model may call (`tools[].function`, and the deprecated `functions[]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FunctionDefinition<'a> {
    /// `[a-zA-Z0-9_-]{1,64}`.
    #[serde(borrow)]
    pub name: &'a str,
    /// What the function does.
    #[serde(borrow, default)]
    pub description: Option<&'a str>,
    /// JSON Schema of the arguments object.
    #[serde(borrow, default)]
    pub parameters: Option<JsonValue<'a>>,
    /// Whether the arguments must follow the schema exactly.
    #[serde(default)]
    pub strict: Option<bool>,
}

/// `cache_control` (`{"type": "ephemeral", "ttl": "5m" | "1h"}`), the marker Anthropic-style
/// clients put on system text, content parts, messages and tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct CacheControl<'a> {
    /// `ephemeral`.
    #[serde(rename = "type", borrow)]
    pub kind: &'a str,
    /// Time to live.
    #[serde(borrow, default)]
    pub ttl: Option<&'a str>,
}

/// `tool_choice`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice<'a> {
    /// `"none"`, `"auto"`, `"required"` (or another string, which the translator rejects).
    Mode(&'a str),
    /// `{"type": "function", "function": {"name": …}}`.
    Function(&'a str),
    /// `{"type": "allowed_tools", "allowed_tools": {"mode": …, "tools": [{"type": "function",
    /// "function": {"name": …}}, …]}}`.
    AllowedTools {
        /// `auto` or `required`.
        mode: &'a str,
        /// The function names, in order.
        tools: Vec<&'a str>,
    },
    /// An object of another `type` (`custom`, …).
    Other(&'a str),
}

/// `function_call`, the deprecated form of `tool_choice`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FunctionCallChoice<'a> {
    /// `"none"` or `"auto"`.
    Mode(&'a str),
    /// `{"name": …}`: call this function.
    Name(&'a str),
}

/// `response_format`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ResponseFormat<'a> {
    /// `text`, `json_object` or `json_schema`.
    #[serde(rename = "type", borrow)]
    pub kind: &'a str,
    /// The schema of a `json_schema` format.
    #[serde(borrow, default)]
    pub json_schema: Option<JsonSchemaFormat<'a>>,
}

/// `response_format.json_schema`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct JsonSchemaFormat<'a> {
    /// `[a-zA-Z0-9_-]{1,64}`.
    #[serde(borrow)]
    pub name: &'a str,
    /// What the format is for.
    #[serde(borrow, default)]
    pub description: Option<&'a str>,
    /// The JSON Schema.
    #[serde(borrow, default)]
    pub schema: Option<JsonValue<'a>>,
    /// Whether the output must follow the schema exactly.
    #[serde(default)]
    pub strict: Option<bool>,
}

/// `bedrock`: Bedrock-only request members, in Bedrock's own names and shapes (reference:
/// bedrock-converse §4). OpenAI SDKs send it through `extra_body`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BedrockExtension<'a> {
    /// Model-native parameters (`{"top_k": 50}`), merged over what the gateway derives.
    #[serde(borrow, default)]
    pub additional_model_request_fields: Option<JsonValue<'a>>,
    /// A guardrail, replacing the model's configured default.
    #[serde(borrow, default)]
    pub guardrail_config: Option<GuardrailConfig<'a>>,
    /// `{"latency": "standard" | "optimized"}`.
    #[serde(borrow, default)]
    pub performance_config: Option<PerformanceConfig<'a>>,
    /// Pairs recorded with the invocation, merged over those taken from `user` and `metadata`.
    #[serde(borrow, default)]
    pub request_metadata: Option<StrMap<'a>>,
    /// Variables of a prompt-management prompt.
    #[serde(borrow, default)]
    pub prompt_variables: Option<PromptVariables<'a>>,
}

/// A member whose value the gateway does not read, only whether it was set (non-null).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Present;

/// A message role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `system`.
    System,
    /// `developer`, the newer name for `system`.
    Developer,
    /// `user`.
    User,
    /// `assistant`.
    Assistant,
    /// `tool`: a tool result.
    Tool,
    /// `function`: deprecated.
    Function,
}

const ROLES: &[&str] = &["system", "developer", "user", "assistant", "tool", "function"];

impl Role {
    /// The role as OpenAI spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::Developer => "developer",
            Self::User => "user",
            Self::Assistant => "assistant",
            Self::Tool => "tool",
            Self::Function => "function",
        }
    }
}

/// One element of `messages`: every role's members in one flat struct; the translator checks
/// which ones a role may carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    /// The role.
    pub role: Role,
    /// The content; `None` when absent or `null`.
    pub content: Option<Content<'a>>,
    /// `name` (no Bedrock equivalent).
    pub name: Option<&'a str>,
    /// `tool_calls` of an assistant message.
    pub tool_calls: Option<Vec<ToolCall<'a>>>,
    /// `tool_call_id` of a tool message.
    pub tool_call_id: Option<&'a str>,
    /// `refusal` of an assistant message.
    pub refusal: Option<&'a str>,
    /// `function_call` of an assistant message (deprecated).
    pub function_call: Option<FunctionCall<'a>>,
    /// `audio` of an assistant message.
    pub audio: Option<Present>,
    /// Extension: the reasoning text of an earlier assistant reply, sent back.
    pub reasoning_content: Option<&'a str>,
    /// Extension: the signature that came with `reasoning_content`.
    pub reasoning_signature: Option<&'a str>,
    /// Extension: encrypted reasoning blocks (base64) of an earlier assistant reply.
    pub redacted_reasoning: Option<Vec<&'a str>>,
    /// Anthropic-style cache marker on the whole message: cache up to its last block.
    pub cache_control: Option<CacheControl<'a>>,
}

/// One element of an assistant message's `tool_calls`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ToolCall<'a> {
    /// The call id, echoed by the `tool` message that answers it.
    #[serde(borrow)]
    pub id: &'a str,
    /// `function` (or `custom`, which Bedrock cannot express).
    #[serde(rename = "type", borrow, default)]
    pub kind: Option<&'a str>,
    /// The function called.
    #[serde(borrow, default)]
    pub function: Option<FunctionCall<'a>>,
}

/// A function call: name and the arguments as JSON text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct FunctionCall<'a> {
    /// The function name.
    #[serde(borrow)]
    pub name: &'a str,
    /// The arguments: a JSON object as text (as the model wrote it; may be invalid).
    #[serde(borrow, default)]
    pub arguments: &'a str,
}

/// Message content: a string or an array of parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content<'a> {
    /// `"content": "…"`.
    Text(&'a str),
    /// `"content": [{"type": …}, …]`.
    Parts(Vec<ContentPart<'a>>),
}

/// A content part: `type` plus the member each type uses, in one flat struct.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContentPart<'a> {
    /// `text`, `image_url`, `input_audio`, `file` or `refusal`.
    pub kind: &'a str,
    /// `text` of a text part.
    pub text: Option<&'a str>,
    /// `refusal` of a refusal part.
    pub refusal: Option<&'a str>,
    /// `image_url` of an image part.
    pub image_url: Option<ImageUrl<'a>>,
    /// `input_audio` of an audio part.
    pub input_audio: Option<InputAudio<'a>>,
    /// `file` of a file part.
    pub file: Option<FileRef<'a>>,
    /// `prompt_cache_breakpoint` on any part.
    pub prompt_cache_breakpoint: Option<Present>,
    /// Anthropic-style cache marker on the part.
    pub cache_control: Option<CacheControl<'a>>,
}

/// `image_url`: `{"url": …, "detail": …}` (a bare URL string is accepted too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageUrl<'a> {
    /// A `data:` URL, or an `http(s)://` or `s3://` URL.
    pub url: &'a str,
    /// `auto`, `low`, `high` (Bedrock has no equivalent).
    pub detail: Option<&'a str>,
}

/// `input_audio`: `{"data": "<base64>", "format": "wav" | "mp3"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct InputAudio<'a> {
    /// Base64 audio.
    #[serde(borrow)]
    pub data: &'a str,
    /// `wav` or `mp3`.
    #[serde(borrow)]
    pub format: &'a str,
}

/// `file`: inline data with a name, or the id of an uploaded file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct FileRef<'a> {
    /// A `data:<mime>;base64,…` URL or bare base64.
    #[serde(borrow, default)]
    pub file_data: Option<&'a str>,
    /// An OpenAI Files API id (not available through the gateway).
    #[serde(borrow, default)]
    pub file_id: Option<&'a str>,
    /// The file's name (its extension may give the format).
    #[serde(borrow, default)]
    pub filename: Option<&'a str>,
}

// === impl ChatCompletionRequest ===

impl<'a> ChatCompletionRequest<'a> {
    /// Parses a request body in place: simd-json rewrites `buf` and pads it with spaces
    /// ([`crate::json::parse_in_place`]).
    ///
    /// Malformed JSON, a value of the wrong type (`param` = its JSON path) and a missing
    /// `model`, `messages`, role or part type are errors; everything else, including which
    /// members are allowed, is the translator's call.
    pub fn parse(buf: &'a mut Vec<u8>) -> Result<Self, InvalidRequest> {
        if buf.iter().all(u8::is_ascii_whitespace) {
            return Err(body_error(
                "could not parse the JSON body: the body is empty".to_owned(),
            ));
        }
        let mut fault = Fault::default();
        let request = crate::json::parse_in_place(buf, |deserializer| {
            deserializer.deserialize_map(RequestVisitor { fault: &mut fault })
        })
        .map_err(|e| {
            body_error(format!(
                "could not parse the JSON body: {} at byte {}",
                describe_syntax(&e),
                e.index()
            ))
        })?
        .map_err(|e| fault.into_invalid(&e))?;
        if !request.has_model {
            return Err(missing("model".into()));
        }
        if !request.has_messages {
            return Err(missing("messages".into()));
        }
        Ok(request.inner)
    }

    /// Whether the client asked for the final usage chunk (`stream_options.include_usage`).
    pub fn include_usage(&self) -> bool {
        self.stream_options.and_then(|o| o.include_usage).unwrap_or(false)
    }
}

fn body_error(message: String) -> InvalidRequest {
    InvalidRequest {
        message: message.into(),
        param: None,
        code: None,
    }
}

fn missing(param: String) -> InvalidRequest {
    InvalidRequest {
        message: format!("missing required parameter: `{param}`").into(),
        param: Some(param.into()),
        code: Some("missing_required_parameter"),
    }
}

fn describe_syntax(e: &simd_json::Error) -> Cow<'static, str> {
    let text = match e.error() {
        ErrorType::Eof => "unexpected end of input",
        ErrorType::TrailingData => "unexpected data after the JSON value",
        ErrorType::ExpectedObjectColon => "expected `:`",
        ErrorType::ExpectedMapComma | ErrorType::ExpectedArrayComma => "expected `,`",
        ErrorType::ExpectedMapEnd => "expected `}`",
        ErrorType::ExpectedNull => "expected `null`",
        ErrorType::ExpectedTrue => "expected `true`",
        ErrorType::ExpectedFalse => "expected `false`",
        ErrorType::InvalidEscape => "invalid escape sequence",
        ErrorType::InvalidUnicodeEscape | ErrorType::InvalidUnicodeCodepoint => "invalid unicode escape",
        ErrorType::InvalidUtf8 => "invalid UTF-8",
        ErrorType::InvalidNumber | ErrorType::InvalidExponent => "invalid number",
        ErrorType::UnterminatedString => "unterminated string",
        ErrorType::KeyMustBeAString | ErrorType::BadKeyType | ErrorType::ExpectedObjectKey => {
            "expected a string key"
        }
        ErrorType::DepthLimitExceeded => "nesting too deep",
        ErrorType::InputTooLarge => "body too large",
        // simd-json reports most structural mistakes as `Syntax` or `InternalError`; the
        // character it stopped at says more.
        _ => {
            return match e.character() {
                Some(c) => format!("unexpected character `{}`", c.escape_debug()).into(),
                None => "invalid JSON".into(),
            };
        }
    };
    text.into()
}

// === path tracking ===

/// One step of a JSON path.
#[derive(Debug, Clone, Copy)]
enum Seg {
    Key(&'static str),
    Index(usize),
}

/// Where a deserialization error happened. Segments are pushed innermost first while the error
/// propagates out of the visitors, so the success path pays nothing.
#[derive(Debug, Default)]
struct Fault {
    path: Vec<Seg>,
    missing: bool,
}

impl Fault {
    fn at<E>(&mut self, seg: Seg, e: E) -> E {
        self.path.push(seg);
        e
    }

    fn missing<E: de::Error>(&mut self, key: &'static str) -> E {
        self.missing = true;
        self.path.push(Seg::Key(key));
        E::missing_field(key)
    }

    fn path_string(&self) -> String {
        let mut s = String::new();
        for seg in self.path.iter().rev() {
            match seg {
                Seg::Key(k) => {
                    if !s.is_empty() {
                        s.push('.');
                    }
                    s.push_str(k);
                }
                Seg::Index(i) => {
                    let _ = write!(s, "[{i}]");
                }
            }
        }
        s
    }

    fn into_invalid(self, e: &simd_json::Error) -> InvalidRequest {
        let path = self.path_string();
        if self.missing {
            return missing(path);
        }
        if path.is_empty() {
            return body_error("the request body must be a JSON object".to_owned());
        }
        let message = match e.error() {
            ErrorType::Serde(text) => format!("invalid value for `{path}`: {text}"),
            other => format!("invalid type for `{path}`: expected {}", expected(other)),
        };
        InvalidRequest::invalid(path, message)
    }
}

fn expected(e: &ErrorType) -> &'static str {
    match e {
        ErrorType::ExpectedBoolean => "a boolean",
        ErrorType::ExpectedString | ErrorType::ExpectedEnum => "a string",
        ErrorType::ExpectedFloat | ErrorType::ExpectedNumber => "a number",
        ErrorType::ExpectedSigned | ErrorType::ExpectedUnsigned | ErrorType::ExpectedInteger => "an integer",
        ErrorType::ExpectedArray => "an array",
        ErrorType::ExpectedMap => "an object",
        _ => "a different value",
    }
}

/// Reads the current map value as `T`, noting `key` on failure.
fn value<'de, T: Deserialize<'de>, A: MapAccess<'de>>(
    map: &mut A,
    fault: &mut Fault,
    key: &'static str,
) -> Result<T, A::Error> {
    map.next_value().map_err(|e| fault.at(Seg::Key(key), e))
}

/// Reads the current map value as an optional array of `T`, noting `key` and the index of a
/// bad element on failure.
fn seq<'de, T: Deserialize<'de>, A: MapAccess<'de>>(
    map: &mut A,
    fault: &mut Fault,
    key: &'static str,
) -> Result<Option<Vec<T>>, A::Error> {
    map.next_value_seed(OptionSeed(SeqSeed {
        fault: &mut *fault,
        element: PhantomData,
    }))
    .map_err(|e| fault.at(Seg::Key(key), e))
}

// === top level ===

struct ParsedRequest<'a> {
    inner: ChatCompletionRequest<'a>,
    has_model: bool,
    has_messages: bool,
}

struct RequestVisitor<'f> {
    fault: &'f mut Fault,
}

impl<'de> Visitor<'de> for RequestVisitor<'_> {
    type Value = ParsedRequest<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a chat completion request object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let fault = self.fault;
        let mut r = ChatCompletionRequest::default();
        let (mut has_model, mut has_messages) = (false, false);
        while let Some(key) = map.next_key::<&'de str>()? {
            match key {
                "model" => {
                    r.model = value(&mut map, fault, "model")?;
                    has_model = true;
                }
                "messages" => {
                    r.messages = map
                        .next_value_seed(MessagesSeed { fault: &mut *fault })
                        .map_err(|e| fault.at(Seg::Key("messages"), e))?;
                    has_messages = true;
                }
                "stream" => {
                    r.stream = value::<Option<bool>, _>(&mut map, fault, "stream")?.unwrap_or(false);
                }
                "stream_options" => r.stream_options = value(&mut map, fault, "stream_options")?,
                "max_completion_tokens" => {
                    r.max_completion_tokens = value(&mut map, fault, "max_completion_tokens")?;
                }
                "max_tokens" => r.max_tokens = value(&mut map, fault, "max_tokens")?,
                "temperature" => r.temperature = value(&mut map, fault, "temperature")?,
                "top_p" => r.top_p = value(&mut map, fault, "top_p")?,
                "stop" => {
                    r.stop = map
                        .next_value_seed(OptionSeed(StopSeed { fault: &mut *fault }))
                        .map_err(|e| fault.at(Seg::Key("stop"), e))?;
                }
                "n" => r.n = value(&mut map, fault, "n")?,
                "tools" => r.tools = seq(&mut map, fault, "tools")?,
                "tool_choice" => r.tool_choice = value(&mut map, fault, "tool_choice")?,
                "parallel_tool_calls" => {
                    r.parallel_tool_calls = value(&mut map, fault, "parallel_tool_calls")?;
                }
                "response_format" => r.response_format = value(&mut map, fault, "response_format")?,
                "reasoning_effort" => r.reasoning_effort = value(&mut map, fault, "reasoning_effort")?,
                "verbosity" => r.verbosity = value(&mut map, fault, "verbosity")?,
                "seed" => r.seed = value(&mut map, fault, "seed")?,
                "logprobs" => r.logprobs = value(&mut map, fault, "logprobs")?,
                "top_logprobs" => r.top_logprobs = value(&mut map, fault, "top_logprobs")?,
                "logit_bias" => {
                    r.logit_bias = value::<Option<ObjectLen>, _>(&mut map, fault, "logit_bias")?.map(|l| l.0);
                }
                "frequency_penalty" => r.frequency_penalty = value(&mut map, fault, "frequency_penalty")?,
                "presence_penalty" => r.presence_penalty = value(&mut map, fault, "presence_penalty")?,
                "user" => r.user = value(&mut map, fault, "user")?,
                "safety_identifier" => r.safety_identifier = value(&mut map, fault, "safety_identifier")?,
                "prompt_cache_key" => r.prompt_cache_key = value(&mut map, fault, "prompt_cache_key")?,
                "prompt_cache_retention" => {
                    r.prompt_cache_retention = value(&mut map, fault, "prompt_cache_retention")?;
                }
                "prompt_cache_options" => {
                    r.prompt_cache_options = value(&mut map, fault, "prompt_cache_options")?;
                }
                "metadata" => r.metadata = value(&mut map, fault, "metadata")?,
                "store" => r.store = value(&mut map, fault, "store")?,
                "service_tier" => r.service_tier = value(&mut map, fault, "service_tier")?,
                "modalities" => r.modalities = value(&mut map, fault, "modalities")?,
                "audio" => r.audio = value(&mut map, fault, "audio")?,
                "prediction" => r.prediction = value(&mut map, fault, "prediction")?,
                "web_search_options" => {
                    r.web_search_options = value(&mut map, fault, "web_search_options")?;
                }
                "moderation" => r.moderation = value(&mut map, fault, "moderation")?,
                "functions" => r.functions = seq(&mut map, fault, "functions")?,
                "bedrock" => r.bedrock = value(&mut map, fault, "bedrock")?,
                "function_call" => r.function_call = value(&mut map, fault, "function_call")?,
                other => {
                    map.next_value::<IgnoredAny>()?;
                    r.unknown.push(other);
                }
            }
        }
        Ok(ParsedRequest {
            inner: r,
            has_model,
            has_messages,
        })
    }
}

// === messages ===

struct MessagesSeed<'f> {
    fault: &'f mut Fault,
}

impl<'de> DeserializeSeed<'de> for MessagesSeed<'_> {
    type Value = Vec<Message<'de>>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for MessagesSeed<'_> {
    type Value = Vec<Message<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of messages")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut messages = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        loop {
            let i = messages.len();
            match seq
                .next_element_seed(MessageSeed {
                    fault: &mut *self.fault,
                })
                .map_err(|e| self.fault.at(Seg::Index(i), e))?
            {
                Some(m) => messages.push(m),
                None => return Ok(messages),
            }
        }
    }
}

struct MessageSeed<'f> {
    fault: &'f mut Fault,
}

impl<'de> DeserializeSeed<'de> for MessageSeed<'_> {
    type Value = Message<'de>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MessageSeed<'_> {
    type Value = Message<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a message object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let fault = self.fault;
        let mut role = None;
        let mut m = Message {
            role: Role::User,
            content: None,
            name: None,
            tool_calls: None,
            tool_call_id: None,
            refusal: None,
            function_call: None,
            audio: None,
            reasoning_content: None,
            reasoning_signature: None,
            redacted_reasoning: None,
            cache_control: None,
        };
        while let Some(key) = map.next_key::<&'de str>()? {
            match key {
                "role" => role = value::<Option<Role>, _>(&mut map, fault, "role")?,
                "content" => {
                    m.content = map
                        .next_value_seed(OptionSeed(ContentSeed { fault: &mut *fault }))
                        .map_err(|e| fault.at(Seg::Key("content"), e))?;
                }
                "name" => m.name = value(&mut map, fault, "name")?,
                "tool_calls" => m.tool_calls = seq(&mut map, fault, "tool_calls")?,
                "tool_call_id" => m.tool_call_id = value(&mut map, fault, "tool_call_id")?,
                "refusal" => m.refusal = value(&mut map, fault, "refusal")?,
                "function_call" => m.function_call = value(&mut map, fault, "function_call")?,
                "audio" => m.audio = value(&mut map, fault, "audio")?,
                "reasoning_content" => m.reasoning_content = value(&mut map, fault, "reasoning_content")?,
                "reasoning_signature" => {
                    m.reasoning_signature = value(&mut map, fault, "reasoning_signature")?;
                }
                "redacted_reasoning" => m.redacted_reasoning = seq(&mut map, fault, "redacted_reasoning")?,
                "cache_control" => m.cache_control = value(&mut map, fault, "cache_control")?,
                // Other members some clients echo back (`annotations`, …) carry nothing
                // Bedrock can use.
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        m.role = role.ok_or_else(|| fault.missing("role"))?;
        Ok(m)
    }
}

impl<'de> Deserialize<'de> for Role {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RoleVisitor;
        impl Visitor<'_> for RoleVisitor {
            type Value = Role;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a role string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Role, E> {
                Ok(match v {
                    "system" => Role::System,
                    "developer" => Role::Developer,
                    "user" => Role::User,
                    "assistant" => Role::Assistant,
                    "tool" => Role::Tool,
                    "function" => Role::Function,
                    other => return Err(E::unknown_variant(other, ROLES)),
                })
            }
        }
        deserializer.deserialize_str(RoleVisitor)
    }
}

// === content ===

struct ContentSeed<'f> {
    fault: &'f mut Fault,
}

impl<'de> DeserializeSeed<'de> for ContentSeed<'_> {
    type Value = Content<'de>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ContentSeed<'_> {
    type Value = Content<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, an array of content parts or null")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Content::Text(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut parts = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(256));
        loop {
            let i = parts.len();
            match seq
                .next_element_seed(PartSeed {
                    fault: &mut *self.fault,
                })
                .map_err(|e| self.fault.at(Seg::Index(i), e))?
            {
                Some(p) => parts.push(p),
                None => return Ok(Content::Parts(parts)),
            }
        }
    }
}

struct PartSeed<'f> {
    fault: &'f mut Fault,
}

impl<'de> DeserializeSeed<'de> for PartSeed<'_> {
    type Value = ContentPart<'de>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for PartSeed<'_> {
    type Value = ContentPart<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a content part object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let fault = self.fault;
        let mut kind = None;
        let mut p = ContentPart::default();
        while let Some(key) = map.next_key::<&'de str>()? {
            match key {
                "type" => kind = value::<Option<&'de str>, _>(&mut map, fault, "type")?,
                "text" => p.text = value(&mut map, fault, "text")?,
                "refusal" => p.refusal = value(&mut map, fault, "refusal")?,
                "image_url" => p.image_url = value(&mut map, fault, "image_url")?,
                "input_audio" => p.input_audio = value(&mut map, fault, "input_audio")?,
                "file" => p.file = value(&mut map, fault, "file")?,
                "prompt_cache_breakpoint" => {
                    p.prompt_cache_breakpoint = value(&mut map, fault, "prompt_cache_breakpoint")?;
                }
                "cache_control" => p.cache_control = value(&mut map, fault, "cache_control")?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        p.kind = kind.ok_or_else(|| fault.missing("type"))?;
        Ok(p)
    }
}

// === stop ===

struct StopSeed<'f> {
    fault: &'f mut Fault,
}

impl<'de> DeserializeSeed<'de> for StopSeed<'_> {
    type Value = Stop<'de>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StopSeed<'_> {
    type Value = Stop<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, an array of strings or null")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Stop::One(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut all = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        loop {
            let i = all.len();
            match seq
                .next_element::<&'de str>()
                .map_err(|e| self.fault.at(Seg::Index(i), e))?
            {
                Some(s) => all.push(s),
                None => return Ok(Stop::Many(all)),
            }
        }
    }
}

// === small value types ===

/// `null` → `None`, anything else → the inner seed (visitors that use `deserialize_any` would
/// otherwise have to handle `null` themselves).
struct OptionSeed<S>(S);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for OptionSeed<S> {
    type Value = Option<S::Value>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_option(self)
    }
}

impl<'de, S: DeserializeSeed<'de>> Visitor<'de> for OptionSeed<S> {
    type Value = Option<S::Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        self.0.deserialize(deserializer).map(Some)
    }
}

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(deserializer).map(|_| Present)
    }
}

/// An array of `T`, noting the index of a bad element.
struct SeqSeed<'f, T> {
    fault: &'f mut Fault,
    element: PhantomData<T>,
}

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for SeqSeed<'_, T> {
    type Value = Vec<T>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for SeqSeed<'_, T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut all = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(256));
        loop {
            let i = all.len();
            match seq
                .next_element::<T>()
                .map_err(|e| self.fault.at(Seg::Index(i), e))?
            {
                Some(v) => all.push(v),
                None => return Ok(all),
            }
        }
    }
}

#[derive(Deserialize)]
struct NameRef<'a> {
    #[serde(borrow)]
    name: &'a str,
}

#[derive(Deserialize)]
struct RawToolChoice<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    #[serde(borrow, default)]
    function: Option<NameRef<'a>>,
    #[serde(borrow, default)]
    allowed_tools: Option<RawAllowedTools<'a>>,
}

#[derive(Deserialize)]
struct RawAllowedTools<'a> {
    #[serde(borrow)]
    mode: &'a str,
    #[serde(borrow)]
    tools: Vec<RawAllowedTool<'a>>,
}

#[derive(Deserialize)]
struct RawAllowedTool<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    #[serde(borrow, default)]
    function: Option<NameRef<'a>>,
}

impl<'de> Deserialize<'de> for ToolChoice<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ChoiceVisitor;
        impl<'de> Visitor<'de> for ChoiceVisitor {
            type Value = ToolChoice<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an object")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(ToolChoice::Mode(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let raw = RawToolChoice::deserialize(de::value::MapAccessDeserializer::new(map))?;
                match raw.kind {
                    "function" => raw
                        .function
                        .map(|f| ToolChoice::Function(f.name))
                        .ok_or_else(|| de::Error::missing_field("function")),
                    "allowed_tools" => {
                        let allowed = raw
                            .allowed_tools
                            .ok_or_else(|| de::Error::missing_field("allowed_tools"))?;
                        let mut tools = Vec::with_capacity(allowed.tools.len());
                        for tool in allowed.tools {
                            match (tool.kind, tool.function) {
                                ("function", Some(f)) => tools.push(f.name),
                                ("function", None) => return Err(de::Error::missing_field("function")),
                                (other, _) => {
                                    return Err(de::Error::custom(format_args!(
                                        "allowed tools of type `{other}` are not supported; use `function`"
                                    )));
                                }
                            }
                        }
                        Ok(ToolChoice::AllowedTools {
                            mode: allowed.mode,
                            tools,
                        })
                    }
                    other => Ok(ToolChoice::Other(other)),
                }
            }
        }
        deserializer.deserialize_any(ChoiceVisitor)
    }
}

impl<'de> Deserialize<'de> for FunctionCallChoice<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ChoiceVisitor;
        impl<'de> Visitor<'de> for ChoiceVisitor {
            type Value = FunctionCallChoice<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"none\", \"auto\" or {\"name\": …}")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(FunctionCallChoice::Mode(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                NameRef::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|n| FunctionCallChoice::Name(n.name))
            }
        }
        deserializer.deserialize_any(ChoiceVisitor)
    }
}

impl<'de> Deserialize<'de> for ImageUrl<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw<'a> {
            #[serde(borrow)]
            url: &'a str,
            #[serde(borrow, default)]
            detail: Option<&'a str>,
        }
        struct UrlVisitor;
        impl<'de> Visitor<'de> for UrlVisitor {
            type Value = ImageUrl<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object with `url`, or a URL string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(ImageUrl { url: v, detail: None })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let raw = Raw::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(ImageUrl {
                    url: raw.url,
                    detail: raw.detail,
                })
            }
        }
        deserializer.deserialize_any(UrlVisitor)
    }
}

/// The number of members of an object whose values are not read.
struct ObjectLen(usize);

impl<'de> Deserialize<'de> for ObjectLen {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LenVisitor;
        impl<'de> Visitor<'de> for LenVisitor {
            type Value = ObjectLen;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ObjectLen, A::Error> {
                let mut n = 0;
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(ObjectLen(n))
            }
        }
        deserializer.deserialize_map(LenVisitor)
    }
}

#[cfg(test)]
mod tests;
