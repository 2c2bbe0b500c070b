//! OpenAI embeddings ↔ Bedrock InvokeModel for Amazon Titan Text Embeddings v2 and Cohere
//! Embed (v3 and later).
//!
//! Titan takes one text per call, so an array input becomes one InvokeModel body per string;
//! Cohere takes up to 96 texts in one call. Either way the reply is one OpenAI `list` of
//! `embedding` objects in input order. `encoding_format: base64` is the little-endian `f32`
//! bytes of each vector in standard base64, as OpenAI sends it.

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::error::{Error, InvalidRequest};
use crate::json;

/// Cohere Embed's limit on texts per call.
pub const COHERE_MAX_TEXTS: usize = 96;
/// Titan Text Embeddings v2's output sizes.
pub const TITAN_DIMENSIONS: [u32; 3] = [256, 512, 1024];

/// Which embedding API a Bedrock model speaks, from its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbeddingFamily {
    /// `amazon.titan-embed-text-v2:0` (and v1, which ignores `dimensions`).
    Titan,
    /// `cohere.embed-english-v3`, `cohere.embed-multilingual-v3`, `cohere.embed-v4:0`.
    Cohere,
}

impl EmbeddingFamily {
    /// The family of a Bedrock model id (inference-profile prefixes and ARNs allowed).
    pub fn of(model_id: &str) -> Option<Self> {
        let resource = model_id.rsplit('/').next().unwrap_or(model_id);
        if resource.contains("amazon.titan-embed-text") {
            Some(Self::Titan)
        } else if resource.contains("cohere.embed") {
            Some(Self::Cohere)
        } else {
            None
        }
    }
}

/// `encoding_format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncodingFormat {
    /// JSON numbers.
    #[default]
    Float,
    /// Base64 of little-endian `f32`s.
    Base64,
}

/// `input`: one string or several.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingInput {
    /// One text.
    One(String),
    /// Several texts.
    Many(Vec<String>),
}

/// An OpenAI embeddings request. Token-array inputs are not accepted: Bedrock takes text.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingRequest {
    /// The alias.
    pub model: String,
    /// The text(s).
    pub input: EmbeddingInput,
    /// Output size (Titan v2: 256, 512 or 1024).
    pub dimensions: Option<u32>,
    /// `float` (default) or `base64`.
    #[serde(default)]
    pub encoding_format: EncodingFormat,
    /// Ignored.
    pub user: Option<String>,
}

impl EmbeddingRequest {
    /// Parses a request body; errors name the field.
    pub fn parse(body: &[u8]) -> Result<Self, InvalidRequest> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(InvalidRequest {
                message: "could not parse the JSON body: the body is empty".into(),
                param: None,
                code: None,
            });
        }
        let mut scratch = body.to_vec();
        simd_json::serde::from_slice::<Self>(&mut scratch).map_err(|e| {
            let text = e.to_string();
            let param = ["model", "input", "dimensions", "encoding_format", "user"]
                .into_iter()
                .find(|field| text.contains(&format!("`{field}`")))
                .unwrap_or("input");
            InvalidRequest::invalid(
                param,
                format!("invalid embeddings request: {text} (input must be a string or an array of strings)"),
            )
        })
    }

    /// The texts, in order.
    pub fn texts(&self) -> Vec<&str> {
        match &self.input {
            EmbeddingInput::One(s) => vec![s.as_str()],
            EmbeddingInput::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TitanBody<'a> {
    input_text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    dimensions: Option<u32>,
    normalize: bool,
}

#[derive(Serialize)]
struct CohereBody<'a> {
    texts: &'a [&'a str],
    input_type: &'static str,
    embedding_types: [&'static str; 1],
}

/// The InvokeModel bodies for a request: one per text for Titan, one per 96 texts for Cohere.
pub fn to_invoke_bodies(
    family: EmbeddingFamily,
    request: &EmbeddingRequest,
) -> Result<Vec<Vec<u8>>, InvalidRequest> {
    let texts = request.texts();
    if texts.is_empty() {
        return Err(InvalidRequest::invalid("input", "input must not be empty"));
    }
    if let Some(i) = texts.iter().position(|t| t.trim().is_empty()) {
        return Err(InvalidRequest::invalid(
            format!("input[{i}]"),
            "input texts must not be empty",
        ));
    }
    match family {
        EmbeddingFamily::Titan => {
            if let Some(d) = request.dimensions
                && !TITAN_DIMENSIONS.contains(&d)
            {
                return Err(InvalidRequest::unsupported_value(
                    "dimensions",
                    format!("Titan Text Embeddings v2 supports dimensions 256, 512 or 1024, not {d}"),
                ));
            }
            texts
                .iter()
                .map(|text| {
                    to_json(&TitanBody {
                        input_text: text,
                        dimensions: request.dimensions,
                        normalize: true,
                    })
                })
                .collect()
        }
        EmbeddingFamily::Cohere => {
            if request.dimensions.is_some() {
                return Err(InvalidRequest::unsupported_parameter(
                    "dimensions",
                    "Cohere Embed on Bedrock returns a fixed size; remove `dimensions`",
                ));
            }
            texts
                .chunks(COHERE_MAX_TEXTS)
                .map(|chunk| {
                    to_json(&CohereBody {
                        texts: chunk,
                        input_type: "search_document",
                        embedding_types: ["float"],
                    })
                })
                .collect()
        }
    }
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, InvalidRequest> {
    simd_json::serde::to_vec(value)
        .map_err(|e| InvalidRequest::invalid("input", format!("cannot encode the request: {e}")))
}

#[derive(Deserialize)]
struct TitanReply {
    embedding: Vec<f32>,
    #[serde(rename = "inputTextTokenCount", default)]
    tokens: u64,
}

#[derive(Deserialize)]
struct CohereReply {
    embeddings: CohereEmbeddings,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum CohereEmbeddings {
    ByType { float: Vec<Vec<f32>> },
    Plain(Vec<Vec<f32>>),
}

/// Vectors and the input token count read from one InvokeModel reply. `header_tokens` is
/// Bedrock's `x-amzn-bedrock-input-token-count`, used when the body has no count (Cohere).
pub fn from_invoke_reply(
    family: EmbeddingFamily,
    body: &[u8],
    header_tokens: Option<u64>,
) -> Result<(Vec<Vec<f32>>, u64), Error> {
    let mut scratch = body.to_vec();
    let bad =
        |e: simd_json::Error| Error::UpstreamProtocol(format!("unreadable embeddings reply: {e}").into());
    match family {
        EmbeddingFamily::Titan => {
            let reply: TitanReply = simd_json::serde::from_slice(&mut scratch).map_err(bad)?;
            let tokens = if reply.tokens > 0 {
                reply.tokens
            } else {
                header_tokens.unwrap_or(0)
            };
            Ok((vec![reply.embedding], tokens))
        }
        EmbeddingFamily::Cohere => {
            let reply: CohereReply = simd_json::serde::from_slice(&mut scratch).map_err(bad)?;
            let vectors = match reply.embeddings {
                CohereEmbeddings::ByType { float } => float,
                CohereEmbeddings::Plain(v) => v,
            };
            Ok((vectors, header_tokens.unwrap_or(0)))
        }
    }
}

/// Writes the OpenAI `list` of embeddings.
pub fn write_response(
    model: &str,
    vectors: &[Vec<f32>],
    prompt_tokens: u64,
    format: EncodingFormat,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(b"{\"object\":\"list\",\"data\":[");
    for (index, vector) in vectors.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"object\":\"embedding\",\"index\":");
        json::write_u64(out, index as u64);
        out.extend_from_slice(b",\"embedding\":");
        match format {
            EncodingFormat::Float => {
                out.push(b'[');
                for (i, x) in vector.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    json::write_f64(out, f64::from(*x));
                }
                out.push(b']');
            }
            EncodingFormat::Base64 => {
                let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                out.push(b'"');
                out.extend_from_slice(base64::engine::general_purpose::STANDARD.encode(bytes).as_bytes());
                out.push(b'"');
            }
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"],\"model\":");
    json::write_str(out, model);
    out.extend_from_slice(b",\"usage\":{\"prompt_tokens\":");
    json::write_u64(out, prompt_tokens);
    out.extend_from_slice(b",\"total_tokens\":");
    json::write_u64(out, prompt_tokens);
    out.extend_from_slice(b"}}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(json: &str) -> EmbeddingRequest {
        EmbeddingRequest::parse(json.as_bytes()).unwrap()
    }

    #[test]
    fn families_from_model_ids() {
        assert_eq!(
            EmbeddingFamily::of("amazon.titan-embed-text-v2:0"),
            Some(EmbeddingFamily::Titan)
        );
        assert_eq!(
            EmbeddingFamily::of("cohere.embed-english-v3"),
            Some(EmbeddingFamily::Cohere)
        );
        assert_eq!(
            EmbeddingFamily::of("us.cohere.embed-v4:0"),
            Some(EmbeddingFamily::Cohere)
        );
        assert_eq!(
            EmbeddingFamily::of("anthropic.claude-3-haiku-20240307-v1:0"),
            None
        );
    }

    #[test]
    fn titan_gets_one_body_per_text_with_dimensions() {
        let r = request(r#"{"model":"t","input":["a","b"],"dimensions":256}"#);
        let bodies = to_invoke_bodies(EmbeddingFamily::Titan, &r).unwrap();
        let parsed: Vec<serde_json::Value> = bodies
            .iter()
            .map(|b| serde_json::from_slice(b).unwrap())
            .collect();
        assert_eq!(
            parsed[0],
            serde_json::json!({"inputText": "a", "dimensions": 256, "normalize": true})
        );
        assert_eq!(parsed[1]["inputText"], "b");
    }

    #[test]
    fn titan_rejects_unsupported_dimensions() {
        let r = request(r#"{"model":"t","input":"a","dimensions":300}"#);
        let e = to_invoke_bodies(EmbeddingFamily::Titan, &r).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("dimensions"));
    }

    #[test]
    fn cohere_batches_up_to_96_texts_per_call() {
        let texts: Vec<String> = (0..100).map(|i| format!("t{i}")).collect();
        let body = serde_json::json!({"model": "c", "input": texts}).to_string();
        let bodies = to_invoke_bodies(EmbeddingFamily::Cohere, &request(&body)).unwrap();
        assert_eq!(bodies.len(), 2);
        let first: serde_json::Value = serde_json::from_slice(&bodies[0]).unwrap();
        assert_eq!(first["texts"].as_array().unwrap().len(), 96);
        assert_eq!(first["input_type"], "search_document");
    }

    #[test]
    fn bad_input_names_the_field() {
        let e = EmbeddingRequest::parse(br#"{"model":"t","input":[1,2,3]}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("input"));
        let e = to_invoke_bodies(
            EmbeddingFamily::Titan,
            &request(r#"{"model":"t","input":["ok",""]}"#),
        )
        .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("input[1]"));
        assert!(EmbeddingRequest::parse(br#"{"model":"t","input":"x","extra":1}"#).is_err());
    }

    #[test]
    fn replies_and_both_encodings() {
        let (v, tokens) = from_invoke_reply(
            EmbeddingFamily::Titan,
            br#"{"embedding":[0.5,-1.0],"inputTextTokenCount":3}"#,
            None,
        )
        .unwrap();
        assert_eq!((v.clone(), tokens), (vec![vec![0.5, -1.0]], 3));
        let (c, t) = from_invoke_reply(
            EmbeddingFamily::Cohere,
            br#"{"embeddings":{"float":[[1.0],[2.0]]},"id":"x"}"#,
            Some(7),
        )
        .unwrap();
        assert_eq!((c.len(), t), (2, 7));

        let mut out = Vec::new();
        write_response("m", &v, 3, EncodingFormat::Float, &mut out);
        let j: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(j["data"][0]["embedding"], serde_json::json!([0.5, -1.0]));
        assert_eq!(j["usage"]["prompt_tokens"], 3);

        out.clear();
        write_response("m", &v, 3, EncodingFormat::Base64, &mut out);
        let j: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(j["data"][0]["embedding"].as_str().unwrap())
            .unwrap();
        let floats: Vec<f32> = bytes
            .chunks(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        assert_eq!(floats, vec![0.5, -1.0]);
    }
}
