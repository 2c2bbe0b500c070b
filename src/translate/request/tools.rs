//! `tools`, `tool_choice` and their deprecated forms `functions` / `function_call` →
//! `toolConfig` (reference: mapping §4), including the structured-output tool and the
//! `toolConfig` Bedrock needs whenever the history holds tool blocks.
//!
//! Bedrock has no "none" choice, and rejects a request whose history holds `toolUse` or
//! `toolResult` blocks without a `toolConfig`. So:
//! - `tool_choice: "none"` with no tool blocks in the history sends no `toolConfig` at all;
//! - `"none"` with tool blocks in the history sends one stub per tool name used there
//!   (permissive schema, described as not callable), no `toolChoice`, and the reply drops any
//!   tool call the model makes anyway ([`ResponseShape::suppress_tool_calls`]);
//! - a request without `tools` whose history holds tool blocks sends one spec per tool name
//!   used there, with the permissive schema `{"type":"object"}`, and no `toolChoice`.

use std::borrow::Cow;

use super::messages::History;
use super::{JsonTool, ModelOptions, Translation};
use crate::bedrock::converse::{
    CachePoint, Empty, InputSchema, JsonValue, SpecificTool, Tool, ToolChoice, ToolConfig, ToolSpec,
};
use crate::error::InvalidRequest;
use crate::openai::request::{
    CacheControl, ChatCompletionRequest, FunctionCallChoice, FunctionDefinition, ToolChoice as ChatToolChoice,
};

/// What the stubs for `tool_choice: "none"` say, so the model leaves them alone.
const NOT_CALLABLE: &str = "Not available in this turn; do not call.";

/// What the structured-output tool says when the client gave no description.
const JSON_TOOL_DESCRIPTION: &str =
    "Respond to the user by calling this tool: its input is the whole response.";

/// `[a-zA-Z0-9_-]{1,64}`: what both OpenAI and Bedrock accept as a tool name.
pub(super) fn is_tool_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A `missing_required_parameter` error.
pub(super) fn missing(param: impl Into<Cow<'static, str>>) -> InvalidRequest {
    let param = param.into();
    InvalidRequest {
        message: format!("missing required parameter: `{param}`").into(),
        param: Some(param),
        code: Some("missing_required_parameter"),
    }
}

/// The client's tool choice, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Choice<'a> {
    /// Not given.
    Unset,
    /// `none`.
    None,
    /// `auto`.
    Auto,
    /// `required`.
    Required,
    /// One named function.
    Named(&'a str),
    /// A subset of the tools, with `required` or not.
    Allowed { required: bool, names: Vec<&'a str> },
}

/// One client tool, checked.
#[derive(Debug)]
struct Def<'a> {
    spec: ToolSpec<'a>,
    /// The cache point its `cache_control` asks for.
    cache: Option<CachePoint<'a>>,
}

/// Builds `toolConfig` and notes the reply shape it implies.
pub(super) fn tool_config<'a>(
    req: &'a ChatCompletionRequest<'a>,
    model: &ModelOptions,
    history: &History<'a>,
    json_tool: Option<&JsonTool<'a>>,
    thinking: bool,
    t: &mut Translation,
) -> Result<Option<ToolConfig<'a>>, InvalidRequest> {
    if req.tools.is_some() && req.functions.is_some() {
        return Err(InvalidRequest::invalid(
            "functions",
            "send either `tools` or the deprecated `functions`, not both",
        ));
    }
    if req.tool_choice.is_some() && req.function_call.is_some() {
        return Err(InvalidRequest::invalid(
            "function_call",
            "send either `tool_choice` or the deprecated `function_call`, not both",
        ));
    }
    let legacy = req.functions.is_some();
    t.response.legacy_functions = legacy;
    let defs = definitions(req, model, t)?;
    let choice = choice(req, &defs, model)?;

    if let Some(tool) = json_tool
        && defs.iter().any(|d| d.spec.name == tool.name)
    {
        return Err(InvalidRequest::invalid(
            "response_format.json_schema.name",
            format!(
                "`{}` is also the name of a tool; give the response format another name",
                tool.name
            ),
        ));
    }
    let forced = matches!(choice, Choice::Required | Choice::Named(_))
        || matches!(choice, Choice::Allowed { required: true, .. });
    if thinking && forced {
        return Err(InvalidRequest::unsupported_value(
            if legacy { "function_call" } else { "tool_choice" },
            "a forced tool choice cannot be combined with `reasoning_effort` on this model; use `auto`",
        ));
    }
    if thinking && json_tool.is_some() {
        return Err(InvalidRequest::unsupported_value(
            "response_format",
            "this model has no native structured output, and its emulation (a forced tool) cannot be combined with `reasoning_effort`",
        ));
    }

    let mut tools: Vec<Tool<'a>> = Vec::new();
    let mut tool_choice: Option<ToolChoice<'a>> = None;
    let offered = |d: &&Def<'a>| match &choice {
        Choice::Allowed { names, .. } => names.contains(&d.spec.name),
        _ => true,
    };
    if choice == Choice::None {
        if history.has_tool_blocks {
            for name in &history.tool_names {
                tools.push(Tool::ToolSpec(ToolSpec {
                    name,
                    description: Some(NOT_CALLABLE),
                    input_schema: InputSchema {
                        json: Cow::Owned(JsonValue::any_object_schema()),
                    },
                    strict: None,
                }));
            }
            t.response.suppress_tool_calls = true;
        }
    } else if defs.is_empty() {
        if history.has_tool_blocks {
            for name in &history.tool_names {
                tools.push(Tool::ToolSpec(ToolSpec {
                    name,
                    description: None,
                    input_schema: InputSchema {
                        json: Cow::Owned(JsonValue::any_object_schema()),
                    },
                    strict: None,
                }));
            }
        }
    } else {
        for def in defs.iter().filter(offered) {
            tools.push(Tool::ToolSpec(def.spec.clone()));
            if let Some(point) = def.cache {
                tools.push(Tool::CachePoint(point));
            }
        }
        tool_choice = match &choice {
            Choice::Unset | Choice::None => None,
            Choice::Auto | Choice::Allowed { required: false, .. } => Some(ToolChoice::Auto(Empty {})),
            Choice::Required | Choice::Allowed { required: true, .. } => Some(ToolChoice::Any(Empty {})),
            Choice::Named(name) => Some(ToolChoice::Tool(SpecificTool { name })),
        };
    }

    if let Some(json) = json_tool {
        let strict = match json.strict {
            Some(s) if model.supports_strict_tools => Some(s),
            Some(true) => {
                t.ignored.add("response_format.json_schema.strict");
                None
            }
            _ => None,
        };
        tools.push(Tool::ToolSpec(ToolSpec {
            name: json.name,
            description: Some(json.description.unwrap_or(JSON_TOOL_DESCRIPTION)),
            input_schema: InputSchema {
                json: json.schema.clone(),
            },
            strict,
        }));
        // The reply must be the JSON: force the tool, unless the client's own tools may (or
        // must) be called, in which case any tool call will do.
        let client_tools = !matches!(choice, Choice::None) && !defs.is_empty();
        tool_choice = match (&choice, client_tools) {
            (Choice::Named(name), true) => Some(ToolChoice::Tool(SpecificTool { name })),
            (_, true) => Some(ToolChoice::Any(Empty {})),
            (_, false) if model.supports_named_tool_choice => {
                Some(ToolChoice::Tool(SpecificTool { name: json.name }))
            }
            (_, false) => Some(ToolChoice::Any(Empty {})),
        };
    }

    Ok((!tools.is_empty()).then_some(ToolConfig { tools, tool_choice }))
}

/// The client's tool definitions (`tools`, or the deprecated `functions`), checked.
fn definitions<'a>(
    req: &'a ChatCompletionRequest<'a>,
    model: &ModelOptions,
    t: &mut Translation,
) -> Result<Vec<Def<'a>>, InvalidRequest> {
    let mut defs: Vec<Def<'a>> = Vec::new();
    if let Some(tools) = &req.tools {
        for (i, tool) in tools.iter().enumerate() {
            match tool.kind {
                "function" => {}
                "custom" => {
                    return Err(InvalidRequest::unsupported_value(
                        format!("tools[{i}].type"),
                        "custom tools are not supported through Bedrock; use `function` tools",
                    ));
                }
                other => {
                    return Err(InvalidRequest::invalid(
                        format!("tools[{i}].type"),
                        format!("unknown tool type `{other}`; expected `function`"),
                    ));
                }
            }
            let function = tool
                .function
                .as_ref()
                .ok_or_else(|| missing(format!("tools[{i}].function")))?;
            let spec = spec(function, model, t, &|member| {
                format!("tools[{i}].function.{member}")
            })?;
            let cache = cache_point(tool.cache_control.as_ref(), model, t, i)?;
            push_unique(&mut defs, spec, cache, || format!("tools[{i}].function.name"))?;
        }
    }
    if let Some(functions) = &req.functions {
        for (i, function) in functions.iter().enumerate() {
            let spec = spec(function, model, t, &|member| format!("functions[{i}].{member}"))?;
            push_unique(&mut defs, spec, None, || format!("functions[{i}].name"))?;
        }
    }
    Ok(defs)
}

fn push_unique<'a>(
    defs: &mut Vec<Def<'a>>,
    spec: ToolSpec<'a>,
    cache: Option<CachePoint<'a>>,
    param: impl FnOnce() -> String,
) -> Result<(), InvalidRequest> {
    if defs.iter().any(|d| d.spec.name == spec.name) {
        return Err(InvalidRequest::invalid(
            param(),
            format!("tool names must be unique; `{}` appears twice", spec.name),
        ));
    }
    defs.push(Def { spec, cache });
    Ok(())
}

/// One function definition → `toolSpec` (reference: mapping §4.1).
fn spec<'a>(
    f: &'a FunctionDefinition<'a>,
    model: &ModelOptions,
    t: &mut Translation,
    param: &dyn Fn(&str) -> String,
) -> Result<ToolSpec<'a>, InvalidRequest> {
    if !is_tool_name(f.name) {
        return Err(InvalidRequest::invalid(
            param("name"),
            "tool names must be 1 to 64 characters of a-z, A-Z, 0-9, `_` and `-`",
        ));
    }
    let schema = match &f.parameters {
        None => Cow::Owned(JsonValue::no_arguments_schema()),
        Some(p) if p.is_object() => Cow::Borrowed(p),
        Some(_) => {
            return Err(InvalidRequest::invalid(
                param("parameters"),
                "`parameters` must be a JSON Schema object",
            ));
        }
    };
    let strict = match f.strict {
        Some(s) if model.supports_strict_tools => Some(s),
        Some(true) => {
            t.ignored.add("tools[].function.strict");
            None
        }
        _ => None,
    };
    Ok(ToolSpec {
        name: f.name,
        description: f.description.filter(|d| !d.is_empty()),
        input_schema: InputSchema { json: schema },
        strict,
    })
}

/// Resolves `tool_choice` (or `function_call`) against the definitions (reference: mapping
/// §4.2).
fn choice<'a>(
    req: &'a ChatCompletionRequest<'a>,
    defs: &[Def<'a>],
    model: &ModelOptions,
) -> Result<Choice<'a>, InvalidRequest> {
    let known = |name: &str| defs.iter().any(|d| d.spec.name == name);
    let named = |name: &'a str, param: &'static str| -> Result<Choice<'a>, InvalidRequest> {
        if !known(name) {
            return Err(InvalidRequest::invalid(
                param,
                format!("`{name}` is not one of the functions in the request"),
            ));
        }
        if !model.supports_named_tool_choice {
            return Err(InvalidRequest::unsupported_value(
                if param.starts_with("function_call") {
                    "function_call"
                } else {
                    "tool_choice"
                },
                "this model cannot be made to call one named tool; use \"auto\" or \"required\"",
            ));
        }
        Ok(Choice::Named(name))
    };
    if let Some(choice) = &req.function_call {
        return match choice {
            FunctionCallChoice::Mode("none") => Ok(Choice::None),
            FunctionCallChoice::Mode("auto") => Ok(Choice::Auto),
            FunctionCallChoice::Mode(other) => Err(InvalidRequest::invalid(
                "function_call",
                format!("unknown function_call `{other}`; expected \"none\", \"auto\" or {{\"name\": …}}"),
            )),
            FunctionCallChoice::Name(name) => named(name, "function_call.name"),
        };
    }
    let Some(choice) = &req.tool_choice else {
        return Ok(Choice::Unset);
    };
    match choice {
        ChatToolChoice::Mode("none") => Ok(Choice::None),
        ChatToolChoice::Mode("auto") => Ok(Choice::Auto),
        ChatToolChoice::Mode("required") => {
            if defs.is_empty() {
                return Err(InvalidRequest::invalid(
                    "tool_choice",
                    "`tool_choice` \"required\" needs `tools`",
                ));
            }
            Ok(Choice::Required)
        }
        ChatToolChoice::Mode(other) => Err(InvalidRequest::invalid(
            "tool_choice",
            format!("unknown tool_choice `{other}`; expected none, auto, required or an object"),
        )),
        ChatToolChoice::Function(name) => named(name, "tool_choice.function.name"),
        ChatToolChoice::AllowedTools { mode, tools } => {
            let required = match *mode {
                "auto" => false,
                "required" => true,
                other => {
                    return Err(InvalidRequest::invalid(
                        "tool_choice.allowed_tools.mode",
                        format!("unknown mode `{other}`; expected auto or required"),
                    ));
                }
            };
            for (k, name) in tools.iter().enumerate() {
                if !known(name) {
                    return Err(InvalidRequest::invalid(
                        format!("tool_choice.allowed_tools.tools[{k}].function.name"),
                        format!("`{name}` is not one of the tools in the request"),
                    ));
                }
            }
            if tools.is_empty() {
                return Err(InvalidRequest::invalid(
                    "tool_choice.allowed_tools.tools",
                    "`allowed_tools.tools` must name at least one tool",
                ));
            }
            Ok(Choice::Allowed {
                required,
                names: tools.clone(),
            })
        }
        ChatToolChoice::Other("custom") => Err(InvalidRequest::unsupported_value(
            "tool_choice",
            "custom tools are not supported through Bedrock; use `function` tools",
        )),
        ChatToolChoice::Other(other) => Err(InvalidRequest::invalid(
            "tool_choice.type",
            format!("unknown tool_choice type `{other}`; expected function or allowed_tools"),
        )),
    }
}

fn cache_point<'a>(
    marker: Option<&'a CacheControl<'a>>,
    model: &ModelOptions,
    t: &mut Translation,
    i: usize,
) -> Result<Option<CachePoint<'a>>, InvalidRequest> {
    let Some(marker) = marker else {
        return Ok(None);
    };
    if marker.kind != "ephemeral" || marker.ttl.is_some_and(|ttl| !matches!(ttl, "5m" | "1h")) {
        return Err(InvalidRequest::invalid(
            format!("tools[{i}].cache_control"),
            "`cache_control` must be {\"type\": \"ephemeral\"} with an optional ttl of 5m or 1h",
        ));
    }
    if !model.supports_prompt_caching {
        t.ignored.add("cache_control");
        return Ok(None);
    }
    Ok(Some(CachePoint::new(marker.ttl)))
}
