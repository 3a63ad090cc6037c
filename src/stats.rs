//! A stats handle: counters readable at any time.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::store::StoreMetrics;

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub bypasses: AtomicU64,
    pub stores: AtomicU64,
    pub stores_refused: AtomicU64,
    pub stores_dropped: AtomicU64,
    pub store_errors: AtomicU64,
    pub stale: AtomicU64,
    pub coalesced: AtomicU64,
    pub revalidated: AtomicU64,
    pub refreshes: AtomicU64,
    pub invalidations: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    /// A request counted as a miss when it was looked up is answered stale after all (its
    /// stale-if-error entry stood in for the origin): it moves from `misses` to `stale`, so that
    /// it is counted once.
    /// A request counted as a miss whose fetch revalidated a stored response instead.
    pub(crate) fn miss_revalidated(&self) {
        self.revalidated.fetch_add(1, Relaxed);
        self.unmiss();
    }

    pub(crate) fn miss_answered_stale(&self) {
        self.stale.fetch_add(1, Relaxed);
        self.unmiss();
    }

    /// One miss less, never below zero: a leader answered stale whose fetch then revalidates
    /// is moved out of the misses twice.
    fn unmiss(&self) {
        let _ = self
            .misses
            .fetch_update(Relaxed, Relaxed, |misses| misses.checked_sub(1));
    }
}

/// A cheap-to-clone handle on a cache's counters (from [`CacheLayer::stats`](crate::CacheLayer::stats)).
#[derive(Clone)]
pub struct CacheStats {
    pub(crate) counters: Arc<Counters>,
    pub(crate) store: Arc<dyn Fn() -> StoreMetrics + Send + Sync>,
}

impl CacheStats {
    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let store = (self.store)();
        StatsSnapshot {
            hits: self.counters.hits.load(Relaxed),
            misses: self.counters.misses.load(Relaxed),
            bypasses: self.counters.bypasses.load(Relaxed),
            stores: self.counters.stores.load(Relaxed),
            stores_refused: self.counters.stores_refused.load(Relaxed),
            stores_dropped: self.counters.stores_dropped.load(Relaxed),
            store_errors: self.counters.store_errors.load(Relaxed),
            stale: self.counters.stale.load(Relaxed),
            coalesced: self.counters.coalesced.load(Relaxed),
            revalidated: self.counters.revalidated.load(Relaxed),
            refreshes: self.counters.refreshes.load(Relaxed),
            invalidations: self.counters.invalidations.load(Relaxed),
            evictions: store.evictions,
            entries: store.entries,
            weighted_bytes: store.weighted_bytes,
            shared_entries: store.shared_entries,
        }
    }
}

impl fmt::Debug for CacheStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.snapshot().fmt(f)
    }
}

/// The counters at one moment.
///
/// Every request the cache sees is either a bypass (it did not use the cache) or a cacheable
/// request, looked up in the store; each cacheable request is counted exactly once among `hits`,
/// `stale` and `misses`. `coalesced` is the part of `misses` answered without an origin call
/// of their own. Figures about the store's contents come from
/// [`Store::metrics`](crate::Store::metrics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StatsSnapshot {
    /// Cacheable requests answered with a fresh stored response.
    pub hits: u64,
    /// Cacheable requests answered neither fresh nor stale from the store: they went to the
    /// inner service, or waited for another request's fetch (see `coalesced`).
    pub misses: u64,
    /// Requests that did not use the cache at all (see [`BypassReason`](crate::BypassReason)).
    pub bypasses: u64,
    /// Responses stored, and kept: the store accepted them, and no invalidation overtook
    /// their fill.
    pub stores: u64,
    /// Responses not stored because an invalidation overtook their fill: seen by this
    /// instance (before the put, or just after it, when the entry is removed again), or by the
    /// store (a `RedisStore` refuses a fill that an invalidation on any instance overtook), and
    /// responses the store would not take ([`PutOutcome::TooLarge`](crate::PutOutcome::TooLarge)).
    pub stores_refused: u64,
    /// Responses not stored because too many store writes were already pending (a slow or
    /// stalled store; see [`CacheLayer::max_pending_writes`](crate::CacheLayer::max_pending_writes)).
    /// Their clients were answered all the same.
    pub stores_dropped: u64,
    /// Store operations that failed (the request was still answered, by the inner service).
    pub store_errors: u64,
    /// Cacheable requests answered with a stale response: within stale-while-revalidate, or
    /// standing in for a failed or slow origin (stale-if-error).
    pub stale: u64,
    /// Misses answered with the response another request fetched (no origin call of their
    /// own), in this instance or, with cluster-wide coalescing, another one.
    pub coalesced: u64,
    /// Requests answered with a stored response the origin confirmed (`304 Not Modified` to
    /// the cache's `If-None-Match` / `If-Modified-Since`, RFC 9111 §4.3): an origin call, but
    /// no body sent. Not counted among the misses.
    pub revalidated: u64,
    /// Background refreshes started (stale-while-revalidate and refresh-ahead).
    pub refreshes: u64,
    /// Invalidations done (by a write passing through, a purge, or the handle).
    pub invalidations: u64,
    /// Entries the memory tier dropped to stay within its capacity.
    pub evictions: u64,
    /// Entries held in this process's memory (a memory store, or a tiered store's memory
    /// tier; 0 for a Redis store alone). See [`StoreMetrics`].
    pub entries: u64,
    /// Bytes those entries cost, as the store weighs them ([`Entry::weight`](crate::Entry::weight)
    /// plus the memory store's own structures for each entry and tag).
    pub weighted_bytes: u64,
    /// Live entries in the shared tier (a Redis store, or a tiered store's Redis tier), shared
    /// by every instance; `None` without one (or before it was first counted). See
    /// [`StoreMetrics::shared_entries`].
    pub shared_entries: Option<u64>,
}

impl StatsSnapshot {
    /// The share of cacheable requests answered from the cache: hits, stale answers and
    /// coalesced misses, over hits, stale answers, misses and revalidations. 0 when there
    /// were none.
    pub fn hit_ratio(&self) -> f64 {
        let cacheable = self.hits + self.stale + self.misses + self.revalidated;
        if cacheable == 0 {
            0.0
        } else {
            (self.hits + self.stale + self.coalesced) as f64 / cacheable as f64
        }
    }
}
