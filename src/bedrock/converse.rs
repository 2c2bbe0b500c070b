//! Converse wire types: the request body (serialized, borrowing the client's strings) and the
//! response body (deserialized in place), named and cased as in the service model
//! (reference: bedrock-converse §4, §5).

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::json;

// === request ===

/// The body of `POST /model/{modelId}/converse` and `/converse-stream`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseRequest<'a> {
    /// System prompt blocks; omitted when empty, since Bedrock rejects blank system text.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub system: Vec<SystemContentBlock<'a>>,
    /// The conversation: non-empty, starting with `user`, roles alternating.
    pub messages: Vec<Message<'a>>,
    /// Generation limits; omitted when nothing is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inference_config: Option<InferenceConfig<'a>>,
    /// Requested service tier; omitted for the default routing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<ServiceTier<'a>>,
}

/// The two roles Bedrock knows; there is no `system` or `tool` role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConversationRole {
    /// The human side, also carrying tool results.
    User,
    /// The model side.
    Assistant,
}

/// One conversation turn.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message<'a> {
    /// Who speaks.
    pub role: ConversationRole,
    /// What is said; never empty when sent.
    pub content: Vec<ContentBlock<'a>>,
}

/// A content block: a union serialized as an object with exactly one key.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ContentBlock<'a> {
    /// Non-empty text (`{"text": "…"}`).
    Text(&'a str),
}

/// A system prompt block (`{"text": "…"}`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum SystemContentBlock<'a> {
    /// Non-empty text.
    Text(&'a str),
}

/// `inferenceConfig`: every member optional; Bedrock falls back to the model's defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InferenceConfig<'a> {
    /// Upper bound on generated tokens (>= 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Sampling temperature, 0..=1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling, 0..=1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Non-empty stop strings.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stop_sequences: Vec<&'a str>,
}

impl InferenceConfig<'_> {
    /// Whether no member is set (the object is then left out of the request).
    pub fn is_empty(&self) -> bool {
        self.max_tokens.is_none()
            && self.temperature.is_none()
            && self.top_p.is_none()
            && self.stop_sequences.is_empty()
    }
}

/// `serviceTier` (`{"type": "priority" | "default" | "flex" | "reserved"}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceTier<'a> {
    /// The tier name.
    #[serde(rename = "type", borrow)]
    pub tier: &'a str,
}

// === response ===

/// The body of a successful Converse response. Members the gateway does not use (`metrics`,
/// `trace`, `performanceConfig`, `additionalModelResponseFields`) are skipped.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseResponse<'a> {
    /// The generated message; always present in a valid response.
    #[serde(borrow)]
    pub output: Option<ConverseOutput<'a>>,
    /// Why generation stopped (`end_turn`, `tool_use`, `max_tokens`, …).
    #[serde(borrow)]
    pub stop_reason: Option<&'a str>,
    /// Token counts.
    pub usage: Option<TokenUsage>,
    /// The tier that served the request.
    #[serde(borrow)]
    pub service_tier: Option<ServiceTier<'a>>,
}

/// `output`: a union whose only member is `message`.
#[derive(Debug, Deserialize)]
pub struct ConverseOutput<'a> {
    /// The assistant message.
    #[serde(borrow)]
    pub message: Option<OutputMessage<'a>>,
}

/// The assistant message in a Converse response.
#[derive(Debug, Deserialize)]
pub struct OutputMessage<'a> {
    /// Always `assistant` in practice.
    #[serde(borrow)]
    pub role: Option<&'a str>,
    /// The blocks, in output order.
    #[serde(borrow, default)]
    pub content: Vec<OutputContentBlock<'a>>,
}

/// One output block. The union is read as a flat struct: exactly one member is set, and
/// members the gateway does not surface (`reasoningContent`, `image`, …) are skipped.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputContentBlock<'a> {
    /// Generated text.
    #[serde(borrow)]
    pub text: Option<&'a str>,
    /// A tool call.
    #[serde(borrow)]
    pub tool_use: Option<ToolUseBlock<'a>>,
    /// Generated text with citations into supplied documents.
    #[serde(borrow)]
    pub citations_content: Option<CitationsContentBlock<'a>>,
}

/// `toolUse` in a response.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUseBlock<'a> {
    /// Bedrock's id (`tooluse_…`), returned to the client unchanged.
    pub tool_use_id: &'a str,
    /// The tool name.
    pub name: &'a str,
    /// The arguments as compact JSON; absent means `{}`.
    pub input: Option<Document>,
}

/// `citationsContent`: generated text split into cited pieces.
#[derive(Debug, Deserialize)]
pub struct CitationsContentBlock<'a> {
    /// The generated text pieces, in order.
    #[serde(borrow, default)]
    pub content: Vec<CitationGeneratedContent<'a>>,
}

/// One piece of generated text inside `citationsContent`.
#[derive(Debug, Deserialize)]
pub struct CitationGeneratedContent<'a> {
    /// The text.
    #[serde(borrow)]
    pub text: Option<&'a str>,
}

/// `usage` in a Converse response and in the stream's `metadata` event. `inputTokens` excludes
/// tokens read from or written to the prompt cache (reference: bedrock-converse §5.2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenUsage {
    /// Input tokens neither read from nor written to the cache.
    #[serde(default)]
    pub input_tokens: u64,
    /// Generated tokens, reasoning included.
    #[serde(default)]
    pub output_tokens: u64,
    /// Bedrock's total; the gateway computes its own from the parts.
    #[serde(default)]
    pub total_tokens: u64,
    /// Input tokens served from the prompt cache.
    #[serde(default)]
    pub cache_read_input_tokens: u64,
    /// Input tokens written to the prompt cache.
    #[serde(default)]
    pub cache_write_input_tokens: u64,
}

// === impl Document ===

/// An arbitrary JSON value (Smithy's "document", e.g. `toolUse.input`), re-encoded as compact
/// JSON while it is deserialized, without building a value tree.
///
/// Numbers go through the parser's `i64`/`u64`/`f64`, so an integer beyond 64 bits or a decimal
/// with more than 17 significant digits comes back rounded; floats are written in the shortest
/// form that round-trips (`21.0` stays `21.0`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Document(pub String);

impl<'de> Deserialize<'de> for Document {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut out = Vec::new();
        Transcode(&mut out).deserialize(deserializer)?;
        // Only `&str` contents and ASCII punctuation were written, so this cannot fail.
        String::from_utf8(out).map(Self).map_err(de::Error::custom)
    }
}

/// Writes the visited JSON value compactly into the buffer.
struct Transcode<'o>(&'o mut Vec<u8>);

impl<'de> DeserializeSeed<'de> for Transcode<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Transcode<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.0.extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.0.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        json::write_u64(self.0, v);
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        json::write_f64(self.0, v);
        Ok(())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        json::write_str(self.0, v);
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.0.extend_from_slice(b"null");
        Ok(())
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.0.push(b'[');
        let mut first = true;
        loop {
            let mark = self.0.len();
            if !first {
                self.0.push(b',');
            }
            if seq.next_element_seed(Transcode(&mut *self.0))?.is_none() {
                self.0.truncate(mark);
                break;
            }
            first = false;
        }
        self.0.push(b']');
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.0.push(b'{');
        let mut first = true;
        loop {
            let mark = self.0.len();
            if !first {
                self.0.push(b',');
            }
            if map.next_key_seed(KeyTranscode(&mut *self.0))?.is_none() {
                self.0.truncate(mark);
                break;
            }
            self.0.push(b':');
            map.next_value_seed(Transcode(&mut *self.0))?;
            first = false;
        }
        self.0.push(b'}');
        Ok(())
    }
}

/// Writes an object key as a JSON string.
struct KeyTranscode<'o>(&'o mut Vec<u8>);

impl<'de> DeserializeSeed<'de> for KeyTranscode<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyTranscode<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        json::write_str(self.0, v);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_request() -> ConverseRequest<'static> {
        ConverseRequest {
            system: vec![SystemContentBlock::Text("Be terse.")],
            messages: vec![Message {
                role: ConversationRole::User,
                content: vec![ContentBlock::Text("Hi \"there\"\n")],
            }],
            inference_config: Some(InferenceConfig {
                max_tokens: Some(64),
                temperature: Some(0.3),
                top_p: None,
                stop_sequences: vec!["END"],
            }),
            service_tier: None,
        }
    }

    #[test]
    fn request_serializes_camel_case_and_skips_unset_members() {
        let mut out = Vec::new();
        simd_json::serde::to_writer(&mut out, &mk_request()).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "system": [{"text": "Be terse."}],
                "messages": [{"role": "user", "content": [{"text": "Hi \"there\"\n"}]}],
                "inferenceConfig": {"maxTokens": 64, "temperature": 0.3, "stopSequences": ["END"]}
            })
        );
    }

    #[test]
    fn empty_system_and_inference_config_are_left_out() {
        let mut req = mk_request();
        req.system.clear();
        req.inference_config = None;
        let mut out = Vec::new();
        simd_json::serde::to_writer(&mut out, &req).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"messages":[{"role":"user","content":[{"text":"Hi \"there\"\n"}]}]}"#
        );
    }

    #[test]
    fn document_is_re_encoded_compactly() {
        let mut raw =
            br#"{"input": {"city" : "Paris", "days":[1, 2.5, -3], "ok":true, "n":null, "q":"a\"b\u00e9"}}"#
                .to_vec();
        #[derive(Deserialize)]
        struct Holder {
            input: Document,
        }
        let h: Holder = simd_json::serde::from_slice(&mut raw).unwrap();
        assert_eq!(
            h.input.0,
            r#"{"city":"Paris","days":[1,2.5,-3],"ok":true,"n":null,"q":"a\"bé"}"#
        );
    }

    #[test]
    fn empty_document_containers_stay_empty() {
        let mut raw = br#"{"input": {"a": {}, "b": []}}"#.to_vec();
        #[derive(Deserialize)]
        struct Holder {
            input: Document,
        }
        let h: Holder = simd_json::serde::from_slice(&mut raw).unwrap();
        assert_eq!(h.input.0, r#"{"a":{},"b":[]}"#);
    }

    #[test]
    fn response_skips_unknown_members() {
        let mut raw = br#"{"output":{"message":{"role":"assistant","content":[
            {"reasoningContent":{"reasoningText":{"text":"hmm","signature":"x"}}},
            {"text":"Hello"},
            {"toolUse":{"toolUseId":"tooluse_1","name":"f","input":{}}}]}},
            "stopReason":"tool_use","usage":{"inputTokens":3,"outputTokens":4,"totalTokens":7},
            "metrics":{"latencyMs":5},"p":"abc"}"#
            .to_vec();
        let r: ConverseResponse<'_> = simd_json::serde::from_slice(&mut raw).unwrap();
        let content = &r.output.unwrap().message.unwrap().content;
        assert_eq!(content.len(), 3);
        assert!(content[0].text.is_none() && content[0].tool_use.is_none());
        assert_eq!(content[1].text, Some("Hello"));
        assert_eq!(content[2].tool_use.as_ref().unwrap().tool_use_id, "tooluse_1");
        assert_eq!(r.stop_reason, Some("tool_use"));
        assert_eq!(r.usage.unwrap().cache_read_input_tokens, 0);
    }
}
