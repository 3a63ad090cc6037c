//! The response body: stored bytes, or the origin's body passed through.

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use crate::flow::transfer::{BoxError, TransferBody};

pin_project! {
    /// The body of a response that went through the cache layer.
    ///
    /// A hit is a shared `Bytes` plus optional trailers: no copy per response. A miss that
    /// may be stored is streamed: each client of the fill (the request that started it and
    /// the ones that joined it) gets every frame as the origin sends it, while the same frames
    /// are kept for the store. Anything else is the inner service's body `B`, passed through
    /// frame by frame.
    ///
    /// Its error is a [`BoxError`](crate::BoxError): the inner body's error, converted, or the
    /// cache's own when a shared body ended early (the origin's body failed, or this client
    /// read too slowly to keep up with a body too large to keep).
    pub struct CacheBody<B: Body> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B: Body> {
        Buffered {
            data: Option<Bytes>,
            trailers: Option<HeaderMap>,
        },
        Origin {
            #[pin]
            body: B,
        },
        Resumed {
            // Data already read from `body` (bounded by the policy's max body size).
            prefix: VecDeque<Bytes>,
            // An error met while reading `prefix`, delivered after it.
            error: Option<B::Error>,
            body: Pin<Box<B>>,
        },
        Shared {
            body: TransferBody,
        },
    }
}

impl<B: Body> CacheBody<B> {
    /// A body of stored bytes and trailers.
    pub(crate) fn buffered(data: Bytes, trailers: Option<HeaderMap>) -> Self {
        CacheBody {
            kind: Kind::Buffered {
                data: (!data.is_empty()).then_some(data),
                trailers,
            },
        }
    }

    /// An empty body (HEAD).
    pub(crate) fn empty() -> Self {
        Self::buffered(Bytes::new(), None)
    }

    /// The inner service's body, untouched.
    pub(crate) fn origin(body: B) -> Self {
        CacheBody {
            kind: Kind::Origin { body },
        }
    }

    /// One client's copy of a body being received from the origin (a miss, streamed).
    pub(crate) fn shared(body: TransferBody) -> Self {
        CacheBody {
            kind: Kind::Shared { body },
        }
    }

    /// Cuts the body to the bytes `start..=end_inclusive` (a range request's answer), when
    /// it can be cut without reading it: stored bytes, or a shared body. `false` (and the
    /// body unchanged) otherwise.
    pub(crate) fn cut(&mut self, start: u64, end_inclusive: u64) -> bool {
        match &mut self.kind {
            Kind::Buffered { data, trailers } => {
                let Some(whole) = data.as_ref() else {
                    return false;
                };
                let end = usize::try_from(end_inclusive.saturating_add(1)).unwrap_or(usize::MAX);
                let start = usize::try_from(start).unwrap_or(usize::MAX);
                if start >= whole.len() || start >= end {
                    return false;
                }
                *data = Some(whole.slice(start..end.min(whole.len())));
                *trailers = None;
                true
            }
            Kind::Shared { body } => {
                body.cut(start, end_inclusive);
                true
            }
            Kind::Origin { .. } | Kind::Resumed { .. } => false,
        }
    }

    /// The inner service's body after `prefix` (and `error`) were read from it.
    pub(crate) fn resumed(
        prefix: VecDeque<Bytes>,
        error: Option<B::Error>,
        body: Pin<Box<B>>,
    ) -> Self {
        CacheBody {
            kind: Kind::Resumed {
                prefix,
                error,
                body,
            },
        }
    }
}

impl<B> Body for CacheBody<B>
where
    B: Body,
    B::Data: Into<Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project().kind.project() {
            KindProj::Buffered { data, trailers } => {
                if let Some(data) = data.take() {
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Poll::Ready(trailers.take().map(|t| Ok(Frame::trailers(t))))
            }
            KindProj::Origin { body } => map_frame(ready!(body.poll_frame(cx))),
            KindProj::Resumed {
                prefix,
                error,
                body,
            } => {
                if let Some(data) = prefix.pop_front() {
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                if let Some(error) = error.take() {
                    return Poll::Ready(Some(Err(error.into())));
                }
                map_frame(ready!(body.as_mut().poll_frame(cx)))
            }
            KindProj::Shared { body } => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Buffered { data, trailers } => data.is_none() && trailers.is_none(),
            Kind::Origin { body } => body.is_end_stream(),
            Kind::Resumed {
                prefix,
                error,
                body,
            } => prefix.is_empty() && error.is_none() && body.is_end_stream(),
            Kind::Shared { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Buffered { data, .. } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            Kind::Origin { body } => body.size_hint(),
            Kind::Resumed { prefix, body, .. } => {
                let read: u64 = prefix.iter().map(|d| d.len() as u64).sum();
                let rest = body.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(rest.lower().saturating_add(read));
                if let Some(upper) = rest.upper() {
                    hint.set_upper(upper.saturating_add(read));
                }
                hint
            }
            Kind::Shared { body } => body.size_hint(),
        }
    }
}

fn map_frame<D: Into<Bytes>, E: Into<BoxError>>(
    frame: Option<Result<Frame<D>, E>>,
) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
    Poll::Ready(frame.map(|f| f.map(|f| f.map_data(Into::into)).map_err(Into::into)))
}

impl<B: Body> fmt::Debug for CacheBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Buffered { data, trailers } => f
                .debug_struct("CacheBody::Buffered")
                .field("len", &data.as_ref().map_or(0, Bytes::len))
                .field("trailers", &trailers.is_some())
                .finish(),
            Kind::Origin { .. } => f.debug_struct("CacheBody::Origin").finish(),
            Kind::Resumed { prefix, .. } => f
                .debug_struct("CacheBody::Resumed")
                .field("prefix_chunks", &prefix.len())
                .finish(),
            Kind::Shared { .. } => f.debug_struct("CacheBody::Shared").finish(),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    /// A body that yields the given frames, then ends.
    pub(crate) struct Frames<E>(pub VecDeque<Result<Frame<Bytes>, E>>);

    impl<E: Unpin> Body for Frames<E> {
        type Data = Bytes;
        type Error = E;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, E>>> {
            Poll::Ready(self.0.pop_front())
        }
    }

    #[tokio::test]
    async fn buffered_replays_data_and_trailers() {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        let body: CacheBody<Full<Bytes>> =
            CacheBody::buffered(Bytes::from_static(b"hello"), Some(trailers));
        assert_eq!(body.size_hint().exact(), Some(5));
        let collected = body.collect().await.unwrap();
        assert_eq!(collected.trailers().unwrap()["grpc-status"], "0");
        assert_eq!(collected.to_bytes(), "hello");
    }

    #[tokio::test]
    async fn resumed_yields_prefix_then_rest_then_error() {
        let rest: Frames<&str> =
            Frames(VecDeque::from([Ok(Frame::data(Bytes::from_static(b"c")))]));
        let body = CacheBody::resumed(
            VecDeque::from([Bytes::from_static(b"a"), Bytes::from_static(b"b")]),
            None,
            Box::pin(rest),
        );
        assert_eq!(body.size_hint().lower(), 2);
        assert_eq!(body.collect().await.unwrap().to_bytes(), "abc");

        let failing: Frames<&str> = Frames(VecDeque::new());
        let body = CacheBody::resumed(
            VecDeque::from([Bytes::from_static(b"a")]),
            Some("boom"),
            Box::pin(failing),
        );
        let mut body = std::pin::pin!(body);
        assert!(body.frame().await.unwrap().is_ok());
        assert_eq!(body.frame().await.unwrap().unwrap_err().to_string(), "boom");
        assert!(body.frame().await.is_none());
    }

    #[tokio::test]
    async fn empty_is_at_end() {
        let body: CacheBody<Full<Bytes>> = CacheBody::empty();
        assert!(body.is_end_stream());
        assert_eq!(body.size_hint().exact(), Some(0));
    }
}
