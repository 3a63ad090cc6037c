//! Filling the cache from the inner service's response on a miss.

use bytes::Bytes;
use http::header::{AGE, CONTENT_LENGTH, HeaderMap, HeaderValue};
use http::{Response, response};
use http_body::Body;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::buffer::{Read, read_to_limit};
use crate::coalesce::Shared;
use crate::config::{Config, Disposition};
use crate::entry::StoredResponse;
use crate::semantics::{self, RequestFacts, StoreDecision};
use crate::stats::Counters;
use crate::{CacheBody, CacheKey, CacheOverride, Entry, NotStoredReason, Policy, Store, StoreKey};

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
}

impl<St: Store + ?Sized, K> Config<St, K> {
    /// Stores the inner service's response when the rules allow, and returns it to the client:
    /// buffered when it was stored (the same `Bytes` as the entry), otherwise passed through.
    /// Also returns what requests waiting for this fetch may be given.
    pub async fn fill<B>(
        &self,
        miss: Miss<'_>,
        response: Response<B>,
    ) -> (Response<CacheBody<B>>, Shared)
    where
        B: Body,
        B::Data: Into<Bytes>,
    {
        let (mut parts, body) = response.into_parts();
        let overrides = CacheOverride::take(&mut parts, self.override_header.as_ref());
        self.mark(&mut parts.headers, Disposition::Miss);
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
        let decision = match decision.and_then(|d| within_limit(&parts, miss.policy, d)) {
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
        if !miss.policy.hit_for_pass.is_zero() {
            let marker = Entry::pass(miss.key.full(), miss.now, miss.policy.hit_for_pass);
            self.put(miss.key.store_key(), marker, miss.policy.hit_for_pass)
                .await;
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
        let (target, variants) = if decision.vary.is_empty() {
            (miss.key.clone(), None)
        } else {
            let variant = miss.key.variant(&decision.vary, &miss.request_headers);
            let list = Arc::new(Entry::variants(
                miss.key.full(),
                decision.vary,
                miss.now,
                lifetime,
            ));
            // The list first: a reader that finds it before the variant just misses.
            self.put_shared(miss.key.store_key(), Arc::clone(&list), ttl)
                .await;
            (variant, Some(list))
        };
        let entry = Arc::new(Entry::response(
            target.full(),
            stored,
            miss.now,
            lifetime,
            decision.initial_age,
        ));
        if self
            .put_shared(target.store_key(), Arc::clone(&entry), ttl)
            .await
        {
            Counters::add(&self.counters.stores);
        }
        // Shared with waiters even if the store failed: the response is good.
        Shared::Entry { variants, entry }
    }

    async fn put(&self, key: StoreKey, entry: Entry, ttl: Duration) -> bool {
        self.put_shared(key, Arc::new(entry), ttl).await
    }

    async fn put_shared(&self, key: StoreKey, entry: Arc<Entry>, ttl: Duration) -> bool {
        match self.store.put(key, entry, ttl).await {
            Ok(()) => true,
            Err(error) => {
                Counters::add(&self.counters.store_errors);
                tracing::warn!(%error, "cache store put failed; response not stored");
                false
            }
        }
    }
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
