//! Request body collection (bounded) and the response body type.

pub mod sse;

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::time::{Instant, Sleep};

use crate::error::Error;
use crate::service::passthrough::meter::Meter;
use crate::upstream::UpstreamBody;
use sse::SseBody;

/// Reads a whole request body into one buffer, refusing more than `limit` bytes.
///
/// The declared size (`content-length`) is checked before anything is read, so an oversized
/// upload is refused without being received. The buffer is a `Vec` because simd-json parses
/// it in place.
pub async fn collect<B>(body: B, limit: u64) -> Result<Vec<u8>, Error>
where
    B: Body<Data = Bytes>,
    B::Error: std::fmt::Display,
{
    let hint = body.size_hint();
    if hint.lower() > limit || hint.upper().is_some_and(|upper| upper > limit) {
        return Err(Error::BodyTooLarge { limit });
    }
    let capacity = usize::try_from(hint.upper().unwrap_or(hint.lower()).min(limit)).unwrap_or(0);
    // Room for the padding a JSON parse adds in place (`json::parse_in_place`).
    let mut buf = Vec::with_capacity(capacity.saturating_add(crate::json::INPUT_PADDING));
    let mut body = std::pin::pin!(body);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Error::BodyRead(e.to_string().into()))?;
        if let Ok(data) = frame.into_data() {
            if (buf.len() + data.len()) as u64 > limit {
                return Err(Error::BodyTooLarge { limit });
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf)
}

/// Every response the gateway sends: a complete buffer, a translated event stream, or a
/// Bedrock body passed through untouched.
///
/// An enum rather than a boxed trait object, so the server polls it with static dispatch.
#[derive(Debug)]
pub enum ResponseBody {
    /// A complete body, sent as one frame.
    Full(Option<Bytes>),
    /// An OpenAI SSE stream translated from a Bedrock event stream.
    Sse(Box<SseBody>),
    /// A Bedrock response body relayed byte for byte (native passthrough).
    Upstream(Box<PassthroughBody>),
}

/// Why a relayed body stopped before its end. hyper then aborts the response (HTTP/1.1 closes
/// the connection without the last chunk, HTTP/2 resets the stream), so the client sees a
/// truncated body as truncated rather than as complete.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BodyError(Box<str>);

impl ResponseBody {
    /// A complete body.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        Self::Full(if bytes.is_empty() { None } else { Some(bytes) })
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            Self::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Self::Sse(sse) => match Pin::new(sse.as_mut()).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
                Poll::Ready(Some(Err(never))) => match never {},
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
            Self::Upstream(body) => Pin::new(body.as_mut()).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Full(bytes) => bytes.is_none(),
            Self::Sse(sse) => sse.is_end_stream(),
            Self::Upstream(body) => body.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Self::Full(None) => SizeHint::with_exact(0),
            Self::Sse(_) => SizeHint::default(),
            Self::Upstream(body) => body.inner.size_hint(),
        }
    }
}

/// A Bedrock body relayed as it arrives, under the idle deadline between frames.
#[derive(Debug)]
pub struct PassthroughBody {
    inner: UpstreamBody,
    idle: Pin<Box<Sleep>>,
    idle_timeout: Duration,
    /// The key's stream slot, for an event stream, given back when the body is dropped.
    _permit: Option<crate::auth::limits::StreamPermit>,
    /// Reads the reply's token usage as it passes and charges the key at the end.
    meter: Option<Meter>,
}

impl PassthroughBody {
    /// Wraps an upstream body, holding `permit` for as long as it lives and showing each chunk
    /// to `meter`.
    pub fn new(
        inner: UpstreamBody,
        idle_timeout: Duration,
        permit: Option<crate::auth::limits::StreamPermit>,
        meter: Option<Meter>,
    ) -> Self {
        Self {
            inner,
            idle: Box::pin(tokio::time::sleep(idle_timeout)),
            idle_timeout,
            _permit: permit,
            meter,
        }
    }
}

impl Body for PassthroughBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.idle.as_mut().reset(Instant::now() + this.idle_timeout);
                if let (Some(meter), Some(data)) = (&mut this.meter, frame.data_ref()) {
                    meter.observe(data);
                    // hyper stops polling a body whose length is reached: this is its end.
                    if this.inner.is_end_stream() {
                        meter.finish(true);
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                Poll::Ready(Some(Err(BodyError(format!("Bedrock body failed: {e}").into()))))
            }
            Poll::Ready(None) => {
                if let Some(meter) = &mut this.meter {
                    meter.finish(true);
                }
                Poll::Ready(None)
            }
            Poll::Pending => match this.idle.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(BodyError("Bedrock body idle timeout".into())))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;
    use std::convert::Infallible;

    #[tokio::test]
    async fn collect_refuses_a_declared_oversize_body() {
        let body = Full::new(Bytes::from(vec![b'x'; 2048]));
        assert!(matches!(
            collect(body, 1024).await,
            Err(Error::BodyTooLarge { limit: 1024 })
        ));
    }

    /// A body that does not declare its length, like a chunked upload or Bedrock's event
    /// stream: one chunk a poll, all of them there.
    pub(super) struct Chunked(pub(super) Vec<Bytes>);

    impl Body for Chunked {
        type Data = Bytes;
        type Error = Infallible;
        fn poll_frame(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            let chunks = &mut self.get_mut().0;
            Poll::Ready(if chunks.is_empty() {
                None
            } else {
                Some(Ok(Frame::data(chunks.remove(0))))
            })
        }
    }

    #[tokio::test]
    async fn collect_refuses_an_undeclared_oversize_body() {
        let body = Chunked((0..4).map(|_| Bytes::from(vec![b'x'; 400])).collect());
        assert!(matches!(
            collect(body, 1024).await,
            Err(Error::BodyTooLarge { .. })
        ));
    }

    #[tokio::test]
    async fn collect_reads_a_body_within_the_limit() {
        let body = Full::new(Bytes::from_static(b"{\"a\":1}"));
        assert_eq!(collect(body, 1024).await.unwrap(), b"{\"a\":1}");
    }
}
