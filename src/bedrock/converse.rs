//! Converse wire types: the request body (serialized, borrowing the client's strings) and the
//! response body (deserialized in place), named and cased as in the service model
//! (reference: bedrock-converse §4, §5).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

use crate::json;

// === request ===

/// The body of `POST /model/{modelId}/converse` and `/converse-stream`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseRequest<'a> {
    /// System prompt blocks; omitted when empty, since Bedrock rejects blank system text.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub system: Vec<SystemContentBlock<'a>>,
    /// The conversation: non-empty, starting with `user`, roles alternating.
    pub messages: Vec<Message<'a>>,
    /// Generation limits; omitted when nothing is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inference_config: Option<InferenceConfig<'a>>,
    /// Tool definitions and the tool choice; required whenever the history holds tool blocks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_config: Option<ToolConfig<'a>>,
    /// Guardrail to apply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guardrail_config: Option<GuardrailConfig<'a>>,
    /// Model-native parameters passed through to the provider (a JSON object).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub additional_model_request_fields: Option<JsonValue<'a>>,
    /// Values for the variables of a prompt-management prompt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_variables: Option<PromptVariables<'a>>,
    /// Key-value pairs Bedrock records with the invocation (1..=16 pairs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_metadata: Option<StrMap<'a>>,
    /// Latency-optimized inference.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub performance_config: Option<PerformanceConfig<'a>>,
    /// Requested service tier; omitted for the default routing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<ServiceTier<'a>>,
    /// Structured output and effort.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_config: Option<OutputConfig<'a>>,
}

/// The two roles Bedrock knows; there is no `system` or `tool` role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConversationRole {
    /// The human side, also carrying tool results.
    User,
    /// The model side.
    Assistant,
}

/// One conversation turn.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message<'a> {
    /// Who speaks.
    pub role: ConversationRole,
    /// What is said; never empty when sent.
    pub content: Vec<ContentBlock<'a>>,
}

/// A content block: a union serialized as an object with exactly one key.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ContentBlock<'a> {
    /// Non-empty text (`{"text": "…"}`).
    Text(&'a str),
    /// An image, inline or in S3.
    Image(ImageBlock<'a>),
    /// A document (PDF, CSV, …) given inline.
    Document(DocumentBlock<'a>),
    /// Audio given inline.
    Audio(AudioBlock<'a>),
    /// A tool call the assistant made (assistant turns only).
    ToolUse(ToolUse<'a>),
    /// The answer to a tool call (user turns only).
    ToolResult(ToolResult<'a>),
    /// The model's reasoning, sent back unmodified (assistant turns only).
    ReasoningContent(ReasoningContent<'a>),
    /// A prompt-cache checkpoint after the preceding block.
    CachePoint(CachePoint<'a>),
}

impl ContentBlock<'_> {
    /// Whether the block is a tool result.
    pub fn is_tool_result(&self) -> bool {
        matches!(self, Self::ToolResult(_))
    }

    /// Whether the block is a cache point.
    pub fn is_cache_point(&self) -> bool {
        matches!(self, Self::CachePoint(_))
    }
}

/// `image`: `{"format": "png", "source": {"bytes": "<base64>"}}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageBlock<'a> {
    /// `png`, `jpeg`, `gif` or `webp`.
    pub format: &'static str,
    /// Where the image is.
    pub source: MediaSource<'a>,
}

/// The `source` union of images and documents.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum MediaSource<'a> {
    /// Standard base64 with padding, as a JSON string.
    Bytes(Cow<'a, str>),
    /// An object in S3.
    S3Location(S3Location<'a>),
}

/// `s3Location`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct S3Location<'a> {
    /// `s3://bucket/key`.
    pub uri: &'a str,
}

/// `document`: `{"format": "pdf", "name": "report", "source": {"bytes": "<base64>"}}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DocumentBlock<'a> {
    /// `pdf`, `csv`, `doc`, `docx`, `xls`, `xlsx`, `html`, `txt` or `md`.
    pub format: &'static str,
    /// 1..=200 characters: alphanumerics, single spaces, hyphens, parentheses, square brackets.
    pub name: String,
    /// The document bytes.
    pub source: MediaSource<'a>,
}

/// `audio`: `{"format": "wav", "source": {"bytes": "<base64>"}}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AudioBlock<'a> {
    /// `wav` or `mp3` (what OpenAI's `input_audio` carries).
    pub format: &'a str,
    /// The audio bytes.
    pub source: MediaSource<'a>,
}

/// `toolUse` in a request: a call from an earlier assistant turn.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUse<'a> {
    /// `[a-zA-Z0-9_.:-]{1,64}`.
    pub tool_use_id: Cow<'a, str>,
    /// `[a-zA-Z0-9_-]{1,64}`.
    pub name: &'a str,
    /// The arguments, a JSON object.
    pub input: JsonValue<'a>,
}

/// `toolResult`: the answer to one `toolUse` of the previous assistant turn.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolResult<'a> {
    /// The id of the `toolUse` answered.
    pub tool_use_id: Cow<'a, str>,
    /// The result.
    pub content: Vec<ToolResultContent<'a>>,
}

/// One block of a tool result.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ToolResultContent<'a> {
    /// Text, kept as text even when it looks like JSON (lossless; every model takes text).
    Text(&'a str),
}

/// `reasoningContent` in a request: an earlier turn's reasoning, byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ReasoningContent<'a> {
    /// Reasoning text with the signature that lets the provider verify it.
    ReasoningText(ReasoningText<'a>),
    /// Reasoning the provider encrypted (base64).
    RedactedContent(&'a str),
}

/// `reasoningText`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReasoningText<'a> {
    /// The reasoning.
    pub text: &'a str,
    /// The provider's signature over `text`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<&'a str>,
}

/// `cachePoint`: everything before it (in system, tools or messages) may be cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CachePoint<'a> {
    /// Always `default`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `5m` or `1h`; omitted for the provider default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<&'a str>,
}

impl<'a> CachePoint<'a> {
    /// A cache point with the default time to live, or `ttl`.
    pub fn new(ttl: Option<&'a str>) -> Self {
        Self { kind: "default", ttl }
    }
}

/// A system prompt block.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum SystemContentBlock<'a> {
    /// Non-empty text.
    Text(&'a str),
    /// A prompt-cache checkpoint after the preceding block.
    CachePoint(CachePoint<'a>),
}

/// `toolConfig`: at least one tool, and optionally the choice.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolConfig<'a> {
    /// Tool specifications (and cache points); never empty.
    pub tools: Vec<Tool<'a>>,
    /// Omitted for the model's default (`auto`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice<'a>>,
}

/// One entry of `toolConfig.tools`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Tool<'a> {
    /// A function the model may call.
    ToolSpec(ToolSpec<'a>),
    /// A prompt-cache checkpoint after the preceding tools.
    CachePoint(CachePoint<'a>),
}

/// `toolSpec`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolSpec<'a> {
    /// `[a-zA-Z0-9_-]{1,64}`.
    pub name: &'a str,
    /// Non-empty when present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<&'a str>,
    /// `{"json": <JSON Schema>}`.
    pub input_schema: InputSchema<'a>,
    /// Enforce the schema on the generated input (models flagged for it only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// `inputSchema`: a union whose only member is `json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InputSchema<'a> {
    /// The JSON Schema object.
    pub json: Cow<'a, JsonValue<'a>>,
}

/// `toolChoice`: exactly one member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ToolChoice<'a> {
    /// The model decides (`{"auto": {}}`).
    Auto(Empty),
    /// The model must call at least one tool (`{"any": {}}`).
    Any(Empty),
    /// The model must call this tool (`{"tool": {"name": …}}`).
    Tool(SpecificTool<'a>),
}

/// `{}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Empty {}

/// `{"name": …}` of a specific tool choice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpecificTool<'a> {
    /// The tool's name.
    pub name: &'a str,
}

/// `guardrailConfig` (ConverseStream's variant adds `streamProcessingMode`). Read from the
/// client's `bedrock` extension object as well, so it rejects unknown members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GuardrailConfig<'a> {
    /// Guardrail id or ARN.
    #[serde(borrow)]
    pub guardrail_identifier: &'a str,
    /// `DRAFT` or a version number.
    #[serde(borrow)]
    pub guardrail_version: &'a str,
    /// `enabled`, `disabled` or `enabled_full`.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<&'a str>,
    /// `sync` or `async`; ConverseStream only.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub stream_processing_mode: Option<&'a str>,
}

/// `performanceConfig`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PerformanceConfig<'a> {
    /// `standard` or `optimized`.
    #[serde(borrow)]
    pub latency: &'a str,
}

/// `outputConfig`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputConfig<'a> {
    /// Structured output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_format: Option<TextFormat<'a>>,
    /// Reasoning effort (`low`, `medium`, `high`, `xhigh`, `max`) for models that take it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effort: Option<&'a str>,
}

/// `outputConfig.textFormat`: `{"type": "json_schema", "structure": {"jsonSchema": …}}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TextFormat<'a> {
    /// Always `json_schema`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The schema.
    pub structure: TextFormatStructure<'a>,
}

/// The `structure` union of `textFormat`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum TextFormatStructure<'a> {
    /// A JSON Schema the reply must follow.
    JsonSchema(JsonSchemaDefinition<'a>),
}

/// `jsonSchema`: note that `schema` is the schema serialized to a string, not an object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JsonSchemaDefinition<'a> {
    /// The JSON Schema as JSON text.
    pub schema: String,
    /// The schema's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    /// What the schema is for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<&'a str>,
}

/// `inferenceConfig`: every member optional; Bedrock falls back to the model's defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InferenceConfig<'a> {
    /// Upper bound on generated tokens (>= 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Sampling temperature, 0..=1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling, 0..=1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Non-empty stop strings.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stop_sequences: Vec<&'a str>,
}

impl InferenceConfig<'_> {
    /// Whether no member is set (the object is then left out of the request).
    pub fn is_empty(&self) -> bool {
        self.max_tokens.is_none()
            && self.temperature.is_none()
            && self.top_p.is_none()
            && self.stop_sequences.is_empty()
    }
}

/// `serviceTier` (`{"type": "priority" | "default" | "flex" | "reserved"}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceTier<'a> {
    /// The tier name.
    #[serde(rename = "type", borrow)]
    pub tier: &'a str,
}

// === impl StrMap ===

/// A JSON object of string values, in the order given (`requestMetadata`, OpenAI's
/// `metadata`). Reading it rejects non-string values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StrMap<'a>(pub Vec<(&'a str, &'a str)>);

impl Serialize for StrMap<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for StrMap<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor;
        impl<'de> Visitor<'de> for MapVisitor {
            type Value = StrMap<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of string values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut pairs = Vec::new();
                while let Some((k, v)) = map.next_entry::<&'de str, &'de str>()? {
                    pairs.push((k, v));
                }
                Ok(StrMap(pairs))
            }
        }
        deserializer.deserialize_map(MapVisitor)
    }
}

// === impl PromptVariables ===

/// `promptVariables`: variable name → `{"text": value}`, in the order given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PromptVariables<'a>(pub Vec<(&'a str, &'a str)>);

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PromptVariableValue<'a> {
    #[serde(borrow)]
    text: &'a str,
}

impl Serialize for PromptVariables<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, text) in &self.0 {
            map.serialize_entry(name, &PromptVariableValue { text })?;
        }
        map.end()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for PromptVariables<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct VarsVisitor;
        impl<'de> Visitor<'de> for VarsVisitor {
            type Value = PromptVariables<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of {\"text\": …} values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut vars = Vec::new();
                while let Some((name, value)) = map.next_entry::<&'de str, PromptVariableValue<'de>>()? {
                    vars.push((name, value.text));
                }
                Ok(PromptVariables(vars))
            }
        }
        deserializer.deserialize_map(VarsVisitor)
    }
}

// === impl JsonValue ===

/// An arbitrary JSON value on its way from the client to Bedrock (a Smithy "document":
/// tool schemas, tool-call arguments, `additionalModelRequestFields`).
///
/// Strings borrow from the request buffer when they can; object members keep their order
/// (JSON Schema property order steers the order in which models generate fields) and
/// duplicates. Numbers are the parser's `i64`/`u64`/`f64`, so a decimal with more than 17
/// significant digits comes back rounded.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonValue<'a> {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A negative integer.
    I64(i64),
    /// A non-negative integer.
    U64(u64),
    /// Any other number.
    F64(f64),
    /// A string.
    Str(Cow<'a, str>),
    /// An array.
    Array(Vec<JsonValue<'a>>),
    /// An object, members in order.
    Object(Vec<(Cow<'a, str>, JsonValue<'a>)>),
}

impl<'a> JsonValue<'a> {
    /// `{}`.
    pub fn empty_object() -> Self {
        Self::Object(Vec::new())
    }

    /// `{"type":"object","properties":{}}`: the schema of a tool that takes no arguments.
    pub fn no_arguments_schema() -> Self {
        Self::Object(vec![
            (Cow::Borrowed("type"), Self::Str(Cow::Borrowed("object"))),
            (Cow::Borrowed("properties"), Self::empty_object()),
        ])
    }

    /// `{"type":"object"}`: any object at all.
    pub fn any_object_schema() -> Self {
        Self::Object(vec![(Cow::Borrowed("type"), Self::Str(Cow::Borrowed("object")))])
    }

    /// Whether this is an object.
    pub fn is_object(&self) -> bool {
        matches!(self, Self::Object(_))
    }

    /// The member `key` of an object (the last one, if repeated).
    pub fn get(&self, key: &str) -> Option<&JsonValue<'a>> {
        match self {
            Self::Object(members) => members.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Sets member `key` of an object, replacing an existing one; no effect on other values.
    pub fn insert(&mut self, key: Cow<'a, str>, value: JsonValue<'a>) {
        if let Self::Object(members) = self {
            members.retain(|(k, _)| *k != key);
            members.push((key, value));
        }
    }

    /// Copies every borrowed string, detaching the value from its buffer.
    pub fn into_owned(self) -> JsonValue<'static> {
        match self {
            Self::Null => JsonValue::Null,
            Self::Bool(b) => JsonValue::Bool(b),
            Self::I64(n) => JsonValue::I64(n),
            Self::U64(n) => JsonValue::U64(n),
            Self::F64(n) => JsonValue::F64(n),
            Self::Str(s) => JsonValue::Str(Cow::Owned(s.into_owned())),
            Self::Array(items) => JsonValue::Array(items.into_iter().map(JsonValue::into_owned).collect()),
            Self::Object(members) => JsonValue::Object(
                members
                    .into_iter()
                    .map(|(k, v)| (Cow::Owned(k.into_owned()), v.into_owned()))
                    .collect(),
            ),
        }
    }

    /// Compact JSON text.
    pub fn to_json_string(&self) -> String {
        let mut out = Vec::new();
        self.write_json(&mut out);
        // Only `&str` contents and ASCII punctuation were written.
        String::from_utf8(out).unwrap_or_default()
    }

    fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Self::Null => out.extend_from_slice(b"null"),
            Self::Bool(true) => out.extend_from_slice(b"true"),
            Self::Bool(false) => out.extend_from_slice(b"false"),
            Self::I64(n) => out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
            Self::U64(n) => json::write_u64(out, *n),
            Self::F64(n) => json::write_f64(out, *n),
            Self::Str(s) => json::write_str(out, s),
            Self::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    item.write_json(out);
                }
                out.push(b']');
            }
            Self::Object(members) => {
                out.push(b'{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    json::write_str(out, k);
                    out.push(b':');
                    v.write_json(out);
                }
                out.push(b'}');
            }
        }
    }
}

impl Serialize for JsonValue<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Null => serializer.serialize_unit(),
            Self::Bool(b) => serializer.serialize_bool(*b),
            Self::I64(n) => serializer.serialize_i64(*n),
            Self::U64(n) => serializer.serialize_u64(*n),
            Self::F64(n) => serializer.serialize_f64(*n),
            Self::Str(s) => serializer.serialize_str(s),
            Self::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Self::Object(members) => {
                let mut map = serializer.serialize_map(Some(members.len()))?;
                for (k, v) in members {
                    map.serialize_entry(k.as_ref(), v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for JsonValue<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonValueVisitor)
    }
}

struct JsonValueVisitor;

impl<'de> Visitor<'de> for JsonValueVisitor {
    type Value = JsonValue<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(JsonValue::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(if v >= 0 {
            JsonValue::U64(v.unsigned_abs())
        } else {
            JsonValue::I64(v)
        })
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(JsonValue::U64(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(JsonValue::F64(v))
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(JsonValue::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(JsonValue::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(JsonValue::Str(Cow::Owned(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(JsonValue::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(JsonValue::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(JsonValue::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(0).min(1024));
        while let Some(key) = map.next_key::<CowStr<'de>>()? {
            members.push((key.0, map.next_value()?));
        }
        Ok(JsonValue::Object(members))
    }
}

/// A string that borrows when the deserializer can lend it (serde's own `Cow<str>` always
/// copies).
struct CowStr<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StrVisitor;
        impl<'de> Visitor<'de> for StrVisitor {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(StrVisitor)
    }
}

// === response ===

/// The body of a successful Converse response. Members the gateway does not use (`metrics`,
/// `trace`, `performanceConfig`, `additionalModelResponseFields`) are skipped.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseResponse<'a> {
    /// The generated message; always present in a valid response.
    #[serde(borrow)]
    pub output: Option<ConverseOutput<'a>>,
    /// Why generation stopped (`end_turn`, `tool_use`, `max_tokens`, …).
    #[serde(borrow)]
    pub stop_reason: Option<&'a str>,
    /// Token counts.
    pub usage: Option<TokenUsage>,
    /// The tier that served the request.
    #[serde(borrow)]
    pub service_tier: Option<ServiceTier<'a>>,
}

/// `output`: a union whose only member is `message`.
#[derive(Debug, Deserialize)]
pub struct ConverseOutput<'a> {
    /// The assistant message.
    #[serde(borrow)]
    pub message: Option<OutputMessage<'a>>,
}

/// The assistant message in a Converse response.
#[derive(Debug, Deserialize)]
pub struct OutputMessage<'a> {
    /// Always `assistant` in practice.
    #[serde(borrow)]
    pub role: Option<&'a str>,
    /// The blocks, in output order.
    #[serde(borrow, default)]
    pub content: Vec<OutputContentBlock<'a>>,
}

/// One output block. The union is read as a flat struct: exactly one member is set, and
/// members the gateway does not surface (`image`, …) are skipped.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputContentBlock<'a> {
    /// Generated text.
    #[serde(borrow)]
    pub text: Option<&'a str>,
    /// A tool call.
    #[serde(borrow)]
    pub tool_use: Option<ToolUseBlock<'a>>,
    /// Generated text with citations into supplied documents.
    #[serde(borrow)]
    pub citations_content: Option<CitationsContentBlock<'a>>,
    /// The model's reasoning.
    #[serde(borrow)]
    pub reasoning_content: Option<ReasoningContentBlock<'a>>,
}

/// `reasoningContent` in a response: a union of `reasoningText` and `redactedContent`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReasoningContentBlock<'a> {
    /// Reasoning text and its signature.
    #[serde(borrow)]
    pub reasoning_text: Option<ReasoningTextBlock<'a>>,
    /// Encrypted reasoning (base64).
    #[serde(borrow)]
    pub redacted_content: Option<&'a str>,
}

/// `reasoningText` in a response.
#[derive(Debug, Default, Deserialize)]
pub struct ReasoningTextBlock<'a> {
    /// The reasoning.
    #[serde(borrow, default)]
    pub text: &'a str,
    /// The provider's signature over `text`, needed to send it back.
    #[serde(borrow)]
    pub signature: Option<&'a str>,
}

/// `toolUse` in a response.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUseBlock<'a> {
    /// Bedrock's id (`tooluse_…`), returned to the client unchanged.
    pub tool_use_id: &'a str,
    /// The tool name.
    pub name: &'a str,
    /// The arguments as compact JSON; absent means `{}`.
    pub input: Option<Document>,
}

/// `citationsContent`: generated text split into cited pieces.
#[derive(Debug, Deserialize)]
pub struct CitationsContentBlock<'a> {
    /// The generated text pieces, in order.
    #[serde(borrow, default)]
    pub content: Vec<CitationGeneratedContent<'a>>,
}

/// One piece of generated text inside `citationsContent`.
#[derive(Debug, Deserialize)]
pub struct CitationGeneratedContent<'a> {
    /// The text.
    #[serde(borrow)]
    pub text: Option<&'a str>,
}

/// `usage` in a Converse response and in the stream's `metadata` event. `inputTokens` excludes
/// tokens read from or written to the prompt cache (reference: bedrock-converse §5.2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenUsage {
    /// Input tokens neither read from nor written to the cache.
    #[serde(default)]
    pub input_tokens: u64,
    /// Generated tokens, reasoning included.
    #[serde(default)]
    pub output_tokens: u64,
    /// Bedrock's total; the gateway computes its own from the parts.
    #[serde(default)]
    pub total_tokens: u64,
    /// Input tokens served from the prompt cache.
    #[serde(default)]
    pub cache_read_input_tokens: u64,
    /// Input tokens written to the prompt cache.
    #[serde(default)]
    pub cache_write_input_tokens: u64,
}

// === impl Document ===

/// An arbitrary JSON value (Smithy's "document", e.g. `toolUse.input`), re-encoded as compact
/// JSON while it is deserialized, without building a value tree.
///
/// Numbers go through the parser's `i64`/`u64`/`f64`, so an integer beyond 64 bits or a decimal
/// with more than 17 significant digits comes back rounded; floats are written in the shortest
/// form that round-trips (`21.0` stays `21.0`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Document(pub String);

impl<'de> Deserialize<'de> for Document {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut out = Vec::new();
        Transcode(&mut out).deserialize(deserializer)?;
        // Only `&str` contents and ASCII punctuation were written, so this cannot fail.
        String::from_utf8(out).map(Self).map_err(de::Error::custom)
    }
}

/// Writes the visited JSON value compactly into the buffer.
struct Transcode<'o>(&'o mut Vec<u8>);

impl<'de> DeserializeSeed<'de> for Transcode<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Transcode<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.0.extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.0.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        json::write_u64(self.0, v);
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        json::write_f64(self.0, v);
        Ok(())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        json::write_str(self.0, v);
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.0.extend_from_slice(b"null");
        Ok(())
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.0.push(b'[');
        let mut first = true;
        loop {
            let mark = self.0.len();
            if !first {
                self.0.push(b',');
            }
            if seq.next_element_seed(Transcode(&mut *self.0))?.is_none() {
                self.0.truncate(mark);
                break;
            }
            first = false;
        }
        self.0.push(b']');
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.0.push(b'{');
        let mut first = true;
        loop {
            let mark = self.0.len();
            if !first {
                self.0.push(b',');
            }
            if map.next_key_seed(KeyTranscode(&mut *self.0))?.is_none() {
                self.0.truncate(mark);
                break;
            }
            self.0.push(b':');
            map.next_value_seed(Transcode(&mut *self.0))?;
            first = false;
        }
        self.0.push(b'}');
        Ok(())
    }
}

/// Writes an object key as a JSON string.
struct KeyTranscode<'o>(&'o mut Vec<u8>);

impl<'de> DeserializeSeed<'de> for KeyTranscode<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyTranscode<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        json::write_str(self.0, v);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_request() -> ConverseRequest<'static> {
        ConverseRequest {
            system: vec![SystemContentBlock::Text("Be terse.")],
            messages: vec![Message {
                role: ConversationRole::User,
                content: vec![ContentBlock::Text("Hi \"there\"\n")],
            }],
            inference_config: Some(InferenceConfig {
                max_tokens: Some(64),
                temperature: Some(0.3),
                top_p: None,
                stop_sequences: vec!["END"],
            }),
            ..ConverseRequest::default()
        }
    }

    #[test]
    fn request_serializes_camel_case_and_skips_unset_members() {
        let mut out = Vec::new();
        simd_json::serde::to_writer(&mut out, &mk_request()).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "system": [{"text": "Be terse."}],
                "messages": [{"role": "user", "content": [{"text": "Hi \"there\"\n"}]}],
                "inferenceConfig": {"maxTokens": 64, "temperature": 0.3, "stopSequences": ["END"]}
            })
        );
    }

    #[test]
    fn empty_system_and_inference_config_are_left_out() {
        let mut req = mk_request();
        req.system.clear();
        req.inference_config = None;
        let mut out = Vec::new();
        simd_json::serde::to_writer(&mut out, &req).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"messages":[{"role":"user","content":[{"text":"Hi \"there\"\n"}]}]}"#
        );
    }

    #[test]
    fn document_is_re_encoded_compactly() {
        let mut raw =
            br#"{"input": {"city" : "Paris", "days":[1, 2.5, -3], "ok":true, "n":null, "q":"a\"b\u00e9"}}"#
                .to_vec();
        #[derive(Deserialize)]
        struct Holder {
            input: Document,
        }
        let h: Holder = simd_json::serde::from_slice(&mut raw).unwrap();
        assert_eq!(
            h.input.0,
            r#"{"city":"Paris","days":[1,2.5,-3],"ok":true,"n":null,"q":"a\"bé"}"#
        );
    }

    #[test]
    fn empty_document_containers_stay_empty() {
        let mut raw = br#"{"input": {"a": {}, "b": []}}"#.to_vec();
        #[derive(Deserialize)]
        struct Holder {
            input: Document,
        }
        let h: Holder = simd_json::serde::from_slice(&mut raw).unwrap();
        assert_eq!(h.input.0, r#"{"a":{},"b":[]}"#);
    }

    #[test]
    fn response_skips_unknown_members() {
        let mut raw = br#"{"output":{"message":{"role":"assistant","content":[
            {"reasoningContent":{"reasoningText":{"text":"hmm","signature":"x"}}},
            {"text":"Hello"},
            {"toolUse":{"toolUseId":"tooluse_1","name":"f","input":{}}}]}},
            "stopReason":"tool_use","usage":{"inputTokens":3,"outputTokens":4,"totalTokens":7},
            "metrics":{"latencyMs":5},"p":"abc"}"#
            .to_vec();
        let r: ConverseResponse<'_> = simd_json::serde::from_slice(&mut raw).unwrap();
        let content = &r.output.unwrap().message.unwrap().content;
        assert_eq!(content.len(), 3);
        assert!(content[0].text.is_none() && content[0].tool_use.is_none());
        let reasoning = content[0].reasoning_content.as_ref().unwrap();
        let text = reasoning.reasoning_text.as_ref().unwrap();
        assert_eq!((text.text, text.signature), ("hmm", Some("x")));
        assert_eq!(content[1].text, Some("Hello"));
        assert_eq!(content[2].tool_use.as_ref().unwrap().tool_use_id, "tooluse_1");
        assert_eq!(r.stop_reason, Some("tool_use"));
        assert_eq!(r.usage.unwrap().cache_read_input_tokens, 0);
    }

    fn to_value<T: Serialize>(v: &T) -> serde_json::Value {
        let mut out = Vec::new();
        simd_json::serde::to_writer(&mut out, v).unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn content_blocks_serialize_as_one_key_unions() {
        let blocks = vec![
            ContentBlock::Image(ImageBlock {
                format: "png",
                source: MediaSource::Bytes(Cow::Borrowed("iVBORw0KGgo=")),
            }),
            ContentBlock::ToolUse(ToolUse {
                tool_use_id: Cow::Borrowed("call_1"),
                name: "f",
                input: JsonValue::empty_object(),
            }),
            ContentBlock::ToolResult(ToolResult {
                tool_use_id: Cow::Borrowed("call_1"),
                content: vec![ToolResultContent::Text("r")],
            }),
            ContentBlock::ReasoningContent(ReasoningContent::ReasoningText(ReasoningText {
                text: "t",
                signature: Some("s"),
            })),
            ContentBlock::ReasoningContent(ReasoningContent::RedactedContent("AAAA")),
            ContentBlock::CachePoint(CachePoint::new(None)),
            ContentBlock::CachePoint(CachePoint::new(Some("1h"))),
        ];
        assert_eq!(
            to_value(&blocks),
            serde_json::json!([
                {"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}},
                {"toolUse": {"toolUseId": "call_1", "name": "f", "input": {}}},
                {"toolResult": {"toolUseId": "call_1", "content": [{"text": "r"}]}},
                {"reasoningContent": {"reasoningText": {"text": "t", "signature": "s"}}},
                {"reasoningContent": {"redactedContent": "AAAA"}},
                {"cachePoint": {"type": "default"}},
                {"cachePoint": {"type": "default", "ttl": "1h"}}
            ])
        );
    }

    #[test]
    fn tool_config_and_extensions_serialize_like_botocore() {
        let req = ConverseRequest {
            tool_config: Some(ToolConfig {
                tools: vec![
                    Tool::ToolSpec(ToolSpec {
                        name: "get_time",
                        description: None,
                        input_schema: InputSchema {
                            json: Cow::Owned(JsonValue::no_arguments_schema()),
                        },
                        strict: None,
                    }),
                    Tool::CachePoint(CachePoint::new(None)),
                ],
                tool_choice: Some(ToolChoice::Tool(SpecificTool { name: "get_time" })),
            }),
            request_metadata: Some(StrMap(vec![("user", "u-1")])),
            prompt_variables: Some(PromptVariables(vec![("topic", "cats")])),
            output_config: Some(OutputConfig {
                text_format: Some(TextFormat {
                    kind: "json_schema",
                    structure: TextFormatStructure::JsonSchema(JsonSchemaDefinition {
                        schema: r#"{"type":"object"}"#.to_owned(),
                        name: Some("s"),
                        description: None,
                    }),
                }),
                effort: None,
            }),
            ..mk_request()
        };
        let v = to_value(&req);
        assert_eq!(
            v["toolConfig"],
            serde_json::json!({"tools": [
                {"toolSpec": {"name": "get_time", "inputSchema": {"json": {"type": "object", "properties": {}}}}},
                {"cachePoint": {"type": "default"}}],
                "toolChoice": {"tool": {"name": "get_time"}}})
        );
        assert_eq!(v["requestMetadata"], serde_json::json!({"user": "u-1"}));
        assert_eq!(
            v["promptVariables"],
            serde_json::json!({"topic": {"text": "cats"}})
        );
        assert_eq!(
            v["outputConfig"],
            serde_json::json!({"textFormat": {"type": "json_schema",
                "structure": {"jsonSchema": {"schema": "{\"type\":\"object\"}", "name": "s"}}}})
        );
        assert_eq!(
            to_value(&ToolChoice::Any(Empty {})),
            serde_json::json!({"any": {}})
        );
    }

    #[test]
    fn json_value_keeps_member_order_duplicates_and_borrows_strings() {
        let mut raw = br#"{"z":1,"a":[true,null,-2,2.5,"s\"q"],"z":{"k":"v"}}"#.to_vec();
        let v: JsonValue<'_> = simd_json::serde::from_slice(&mut raw).unwrap();
        assert_eq!(
            v.to_json_string(),
            r#"{"z":1,"a":[true,null,-2,2.5,"s\"q"],"z":{"k":"v"}}"#
        );
        let mut out = Vec::new();
        simd_json::serde::to_writer(&mut out, &v).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"z":1,"a":[true,null,-2,2.5,"s\"q"],"z":{"k":"v"}}"#
        );
        assert_eq!(
            v.get("z"),
            Some(&JsonValue::Object(vec![(
                Cow::Borrowed("k"),
                JsonValue::Str(Cow::Borrowed("v"))
            )]))
        );
        let owned = v.into_owned();
        assert!(owned.is_object());
    }

    #[test]
    fn extension_members_reject_unknown_keys() {
        let mut raw = br#"{"guardrailIdentifier":"g1","guardrailVersion":"1","bogus":1}"#.to_vec();
        assert!(simd_json::serde::from_slice::<GuardrailConfig<'_>>(&mut raw).is_err());
        let mut raw = br#"{"topic":{"text":"cats"}}"#.to_vec();
        let vars: PromptVariables<'_> = simd_json::serde::from_slice(&mut raw).unwrap();
        assert_eq!(vars.0, vec![("topic", "cats")]);
        let mut raw = br#"{"a":1}"#.to_vec();
        assert!(simd_json::serde::from_slice::<StrMap<'_>>(&mut raw).is_err());
    }
}
