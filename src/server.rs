//! Accept loop and startup: build the gateway from a [`Config`], serve h1 and h2 (over TLS when
//! configured) on one port, at most `limits.max_connections` at once, and drain in-flight
//! requests on shutdown within a deadline.

mod conn;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot, watch};

use crate::auth::{Clock, Security, SystemClock};
use crate::config::{Config, ConfigErrors};
use crate::routing::ModelTable;
use crate::service::Gateway;
use crate::upstream::Upstream;
use crate::upstream::sigv4::{BearerToken, UpstreamAuth};

/// The client's address, attached as an extension to the requests that need it (the session
/// exchange, for its audit event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

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
        crate::upstream::sigv4::SigV4Signer::from_default_chain(&config.bedrock.region).await,
    ));
    #[cfg(not(feature = "default-credentials"))]
    Err(StartError::Other(
        "built without the default-credentials feature: set AWS_BEARER_TOKEN_BEDROCK or bedrock.api_key_file"
            .into(),
    ))
}

/// Validates the configuration, loads the model table and builds the service.
pub fn build(config: Config, auth: UpstreamAuth) -> Result<Gateway, StartError> {
    build_with_clock(config, auth, Arc::new(SystemClock))
}

/// [`build`] with the clock the security layer reads (TOTP steps, limit windows, sessions,
/// audit times); tests pass a [`crate::auth::ManualClock`].
pub fn build_with_clock(
    config: Config,
    auth: UpstreamAuth,
    clock: Arc<dyn Clock>,
) -> Result<Gateway, StartError> {
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
    let security = Security::from_config(&config, clock).map_err(|p| StartError::Config(ConfigErrors(p)))?;
    if !security.auth.required() {
        tracing::warn!(listen = %config.listen, "client authentication is off: any client that reaches the listen address can use the gateway");
    }
    let upstream = Upstream::new(&config, auth).map_err(StartError::Other)?;
    Ok(Gateway::with_security(config, models, upstream, security))
}

/// Serves `gateway` on `listener` until `shutdown` resolves, then stops accepting and lets
/// in-flight requests finish for up to `timeouts.shutdown_drain_ms`.
pub async fn serve(listener: TcpListener, gateway: Gateway, shutdown: impl Future<Output = ()>) {
    serve_with_admin(listener, None, gateway, shutdown).await;
}

/// [`serve`], plus the admin listener (`admin_listen`: `/metrics`, `/health`, `/ready`) when one
/// is given.
pub async fn serve_with_admin(
    listener: TcpListener,
    admin: Option<TcpListener>,
    gateway: Gateway,
    shutdown: impl Future<Output = ()>,
) {
    let admin = admin.map(|admin| tokio::spawn(serve_admin(admin, gateway.clone())));
    serve_main(listener, gateway, shutdown).await;
    if let Some(admin) = admin {
        admin.abort();
    }
}

/// The admin listener: operational endpoints only, no authentication, plain HTTP/1.1 and h2c.
async fn serve_admin(listener: TcpListener, gateway: Gateway) {
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let gateway = gateway.clone();
        let service = hyper::service::service_fn(move |request| {
            let gateway = gateway.clone();
            async move { Ok::<_, std::convert::Infallible>(gateway.handle_admin(request).await) }
        });
        let connection = builder
            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
            .into_owned();
        // Admin connections are not drained on shutdown: scrapes are short and retried.
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
}

async fn serve_main(listener: TcpListener, gateway: Gateway, shutdown: impl Future<Output = ()>) {
    let config = &gateway.shared().config;
    let timeouts = config.timeouts.clone();
    // hyper's h1 read buffer bounds the request head; it refuses values under 8 KiB.
    let max_head = config.limits.max_header_bytes.max(8192);
    let max_connections = config.limits.max_connections.max(1);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(timeouts.client_header_read_ms))
        .max_buf_size(usize::try_from(max_head).unwrap_or(usize::MAX))
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(max_head)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let builder = Arc::new(builder);

    let slots = Arc::new(Semaphore::new(max_connections as usize));
    let (drain_tx, drain_rx) = watch::channel(false);
    let poller = gateway
        .shared()
        .security
        .auth
        .required()
        .then(|| tokio::spawn(poll_security(gateway.clone())));
    let models_watch =
        (gateway.shared().config.models_watch_ms > 0).then(|| tokio::spawn(watch_models(gateway.clone())));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // At the connection limit, stop accepting: clients wait in the listen backlog.
        let permit = tokio::select! {
            permit = Arc::clone(&slots).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Usually EMFILE/ENFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "set_nodelay failed");
        }
        let cx = conn::ConnContext {
            gateway: gateway.clone(),
            builder: Arc::clone(&builder),
            drain: drain_rx.clone(),
            _permit: permit,
            handshake_timeout: Duration::from_millis(timeouts.client_header_read_ms),
            idle_timeout: Duration::from_millis(timeouts.client_idle_ms),
        };
        // Each task holds a connection slot; the drain below waits for every slot.
        tokio::spawn(conn::run(stream, peer, cx));
    }
    drop(listener);
    if let Some(poller) = poller {
        poller.abort();
    }
    if let Some(watch) = models_watch {
        watch.abort();
    }
    let _ = drain_tx.send(true);
    let drain = Duration::from_millis(timeouts.shutdown_drain_ms);
    if tokio::time::timeout(drain, slots.acquire_many(max_connections))
        .await
        .is_err()
    {
        tracing::warn!(
            drain_ms = timeouts.shutdown_drain_ms,
            "drain deadline passed; closing remaining connections"
        );
    }
    if let Some(audit) = &gateway.shared().security.audit {
        audit.flush().await;
    }
}

/// Reloads the model table when its file changes (checked every `models_watch_ms`).
async fn watch_models(gateway: Gateway) {
    let every = Duration::from_millis(gateway.shared().config.models_watch_ms.max(50));
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let changed = gateway
            .shared()
            .models_file
            .lock()
            .map(|mut file| file.poll())
            .unwrap_or(false);
        if changed {
            let gateway = gateway.clone();
            let _ = tokio::task::spawn_blocking(move || gateway.reload_models()).await;
        }
    }
}

/// Picks up keys-file changes and sweeps idle per-key state, every `auth.reload_interval_ms`.
async fn poll_security(gateway: Gateway) {
    let every = Duration::from_millis(gateway.shared().config.auth.reload_interval_ms.max(100));
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let gateway = gateway.clone();
        // A stat, and on change a small file read: off the async workers all the same.
        let _ = tokio::task::spawn_blocking(move || gateway.shared().security.poll()).await;
    }
}

/// Reloads keys, TLS certificate and audit output on every SIGHUP (unix); never returns.
pub async fn reload_on_sighup(gateway: Gateway) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut hangup) = signal(SignalKind::hangup()) {
            while hangup.recv().await.is_some() {
                tracing::info!("SIGHUP: reloading keys, TLS certificate and audit log");
                gateway.reload().await;
            }
        }
    }
    let _ = gateway;
    std::future::pending::<()>().await;
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
    let admin = match gateway.shared().config.admin_listen {
        Some(admin) => {
            let admin = std::net::TcpListener::bind(admin)?;
            admin.set_nonblocking(true)?;
            Some(TcpListener::from_std(admin)?)
        }
        None => None,
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_with_admin(listener, admin, gateway, async move {
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
