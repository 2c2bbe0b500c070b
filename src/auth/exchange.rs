//! `POST /v1/auth/session`: a key that requires TOTP, plus a current code, for a session token.
//!
//! Request: the key as bearer token (or `x-api-key`) and `{"code":"123456"}`. Reply:
//! `{"object":"session","token":"aigws-…","token_type":"bearer","key":"NAME","expires_at":…,
//! "expires_in":…}`. Every attempt, accepted or not, is one `auth` record in the audit log.

use http::{HeaderValue, Request, Response, header};
use hyper::body::Incoming;

use super::{Principal, Refusal};
use crate::audit::AuthEvent;
use crate::body::{self, ResponseBody};
use crate::error::{Error, InvalidRequest};
use crate::json;
use crate::server::ClientAddr;
use crate::service::{Shared, json_response};

/// Largest exchange body accepted.
const MAX_BODY_BYTES: u64 = 4096;

/// Handles one exchange.
pub async fn open_session(
    shared: &Shared,
    request: Request<Incoming>,
    request_id: &str,
) -> Result<Response<ResponseBody>, Error> {
    let security = &shared.security;
    let client = request.extensions().get::<ClientAddr>().map(|c| c.0);
    let (event, key, result) = exchange(shared, request).await;
    if let Some(audit) = &security.audit {
        audit.auth_event(&AuthEvent {
            event,
            request_id,
            key: key.as_ref().map(Principal::name),
            client,
        });
    }
    result
}

type Outcome = (
    &'static str,
    Option<Principal>,
    Result<Response<ResponseBody>, Error>,
);

async fn exchange(shared: &Shared, request: Request<Incoming>) -> Outcome {
    let auth = &shared.security.auth;
    if !auth.required() {
        let err = InvalidRequest {
            message: "authentication is off on this gateway; sessions are not needed".into(),
            param: None,
            code: Some("auth_disabled"),
        };
        return ("auth_disabled", None, Err(err.into()));
    }
    let principal = match auth.authenticate_key(request.headers()) {
        Ok(principal) => principal,
        Err(failure) => return ("invalid_key", None, Err(failure.into())),
    };
    let code = match read_code(request).await {
        Ok(code) => code,
        Err(e) => return ("bad_request", Some(principal), Err(e)),
    };
    let session = match auth.open_session(&principal, &code) {
        Ok(session) => session,
        Err(refusal) => {
            let event = match refusal {
                Refusal::NotEnrolled => "not_enrolled",
                Refusal::LockedOut { .. } => "locked_out",
                Refusal::Replayed { locked: false } => "totp_replayed",
                Refusal::Wrong { locked: false } => "totp_wrong",
                Refusal::Replayed { locked: true } | Refusal::Wrong { locked: true } => "totp_locked",
                Refusal::Internal => "internal_error",
            };
            return (event, Some(principal), Err(auth.refusal_error(refusal)));
        }
    };
    let now_ms = auth.clock().now_ms();
    let mut out = Vec::with_capacity(192);
    out.extend_from_slice(b"{\"object\":\"session\",\"token\":");
    json::write_str(&mut out, session.token.expose());
    out.extend_from_slice(b",\"token_type\":\"bearer\",\"key\":");
    json::write_str(&mut out, principal.name());
    out.extend_from_slice(b",\"expires_at\":");
    json::write_u64(&mut out, session.expires_ms / 1000);
    out.extend_from_slice(b",\"expires_in\":");
    json::write_u64(&mut out, session.expires_ms.saturating_sub(now_ms) / 1000);
    out.push(b'}');
    let mut response = json_response(out);
    // The body is a credential.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    ("session_opened", Some(principal), Ok(response))
}

async fn read_code(request: Request<Incoming>) -> Result<String, Error> {
    #[derive(serde::Deserialize)]
    struct Body {
        code: String,
    }
    let mut bytes = body::collect(request.into_body(), MAX_BODY_BYTES).await?;
    simd_json::serde::from_slice::<Body>(&mut bytes)
        .map(|b| b.code)
        .map_err(|_| {
            Error::BadRequest(InvalidRequest::invalid(
                "code",
                "expected a JSON body {\"code\":\"123456\"} with the current TOTP code as a string",
            ))
        })
}
