//! Client authentication over real sockets: API keys (Bearer and x-api-key), revocation picked
//! up without a restart, model allow-lists, TOTP sessions (codes computed here from the seed at
//! times this test sets), replay and lockout, and each per-key limit exceeded and recovered.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ai_gateway::auth::keys::{KeysFile, NewKey};
use ai_gateway::auth::limits::KeyLimits;
use ai_gateway::auth::totp::{STEP_SECS, TotpSecret};
use ai_gateway::auth::{Clock, ManualClock};
use ai_gateway::config::Config;
use ai_gateway::service::Gateway;
use bytes::Bytes;
use http::Request;
use serde_json::{Value, json};
use support::{Reply, SseReader, TestEnv, chat, send};

/// 2023-11-14T22:13:00Z, the first second of a TOTP step.
const T0_MS: u64 = 1_699_999_980_000;

struct Keys {
    _dir: tempfile::TempDir,
    path: PathBuf,
    file: KeysFile,
}

impl Keys {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.yaml");
        Self {
            _dir: dir,
            path,
            file: KeysFile::default(),
        }
    }

    fn add(&mut self, name: &str, new: NewKey) -> (String, Option<TotpSecret>) {
        let (key, secret) = self.file.add(name, new, 1).unwrap();
        self.file.save(&self.path).unwrap();
        (key.expose().to_owned(), secret)
    }

    fn revoke(&mut self, name: &str) {
        self.file.revoke(name, 2).unwrap();
        self.file.save(&self.path).unwrap();
    }
}

fn limits(rpm: Option<u32>, tpm: Option<u64>, max_streams: Option<u32>) -> NewKey {
    NewKey {
        limits: KeyLimits {
            rpm,
            tpm,
            max_streams,
        },
        ..NewKey::default()
    }
}

async fn start(keys: &Path, clock: &ManualClock) -> (TestEnv, Gateway) {
    let keys = keys.to_owned();
    TestEnv::start_with_clock(Arc::new(clock.clone()), move |c: &mut Config| {
        c.auth.keys_file = Some(keys);
        c.auth.reload_interval_ms = 100;
        c.auth.totp_max_failures = 3;
    })
    .await
}

async fn post_as(env: &TestEnv, path: &str, key: Option<&str>, body: &Value) -> Reply {
    let mut builder = Request::post(env.url(path)).header("content-type", "application/json");
    if let Some(key) = key {
        builder = builder.header("authorization", format!("Bearer {key}"));
    }
    send(
        &env.client,
        builder,
        Bytes::from(serde_json::to_vec(body).unwrap()),
    )
    .await
}

async fn chat_as(env: &TestEnv, key: &str, model: &str) -> Reply {
    post_as(
        env,
        "/v1/chat/completions",
        Some(key),
        &chat(model, "hello", false),
    )
    .await
}

async fn session(env: &TestEnv, key: &str, code: &str) -> Reply {
    post_as(env, "/v1/auth/session", Some(key), &json!({ "code": code })).await
}

fn assert_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status, status, "{}", reply.text());
    assert_eq!(reply.error()["code"], code, "{}", reply.text());
}

/// A gateway with one key, `haiku-only`, allowed the `claude-3-haiku` alias alone.
async fn haiku_only() -> (Keys, String, TestEnv, Gateway) {
    let mut keys = Keys::new();
    let (key, _) = keys.add(
        "haiku-only",
        NewKey {
            models: vec!["claude-3-haiku".into()],
            ..NewKey::default()
        },
    );
    let (env, gw) = start(&keys.path, &ManualClock::new(T0_MS)).await;
    (keys, key, env, gw)
}

/// Whether `body` sent to `path` with `key` gets a 200 within about two seconds (a slot
/// given back by a stream's end is seen a moment after its last byte).
async fn succeeds_soon(env: &TestEnv, key: &str, path: &str, body: &Value) -> bool {
    for _ in 0..100 {
        if post_as(env, path, Some(key), body).await.status == 200 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// A 429 from the per-key limiter, naming the limit that was hit.
fn assert_rate_limited(reply: &Reply, limit: &str) {
    assert_error(reply, 429, "rate_limit_exceeded");
    let message = reply.error()["message"].as_str().unwrap_or_default().to_owned();
    assert!(message.contains(limit), "{message}");
}

#[tokio::test]
async fn missing_unknown_and_revoked_keys_get_401_and_revocation_needs_no_restart() {
    let mut keys = Keys::new();
    let (alice, _) = keys.add("alice", NewKey::default());
    let clock = ManualClock::new(T0_MS);
    let (env, _gw) = start(&keys.path, &clock).await;

    let reply = env
        .post_json("/v1/chat/completions", &chat("claude-3-haiku", "hi", false))
        .await;
    assert_error(&reply, 401, "invalid_api_key");
    assert!(reply.headers.contains_key("www-authenticate"));
    assert_error(
        &chat_as(&env, "aigw-not-a-real-key", "claude-3-haiku").await,
        401,
        "invalid_api_key",
    );
    let ok = chat_as(&env, &alice, "claude-3-haiku").await;
    assert_eq!(ok.status, 200, "{}", ok.text());

    // The key as `x-api-key` (Anthropic-style clients) works too.
    let request = Request::post(env.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .header("x-api-key", &alice);
    let body = Bytes::from(serde_json::to_vec(&chat("claude-3-haiku", "hi", false)).unwrap());
    assert_eq!(send(&env.client, request, body).await.status, 200);

    keys.revoke("alice");
    let mut revoked = false;
    for _ in 0..250 {
        if chat_as(&env, &alice, "claude-3-haiku").await.status == 401 {
            revoked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(revoked, "revocation not picked up from the keys file");
    assert_error(
        &chat_as(&env, &alice, "claude-3-haiku").await,
        401,
        "invalid_api_key",
    );
}

#[tokio::test]
async fn probes_need_no_key_and_the_api_does() {
    let mut keys = Keys::new();
    let (alice, _) = keys.add("alice", NewKey::default());
    let (env, _gw) = start(&keys.path, &ManualClock::new(T0_MS)).await;
    assert_eq!(env.get("/health").await.status, 200);
    assert_eq!(env.get("/ready").await.status, 200);
    assert_error(&env.get("/v1/models").await, 401, "invalid_api_key");
    let request = Request::get(env.url("/v1/models")).header("authorization", format!("Bearer {alice}"));
    assert_eq!(send(&env.client, request, Bytes::new()).await.status, 200);
}

#[tokio::test]
async fn a_model_outside_the_allow_list_is_403() {
    let (_keys, key, env, _gw) = haiku_only().await;
    assert_eq!(chat_as(&env, &key, "claude-3-haiku").await.status, 200);
    let reply = chat_as(&env, &key, "nova-lite").await;
    assert_error(&reply, 403, "model_not_allowed");
    assert_eq!(reply.error()["param"], "model");
    assert_eq!(env.mock.calls(), 1, "a refused request never reaches Bedrock");
}

#[tokio::test]
async fn a_totp_key_trades_a_fresh_code_for_a_session_once() {
    let mut keys = Keys::new();
    let new = NewKey {
        require_totp: true,
        ..NewKey::default()
    };
    let (key, secret) = keys.add("bob", new);
    let secret = secret.unwrap();
    let clock = ManualClock::new(T0_MS + 5_000);
    let (env, _gw) = start(&keys.path, &clock).await;

    // The key alone is not enough.
    assert_error(
        &chat_as(&env, &key, "claude-3-haiku").await,
        401,
        "session_required",
    );

    let code = secret.code_at(clock.now_secs());
    let reply = session(&env, &key, &code).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.headers["cache-control"], "no-store");
    let body = reply.json();
    assert_eq!(body["key"], "bob");
    assert_eq!(body["expires_in"], 12 * 3600);
    let token = body["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("aigws-"));
    assert_eq!(chat_as(&env, &token, "claude-3-haiku").await.status, 200);

    // The same code, still inside its window: a replay.
    clock.advance(Duration::from_secs(20));
    assert_error(&session(&env, &key, &code).await, 401, "invalid_totp_code");

    // A session token cannot be traded for another session.
    let next = secret.code_at(clock.now_secs() + STEP_SECS);
    assert_error(&session(&env, &token, &next).await, 401, "invalid_api_key");

    // One step of clock skew: the phone is 30 s ahead.
    let reply = session(&env, &key, &next).await;
    assert_eq!(reply.status, 200, "{}", reply.text());

    // The session ends with its TTL.
    clock.advance(Duration::from_secs(12 * 3600));
    assert_error(
        &chat_as(&env, &token, "claude-3-haiku").await,
        401,
        "invalid_api_key",
    );
}

#[tokio::test]
async fn wrong_codes_lock_a_key_out_until_the_lockout_passes() {
    let mut keys = Keys::new();
    let new = NewKey {
        require_totp: true,
        ..NewKey::default()
    };
    let (key, secret) = keys.add("carol", new);
    let secret = secret.unwrap();
    let clock = ManualClock::new(T0_MS);
    let (env, _gw) = start(&keys.path, &clock).await;
    let wrong = (0..10)
        .map(|n| format!("{n:06}"))
        .find(|c| secret.verify(c, clock.now_secs()).is_none())
        .unwrap();
    for _ in 0..3 {
        assert_error(&session(&env, &key, &wrong).await, 401, "invalid_totp_code");
    }
    let good = secret.code_at(clock.now_secs());
    let reply = session(&env, &key, &good).await;
    assert_error(&reply, 429, "too_many_attempts");
    assert_eq!(reply.headers["retry-after"], "300");

    clock.advance(Duration::from_secs(300));
    let reply = session(&env, &key, &secret.code_at(clock.now_secs())).await;
    assert_eq!(reply.status, 200, "{}", reply.text());

    // A malformed body is a 400 that names the field.
    let reply = post_as(&env, "/v1/auth/session", Some(&key), &json!({"code": 123456})).await;
    assert_error(&reply, 400, "invalid_value");
    assert_eq!(reply.error()["param"], "code");
}

#[tokio::test]
async fn requests_per_minute_refuse_with_openai_headers_then_recover() {
    let mut keys = Keys::new();
    let (key, _) = keys.add("rpm2", limits(Some(2), None, None));
    let clock = ManualClock::new(T0_MS);
    let (env, _gw) = start(&keys.path, &clock).await;

    let first = chat_as(&env, &key, "claude-3-haiku").await;
    assert_eq!(first.status, 200);
    assert_eq!(first.headers["x-ratelimit-limit-requests"], "2");
    assert_eq!(first.headers["x-ratelimit-remaining-requests"], "1");
    assert_eq!(first.headers["x-ratelimit-reset-requests"], "30s");
    assert!(!first.headers.contains_key("x-ratelimit-limit-tokens"));
    assert_eq!(chat_as(&env, &key, "claude-3-haiku").await.status, 200);

    let refused = chat_as(&env, &key, "claude-3-haiku").await;
    assert_error(&refused, 429, "rate_limit_exceeded");
    assert_eq!(refused.headers["retry-after"], "30");
    assert_eq!(refused.headers["x-ratelimit-remaining-requests"], "0");
    assert_eq!(env.mock.calls(), 2);
    // /metrics needs no key; the refusal is counted under the key's name and the limit.
    let metrics = env.get("/metrics").await.text();
    assert!(
        metrics.contains(r#"ai_gateway_rate_limited_total{key="rpm2",limit="requests"} 1"#),
        "{metrics}"
    );

    clock.advance(Duration::from_secs(30));
    assert_eq!(chat_as(&env, &key, "claude-3-haiku").await.status, 200);
}

#[tokio::test]
async fn tokens_per_minute_count_bedrock_usage_from_replies_and_streams() {
    let mut keys = Keys::new();
    let (key, _) = keys.add("tpm", limits(None, Some(100), None));
    let clock = ManualClock::new(T0_MS);
    let (env, _gw) = start(&keys.path, &clock).await;

    // 30 + 20 tokens, unary.
    let reply = post_as(
        &env,
        "/v1/chat/completions",
        Some(&key),
        &chat("claude-3-haiku", "hi mock:usage=30,20,0,0", false),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.headers["x-ratelimit-limit-tokens"], "100");
    assert_eq!(
        reply.headers["x-ratelimit-remaining-tokens"], "100",
        "charged after the reply"
    );

    // 40 + 40 more, streamed: charged when the stream ends.
    let streamed = post_as(
        &env,
        "/v1/chat/completions",
        Some(&key),
        &chat("claude-3-haiku", "hi mock:usage=40,40,0,0", true),
    )
    .await;
    assert_eq!(streamed.status, 200);
    assert_eq!(streamed.headers["x-ratelimit-remaining-tokens"], "50");
    assert!(streamed.sse_data().last().is_some_and(|d| d == "[DONE]"));

    // 130 used of 100: refused until the debt of 30 (+1) is repaid at 100 per minute.
    let mut refused = None;
    for _ in 0..100 {
        let reply = chat_as(&env, &key, "claude-3-haiku").await;
        if reply.status == 429 {
            refused = Some(reply);
            break;
        }
        // The stream's end hook may run just after its last byte reached us.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let refused = refused.expect("over the token limit");
    assert_eq!(refused.error()["code"], "rate_limit_exceeded");
    assert!(
        refused.error()["message"]
            .as_str()
            .unwrap()
            .contains("tokens per minute")
    );
    assert_eq!(refused.headers["retry-after"], "19");

    clock.advance(Duration::from_millis(18_600));
    assert_eq!(chat_as(&env, &key, "claude-3-haiku").await.status, 200);
}

#[tokio::test]
async fn concurrent_streams_are_capped_per_key() {
    let mut keys = Keys::new();
    let (key, _) = keys.add("one-stream", limits(None, None, Some(1)));
    let (env, _gw) = start(&keys.path, &ManualClock::new(T0_MS)).await;
    let open = |text: &'static str| {
        let request = Request::post(env.url("/v1/chat/completions"))
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {key}"))
            .body(http_body_util::Full::new(Bytes::from(
                serde_json::to_vec(&chat("claude-3-haiku", text, true)).unwrap(),
            )))
            .unwrap();
        env.client.request(request)
    };
    // The first stream's frames are two seconds apart: it stays open while the second asks.
    let first = open("hi mock:frames=2 mock:delay_ms=2000").await.unwrap();
    assert_eq!(first.status(), 200);
    let second = post_as(
        &env,
        "/v1/chat/completions",
        Some(&key),
        &chat("claude-3-haiku", "hi", true),
    )
    .await;
    assert_rate_limited(&second, "concurrent streams");
    // A non-streaming request is not a stream.
    assert_eq!(chat_as(&env, &key, "claude-3-haiku").await.status, 200);

    let mut reader = SseReader::new(first);
    while let Some((data, _)) = reader.next().await {
        if data == "[DONE]" {
            break;
        }
    }
    drop(reader);
    assert!(
        succeeds_soon(
            &env,
            &key,
            "/v1/chat/completions",
            &chat("claude-3-haiku", "hi", true)
        )
        .await,
        "the slot was not given back"
    );
}

#[tokio::test]
async fn auth_off_keeps_the_sidecar_open_and_has_no_session_endpoint() {
    let env = TestEnv::start().await;
    assert_eq!(
        env.post_json("/v1/chat/completions", &chat("claude-3-haiku", "hi", false))
            .await
            .status,
        200
    );
    let reply = env
        .post_json("/v1/auth/session", &json!({"code": "123456"}))
        .await;
    assert_error(&reply, 400, "auth_disabled");
}

#[tokio::test]
async fn native_bedrock_paths_are_authenticated_and_follow_the_allow_list() {
    let (_keys, key, env, _gw) = haiku_only().await;
    let native = |id: &str| format!("/model/{id}/converse");
    let body = json!({"messages": [{"role": "user", "content": [{"text": "hi"}]}]});
    let reply = post_as(&env, &native("amazon.nova-lite-v1:0"), None, &body).await;
    assert_eq!(reply.status, 401, "{}", reply.text());
    let reply = post_as(&env, &native("amazon.nova-lite-v1:0"), Some(&key), &body).await;
    assert_eq!(reply.status, 403, "{}", reply.text());
    // The id its alias routes to (percent-encoded, as the AWS SDKs send it) gets through.
    let reply = post_as(
        &env,
        &native("anthropic.claude-3-haiku-20240307-v1%3A0"),
        Some(&key),
        &body,
    )
    .await;
    assert!(![401, 403].contains(&reply.status.as_u16()), "{}", reply.text());
    // So does the allowed alias itself, which the native paths accept as a model.
    let reply = post_as(&env, &native("claude-3-haiku"), Some(&key), &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
}

#[tokio::test]
async fn native_streams_take_the_keys_stream_slots() {
    let mut keys = Keys::new();
    let (key, _) = keys.add("one-stream", limits(None, None, Some(1)));
    let (env, _gw) = start(&keys.path, &ManualClock::new(T0_MS)).await;
    let converse = |text: &str| json!({"messages": [{"role": "user", "content": [{"text": text}]}]});
    // A ConverseStream relayed byte for byte, its frames two seconds apart: it holds the slot.
    let request = Request::post(env.url("/model/claude-3-haiku/converse-stream"))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {key}"))
        .body(http_body_util::Full::new(Bytes::from(
            converse("hi mock:frames=2 mock:delay_ms=2000").to_string(),
        )))
        .unwrap();
    let held = env.client.request(request).await.unwrap();
    assert_eq!(held.status(), 200);

    // A second native stream is throttled in Bedrock's shape, and so is a chat stream.
    let refused = post_as(
        &env,
        "/model/claude-3-haiku/converse-stream",
        Some(&key),
        &converse("hi"),
    )
    .await;
    assert_eq!(refused.status, 429, "{}", refused.text());
    assert_eq!(refused.headers["x-amzn-errortype"], "ThrottlingException");
    assert_eq!(refused.headers["retry-after"], "1");
    assert!(
        refused.text().contains("concurrent streams"),
        "{}",
        refused.text()
    );
    let chat_stream = post_as(
        &env,
        "/v1/chat/completions",
        Some(&key),
        &chat("claude-3-haiku", "hi", true),
    )
    .await;
    assert_error(&chat_stream, 429, "rate_limit_exceeded");
    // A non-streaming native call is not a stream.
    let unary = post_as(
        &env,
        "/model/claude-3-haiku/converse",
        Some(&key),
        &converse("hi"),
    )
    .await;
    assert_eq!(unary.status, 200, "{}", unary.text());

    // Dropping the relayed body gives the slot back.
    drop(held);
    assert!(
        succeeds_soon(
            &env,
            &key,
            "/model/claude-3-haiku/converse-stream",
            &converse("hi")
        )
        .await,
        "the slot was not given back"
    );
}

#[tokio::test]
async fn native_converse_calls_are_charged_their_tokens() {
    let mut keys = Keys::new();
    let (key, _) = keys.add("tpm", limits(None, Some(100), None));
    let clock = ManualClock::new(T0_MS);
    let (env, _gw) = start(&keys.path, &clock).await;
    let converse = |text: &str| json!({"messages": [{"role": "user", "content": [{"text": text}]}]});

    // 30 + 20 tokens from a relayed Converse reply, read from its `usage`.
    let reply = post_as(
        &env,
        "/model/claude-3-haiku/converse",
        Some(&key),
        &converse("hi mock:usage=30,20,0,0"),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.headers["x-ratelimit-remaining-tokens"], "100");

    // 40 + 40 from a relayed ConverseStream, read from its metadata event as it passed.
    let mut streamed = None;
    for _ in 0..100 {
        let reply = post_as(
            &env,
            "/model/claude-3-haiku/converse-stream",
            Some(&key),
            &converse("hi mock:usage=40,40,0,0"),
        )
        .await;
        // The unary reply is charged when its body ends, just after its last byte.
        if reply.headers["x-ratelimit-remaining-tokens"] == "50" {
            streamed = Some(reply);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let streamed = streamed.expect("the Converse reply's 50 tokens were charged");
    assert_eq!(streamed.status, 200);
    assert_eq!(
        streamed.headers["content-type"],
        "application/vnd.amazon.eventstream"
    );

    // 130 used of 100: the next request is refused until the debt of 30 (+1) is repaid.
    let refused = post_as(
        &env,
        "/v1/chat/completions",
        Some(&key),
        &chat("claude-3-haiku", "hi", false),
    )
    .await;
    assert_rate_limited(&refused, "tokens per minute");
    assert_eq!(refused.headers["retry-after"], "19");
}

#[tokio::test]
async fn native_invoke_streams_are_charged_from_bedrock_invocation_metrics() {
    let mut keys = Keys::new();
    let (key, _) = keys.add("tpm", limits(None, Some(100), None));
    let clock = ManualClock::new(T0_MS);
    let (env, _gw) = start(&keys.path, &clock).await;
    // The mock answers with the prompt's 10 words in and the same 10 out, reported in the
    // last chunk's `amazon-bedrock-invocationMetrics`.
    let native = json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50,
        "messages": [{"role": "user", "content": "one two three four five six seven eight nine ten"}]});
    let reply = post_as(
        &env,
        "/model/claude-3-haiku/invoke-with-response-stream",
        Some(&key),
        &native,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.headers["content-type"],
        "application/vnd.amazon.eventstream"
    );
    assert_eq!(reply.headers["x-ratelimit-remaining-tokens"], "100");

    // The charge lands when the relayed stream ends, just after its last byte.
    let mut remaining = String::new();
    for _ in 0..100 {
        let probe = post_as(
            &env,
            "/v1/chat/completions",
            Some(&key),
            &chat("claude-3-haiku", "hi mock:usage=0,0,0,0", false),
        )
        .await;
        assert_eq!(probe.status, 200, "{}", probe.text());
        remaining = probe.headers["x-ratelimit-remaining-tokens"]
            .to_str()
            .unwrap()
            .to_owned();
        if remaining != "100" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(remaining, "80", "10 + 10 tokens charged");
}
