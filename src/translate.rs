//! Pure translation between the OpenAI chat-completions API and Bedrock Converse.
//!
//! Everything here is synchronous: bytes or parsed values in, bytes out, written into
//! buffers the caller owns. No I/O, no clock, no environment, no credentials; ids and
//! timestamps are passed in. That is what lets the golden tests, benches and fuzz targets
//! call these functions directly.

pub mod embeddings;
pub mod request;
pub mod response;
pub mod stream;
