//! Filling the cache from the inner service's response on a miss.

use bytes::Bytes;
use http::header::{AGE, CONTENT_LENGTH, HeaderMap, HeaderValue};
use http::{Response, request, response};
use http_body::Body;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::buffer::{Read, read_to_limit};
use crate::coalesce::Shared;
use crate::config::{Config, Disposition};
use crate::entry::StoredResponse;
use crate::invalidate::{self, FillTicket};
use crate::semantics::{self, RequestFacts, StoreDecision};
use crate::stats::Counters;
use crate::{
    CacheBody, CacheKey, CacheOverride, Entry, NotStoredReason, Policy, PutOutcome, Store, StoreKey,
};

/// What the flow knows about a cacheable request when its response arrives.
pub(crate) struct Miss<'a> {
    pub policy: &'a Policy,
    pub facts: RequestFacts,
    pub key: CacheKey,
    pub head: bool,
    /// The request's headers, for the `Vary` fields of the variant key.
    pub request_headers: HeaderMap,
    /// When the request was sent to the origin.
    pub requested_at: SystemTime,
    /// When the response arrived: entries are timed from here (RFC 9111 §4.2.3).
    pub now: SystemTime,
    /// Started before the origin was called: tells whether an invalidation overtook the fill.
    pub ticket: FillTicket,
    /// The entry's tags so far: the internal ones of its URI; the origin's are added here.
    pub tags: Vec<String>,
    /// The request's head, when the policy derives tags from it.
    pub request: Option<request::Parts>,
}

impl<St: Store + ?Sized, K> Config<St, K> {
    /// Stores the inner service's response when the rules allow, and returns it to the client:
    /// buffered when it was stored (the same `Bytes` as the entry), otherwise passed through.
    /// Also returns what requests waiting for this fetch may be given.
    pub async fn fill<B>(
        &self,
        mut miss: Miss<'_>,
        response: Response<B>,
    ) -> (Response<CacheBody<B>>, Shared)
    where
        B: Body,
        B::Data: Into<Bytes>,
    {
        let (mut parts, body) = response.into_parts();
        let overrides = CacheOverride::take(&mut parts, self.override_header.as_ref());
        self.mark(&mut parts.headers, Disposition::Miss);
        let tagged = self.take_tags(&mut parts, &mut miss.tags).and_then(|()| {
            let (Some(tagger), Some(request)) = (&miss.policy.tag_with, &miss.request) else {
                return Ok(());
            };
            let derived = tagger.0.tags(request, &parts);
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
        let decision = if miss.head {
            Err(NotStoredReason::Head)
        } else {
            let seed = xxh3_64_with_seed(miss.key.as_bytes(), unix_nanos(miss.now));
            let delay = miss
                .now
                .duration_since(miss.requested_at)
                .unwrap_or_default();
            semantics::decide(
                miss.policy,
                miss.facts,
                &parts,
                overrides,
                miss.now,
                delay,
                seed,
            )
        };
        let decision = decision
            .and_then(|d| tagged.map(|()| d))
            .and_then(|d| within_limit(&parts, miss.policy, d));
        let decision = match decision {
            Ok(decision) => decision,
            Err(reason) => {
                let shared = self.not_shared(&miss, &parts, reason).await;
                return (Response::from_parts(parts, CacheBody::origin(body)), shared);
            }
        };
        let (data, trailers) = match read_to_limit(body, miss.policy.max_body_bytes).await {
            Read::Complete { data, trailers } => (data, trailers),
            Read::Incomplete { body, reason } => {
                let shared = self.not_shared(&miss, &parts, reason).await;
                return (Response::from_parts(parts, body), shared);
            }
        };
        let shared = if declared_length(&parts).is_some_and(|n| n != data.len() as u64) {
            // The origin's body contradicts its own Content-Length: pass it on, never store it.
            self.not_shared(&miss, &parts, NotStoredReason::Incomplete)
                .await
        } else {
            self.store(&miss, &parts, decision, data.clone(), trailers.clone())
                .await
        };
        (
            Response::from_parts(parts, CacheBody::buffered(data, trailers)),
            shared,
        )
    }

    /// Moves the origin's tags from the tag header into `tags` (the header leaves the response
    /// unless configured otherwise). Too many tags, or malformed ones, mean the response is not
    /// stored: an entry missing a tag could outlive an invalidation meant for it.
    fn take_tags(
        &self,
        parts: &mut response::Parts,
        tags: &mut Vec<String>,
    ) -> Result<(), NotStoredReason> {
        let Some(name) = &self.tag_header else {
            return Ok(());
        };
        if !parts.headers.contains_key(name) {
            return Ok(());
        }
        let mut origin = Vec::new();
        let parsed = invalidate::parse_tag_header(parts.headers.get_all(name).iter(), &mut origin);
        if !self.keep_tag_header {
            parts.headers.remove(name);
        }
        match parsed {
            Ok(()) => {
                tags.extend(origin);
                Ok(())
            }
            Err(bad) => {
                tracing::warn!(?bad, "bad cache tags from the origin; response not stored");
                Err(NotStoredReason::Tags)
            }
        }
    }

    /// Logs why a response was not stored; remembers a key whose responses cannot be shared
    /// (hit-for-pass), so its requests stop waiting for each other.
    async fn not_shared(
        &self,
        miss: &Miss<'_>,
        parts: &response::Parts,
        reason: NotStoredReason,
    ) -> Shared {
        self.not_stored(reason);
        if miss.head {
            return Shared::Failed;
        }
        if !reason.is_unshareable() || parts.status.is_server_error() {
            return Shared::Failed;
        }
        if !miss.facts.fills_for_others() || varies_per_request(parts) {
            // Unshareable for this request, or for this variant: the others for the key keep
            // what is stored, and waiters ask the origin themselves.
            return Shared::Pass;
        }
        if !miss.policy.hit_for_pass.is_zero() {
            let marker = Entry::pass(miss.key.full(), miss.now, miss.policy.hit_for_pass)
                .with_tags(miss.tags.iter().map(String::as_str))
                .requested_at(miss.requested_at);
            let key = miss.key.store_key();
            let writing = self.generations.writing().await;
            if !miss.ticket.overtaken(miss.tags.iter().map(String::as_str)) {
                self.put(key, marker, miss.policy.hit_for_pass).await;
                drop(writing);
                self.undo_if_overtaken(miss, &[key]).await;
            }
        }
        Shared::Pass
    }

    async fn store(
        &self,
        miss: &Miss<'_>,
        parts: &response::Parts,
        decision: StoreDecision,
        body: Bytes,
        trailers: Option<HeaderMap>,
    ) -> Shared {
        let mut headers = semantics::headers_for_storage(parts, body.len(), trailers.is_some());
        // Placeholders for what every hit sets, so that setting them never grows the map.
        headers.insert(AGE, HeaderValue::from_static("0"));
        self.mark(&mut headers, Disposition::Hit);
        let stored = StoredResponse {
            status: parts.status,
            headers,
            body,
            trailers,
            shared_with_credentials: decision.shared_with_credentials,
        };
        let lifetime = decision.lifetime;
        let ttl = lifetime.storage_ttl();
        let tags = || miss.tags.iter().map(String::as_str);
        let (target, variants) = if decision.vary.is_empty() {
            (miss.key.clone(), None)
        } else {
            let variant = miss.key.variant(&decision.vary, &miss.request_headers);
            let list = Entry::variants(miss.key.full(), decision.vary, miss.now, lifetime);
            (
                variant,
                Some(Arc::new(
                    list.with_tags(tags()).requested_at(miss.requested_at),
                )),
            )
        };
        let entry = Entry::response(
            target.full(),
            stored,
            miss.now,
            lifetime,
            decision.initial_age,
        );
        let entry = Arc::new(entry.with_tags(tags()).requested_at(miss.requested_at));
        // Shared with waiters whatever happens below: it answers the requests that waited for it.
        let shared = Shared::Entry {
            variants: variants.clone(),
            entry: Arc::clone(&entry),
        };
        // From the check to the end of the writes, no invalidation records (`Generations`): it
        // either came before and is seen here, or removes these writes after they are whole.
        let writing = self.generations.writing().await;
        if miss.ticket.overtaken(tags()) {
            tracing::debug!("an invalidation overtook this fill; not stored");
            Counters::add(&self.counters.stores_refused);
            return shared;
        }
        let mut written = Vec::with_capacity(2);
        if let Some(list) = variants {
            // The list first: a reader that finds it before the variant just misses.
            self.put_shared(miss.key.store_key(), list, ttl).await;
            written.push(miss.key.store_key());
        }
        let put = self.put_shared(target.store_key(), entry, ttl).await;
        written.push(target.store_key());
        drop(writing);
        let undone = self.undo_if_overtaken(miss, &written).await;
        match put {
            Some(PutOutcome::Stored) if !undone => Counters::add(&self.counters.stores),
            Some(_) => Counters::add(&self.counters.stores_refused),
            None => {}
        }
        shared
    }

    /// Removes what this fill just wrote if an invalidation came in meanwhile: either it sees
    /// the invalidation's record here, or the invalidation's removal comes after the write.
    async fn undo_if_overtaken(&self, miss: &Miss<'_>, written: &[StoreKey]) -> bool {
        if !miss.ticket.overtaken(miss.tags.iter().map(String::as_str)) {
            return false;
        }
        for key in written {
            if let Err(error) = self.store.remove(*key).await {
                Counters::add(&self.counters.store_errors);
                tracing::warn!(%error, "could not remove an overtaken fill");
            }
        }
        true
    }

    async fn put(&self, key: StoreKey, entry: Entry, ttl: Duration) -> Option<PutOutcome> {
        self.put_shared(key, Arc::new(entry), ttl).await
    }

    /// What the store did with the entry; `None` when it failed (counted as a store error).
    async fn put_shared(
        &self,
        key: StoreKey,
        entry: Arc<Entry>,
        ttl: Duration,
    ) -> Option<PutOutcome> {
        match self.store.put(key, entry, ttl).await {
            Ok(outcome) => Some(outcome),
            Err(error) => {
                Counters::add(&self.counters.store_errors);
                tracing::warn!(%error, "cache store put failed; response not stored");
                None
            }
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

/// A `Content-Length` above the policy's limit is not worth reading into memory.
fn within_limit(
    parts: &response::Parts,
    policy: &Policy,
    decision: StoreDecision,
) -> Result<StoreDecision, NotStoredReason> {
    match declared_length(parts) {
        Some(len) if len > policy.max_body_bytes as u64 => Err(NotStoredReason::TooLarge),
        _ => Ok(decision),
    }
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn declared_length(parts: &response::Parts) -> Option<u64> {
    parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}
