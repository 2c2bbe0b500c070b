//! The mock over real sockets: signed requests from a hyper client, replies decoded with the
//! crate's event-stream decoder.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::time::Instant;

use super::*;
use crate::bedrock::eventstream::{DecodeError, EventDecoder, Frame as EventFrame, classify};
use crate::upstream::sigv4::{encode_model_id, sign_request};

const MODEL: &str = "anthropic.claude-3-haiku-20240307-v1:0";

type TestClient = Client<HttpConnector, Full<Bytes>>;

async fn mk_mock(config: MockConfig) -> MockBedrock {
    spawn(TcpListener::bind("127.0.0.1:0").await.unwrap(), config)
}

fn mk_client() -> TestClient {
    Client::builder(TokioExecutor::new()).build_http()
}

fn mk_h2c_client() -> TestClient {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

fn mk_body(text: &str) -> Bytes {
    Bytes::from(
        serde_json::to_vec(&json!({"messages": [{"role": "user", "content": [{"text": text}]}]})).unwrap(),
    )
}

fn mk_signed(
    mock: &MockBedrock,
    operation: &str,
    body: Bytes,
    credentials: &Credentials,
) -> Request<Full<Bytes>> {
    let uri = format!("{}/model/{}/{operation}", mock.endpoint(), encode_model_id(MODEL));
    let mut req = Request::post(uri)
        .header("content-type", "application/json")
        .body(Full::new(body.clone()))
        .unwrap();
    sign_request(&mut req, &body, credentials, "us-east-1", SystemTime::now()).unwrap();
    req
}

async fn send(client: &TestClient, mock: &MockBedrock, operation: &str, text: &str) -> Response<Incoming> {
    let req = mk_signed(
        mock,
        operation,
        mk_body(text),
        &MockConfig::default().credentials(),
    );
    client.request(req).await.unwrap()
}

async fn json_body(response: Response<Incoming>) -> Value {
    serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap()
}

fn error_type(response: &Response<Incoming>) -> &str {
    response.headers()["x-amzn-errortype"].to_str().unwrap()
}

/// One decoded message: `event:<type>` or `exception:<type>`, its JSON payload, and which
/// HTTP body frame completed it.
#[derive(Debug)]
struct Received {
    kind: String,
    payload: Value,
    http_frame: usize,
    at: Instant,
}

/// How the body ended.
#[derive(Debug, PartialEq)]
enum End {
    Clean,
    Decode(DecodeError),
    Body,
}

async fn read_stream(response: Response<Incoming>) -> (Vec<Received>, End) {
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "application/vnd.amazon.eventstream"
    );
    let mut body = response.into_body();
    let mut decoder = EventDecoder::default();
    let mut got = Vec::new();
    let mut http_frame = 0;
    loop {
        match body.frame().await {
            None => {
                let end = decoder.finish().map_or_else(End::Decode, |()| End::Clean);
                return (got, end);
            }
            Some(Err(_)) => return (got, End::Body),
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else { continue };
                decoder.push(&data);
                loop {
                    match decoder.next_message() {
                        Ok(Some(message)) => {
                            let (kind, payload) = match classify(&message).unwrap() {
                                EventFrame::Event { event_type, payload } => {
                                    (format!("event:{event_type}"), payload)
                                }
                                EventFrame::Exception {
                                    exception_type,
                                    payload,
                                } => (format!("exception:{exception_type}"), payload),
                                EventFrame::Error { code, .. } => panic!("unexpected error frame {code}"),
                            };
                            got.push(Received {
                                kind,
                                payload: serde_json::from_slice(payload).unwrap(),
                                http_frame,
                                at: Instant::now(),
                            });
                        }
                        Ok(None) => break,
                        Err(e) => return (got, End::Decode(e)),
                    }
                }
                http_frame += 1;
            }
        }
    }
}

fn kinds(events: &[Received]) -> Vec<&str> {
    events.iter().map(|e| e.kind.as_str()).collect()
}

fn text_of(events: &[Received]) -> String {
    events
        .iter()
        .filter_map(|e| e.payload["delta"]["text"].as_str())
        .collect()
}

const DEFAULT_SEQUENCE: [&str; 10] = [
    "event:messageStart",
    "event:contentBlockDelta",
    "event:contentBlockDelta",
    "event:contentBlockDelta",
    "event:contentBlockDelta",
    "event:contentBlockDelta",
    "event:contentBlockDelta",
    "event:contentBlockStop",
    "event:messageStop",
    "event:metadata",
];

fn assert_default_stream(events: &[Received]) {
    assert_eq!(kinds(events), DEFAULT_SEQUENCE);
    assert_eq!(events[0].payload["role"], "assistant");
    assert_eq!(text_of(events), "Hello from the mock Bedrock runtime.");
    assert_eq!(events[1].payload["delta"]["text"], "Hello ");
    assert_eq!(events[7].payload["contentBlockIndex"], 0);
    assert_eq!(events[8].payload["stopReason"], "end_turn");
    let usage = &events[9].payload["usage"];
    assert_eq!(usage["inputTokens"], 3);
    assert_eq!(usage["outputTokens"], 6);
    assert_eq!(usage["totalTokens"], 9);
    assert_eq!(usage["cacheReadInputTokens"], 0);
    assert_eq!(usage["cacheWriteInputTokens"], 0);
    assert!(events[9].payload["metrics"]["latencyMs"].is_u64());
    for event in events {
        let padding = event.payload["p"].as_str().unwrap_or_default();
        assert!(
            !padding.is_empty() && padding.bytes().all(|b| b.is_ascii_alphabetic()),
            "{event:?}"
        );
    }
}

#[tokio::test]
async fn signed_stream_over_http1_decodes_in_order() {
    let mock = mk_mock(MockConfig::default()).await;
    let response = send(&mk_client(), &mock, "converse-stream", "hi there you").await;
    assert_eq!(response.version(), http::Version::HTTP_11);
    assert!(response.headers().contains_key("x-amzn-requestid"));
    let (events, end) = read_stream(response).await;
    assert_eq!(end, End::Clean);
    assert_default_stream(&events);
    assert_eq!(
        (mock.calls(), mock.stream_calls(), mock.converse_calls()),
        (1, 1, 0)
    );
}

#[tokio::test]
async fn signed_stream_over_h2c_decodes_in_order() {
    let mock = mk_mock(MockConfig::default()).await;
    let response = send(&mk_h2c_client(), &mock, "converse-stream", "hi there you").await;
    assert_eq!(response.version(), http::Version::HTTP_2);
    let (events, end) = read_stream(response).await;
    assert_eq!(end, End::Clean);
    assert_default_stream(&events);
}

#[tokio::test]
async fn converse_returns_the_json_reply() {
    let mock = mk_mock(MockConfig::default()).await;
    let response = send(&mk_client(), &mock, "converse", "one two").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert!(response.headers().contains_key("x-amzn-requestid"));
    let v = json_body(response).await;
    assert_eq!(v["output"]["message"]["role"], "assistant");
    assert_eq!(
        v["output"]["message"]["content"],
        json!([{"text": "Hello from the mock Bedrock runtime."}])
    );
    assert_eq!(v["stopReason"], "end_turn");
    assert_eq!(
        v["usage"],
        json!({"inputTokens": 2, "outputTokens": 6, "totalTokens": 8, "cacheReadInputTokens": 0, "cacheWriteInputTokens": 0})
    );
    assert!(v["metrics"]["latencyMs"].is_u64());
    assert_eq!(mock.converse_calls(), 1);
}

#[tokio::test]
async fn bad_signature_is_invalid_signature_exception() {
    let mock = mk_mock(MockConfig::default()).await;
    let wrong = Credentials::new(MOCK_ACCESS_KEY_ID, "not-the-secret", None, None, "test");
    let req = mk_signed(&mock, "converse-stream", mk_body("hi"), &wrong);
    let response = mk_client().request(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        error_type(&response),
        "InvalidSignatureException:http://internal.amazon.com/coral/com.amazon.bedrock/"
    );
    assert!(response.headers().contains_key("x-amzn-requestid"));
    let v = json_body(response).await;
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("The request signature we calculated does not match the signature you provided")
    );
}

#[tokio::test]
async fn body_changed_after_signing_is_rejected() {
    let mock = mk_mock(MockConfig::default()).await;
    let mut req = mk_signed(
        &mock,
        "converse",
        mk_body("hi"),
        &MockConfig::default().credentials(),
    );
    *req.body_mut() = Full::new(mk_body("hj"));
    let response = mk_client().request(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(error_type(&response).starts_with("InvalidSignatureException:"));
}

#[tokio::test]
async fn missing_auth_and_unknown_key_are_refused() {
    let mock = mk_mock(MockConfig::default()).await;
    let uri = format!("{}/model/{}/converse", mock.endpoint(), encode_model_id(MODEL));
    let unsigned = Request::post(&uri).body(Full::new(mk_body("hi"))).unwrap();
    let response = mk_client().request(unsigned).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(error_type(&response).starts_with("MissingAuthenticationTokenException:"));

    let stranger = Credentials::new("AKIDSTRANGER00000000", MOCK_SECRET_ACCESS_KEY, None, None, "test");
    let response = mk_client()
        .request(mk_signed(&mock, "converse", mk_body("hi"), &stranger))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(error_type(&response).starts_with("UnrecognizedClientException:"));
}

#[tokio::test]
async fn bearer_token_is_accepted_when_configured() {
    let mock = mk_mock(MockConfig {
        bearer_token: Some("ABSKmocktoken".into()),
        ..MockConfig::default()
    })
    .await;
    let uri = format!("{}/model/{}/converse", mock.endpoint(), encode_model_id(MODEL));
    for (token, status) in [
        ("ABSKmocktoken", StatusCode::OK),
        ("ABSKwrong", StatusCode::FORBIDDEN),
    ] {
        let req = Request::post(&uri)
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(mk_body("hi")))
            .unwrap();
        assert_eq!(
            mk_client().request(req).await.unwrap().status(),
            status,
            "{token}"
        );
    }
}

#[tokio::test]
async fn unverified_mock_accepts_unsigned_requests() {
    let mock = mk_mock(MockConfig {
        verify_signatures: false,
        ..MockConfig::default()
    })
    .await;
    let uri = format!("{}/model/m/converse", mock.endpoint());
    let req = Request::post(uri).body(Full::new(mk_body("hi"))).unwrap();
    assert_eq!(mk_client().request(req).await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn unknown_routes_are_unknown_operation() {
    let mock = mk_mock(MockConfig::default()).await;
    for operation in ["invoke-with-response-streams", "nope"] {
        let response = send(&mk_client(), &mock, operation, "hi").await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{operation}");
        assert!(error_type(&response).starts_with("UnknownOperationException:"));
    }
    assert_eq!(mock.calls(), 2);
    assert_eq!(mock.converse_calls() + mock.stream_calls(), 0);
}

#[tokio::test]
async fn invalid_conversation_is_a_validation_exception() {
    let mock = mk_mock(MockConfig::default()).await;
    let body = Bytes::from(
        serde_json::to_vec(&json!({"messages": [{"role": "assistant", "content": [{"text": "hi"}]}]}))
            .unwrap(),
    );
    let req = mk_signed(
        &mock,
        "converse-stream",
        body,
        &MockConfig::default().credentials(),
    );
    let response = mk_client().request(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(error_type(&response).starts_with("ValidationException:"));
    let v = json_body(response).await;
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("must start with a user message")
    );

    let response = send(&mk_client(), &mock, "converse", "mock:bogus").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let v = json_body(response).await;
    assert!(v["message"].as_str().unwrap().contains("mock:bogus"), "{v}");
}

#[tokio::test]
async fn delays_are_honoured_frame_by_frame() {
    let mock = mk_mock(MockConfig::default()).await;
    let delay = Duration::from_millis(60);
    let response = send(
        &mk_client(),
        &mock,
        "converse-stream",
        "mock:delay_ms=60 mock:frames=3",
    )
    .await;
    let (events, end) = read_stream(response).await;
    assert_eq!(end, End::Clean);
    assert_eq!(events.len(), 7);
    assert_eq!(text_of(&events), "tok0 tok1 tok2 ");
    // Every frame came in an HTTP body frame of its own, in order: nothing was buffered.
    let frames: Vec<usize> = events.iter().map(|e| e.http_frame).collect();
    assert_eq!(frames, (0..7).collect::<Vec<_>>());
    // Six sleeps of `delay` separate the first frame from the last.
    let spread = events[6].at - events[0].at;
    assert!(spread >= delay * 5, "{spread:?}");
}

#[tokio::test]
async fn stall_holds_the_stream_after_the_first_delta() {
    let mock = mk_mock(MockConfig::default()).await;
    let response = send(&mk_client(), &mock, "converse-stream", "mock:stall_ms=200").await;
    let (events, end) = read_stream(response).await;
    assert_eq!(end, End::Clean);
    assert_eq!(kinds(&events), DEFAULT_SEQUENCE);
    assert!(events[2].at - events[1].at >= Duration::from_millis(150));
    assert_eq!(events[1].http_frame + 1, events[2].http_frame);
}

#[tokio::test]
async fn status_directives_are_http_errors_for_both_operations() {
    let mock = mk_mock(MockConfig::default()).await;
    let client = mk_client();
    let table = [
        ("throttle", 429, "ThrottlingException"),
        ("validation", 400, "ValidationException"),
        ("not_found", 404, "ResourceNotFoundException"),
        ("access_denied", 403, "AccessDeniedException"),
        ("unavailable", 503, "ServiceUnavailableException"),
        ("internal", 500, "InternalServerException"),
        ("model_timeout", 408, "ModelTimeoutException"),
        ("model_not_ready", 429, "ModelNotReadyException"),
        ("model_error", 424, "ModelErrorException"),
    ];
    for operation in ["converse", "converse-stream"] {
        for (kind, status, name) in table {
            let response = send(&client, &mock, operation, &format!("hello mock:status={kind}")).await;
            assert_eq!(response.status().as_u16(), status, "{operation} {kind}");
            assert_eq!(
                error_type(&response),
                format!("{name}:http://internal.amazon.com/coral/com.amazon.bedrock/")
            );
            assert_eq!(response.headers()["content-type"], "application/json");
            let v = json_body(response).await;
            assert!(!v["message"].as_str().unwrap().is_empty());
        }
    }
}

#[tokio::test]
async fn first_exception_is_the_only_frame() {
    let mock = mk_mock(MockConfig::default()).await;
    let response = send(
        &mk_client(),
        &mock,
        "converse-stream",
        "mock:first_exception=throttlingException",
    )
    .await;
    let (events, end) = read_stream(response).await;
    assert_eq!(end, End::Clean);
    assert_eq!(kinds(&events), ["exception:throttlingException"]);
    assert_eq!(
        events[0].payload["message"],
        "Too many requests, please wait before trying again."
    );

    let response = send(
        &mk_client(),
        &mock,
        "converse",
        "mock:first_exception=throttlingException",
    )
    .await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(error_type(&response).starts_with("ThrottlingException:"));
}

#[tokio::test]
async fn mid_exception_follows_the_text_deltas() {
    let mock = mk_mock(MockConfig::default()).await;
    let response = send(
        &mk_client(),
        &mock,
        "converse-stream",
        "mock:mid_exception=modelStreamErrorException mock:text=a mock:text=b",
    )
    .await;
    let (events, end) = read_stream(response).await;
    assert_eq!(end, End::Clean);
    assert_eq!(
        kinds(&events),
        [
            "event:messageStart",
            "event:contentBlockDelta",
            "event:contentBlockDelta",
            "exception:modelStreamErrorException"
        ]
    );
    assert_eq!(events[3].payload["originalStatusCode"], 500);
}

#[tokio::test]
async fn tool_directives_produce_tool_use_blocks() {
    let mock = mk_mock(MockConfig::default()).await;
    let text = r#"weather? mock:tool=get_weather:{"city":"Paris","days":3} mock:tool=noop:{}"#;
    let response = send(&mk_client(), &mock, "converse-stream", text).await;
    let (events, end) = read_stream(response).await;
    assert_eq!(end, End::Clean);
    let tool_events: Vec<(&str, u64)> = events
        .iter()
        .filter(|e| e.payload["contentBlockIndex"].as_u64().is_some_and(|i| i > 0))
        .map(|e| (e.kind.as_str(), e.payload["contentBlockIndex"].as_u64().unwrap()))
        .collect();
    let fragments: Vec<&str> = events
        .iter()
        .filter_map(|e| e.payload["delta"]["toolUse"]["input"].as_str())
        .collect();
    assert!(fragments.len() >= 2, "{fragments:?}");
    assert_eq!(fragments.concat(), r#"{"city":"Paris","days":3}"#);
    let mut expected = vec![("event:contentBlockStart", 1)];
    expected.extend(std::iter::repeat_n(
        ("event:contentBlockDelta", 1),
        fragments.len(),
    ));
    expected.extend([
        ("event:contentBlockStop", 1),
        ("event:contentBlockStart", 2),
        ("event:contentBlockStop", 2),
    ]);
    assert_eq!(tool_events, expected);
    let starts: Vec<&Value> = events
        .iter()
        .filter(|e| e.kind == "event:contentBlockStart")
        .map(|e| &e.payload["start"]["toolUse"])
        .collect();
    assert_eq!(starts[0]["toolUseId"], "tooluse_1");
    assert_eq!(starts[0]["name"], "get_weather");
    assert_eq!(starts[1]["toolUseId"], "tooluse_2");
    let stop = events.iter().find(|e| e.kind == "event:messageStop").unwrap();
    assert_eq!(stop.payload["stopReason"], "tool_use");

    let v = json_body(send(&mk_client(), &mock, "converse", text).await).await;
    assert_eq!(v["stopReason"], "tool_use");
    assert_eq!(
        v["output"]["message"]["content"][1],
        json!({"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Paris", "days": 3}}})
    );
    assert_eq!(
        v["output"]["message"]["content"][2]["toolUse"]["input"],
        json!({})
    );
}

#[tokio::test]
async fn text_stop_and_usage_directives() {
    let mock = mk_mock(MockConfig::default()).await;
    let text = "mock:text=Hi_there mock:text=friend mock:stop=max_tokens mock:usage=10,20,30,40";
    let (events, _) = read_stream(send(&mk_client(), &mock, "converse-stream", text).await).await;
    let deltas: Vec<&str> = events
        .iter()
        .filter_map(|e| e.payload["delta"]["text"].as_str())
        .collect();
    assert_eq!(deltas, ["Hi there ", "friend"]);
    let stop = events.iter().find(|e| e.kind == "event:messageStop").unwrap();
    assert_eq!(stop.payload["stopReason"], "max_tokens");
    let metadata = events.last().unwrap();
    assert_eq!(
        metadata.payload["usage"],
        json!({"inputTokens": 10, "outputTokens": 20, "totalTokens": 100, "cacheReadInputTokens": 30, "cacheWriteInputTokens": 40})
    );
}

#[tokio::test]
async fn truncate_ends_the_body_before_message_stop() {
    let mock = mk_mock(MockConfig::default()).await;
    let (events, end) =
        read_stream(send(&mk_client(), &mock, "converse-stream", "mock:truncate").await).await;
    assert_eq!(end, End::Clean);
    assert_eq!(kinds(&events), DEFAULT_SEQUENCE[..7]);

    let response = send(&mk_client(), &mock, "converse", "mock:truncate").await;
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    assert!(serde_json::from_slice::<Value>(&bytes).is_err());
}

#[tokio::test]
async fn bad_crc_corrupts_the_frame_after_message_start() {
    let mock = mk_mock(MockConfig::default()).await;
    let (events, end) = read_stream(send(&mk_client(), &mock, "converse-stream", "mock:bad_crc").await).await;
    assert_eq!(kinds(&events), ["event:messageStart"]);
    assert!(
        matches!(end, End::Decode(DecodeError::MessageChecksum)),
        "{end:?}"
    );
}

#[tokio::test]
async fn reset_aborts_the_body() {
    let mock = mk_mock(MockConfig::default()).await;
    for client in [mk_client(), mk_h2c_client()] {
        // The delay lets the client read every delta before the reset arrives: a reset stream
        // may discard data the client has received but not yet read.
        let text = "mock:reset mock:delay_ms=20";
        let (events, end) = read_stream(send(&client, &mock, "converse-stream", text).await).await;
        assert_eq!(kinds(&events), DEFAULT_SEQUENCE[..7]);
        assert_eq!(end, End::Body);
    }
    // Converse: the reply never completes, whether the headers made it out or not.
    let req = mk_signed(
        &mock,
        "converse",
        mk_body("mock:reset"),
        &MockConfig::default().credentials(),
    );
    match mk_client().request(req).await {
        Ok(response) => assert!(response.into_body().collect().await.is_err()),
        Err(e) => assert!(!e.is_connect(), "{e:?}"),
    }
    assert_eq!(mock.cancelled_streams(), 0);
}

async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn dropped_stream_is_counted_as_cancelled() {
    let mock = mk_mock(MockConfig::default()).await;
    for client in [mk_client(), mk_h2c_client()] {
        let before = mock.cancelled_streams();
        let response = send(
            &client,
            &mock,
            "converse-stream",
            "mock:frames=50 mock:delay_ms=50",
        )
        .await;
        let mut body = response.into_body();
        body.frame().await.unwrap().unwrap();
        assert_eq!(mock.active_streams(), 1);
        drop(body);
        drop(client);
        eventually("the cancelled stream", || mock.cancelled_streams() == before + 1).await;
        eventually("no active streams", || mock.active_streams() == 0).await;
    }
}

#[tokio::test]
async fn finished_streams_are_not_cancelled() {
    let mock = mk_mock(MockConfig::default()).await;
    let (_, end) = read_stream(send(&mk_client(), &mock, "converse-stream", "hi").await).await;
    assert_eq!(end, End::Clean);
    eventually("no active streams", || mock.active_streams() == 0).await;
    assert_eq!(mock.cancelled_streams(), 0);
}

#[tokio::test]
async fn last_request_is_recorded_as_sent() {
    let mock = mk_mock(MockConfig::default()).await;
    assert!(mock.last_request().is_none());
    let response = send(&mk_client(), &mock, "converse", "hello").await;
    assert_eq!(response.status(), StatusCode::OK);
    let recorded = mock.last_request().unwrap();
    assert_eq!(recorded.method, "POST");
    assert_eq!(
        recorded.path,
        "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
    );
    assert_eq!(recorded.body, mk_body("hello"));
    assert_eq!(recorded.header("content-type"), Some("application/json"));
    assert!(
        recorded
            .header("authorization")
            .unwrap()
            .starts_with("AWS4-HMAC-SHA256 Credential=AKIDMOCKBEDROCK00001/")
    );
    assert!(mock.endpoint().starts_with("http://127.0.0.1:"));
    assert_eq!(mock.endpoint(), format!("http://{}", mock.addr()));
}

#[tokio::test]
async fn shutdown_stops_accepting() {
    let mock = mk_mock(MockConfig::default()).await;
    assert_eq!(
        send(&mk_client(), &mock, "converse", "hi").await.status(),
        StatusCode::OK
    );
    mock.shutdown();
    mock.shutdown();
    let addr = mock.addr();
    eventually("the listener to close", || {
        std::net::TcpStream::connect(addr).is_err()
    })
    .await;
}

#[tokio::test]
async fn serve_returns_when_shutdown_resolves() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, MockConfig::default(), async move {
        let _ = rx.await;
    }));
    tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[test]
fn request_ids_look_like_uuids() {
    let id = request_id();
    let groups: Vec<usize> = id.split('-').map(str::len).collect();
    assert_eq!(groups, [8, 4, 4, 4, 12]);
    assert!(id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
    assert_ne!(request_id(), id);
}

#[test]
fn config_debug_hides_secrets() {
    let config = MockConfig {
        bearer_token: Some("ABSKsecret".into()),
        ..MockConfig::default()
    };
    let text = format!("{config:?}");
    assert!(
        !text.contains(MOCK_SECRET_ACCESS_KEY) && !text.contains("ABSKsecret"),
        "{text}"
    );
}

#[tokio::test]
async fn invoke_with_response_stream_sends_anthropic_chunks_and_invocation_metrics() {
    use base64::Engine as _;
    let mock = mk_mock(MockConfig::default()).await;
    let body = Bytes::from(
        serde_json::to_vec(
            &json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "one two three"}]}]}),
        )
        .unwrap(),
    );
    let req = mk_signed(
        &mock,
        "invoke-with-response-stream",
        body,
        &MockConfig::default().credentials(),
    );
    let response = mk_client().request(req).await.unwrap();
    assert_eq!(
        response.headers()["x-amzn-bedrock-content-type"],
        "application/json"
    );
    let (events, end) = read_stream(response).await;
    assert_eq!(end, End::Clean);
    let native: Vec<Value> = events
        .iter()
        .map(|e| {
            assert_eq!(e.kind, "event:chunk");
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(e.payload["bytes"].as_str().unwrap())
                .unwrap();
            serde_json::from_slice(&bytes).unwrap()
        })
        .collect();
    let types: Vec<&str> = native.iter().map(|n| n["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let text: String = native
        .iter()
        .filter_map(|n| n["delta"]["text"].as_str())
        .collect();
    assert_eq!(text, "one two three ");
    let metrics = &native[7]["amazon-bedrock-invocationMetrics"];
    assert_eq!(metrics["inputTokenCount"], 3);
    assert_eq!(metrics["outputTokenCount"], 3);
    assert_eq!(mock.converse_calls() + mock.stream_calls(), 0);
}
