//! [`CacheService`]: the request flow, top to bottom.
//!
//! 1. In `call`, synchronously: not GET/HEAD, or the route's policy, the request's credentials
//!    or its key say so? Then the request bypasses the cache.
//! 2. Look the key up; a fresh stored response that matches (full key, `Vary`, credentials) is
//!    the answer.
//! 3. Otherwise call the inner service, and store its response if the rules allow.
//!
//! A hit that the store answers at once ([`Store::get_now`], as the memory store does) is
//! answered inside `call`: no future is allocated and the inner service is not even cloned.

use bytes::Bytes;
use http::{Method, Request, Response, request};
use http_body::Body;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;
use tower_service::Service;

use crate::config::{Config, Disposition};
use crate::fill::Miss;
use crate::lookup::Now;
use crate::policy::PolicyId;
use crate::semantics::RequestFacts;
use crate::stats::Counters;
use crate::{
    BypassReason, CacheBody, CacheKey, DefaultKey, KeyBuilder, KeyMaker, ResponseFuture, Store,
};

/// The cache in front of an inner service `S`; built by [`CacheLayer`](crate::CacheLayer).
pub struct CacheService<S, St: ?Sized, K = DefaultKey> {
    inner: S,
    config: Arc<Config<St, K>>,
}

impl<S, St: ?Sized, K> CacheService<S, St, K> {
    pub(crate) fn new(inner: S, config: Arc<Config<St, K>>) -> Self {
        CacheService { inner, config }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: Clone, St: ?Sized, K> Clone for CacheService<S, St, K> {
    fn clone(&self) -> Self {
        CacheService {
            inner: self.inner.clone(),
            config: Arc::clone(&self.config),
        }
    }
}

impl<S: std::fmt::Debug, St: ?Sized, K> std::fmt::Debug for CacheService<S, St, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, St, K, ReqB, ResB> Service<Request<ReqB>> for CacheService<S, St, K>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send + 'static,
    St: Store + ?Sized,
    K: KeyMaker,
    ReqB: Send + 'static,
    ResB: Body + Send + 'static,
    ResB::Data: Into<Bytes> + Send,
    ResB::Error: Send,
{
    type Response = Response<CacheBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<ResB, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        let config = &self.config;
        let (parts, body) = request.into_parts();
        let lookup = match config.prepare(&parts) {
            Ok(lookup) => lookup,
            Err(reason) => {
                config.bypassed(reason);
                let request = Request::from_parts(parts, body);
                return ResponseFuture::flow(bypass(
                    Arc::clone(config),
                    self.take_inner(),
                    request,
                ));
            }
        };
        let now = SystemTime::now();
        match config.lookup_now(&lookup.key, &lookup.facts, &parts.headers, now) {
            Now::Known(Some(entry)) => {
                if let Some(response) = config.answer(&entry, lookup.head, now) {
                    Counters::add(&config.counters.hits);
                    return ResponseFuture::ready(response);
                }
                self.miss(parts, body, lookup, now)
            }
            Now::Known(None) => self.miss(parts, body, lookup, now),
            Now::Wait => ResponseFuture::flow(cached(
                Arc::clone(config),
                self.take_inner(),
                parts,
                body,
                lookup,
                now,
            )),
        }
    }
}

impl<S: Clone, St: ?Sized, K> CacheService<S, St, K> {
    /// The inner service to call, leaving a clone in its place: the instance that was polled
    /// ready is the one that gets called (tower's `mem::replace` idiom).
    fn take_inner(&mut self) -> S {
        let clone = self.inner.clone();
        std::mem::replace(&mut self.inner, clone)
    }
}

impl<S, St, K> CacheService<S, St, K>
where
    S: Clone,
    St: Store + ?Sized,
{
    fn miss<ReqB, ResB>(
        &mut self,
        parts: request::Parts,
        body: ReqB,
        lookup: Lookup,
        now: SystemTime,
    ) -> ResponseFuture<ResB, S::Error>
    where
        S: Service<Request<ReqB>, Response = Response<ResB>> + Send + 'static,
        S::Future: Send,
        S::Error: Send + 'static,
        K: KeyMaker,
        ReqB: Send + 'static,
        ResB: Body + Send + 'static,
        ResB::Data: Into<Bytes> + Send,
        ResB::Error: Send,
    {
        Counters::add(&self.config.counters.misses);
        let config = Arc::clone(&self.config);
        ResponseFuture::flow(miss(config, self.take_inner(), parts, body, lookup, now))
    }
}

/// What a cacheable request is looked up with.
pub(crate) struct Lookup {
    policy: PolicyId,
    facts: RequestFacts,
    key: CacheKey,
    head: bool,
}

impl<St: Store + ?Sized, K: KeyMaker> Config<St, K> {
    /// Decides whether the request may use the cache, and builds its key.
    fn prepare(&self, parts: &request::Parts) -> Result<Lookup, BypassReason> {
        let head = parts.method == Method::HEAD;
        if !head && parts.method != Method::GET {
            return Err(BypassReason::Method);
        }
        let policy_id = self.policies.select(parts);
        let policy = self.policies.get(policy_id);
        let facts = RequestFacts::read(parts, policy)?;
        let mut key = KeyBuilder::new(parts);
        self.keys.make_key(parts, &mut key);
        Ok(Lookup {
            policy: policy_id,
            facts,
            key: key.finish(policy.max_key_bytes)?,
            head,
        })
    }
}

/// A request that may be answered from the cache, when the store has to be waited for.
async fn cached<S, St, K, ReqB, ResB>(
    config: Arc<Config<St, K>>,
    inner: S,
    parts: request::Parts,
    body: ReqB,
    lookup: Lookup,
    now: SystemTime,
) -> Result<Response<CacheBody<ResB>>, S::Error>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    St: Store + ?Sized,
    ResB: Body,
    ResB::Data: Into<Bytes>,
{
    if let Some(entry) = config
        .lookup(&lookup.key, &lookup.facts, &parts.headers, now)
        .await
    {
        if let Some(response) = config.answer(&entry, lookup.head, now) {
            Counters::add(&config.counters.hits);
            return Ok(response);
        }
    }
    Counters::add(&config.counters.misses);
    miss(config, inner, parts, body, lookup, now).await
}

/// A request that was looked up and not found: the inner service answers, the cache may store.
async fn miss<S, St, K, ReqB, ResB>(
    config: Arc<Config<St, K>>,
    mut inner: S,
    parts: request::Parts,
    body: ReqB,
    lookup: Lookup,
    now: SystemTime,
) -> Result<Response<CacheBody<ResB>>, S::Error>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    St: Store + ?Sized,
    ResB: Body,
    ResB::Data: Into<Bytes>,
{
    let miss = Miss {
        policy: config.policies.get(lookup.policy),
        facts: lookup.facts,
        key: lookup.key,
        head: lookup.head,
        request_headers: parts.headers.clone(),
        now,
    };
    let response = inner.call(Request::from_parts(parts, body)).await?;
    Ok(config.fill(miss, response).await)
}

/// A request that does not use the cache.
async fn bypass<S, St, K, ReqB, ResB>(
    config: Arc<Config<St, K>>,
    mut inner: S,
    request: Request<ReqB>,
) -> Result<Response<CacheBody<ResB>>, S::Error>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    St: ?Sized,
    ResB: Body,
{
    let response = inner.call(request).await?;
    let (mut parts, body) = response.into_parts();
    crate::CacheOverride::take(&mut parts, config.override_header.as_ref());
    config.mark(&mut parts.headers, Disposition::Bypass);
    Ok(Response::from_parts(parts, CacheBody::origin(body)))
}
