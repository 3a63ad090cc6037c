//! [`CacheService`]: the request flow, top to bottom.
//!
//! 0. A `POST` its route's policy says is a read (a query, a gRPC unary call): its body is read
//!    first (`queried`), then the same steps, asynchronously.
//! 1. In `call`, synchronously: not GET/HEAD, or the route's policy, the request's credentials
//!    or its key say so? Then the request bypasses the cache.
//! 2. Look the key up (at once when the store can answer at once, [`Store::get_now`]).
//! 3. Serve what was found:
//!    - fresh: answer (`HIT`); past the refresh-ahead point, refresh in the background;
//!    - stale within stale-while-revalidate: answer (`STALE`) and refresh in the background;
//!    - nothing, or stale only usable if the origin fails: fetch, coalesced with other requests
//!      for the key (fetch.rs), falling back to the stale response on failure;
//!    - marked hit-for-pass: fetch directly, nobody waits for anybody.
//!
//! A hit that the store answers at once is answered inside `call`: no future is allocated and
//! the inner service is not even cloned.

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_service::Service;

use crate::bounds::{CachedBody, Inner};
use crate::cache::Cache;
use crate::flow::answer::Served;
use crate::flow::background::Background;
use crate::flow::cacheable::Cacheable;
use crate::flow::conditions::Conditions;
use crate::flow::fetch::{self, Origin};
use crate::flow::lookup::{Found, Now};
use crate::flow::query::{NoQueryBodies, QueryBodyMaker, QueryRead};
use crate::flow::tally::Tally;
use crate::flow::write::{Writes, pass_through};
use crate::observe::span::RequestSpan;
use crate::observe::{Outcome, Refresh};
use crate::policy::QueryRoute;
use crate::semantics::Forward;
use crate::{CacheBody, DefaultKey, Entry, KeyMaker, ResponseFuture, Store};
use tracing::Instrument;

/// The cache in front of an inner service `S`; built by [`CacheLayer`](crate::CacheLayer).
pub struct CacheService<S, St: ?Sized, K = DefaultKey, Q = NoQueryBodies> {
    inner: S,
    cache: Arc<Cache<St>>,
    keys: Arc<K>,
    queries: Arc<Q>,
    background: Arc<Background>,
}

impl<S, St: ?Sized, K, Q> CacheService<S, St, K, Q> {
    pub(crate) fn new(
        inner: S,
        cache: Arc<Cache<St>>,
        keys: Arc<K>,
        queries: Arc<Q>,
        background: Arc<Background>,
    ) -> Self {
        CacheService {
            inner,
            cache,
            keys,
            queries,
            background,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, without the cache in front of it. The cache itself lives on in the
    /// layer and its other services.
    ///
    /// ```
    /// use tower::{Layer, service_fn};
    /// use tower_response_cache::{CacheLayer, MemoryStore};
    ///
    /// let origin = service_fn(|_: http::Request<String>| async {
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    /// });
    /// let mut service = CacheLayer::new(MemoryStore::with_capacity_bytes(1 << 20)).layer(origin);
    /// let _: &_ = service.get_ref();
    /// let _: &mut _ = service.get_mut();
    /// let origin = service.into_inner();
    /// # let _ = origin;
    /// ```
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, St: ?Sized, K, Q> Clone for CacheService<S, St, K, Q> {
    fn clone(&self) -> Self {
        CacheService {
            inner: self.inner.clone(),
            cache: Arc::clone(&self.cache),
            keys: Arc::clone(&self.keys),
            queries: Arc::clone(&self.queries),
            background: Arc::clone(&self.background),
        }
    }
}

impl<S: std::fmt::Debug, St: ?Sized, K, Q> std::fmt::Debug for CacheService<S, St, K, Q> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, St, K, Q, ReqB, ResB> Service<Request<ReqB>> for CacheService<S, St, K, Q>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send + 'static,
    St: Store + ?Sized,
    K: KeyMaker,
    Q: QueryBodyMaker<ReqB>,
    ReqB: Body + Send + 'static,
    ResB: Body + Send + 'static,
    ResB::Data: Into<Bytes> + Send,
    ResB::Error: Into<crate::BoxError> + Send,
{
    type Response = Response<CacheBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<ResB, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        let (parts, body) = request.into_parts();
        let span = RequestSpan::new(&parts);
        if parts.method.as_str() == "PURGE" && self.cache.purge_token.is_some() {
            let answering = crate::purge::method::answer(Arc::clone(&self.cache), parts);
            return ResponseFuture::flow(answering.instrument(span.span().clone()));
        }
        if parts.method == http::Method::POST {
            let policy = self.cache.policies.get(self.cache.policies.select(&parts));
            if let Some(route) = policy.query.clone().filter(|q| q.takes(&parts)) {
                let instrumented = span.span().clone();
                let querying = queried(
                    Arc::clone(&self.cache),
                    Arc::clone(&self.background),
                    Arc::clone(&self.keys),
                    Arc::clone(&self.queries),
                    self.take_inner(),
                    parts,
                    body,
                    route,
                    span,
                );
                return ResponseFuture::flow(querying.instrument(instrumented));
            }
        }
        let request = match self.cache.prepare(&*self.keys, &parts, &body, None) {
            Ok(described) => Cacheable::new(parts, described),
            Err(reason) => {
                let writes = Writes::ByMethod;
                let inner = self.take_inner();
                return bypass(&self.cache, inner, parts, body, reason, span, writes);
            }
        };
        if span.is_on() {
            let route = self.cache.policies.counters(request.policy).label();
            span.described(route, request.key.store_key());
        }
        match self.cache.lookup_now(&request, request.now) {
            Now::Known(found) => serve(
                &self.cache,
                &self.background,
                || Origin {
                    inner: take(&mut self.inner),
                    body,
                },
                found,
                request,
                span,
            ),
            Now::Wait => {
                let looking = looked_up_later(
                    Arc::clone(&self.cache),
                    Arc::clone(&self.background),
                    Origin {
                        inner: self.take_inner(),
                        body,
                    },
                    request,
                    span,
                );
                ResponseFuture::flow(looking)
            }
        }
    }
}

impl<S: Clone, St: ?Sized, K, Q> CacheService<S, St, K, Q> {
    fn take_inner(&mut self) -> S {
        take(&mut self.inner)
    }
}

/// The inner service to call, leaving a clone in its place: the instance that was polled ready
/// is the one that gets called (tower's `mem::replace` idiom).
fn take<S: Clone>(inner: &mut S) -> S {
    let clone = inner.clone();
    std::mem::replace(inner, clone)
}

/// Serves what the lookup found (step 3 above). `origin` is called at most once, and only when
/// the inner service is needed (a hit does not even clone it). Inlined into `call`: the request
/// context is not copied on its way in.
#[inline(always)]
fn serve<S, St, ReqB, ResB>(
    cache: &Arc<Cache<St>>,
    background: &Arc<Background>,
    origin: impl FnOnce() -> Origin<S, ReqB>,
    found: Found,
    mut request: Cacheable,
    span: RequestSpan,
) -> ResponseFuture<ResB, S::Error>
where
    S: Inner<ReqB, ResB>,
    St: Store + ?Sized,
    ReqB: Send + 'static,
    ResB: CachedBody,
{
    let (head, now) = (request.head, request.now);
    // Its own preconditions and range are answered from whatever answers it (RFC 9110 §13).
    let conditions = request
        .facts
        .conditional
        .then(|| Conditions::of(&request.parts))
        .flatten();
    let answered = |served: Served, entry: &Entry| {
        let mut response = cache.answer(entry, head, now, served)?;
        if let Some(conditions) = &conditions {
            response = conditions.answer(response, cache.cache_header.as_ref());
        }
        Some(response)
    };
    // An answer from the store, counted at once (the others by their `Tally`, below).
    let policy = request.policy;
    let counted = |outcome| {
        cache
            .observe
            .request(cache.policies.counters(policy), outcome);
        span.outcome(outcome);
    };
    let (stale, pass) = match found {
        Found::Fresh { entry, refresh } => {
            if let Some(response) = answered(Served::Hit, &entry) {
                counted(Outcome::Hit);
                if refresh && request.facts.fills_for_others() {
                    request.prior = Some(entry);
                    fetch::refresh(cache, background, origin(), request, Refresh::Ahead);
                }
                return ResponseFuture::ready(response);
            }
            (None, false)
        }
        Found::Stale(entry) => {
            if let Some(response) = answered(Served::Stale, &entry) {
                counted(Outcome::Stale);
                if request.facts.fills_for_others() {
                    request.prior = Some(entry);
                    fetch::refresh(cache, background, origin(), request, Refresh::Swr);
                }
                return ResponseFuture::ready(response);
            }
            (None, false)
        }
        Found::StaleIfError(entry) => {
            request.forward = Forward::Stale;
            request.prior = Some(Arc::clone(&entry));
            (Some(entry), false)
        }
        Found::Validate(entry) => {
            // Fresh, yet to be validated: the request's directives said so.
            let forced = entry.is_fresh(now);
            request.forward = if forced {
                Forward::Request
            } else {
                Forward::Stale
            };
            request.prior = Some(entry);
            (None, false)
        }
        Found::Pass => {
            request.forward = Forward::Bypass;
            (None, true)
        }
        Found::Missing => (None, false),
        Found::MissingVariant(variant) => {
            request.forward = Forward::VaryMiss;
            request.variant = Some(variant);
            (None, false)
        }
    };
    // Counted once answered: a miss, unless the answer says otherwise (revalidated, stale).
    let tally = Tally::new(
        Arc::clone(cache),
        request.policy,
        if pass { Outcome::Pass } else { Outcome::Miss },
        span,
    );
    // RFC 9111 §5.2.1.7: nothing stored will do, and the origin may not be asked.
    if request.facts.limits.is_some_and(|l| l.only_if_cached) {
        return ResponseFuture::ready(cache.gateway_timeout(None, "only-if-cached"));
    }
    // §4.2.4, §5.2.2.2: a response that must be revalidated is never served stale; if its
    // revalidation fails, the client gets a 504.
    let strict = request
        .prior
        .as_deref()
        .and_then(Entry::stored)
        .is_some_and(|stored| stored.must_revalidate);
    let cache = Arc::clone(cache);
    let background = Arc::clone(background);
    let origin = origin();
    let span = tally.span().clone();
    let flow = async move {
        let mut tally = tally;
        let cache_header = cache.cache_header.clone();
        let flow_cache = Arc::clone(&cache);
        let fetched = if pass {
            fetch::direct(flow_cache, background, origin, request, None).await
        } else {
            fetch::coalesced(flow_cache, background, origin, request, stale).await
        };
        let mut response = match fetched {
            Ok(response) => response,
            Err(_) if strict => cache.gateway_timeout(Some(Forward::Stale), "revalidation-failed"),
            Err(error) => return Err(error),
        };
        tally.answered(&mut response);
        Ok(match conditions {
            None => response,
            Some(conditions) => conditions.answer(response, cache_header.as_ref()),
        })
    };
    // Boxed where it is made: the flow is kilobytes, and every later move is of a pointer.
    ResponseFuture::flow(Box::pin(flow).instrument(span))
}

/// A request that does not use the cache (`reason`): to the inner service, and what it
/// changed (`writes`) invalidated; a safe one that may only be answered from the cache gets a
/// 504.
fn bypass<S, St, ReqB, ResB>(
    cache: &Arc<Cache<St>>,
    inner: S,
    parts: http::request::Parts,
    body: ReqB,
    reason: crate::BypassReason,
    span: RequestSpan,
    writes: Writes,
) -> ResponseFuture<ResB, S::Error>
where
    S: Inner<ReqB, ResB>,
    St: Store + ?Sized,
    ReqB: Send + 'static,
    ResB: CachedBody,
{
    cache.bypassed(&parts, reason);
    span.reason(reason.as_str());
    span.outcome(Outcome::Bypass);
    let safe = parts.method == http::Method::GET || parts.method == http::Method::HEAD;
    if safe && crate::semantics::only_if_cached(&parts.headers) {
        let forward = Some(Forward::Bypass);
        return ResponseFuture::ready(cache.gateway_timeout(forward, "only-if-cached"));
    }
    let passing = pass_through(
        Arc::clone(cache),
        inner,
        Request::from_parts(parts, body),
        reason,
        writes,
    );
    ResponseFuture::flow(passing.instrument(span.span().clone()))
}

/// A query (a `POST` its route reads, a gRPC unary call): its body read and keyed, then the
/// same flow as `call`'s, the inner service getting the same bytes. What cannot be keyed
/// passes by as the read it is; a write on the route (its classifier says) invalidates what
/// it names.
#[allow(clippy::too_many_arguments)]
async fn queried<S, St, K, Q, ReqB, ResB>(
    cache: Arc<Cache<St>>,
    background: Arc<Background>,
    keys: Arc<K>,
    queries: Arc<Q>,
    inner: S,
    parts: http::request::Parts,
    body: ReqB,
    route: QueryRoute,
    span: RequestSpan,
) -> Result<Response<CacheBody<ResB>>, S::Error>
where
    S: Inner<ReqB, ResB>,
    St: Store + ?Sized,
    K: KeyMaker,
    Q: QueryBodyMaker<ReqB>,
    ReqB: Body + Send + 'static,
    ResB: CachedBody,
{
    // What a `POST` whose body was not classified may have changed: on a route that tells
    // writes from reads, what its response names (a write on a query route names an endpoint,
    // not a resource: never its own URI); on one whose `POST`s are all reads, nothing.
    let unclassified = match route.is_query {
        Some(_) => Writes::WhatItNames,
        None => Writes::Nothing,
    };
    // Bytes in a content coding are not the query the origin reads (nor what a classifier
    // can read): one spelling of a query must not answer for another.
    let encodings = parts.headers.get_all(http::header::CONTENT_ENCODING);
    if encodings.iter().any(|coding| coding != "identity") {
        let reason = crate::BypassReason::QueryEncoded;
        return bypass(&cache, inner, parts, body, reason, span, unclassified).await;
    }
    let (query, body) = match queries.read(body, route.limit).await {
        QueryRead::Whole(query, body) => (query, body),
        QueryRead::PassOn(body, reason) => {
            return bypass(&cache, inner, parts, body, reason, span, unclassified).await;
        }
    };
    if !route.is_read(&parts, &query.data) {
        let (reason, writes) = (crate::BypassReason::Method, Writes::WhatItNames);
        return bypass(&cache, inner, parts, body, reason, span, writes).await;
    }
    let request = match cache.prepare(&*keys, &parts, &body, Some(&query)) {
        Ok(described) => Cacheable::new(parts, described),
        Err(reason) => {
            // A method override may name a write, whatever the body says.
            let writes = match reason {
                crate::BypassReason::MethodOverride => Writes::ByMethod,
                _ => Writes::Nothing,
            };
            return bypass(&cache, inner, parts, body, reason, span, writes).await;
        }
    };
    if span.is_on() {
        let route = cache.policies.counters(request.policy).label();
        span.described(route, request.key.store_key());
    }
    let found = match cache.lookup_now(&request, request.now) {
        Now::Known(found) => found,
        Now::Wait => cache.lookup(&request, request.now).await,
    };
    let origin = || Origin { inner, body };
    serve(&cache, &background, origin, found, request, span).await
}

/// A request whose store had to be waited for: the same as `call`, after the lookup.
async fn looked_up_later<S, St, ReqB, ResB>(
    cache: Arc<Cache<St>>,
    background: Arc<Background>,
    origin: Origin<S, ReqB>,
    request: Cacheable,
    span: RequestSpan,
) -> Result<Response<CacheBody<ResB>>, S::Error>
where
    S: Inner<ReqB, ResB>,
    St: Store + ?Sized,
    ReqB: Send + 'static,
    ResB: CachedBody,
{
    let found = cache.lookup(&request, request.now).await;
    serve(&cache, &background, || origin, found, request, span).await
}
