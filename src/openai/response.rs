//! `chat.completion` and `chat.completion.chunk` writers: JSON written straight into the
//! caller's buffer, numbers through `itoa`, strings escaped in place, no intermediate values.
//!
//! Key order follows what OpenAI sends (reference: openai-chat §5, §6.2; mapping §7.4).

use bytes::BufMut;

use crate::json;

/// The OpenAI `usage` object, computed from Bedrock's counts (reference: mapping §6.2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompletionUsage {
    /// All input tokens, cached and cache-written ones included.
    pub prompt_tokens: u64,
    /// Generated tokens.
    pub completion_tokens: u64,
    /// `prompt_tokens + completion_tokens`.
    pub total_tokens: u64,
    /// `prompt_tokens_details.cached_tokens`: input served from the prompt cache.
    pub cached_tokens: u64,
    /// `prompt_tokens_details.cache_write_tokens`: input written to the prompt cache.
    pub cache_write_tokens: u64,
}

/// Writes the `usage` object. `completion_tokens_details` is left out: Bedrock does not break
/// out reasoning tokens, and a made-up 0 would mislead.
pub fn write_usage<B: BufMut>(out: &mut B, usage: &CompletionUsage) {
    out.put_slice(b"{\"prompt_tokens\":");
    json::write_u64(out, usage.prompt_tokens);
    out.put_slice(b",\"completion_tokens\":");
    json::write_u64(out, usage.completion_tokens);
    out.put_slice(b",\"total_tokens\":");
    json::write_u64(out, usage.total_tokens);
    out.put_slice(b",\"prompt_tokens_details\":{\"cached_tokens\":");
    json::write_u64(out, usage.cached_tokens);
    out.put_slice(b",\"cache_write_tokens\":");
    json::write_u64(out, usage.cache_write_tokens);
    out.put_slice(b"}}");
}

/// One tool call of a non-streamed assistant message.
#[derive(Debug, Clone, Copy)]
pub struct ToolCall<'a> {
    /// The call id, Bedrock's `toolUseId` unchanged.
    pub id: &'a str,
    /// The function name.
    pub name: &'a str,
    /// The arguments as compact JSON text (sent as a JSON string).
    pub arguments: &'a str,
}

/// The reasoning of a non-streamed assistant message (gateway extension, reference: mapping
/// §6.3): `reasoning_content`, `reasoning_signature` and `redacted_reasoning`, each left out
/// when empty. A client sends them back on the assistant message to continue a conversation
/// with extended thinking.
#[derive(Debug, Clone, Copy, Default)]
pub struct MessageReasoning<'a> {
    /// Reasoning text pieces, concatenated into `reasoning_content`.
    pub text: &'a [&'a str],
    /// The signature over the reasoning text.
    pub signature: Option<&'a str>,
    /// Encrypted reasoning blocks (base64).
    pub redacted: &'a [&'a str],
}

/// Everything a `chat.completion` body holds besides its constants.
#[derive(Debug, Clone, Copy)]
pub struct ChatCompletion<'a> {
    /// `chatcmpl-…`.
    pub id: &'a str,
    /// Unix seconds.
    pub created: u64,
    /// The alias the client asked for.
    pub model: &'a str,
    /// Text pieces concatenated into `message.content`. With no pieces, `content` is `null` when
    /// there are tool calls and `""` otherwise.
    pub content: &'a [&'a str],
    /// The model's reasoning (extension members).
    pub reasoning: MessageReasoning<'a>,
    /// `message.tool_calls`; the member is left out when empty.
    pub tool_calls: &'a [ToolCall<'a>],
    /// `message.function_call` (deprecated form, for clients that sent `functions`); its `id`
    /// is not sent.
    pub function_call: Option<ToolCall<'a>>,
    /// `stop`, `length`, `tool_calls` or `content_filter`.
    pub finish_reason: &'a str,
    /// Token counts.
    pub usage: CompletionUsage,
    /// The tier that served the request, echoed when Bedrock reports one.
    pub service_tier: Option<&'a str>,
}

/// Writes a complete `chat.completion` body.
pub fn write_chat_completion<B: BufMut>(out: &mut B, c: &ChatCompletion<'_>) {
    out.put_slice(b"{\"id\":");
    json::write_str(out, c.id);
    out.put_slice(b",\"object\":\"chat.completion\",\"created\":");
    json::write_u64(out, c.created);
    out.put_slice(b",\"model\":");
    json::write_str(out, c.model);
    out.put_slice(b",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
    if c.content.is_empty() && (!c.tool_calls.is_empty() || c.function_call.is_some()) {
        out.put_slice(b"null");
    } else {
        write_joined(out, c.content);
    }
    if !c.reasoning.text.is_empty() {
        out.put_slice(b",\"reasoning_content\":");
        write_joined(out, c.reasoning.text);
    }
    if let Some(signature) = c.reasoning.signature {
        out.put_slice(b",\"reasoning_signature\":");
        json::write_str(out, signature);
    }
    if !c.reasoning.redacted.is_empty() {
        out.put_slice(b",\"redacted_reasoning\":[");
        for (i, data) in c.reasoning.redacted.iter().enumerate() {
            if i > 0 {
                out.put_u8(b',');
            }
            json::write_str(out, data);
        }
        out.put_u8(b']');
    }
    out.put_slice(b",\"refusal\":null");
    if let Some(call) = c.function_call {
        out.put_slice(b",\"function_call\":{\"name\":");
        json::write_str(out, call.name);
        out.put_slice(b",\"arguments\":");
        json::write_str(out, call.arguments);
        out.put_u8(b'}');
    }
    if !c.tool_calls.is_empty() {
        out.put_slice(b",\"tool_calls\":[");
        for (i, call) in c.tool_calls.iter().enumerate() {
            if i > 0 {
                out.put_u8(b',');
            }
            out.put_slice(b"{\"id\":");
            json::write_str(out, call.id);
            out.put_slice(b",\"type\":\"function\",\"function\":{\"name\":");
            json::write_str(out, call.name);
            out.put_slice(b",\"arguments\":");
            json::write_str(out, call.arguments);
            out.put_slice(b"}}");
        }
        out.put_u8(b']');
    }
    out.put_slice(b"},\"logprobs\":null,\"finish_reason\":");
    json::write_str(out, c.finish_reason);
    out.put_slice(b"}],\"usage\":");
    write_usage(out, &c.usage);
    if let Some(tier) = c.service_tier {
        out.put_slice(b",\"service_tier\":");
        json::write_str(out, tier);
    }
    out.put_slice(b",\"system_fingerprint\":null}");
}

/// Writes the pieces as one JSON string.
fn write_joined<B: BufMut>(out: &mut B, pieces: &[&str]) {
    out.put_u8(b'"');
    for piece in pieces {
        json::write_str_contents(out, piece);
    }
    out.put_u8(b'"');
}

// === impl ChunkWriter ===

/// Writes the SSE records of one stream. The constant head of every chunk (`id`, `object`,
/// `created`, `model`) is rendered once, when the stream starts.
#[derive(Debug, Clone)]
pub struct ChunkWriter {
    /// `data: {"id":…,"object":"chat.completion.chunk","created":…,"model":…,"choices":[`
    head: Vec<u8>,
    /// What closes a chunk that carries a choice: `,"usage":null` is present on every such chunk
    /// when the client asked for usage (reference: openai-chat §6.2).
    tail: &'static [u8],
}

/// The record that ends a successful stream.
pub const DONE_RECORD: &[u8] = b"data: [DONE]\n\n";

const CHOICE_OPEN: &[u8] = b"{\"index\":0,\"delta\":";
const CHOICE_CLOSE: &[u8] = b",\"logprobs\":null,\"finish_reason\":";

impl ChunkWriter {
    /// Renders the constant head for a stream.
    pub fn new(id: &str, created: u64, model: &str, include_usage: bool) -> Self {
        let mut head = Vec::with_capacity(96 + id.len() + model.len());
        head.extend_from_slice(b"data: {\"id\":");
        json::write_str(&mut head, id);
        head.extend_from_slice(b",\"object\":\"chat.completion.chunk\",\"created\":");
        json::write_u64(&mut head, created);
        head.extend_from_slice(b",\"model\":");
        json::write_str(&mut head, model);
        head.extend_from_slice(b",\"choices\":[");
        let tail: &'static [u8] = if include_usage {
            b"}],\"usage\":null}\n\n"
        } else {
            b"}]}\n\n"
        };
        Self { head, tail }
    }

    fn open<B: BufMut>(&self, out: &mut B) {
        out.put_slice(&self.head);
        out.put_slice(CHOICE_OPEN);
    }

    fn close<B: BufMut>(&self, out: &mut B, finish_reason: Option<&str>) {
        out.put_slice(CHOICE_CLOSE);
        match finish_reason {
            Some(reason) => json::write_str(out, reason),
            None => out.put_slice(b"null"),
        }
        out.put_slice(self.tail);
    }

    /// The first chunk: `delta: {"role":"assistant","content":""}`.
    pub fn role<B: BufMut>(&self, out: &mut B) {
        self.open(out);
        out.put_slice(b"{\"role\":\"assistant\",\"content\":\"\"}");
        self.close(out, None);
    }

    /// A text chunk: `delta: {"content": text}`.
    pub fn content<B: BufMut>(&self, out: &mut B, text: &str) {
        self.open(out);
        out.put_slice(b"{\"content\":");
        json::write_str(out, text);
        out.put_u8(b'}');
        self.close(out, None);
    }

    /// A piece of text already escaped as the contents of a JSON string (see
    /// [`crate::bedrock::stream::plain_text_delta`]): the same chunk as [`Self::content`] writes
    /// for the unescaped text.
    pub fn content_escaped<B: BufMut>(&self, out: &mut B, escaped: &[u8]) {
        self.open(out);
        out.put_slice(b"{\"content\":\"");
        out.put_slice(escaped);
        out.put_slice(b"\"}");
        self.close(out, None);
    }

    /// The opening chunk of tool call `index`: id, type and name, with empty arguments. These
    /// are sent exactly once, because the SDK concatenates repeated strings.
    pub fn tool_call_start<B: BufMut>(&self, out: &mut B, index: u32, id: &str, name: &str) {
        self.open(out);
        out.put_slice(b"{\"tool_calls\":[{\"index\":");
        json::write_u64(out, u64::from(index));
        out.put_slice(b",\"id\":");
        json::write_str(out, id);
        out.put_slice(b",\"type\":\"function\",\"function\":{\"name\":");
        json::write_str(out, name);
        out.put_slice(b",\"arguments\":\"\"}}]}");
        self.close(out, None);
    }

    /// A fragment of tool call `index`'s JSON arguments.
    pub fn tool_call_arguments<B: BufMut>(&self, out: &mut B, index: u32, fragment: &str) {
        self.open(out);
        out.put_slice(b"{\"tool_calls\":[{\"index\":");
        json::write_u64(out, u64::from(index));
        out.put_slice(b",\"function\":{\"arguments\":");
        json::write_str(out, fragment);
        out.put_slice(b"}}]}");
        self.close(out, None);
    }

    /// A reasoning chunk (extension): `delta: {"reasoning_content": text}`.
    pub fn reasoning<B: BufMut>(&self, out: &mut B, text: &str) {
        self.open(out);
        out.put_slice(b"{\"reasoning_content\":");
        json::write_str(out, text);
        out.put_u8(b'}');
        self.close(out, None);
    }

    /// The signature of the reasoning (extension), sent once per reasoning block:
    /// `delta: {"reasoning_signature": signature}`.
    pub fn reasoning_signature<B: BufMut>(&self, out: &mut B, signature: &str) {
        self.open(out);
        out.put_slice(b"{\"reasoning_signature\":");
        json::write_str(out, signature);
        out.put_u8(b'}');
        self.close(out, None);
    }

    /// One encrypted reasoning block (extension): `delta: {"redacted_reasoning": [data]}`. The
    /// SDK's accumulator extends lists of strings, so the client ends up with every block.
    pub fn redacted_reasoning<B: BufMut>(&self, out: &mut B, data: &str) {
        self.open(out);
        out.put_slice(b"{\"redacted_reasoning\":[");
        json::write_str(out, data);
        out.put_slice(b"]}");
        self.close(out, None);
    }

    /// The opening chunk of a deprecated `function_call`: the name, with empty arguments.
    pub fn function_call_start<B: BufMut>(&self, out: &mut B, name: &str) {
        self.open(out);
        out.put_slice(b"{\"function_call\":{\"name\":");
        json::write_str(out, name);
        out.put_slice(b",\"arguments\":\"\"}}");
        self.close(out, None);
    }

    /// A fragment of a deprecated `function_call`'s arguments.
    pub fn function_call_arguments<B: BufMut>(&self, out: &mut B, fragment: &str) {
        self.open(out);
        out.put_slice(b"{\"function_call\":{\"arguments\":");
        json::write_str(out, fragment);
        out.put_slice(b"}}");
        self.close(out, None);
    }

    /// The finish chunk: `delta: {}` with the finish reason.
    pub fn finish<B: BufMut>(&self, out: &mut B, finish_reason: &str) {
        self.open(out);
        out.put_slice(b"{}");
        self.close(out, Some(finish_reason));
    }

    /// The usage chunk sent when the client set `stream_options.include_usage`:
    /// `"choices":[]` and the filled-in `usage`.
    pub fn usage<B: BufMut>(&self, out: &mut B, usage: &CompletionUsage) {
        out.put_slice(&self.head);
        out.put_slice(b"],\"usage\":");
        write_usage(out, usage);
        out.put_slice(b"}\n\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(v: &[u8]) -> &str {
        std::str::from_utf8(v).unwrap()
    }

    #[test]
    fn chunks_carry_usage_null_only_when_usage_was_requested() {
        let with = ChunkWriter::new("chatcmpl-1", 7, "m", true);
        let without = ChunkWriter::new("chatcmpl-1", 7, "m", false);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        with.content(&mut a, "hi");
        without.content(&mut b, "hi");
        assert_eq!(
            text(&a),
            "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n"
        );
        assert_eq!(
            text(&b),
            "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n"
        );
    }

    #[test]
    fn every_chunk_is_one_json_document_after_data_prefix() {
        let w = ChunkWriter::new("chatcmpl-\"x\"", 1, "a\nb", true);
        let mut out = Vec::new();
        w.role(&mut out);
        w.content(&mut out, "quote \" and \u{1}");
        w.tool_call_start(&mut out, 0, "tooluse_1", "get_weather");
        w.tool_call_arguments(&mut out, 0, "{\"city\":");
        w.finish(&mut out, "tool_calls");
        w.usage(&mut out, &CompletionUsage::default());
        let records: Vec<&str> = text(&out).split_terminator("\n\n").collect();
        assert_eq!(records.len(), 6);
        for record in records {
            let body = record.strip_prefix("data: ").unwrap();
            let v: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(v["object"], "chat.completion.chunk");
        }
    }

    #[test]
    fn completion_content_is_null_only_with_tool_calls() {
        let usage = CompletionUsage::default();
        let base = ChatCompletion {
            id: "chatcmpl-1",
            created: 1,
            model: "m",
            content: &[],
            reasoning: MessageReasoning::default(),
            tool_calls: &[],
            function_call: None,
            finish_reason: "stop",
            usage,
            service_tier: None,
        };
        let mut out = Vec::new();
        write_chat_completion(&mut out, &base);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "");
        assert!(v["choices"][0]["message"].get("tool_calls").is_none());

        let calls = [ToolCall {
            id: "tooluse_1",
            name: "f",
            arguments: "{\"a\":1}",
        }];
        let with_calls = ChatCompletion {
            tool_calls: &calls,
            finish_reason: "tool_calls",
            ..base
        };
        out.clear();
        write_chat_completion(&mut out, &with_calls);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert!(v["choices"][0]["message"]["content"].is_null());
        assert_eq!(
            v["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
            "{\"a\":1}"
        );
    }
}
