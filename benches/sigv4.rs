//! SigV4 signing of a typical Converse request: the direct path the gateway takes, and the
//! general aws-sigv4 path it falls back to (forced here with a query string).
//! Run: `cargo bench --bench sigv4`.

#![allow(clippy::unwrap_used)] // Bench setup.

use std::hint::black_box;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ai_gateway::upstream::sigv4::sign_request;
use aws_credential_types::Credentials;
use criterion::{Criterion, criterion_group, criterion_main};

const BODY: &[u8] = br#"{"messages":[{"role":"user","content":[{"text":"Hello! Can you summarise the plot of Hamlet in two sentences?"}]}],"inferenceConfig":{"maxTokens":256,"temperature":0.7}}"#;

fn mk_request(uri: &str) -> http::Request<()> {
    http::Request::post(uri)
        .header("content-type", "application/json")
        .body(())
        .unwrap()
}

fn sigv4(c: &mut Criterion) {
    let mut group = c.benchmark_group("sigv4");
    let time = UNIX_EPOCH + Duration::from_secs(1_714_564_800);
    let credentials = Credentials::new(
        "AKIAIOSFODNN7EXAMPLE",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        Some("FwoGZXIvYXdzEXAMPLESESSIONTOKEN//////////wEaDEXAMPLE=".to_owned()),
        Some(SystemTime::now() + Duration::from_secs(3600)),
        "bench",
    );
    for (name, uri) in [
        (
            "sign_request",
            "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream",
        ),
        (
            "sign_request_general_path",
            "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream?general",
        ),
    ] {
        let template = mk_request(uri);
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut req = template.clone();
                sign_request(&mut req, black_box(BODY), &credentials, "us-east-1", time).unwrap();
                req
            });
        });
    }
    group.finish();
}

criterion_group!(benches, sigv4);
criterion_main!(benches);
