use super::*;

fn parse_with<T>(body: &str, f: impl FnOnce(Result<ChatCompletionRequest<'_>, InvalidRequest>) -> T) -> T {
    let mut buf = body.as_bytes().to_vec();
    f(ChatCompletionRequest::parse(&mut buf))
}

fn parse_err(body: &str) -> InvalidRequest {
    parse_with(body, |r| r.unwrap_err())
}

fn assert_param(err: &InvalidRequest, param: &str, code: &str) {
    assert_eq!(err.param.as_deref(), Some(param), "{err:?}");
    assert_eq!(err.code, Some(code), "{err:?}");
}

#[test]
fn strings_borrow_from_the_buffer_with_escapes_resolved() {
    parse_with(
        r#"{"model":"claude","messages":[{"role":"user","content":"line\none \"quoted\" \u00e9"}]}"#,
        |r| {
            let r = r.unwrap();
            assert_eq!(r.model, "claude");
            assert_eq!(r.messages[0].role, Role::User);
            assert_eq!(
                r.messages[0].content,
                Some(Content::Text("line\none \"quoted\" é"))
            );
            assert!(!r.stream);
        },
    );
}

#[test]
fn every_documented_member_is_read() {
    parse_with(
        r#"{"model":"m","messages":[],"stream":true,"stream_options":{"include_usage":true,"include_obfuscation":false},
            "max_completion_tokens":10,"max_tokens":20,"temperature":0.5,"top_p":0.9,"stop":["a","b"],"n":1,
            "tools":[{"type":"function","function":{"name":"f"}},{"type":"function","function":{"name":"g"}}],"tool_choice":{"type":"function","function":{"name":"f"}},
            "parallel_tool_calls":true,"response_format":{"type":"json_schema","json_schema":{"name":"x"}},
            "reasoning_effort":"low","verbosity":"high","seed":7,"logprobs":false,"top_logprobs":0,
            "logit_bias":{"50256":-100},"frequency_penalty":0,"presence_penalty":0.5,"user":"u","safety_identifier":"s",
            "prompt_cache_key":"k","prompt_cache_retention":"24h","prompt_cache_options":{"x":1},"metadata":{"a":"b"},
            "store":false,"service_tier":"flex","modalities":["text"],"audio":{"voice":"alloy"},
            "prediction":{"type":"content","content":"x"},"web_search_options":{},"moderation":{"model":"m"},
            "functions":[],"function_call":"auto","bedrock":{}}"#,
        |r| {
            let r = r.unwrap();
            assert!(r.stream && r.include_usage());
            assert_eq!(r.max_completion_tokens, Some(10));
            assert_eq!(r.max_tokens, Some(20));
            assert_eq!(r.temperature, Some(0.5));
            assert_eq!(r.top_p, Some(0.9));
            assert_eq!(r.stop, Some(Stop::Many(vec!["a", "b"])));
            assert_eq!(r.n, Some(1));
            let names: Vec<&str> = r
                .tools
                .iter()
                .flatten()
                .filter_map(|t| t.function.as_ref())
                .map(|f| f.name)
                .collect();
            assert_eq!(names, ["f", "g"]);
            assert_eq!(r.tool_choice, Some(ToolChoice::Function("f")));
            assert_eq!(r.parallel_tool_calls, Some(true));
            assert_eq!(r.response_format.as_ref().map(|f| f.kind), Some("json_schema"));
            assert_eq!(r.metadata, Some(StrMap(vec![("a", "b")])));
            assert_eq!(r.functions, Some(Vec::new()));
            assert_eq!(r.function_call, Some(FunctionCallChoice::Mode("auto")));
            assert_eq!(r.bedrock, Some(BedrockExtension::default()));
            assert_eq!(r.reasoning_effort, Some("low"));
            assert_eq!(r.seed, Some(7));
            assert_eq!(r.logit_bias, Some(1));
            assert_eq!(r.presence_penalty, Some(0.5));
            assert_eq!(r.service_tier, Some("flex"));
            assert_eq!(r.modalities, Some(vec!["text"]));
            for present in [
                r.prompt_cache_options,
                r.audio,
                r.prediction,
                r.web_search_options,
                r.moderation,
            ] {
                assert_eq!(present, Some(Present));
            }
            assert!(r.unknown.is_empty());
        },
    );
}

#[test]
fn null_means_not_set() {
    parse_with(
        r#"{"model":"m","messages":[{"role":"assistant","content":null}],"stream":null,"temperature":null,
            "stop":null,"tools":null,"metadata":null,"stream_options":null}"#,
        |r| {
            let r = r.unwrap();
            assert!(!r.stream);
            assert_eq!(r.temperature, None);
            assert_eq!(r.stop, None);
            assert!(r.tools.is_none());
            assert_eq!(r.metadata, None);
            assert_eq!(r.messages[0].content, None);
            assert!(!r.include_usage());
        },
    );
}

#[test]
fn unknown_top_level_keys_are_recorded_in_order() {
    parse_with(
        r#"{"foo":{"deep":[1,2]},"model":"m","messages":[],"bar":null}"#,
        |r| assert_eq!(r.unwrap().unknown, vec!["foo", "bar"]),
    );
}

#[test]
fn unknown_message_and_part_members_are_skipped() {
    parse_with(
        r#"{"model":"m","messages":[{"role":"user","annotations":[],"content":[{"type":"text","text":"hi","extra":{"type":"ephemeral"}}]}]}"#,
        |r| {
            let r = r.unwrap();
            let Some(Content::Parts(parts)) = &r.messages[0].content else {
                panic!("parts expected");
            };
            assert_eq!((parts[0].kind, parts[0].text), ("text", Some("hi")));
        },
    );
}

#[test]
fn stop_accepts_a_string_or_a_list() {
    parse_with(r#"{"model":"m","messages":[],"stop":"END"}"#, |r| {
        assert_eq!(r.unwrap().stop, Some(Stop::One("END")));
    });
}

#[test]
fn wrong_type_at_top_level_names_the_field() {
    let err = parse_err(r#"{"model":"m","messages":[],"temperature":"hot"}"#);
    assert_param(&err, "temperature", "invalid_value");
    assert_eq!(err.message, "invalid type for `temperature`: expected a number");
}

#[test]
fn wrong_content_type_names_the_message_index() {
    let err = parse_err(
        r#"{"model":"m","messages":[{"role":"system","content":"a"},{"role":"user","content":"b"},{"role":"user","content":5}]}"#,
    );
    assert_param(&err, "messages[2].content", "invalid_value");
    assert!(
        err.message
            .contains("expected a string, an array of content parts or null"),
        "{}",
        err.message
    );
}

#[test]
fn wrong_part_member_type_names_the_full_path() {
    let err = parse_err(
        r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":7}]}]}"#,
    );
    assert_param(&err, "messages[0].content[1].text", "invalid_value");
    assert_eq!(
        err.message,
        "invalid type for `messages[0].content[1].text`: expected a string"
    );
}

#[test]
fn wrong_stop_element_names_its_index() {
    let err = parse_err(r#"{"model":"m","messages":[],"stop":["a",3]}"#);
    assert_param(&err, "stop[1]", "invalid_value");
    let err = parse_err(r#"{"model":"m","messages":[],"stop":5}"#);
    assert_param(&err, "stop", "invalid_value");
}

#[test]
fn wrong_integer_types_are_reported() {
    for body in [
        r#"{"model":"m","messages":[],"max_tokens":1.5}"#,
        r#"{"model":"m","messages":[],"max_tokens":"10"}"#,
    ] {
        let err = parse_err(body);
        assert_param(&err, "max_tokens", "invalid_value");
        assert_eq!(err.message, "invalid type for `max_tokens`: expected an integer");
    }
}

#[test]
fn messages_must_be_an_array_of_objects() {
    assert_param(
        &parse_err(r#"{"model":"m","messages":{}}"#),
        "messages",
        "invalid_value",
    );
    assert_param(
        &parse_err(r#"{"model":"m","messages":["hi"]}"#),
        "messages[0]",
        "invalid_value",
    );
}

#[test]
fn unknown_role_is_an_invalid_value() {
    let err = parse_err(
        r#"{"model":"m","messages":[{"role":"user","content":"a"},{"role":"critic","content":"b"}]}"#,
    );
    assert_param(&err, "messages[1].role", "invalid_value");
    assert!(
        err.message.contains("unknown variant `critic`"),
        "{}",
        err.message
    );
}

#[test]
fn missing_required_members_are_named() {
    assert_param(
        &parse_err(r#"{"messages":[]}"#),
        "model",
        "missing_required_parameter",
    );
    assert_param(
        &parse_err(r#"{"model":"m"}"#),
        "messages",
        "missing_required_parameter",
    );
    let err = parse_err(r#"{"model":"m","messages":[{"role":"user","content":"a"},{"content":"b"}]}"#);
    assert_param(&err, "messages[1].role", "missing_required_parameter");
    assert_eq!(err.message, "missing required parameter: `messages[1].role`");
    assert_param(
        &parse_err(r#"{"model":"m","messages":[{"role":"user","content":[{"text":"b"}]}]}"#),
        "messages[0].content[0].type",
        "missing_required_parameter",
    );
}

#[test]
fn model_must_be_a_string() {
    assert_param(
        &parse_err(r#"{"model":null,"messages":[]}"#),
        "model",
        "invalid_value",
    );
    assert_param(
        &parse_err(r#"{"model":3,"messages":[]}"#),
        "model",
        "invalid_value",
    );
}

#[test]
fn malformed_json_reports_the_position_without_a_param() {
    let err = parse_err(r#"{"model":"m","messages":[}"#);
    assert_eq!(
        err.message,
        "could not parse the JSON body: unexpected character `}` at byte 25"
    );
    let err = parse_err(r#"{"a" 1}"#);
    assert_eq!(
        err.message,
        "could not parse the JSON body: expected `:` at byte 5"
    );
    assert_eq!((err.param, err.code), (None, None));
}

#[test]
fn truncated_and_trailing_json_are_syntax_errors() {
    for body in [r#"{"model":"m""#, r#"{"model":"m"} x"#, "nul", r#"{"a":"\q"}"#] {
        let err = parse_err(body);
        assert!(
            err.message.starts_with("could not parse the JSON body: "),
            "{body}: {}",
            err.message
        );
        assert_eq!(err.param, None);
    }
}

#[test]
fn empty_body_is_a_parse_error() {
    for body in ["", "  \n"] {
        let err = parse_err(body);
        assert_eq!(err.message, "could not parse the JSON body: the body is empty");
        assert_eq!((err.param, err.code), (None, None));
    }
}

#[test]
fn top_level_must_be_an_object() {
    for body in ["[]", "\"hi\"", "3"] {
        let err = parse_err(body);
        assert_eq!(err.message, "the request body must be a JSON object", "{body}");
        assert_eq!(err.param, None);
    }
}

#[test]
fn tools_and_tool_calls_are_read_with_raw_schemas_and_argument_text() {
    parse_with(
        r#"{"model":"m","messages":[
            {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function",
              "function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},
            {"role":"tool","tool_call_id":"call_1","content":"21C"}],
          "tools":[{"type":"function","cache_control":{"type":"ephemeral"},"function":{"name":"get_weather",
              "description":"d","strict":true,"parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]}"#,
        |r| {
            let r = r.unwrap();
            let call = &r.messages[0].tool_calls.as_ref().unwrap()[0];
            assert_eq!((call.id, call.kind), ("call_1", Some("function")));
            let f = call.function.unwrap();
            assert_eq!((f.name, f.arguments), ("get_weather", "{\"city\":\"Paris\"}"));
            assert_eq!(r.messages[1].tool_call_id, Some("call_1"));
            let tool = &r.tools.as_ref().unwrap()[0];
            assert_eq!(tool.cache_control.unwrap().kind, "ephemeral");
            let def = tool.function.as_ref().unwrap();
            assert_eq!((def.description, def.strict), (Some("d"), Some(true)));
            assert_eq!(
                def.parameters.as_ref().unwrap().to_json_string(),
                r#"{"type":"object","properties":{"city":{"type":"string"}}}"#
            );
        },
    );
}

#[test]
fn tool_choice_forms_are_read() {
    for (json, expected) in [
        (r#""required""#, ToolChoice::Mode("required")),
        (
            r#"{"type":"function","function":{"name":"f"}}"#,
            ToolChoice::Function("f"),
        ),
        (
            r#"{"type":"allowed_tools","allowed_tools":{"mode":"auto","tools":[{"type":"function","function":{"name":"a"}},{"type":"function","function":{"name":"b"}}]}}"#,
            ToolChoice::AllowedTools {
                mode: "auto",
                tools: vec!["a", "b"],
            },
        ),
        (
            r#"{"type":"custom","custom":{"name":"x"}}"#,
            ToolChoice::Other("custom"),
        ),
    ] {
        let body = format!(r#"{{"model":"m","messages":[],"tool_choice":{json}}}"#);
        parse_with(&body, |r| assert_eq!(r.unwrap().tool_choice, Some(expected)));
    }
    let err = parse_err(r#"{"model":"m","messages":[],"tool_choice":{"type":"function"}}"#);
    assert_param(&err, "tool_choice", "invalid_value");
    assert!(
        err.message.contains("missing field `function`"),
        "{}",
        err.message
    );
}

#[test]
fn bad_tool_definitions_name_the_tool_index() {
    let err = parse_err(
        r#"{"model":"m","messages":[],"tools":[{"type":"function","function":{"name":"a"}},{"type":"function","function":{}}]}"#,
    );
    assert_param(&err, "tools[1]", "invalid_value");
    assert!(err.message.contains("missing field `name`"), "{}", err.message);
    let err = parse_err(
        r#"{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"c","function":{"name":"f","arguments":{}}}]}]}"#,
    );
    assert_param(&err, "messages[0].tool_calls[0]", "invalid_value");
}

#[test]
fn media_parts_and_extension_members_are_read() {
    parse_with(
        r#"{"model":"m","messages":[{"role":"user","cache_control":{"type":"ephemeral","ttl":"1h"},"content":[
            {"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA","detail":"low"}},
            {"type":"image_url","image_url":"https://example.com/a.png"},
            {"type":"file","file":{"file_data":"data:application/pdf;base64,AAAA","filename":"a.pdf"}},
            {"type":"input_audio","input_audio":{"data":"AAAA","format":"wav"}}]},
            {"role":"assistant","content":"x","reasoning_content":"think","reasoning_signature":"sig","redacted_reasoning":["QUJD"]}],
          "response_format":{"type":"json_schema","json_schema":{"name":"n","schema":{"type":"object"},"strict":true}},
          "bedrock":{"guardrailConfig":{"guardrailIdentifier":"g","guardrailVersion":"1"},
            "performanceConfig":{"latency":"optimized"},"requestMetadata":{"k":"v"},
            "promptVariables":{"topic":{"text":"cats"}},"additionalModelRequestFields":{"top_k":5}}}"#,
        |r| {
            let r = r.unwrap();
            let Some(Content::Parts(parts)) = &r.messages[0].content else {
                panic!("parts expected");
            };
            assert_eq!(
                parts[0].image_url,
                Some(ImageUrl {
                    url: "data:image/png;base64,AAAA",
                    detail: Some("low")
                })
            );
            assert_eq!(parts[1].image_url.unwrap().url, "https://example.com/a.png");
            assert_eq!(parts[2].file.unwrap().filename, Some("a.pdf"));
            assert_eq!(parts[3].input_audio.unwrap().format, "wav");
            assert_eq!(r.messages[0].cache_control.unwrap().ttl, Some("1h"));
            let a = &r.messages[1];
            assert_eq!(
                (a.reasoning_content, a.reasoning_signature),
                (Some("think"), Some("sig"))
            );
            assert_eq!(a.redacted_reasoning, Some(vec!["QUJD"]));
            let format = r.response_format.as_ref().unwrap().json_schema.as_ref().unwrap();
            assert_eq!((format.name, format.strict), ("n", Some(true)));
            let ext = r.bedrock.as_ref().unwrap();
            assert_eq!(ext.guardrail_config.as_ref().unwrap().guardrail_identifier, "g");
            assert_eq!(ext.performance_config.unwrap().latency, "optimized");
            assert_eq!(ext.request_metadata, Some(StrMap(vec![("k", "v")])));
            assert_eq!(ext.prompt_variables.as_ref().unwrap().0, vec![("topic", "cats")]);
        },
    );
}

#[test]
fn unknown_extension_members_are_rejected_by_name() {
    let err = parse_err(r#"{"model":"m","messages":[],"bedrock":{"guardrail":{}}}"#);
    assert_param(&err, "bedrock", "invalid_value");
    assert!(
        err.message.contains("unknown field `guardrail`"),
        "{}",
        err.message
    );
    let err = parse_err(r#"{"model":"m","messages":[],"metadata":{"a":1}}"#);
    assert_param(&err, "metadata", "invalid_value");
}

#[test]
fn legacy_function_members_are_read() {
    parse_with(
        r#"{"model":"m","messages":[{"role":"assistant","content":null,"function_call":{"name":"f","arguments":"{}"}},
            {"role":"function","name":"f","content":"r"}],
          "functions":[{"name":"f","parameters":{"type":"object"}}],"function_call":{"name":"f"}}"#,
        |r| {
            let r = r.unwrap();
            assert_eq!(r.messages[0].function_call.unwrap().name, "f");
            assert_eq!(r.messages[1].role, Role::Function);
            assert_eq!(r.functions.as_ref().unwrap()[0].name, "f");
            assert_eq!(r.function_call, Some(FunctionCallChoice::Name("f")));
        },
    );
}
