//! `/metrics` after known traffic: the OpenMetrics text is parsed and exact values checked.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::HashMap;

use serde_json::json;
use support::{TestEnv, chat};

/// `name{labels} value` lines → map (comments and `# EOF` skipped).
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_owned(), value.parse().unwrap())
        })
        .collect()
}

fn get(samples: &HashMap<String, f64>, series: &str) -> f64 {
    *samples.get(series).unwrap_or_else(|| {
        let mut known: Vec<_> = samples
            .keys()
            .filter(|k| k.starts_with(series.split('{').next().unwrap()))
            .collect();
        known.sort();
        panic!("no series {series}; have {known:#?}")
    })
}

#[tokio::test]
async fn counters_match_the_traffic_sent() {
    let env = TestEnv::start_with(|c| c.bedrock.retries.base_backoff_ms = 1).await;
    for _ in 0..2 {
        let reply = env
            .post_json(
                "/v1/chat/completions",
                &chat("claude-3-haiku", "hi mock:usage=10,5,100,0", false),
            )
            .await;
        assert_eq!(reply.status, 200);
    }
    let mut body = chat("claude-3-haiku", "hi mock:usage=7,3", true);
    body["stream_options"] = json!({"include_usage": true});
    assert_eq!(env.post_json("/v1/chat/completions", &body).await.status, 200);
    assert_eq!(
        env.post_json("/v1/chat/completions", &chat("gpt-4o", "x", false))
            .await
            .status,
        404
    );
    assert_eq!(
        env.post_json(
            "/v1/chat/completions",
            &chat("claude-3-haiku", "x mock:status=throttle", false)
        )
        .await
        .status,
        429
    );
    assert_eq!(env.get("/v1/models").await.status, 200);

    let reply = env.get("/metrics").await;
    assert_eq!(reply.status, 200);
    assert!(
        reply.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = reply.text();
    assert!(text.trim_end().ends_with("# EOF"));
    let s = samples(&text);
    let m = r#"model="claude-3-haiku""#;
    assert_eq!(
        get(
            &s,
            &format!(r#"ai_gateway_requests_total{{endpoint="chat_completions",{m},status="ok_2xx"}}"#)
        ),
        3.0
    );
    assert_eq!(
        get(
            &s,
            r#"ai_gateway_requests_total{endpoint="chat_completions",model="",status="client_4xx"}"#
        ),
        1.0
    );
    assert_eq!(
        get(
            &s,
            &format!(r#"ai_gateway_requests_total{{endpoint="chat_completions",{m},status="client_4xx"}}"#)
        ),
        1.0
    );
    assert_eq!(
        get(
            &s,
            r#"ai_gateway_requests_total{endpoint="models",model="",status="ok_2xx"}"#
        ),
        1.0
    );
    // One throttled request: the first attempt and both retries failed.
    assert_eq!(
        get(
            &s,
            &format!(r#"ai_gateway_upstream_errors_total{{{m},error="ThrottlingException"}}"#)
        ),
        3.0
    );
    assert_eq!(
        get(&s, &format!(r#"ai_gateway_upstream_retries_total{{{m}}}"#)),
        2.0
    );
    assert_eq!(
        get(
            &s,
            &format!(r#"ai_gateway_tokens_total{{{m},key="",kind="input"}}"#)
        ),
        27.0
    );
    assert_eq!(
        get(
            &s,
            &format!(r#"ai_gateway_tokens_total{{{m},key="",kind="output"}}"#)
        ),
        13.0
    );
    assert_eq!(
        get(
            &s,
            &format!(r#"ai_gateway_tokens_total{{{m},key="",kind="cache_read"}}"#)
        ),
        200.0
    );
    assert_eq!(
        get(&s, &format!(r#"ai_gateway_streams_total{{{m},outcome="ok"}}"#)),
        1.0
    );
    assert_eq!(
        get(&s, &format!(r#"ai_gateway_first_chunk_seconds_count{{{m}}}"#)),
        1.0
    );
    assert_eq!(
        get(
            &s,
            &format!(r#"ai_gateway_upstream_response_headers_seconds_count{{{m}}}"#)
        ),
        3.0
    );
    assert_eq!(get(&s, "ai_gateway_in_flight_streams"), 0.0);
    assert_eq!(
        get(&s, "ai_gateway_in_flight_requests"),
        1.0,
        "only the scrape itself"
    );
    assert!(get(&s, "ai_gateway_process_resident_memory_bytes") > 1e6);
    assert!(get(&s, "ai_gateway_process_open_fds") > 0.0);
}

#[tokio::test]
async fn a_cancelled_stream_is_counted_and_its_gauge_returns_to_zero() {
    let env = TestEnv::start().await;
    let response = env
        .open_stream(&chat("claude-3-haiku", "x mock:frames=50 mock:delay_ms=50", true))
        .await;
    let mut reader = support::SseReader::new(response);
    reader.next().await.unwrap();
    let s = samples(&env.get("/metrics").await.text());
    assert_eq!(get(&s, "ai_gateway_in_flight_streams"), 1.0);
    drop(reader);
    support::eventually(
        "the cancelled stream is counted",
        std::time::Duration::from_secs(5),
        || env.mock.cancelled_streams() == 1,
    )
    .await;
    let mut s = samples(&env.get("/metrics").await.text());
    for _ in 0..100 {
        if s.contains_key(r#"ai_gateway_streams_total{model="claude-3-haiku",outcome="client_cancelled"}"#) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        s = samples(&env.get("/metrics").await.text());
    }
    assert_eq!(
        get(
            &s,
            r#"ai_gateway_streams_total{model="claude-3-haiku",outcome="client_cancelled"}"#
        ),
        1.0
    );
    assert_eq!(get(&s, "ai_gateway_in_flight_streams"), 0.0);
}

#[tokio::test]
async fn an_admin_listener_takes_metrics_off_the_api_port() {
    let admin = support::unused_addr();
    let env = TestEnv::start_with(move |c| c.admin_listen = Some(admin)).await;
    assert_eq!(env.get("/metrics").await.status, 404);
    assert_eq!(
        env.post_json("/v1/chat/completions", &chat("claude-3-haiku", "hi", false))
            .await
            .status,
        200
    );
    let fetch = |path: &'static str| {
        let client = env.client.clone();
        async move {
            support::send(
                &client,
                http::Request::get(format!("http://{admin}{path}")),
                bytes::Bytes::new(),
            )
            .await
        }
    };
    let metrics = fetch("/metrics").await;
    assert_eq!(metrics.status, 200);
    let s = samples(&metrics.text());
    assert_eq!(
        get(
            &s,
            r#"ai_gateway_requests_total{endpoint="chat_completions",model="claude-3-haiku",status="ok_2xx"}"#
        ),
        1.0
    );
    assert_eq!(fetch("/health").await.status, 200);
    assert_eq!(fetch("/ready").await.status, 200);
    assert_eq!(
        fetch("/v1/models").await.status,
        404,
        "the admin port serves nothing else"
    );
}
