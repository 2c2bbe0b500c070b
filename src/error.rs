//! The edge error: the one type a client ever sees, rendered as an OpenAI error body.
//!
//! Modules keep small error types of their own and convert into [`Error`]. This file owns
//! the whole mapping to HTTP status, OpenAI `type`/`code`, metric label and side, including
//! the Bedrock exception table (reference: mapping §8), which the stream translator also
//! uses for exception frames that arrive after the headers were sent.

use std::borrow::Cow;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};

use crate::json;

/// Which side caused a failure; decides the log level and the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The client sent something wrong.
    Client,
    /// Bedrock (or the path to it) failed.
    Upstream,
    /// The gateway itself failed.
    Internal,
}

/// A request the gateway rejects before calling Bedrock (400).
///
/// `param` is the JSON path of the offending field (`messages[3].content`), `code` one of
/// `invalid_value`, `unsupported_parameter`, `unsupported_value`, or none.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidRequest {
    /// Human-readable text: what was wrong and how to fix it.
    pub message: Cow<'static, str>,
    /// JSON path of the field at fault.
    pub param: Option<Cow<'static, str>>,
    /// OpenAI error code.
    pub code: Option<&'static str>,
}

impl InvalidRequest {
    /// A malformed value (`invalid_value`).
    pub fn invalid(param: impl Into<Cow<'static, str>>, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            message: message.into(),
            param: Some(param.into()),
            code: Some("invalid_value"),
        }
    }

    /// A parameter the gateway cannot honour at all (`unsupported_parameter`).
    pub fn unsupported_parameter(
        param: impl Into<Cow<'static, str>>,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            message: message.into(),
            param: Some(param.into()),
            code: Some("unsupported_parameter"),
        }
    }

    /// A supported parameter with a value the gateway cannot honour (`unsupported_value`).
    pub fn unsupported_value(
        param: impl Into<Cow<'static, str>>,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            message: message.into(),
            param: Some(param.into()),
            code: Some("unsupported_value"),
        }
    }
}

/// Which deadline expired while talking to Bedrock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutKind {
    /// TCP/TLS connect.
    Connect,
    /// Waiting for the response headers (and, for streams, the first event).
    ResponseHeaders,
    /// Waiting between two upstream body frames.
    Idle,
}

impl TimeoutKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::ResponseHeaders => "response headers",
            Self::Idle => "idle",
        }
    }
}

/// How a Bedrock error (HTTP error response or in-stream exception frame) is shown to an
/// OpenAI client. Built only by [`classify_bedrock`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorClass {
    /// Status the client gets.
    pub status: StatusCode,
    /// OpenAI error `type`.
    pub openai_type: &'static str,
    /// OpenAI error `code`.
    pub code: Option<&'static str>,
    /// Whether retrying the same request may succeed.
    pub retryable: bool,
}

/// Maps a Bedrock error name (`ThrottlingException`, or the camelCase in-stream
/// `throttlingException`) to what the client sees. `upstream_status` is Bedrock's HTTP status
/// (0 for in-stream exceptions); `message` lets a validation error that says the input is too
/// long become `context_length_exceeded`.
pub fn classify_bedrock(name: &str, upstream_status: u16, message: &str) -> ErrorClass {
    const fn class(
        status: StatusCode,
        openai_type: &'static str,
        code: Option<&'static str>,
        retryable: bool,
    ) -> ErrorClass {
        ErrorClass {
            status,
            openai_type,
            code,
            retryable,
        }
    }
    let server = "server_error";
    // In-stream exception types are the union member names (camelCase); HTTP errors use the
    // shape names (PascalCase). Compare case-insensitively on the first letter only.
    let mut chars = name.chars();
    let first = chars.next().map(|c| c.to_ascii_uppercase());
    let rest = chars.as_str();
    let eq = |want: &str| first == want.chars().next() && rest == &want[1..];
    if eq("ValidationException") {
        let lower = message.to_ascii_lowercase();
        let too_long = lower.contains("too long")
            || lower.contains("context window")
            || lower.contains("context length")
            || lower.contains("too many input tokens")
            || lower.contains("input is too");
        let code = if too_long {
            Some("context_length_exceeded")
        } else {
            None
        };
        class(StatusCode::BAD_REQUEST, "invalid_request_error", code, false)
    } else if eq("AccessDeniedException") {
        class(
            StatusCode::FORBIDDEN,
            "permission_error",
            Some("model_access_denied"),
            false,
        )
    } else if eq("ResourceNotFoundException") {
        class(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            Some("model_not_found"),
            false,
        )
    } else if eq("ThrottlingException") || eq("ServiceQuotaExceededException") {
        class(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            Some("rate_limit_exceeded"),
            true,
        )
    } else if eq("ModelNotReadyException") {
        class(
            StatusCode::SERVICE_UNAVAILABLE,
            server,
            Some("model_not_ready"),
            true,
        )
    } else if eq("ModelTimeoutException") {
        class(StatusCode::GATEWAY_TIMEOUT, server, Some("timeout"), true)
    } else if eq("ModelErrorException") {
        class(
            StatusCode::BAD_GATEWAY,
            server,
            Some("upstream_model_error"),
            false,
        )
    } else if eq("ModelStreamErrorException") {
        class(
            StatusCode::BAD_GATEWAY,
            server,
            Some("upstream_stream_error"),
            false,
        )
    } else if eq("InternalServerException") {
        class(StatusCode::BAD_GATEWAY, server, Some("upstream_error"), true)
    } else if eq("ServiceUnavailableException") {
        class(
            StatusCode::SERVICE_UNAVAILABLE,
            server,
            Some("service_unavailable"),
            true,
        )
    } else if is_auth_failure(name) {
        // The gateway's own AWS identity was refused: the client cannot fix that, and a 401
        // would make it think its OpenAI key is wrong.
        class(
            StatusCode::BAD_GATEWAY,
            server,
            Some("upstream_auth_error"),
            false,
        )
    } else if upstream_status == 503 {
        class(StatusCode::SERVICE_UNAVAILABLE, server, None, true)
    } else {
        class(StatusCode::BAD_GATEWAY, server, None, upstream_status >= 500)
    }
}

fn is_auth_failure(name: &str) -> bool {
    matches!(
        name,
        "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "ExpiredTokenException"
            | "IncompleteSignature"
            | "IncompleteSignatureException"
            | "MissingAuthenticationTokenException"
            | "InvalidClientTokenId"
            | "RequestExpired"
    )
}

/// Extracts the error name from Bedrock's `x-amzn-ErrorType` header or body `code`/`__type`,
/// following botocore's rest-json rule: cut at the first `:`, keep what follows the last `#`.
pub fn bedrock_error_name(raw: &str) -> &str {
    let cut = raw.split(':').next().unwrap_or(raw);
    cut.rsplit('#').next().unwrap_or(cut).trim()
}

/// Why a request's credentials were refused (401).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    /// Neither `Authorization: Bearer` nor `x-api-key` was sent.
    #[error("missing API key: send it as `Authorization: Bearer KEY` or `x-api-key: KEY`")]
    MissingKey,
    /// Unknown or revoked key, or an unknown or expired session token. One answer for all, so
    /// the reply tells a guesser nothing.
    #[error("invalid API key")]
    InvalidKey,
    /// The key requires a TOTP session and was sent directly.
    #[error(
        "this API key requires a second factor: POST /v1/auth/session with the key as bearer token and \
         {{\"code\":\"<TOTP code>\"}}, then send the session token as the bearer token"
    )]
    SessionRequired,
    /// Wrong, expired or already used TOTP code.
    #[error("invalid TOTP code: wrong, outside the current 30 s window, or already used")]
    InvalidCode,
}

impl AuthFailure {
    /// OpenAI error `code`.
    pub fn code(self) -> &'static str {
        match self {
            Self::MissingKey | Self::InvalidKey => "invalid_api_key",
            Self::SessionRequired => "session_required",
            Self::InvalidCode => "invalid_totp_code",
        }
    }
}

/// Which per-key limit a request ran into (429).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimit {
    /// Requests per minute.
    Requests,
    /// Tokens per minute, counted from Bedrock's usage after each reply.
    Tokens,
    /// Streams open at once.
    Streams,
    /// Too many wrong TOTP codes: the key is locked out for a while.
    TotpAttempts,
}

impl RateLimit {
    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Requests => "requests",
            Self::Tokens => "tokens",
            Self::Streams => "streams",
            Self::TotpAttempts => "totp_attempts",
        }
    }
}

/// Every failure a client can see.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // --- client side ---
    /// The request is malformed or asks for something Bedrock cannot do.
    #[error(transparent)]
    BadRequest(#[from] InvalidRequest),
    /// The model alias is not in the model table.
    #[error("the model `{0}` does not exist or you do not have access to it")]
    ModelNotFound(Box<str>),
    /// No endpoint at this path.
    #[error("unknown request URL: {method} {path}")]
    UnknownPath {
        /// Request method.
        method: http::Method,
        /// Request path.
        path: Box<str>,
    },
    /// The path exists but not for this method.
    #[error("method {0} is not allowed on this endpoint")]
    MethodNotAllowed(http::Method),
    /// The request body exceeded the configured limit.
    #[error("request body is larger than the limit of {limit} bytes")]
    BodyTooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The request body could not be read from the client.
    #[error("failed to read the request body: {0}")]
    BodyRead(Box<str>),
    /// Missing or refused credentials.
    #[error(transparent)]
    Unauthorized(#[from] AuthFailure),
    /// The key's allow-list does not include this model.
    #[error("this API key may not use the model `{0}`")]
    ModelNotAllowed(Box<str>),
    /// A per-key limit was reached.
    #[error("{}", rate_limit_message(*.limit, *.max, *.retry_after))]
    RateLimited {
        /// Which limit.
        limit: RateLimit,
        /// Its configured value.
        max: u64,
        /// When a retry may succeed.
        retry_after: Duration,
    },

    // --- upstream side ---
    /// Bedrock answered with an error (HTTP error status, or an exception frame before the
    /// first event of a stream).
    #[error("{message}")]
    Upstream {
        /// The Bedrock error name (`ThrottlingException`).
        name: Box<str>,
        /// The mapped class.
        class: ErrorClass,
        /// Bedrock's message, passed through.
        message: Box<str>,
        /// Bedrock's `Retry-After`, if any.
        retry_after: Option<HeaderValue>,
    },
    /// Bedrock could not be reached.
    #[error("could not reach Bedrock: {0}")]
    UpstreamConnect(Box<str>),
    /// A deadline expired.
    #[error("timed out waiting for Bedrock ({})", .0.as_str())]
    UpstreamTimeout(TimeoutKind),
    /// Bedrock sent something the gateway cannot read.
    #[error("invalid response from Bedrock: {0}")]
    UpstreamProtocol(Box<str>),
    /// The model stopped with `malformed_model_output` / `malformed_tool_use`.
    #[error("the model produced output Bedrock could not parse ({0})")]
    MalformedModelOutput(&'static str),

    // --- internal ---
    /// No usable AWS credentials, or signing failed.
    #[error("could not sign the Bedrock request: {0}")]
    Sign(Box<str>),
    /// A bug or an impossible state.
    #[error("internal error: {0}")]
    Internal(&'static str),
}

impl Error {
    /// Builds [`Error::Upstream`] from a Bedrock error name, HTTP status and message.
    pub fn upstream(
        name: &str,
        upstream_status: u16,
        message: &str,
        retry_after: Option<HeaderValue>,
    ) -> Self {
        Self::Upstream {
            class: classify_bedrock(name, upstream_status, message),
            name: name.into(),
            message: message.into(),
            retry_after,
        }
    }

    /// HTTP status for the client.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) | Self::BodyRead(_) => StatusCode::BAD_REQUEST,
            Self::ModelNotFound(_) | Self::UnknownPath { .. } => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::ModelNotAllowed(_) => StatusCode::FORBIDDEN,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Upstream { class, .. } => class.status,
            Self::UpstreamConnect(_)
            | Self::UpstreamProtocol(_)
            | Self::MalformedModelOutput(_)
            | Self::Sign(_) => StatusCode::BAD_GATEWAY,
            Self::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// OpenAI error `type`.
    pub fn openai_type(&self) -> &'static str {
        match self {
            Self::BadRequest(_)
            | Self::ModelNotFound(_)
            | Self::UnknownPath { .. }
            | Self::MethodNotAllowed(_)
            | Self::BodyTooLarge { .. }
            | Self::BodyRead(_)
            | Self::Unauthorized(_) => "invalid_request_error",
            Self::ModelNotAllowed(_) => "permission_error",
            Self::RateLimited { .. } => "rate_limit_error",
            Self::Upstream { class, .. } => class.openai_type,
            _ => "server_error",
        }
    }

    /// OpenAI error `code`.
    pub fn code(&self) -> Option<&'static str> {
        match self {
            Self::BadRequest(e) => e.code,
            Self::ModelNotFound(_) => Some("model_not_found"),
            Self::UnknownPath { .. } => Some("unknown_url"),
            Self::MethodNotAllowed(_) => Some("method_not_allowed"),
            Self::BodyTooLarge { .. } => Some("request_too_large"),
            Self::BodyRead(_) => Some("invalid_body"),
            Self::Unauthorized(failure) => Some(failure.code()),
            Self::ModelNotAllowed(_) => Some("model_not_allowed"),
            Self::RateLimited {
                limit: RateLimit::TotpAttempts,
                ..
            } => Some("too_many_attempts"),
            Self::RateLimited { .. } => Some("rate_limit_exceeded"),
            Self::Upstream { class, .. } => class.code,
            Self::UpstreamConnect(_) => Some("upstream_unreachable"),
            Self::UpstreamTimeout(_) => Some("timeout"),
            Self::UpstreamProtocol(_) => Some("upstream_protocol_error"),
            Self::MalformedModelOutput(code) => Some(code),
            Self::Sign(_) => Some("upstream_auth_error"),
            Self::Internal(_) => None,
        }
    }

    /// OpenAI error `param`.
    pub fn param(&self) -> Option<&str> {
        match self {
            Self::BadRequest(e) => e.param.as_deref(),
            Self::ModelNotFound(_) | Self::ModelNotAllowed(_) => Some("model"),
            _ => None,
        }
    }

    /// Which side caused it.
    pub fn side(&self) -> Side {
        match self {
            Self::BadRequest(_)
            | Self::ModelNotFound(_)
            | Self::UnknownPath { .. }
            | Self::MethodNotAllowed(_)
            | Self::BodyTooLarge { .. }
            | Self::BodyRead(_)
            | Self::Unauthorized(_)
            | Self::ModelNotAllowed(_)
            | Self::RateLimited { .. } => Side::Client,
            Self::Upstream { class, .. }
                if class.status.is_client_error() && class.status != StatusCode::TOO_MANY_REQUESTS =>
            {
                Side::Client
            }
            Self::Upstream { .. }
            | Self::UpstreamConnect(_)
            | Self::UpstreamTimeout(_)
            | Self::UpstreamProtocol(_)
            | Self::MalformedModelOutput(_) => Side::Upstream,
            Self::Sign(_) | Self::Internal(_) => Side::Internal,
        }
    }

    /// The Bedrock error name for metrics: the exception name, or `connect` / `timeout` for
    /// transport failures, `other` for the rest.
    pub fn upstream_name(&self) -> &str {
        match self {
            Self::Upstream { name, .. } => name,
            Self::UpstreamConnect(_) => "connect",
            Self::UpstreamTimeout(_) => "timeout",
            _ => "other",
        }
    }

    /// Low-cardinality label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::ModelNotFound(_) => "model_not_found",
            Self::UnknownPath { .. } => "unknown_path",
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::BodyTooLarge { .. } => "body_too_large",
            Self::BodyRead(_) => "body_read",
            Self::Unauthorized(_) => "unauthorized",
            Self::ModelNotAllowed(_) => "model_not_allowed",
            Self::RateLimited { .. } => "rate_limited",
            Self::Upstream { .. } => "upstream_error",
            Self::UpstreamConnect(_) => "upstream_connect",
            Self::UpstreamTimeout(_) => "upstream_timeout",
            Self::UpstreamProtocol(_) => "upstream_protocol",
            Self::MalformedModelOutput(_) => "malformed_model_output",
            Self::Sign(_) => "sign",
            Self::Internal(_) => "internal",
        }
    }

    /// Whether the client should retry (drives `x-should-retry`).
    pub fn retryable(&self) -> bool {
        match self {
            Self::Upstream { class, .. } => class.retryable,
            Self::UpstreamConnect(_) | Self::UpstreamTimeout(_) => true,
            Self::RateLimited { limit, .. } => *limit != RateLimit::TotpAttempts,
            _ => false,
        }
    }

    /// Writes the OpenAI error object `{"error":{...}}` (no trailing newline).
    pub fn write_body(&self, out: &mut Vec<u8>) {
        let message = self.to_string();
        write_error_object(out, &message, self.openai_type(), self.param(), self.code());
    }

    /// The complete HTTP response for this error.
    pub fn to_response(&self) -> http::Response<Bytes> {
        let mut body = Vec::with_capacity(160);
        self.write_body(&mut body);
        let mut response = http::Response::new(Bytes::from(body));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            "x-should-retry",
            HeaderValue::from_static(if self.retryable() { "true" } else { "false" }),
        );
        if let Self::Upstream {
            retry_after: Some(value),
            ..
        } = self
        {
            headers.insert(header::RETRY_AFTER, value.clone());
        } else if let Self::RateLimited { retry_after, .. } = self {
            headers.insert(header::RETRY_AFTER, retry_after_secs(*retry_after));
        } else if self.status() == StatusCode::TOO_MANY_REQUESTS {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let Self::Unauthorized(_) = self {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"ai-gateway\""),
            );
        }
        response
    }
}

fn rate_limit_message(limit: RateLimit, max: u64, retry_after: Duration) -> String {
    let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    match limit {
        RateLimit::Requests => {
            format!("rate limit reached for requests per minute (limit {max}); retry in {secs}s")
        }
        RateLimit::Tokens => {
            format!("rate limit reached for tokens per minute (limit {max}); retry in {secs}s")
        }
        RateLimit::Streams => {
            format!("too many concurrent streams for this API key (limit {max}); retry when one has ended")
        }
        RateLimit::TotpAttempts => {
            format!("too many wrong TOTP codes; this key may not open a session for {secs}s")
        }
    }
}

/// Writes `{"error":{"message":…,"type":…,"param":…,"code":…}}`; all four keys always present.
pub fn write_error_object(
    out: &mut Vec<u8>,
    message: &str,
    openai_type: &str,
    param: Option<&str>,
    code: Option<&str>,
) {
    out.extend_from_slice(b"{\"error\":{\"message\":");
    json::write_str(out, message);
    out.extend_from_slice(b",\"type\":");
    json::write_str(out, openai_type);
    out.extend_from_slice(b",\"param\":");
    match param {
        Some(p) => json::write_str(out, p),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"code\":");
    match code {
        Some(c) => json::write_str(out, c),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b"}}");
}

/// A `Retry-After` value in whole seconds, rounded up.
pub fn retry_after_secs(wait: Duration) -> HeaderValue {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    HeaderValue::from(secs.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_json(err: &Error) -> serde_json::Value {
        let resp = err.to_response();
        serde_json::from_slice(resp.body()).unwrap()
    }

    #[test]
    fn error_body_always_has_four_keys() {
        let v = body_json(&Error::Internal("boom"));
        let obj = v["error"].as_object().unwrap();
        for key in ["message", "type", "param", "code"] {
            assert!(obj.contains_key(key), "missing {key}");
        }
        assert_eq!(v["error"]["type"], "server_error");
    }

    #[test]
    fn bedrock_names_map_per_reference_table() {
        let t = |name: &str, status: u16| classify_bedrock(name, status, "m");
        assert_eq!(t("ValidationException", 400).status, StatusCode::BAD_REQUEST);
        assert_eq!(t("validationException", 0).status, StatusCode::BAD_REQUEST);
        assert_eq!(
            t("ThrottlingException", 429).status,
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(t("throttlingException", 0).code, Some("rate_limit_exceeded"));
        assert_eq!(
            t("ServiceQuotaExceededException", 400).status,
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(t("ResourceNotFoundException", 404).code, Some("model_not_found"));
        assert_eq!(t("AccessDeniedException", 403).status, StatusCode::FORBIDDEN);
        assert_eq!(
            t("ModelNotReadyException", 429).status,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            t("ModelTimeoutException", 408).status,
            StatusCode::GATEWAY_TIMEOUT
        );
        assert_eq!(t("ModelErrorException", 424).status, StatusCode::BAD_GATEWAY);
        assert_eq!(
            t("modelStreamErrorException", 0).code,
            Some("upstream_stream_error")
        );
        assert_eq!(t("InternalServerException", 500).status, StatusCode::BAD_GATEWAY);
        assert_eq!(
            t("ServiceUnavailableException", 503).status,
            StatusCode::SERVICE_UNAVAILABLE
        );
        // The gateway's own credentials being refused is never a 401 to the client.
        let auth = t("InvalidSignatureException", 403);
        assert_eq!(
            (auth.status, auth.code),
            (StatusCode::BAD_GATEWAY, Some("upstream_auth_error"))
        );
        assert_eq!(t("ExpiredTokenException", 403).status, StatusCode::BAD_GATEWAY);
        assert_eq!(t("SomethingNew", 503).status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(t("SomethingNew", 500).status, StatusCode::BAD_GATEWAY);
    }

    #[test]
    fn context_window_validation_gets_its_code() {
        let c = classify_bedrock(
            "ValidationException",
            400,
            "Input is too long for requested model.",
        );
        assert_eq!(c.code, Some("context_length_exceeded"));
    }

    #[test]
    fn error_name_follows_botocore_rule() {
        assert_eq!(
            bedrock_error_name("ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/"),
            "ValidationException"
        );
        assert_eq!(
            bedrock_error_name("com.amazon.coral.service#ThrottlingException"),
            "ThrottlingException"
        );
        assert_eq!(
            bedrock_error_name("AccessDeniedException"),
            "AccessDeniedException"
        );
    }

    #[test]
    fn throttling_response_carries_retry_after() {
        let err = Error::upstream("ThrottlingException", 429, "slow down", None);
        let resp = err.to_response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(resp.headers().contains_key(header::RETRY_AFTER));
        assert_eq!(resp.headers()["x-should-retry"], "true");
        let v = body_json(&err);
        assert_eq!(v["error"]["message"], "slow down");
        assert_eq!(v["error"]["type"], "rate_limit_error");
    }

    #[test]
    fn auth_failures_are_401_with_their_codes_and_a_challenge() {
        for (failure, code) in [
            (AuthFailure::MissingKey, "invalid_api_key"),
            (AuthFailure::InvalidKey, "invalid_api_key"),
            (AuthFailure::SessionRequired, "session_required"),
            (AuthFailure::InvalidCode, "invalid_totp_code"),
        ] {
            let err = Error::from(failure);
            let resp = err.to_response();
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
            assert!(resp.headers().contains_key(header::WWW_AUTHENTICATE));
            let v = body_json(&err);
            assert_eq!(v["error"]["code"], code);
            assert_eq!(v["error"]["type"], "invalid_request_error");
        }
        assert_eq!(
            Error::from(AuthFailure::InvalidKey).to_string(),
            "invalid API key"
        );
    }

    #[test]
    fn model_outside_the_allow_list_is_403_naming_the_model() {
        let err = Error::ModelNotAllowed("claude-3-opus".into());
        let v = body_json(&err);
        assert_eq!(err.status(), StatusCode::FORBIDDEN);
        assert_eq!(v["error"]["code"], "model_not_allowed");
        assert_eq!(v["error"]["param"], "model");
        assert!(v["error"]["message"].as_str().unwrap().contains("claude-3-opus"));
    }

    #[test]
    fn rate_limits_are_429_with_retry_after_rounded_up() {
        let err = Error::RateLimited {
            limit: RateLimit::Requests,
            max: 60,
            retry_after: Duration::from_millis(1500),
        };
        let resp = err.to_response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "2");
        assert_eq!(resp.headers()["x-should-retry"], "true");
        let v = body_json(&err);
        assert_eq!(v["error"]["code"], "rate_limit_exceeded");
        assert_eq!(
            v["error"]["message"],
            "rate limit reached for requests per minute (limit 60); retry in 2s"
        );
        let locked = Error::RateLimited {
            limit: RateLimit::TotpAttempts,
            max: 5,
            retry_after: Duration::from_secs(300),
        };
        assert_eq!(body_json(&locked)["error"]["code"], "too_many_attempts");
        assert_eq!(locked.to_response().headers()["x-should-retry"], "false");
    }

    #[test]
    fn bad_request_names_the_param() {
        let err = Error::from(InvalidRequest::unsupported_value("n", "n > 1 is not supported"));
        let v = body_json(&err);
        assert_eq!(v["error"]["param"], "n");
        assert_eq!(v["error"]["code"], "unsupported_value");
        assert_eq!(err.to_response().headers()["x-should-retry"], "false");
    }
}
