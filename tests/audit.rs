//! The audit log over real sockets: one parsed line per request (unary, stream, refused) and
//! per session exchange, with the fields README documents, the chain verified, and shown broken
//! after an edit.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;

use ai_gateway::audit;
use ai_gateway::auth::keys::{KeysFile, NewKey};
use ai_gateway::auth::{Clock, ManualClock};
use ai_gateway::config::Config;
use bytes::Bytes;
use http::Request;
use serde_json::{Value, json};
use support::{TestEnv, chat, send};

/// 2023-11-14T22:13:20.000Z.
const T0_MS: u64 = 1_700_000_000_000;

async fn post(env: &TestEnv, path: &str, key: &str, body: &Value) -> support::Reply {
    let request = Request::post(env.url(path))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {key}"))
        .header(
            "x-request-id",
            format!("req-{path}-{}", body["model"].as_str().unwrap_or("none")),
        );
    send(
        &env.client,
        request,
        Bytes::from(serde_json::to_vec(body).unwrap()),
    )
    .await
}

#[tokio::test]
async fn every_request_and_auth_event_is_one_chained_line_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let keys_path = dir.path().join("keys.yaml");
    let log_path = dir.path().join("audit.log");
    let mut keys = KeysFile::default();
    let new = NewKey {
        models: vec!["claude-3-haiku".into()],
        ..NewKey::default()
    };
    let (alice, _) = keys.add("alice", new, 1).unwrap();
    let totp = NewKey {
        require_totp: true,
        ..NewKey::default()
    };
    let (bob, seed) = keys.add("bob", totp, 1).unwrap();
    keys.save(&keys_path).unwrap();
    let clock = ManualClock::new(T0_MS);
    let (keys_file, log_file) = (keys_path.clone(), log_path.clone());
    let (env, _gw) = TestEnv::start_with_clock(Arc::new(clock.clone()), move |c: &mut Config| {
        c.auth.keys_file = Some(keys_file);
        c.audit.output = Some(log_file);
    })
    .await;
    let alice = alice.expose().to_owned();
    let bob = bob.expose().to_owned();

    let unary = post(
        &env,
        "/v1/chat/completions",
        &alice,
        &chat("claude-3-haiku", "hi mock:usage=11,7,3,0", false),
    )
    .await;
    assert_eq!(unary.status, 200);
    let stream = post(
        &env,
        "/v1/chat/completions",
        &alice,
        &chat("claude-3-haiku", "hi mock:usage=5,9,0,0", true),
    )
    .await;
    assert_eq!(stream.status, 200);
    assert_eq!(
        post(
            &env,
            "/v1/chat/completions",
            &alice,
            &chat("nova-lite", "hi", false)
        )
        .await
        .status,
        403
    );
    assert_eq!(
        post(
            &env,
            "/v1/chat/completions",
            "aigw-wrong",
            &chat("claude-3-haiku", "hi", false)
        )
        .await
        .status,
        401
    );
    let code = seed.unwrap().code_at(clock.now_secs());
    assert_eq!(
        post(&env, "/v1/auth/session", &bob, &json!({ "code": code }))
            .await
            .status,
        200
    );
    assert_eq!(
        post(&env, "/v1/auth/session", &bob, &json!({ "code": code }))
            .await
            .status,
        401
    );

    // Shutdown drains the connections and flushes the writer.
    env.gateway.shutdown().await;
    let text = std::fs::read_to_string(&log_path).unwrap();
    for secret in [&alice[5..], &bob[5..]] {
        assert!(!text.contains(secret), "a key in the audit log");
    }
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let of_type = |t: &str| lines.iter().filter(|l| l["type"] == t).collect::<Vec<_>>();
    assert_eq!(of_type("audit_open").len(), 1);
    let requests = of_type("request");
    assert_eq!(requests.len(), 6, "{text}");
    let auth = of_type("auth");
    assert_eq!(auth.len(), 2, "{text}");

    let find = |pred: &dyn Fn(&Value) -> bool| *requests.iter().find(|r| pred(r)).unwrap();
    let unary = find(&|r| r["stream"] == false && r["status"] == 200 && r["path"] == "/v1/chat/completions");
    assert_eq!(unary["time"], "2023-11-14T22:13:20.000Z");
    assert_eq!(unary["key"], "alice");
    assert_eq!(unary["method"], "POST");
    assert_eq!(unary["model"], "claude-3-haiku");
    assert_eq!(unary["upstream_model"], "anthropic.claude-3-haiku-20240307-v1:0");
    assert_eq!(unary["prompt_tokens"], 14);
    assert_eq!(unary["completion_tokens"], 7);
    assert_eq!(unary["cached_tokens"], 3);
    assert_eq!(unary["outcome"], "ok");
    assert!(
        unary["client"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{unary}"
    );
    assert!(unary["ttfb_ms"].is_u64() && unary["duration_ms"].is_u64());
    assert_eq!(unary["error"], Value::Null);
    assert_eq!(unary["request_id"], "req-/v1/chat/completions-claude-3-haiku");

    let streamed = find(&|r| r["stream"] == true);
    assert_eq!(streamed["status"], 200);
    assert_eq!(streamed["prompt_tokens"], 5);
    assert_eq!(streamed["completion_tokens"], 9);
    assert_eq!(streamed["outcome"], "ok");

    let refused = find(&|r| r["status"] == 403);
    assert_eq!(refused["error"], "model_not_allowed");
    assert_eq!(refused["model"], "nova-lite");
    let unknown = find(&|r| r["status"] == 401 && r["path"] == "/v1/chat/completions");
    assert_eq!(unknown["key"], Value::Null);
    assert_eq!(unknown["error"], "unauthorized");

    assert_eq!(auth[0]["event"], "session_opened");
    assert_eq!(auth[0]["key"], "bob");
    assert_eq!(auth[1]["event"], "totp_replayed");
    for event in &auth {
        assert!(
            event["client"].as_str().unwrap().starts_with("127.0.0.1:"),
            "{event}"
        );
    }

    let verified =
        audit::verify_file(&log_path, Some(audit::GENESIS), &audit::LineHasher::unkeyed()).unwrap();
    assert_eq!(verified.lines, lines.len());
    assert_eq!(verified.head, lines.last().unwrap()["hash"]);

    // Change one token count: the line no longer matches its hash.
    let tampered = text.replacen("\"completion_tokens\":7", "\"completion_tokens\":1", 1);
    let err = audit::verify(
        std::io::Cursor::new(tampered),
        None,
        &audit::LineHasher::unkeyed(),
    )
    .unwrap_err();
    let edited_line = text
        .lines()
        .position(|l| l.contains("\"completion_tokens\":7"))
        .unwrap()
        + 1;
    assert_eq!(err.line, edited_line);
}
