//! A mock Bedrock runtime that speaks the real protocol: SigV4-verified requests, Bedrock's
//! error wire shape, Converse JSON and ConverseStream binary event-stream frames.
//!
//! `ai-gateway demo`, `ai-gateway mock-bedrock`, the integration tests and the load tests
//! run the gateway against it. It serves HTTP/1.1 and h2c on one port.
//!
//! # Operations
//!
//! | request | reply |
//! | --- | --- |
//! | `POST /model/{modelId}/converse` | 200 JSON (`output.message`, `stopReason`, `usage`, `metrics`) |
//! | `POST /model/{modelId}/converse-stream` | 200 `application/vnd.amazon.eventstream`, frames sent one by one as produced |
//! | `POST /model/{modelId}/invoke` | embedding models only (Titan Text Embeddings, Cohere Embed): deterministic vectors, see `embed.rs` |
//! | `POST /model/{modelId}/invoke-with-response-stream` | Anthropic Messages bodies only: the last user turn echoed as model-native `chunk` events, with Bedrock's invocation metrics, see `invoke_stream.rs` |
//! | anything else | 404 `UnknownOperationException` |
//! | `GET /__mock/last-request` | the last request's body, with its path in `x-mock-path` (no authentication; for out-of-process tests) |
//!
//! Every reply carries `x-amzn-RequestId`. Errors carry
//! `x-amzn-ErrorType: <Name>:http://internal.amazon.com/coral/com.amazon.bedrock/` and the body
//! `{"message":"…"}`.
//!
//! # Checks, in order
//!
//! 1. Authentication (when [`MockConfig::verify_signatures`]): the SigV4 signature is
//!    recomputed from the request as received (method, raw path, the headers listed in
//!    `SignedHeaders`, the body, `x-amz-date`, `x-amz-security-token`) with the configured
//!    secret. No `Authorization`: 403 `MissingAuthenticationTokenException`; malformed: 400
//!    `IncompleteSignatureException`; unknown access key: 403 `UnrecognizedClientException`;
//!    wrong signature, service other than `bedrock`, region other than
//!    [`MockConfig::region`], or `x-amz-date` more than 15 minutes off: 403
//!    `InvalidSignatureException`. `Authorization: Bearer <token>` is accepted when it equals
//!    [`MockConfig::bearer_token`].
//! 2. The route.
//! 3. The body, with Bedrock's runtime rules: JSON object, `messages` non-empty, first role
//!    `user`, roles alternate, no empty `content`, no blank `text`, `toolConfig` present when a
//!    `toolUse`/`toolResult` block is, `inferenceConfig.temperature` and `topP` in 0..=1,
//!    `maxTokens` >= 1. Failures: 400 `ValidationException`.
//!
//! # Scripting replies
//!
//! The text blocks of the **last user message** are split on whitespace; tokens starting
//! with `mock:` are directives, everything else is ordinary text. An unknown or malformed
//! directive is a 400 `ValidationException` naming it.
//!
//! | directive | effect |
//! | --- | --- |
//! | (none) | reply `Hello from the mock Bedrock runtime.` as one text delta per word (spaces kept), `stopReason` `end_turn`; usage `inputTokens` = whitespace-separated words in all user text (at least 1), `outputTokens` = number of deltas |
//! | `mock:text=WORD` | repeatable: reply these words, one delta each, separated by one space; `_` in a word is a space (`mock:text=Hi_there` is one delta `Hi there`) |
//! | `mock:frames=N` | `N` text deltas `tok0 `, `tok1 `, … (at most 1 000 000) |
//! | `mock:no_text` | no text block: tool blocks start at index 0 |
//! | `mock:delay_ms=D` | stream: sleep `D` ms before every frame after the first (`messageStart` goes out at once). Converse: wait `D` ms per delta the stream would have had |
//! | `mock:stall_ms=D` | stream: after `messageStart` and the first delta, stall `D` ms (idle-timeout tests). Converse: wait `D` ms before answering |
//! | `mock:linger_ms=D` | stream: keep the body open `D` ms after the last event before ending it. Converse: no effect |
//! | `mock:stop=REASON` | the `stopReason` (`max_tokens`, `stop_sequence`, `malformed_model_output`, …) |
//! | `mock:usage=IN,OUT[,CACHE_READ,CACHE_WRITE]` | exact usage numbers (`totalTokens` is their sum) |
//! | `mock:status=KIND` | HTTP error before any body, both operations: `throttle` 429 `ThrottlingException`, `validation` 400 `ValidationException`, `not_found` 404 `ResourceNotFoundException`, `access_denied` 403 `AccessDeniedException`, `unavailable` 503 `ServiceUnavailableException`, `internal` 500 `InternalServerException`, `model_timeout` 408 `ModelTimeoutException`, `model_not_ready` 429 `ModelNotReadyException`, `model_error` 424 `ModelErrorException` |
//! | `mock:first_exception=TYPE` | stream: 200, then the exception frame `TYPE` (camelCase, e.g. `throttlingException`) as the first and only frame. Converse: the matching HTTP error |
//! | `mock:mid_exception=TYPE` | stream: the exception frame after `messageStart` and the text deltas, before any stop event. Converse: the matching HTTP error |
//! | `mock:tool=NAME:JSON` | repeatable: the reply ends with `toolUse` blocks (ids `tooluse_1`, `tooluse_2`, … in order) with this compact JSON object as input; `stopReason` `tool_use`. The stream sends each input as 2–3 fragments cut anywhere; `{}` sends none |
//! | `mock:truncate` | stream: the body ends cleanly right after the text deltas, with no stop events. Converse: the JSON is cut in half |
//! | `mock:reset` | stream: the body fails after the text deltas: HTTP/1.1 drops the connection, HTTP/2 resets the stream. Converse: the reply fails before it completes (the client may not even see the headers) |
//! | `mock:bad_crc` | stream: the first frame after `messageStart` has a corrupted message CRC |
//! | `mock:reasoning=WORD` | repeatable: a signed reasoning block first (text deltas, then the signature); reasoning sent back with any other signature is refused |
//! | `mock:redacted=BASE64` | a redacted reasoning block |
//!
//! A stream otherwise follows reference event-stream §7: `messageStart`,
//! `contentBlockDelta{0,text}`…, `contentBlockStop{0}`, then per tool `contentBlockStart`,
//! `contentBlockDelta`…, `contentBlockStop` at indexes 1.., `messageStop`, `metadata` (usage
//! and `metrics.latencyMs`). Every event payload carries a `"p"` padding field of random
//! length, as Bedrock's do.
//!
//! # Lifetime
//!
//! [`spawn`] serves in a background task until [`MockBedrock::shutdown`] is called; dropping
//! the handle does not stop it (it also ends with the tokio runtime). [`serve`] serves until
//! its `shutdown` future resolves. On shutdown the listener closes at once and open
//! connections get [`SHUTDOWN_GRACE`] to finish before they are dropped.

mod embed;
pub mod fast;
mod invoke_stream;
mod reply;
mod script;
mod verify;

#[cfg(test)]
mod tests;

use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::json;
use reply::MockBody;
use script::Script;

/// The access key id the mock accepts by default.
pub const MOCK_ACCESS_KEY_ID: &str = "AKIDMOCKBEDROCK00001";
/// The secret access key the mock verifies signatures with by default.
pub const MOCK_SECRET_ACCESS_KEY: &str = "mock/secret/key/for/the/local/mock/only";
/// How long open connections may take to finish once shutdown starts.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Largest request body read (InvokeModel's limit).
const MAX_REQUEST_BODY_BYTES: usize = 25_000_000;
/// Longest model id Bedrock accepts.
const MAX_MODEL_ID_CHARS: usize = 2048;
/// `GET` here returns the body of the last Bedrock request received, unauthenticated, with its
/// path in `x-mock-path`: how tests outside the process (the Python suite) inspect what the
/// gateway sent. Not counted as a call and not recorded.
pub const LAST_REQUEST_PATH: &str = "/__mock/last-request";
/// The suffix of every `x-amzn-ErrorType` value.
const ERROR_TYPE_SUFFIX: &str = ":http://internal.amazon.com/coral/com.amazon.bedrock/";

/// How the mock authenticates requests.
#[derive(Clone)]
pub struct MockConfig {
    /// The only access key id accepted.
    pub access_key_id: String,
    /// The secret used to recompute signatures.
    pub secret_access_key: String,
    /// If set, `Authorization: Bearer <token>` with exactly this token is accepted too.
    pub bearer_token: Option<String>,
    /// Whether to check authentication at all.
    pub verify_signatures: bool,
    /// If set, the credential scope's region must be this one.
    pub region: Option<String>,
    /// The first this many authenticated requests fail with `fail_status` (retry tests).
    pub fail_first: u64,
    /// Status of those failures: 429 (`ThrottlingException`), 500 (`InternalServerException`)
    /// or 503 (`ServiceUnavailableException`, also used for anything else).
    pub fail_status: u16,
    /// Model ids (as decoded from the path) that always fail with `fail_status` (fallback and
    /// circuit-breaker tests).
    pub fail_models: Vec<String>,
    /// SETTINGS_MAX_CONCURRENT_STREAMS announced on HTTP/2 connections (unset: hyper's 200).
    pub http2_max_streams: Option<u32>,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            access_key_id: MOCK_ACCESS_KEY_ID.to_owned(),
            secret_access_key: MOCK_SECRET_ACCESS_KEY.to_owned(),
            bearer_token: None,
            verify_signatures: true,
            region: None,
            fail_first: 0,
            fail_status: 503,
            fail_models: Vec::new(),
            http2_max_streams: None,
        }
    }
}

impl MockConfig {
    /// Credentials that sign requests this mock accepts.
    pub fn credentials(&self) -> Credentials {
        Credentials::new(
            self.access_key_id.clone(),
            self.secret_access_key.clone(),
            None,
            None,
            "mock-bedrock",
        )
    }
}

impl fmt::Debug for MockConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockConfig")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"** redacted **")
            .field(
                "bearer_token",
                &self.bearer_token.as_ref().map(|_| "** redacted **"),
            )
            .field("verify_signatures", &self.verify_signatures)
            .field("region", &self.region)
            .field("fail_first", &self.fail_first)
            .field("fail_status", &self.fail_status)
            .field("fail_models", &self.fail_models)
            .finish()
    }
}

/// One request as the mock received it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// Path and query exactly as sent (percent-encoding preserved).
    pub path: String,
    /// Headers in arrival order, names lower-case; non-UTF-8 values are converted lossily.
    pub headers: Vec<(String, String)>,
    /// The request body.
    pub body: Bytes,
}

impl RecordedRequest {
    /// The first value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Counters shared by the server, its bodies and the handle.
#[derive(Debug, Default)]
struct Counters {
    calls: AtomicU64,
    converse_calls: AtomicU64,
    stream_calls: AtomicU64,
    active_streams: AtomicU64,
    cancelled_streams: AtomicU64,
    frames_sent: AtomicU64,
    invoke_calls: AtomicU64,
    failed_on_purpose: AtomicU64,
    connections: AtomicU64,
    http2_calls: AtomicU64,
}

struct State {
    config: MockConfig,
    counters: Arc<Counters>,
    last_request: Mutex<Option<RecordedRequest>>,
}

/// Handle to a mock started with [`spawn`].
pub struct MockBedrock {
    addr: SocketAddr,
    state: Arc<State>,
    shutdown: watch::Sender<bool>,
}

// === impl MockBedrock ===

impl MockBedrock {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (a wildcard bind address is replaced by loopback).
    pub fn endpoint(&self) -> String {
        let mut addr = self.addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        format!("http://{addr}")
    }

    /// Requests received, whatever the outcome.
    pub fn calls(&self) -> u64 {
        self.state.counters.calls.load(Ordering::Relaxed)
    }

    /// Requests routed to Converse, whatever the outcome.
    pub fn converse_calls(&self) -> u64 {
        self.state.counters.converse_calls.load(Ordering::Relaxed)
    }

    /// Requests routed to ConverseStream, whatever the outcome.
    pub fn stream_calls(&self) -> u64 {
        self.state.counters.stream_calls.load(Ordering::Relaxed)
    }

    /// The most recent request.
    pub fn last_request(&self) -> Option<RecordedRequest> {
        self.state
            .last_request
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Stops accepting connections; open ones get [`SHUTDOWN_GRACE`] to finish. Idempotent.
    pub fn shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Event-stream bodies currently being sent.
    pub fn active_streams(&self) -> u64 {
        self.state.counters.active_streams.load(Ordering::Relaxed)
    }

    /// Event-stream frames handed to connections so far, over all streams.
    pub fn frames_sent(&self) -> u64 {
        self.state.counters.frames_sent.load(Ordering::Relaxed)
    }

    /// Event-stream bodies dropped before they finished: the client went away.
    pub fn cancelled_streams(&self) -> u64 {
        self.state.counters.cancelled_streams.load(Ordering::Relaxed)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.state.counters.connections.load(Ordering::Relaxed)
    }

    /// Requests that arrived over HTTP/2, whatever the outcome.
    pub fn http2_calls(&self) -> u64 {
        self.state.counters.http2_calls.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for MockBedrock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockBedrock")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Starts serving on `listener` in a task spawned on the current tokio runtime and returns
/// its handle. It runs until [`MockBedrock::shutdown`] is called (or the runtime ends), not
/// until the handle drops.
pub fn spawn(listener: TcpListener, config: MockConfig) -> MockBedrock {
    let addr = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
    let state = Arc::new(State::new(config));
    let (shutdown, mut stop) = watch::channel(false);
    let stopped = async move {
        if stop.wait_for(|stop| *stop).await.is_err() {
            // The handle is gone without asking to stop: keep serving.
            std::future::pending::<()>().await;
        }
    };
    tokio::spawn(run(listener, state.clone(), stopped));
    MockBedrock {
        addr,
        state,
        shutdown,
    }
}

/// Serves on `listener` until `shutdown` resolves (the `mock-bedrock` subcommand).
pub async fn serve(
    listener: TcpListener,
    config: MockConfig,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    run(listener, Arc::new(State::new(config)), shutdown).await;
    Ok(())
}

/// The accept loop (hyper-util's graceful-shutdown pattern).
async fn run(listener: TcpListener, state: Arc<State>, shutdown: impl Future<Output = ()>) {
    let counters = Arc::clone(&state.counters);
    accept_loop(
        listener,
        shutdown,
        state.config.http2_max_streams,
        move || {
            counters.connections.fetch_add(1, Ordering::Relaxed);
        },
        move |req| {
            let state = Arc::clone(&state);
            async move { handle(&state, req).await }
        },
    )
    .await;
}

/// The accept loop of both modes (hyper-util's graceful-shutdown pattern): h1 and h2c with
/// TCP_NODELAY, `accepted` told of each connection, `handle` answering each request; on
/// `shutdown` open connections get [`SHUTDOWN_GRACE`] to finish.
pub(crate) async fn accept_loop<H, F, B>(
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    http2_max_streams: Option<u32>,
    accepted: impl Fn(),
    handle: H,
) where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(http2_max_streams.or(Some(200)));
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted_stream = listener.accept() => {
                let stream = match accepted_stream {
                    Ok((stream, _peer)) => stream,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::debug!(error = %e, "mock bedrock: accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                accepted();
                let _ = stream.set_nodelay(true);
                let handle = handle.clone();
                let service = service_fn(move |req| {
                    let reply = handle(req);
                    async move { Ok::<_, Infallible>(reply.await) }
                });
                let connection = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                let connection = graceful.watch(connection);
                connections.spawn(async move {
                    let _ = connection.await;
                });
            }
            // Reap finished connections so the set only holds open ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await;
    connections.shutdown().await;
}

// === impl State ===

impl State {
    fn new(config: MockConfig) -> Self {
        Self {
            config,
            counters: Arc::default(),
            last_request: Mutex::new(None),
        }
    }
}

/// Which operation a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Converse,
    ConverseStream,
    Invoke,
    InvokeStream,
}

/// `(operation, raw model id segment)` for the Converse routes.
fn route<'p>(method: &Method, path: &'p str) -> Option<(Operation, &'p str)> {
    if method != Method::POST {
        return None;
    }
    let rest = path.strip_prefix("/model/")?;
    let (model, operation) = rest.split_once('/')?;
    let operation = match operation {
        "converse" => Operation::Converse,
        "converse-stream" => Operation::ConverseStream,
        "invoke" => Operation::Invoke,
        "invoke-with-response-stream" => Operation::InvokeStream,
        _ => return None,
    };
    (!model.is_empty()).then_some((operation, model))
}

async fn handle(state: &State, req: Request<Incoming>) -> Response<MockBody> {
    let started = Instant::now();
    let request_id = request_id();
    if req.method() == Method::GET && req.uri().path() == LAST_REQUEST_PATH {
        return last_request_response(state);
    }
    state.counters.calls.fetch_add(1, Ordering::Relaxed);
    if req.version() == http::Version::HTTP_2 {
        state.counters.http2_calls.fetch_add(1, Ordering::Relaxed);
    }
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_REQUEST_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return validation_error(
                &request_id,
                "The request body could not be read or is larger than 25000000 bytes.",
            );
        }
    };
    record(state, &parts, &body);

    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let route = route(&parts.method, parts.uri.path());
    if let Some((operation, _)) = route {
        let counter = match operation {
            Operation::Converse => &state.counters.converse_calls,
            Operation::ConverseStream => &state.counters.stream_calls,
            Operation::Invoke | Operation::InvokeStream => &state.counters.invoke_calls,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    if state.config.verify_signatures
        && let Err(failure) = verify::verify(&parts, &body, &state.config, SystemTime::now())
    {
        let (status, name, message) = failure.parts();
        tracing::debug!(%status, error = name, path, "mock bedrock: request refused");
        return error(&request_id, status, name, &message);
    }

    let failing_model = route.is_some_and(|(_, model)| {
        let model = percent_encoding::percent_decode_str(model).decode_utf8_lossy();
        state.config.fail_models.iter().any(|m| *m == model)
    });
    if failing_model
        || (state.config.fail_first > 0
            && state.counters.failed_on_purpose.fetch_add(1, Ordering::Relaxed) < state.config.fail_first)
    {
        let (status, name) = match state.config.fail_status {
            429 => (StatusCode::TOO_MANY_REQUESTS, "ThrottlingException"),
            500 => (StatusCode::INTERNAL_SERVER_ERROR, "InternalServerException"),
            _ => (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailableException"),
        };
        return error(
            &request_id,
            status,
            name,
            "Injected failure (MockConfig::fail_first).",
        );
    }

    let Some((operation, model)) = route else {
        return error(
            &request_id,
            StatusCode::NOT_FOUND,
            "UnknownOperationException",
            "The requested operation is not supported by the mock Bedrock runtime.",
        );
    };
    if let Err(message) = check_model_id(model) {
        return validation_error(&request_id, &message);
    }
    let model_id = || percent_encoding::percent_decode_str(model).decode_utf8_lossy();
    match operation {
        Operation::Invoke => return embed::invoke(&request_id, &model_id(), &body),
        Operation::InvokeStream => return invoke_stream::invoke_stream(&request_id, &model_id(), &body),
        Operation::Converse | Operation::ConverseStream => {}
    }
    let script = match script::parse(&body) {
        Ok(script) => script,
        Err(invalid) => {
            return validation_error(&request_id, &invalid.0);
        }
    };
    if let Some(status) = script.status {
        return error(
            &request_id,
            status.status,
            status.name,
            script::exception_message(status.name),
        );
    }
    if operation != Operation::ConverseStream {
        return converse(&request_id, script, started).await;
    }
    let body = MockBody::Stream(reply::stream(script, state.counters.clone(), started));
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.amazon.eventstream"),
    );
    insert_request_id(headers, &request_id);
    response
}

async fn converse(request_id: &str, script: Script, started: Instant) -> Response<MockBody> {
    let deltas = u32::try_from(script.delta_count()).unwrap_or(u32::MAX);
    let wait = script.delay.saturating_mul(deltas).saturating_add(script.stall);
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
    if let Some(exception) = script
        .first_exception
        .as_deref()
        .or(script.mid_exception.as_deref())
    {
        let (status, name) = script::exception_as_http(exception);
        return error(request_id, status, &name, script::exception_message(exception));
    }
    let body = if script.reset {
        MockBody::Reset
    } else {
        let mut json = reply::converse_json(&script, started);
        if script.truncate {
            json.truncate(json.len() / 2);
        }
        MockBody::full(json)
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    insert_request_id(headers, request_id);
    response
}

/// The model id segment must decode to 1..=2048 characters of UTF-8.
fn check_model_id(segment: &str) -> Result<(), String> {
    let decoded = percent_encoding::percent_decode_str(segment).decode_utf8().map_err(|_| {
        "1 validation error detected: Value at 'modelId' failed to satisfy constraint: Member must be valid UTF-8"
            .to_owned()
    })?;
    if decoded.is_empty() || decoded.chars().count() > MAX_MODEL_ID_CHARS {
        return Err(format!(
            "1 validation error detected: Value '{decoded}' at 'modelId' failed to satisfy constraint: Member \
             must have length between 1 and {MAX_MODEL_ID_CHARS}"
        ));
    }
    Ok(())
}

fn record(state: &State, parts: &http::request::Parts, body: &Bytes) {
    let recorded = RecordedRequest {
        method: parts.method.as_str().to_owned(),
        path: parts
            .uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.clone(),
    };
    *state.last_request.lock().unwrap_or_else(PoisonError::into_inner) = Some(recorded);
}

/// An error in Bedrock's wire shape.
fn last_request_response(state: &State) -> Response<MockBody> {
    let last = state
        .last_request
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let Some(last) = last else {
        let mut response = Response::new(MockBody::full(Bytes::new()));
        *response.status_mut() = StatusCode::NO_CONTENT;
        return response;
    };
    let mut response = Response::new(MockBody::full(last.body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(path) = HeaderValue::from_str(&last.path) {
        headers.insert("x-mock-path", path);
    }
    response
}

/// A 400 `ValidationException`.
fn validation_error(request_id: &str, message: &str) -> Response<MockBody> {
    error(
        request_id,
        StatusCode::BAD_REQUEST,
        "ValidationException",
        message,
    )
}

fn error(request_id: &str, status: StatusCode, name: &str, message: &str) -> Response<MockBody> {
    let mut body = Vec::with_capacity(message.len() + 16);
    body.extend_from_slice(b"{\"message\":");
    json::write_str(&mut body, message);
    body.push(b'}');
    let mut response = Response::new(MockBody::full(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(value) = HeaderValue::from_str(&format!("{name}{ERROR_TYPE_SUFFIX}")) {
        headers.insert("x-amzn-errortype", value);
    }
    insert_request_id(headers, request_id);
    response
}

fn insert_request_id(headers: &mut http::HeaderMap, request_id: &str) {
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", value);
    }
}

/// A random UUID-shaped id (version 4 layout).
fn request_id() -> String {
    let v = fastrand::u128(..);
    let v = (v & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    let hex = format!("{v:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}
