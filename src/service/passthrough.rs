//! Native Bedrock runtime endpoints, passed through: the client speaks Bedrock's own API (boto3
//! or an AWS SDK with the gateway as `endpoint_url`), the gateway resolves the model, re-signs
//! with its own AWS credentials and streams Bedrock's reply back byte for byte — event-stream
//! frames untouched, status and content type kept.
//!
//! Paths: `/providers/bedrock/model/{model}/{op}`, `/bedrock/model/{model}/{op}` and the bare
//! runtime path `/model/{model}/{op}`, with `{op}` one of `converse`, `converse-stream`,
//! `invoke`, `invoke-with-response-stream`. `{model}` is an alias from the model table, the
//! Bedrock id of a model in the table, or — when `passthrough.allow_raw_model_ids` is set — any
//! Bedrock model id.
//!
//! The client's own SigV4 headers (`authorization`, `x-amz-*`) are never forwarded; only the
//! request headers the Bedrock operations define are. Failures the gateway detects itself are
//! answered in Bedrock's error shape (`x-amzn-ErrorType` and `{"message":…}`), so AWS SDK
//! clients raise their usual exceptions.

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use serde::Deserialize;

pub mod meter;

use super::Shared;
use crate::auth::Grant;
use crate::body::{self, PassthroughBody, ResponseBody};
use crate::error::Error;
use crate::upstream::sigv4::encode_model_id;

/// Passthrough settings (`passthrough` in the configuration).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PassthroughConfig {
    /// Serve the native Bedrock endpoints at all.
    pub enabled: bool,
    /// Accept any Bedrock model id, not only aliases and ids from the model table.
    pub allow_raw_model_ids: bool,
}

impl Default for PassthroughConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            allow_raw_model_ids: false,
        }
    }
}

/// A Bedrock runtime operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NativeOperation {
    /// `converse`
    Converse,
    /// `converse-stream`
    ConverseStream,
    /// `invoke`
    Invoke,
    /// `invoke-with-response-stream`
    InvokeWithResponseStream,
}

impl NativeOperation {
    /// Whether the reply is an event stream (and takes one of the key's stream slots).
    fn streams(self) -> bool {
        matches!(self, Self::ConverseStream | Self::InvokeWithResponseStream)
    }

    fn from_segment(s: &str) -> Option<Self> {
        Some(match s {
            "converse" => Self::Converse,
            "converse-stream" => Self::ConverseStream,
            "invoke" => Self::Invoke,
            "invoke-with-response-stream" => Self::InvokeWithResponseStream,
            _ => return None,
        })
    }

    fn segment(self) -> &'static str {
        match self {
            Self::Converse => "converse",
            Self::ConverseStream => "converse-stream",
            Self::Invoke => "invoke",
            Self::InvokeWithResponseStream => "invoke-with-response-stream",
        }
    }
}

/// A parsed passthrough path.
#[derive(Debug, PartialEq, Eq)]
pub struct NativePath<'a> {
    /// The model segment as sent (still percent-encoded).
    pub model: &'a str,
    /// The operation.
    pub operation: NativeOperation,
}

/// Recognises the passthrough paths; `None` for anything else.
pub fn parse_path(path: &str) -> Option<NativePath<'_>> {
    let rest = ["/providers/bedrock/model/", "/bedrock/model/", "/model/"]
        .iter()
        .find_map(|prefix| path.strip_prefix(prefix))?;
    let (model, op) = rest.rsplit_once('/')?;
    if model.is_empty() || model.contains('/') {
        return None;
    }
    Some(NativePath {
        model,
        operation: NativeOperation::from_segment(op)?,
    })
}

/// Request headers of the Bedrock runtime operations that are forwarded as sent.
const FORWARDED: [&str; 9] = [
    "content-type",
    "accept",
    "x-amzn-bedrock-accept",
    "x-amzn-bedrock-trace",
    "x-amzn-bedrock-guardrailidentifier",
    "x-amzn-bedrock-guardrailversion",
    "x-amzn-bedrock-performanceconfig-latency",
    "x-amzn-bedrock-service-tier",
    "x-amzn-bedrock-content-type",
];

/// Response headers copied back to the client besides the body.
const RETURNED: [&str; 9] = [
    "content-type",
    "x-amzn-requestid",
    "x-amzn-errortype",
    "x-amzn-bedrock-content-type",
    "x-amzn-bedrock-input-token-count",
    "x-amzn-bedrock-output-token-count",
    "x-amzn-bedrock-invocation-latency",
    "x-amzn-bedrock-performanceconfig-latency",
    "x-amzn-bedrock-service-tier",
];

/// Handles one passthrough request. Errors are rendered in Bedrock's shape here.
pub async fn handle(
    shared: &Shared,
    request: Request<Incoming>,
    path: NativePath<'_>,
) -> Response<ResponseBody> {
    match forward(shared, request, &path).await {
        Ok(response) => response,
        Err(err) => {
            tracing::debug!(error = %err, kind = err.kind(), "passthrough request failed");
            bedrock_error(&err)
        }
    }
}

async fn forward(
    shared: &Shared,
    request: Request<Incoming>,
    path: &NativePath<'_>,
) -> Result<Response<ResponseBody>, Error> {
    let model = percent_encoding::percent_decode_str(path.model).decode_utf8_lossy();
    let (model_id, region) = resolve(shared, &model)?;
    // A native stream counts against the key's concurrent streams like a chat stream; the slot
    // is held by the relayed body.
    let principal = request.extensions().get::<crate::auth::Principal>();
    let permit = match principal {
        Some(principal) if path.operation.streams() => match principal.open_stream() {
            Ok(permit) => Some(permit),
            Err(err) => {
                if let Error::RateLimited { limit, .. } = &err {
                    shared.metrics.rate_limited(principal.name(), limit.label());
                }
                return Err(err);
            }
        },
        _ => None,
    };
    let base = match &shared.config.bedrock.endpoint {
        Some(endpoint) => endpoint.trim_end_matches('/').to_owned(),
        None => format!("https://bedrock-runtime.{region}.amazonaws.com"),
    };
    let uri: http::Uri = format!(
        "{base}/model/{}/{}",
        encode_model_id(&model_id),
        path.operation.segment()
    )
    .parse()
    .map_err(|_| Error::Internal("building the passthrough URL"))?;
    let host = crate::upstream::host_header(&uri).ok_or(Error::Internal("building the passthrough URL"))?;
    let forward: Vec<(HeaderName, HeaderValue)> = FORWARDED
        .iter()
        .filter_map(|name| {
            let value = request.headers().get(*name)?;
            Some((HeaderName::from_static(name), value.clone()))
        })
        .collect();
    let grant = Grant::from_request(&request);
    let body = body::collect(request.into_body(), shared.config.limits.max_body_bytes).await?;
    let upstream = shared
        .upstream
        .send_request(uri, &host, &region, &forward, Bytes::from(body))
        .await?;

    let (parts, incoming) = upstream.into_parts();
    let meter = parts
        .status
        .is_success()
        .then(|| meter::Meter::new(grant, path.operation, &parts.headers));
    let mut response = Response::new(ResponseBody::Upstream(Box::new(PassthroughBody::new(
        incoming,
        shared.upstream.idle_timeout(),
        permit,
        meter,
    ))));
    *response.status_mut() = parts.status;
    for name in RETURNED {
        if let Some(value) = parts.headers.get(name) {
            response
                .headers_mut()
                .insert(HeaderName::from_static(name), value.clone());
        }
    }
    Ok(response)
}

/// The Bedrock model id and region for a path's model segment.
fn resolve(shared: &Shared, model: &str) -> Result<(String, String), Error> {
    if let Some(route) = shared.models.get(model) {
        return Ok((route.model_id.to_string(), route.region.to_string()));
    }
    if let Some(route) = shared.models.find_by_model_id(model) {
        return Ok((route.model_id.to_string(), route.region.to_string()));
    }
    if shared.config.passthrough.allow_raw_model_ids && !model.is_empty() && model.len() <= 2048 {
        return Ok((model.to_owned(), shared.config.bedrock.region.clone()));
    }
    Err(Error::ModelNotFound(model.into()))
}

/// A gateway-side failure in Bedrock's wire shape.
fn bedrock_error(err: &Error) -> Response<ResponseBody> {
    let status = err.status();
    let name = match status {
        StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE => "ValidationException",
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => "AccessDeniedException",
        StatusCode::NOT_FOUND => "ResourceNotFoundException",
        StatusCode::TOO_MANY_REQUESTS => "ThrottlingException",
        StatusCode::GATEWAY_TIMEOUT => "ModelTimeoutException",
        StatusCode::SERVICE_UNAVAILABLE => "ServiceUnavailableException",
        _ => "InternalServerException",
    };
    let mut body = Vec::with_capacity(96);
    body.extend_from_slice(b"{\"message\":");
    crate::json::write_str(&mut body, &err.to_string());
    body.push(b'}');
    let mut response = Response::new(ResponseBody::full(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert("x-amzn-errortype", HeaderValue::from_static(name));
    if let Error::RateLimited { retry_after, .. } = err {
        headers.insert(header::RETRY_AFTER, crate::error::retry_after_secs(*retry_after));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_every_prefix_and_operation() {
        let p = parse_path("/providers/bedrock/model/claude-3-haiku/converse-stream").unwrap();
        assert_eq!(
            (p.model, p.operation),
            ("claude-3-haiku", NativeOperation::ConverseStream)
        );
        let p = parse_path("/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke").unwrap();
        assert_eq!(
            (p.model, p.operation),
            (
                "anthropic.claude-3-haiku-20240307-v1%3A0",
                NativeOperation::Invoke
            )
        );
        let p =
            parse_path("/bedrock/model/arn%3Aaws%3Abedrock%3Aus-west-2%3A1%3Ainference-profile%2Fx/converse")
                .unwrap();
        assert_eq!(p.operation, NativeOperation::Converse);
        let p = parse_path("/model/m/invoke-with-response-stream").unwrap();
        assert_eq!(p.operation, NativeOperation::InvokeWithResponseStream);
    }

    #[test]
    fn rejects_other_paths() {
        for path in [
            "/model/m/delete",
            "/model//converse",
            "/model/a/b/converse",
            "/v1/chat/completions",
            "/modelx/m/converse",
        ] {
            assert_eq!(parse_path(path), None, "{path}");
        }
    }

    #[test]
    fn gateway_errors_take_bedrocks_shape() {
        let resp = bedrock_error(&Error::ModelNotFound("nope".into()));
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        assert_eq!(resp.headers()["x-amzn-errortype"], "ResourceNotFoundException");
    }
}
