//! Tools, tool choice, tool calls and results, and the deprecated function forms
//! (reference: mapping §3.2, §3.4, §4).

use serde_json::json;

use super::*;

const WEATHER: &str = r#"{"type":"function","function":{"name":"get_weather","description":"Weather",
    "parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}"#;
const TIME: &str = r#"{"type":"function","function":{"name":"get_time","description":""}}"#;

fn with_tools(extra: &str) -> String {
    mk_body(&format!(r#""tools":[{WEATHER},{TIME}]{extra}"#))
}

const NAMED: &str = "supports_named_tool_choice: true";

#[test]
fn tools_become_tool_specs_with_default_schema_and_no_empty_description() {
    let v = translate(&with_tools("")).unwrap();
    assert_eq!(
        v["toolConfig"],
        json!({"tools": [
            {"toolSpec": {"name": "get_weather", "description": "Weather", "inputSchema": {"json":
                {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}},
            {"toolSpec": {"name": "get_time", "inputSchema": {"json": {"type": "object", "properties": {}}}}}
        ]})
    );
}

#[test]
fn strict_is_sent_only_to_models_flagged_for_it() {
    let body = mk_body(r#""tools":[{"type":"function","function":{"name":"f","strict":true}}]"#);
    let (v, t) = translate_for(&body, "{}", &[]).unwrap();
    assert!(v["toolConfig"]["tools"][0]["toolSpec"].get("strict").is_none());
    assert_eq!(t.ignored.fields(), ["tools[].function.strict"]);
    let (v, t) = translate_for(&body, "supports_strict_tools: true", &[]).unwrap();
    assert_eq!(v["toolConfig"]["tools"][0]["toolSpec"]["strict"], true);
    assert!(t.ignored.is_empty());
}

#[test]
fn tool_choice_modes_map_per_reference() {
    assert!(
        translate(&with_tools("")).unwrap()["toolConfig"]
            .get("toolChoice")
            .is_none()
    );
    for (choice, expected) in [
        (r#""auto""#, json!({"auto": {}})),
        (r#""required""#, json!({"any": {}})),
    ] {
        let v = translate(&with_tools(&format!(r#","tool_choice":{choice}"#))).unwrap();
        assert_eq!(v["toolConfig"]["toolChoice"], expected, "{choice}");
    }
    let named = with_tools(r#","tool_choice":{"type":"function","function":{"name":"get_time"}}"#);
    let (v, _) = translate_for(&named, NAMED, &[]).unwrap();
    assert_eq!(
        v["toolConfig"]["toolChoice"],
        json!({"tool": {"name": "get_time"}})
    );
    let err = rejected_for(&named, "{}", "tool_choice", "unsupported_value");
    assert!(err.message.contains("named tool"), "{}", err.message);
    rejected_for(
        &with_tools(r#","tool_choice":{"type":"function","function":{"name":"nope"}}"#),
        NAMED,
        "tool_choice.function.name",
        "invalid_value",
    );
    rejected_for(
        &with_tools(r#","tool_choice":"sometimes""#),
        "{}",
        "tool_choice",
        "invalid_value",
    );
    rejected_for(
        &with_tools(r#","tool_choice":{"type":"custom","custom":{"name":"x"}}"#),
        "{}",
        "tool_choice",
        "unsupported_value",
    );
    rejected_for(
        &mk_body(r#""tool_choice":"required""#),
        "{}",
        "tool_choice",
        "invalid_value",
    );
}

#[test]
fn allowed_tools_send_only_the_listed_tools() {
    let body = with_tools(
        r#","tool_choice":{"type":"allowed_tools","allowed_tools":{"mode":"required","tools":[{"type":"function","function":{"name":"get_time"}}]}}"#,
    );
    let v = translate(&body).unwrap();
    let tools = v["toolConfig"]["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 1);
    assert_eq!(tools[0]["toolSpec"]["name"], "get_time");
    assert_eq!(v["toolConfig"]["toolChoice"], json!({"any": {}}));
    let auto = body.replace(r#""mode":"required""#, r#""mode":"auto""#);
    assert_eq!(
        translate(&auto).unwrap()["toolConfig"]["toolChoice"],
        json!({"auto": {}})
    );
    rejected_for(
        &body.replace(
            r#"{"type":"function","function":{"name":"get_time"}}]"#,
            r#"{"type":"function","function":{"name":"x"}}]"#,
        ),
        "{}",
        "tool_choice.allowed_tools.tools[0].function.name",
        "invalid_value",
    );
}

#[test]
fn bad_tool_definitions_are_named() {
    rejected_for(
        &mk_body(r#""tools":[{"type":"custom","custom":{"name":"x"}}]"#),
        "{}",
        "tools[0].type",
        "unsupported_value",
    );
    rejected_for(
        &mk_body(r#""tools":[{"type":"function"}]"#),
        "{}",
        "tools[0].function",
        "missing_required_parameter",
    );
    rejected_for(
        &mk_body(r#""tools":[{"type":"function","function":{"name":"has space"}}]"#),
        "{}",
        "tools[0].function.name",
        "invalid_value",
    );
    rejected_for(
        &mk_body(r#""tools":[{"type":"function","function":{"name":"f","parameters":[1]}}]"#),
        "{}",
        "tools[0].function.parameters",
        "invalid_value",
    );
    rejected_for(
        &mk_body(&format!(r#""tools":[{TIME},{TIME}]"#)),
        "{}",
        "tools[1].function.name",
        "invalid_value",
    );
}

#[test]
fn empty_tools_send_no_tool_config() {
    let v = translate(&mk_body(
        r#""tools":[],"tool_choice":"none","parallel_tool_calls":true"#,
    ))
    .unwrap();
    assert!(v.get("toolConfig").is_none());
    assert!(
        translate(&mk_body(r#""tool_choice":"auto""#))
            .unwrap()
            .get("toolConfig")
            .is_none()
    );
}

#[test]
fn parallel_tool_calls_false_is_rejected_unless_the_model_ignores_it() {
    rejected_for(
        &with_tools(r#","parallel_tool_calls":false"#),
        "{}",
        "parallel_tool_calls",
        "unsupported_value",
    );
    let (_, t) = translate_for(
        &with_tools(r#","parallel_tool_calls":false"#),
        "parallel_tool_calls_false: ignore",
        &[],
    )
    .unwrap();
    assert_eq!(t.ignored.fields(), ["parallel_tool_calls"]);
}

/// A tool round trip: user, assistant with two calls, two tool results, user text.
const LOOP: &str = r#"[{"role":"user","content":"Weather and time?"},
    {"role":"assistant","content":"Checking.","tool_calls":[
      {"id":"tooluse_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\",\"n\":1.5}"}},
      {"id":"tooluse_2","type":"function","function":{"name":"get_time","arguments":"  "}}]},
    {"role":"tool","tool_call_id":"tooluse_1","content":"21C"},
    {"role":"tool","tool_call_id":"tooluse_2","content":[{"type":"text","text":"14:05"},{"type":"text","text":""}]},
    {"role":"user","content":"Umbrella?"}]"#;

#[test]
fn tool_calls_and_results_become_tool_use_and_one_user_turn_of_results() {
    let body = format!(r#"{{"model":"m","messages":{LOOP},"tools":[{WEATHER},{TIME}]}}"#);
    let v = translate(&body).unwrap();
    assert_eq!(
        v["messages"],
        json!([
            {"role": "user", "content": [{"text": "Weather and time?"}]},
            {"role": "assistant", "content": [
                {"text": "Checking."},
                {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Paris", "n": 1.5}}},
                {"toolUse": {"toolUseId": "tooluse_2", "name": "get_time", "input": {}}}]},
            {"role": "user", "content": [
                {"toolResult": {"toolUseId": "tooluse_1", "content": [{"text": "21C"}]}},
                {"toolResult": {"toolUseId": "tooluse_2", "content": [{"text": "14:05"}]}},
                {"text": "Umbrella?"}]}
        ])
    );
}

#[test]
fn tool_results_stay_first_even_after_user_text() {
    let v = translate(&with_messages(
        r#"[{"role":"user","content":"a"},
            {"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},
            {"role":"user","content":"also this"},
            {"role":"tool","tool_call_id":"c1","content":"r"}]"#,
    ))
    .unwrap();
    assert_eq!(
        v["messages"][2]["content"],
        json!([{"toolResult": {"toolUseId": "c1", "content": [{"text": "r"}]}}, {"text": "also this"}])
    );
}

#[test]
fn history_with_tool_blocks_gets_a_tool_config_even_without_tools() {
    let v = translate(&format!(r#"{{"model":"m","messages":{LOOP}}}"#)).unwrap();
    assert_eq!(
        v["toolConfig"],
        json!({"tools": [
            {"toolSpec": {"name": "get_weather", "inputSchema": {"json": {"type": "object"}}}},
            {"toolSpec": {"name": "get_time", "inputSchema": {"json": {"type": "object"}}}}
        ]})
    );
}

#[test]
fn tool_choice_none_omits_the_config_or_stubs_the_history_tools() {
    let (v, t) = translate_for(&with_tools(r#","tool_choice":"none""#), "{}", &[]).unwrap();
    assert!(v.get("toolConfig").is_none());
    assert!(!t.response.suppress_tool_calls);

    let body =
        format!(r#"{{"model":"m","messages":{LOOP},"tools":[{WEATHER},{TIME}],"tool_choice":"none"}}"#);
    let (v, t) = translate_for(&body, "{}", &[]).unwrap();
    let config = &v["toolConfig"];
    assert!(config.get("toolChoice").is_none());
    assert_eq!(
        config["tools"][0],
        json!({"toolSpec": {"name": "get_weather", "description": "Not available in this turn; do not call.",
            "inputSchema": {"json": {"type": "object"}}}})
    );
    assert_eq!(config["tools"].as_array().unwrap().len(), 2);
    assert!(t.response.suppress_tool_calls);
}

#[test]
fn arguments_must_be_a_json_object() {
    for (arguments, why) in [
        (r#""{oops""#, "not valid JSON"),
        (r#""[1,2]""#, "must be a JSON object"),
        (r#""\"s\"""#, "must be a JSON object"),
    ] {
        let body = with_messages(&format!(
            r#"[{{"role":"user","content":"a"}},{{"role":"assistant","tool_calls":[
                {{"id":"c0","type":"function","function":{{"name":"f","arguments":"{{}}"}}}},
                {{"id":"c1","type":"function","function":{{"name":"f","arguments":{arguments}}}}}]}},
                {{"role":"tool","tool_call_id":"c0","content":"r"}},{{"role":"tool","tool_call_id":"c1","content":"r"}}]"#
        ));
        let err = assert_rejected(
            &body,
            "messages[1].tool_calls[1].function.arguments",
            "invalid_value",
        );
        assert!(err.message.contains(why), "{}", err.message);
    }
}

#[test]
fn every_call_needs_a_result_in_the_next_turn_and_every_result_a_call() {
    let err = assert_rejected(
        &with_messages(
            r#"[{"role":"user","content":"a"},
                {"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}},
                                                  {"id":"c2","type":"function","function":{"name":"f","arguments":"{}"}}]},
                {"role":"tool","tool_call_id":"c1","content":"r"},{"role":"user","content":"b"}]"#,
        ),
        "messages[1].tool_calls[1].id",
        "invalid_value",
    );
    assert!(err.message.contains("`c2` has no result"), "{}", err.message);
    let err = assert_rejected(
        &with_messages(
            r#"[{"role":"user","content":"a"},
                {"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},
                {"role":"tool","tool_call_id":"c1","content":"r"},{"role":"tool","tool_call_id":"zz","content":"r"}]"#,
        ),
        "messages[3].tool_call_id",
        "invalid_value",
    );
    assert!(err.message.contains("`zz`"), "{}", err.message);
    assert_rejected(
        &with_messages(
            r#"[{"role":"user","content":"a"},{"role":"tool","tool_call_id":"c1","content":"r"}]"#,
        ),
        "messages[1].tool_call_id",
        "invalid_value",
    );
    assert_rejected(
        &with_messages(
            r#"[{"role":"user","content":"a"},
                {"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]}]"#,
        ),
        "messages[1].tool_calls[0].id",
        "invalid_value",
    );
    assert_rejected(
        &with_messages(r#"[{"role":"user","content":"a"},{"role":"tool","content":"r"}]"#),
        "messages[1].tool_call_id",
        "missing_required_parameter",
    );
}

#[test]
fn ids_bedrock_would_reject_are_mapped_the_same_way_on_both_sides() {
    let v = translate(&with_messages(
        r#"[{"role":"user","content":"a"},
            {"role":"assistant","tool_calls":[{"id":"call/1 ü","type":"function","function":{"name":"f","arguments":"{}"}}]},
            {"role":"tool","tool_call_id":"call/1 ü","content":"r"}]"#,
    ))
    .unwrap();
    let use_id = v["messages"][1]["content"][0]["toolUse"]["toolUseId"]
        .as_str()
        .unwrap();
    let result_id = v["messages"][2]["content"][0]["toolResult"]["toolUseId"]
        .as_str()
        .unwrap();
    assert_eq!(use_id, result_id);
    assert!(use_id.starts_with("t_") && use_id.len() == 34, "{use_id}");
    assert!(use_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
}

#[test]
fn bad_tool_calls_are_named() {
    for (call, param, code) in [
        (
            r#"{"id":"c","type":"custom","custom":{"name":"x","input":"y"}}"#,
            "messages[1].tool_calls[0].type",
            "unsupported_value",
        ),
        (
            r#"{"id":"c","type":"function"}"#,
            "messages[1].tool_calls[0].function",
            "missing_required_parameter",
        ),
        (
            r#"{"id":"c","type":"function","function":{"name":"a b","arguments":"{}"}}"#,
            "messages[1].tool_calls[0].function.name",
            "invalid_value",
        ),
        (
            r#"{"id":"","type":"function","function":{"name":"f","arguments":"{}"}}"#,
            "messages[1].tool_calls[0].id",
            "invalid_value",
        ),
    ] {
        let body = with_messages(&format!(
            r#"[{{"role":"user","content":"a"}},{{"role":"assistant","tool_calls":[{call}]}}]"#
        ));
        assert_rejected(&body, param, code);
    }
    // An empty list is no tool call at all.
    translate(&with_messages(
        r#"[{"role":"user","content":"a"},{"role":"assistant","content":"b","tool_calls":[]},{"role":"user","content":"c"}]"#,
    ))
    .unwrap();
}

#[test]
fn legacy_functions_map_like_tools_and_shape_the_reply() {
    let body = r#"{"model":"m","messages":[{"role":"user","content":"a"},
        {"role":"assistant","content":null,"function_call":{"name":"get_time","arguments":""}},
        {"role":"function","name":"get_time","content":"14:05"},{"role":"user","content":"b"}],
      "functions":[{"name":"get_time","description":"Time"}],"function_call":{"name":"get_time"}}"#;
    let (v, t) = translate_for(body, NAMED, &[]).unwrap();
    assert_eq!(
        v["messages"][1],
        json!({"role": "assistant", "content": [{"toolUse": {"toolUseId": "call_function_1", "name": "get_time", "input": {}}}]})
    );
    assert_eq!(
        v["messages"][2]["content"],
        json!([{"toolResult": {"toolUseId": "call_function_1", "content": [{"text": "14:05"}]}}, {"text": "b"}])
    );
    assert_eq!(
        v["toolConfig"],
        json!({"tools": [{"toolSpec": {"name": "get_time", "description": "Time",
            "inputSchema": {"json": {"type": "object", "properties": {}}}}}], "toolChoice": {"tool": {"name": "get_time"}}})
    );
    assert!(t.response.legacy_functions);
    rejected_for(
        &body.replace(
            r#""function_call":{"name":"get_time"}}"#,
            r#""function_call":{"name":"nope"}}"#,
        ),
        NAMED,
        "function_call.name",
        "invalid_value",
    );
    let auto = body.replace(
        r#""function_call":{"name":"get_time"}}"#,
        r#""function_call":"auto"}"#,
    );
    assert_eq!(
        translate(&auto).unwrap()["toolConfig"]["toolChoice"],
        json!({"auto": {}})
    );
}

#[test]
fn legacy_and_current_forms_do_not_mix() {
    rejected_for(
        &mk_body(&format!(r#""tools":[{TIME}],"functions":[{{"name":"f"}}]"#)),
        "{}",
        "functions",
        "invalid_value",
    );
    rejected_for(
        &mk_body(&format!(
            r#""tools":[{TIME}],"tool_choice":"auto","function_call":"auto""#
        )),
        "{}",
        "function_call",
        "invalid_value",
    );
    assert_rejected(
        &with_messages(r#"[{"role":"user","content":"a"},{"role":"function","name":"f","content":"r"}]"#),
        "messages[1].role",
        "invalid_value",
    );
}

#[test]
fn tool_cache_control_becomes_a_cache_point_after_the_tool() {
    let body = mk_body(&format!(
        r#""tools":[{TIME},{{"type":"function","cache_control":{{"type":"ephemeral"}},"function":{{"name":"last"}}}}]"#
    ));
    let (v, _) = translate_for(&body, "supports_prompt_caching: true", &[]).unwrap();
    let tools = v["toolConfig"]["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 3);
    assert_eq!(tools[2], json!({"cachePoint": {"type": "default"}}));
    let (v, t) = translate_for(&body, "{}", &[]).unwrap();
    assert_eq!(v["toolConfig"]["tools"].as_array().unwrap().len(), 2);
    assert_eq!(t.ignored.fields(), ["cache_control"]);
}
