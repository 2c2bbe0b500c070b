//! `POST /v1/embeddings`: OpenAI embeddings over Bedrock InvokeModel (Titan Text Embeddings,
//! Cohere Embed). Titan takes one text per call, so the texts of an array input are sent one
//! after another on pooled connections; Cohere takes up to 96 per call.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response};
use hyper::body::Incoming;

use super::{Shared, json_response};
use crate::auth::Grant;
use crate::body;
use crate::body::ResponseBody;
use crate::body::sse::StreamOutcome;
use crate::error::{Error, InvalidRequest};
use crate::routing::ModelKind;
use crate::translate::embeddings::{self, EmbeddingFamily, EmbeddingRequest};
use crate::translate::response::Usage;

/// Largest number of texts in one request (OpenAI's own limit).
const MAX_INPUTS: usize = 2048;

/// Handles one embeddings request.
pub async fn handle(shared: &Shared, request: Request<Incoming>) -> Result<Response<ResponseBody>, Error> {
    let mut grant = Grant::from_request(&request);
    let body = body::collect(request.into_body(), shared.config.limits.max_body_bytes).await?;
    let parsed = EmbeddingRequest::parse(&body)?;
    let route = shared
        .models
        .get(&parsed.model)
        .ok_or_else(|| Error::ModelNotFound(parsed.model.as_str().into()))?;
    grant.authorize(&route, false)?;
    if route.kind != ModelKind::Embedding {
        return Err(InvalidRequest::invalid(
            "model",
            format!(
                "`{}` is a chat model; use an embedding model with /v1/embeddings",
                route.alias
            ),
        )
        .into());
    }
    let Some(family) = EmbeddingFamily::of(&route.model_id) else {
        return Err(InvalidRequest::unsupported_value(
            "model",
            format!(
                "`{}` is not an Amazon Titan Text Embeddings or Cohere Embed model",
                route.alias
            ),
        )
        .into());
    };
    if parsed.texts().len() > MAX_INPUTS {
        return Err(
            InvalidRequest::invalid("input", format!("at most {MAX_INPUTS} inputs per request")).into(),
        );
    }
    let bodies = embeddings::to_invoke_bodies(family, &parsed)?;

    let accept = [(
        HeaderName::from_static("accept"),
        HeaderValue::from_static("application/json"),
    )];
    let limit = usize::try_from(shared.config.limits.max_upstream_body_bytes).unwrap_or(usize::MAX);
    let mut vectors = Vec::with_capacity(parsed.texts().len());
    let mut prompt_tokens = 0;
    for invoke in bodies {
        let response = shared
            .upstream
            .send_request(
                route.invoke_uri.clone(),
                &route.host,
                &route.region,
                &accept,
                Bytes::from(invoke),
            )
            .await?;
        if !response.status().is_success() {
            return Err(shared.upstream.read_error(response).await);
        }
        let header_tokens = response
            .headers()
            .get("x-amzn-bedrock-input-token-count")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let reply = shared.upstream.read_body(response, limit).await?;
        let (mut batch, tokens) = embeddings::from_invoke_reply(family, &reply, header_tokens)?;
        vectors.append(&mut batch);
        prompt_tokens += tokens;
    }

    let usage = Usage {
        input_tokens: prompt_tokens,
        ..Usage::default()
    };
    let key: Arc<str> = grant.key_name().map_or_else(super::empty_label, Arc::from);
    shared.metrics.tokens(&route.label, &key, &usage);
    grant.settle(StreamOutcome::Ok, Some(usage));
    let mut out = Vec::with_capacity(vectors.iter().map(|v| v.len() * 12 + 64).sum());
    embeddings::write_response(
        &route.alias,
        &vectors,
        prompt_tokens,
        parsed.encoding_format,
        &mut out,
    );
    Ok(json_response(out))
}
