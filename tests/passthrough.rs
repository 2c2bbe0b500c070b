//! Native Bedrock endpoints relayed through the gateway: re-signed with the gateway's
//! credentials, client SigV4 headers dropped, reply relayed byte for byte.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use ai_gateway::bedrock::eventstream::{EventDecoder, classify, encode_event};
use bytes::Bytes;
use serde_json::{Value, json};
use support::TestEnv;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn converse_body(text: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"messages": [{"role": "user", "content": [{"text": text}]}]})).unwrap()
}

#[tokio::test]
async fn converse_by_alias_is_resigned_and_relayed() {
    let env = TestEnv::start().await;
    let request = http::Request::post(env.url("/providers/bedrock/model/claude-3-haiku/converse"))
        .header("content-type", "application/json")
        // A client's own SigV4 headers must not reach Bedrock.
        .header("authorization", "AWS4-HMAC-SHA256 Credential=AKIDCLIENT/20240101/us-east-1/bedrock/aws4_request, SignedHeaders=host, Signature=00")
        .header("x-amz-security-token", "client-session-token")
        .header("x-amz-date", "20240101T000000Z");
    let reply = support::send(&env.client, request, converse_body("hello").into()).await;
    assert_eq!(
        reply.status,
        200,
        "the mock verified the gateway's signature: {}",
        reply.text()
    );
    let v = reply.json();
    assert_eq!(
        v["output"]["message"]["content"][0]["text"],
        "Hello from the mock Bedrock runtime."
    );
    assert_eq!(v["stopReason"], "end_turn");
    assert!(reply.headers.contains_key("x-amzn-requestid"));
    let recorded = env.mock.last_request().unwrap();
    assert_eq!(
        recorded.path,
        "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
    );
    assert_eq!(recorded.header("x-amz-security-token"), None);
    assert!(
        recorded
            .header("authorization")
            .unwrap()
            .contains(ai_gateway::mock_bedrock::MOCK_ACCESS_KEY_ID)
    );
    assert_eq!(
        &recorded.body[..],
        &converse_body("hello")[..],
        "the body is sent as received"
    );
}

#[tokio::test]
async fn legacy_and_bedrock_prefixed_paths_accept_the_bedrock_model_id() {
    let env = TestEnv::start().await;
    for path in [
        "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse",
        "/bedrock/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse",
    ] {
        let reply = env.post(path, converse_body("hi")).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
    }
}

#[tokio::test]
async fn converse_stream_frames_arrive_intact() {
    let env = TestEnv::start().await;
    let reply = env
        .post(
            "/providers/bedrock/model/nova-lite/converse-stream",
            converse_body("go mock:frames=3"),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.headers["content-type"],
        "application/vnd.amazon.eventstream"
    );
    let mut decoder = EventDecoder::default();
    decoder.push(&reply.body);
    let mut types = Vec::new();
    while let Some(message) = decoder.next_message().expect("CRCs intact") {
        if let ai_gateway::bedrock::eventstream::Frame::Event { event_type, .. } = classify(&message).unwrap()
        {
            types.push(event_type.to_owned());
        }
    }
    decoder.finish().unwrap();
    assert_eq!(types.first().map(String::as_str), Some("messageStart"));
    assert_eq!(types.iter().filter(|t| *t == "contentBlockDelta").count(), 3);
    assert_eq!(types.last().map(String::as_str), Some("metadata"));
}

#[tokio::test]
async fn bedrock_errors_are_relayed_as_bedrock_sent_them() {
    let env = TestEnv::start().await;
    let reply = env
        .post(
            "/providers/bedrock/model/claude-3-haiku/converse",
            converse_body("x mock:status=throttle"),
        )
        .await;
    assert_eq!(reply.status, 429);
    assert!(
        reply.headers["x-amzn-errortype"]
            .to_str()
            .unwrap()
            .starts_with("ThrottlingException")
    );
    assert!(reply.json()["message"].is_string());
}

#[tokio::test]
async fn unknown_model_is_a_bedrock_style_404_unless_raw_ids_are_allowed() {
    let env = TestEnv::start().await;
    let reply = env
        .post(
            "/model/meta.llama3-8b-instruct-v1%3A0/converse",
            converse_body("x"),
        )
        .await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.headers["x-amzn-errortype"], "ResourceNotFoundException");
    assert_eq!(env.mock.calls(), 0);

    let env = TestEnv::start_with(|c| c.passthrough.allow_raw_model_ids = true).await;
    let reply = env
        .post(
            "/model/meta.llama3-8b-instruct-v1%3A0/converse",
            converse_body("x"),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        env.mock.last_request().unwrap().path,
        "/model/meta.llama3-8b-instruct-v1%3A0/converse"
    );
}

/// A fixed upstream: answers every request with the same pre-encoded event stream, written
/// in odd-sized pieces, so the bytes the client receives can be compared exactly.
async fn fixed_upstream(body: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut read = 0;
                loop {
                    let n = socket.read(&mut buf[read..]).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    read += n;
                    let text = String::from_utf8_lossy(&buf[..read]);
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length: usize = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap())
                            })
                            .unwrap_or(0);
                        if read >= end + 4 + length {
                            break;
                        }
                    }
                }
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/vnd.amazon.eventstream\r\ntransfer-encoding: chunked\r\nx-amzn-requestid: fixed\r\n\r\n";
                socket.write_all(head.as_bytes()).await.unwrap();
                for piece in body.chunks(37) {
                    socket
                        .write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                        .await
                        .unwrap();
                    socket.write_all(piece).await.unwrap();
                    socket.write_all(b"\r\n").await.unwrap();
                }
                socket.write_all(b"0\r\n\r\n").await.unwrap();
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn passthrough_is_byte_for_byte() {
    let mut frames = Vec::new();
    encode_event("messageStart", br#"{"role":"assistant","p":"abc"}"#, &mut frames);
    for i in 0..50 {
        let payload = format!(
            r#"{{"contentBlockIndex":0,"delta":{{"text":"piece {i} "}},"p":"{}"}}"#,
            "x".repeat(i % 7)
        );
        encode_event("contentBlockDelta", payload.as_bytes(), &mut frames);
    }
    encode_event("messageStop", br#"{"stopReason":"end_turn"}"#, &mut frames);
    let upstream = fixed_upstream(frames.clone()).await;
    let env = TestEnv::start_with(|c| c.bedrock.endpoint = Some(upstream)).await;
    let reply = env
        .post(
            "/providers/bedrock/model/claude-3-haiku/converse-stream",
            converse_body("x"),
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.headers["x-amzn-requestid"], "fixed");
    assert_eq!(reply.body, Bytes::from(frames), "frames in = frames out");
}

#[tokio::test]
async fn passthrough_can_be_turned_off() {
    let env = TestEnv::start_with(|c| c.passthrough.enabled = false).await;
    let reply = env
        .post("/model/claude-3-haiku/converse", converse_body("x"))
        .await;
    assert_eq!(reply.status, 404);
    let _: Value = reply.error();
}

#[tokio::test]
async fn invoke_model_is_relayed_with_its_headers() {
    let env = TestEnv::start().await;
    let request = http::Request::post(env.url("/model/titan-embed/invoke"))
        .header("content-type", "application/json")
        .header("accept", "application/json");
    let body = serde_json::to_vec(&json!({"inputText": "a b c", "dimensions": 512})).unwrap();
    let reply = support::send(&env.client, request, body.clone().into()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["embedding"].as_array().unwrap().len(), 512);
    assert_eq!(reply.headers["x-amzn-bedrock-input-token-count"], "3");
    let recorded = env.mock.last_request().unwrap();
    assert_eq!(recorded.path, "/model/amazon.titan-embed-text-v2%3A0/invoke");
    assert_eq!(recorded.header("accept"), Some("application/json"));
    assert_eq!(&recorded.body[..], &body[..]);
}
