//! ai-gateway: an OpenAI-compatible streaming gateway in front of AWS Bedrock.
//!
//! The library holds every module; `main.rs` is a thin CLI over it. Benches, integration
//! tests and fuzz targets use the public items re-exported here.

pub mod audit;
pub mod auth;
pub mod bedrock;
pub mod body;
pub mod config;
pub mod error;
pub mod json;
pub mod metrics;
pub mod mock_bedrock;
pub mod openai;
pub mod routing;
pub mod server;
pub mod service;
pub mod translate;
pub mod upstream;

pub use error::Error;
