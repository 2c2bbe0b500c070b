//! The bare pass-through hop: the physical limit the gateway is measured against.
//!
//! It accepts HTTP/1.1 and h2c on loopback and forwards every request, bytes untouched and
//! streamed both ways, over a pooled hyper-util client to one upstream (the fast mock):
//! HTTP/1.1 keep-alive, or with `--http2 true` HTTP/2 with prior knowledge, as the gateway
//! with `bedrock.http2` (hyper-util shares one HTTP/2 connection per host). It
//! does what the gateway must do to reach Bedrock and nothing else: same runtime, same
//! allocator, same hyper server and client, the same pool size and TCP_NODELAY on both sides.
//!
//! ```text
//! cargo run --release --example hop -- --listen 127.0.0.1:9100 --upstream http://127.0.0.1:9000
//! ```

#![allow(clippy::print_stderr)] // A command-line helper: its diagnostics go to stderr.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri, header};
use http_body_util::{BodyExt, Either, Full, combinators::UnsyncBoxBody};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

type ReplyBody = Either<Incoming, UnsyncBoxBody<Bytes, Infallible>>;

/// Same as the gateway's `bedrock.pool_max_idle_per_host` default, so both keep the same
/// number of upstream connections warm.
const POOL_MAX_IDLE_PER_HOST: usize = 256;

struct Args {
    listen: SocketAddr,
    scheme: Scheme,
    authority: Authority,
    http2: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut listen: SocketAddr = ([127, 0, 0, 1], 9100).into();
    let mut upstream: Uri = Uri::from_static("http://127.0.0.1:9000");
    let mut http2 = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().ok_or_else(|| format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--listen" => listen = value.parse().map_err(|e| format!("--listen: {e}"))?,
            "--upstream" => upstream = value.parse().map_err(|e| format!("--upstream: {e}"))?,
            "--http2" => http2 = value.parse().map_err(|e| format!("--http2: {e}"))?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let parts = upstream.into_parts();
    Ok(Args {
        listen,
        scheme: parts.scheme.unwrap_or(Scheme::HTTP),
        authority: parts.authority.ok_or("--upstream needs host:port")?,
        http2,
    })
}

fn main() -> std::process::ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("hop: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("hop: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hop: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args) -> std::io::Result<()> {
    let listener = TcpListener::bind(args.listen).await?;
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_keepalive(Some(Duration::from_secs(60)));
    let client: Client<HttpConnector, Incoming> = Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
        .http2_only(args.http2)
        .build(http);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    let scheme = args.scheme;
    let authority = args.authority;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    eprintln!("hop: listening on {} -> {scheme}://{authority}", args.listen);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    eprintln!("hop: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = terminate.recv() => return Ok(()),
        };
        let _ = stream.set_nodelay(true);
        let client = client.clone();
        let scheme = scheme.clone();
        let authority = authority.clone();
        let service = service_fn(move |request: Request<Incoming>| {
            let client = client.clone();
            let scheme = scheme.clone();
            let authority = authority.clone();
            async move { Ok::<_, Infallible>(forward(&client, scheme, authority, request).await) }
        });
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
}

/// Rewrites the target to the upstream and sends the request on a pooled connection; the
/// response body streams back as it arrives.
async fn forward(
    client: &Client<HttpConnector, Incoming>,
    scheme: Scheme,
    authority: Authority,
    request: Request<Incoming>,
) -> Response<ReplyBody> {
    let (mut parts, body) = request.into_parts();
    let mut uri = http::uri::Parts::default();
    uri.scheme = Some(scheme);
    uri.authority = Some(authority);
    uri.path_and_query = Some(
        parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/")),
    );
    parts.uri = match Uri::from_parts(uri) {
        Ok(uri) => uri,
        Err(_) => return bad_gateway(),
    };
    // An h2 request arrives as version 2; the upstream connection is HTTP/1.1.
    parts.version = http::Version::HTTP_11;
    parts.headers.remove(header::HOST);
    parts.headers.remove(header::CONNECTION);
    match client.request(Request::from_parts(parts, body)).await {
        Ok(response) => response.map(Either::Left),
        Err(_) => bad_gateway(),
    }
}

fn bad_gateway() -> Response<ReplyBody> {
    let body = Full::new(Bytes::from_static(b"bad gateway")).boxed_unsync();
    let mut response = Response::new(Either::Right(body));
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response
}
