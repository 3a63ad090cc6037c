//! The response future of [`CacheService`](crate::CacheService).

use http::Response;
use http_body::Body;
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::CacheBody;

type Flow<B, E> = Pin<Box<dyn Future<Output = Result<Response<CacheBody<B>>, E>> + Send>>;

pin_project! {
    /// The future [`CacheService`](crate::CacheService) returns: the cache's answer, or the
    /// inner service's (with its error type unchanged).
    ///
    /// A hit that the store could answer at once is ready when `call` returns: nothing is
    /// allocated for it. Everything else (misses, bypasses, stores that wait) is an `async` flow
    /// behind one allocation.
    pub struct ResponseFuture<B: Body, E> {
        #[pin]
        kind: Kind<B, E>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B: Body, E> {
        Ready { response: Option<Response<CacheBody<B>>> },
        Flow { flow: Flow<B, E> },
    }
}

impl<B: Body, E> ResponseFuture<B, E> {
    pub(crate) fn ready(response: Response<CacheBody<B>>) -> Self {
        ResponseFuture {
            kind: Kind::Ready {
                response: Some(response),
            },
        }
    }

    pub(crate) fn flow(
        flow: impl Future<Output = Result<Response<CacheBody<B>>, E>> + Send + 'static,
    ) -> Self {
        ResponseFuture {
            kind: Kind::Flow {
                flow: Box::pin(flow),
            },
        }
    }
}

impl<B: Body, E> Future for ResponseFuture<B, E> {
    type Output = Result<Response<CacheBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Ready { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                // Polled again after completion: a caller error, but never a panic here.
                None => Poll::Pending,
            },
            KindProj::Flow { flow } => flow.as_mut().poll(cx),
        }
    }
}

impl<B: Body, E> fmt::Debug for ResponseFuture<B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
