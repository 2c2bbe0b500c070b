//! Prometheus metrics: one registry, typed low-cardinality labels, OpenMetrics text at
//! `GET /metrics`.
//!
//! Label values are enums or names that come from configuration (model aliases, API-key
//! names), never raw client input: an unknown model is counted under `model=""`. Per-model
//! handles are created on first use and then found by one map read.
//!
//! Histogram buckets run from 100 µs to about 3.5 minutes in factors of two, so one set of
//! buckets resolves both the gateway's own sub-millisecond overhead and minute-long streams.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::StatusCode;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::translate::response::Usage;

/// The endpoint a request was for.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Endpoint {
    /// `POST /v1/chat/completions`.
    chat_completions,
    /// `GET /v1/models[/{id}]`.
    models,
    /// `/health`, `/ready`, `/metrics`.
    ops,
    /// Native and legacy Bedrock passthrough.
    passthrough,
    /// `POST /v1/embeddings`.
    embeddings,
    /// `POST /v1/auth/session`.
    auth,
    /// Anything else (404/405).
    other,
}

/// HTTP status class.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum StatusClass {
    /// 1xx and 2xx.
    ok_2xx,
    /// 3xx.
    redirect_3xx,
    /// 4xx.
    client_4xx,
    /// 5xx.
    server_5xx,
}

impl StatusClass {
    /// The class of a status code.
    pub fn of(status: StatusCode) -> Self {
        match status.as_u16() {
            0..=299 => Self::ok_2xx,
            300..=399 => Self::redirect_3xx,
            400..=499 => Self::client_4xx,
            _ => Self::server_5xx,
        }
    }
}

/// Which token count.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum TokenKind {
    /// Input tokens not served from or written to the cache.
    input,
    /// Generated tokens.
    output,
    /// Input tokens read from the prompt cache.
    cache_read,
    /// Input tokens written to the prompt cache.
    cache_write,
}

/// How a stream ended (mirrors `body::sse::StreamOutcome`).
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types, missing_docs)]
pub enum Outcome {
    ok = 0,
    upstream_error = 1,
    timeout = 2,
    client_cancelled = 3,
}

impl From<crate::body::sse::StreamOutcome> for Outcome {
    fn from(outcome: crate::body::sse::StreamOutcome) -> Self {
        use crate::body::sse::StreamOutcome as S;
        match outcome {
            S::Ok => Self::ok,
            S::UpstreamError => Self::upstream_error,
            S::Timeout => Self::timeout,
            S::ClientCancelled => Self::client_cancelled,
        }
    }
}

/// A model alias from the model table (`""` when the request named no known model).
pub type ModelLabel = Arc<str>;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    endpoint: Endpoint,
    model: ModelLabel,
    status: StatusClass,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: Endpoint,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    model: ModelLabel,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    model: ModelLabel,
    key: Arc<str>,
    kind: TokenKind,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamErrorLabels {
    model: ModelLabel,
    error: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StreamLabels {
    model: ModelLabel,
    outcome: Outcome,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyLabels {
    key: Arc<str>,
    limit: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FallbackLabels {
    model: ModelLabel,
    target: ModelLabel,
}

type HistogramFamily<S> = Family<S, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 22))
}

fn histogram_family<S: Clone + std::hash::Hash + Eq>() -> HistogramFamily<S> {
    Family::new_with_constructor(latency_histogram)
}

/// Handles to one model's chat series, resolved once per route (`Route::series`) so that a
/// request updates its counters and histograms without hashing a label set; prometheus-client
/// handles share their values with the family they came from. Stream outcomes are created
/// together, so each model's `streams` series start at zero.
#[derive(Debug)]
pub struct ModelSeries {
    requests_ok: Counter,
    chat_duration: Histogram,
    upstream_headers: Histogram,
    upstream_first_event: Histogram,
    first_chunk: Histogram,
    stream_duration: Histogram,
    streams: [Counter; 4],
    /// Token counters of requests without an API key, by [`TokenKind`], each created when
    /// first used (as the family creates them).
    keyless_tokens: [OnceLock<Counter>; 4],
}

impl ModelSeries {
    /// A chat completion answered 2xx (streams: when their headers were sent).
    pub fn chat_ok(&self, elapsed: Duration) {
        self.requests_ok.inc();
        self.chat_duration.observe(elapsed.as_secs_f64());
    }

    /// Bedrock's response headers arrived `elapsed` after sending.
    pub fn upstream_headers(&self, elapsed: Duration) {
        self.upstream_headers.observe(elapsed.as_secs_f64());
    }

    /// Bedrock's first event arrived `since_send` after sending, and the first chunk for the
    /// client was ready `since_request` after the request arrived.
    pub fn first_event(&self, since_send: Duration, since_request: Duration) {
        self.upstream_first_event.observe(since_send.as_secs_f64());
        self.first_chunk.observe(since_request.as_secs_f64());
    }

    /// A stream ended.
    pub fn stream_end(&self, outcome: Outcome, elapsed: Duration) {
        self.streams[outcome as usize].inc();
        self.stream_duration.observe(elapsed.as_secs_f64());
    }

    /// Tokens used by one of this model's (`model`'s) requests with API key `key`, empty
    /// without one: keyless requests count through handles resolved once, others through
    /// the family.
    pub fn tokens(&self, metrics: &Metrics, model: &ModelLabel, key: &Arc<str>, usage: &Usage) {
        if !key.is_empty() {
            return metrics.tokens(model, key, usage);
        }
        for (kind, n) in token_counts(usage) {
            if n > 0 {
                self.keyless_tokens[kind as usize]
                    .get_or_init(|| metrics.token_counter(model, key, kind))
                    .inc_by(n);
            }
        }
    }
}

/// A request's token counts by kind.
fn token_counts(usage: &Usage) -> [(TokenKind, u64); 4] {
    [
        (TokenKind::input, usage.input_tokens),
        (TokenKind::output, usage.output_tokens),
        (TokenKind::cache_read, usage.cache_read_tokens),
        (TokenKind::cache_write, usage.cache_write_tokens),
    ]
}

/// Every metric the gateway exports.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_duration: HistogramFamily<EndpointLabels>,
    upstream_headers: HistogramFamily<ModelLabels>,
    upstream_first_event: HistogramFamily<ModelLabels>,
    first_chunk: HistogramFamily<ModelLabels>,
    stream_duration: HistogramFamily<ModelLabels>,
    streams: Family<StreamLabels, Counter>,
    in_flight_requests: Gauge,
    in_flight_streams: Gauge,
    tokens: Family<TokenLabels, Counter>,
    upstream_errors: Family<UpstreamErrorLabels, Counter>,
    retries: Family<ModelLabels, Counter>,
    fallbacks: Family<FallbackLabels, Counter>,
    rate_limited: Family<KeyLabels, Counter>,
    audit_dropped: Counter,
    audit_dropped_seen: std::sync::atomic::AtomicU64,
    reloads: Counter,
    reload_failures: Counter,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric under the `ai_gateway` prefix, plus process metrics.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ai_gateway");
        let m = Self {
            requests: Family::default(),
            request_duration: histogram_family(),
            upstream_headers: histogram_family(),
            upstream_first_event: histogram_family(),
            first_chunk: histogram_family(),
            stream_duration: histogram_family(),
            streams: Family::default(),
            in_flight_requests: Gauge::default(),
            in_flight_streams: Gauge::default(),
            tokens: Family::default(),
            upstream_errors: Family::default(),
            retries: Family::default(),
            fallbacks: Family::default(),
            rate_limited: Family::default(),
            audit_dropped: Counter::default(),
            audit_dropped_seen: std::sync::atomic::AtomicU64::new(0),
            reloads: Counter::default(),
            reload_failures: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "requests",
            "Requests by endpoint, model alias and status class",
            m.requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from request to the end of the response headers (streams: see stream_duration)",
            m.request_duration.clone(),
        );
        registry.register(
            "upstream_response_headers_seconds",
            "Time from sending to Bedrock to its response headers",
            m.upstream_headers.clone(),
        );
        registry.register(
            "upstream_first_event_seconds",
            "Time from sending to Bedrock to its first event-stream message",
            m.upstream_first_event.clone(),
        );
        registry.register(
            "first_chunk_seconds",
            "Time from receiving a streaming request to having its first chunk ready for the client",
            m.first_chunk.clone(),
        );
        registry.register(
            "stream_duration_seconds",
            "Time from receiving a streaming request to the end of its stream",
            m.stream_duration.clone(),
        );
        registry.register(
            "streams",
            "Finished streams by model and outcome",
            m.streams.clone(),
        );
        registry.register(
            "in_flight_requests",
            "Requests being handled",
            m.in_flight_requests.clone(),
        );
        registry.register(
            "in_flight_streams",
            "Streams being sent",
            m.in_flight_streams.clone(),
        );
        registry.register(
            "tokens",
            "Tokens by model, API key name and kind",
            m.tokens.clone(),
        );
        registry.register(
            "upstream_errors",
            "Bedrock errors by model and error name",
            m.upstream_errors.clone(),
        );
        registry.register(
            "upstream_retries",
            "Bedrock requests sent again",
            m.retries.clone(),
        );
        registry.register(
            "fallbacks",
            "Requests served by a fallback target",
            m.fallbacks.clone(),
        );
        registry.register(
            "rate_limited",
            "Requests refused by a per-key limit",
            m.rate_limited.clone(),
        );
        registry.register(
            "audit_records_dropped",
            "Audit records lost to a full queue",
            m.audit_dropped.clone(),
        );
        registry.register(
            "model_table_reloads",
            "Model table reloads applied",
            m.reloads.clone(),
        );
        registry.register(
            "model_table_reload_failures",
            "Model table reloads rejected (the previous table stays)",
            m.reload_failures.clone(),
        );
        registry.register_collector(Box::new(ProcessCollector));
        Self { registry, ..m }
    }

    /// OpenMetrics text of every metric.
    pub fn encode(&self, out: &mut String) -> fmt::Result {
        prometheus_client::encoding::text::encode(out, &self.registry)
    }

    /// Counts a request in flight until the returned guard drops.
    pub fn request_in_flight(&self) -> GaugeGuard {
        GaugeGuard::new(&self.in_flight_requests)
    }

    /// Counts a stream in flight until the returned guard drops.
    pub fn stream_in_flight(&self) -> GaugeGuard {
        GaugeGuard::new(&self.in_flight_streams)
    }

    /// The handles of `model`'s chat series, resolved into `cell` on first use.
    pub fn series<'c>(&self, cell: &'c OnceLock<ModelSeries>, model: &ModelLabel) -> &'c ModelSeries {
        cell.get_or_init(|| {
            let labels = ModelLabels {
                model: Arc::clone(model),
            };
            let stream = |outcome| {
                self.streams
                    .get_or_create(&StreamLabels {
                        model: Arc::clone(model),
                        outcome,
                    })
                    .clone()
            };
            ModelSeries {
                requests_ok: self
                    .requests
                    .get_or_create(&RequestLabels {
                        endpoint: Endpoint::chat_completions,
                        model: Arc::clone(model),
                        status: StatusClass::ok_2xx,
                    })
                    .clone(),
                chat_duration: self
                    .request_duration
                    .get_or_create(&EndpointLabels {
                        endpoint: Endpoint::chat_completions,
                    })
                    .clone(),
                upstream_headers: self.upstream_headers.get_or_create(&labels).clone(),
                upstream_first_event: self.upstream_first_event.get_or_create(&labels).clone(),
                first_chunk: self.first_chunk.get_or_create(&labels).clone(),
                stream_duration: self.stream_duration.get_or_create(&labels).clone(),
                streams: [
                    stream(Outcome::ok),
                    stream(Outcome::upstream_error),
                    stream(Outcome::timeout),
                    stream(Outcome::client_cancelled),
                ],
                keyless_tokens: Default::default(),
            }
        })
    }

    /// A finished request (streams: when their headers were sent).
    pub fn request(&self, endpoint: Endpoint, model: &ModelLabel, status: StatusCode, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                endpoint,
                model: Arc::clone(model),
                status: StatusClass::of(status),
            })
            .inc();
        self.request_duration
            .get_or_create(&EndpointLabels { endpoint })
            .observe(elapsed.as_secs_f64());
    }

    /// Token usage reported by Bedrock for one reply.
    pub fn tokens(&self, model: &ModelLabel, key: &Arc<str>, usage: &Usage) {
        for (kind, n) in token_counts(usage) {
            if n > 0 {
                self.token_counter(model, key, kind).inc_by(n);
            }
        }
    }

    fn token_counter(&self, model: &ModelLabel, key: &Arc<str>, kind: TokenKind) -> Counter {
        let labels = TokenLabels {
            model: Arc::clone(model),
            key: Arc::clone(key),
            kind,
        };
        self.tokens.get_or_create(&labels).clone()
    }

    /// A Bedrock error, by its (normalised) name.
    pub fn upstream_error(&self, model: &ModelLabel, name: &str) {
        let labels = UpstreamErrorLabels {
            model: Arc::clone(model),
            error: error_label(name),
        };
        self.upstream_errors.get_or_create(&labels).inc();
    }

    /// A retry of a Bedrock request.
    pub fn retry(&self, model: &ModelLabel) {
        self.retries
            .get_or_create(&ModelLabels {
                model: Arc::clone(model),
            })
            .inc();
    }

    /// A request for `model` served by the fallback `target`.
    pub fn fallback(&self, model: &ModelLabel, target: &ModelLabel) {
        self.fallbacks
            .get_or_create(&FallbackLabels {
                model: Arc::clone(model),
                target: Arc::clone(target),
            })
            .inc();
    }

    /// A request refused by the key's `limit` (`requests`, `tokens`, `streams`).
    pub fn rate_limited(&self, key: &str, limit: &'static str) {
        self.rate_limited
            .get_or_create(&KeyLabels {
                key: Arc::from(key),
                limit,
            })
            .inc();
    }

    /// Brings the dropped-audit-records counter up to the audit log's own running total.
    pub fn sync_audit_dropped(&self, total: u64) {
        let seen = self
            .audit_dropped_seen
            .swap(total, std::sync::atomic::Ordering::Relaxed);
        if total > seen {
            self.audit_dropped.inc_by(total - seen);
        }
    }

    /// A model-table reload was applied (`true`) or rejected (`false`).
    pub fn reload(&self, applied: bool) {
        if applied {
            self.reloads.inc()
        } else {
            self.reload_failures.inc()
        };
    }
}

/// Bedrock error names are upstream input: only known names become label values.
fn error_label(name: &str) -> &'static str {
    const KNOWN: [&str; 20] = [
        "ValidationException",
        "AccessDeniedException",
        "ResourceNotFoundException",
        "ThrottlingException",
        "ServiceQuotaExceededException",
        "ModelNotReadyException",
        "ModelTimeoutException",
        "ModelErrorException",
        "ModelStreamErrorException",
        "InternalServerException",
        "ServiceUnavailableException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredTokenException",
        "IncompleteSignature",
        "MissingAuthenticationTokenException",
        "InvalidClientTokenId",
        "RequestExpired",
        "connect",
        "timeout",
    ];
    let mut chars = name.chars();
    let first = chars.next().map(|c| c.to_ascii_uppercase());
    KNOWN
        .iter()
        .find(|k| k.chars().next() == first && k.get(1..) == Some(chars.as_str()))
        .copied()
        .unwrap_or("other")
}

/// Decrements its gauge when dropped, so every exit path (including a client that goes
/// away) is counted.
#[derive(Debug)]
pub struct GaugeGuard {
    gauge: Gauge,
}

impl GaugeGuard {
    fn new(gauge: &Gauge) -> Self {
        gauge.inc();
        Self { gauge: gauge.clone() }
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// Process metrics read from `/proc/self` at scrape time (Linux; nothing elsewhere).
#[derive(Debug)]
struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let Some(process) = ProcessStats::read() else {
            return Ok(());
        };
        let rss = ConstGauge::new(process.rss_bytes);
        rss.encode(encoder.encode_descriptor(
            "process_resident_memory_bytes",
            "Resident set size",
            None,
            rss.metric_type(),
        )?)?;
        let fds = ConstGauge::new(process.open_fds);
        fds.encode(encoder.encode_descriptor(
            "process_open_fds",
            "Open file descriptors",
            None,
            fds.metric_type(),
        )?)?;
        let cpu = ConstCounter::new(process.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "User and system CPU time",
            None,
            cpu.metric_type(),
        )?)?;
        Ok(())
    }
}

/// One reading of the process's resources.
#[derive(Debug, Clone, Copy)]
pub struct ProcessStats {
    /// Resident set size in bytes.
    pub rss_bytes: i64,
    /// Open file descriptors.
    pub open_fds: i64,
    /// User + system CPU seconds.
    pub cpu_seconds: f64,
}

impl ProcessStats {
    /// Reads `/proc/self`; `None` where it does not exist.
    pub fn read() -> Option<Self> {
        Self::read_from("/proc/self")
    }

    /// Reads another process's `/proc/<pid>` (the soak client watching the gateway).
    pub fn of_process(pid: u32) -> Option<Self> {
        Self::read_from(&format!("/proc/{pid}"))
    }

    fn read_from(proc_dir: &str) -> Option<Self> {
        let status = std::fs::read_to_string(format!("{proc_dir}/status")).ok()?;
        let rss_kib: i64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        let open_fds = std::fs::read_dir(format!("{proc_dir}/fd"))
            .map(|d| d.count() as i64)
            .unwrap_or(0);
        let stat = std::fs::read_to_string(format!("{proc_dir}/stat")).ok()?;
        // Fields after the parenthesised command name; utime and stime are the 12th and 13th
        // of them, in USER_HZ ticks, which the kernel fixes at 100 per second for /proc.
        let rest = stat.rsplit_once(')')?.1;
        let mut fields = rest.split_whitespace().skip(11);
        let utime: f64 = fields.next()?.parse().ok()?;
        let stime: f64 = fields.next()?.parse().ok()?;
        Some(Self {
            rss_bytes: rss_kib * 1024,
            open_fds,
            cpu_seconds: (utime + stime) / 100.0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(m: &Metrics) -> String {
        let mut s = String::new();
        m.encode(&mut s).unwrap();
        s
    }

    #[test]
    fn a_process_is_read_by_its_pid_as_by_proc_self() {
        let by_pid = ProcessStats::of_process(std::process::id()).expect("Linux /proc");
        let own = ProcessStats::read().expect("Linux /proc");
        assert!(by_pid.rss_bytes > 1_000_000 && own.rss_bytes > 1_000_000);
        // The same process, read a moment apart.
        assert!((by_pid.rss_bytes - own.rss_bytes).abs() < own.rss_bytes / 2);
        assert!(own.cpu_seconds >= by_pid.cpu_seconds);
        assert!(by_pid.open_fds > 0);
        assert!(ProcessStats::of_process(u32::MAX).is_none());
    }

    #[test]
    fn counters_and_labels_appear_in_the_text() {
        let m = Metrics::new();
        let model: ModelLabel = Arc::from("claude-3-haiku");
        m.request(
            Endpoint::chat_completions,
            &model,
            StatusCode::OK,
            Duration::from_millis(3),
        );
        m.request(
            Endpoint::chat_completions,
            &model,
            StatusCode::OK,
            Duration::from_millis(3),
        );
        m.request(
            Endpoint::chat_completions,
            &Arc::from(""),
            StatusCode::NOT_FOUND,
            Duration::from_millis(1),
        );
        let t = text(&m);
        assert!(
            t.contains(r#"ai_gateway_requests_total{endpoint="chat_completions",model="claude-3-haiku",status="ok_2xx"} 2"#),
            "{t}"
        );
        assert!(t.contains(
            r#"ai_gateway_requests_total{endpoint="chat_completions",model="",status="client_4xx"} 1"#
        ));
        assert!(t.contains(r#"ai_gateway_request_duration_seconds_count{endpoint="chat_completions"} 3"#));
    }

    #[test]
    fn tokens_by_kind_skip_zero_counts() {
        let m = Metrics::new();
        let usage = Usage {
            input_tokens: 10,
            output_tokens: 5,
            cache_read_tokens: 100,
            cache_write_tokens: 0,
        };
        m.tokens(&Arc::from("m"), &Arc::from("team-a"), &usage);
        let t = text(&m);
        assert!(
            t.contains(r#"ai_gateway_tokens_total{model="m",key="team-a",kind="input"} 10"#),
            "{t}"
        );
        assert!(t.contains(r#"ai_gateway_tokens_total{model="m",key="team-a",kind="cache_read"} 100"#));
        assert!(!t.contains(r#"kind="cache_write""#));
    }

    #[test]
    fn a_models_series_counts_keyless_and_keyed_tokens_into_the_family() {
        let m = Metrics::new();
        let model: ModelLabel = Arc::from("m");
        let cell = OnceLock::new();
        let series = m.series(&cell, &model);
        let usage = Usage {
            input_tokens: 10,
            output_tokens: 5,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
        };
        series.tokens(&m, &model, &Arc::from(""), &usage);
        series.tokens(&m, &model, &Arc::from(""), &usage);
        series.tokens(&m, &model, &Arc::from("team-a"), &usage);
        let t = text(&m);
        for expected in [
            r#"ai_gateway_tokens_total{model="m",key="",kind="input"} 20"#,
            r#"ai_gateway_tokens_total{model="m",key="",kind="output"} 10"#,
            r#"ai_gateway_tokens_total{model="m",key="team-a",kind="input"} 10"#,
        ] {
            assert!(t.contains(expected), "{expected} in {t}");
        }
        assert!(!t.contains(r#"kind="cache_read""#), "{t}");
    }

    #[test]
    fn unknown_error_names_collapse_into_other() {
        let m = Metrics::new();
        m.upstream_error(&Arc::from("m"), "throttlingException");
        m.upstream_error(&Arc::from("m"), "x-evil-label\"}");
        let t = text(&m);
        assert!(
            t.contains(r#"ai_gateway_upstream_errors_total{model="m",error="ThrottlingException"} 1"#),
            "{t}"
        );
        assert!(t.contains(r#"ai_gateway_upstream_errors_total{model="m",error="other"} 1"#));
    }

    #[test]
    fn gauge_guards_return_to_zero() {
        let m = Metrics::new();
        let a = m.request_in_flight();
        let b = m.stream_in_flight();
        assert!(text(&m).contains("ai_gateway_in_flight_requests 1"));
        drop((a, b));
        let t = text(&m);
        assert!(
            t.contains("ai_gateway_in_flight_requests 0") && t.contains("ai_gateway_in_flight_streams 0")
        );
    }

    #[test]
    fn process_metrics_are_read_from_proc() {
        let t = text(&Metrics::new());
        if std::path::Path::new("/proc/self/status").exists() {
            assert!(t.contains("ai_gateway_process_resident_memory_bytes"), "{t}");
            assert!(t.contains("ai_gateway_process_open_fds"));
            assert!(t.contains("ai_gateway_process_cpu_seconds_total"));
        }
    }
}
