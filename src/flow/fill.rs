//! Filling the cache from the inner service's response on a miss.
//!
//! The response's head decides whether it may be stored. If it may, its body is streamed: a
//! task of the layer's reads the origin's body into a [`Transfer`] that every client of the
//! fill reads from at its own pace (the request that started it, and the ones waiting for it
//! or joining mid-transfer), and stores the response once the body is complete, within the
//! limit and intact. The client has its response (and each frame) before anything is written:
//! a slow store costs the client nothing. Without a tokio runtime the body is read first and
//! stored before the response is returned.

use bytes::Bytes;
use http::header::{AGE, CONTENT_LENGTH, HeaderMap, HeaderValue};
use http::{Response, StatusCode, response};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::bounds::CachedBody;
use crate::cache::{Cache, Disposition};
use crate::entry::StoredResponse;
use crate::flow::background::Behind;
use crate::flow::buffer::{Read, read_to_limit};
use crate::flow::cacheable::Cacheable;
use crate::flow::coalesce::{FlightGuard, Shared};
use crate::flow::transfer::{self, Driven, Transfer};
use crate::invalidate::{self, FillTicket};
use crate::semantics::{self, CacheStatus, Forward, Received, StoreDecision};
use crate::{CacheBody, CacheKey, CacheOverride, Entry, NotStoredReason, Store, StoreKey};

/// A cacheable request whose response has arrived: what the fill decides and stores with.
pub(crate) struct Miss {
    /// A copy of the request whose fetch this is (`Cacheable::copy`): its key, facts and
    /// policy; its headers as sent (without the client's conditions), for the `Vary` fields of
    /// the variant key; the head the policy's tagger sees, when it tags; its request time.
    pub request: Cacheable,
    /// When the response arrived: entries are timed from here (RFC 9111 §4.2.3).
    pub responded_at: SystemTime,
    /// Started before the origin was called: tells whether an invalidation overtook the fill.
    pub ticket: FillTicket,
    /// The entry's tags so far: the internal ones of its URI; the origin's are added here.
    pub tags: Vec<String>,
    /// The cluster-wide claim on filling this key, released when the fill is over.
    pub claim: Option<StoreKey>,
}

/// A response that may be stored, before its body is in: the entry as it will be stored
/// (without its body), and the variants list it goes under, if it varies.
pub(crate) struct Head {
    pub decision: StoreDecision,
    pub target: CacheKey,
    pub variants: Option<Arc<Entry>>,
    pub entry: Arc<Entry>,
    /// The origin's `Content-Length`, checked against the body received.
    pub declared: Option<u64>,
    /// A gRPC call's, whose head did not say `grpc-status: 0`: stored only if its trailers do.
    pub grpc_trailers: bool,
}

impl<St> Cache<St>
where
    St: Store + ?Sized,
{
    /// Stores the inner service's response when the rules allow, and returns it to the client:
    /// streamed as it arrives (see the module docs), or passed through when it may not be
    /// stored. `guard`: the flight of the requests waiting for this fetch, told what they may
    /// be given as soon as that is known.
    pub(crate) async fn fill<B: CachedBody>(
        self: &Arc<Self>,
        behind: &Behind,
        mut miss: Miss,
        response: Response<B>,
        guard: Option<FlightGuard>,
    ) -> Response<CacheBody<B>> {
        let (mut parts, body) = response.into_parts();
        let overrides = CacheOverride::take(&mut parts, self.override_header.as_ref());
        self.mark(&mut parts.headers, Disposition::Miss);
        // The fetch revalidated a stored response (it sent that response's validators).
        if let Some(prior) = miss.request.prior.clone() {
            if parts.status == StatusCode::NOT_MODIFIED {
                let revalidated = self.revalidated(behind, miss, parts, prior, overrides, guard);
                return revalidated.await;
            }
            if miss.request.head && parts.status == StatusCode::OK {
                return self
                    .head_answered(behind, miss, parts, body, prior, overrides)
                    .await;
            }
        }
        let policy = self.policies.get(miss.request.policy);
        let tagged = self.take_tags(&mut parts, &mut miss.tags).and_then(|()| {
            let Some(tagger) = &policy.tag_with else {
                return Ok(());
            };
            // `fetch` made the request's copy in normal form for the tagger.
            let derived = tagger.0.tags(&miss.request.parts, &parts);
            let origin = miss
                .tags
                .iter()
                .filter(|t| !invalidate::is_internal(t))
                .count();
            if origin + derived.len() > invalidate::MAX_TAGS
                || !derived.iter().all(|t| invalidate::is_valid_tag(t))
            {
                tracing::warn!("the policy's tags are too many or invalid; response not stored");
                return Err(NotStoredReason::Tags);
            }
            miss.tags.extend(derived);
            Ok(())
        });
        let decision = if miss.request.head {
            Err(NotStoredReason::Head)
        } else {
            semantics::decide(
                policy,
                miss.request.facts,
                &self.received(&miss, &parts),
                overrides,
            )
        };
        let limit = policy.max_body_bytes;
        let exact = body.size_hint().exact();
        let grpc = self.is_grpc_call(&miss);
        let decision = decision
            .and_then(|d| tagged.map(|()| d))
            .and_then(|d| within_limit(&parts, exact, limit, d))
            .and_then(|d| match grpc.then(|| grpc_status(&parts.headers)) {
                // A gRPC error in the head (a "trailers-only" answer) is never stored.
                Some(Some(status)) if status != b"0" => Err(NotStoredReason::GrpcStatus),
                _ => Ok(d),
            });
        let forward = miss.request.forward;
        let decision = match decision {
            Ok(decision) => decision,
            Err(reason) => {
                self.leaving(&mut parts, forward, Err(reason));
                let shared = self.not_shared(miss, &parts, reason).await;
                if let Some(guard) = guard {
                    guard.publish(shared);
                }
                return Response::from_parts(parts, CacheBody::origin(body));
            }
        };
        let ttl = decision.lifetime.fresh_for;
        let mut head = self.head(&miss, &parts, body.size_hint().exact(), decision);
        head.grpc_trailers = grpc && grpc_status(&parts.headers).is_none();
        self.leaving(&mut parts, forward, Ok(ttl));
        if tokio::runtime::Handle::try_current().is_err() {
            return self.fill_in_place(miss, parts, body, head, guard).await;
        }
        let transfer = Transfer::new(limit, head.declared);
        let Some(reader) = transfer.reader() else {
            unreachable!("a new transfer takes readers")
        };
        // A gRPC answer whose status is in its trailers is shared once they said `0` and it
        // was stored: an error must not reach the waiters as theirs (they ask for themselves).
        if let Some(guard) = guard.as_ref().filter(|_| !head.grpc_trailers) {
            guard.share(Shared::Entry {
                variants: head.variants.clone(),
                entry: Arc::clone(&head.entry),
                body: Some(Arc::clone(&transfer)),
            });
        }
        let cache = Arc::clone(self);
        let writes = behind.writes.clone();
        let owner = behind.alive.clone();
        let settling = self.unsettled.enter();
        // Not one of the layer's tasks: the clients may still be reading after the last
        // service is dropped (a `oneshot` call returns before its body is read). It ends with
        // the body, or when nobody reads a body it has no one to store for.
        // Boxed, as `Background::spawn` boxes its tasks: tokio moves a future by value.
        tokio::spawn(Box::pin(async move {
            let driven = transfer::drive(&transfer, body, owner).await;
            cache.finish(&writes, miss, head, driven, guard).await;
            drop(settling);
        }));
        Response::from_parts(parts, CacheBody::shared(reader))
    }

    /// The entry to store, without its body: what waiters check and answer from.
    pub(crate) fn head(
        &self,
        miss: &Miss,
        parts: &response::Parts,
        exact: Option<u64>,
        decision: StoreDecision,
    ) -> Head {
        // The origin's length: its field, or its body's own exact size.
        let declared = declared_length(parts).or(exact);
        let length = declared.and_then(|n| usize::try_from(n).ok());
        let mut strip = decision.strip.clone();
        strip.extend(self.targeted.clone().filter(|_| self.strip_targeted));
        let headers = self.storage_headers(parts, length, false, &strip);
        let stored = StoredResponse {
            status: parts.status,
            headers,
            body: Bytes::new(),
            trailers: None,
            shared_with_credentials: decision.shared_with_credentials,
            must_revalidate: decision.must_revalidate,
            immutable: decision.immutable,
        };
        let tags = || miss.tags.iter().map(String::as_str);
        let (target, variants) = if decision.vary.is_empty() {
            (miss.request.key.clone(), None)
        } else {
            let variant = miss.request.key.variant(
                &decision.vary,
                &miss.request.parts.headers,
                &self.vary_normalizers,
            );
            let list = Entry::variants(
                miss.request.key.full(),
                decision.vary.clone(),
                miss.responded_at,
                decision.lifetime,
            );
            let list = list.with_tags(tags()).requested_at(miss.request.now);
            (variant, Some(Arc::new(list)))
        };
        let entry = Entry::response(
            target.full(),
            stored,
            miss.responded_at,
            decision.lifetime,
            decision.initial_age,
        );
        let entry = Arc::new(entry.with_tags(tags()).requested_at(miss.request.now));
        Head {
            decision,
            target,
            variants,
            entry,
            declared,
            grpc_trailers: false,
        }
    }

    /// Whether the miss is a gRPC call on a gRPC route, whose answer is stored only with
    /// `grpc-status: 0` (errors travel in the trailers of an HTTP 200).
    fn is_grpc_call(&self, miss: &Miss) -> bool {
        let policy = self.policies.get(miss.request.policy);
        policy.query.as_ref().is_some_and(|q| q.grpc) && crate::policy::is_grpc(&miss.request.parts)
    }

    /// The response as the storing decision reads it: its directives (the targeted field's,
    /// RFC 9213, or `Cache-Control`'s), when it came, how long the request took.
    pub(crate) fn received<'a>(&self, miss: &Miss, parts: &'a response::Parts) -> Received<'a> {
        let seed = xxh3_64_with_seed(
            miss.request.key.as_bytes(),
            crate::entry::unix_nanos(miss.responded_at),
        );
        let delay = miss
            .responded_at
            .duration_since(miss.request.now)
            .unwrap_or_default();
        Received::new(
            parts,
            self.targeted.as_ref(),
            miss.responded_at,
            delay,
            seed,
        )
    }

    /// Readies the origin's response to leave for the client (after what is stored was taken
    /// from it): the targeted field removed, `Cache-Status` saying why it went forward, what
    /// the origin answered, and that it was stored (and for how long) or why not.
    pub(crate) fn leaving(
        &self,
        parts: &mut response::Parts,
        forward: Forward,
        stored: Result<Duration, NotStoredReason>,
    ) {
        self.strip_targeted(&mut parts.headers);
        if self.cache_status.is_none() {
            return;
        }
        let status = CacheStatus {
            fwd: Some(forward),
            fwd_status: Some(parts.status.as_u16()),
            stored: stored.is_ok(),
            ttl: stored
                .ok()
                .map(|ttl| i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)),
            detail: stored.err().map(NotStoredReason::as_str),
            ..CacheStatus::default()
        };
        self.status(&mut parts.headers, status);
    }

    /// The fields to store (`semantics::headers_for_storage`), with placeholders for what every
    /// hit sets, so that setting them never grows the map.
    pub(crate) fn storage_headers(
        &self,
        parts: &response::Parts,
        length: Option<usize>,
        has_trailers: bool,
        strip: &[http::HeaderName],
    ) -> HeaderMap {
        let mut headers = semantics::headers_for_storage(parts, length, has_trailers, strip);
        headers.insert(AGE, HeaderValue::from_static("0"));
        self.mark(&mut headers, Disposition::Hit);
        self.status_placeholder(&mut headers);
        headers
    }

    /// After the body: stores the response if it is whole, within the limit and as long as
    /// the origin said; releases the cluster-wide claim either way. The flight (`guard`) stays
    /// joinable until here: a request that came mid-transfer got the body from its first byte;
    /// one that comes while the response is stored gets it only if the store kept it (and
    /// looks the key up again otherwise); from then on, requests find the store's entry.
    async fn finish(
        &self,
        writes: &crate::flow::background::Writes,
        miss: Miss,
        head: Head,
        driven: Driven,
        guard: Option<FlightGuard>,
    ) {
        match driven {
            Driven::Complete { body, trailers } => {
                if head.declared.is_some_and(|n| n != body.len() as u64) {
                    // The origin's body contradicts its own Content-Length: never stored.
                    self.not_stored(NotStoredReason::Incomplete);
                } else if head.grpc_trailers && !grpc_ok(trailers.as_ref()) {
                    self.not_stored(NotStoredReason::GrpcStatus);
                } else if let Some(_permit) = writes.try_acquire() {
                    let storing = match head.grpc_trailers {
                        // Nothing shared yet: the flight's first outcome is the store's.
                        true => guard,
                        false => guard.and_then(FlightGuard::storing),
                    };
                    let (shared, kept) = self.store(&miss, head, body, trailers).await;
                    if let Some(storing) = storing {
                        storing.publish(if kept { shared } else { Shared::LookAgain });
                    }
                } else {
                    self.observe.dropped();
                }
            }
            Driven::TooLarge => {
                self.not_stored(NotStoredReason::TooLarge);
                if miss.request.facts.fills_for_others() && head.decision.vary.is_empty() {
                    self.mark_pass(&miss).await;
                }
            }
            Driven::Failed | Driven::Abandoned => self.not_stored(NotStoredReason::Incomplete),
        }
        if let Some(key) = miss.claim {
            self.store.release_fill(key).await;
        }
    }

    /// Without a runtime to stream from: reads the body, stores it, then answers.
    async fn fill_in_place<B: CachedBody>(
        &self,
        miss: Miss,
        parts: response::Parts,
        body: B,
        head: Head,
        guard: Option<FlightGuard>,
    ) -> Response<CacheBody<B>> {
        let limit = self.policies.get(miss.request.policy).max_body_bytes;
        let (data, trailers) = match read_to_limit(body, limit).await {
            Read::Complete { data, trailers } => (data, trailers),
            Read::Incomplete { body, reason } => {
                self.not_stored(reason);
                if let Some(guard) = guard {
                    guard.publish(Shared::Failed);
                }
                return Response::from_parts(parts, body);
            }
        };
        let shared = if head.declared.is_some_and(|n| n != data.len() as u64) {
            self.not_stored(NotStoredReason::Incomplete);
            Shared::Failed
        } else if head.grpc_trailers && !grpc_ok(trailers.as_ref()) {
            self.not_stored(NotStoredReason::GrpcStatus);
            Shared::Failed
        } else {
            self.store(&miss, head, data.clone(), trailers.clone())
                .await
                .0
        };
        if let Some(guard) = guard {
            guard.publish(shared);
        }
        Response::from_parts(parts, CacheBody::buffered(data, trailers))
    }

    /// Moves the origin's tags from the tag header into `tags` (the header leaves the response
    /// unless configured otherwise). Too many tags, or malformed ones, mean the response is not
    /// stored: an entry missing a tag could outlive an invalidation meant for it.
    fn take_tags(
        &self,
        parts: &mut response::Parts,
        tags: &mut Vec<String>,
    ) -> Result<(), NotStoredReason> {
        match self.take_tag_header(parts) {
            Ok(origin) => {
                tags.extend(origin);
                Ok(())
            }
            Err(bad) => {
                tracing::warn!(?bad, "bad cache tags from the origin; response not stored");
                Err(NotStoredReason::Tags)
            }
        }
    }

    /// Logs why a response was not stored and says what waiters may be given instead. A key
    /// whose responses cannot be shared is marked hit-for-pass, so its requests stop waiting
    /// for each other; the marker is written (and the cluster-wide claim released) off the
    /// response path.
    async fn not_shared(
        self: &Arc<Self>,
        miss: Miss,
        parts: &response::Parts,
        reason: NotStoredReason,
    ) -> Shared {
        self.not_stored(reason);
        let shareable_status = !miss.request.head && !parts.status.is_server_error();
        if !shareable_status || !reason.is_unshareable() {
            self.release_off_path(miss, false).await;
            return Shared::Failed;
        }
        // Unshareable for this request, or for this variant: the others for the key keep
        // what is stored, and waiters ask the origin themselves.
        let mark = miss.request.facts.fills_for_others() && !varies_per_request(parts);
        self.release_off_path(miss, mark).await;
        Shared::Pass
    }

    /// Writes the hit-for-pass marker (when `mark`) and releases the claim, in a task of its
    /// own when there is a runtime.
    async fn release_off_path(self: &Arc<Self>, miss: Miss, mark: bool) {
        if !mark && miss.claim.is_none() {
            return;
        }
        let cache = Arc::clone(self);
        let settling = self.unsettled.enter();
        let task = async move {
            let _settling = settling;
            if mark {
                cache.mark_pass(&miss).await;
            }
            if let Some(key) = miss.claim {
                cache.store.release_fill(key).await;
            }
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            // Short (a write and a release, each bounded by the store's timeouts): it may
            // outlive the layer, as the fill's own task does.
            tokio::spawn(task);
        } else {
            task.await;
        }
    }

    /// Marks the key hit-for-pass for the policy's `hit_for_pass` time, unless an
    /// invalidation overtook the fill.
    async fn mark_pass(&self, miss: &Miss) {
        let ttl = self.policies.get(miss.request.policy).hit_for_pass;
        if ttl.is_zero() {
            return;
        }
        let marker = Entry::pass(miss.request.key.full(), miss.responded_at, ttl)
            .with_tags(miss.tags.iter().map(String::as_str))
            .requested_at(miss.request.now);
        let key = miss.request.key.store_key();
        let writing = self.generations.writing().await;
        if !miss.ticket.overtaken(miss.tags.iter().map(String::as_str)) {
            self.put(key, marker, ttl).await;
            drop(writing);
            self.undo_if_overtaken(miss, &[key]).await;
        }
    }
}

/// Whether the response varies on request fields (`Vary` other than `*`): then one request's
/// variant being unshareable says nothing of the others'.
fn varies_per_request(parts: &response::Parts) -> bool {
    parts
        .headers
        .get_all(http::header::VARY)
        .iter()
        .any(|value| value.as_bytes().trim_ascii() != b"*")
}

/// A body whose `Content-Length` (or exact size) is above the policy's limit is not worth
/// reading into memory. (One whose size is unknown is found too large only once read, after
/// its head left with `Cache-Status: stored`: the intent, which the store then refuses.)
fn within_limit(
    parts: &response::Parts,
    exact: Option<u64>,
    limit: usize,
    decision: StoreDecision,
) -> Result<StoreDecision, NotStoredReason> {
    match declared_length(parts).or(exact) {
        Some(len) if len > limit as u64 => Err(NotStoredReason::TooLarge),
        _ => Ok(decision),
    }
}

fn declared_length(parts: &response::Parts) -> Option<u64> {
    parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// The `grpc-status` of a head or trailers, when there is one.
fn grpc_status(fields: &HeaderMap) -> Option<&[u8]> {
    fields.get("grpc-status").map(HeaderValue::as_bytes)
}

/// Whether a gRPC answer's trailers say it succeeded (`grpc-status: 0`).
fn grpc_ok(trailers: Option<&HeaderMap>) -> bool {
    trailers.and_then(grpc_status) == Some(b"0")
}
