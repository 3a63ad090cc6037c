//! Going to the origin: coalesced with other requests for the key, directly, or in the
//! background; with a stale response to fall back on when the origin fails (RFC 5861).
//!
//! A coalesced fetch runs in a task of its own ([`Background`]): if the client that started it
//! goes away, the fetch still completes, stores the response and answers the requests waiting
//! for it.

use http::{Method, Request, Response, request};
use http_body::Body;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::oneshot;
use tower_service::Service;

use crate::bounds::{CachedBody, Inner};
use crate::cache::Cache;
use crate::flow::answer::Served;
use crate::flow::background::{Background, Behind};
use crate::flow::cacheable::Cacheable;
use crate::flow::coalesce::{FlightGuard, Role, Shared, Waiter};
use crate::flow::conditions::CONDITIONS;
use crate::flow::fill::Miss;
use crate::flow::lookup::{Found, Now, Taken};
use crate::invalidate;
use crate::key::Target;
use crate::observe::{OriginCall, Refresh};
use crate::{CacheBody, Entry, Store, StoreKey};
use tracing::Instrument;

/// The origin call a request may make: the inner service (polled ready) and the request's
/// body.
pub(crate) struct Origin<S, B> {
    pub inner: S,
    pub body: B,
}

/// A miss: waits for another request's fetch of the key if there is one, or fetches and lets
/// later requests wait for it. A wait that runs out (the policy's `max_coalesce_wait`) starts
/// the flight's one replacement fetch, or keeps waiting for the fetches under way: whichever
/// answers first answers every waiter. A response that varies sends the requests for other
/// variants to a flight of their own variant.
pub(crate) async fn coalesced<S, St, ReqB, ResB>(
    cache: Arc<Cache<St>>,
    background: Arc<Background>,
    origin: Origin<S, ReqB>,
    mut request: Cacheable,
    stale: Option<Arc<Entry>>,
) -> Result<Response<CacheBody<ResB>>, S::Error>
where
    S: Inner<ReqB, ResB>,
    St: Store + ?Sized,
    ReqB: Send + 'static,
    ResB: CachedBody,
{
    // HEAD fills nothing, and coalescing needs tokio (tasks, timers).
    if request.head || tokio::runtime::Handle::try_current().is_err() {
        return direct(cache, background, origin, request, stale).await;
    }
    let epoch = cache.store.remote_invalidations();
    // Its credentials or its spelling decide what it gets: it may take what a fetch under
    // way shares, but never lead a fetch that others wait for.
    let leads = request.facts.fills_for_others();
    let mut other_variants = 0;
    let mut looked_again = false;
    let mut restarted = false;
    let shared = loop {
        let key = request.flight_key();
        let role = if leads {
            cache
                .flights
                .join(key, epoch, || flight_tags(&request.parts))
        } else {
            match cache.flights.follow(key, epoch) {
                Some(waiter) => Role::Waiter(waiter),
                None => return direct(cache, background, origin, request, stale).await,
            }
        };
        let mut waiter = match role {
            Role::Leader(guard) => {
                return lead(cache, background, origin, request, stale, guard, None).await;
            }
            Role::Waiter(waiter) => waiter,
        };
        let policy = cache.policies.get(request.policy);
        let mut wait = policy.max_coalesce_wait;
        // With a stale response to fall back on, a waiter gives the fetch no longer than its
        // leader does (`origin_timeout`), then answers stale and leaves the flight alone.
        let stale_after = policy.origin_timeout.filter(|limit| *limit < wait);
        let shared = 'waited: {
            if let (Some(stale), Some(limit)) = (&stale, stale_after) {
                match tokio::time::timeout(limit, waiter.outcome()).await {
                    Ok(shared) => break 'waited shared,
                    Err(_) => {
                        if let Some(response) = cache.answer_stale(stale, &request) {
                            return Ok(response);
                        }
                        wait -= limit;
                    }
                }
            }
            match tokio::time::timeout(wait, waiter.outcome()).await {
                Ok(shared) => shared,
                // `replace` takes the flight's one replacement: only for a request that will
                // start it.
                Err(_) => match leads.then(|| waiter.replace()).flatten() {
                    Some(guard) => {
                        let racing = Some(waiter);
                        return lead(cache, background, origin, request, stale, guard, racing)
                            .await;
                    }
                    // Another waiter replaces the fetch that overran: the first answer will do.
                    None => waiter.outcome().await,
                },
            }
        };
        let now = SystemTime::now();
        let taken = match &shared {
            Shared::LookAgain => match cache.lookup(&request, now).await {
                Found::Fresh { entry, .. } => cache
                    .answer(&entry, false, now, Served::Collapsed(request.forward))
                    .map_or(Taken::No, Taken::Response),
                // Not stored after all (refused, or gone already): once, join or lead the
                // next fetch rather than each going to the origin.
                _ if !looked_again => {
                    looked_again = true;
                    continue;
                }
                _ => Taken::No,
            },
            // Its body stalled (nothing for the coalescing wait): rather than hang on it, this
            // request starts a fetch of its own, once, and the next ones join that.
            Shared::Entry {
                body: Some(transfer),
                ..
            } if !restarted && transfer.stalled_for(policy.max_coalesce_wait) => {
                waiter.detach();
                restarted = true;
                continue;
            }
            _ => cache.take_shared(&shared, &request, now),
        };
        match taken {
            Taken::Response(response) => {
                cache.observe.coalesced();
                return Ok(response);
            }
            // At most twice: a variant's fetch says which fields responses vary on.
            Taken::OtherVariant(variant) if other_variants < 2 => {
                other_variants += 1;
                request.variant = Some(Box::new(variant));
            }
            Taken::OtherVariant(_) | Taken::No => break shared,
        }
    };
    if let (Shared::Failed, Some(stale)) = (&shared, &stale) {
        if let Some(response) = cache.answer_stale(stale, &request) {
            return Ok(response);
        }
    }
    // Not shareable, or failed without a stale fallback: this request asks the origin itself.
    direct(cache, background, origin, request, stale).await
}

/// The first request for a key (or the one that replaces a fetch that overran, `racing` its
/// flight): fetches in a task of its own, so that the waiters get their answer even if this
/// request's client goes away.
async fn lead<S, St, ReqB, ResB>(
    cache: Arc<Cache<St>>,
    background: Arc<Background>,
    origin: Origin<S, ReqB>,
    request: Cacheable,
    stale: Option<Arc<Entry>>,
    guard: FlightGuard,
    racing: Option<Waiter>,
) -> Result<Response<CacheBody<ResB>>, S::Error>
where
    S: Inner<ReqB, ResB>,
    St: Store + ?Sized,
    ReqB: Send + 'static,
    ResB: CachedBody,
{
    let (head, now, forward) = (request.head, request.now, request.forward);
    let key = request.flight_key();
    let timeout = cache.policies.get(request.policy).origin_timeout;
    // The lookup came before the flight was joined: a fill that ended in between has stored
    // what this request wants. Checked again when the store can tell at once (no wait).
    if let Now::Known(Found::Fresh { entry, .. }) = cache.lookup_now(&request, SystemTime::now()) {
        if let Some(response) = cache.answer(
            &entry,
            head,
            SystemTime::now(),
            Served::Collapsed(request.forward),
        ) {
            cache.observe.coalesced();
            guard.publish(Shared::LookAgain);
            return Ok(response);
        }
    }
    // What the replacing request needs to take the flight's answer instead of its own.
    let racing = racing.map(|waiter| (waiter, request.copy(false)));
    let (answer, answered) = oneshot::channel();
    let (task_config, behind) = (Arc::clone(&cache), background.behind());
    // The claim (a store round trip, or a wait for another instance's fill) and the fetch run
    // in the task: a client that goes away meanwhile leaves its waiters to the task, not
    // without a fetch. The runtime was checked by `coalesced`, so the task starts.
    let task = async move {
        let cache = task_config;
        let claim = match cache.claim_or_wait(&request).await {
            Claim::Mine => Some(key),
            Claim::GaveUp => None,
            Claim::Filled(entry) => {
                // Another instance filled it: answer from the store, and tell the local waiters.
                let now = SystemTime::now();
                if let Some(response) = cache.answer(&entry, head, now, Served::Collapsed(forward))
                {
                    cache.observe.coalesced();
                    guard.publish(Shared::LookAgain);
                    let _ = answer.send(Ok(response));
                    return;
                }
                None
            }
        };
        let fetching = fetch(
            Arc::clone(&cache),
            behind,
            origin,
            request,
            Some(guard),
            claim,
        );
        // The client may be gone; the fill is what matters then.
        let _ = answer.send(fetching.await);
    };
    // In the request's span: its origin time is recorded there. Boxed where it is made: it is
    // kilobytes, and every move after this one moves a pointer.
    background.spawn(Box::pin(task).instrument(tracing::Span::current()));
    let mut answered = answered;
    let mut own = None;
    if let Some((mut waiter, copy)) = racing {
        // Whichever comes first: this fetch's answer, or the flight's (the fetch it replaces).
        let mut outcome = std::pin::pin!(waiter.outcome());
        let shared = std::future::poll_fn(|cx| {
            if let Poll::Ready(result) = Pin::new(&mut answered).poll(cx) {
                own = Some(result);
                return Poll::Ready(None);
            }
            outcome.as_mut().poll(cx).map(Some)
        })
        .await;
        if let Some(shared) = shared {
            let now = SystemTime::now();
            if let Taken::Response(response) = cache.take_shared(&shared, &copy, now) {
                cache.observe.coalesced();
                return Ok(response);
            }
        }
    }
    if let Some(result) = own {
        let result = result.unwrap_or_else(|_| never_answered());
        return cache.settled(result, stale.as_deref(), head, now);
    }
    // Too slow: the stale response now; the fetch's task refreshes the cache when it lands.
    let answer = async { answered.await.unwrap_or_else(|_| never_answered()) };
    cache
        .within_origin_timeout(answer, stale.as_deref(), timeout, head, now)
        .await
}

/// The outcome of asking the store for the right to fill a key (cluster-wide coalescing).
enum Claim {
    /// This instance fills it (and releases the claim after).
    Mine,
    /// Another instance filled it while this one waited.
    Filled(Arc<Entry>),
    /// Waited long enough: fill it anyway, without a claim.
    GaveUp,
}

/// How often a waiting instance looks for another instance's fill.
const CLAIM_POLL: Duration = Duration::from_millis(20);

impl<St: Store + ?Sized> Cache<St> {
    /// Claims the fill of the request's key (its variant's, when known), or waits for the
    /// instance that holds the claim: until its entry appears, its claim ends (then this one
    /// claims), or the policy's `max_coalesce_wait` has passed.
    async fn claim_or_wait(&self, request: &Cacheable) -> Claim {
        let key = request.flight_key();
        let wait = self.policies.get(request.policy).max_coalesce_wait;
        if self.store.claim_fill(key, wait).await {
            return Claim::Mine;
        }
        let deadline = crate::entry::deadline(Instant::now(), wait);
        loop {
            tokio::time::sleep(CLAIM_POLL).await;
            if let Found::Fresh { entry, .. } = self.lookup(request, SystemTime::now()).await {
                return Claim::Filled(entry);
            }
            if Instant::now() >= deadline {
                return Claim::GaveUp;
            }
            if self.store.claim_fill(key, wait).await {
                return Claim::Mine;
            }
        }
    }
}

/// A fetch nobody waits for and nobody else joins (hit-for-pass, HEAD, a request that may
/// not lead).
pub(crate) async fn direct<S, St, ReqB, ResB>(
    cache: Arc<Cache<St>>,
    background: Arc<Background>,
    origin: Origin<S, ReqB>,
    request: Cacheable,
    stale: Option<Arc<Entry>>,
) -> Result<Response<CacheBody<ResB>>, S::Error>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    St: Store + ?Sized,
    ResB: CachedBody,
{
    let (head, now) = (request.head, request.now);
    let timeout = cache.policies.get(request.policy).origin_timeout;
    let behind = background.behind();
    let fetching = fetch(Arc::clone(&cache), behind, origin, request, None, None);
    cache
        .within_origin_timeout(fetching, stale.as_deref(), timeout, head, now)
        .await
}

/// Calls the inner service (unconditionally, for the whole body) and fills the cache with its
/// response; tells the requests waiting for it (`guard`) what they may be given.
pub(crate) fn fetch<S, St, ReqB, ResB>(
    cache: Arc<Cache<St>>,
    behind: Behind,
    origin: Origin<S, ReqB>,
    mut request: Cacheable,
    guard: Option<FlightGuard>,
    claim: Option<StoreKey>,
) -> impl Future<Output = Result<Response<CacheBody<ResB>>, S::Error>>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    St: Store + ?Sized,
    ResB: CachedBody,
{
    // A fetch that fills the cache asks for the whole, current response; the request's own
    // conditions are answered from it (`conditions.rs`).
    for name in CONDITIONS {
        request.parts.headers.remove(name);
    }
    let tags = flight_tags(&request.parts);
    let tagged_by_policy = cache.policies.get(request.policy).tag_with.is_some();
    let sent = request.copy(tagged_by_policy);
    // Revalidating a stored response: its own validators, never the client's (RFC 9111
    // §4.3.1).
    // Not for a query `POST`: a matching `If-None-Match` on another method is a `412`
    // (RFC 9110 §13.1.2), so its stored response is fetched again in full.
    let safe = request.parts.method == Method::GET || request.parts.method == Method::HEAD;
    if let Some(stored) = request
        .prior
        .as_deref()
        .and_then(Entry::stored)
        .filter(|_| safe)
    {
        validators(&stored.headers, &mut request.parts.headers);
    }
    let ticket = cache.generations.begin_fill();
    let call = if sent.refreshing {
        OriginCall::Refresh
    } else if sent.prior.is_some() {
        OriginCall::Revalidated
    } else if sent.forward == crate::semantics::Forward::Bypass {
        OriginCall::Pass
    } else {
        OriginCall::Miss
    };
    // Called here, not in the future: the service was polled ready for this call.
    let Origin { mut inner, body } = origin;
    let started = Instant::now();
    let called = inner.call(Request::from_parts(request.parts, body));
    async move {
        let answered = called.await;
        // A revalidation the origin answers in full is a miss's call after all.
        let call = match &answered {
            Ok(response)
                if call == OriginCall::Revalidated
                    && response.status() != http::StatusCode::NOT_MODIFIED =>
            {
                OriginCall::Miss
            }
            _ => call,
        };
        cache.observe.origin_answered(call, &answered, started);
        // On an error the guard is dropped, which tells the waiters the fetch failed.
        let response = match answered {
            Ok(response) => response,
            Err(error) => {
                if let Some(key) = claim {
                    cache.store.release_fill(key).await;
                }
                return Err(error);
            }
        };
        let miss = Miss {
            request: sent,
            responded_at: SystemTime::now(),
            ticket,
            tags,
            claim,
        };
        Ok(cache.fill(&behind, miss, response, guard).await)
    }
}

/// The conditions that ask the origin whether a stored response (its fields `stored`) is still
/// current: `If-None-Match` with its `ETag`, `If-Modified-Since` with its `Last-Modified`
/// (both when it has both, §4.3.1).
fn validators(stored: &http::HeaderMap, request: &mut http::HeaderMap) {
    use http::header::{ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
    if let Some(etag) = stored.get(ETAG) {
        request.insert(IF_NONE_MATCH, etag.clone());
    }
    if let Some(modified) = stored.get(LAST_MODIFIED) {
        request.insert(IF_MODIFIED_SINCE, modified.clone());
    }
}

/// The internal tags of what a cacheable request fetches (its URI, host and prefixes).
fn flight_tags(parts: &request::Parts) -> Vec<String> {
    Target::of(parts)
        .map(|target| invalidate::implicit_tags(&target))
        .unwrap_or_default()
}

/// Refreshes an entry in the background (stale-while-revalidate, refresh-ahead), unless a
/// fetch of the key is already under way or the maximum of refreshes is running. The request
/// that triggered it is answered from the cache; its parts become the refresh's request, made
/// unconditional and for the whole body.
pub(crate) fn refresh<S, St, ReqB, ResB>(
    cache: &Arc<Cache<St>>,
    background: &Arc<Background>,
    origin: Origin<S, ReqB>,
    mut request: Cacheable,
    kind: Refresh,
) where
    S: Inner<ReqB, ResB>,
    St: Store + ?Sized,
    ReqB: Send + 'static,
    ResB: CachedBody,
{
    if tokio::runtime::Handle::try_current().is_err() {
        return;
    }
    let Some(permit) = background.refresh_permit() else {
        tracing::debug!("background refresh skipped: the maximum are running");
        return;
    };
    let epoch = cache.store.remote_invalidations();
    let key = request.key.store_key();
    let Some(guard) = cache
        .flights
        .lead(key, epoch, || flight_tags(&request.parts))
    else {
        return;
    };
    // A `HEAD` refreshes the whole response; a query keeps its method (and its body), but
    // not its client's gRPC deadline, which would cut the refresh short.
    if request.head {
        request.parts.method = Method::GET;
    }
    request.parts.headers.remove("grpc-timeout");
    request.head = false;
    request.now = SystemTime::now();
    request.refreshing = true;
    let refreshing = fetch(
        Arc::clone(cache),
        background.behind(),
        origin,
        request,
        Some(guard),
        None,
    );
    let observe = Arc::clone(&cache.observe);
    let spawned = background.spawn(async move {
        let _permit = permit;
        match refreshing.await {
            Ok(response) if !response.status().is_server_error() => {}
            // An error, or a server error (what a proxy makes of an origin it cannot reach).
            _ => observe.refresh_failed(),
        }
    });
    if spawned {
        cache.observe.refresh_started(kind);
    }
}

/// A fetch task only ends without an answer when the inner service panicked in it (or the
/// runtime is shutting down). The inner service's error cannot be made up, so its panic is
/// carried on to the caller, as it would have been without the cache.
fn never_answered<T>() -> T {
    panic!("the inner service panicked or was cancelled while filling the cache")
}

impl<St: Store + ?Sized> Cache<St> {
    /// The fetch's outcome, or the stale response standing in for an origin slower than
    /// `limit` (the policy's `origin_timeout`), or for a failure, when one may (RFC 5861).
    async fn within_origin_timeout<B: Body, E>(
        &self,
        fetching: impl Future<Output = Result<Response<CacheBody<B>>, E>>,
        stale: Option<&Entry>,
        limit: Option<Duration>,
        head: bool,
        now: SystemTime,
    ) -> Result<Response<CacheBody<B>>, E> {
        let mut fetching = std::pin::pin!(fetching);
        if let (Some(stale), Some(limit)) = (stale, limit) {
            if tokio::runtime::Handle::try_current().is_ok()
                && tokio::time::timeout(limit, fetching.as_mut())
                    .await
                    .is_err()
            {
                if let Some(response) = self.answer_stale_at(stale, head, SystemTime::now()) {
                    return Ok(response);
                }
            }
        }
        self.settled(fetching.await, stale, head, now)
    }

    /// The fetch's outcome, or the stale response standing in for a failure (an error or a
    /// server error), when one may.
    fn settled<B: Body, E>(
        &self,
        result: Result<Response<CacheBody<B>>, E>,
        stale: Option<&Entry>,
        head: bool,
        now: SystemTime,
    ) -> Result<Response<CacheBody<B>>, E> {
        match result {
            Ok(response) => Ok(self.settle(response, stale, head, now)),
            Err(error) => self.settle_error(error, stale, head),
        }
    }

    /// The origin's answer, or the stale response when the answer is a server error and a stale
    /// one may stand in (stale-if-error).
    fn settle<B: Body>(
        &self,
        response: Response<CacheBody<B>>,
        stale: Option<&Entry>,
        head: bool,
        now: SystemTime,
    ) -> Response<CacheBody<B>> {
        if let Some(stale) = stale.filter(|_| response.status().is_server_error()) {
            if let Some(stale) = self.answer_stale_at(stale, head, now) {
                return stale;
            }
        }
        response
    }

    /// The inner service's error, or the stale response when one may stand in.
    fn settle_error<B: Body, E>(
        &self,
        error: E,
        stale: Option<&Entry>,
        head: bool,
    ) -> Result<Response<CacheBody<B>>, E> {
        match stale.and_then(|s| self.answer_stale_at(s, head, SystemTime::now())) {
            Some(response) => Ok(response),
            None => Err(error),
        }
    }

    fn answer_stale<B: Body>(
        &self,
        stale: &Entry,
        request: &Cacheable,
    ) -> Option<Response<CacheBody<B>>> {
        self.answer_stale_at(stale, request.head, SystemTime::now())
    }

    fn answer_stale_at<B: Body>(
        &self,
        stale: &Entry,
        head: bool,
        now: SystemTime,
    ) -> Option<Response<CacheBody<B>>> {
        // Counted as stale when answered (the mark `StaleFallback` leaves).
        self.answer(stale, head, now, Served::StaleFallback)
    }
}
