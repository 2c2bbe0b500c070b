//! Live reload of the model table: a changed file is applied while requests run, with no
//! request failing; an invalid file is refused and the table in force stays.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use support::{TEST_MODELS, TestEnv, chat};

async fn model_ids(env: &TestEnv) -> Vec<String> {
    let v = env.get("/v1/models").await.json();
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_changed_model_file_is_applied_under_load_without_errors() {
    let env = Arc::new(TestEnv::start_with(|c| c.models_watch_ms = 50).await);
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut load = Vec::new();
    for i in 0..8 {
        let (env, stop, ok, failed) = (
            Arc::clone(&env),
            Arc::clone(&stop),
            Arc::clone(&ok),
            Arc::clone(&failed),
        );
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let reply = env
                    .post_json("/v1/chat/completions", &chat("claude-3-haiku", "hi", i % 2 == 0))
                    .await;
                if reply.status == 200 && !reply.text().contains("\"error\"") {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Drop `nova-lite`, add `added-model`, keep `claude-3-haiku` (with a new id).
    let changed = TEST_MODELS
        .replace(
            "  nova-lite:\n    model_id: amazon.nova-lite-v1:0\n",
            "  added-model:\n    model_id: amazon.nova-pro-v1:0\n",
        )
        .replace(
            "anthropic.claude-3-haiku-20240307-v1:0",
            "anthropic.claude-3-5-haiku-20241022-v1:0",
        );
    std::fs::write(env.models_path(), changed).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let ids = model_ids(&env).await;
        if ids.contains(&"added-model".to_owned()) {
            assert!(!ids.contains(&"nova-lite".to_owned()), "{ids:?}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "reload not applied: {ids:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "requests failed during the reload"
    );
    assert!(
        ok.load(Ordering::Relaxed) > 20,
        "the load ran: {}",
        ok.load(Ordering::Relaxed)
    );
    assert_eq!(
        env.post_json("/v1/chat/completions", &chat("nova-lite", "x", false))
            .await
            .status,
        404
    );
    assert_eq!(
        env.post_json("/v1/chat/completions", &chat("added-model", "x", false))
            .await
            .status,
        200
    );
    let last = env.mock.last_request().unwrap();
    assert_eq!(last.path, "/model/amazon.nova-pro-v1%3A0/converse");
    env.post_json("/v1/chat/completions", &chat("claude-3-haiku", "x", false))
        .await;
    assert_eq!(
        env.mock.last_request().unwrap().path,
        "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse"
    );
}

#[tokio::test]
async fn an_invalid_model_file_is_refused_and_the_old_table_stays() {
    let env = TestEnv::start_with(|c| c.models_watch_ms = 50).await;
    std::fs::write(
        env.models_path(),
        "models:\n  broken:\n    model_id: x\n    region: Not A Region\n",
    )
    .unwrap();
    let metrics = || async { env.get("/metrics").await.text() };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !metrics()
        .await
        .contains("ai_gateway_model_table_reload_failures_total 1")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the bad file was not noticed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(model_ids(&env).await.contains(&"claude-3-haiku".to_owned()));
    assert_eq!(
        env.post_json("/v1/chat/completions", &chat("claude-3-haiku", "x", false))
            .await
            .status,
        200
    );
}
