//! The gateway's hyper service: `(method, path)` dispatch, and the one place where errors
//! become OpenAI error responses and get logged.

pub mod chat;
pub mod embeddings;
pub mod models;
pub mod ops;
pub mod passthrough;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use http::{HeaderName, HeaderValue, Method, Request, Response, header};
use hyper::body::Incoming;

use crate::auth::Security;
use crate::body::ResponseBody;
use crate::config::Config;
use crate::error::{Error, Side};
use crate::metrics::{Endpoint, Metrics};
use crate::routing::ModelTable;
use crate::server::ClientAddr;
use crate::translate::request::RequestOptions;
use crate::upstream::Upstream;

/// Name reported by `/health` and in the `server` header.
pub const SERVICE_NAME: &str = "ai-gateway";

/// Built once: a header name inserted by `&str` is parsed and copied on every request.
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What every request shares. Built once at startup.
#[derive(Debug)]
pub struct Shared {
    /// The configuration in force.
    pub config: Config,
    /// Alias → route.
    pub models: ModelTable,
    /// The Bedrock client.
    pub upstream: Upstream,
    /// Translator options derived from the configuration.
    pub request_options: RequestOptions,
    /// Client authentication, per-key limits, the audit log, server TLS.
    pub security: Security,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// The model table file as it was when the table in force was loaded.
    pub models_file: std::sync::Mutex<crate::routing::FileWatch>,
}

/// The service: a cheap clone over the shared state.
#[derive(Debug, Clone)]
pub struct Gateway {
    shared: Arc<Shared>,
}

impl Gateway {
    /// Wraps the shared state, with no client authentication, audit log or TLS.
    pub fn new(config: Config, models: ModelTable, upstream: Upstream) -> Self {
        Self::with_security(config, models, upstream, Security::disabled())
    }

    /// Wraps the shared state with its security layer.
    pub fn with_security(config: Config, models: ModelTable, upstream: Upstream, security: Security) -> Self {
        let request_options = RequestOptions {
            temperature: config.translate.temperature,
            default_max_tokens: config.translate.default_max_tokens,
        };
        let metrics = Arc::new(Metrics::new());
        let mut upstream = upstream;
        upstream.attach_metrics(Arc::clone(&metrics));
        Self {
            shared: Arc::new(Shared {
                models,
                upstream,
                request_options,
                models_file: std::sync::Mutex::new(crate::routing::FileWatch::new(&config.models)),
                config,
                security,
                metrics,
            }),
        }
    }

    /// The shared state.
    pub fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Handles one request from `client`. Never fails: errors become OpenAI error responses
    /// here.
    pub async fn handle(&self, mut request: Request<Incoming>, client: SocketAddr) -> Response<ResponseBody> {
        let started = std::time::Instant::now();
        let _in_flight = self.shared.metrics.request_in_flight();
        let request_id = request_id(&request);
        let method = request.method().clone();
        // A clone shares the URI's bytes, so the path outlives the request moved below.
        let uri = request.uri().clone();
        let path = uri.path();
        let security = &self.shared.security;
        let record = security.audit.as_ref().map(|audit| {
            let record = audit.request(&request_id, &method, path, Some(client));
            request.extensions_mut().insert(record.clone());
            record
        });
        let mut principal = None;
        let (result, rate) = match access(path) {
            Access::Public => (self.dispatch(request, &request_id, started).await, None),
            Access::SessionExchange => {
                // Its audit event names the client; other requests do not carry it, which
                // spares each an extension map.
                request.extensions_mut().insert(ClientAddr(client));
                (self.dispatch(request, &request_id, started).await, None)
            }
            access => {
                let metered = matches!(access, Access::Metered | Access::Native(_));
                let (admitted, rate) = security.admit(&mut request, metered);
                let admitted = admitted.and_then(|()| match access {
                    Access::Native(model_id) => {
                        security.authorize_native(&request, model_id, &self.shared.models)
                    }
                    _ => Ok(()),
                });
                principal = request.extensions().get::<crate::auth::Principal>().cloned();
                match admitted {
                    Ok(()) => (self.dispatch(request, &request_id, started).await, rate),
                    Err(err) => (Err(err), rate),
                }
            }
        };
        let mut error_kind = None;
        let mut response = match result {
            Ok(response) => response,
            Err(err) => {
                log_error(&err, &method, path, &request_id);
                error_kind = Some(err.kind());
                if let Error::RateLimited { limit, .. } = &err {
                    let key = principal.as_ref().map_or("", |p| p.name());
                    self.shared.metrics.rate_limited(key, limit.label());
                }
                err.to_response().map(ResponseBody::full)
            }
        };
        // The id moves into the header: its bytes are not copied.
        if let Ok(value) = HeaderValue::try_from(request_id) {
            response.headers_mut().insert(X_REQUEST_ID, value);
        }
        if let Some(rate) = rate {
            rate.write_headers(response.headers_mut());
        }
        if let Some(record) = record {
            record.responded(response.status().as_u16(), error_kind);
        }
        // Chat completions count themselves, with their model.
        let endpoint = endpoint(path);
        if endpoint != Endpoint::chat_completions {
            self.shared
                .metrics
                .request(endpoint, &empty_label(), response.status(), started.elapsed());
        }
        response
    }

    /// Handles a request on the admin listener: `/metrics`, `/health`, `/ready`; 404 otherwise.
    pub async fn handle_admin(&self, request: Request<Incoming>) -> Response<ResponseBody> {
        match (request.method(), request.uri().path()) {
            (&Method::GET, "/metrics") => ops::metrics(&self.shared),
            (&Method::GET, "/health") => ops::health(),
            (&Method::GET, "/ready") => ops::ready(&self.shared).await,
            (method, path) => Error::UnknownPath {
                method: method.clone(),
                path: path.into(),
            }
            .to_response()
            .map(ResponseBody::full),
        }
    }

    /// SIGHUP: re-reads the keys file, reloads the TLS certificate, reopens the audit log.
    pub async fn reload(&self) {
        self.shared.security.reload().await;
        let gateway = self.clone();
        let _ = tokio::task::spawn_blocking(move || gateway.reload_models()).await;
    }

    /// Loads the model table file again and, if it is valid, swaps its entries in; requests in
    /// flight keep the routes they resolved. An invalid file is logged and counted, and the
    /// table in force stays. Returns whether the new table was applied.
    pub fn reload_models(&self) -> bool {
        let config = &self.shared.config;
        match ModelTable::load(
            &config.models,
            &config.bedrock.region,
            config.bedrock.endpoint.as_deref(),
        ) {
            Ok(fresh) => {
                let summary = self.shared.models.replace_with(fresh);
                self.shared.metrics.reload(true);
                tracing::info!(
                    added = summary.added,
                    kept = summary.kept,
                    removed = summary.removed,
                    "model table reloaded"
                );
                true
            }
            Err(errors) => {
                self.shared.metrics.reload(false);
                tracing::error!(file = %config.models.display(), "model table not reloaded; the previous one stays:\n{errors}");
                false
            }
        }
    }

    /// Routes a request to its handler. The handlers' futures are boxed: they hold the
    /// translation and the upstream call (kilobytes), and they finish when the response head is
    /// ready, so boxing frees that memory then. Unboxed, it would stay part of the connection
    /// task (HTTP/2: the stream's task) for as long as a response body streams (loadtest/: RSS
    /// per held stream).
    async fn dispatch(
        &self,
        request: Request<Incoming>,
        request_id: &str,
        started: std::time::Instant,
    ) -> Result<Response<ResponseBody>, Error> {
        let path = request.uri().path();
        if request.method() == Method::POST && self.shared.config.passthrough.enabled {
            // A cheap clone (shared bytes) so the parsed path can outlive the moved request.
            let uri = request.uri().clone();
            if let Some(native) = passthrough::parse_path(uri.path()) {
                return Ok(boxed(|| passthrough::handle(&self.shared, request, native)).await);
            }
        }
        // The OpenAI SDKs use a base URL ending in `/v1`; some clients are configured without it.
        let route = path
            .strip_prefix("/v1")
            .filter(|p| p.starts_with('/'))
            .unwrap_or(path);
        match (request.method(), route) {
            (&Method::POST, "/chat/completions") => {
                boxed(|| chat::handle(&self.shared, request, request_id, started)).await
            }
            (&Method::POST, "/auth/session") => {
                boxed(|| crate::auth::exchange::open_session(&self.shared, request, request_id)).await
            }
            (&Method::POST, "/embeddings") => boxed(|| embeddings::handle(&self.shared, request)).await,
            (&Method::GET, "/models") => Ok(models::list(&self.shared)),
            (&Method::GET, p) if p.starts_with("/models/") => {
                models::get(&self.shared, &p["/models/".len()..])
            }
            (&Method::GET, "/health") if path == "/health" => Ok(ops::health()),
            (&Method::GET, "/ready") if path == "/ready" => Ok(boxed(|| ops::ready(&self.shared)).await),
            // With an admin listener, /metrics lives only there.
            (_, "/metrics") if self.shared.config.admin_listen.is_some() => Err(Error::UnknownPath {
                method: request.method().clone(),
                path: path.into(),
            }),
            (&Method::GET, "/metrics") if path == "/metrics" => Ok(ops::metrics(&self.shared)),
            (_, "/chat/completions" | "/models" | "/embeddings") => {
                Err(Error::MethodNotAllowed(request.method().clone()))
            }
            (_, "/health" | "/ready" | "/metrics") if path == route => {
                Err(Error::MethodNotAllowed(request.method().clone()))
            }
            _ => Err(Error::UnknownPath {
                method: request.method().clone(),
                path: path.into(),
            }),
        }
    }
}

/// What a path needs from the security layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access<'p> {
    /// Probes: never authenticated, so orchestrators need no key.
    Public,
    /// `POST /v1/auth/session` checks the key itself.
    SessionExchange,
    /// Authenticated.
    Authenticated,
    /// Authenticated and counted against the key's request and token limits.
    Metered,
    /// A native Bedrock path naming this model id: metered, and within the key's allow-list.
    Native(&'p str),
}

fn access(path: &str) -> Access<'_> {
    // The native (passthrough) paths: metered, and a key limited to some aliases must not reach
    // other models through them.
    if let Some(native) = passthrough::parse_path(path) {
        return Access::Native(native.model);
    }
    let route = path
        .strip_prefix("/v1")
        .filter(|p| p.starts_with('/'))
        .unwrap_or(path);
    match (path, route) {
        ("/health" | "/ready" | "/metrics", _) => Access::Public,
        (_, "/auth/session") => Access::SessionExchange,
        (_, "/chat/completions" | "/embeddings") => Access::Metered,
        _ => Access::Authenticated,
    }
}

/// The metric label of a path.
fn endpoint(path: &str) -> Endpoint {
    let route = path
        .strip_prefix("/v1")
        .filter(|p| p.starts_with('/'))
        .unwrap_or(path);
    match route {
        "/chat/completions" => Endpoint::chat_completions,
        "/models" => Endpoint::models,
        p if p.starts_with("/models/") => Endpoint::models,
        "/embeddings" => Endpoint::embeddings,
        "/auth/session" => Endpoint::auth,
        "/health" | "/ready" | "/metrics" => Endpoint::ops,
        _ if passthrough::parse_path(path).is_some() => Endpoint::passthrough,
        _ => Endpoint::other,
    }
}

/// The empty label value: a request that names no known model, or comes without an API key.
pub(crate) fn empty_label() -> crate::metrics::ModelLabel {
    static EMPTY: std::sync::LazyLock<crate::metrics::ModelLabel> =
        std::sync::LazyLock::new(|| Arc::from(""));
    Arc::clone(&EMPTY)
}

/// The client's `x-request-id` if it sent a sane one, else a new random id.
fn request_id<B>(request: &Request<B>) -> String {
    if let Some(id) = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        && !id.is_empty()
        && id.len() <= 128
        && id.bytes().all(|b| b.is_ascii_graphic())
    {
        return id.to_owned();
    }
    new_id()
}

/// 32 random hex digits.
pub fn new_id() -> String {
    let mut id = [0u8; 32];
    // Twice the input's length: encoding cannot fail.
    let _ = hex::encode_to_slice(fastrand::u128(..).to_be_bytes(), &mut id);
    std::str::from_utf8(&id).unwrap_or_default().to_owned()
}

fn log_error(err: &Error, method: &Method, path: &str, request_id: &str) {
    let status = err.status().as_u16();
    match err.side() {
        Side::Client => {
            tracing::debug!(%method, path, request_id, status, kind = err.kind(), error = %err, "request rejected")
        }
        Side::Upstream => {
            tracing::warn!(%method, path, request_id, status, kind = err.kind(), error = %err, "upstream failure")
        }
        Side::Internal => {
            tracing::error!(%method, path, request_id, status, kind = err.kind(), error = %err, "internal failure")
        }
    }
}

/// `Box::pin` of the future `make` returns, built in its box. `Box::pin(handler(..))` builds
/// the future on the stack and copies all of it, kilobytes not used until it runs, into the
/// box; allocated first, the box is where the compiler writes the future's initial state (its
/// arguments) and nothing more: about 500 instructions and 60 cache lines written a chat
/// request (callgrind).
fn boxed<F: Future>(make: impl FnOnce() -> F) -> Pin<Box<F>> {
    Box::into_pin(Box::write(Box::new_uninit(), make()))
}

/// A JSON response with status 200.
pub(crate) fn json_response(body: Vec<u8>) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::full(body));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_are_32_lowercase_hex_digits_and_differ() {
        let (a, b) = (new_id(), new_id());
        for id in [&a, &b] {
            assert_eq!(id.len(), 32, "{id}");
            assert!(id.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')), "{id}");
        }
        assert_ne!(a, b);
    }
}
