//! The pooled HTTPS client to Bedrock.

pub mod sigv4;
