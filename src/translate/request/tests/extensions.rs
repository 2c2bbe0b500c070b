//! Structured output, prompt caching, the `bedrock` extension object, `user` and `metadata`
//! (reference: mapping §2, §3.3).

use serde_json::json;

use super::*;

const SCHEMA_FORMAT: &str = r#""response_format":{"type":"json_schema","json_schema":{"name":"answer","description":"The answer",
    "schema":{"type":"object","properties":{"n":{"type":"integer"}},"required":["n"]},"strict":true}}"#;

#[test]
fn json_schema_uses_native_structured_output_when_the_model_has_it() {
    let (v, t) = translate_for(&mk_body(SCHEMA_FORMAT), "supports_structured_output: true", &[]).unwrap();
    assert_eq!(
        v["outputConfig"],
        json!({"textFormat": {"type": "json_schema", "structure": {"jsonSchema": {
            "schema": "{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\"}},\"required\":[\"n\"]}",
            "name": "answer", "description": "The answer"}}}})
    );
    assert!(v.get("toolConfig").is_none());
    assert_eq!(t.response, ResponseShape::default());
}

#[test]
fn json_schema_is_emulated_with_a_forced_tool_elsewhere() {
    let (v, t) = translate_for(&mk_body(SCHEMA_FORMAT), "supports_named_tool_choice: true", &[]).unwrap();
    assert!(v.get("outputConfig").is_none());
    assert_eq!(
        v["toolConfig"],
        json!({"tools": [{"toolSpec": {"name": "answer", "description": "The answer", "inputSchema": {"json":
            {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}}}}],
            "toolChoice": {"tool": {"name": "answer"}}})
    );
    assert_eq!(t.response.json_tool.as_deref(), Some("answer"));
    assert_eq!(t.ignored.fields(), ["response_format.json_schema.strict"]);
    // Without a named choice, `any` over the single tool forces it just the same.
    let (v, _) = translate_for(&mk_body(SCHEMA_FORMAT), "{}", &[]).unwrap();
    assert_eq!(v["toolConfig"]["toolChoice"], json!({"any": {}}));
}

#[test]
fn json_object_is_emulated_with_a_permissive_object_schema() {
    let (v, t) = translate_for(
        &mk_body(r#""response_format":{"type":"json_object"}"#),
        "supports_structured_output: true",
        &[],
    )
    .unwrap();
    assert_eq!(
        v["toolConfig"]["tools"],
        json!([{"toolSpec": {"name": "json_response",
            "description": "Respond to the user by calling this tool: its input is the whole response.",
            "inputSchema": {"json": {"type": "object"}}}}])
    );
    assert_eq!(t.response.json_tool.as_deref(), Some("json_response"));
}

#[test]
fn emulation_next_to_client_tools_lets_any_tool_be_called() {
    let (v, _) = translate_for(
        &mk_body(&format!(r#"{SCHEMA_FORMAT},"tools":[{{"type":"function","function":{{"name":"lookup"}}}}],"tool_choice":"auto""#)),
        "{}",
        &[],
    )
    .unwrap();
    let names: Vec<&str> = v["toolConfig"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["toolSpec"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["lookup", "answer"]);
    assert_eq!(v["toolConfig"]["toolChoice"], json!({"any": {}}));
}

#[test]
fn bad_response_formats_are_named() {
    rejected_for(
        &mk_body(&format!(
            r#"{SCHEMA_FORMAT},"tools":[{{"type":"function","function":{{"name":"answer"}}}}]"#
        )),
        "{}",
        "response_format.json_schema.name",
        "invalid_value",
    );
    rejected_for(
        &mk_body(r#""response_format":{"type":"json_schema","json_schema":{"name":"a b"}}"#),
        "{}",
        "response_format.json_schema.name",
        "invalid_value",
    );
    rejected_for(
        &mk_body(
            r#""response_format":{"type":"json_schema","json_schema":{"name":"a","schema":{"type":"array"}}}"#,
        ),
        "{}",
        "response_format.json_schema.schema",
        "unsupported_value",
    );
    rejected_for(
        &mk_body(r#""response_format":{"type":"json_schema"}"#),
        "{}",
        "response_format.json_schema",
        "missing_required_parameter",
    );
    rejected_for(
        &mk_body(r#""response_format":{"type":"yaml"}"#),
        "{}",
        "response_format.type",
        "invalid_value",
    );
}

#[test]
fn cache_control_markers_become_cache_points_after_the_marked_block() {
    let body = with_messages(
        r#"[{"role":"system","content":[{"type":"text","text":"Long rules","cache_control":{"type":"ephemeral"}}]},
            {"role":"developer","content":"More","cache_control":{"type":"ephemeral","ttl":"1h"}},
            {"role":"user","content":[{"type":"text","text":"Doc","cache_control":{"type":"ephemeral"}},{"type":"text","text":"Q"}]},
            {"role":"assistant","content":"A","cache_control":{"type":"ephemeral"}},
            {"role":"user","content":"Next"}]"#,
    );
    let (v, t) = translate_for(&body, "supports_prompt_caching: true", &[]).unwrap();
    assert_eq!(
        v["system"],
        json!([{"text": "Long rules"}, {"cachePoint": {"type": "default"}}, {"text": "More"},
               {"cachePoint": {"type": "default", "ttl": "1h"}}])
    );
    assert_eq!(
        v["messages"][0]["content"],
        json!([{"text": "Doc"}, {"cachePoint": {"type": "default"}}, {"text": "Q"}])
    );
    assert_eq!(
        v["messages"][1]["content"],
        json!([{"text": "A"}, {"cachePoint": {"type": "default"}}])
    );
    assert!(t.ignored.is_empty());
    let (v, t) = translate_for(&body, "{}", &[]).unwrap();
    assert_eq!(v["system"], json!([{"text": "Long rules"}, {"text": "More"}]));
    assert_eq!(t.ignored.fields(), ["cache_control"]);
    rejected_for(
        &body.replace(r#""ttl":"1h""#, r#""ttl":"2d""#),
        "supports_prompt_caching: true",
        "messages[1].cache_control.ttl",
        "invalid_value",
    );
}

#[test]
fn automatic_cache_points_close_system_tools_and_the_last_user_turn() {
    let body = with_messages(
        r#"[{"role":"system","content":"S"},{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"user","content":"c"}]"#,
    )
    .replace("]}", r#"],"tools":[{"type":"function","function":{"name":"f"}}]}"#);
    let (v, _) = translate_for(
        &body,
        "supports_prompt_caching: true\ncache_points: [system, tools, messages]",
        &[],
    )
    .unwrap();
    assert_eq!(
        v["system"],
        json!([{"text": "S"}, {"cachePoint": {"type": "default"}}])
    );
    assert_eq!(
        v["toolConfig"]["tools"][1],
        json!({"cachePoint": {"type": "default"}})
    );
    assert_eq!(
        v["messages"][2]["content"],
        json!([{"text": "c"}, {"cachePoint": {"type": "default"}}])
    );
    assert_eq!(v["messages"][0]["content"], json!([{"text": "a"}]));
}

#[test]
fn automatic_cache_points_stay_within_the_limit_of_four() {
    let marked = r#"{"type":"text","text":"x","cache_control":{"type":"ephemeral"}}"#;
    let body = with_messages(&format!(
        r#"[{{"role":"system","content":[{marked}]}},{{"role":"user","content":[{marked},{marked},{marked},{{"type":"text","text":"q"}}]}}]"#
    ));
    let (v, _) = translate_for(
        &body,
        "supports_prompt_caching: true\ncache_points: [system, messages]",
        &[],
    )
    .unwrap();
    let points = v["messages"][0]["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b.get("cachePoint").is_some())
        .count();
    assert_eq!(points, 3, "the explicit ones stay, no automatic fifth");
    assert_eq!(v["system"].as_array().unwrap().len(), 2);
}

#[test]
fn bedrock_extension_members_pass_through() {
    let (v, _) = translate_for(
        &mk_body(
            r#""stream":true,"bedrock":{"guardrailConfig":{"guardrailIdentifier":"gr1","guardrailVersion":"DRAFT","trace":"enabled","streamProcessingMode":"async"},
               "performanceConfig":{"latency":"optimized"},"promptVariables":{"topic":{"text":"cats"}},
               "requestMetadata":{"tenant":"acme"},"additionalModelRequestFields":{"top_k":50}}"#,
        ),
        "{}",
        &[],
    )
    .unwrap();
    assert_eq!(
        v["guardrailConfig"],
        json!({"guardrailIdentifier": "gr1", "guardrailVersion": "DRAFT", "trace": "enabled", "streamProcessingMode": "async"})
    );
    assert_eq!(v["performanceConfig"], json!({"latency": "optimized"}));
    assert_eq!(v["promptVariables"], json!({"topic": {"text": "cats"}}));
    assert_eq!(v["requestMetadata"], json!({"tenant": "acme"}));
    assert_eq!(v["additionalModelRequestFields"], json!({"top_k": 50}));
}

#[test]
fn bad_extension_members_are_named() {
    rejected_for(
        &mk_body(
            r#""bedrock":{"guardrailConfig":{"guardrailIdentifier":"g","guardrailVersion":"1","streamProcessingMode":"sync"}}"#,
        ),
        "{}",
        "bedrock.guardrailConfig.streamProcessingMode",
        "invalid_value",
    );
    rejected_for(
        &mk_body(r#""bedrock":{"guardrailConfig":{"guardrailIdentifier":"g","guardrailVersion":"v1"}}"#),
        "{}",
        "bedrock.guardrailConfig.guardrailVersion",
        "invalid_value",
    );
    rejected_for(
        &mk_body(r#""bedrock":{"performanceConfig":{"latency":"fast"}}"#),
        "{}",
        "bedrock.performanceConfig.latency",
        "invalid_value",
    );
    rejected_for(
        &mk_body(r#""bedrock":{"requestMetadata":{"k":"bad\u0000"}}"#),
        "{}",
        "bedrock.requestMetadata",
        "invalid_value",
    );
    rejected_for(
        &mk_body(r#""bedrock":{"additionalModelRequestFields":[1]}"#),
        "{}",
        "bedrock.additionalModelRequestFields",
        "invalid_value",
    );
}

#[test]
fn model_guardrail_applies_unless_the_request_names_one() {
    let model = "guardrail: {identifier: gdefault, version: \"3\", stream_processing_mode: async}";
    let (v, _) = translate_for(&mk_body(""), model, &[]).unwrap();
    assert_eq!(
        v["guardrailConfig"],
        json!({"guardrailIdentifier": "gdefault", "guardrailVersion": "3"})
    );
    let (v, _) = translate_for(&mk_body(r#""stream":true"#), model, &[]).unwrap();
    assert_eq!(v["guardrailConfig"]["streamProcessingMode"], "async");
    let (v, _) = translate_for(
        &mk_body(r#""bedrock":{"guardrailConfig":{"guardrailIdentifier":"mine","guardrailVersion":"1"}}"#),
        model,
        &[],
    )
    .unwrap();
    assert_eq!(v["guardrailConfig"]["guardrailIdentifier"], "mine");
}

#[test]
fn user_and_metadata_go_to_request_metadata_where_bedrock_allows() {
    let (v, t) = translate_for(
        &mk_body(r#""user":"user-42","safety_identifier":"sid","metadata":{"team":"search","note":"ünïcode"},"bedrock":{"requestMetadata":{"team":"explicit"}}"#),
        "{}",
        &[],
    )
    .unwrap();
    assert_eq!(
        v["requestMetadata"],
        json!({"team": "explicit", "user": "user-42", "safety_identifier": "sid"})
    );
    assert_eq!(t.ignored.fields(), ["metadata"]);
    let (v, t) = translate_for(&mk_body(r#""user":"bad<user>""#), "{}", &[]).unwrap();
    assert!(v.get("requestMetadata").is_none());
    assert_eq!(t.ignored.fields(), ["user"]);
}

#[test]
fn message_names_are_reported_as_ignored() {
    let (_, t) = translate_for(
        &with_messages(r#"[{"role":"user","name":"alice","content":"a"}]"#),
        "{}",
        &[],
    )
    .unwrap();
    assert_eq!(t.ignored.fields(), ["messages[].name"]);
}

#[test]
fn model_options_problems_are_reported() {
    let model: ModelOptions = serde_yaml::from_str(
        "reasoning: {thinking_budgets: {low: 100}}\ncache_points: [system]\nguardrail: {identifier: '', version: v2, trace: loud}",
    )
    .unwrap();
    let problems = model.problems().join("\n");
    for key in [
        "thinking_budgets.low",
        "cache_points",
        "guardrail.identifier",
        "guardrail.version",
        "guardrail.trace",
    ] {
        assert!(problems.contains(key), "{key} missing in {problems}");
    }
    assert!(serde_yaml::from_str::<ModelOptions>("supports_everything: true").is_err());
}
