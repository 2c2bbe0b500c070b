//! HTTP/2 to Bedrock: as many connections as the requests in flight need.
//!
//! hyper-util's pooled client keeps one HTTP/2 connection per host, and requests beyond the
//! server's stream limit wait inside it until a stream ends. This pool counts the requests on
//! each of its connections and opens another when every one carries `max_streams` (or the
//! server's SETTINGS_MAX_CONCURRENT_STREAMS, if lower), so a burst never queues behind one
//! connection's limit. It packs requests onto the oldest connection with room, so quiet
//! periods leave the newer ones idle, and an idle connection is closed after the pool's idle
//! timeout.
//!
//! Requests go out through the h2 crate directly rather than hyper's HTTP/2 client: a
//! request's HEADERS and DATA are queued together and leave in one write from the
//! connection's task, where hyper's client hands each body to a task of its own and writes
//! the two frames apart.
//!
//! A request takes a [`StreamSlot`], which its response body holds: the slot is given back
//! when the body ends or is dropped, which is when its stream is over (ended, or reset by h2
//! on drop). Connections to one host are opened one at a time, so a cold burst opens as many
//! as it fills, not one per request.
//!
//! TLS offers ALPN `h2` and `http/1.1`. A host that picks HTTP/1.1 (or no protocol) is marked
//! once, that connection dropped, and its requests are given back for the HTTP/1.1 pool.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::Scheme;
use http::{HeaderMap, Request, Response, Uri, header};
use http_body::{Body, Frame, SizeHint};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::{Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use tokio::task::AbortHandle;

use crate::error::Error;

/// Receive window per stream: what Bedrock may send ahead of a reader (HTTP/2's own initial
/// window). A stalled client made the gateway hold 200-245 KiB for its stream over HTTP/2,
/// against 172-183 over HTTP/1.1, and the same with a 32 KiB window: the window is not where
/// the difference is (loadtest/, stalled clients).
const STREAM_WINDOW_BYTES: u32 = 64 * 1024;

/// Ping period on a connection; a peer that does not answer a ping within [`PING_TIMEOUT`] is
/// taken as gone and its connection closed, so its streams fail and new requests go elsewhere
/// instead of waiting out their deadlines.
const PING_INTERVAL: Duration = Duration::from_secs(30);
const PING_TIMEOUT: Duration = Duration::from_secs(20);

/// The pooled HTTP/2 connections, per scheme and authority.
pub struct Pool {
    connector: HttpsConnector<HttpConnector>,
    handshake: h2::client::Builder,
    max_streams: usize,
    idle_timeout: Duration,
    hosts: Mutex<HashMap<super::HostKey, Arc<Host>, foldhash::fast::RandomState>>,
}

/// The connections to one host.
#[derive(Default)]
struct Host {
    conns: Mutex<Conns>,
    /// Held while a connection to this host is being opened.
    opening: tokio::sync::Mutex<()>,
    /// The host picked HTTP/1.1 (or no protocol) when offered `h2` over TLS.
    http1_only: AtomicBool,
}

/// What [`Pool::send`] did with a request.
pub enum Sent {
    /// Sent over HTTP/2: the response.
    Response(Response<H2Body>),
    /// Not sent: the host does not speak HTTP/2 over TLS; send it over HTTP/1.1.
    Http1Only(Request<()>),
}

#[derive(Default)]
struct Conns {
    list: Vec<Conn>,
    next_id: u64,
}

struct Conn {
    id: u64,
    sender: h2::client::SendRequest<Bytes>,
    /// The task driving the connection: finished when the connection has ended.
    driver: AbortHandle,
    in_flight: usize,
    /// When `in_flight` last fell to zero (or the connection was opened).
    idle_since: Instant,
    /// Failed a request: takes no new ones, and leaves the pool when its streams are over.
    retired: bool,
}

/// One request's place on a connection, given back when dropped.
pub struct StreamSlot {
    host: Arc<Host>,
    conn: u64,
}

impl std::fmt::Debug for StreamSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamSlot").field("conn", &self.conn).finish()
    }
}

/// A response body read from an HTTP/2 stream: it gives the stream's receive window back as
/// the body is read, and holds the stream's place in the pool until it ends.
#[derive(Debug)]
pub struct H2Body {
    stream: h2::RecvStream,
    length: Option<u64>,
    /// Given back when the stream ends, before the body itself is dropped.
    slot: Option<StreamSlot>,
    done: bool,
}

// === impl Pool ===

impl Pool {
    /// A pool opening connections with `connector` (whose TLS offers ALPN `h2` first), carrying
    /// at most `max_streams` requests on each and closing one idle for `idle_timeout`.
    pub fn new(connector: HttpsConnector<HttpConnector>, max_streams: usize, idle_timeout: Duration) -> Self {
        let streams = u32::try_from(max_streams).unwrap_or(u32::MAX);
        let mut handshake = h2::client::Builder::new();
        handshake
            .initial_window_size(STREAM_WINDOW_BYTES)
            // Room for every stream's window, so streams whose clients stall cannot use up
            // the connection's and hold the others back.
            .initial_connection_window_size(STREAM_WINDOW_BYTES.saturating_mul(streams).min(i32::MAX as u32))
            // The gateway never accepts pushed streams.
            .enable_push(false);
        Self {
            connector,
            handshake,
            max_streams: max_streams.max(1),
            idle_timeout,
            hosts: Mutex::default(),
        }
    }

    /// Sends `request` (absolute URI) with `body` on a connection with a free stream, opening
    /// one if none has, and returns the response once its headers arrived; or gives the request
    /// back if its host turned out not to speak HTTP/2 over TLS.
    pub async fn send(&self, request: Request<()>, body: Bytes) -> Result<Sent, Error> {
        let host = self.host(request.uri())?;
        if host.http1_only.load(Ordering::Relaxed) {
            return Ok(Sent::Http1Only(request));
        }
        let (sender, slot) = match self.take(&host) {
            Some(taken) => taken,
            None => {
                let _opening = host.opening.lock().await;
                // Another request may have opened one while this one waited.
                match self.take(&host) {
                    Some(taken) => taken,
                    None => {
                        // Boxed: rare, and most of this future's size otherwise.
                        let Some((sender, driver)) = Box::pin(self.open(request.uri())).await? else {
                            tracing::warn!(
                                host = %request.uri().authority().map_or("", |a| a.as_str()),
                                "the Bedrock endpoint did not agree to HTTP/2 (ALPN h2): using HTTP/1.1 for it"
                            );
                            host.http1_only.store(true, Ordering::Relaxed);
                            return Ok(Sent::Http1Only(request));
                        };
                        self.add(&host, sender, driver)
                    }
                }
            }
        };
        match Self::exchange(sender, request, body).await {
            Ok(response) => {
                let length = content_length(response.headers());
                Ok(Sent::Response(response.map(|stream| H2Body {
                    stream,
                    length,
                    slot: Some(slot),
                    done: false,
                })))
            }
            Err(e) => {
                // A stream refused or reset is the server's answer to this request alone; any
                // other failure is the connection's, which then takes no new request, so a
                // retry opens another (streams already on it run to their end).
                if !e.is_reset() {
                    slot.retire();
                }
                Err(super::connect_error(&e))
            }
        }
    }

    /// Opens the stream, queues HEADERS and the whole body together (h2 buffers what the
    /// flow-control window does not yet allow) and waits for the response headers.
    async fn exchange(
        sender: h2::client::SendRequest<Bytes>,
        request: Request<()>,
        body: Bytes,
    ) -> Result<Response<h2::RecvStream>, h2::Error> {
        let mut sender = sender.ready().await?;
        let end_of_stream = body.is_empty();
        let (response, mut send) = sender.send_request(request, end_of_stream)?;
        if !end_of_stream {
            send.send_data(body, true)?;
        }
        response.await
    }

    fn host(&self, uri: &Uri) -> Result<Arc<Host>, Error> {
        let key = super::host_key(uri)?;
        let mut hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(Arc::clone(hosts.entry(key).or_default()))
    }

    /// A free stream on the oldest open connection that has one; drops closed connections,
    /// ones idle past the timeout and retired ones without streams on the way.
    fn take(&self, host: &Arc<Host>) -> Option<(h2::client::SendRequest<Bytes>, StreamSlot)> {
        let now = Instant::now();
        let mut conns = host.lock();
        conns.list.retain(|c| {
            !c.driver.is_finished()
                && (c.in_flight > 0 || (!c.retired && now.duration_since(c.idle_since) < self.idle_timeout))
        });
        let max_streams = self.max_streams;
        // The server's limit is read last: it takes h2's lock.
        let conn = conns.list.iter_mut().find(|c| {
            !c.retired && c.in_flight < max_streams && c.in_flight < c.sender.current_max_send_streams()
        })?;
        Some(conn.take_stream(host))
    }

    /// Puts a new connection in the pool with one stream taken.
    fn add(
        &self,
        host: &Arc<Host>,
        sender: h2::client::SendRequest<Bytes>,
        driver: AbortHandle,
    ) -> (h2::client::SendRequest<Bytes>, StreamSlot) {
        let mut conns = host.lock();
        let id = conns.next_id;
        conns.next_id += 1;
        let mut conn = Conn {
            id,
            sender,
            driver,
            in_flight: 0,
            idle_since: Instant::now(),
            retired: false,
        };
        let taken = conn.take_stream(host);
        conns.list.push(conn);
        taken
    }

    /// Connects (TCP, then TLS agreeing on `h2`; plain `http://` speaks HTTP/2 with prior
    /// knowledge) and runs the HTTP/2 handshake. The connection is driven by its own task,
    /// returned as its handle; a second task pings it. `None`: the TLS server picked HTTP/1.1
    /// or no protocol, and the connection is dropped.
    async fn open(&self, uri: &Uri) -> Result<Option<(h2::client::SendRequest<Bytes>, AbortHandle)>, Error> {
        let io = super::connect(&self.connector, uri).await?;
        if uri.scheme() == Some(&Scheme::HTTPS) && !io.connected().is_negotiated_h2() {
            return Ok(None);
        }
        let (sender, mut connection) = self
            .handshake
            .handshake::<_, Bytes>(TokioIo::new(io))
            .await
            .map_err(|e| super::connect_error(&e))?;
        let ping_pong = connection.ping_pong();
        let driver = tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "HTTP/2 connection to Bedrock ended");
            }
        })
        .abort_handle();
        if let Some(ping_pong) = ping_pong {
            tokio::spawn(keep_alive(ping_pong, driver.clone()));
        }
        Ok(Some((sender, driver)))
    }
}

/// Pings the connection every [`PING_INTERVAL`] and closes it when a ping goes unanswered
/// for [`PING_TIMEOUT`]; ends with the connection.
async fn keep_alive(mut ping_pong: h2::PingPong, driver: AbortHandle) {
    loop {
        tokio::time::sleep(PING_INTERVAL).await;
        if driver.is_finished() {
            return;
        }
        match tokio::time::timeout(PING_TIMEOUT, ping_pong.ping(h2::Ping::opaque())).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return,
            Err(_) => {
                tracing::debug!("HTTP/2 connection to Bedrock did not answer a ping: closing it");
                driver.abort();
                return;
            }
        }
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

// === impl Conn ===

impl Conn {
    /// Takes one of this connection's streams for a request on `host`.
    fn take_stream(&mut self, host: &Arc<Host>) -> (h2::client::SendRequest<Bytes>, StreamSlot) {
        self.in_flight += 1;
        let slot = StreamSlot {
            host: Arc::clone(host),
            conn: self.id,
        };
        (self.sender.clone(), slot)
    }
}

// === impl Host ===

impl Host {
    fn lock(&self) -> MutexGuard<'_, Conns> {
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

// === impl StreamSlot ===

impl StreamSlot {
    /// Marks this slot's connection as failed.
    fn retire(&self) {
        if let Some(conn) = self.host.lock().list.iter_mut().find(|c| c.id == self.conn) {
            conn.retired = true;
        }
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut conns = self.host.lock();
        if let Some(conn) = conns.list.iter_mut().find(|c| c.id == self.conn) {
            conn.in_flight -= 1;
            if conn.in_flight == 0 {
                conn.idle_since = Instant::now();
            }
        }
    }
}

// === impl H2Body ===

impl Body for H2Body {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let polled = this.poll_stream(cx);
        match &polled {
            Poll::Ready(None | Some(Err(_))) => {
                this.done = true;
                this.slot = None;
            }
            Poll::Ready(Some(Ok(frame))) if frame.is_trailers() => {
                this.done = true;
                this.slot = None;
            }
            Poll::Ready(Some(Ok(_))) if this.stream.is_end_stream() => this.slot = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.stream.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        match self.length {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

impl H2Body {
    /// The next DATA frame (its bytes given back to the stream's window), then the trailers.
    fn poll_stream(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        match self.stream.poll_data(cx) {
            Poll::Ready(Some(Ok(data))) => {
                // The bytes are ours now: Bedrock may send as many more.
                let _ = self.stream.flow_control().release_capacity(data.len());
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => match self.stream.poll_trailers(cx) {
                Poll::Ready(Ok(trailers)) => Poll::Ready(trailers.map(|t| Ok(Frame::trailers(t)))),
                Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
                Poll::Pending => Poll::Pending,
            },
            Poll::Pending => Poll::Pending,
        }
    }
}
