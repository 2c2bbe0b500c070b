//! HTTP/1.1 to Bedrock: keep-alive connections, one per request in flight.
//!
//! A request takes the most recently used idle connection to its host, or opens a new one.
//! Its response body holds the connection and puts it back when the body has been read to
//! its end; a body dropped early takes its connection with it (hyper closes a connection
//! whose response was not read out). A pooled connection the server closed while it sat idle
//! gives the request back unwritten, and the request goes to the next one (or a new one)
//! without counting as a failure. At most `max_idle` idle connections are kept per host, and
//! one idle for the pool's idle timeout is closed.
//!
//! hyper-util's pooled client does the same in general form, for every protocol and
//! connector: it hashes a pool key per request, spawns a task per request to wait for the
//! connection to be ready again and boxes its futures: about 10,000 instructions a request in
//! the bare hop, and about 7,000 more per gateway request than this pool (loadtest/README.md,
//! "The gateway's own HTTP/1.1 pool").

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;

use crate::error::Error;

type Sender = http1::SendRequest<Full<Bytes>>;

/// The pooled HTTP/1.1 connections, per scheme and authority.
pub struct Pool {
    connector: HttpsConnector<HttpConnector>,
    handshake: http1::Builder,
    max_idle: usize,
    idle_timeout: Duration,
    hosts: Mutex<HashMap<super::HostKey, Arc<Host>, foldhash::fast::RandomState>>,
}

/// The idle connections to one host, the most recently used last.
struct Host {
    idle: Mutex<Vec<Idle>>,
    max_idle: usize,
    idle_timeout: Duration,
}

struct Idle {
    sender: Sender,
    since: Instant,
}

/// A response body read from a pooled connection, which goes back to the pool when the body
/// has been read to its end.
pub struct H1Body {
    inner: Incoming,
    /// The connection, until the body ends.
    lent: Option<(Arc<Host>, Sender)>,
}

impl std::fmt::Debug for H1Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H1Body")
            .field("lent", &self.lent.is_some())
            .finish()
    }
}

// === impl Pool ===

impl Pool {
    /// A pool opening connections with `connector` (TLS offering ALPN `http/1.1`), whose
    /// connections read at most `max_read` bytes at a time, keeping at most `max_idle` idle
    /// connections a host and closing one idle for `idle_timeout`.
    pub fn new(
        connector: HttpsConnector<HttpConnector>,
        max_read: usize,
        max_idle: usize,
        idle_timeout: Duration,
    ) -> Self {
        let mut handshake = http1::Builder::new();
        handshake.max_buf_size(max_read);
        Self {
            connector,
            handshake,
            max_idle,
            idle_timeout,
            hosts: Mutex::default(),
        }
    }

    /// Sends `request` (absolute URI, `Host` set) on an idle connection to its host, or a new
    /// one, and returns the response once its headers arrived.
    pub async fn send(&self, mut request: Request<Full<Bytes>>) -> Result<Response<H1Body>, Error> {
        let uri = request.uri().clone();
        let host = self.host(&uri)?;
        // On the wire the request line carries the path alone.
        *request.uri_mut() = match uri.path_and_query() {
            Some(path) => Uri::from(path.clone()),
            None => Uri::from_static("/"),
        };
        loop {
            let (mut sender, pooled) = match host.take() {
                Some(sender) => (sender, true),
                // Boxed: opening a connection is rare, and its future is most of this one's
                // size, which every caller up to the request's task would carry.
                None => (Box::pin(self.open(&uri)).await?, false),
            };
            // A pooled connection may still be finishing its last response; one that closed
            // meanwhile is dropped and the next tried.
            if pooled && sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(request).await {
                Ok(response) => {
                    let lent = (Arc::clone(&host), sender);
                    let lent = if response.body().is_end_stream() {
                        give_back(lent);
                        None
                    } else {
                        Some(lent)
                    };
                    return Ok(response.map(|inner| H1Body { inner, lent }));
                }
                Err(mut e) => match e.take_message() {
                    // Closed before the request was written: nothing reached Bedrock.
                    Some(unsent) if pooled => request = unsent,
                    _ => return Err(super::connect_error(e.error())),
                },
            }
        }
    }

    fn host(&self, uri: &Uri) -> Result<Arc<Host>, Error> {
        let key = super::host_key(uri)?;
        let mut hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(host) = hosts.get(&key) {
            return Ok(Arc::clone(host));
        }
        let host = Arc::new(Host {
            idle: Mutex::default(),
            max_idle: self.max_idle,
            idle_timeout: self.idle_timeout,
        });
        tokio::spawn(close_idle(Arc::downgrade(&host)));
        hosts.insert(key, Arc::clone(&host));
        Ok(host)
    }

    /// Connects (TCP, then TLS for `https://`) and runs the connection in its own task.
    async fn open(&self, uri: &Uri) -> Result<Sender, Error> {
        let io = super::connect(&self.connector, uri).await?;
        let (sender, connection) = self
            .handshake
            .handshake(io)
            .await
            .map_err(|e| super::connect_error(&e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "HTTP/1.1 connection to Bedrock ended");
            }
        });
        Ok(sender)
    }
}

/// Closes a host's connections idle past the timeout, checking every timeout; ends with the
/// pool.
async fn close_idle(host: Weak<Host>) {
    let Some(every) = host.upgrade().map(|h| h.idle_timeout) else {
        return;
    };
    loop {
        tokio::time::sleep(every).await;
        let Some(host) = host.upgrade() else {
            return;
        };
        let now = Instant::now();
        host.lock()
            .retain(|c| !c.sender.is_closed() && now.duration_since(c.since) < host.idle_timeout);
    }
}

// === impl Host ===

impl Host {
    fn lock(&self) -> MutexGuard<'_, Vec<Idle>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The most recently used idle connection that is neither closed nor past the timeout.
    fn take(&self) -> Option<Sender> {
        let now = Instant::now();
        let mut idle = self.lock();
        while let Some(conn) = idle.pop() {
            if now.duration_since(conn.since) >= self.idle_timeout {
                // The rest are older still.
                idle.clear();
                return None;
            }
            if !conn.sender.is_closed() {
                return Some(conn.sender);
            }
        }
        None
    }
}

/// Puts a connection whose response has been read back in its host's idle list, unless it
/// closed or the list is full (dropping the sender closes the connection).
fn give_back((host, sender): (Arc<Host>, Sender)) {
    if sender.is_closed() {
        return;
    }
    let mut idle = host.lock();
    if idle.len() < host.max_idle {
        idle.push(Idle {
            sender,
            since: Instant::now(),
        });
    }
}

// === impl H1Body ===

impl Body for H1Body {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        let ended = match &polled {
            Poll::Ready(None) => true,
            Poll::Ready(Some(Ok(_))) => this.inner.is_end_stream(),
            // A connection that failed mid-response is not reused.
            Poll::Ready(Some(Err(_))) => {
                this.lent = None;
                false
            }
            Poll::Pending => false,
        };
        if ended && let Some(lent) = this.lent.take() {
            give_back(lent);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
