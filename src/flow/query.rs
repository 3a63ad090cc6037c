//! Reading a query's body (a `POST` on a route whose `POST`s are reads, or a gRPC unary call)
//! so that it can be keyed, and handing it on to the inner service as the same bytes.
//!
//! The inner service keeps its own request body type. The layer does not know how to make one
//! from bytes, so the user says how once, with
//! [`CacheLayer::query_bodies`](crate::CacheLayer::query_bodies): any function from the
//! cache's body ([`CacheBody`]) to theirs, such as `axum::body::Body::new` or
//! `tonic::body::Body::new`. Layers without it ([`NoQueryBodies`], the default) put no bound
//! on the request body, and their query routes pass through (`query-unreadable`).

use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::future::Future;
use std::pin::Pin;

use crate::bounds::CachedBody;
use crate::flow::buffer::{Read, read_to_limit};
use crate::key::QueryBody;
use crate::{BypassReason, CacheBody, NotStoredReason};

/// A query's body, read whole: what is keyed.
#[doc(hidden)]
#[derive(Clone, Debug)]
pub struct QueryBytes {
    pub(crate) data: Bytes,
}

/// Bodies up to this long are keyed as they are (copying a short body costs less than hashing
/// it: a gRPC hit took 1,482 ns against 1,533 with the hash, `examples/grpc --measure`);
/// longer ones by their SHA-256.
const KEYED_AS_IS: usize = 256;

impl QueryBytes {
    /// What the key holds of the body.
    pub(crate) fn keyed(&self) -> QueryBody {
        if self.data.len() <= KEYED_AS_IS {
            return QueryBody::Bytes(self.data.clone());
        }
        QueryBody::Digest(Sha256::digest(&self.data).into())
    }
}

/// What reading a query's body came to.
#[doc(hidden)]
pub enum QueryRead<B> {
    /// The whole body, within the route's limit, and the inner service's body of it.
    Whole(QueryBytes, B),
    /// Not read whole (too large, failed, or no way to hand it on): the body to send the inner
    /// service instead (as read so far plus the rest), and why the cache was bypassed.
    PassOn(B, BypassReason),
}

type Reading<B> = Pin<Box<dyn Future<Output = QueryRead<B>> + Send>>;

/// How a layer reads a query's body and makes the inner service's request body of it again:
/// [`NoQueryBodies`] (the default: it does not) or [`QueryBodies`], made by
/// [`CacheLayer::query_bodies`](crate::CacheLayer::query_bodies).
pub trait QueryBodyMaker<B>: Send + Sync + 'static {
    /// Reads `body`, up to `limit` bytes.
    #[doc(hidden)]
    fn read(&self, body: B, limit: usize) -> Reading<B>;
}

/// A layer that reads no request body: its query routes pass through (`query-unreadable`).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoQueryBodies;

impl<B: Send + 'static> QueryBodyMaker<B> for NoQueryBodies {
    fn read(&self, body: B, _: usize) -> Reading<B> {
        Box::pin(std::future::ready(QueryRead::PassOn(
            body,
            BypassReason::QueryUnreadable,
        )))
    }
}

/// A layer that reads query bodies, and makes the inner service's body type of the bytes with
/// the function given to [`CacheLayer::query_bodies`](crate::CacheLayer::query_bodies).
#[derive(Clone, Copy)]
pub struct QueryBodies<F>(pub(crate) F);

impl<F> std::fmt::Debug for QueryBodies<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QueryBodies(..)")
    }
}

impl<F, B> QueryBodyMaker<B> for QueryBodies<F>
where
    F: Fn(CacheBody<B>) -> B + Clone + Send + Sync + 'static,
    B: CachedBody,
{
    fn read(&self, body: B, limit: usize) -> Reading<B> {
        let make = self.0.clone();
        Box::pin(async move {
            match read_to_limit(body, limit).await {
                Read::Complete { data, trailers } => {
                    let again = CacheBody::buffered(data.clone(), trailers);
                    QueryRead::Whole(QueryBytes { data }, make(again))
                }
                Read::Incomplete { body, reason } => {
                    let reason = match reason {
                        NotStoredReason::TooLarge => BypassReason::QueryTooLarge,
                        _ => BypassReason::QueryUnreadable,
                    };
                    QueryRead::PassOn(make(body), reason)
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BoxError;
    use http_body_util::combinators::UnsyncBoxBody;
    use http_body_util::{BodyExt, Full};

    type Boxed = UnsyncBoxBody<Bytes, BoxError>;

    /// A body type of the inner service's, made of any body (as `axum::body::Body::new` is).
    fn maker() -> QueryBodies<fn(CacheBody<Boxed>) -> Boxed> {
        QueryBodies(|body| body.boxed_unsync())
    }

    fn boxed(data: &'static str) -> Boxed {
        Full::new(Bytes::from(data))
            .map_err(|never| match never {})
            .boxed_unsync()
    }

    #[tokio::test]
    async fn a_body_within_the_limit_is_read_whole_and_made_again() {
        let maker = maker();
        let QueryRead::Whole(query, again) = maker.read(boxed("{q}"), 3).await else {
            panic!("read whole")
        };
        assert_eq!(query.data, "{q}");
        assert!(matches!(query.keyed(), QueryBody::Bytes(b) if b == "{q}"));
        let long = QueryBytes {
            data: Bytes::from(vec![7; KEYED_AS_IS + 1]),
        };
        let digest = <[u8; 32]>::from(Sha256::digest(&long.data));
        assert!(matches!(long.keyed(), QueryBody::Digest(d) if d == digest));
        assert_eq!(again.collect().await.unwrap().to_bytes(), "{q}");
    }

    #[tokio::test]
    async fn a_larger_body_is_handed_on_whole() {
        let QueryRead::PassOn(body, reason) = maker().read(boxed("{qq}"), 3).await else {
            panic!("too large")
        };
        assert_eq!(reason, BypassReason::QueryTooLarge);
        assert_eq!(body.collect().await.unwrap().to_bytes(), "{qq}");
    }

    #[tokio::test]
    async fn without_a_maker_nothing_is_read() {
        let QueryRead::PassOn(body, reason) = NoQueryBodies.read(boxed("q"), 9).await else {
            panic!("not read")
        };
        assert_eq!(reason, BypassReason::QueryUnreadable);
        assert_eq!(body.collect().await.unwrap().to_bytes(), "q");
    }
}
