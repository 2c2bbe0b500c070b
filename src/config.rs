//! Gateway configuration: one YAML file (`configs/gateway.yaml` documents every key), with the
//! per-deployment values overridable on the command line and in `AI_GATEWAY_*` variables.
//!
//! Loading is two passes, as in pingora: serde fills a `#[serde(default)]` struct that rejects
//! unknown keys, then [`Config::validate`] collects every problem, each naming its key, so an
//! operator fixes a broken file in one go.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::translate::request::TemperaturePolicy;

/// The whole gateway configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the OpenAI-compatible API listens on.
    pub listen: SocketAddr,
    /// A second address serving only `/metrics`, `/health` and `/ready` (for scrapers and
    /// probes on a private port). When set, `/metrics` is not served on `listen`.
    pub admin_listen: Option<SocketAddr>,
    /// Path of the model table (YAML). Relative paths are resolved against the config file.
    pub models: PathBuf,
    /// How often the model table file is checked for changes, in milliseconds (0: only on
    /// SIGHUP). A changed file is loaded once it has stopped changing; an invalid one is
    /// logged and counted, and the table in force stays.
    pub models_watch_ms: u64,
    /// Where and how to reach Bedrock.
    pub bedrock: BedrockConfig,
    /// Size limits.
    pub limits: Limits,
    /// Deadlines, in milliseconds.
    pub timeouts: Timeouts,
    /// Choices the request translator makes where OpenAI and Bedrock differ.
    pub translate: TranslateConfig,
    /// Log output.
    pub log: LogConfig,
    /// Client authentication: API keys, TOTP sessions, per-key limits.
    pub auth: AuthConfig,
    /// Server TLS and client certificates.
    pub tls: TlsConfig,
    /// The audit log.
    pub audit: AuditConfig,
    /// Native Bedrock endpoints relayed to Bedrock (boto3 / AWS SDK clients).
    pub passthrough: crate::service::passthrough::PassthroughConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            models: PathBuf::from("model-mapping.yaml"),
            models_watch_ms: 2_000,
            admin_listen: None,
            bedrock: BedrockConfig::default(),
            limits: Limits::default(),
            timeouts: Timeouts::default(),
            translate: TranslateConfig::default(),
            log: LogConfig::default(),
            auth: AuthConfig::default(),
            tls: TlsConfig::default(),
            audit: AuditConfig::default(),
            passthrough: crate::service::passthrough::PassthroughConfig::default(),
        }
    }
}

/// Bedrock endpoint and authentication.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BedrockConfig {
    /// Default region for routes that do not name one (`us-east-1`).
    pub region: String,
    /// Endpoint override used verbatim for every route (VPC endpoint, proxy, the mock):
    /// `http://127.0.0.1:9000` or `https://vpce-….bedrock-runtime.us-east-1.vpce.amazonaws.com`.
    /// Without it, `https://bedrock-runtime.{region}.amazonaws.com`.
    pub endpoint: Option<String>,
    /// File holding a Bedrock API key. When set (or when `AWS_BEARER_TOKEN_BEDROCK` is set in
    /// the environment), requests carry `Authorization: Bearer <key>` instead of SigV4.
    pub api_key_file: Option<PathBuf>,
    /// Idle pooled connections kept per upstream host.
    pub pool_max_idle_per_host: usize,
    /// How long an idle pooled connection is kept, in milliseconds.
    pub pool_idle_timeout_ms: u64,
    /// HTTP/2 to Bedrock instead of HTTP/1.1: ALPN `h2` over TLS (a host that picks
    /// `http/1.1` is reached over HTTP/1.1), prior knowledge on an `http://` endpoint. Off by
    /// default: see `upstream::http2`.
    pub http2: bool,
    /// Requests carried at once by one HTTP/2 connection (fewer if the server's
    /// SETTINGS_MAX_CONCURRENT_STREAMS is lower); another connection is opened when every one
    /// is full, so no request waits for a stream.
    pub http2_max_streams: usize,
    /// PEM file of further certificate authorities trusted for Bedrock's TLS, besides the
    /// built-in web roots (a TLS-inspecting proxy, a private endpoint).
    pub ca_file: Option<PathBuf>,
    /// Retries of requests that failed before Bedrock produced anything.
    pub retries: crate::upstream::retry::RetryPolicy,
}

impl Default for BedrockConfig {
    fn default() -> Self {
        Self {
            region: "us-east-1".to_owned(),
            endpoint: None,
            api_key_file: None,
            pool_max_idle_per_host: 256,
            pool_idle_timeout_ms: 90_000,
            http2: false,
            http2_max_streams: 100,
            ca_file: None,
            retries: crate::upstream::retry::RetryPolicy::default(),
        }
    }
}

/// Size limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest request body accepted, in bytes (413 above it). Images travel inline as base64,
    /// so the default leaves room for several.
    pub max_body_bytes: u64,
    /// Largest non-streaming Bedrock response read, in bytes.
    pub max_upstream_body_bytes: u64,
    /// Largest single event-stream message accepted from Bedrock, in bytes.
    pub max_event_bytes: u32,
    /// Largest request head (request line and headers) a client may send, in bytes; HTTP/1.1
    /// answers 431 above it, HTTP/2 refuses the stream. At least 8192.
    pub max_header_bytes: u32,
    /// Client connections served at once; further clients wait in the listen backlog.
    pub max_connections: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 20 * 1024 * 1024,
            max_upstream_body_bytes: 32 * 1024 * 1024,
            max_event_bytes: crate::bedrock::eventstream::DEFAULT_MAX_MESSAGE_BYTES,
            max_header_bytes: 64 * 1024,
            max_connections: 4096,
        }
    }
}

/// Deadlines, each a distinct error when it expires.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Timeouts {
    /// TCP + TLS connect to Bedrock.
    pub connect_ms: u64,
    /// From sending the request to Bedrock's response headers. Converse (non-streaming) only
    /// answers once the whole reply is generated, so this must cover the longest generation.
    pub response_headers_ms: u64,
    /// Longest silence between two pieces of a streaming body (and before the first event).
    pub idle_ms: u64,
    /// Time a client gets to send its request headers (and to finish a TLS handshake).
    pub client_header_read_ms: u64,
    /// A client connection with no request in flight for this long is closed.
    pub client_idle_ms: u64,
    /// On shutdown, how long in-flight requests may take to finish.
    pub shutdown_drain_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect_ms: 3_000,
            response_headers_ms: 300_000,
            idle_ms: 60_000,
            client_header_read_ms: 30_000,
            client_idle_ms: 120_000,
            shutdown_drain_ms: 30_000,
        }
    }
}

impl Timeouts {
    /// Connect deadline.
    pub fn connect(&self) -> Duration {
        Duration::from_millis(self.connect_ms)
    }
    /// Response-headers deadline.
    pub fn response_headers(&self) -> Duration {
        Duration::from_millis(self.response_headers_ms)
    }
    /// Idle deadline between stream frames.
    pub fn idle(&self) -> Duration {
        Duration::from_millis(self.idle_ms)
    }
}

/// Translator choices.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TranslateConfig {
    /// OpenAI accepts `temperature` up to 2, Bedrock up to 1. `reject` (default) answers 400
    /// above 1; `clamp` sends 1.0. Values are never rescaled.
    pub temperature: TemperaturePolicy,
    /// `maxTokens` sent when the client gives neither `max_tokens` nor
    /// `max_completion_tokens`; unset lets Bedrock use the model's maximum.
    pub default_max_tokens: Option<u32>,
    /// Fetching of `http(s)` image URLs (off by default).
    pub image_fetch: crate::upstream::fetch::ImageFetchConfig,
}

/// Log output.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A tracing filter (`info`, `ai_gateway=debug`); `RUST_LOG` overrides it.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Client authentication.
///
/// Authentication is required when `enabled` is true, or when it is unset and `keys_file` is
/// set. With it off the gateway is a loopback sidecar: [`Config::validate`] refuses a
/// non-loopback `listen` address unless `allow_unauthenticated_non_loopback` is set, which only
/// the command-line flag of that name can do.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// `true`: keys required; `false`: off; unset: required when `keys_file` is set.
    pub enabled: Option<bool>,
    /// The keys file `ai-gateway keys` manages: key hashes, allow-lists, limits, TOTP seeds.
    pub keys_file: Option<PathBuf>,
    /// How often the keys file is checked for changes, in milliseconds.
    pub reload_interval_ms: u64,
    /// Lifetime of a session token from `POST /v1/auth/session`, in seconds.
    pub session_ttl_secs: u64,
    /// Consecutive wrong TOTP codes after which a key is locked out.
    pub totp_max_failures: u32,
    /// How long a locked-out key may not open sessions, in seconds.
    pub totp_lockout_secs: u64,
    /// Issuer shown by authenticator apps for enrolled keys.
    pub totp_issuer: String,
    /// Set by `--allow-unauthenticated-non-loopback` only; never read from a file.
    #[serde(skip)]
    pub allow_unauthenticated_non_loopback: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            enabled: None,
            keys_file: None,
            reload_interval_ms: 2_000,
            session_ttl_secs: 12 * 3600,
            totp_max_failures: 5,
            totp_lockout_secs: 300,
            totp_issuer: "ai-gateway".to_owned(),
            allow_unauthenticated_non_loopback: false,
        }
    }
}

impl AuthConfig {
    /// Whether clients must present a key.
    pub fn required(&self) -> bool {
        self.enabled.unwrap_or(self.keys_file.is_some())
    }
}

/// Server TLS: on when both `cert_file` and `key_file` are set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// PEM CA bundle; when set, clients must present a certificate it signed (mTLS).
    pub client_ca_file: Option<PathBuf>,
}

impl TlsConfig {
    /// Whether the listener speaks TLS.
    pub fn enabled(&self) -> bool {
        self.cert_file.is_some() && self.key_file.is_some()
    }
}

/// The audit log: one hash-chained JSON line per request and per authentication event.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// A file path (appended to, reopened on SIGHUP), `stdout`, or unset for no audit log.
    pub output: Option<PathBuf>,
    /// Records queued for the writer; when the queue is full records are dropped and counted,
    /// never waited for.
    pub queue_capacity: usize,
    /// A file holding a secret of at least 32 bytes: each line's `hash` is then its
    /// HMAC-SHA256 under that key, so the chain cannot be rebuilt by someone who can edit the
    /// log but not read the key. Unset: plain SHA-256.
    pub key_file: Option<PathBuf>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            output: None,
            queue_capacity: 4096,
            key_file: None,
        }
    }
}

/// Every problem found in a configuration, each naming its key.
#[derive(Debug, Default)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "  - {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Values from the command line or environment that override the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen` / `AI_GATEWAY_LISTEN`.
    pub listen: Option<SocketAddr>,
    /// `--bedrock-endpoint` / `AI_GATEWAY_BEDROCK_ENDPOINT`.
    pub bedrock_endpoint: Option<String>,
    /// `--region` / `AI_GATEWAY_REGION`.
    pub region: Option<String>,
    /// `--models` / `AI_GATEWAY_MODELS`.
    pub models: Option<PathBuf>,
}

impl Config {
    /// Reads and parses a YAML file; relative paths inside it are resolved against its folder.
    pub fn from_file(path: &Path) -> Result<Self, ConfigErrors> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigErrors(vec![format!("{}: cannot read: {e}", path.display())]))?;
        let mut config =
            Self::from_yaml(&text).map_err(|e| ConfigErrors(vec![format!("{}: {e}", path.display())]))?;
        if let Some(dir) = path.parent() {
            config.resolve_paths(dir);
        }
        Ok(config)
    }

    /// Parses YAML text (an empty document is all defaults).
    pub fn from_yaml(text: &str) -> Result<Self, serde_yaml::Error> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_yaml::from_str(text)
    }

    fn resolve_paths(&mut self, dir: &Path) {
        if self.models.is_relative() {
            self.models = dir.join(&self.models);
        }
        if let Some(file) = &self.bedrock.api_key_file
            && file.is_relative()
        {
            self.bedrock.api_key_file = Some(dir.join(file));
        }
        for file in [
            &mut self.auth.keys_file,
            &mut self.tls.cert_file,
            &mut self.tls.key_file,
            &mut self.tls.client_ca_file,
            &mut self.audit.key_file,
            &mut self.bedrock.ca_file,
        ]
        .into_iter()
        .flatten()
        {
            if file.is_relative() {
                *file = dir.join(&*file);
            }
        }
        if let Some(file) = &mut self.audit.output
            && file.is_relative()
            && file.as_os_str() != "stdout"
        {
            *file = dir.join(&*file);
        }
    }

    /// Applies command-line and environment overrides.
    pub fn apply(&mut self, overrides: Overrides) {
        if let Some(listen) = overrides.listen {
            self.listen = listen;
        }
        if let Some(endpoint) = overrides.bedrock_endpoint {
            self.bedrock.endpoint = Some(endpoint);
        }
        if let Some(region) = overrides.region {
            self.bedrock.region = region;
        }
        if let Some(models) = overrides.models {
            self.models = models;
        }
    }

    /// Checks every value, returning all problems at once.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let mut problems = Vec::new();
        if !is_region(&self.bedrock.region) {
            problems.push(format!(
                "bedrock.region: `{}` is not an AWS region name",
                self.bedrock.region
            ));
        }
        if let Some(endpoint) = &self.bedrock.endpoint
            && let Err(e) = parse_endpoint(endpoint)
        {
            problems.push(format!("bedrock.endpoint: {e}"));
        }
        if self.bedrock.pool_max_idle_per_host == 0 {
            problems.push("bedrock.pool_max_idle_per_host: must be at least 1".to_owned());
        }
        if !(1..=10_000).contains(&self.bedrock.http2_max_streams) {
            problems.push("bedrock.http2_max_streams: must be between 1 and 10000".to_owned());
        }
        if self.limits.max_body_bytes < 1024 {
            problems.push("limits.max_body_bytes: must be at least 1024".to_owned());
        }
        if self.limits.max_upstream_body_bytes < 1024 {
            problems.push("limits.max_upstream_body_bytes: must be at least 1024".to_owned());
        }
        if self.limits.max_event_bytes < 1024 {
            problems.push("limits.max_event_bytes: must be at least 1024".to_owned());
        }
        for (key, value) in [
            ("timeouts.connect_ms", self.timeouts.connect_ms),
            ("timeouts.response_headers_ms", self.timeouts.response_headers_ms),
            ("timeouts.idle_ms", self.timeouts.idle_ms),
            (
                "timeouts.client_header_read_ms",
                self.timeouts.client_header_read_ms,
            ),
        ] {
            if value == 0 {
                problems.push(format!("{key}: must be greater than 0"));
            }
        }
        if self.translate.default_max_tokens == Some(0) {
            problems.push("translate.default_max_tokens: must be at least 1".to_owned());
        }
        problems.extend(self.translate.image_fetch.problems());
        self.validate_security(&mut problems);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(problems))
        }
    }
}

impl Config {
    fn validate_security(&self, problems: &mut Vec<String>) {
        if self.limits.max_header_bytes < 8192 {
            problems.push("limits.max_header_bytes: must be at least 8192".to_owned());
        }
        if self.limits.max_connections == 0 {
            problems.push("limits.max_connections: must be at least 1".to_owned());
        }
        if self.timeouts.client_idle_ms == 0 {
            problems.push("timeouts.client_idle_ms: must be greater than 0".to_owned());
        }
        let auth = &self.auth;
        if auth.enabled == Some(true) && auth.keys_file.is_none() {
            problems.push(
                "auth.enabled: true needs auth.keys_file (create it with `ai-gateway keys add`)".to_owned(),
            );
        }
        if !auth.required() && !self.listen.ip().is_loopback() && !auth.allow_unauthenticated_non_loopback {
            problems.push(format!(
                "auth: authentication is off but listen address {} is not loopback; set auth.keys_file \
                 (create keys with `ai-gateway keys add`) or start with --allow-unauthenticated-non-loopback",
                self.listen
            ));
        }
        if auth.reload_interval_ms < 100 {
            problems.push("auth.reload_interval_ms: must be at least 100".to_owned());
        }
        if auth.session_ttl_secs < 60 {
            problems.push("auth.session_ttl_secs: must be at least 60".to_owned());
        }
        if auth.totp_max_failures == 0 {
            problems.push("auth.totp_max_failures: must be at least 1".to_owned());
        }
        if auth.totp_issuer.is_empty() || auth.totp_issuer.contains(':') {
            problems.push("auth.totp_issuer: must be non-empty and contain no `:`".to_owned());
        }
        let tls = &self.tls;
        if tls.cert_file.is_some() != tls.key_file.is_some() {
            problems.push("tls: cert_file and key_file must be set together".to_owned());
        }
        if tls.client_ca_file.is_some() && !tls.enabled() {
            problems.push("tls.client_ca_file: needs tls.cert_file and tls.key_file".to_owned());
        }
        if self.audit.queue_capacity == 0 {
            problems.push("audit.queue_capacity: must be at least 1".to_owned());
        }
    }
}

/// A region name such as `us-east-1`, `eu-central-2`, `us-gov-west-1`.
pub fn is_region(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.contains('-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Parses an endpoint override: an absolute `http` or `https` URL with a host and no query.
pub fn parse_endpoint(s: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = s.parse().map_err(|e| format!("`{s}` is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(format!("`{s}` must start with http:// or https://")),
    }
    if uri.host().is_none() {
        return Err(format!("`{s}` has no host"));
    }
    if uri.query().is_some() {
        return Err(format!("`{s}` must not have a query string"));
    }
    Ok(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_all_defaults() {
        let c = Config::from_yaml("").unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.bedrock.region, "us-east-1");
        c.validate().unwrap();
    }

    #[test]
    fn unknown_key_is_rejected_with_its_name() {
        let err = Config::from_yaml("bedrock:\n  regoin: us-west-2\n").unwrap_err();
        assert!(err.to_string().contains("regoin"), "{err}");
    }

    #[test]
    fn validate_reports_every_problem_with_its_key() {
        let c = Config::from_yaml(
            "bedrock:\n  region: Not_A_Region\n  endpoint: ftp://x\ntimeouts:\n  idle_ms: 0\nlimits:\n  max_body_bytes: 10\n",
        )
        .unwrap();
        let errs = c.validate().unwrap_err();
        let text = errs.to_string();
        for key in [
            "bedrock.region",
            "bedrock.endpoint",
            "timeouts.idle_ms",
            "limits.max_body_bytes",
        ] {
            assert!(text.contains(key), "missing {key} in:\n{text}");
        }
        assert_eq!(errs.0.len(), 4);
    }

    #[test]
    fn overrides_win_over_the_file() {
        let mut c = Config::from_yaml("listen: 0.0.0.0:9999\nbedrock:\n  region: eu-west-1\n").unwrap();
        c.apply(Overrides {
            listen: Some("127.0.0.1:1234".parse().unwrap()),
            bedrock_endpoint: Some("http://127.0.0.1:9000".into()),
            region: Some("us-west-2".into()),
            models: Some("m.yaml".into()),
        });
        assert_eq!(c.listen.port(), 1234);
        assert_eq!(c.bedrock.region, "us-west-2");
        assert_eq!(c.bedrock.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(c.models, PathBuf::from("m.yaml"));
    }

    #[test]
    fn auth_is_required_exactly_when_asked_or_a_keys_file_is_set() {
        let c = Config::from_yaml("").unwrap();
        assert!(!c.auth.required());
        let c = Config::from_yaml("auth:\n  keys_file: keys.yaml\n").unwrap();
        assert!(c.auth.required());
        let c = Config::from_yaml("auth:\n  keys_file: keys.yaml\n  enabled: false\n").unwrap();
        assert!(!c.auth.required());
    }

    #[test]
    fn auth_off_on_a_public_address_is_refused_unless_forced() {
        let mut c = Config::from_yaml("listen: 0.0.0.0:8080\n").unwrap();
        let text = c.validate().unwrap_err().to_string();
        assert!(text.contains("--allow-unauthenticated-non-loopback"), "{text}");
        c.auth.allow_unauthenticated_non_loopback = true;
        c.validate().unwrap();
        let c = Config::from_yaml("listen: 0.0.0.0:8080\nauth:\n  keys_file: k.yaml\n").unwrap();
        c.validate().unwrap();
        let c = Config::from_yaml("listen: '[::1]:8080'\n").unwrap();
        c.validate().unwrap();
    }

    #[test]
    fn the_forcing_flag_cannot_come_from_a_file() {
        let err = Config::from_yaml("auth:\n  allow_unauthenticated_non_loopback: true\n").unwrap_err();
        assert!(
            err.to_string().contains("allow_unauthenticated_non_loopback"),
            "{err}"
        );
    }

    #[test]
    fn security_sections_report_every_problem() {
        let c = Config::from_yaml(
            "auth:\n  enabled: true\n  session_ttl_secs: 1\n  totp_max_failures: 0\ntls:\n  cert_file: c.pem\n  client_ca_file: ca.pem\nlimits:\n  max_header_bytes: 100\n  max_connections: 0\n",
        )
        .unwrap();
        let text = c.validate().unwrap_err().to_string();
        for key in [
            "auth.enabled",
            "auth.session_ttl_secs",
            "auth.totp_max_failures",
            "tls: cert_file",
            "tls.client_ca_file",
            "limits.max_header_bytes",
            "limits.max_connections",
        ] {
            assert!(text.contains(key), "missing {key} in:\n{text}");
        }
    }

    #[test]
    fn security_paths_resolve_against_the_config_folder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.yaml");
        std::fs::write(
            &path,
            "auth:\n  keys_file: keys.yaml\ntls:\n  cert_file: /abs/c.pem\n  key_file: k.pem\naudit:\n  output: stdout\n",
        )
        .unwrap();
        let c = Config::from_file(&path).unwrap();
        assert_eq!(c.auth.keys_file, Some(dir.path().join("keys.yaml")));
        assert_eq!(c.tls.cert_file, Some(PathBuf::from("/abs/c.pem")));
        assert_eq!(c.tls.key_file, Some(dir.path().join("k.pem")));
        assert_eq!(c.audit.output, Some(PathBuf::from("stdout")));
    }

    #[test]
    fn regions() {
        assert!(is_region("us-east-1"));
        assert!(is_region("us-gov-west-1"));
        assert!(!is_region("useast1"));
        assert!(!is_region("US-EAST-1"));
    }
}
