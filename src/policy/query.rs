//! Routes whose `POST`s are reads: [`Policy::post_is_query`](super::Policy::post_is_query)
//! (GraphQL, JSON-RPC, search APIs) and [`Policy::grpc`](super::Policy::grpc) (gRPC unary
//! methods).

use bytes::Bytes;
use http::request;
use std::fmt;
use std::sync::Arc;

/// Which `POST`s of a route are reads, and how much of their bodies is read to key them.
#[derive(Clone, Debug)]
pub(crate) struct QueryRoute {
    /// The most body bytes read; a larger body bypasses the cache (`query-too-large`).
    pub limit: usize,
    /// gRPC: only `application/grpc` requests are queries; the response's `grpc-status` must
    /// be `0` to be stored; `grpc-encoding` and `grpc-accept-encoding` are keyed.
    pub grpc: bool,
    /// Tells the writes among the route's `POST`s from the reads, from the head and the body.
    pub is_query: Option<QueryClassifier>,
}

/// Decides, from a `POST`'s head and body, whether it is a query (a read) or a write. Any
/// `Fn(&request::Parts, &Bytes) -> bool` is one; [`Policy::post_is_query_if`] takes it with its
/// parameter types inferred.
///
/// [`Policy::post_is_query_if`]: super::Policy::post_is_query_if
#[derive(Clone)]
pub(crate) struct QueryClassifier(pub Arc<IsQuery>);

/// A classifier's function: whether a `POST` with this head and body is a read.
pub(crate) type IsQuery = dyn Fn(&request::Parts, &Bytes) -> bool + Send + Sync;

impl fmt::Debug for QueryClassifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("QueryClassifier(..)")
    }
}

/// The `Content-Type` of a gRPC request (`application/grpc`, `application/grpc+proto`...);
/// gRPC-Web (`application/grpc-web`) is not gRPC here.
pub(crate) fn is_grpc(parts: &request::Parts) -> bool {
    let Some(value) = parts.headers.get(http::header::CONTENT_TYPE) else {
        return false;
    };
    let value = value.as_bytes();
    let Some(rest) = value
        .get(..16)
        .filter(|p| p.eq_ignore_ascii_case(b"application/grpc"))
        .map(|_| &value[16..])
    else {
        return false;
    };
    rest.is_empty() || rest[0] == b'+' || rest[0] == b';'
}

impl QueryRoute {
    /// Whether `parts` is a query of this route before its body is read: a `POST`, in gRPC's
    /// content type when the route is gRPC's.
    pub(crate) fn takes(&self, parts: &request::Parts) -> bool {
        parts.method == http::Method::POST && (!self.grpc || is_grpc(parts))
    }

    /// Whether the `POST` with this body is a read.
    pub(crate) fn is_read(&self, parts: &request::Parts, body: &Bytes) -> bool {
        self.is_query.as_ref().is_none_or(|f| (f.0)(parts, body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_type(value: &str) -> request::Parts {
        let request = http::Request::post("/a.B/C")
            .header("content-type", value)
            .body(())
            .unwrap();
        request.into_parts().0
    }

    #[test]
    fn grpc_content_types() {
        for yes in [
            "application/grpc",
            "application/grpc+proto",
            "APPLICATION/GRPC+json",
            "application/grpc;charset=utf-8",
        ] {
            assert!(is_grpc(&with_type(yes)), "{yes}");
        }
        for no in [
            "application/grpc-web",
            "application/grpc-web+proto",
            "application/grpcx",
            "application/json",
            "",
            "application/grp",
        ] {
            assert!(!is_grpc(&with_type(no)), "{no}");
        }
        let (none, ()) = http::Request::post("/").body(()).unwrap().into_parts();
        assert!(!is_grpc(&none));
    }
}
