//! Request body collection and response bodies.

pub mod sse;
