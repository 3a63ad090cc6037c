//! A shared HTTP response cache for any [tower](https://docs.rs/tower) service.
//!
//! Put [`CacheLayer`] in front of an axum router, a hyper service or any
//! `tower::Service<http::Request<B>>` and repeated `GET`s are answered from a store without
//! calling the service:
//!
//! ```
//! use axum::{routing::get, Router};
//! use std::time::Duration;
//! use tower_response_cache::{CacheLayer, MemoryStore};
//!
//! async fn product() -> &'static str {
//!     "an expensive page"
//! }
//!
//! let app: Router = Router::new()
//!     .route("/products/{id}", get(product))
//!     .layer(CacheLayer::new(MemoryStore::with_capacity_bytes(64 << 20)).ttl(Duration::from_secs(60)));
//! # let _ = app;
//! ```
//!
//! # How it differs from a "memoize the handler" cache
//!
//! It behaves as a shared cache by RFC 9111, because that is what it is: one stored response
//! serves many users. So it never stores `no-store`, `private`, `no-cache` or `Vary: *`
//! responses, nor responses with `Set-Cookie` (unless told to strip them), nor responses to
//! requests with `Authorization` unless they are explicitly `public`; it bypasses requests with
//! `Cookie` by default; two virtual hosts never share entries; `Vary` selects among variants;
//! writes (`POST`, `PUT`, ...) always reach the service (a route's `POST`s are cached only
//! when its policy says they are reads: [`Policy::post_is_query`], [`Policy::grpc`]). A hit is verified against the full
//! key, so a hash collision can only cause a miss.
//!
//! A hit shares the stored body (`Bytes`), copying only the header map. Bodies larger than the
//! policy's limit stream through unstored with bounded memory; trailers are stored and replayed.
//!
//! It protects the backend: concurrent misses for a key reach it once (the others wait for that
//! fetch, which survives its client going away); within a stale-while-revalidate window expired
//! responses are served at once while one background request refreshes them; within a
//! stale-if-error window a stale response stands in for a failing origin (RFC 5861).
//!
//! And it follows the data it copies: a write that passes through invalidates what it changed
//! (its URI in every variant, same-host locations, tags) before its response returns, and a fill
//! that started earlier can never write the old data back. [`CacheHandle`] and [`AdminService`]
//! invalidate by URI, prefix or tag from code or over HTTP.
//!
//! # Pieces
//!
//! - [`CacheLayer`] / [`CacheService`]: the middleware, configured with builder methods.
//! - [`Policy`]: ttl, statuses, body limit, `Set-Cookie`/`Authorization`/`Cookie` rules; per
//!   route with [`CacheLayer::route`], per response with [`CacheOverride`].
//! - [`KeyMaker`] / [`KeyBuilder`]: what goes into the key besides method, host, path and query.
//! - [`Store`]: where entries live; [`MemoryStore`] (moka, bounded in bytes) by default, any
//!   `Arc<dyn DynStore>` at run time, or your own.
//! - [`CacheStats`]: hits, misses, bypasses, stores, evictions.
//! - [`AdminService`]: an endpoint behind a bearer token, mounted outside the layer: purges,
//!   the counters as JSON, and what is stored for a URI.
//!
//! Every response carries `X-Cache: HIT | STALE | MISS | BYPASS` (configurable), and hits an
//! `Age`.
//!
//! # How keys are made
//!
//! A key is the method (`HEAD` shares `GET`'s entries), the scheme, the authority (an absolute
//! target's, else `Host`'s, lowercased, default port dropped), the path in one normal form (dot
//! segments resolved, unreserved `%XX` decoded, so every spelling of a URI reaches one entry)
//! and the query, plus what a [`KeyMaker`] adds:
//! `CacheLayer::key(|req, key| { key.header("accept-language"); })`.
//! A request not spelled in normal form may read the entry but never fills it. Stores file
//! entries under a 128-bit hash ([`StoreKey`]); every hit is checked against the full key.
//!
//! # Coalescing and streaming
//!
//! Concurrent misses for one key (one variant, once `Vary` is known) make one origin request.
//! The first client gets each frame as the origin sends it, and so does every request that
//! waited or joins mid-transfer (the bytes so far, then the rest); the body is stored only if
//! it completes within the policy's `max_body_bytes`, after the response is handed back. A
//! waiter whose wait runs out (`Policy::max_coalesce_wait`) starts one replacement fetch, not
//! one per waiter; a fetch that fails or stalls releases its waiters. A conditional or ranged
//! first request still fetches the whole response, and gets its own `304`/`206` from it.
//!
//! # Stale serving
//!
//! Within a stale-while-revalidate window an expired entry is served at once while one
//! background request refreshes it; refresh-ahead refreshes hot entries before they expire;
//! within a stale-if-error window a stale entry stands in for an error, a `5xx`, or an origin
//! slower than `Policy::origin_timeout` (RFC 5861). The origin's `Cache-Control` extensions set
//! these windows, or the policy does.
//!
//! # Invalidation, and no stale write-back
//!
//! A write that passes through and succeeds invalidates, before its response returns, every
//! variant of its URI, same-host `Location`/`Content-Location` URIs, and the tags its response
//! names; [`CacheHandle`] and [`AdminService`] invalidate by URI, prefix or tag. A fill that
//! started before an invalidation never stores what it fetched, and a request sent after a write
//! returned is never answered by a fetch made before it.
//!
//! # Many instances
//!
//! With the `redis` feature, `RedisStore` shares entries between instances: a write on one
//! instance makes Redis refuse the slow fills of every other (invalidation records, with a clock
//! margin), values carry an optional HMAC, and a circuit breaker turns a stalled Redis into
//! misses. `TieredStore` keeps a memory tier in front, invalidated by Redis pub/sub; while the
//! subscription is down the memory tier is not served unless
//! `TieredStore::serve_local_while_disconnected` allows it for a bounded time.
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(unreachable_pub)]

mod body;
mod bounds;
mod cache;
mod entry;
mod flow;
mod future;
mod handle;
mod invalidate;
mod key;
mod layer;
mod observe;
mod outcome;
mod policy;
mod purge;
mod response_override;
mod semantics;
mod service;
mod stats;
pub mod store;

pub use body::CacheBody;
pub(crate) use entry::Entry;
pub use entry::MAX_LIFETIME;
pub use flow::query::{NoQueryBodies, QueryBodies, QueryBodyMaker};
#[doc(hidden)]
pub use flow::query::{QueryBytes, QueryRead};
pub use flow::transfer::BoxError;
pub use future::ResponseFuture;
pub use handle::CacheHandle;
pub(crate) use key::CacheKey;
pub use key::{DefaultKey, KeyBuilder, KeyMaker, StoreKey, VaryNormalizer, token_set};
pub use layer::CacheLayer;
pub use outcome::{BypassReason, NotStoredReason};
pub(crate) use policy::RoutePattern;
pub use policy::{Authorization, Cookies, InvalidPattern, Policy, SetCookie, StatusSet, Tagger};
pub use purge::token::{InvalidToken, PurgeToken};
pub use purge::{AdminService, PurgeService};
pub use response_override::CacheOverride;
pub use service::CacheService;
pub use stats::{CacheStats, RouteStats, StatsSnapshot};
pub use store::{
    AnyStore, BreakerState, DynStore, Eviction, InspectedEntry, MemoryStore, MemoryStoreBuilder,
    PutOutcome, Store, StoreError, StoreMetrics,
};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use store::{RedisFaults, RedisStore, RedisStoreBuilder, TieredStore};

// The README's examples are compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// Closures given to the builders need no annotations on their parameters:
///
/// ```
/// use tower_response_cache::{CacheLayer, MemoryStore, Policy};
///
/// let store = MemoryStore::with_capacity_bytes(1 << 20);
/// let _ = CacheLayer::new(store).key(|req, key| { key.header("accept-language"); });
/// let _ = Policy::new().tag_with(|req, res| vec![req.uri.path().to_owned(), res.status.to_string()]);
/// let _ = Policy::new().invalidate_with(|req, res| vec![req.uri.path().to_owned(), res.status.to_string()]);
/// ```
#[cfg(doctest)]
struct ClosureDoctests;

// Last in the file: tools that read the module tree stop at the first `#[cfg(test)]`.
#[cfg(test)]
mod testing;
