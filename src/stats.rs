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
    pub store_errors: AtomicU64,
    pub stale: AtomicU64,
    pub coalesced: AtomicU64,
    pub refreshes: AtomicU64,
    pub invalidations: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
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
            store_errors: self.counters.store_errors.load(Relaxed),
            stale: self.counters.stale.load(Relaxed),
            coalesced: self.counters.coalesced.load(Relaxed),
            refreshes: self.counters.refreshes.load(Relaxed),
            invalidations: self.counters.invalidations.load(Relaxed),
            evictions: store.evictions,
            entries: store.entries,
            weighted_bytes: store.weighted_bytes,
        }
    }
}

impl fmt::Debug for CacheStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.snapshot().fmt(f)
    }
}

/// The counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StatsSnapshot {
    /// Requests answered from the cache.
    pub hits: u64,
    /// Requests looked up and not found (or not fresh); they went to the inner service or waited
    /// for another request's fetch (see `coalesced`).
    pub misses: u64,
    /// Requests that did not use the cache at all (see [`BypassReason`](crate::BypassReason)).
    pub bypasses: u64,
    /// Responses stored.
    pub stores: u64,
    /// Store operations that failed (the request was still answered, by the inner service).
    pub store_errors: u64,
    /// Requests answered with a stale response (stale-while-revalidate or stale-if-error).
    pub stale: u64,
    /// Missed requests answered with the response another request fetched (no origin call).
    pub coalesced: u64,
    /// Background refreshes started (stale-while-revalidate and refresh-ahead).
    pub refreshes: u64,
    /// Invalidations done (by a write passing through, a purge, or the handle).
    pub invalidations: u64,
    /// Entries the store dropped to stay within its capacity.
    pub evictions: u64,
    /// Entries in the store (approximate for the memory store).
    pub entries: u64,
    /// Bytes the store accounts for (approximate for the memory store).
    pub weighted_bytes: u64,
}

impl StatsSnapshot {
    /// hits / (hits + misses), or 0 when there were none.
    pub fn hit_ratio(&self) -> f64 {
        let looked_up = self.hits + self.misses;
        if looked_up == 0 {
            0.0
        } else {
            self.hits as f64 / looked_up as f64
        }
    }
}
