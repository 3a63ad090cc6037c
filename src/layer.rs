//! [`CacheLayer`]: configures a cache and wraps services with it.

use http::HeaderName;
use std::sync::Arc;
use std::time::Duration;
use tower_layer::Layer;

use crate::cache::{Cache, StatusName};
use crate::flow::background::Background;
use crate::flow::query::{NoQueryBodies, QueryBodies, QueryBodyMaker};
use crate::observe::Observer;
use crate::policy::Policies;
use crate::stats::CacheStats;
use crate::{
    CacheBody, CacheHandle, CacheService, DefaultKey, KeyMaker, Policy, PurgeToken, RoutePattern,
    Store, VaryNormalizer,
};

const DEFAULT_MAX_REFRESHES: usize = 32;
const DEFAULT_MAX_PENDING_WRITES: usize = 1024;

/// A [`Layer`] that puts a response cache in front of a service.
///
/// Every service the layer builds shares one cache (store, counters, policies), so applying it
/// with axum's `Router::layer` (which builds one service per route) is one cache, not many.
///
/// ```
/// use axum::{routing::get, Router};
/// use std::time::Duration;
/// use tower_response_cache::{CacheLayer, MemoryStore, Policy};
///
/// let cache = CacheLayer::new(MemoryStore::with_capacity_bytes(64 << 20))
///     .ttl(Duration::from_secs(60))
///     .route("/prices/{id}", Policy::new().ttl(Duration::from_secs(2)))
///     .route("/account/{*rest}", Policy::bypass());
/// let stats = cache.stats();
///
/// let app: Router = Router::new()
///     .route("/products/{id}", get(|| async { "a product" }))
///     .layer(cache);
/// # let _ = (app, stats);
/// ```
pub struct CacheLayer<St: ?Sized, K = DefaultKey, Q = NoQueryBodies> {
    cache: Arc<Cache<St>>,
    /// Held beside the cache's state, not in it: only `call` makes keys, so nothing past it
    /// carries the key maker's type.
    keys: Arc<K>,
    /// How query bodies are handed on (beside the cache's state for the same reason).
    queries: Arc<Q>,
    background: Arc<Background>,
}

impl<St: ?Sized, K, Q> Clone for CacheLayer<St, K, Q> {
    fn clone(&self) -> Self {
        CacheLayer {
            cache: Arc::clone(&self.cache),
            keys: Arc::clone(&self.keys),
            queries: Arc::clone(&self.queries),
            background: Arc::clone(&self.background),
        }
    }
}

impl<St: ?Sized, K, Q> std::fmt::Debug for CacheLayer<St, K, Q> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheLayer")
            .field("default_policy", &self.cache.policies.default)
            .field("routes", &self.cache.policies.routes)
            .finish_non_exhaustive()
    }
}

/// The name the cache gives itself in `Cache-Status` unless told otherwise.
const DEFAULT_CACHE_NAME: &str = "tower-response-cache";

impl<St: Store> CacheLayer<St> {
    /// A cache over `store` with the default [`Policy`] and key.
    pub fn new(store: St) -> Self {
        Self::from_shared_store(Arc::new(store))
    }
}

impl<St: Store + ?Sized> CacheLayer<St> {
    /// A cache over a store that is already shared (a store the application also uses
    /// directly).
    pub fn from_shared_store(store: Arc<St>) -> Self {
        let observe = Arc::new(Observer::default());
        CacheLayer {
            cache: Arc::new(Cache {
                store,
                policies: Policies::new(&observe.routes),
                cache_header: Some(HeaderName::from_static("x-cache")),
                cache_status: Some(StatusName::new(DEFAULT_CACHE_NAME.to_owned())),
                targeted: None,
                strip_targeted: true,
                vary_normalizers: Arc::default(),
                override_header: Some(HeaderName::from_static("x-cache-override")),
                observe,
                flights: Arc::default(),
                generations: Arc::default(),
                unapplied: Arc::default(),
                tag_header: Some(HeaderName::from_static("cache-tag")),
                keep_tag_header: false,
                purge_token: None,
                unsettled: Arc::default(),
                answer_id: crate::cache::next_answer_id(),
            }),
            keys: Arc::new(DefaultKey),
            queries: Arc::new(NoQueryBodies),
            background: Arc::new(Background::new(
                DEFAULT_MAX_REFRESHES,
                DEFAULT_MAX_PENDING_WRITES,
            )),
        }
    }
}

impl<St: Store + ?Sized, K, Q> CacheLayer<St, K, Q> {
    fn configure(mut self, change: impl FnOnce(&mut Cache<St>)) -> Self {
        let cache = Arc::make_mut(&mut self.cache);
        change(cache);
        cache.answer_id = crate::cache::next_answer_id();
        self
    }

    /// Sets the default policy's ttl (see [`Policy::ttl`]).
    pub fn ttl(self, ttl: Duration) -> Self {
        self.configure(|c| c.policies.default.ttl = crate::entry::capped(ttl))
    }

    /// Sets the default policy's body limit (see [`Policy::max_body_bytes`]).
    pub fn max_body_bytes(self, bytes: usize) -> Self {
        self.configure(|c| c.policies.default.max_body_bytes = bytes)
    }

    /// Replaces the default policy, used where no route matches.
    pub fn policy(self, policy: Policy) -> Self {
        self.configure(|c| c.policies.default = policy)
    }

    /// Uses `policy` for requests matching `pattern` (axum syntax: `/products/{id}`,
    /// `/static/{*path}`). The first matching route wins; others get the default policy.
    ///
    /// # Panics
    ///
    /// When `pattern` is not a valid pattern, like axum's `Router::route`: this is a programming
    /// error found at start-up. [`try_route`](Self::try_route) returns the error instead.
    pub fn route(self, pattern: &str, policy: Policy) -> Self {
        match self.try_route(pattern, policy) {
            Ok(layer) => layer,
            Err(error) => panic!("{error}"),
        }
    }

    /// Like [`route`](Self::route), returning an invalid pattern as an error.
    pub fn try_route(
        self,
        pattern: &str,
        policy: Policy,
    ) -> Result<Self, crate::policy::InvalidPattern> {
        let pattern = RoutePattern::parse(pattern)?;
        Ok(self.configure(|c| c.policies.push(pattern, policy, &c.observe.routes)))
    }

    /// Uses the closure `f` to add parts to every key (see [`KeyMaker`] and [`KeyBuilder`]). Its
    /// parameters need no type annotations:
    ///
    /// ```
    /// use tower_response_cache::{CacheLayer, MemoryStore};
    ///
    /// let store = MemoryStore::with_capacity_bytes(16 << 20);
    /// let layer = CacheLayer::new(store).key(|req, key| {
    ///     key.header("accept-language");
    ///     if req.headers.contains_key("x-skip-cache") {
    ///         key.bypass();
    ///     }
    /// });
    /// # let _ = layer;
    /// ```
    ///
    /// A type implementing [`KeyMaker`] goes to [`key_maker`](Self::key_maker).
    ///
    /// [`KeyBuilder`]: crate::KeyBuilder
    pub fn key<F>(self, f: F) -> CacheLayer<St, F, Q>
    where
        F: Fn(&http::request::Parts, &mut crate::KeyBuilder<'_>) + Send + Sync + 'static,
    {
        self.key_maker(f)
    }

    /// Uses `maker` to add parts to every key: a type implementing [`KeyMaker`] (a closure goes
    /// to [`key`](Self::key), where its parameter types are inferred).
    pub fn key_maker<K2: KeyMaker>(self, maker: K2) -> CacheLayer<St, K2, Q> {
        CacheLayer {
            cache: self.cache,
            keys: Arc::new(maker),
            queries: self.queries,
            background: self.background,
        }
    }

    /// Lets the layer read the bodies of queries ([`Policy::post_is_query`],
    /// [`Policy::grpc`]) and hand them on: `make` turns the cache's body (the bytes read, or
    /// the bytes read so far and the rest) into the inner service's request body type. It is
    /// the one place the layer asks anything of that type. `axum::body::Body::new` for axum,
    /// `tonic::body::Body::new` for tonic; any body type with a constructor from a
    /// `http_body::Body<Data = Bytes>` does.
    ///
    /// ```
    /// use axum::{routing::post, Router};
    /// use tower_response_cache::{CacheLayer, MemoryStore, Policy};
    ///
    /// let cache = CacheLayer::new(MemoryStore::with_capacity_bytes(64 << 20))
    ///     .query_bodies(axum::body::Body::new)
    ///     .route("/graphql", Policy::new().post_is_query(64 << 10));
    /// let app: Router = Router::new()
    ///     .route("/graphql", post(|query: String| async move { query }))
    ///     .layer(cache);
    /// # let _ = app;
    /// ```
    ///
    /// [`Policy::post_is_query`]: crate::Policy::post_is_query
    /// [`Policy::grpc`]: crate::Policy::grpc
    pub fn query_bodies<B, F>(self, make: F) -> CacheLayer<St, K, QueryBodies<F>>
    where
        B: http_body::Body,
        F: Fn(CacheBody<B>) -> B + Clone + Send + Sync + 'static,
        QueryBodies<F>: QueryBodyMaker<B>,
    {
        CacheLayer {
            cache: self.cache,
            keys: self.keys,
            queries: Arc::new(QueryBodies(make)),
            background: self.background,
        }
    }

    /// The name of the header that says `HIT`, `MISS` or `BYPASS` (default `x-cache`).
    pub fn cache_header(self, name: HeaderName) -> Self {
        self.configure(|c| c.cache_header = Some(name))
    }

    /// Sends no `HIT`/`MISS`/`BYPASS` header.
    pub fn without_cache_header(self) -> Self {
        self.configure(|c| c.cache_header = None)
    }

    /// The name this cache gives itself in `Cache-Status` (RFC 9211; default
    /// `tower-response-cache`). Every response carries that field: `hit` and its `ttl`, or
    /// why it went to the origin (`fwd=uri-miss`, `vary-miss`, `stale`, `request`, `bypass`,
    /// `method`), the origin's status (`fwd-status`), whether it was `stored` or `collapsed`
    /// into another request's fetch, and why it was not stored or bypassed the cache
    /// (`detail=cookie`, `detail=too-large`...). A name that is not a token is quoted.
    ///
    /// # Panics
    ///
    /// When `name` has characters other than printable ASCII: a programming error found at
    /// start-up.
    pub fn cache_status_name(self, name: &str) -> Self {
        let Some(name) = crate::semantics::cache_name(name) else {
            panic!("a Cache-Status cache name must be printable ASCII: {name:?}");
        };
        self.configure(|c| c.cache_status = Some(StatusName::new(name)))
    }

    /// Sends no `Cache-Status` field.
    pub fn without_cache_status(self) -> Self {
        self.configure(|c| c.cache_status = None)
    }

    /// Follows the targeted cache-control field `name` (RFC 9213: `CDN-Cache-Control`, or a
    /// name of this cache's own): when a response carries it and it is a valid structured
    /// dictionary, its directives take the place of `Cache-Control` for this cache. It is
    /// removed from the response before it leaves, unless
    /// [`keep_targeted_field`](Self::keep_targeted_field) says otherwise.
    pub fn targeted_field(self, name: HeaderName) -> Self {
        self.configure(|c| c.targeted = Some(name))
    }

    /// Normalises the request field `name` with `normalizer` before its value selects a
    /// variant of a response that `Vary`s on it, so that values with one meaning share one
    /// stored variant (RFC 9111 §4.1). Every field's lines are already combined and its list
    /// members trimmed of whitespace; [`token_set`](crate::token_set) also ignores order and
    /// case, right for `Accept-Encoding`:
    ///
    /// ```
    /// use http::header::ACCEPT_ENCODING;
    /// use tower_response_cache::{CacheLayer, MemoryStore, VaryNormalizer, token_set};
    ///
    /// let layer = CacheLayer::new(MemoryStore::with_capacity_bytes(1 << 20))
    ///     .vary_normalizer(ACCEPT_ENCODING, VaryNormalizer::new(token_set));
    /// # let _ = layer;
    /// ```
    pub fn vary_normalizer(self, name: HeaderName, normalizer: VaryNormalizer) -> Self {
        self.configure(|c| {
            let normalizers = Arc::make_mut(&mut c.vary_normalizers);
            normalizers.retain(|(n, _)| n != name);
            normalizers.push((name, normalizer));
        })
    }

    /// Passes the targeted field on to clients (for a cache in front of another cache that
    /// should see it too).
    pub fn keep_targeted_field(self) -> Self {
        self.configure(|c| c.strip_targeted = false)
    }

    /// The name of the per-response override header handlers may set (default
    /// `x-cache-override`; see [`CacheOverride`](crate::CacheOverride)).
    pub fn override_header(self, name: HeaderName) -> Self {
        self.configure(|c| c.override_header = Some(name))
    }

    /// Reads no override header (the [`CacheOverride`](crate::CacheOverride) extension still
    /// works). Right when the origin is not trusted to steer this cache.
    pub fn without_override_header(self) -> Self {
        self.configure(|c| c.override_header = None)
    }

    /// The most background refreshes (stale-while-revalidate, refresh-ahead) that run at once
    /// (default 32); past it, stale responses are still served and the refresh waits for a
    /// later request. Background work stops when the last layer and service are dropped.
    pub fn max_background_refreshes(mut self, refreshes: usize) -> Self {
        let (_, writes) = self.background.limits;
        self.background = Arc::new(Background::new(refreshes, writes));
        self
    }

    /// The most store writes that may be pending at once (default 1,024). A response is
    /// stored after its client has it (write-behind), so a slow or stalled store never delays
    /// an answer; past this bound, further responses are not stored (counted in
    /// [`StatsSnapshot::stores_dropped`](crate::StatsSnapshot::stores_dropped)) rather than
    /// held in memory waiting for the store.
    pub fn max_pending_writes(mut self, writes: usize) -> Self {
        let (refreshes, _) = self.background.limits;
        self.background = Arc::new(Background::new(refreshes, writes));
        self
    }

    /// A handle on this cache's counters, readable at any time.
    pub fn stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// A handle to invalidate, clear and warm this cache from application code.
    pub fn handle(&self) -> CacheHandle
    where
        K: Send + Sync + 'static,
    {
        CacheHandle::new(Arc::clone(&self.cache))
    }

    /// The name of the response header carrying tags (default `cache-tag`; `surrogate-key` is
    /// the other common one). Tags are comma- or space-separated. On a response that is stored,
    /// they tag the entry; on the response to a write (POST, PUT, ...), they name tags to
    /// invalidate. The header is removed before the response leaves the layer unless
    /// [`keep_tag_header`](Self::keep_tag_header) says otherwise.
    pub fn tag_header(self, name: HeaderName) -> Self {
        self.configure(|c| c.tag_header = Some(name))
    }

    /// Reads no tag header.
    pub fn without_tag_header(self) -> Self {
        self.configure(|c| c.tag_header = None)
    }

    /// Whether the tag header is passed on to clients (default false: it is the origin's
    /// business with its cache).
    pub fn keep_tag_header(self, keep: bool) -> Self {
        self.configure(|c| c.keep_tag_header = keep)
    }

    /// Answers `PURGE` requests itself (they never reach the inner service): with
    /// `Authorization: Bearer <token>` every entry stored for the request's URI is invalidated
    /// (`200 purged N entries`); without it, `401`. Off by default, when `PURGE` is just a
    /// method that changes something.
    ///
    /// ```
    /// use tower_response_cache::{CacheLayer, MemoryStore, PurgeToken};
    ///
    /// let token = PurgeToken::new("a-long-random-secret")?;
    /// let cache = CacheLayer::new(MemoryStore::with_capacity_bytes(16 << 20)).purge_method(token);
    /// # let _ = cache;
    /// # Ok::<(), tower_response_cache::InvalidToken>(())
    /// ```
    pub fn purge_method(self, token: PurgeToken) -> Self {
        self.configure(|c| c.purge_token = Some(token))
    }
}

impl<S, St: ?Sized, K, Q> Layer<S> for CacheLayer<St, K, Q> {
    type Service = CacheService<S, St, K, Q>;

    fn layer(&self, inner: S) -> Self::Service {
        CacheService::new(
            inner,
            Arc::clone(&self.cache),
            Arc::clone(&self.keys),
            Arc::clone(&self.queries),
            Arc::clone(&self.background),
        )
    }
}
