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
/// Largest `mock:delay_ms=` / `mock:stall_ms=`.
const MAX_WAIT_MS: u64 = 10 * 60 * 1000;
/// The reply when no text is scripted.
const DEFAULT_TEXT: &str = "Hello from the mock Bedrock runtime.";

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
    pub(super) text: TextPlan,
    pub(super) tools: Vec<Tool>,
    pub(super) stop_reason: String,
    pub(super) usage: Usage,
    pub(super) delay: Duration,
    pub(super) stall: Duration,
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
        self.text.len() + self.tools.iter().map(|t| t.fragments().len()).sum::<usize>()
    }

    /// Content block index of the first tool.
    pub(super) fn first_tool_index(&self) -> usize {
        usize::from(self.text.len() > 0)
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
    directives(&last_user_text, user_words.max(1))
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
fn directives<'t>(text: &'t str, user_words: u64) -> Result<Script, Invalid> {
    let mut words: Vec<String> = Vec::new();
    let mut frames: Option<u32> = None;
    let mut no_text = false;
    let mut tools = Vec::new();
    let mut stop = None;
    let mut usage = None;
    let mut script = Script {
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
        (false, None, true) => {
            TextPlan::Deltas(DEFAULT_TEXT.split_inclusive(' ').map(str::to_owned).collect())
        }
        _ => {
            return Err(Invalid(
                "mock:text, mock:frames and mock:no_text cannot be combined".into(),
            ));
        }
    };
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
            "mock:frames=3 mock:delay_ms=5 mock:stall_ms=7 mock:stop=max_tokens mock:usage=1,2,3,4 \
             mock:first_exception=throttlingException mock:mid_exception=validationException \
             mock:tool=get_weather:{\"city\":\"Paris\"} mock:tool=noop:{} mock:truncate mock:bad_crc mock:reset \
             mock:status=model_timeout",
        );
        assert_eq!(s.text, TextPlan::Numbered(3));
        assert_eq!(s.text.full(), "tok0 tok1 tok2 ");
        assert_eq!(s.delay, Duration::from_millis(5));
        assert_eq!(s.stall, Duration::from_millis(7));
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
}
