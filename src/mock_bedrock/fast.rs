//! The mock's fast mode, for load tests (`ai-gateway mock-bedrock --fast`).
//!
//! The ordinary mock parses a script out of every request, checks its signature and produces
//! each stream from a task through a channel: right for tests, too slow to stand in for
//! Bedrock when the gateway is the thing being measured. Here every reply is encoded once, at
//! startup or at the first request that asks for a new frame count; a stream body is a cursor
//! over shared `Bytes` with one timer, and nothing is verified.
//!
//! Replies (both operations, any model id):
//!
//! - `converse`: one JSON document whose text is `frames` copies of `tok `;
//! - `converse-stream`: `messageStart`, `frames` text deltas `tok `, `contentBlockStop`,
//!   `messageStop`, `metadata`, each padded like Bedrock's. With a frame delay the first frame
//!   goes out at once and each later one after the delay; without one the whole stream is a
//!   single buffer.
//!
//! A request body may override the defaults with the words `fast:frames=N` (1..=1 000 000)
//! and `fast:delay_us=D` anywhere in it (the gateway passes the user's text through, so a
//! client can set them per request). `GET /__stats` answers the counters as JSON, and they are
//! printed to stderr when the server stops: accepted connections against requests is the
//! upstream connection reuse of whatever sits in front.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::time::{Instant, Sleep};

use crate::bedrock::eventstream::encode_event;
use crate::json;

/// Largest frame count a request may ask for.
pub const MAX_FRAMES: u32 = 1_000_000;
/// Largest request body read.
const MAX_REQUEST_BODY_BYTES: usize = 25_000_000;
/// Distinct frame counts whose replies are kept encoded; others are encoded per request.
const CACHED_SHAPES: usize = 16;
/// The text of every delta.
const DELTA_TEXT: &str = "tok ";
/// Bedrock pads every payload with a `"p"` member; a fixed, typical length here.
const PADDING: &str = "abcdefghijklmnopqrstuvwxyzABCDEF";

/// Fast-mode defaults, overridable per request.
#[derive(Debug, Clone, Copy)]
pub struct FastConfig {
    /// Text deltas per reply.
    pub frames: u32,
    /// Pause before every stream frame after the first.
    pub frame_delay: Duration,
}

impl Default for FastConfig {
    fn default() -> Self {
        Self {
            frames: 20,
            frame_delay: Duration::ZERO,
        }
    }
}

/// What the fast mock counts.
#[derive(Debug, Default)]
pub struct FastStats {
    /// TCP connections accepted.
    pub connections: AtomicU64,
    /// Requests received (including `/__stats`).
    pub requests: AtomicU64,
    /// Converse replies.
    pub converse: AtomicU64,
    /// ConverseStream replies started.
    pub streams: AtomicU64,
    /// Stream bodies alive now.
    pub active_streams: AtomicU64,
    /// Stream bodies dropped before their last frame went out.
    pub cancelled_streams: AtomicU64,
}

impl FastStats {
    /// The counters as one JSON object.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(160);
        let fields = [
            ("connections", &self.connections),
            ("requests", &self.requests),
            ("converse", &self.converse),
            ("streams", &self.streams),
            ("active_streams", &self.active_streams),
            ("cancelled_streams", &self.cancelled_streams),
        ];
        out.push(b'{');
        for (i, (name, value)) in fields.into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json::write_str(&mut out, name);
            out.push(b':');
            json::write_u64(&mut out, value.load(Ordering::Relaxed));
        }
        out.push(b'}');
        out
    }
}

/// Every reply for one frame count, encoded.
#[derive(Debug)]
struct Shape {
    frames: u32,
    /// `messageStart`, one delta, `contentBlockStop`, `messageStop`, `metadata`.
    start: Bytes,
    delta: Bytes,
    tail: [Bytes; 3],
    /// The whole stream in one buffer (for streams without a delay).
    whole: Bytes,
    /// The Converse JSON document.
    converse: Bytes,
}

impl Shape {
    fn new(frames: u32) -> Self {
        let start = event("messageStart", br#""role":"assistant""#);
        let mut fields = Vec::with_capacity(64);
        fields.extend_from_slice(br#""contentBlockIndex":0,"delta":{"text":"#);
        json::write_str(&mut fields, DELTA_TEXT);
        fields.push(b'}');
        let delta = event("contentBlockDelta", &fields);
        let mut usage = Vec::with_capacity(160);
        usage.extend_from_slice(br#""usage":{"inputTokens":10,"outputTokens":"#);
        json::write_u64(&mut usage, u64::from(frames));
        usage.extend_from_slice(br#","totalTokens":"#);
        json::write_u64(&mut usage, u64::from(frames) + 10);
        usage.extend_from_slice(br#"},"metrics":{"latencyMs":1}"#);
        let tail = [
            event("contentBlockStop", br#""contentBlockIndex":0"#),
            event("messageStop", br#""stopReason":"end_turn""#),
            event("metadata", &usage),
        ];
        let n = frames as usize;
        let mut whole =
            Vec::with_capacity(start.len() + n * delta.len() + tail.iter().map(Bytes::len).sum::<usize>());
        whole.extend_from_slice(&start);
        for _ in 0..n {
            whole.extend_from_slice(&delta);
        }
        for t in &tail {
            whole.extend_from_slice(t);
        }
        let mut converse = Vec::with_capacity(160 + n * DELTA_TEXT.len() + usage.len());
        converse.extend_from_slice(br#"{"output":{"message":{"role":"assistant","content":[{"text":""#);
        for _ in 0..n {
            converse.extend_from_slice(DELTA_TEXT.as_bytes());
        }
        converse.extend_from_slice(br#""}]}},"stopReason":"end_turn","#);
        converse.extend_from_slice(&usage);
        converse.push(b'}');
        Self {
            frames,
            start,
            delta,
            tail,
            whole: whole.into(),
            converse: converse.into(),
        }
    }

    /// Frame `i` of a stream of `frames + 4` frames.
    fn frame(&self, i: u32) -> Option<&Bytes> {
        let n = self.frames;
        match i {
            0 => Some(&self.start),
            i if i <= n => Some(&self.delta),
            i => self.tail.get((i - n - 1) as usize),
        }
    }
}

/// The whole event stream fast mode sends for `frames` text deltas of [`DELTA_TEXT`], for
/// tests that read Bedrock's stream as the mock encodes it.
#[cfg(test)]
pub(crate) fn text_stream(frames: u32) -> Bytes {
    Shape::new(frames).whole
}

fn event(event_type: &str, fields: &[u8]) -> Bytes {
    let mut payload = Vec::with_capacity(fields.len() + PADDING.len() + 8);
    payload.push(b'{');
    payload.extend_from_slice(fields);
    payload.extend_from_slice(b",\"p\":");
    json::write_str(&mut payload, PADDING);
    payload.push(b'}');
    let mut frame = Vec::with_capacity(payload.len() + 96);
    encode_event(event_type, &payload, &mut frame);
    frame.into()
}

struct State {
    config: FastConfig,
    default_shape: Arc<Shape>,
    /// Other shapes asked for, at most [`CACHED_SHAPES`]; held only to clone an `Arc`.
    shapes: Mutex<Vec<Arc<Shape>>>,
    stats: Arc<FastStats>,
}

impl State {
    fn shape(&self, frames: u32) -> Arc<Shape> {
        if frames == self.default_shape.frames {
            return self.default_shape.clone();
        }
        let mut shapes = self.shapes.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(shape) = shapes.iter().find(|s| s.frames == frames) {
            return shape.clone();
        }
        let shape = Arc::new(Shape::new(frames));
        if shapes.len() < CACHED_SHAPES {
            shapes.push(shape.clone());
        }
        shape
    }
}

/// Serves fast mode on `listener` until `shutdown` resolves, then prints the counters.
pub async fn serve(listener: TcpListener, config: FastConfig, shutdown: impl Future<Output = ()>) {
    let stats = Arc::new(FastStats::default());
    run(listener, config, stats.clone(), shutdown).await;
    eprintln!(
        "mock-bedrock fast stats: {}",
        String::from_utf8_lossy(&stats.to_json())
    );
}

/// Handle to a fast mock started with [`spawn`].
#[derive(Debug)]
pub struct FastMock {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Its counters.
    pub stats: Arc<FastStats>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl FastMock {
    /// Stops accepting connections; open ones get [`SHUTDOWN_GRACE`](super::SHUTDOWN_GRACE).
    pub fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts fast mode in a background task (tests, benches).
pub fn spawn(listener: TcpListener, config: FastConfig) -> FastMock {
    let addr = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
    let stats = Arc::new(FastStats::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(run(listener, config, stats.clone(), async move {
        let _ = stopped.await;
    }));
    FastMock {
        addr,
        stats,
        stop: Some(stop),
    }
}

async fn run(
    listener: TcpListener,
    config: FastConfig,
    stats: Arc<FastStats>,
    shutdown: impl Future<Output = ()>,
) {
    let frames = config.frames.clamp(1, MAX_FRAMES);
    let state = Arc::new(State {
        config: FastConfig { frames, ..config },
        default_shape: Arc::new(Shape::new(frames)),
        shapes: Mutex::new(Vec::new()),
        stats,
    });
    let counted = Arc::clone(&state);
    super::accept_loop(
        listener,
        shutdown,
        None,
        move || {
            counted.stats.connections.fetch_add(1, Ordering::Relaxed);
        },
        move |req| {
            let state = Arc::clone(&state);
            async move { handle(&state, req).await }
        },
    )
    .await;
}

async fn handle(state: &State, req: Request<Incoming>) -> Response<FastBody> {
    let stats = &state.stats;
    let n = stats.requests.fetch_add(1, Ordering::Relaxed);
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    if parts.method == Method::GET && path == "/__stats" {
        return reply(StatusCode::OK, "application/json", stats.to_json().into(), n);
    }
    let stream = match (parts.method == Method::POST, path.rsplit_once('/')) {
        (true, Some((model, "converse"))) if model.starts_with("/model/") => false,
        (true, Some((model, "converse-stream"))) if model.starts_with("/model/") => true,
        _ => {
            return reply(
                StatusCode::NOT_FOUND,
                "application/json",
                Bytes::from_static(br#"{"message":"fast mode serves converse and converse-stream only"}"#),
                n,
            );
        }
    };
    let body = match Limited::new(body, MAX_REQUEST_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return reply(
                StatusCode::BAD_REQUEST,
                "application/json",
                Bytes::from_static(br#"{"message":"the request body could not be read"}"#),
                n,
            );
        }
    };
    let frames = directive(&body, b"fast:frames=")
        .and_then(|v| u32::try_from(v).ok())
        .map_or(state.config.frames, |v| v.clamp(1, MAX_FRAMES));
    let delay = directive(&body, b"fast:delay_us=").map_or(state.config.frame_delay, Duration::from_micros);
    let shape = state.shape(frames);
    if !stream {
        stats.converse.fetch_add(1, Ordering::Relaxed);
        return reply(StatusCode::OK, "application/json", shape.converse.clone(), n);
    }
    stats.streams.fetch_add(1, Ordering::Relaxed);
    stats.active_streams.fetch_add(1, Ordering::Relaxed);
    let body = FastBody::Stream(FastStream {
        shape,
        next: 0,
        delay: (!delay.is_zero()).then_some(delay),
        sleep: None,
        stats: state.stats.clone(),
    });
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.amazon.eventstream"),
    );
    insert_request_id(headers, n);
    response
}

/// The number after the first `key` in `body`.
fn directive(body: &[u8], key: &[u8]) -> Option<u64> {
    let at = body.windows(key.len()).position(|w| w == key)? + key.len();
    let digits = body[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&body[at..at + digits]).ok()?.parse().ok()
}

fn reply(status: StatusCode, content_type: &'static str, body: Bytes, n: u64) -> Response<FastBody> {
    let mut response = Response::new(FastBody::Full(Some(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    insert_request_id(headers, n);
    response
}

/// A UUID-shaped id from the request counter: unique per process, no randomness to pay for.
fn insert_request_id(headers: &mut http::HeaderMap, n: u64) {
    let mut id = Vec::with_capacity(36);
    id.extend_from_slice(b"00000000-0000-4000-8000-");
    let digits = itoa::Buffer::new().format(n % 1_000_000_000_000).len();
    id.resize(id.len() + 12 - digits, b'0');
    json::write_u64(&mut id, n % 1_000_000_000_000);
    if let Ok(value) = HeaderValue::from_bytes(&id) {
        headers.insert("x-amzn-requestid", value);
    }
}

/// Every fast-mode response body.
#[derive(Debug)]
pub enum FastBody {
    /// One buffer.
    Full(Option<Bytes>),
    /// An event stream.
    Stream(FastStream),
}

/// A cursor over a `Shape`'s frames with one timer.
#[derive(Debug)]
pub struct FastStream {
    shape: Arc<Shape>,
    next: u32,
    delay: Option<Duration>,
    sleep: Option<Pin<Box<Sleep>>>,
    stats: Arc<FastStats>,
}

impl FastStream {
    fn finished(&self) -> bool {
        self.next > self.shape.frames + 3
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        if self.finished() {
            return Poll::Ready(None);
        }
        let Some(delay) = self.delay else {
            self.next = self.shape.frames + 4;
            return Poll::Ready(Some(self.shape.whole.clone()));
        };
        if self.next > 0 {
            let sleep = self
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(delay)));
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            sleep.as_mut().reset(Instant::now() + delay);
        }
        let frame = self.shape.frame(self.next).cloned();
        self.next += 1;
        Poll::Ready(frame)
    }
}

impl Drop for FastStream {
    fn drop(&mut self) {
        self.stats.active_streams.fetch_sub(1, Ordering::Relaxed);
        if !self.finished() {
            self.stats.cancelled_streams.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Body for FastBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Self::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Self::Stream(stream) => stream.poll_next(cx).map(|b| b.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Full(bytes) => bytes.is_none(),
            Self::Stream(stream) => stream.finished(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Self::Full(None) => SizeHint::with_exact(0),
            Self::Stream(_) => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bedrock::eventstream::{EventDecoder, Frame as EsFrame, classify};

    fn mk_stream(frames: u32, delay: Option<Duration>) -> FastStream {
        let stats = Arc::new(FastStats::default());
        stats.active_streams.fetch_add(1, Ordering::Relaxed);
        FastStream {
            shape: Arc::new(Shape::new(frames)),
            next: 0,
            delay,
            sleep: None,
            stats,
        }
    }

    fn event_types(bytes: &[u8]) -> Vec<String> {
        let mut decoder = EventDecoder::default();
        decoder.push(bytes);
        let mut types = Vec::new();
        while let Some(message) = decoder.next_message().unwrap() {
            match classify(&message).unwrap() {
                EsFrame::Event { event_type, .. } => types.push(event_type.to_owned()),
                other => panic!("{other:?}"),
            }
        }
        decoder.finish().unwrap();
        types
    }

    #[tokio::test]
    async fn counts_connections_and_requests() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut mock = spawn(listener, FastConfig::default());
        let url = format!(
            "http://{}/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse",
            mock.addr
        );
        let converse = |client: &hyper_util::client::legacy::Client<_, http_body_util::Full<Bytes>>| {
            let request = Request::post(url.as_str())
                .header(header::CONTENT_TYPE, "application/json")
                .body(http_body_util::Full::new(Bytes::from_static(
                    br#"{"messages":[{"role":"user","content":[{"text":"hi"}]}]}"#,
                )))
                .unwrap();
            client.request(request)
        };
        let new_client = || {
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<http_body_util::Full<Bytes>>()
        };
        // Three requests on one kept-alive connection, then one on a second.
        let client = new_client();
        for _ in 0..3 {
            let response = converse(&client).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            response.into_body().collect().await.unwrap();
        }
        let response = converse(&new_client()).await.unwrap();
        response.into_body().collect().await.unwrap();
        assert_eq!(mock.stats.connections.load(Ordering::Relaxed), 2);
        assert_eq!(mock.stats.requests.load(Ordering::Relaxed), 4);
        assert_eq!(mock.stats.converse.load(Ordering::Relaxed), 4);
        mock.shutdown();
    }

    #[test]
    fn whole_stream_is_the_bedrock_event_sequence() {
        let shape = Shape::new(3);
        assert_eq!(
            event_types(&shape.whole),
            [
                "messageStart",
                "contentBlockDelta",
                "contentBlockDelta",
                "contentBlockDelta",
                "contentBlockStop",
                "messageStop",
                "metadata"
            ]
        );
        let text: serde_json::Value = serde_json::from_slice(&shape.converse).unwrap();
        assert_eq!(text["output"]["message"]["content"][0]["text"], "tok tok tok ");
        assert_eq!(text["usage"]["outputTokens"], 3);
    }

    #[tokio::test]
    async fn paced_stream_sends_frames_one_by_one() {
        let mut stream = mk_stream(2, Some(Duration::from_millis(1)));
        let mut all = Vec::new();
        let mut count = 0;
        while let Some(frame) = std::future::poll_fn(|cx| stream.poll_next(cx)).await {
            all.extend_from_slice(&frame);
            count += 1;
        }
        assert_eq!(count, 6);
        assert_eq!(event_types(&all).len(), 6);
        assert_eq!(stream.stats.cancelled_streams.load(Ordering::Relaxed), 0);
        drop(stream);
    }

    #[test]
    fn directives_are_read_from_anywhere_in_the_body() {
        let body = br#"{"messages":[{"content":[{"text":"hi fast:frames=100 fast:delay_us=1000"}]}]}"#;
        assert_eq!(directive(body, b"fast:frames="), Some(100));
        assert_eq!(directive(body, b"fast:delay_us="), Some(1000));
        assert_eq!(directive(b"{}", b"fast:frames="), None);
    }

    #[test]
    fn request_ids_are_uuid_shaped() {
        let mut headers = http::HeaderMap::new();
        insert_request_id(&mut headers, 42);
        assert_eq!(
            headers["x-amzn-requestid"].to_str().unwrap(),
            "00000000-0000-4000-8000-000000000042"
        );
    }
}
