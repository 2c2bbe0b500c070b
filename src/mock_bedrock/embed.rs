//! The mock's InvokeModel for embedding models: Amazon Titan Text Embeddings (one text per
//! call, `dimensions` 256/512/1024, `inputTextTokenCount`) and Cohere Embed (`texts`, up to 96,
//! float embeddings, the input token count in `x-amzn-bedrock-input-token-count`). Vectors are
//! deterministic functions of the text, so tests can compare them across calls.

use http::{HeaderValue, Response, header};
use serde::Deserialize;

use super::reply::MockBody;
use super::{insert_request_id, validation_error};
use crate::json;

/// Cohere Embed's (and Titan v2's default) vector size.
const DEFAULT_DIMENSIONS: usize = 1024;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TitanRequest {
    input_text: String,
    dimensions: Option<usize>,
    #[serde(default)]
    normalize: bool,
}

#[derive(Deserialize)]
struct CohereRequest {
    texts: Vec<String>,
    input_type: String,
}

/// A deterministic vector for `text`: the same text always gives the same vector.
pub(super) fn vector(text: &str, dimensions: usize, normalize: bool) -> Vec<f32> {
    let seed = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let mut v: Vec<f32> = (0..dimensions as u64)
        .map(|i| {
            let x = (seed ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            ((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    if normalize {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            v.iter_mut().for_each(|x| *x /= norm);
        }
    }
    v
}

fn tokens(text: &str) -> u64 {
    text.split_whitespace().count().max(1) as u64
}

fn write_vector(out: &mut Vec<u8>, v: &[f32]) {
    out.push(b'[');
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json::write_f64(out, f64::from(*x));
    }
    out.push(b']');
}

/// Answers an InvokeModel call for `model_id`.
pub(super) fn invoke(request_id: &str, model_id: &str, body: &[u8]) -> Response<MockBody> {
    let invalid = |message: &str| validation_error(request_id, message);
    let mut scratch = body.to_vec();
    let mut out = Vec::with_capacity(16 * 1024);
    let mut input_tokens = 0;
    if model_id.contains("amazon.titan-embed-text") {
        let Ok(request) = simd_json::serde::from_slice::<TitanRequest>(&mut scratch) else {
            return invalid("Malformed input request: expected {\"inputText\": string, ...}");
        };
        let dimensions = request.dimensions.unwrap_or(DEFAULT_DIMENSIONS);
        if ![256, 512, 1024].contains(&dimensions) {
            return invalid("Malformed input request: dimensions must be 256, 512 or 1024");
        }
        input_tokens = tokens(&request.input_text);
        out.extend_from_slice(b"{\"embedding\":");
        write_vector(
            &mut out,
            &vector(&request.input_text, dimensions, request.normalize),
        );
        out.extend_from_slice(b",\"inputTextTokenCount\":");
        json::write_u64(&mut out, input_tokens);
        out.push(b'}');
    } else if model_id.contains("cohere.embed") {
        let Ok(request) = simd_json::serde::from_slice::<CohereRequest>(&mut scratch) else {
            return invalid(
                "Malformed input request: expected {\"texts\": [string], \"input_type\": string}",
            );
        };
        if request.texts.is_empty() || request.texts.len() > 96 || request.input_type.is_empty() {
            return invalid("Malformed input request: texts must hold 1 to 96 strings");
        }
        out.extend_from_slice(b"{\"id\":\"mock\",\"embeddings\":{\"float\":[");
        for (i, text) in request.texts.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            input_tokens += tokens(text);
            write_vector(&mut out, &vector(text, DEFAULT_DIMENSIONS, false));
        }
        out.extend_from_slice(b"]},\"response_type\":\"embeddings_by_type\"}");
    } else {
        return invalid("The mock Bedrock runtime answers InvokeModel for embedding models only.");
    }
    let mut response = Response::new(MockBody::full(out));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(
        "x-amzn-bedrock-input-token-count",
        HeaderValue::from(input_tokens),
    );
    insert_request_id(headers, request_id);
    response
}
