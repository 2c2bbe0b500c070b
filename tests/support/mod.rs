//! Shared test harness: the mock Bedrock and the gateway on loopback sockets, a small HTTP
//! client, and an SSE reader.

#![allow(dead_code, unreachable_pub, missing_docs)]
// Test helpers: a failed setup step should abort the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod pool;
pub mod relay;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ai_gateway::config::Config;
use ai_gateway::mock_bedrock::{self, MockBedrock, MockConfig};
use ai_gateway::server::{self, ServerHandle};
use ai_gateway::upstream::sigv4::{SigV4Signer, UpstreamAuth};
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::net::TcpListener;

/// The gateway binary the tests that run it as a process start: this package's build, or the
/// one `AI_GATEWAY_TEST_BIN` names (`.ci/run` runs them again against the BOLT-optimised
/// release binary).
pub fn gateway_bin() -> PathBuf {
    std::env::var_os("AI_GATEWAY_TEST_BIN")
        .filter(|path| !path.is_empty())
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_ai-gateway")), PathBuf::from)
}

/// Aliases every test can use; `profile` exercises an inference-profile ARN (with `/` and `:`).
pub const TEST_MODELS: &str = "models:
  claude-3-haiku:
    model_id: anthropic.claude-3-haiku-20240307-v1:0
  profile:
    model_id: arn:aws:bedrock:us-west-2:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0
    region: us-west-2
  nova-lite:
    model_id: amazon.nova-lite-v1:0
  titan-embed:
    model_id: amazon.titan-embed-text-v2:0
  cohere-embed:
    model_id: cohere.embed-english-v3
";

pub struct TestEnv {
    pub mock: MockBedrock,
    pub gateway: ServerHandle,
    pub client: Client<HttpConnector, Full<Bytes>>,
    _dir: tempfile::TempDir,
}

impl TestEnv {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts the mock and a gateway in front of it; `tune` adjusts the gateway config.
    pub async fn start_with(tune: impl FnOnce(&mut Config)) -> Self {
        Self::start_full(MockConfig::default(), None, tune).await
    }

    /// Full control: the mock's config and the gateway's credentials.
    pub async fn start_full(
        mock_config: MockConfig,
        auth: Option<UpstreamAuth>,
        tune: impl FnOnce(&mut Config),
    ) -> Self {
        let mock_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mock = mock_bedrock::spawn(mock_listener, mock_config);
        let dir = tempfile::tempdir().unwrap();
        let models = dir.path().join("model-mapping.yaml");
        std::fs::write(&models, TEST_MODELS).unwrap();
        let mut config = Config {
            models,
            ..Config::default()
        };
        config.bedrock.endpoint = Some(mock.endpoint());
        tune(&mut config);
        let auth = auth.unwrap_or_else(|| {
            UpstreamAuth::SigV4(SigV4Signer::from_static(MockConfig::default().credentials()))
        });
        let gateway = server::build(config, auth).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gateway = server::spawn(listener, gateway).unwrap();
        Self {
            mock,
            gateway,
            client: client(),
            _dir: dir,
        }
    }

    /// A gateway whose security layer (keys, TOTP, limits, sessions, audit times) reads
    /// `clock`; the `Gateway` is returned too, for `reload()`.
    pub async fn start_with_clock(
        clock: std::sync::Arc<dyn ai_gateway::auth::Clock>,
        tune: impl FnOnce(&mut Config),
    ) -> (Self, ai_gateway::service::Gateway) {
        let mock_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mock = mock_bedrock::spawn(mock_listener, MockConfig::default());
        let dir = tempfile::tempdir().unwrap();
        let models = dir.path().join("model-mapping.yaml");
        std::fs::write(&models, TEST_MODELS).unwrap();
        let mut config = Config {
            models,
            ..Config::default()
        };
        config.bedrock.endpoint = Some(mock.endpoint());
        tune(&mut config);
        let auth = UpstreamAuth::SigV4(SigV4Signer::from_static(MockConfig::default().credentials()));
        let gateway = server::build_with_clock(config, auth, clock).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let handle = server::spawn(listener, gateway.clone()).unwrap();
        let env = Self {
            mock,
            gateway: handle,
            client: client(),
            _dir: dir,
        };
        (env, gateway)
    }

    /// The model table file this gateway loaded (and watches).
    pub fn models_path(&self) -> PathBuf {
        self._dir.path().join("model-mapping.yaml")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.gateway.base_url(), path)
    }

    pub async fn post(&self, path: &str, body: impl Into<Bytes>) -> Reply {
        send(
            &self.client,
            Request::post(self.url(path)).header("content-type", "application/json"),
            body.into(),
        )
        .await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Reply {
        self.post(path, serde_json::to_vec(body).unwrap()).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        send(&self.client, Request::get(self.url(path)), Bytes::new()).await
    }

    /// Sends a chat request and returns the raw response for streaming reads.
    pub async fn open_stream(&self, body: &Value) -> http::Response<hyper::body::Incoming> {
        let request = Request::post(self.url("/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(serde_json::to_vec(body).unwrap())))
            .unwrap();
        self.client.request(request).await.unwrap()
    }
}

pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    Client::builder(TokioExecutor::new()).build(http)
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `data:` payloads of an SSE body, in order.
    pub fn sse_data(&self) -> Vec<String> {
        sse_data(&self.text())
    }

    /// For a stream that failed after its headers: asserts that the last record is an error
    /// object with all four keys and that no `[DONE]` was sent, and returns the error object.
    pub fn stream_error(&self) -> Value {
        let data = self.sse_data();
        assert!(
            !data.iter().any(|d| d == "[DONE]"),
            "[DONE] after an error: {data:?}"
        );
        let last: Value = serde_json::from_str(data.last().expect("at least one record")).unwrap();
        let e = last
            .get("error")
            .unwrap_or_else(|| panic!("last record is not an error: {last}"))
            .clone();
        for key in ["message", "type", "param", "code"] {
            assert!(e.get(key).is_some(), "error record lacks `{key}`: {e}");
        }
        e
    }

    /// Asserts an OpenAI error body with all four keys and returns it.
    pub fn error(&self) -> Value {
        let v = self.json();
        let e = v
            .get("error")
            .unwrap_or_else(|| panic!("no error object: {v}"))
            .clone();
        for key in ["message", "type", "param", "code"] {
            assert!(e.get(key).is_some(), "error object lacks `{key}`: {e}");
        }
        e
    }
}

pub async fn send(
    client: &Client<HttpConnector, Full<Bytes>>,
    builder: http::request::Builder,
    body: Bytes,
) -> Reply {
    let request = builder.body(Full::new(body)).unwrap();
    let response = tokio::time::timeout(Duration::from_secs(30), client.request(request))
        .await
        .expect("response within 30 s")
        .unwrap();
    let (parts, body) = response.into_parts();
    let body = tokio::time::timeout(Duration::from_secs(30), body.collect())
        .await
        .expect("body within 30 s")
        .unwrap()
        .to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

pub fn sse_data(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter(|event| !event.trim().is_empty())
        .map(|event| {
            event
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("SSE event without `data: `: {event:?}"))
                .to_owned()
        })
        .collect()
}

/// Reads SSE events from a streaming response as they arrive, with the time each arrived.
pub struct SseReader {
    body: hyper::body::Incoming,
    pending: String,
}

impl SseReader {
    pub fn new(response: http::Response<hyper::body::Incoming>) -> Self {
        Self {
            body: response.into_body(),
            pending: String::new(),
        }
    }

    /// The next `data:` payload, or None at the end of the body.
    pub async fn next(&mut self) -> Option<(String, Instant)> {
        loop {
            if let Some(end) = self.pending.find("\n\n") {
                let event: String = self.pending.drain(..end + 2).collect();
                let data = event
                    .trim_end()
                    .strip_prefix("data: ")
                    .expect("data line")
                    .to_owned();
                return Some((data, Instant::now()));
            }
            let frame = tokio::time::timeout(Duration::from_secs(30), self.body.frame())
                .await
                .expect("frame in 30 s")?;
            if let Ok(data) = frame.unwrap().into_data() {
                self.pending.push_str(std::str::from_utf8(&data).unwrap());
            }
        }
    }
}

/// Concatenated `delta.content` of chunk payloads.
pub fn content_of(chunks: &[String]) -> String {
    chunks
        .iter()
        .filter(|c| c.as_str() != "[DONE]")
        .filter_map(|c| serde_json::from_str::<Value>(c).ok())
        .filter_map(|v| {
            v["choices"]
                .get(0)
                .and_then(|c| c["delta"]["content"].as_str().map(str::to_owned))
        })
        .collect()
}

/// A chat request body with one user message.
pub fn chat(model: &str, text: &str, stream: bool) -> Value {
    serde_json::json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": text}]})
}

/// Polls `cond` until true or the deadline passes.
pub async fn eventually(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn unused_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

pub fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}
