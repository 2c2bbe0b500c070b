//! OpenAI chat request → Converse request body (reference: mapping §2–§4, §6.3).
//!
//! Every OpenAI parameter is honoured, ignored because ignoring it is harmless (and then
//! listed in [`Translation::ignored`], which the service sends back in a response header), or
//! rejected with a 400 that names it; nothing is dropped silently. The Converse body borrows
//! every string it can from the parsed request and is serialized straight into the caller's
//! buffer.
//!
//! What depends on the model (named tool choice, strict tools, structured output, prompt
//! caching, reasoning budgets, guardrail defaults) comes from [`ModelOptions`], one per route.

mod media;
mod messages;
mod tools;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

use crate::bedrock::converse::{
    CachePoint, ContentBlock, ConversationRole, ConverseRequest, GuardrailConfig, InferenceConfig,
    JsonSchemaDefinition, JsonValue, OutputConfig, ServiceTier, StrMap, SystemContentBlock, TextFormat,
    TextFormatStructure, Tool,
};
use crate::error::InvalidRequest;
use crate::openai::request::{ChatCompletionRequest, ResponseFormat, Stop};
use crate::translate::response::ResponseShape;

pub use media::{RemoteImage, encode_base64, image_format_for_mime, remote_images};

/// Bedrock's limit on the `stopSequences` list. OpenAI documents at most 4; more are passed
/// through, and a model with a lower limit answers with Bedrock's own validation error.
pub const MAX_STOP_SEQUENCES: usize = 2500;

/// Anthropic's smallest thinking budget.
pub const MIN_THINKING_BUDGET: u32 = 1024;

/// Tokens left for the answer when reasoning is on and the client set no limit: Claude counts
/// thinking inside `max_tokens`, so the budget alone would leave nothing to say.
pub const THINKING_ANSWER_TOKENS: u32 = 4096;

/// Cache points one request may hold (Claude's and Nova's limit); automatic points are only
/// added below it.
pub const MAX_CACHE_POINTS: usize = 4;

/// Bedrock's limit on `requestMetadata` pairs.
pub const MAX_REQUEST_METADATA: usize = 16;

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

// === model options ===

/// What one model supports and the defaults it gets: the `options` of a model-mapping entry.
/// Everything is off by default, so an entry without options gets the conservative mapping.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelOptions {
    /// `tool_choice` naming one function → `{"tool": {"name": …}}` (Claude 3+, Nova); without
    /// it such a choice is a 400.
    pub supports_named_tool_choice: bool,
    /// `strict` on function definitions is passed as `toolSpec.strict`; without it `strict`
    /// is ignored (and reported).
    pub supports_strict_tools: bool,
    /// `response_format: json_schema` → `outputConfig.textFormat`; without it the schema
    /// becomes a forced tool whose arguments are returned as the message content.
    pub supports_structured_output: bool,
    /// `cache_control` markers become `cachePoint` blocks; without it they are ignored.
    pub supports_prompt_caching: bool,
    /// `input_audio` parts become audio blocks; without it they are a 400.
    pub supports_audio_input: bool,
    /// What `parallel_tool_calls: false` does: Converse cannot enforce it.
    pub parallel_tool_calls_false: ParallelToolCallsPolicy,
    /// How `reasoning_effort` levels map onto this model.
    pub reasoning: ReasoningOptions,
    /// Cache points the gateway adds on its own (needs `supports_prompt_caching`).
    pub cache_points: Vec<CachePlacement>,
    /// Guardrail applied when the request's `bedrock.guardrailConfig` names none.
    pub guardrail: Option<GuardrailDefaults>,
}

/// What to do with `parallel_tool_calls: false`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParallelToolCallsPolicy {
    /// Answer 400: the model may still call several tools at once.
    #[default]
    Reject,
    /// Accept it and report it as ignored.
    Ignore,
}

/// An OpenAI `reasoning_effort` level other than `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReasoningEffort {
    /// `minimal`.
    Minimal,
    /// `low`.
    Low,
    /// `medium`.
    Medium,
    /// `high`.
    High,
    /// `xhigh`.
    Xhigh,
    /// `max`.
    Max,
}

impl ReasoningEffort {
    /// The level as OpenAI spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Minimal => "minimal",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Xhigh => "xhigh",
            Self::Max => "max",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "minimal" => Self::Minimal,
            "low" => Self::Low,
            "medium" => Self::Medium,
            "high" => Self::High,
            "xhigh" => Self::Xhigh,
            "max" => Self::Max,
            _ => return None,
        })
    }
}

/// How `reasoning_effort` reaches one model. A level may appear in several members; a level
/// in none of them is a 400.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReasoningOptions {
    /// Claude extended thinking: `additionalModelRequestFields.thinking =
    /// {"type":"enabled","budget_tokens":N}` (N >= 1024), with `maxTokens` raised above N.
    pub thinking_budgets: BTreeMap<ReasoningEffort, u32>,
    /// Levels sent as `outputConfig.effort` (models with an effort parameter).
    pub effort: Vec<ReasoningEffort>,
    /// Model-native members merged into `additionalModelRequestFields` for a level (Nova's
    /// `reasoningConfig`, gpt-oss's `reasoning_effort`, …).
    pub fields: BTreeMap<ReasoningEffort, ConfigJson>,
}

impl ReasoningOptions {
    fn levels(&self) -> Vec<ReasoningEffort> {
        let mut all: Vec<ReasoningEffort> = self
            .thinking_budgets
            .keys()
            .chain(self.effort.iter())
            .chain(self.fields.keys())
            .copied()
            .collect();
        all.sort();
        all.dedup();
        all
    }
}

/// A JSON object from the configuration (YAML), kept for sending to Bedrock.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigJson(pub JsonValue<'static>);

impl<'de> Deserialize<'de> for ConfigJson {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = JsonValue::deserialize(deserializer)?.into_owned();
        if value.is_object() {
            Ok(Self(value))
        } else {
            Err(serde::de::Error::custom("expected a mapping (a JSON object)"))
        }
    }
}

/// Where the gateway adds a cache point by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CachePlacement {
    /// After the system prompt.
    System,
    /// After the tool definitions.
    Tools,
    /// At the end of the last user turn, so the next request reads the conversation so far.
    Messages,
}

/// A model's default guardrail.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardrailDefaults {
    /// Guardrail id or ARN.
    pub identifier: String,
    /// `DRAFT` or a version number.
    pub version: String,
    /// `enabled`, `disabled` or `enabled_full`.
    #[serde(default)]
    pub trace: Option<String>,
    /// `sync` or `async`, used for streams only.
    #[serde(default)]
    pub stream_processing_mode: Option<String>,
}

impl ModelOptions {
    /// Every problem with the options, for the config loader.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (level, budget) in &self.reasoning.thinking_budgets {
            if *budget < MIN_THINKING_BUDGET {
                problems.push(format!(
                    "options.reasoning.thinking_budgets.{}: must be at least {MIN_THINKING_BUDGET}",
                    level.as_str()
                ));
            }
        }
        if !self.cache_points.is_empty() && !self.supports_prompt_caching {
            problems.push("options.cache_points: needs supports_prompt_caching: true".to_owned());
        }
        if let Some(g) = &self.guardrail {
            if g.identifier.is_empty() {
                problems.push("options.guardrail.identifier: must not be empty".to_owned());
            }
            if !is_guardrail_version(&g.version) {
                problems.push("options.guardrail.version: expected DRAFT or a version number".to_owned());
            }
            if let Some(t) = &g.trace
                && !matches!(t.as_str(), "enabled" | "disabled" | "enabled_full")
            {
                problems
                    .push("options.guardrail.trace: expected enabled, disabled or enabled_full".to_owned());
            }
            if let Some(m) = &g.stream_processing_mode
                && !matches!(m.as_str(), "sync" | "async")
            {
                problems.push("options.guardrail.stream_processing_mode: expected sync or async".to_owned());
            }
        }
        problems
    }
}

fn is_guardrail_version(v: &str) -> bool {
    v == "DRAFT"
        || (!v.is_empty() && v.len() <= 8 && !v.starts_with('0') && v.bytes().all(|b| b.is_ascii_digit()))
}

// === the translation ===

/// An image the service fetched for an `http(s)` `image_url` before translating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedImage {
    /// The URL exactly as the client sent it.
    pub url: String,
    /// `png`, `jpeg`, `gif` or `webp`.
    pub format: &'static str,
    /// The image bytes in standard base64.
    pub base64: String,
}

/// Everything besides the request that decides the Converse body.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// Gateway-wide choices.
    pub options: &'a RequestOptions,
    /// The route's model options.
    pub model: &'a ModelOptions,
    /// Images fetched for `http(s)` URLs; empty when fetching is off.
    pub images: &'a [FetchedImage],
}

/// What the translation decided besides the body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Translation {
    /// How the reply must be shaped (structured-output tool, legacy `function_call`, …).
    pub response: ResponseShape,
    /// Request fields that were accepted but have no effect, in first-seen order.
    pub ignored: Ignored,
}

/// Request fields accepted without effect, each listed once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ignored(Vec<&'static str>);

impl Ignored {
    fn add(&mut self, field: &'static str) {
        if !self.0.contains(&field) {
            self.0.push(field);
        }
    }

    /// Whether nothing was ignored.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The fields, in first-seen order.
    pub fn fields(&self) -> &[&'static str] {
        &self.0
    }
}

impl fmt::Display for Ignored {
    /// `seed,store`: the value of the `x-ai-gateway-ignored-params` header.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, field) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(field)?;
        }
        Ok(())
    }
}

/// Translates a parsed chat request into a Converse request body appended to `out`, with the
/// default model options and no fetched images.
pub fn to_converse(
    req: &ChatCompletionRequest<'_>,
    opts: &RequestOptions,
    out: &mut Vec<u8>,
) -> Result<(), InvalidRequest> {
    let model = ModelOptions::default();
    let cx = Context {
        options: opts,
        model: &model,
        images: &[],
    };
    to_converse_with(req, &cx, out).map(|_| ())
}

/// Translates a parsed chat request into a Converse request body appended to `out`.
pub fn to_converse_with(
    req: &ChatCompletionRequest<'_>,
    cx: &Context<'_>,
    out: &mut Vec<u8>,
) -> Result<Translation, InvalidRequest> {
    let (converse, translation) = to_converse_request(req, cx)?;
    simd_json::serde::to_writer(out, &converse).map_err(|e| InvalidRequest {
        // Serializing these types into a Vec has no failure mode; kept as an error, not a panic.
        message: format!("could not encode the Bedrock request: {e}").into(),
        param: None,
        code: None,
    })?;
    Ok(translation)
}

/// Builds the Converse request, borrowing strings from `req` and `cx`.
pub fn to_converse_request<'a>(
    req: &'a ChatCompletionRequest<'a>,
    cx: &Context<'a>,
) -> Result<(ConverseRequest<'a>, Translation), InvalidRequest> {
    let mut t = Translation::default();
    check_parameters(req, cx.model, &mut t.ignored)?;
    let mut converted = messages::convert(req, cx, &mut t.ignored)?;
    let mut reasoning = reasoning(req, cx.model)?;
    if reasoning.thinking.is_some() && tool_turn_without_reasoning(&converted.messages) {
        // Claude requires the assistant turn of an open tool loop to start with its signed
        // reasoning when thinking is on. A client that did not send it back gets this turn
        // without thinking rather than Bedrock's 400 (reference: mapping §6.3, option b).
        reasoning.thinking = None;
        t.ignored.add("reasoning_effort");
    }
    let format = output_format(req, cx.model)?;
    let tool_config = tools::tool_config(
        req,
        cx.model,
        &converted.history,
        format.json_tool.as_ref(),
        reasoning.thinking.is_some(),
        &mut t,
    )?;

    let mut inference = inference_config(req, cx.options)?;
    let mut additional = JsonValue::empty_object();
    if let Some(budget) = reasoning.thinking {
        check_thinking_sampling(&inference)?;
        // Claude counts thinking inside max_tokens and requires max_tokens > budget: a limit
        // at or below the budget is taken as the room for the answer.
        inference.max_tokens = Some(match inference.max_tokens {
            None => budget.saturating_add(THINKING_ANSWER_TOKENS),
            Some(limit) if limit <= budget => budget.saturating_add(limit),
            Some(limit) => limit,
        });
        additional.insert(
            Cow::Borrowed("thinking"),
            JsonValue::Object(vec![
                (Cow::Borrowed("type"), JsonValue::Str(Cow::Borrowed("enabled"))),
                (Cow::Borrowed("budget_tokens"), JsonValue::U64(u64::from(budget))),
            ]),
        );
    }
    if let Some(JsonValue::Object(members)) = reasoning.fields {
        for (k, v) in members {
            additional.insert(Cow::Borrowed(k.as_ref()), v.clone());
        }
    }

    let ext = req.bedrock.as_ref();
    if let Some(fields) = ext.and_then(|e| e.additional_model_request_fields.as_ref()) {
        let JsonValue::Object(members) = fields else {
            return Err(InvalidRequest::invalid(
                "bedrock.additionalModelRequestFields",
                "`bedrock.additionalModelRequestFields` must be a JSON object",
            ));
        };
        // The client's explicit members win over what the gateway derived.
        for (k, v) in members {
            additional.insert(k.clone(), v.clone());
        }
    }

    let mut output_config = OutputConfig {
        text_format: format.native,
        effort: reasoning.effort,
    };
    if output_config.text_format.is_none() && output_config.effort.is_none() {
        output_config = OutputConfig::default();
    }

    let mut converse = ConverseRequest {
        system: std::mem::take(&mut converted.system),
        messages: std::mem::take(&mut converted.messages),
        inference_config: (!inference.is_empty()).then_some(inference),
        tool_config,
        guardrail_config: guardrail(req, cx.model)?,
        additional_model_request_fields: match &additional {
            JsonValue::Object(m) if m.is_empty() => None,
            _ => Some(additional),
        },
        prompt_variables: ext.and_then(|e| e.prompt_variables.clone()),
        request_metadata: request_metadata(req, &mut t.ignored)?,
        performance_config: performance(req)?,
        service_tier: service_tier(req.service_tier)?,
        output_config: (output_config != OutputConfig::default()).then_some(output_config),
    };
    if let Some(name) = format.json_tool {
        t.response.json_tool = Some(name.name.into());
    }
    automatic_cache_points(&mut converse, cx.model);
    Ok((converse, t))
}

// === parameters ===

/// Rejects what Bedrock cannot honour (reference: mapping §2) and notes what is ignored.
fn check_parameters(
    req: &ChatCompletionRequest<'_>,
    model: &ModelOptions,
    ignored: &mut Ignored,
) -> Result<(), InvalidRequest> {
    if let Some(key) = req.unknown.first() {
        return Err(InvalidRequest::unsupported_parameter(
            key.to_string(),
            format!("unrecognized request argument supplied: {key}"),
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
    if req.stream_options.and_then(|o| o.include_obfuscation) == Some(true) {
        ignored.add("stream_options.include_obfuscation");
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
    if req.parallel_tool_calls == Some(false) {
        match model.parallel_tool_calls_false {
            ParallelToolCallsPolicy::Reject => {
                return Err(InvalidRequest::unsupported_value(
                    "parallel_tool_calls",
                    "`parallel_tool_calls: false` cannot be enforced through Bedrock; leave it out",
                ));
            }
            ParallelToolCallsPolicy::Ignore => ignored.add("parallel_tool_calls"),
        }
    }
    // Harmless to ignore (reference: mapping §2): OpenAI itself only promises best effort for
    // `seed`, and the rest are storage, latency or OpenAI-cache hints.
    for (field, present) in [
        ("seed", req.seed.is_some()),
        ("store", req.store.is_some()),
        ("prediction", req.prediction.is_some()),
        ("verbosity", req.verbosity.is_some()),
        ("prompt_cache_key", req.prompt_cache_key.is_some()),
        ("prompt_cache_retention", req.prompt_cache_retention.is_some()),
        ("prompt_cache_options", req.prompt_cache_options.is_some()),
    ] {
        if present {
            ignored.add(field);
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

// === reasoning ===

/// What `reasoning_effort` turns into for this model.
#[derive(Debug, Default)]
struct Reasoning<'a> {
    /// Claude thinking budget.
    thinking: Option<u32>,
    /// `outputConfig.effort`.
    effort: Option<&'static str>,
    /// Members for `additionalModelRequestFields`.
    fields: Option<&'a JsonValue<'static>>,
}

fn reasoning<'a>(
    req: &ChatCompletionRequest<'_>,
    model: &'a ModelOptions,
) -> Result<Reasoning<'a>, InvalidRequest> {
    let level = match req.reasoning_effort {
        None | Some("none") => return Ok(Reasoning::default()),
        Some(s) => ReasoningEffort::parse(s).ok_or_else(|| {
            InvalidRequest::invalid(
                "reasoning_effort",
                format!(
                    "unknown reasoning effort `{s}`; expected none, minimal, low, medium, high, xhigh or max"
                ),
            )
        })?,
    };
    let r = &model.reasoning;
    let out = Reasoning {
        thinking: r.thinking_budgets.get(&level).copied(),
        effort: r.effort.contains(&level).then_some(level.as_str()),
        fields: r.fields.get(&level).map(|f| &f.0),
    };
    if out.thinking.is_none() && out.effort.is_none() && out.fields.is_none() {
        let levels = r.levels();
        let message = if levels.is_empty() {
            "`reasoning_effort` is not supported for this model; leave it out or send \"none\"".to_owned()
        } else {
            let names: Vec<&str> = levels.iter().map(|l| l.as_str()).collect();
            format!(
                "reasoning effort `{}` is not available for this model; use none or one of: {}",
                level.as_str(),
                names.join(", ")
            )
        };
        return Err(InvalidRequest::unsupported_value("reasoning_effort", message));
    }
    Ok(out)
}

/// Whether the last assistant turn calls tools without starting with reasoning.
fn tool_turn_without_reasoning(messages: &[crate::bedrock::converse::Message<'_>]) -> bool {
    messages
        .iter()
        .rev()
        .find(|m| m.role == ConversationRole::Assistant)
        .is_some_and(|m| {
            m.content.iter().any(|b| matches!(b, ContentBlock::ToolUse(_)))
                && !matches!(m.content.first(), Some(ContentBlock::ReasoningContent(_)))
        })
}

/// Claude's extended thinking rejects sampling changes (temperature must stay 1, top_p at
/// least 0.95); say so before Bedrock does.
fn check_thinking_sampling(inference: &InferenceConfig<'_>) -> Result<(), InvalidRequest> {
    if inference.temperature.is_some_and(|t| t != 1.0) {
        return Err(InvalidRequest::unsupported_value(
            "temperature",
            "`temperature` cannot be changed together with `reasoning_effort` on this model; leave it out or send 1",
        ));
    }
    if inference.top_p.is_some_and(|p| p < 0.95) {
        return Err(InvalidRequest::unsupported_value(
            "top_p",
            "`top_p` below 0.95 cannot be combined with `reasoning_effort` on this model",
        ));
    }
    Ok(())
}

// === structured output ===

/// The forced tool that emulates structured output: its input becomes the message content.
#[derive(Debug, Clone)]
struct JsonTool<'a> {
    name: &'a str,
    description: Option<&'a str>,
    schema: Cow<'a, JsonValue<'a>>,
    strict: Option<bool>,
}

/// Name of the emulation tool for `json_object` (and for a `json_schema` without a usable name).
const JSON_OBJECT_TOOL: &str = "json_response";

#[derive(Debug, Default)]
struct OutputFormat<'a> {
    native: Option<TextFormat<'a>>,
    json_tool: Option<JsonTool<'a>>,
}

fn output_format<'a>(
    req: &'a ChatCompletionRequest<'a>,
    model: &ModelOptions,
) -> Result<OutputFormat<'a>, InvalidRequest> {
    let Some(ResponseFormat { kind, json_schema }) = &req.response_format else {
        return Ok(OutputFormat::default());
    };
    match *kind {
        "text" => Ok(OutputFormat::default()),
        "json_object" => Ok(OutputFormat {
            native: None,
            json_tool: Some(JsonTool {
                name: JSON_OBJECT_TOOL,
                description: None,
                schema: Cow::Owned(JsonValue::any_object_schema()),
                strict: None,
            }),
        }),
        "json_schema" => {
            let format = json_schema
                .as_ref()
                .ok_or_else(|| tools::missing("response_format.json_schema"))?;
            if !tools::is_tool_name(format.name) {
                return Err(InvalidRequest::invalid(
                    "response_format.json_schema.name",
                    "`name` must be 1 to 64 characters of a-z, A-Z, 0-9, `_` and `-`",
                ));
            }
            let schema = match &format.schema {
                None => Cow::Owned(JsonValue::any_object_schema()),
                Some(s) if s.is_object() => Cow::Borrowed(s),
                Some(_) => {
                    return Err(InvalidRequest::invalid(
                        "response_format.json_schema.schema",
                        "`schema` must be a JSON Schema object",
                    ));
                }
            };
            if model.supports_structured_output {
                return Ok(OutputFormat {
                    native: Some(TextFormat {
                        kind: "json_schema",
                        structure: TextFormatStructure::JsonSchema(JsonSchemaDefinition {
                            schema: schema.to_json_string(),
                            name: Some(format.name),
                            description: format.description.filter(|d| !d.is_empty()),
                        }),
                    }),
                    json_tool: None,
                });
            }
            // Tool input is always an object, so only an object schema can be emulated.
            if let Some(JsonValue::Str(t)) = schema.get("type")
                && t != "object"
            {
                return Err(InvalidRequest::unsupported_value(
                    "response_format.json_schema.schema",
                    "this model has no native structured output, and the emulation needs a schema whose root `type` is `object`",
                ));
            }
            Ok(OutputFormat {
                native: None,
                json_tool: Some(JsonTool {
                    name: format.name,
                    description: format.description.filter(|d| !d.is_empty()),
                    schema,
                    strict: format.strict,
                }),
            })
        }
        other => Err(InvalidRequest::invalid(
            "response_format.type",
            format!("unknown response format `{other}`; expected `text`, `json_object` or `json_schema`"),
        )),
    }
}

// === Bedrock extension, metadata ===

fn guardrail<'a>(
    req: &'a ChatCompletionRequest<'a>,
    model: &'a ModelOptions,
) -> Result<Option<GuardrailConfig<'a>>, InvalidRequest> {
    let explicit = req.bedrock.as_ref().and_then(|e| e.guardrail_config.clone());
    let config = match explicit {
        Some(g) => {
            if !is_guardrail_version(g.guardrail_version) {
                return Err(InvalidRequest::invalid(
                    "bedrock.guardrailConfig.guardrailVersion",
                    "`guardrailVersion` must be DRAFT or a version number",
                ));
            }
            if let Some(t) = g.trace
                && !matches!(t, "enabled" | "disabled" | "enabled_full")
            {
                return Err(InvalidRequest::invalid(
                    "bedrock.guardrailConfig.trace",
                    "`trace` must be enabled, disabled or enabled_full",
                ));
            }
            match g.stream_processing_mode {
                None => {}
                Some(_) if !req.stream => {
                    return Err(InvalidRequest::invalid(
                        "bedrock.guardrailConfig.streamProcessingMode",
                        "`streamProcessingMode` is only allowed when `stream` is true",
                    ));
                }
                Some("sync" | "async") => {}
                Some(_) => {
                    return Err(InvalidRequest::invalid(
                        "bedrock.guardrailConfig.streamProcessingMode",
                        "`streamProcessingMode` must be sync or async",
                    ));
                }
            }
            g
        }
        None => match &model.guardrail {
            None => return Ok(None),
            Some(d) => GuardrailConfig {
                guardrail_identifier: &d.identifier,
                guardrail_version: &d.version,
                trace: d.trace.as_deref(),
                stream_processing_mode: d.stream_processing_mode.as_deref().filter(|_| req.stream),
            },
        },
    };
    Ok(Some(config))
}

fn performance<'a>(
    req: &ChatCompletionRequest<'a>,
) -> Result<Option<crate::bedrock::converse::PerformanceConfig<'a>>, InvalidRequest> {
    match req.bedrock.as_ref().and_then(|e| e.performance_config) {
        Some(p) if !matches!(p.latency, "standard" | "optimized") => Err(InvalidRequest::invalid(
            "bedrock.performanceConfig.latency",
            "`latency` must be standard or optimized",
        )),
        other => Ok(other),
    }
}

/// `[a-zA-Z0-9\s:_@$#=/+,-.]`: what Bedrock allows in `requestMetadata` keys and values.
fn is_metadata_text(s: &str, min: usize) -> bool {
    (min..=256).contains(&s.chars().count())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c.is_ascii_whitespace() || ":_@$#=/+,-.".contains(c))
}

/// `requestMetadata`: the extension's pairs, then `user`, `safety_identifier` and `metadata`
/// where Bedrock's limits allow; what does not fit is reported as ignored.
fn request_metadata<'a>(
    req: &ChatCompletionRequest<'a>,
    ignored: &mut Ignored,
) -> Result<Option<StrMap<'a>>, InvalidRequest> {
    let mut pairs: Vec<(&'a str, &'a str)> = Vec::new();
    if let Some(explicit) = req.bedrock.as_ref().and_then(|e| e.request_metadata.as_ref()) {
        if explicit.0.is_empty() || explicit.0.len() > MAX_REQUEST_METADATA {
            return Err(InvalidRequest::invalid(
                "bedrock.requestMetadata",
                format!("`requestMetadata` must have 1 to {MAX_REQUEST_METADATA} entries"),
            ));
        }
        for (k, v) in &explicit.0 {
            if !is_metadata_text(k, 1) || !is_metadata_text(v, 0) {
                return Err(InvalidRequest::invalid(
                    "bedrock.requestMetadata",
                    format!(
                        "`requestMetadata` entry `{k}`: keys (1 to 256) and values (up to 256) may only hold letters, digits, whitespace and :_@$#=/+,-."
                    ),
                ));
            }
            pairs.push((k, v));
        }
    }
    let mut copy =
        |field: &'static str, key: &'a str, value: &'a str, pairs: &mut Vec<(&'a str, &'a str)>| {
            if pairs.iter().any(|(k, _)| *k == key) {
                return;
            }
            if pairs.len() < MAX_REQUEST_METADATA && is_metadata_text(key, 1) && is_metadata_text(value, 0) {
                pairs.push((key, value));
            } else {
                ignored.add(field);
            }
        };
    if let Some(user) = req.user {
        copy("user", "user", user, &mut pairs);
    }
    if let Some(id) = req.safety_identifier {
        copy("safety_identifier", "safety_identifier", id, &mut pairs);
    }
    if let Some(metadata) = &req.metadata {
        for (k, v) in &metadata.0 {
            copy("metadata", k, v, &mut pairs);
        }
    }
    Ok((!pairs.is_empty()).then_some(StrMap(pairs)))
}

// === cache points ===

/// Adds the model's automatic cache points where none ends the section already, while the
/// request stays within [`MAX_CACHE_POINTS`].
fn automatic_cache_points(converse: &mut ConverseRequest<'_>, model: &ModelOptions) {
    if model.cache_points.is_empty() {
        return;
    }
    let mut count = converse
        .system
        .iter()
        .filter(|b| matches!(b, SystemContentBlock::CachePoint(_)))
        .count()
        + converse.tool_config.as_ref().map_or(0, |c| {
            c.tools
                .iter()
                .filter(|t| matches!(t, Tool::CachePoint(_)))
                .count()
        })
        + converse
            .messages
            .iter()
            .flat_map(|m| &m.content)
            .filter(|b| b.is_cache_point())
            .count();
    for placement in &model.cache_points {
        if count >= MAX_CACHE_POINTS {
            return;
        }
        let added = match placement {
            CachePlacement::System => {
                let open = converse
                    .system
                    .last()
                    .is_some_and(|b| !matches!(b, SystemContentBlock::CachePoint(_)));
                if open {
                    converse
                        .system
                        .push(SystemContentBlock::CachePoint(CachePoint::new(None)));
                }
                open
            }
            CachePlacement::Tools => match &mut converse.tool_config {
                Some(config)
                    if config
                        .tools
                        .last()
                        .is_some_and(|t| !matches!(t, Tool::CachePoint(_))) =>
                {
                    config.tools.push(Tool::CachePoint(CachePoint::new(None)));
                    true
                }
                _ => false,
            },
            CachePlacement::Messages => {
                let last_user = converse
                    .messages
                    .iter_mut()
                    .rev()
                    .find(|m| m.role == ConversationRole::User);
                match last_user {
                    Some(turn) if turn.content.last().is_some_and(|b| !b.is_cache_point()) => {
                        turn.content.push(ContentBlock::CachePoint(CachePoint::new(None)));
                        true
                    }
                    _ => false,
                }
            }
        };
        count += usize::from(added);
    }
}

#[cfg(test)]
mod tests;
