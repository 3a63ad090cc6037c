//! A stats handle: the counts the cache keeps (`observe/`), readable at any time.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use crate::observe::{Invalidation, Observer, Outcome};
use crate::store::{BreakerState, StoreMetrics};
use crate::{BypassReason, NotStoredReason};

/// A cheap-to-clone handle on a cache's counters (from [`CacheLayer::stats`](crate::CacheLayer::stats)).
#[derive(Clone)]
pub struct CacheStats {
    pub(crate) observer: Arc<Observer>,
    pub(crate) store: Arc<dyn Fn() -> StoreMetrics + Send + Sync>,
}

impl CacheStats {
    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let store = (self.store)();
        let mut outcomes = [0; Outcome::ALL.len()];
        for (_, counts) in self.observer.routes.totals() {
            for (total, count) in outcomes.iter_mut().zip(counts) {
                *total += count;
            }
        }
        let counts = &self.observer.counts;
        let refreshes = counts.refreshes.load();
        let invalidations = counts.invalidations.load();
        StatsSnapshot {
            hits: outcomes[Outcome::Hit as usize],
            misses: outcomes[Outcome::Miss as usize],
            bypasses: outcomes[Outcome::Bypass as usize],
            passes: outcomes[Outcome::Pass as usize],
            stores: counts.stores.load(Relaxed),
            stores_refused: counts.stores_refused.load(Relaxed),
            stores_dropped: counts.stores_dropped.load(Relaxed),
            store_errors: counts.store_errors.load(Relaxed),
            stale: outcomes[Outcome::Stale as usize],
            coalesced: counts.coalesced.load(Relaxed),
            in_flight: counts.in_flight.load(Relaxed),
            revalidated: outcomes[Outcome::Revalidated as usize],
            refreshes: refreshes[0] + refreshes[1],
            refresh_failures: refreshes[2],
            invalidations: invalidations.iter().sum(),
            evictions: store.evictions,
            expirations: store.expirations,
            entries: store.entries,
            weighted_bytes: store.weighted_bytes,
            shared_entries: store.shared_entries,
            shared_bytes: store.shared_bytes,
            breaker: store.breaker,
            bypass_reasons: counts.bypass_reasons.load(),
            not_stored: counts.not_stored.load(),
            invalidation_kinds: invalidations,
        }
    }

    /// The request outcomes of each route: one per route pattern given to the layer (its
    /// pattern as written), and `default` for requests no route matched, in that order.
    pub fn routes(&self) -> Vec<RouteStats> {
        self.observer
            .routes
            .totals()
            .into_iter()
            .map(|(route, counts)| RouteStats {
                route,
                hits: counts[Outcome::Hit as usize],
                stale: counts[Outcome::Stale as usize],
                misses: counts[Outcome::Miss as usize],
                bypasses: counts[Outcome::Bypass as usize],
                passes: counts[Outcome::Pass as usize],
                revalidated: counts[Outcome::Revalidated as usize],
            })
            .collect()
    }
}

impl fmt::Debug for CacheStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.snapshot().fmt(f)
    }
}

/// One route's request outcomes (see [`CacheStats::routes`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RouteStats {
    /// The route's pattern as given to [`CacheLayer::route`](crate::CacheLayer::route), or
    /// `default`.
    pub route: String,
    /// See [`StatsSnapshot::hits`].
    pub hits: u64,
    /// See [`StatsSnapshot::stale`].
    pub stale: u64,
    /// See [`StatsSnapshot::misses`].
    pub misses: u64,
    /// See [`StatsSnapshot::bypasses`].
    pub bypasses: u64,
    /// See [`StatsSnapshot::passes`].
    pub passes: u64,
    /// See [`StatsSnapshot::revalidated`].
    pub revalidated: u64,
}

/// The counters at one moment.
///
/// Every request the cache sees is either a bypass (it did not use the cache) or a cacheable
/// request, looked up in the store; each cacheable request is counted exactly once, when it
/// is answered, among `hits`, `stale`, `misses`, `passes` and `revalidated`. `coalesced` is
/// the part of `misses` answered without an origin call of their own. Figures about the store's contents come from
/// [`Store::metrics`](crate::Store::metrics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StatsSnapshot {
    /// Cacheable requests whose key is marked hit-for-pass (its last response could not be
    /// shared): sent to the origin directly, nobody waiting for anybody.
    pub passes: u64,
    /// Cacheable requests on their way to the origin, or waiting for another request's
    /// fetch, now: counted among the outcomes once answered.
    pub in_flight: u64,
    /// Background refreshes that failed (the origin erred; the stored response stays).
    pub refresh_failures: u64,
    /// Entries the memory tier dropped because their lifetime ran out.
    pub expirations: u64,
    /// Bytes of the shared tier's live entries, when it has counted them (see
    /// [`StoreMetrics::shared_bytes`]).
    pub shared_bytes: Option<u64>,
    /// The shared tier's circuit breaker, when it has one.
    pub breaker: Option<BreakerState>,
    bypass_reasons: [u64; BypassReason::ALL.len()],
    not_stored: [u64; NotStoredReason::ALL.len()],
    invalidation_kinds: [u64; Invalidation::ALL.len()],
    /// Cacheable requests answered with a fresh stored response.
    pub hits: u64,
    /// Cacheable requests answered neither fresh nor stale from the store: they went to the
    /// inner service, or waited for another request's fetch (see `coalesced`). Requests the
    /// origin answered with `304` for a stored response are `revalidated` instead, and those
    /// answered stale because the origin failed are `stale`.
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
    /// Requests that bypassed the cache for `reason`.
    pub fn bypasses_for(&self, reason: BypassReason) -> u64 {
        self.bypass_reasons[reason as usize]
    }

    /// Responses not stored for `reason`.
    pub fn not_stored_for(&self, reason: NotStoredReason) -> u64 {
        self.not_stored[reason as usize]
    }

    /// Each bypass reason seen, with its count (most frequent first).
    pub fn bypass_reasons(&self) -> Vec<(BypassReason, u64)> {
        ranked(&BypassReason::ALL, &self.bypass_reasons)
    }

    /// Each not-stored reason seen, with its count (most frequent first).
    pub fn not_stored_reasons(&self) -> Vec<(NotStoredReason, u64)> {
        ranked(&NotStoredReason::ALL, &self.not_stored)
    }

    /// Invalidations by what asked for them (`write`, `tag`, `uri`, `prefix`, `purge`,
    /// `clear`), those done at least once.
    pub fn invalidations_by_kind(&self) -> Vec<(&'static str, u64)> {
        Invalidation::ALL
            .iter()
            .zip(self.invalidation_kinds)
            .filter(|(_, n)| *n > 0)
            .map(|(kind, n)| (kind.as_str(), n))
            .collect()
    }

    /// The share of cacheable requests answered from the cache: hits, stale answers and
    /// coalesced misses, over hits, stale answers, misses, passes and revalidations. 0 when there
    /// were none.
    pub fn hit_ratio(&self) -> f64 {
        let cacheable = self.hits + self.stale + self.misses + self.passes + self.revalidated;
        if cacheable == 0 {
            0.0
        } else {
            (self.hits + self.stale + self.coalesced) as f64 / cacheable as f64
        }
    }
}

/// The values whose count is not zero, most frequent first.
fn ranked<T: Copy>(values: &[T], counts: &[u64]) -> Vec<(T, u64)> {
    let mut seen: Vec<(T, u64)> = values
        .iter()
        .zip(counts)
        .filter(|(_, n)| **n > 0)
        .map(|(v, n)| (*v, *n))
        .collect();
    seen.sort_by_key(|seen| std::cmp::Reverse(seen.1));
    seen
}
