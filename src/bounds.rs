//! The bounds the request flow puts on the inner service and its body, named once.

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use crate::flow::transfer::BoxError;

/// An inner service the flow can run in a task of its own: `Send + 'static`, with a `Send`
/// future and error.
pub(crate) trait Inner<ReqB, ResB>:
    Service<Request<ReqB>, Response = Response<ResB>, Future: Send, Error: Send + 'static>
    + Send
    + 'static
{
}

impl<S, ReqB, ResB> Inner<ReqB, ResB> for S where
    S: Service<Request<ReqB>, Response = Response<ResB>, Future: Send, Error: Send + 'static>
        + Send
        + 'static
{
}

/// A response body the cache can buffer, stream to several clients, and pass on across tasks.
pub(crate) trait CachedBody:
    Body<Data: Into<Bytes> + Send, Error: Into<BoxError> + Send> + Send + 'static
{
}

impl<B> CachedBody for B where
    B: Body<Data: Into<Bytes> + Send, Error: Into<BoxError> + Send> + Send + 'static
{
}
