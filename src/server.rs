//! Accept loop and startup: build the gateway from a [`Config`], serve h1 and h2 on one port,
//! drain in-flight requests on shutdown within a deadline.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::config::{Config, ConfigErrors};
use crate::routing::ModelTable;
use crate::service::Gateway;
use crate::upstream::Upstream;
use crate::upstream::sigv4::{BearerToken, UpstreamAuth};

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration or model table is invalid.
    #[error("invalid configuration:\n{0}")]
    Config(#[from] ConfigErrors),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// Chooses how to authenticate to Bedrock: a Bedrock API key from `bedrock.api_key_file` or
/// `AWS_BEARER_TOKEN_BEDROCK` (as botocore does) when present, otherwise SigV4 with
/// aws-config's default credential chain.
pub async fn default_auth(config: &Config) -> Result<UpstreamAuth, StartError> {
    if let Some(path) = &config.bedrock.api_key_file {
        let key = std::fs::read_to_string(path)
            .map_err(|e| StartError::Other(format!("bedrock.api_key_file {}: {e}", path.display())))?;
        let key = key.trim();
        if key.is_empty() {
            return Err(StartError::Other(format!(
                "bedrock.api_key_file {} is empty",
                path.display()
            )));
        }
        return Ok(UpstreamAuth::Bearer(BearerToken::new(key.to_owned())));
    }
    if let Ok(key) = std::env::var("AWS_BEARER_TOKEN_BEDROCK")
        && !key.trim().is_empty()
    {
        return Ok(UpstreamAuth::Bearer(BearerToken::new(key.trim().to_owned())));
    }
    #[cfg(feature = "default-credentials")]
    return Ok(UpstreamAuth::SigV4(
        crate::upstream::sigv4::SigV4Signer::from_default_chain().await,
    ));
    #[cfg(not(feature = "default-credentials"))]
    Err(StartError::Other(
        "built without the default-credentials feature: set AWS_BEARER_TOKEN_BEDROCK or bedrock.api_key_file"
            .into(),
    ))
}

/// Validates the configuration, loads the model table and builds the service.
pub fn build(config: Config, auth: UpstreamAuth) -> Result<Gateway, StartError> {
    let mut problems = Vec::new();
    if let Err(errors) = config.validate() {
        problems.extend(errors.0);
    }
    let models = match ModelTable::load(
        &config.models,
        &config.bedrock.region,
        config.bedrock.endpoint.as_deref(),
    ) {
        Ok(models) => Some(models),
        Err(errors) => {
            problems.extend(errors.0);
            None
        }
    };
    let Some(models) = models.filter(|_| problems.is_empty()) else {
        return Err(StartError::Config(ConfigErrors(problems)));
    };
    let upstream = Upstream::new(&config, auth).map_err(|e| StartError::Other(e.to_string()))?;
    Ok(Gateway::new(config, models, upstream))
}

/// Serves `gateway` on `listener` until `shutdown` resolves, then stops accepting and lets
/// in-flight requests finish for up to `timeouts.shutdown_drain_ms`.
pub async fn serve(listener: TcpListener, gateway: Gateway, shutdown: impl Future<Output = ()>) {
    let timeouts = gateway.shared().config.timeouts.clone();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(timeouts.client_header_read_ms))
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)));

    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Usually EMFILE/ENFILE: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!(error = %e, "set_nodelay failed");
                }
                let gateway = gateway.clone();
                let service = service_fn(move |request| {
                    let gateway = gateway.clone();
                    async move { Ok::<_, Infallible>(gateway.handle(request).await) }
                });
                let connection = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                let connection = graceful.watch(connection);
                // Owned by `graceful`: shutdown waits for it up to the drain deadline.
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    let drain = Duration::from_millis(timeouts.shutdown_drain_ms);
    if tokio::time::timeout(drain, graceful.shutdown()).await.is_err() {
        tracing::warn!(
            drain_ms = timeouts.shutdown_drain_ms,
            "drain deadline passed; closing remaining connections"
        );
    }
}

/// A gateway running in a background task (tests, `demo`).
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl ServerHandle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting and waits for the drain to finish.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// Starts serving on an already-bound listener in a background task.
pub fn spawn(listener: TcpListener, gateway: Gateway) -> std::io::Result<ServerHandle> {
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, gateway, async move {
        let _ = stopped.await;
    }));
    Ok(ServerHandle {
        addr,
        stop: Some(stop),
        task,
    })
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutdown signal received; draining");
}
