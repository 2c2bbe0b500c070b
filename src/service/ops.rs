//! Operational endpoints: `/health` (the process is up) and `/ready` (it can serve).

use http::{Response, StatusCode};

use super::{SERVICE_NAME, Shared, json_response};
use crate::body::ResponseBody;
use crate::json;

/// `200 {"status":"healthy","service":"ai-gateway"}`: cheap, touches nothing.
pub fn health() -> Response<ResponseBody> {
    json_response(format!("{{\"status\":\"healthy\",\"service\":\"{SERVICE_NAME}\"}}").into_bytes())
}

/// `200` when the model table has routes and AWS credentials resolve; `503` with the reason
/// otherwise.
pub async fn ready(shared: &Shared) -> Response<ResponseBody> {
    let problem = if shared.models.is_empty() {
        Some("the model table is empty".to_owned())
    } else {
        shared
            .upstream
            .auth()
            .check()
            .await
            .err()
            .map(|e| format!("credentials: {e}"))
    };
    let mut out = Vec::with_capacity(96);
    match &problem {
        None => {
            out.extend_from_slice(b"{\"status\":\"ready\",\"models\":");
            json::write_u64(&mut out, shared.models.len() as u64);
            out.push(b'}');
        }
        Some(reason) => {
            out.extend_from_slice(b"{\"status\":\"not_ready\",\"reason\":");
            json::write_str(&mut out, reason);
            out.push(b'}');
        }
    }
    let mut response = json_response(out);
    if problem.is_some() {
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    }
    response
}

/// `GET /metrics`: every metric in OpenMetrics text.
pub fn metrics(shared: &Shared) -> Response<ResponseBody> {
    if let Some(audit) = &shared.security.audit {
        shared.metrics.sync_audit_dropped(audit.dropped());
    }
    let mut text = String::with_capacity(16 * 1024);
    let mut response = match shared.metrics.encode(&mut text) {
        Ok(()) => Response::new(ResponseBody::full(text)),
        Err(_) => {
            let mut response = Response::new(ResponseBody::full("metrics encoding failed"));
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            response
        }
    };
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}
