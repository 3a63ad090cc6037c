//! [`CacheService`]: the request flow, top to bottom.
//!
//! 1. Not GET/HEAD, or the route's policy, the request's credentials or its key say so: bypass.
//! 2. Look the key up; a fresh stored response that matches (full key, `Vary`) is the answer.
//! 3. Otherwise call the inner service, and store its response if the rules allow.

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body::Body;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;
use tower_service::Service;

use crate::config::{Config, Disposition};
use crate::fill::Miss;
use crate::semantics::RequestFacts;
use crate::stats::Counters;
use crate::{BypassReason, CacheBody, DefaultKey, KeyBuilder, KeyMaker, ResponseFuture, Store};

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
        // The clone is not ready; the instance that was polled ready is the one we call.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::new(serve(Arc::clone(&self.config), inner, request))
    }
}

async fn serve<S, St, K, ReqB, ResB>(
    config: Arc<Config<St, K>>,
    mut inner: S,
    request: Request<ReqB>,
) -> Result<Response<CacheBody<ResB>>, S::Error>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    St: Store + ?Sized,
    K: KeyMaker,
    ResB: Body,
    ResB::Data: Into<Bytes>,
{
    let (parts, body) = request.into_parts();
    let head = parts.method == Method::HEAD;
    let policy = config.policies.select(&parts);
    let prepared = if head || parts.method == Method::GET {
        RequestFacts::read(&parts, policy).and_then(|facts| {
            let mut key = KeyBuilder::new(&parts);
            config.keys.make_key(&parts, &mut key);
            Ok((facts, key.finish(policy.max_key_bytes)?))
        })
    } else {
        Err(BypassReason::Method)
    };
    let (facts, key) = match prepared {
        Ok(prepared) => prepared,
        Err(reason) => {
            config.bypassed(reason);
            let response = inner.call(Request::from_parts(parts, body)).await?;
            return Ok(config.pass_through(response));
        }
    };

    let now = SystemTime::now();
    if let Some(entry) = config.lookup(&key, &facts, &parts.headers, now).await {
        if let Some(response) = config.answer(&entry, head, now) {
            Counters::add(&config.counters.hits);
            return Ok(response);
        }
    }

    Counters::add(&config.counters.misses);
    let miss = Miss {
        policy,
        facts,
        key,
        head,
        request_headers: parts.headers.clone(),
        now,
    };
    let response = inner.call(Request::from_parts(parts, body)).await?;
    Ok(config.fill(miss, response).await)
}

impl<St: ?Sized, K> Config<St, K> {
    /// A response that did not use the cache: overrides removed, marked `BYPASS`.
    fn pass_through<B: Body>(&self, response: Response<B>) -> Response<CacheBody<B>> {
        let (mut parts, body) = response.into_parts();
        crate::CacheOverride::take(&mut parts, self.override_header.as_ref());
        self.mark(&mut parts.headers, Disposition::Bypass);
        Response::from_parts(parts, CacheBody::origin(body))
    }
}
