//! HTTP/2 to Bedrock: as many connections as the requests in flight need.
//!
//! hyper-util's pooled client keeps one HTTP/2 connection per host, and requests beyond the
//! server's stream limit wait inside it until a stream ends. This pool counts the requests on
//! each of its connections and opens another when every one carries `max_streams`, so a burst
//! never queues behind one connection's limit. It packs requests onto the oldest connection
//! with room, so quiet periods leave the newer ones idle, and an idle connection is closed
//! after the pool's idle timeout.
//!
//! A request takes a [`StreamSlot`], which its response body holds: the slot is given back
//! when the body ends or is dropped, which is when its stream is over (ended, or reset by
//! hyper on drop). Connections to one host are opened one at a time, so a cold burst opens
//! as many as it fills, not one per request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http::{Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http2 as conn;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::{Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tower_service::Service;

use crate::error::Error;

/// Receive window per stream: what Bedrock may send ahead of a reader. A stalled client makes
/// the gateway hold at most this for its stream (HTTP/2's own initial window).
const STREAM_WINDOW_BYTES: u32 = 64 * 1024;

/// Ping period on a connection carrying streams; a peer silent for [`PING_TIMEOUT`] after a
/// ping is taken as gone and its streams fail instead of waiting out their idle deadlines.
const PING_INTERVAL: Duration = Duration::from_secs(30);
const PING_TIMEOUT: Duration = Duration::from_secs(20);

/// The pooled HTTP/2 connections, per scheme and authority.
pub struct Pool {
    connector: HttpsConnector<HttpConnector>,
    handshake: conn::Builder<TokioExecutor>,
    max_streams: usize,
    idle_timeout: Duration,
    hosts: Mutex<HashMap<(bool, Authority), Arc<Host>>>,
}

/// The connections to one host.
#[derive(Default)]
struct Host {
    conns: Mutex<Conns>,
    /// Held while a connection to this host is being opened.
    opening: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Conns {
    list: Vec<Conn>,
    next_id: u64,
}

struct Conn {
    id: u64,
    sender: conn::SendRequest<Full<Bytes>>,
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

// === impl Pool ===

impl Pool {
    /// A pool opening connections with `connector` (whose TLS offers ALPN `h2` only), carrying
    /// at most `max_streams` requests on each and closing one idle for `idle_timeout`.
    pub fn new(connector: HttpsConnector<HttpConnector>, max_streams: usize, idle_timeout: Duration) -> Self {
        let mut handshake = conn::Builder::new(TokioExecutor::new());
        let streams = u32::try_from(max_streams).unwrap_or(u32::MAX);
        handshake
            .timer(TokioTimer::new())
            .initial_stream_window_size(STREAM_WINDOW_BYTES)
            // Room for every stream's window, so streams whose clients stall cannot use up
            // the connection's and hold the others back.
            .initial_connection_window_size(STREAM_WINDOW_BYTES.saturating_mul(streams).min(i32::MAX as u32))
            .keep_alive_interval(PING_INTERVAL)
            .keep_alive_timeout(PING_TIMEOUT);
        Self {
            connector,
            handshake,
            max_streams: max_streams.max(1),
            idle_timeout,
            hosts: Mutex::default(),
        }
    }

    /// Sends `request` (absolute URI) on a connection with a free stream, opening one if none
    /// has, and returns the response with its stream's slot.
    pub async fn send(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<(Response<Incoming>, StreamSlot), Error> {
        let host = self.host(request.uri())?;
        let (mut sender, slot) = match self.take(&host) {
            Some(taken) => taken,
            None => {
                let _opening = host.opening.lock().await;
                // Another request may have opened one while this one waited.
                match self.take(&host) {
                    Some(taken) => taken,
                    None => {
                        let sender = self.open(request.uri()).await?;
                        self.add(&host, sender)
                    }
                }
            }
        };
        match sender.send_request(request).await {
            Ok(response) => Ok((response, slot)),
            Err(e) => {
                // The connection failed this request (reset, going away, broken): no new
                // request is handed to it, so a retry opens another; streams already on it
                // run to their end.
                if let Some(conn) = slot.host.lock().list.iter_mut().find(|c| c.id == slot.conn) {
                    conn.retired = true;
                }
                Err(super::connect_error(&e))
            }
        }
    }

    fn host(&self, uri: &Uri) -> Result<Arc<Host>, Error> {
        let authority = uri
            .authority()
            .ok_or(Error::Internal("an upstream URI without an authority"))?;
        let key = (uri.scheme() == Some(&Scheme::HTTPS), authority.clone());
        let mut hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(Arc::clone(hosts.entry(key).or_default()))
    }

    /// A free stream on the oldest open connection that has one; drops closed connections,
    /// ones idle past the timeout and retired ones without streams on the way.
    fn take(&self, host: &Arc<Host>) -> Option<(conn::SendRequest<Full<Bytes>>, StreamSlot)> {
        let now = Instant::now();
        let mut conns = host.lock();
        conns.list.retain(|c| {
            !c.sender.is_closed()
                && (c.in_flight > 0 || (!c.retired && now.duration_since(c.idle_since) < self.idle_timeout))
        });
        let conn = conns
            .list
            .iter_mut()
            .find(|c| !c.retired && c.in_flight < self.max_streams)?;
        conn.in_flight += 1;
        let slot = StreamSlot {
            host: Arc::clone(host),
            conn: conn.id,
        };
        Some((conn.sender.clone(), slot))
    }

    /// Puts a new connection in the pool with one stream taken.
    fn add(
        &self,
        host: &Arc<Host>,
        sender: conn::SendRequest<Full<Bytes>>,
    ) -> (conn::SendRequest<Full<Bytes>>, StreamSlot) {
        let mut conns = host.lock();
        let id = conns.next_id;
        conns.next_id += 1;
        conns.list.push(Conn {
            id,
            sender: sender.clone(),
            in_flight: 1,
            idle_since: Instant::now(),
            retired: false,
        });
        let slot = StreamSlot {
            host: Arc::clone(host),
            conn: id,
        };
        (sender, slot)
    }

    /// Connects (TCP, then TLS agreeing on `h2`; plain `http://` speaks HTTP/2 with prior
    /// knowledge) and runs the HTTP/2 handshake; the connection is driven by its own task.
    async fn open(&self, uri: &Uri) -> Result<conn::SendRequest<Full<Bytes>>, Error> {
        let mut connector = self.connector.clone();
        std::future::poll_fn(|cx| connector.poll_ready(cx))
            .await
            .map_err(|e| super::connect_error(&*e))?;
        let io = connector
            .call(uri.clone())
            .await
            .map_err(|e| super::connect_error(&*e))?;
        if uri.scheme() == Some(&Scheme::HTTPS) && !io.connected().is_negotiated_h2() {
            return Err(Error::UpstreamConnect(
                "the Bedrock endpoint did not agree to HTTP/2 (ALPN h2); set bedrock.http2: false".into(),
            ));
        }
        let (sender, connection) = self
            .handshake
            .handshake(io)
            .await
            .map_err(|e| super::connect_error(&e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "HTTP/2 connection to Bedrock ended");
            }
        });
        Ok(sender)
    }
}

// === impl Host ===

impl Host {
    fn lock(&self) -> MutexGuard<'_, Conns> {
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

// === impl StreamSlot ===

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
