//! Requests the upstream pool tests share: a whole reply, plain or streamed, and streams held
//! in flight together.

use super::{SseReader, TestEnv, chat, content_of};

/// A non-stream chat through the gateway, answered with text.
pub async fn ask(env: &TestEnv) {
    let reply = env
        .post_json("/v1/chat/completions", &chat("claude-3-haiku", "Hello", false))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(
        !reply.json()["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .is_empty()
    );
}

/// Streams a one-turn chat through the gateway and checks the whole reply arrived.
pub async fn stream_hello(env: &TestEnv) {
    let reply = env
        .post_json("/v1/chat/completions", &chat("claude-3-haiku", "Hello", true))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let data = reply.sse_data();
    assert_eq!(data.last().unwrap(), "[DONE]");
    assert_eq!(content_of(&data), "Hello from the mock Bedrock runtime.");
}

/// Opens `n` streams that each send their frames 100 ms apart, so all are in flight at once,
/// and checks none waited for a place.
pub async fn open_streams(env: &TestEnv, n: u64) -> Vec<SseReader> {
    let body = chat("claude-3-haiku", "mock:frames=4 mock:delay_ms=100 go", true);
    let mut open = Vec::new();
    for _ in 0..n {
        let response = env.open_stream(&body).await;
        assert_eq!(response.status(), 200);
        open.push(SseReader::new(response));
    }
    assert_eq!(env.mock.active_streams(), n, "all streams in flight");
    open
}

/// Reads each stream to its end and checks it finished with `[DONE]`.
pub async fn read_to_done(open: Vec<SseReader>) {
    for mut reader in open {
        let mut last = None;
        while let Some((payload, _)) = reader.next().await {
            last = Some(payload);
        }
        assert_eq!(last.as_deref(), Some("[DONE]"));
    }
}
