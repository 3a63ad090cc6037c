//! [`AdminService`]: one endpoint, behind the bearer token, for purges (`POST`/`DELETE`) and
//! reads (`GET <mount>/stats`, `GET <mount>/entry`).

use bytes::Bytes;
use http::header::CACHE_CONTROL;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use std::convert::Infallible;
use std::task::{Context, Poll};
use tower_service::Service;

use super::entry::Inquiry;
use super::orders::Orders;
use super::reply::{json, not_allowed, text, unauthorized};
use super::token::PurgeToken;
use crate::CacheHandle;
use crate::store::BoxFuture;

/// The admin endpoint of a cache, for operators and deploy scripts: purges, counters, and
/// what is stored for a URI. A tower service to mount where you like, **outside** the cache
/// layer (its answers are about the cache; they never go through it, and are marked
/// `Cache-Control: no-store` all the same).
///
/// Every request needs `Authorization: Bearer <token>` ([`PurgeToken`], compared in constant
/// time); without it the answer is `401` and says nothing else, whatever the path or method.
///
/// What a request does depends on the last segment of its path and its method, so the
/// service works under any mount path, whether the router strips it (axum's `nest_service`,
/// which also routes the paths below the mount path here) or not (`route_service`, which
/// routes one path: mount it at `/_cache`, `/_cache/stats` and `/_cache/entry` for all three):
///
/// - **`POST` or `DELETE`** on any path not ending in `/stats` or `/entry` (the mount path):
///   purges what the query string names: `uri=<URI>` (repeatable; an absolute URI names one
///   host, a path alone, `/products/1`, that path on every host), `tag=<tag>` (repeatable),
///   `prefix=<path prefix>` with `host=<authority>` for one host or without it for every
///   host, `all=true`. URIs and prefixes are normalised as keys are. Answers
///   `200 purged N entries` (the entries the store removed), `400` for a request it cannot
///   read.
/// - **`GET <mount>/stats`**: the counters as JSON: every [`StatsSnapshot`](crate::StatsSnapshot)
///   figure by its field name, `hit_ratio`, `bypass_reasons` and `not_stored_reasons` by name,
///   `invalidations_by_kind`, `routes` (each route's outcomes), `tiers` (`memory`: entries,
///   bytes, evictions, expirations; `redis`: entries, bytes; `null` for a tier the store does
///   not have) and `breaker` (`{open, opened}`, `null` without one).
/// - **`GET <mount>/entry?uri=<URI>`**: what the store holds for that URI (an absolute URI:
///   one host; a path: every host), one item per stored object and tier: each `Vary` variant,
///   the variants list, a hit-for-pass marker. A URI without a query lists every query stored
///   for its path; with one, the entries keyed by those parameters (in any order). Each item
///   has its `key` (the store key's hash, hex), `tier`, `kind` (`response`, `variants`,
///   `pass`), `authority`, `path` and `query` as keyed, `state` (`fresh`,
///   `stale-while-revalidate`, `stale-if-error`, `kept`, `expired`), `age_s`, `ttl_s`
///   (seconds of freshness left, negative once stale), `stale_while_revalidate_s`,
///   `stale_if_error_s`, `keep_s`, `must_revalidate`, `immutable`, `status`, `vary` (a
///   variants list's field names), `tags` and `internal_tags` (the cache's own URI, host
///   and prefix tags), `size_bytes` (what the entry holds in memory, [`Entry::weight`](crate::store::Entry::weight)),
///   `body_bytes`, `headers` and `trailers` (as stored, without the `Age`, `X-Cache` and
///   `Cache-Status` the cache sets on each hit), and `hidden` (an invalidation the store has
///   not taken yet covers it: never served). The body only with `body=true`: `body` (text
///   when it is UTF-8, else base64, per `body_encoding`), at most 64 KiB of each and 1 MiB
///   in all (`body_truncated`). At most 1,000 items (`total` counts them all, `truncated`
///   says so). An unreadable `uri` is a `400`.
/// - Any other method: `405` with `Allow`.
///
/// ```
/// use axum::{Router, routing::get};
/// use tower_response_cache::{AdminService, CacheLayer, MemoryStore, PurgeToken};
///
/// let cache = CacheLayer::new(MemoryStore::with_capacity_bytes(16 << 20));
/// let token = PurgeToken::new("a-long-random-secret").unwrap();
/// let admin = AdminService::new(cache.handle(), token);
/// let app: Router = Router::new()
///     .route("/products/{id}", get(|| async { "a product" }))
///     .layer(cache)
///     // After `layer`: the cache layer does not wrap it. Purge with
///     // `POST /_cache?uri=...`, read `GET /_cache/stats` and `GET /_cache/entry?uri=...`.
///     .nest_service("/_cache", admin);
/// # let _ = app;
/// ```
#[derive(Clone, Debug)]
pub struct AdminService {
    handle: CacheHandle,
    token: PurgeToken,
    /// Whether `stats` and `entry` are answered (see [`AdminService::purge_only`]).
    reads: bool,
}

/// The former name of [`AdminService`], from when it only purged: the same service, so code
/// that mounts a `PurgeService` keeps working, and now also answers the reads behind the same
/// token: whoever holds the token can read what is cached. For a token that may only purge
/// (a deploy script's), use [`AdminService::purge_only`].
pub type PurgeService = AdminService;

impl AdminService {
    /// The admin endpoint of the cache behind `handle`, accepting `token`.
    pub fn new(handle: CacheHandle, token: PurgeToken) -> Self {
        AdminService {
            handle: handle.purging(),
            token,
            reads: true,
        }
    }

    /// Answers purges only: `GET …/stats` and `GET …/entry` are `404`, so the token can remove
    /// entries but not read what is cached (a token for deploy scripts).
    pub fn purge_only(mut self) -> Self {
        self.reads = false;
        self
    }
}

/// What a request's path asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    Purge,
    Stats,
    Entry,
}

impl Endpoint {
    /// By the path's last segment: `stats`, `entry`, or else the mount path itself (purges).
    fn of(path: &str) -> Endpoint {
        match path.rsplit('/').next() {
            Some("stats") => Endpoint::Stats,
            Some("entry") => Endpoint::Entry,
            _ => Endpoint::Purge,
        }
    }
}

const PURGE_HINT: &str = "purge with POST or DELETE here; read with GET <here>/stats or \
                          GET <here>/entry?uri=URI\n";

impl<B> Service<Request<B>> for AdminService {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response<Full<Bytes>>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // Authorization first: nothing else is said to a caller without the token.
        if !self.token.authorizes(request.headers()) {
            return ready(unauthorized());
        }
        let method = request.method();
        let reads = method == Method::GET || method == Method::HEAD;
        let purges = method == Method::POST || method == Method::DELETE;
        let query = request.uri().query().unwrap_or("");
        let handle = self.handle.clone();
        let endpoint = Endpoint::of(request.uri().path());
        if endpoint != Endpoint::Purge && !self.reads {
            return ready(text(StatusCode::NOT_FOUND, "reads are off here\n"));
        }
        match endpoint {
            Endpoint::Purge if purges => match Orders::parse(query) {
                Ok(orders) => Box::pin(async move {
                    let purged = orders.carry_out(&handle).await;
                    Ok(finish(text(
                        StatusCode::OK,
                        format!("purged {purged} entries\n"),
                    )))
                }),
                Err(problem) => ready(text(StatusCode::BAD_REQUEST, problem)),
            },
            Endpoint::Purge => ready(not_allowed("POST, DELETE", PURGE_HINT)),
            Endpoint::Stats if reads => ready(json(&super::stats::stats(&handle))),
            Endpoint::Entry if reads => match Inquiry::parse(query) {
                Ok(inquiry) => Box::pin(async move {
                    let answer = match inquiry.answer(&handle).await {
                        Ok(value) => json(&value),
                        Err((status, problem)) => text(status, problem),
                    };
                    Ok(finish(answer))
                }),
                Err(problem) => ready(text(StatusCode::BAD_REQUEST, problem)),
            },
            Endpoint::Stats | Endpoint::Entry => ready(not_allowed("GET, HEAD", "read with GET\n")),
        }
    }
}

/// An answer made without waiting.
fn ready(
    response: Response<Bytes>,
) -> BoxFuture<'static, Result<Response<Full<Bytes>>, Infallible>> {
    let response = finish(response);
    Box::pin(async move { Ok(response) })
}

/// Every answer: never stored by any cache on the way.
fn finish(mut response: Response<Bytes>) -> Response<Full<Bytes>> {
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response.map(Full::new)
}
