//! Purging over HTTP: [`PurgeService`] to mount as an endpoint, and the `PURGE` method.
//!
//! Both require `Authorization: Bearer <token>` ([`PurgeToken`], compared in constant time);
//! without it they answer `401` and do nothing. They never reveal what is cached: only how many entries went.

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::Full;
use std::convert::Infallible;
use std::task::{Context, Poll};
use tower_service::Service;

use crate::CacheHandle;
use crate::store::BoxFuture;

pub(crate) mod method;
pub(crate) mod token;

use token::PurgeToken;

pub(crate) fn unauthorized() -> Response<Bytes> {
    let mut response = text(
        StatusCode::UNAUTHORIZED,
        "a valid bearer token is required\n",
    );
    response.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"cache purge\""),
    );
    response
}

pub(crate) fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Bytes> {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// An endpoint that purges the cache, for operators and deploy scripts: a tower service to
/// mount where you like (`Router::route_service("/cache/purge", purge)` in axum).
///
/// `POST` (or `DELETE`) with `Authorization: Bearer <token>` and, in the query string, any of:
/// `uri=<URI>` (repeatable; an absolute URI names one host, a path alone, `/products/1`, that
/// path on every host), `tag=<tag>` (repeatable), `prefix=<path prefix>` with `host=<authority>`
/// for one host or without it for every host, `all=true`. URIs and prefixes are normalised as
/// keys are. It answers `200 purged N entries` (the entries the store removed), `401` without
/// the token, `400` for a request it cannot read, `405` for other methods.
///
/// ```
/// use axum::Router;
/// use tower_response_cache::{CacheLayer, MemoryStore, PurgeService, PurgeToken};
///
/// let cache = CacheLayer::new(MemoryStore::with_capacity_bytes(16 << 20));
/// let token = PurgeToken::new("a-long-random-secret").unwrap();
/// let purge = PurgeService::new(cache.handle(), token);
/// let admin: Router = Router::new().route_service("/cache/purge", purge);
/// # let _ = admin;
/// ```
#[derive(Clone, Debug)]
pub struct PurgeService {
    handle: CacheHandle,
    token: PurgeToken,
}

impl PurgeService {
    /// A purge endpoint for the cache behind `handle`, accepting `token`.
    pub fn new(handle: CacheHandle, token: PurgeToken) -> Self {
        PurgeService {
            handle: handle.purging(),
            token,
        }
    }
}

impl<B> Service<Request<B>> for PurgeService {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response<Full<Bytes>>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // Authorization first: nothing else is said to a caller without the token.
        if !self.token.authorizes(request.headers()) {
            return Box::pin(async { Ok(unauthorized().map(Full::new)) });
        }
        if request.method() != Method::POST && request.method() != Method::DELETE {
            let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "use POST or DELETE\n");
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("POST, DELETE"));
            return Box::pin(async { Ok(response.map(Full::new)) });
        }
        let handle = self.handle.clone();
        let orders = Orders::parse(request.uri().query().unwrap_or(""));
        Box::pin(async move {
            let orders = match orders {
                Ok(orders) => orders,
                Err(problem) => return Ok(text(StatusCode::BAD_REQUEST, problem).map(Full::new)),
            };
            let purged = orders.carry_out(&handle).await;
            Ok(text(StatusCode::OK, format!("purged {purged} entries\n")).map(Full::new))
        })
    }
}

/// What a purge request asks for.
#[derive(Debug, Default)]
struct Orders {
    uris: Vec<Uri>,
    tags: Vec<String>,
    prefix: Option<(String, String)>,
    all: bool,
}

const USAGE: &str =
    "say what to purge: uri=URI, tag=TAG, prefix=PATH&host=AUTHORITY, or all=true\n";

impl Orders {
    fn parse(query: &str) -> Result<Orders, String> {
        let mut orders = Orders::default();
        let mut prefix = None;
        let mut host = None;
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            match &*name {
                "uri" => orders.uris.push(
                    value
                        .parse()
                        .map_err(|_| format!("not a URI: {value:?}\n"))?,
                ),
                "tag" if crate::invalidate::is_valid_tag(&value) => {
                    orders.tags.push(value.into_owned())
                }
                "tag" => return Err(format!("not a valid tag: {value:?}\n")),
                "prefix" if value.starts_with('/') => prefix = Some(value.into_owned()),
                "prefix" => {
                    return Err(format!("a prefix is a path, starting with /: {value:?}\n"));
                }
                "host" => host = Some(value.into_owned()),
                "all" => orders.all = value == "true" || value == "1",
                _ => return Err(format!("unknown parameter {name:?}\n{USAGE}")),
            }
        }
        if orders.uris.len() + orders.tags.len() > 1000 {
            return Err("at most 1000 URIs and tags per request\n".to_owned());
        }
        orders.prefix = prefix.map(|p| (host.unwrap_or_default(), p));
        if orders.uris.is_empty()
            && orders.tags.is_empty()
            && orders.prefix.is_none()
            && !orders.all
        {
            return Err(USAGE.to_owned());
        }
        Ok(orders)
    }

    async fn carry_out(self, handle: &CacheHandle) -> u64 {
        if self.all {
            return handle.clear().await;
        }
        let mut purged = 0;
        for uri in &self.uris {
            purged += handle.invalidate_uri(uri).await;
        }
        if !self.tags.is_empty() {
            let tags: Vec<&str> = self.tags.iter().map(String::as_str).collect();
            purged += handle.invalidate_tags(&tags).await;
        }
        if let Some((host, prefix)) = &self.prefix {
            purged += handle.invalidate_prefix(host, prefix).await;
        }
        purged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders() {
        let o = Orders::parse("uri=http%3A%2F%2Fa.example%2Fx&tag=t1&tag=t2").unwrap();
        assert_eq!(o.uris.len(), 1);
        assert_eq!(o.tags, ["t1", "t2"]);
        assert!(Orders::parse("").is_err());
        assert!(Orders::parse("what=ever").is_err());
        assert!(Orders::parse("tag=a%20b").is_err());
        assert!(Orders::parse("all=true").unwrap().all);
        let o = Orders::parse("prefix=%2Fapi%2F&host=a.example").unwrap();
        assert_eq!(o.prefix, Some(("a.example".to_owned(), "/api/".to_owned())));
    }
}
