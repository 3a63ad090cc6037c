//! [`Cache`]: the shared state of one cache (store, policies, coalescing flights,
//! fill generations, counters), held by its layer and every service built from it; with the
//! operations on that state: invalidate, clear, mark.

use http::{HeaderMap, HeaderName, HeaderValue};
use std::sync::Arc;
use std::time::SystemTime;

use crate::flow::coalesce::Flights;
use crate::invalidate::unapplied::Unapplied;
use crate::invalidate::{self, Generations};
use crate::observe::{Invalidation, Observer, StoreOp};
use crate::policy::Policies;
use crate::purge::token::PurgeToken;
use crate::semantics::CacheStatus;
use crate::{BypassReason, NotStoredReason, VaryNormalizer};

/// The shared state of one cache: store, policies, header names, flights, generations,
/// counters. One per layer; every service the layer builds holds it.
pub(crate) struct Cache<St: ?Sized> {
    pub store: Arc<St>,
    pub policies: Policies,
    /// `X-Cache` (or the configured name), or none.
    pub cache_header: Option<HeaderName>,
    /// This cache's name in `Cache-Status` (RFC 9211); none: no field.
    pub cache_status: Option<StatusName>,
    /// The targeted cache-control field this cache follows (RFC 9213), if any.
    pub targeted: Option<HeaderName>,
    /// Whether the targeted field is removed from responses (it is by default).
    pub strip_targeted: bool,
    /// How the values of request fields responses vary on are normalised, by field.
    pub vary_normalizers: Arc<Vec<(HeaderName, VaryNormalizer)>>,
    /// The per-response override header, or none.
    pub override_header: Option<HeaderName>,
    /// Where every count goes (stats, metrics, events).
    pub observe: Arc<Observer>,
    /// Fetches in flight, for coalescing.
    pub flights: Arc<Flights>,
    /// Fill generations, so that invalidated data is never written back.
    pub generations: Arc<Generations>,
    /// Invalidations the store did not take: hidden from lookups, retried.
    pub unapplied: Arc<Unapplied>,
    /// The response header carrying tags (`cache-tag` by default), or none.
    pub tag_header: Option<HeaderName>,
    /// Whether the tag header is passed on to clients (it is removed by default).
    pub keep_tag_header: bool,
    /// When set, `PURGE` requests with this bearer token invalidate their URI.
    pub purge_token: Option<PurgeToken>,
    /// Writes still pending behind responses already returned.
    pub unsettled: Arc<crate::flow::background::Unsettled>,
    /// Tells this configuration's answers apart from any other's (a new one for every cache
    /// made or configured): what a hit's memoized head was made by (`entry/memo.rs`).
    pub answer_id: u64,
}

/// A new [`Cache::answer_id`].
pub(crate) fn next_answer_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

// Manual: the derive would require `St: Clone`, but the store is behind an `Arc`.
impl<St: ?Sized> Clone for Cache<St> {
    fn clone(&self) -> Self {
        Cache {
            store: Arc::clone(&self.store),
            policies: self.policies.clone(),
            cache_header: self.cache_header.clone(),
            cache_status: self.cache_status.clone(),
            targeted: self.targeted.clone(),
            strip_targeted: self.strip_targeted,
            vary_normalizers: Arc::clone(&self.vary_normalizers),
            override_header: self.override_header.clone(),
            observe: Arc::clone(&self.observe),
            flights: Arc::clone(&self.flights),
            generations: Arc::clone(&self.generations),
            unapplied: Arc::clone(&self.unapplied),
            tag_header: self.tag_header.clone(),
            keep_tag_header: self.keep_tag_header,
            purge_token: self.purge_token.clone(),
            unsettled: Arc::clone(&self.unsettled),
            // The same configuration; `CacheLayer::configure`, the one place that changes
            // one, gives the changed cache a new id.
            answer_id: self.answer_id,
        }
    }
}

/// This cache's name in `Cache-Status`, as written there, and what its hits' members start
/// with (made once).
#[derive(Clone, Debug)]
pub(crate) struct StatusName {
    pub name: Box<str>,
    pub hit_prefix: Box<str>,
}

impl StatusName {
    /// `name`, already in its written form (a token, or a quoted string).
    pub(crate) fn new(name: String) -> Self {
        StatusName {
            hit_prefix: crate::semantics::hit_prefix(&name),
            name: name.into_boxed_str(),
        }
    }
}

/// The `Cache-Status` field (RFC 9211).
pub(crate) const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// What the cache did with a request, as the `X-Cache` header says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Disposition {
    Hit,
    /// Served stale (stale-while-revalidate, or stale-if-error).
    Stale,
    Miss,
    Bypass,
}

impl<St: ?Sized> Cache<St> {
    /// Sets the `X-Cache` header, if configured.
    pub(crate) fn mark(&self, headers: &mut HeaderMap, disposition: Disposition) {
        if let Some(name) = &self.cache_header {
            let value = match disposition {
                Disposition::Hit => "HIT",
                Disposition::Stale => "STALE",
                Disposition::Miss => "MISS",
                Disposition::Bypass => "BYPASS",
            };
            headers.insert(name.clone(), HeaderValue::from_static(value));
        }
    }

    /// The tags the origin names in the tag header (none without one), taken out of the
    /// response unless configured to pass it on. `Err` names the malformed or surplus ones.
    pub(crate) fn take_tag_header(
        &self,
        response: &mut http::response::Parts,
    ) -> Result<Vec<String>, invalidate::BadTags> {
        let mut tags = Vec::new();
        let Some(name) = &self.tag_header else {
            return Ok(tags);
        };
        let parsed = if response.headers.contains_key(name) {
            invalidate::parse_tag_header(response.headers.get_all(name).iter(), &mut tags)
        } else {
            Ok(())
        };
        self.strip_tag_header(&mut response.headers);
        parsed.map(|()| tags)
    }

    /// Removes the tag header, unless configured to pass it on.
    pub(crate) fn strip_tag_header(&self, headers: &mut HeaderMap) {
        if let Some(name) = self.tag_header.as_ref().filter(|_| !self.keep_tag_header) {
            headers.remove(name);
        }
    }

    /// Appends this cache's member to `Cache-Status`, if configured.
    pub(crate) fn status(&self, headers: &mut HeaderMap, status: CacheStatus) {
        if let Some(name) = &self.cache_status {
            headers.append(CACHE_STATUS, status.value(&name.name));
        }
    }

    /// Appends a placeholder for this cache's member to stored fields (after the origin's
    /// members), so that an answer from the entry replaces it in place
    /// ([`restate`](Self::restate)): a cloned map has no room to grow into.
    pub(crate) fn status_placeholder(&self, headers: &mut HeaderMap) {
        if self.cache_status.is_some() {
            headers.append(CACHE_STATUS, HeaderValue::from_static("-"));
        }
    }

    /// Stored fields without this cache's placeholder (the last `Cache-Status` member), for
    /// a head built anew from them.
    pub(crate) fn without_placeholder(&self, stored: &HeaderMap) -> HeaderMap {
        let mut headers = stored.clone();
        if self.cache_status.is_some() {
            let members: Vec<HeaderValue> = headers.get_all(CACHE_STATUS).iter().cloned().collect();
            headers.remove(CACHE_STATUS);
            for member in &members[..members.len().saturating_sub(1)] {
                headers.append(CACHE_STATUS, member.clone());
            }
        }
        headers
    }

    /// Stored fields as the origin sent them: without what the cache keeps there for its hits
    /// (`Age`, the `X-Cache` field, the `Cache-Status` placeholder). For inspection.
    pub(crate) fn origin_fields(&self, stored: &HeaderMap) -> HeaderMap {
        let mut headers = self.without_placeholder(stored);
        headers.remove(http::header::AGE);
        if let Some(name) = &self.cache_header {
            headers.remove(name);
        }
        headers
    }

    /// Sets this cache's member in an answer from a stored entry: in place of the
    /// placeholder, the field's last member (appended when there is none).
    pub(crate) fn restate(&self, headers: &mut HeaderMap, value: HeaderValue) {
        match headers.entry(CACHE_STATUS) {
            http::header::Entry::Occupied(mut field) => match field.iter_mut().last() {
                Some(last) => *last = value,
                None => {
                    field.append(value);
                }
            },
            http::header::Entry::Vacant(field) => {
                field.insert(value);
            }
        }
    }

    /// Removes the targeted field (RFC 9213) from a response, unless configured to keep it.
    pub(crate) fn strip_targeted(&self, headers: &mut HeaderMap) {
        if let Some(name) = self.targeted.as_ref().filter(|_| self.strip_targeted) {
            headers.remove(name);
        }
    }

    /// A request that did not use the cache (its route chosen anew: bypasses only).
    pub(crate) fn bypassed(&self, parts: &http::request::Parts, reason: BypassReason) {
        let route = self.policies.select(parts);
        self.observe.bypassed(self.policies.counters(route), reason);
    }

    pub(crate) fn not_stored(&self, reason: NotStoredReason) {
        self.observe.not_stored(reason);
    }
}

impl<St: crate::Store + ?Sized> Cache<St> {
    /// A handle on this cache's counters and its store's figures.
    pub(crate) fn stats(&self) -> crate::CacheStats {
        let store = Arc::clone(&self.store);
        crate::CacheStats {
            observer: Arc::clone(&self.observe),
            store: Arc::new(move || store.metrics()),
        }
    }

    /// Publishes the store's figures to the metrics if a second has passed since the last
    /// time (`observe/publish.rs`). Called where the clock is read anyway, never on a hit
    /// that is not timed.
    #[inline]
    pub(crate) fn publish_if_due(&self) {
        #[cfg(feature = "metrics")]
        self.publish_if_due_at(std::time::Instant::now());
    }

    /// [`publish_if_due`](Self::publish_if_due), the clock read already.
    #[inline]
    pub(crate) fn publish_if_due_at(&self, now: std::time::Instant) {
        #[cfg(feature = "metrics")]
        if self.observe.publish_due(now) {
            crate::observe::publish::publish(&*self.store);
        }
        let _ = now;
    }

    /// A store operation failed: counted under the store's name, logged.
    pub(crate) fn store_error(&self, op: StoreOp, error: &crate::StoreError) {
        self.observe.store_error(self.store.name(), op, error);
    }

    /// Invalidates every entry carrying one of `tags`: recorded first (so that fills in
    /// progress do not write back), then removed from the store. Store errors are logged and
    /// counted, and the invalidation is remembered: hidden from this instance's lookups at
    /// once and retried until the store takes it (see `unapplied.rs`). The count of removed
    /// entries is returned.
    pub(crate) async fn invalidate(&self, kind: Invalidation, tags: &[&str]) -> u64 {
        if tags.is_empty() {
            return 0;
        }
        let (at, mark) = (SystemTime::now(), self.unapplied.mark());
        self.generations
            .record_when_clear(tags.iter().copied())
            .await;
        self.flights.detach(tags);
        let removed = match self.store.invalidate_tags(tags).await {
            Ok(removed) => {
                self.unapplied.applied_tags(tags, mark);
                removed
            }
            Err(error) => {
                self.store_error(StoreOp::Invalidate, &error);
                tracing::warn!("the invalidation is retried until the store takes it");
                self.unapplied.remember_tags(tags, at);
                0
            }
        };
        self.observe.invalidated(kind, tags, removed);
        self.publish_if_due();
        self.unapplied.retry_pending(&self.store).await;
        removed
    }

    /// Removes every entry, and records it so that fills in progress do not write back.
    /// Returns how many entries the store removed. A clear the store does not take is
    /// remembered as [`invalidate`](Self::invalidate) says.
    pub(crate) async fn clear(&self, kind: Invalidation) -> u64 {
        let (at, mark) = (SystemTime::now(), self.unapplied.mark());
        self.generations.record_everything_when_clear().await;
        self.flights.detach_all();
        let removed = match self.store.clear().await {
            Ok(removed) => {
                self.unapplied.applied_everything(mark);
                removed
            }
            Err(error) => {
                self.store_error(StoreOp::Clear, &error);
                tracing::warn!("the clear is retried until the store takes it");
                self.unapplied.remember_everything(at);
                0
            }
        };
        self.observe.invalidated(kind, &["*"], removed);
        self.publish_if_due();
        self.unapplied.retry_pending(&self.store).await;
        removed
    }
}
