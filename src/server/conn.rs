//! One client connection: the optional TLS handshake (under the header-read deadline), then
//! h1 or h2 until the client leaves, the connection sits idle too long, or the server drains.
//!
//! Idle means no request in flight, where a request is in flight from its arrival until its
//! response body has been sent or dropped, so a long silent wait for Bedrock never counts. It
//! is measured by the connection's periodic check ([`IdleClock`]), not by the requests.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use atomic_waker::AtomicWaker;
use bytes::Bytes;
use http::Request;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, watch};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_rustls::TlsAcceptor;

use super::tls::Tls;
use crate::body::ResponseBody;
use crate::service::Gateway;

/// What a connection task needs besides its socket.
pub(super) struct ConnContext {
    pub(super) gateway: Gateway,
    pub(super) builder: Arc<auto::Builder<TokioExecutor>>,
    pub(super) drain: watch::Receiver<bool>,
    /// Held for the connection's life: `limits.max_connections`.
    pub(super) _permit: OwnedSemaphorePermit,
    pub(super) handshake_timeout: Duration,
    pub(super) idle_timeout: Duration,
}

/// Serves one accepted socket to its end.
pub(super) async fn run(stream: TcpStream, peer: SocketAddr, cx: ConnContext) {
    match cx.gateway.shared().security.tls.as_ref().map(Tls::acceptor) {
        // Boxed: a plain connection's task then carries no TLS handshake or stream state.
        Some(acceptor) => Box::pin(run_tls(stream, peer, cx, acceptor)).await,
        None => serve(TokioIo::new(stream), peer, cx).await,
    }
}

async fn run_tls(stream: TcpStream, peer: SocketAddr, mut cx: ConnContext, acceptor: TlsAcceptor) {
    let handshake = tokio::time::timeout(cx.handshake_timeout, acceptor.accept(stream));
    let stream = tokio::select! {
        result = handshake => match result {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        },
        _ = cx.drain.changed() => return,
    };
    serve(TokioIo::new(stream), peer, cx).await;
}

async fn serve<I>(io: TokioIo<I>, peer: SocketAddr, mut cx: ConnContext)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::default());
    let service = {
        let gateway = cx.gateway.clone();
        let activity = Arc::clone(&activity);
        service_fn(move |request: Request<Incoming>| {
            let gateway = gateway.clone();
            let in_flight = InFlight::start(&activity);
            async move {
                let response = gateway.handle(request, peer).await;
                Ok::<_, Infallible>(response.map(|body| TrackedBody {
                    body,
                    _in_flight: in_flight,
                }))
            }
        })
    };
    let connection = cx.builder.serve_connection(io, service);
    tokio::pin!(connection);
    let check_every = (cx.idle_timeout / 4).max(Duration::from_millis(10));
    let mut idle_check = tokio::time::interval_at(Instant::now() + check_every, check_every);
    idle_check.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut idle = IdleClock::default();
    let mut closing = *cx.drain.borrow();
    if closing {
        connection.as_mut().graceful_shutdown();
    }
    let drained = cx.drain.changed();
    tokio::pin!(drained);
    // The connection is polled on every wake-up; the drain signal and the idle check only
    // when one of them woke the task (a `select!` would poll all three for every request).
    let signals = Arc::new(SignalWake::default());
    let signals_waker = Waker::from(Arc::clone(&signals));
    let result = std::future::poll_fn(|task| {
        signals.task.register(task.waker());
        if !closing && signals.fired.swap(false, Ordering::AcqRel) {
            let mut signals_cx = Context::from_waker(&signals_waker);
            if drained.as_mut().poll(&mut signals_cx).is_ready() {
                closing = true;
            }
            while !closing && idle_check.poll_tick(&mut signals_cx).is_ready() {
                if idle.tick(&activity, check_every) >= cx.idle_timeout {
                    tracing::debug!(%peer, "closing idle connection");
                    closing = true;
                }
            }
            if closing {
                connection.as_mut().graceful_shutdown();
            }
        }
        connection.as_mut().poll(task)
    })
    .await;
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// The waker the drain signal and the idle check are polled with: it wakes the connection
/// task and records that one of them is ready to be looked at.
#[derive(Debug)]
struct SignalWake {
    fired: AtomicBool,
    task: AtomicWaker,
}

impl Default for SignalWake {
    /// Fired, so the first poll registers both signals.
    fn default() -> Self {
        Self {
            fired: AtomicBool::new(true),
            task: AtomicWaker::new(),
        }
    }
}

impl Wake for SignalWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        self.task.wake();
    }
}

/// Requests in flight on one connection, and how many have started: two counters a request
/// touches without reading the clock or taking a lock.
#[derive(Debug, Default)]
struct Activity {
    in_flight: AtomicUsize,
    started: AtomicUsize,
}

/// How long a connection has had no request, as seen by its periodic idle check: idle time
/// grows by one period for each check that finds nothing in flight and no request started
/// since the previous one, so a connection closes between one and one and a quarter idle
/// timeouts after its last response.
#[derive(Debug, Default)]
struct IdleClock {
    started_seen: usize,
    idle: Duration,
}

impl IdleClock {
    fn tick(&mut self, activity: &Activity, period: Duration) -> Duration {
        let started = activity.started.load(Ordering::Acquire);
        if activity.in_flight.load(Ordering::Acquire) == 0 && started == self.started_seen {
            self.idle += period;
        } else {
            self.idle = Duration::ZERO;
            self.started_seen = started;
        }
        self.idle
    }
}

/// One request in flight; dropped with its response body.
#[derive(Debug)]
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(activity: &Arc<Activity>) -> Self {
        activity.started.fetch_add(1, Ordering::AcqRel);
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        Self(Arc::clone(activity))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The response body, carrying its request's [`InFlight`] until hyper is done with it.
#[derive(Debug)]
struct TrackedBody {
    body: ResponseBody,
    _in_flight: InFlight,
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = <ResponseBody as Body>::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_time_counts_only_checks_with_nothing_in_flight_and_nothing_started() {
        let period = Duration::from_secs(1);
        let activity = Arc::new(Activity::default());
        let mut clock = IdleClock::default();
        assert_eq!(clock.tick(&activity, period), period);
        assert_eq!(clock.tick(&activity, period), 2 * period);

        // A request that came and went between two checks.
        drop(InFlight::start(&activity));
        assert_eq!(clock.tick(&activity, period), Duration::ZERO);
        assert_eq!(clock.tick(&activity, period), period);

        // A request (or its response body) still in flight.
        let held = InFlight::start(&activity);
        assert_eq!(clock.tick(&activity, period), Duration::ZERO);
        assert_eq!(clock.tick(&activity, period), Duration::ZERO);
        drop(held);
        assert_eq!(clock.tick(&activity, period), period);
    }
}
