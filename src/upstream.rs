//! The pooled client to Bedrock over rustls, shared by every request: the keep-alive
//! HTTP/1.1 pool of [`http1`], or with `bedrock.http2` the HTTP/2 pool of [`http2`] (and
//! HTTP/1.1 for a TLS host that does not agree to `h2`).
//!
//! `send` signs the exact body bytes, sends them on a pooled keep-alive connection and waits
//! for the response headers under their own deadline. Non-2xx answers are read (bounded) and
//! turned into [`Error::Upstream`] with Bedrock's error name and message, so callers only ever
//! see a successful response or an edge error.

pub mod breaker;
pub mod fetch;
pub mod http1;
pub mod http2;
pub mod retry;
pub mod sigv4;

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, header};
use http_body::Body;
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use tower_service::Service;

use crate::config::Config;
use crate::error::{Error, TimeoutKind, bedrock_error_name};
use crate::routing::Route;
use retry::RetryPolicy;
use sigv4::UpstreamAuth;

/// Largest Bedrock error body read to extract its message.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// Largest single read from an upstream connection: hyper's smallest, its initial size. With
/// 16 KiB a stalled client made the gateway hold 264 KiB for its stream, with 8 KiB 200 KiB
/// (loadtest/: stalled clients).
const UPSTREAM_MAX_READ_BYTES: usize = 8 * 1024;

/// Which Bedrock operation to call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `Converse`: one JSON reply.
    Converse,
    /// `ConverseStream`: an event stream.
    ConverseStream,
}

/// The shared Bedrock client.
pub struct Upstream {
    /// Keep-alive connections, one per request in flight: every request unless `http2`.
    http1: http1::Pool,
    /// With `bedrock.http2`: streams on as many HTTP/2 connections as the requests in flight
    /// need; hosts that do not agree to HTTP/2 over TLS go through `http1`.
    http2: Option<http2::Pool>,
    auth: UpstreamAuth,
    response_headers: Duration,
    idle: Duration,
    retries: RetryPolicy,
    metrics: Option<std::sync::Arc<crate::metrics::Metrics>>,
}

/// A Bedrock response body, read from an HTTP/1.1 connection or an HTTP/2 stream, holding
/// its connection or stream in the pool until it ends. Errors of either are boxed.
pub type UpstreamBody = Either<http1::H1Body, http2::H2Body>;

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// Builds the client from the configuration; `auth` decides SigV4 or bearer.
    pub fn new(config: &Config, auth: UpstreamAuth) -> Result<Self, String> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(config.timeouts.connect()));
        http.set_keepalive(Some(Duration::from_secs(60)));
        let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS client configuration: {e}"))?
        .with_root_certificates(root_certificates(config.bedrock.ca_file.as_deref())?)
        .with_no_client_auth();
        let https = || {
            hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(tls.clone())
                .https_or_http()
        };
        let idle_timeout = Duration::from_millis(config.bedrock.pool_idle_timeout_ms);
        let http1 = http1::Pool::new(
            https().enable_http1().wrap_connector(http.clone()),
            // One read from Bedrock is at most this much, so a stream whose client has
            // stopped reading holds one read, its translation and the queued output, not
            // hyper's read buffer grown to 400 KiB on top.
            UPSTREAM_MAX_READ_BYTES,
            config.bedrock.pool_max_idle_per_host,
            idle_timeout,
        );
        // ALPN offers `h2` and `http/1.1`: a host that picks HTTP/1.1 (or no protocol) is
        // reached through the HTTP/1.1 pool from then on.
        let http2 = config.bedrock.http2.then(|| {
            http2::Pool::new(
                https().enable_all_versions().wrap_connector(http),
                config.bedrock.http2_max_streams,
                idle_timeout,
            )
        });
        Ok(Self {
            http1,
            http2,
            auth,
            response_headers: config.timeouts.response_headers(),
            idle: config.timeouts.idle(),
            retries: config.bedrock.retries.clone(),
            metrics: None,
        })
    }

    /// Counts retries in `metrics` from now on.
    pub fn attach_metrics(&mut self, metrics: std::sync::Arc<crate::metrics::Metrics>) {
        self.metrics = Some(metrics);
    }

    /// The authentication in use (for `/ready`).
    pub fn auth(&self) -> &UpstreamAuth {
        &self.auth
    }

    /// Signs and sends a Converse or ConverseStream request, returning a 2xx response or the
    /// mapped error. Failures before Bedrock produced anything are retried per
    /// `bedrock.retries` (see [`retry`]); each attempt is signed afresh.
    pub async fn send(
        &self,
        route: &Route,
        operation: Operation,
        body: Bytes,
    ) -> Result<Response<UpstreamBody>, Error> {
        let started = std::time::Instant::now();
        let mut attempt = 0;
        loop {
            let error = match self.send_once(route, operation, body.clone()).await {
                Ok(response) => return Ok(response),
                Err(error) => error,
            };
            let Some(wait) = self
                .retries
                .next_wait(attempt, &error, started.elapsed(), fastrand::f64())
            else {
                return Err(error);
            };
            tracing::debug!(attempt, wait_ms = wait.as_millis() as u64, error = %error, "retrying Bedrock request");
            if let Some(metrics) = &self.metrics {
                metrics.upstream_error(&route.label, error.upstream_name());
                metrics.retry(&route.label);
            }
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    async fn send_once(
        &self,
        route: &Route,
        operation: Operation,
        body: Bytes,
    ) -> Result<Response<UpstreamBody>, Error> {
        let uri = match operation {
            Operation::Converse => route.converse_uri.clone(),
            Operation::ConverseStream => route.converse_stream_uri.clone(),
        };
        let response = self
            .send_request(uri, &route.host, &route.region, &[], body)
            .await?;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(self.read_error(response).await)
        }
    }

    /// Signs and sends one `POST` with a JSON (or model-native) body and returns Bedrock's
    /// response whatever its status, once its headers arrived. `host` is `uri`'s
    /// [`host_header`], computed where the URI was built. `forward` headers are sent as given
    /// and left out of the signature, like every header the gateway does not set itself.
    pub async fn send_request(
        &self,
        uri: http::Uri,
        host: &HeaderValue,
        region: &str,
        forward: &[(http::HeaderName, HeaderValue)],
        body: Bytes,
    ) -> Result<Response<UpstreamBody>, Error> {
        let mut request = Request::new(Full::new(body.clone()));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = uri;
        let headers = request.headers_mut();
        headers.insert(header::HOST, host.clone());
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in forward {
            headers.insert(name.clone(), value.clone());
        }
        self.auth
            .authorize(&mut request, &body, region)
            .await
            .map_err(|e| Error::Sign(e.to_string().into()))?;
        let sent = async {
            match &self.http2 {
                None => Ok(self.http1.send(request).await?.map(Either::Left)),
                // Boxed: the HTTP/2 path's state would otherwise widen this future, and every
                // future that awaits it, by a kilobyte that each request copies level by
                // level.
                Some(pool) => Box::pin(self.send_http2(pool, request, body)).await,
            }
        };
        match tokio::time::timeout(self.response_headers, sent).await {
            Ok(result) => result,
            Err(_) => Err(Error::UpstreamTimeout(TimeoutKind::ResponseHeaders)),
        }
    }

    /// Sends over the HTTP/2 pool, or over HTTP/1.1 when the host turns out not to speak it.
    async fn send_http2(
        &self,
        pool: &http2::Pool,
        request: Request<Full<Bytes>>,
        body: Bytes,
    ) -> Result<Response<UpstreamBody>, Error> {
        let (mut parts, full) = request.into_parts();
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        match pool.send(Request::from_parts(parts, ()), body).await? {
            http2::Sent::Response(response) => Ok(response.map(Either::Right)),
            http2::Sent::Http1Only(request) => {
                let (parts, ()) = request.into_parts();
                let response = self.http1.send(Request::from_parts(parts, full)).await?;
                Ok(response.map(Either::Left))
            }
        }
    }

    /// The idle deadline between two pieces of a streamed body.
    pub fn idle_timeout(&self) -> Duration {
        self.idle
    }

    /// Reads a complete (non-streaming) success body, bounded in size and by the idle deadline,
    /// into one buffer sized from `content-length`: the translator parses it in place.
    pub async fn read_body(&self, response: Response<UpstreamBody>, limit: usize) -> Result<Vec<u8>, Error> {
        let too_large = || {
            Error::UpstreamProtocol(
                "the Bedrock response is larger than limits.max_upstream_body_bytes".into(),
            )
        };
        let mut body = response.into_body();
        let declared = body.size_hint().exact().and_then(|n| usize::try_from(n).ok());
        if declared.is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        // Room for the padding a JSON parse adds in place (`json::parse_in_place`).
        let mut buf = Vec::with_capacity(
            declared
                .unwrap_or(8 * 1024)
                .min(limit)
                .saturating_add(crate::json::INPUT_PADDING),
        );
        let read = async {
            while let Some(frame) = body.frame().await {
                let frame =
                    frame.map_err(|e| Error::UpstreamConnect(format!("reading the response: {e}").into()))?;
                if let Ok(data) = frame.into_data() {
                    if buf.len() + data.len() > limit {
                        return Err(too_large());
                    }
                    buf.extend_from_slice(&data);
                }
            }
            Ok(())
        };
        match tokio::time::timeout(self.idle, read).await {
            Ok(Ok(())) => Ok(buf),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::UpstreamTimeout(TimeoutKind::Idle)),
        }
    }

    /// Reads a non-2xx Bedrock response into the mapped [`Error`] (name, message, Retry-After).
    pub async fn read_error(&self, response: Response<UpstreamBody>) -> Error {
        let status = response.status();
        let retry_after = response.headers().get(header::RETRY_AFTER).cloned();
        let header_name = response
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(|v| bedrock_error_name(v).to_owned());
        let body = match tokio::time::timeout(
            self.idle,
            Limited::new(response.into_body(), MAX_ERROR_BODY_BYTES).collect(),
        )
        .await
        {
            Ok(Ok(collected)) => collected.to_bytes(),
            _ => Bytes::new(),
        };
        let parsed = parse_error_body(&body);
        let name = header_name.or(parsed.name).unwrap_or_default();
        let message = parsed
            .message
            .unwrap_or_else(|| format!("Bedrock answered HTTP {}", status.as_u16()));
        Error::upstream(&name, status.as_u16(), &message, retry_after)
    }
}

/// The `Host` header for requests to `uri`: its authority without a default port, as hyper
/// would write it and SigV4 signs it. Set by the gateway so that neither has to format it
/// per request.
pub fn host_header(uri: &http::Uri) -> Option<HeaderValue> {
    let authority = uri.authority()?;
    let host = match (uri.scheme_str(), authority.port_u16()) {
        (Some("http"), Some(80)) | (Some("https"), Some(443)) => authority.host(),
        _ => authority.as_str(),
    };
    HeaderValue::from_str(host).ok()
}

#[derive(Default)]
struct ErrorBody {
    name: Option<String>,
    message: Option<String>,
}

/// Reads `message`/`Message` and `code`/`Code`/`__type` from a Bedrock error body; tolerates
/// anything (an HTML page from a load balancer gives neither).
fn parse_error_body(body: &[u8]) -> ErrorBody {
    #[derive(serde::Deserialize)]
    struct Raw {
        message: Option<String>,
        #[serde(rename = "Message")]
        message_upper: Option<String>,
        code: Option<String>,
        #[serde(rename = "Code")]
        code_upper: Option<String>,
        #[serde(rename = "__type")]
        type_: Option<String>,
    }
    if body.is_empty() {
        return ErrorBody::default();
    }
    let mut scratch = body.to_vec();
    match simd_json::serde::from_slice::<Raw>(&mut scratch) {
        Ok(raw) => ErrorBody {
            name: raw
                .code
                .or(raw.code_upper)
                .or(raw.type_)
                .map(|n| bedrock_error_name(&n).to_owned()),
            message: raw.message.or(raw.message_upper),
        },
        Err(_) => ErrorBody::default(),
    }
}

/// The trusted roots for Bedrock's TLS: the web roots, and `ca_file`'s certificates.
fn root_certificates(ca_file: Option<&std::path::Path>) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(file) = ca_file {
        for cert in crate::server::tls::read_certs(file, "bedrock.ca_file")? {
            roots
                .add(cert)
                .map_err(|e| format!("bedrock.ca_file {}: {e}", file.display()))?;
        }
    }
    Ok(roots)
}

/// Which host a pooled connection goes to: whether it is `https`, and the authority.
type HostKey = (bool, http::uri::Authority);

/// The pool key of `uri`.
fn host_key(uri: &http::Uri) -> Result<HostKey, Error> {
    let authority = uri
        .authority()
        .ok_or(Error::Internal("an upstream URI without an authority"))?;
    Ok((uri.scheme() == Some(&http::uri::Scheme::HTTPS), authority.clone()))
}

/// Opens a connection to `uri`'s host: TCP, then TLS for `https://`.
async fn connect(
    connector: &HttpsConnector<HttpConnector>,
    uri: &http::Uri,
) -> Result<hyper_rustls::MaybeHttpsStream<hyper_util::rt::TokioIo<tokio::net::TcpStream>>, Error> {
    let mut connector = connector.clone();
    std::future::poll_fn(|cx| connector.poll_ready(cx))
        .await
        .map_err(|e| connect_error(&*e))?;
    connector.call(uri.clone()).await.map_err(|e| connect_error(&*e))
}

/// A failure to connect or to send, as [`Error::UpstreamConnect`], or a connect timeout.
fn connect_error(e: &(dyn std::error::Error + 'static)) -> Error {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return Error::UpstreamTimeout(TimeoutKind::Connect);
        }
        source = cause.source();
    }
    let detail = match e.source() {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    };
    Error::UpstreamConnect(detail.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_spellings() {
        let b = parse_error_body(br#"{"message":"bad input"}"#);
        assert_eq!(b.message.as_deref(), Some("bad input"));
        let b =
            parse_error_body(br#"{"Message":"x","__type":"com.amazon.coral.service#ThrottlingException"}"#);
        assert_eq!(b.message.as_deref(), Some("x"));
        assert_eq!(b.name.as_deref(), Some("ThrottlingException"));
        let b = parse_error_body(b"<html>502 Bad Gateway</html>");
        assert!(b.message.is_none() && b.name.is_none());
    }

    #[test]
    fn host_headers_leave_out_default_ports_only() {
        let host = |uri: &str| host_header(&uri.parse().unwrap()).map(|v| v.to_str().unwrap().to_owned());
        let bedrock = "bedrock-runtime.us-east-1.amazonaws.com";
        assert_eq!(
            host(&format!("https://{bedrock}/model/m/converse")).as_deref(),
            Some(bedrock)
        );
        assert_eq!(
            host(&format!("https://{bedrock}:443/model/m/converse")).as_deref(),
            Some(bedrock)
        );
        assert_eq!(host("http://127.0.0.1:80/x").as_deref(), Some("127.0.0.1"));
        assert_eq!(host("http://127.0.0.1:9000/x").as_deref(), Some("127.0.0.1:9000"));
        assert_eq!(host("https://127.0.0.1:80/x").as_deref(), Some("127.0.0.1:80"));
        assert_eq!(host("https://[::1]:443/x").as_deref(), Some("[::1]"));
        assert_eq!(host("/model/m/converse"), None);
    }
}
