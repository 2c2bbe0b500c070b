//! Bedrock runtime wire types and the event-stream decoder.
//!
//! Types mirror the service model (botocore `bedrock-runtime`) and carry no logic.

pub mod converse;
pub mod eventstream;
pub mod stream;
