//! OpenAI chat-completions wire types: the request parsed in place, and the response writers.

pub mod request;
pub mod response;
