//! Soak: mixed streaming and non-streaming traffic against a running gateway (in front of
//! `ai-gateway mock-bedrock`) for a bounded time, with a share of requests scripted to fail
//! upstream. Every reply is checked: a healthy request must come back complete (a
//! `chat.completion`, or a stream ending in `[DONE]` with all its text); a faulted one must end
//! in a proper OpenAI error (status or final error record). It samples the gateway's RSS and
//! open file descriptors from /proc and reports their growth after warm-up.
//!
//! ```text
//! cargo run --release --example soak -- --url http://127.0.0.1:8080 --pid $(pgrep -f 'ai-gateway serve') \
//!     --seconds 120 --concurrency 16 --fault-percent 1
//! ```
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    faults_reported: AtomicU64,
    lost: AtomicU64,
}

struct Args {
    url: String,
    pid: Option<u32>,
    seconds: u64,
    concurrency: usize,
    fault_percent: u64,
}

fn args() -> Args {
    let mut a = Args {
        url: "http://127.0.0.1:8080".into(),
        pid: None,
        seconds: 120,
        concurrency: 16,
        fault_percent: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_default();
        match flag.as_str() {
            "--url" => a.url = value,
            "--pid" => a.pid = value.parse().ok(),
            "--seconds" => a.seconds = value.parse().expect("--seconds N"),
            "--concurrency" => a.concurrency = value.parse().expect("--concurrency N"),
            "--fault-percent" => a.fault_percent = value.parse().expect("--fault-percent N"),
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

/// Faults the mock is scripted to produce, with what the client must then see.
const FAULTS: [&str; 5] = [
    "mock:mid_exception=modelStreamErrorException",
    "mock:status=validation",
    "mock:reset",
    "mock:bad_crc",
    "mock:first_exception=validationException",
];

async fn one(
    client: &Client<HttpConnector, Full<Bytes>>,
    url: &str,
    n: u64,
    fault: Option<&str>,
) -> Result<(), String> {
    let stream = n.is_multiple_of(2);
    // A corrupt frame only exists in a stream; a non-streaming request gets a 500 instead.
    let fault = fault.map(|f| {
        if !stream && f == "mock:bad_crc" {
            "mock:status=internal"
        } else {
            f
        }
    });
    let frames = 5 + n % 20;
    let text = match fault {
        Some(f) => format!("soak {n} mock:frames={frames} {f}"),
        None => format!("soak {n} mock:frames={frames}"),
    };
    let body = serde_json::json!({"model": "claude-3-haiku", "stream": stream, "messages": [{"role": "user", "content": text}]});
    let request = http::Request::post(format!("{url}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(&body).unwrap())))
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(30), client.request(request))
        .await
        .map_err(|_| "no response headers in 30 s".to_owned())?
        .map_err(|e| format!("request failed: {e}"))?;
    let status = response.status();
    let bytes = tokio::time::timeout(Duration::from_secs(30), response.into_body().collect())
        .await
        .map_err(|_| "body not finished in 30 s".to_owned())?
        .map_err(|e| format!("body failed: {e}"))?
        .to_bytes();
    let text = String::from_utf8_lossy(&bytes);
    let expected: String = (0..frames).map(|i| format!("tok{i} ")).collect();
    match (fault, stream) {
        (None, false) => {
            let v: serde_json::Value =
                serde_json::from_slice(&bytes).map_err(|e| format!("not JSON: {e}"))?;
            if status != 200 || v["choices"][0]["message"]["content"] != expected.as_str() {
                return Err(format!("incomplete reply {status}: {text}"));
            }
        }
        (None, true) => {
            let content: String = text
                .split("\n\n")
                .filter_map(|e| e.strip_prefix("data: "))
                .filter(|d| *d != "[DONE]")
                .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
                .filter_map(|v| v["choices"][0]["delta"]["content"].as_str().map(str::to_owned))
                .collect();
            if status != 200 || !text.ends_with("data: [DONE]\n\n") || content != expected {
                return Err(format!("truncated stream {status}: {text}"));
            }
        }
        (Some(_), _) => {
            let reported =
                status.is_client_error() || status.is_server_error() || text.contains("data: {\"error\"");
            if !reported || text.contains("[DONE]") {
                return Err(format!("fault not reported ({status}): {text}"));
            }
        }
    }
    Ok(())
}

/// The gateway's RSS in KiB and its open file descriptors.
fn sample(pid: u32) -> Option<(u64, u64)> {
    let stats = ai_gateway::metrics::ProcessStats::of_process(pid)?;
    Some((
        u64::try_from(stats.rss_bytes / 1024).ok()?,
        u64::try_from(stats.open_fds).ok()?,
    ))
}

#[tokio::main]
async fn main() {
    let a = args();
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(http);
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..a.concurrency {
        let (client, tally, stop, next, url) = (
            client.clone(),
            Arc::clone(&tally),
            Arc::clone(&stop),
            Arc::clone(&next),
            a.url.clone(),
        );
        let fault_percent = a.fault_percent;
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let fault = (n % 100 < fault_percent).then(|| FAULTS[(n / 100) as usize % FAULTS.len()]);
                match one(&client, &url, n, fault).await {
                    Ok(()) if fault.is_some() => tally.faults_reported.fetch_add(1, Ordering::Relaxed),
                    Ok(()) => tally.ok.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        eprintln!("request {n}: {e}");
                        tally.lost.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }));
    }
    let mut samples = Vec::new();
    let total = Duration::from_secs(a.seconds);
    while started.elapsed() < total {
        tokio::time::sleep(Duration::from_secs(5).min(total.saturating_sub(started.elapsed()))).await;
        if let Some(s) = a.pid.and_then(sample) {
            samples.push((started.elapsed().as_secs(), s));
        }
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let ok = tally.ok.load(Ordering::Relaxed);
    let faults = tally.faults_reported.load(Ordering::Relaxed);
    let lost = tally.lost.load(Ordering::Relaxed);
    println!(
        "soak: {:.0} s, concurrency {}, {}% scripted faults",
        elapsed, a.concurrency, a.fault_percent
    );
    println!(
        "  requests: {} ({:.0}/s); complete: {ok}; faults reported correctly: {faults}; lost or truncated: {lost}",
        ok + faults + lost,
        (ok + faults + lost) as f64 / elapsed
    );
    // Warm-up: the first third of the run.
    let warm: Vec<_> = samples
        .iter()
        .filter(|(t, _)| *t as f64 >= elapsed / 3.0)
        .collect();
    if let (Some(first), Some(last)) = (warm.first(), warm.last()) {
        let max_rss = warm.iter().map(|(_, (r, _))| *r).max().unwrap_or(0);
        let max_fds = warm.iter().map(|(_, (_, f))| *f).max().unwrap_or(0);
        println!(
            "  after warm-up: RSS {} -> {} KiB (max {max_rss}), open fds {} -> {} (max {max_fds})",
            first.1.0, last.1.0, first.1.1, last.1.1
        );
    }
    println!("{ok} passed, {lost} failed");
    if lost > 0 {
        std::process::exit(1);
    }
}
