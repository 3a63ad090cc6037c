//! What to cache and for how long: [`Policy`], and which policy applies to which route.

mod query;
mod route;
mod statuses;
mod tagger;

pub(crate) use query::{QueryRoute, is_grpc};
pub use route::InvalidPattern;
pub(crate) use route::RoutePattern;
pub use statuses::StatusSet;
pub(crate) use tagger::SharedTagger;
pub use tagger::Tagger;

use http::request;
use std::sync::Arc;
use std::time::Duration;

use crate::entry::capped;
use crate::observe::routes::DEFAULT_ROUTE;
use crate::observe::{RouteCounters, Routes};

/// What to do with a response that carries `Set-Cookie`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SetCookie {
    /// Do not store it (the default): a cookie is one user's.
    #[default]
    DontStore,
    /// Store it without its `Set-Cookie` fields. The client that caused the fill still gets its
    /// cookies; hits never carry any.
    StripAndStore,
}

/// What to do with requests that carry `Authorization`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Authorization {
    /// RFC 9111 §3.5 (the default): they may be served from the cache, but their responses are
    /// stored only when marked `public`, `s-maxage` or `must-revalidate`.
    #[default]
    StoreIfPublic,
    /// Never serve them from the cache nor store their responses.
    Bypass,
}

/// What to do with requests that carry `Cookie`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cookies {
    /// Send them to the inner service untouched (the default). Most origins answer per user
    /// when a session cookie is present without saying so (`private`, `Vary: Cookie`); a shared
    /// cache that ignored cookies would hand one user's page to another.
    #[default]
    Bypass,
    /// Treat them like any other request. Right when the key includes the cookies that matter
    /// ([`KeyBuilder::cookie`](crate::KeyBuilder::cookie)) or the origin marks personal responses
    /// `private`.
    Ignore,
}

/// How one route is cached. Built with chained methods; every knob has a safe default.
///
/// | knob | default |
/// |---|---|
/// | [`ttl`](Policy::ttl) | 60 s, when the origin gives no lifetime (zero: heuristic freshness) |
/// | [`heuristic_freshness`](Policy::heuristic_freshness) | 10% of the time since `Last-Modified`, at most 1 day (only with a zero ttl) |
/// | [`keep`](Policy::keep) | 1 hour: stale responses with a validator are kept this long to be revalidated |
/// | [`client_revalidation`](Policy::client_revalidation) | false: requests' `no-cache`, `max-age`, `min-fresh` are ignored |
/// | [`statuses`](Policy::statuses) | 200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501 (without explicit freshness) |
/// | [`max_body_bytes`](Policy::max_body_bytes) | 1 MiB; larger bodies stream through unstored |
/// | [`honor_cache_control`](Policy::honor_cache_control) | true: `s-maxage`/`max-age`/`Expires` set the lifetime |
/// | [`set_cookie`](Policy::set_cookie) | [`SetCookie::DontStore`] |
/// | [`authorization`](Policy::authorization) | [`Authorization::StoreIfPublic`] |
/// | [`cookies`](Policy::cookies) | [`Cookies::Bypass`] |
/// | [`max_key_bytes`](Policy::max_key_bytes) | 8 KiB; longer keys bypass |
/// | [`negative_ttl`](Policy::negative_ttl) | 10 s for 404 and 410, when the origin gives no lifetime |
/// | [`stale_while_revalidate`](Policy::stale_while_revalidate) | 0 (or the origin's `stale-while-revalidate`) |
/// | [`stale_if_error`](Policy::stale_if_error) | 0 (or the origin's `stale-if-error`) |
/// | [`origin_timeout`](Policy::origin_timeout) | none: only errors and 5xx trigger stale-if-error |
/// | [`refresh_ahead`](Policy::refresh_ahead) | off |
/// | [`ttl_jitter`](Policy::ttl_jitter) | 0 |
/// | [`max_coalesce_wait`](Policy::max_coalesce_wait) | 5 s, then one waiter starts a replacement fetch |
/// | [`hit_for_pass`](Policy::hit_for_pass) | 10 s |
///
/// `no-store`, `private` and `Vary: *` responses are never stored, whatever the policy;
/// `no-cache` ones are stored only to be revalidated before every reuse.
/// [`Policy::shared_cache`] is a pure RFC 9111 shared cache: nothing is stored that the origin
/// did not make cacheable.
///
/// Every duration saturates at [`MAX_LIFETIME`](crate::MAX_LIFETIME) (one year), and so does any
/// lifetime the origin or an override gives: `Duration::MAX` means "as long as possible".
///
/// ```
/// use std::time::Duration;
/// use tower_response_cache::{Policy, SetCookie};
///
/// let assets = Policy::new()
///     .ttl(Duration::from_secs(3600))
///     .max_body_bytes(8 << 20)
///     .set_cookie(SetCookie::StripAndStore);
/// # let _ = assets;
/// ```
#[derive(Clone, Debug)]
pub struct Policy {
    pub(crate) enabled: bool,
    pub(crate) ttl: Duration,
    pub(crate) statuses: StatusSet,
    pub(crate) max_body_bytes: usize,
    pub(crate) honor_cache_control: bool,
    pub(crate) set_cookie: SetCookie,
    pub(crate) authorization: Authorization,
    pub(crate) cookies: Cookies,
    pub(crate) max_key_bytes: usize,
    pub(crate) negative_ttl: Duration,
    pub(crate) stale_while_revalidate: Duration,
    pub(crate) stale_if_error: Duration,
    pub(crate) origin_timeout: Option<Duration>,
    pub(crate) refresh_ahead: Option<f64>,
    pub(crate) ttl_jitter: f64,
    pub(crate) max_coalesce_wait: Duration,
    pub(crate) hit_for_pass: Duration,
    pub(crate) tag_with: Option<SharedTagger>,
    pub(crate) invalidate_with: Option<SharedTagger>,
    pub(crate) keep: Duration,
    /// The share of the time since `Last-Modified`, and the most it may give.
    pub(crate) heuristic: (f64, Duration),
    pub(crate) client_revalidation: bool,
    /// Its `POST`s are reads (all, or those its classifier says), keyed by their bodies.
    pub(crate) query: Option<QueryRoute>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            enabled: true,
            ttl: Duration::from_secs(60),
            statuses: StatusSet::DEFAULT,
            max_body_bytes: 1 << 20,
            honor_cache_control: true,
            set_cookie: SetCookie::DontStore,
            authorization: Authorization::StoreIfPublic,
            cookies: Cookies::Bypass,
            max_key_bytes: 8 << 10,
            negative_ttl: Duration::from_secs(10),
            stale_while_revalidate: Duration::ZERO,
            stale_if_error: Duration::ZERO,
            origin_timeout: None,
            refresh_ahead: None,
            ttl_jitter: 0.0,
            max_coalesce_wait: Duration::from_secs(5),
            hit_for_pass: Duration::from_secs(10),
            tag_with: None,
            invalidate_with: None,
            keep: Duration::from_secs(3600),
            heuristic: (0.1, Duration::from_secs(86_400)),
            client_revalidation: false,
            query: None,
        }
    }
}

impl Policy {
    /// The default policy (see the table above).
    pub fn new() -> Self {
        Self::default()
    }

    /// A pure RFC 9111 shared cache: lifetimes only from the origin (`s-maxage`, `max-age`,
    /// `Expires`, or heuristic freshness from `Last-Modified` for the statuses that allow it),
    /// no default or negative ttl, and clients may ask for revalidation (`no-cache`,
    /// `max-age`, `min-fresh`). What the reverse proxy example runs by default.
    pub fn shared_cache() -> Self {
        Policy {
            ttl: Duration::ZERO,
            negative_ttl: Duration::ZERO,
            client_revalidation: true,
            ..Self::default()
        }
    }

    /// A policy that caches nothing: requests pass through untouched (`X-Cache: BYPASS`).
    pub fn bypass() -> Self {
        Policy {
            enabled: false,
            ..Self::default()
        }
    }

    /// How long a response stays fresh when the origin does not say (or is not honoured).
    /// Zero: no default; such a response gets a heuristic lifetime from its `Last-Modified`
    /// ([`heuristic_freshness`](Self::heuristic_freshness)), or is not stored.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = capped(ttl);
        self
    }

    /// The statuses that may be stored without explicit freshness from the origin (on the
    /// policy's ttl or a heuristic lifetime), unless the response is `public`. With explicit
    /// freshness (`max-age`, `s-maxage`, `Expires`, when honoured) any final status but
    /// `206` is stored (RFC 9111 §3); `honor_cache_control(false)` makes this set the only
    /// rule.
    pub fn statuses(mut self, statuses: StatusSet) -> Self {
        self.statuses = statuses;
        self
    }

    /// The largest body that is buffered and stored; larger ones stream to the client unstored.
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// Whether the origin's `s-maxage`, `max-age` and `Expires` set the lifetime. When false the
    /// policy ttl always does; `no-store`, `private` and `no-cache` are obeyed either way.
    pub fn honor_cache_control(mut self, honor: bool) -> Self {
        self.honor_cache_control = honor;
        self
    }

    /// What to do with responses carrying `Set-Cookie`.
    pub fn set_cookie(mut self, rule: SetCookie) -> Self {
        self.set_cookie = rule;
        self
    }

    /// What to do with requests carrying `Authorization`.
    pub fn authorization(mut self, rule: Authorization) -> Self {
        self.authorization = rule;
        self
    }

    /// What to do with requests carrying `Cookie`.
    pub fn cookies(mut self, rule: Cookies) -> Self {
        self.cookies = rule;
        self
    }

    /// The longest cache key; requests whose key is longer bypass the cache.
    pub fn max_key_bytes(mut self, bytes: usize) -> Self {
        self.max_key_bytes = bytes;
        self
    }

    /// How long 404 and 410 responses stay fresh when the origin gives no lifetime, so requests
    /// for missing things do not all reach the backend (negative caching). Zero: as any other
    /// status.
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = capped(ttl);
        self
    }

    /// For how long after expiry a response is served stale while one background request
    /// refreshes it (RFC 5861). The origin's `stale-while-revalidate=N` can lengthen it when
    /// Cache-Control is honoured; `must-revalidate`, `proxy-revalidate` and `s-maxage` forbid it.
    pub fn stale_while_revalidate(mut self, window: Duration) -> Self {
        self.stale_while_revalidate = capped(window);
        self
    }

    /// For how long after expiry a response is served stale when the origin fails: an error from
    /// the inner service, a 5xx, or no answer within [`origin_timeout`](Policy::origin_timeout)
    /// (RFC 5861). The origin's `stale-if-error=N` can lengthen it; the same directives as for
    /// stale-while-revalidate forbid it.
    pub fn stale_if_error(mut self, window: Duration) -> Self {
        self.stale_if_error = capped(window);
        self
    }

    /// When a stale response could be served instead, an origin slower than this counts as
    /// failed: the client gets the stale response, and the fetch goes on in the background to
    /// refresh the cache. Requests waiting for that fetch get the stale response after the
    /// same time.
    pub fn origin_timeout(mut self, timeout: Duration) -> Self {
        self.origin_timeout = Some(capped(timeout));
        self
    }

    /// Refreshes an entry in the background when a request hits it after this share of its
    /// lifetime (0.8: after 80%), so that hot entries never expire. Values are kept within
    /// 0.05 to 1.0; NaN turns it off.
    pub fn refresh_ahead(mut self, share_of_lifetime: f64) -> Self {
        self.refresh_ahead =
            (!share_of_lifetime.is_nan()).then(|| share_of_lifetime.clamp(0.05, 1.0));
        self
    }

    /// Spreads lifetimes by up to this share either way (0.1: +-10%), so that entries stored
    /// together do not expire together. Values are kept within 0 to 0.5.
    pub fn ttl_jitter(mut self, share: f64) -> Self {
        self.ttl_jitter = if share.is_nan() {
            0.0
        } else {
            share.clamp(0.0, 0.5)
        };
        self
    }

    /// How long a stale response that has a validator (`ETag` or `Last-Modified`) is kept past
    /// its freshness and stale windows, to be revalidated (`If-None-Match`,
    /// `If-Modified-Since`) rather than fetched again (RFC 9111 §4.3; Varnish's "keep"). A
    /// kept response is never served without the origin's `304`. Zero keeps nothing.
    pub fn keep(mut self, keep: Duration) -> Self {
        self.keep = capped(keep);
        self
    }

    /// The heuristic lifetime (RFC 9111 §4.2.2) of a response the origin gave none, when the
    /// policy's ttl is zero: `fraction` of the time since its `Last-Modified`, at most `max`.
    /// Only for the policy's statuses (or `public` responses). `fraction` is kept within 0 to
    /// 1; NaN or 0 turns heuristics off.
    pub fn heuristic_freshness(mut self, fraction: f64, max: Duration) -> Self {
        let fraction = if fraction.is_nan() {
            0.0
        } else {
            fraction.clamp(0.0, 1.0)
        };
        self.heuristic = (fraction, capped(max));
        self
    }

    /// Whether a request's `Cache-Control: no-cache`, `max-age` and `min-fresh` (and `Pragma:
    /// no-cache`) make the cache revalidate what it would have served (RFC 9111 §5.2.1). Off
    /// by default: any client could otherwise send every request to the origin.
    /// `max-stale`, `only-if-cached` and `no-store` are always honoured; an `immutable`
    /// response is never revalidated while fresh (RFC 8246).
    pub fn client_revalidation(mut self, allow: bool) -> Self {
        self.client_revalidation = allow;
        self
    }

    /// How long a request waits for another request's fetch of the same key before the flight
    /// gets one replacement fetch. Only one waiter starts it, the others keep waiting, and
    /// every waiter takes whichever of the two fetches answers first: an origin slower than
    /// this wait sees at most two requests for the key, never one per waiter.
    pub fn max_coalesce_wait(mut self, wait: Duration) -> Self {
        self.max_coalesce_wait = capped(wait);
        self
    }

    /// Tags stored responses with what `tagger` derives from the request and response, besides
    /// the origin's tag header: `GET /products/42` -> `product:42`, `products`.
    ///
    /// ```
    /// use tower_response_cache::Policy;
    ///
    /// let products = Policy::new().tag_with(|req, _res| {
    ///     let id = req.uri.path().trim_start_matches("/products/");
    ///     vec![format!("product:{id}"), "products".to_owned()]
    /// });
    /// # let _ = products;
    /// ```
    ///
    /// The closure's parameters need no type annotations; a type implementing [`Tagger`] goes
    /// to [`tag_with_tagger`](Self::tag_with_tagger).
    pub fn tag_with<F>(self, f: F) -> Self
    where
        F: Fn(&http::request::Parts, &http::response::Parts) -> Vec<String>,
        F: Send + Sync + 'static,
    {
        self.tag_with_tagger(f)
    }

    /// Like [`tag_with`](Self::tag_with), with a type implementing [`Tagger`].
    pub fn tag_with_tagger(mut self, tagger: impl Tagger) -> Self {
        self.tag_with = Some(SharedTagger(std::sync::Arc::new(tagger)));
        self
    }

    /// When a write (POST, PUT, PATCH, DELETE, ...) on this route succeeds (2xx or 3xx), also
    /// invalidates the tags `tagger` derives: `PUT /products/42` -> `product:42`, `products`.
    /// (The write's own URI, its same-host `Location`, and the tags its response names in the
    /// tag header are always invalidated.)
    ///
    /// ```
    /// use tower_response_cache::Policy;
    ///
    /// let products = Policy::new().invalidate_with(|req, res| {
    ///     let id = req.uri.path().trim_start_matches("/products/");
    ///     match res.status.is_success() {
    ///         true => vec![format!("product:{id}")],
    ///         false => vec![],
    ///     }
    /// });
    /// # let _ = products;
    /// ```
    ///
    /// The closure's parameters need no type annotations; a type implementing [`Tagger`] goes
    /// to [`invalidate_with_tagger`](Self::invalidate_with_tagger).
    pub fn invalidate_with<F>(self, f: F) -> Self
    where
        F: Fn(&http::request::Parts, &http::response::Parts) -> Vec<String>,
        F: Send + Sync + 'static,
    {
        self.invalidate_with_tagger(f)
    }

    /// Like [`invalidate_with`](Self::invalidate_with), with a type implementing [`Tagger`].
    pub fn invalidate_with_tagger(mut self, tagger: impl Tagger) -> Self {
        self.invalidate_with = Some(SharedTagger(std::sync::Arc::new(tagger)));
        self
    }

    /// Makes the route's `POST`s reads (GraphQL and JSON-RPC queries, search APIs): the body,
    /// up to `limit` bytes, is read and keyed (as it is up to 256 bytes, by its SHA-256
    /// beyond; with the request's `Content-Type` and the usual parts), then handed to the inner
    /// service unchanged. Such a `POST` is
    /// cached, coalesced, served stale and purged like a `GET`, and invalidates nothing; a
    /// larger body passes through (`query-too-large`), still as a read. Only the layer's
    /// [`query_bodies`](crate::CacheLayer::query_bodies) can hand a body on, so without it
    /// these `POST`s pass through (`query-unreadable`).
    ///
    /// [`post_is_query_if`](Self::post_is_query_if) tells writes from reads.
    ///
    /// ```
    /// use tower_response_cache::{CacheLayer, MemoryStore, Policy};
    ///
    /// let layer = CacheLayer::new(MemoryStore::with_capacity_bytes(64 << 20))
    ///     .query_bodies(axum::body::Body::new)
    ///     .route("/search", Policy::new().post_is_query(16 << 10));
    /// # let _ = layer;
    /// ```
    pub fn post_is_query(mut self, limit: usize) -> Self {
        // A limit set again keeps what was said of the route (gRPC, its classifier).
        let (grpc, is_query) = self
            .query
            .take()
            .map_or((false, None), |q| (q.grpc, q.is_query));
        self.query = Some(QueryRoute {
            limit,
            grpc,
            is_query,
        });
        self
    }

    /// Like [`post_is_query`](Self::post_is_query), for the `POST`s `is_query` says are reads
    /// (given the head and the whole body); the others are writes. A write on a query route
    /// invalidates what its response names (`Location`, the tag header,
    /// [`invalidate_with`](Self::invalidate_with)) but not the route's own URI, which names an
    /// endpoint, not a resource: a GraphQL mutation does not empty every cached query.
    ///
    /// ```
    /// use tower_response_cache::Policy;
    ///
    /// let graphql = Policy::new().post_is_query_if(64 << 10, |_, body| {
    ///     // A real app parses the document; a mutation is a write.
    ///     !body.windows(8).any(|w| w == b"mutation")
    /// });
    /// # let _ = graphql;
    /// ```
    pub fn post_is_query_if<F>(self, limit: usize, is_query: F) -> Self
    where
        F: Fn(&request::Parts, &bytes::Bytes) -> bool + Send + Sync + 'static,
    {
        let mut policy = self.post_is_query(limit);
        if let Some(query) = &mut policy.query {
            query.is_query = Some(query::QueryClassifier(Arc::new(is_query)));
        }
        policy
    }

    /// A policy for gRPC unary methods (route the full method paths, `/pkg.Service/Method`, to
    /// it): calls (`application/grpc` `POST`s) are keyed by the method, the request message
    /// bytes (up to 64 KiB; [`post_is_query`](Self::post_is_query) sets another limit) and the
    /// `grpc-encoding` and `grpc-accept-encoding` fields (add metadata with
    /// [`CacheLayer::key`](crate::CacheLayer::key)); `grpc-timeout` and `te` are not keyed.
    /// Only responses whose `grpc-status` is `0` are stored (gRPC errors travel in trailers of
    /// an HTTP 200), with their trailers, which every hit replays. Lifetimes come from the
    /// policy's [`ttl`](Self::ttl) (gRPC has no `Cache-Control`); a handler can still set the
    /// override field as response metadata. Calls with `authorization` metadata are answered
    /// from the cache but their answers are not stored (RFC 9111 §3.5: the origin would have
    /// to mark them `public`), unless [`authorization`](Self::authorization) says otherwise.
    ///
    /// Route unary methods only: a streaming call's messages are not one answer (a client
    /// stream would be read to its end before the call reached the service). Methods not
    /// routed here, streaming ones included, pass through untouched. Like every query route,
    /// it needs the layer's [`query_bodies`](crate::CacheLayer::query_bodies).
    pub fn grpc() -> Self {
        let mut policy = Policy {
            statuses: StatusSet::from_codes(&[200]),
            ..Self::default()
        }
        .post_is_query(64 << 10);
        if let Some(query) = &mut policy.query {
            query.grpc = true;
        }
        policy
    }

    /// How long a key whose response could not be shared (`private`, `Set-Cookie`, `no-store`,
    /// too large, ...) is remembered as such, so that its requests go straight to the origin
    /// instead of queueing behind each other ("hit-for-pass").
    pub fn hit_for_pass(mut self, ttl: Duration) -> Self {
        self.hit_for_pass = capped(ttl);
        self
    }
}

/// The default policy and the per-route ones, first match wins; with each one's outcome
/// counters (`counters[0]` the default's, then the routes' in order).
#[derive(Clone)]
pub(crate) struct Policies {
    pub default: Policy,
    pub routes: Vec<(RoutePattern, Policy)>,
    counters: Vec<Arc<RouteCounters>>,
}

/// Which of a [`Policies`]' policies applies: an index that outlives the borrow of the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PolicyId(usize);

impl Policies {
    /// The default policy alone, counted in `routes`.
    pub(crate) fn new(routes: &Routes) -> Self {
        Policies {
            default: Policy::default(),
            routes: Vec::new(),
            counters: vec![routes.add(DEFAULT_ROUTE)],
        }
    }

    /// Adds a route, counted in `routes` under its pattern.
    pub(crate) fn push(&mut self, pattern: RoutePattern, policy: Policy, routes: &Routes) {
        self.counters.push(routes.add(pattern.source()));
        self.routes.push((pattern, policy));
    }

    /// The outcome counters of the policy `id`.
    #[inline]
    pub(crate) fn counters(&self, id: PolicyId) -> &RouteCounters {
        self.counters.get(id.0).unwrap_or(&self.counters[0])
    }

    /// The policy of the first route matching `request`, or the default.
    pub(crate) fn select(&self, request: &request::Parts) -> PolicyId {
        if self.routes.is_empty() {
            return PolicyId(0);
        }
        let template = matched_route(request);
        // The path as sent: inside a nested router, the request's URI has lost the prefix.
        let path = crate::key::original_uri(request).path();
        self.routes
            .iter()
            .position(|(pattern, _)| pattern.matches(template, path))
            .map_or(PolicyId(0), |i| PolicyId(i + 1))
    }

    pub(crate) fn get(&self, id: PolicyId) -> &Policy {
        match id.0 {
            0 => &self.default,
            i => self.routes.get(i - 1).map_or(&self.default, |(_, p)| p),
        }
    }
}

/// axum's matched route template, when the layer runs inside a `Router`.
#[cfg(feature = "axum")]
fn matched_route(request: &request::Parts) -> Option<&str> {
    let matched = request.extensions.get::<axum::extract::MatchedPath>();
    matched.map(|m| m.as_str())
}

#[cfg(not(feature = "axum"))]
fn matched_route(_: &request::Parts) -> Option<&str> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MAX_LIFETIME;

    #[test]
    fn absurd_knobs_saturate() {
        let p = Policy::new()
            .ttl(Duration::MAX)
            .negative_ttl(Duration::MAX)
            .stale_while_revalidate(Duration::MAX)
            .stale_if_error(Duration::MAX)
            .origin_timeout(Duration::MAX)
            .max_coalesce_wait(Duration::MAX)
            .hit_for_pass(Duration::MAX)
            .ttl_jitter(f64::INFINITY)
            .refresh_ahead(f64::NAN)
            .keep(Duration::MAX)
            .heuristic_freshness(f64::INFINITY, Duration::MAX);
        assert_eq!(p.heuristic, (1.0, MAX_LIFETIME));
        assert_eq!(
            Policy::new()
                .heuristic_freshness(f64::NAN, Duration::ZERO)
                .heuristic,
            (0.0, Duration::ZERO)
        );
        for d in [
            p.keep,
            p.ttl,
            p.negative_ttl,
            p.stale_while_revalidate,
            p.stale_if_error,
            p.origin_timeout.unwrap(),
            p.max_coalesce_wait,
            p.hit_for_pass,
        ] {
            assert_eq!(d, MAX_LIFETIME);
        }
        assert_eq!(p.ttl_jitter, 0.5);
        assert_eq!(p.refresh_ahead, None, "NaN turns refresh-ahead off");
        assert_eq!(
            Policy::new().refresh_ahead(f64::INFINITY).refresh_ahead,
            Some(1.0)
        );
        assert_eq!(
            Policy::new().ttl(Duration::from_secs(5)).ttl,
            Duration::from_secs(5)
        );
    }
}
