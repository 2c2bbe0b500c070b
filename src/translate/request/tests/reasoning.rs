//! `reasoning_effort` and reasoning sent back on assistant messages (reference: mapping §2,
//! §6.3).

use serde_json::json;

use super::*;

const CLAUDE: &str = "reasoning:\n  thinking_budgets: {low: 2048, high: 16384}";

#[test]
fn thinking_budget_goes_to_additional_fields_and_max_tokens_makes_room_for_it() {
    for (limit, max_tokens) in [
        ("", 2048 + THINKING_ANSWER_TOKENS),
        (r#","max_completion_tokens":1000"#, 3048),
        (r#","max_tokens":2048"#, 4096),
        (r#","max_completion_tokens":9000"#, 9000),
    ] {
        let (v, _) = translate_for(
            &mk_body(&format!(r#""reasoning_effort":"low"{limit}"#)),
            CLAUDE,
            &[],
        )
        .unwrap();
        assert_eq!(
            v["additionalModelRequestFields"],
            json!({"thinking": {"type": "enabled", "budget_tokens": 2048}})
        );
        assert_eq!(v["inferenceConfig"]["maxTokens"], max_tokens, "{limit}");
    }
}

#[test]
fn none_and_absent_send_nothing() {
    let plain = translate(&mk_body("")).unwrap();
    let (v, _) = translate_for(&mk_body(r#""reasoning_effort":"none""#), CLAUDE, &[]).unwrap();
    assert_eq!(v, plain);
}

#[test]
fn levels_without_a_mapping_are_rejected_with_the_supported_list() {
    let err = rejected_for(
        &mk_body(r#""reasoning_effort":"medium""#),
        CLAUDE,
        "reasoning_effort",
        "unsupported_value",
    );
    assert!(
        err.message.contains("use none or one of: low, high"),
        "{}",
        err.message
    );
    let err = assert_rejected(
        &mk_body(r#""reasoning_effort":"high""#),
        "reasoning_effort",
        "unsupported_value",
    );
    assert!(
        err.message.contains("not supported for this model"),
        "{}",
        err.message
    );
    rejected_for(
        &mk_body(r#""reasoning_effort":"extreme""#),
        CLAUDE,
        "reasoning_effort",
        "invalid_value",
    );
}

#[test]
fn thinking_rejects_sampling_changes_and_forced_tools() {
    rejected_for(
        &mk_body(r#""reasoning_effort":"low","temperature":0.2"#),
        CLAUDE,
        "temperature",
        "unsupported_value",
    );
    rejected_for(
        &mk_body(r#""reasoning_effort":"low","top_p":0.5"#),
        CLAUDE,
        "top_p",
        "unsupported_value",
    );
    translate_for(
        &mk_body(r#""reasoning_effort":"low","temperature":1,"top_p":0.97"#),
        CLAUDE,
        &[],
    )
    .unwrap();
    rejected_for(
        &mk_body(
            r#""reasoning_effort":"low","tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"required""#,
        ),
        CLAUDE,
        "tool_choice",
        "unsupported_value",
    );
    rejected_for(
        &mk_body(r#""reasoning_effort":"low","response_format":{"type":"json_object"}"#),
        CLAUDE,
        "response_format",
        "unsupported_value",
    );
}

#[test]
fn effort_levels_and_native_fields_map_per_model() {
    let model = "reasoning:\n  effort: [low, high]\n  fields:\n    medium: {reasoningConfig: {type: enabled, maxReasoningEffort: medium}}";
    let (v, _) = translate_for(&mk_body(r#""reasoning_effort":"high""#), model, &[]).unwrap();
    assert_eq!(v["outputConfig"], json!({"effort": "high"}));
    assert!(v.get("additionalModelRequestFields").is_none());
    let (v, _) = translate_for(&mk_body(r#""reasoning_effort":"medium""#), model, &[]).unwrap();
    assert_eq!(
        v["additionalModelRequestFields"],
        json!({"reasoningConfig": {"type": "enabled", "maxReasoningEffort": "medium"}})
    );
}

#[test]
fn client_additional_fields_win_over_derived_ones() {
    let (v, _) = translate_for(
        &mk_body(
            r#""reasoning_effort":"low","bedrock":{"additionalModelRequestFields":{"top_k":5,"thinking":{"type":"enabled","budget_tokens":4000}}}"#,
        ),
        CLAUDE,
        &[],
    )
    .unwrap();
    assert_eq!(
        v["additionalModelRequestFields"],
        json!({"top_k": 5, "thinking": {"type": "enabled", "budget_tokens": 4000}})
    );
}

#[test]
fn signed_reasoning_is_sent_back_before_the_rest_of_the_turn() {
    let body = with_messages(
        r#"[{"role":"user","content":"a"},
            {"role":"assistant","content":"b","reasoning_content":"I think","reasoning_signature":"c2ln",
             "redacted_reasoning":["QUJD"],"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},
            {"role":"tool","tool_call_id":"c1","content":"r"}]"#,
    );
    let (v, t) = translate_for(&body, CLAUDE, &[]).unwrap();
    assert_eq!(
        v["messages"][1]["content"],
        json!([
            {"reasoningContent": {"reasoningText": {"text": "I think", "signature": "c2ln"}}},
            {"reasoningContent": {"redactedContent": "QUJD"}},
            {"text": "b"},
            {"toolUse": {"toolUseId": "c1", "name": "f", "input": {}}}
        ])
    );
    assert!(t.ignored.is_empty());
}

#[test]
fn unsigned_reasoning_is_not_sent_and_is_reported() {
    let (v, t) = translate_for(
        &with_messages(
            r#"[{"role":"user","content":"a"},{"role":"assistant","content":"b","reasoning_content":"hmm"},{"role":"user","content":"c"}]"#,
        ),
        "{}",
        &[],
    )
    .unwrap();
    assert_eq!(v["messages"][1]["content"], json!([{"text": "b"}]));
    assert_eq!(t.ignored.fields(), ["messages[].reasoning_content"]);
}

#[test]
fn thinking_is_left_out_of_a_tool_loop_whose_reasoning_was_not_sent_back() {
    let loop_without = with_messages(
        r#"[{"role":"user","content":"a"},
            {"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},
            {"role":"tool","tool_call_id":"c1","content":"r"}]"#,
    )
    .replace("]}", r#"],"reasoning_effort":"low"}"#);
    let (v, t) = translate_for(&loop_without, CLAUDE, &[]).unwrap();
    assert!(v.get("additionalModelRequestFields").is_none());
    assert!(v.get("inferenceConfig").is_none());
    assert_eq!(t.ignored.fields(), ["reasoning_effort"]);
    let loop_with = loop_without.replace(
        r#"{"role":"assistant","#,
        r#"{"role":"assistant","reasoning_content":"r","reasoning_signature":"s","#,
    );
    let (v, t) = translate_for(&loop_with, CLAUDE, &[]).unwrap();
    assert_eq!(
        v["additionalModelRequestFields"]["thinking"]["budget_tokens"],
        2048
    );
    assert!(t.ignored.is_empty());
}
