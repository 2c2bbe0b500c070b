//! Streaming probe: what a client feels of a stream, measured per record.
//!
//! It sends streaming requests (OpenAI chat completions to the gateway, or ConverseStream to
//! the bare hop or the mock) and timestamps every record as it arrives: SSE `data:` records
//! from the gateway, event-stream frames from the others. Replies come from the fast mock,
//! whose frame count and pacing are set in the request text (`fast:frames=`,
//! `fast:delay_us=`).
//!
//! Modes:
//! - `latency` (default): `--streams` streams at `--concurrency`, each connection reused;
//!   reports time to first record (TTFC), gaps between text records, total time, records per
//!   body read (1.0 means one downstream write per upstream event) and record counts.
//! - `hold`: `--streams` streams all open at once (connections opened `--connect-parallel` at
//!   a time), each read to its end; reports how many completed and the errors. Run it while
//!   sampling the servers' RSS.
//! - `stall`: `--streams` streams whose bodies are not read for `--stall-secs` after the
//!   response headers; run it while sampling the servers' RSS.
//!
//! `--h2` multiplexes streams over h2c connections (`--streams-per-conn` each) instead of
//! one HTTP/1.1 connection per stream. One JSON object per run goes to stdout; with
//! `--samples` it also carries every TTFC, gap and total time (`ttfc_us`, `gap_us`,
//! `total_us`), so the runner can pool several runs before taking percentiles.

#![allow(clippy::print_stdout, clippy::print_stderr)] // A command-line tool: stdout is its output.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::{Request, header};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Latency,
    Hold,
    Stall,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Api {
    /// OpenAI chat completions (the gateway): SSE records.
    OpenAi,
    /// ConverseStream (the hop, the mock): event-stream frames.
    Converse,
}

#[derive(Clone, Debug)]
struct Args {
    addr: SocketAddr,
    api: Api,
    mode: Mode,
    streams: usize,
    concurrency: usize,
    frames: u32,
    delay_us: u64,
    h2: bool,
    /// Also print every TTFC, gap and total (microseconds), so runs can be pooled.
    samples: bool,
    streams_per_conn: usize,
    connect_parallel: usize,
    stall_secs: u64,
    model: String,
    label: String,
}

fn usage() -> &'static str {
    "sse_probe --addr 127.0.0.1:8080 --api openai|converse [--mode latency|hold|stall] \
     [--streams N] [--concurrency C] [--frames F] [--delay-us D] [--h2] [--streams-per-conn K] \
     [--connect-parallel P] [--stall-secs S] [--model M] [--label L] [--samples]"
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        addr: ([127, 0, 0, 1], 8080).into(),
        api: Api::OpenAi,
        mode: Mode::Latency,
        streams: 100,
        concurrency: 1,
        frames: 100,
        delay_us: 1000,
        h2: false,
        samples: false,
        streams_per_conn: 100,
        connect_parallel: 128,
        stall_secs: 5,
        model: String::new(),
        label: String::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--h2" {
            a.h2 = true;
            continue;
        }
        if arg == "--samples" {
            a.samples = true;
            continue;
        }
        let value = args
            .next()
            .ok_or_else(|| format!("{arg} needs a value\n{}", usage()))?;
        let num = |v: &str| v.parse::<u64>().map_err(|e| format!("{arg}: {e}"));
        match arg.as_str() {
            "--addr" => a.addr = value.parse().map_err(|e| format!("--addr: {e}"))?,
            "--api" => {
                a.api = match value.as_str() {
                    "openai" => Api::OpenAi,
                    "converse" => Api::Converse,
                    _ => return Err(format!("--api {value}\n{}", usage())),
                }
            }
            "--mode" => {
                a.mode = match value.as_str() {
                    "latency" => Mode::Latency,
                    "hold" => Mode::Hold,
                    "stall" => Mode::Stall,
                    _ => return Err(format!("--mode {value}\n{}", usage())),
                }
            }
            "--streams" => a.streams = num(&value)? as usize,
            "--concurrency" => a.concurrency = num(&value)?.max(1) as usize,
            "--frames" => a.frames = num(&value)? as u32,
            "--delay-us" => a.delay_us = num(&value)?,
            "--streams-per-conn" => a.streams_per_conn = num(&value)?.max(1) as usize,
            "--connect-parallel" => a.connect_parallel = num(&value)?.max(1) as usize,
            "--stall-secs" => a.stall_secs = num(&value)?,
            "--model" => a.model = value,
            "--label" => a.label = value,
            _ => return Err(format!("unknown argument {arg}\n{}", usage())),
        }
    }
    if a.model.is_empty() {
        a.model = match a.api {
            Api::OpenAi => "claude-3-haiku".to_owned(),
            Api::Converse => "anthropic.claude-3-haiku-20240307-v1%3A0".to_owned(),
        };
    }
    Ok(a)
}

/// What one stream saw.
#[derive(Default)]
struct StreamResult {
    ttfc: Option<Duration>,
    total: Duration,
    /// Gaps between consecutive text records (deltas), in arrival order.
    gaps: Vec<Duration>,
    records: usize,
    deltas: usize,
    reads: usize,
    /// Reads that carried at least one record.
    reads_with_records: usize,
    ok: bool,
}

/// Splits a body into records as it arrives, and says which are text deltas.
struct RecordSplitter {
    api: Api,
    buf: Vec<u8>,
}

impl RecordSplitter {
    /// Appends `chunk`; calls `on_record(is_delta)` for every record completed.
    fn push(&mut self, chunk: &[u8], mut on_record: impl FnMut(bool)) {
        self.buf.extend_from_slice(chunk);
        let mut start = 0;
        match self.api {
            Api::OpenAi => {
                while let Some(end) = find(&self.buf[start..], b"\n\n") {
                    let record = &self.buf[start..start + end];
                    on_record(find(record, b"\"delta\":{\"content\":\"").is_some());
                    start += end + 2;
                }
            }
            Api::Converse => {
                while self.buf.len() - start >= 12 {
                    let b = &self.buf[start..];
                    let total = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
                    if total < 16 || b.len() < total {
                        break;
                    }
                    on_record(find(&b[..total], b"contentBlockDelta").is_some());
                    start += total;
                }
            }
        }
        self.buf.drain(..start);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn request(args: &Args, h2: bool) -> Request<Full<Bytes>> {
    let directives = format!(
        "Hello fast:frames={} fast:delay_us={}",
        args.frames, args.delay_us
    );
    let (path, body) = match args.api {
        Api::OpenAi => (
            "/v1/chat/completions".to_owned(),
            format!(
                r#"{{"model":"{}","stream":true,"messages":[{{"role":"user","content":"{directives}"}}]}}"#,
                args.model
            ),
        ),
        Api::Converse => (
            format!("/model/{}/converse-stream", args.model),
            format!(r#"{{"messages":[{{"role":"user","content":[{{"text":"{directives}"}}]}}]}}"#),
        ),
    };
    let uri = if h2 {
        format!("http://{}{path}", args.addr)
    } else {
        path
    };
    let mut builder = Request::post(uri).header(header::CONTENT_TYPE, "application/json");
    if !h2 {
        builder = builder.header(header::HOST, args.addr.to_string());
    }
    builder
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Request::new(Full::new(Bytes::new())))
}

/// One connection's way of sending requests.
#[derive(Clone)]
enum Sender {
    H1(Arc<tokio::sync::Mutex<hyper::client::conn::http1::SendRequest<Full<Bytes>>>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

async fn connect(addr: SocketAddr, h2: bool) -> Result<Sender, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
    let io = TokioIo::new(stream);
    if h2 {
        let (send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .handshake(io)
            .await
            .map_err(|e| format!("h2 handshake: {e}"))?;
        tokio::spawn(conn);
        Ok(Sender::H2(send))
    } else {
        let (send, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| format!("h1 handshake: {e}"))?;
        tokio::spawn(conn);
        Ok(Sender::H1(Arc::new(tokio::sync::Mutex::new(send))))
    }
}

async fn send(sender: &Sender, req: Request<Full<Bytes>>) -> Result<hyper::Response<Incoming>, String> {
    match sender {
        Sender::H1(send) => {
            let mut send = send.lock().await;
            send.ready().await.map_err(|e| format!("h1 ready: {e}"))?;
            send.send_request(req).await.map_err(|e| format!("h1 send: {e}"))
        }
        Sender::H2(send) => {
            let mut send = send.clone();
            send.ready().await.map_err(|e| format!("h2 ready: {e}"))?;
            send.send_request(req).await.map_err(|e| format!("h2 send: {e}"))
        }
    }
}

/// Sends one stream and reads it to its end, timestamping every record.
async fn one_stream(args: &Args, sender: &Sender, stall: Option<Duration>) -> Result<StreamResult, String> {
    let started = Instant::now();
    let response = send(sender, request(args, matches!(sender, Sender::H2(_)))).await?;
    if !response.status().is_success() {
        return Err(format!("status {}", response.status()));
    }
    if let Some(stall) = stall {
        tokio::time::sleep(stall).await;
    }
    let mut body = response.into_body();
    let mut splitter = RecordSplitter {
        api: args.api,
        buf: Vec::with_capacity(4096),
    };
    let mut result = StreamResult::default();
    let mut last_delta: Option<Instant> = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("body: {e}"))?;
        let Ok(data) = frame.into_data() else { continue };
        let now = Instant::now();
        result.reads += 1;
        let before = result.records;
        splitter.push(&data, |is_delta| {
            result.records += 1;
            if result.ttfc.is_none() {
                result.ttfc = Some(now - started);
            }
            if is_delta {
                result.deltas += 1;
                if let Some(previous) = last_delta {
                    result.gaps.push(now - previous);
                }
                last_delta = Some(now);
            }
        });
        if result.records > before {
            result.reads_with_records += 1;
        }
    }
    result.total = started.elapsed();
    result.ok = result.deltas == args.frames as usize;
    if !result.ok {
        return Err(format!(
            "got {} text records, expected {}",
            result.deltas, args.frames
        ));
    }
    Ok(result)
}

#[derive(Default)]
struct Summary {
    ok: usize,
    errors: usize,
    first_error: Option<String>,
    ttfc: Vec<u64>,
    gaps: Vec<u64>,
    total: Vec<u64>,
    records: usize,
    deltas: usize,
    reads_with_records: usize,
}

impl Summary {
    fn add(&mut self, r: Result<StreamResult, String>) {
        match r {
            Ok(r) => {
                self.ok += 1;
                self.ttfc.extend(r.ttfc.map(|d| d.as_micros() as u64));
                self.gaps.extend(r.gaps.iter().map(|d| d.as_micros() as u64));
                self.total.push(r.total.as_micros() as u64);
                self.records += r.records;
                self.deltas += r.deltas;
                self.reads_with_records += r.reads_with_records;
            }
            Err(e) => {
                self.errors += 1;
                self.first_error.get_or_insert(e);
            }
        }
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn stats_json(name: &str, values: &mut [u64]) -> String {
    values.sort_unstable();
    let mean = if values.is_empty() {
        0
    } else {
        values.iter().sum::<u64>() / values.len() as u64
    };
    format!(
        r#""{name}_p50_us":{},"{name}_p90_us":{},"{name}_p99_us":{},"{name}_max_us":{},"{name}_mean_us":{mean}"#,
        percentile(values, 50.0),
        percentile(values, 90.0),
        percentile(values, 99.0),
        values.last().copied().unwrap_or(0),
    )
}

async fn run(args: Args) -> Summary {
    let args = Arc::new(args);
    let summary = Arc::new(tokio::sync::Mutex::new(Summary::default()));
    let stall = (args.mode == Mode::Stall).then(|| Duration::from_secs(args.stall_secs));
    match args.mode {
        Mode::Latency => {
            // `concurrency` workers, each with its own connection (or h2 stream), each sending
            // its share of the streams one after another.
            let next = Arc::new(AtomicU64::new(0));
            let shared_h2 = if args.h2 {
                connect(args.addr, true).await.ok()
            } else {
                None
            };
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..args.concurrency {
                let args = args.clone();
                let summary = summary.clone();
                let next = next.clone();
                let shared_h2 = shared_h2.clone();
                tasks.spawn(async move {
                    let sender = match shared_h2 {
                        Some(s) => s,
                        None => match connect(args.addr, args.h2).await {
                            Ok(s) => s,
                            Err(e) => {
                                summary.lock().await.add(Err(e));
                                return;
                            }
                        },
                    };
                    while (next.fetch_add(1, Ordering::Relaxed) as usize) < args.streams {
                        let r = one_stream(&args, &sender, None).await;
                        summary.lock().await.add(r);
                    }
                });
            }
            while tasks.join_next().await.is_some() {}
        }
        Mode::Hold | Mode::Stall => {
            let connecting = Arc::new(Semaphore::new(args.connect_parallel));
            let opened = Arc::new(AtomicU64::new(0));
            let mut tasks = tokio::task::JoinSet::new();
            let conns = if args.h2 {
                args.streams.div_ceil(args.streams_per_conn)
            } else {
                args.streams
            };
            let per_conn = if args.h2 { args.streams_per_conn } else { 1 };
            let mut remaining = args.streams;
            for _ in 0..conns {
                let n = per_conn.min(remaining);
                remaining -= n;
                let args = args.clone();
                let summary = summary.clone();
                let connecting = connecting.clone();
                let opened = opened.clone();
                tasks.spawn(async move {
                    let sender = {
                        let _permit = connecting.acquire().await;
                        connect(args.addr, args.h2).await
                    };
                    let sender = match sender {
                        Ok(s) => s,
                        Err(e) => {
                            let mut summary = summary.lock().await;
                            for _ in 0..n {
                                summary.add(Err(e.clone()));
                            }
                            return;
                        }
                    };
                    let mut streams = tokio::task::JoinSet::new();
                    for _ in 0..n {
                        let args = args.clone();
                        let sender = sender.clone();
                        let opened = opened.clone();
                        streams.spawn(async move {
                            opened.fetch_add(1, Ordering::Relaxed);
                            one_stream(&args, &sender, stall).await
                        });
                    }
                    while let Some(r) = streams.join_next().await {
                        let r = r.unwrap_or_else(|e| Err(format!("task: {e}")));
                        summary.lock().await.add(r);
                    }
                });
            }
            let started = Instant::now();
            let reporter = {
                let opened = opened.clone();
                let total = args.streams as u64;
                tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(Duration::from_millis(250)).await;
                        if opened.load(Ordering::Relaxed) >= total {
                            eprintln!(
                                "sse_probe: all {total} streams sent after {:.2}s",
                                started.elapsed().as_secs_f64()
                            );
                            return;
                        }
                    }
                })
            };
            while tasks.join_next().await.is_some() {}
            reporter.abort();
        }
    }
    Arc::try_unwrap(summary)
        .map(tokio::sync::Mutex::into_inner)
        .unwrap_or_default()
}

fn main() -> std::process::ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("sse_probe: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sse_probe: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    let mut s = runtime.block_on(run(args.clone()));
    let elapsed = started.elapsed().as_secs_f64();
    let records_per_read = if s.reads_with_records == 0 {
        0.0
    } else {
        s.records as f64 / s.reads_with_records as f64
    };
    // A Nagle/delayed-ACK stall shows up as a ~40 ms wait; count anything past 30 ms.
    let stalls_over_30ms = s.ttfc.iter().chain(&s.gaps).filter(|&&v| v > 30_000).count();
    let ttfc = stats_json("ttfc", &mut s.ttfc);
    let gap = stats_json("gap", &mut s.gaps);
    let total = stats_json("total", &mut s.total);
    let samples = if args.samples {
        format!(
            r#","ttfc_us":{:?},"gap_us":{:?},"total_us":{:?}"#,
            s.ttfc, s.gaps, s.total
        )
    } else {
        String::new()
    };
    println!(
        r#"{{"label":"{}","mode":"{:?}","streams":{},"concurrency":{},"frames":{},"delay_us":{},"h2":{},"ok":{},"errors":{},"first_error":{},"elapsed_s":{elapsed:.3},"records":{},"deltas":{},"reads_with_records":{},"records_per_read":{records_per_read:.3},"stalls_over_30ms":{stalls_over_30ms},{ttfc},{gap},{total}{samples}}}"#,
        args.label,
        args.mode,
        args.streams,
        args.concurrency,
        args.frames,
        args.delay_us,
        args.h2,
        s.ok,
        s.errors,
        s.first_error
            .map_or_else(|| "null".to_owned(), |e| format!("{e:?}")),
        s.records,
        s.deltas,
        s.reads_with_records,
    );
    if s.errors == 0 {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
