//! `POST /v1/chat/completions`: read, parse once, route, translate, sign, send, respond.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, header};
use hyper::body::Incoming;

use super::{Shared, json_response};
use crate::auth::Grant;
use crate::bedrock::eventstream::EventDecoder;
use crate::body::sse::{EndHook, SseBody, StreamOutcome};
use crate::body::{self, ResponseBody};
use crate::error::Error;
use crate::metrics::{Endpoint, Outcome};
use crate::openai::request::ChatCompletionRequest;
use crate::routing::Route;
use crate::translate::request::{Context, Ignored, Translation};
use crate::translate::response::{ResponseMeta, Usage, to_chat_completion_with};
use crate::translate::stream::StreamTranslator;
use crate::translate::{self};
use crate::upstream::{Operation, UpstreamBody, breaker, retry};

/// Handles one chat completion, streaming or not, and counts it in the metrics with its
/// model (streams when their headers go out; their end is counted by the stream). `started`
/// is when the request arrived.
pub async fn handle(
    shared: &Shared,
    request: Request<Incoming>,
    request_id: &str,
    started: Instant,
) -> Result<Response<ResponseBody>, Error> {
    let mut routed = None;
    let result = respond(shared, request, request_id, started, &mut routed).await;
    let metrics = &shared.metrics;
    let model = || {
        routed
            .as_ref()
            .map_or_else(super::empty_label, |r| Arc::clone(&r.label))
    };
    match (&result, &routed) {
        (Ok(response), Some(route)) if response.status().is_success() => {
            route.series(metrics).chat_ok(started.elapsed());
        }
        (Ok(response), _) => metrics.request(
            Endpoint::chat_completions,
            &model(),
            response.status(),
            started.elapsed(),
        ),
        (Err(err), _) => {
            let model = model();
            metrics.request(
                Endpoint::chat_completions,
                &model,
                err.status(),
                started.elapsed(),
            );
            if matches!(
                err,
                Error::Upstream { .. } | Error::UpstreamConnect(_) | Error::UpstreamTimeout(_)
            ) {
                metrics.upstream_error(&model, err.upstream_name());
            }
        }
    }
    result
}

async fn respond(
    shared: &Shared,
    request: Request<Incoming>,
    request_id: &str,
    started: Instant,
    routed: &mut Option<Arc<Route>>,
) -> Result<Response<ResponseBody>, Error> {
    let mut grant = Grant::from_request(&request);
    let mut body = body::collect(request.into_body(), shared.config.limits.max_body_bytes).await?;
    let body_len = body.len();

    // Parse and translate in one block: the parsed request borrows `body` and is gone before
    // the first await on the upstream. The only await inside is fetching image URLs, when that
    // is enabled and the request has any.
    let (route, stream, include_usage, primary, fallbacks) = {
        let parsed = ChatCompletionRequest::parse(&mut body)?;
        let route = shared
            .models
            .get(parsed.model)
            .ok_or_else(|| Error::ModelNotFound(parsed.model.into()))?;
        *routed = Some(Arc::clone(&route));
        if route.kind == crate::routing::ModelKind::Embedding {
            return Err(crate::error::InvalidRequest::invalid(
                "model",
                format!(
                    "`{}` is an embedding model; use it with /v1/embeddings",
                    route.alias
                ),
            )
            .into());
        }
        grant.authorize(&route, parsed.stream)?;
        let fetch = &shared.config.translate.image_fetch;
        let remote = if fetch.enabled {
            translate::request::remote_images(&parsed)
        } else {
            Vec::new()
        };
        let images = if remote.is_empty() {
            Vec::new()
        } else {
            crate::upstream::fetch::fetch_images(fetch, &remote).await?
        };
        let primary = translate_for(shared, &parsed, &images, Arc::clone(&route), body_len)?;
        // Each fallback with its own model's options (a fallback may lack prompt caching,
        // structured output or reasoning the first model has); one the request cannot be
        // translated for is left out: it could only answer 400.
        let fallbacks = route
            .fallbacks
            .iter()
            .filter_map(|alias| shared.models.get(alias))
            .filter(|target| target.kind != crate::routing::ModelKind::Embedding)
            .filter_map(|target| {
                translate_for(shared, &parsed, &images, Arc::clone(&target), body_len)
                    .inspect_err(|e| {
                        tracing::debug!(model = %target.alias, error = %e.message, "fallback left out: the request does not translate for it");
                    })
                    .ok()
            })
            .collect();
        (route, parsed.stream, parsed.include_usage(), primary, fallbacks)
    };

    let operation = if stream {
        Operation::ConverseStream
    } else {
        Operation::Converse
    };
    let sent = Instant::now();
    let (
        upstream,
        Prepared {
            target: served_by,
            translation,
            ..
        },
    ) = send_with_fallbacks(shared, &route, operation, primary, fallbacks).await?;
    let series = route.series(&shared.metrics);
    series.upstream_headers(sent.elapsed());
    let key: Arc<str> = grant.key_name().map_or_else(super::empty_label, Arc::from);
    let id = completion_id(&upstream, request_id);
    let meta = ResponseMeta {
        id: &id,
        created: unix_now(),
        model: &route.alias,
    };

    if stream {
        let translator = StreamTranslator::with_shape(&meta, include_usage, translation.response);
        let decoder = EventDecoder::new(shared.config.limits.max_event_bytes);
        // The id is kept for the access line only when that line will be written.
        let logged_id =
            tracing::enabled!(target: ACCESS_LOG, tracing::Level::INFO).then(|| request_id.to_owned());
        let metrics = Arc::clone(&shared.metrics);
        let ended = Arc::clone(&route);
        let in_flight = metrics.stream_in_flight();
        let hook: EndHook = Box::new(move |outcome, usage| {
            if let Some(request_id) = &logged_id {
                log_access(request_id, &ended.alias, true, outcome, usage, started);
            }
            let series = ended.series(&metrics);
            series.stream_end(Outcome::from(outcome), started.elapsed());
            if let Some(usage) = &usage {
                series.tokens(&metrics, &ended.label, &key, usage);
            }
            drop(in_flight);
            grant.settle(outcome, usage);
        });
        let sse = SseBody::start(
            upstream.into_body(),
            decoder,
            translator,
            shared.config.timeouts.idle(),
            Some(hook),
        )
        .await?;
        series.first_event(sent.elapsed(), started.elapsed());
        let mut response = Response::new(ResponseBody::Sse(Box::new(sse)));
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream; charset=utf-8"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert(X_ACCEL_BUFFERING, HeaderValue::from_static("no"));
        insert_ignored(headers, &translation.ignored);
        insert_served_by(headers, &route, &served_by);
        Ok(response)
    } else {
        let mut reply = shared
            .upstream
            .read_body(upstream, limit(shared.config.limits.max_upstream_body_bytes))
            .await?;
        let mut out = Vec::with_capacity(reply.len() + 256);
        let usage = to_chat_completion_with(&mut reply, &meta, &translation.response, &mut out)?;
        series.tokens(&shared.metrics, &route.label, &key, &usage);
        grant.settle(StreamOutcome::Ok, Some(usage));
        log_access(
            request_id,
            &route.alias,
            false,
            StreamOutcome::Ok,
            Some(usage),
            started,
        );
        let mut response = json_response(out);
        insert_ignored(response.headers_mut(), &translation.ignored);
        insert_served_by(response.headers_mut(), &route, &served_by);
        Ok(response)
    }
}

/// Tells nginx-style proxies in front of the sidecar not to buffer a stream.
const X_ACCEL_BUFFERING: http::HeaderName = http::HeaderName::from_static("x-accel-buffering");

/// Response header listing the request fields that were accepted without effect.
pub const IGNORED_PARAMS_HEADER: &str = "x-ai-gateway-ignored-params";

/// Response header naming the fallback that served a request (absent when the model itself did).
pub const SERVED_BY_HEADER: &str = "x-ai-gateway-served-by";

fn insert_served_by(headers: &mut http::HeaderMap, route: &Route, served_by: &Route) {
    if served_by.alias != route.alias
        && let Ok(value) = HeaderValue::from_str(&served_by.alias)
    {
        headers.insert(SERVED_BY_HEADER, value);
    }
}

/// The request translated for one target: the route itself or one of its fallbacks.
struct Prepared {
    target: Arc<Route>,
    body: Bytes,
    translation: Translation,
}

/// The request translated for `target`, with that model's options, into a body of about
/// `request_len` bytes.
fn translate_for(
    shared: &Shared,
    parsed: &ChatCompletionRequest<'_>,
    images: &[translate::request::FetchedImage],
    target: Arc<Route>,
    request_len: usize,
) -> Result<Prepared, crate::error::InvalidRequest> {
    let mut body = Vec::with_capacity(request_len + 256);
    let cx = Context {
        options: &shared.request_options,
        model: &target.options,
        images,
    };
    let translation = translate::request::to_converse_with(parsed, &cx, &mut body)?;
    Ok(Prepared {
        target,
        body: Bytes::from(body),
        translation,
    })
}

/// Sends to the route, then to each of its fallbacks in turn while the failure is one a
/// fallback may answer (throttling, 5xx, unreachable; each target already retried per
/// `bedrock.retries`). Targets whose circuit breaker is open are skipped, unless every one is.
/// Returns the response with the translation of the target that gave it.
async fn send_with_fallbacks(
    shared: &Shared,
    route: &Arc<Route>,
    operation: Operation,
    primary: Prepared,
    fallbacks: Vec<Prepared>,
) -> Result<(Response<UpstreamBody>, Prepared), Error> {
    if fallbacks.is_empty() {
        let response = attempt(shared, route, &primary.target, operation, primary.body.clone()).await?;
        return Ok((response, primary));
    }
    let targets = breaker::usable(
        std::iter::once(primary).chain(fallbacks).collect(),
        |t: &Prepared| &t.target.breaker,
        monotonic_ms(),
        breaker::DEFAULT_COOL_DOWN,
    );
    let mut last = None;
    for prepared in targets {
        match attempt(shared, route, &prepared.target, operation, prepared.body.clone()).await {
            Ok(response) => return Ok((response, prepared)),
            Err(error) if retry::is_retryable(&error) => last = Some(error),
            Err(error) => return Err(error),
        }
    }
    Err(last.unwrap_or(Error::Internal("no target to send to")))
}

/// Sends to one target for `route`, keeping the target's circuit breaker and the fallback
/// count up to date.
async fn attempt(
    shared: &Shared,
    route: &Route,
    target: &Route,
    operation: Operation,
    body: Bytes,
) -> Result<Response<UpstreamBody>, Error> {
    match shared.upstream.send(target, operation, body).await {
        Ok(response) => {
            target.breaker.succeeded();
            if target.alias != route.alias {
                shared.metrics.fallback(&route.label, &target.label);
            }
            Ok(response)
        }
        Err(error) => {
            if retry::is_retryable(&error)
                && target.breaker.failed(
                    monotonic_ms(),
                    breaker::DEFAULT_THRESHOLD,
                    breaker::DEFAULT_COOL_DOWN,
                )
            {
                tracing::warn!(model = %target.alias, "circuit breaker opened; fallbacks are used for a while");
            }
            Err(error)
        }
    }
}

/// Milliseconds on a monotonic clock (since the first call).
fn monotonic_ms() -> u64 {
    static START: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);
    START.elapsed().as_millis() as u64
}

/// Names what the gateway ignored, so nothing is dropped without the client being able to see.
fn insert_ignored(headers: &mut http::HeaderMap, ignored: &Ignored) {
    if ignored.is_empty() {
        return;
    }
    if let Ok(value) = HeaderValue::from_str(&ignored.to_string()) {
        headers.insert(IGNORED_PARAMS_HEADER, value);
    }
}

fn limit(bytes: u64) -> usize {
    usize::try_from(bytes).unwrap_or(usize::MAX)
}

/// `chatcmpl-` + Bedrock's request id, so a client's id leads straight to Bedrock's logs.
fn completion_id<B>(upstream: &Response<B>, request_id: &str) -> String {
    let amzn = upstream
        .headers()
        .get("x-amzn-requestid")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128);
    let suffix = amzn.unwrap_or(request_id);
    let mut id = String::with_capacity(9 + suffix.len());
    id.push_str("chatcmpl-");
    id.push_str(suffix);
    id
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The target of the one line logged per chat completion.
const ACCESS_LOG: &str = "ai_gateway::access";

fn log_access(
    request_id: &str,
    model: &str,
    stream: bool,
    outcome: StreamOutcome,
    usage: Option<Usage>,
    started: Instant,
) {
    let usage = usage.unwrap_or_default();
    tracing::info!(
        target: ACCESS_LOG,
        request_id,
        model,
        stream,
        outcome = outcome.as_str(),
        prompt_tokens = usage.prompt_tokens(),
        completion_tokens = usage.output_tokens,
        cached_tokens = usage.cache_read_tokens,
        duration_ms = started.elapsed().as_millis() as u64,
        "chat completion"
    );
}
