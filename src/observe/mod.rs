//! Every count the cache keeps goes through here: one call feeds [`CacheStats`] and, with the
//! `metrics` feature, the `metrics` facade, and writes the tracing event beside it.
//!
//! - `routes.rs`: the per-route request outcomes (a route is a policy's pattern, never a path);
//! - `striped.rs`: counters each thread adds to on a cache line of its own (the hit path's);
//! - `metrics.rs`: the facade's handles, registered once (the hit path increments, never looks up);
//! - `publish.rs`: the store's figures copied to gauges, at most once a second;
//! - `span.rs`: the span of one request (target `tower_response_cache`, level `DEBUG`).
//!
//! [`CacheStats`]: crate::CacheStats

#[cfg(feature = "metrics")]
pub(crate) mod metrics;
#[cfg(feature = "metrics")]
pub(crate) mod publish;
pub(crate) mod routes;
pub(crate) mod span;
mod striped;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use crate::{BypassReason, NotStoredReason, StoreError};
pub(crate) use routes::{RouteCounters, Routes};

/// What became of a request, once, when it was answered: the `outcome` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A fresh stored response.
    Hit,
    /// A stale stored response (stale-while-revalidate, or standing in for a failed origin).
    Stale,
    /// Fetched from the origin, or taken from another request's fetch.
    Miss,
    /// The cache was not consulted ([`BypassReason`]).
    Bypass,
    /// The key is marked hit-for-pass: fetched directly, not stored.
    Pass,
    /// A stored response the origin confirmed (`304`).
    Revalidated,
}

impl Outcome {
    pub(crate) const ALL: [Outcome; 6] = [
        Outcome::Hit,
        Outcome::Stale,
        Outcome::Miss,
        Outcome::Bypass,
        Outcome::Pass,
        Outcome::Revalidated,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::Stale => "stale",
            Outcome::Miss => "miss",
            Outcome::Bypass => "bypass",
            Outcome::Pass => "pass",
            Outcome::Revalidated => "revalidated",
        }
    }
}

/// What asked for an invalidation: the `kind` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Invalidation {
    /// A write (POST, PUT, ...) that passed through and succeeded.
    Write,
    /// [`CacheHandle::invalidate_tags`](crate::CacheHandle::invalidate_tags).
    Tag,
    /// [`CacheHandle::invalidate_uri`](crate::CacheHandle::invalidate_uri).
    Uri,
    /// [`CacheHandle::invalidate_prefix`](crate::CacheHandle::invalidate_prefix).
    Prefix,
    /// The purge endpoint or the `PURGE` method.
    Purge,
    /// [`CacheHandle::clear`](crate::CacheHandle::clear).
    Clear,
}

impl Invalidation {
    pub(crate) const ALL: [Invalidation; 6] = [
        Invalidation::Write,
        Invalidation::Tag,
        Invalidation::Uri,
        Invalidation::Prefix,
        Invalidation::Purge,
        Invalidation::Clear,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Invalidation::Write => "write",
            Invalidation::Tag => "tag",
            Invalidation::Uri => "uri",
            Invalidation::Prefix => "prefix",
            Invalidation::Purge => "purge",
            Invalidation::Clear => "clear",
        }
    }
}

/// Which background refresh: the `kind` label (failures are `error`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refresh {
    /// A stale response served within stale-while-revalidate.
    Swr,
    /// A fresh response past its refresh-ahead point.
    Ahead,
}

impl Refresh {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Refresh::Swr => "swr",
            Refresh::Ahead => "ahead",
        }
    }
}

/// A store operation, for the `op` label of store errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StoreOp {
    Get,
    Put,
    Remove,
    Invalidate,
    Clear,
}

impl StoreOp {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            StoreOp::Get => "get",
            StoreOp::Put => "put",
            StoreOp::Remove => "remove",
            StoreOp::Invalidate => "invalidate",
            StoreOp::Clear => "clear",
        }
    }
}

/// What an origin call was for: the `outcome` label of the origin duration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OriginCall {
    Miss,
    Revalidated,
    Pass,
    Bypass,
    Refresh,
    /// The inner service returned an error.
    Error,
}

impl OriginCall {
    #[cfg(feature = "metrics")]
    pub(crate) const ALL: [OriginCall; 6] = [
        OriginCall::Miss,
        OriginCall::Revalidated,
        OriginCall::Pass,
        OriginCall::Bypass,
        OriginCall::Refresh,
        OriginCall::Error,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            OriginCall::Miss => "miss",
            OriginCall::Revalidated => "revalidated",
            OriginCall::Pass => "pass",
            OriginCall::Bypass => "bypass",
            OriginCall::Refresh => "refresh",
            OriginCall::Error => "error",
        }
    }
}

/// One counter per value of a small fieldless enum.
pub(crate) struct PerValue<const N: usize>([AtomicU64; N]);

impl<const N: usize> Default for PerValue<N> {
    fn default() -> Self {
        PerValue(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

impl<const N: usize> PerValue<N> {
    pub(crate) fn add(&self, index: usize) {
        self.0[index].fetch_add(1, Relaxed);
    }

    pub(crate) fn load(&self) -> [u64; N] {
        std::array::from_fn(|i| self.0[i].load(Relaxed))
    }
}

/// Counts that are not per route.
#[derive(Default)]
pub(crate) struct Counts {
    pub bypass_reasons: PerValue<{ BypassReason::ALL.len() }>,
    pub not_stored: PerValue<{ NotStoredReason::ALL.len() }>,
    pub stores: AtomicU64,
    pub stores_refused: AtomicU64,
    pub stores_dropped: AtomicU64,
    pub store_errors: AtomicU64,
    pub coalesced: AtomicU64,
    /// Started: stale-while-revalidate, refresh-ahead; then failed.
    pub refreshes: PerValue<3>,
    pub invalidations: PerValue<{ Invalidation::ALL.len() }>,
    /// Cacheable requests between their lookup and their answer.
    pub in_flight: AtomicU64,
}

/// The one place a cache's counts go through (one per layer, shared by its services).
pub(crate) struct Observer {
    pub counts: Counts,
    pub routes: Routes,
    #[cfg(feature = "metrics")]
    metrics: metrics::Lazy,
    /// The lookup histogram (one store per cache, so one label value).
    #[cfg(feature = "metrics")]
    lookups: std::sync::OnceLock<::metrics::Histogram>,
    /// When the store's figures were last published: nanoseconds after `epoch`, plus one
    /// (0: never).
    #[cfg(feature = "metrics")]
    published: AtomicU64,
    #[cfg(feature = "metrics")]
    epoch: Instant,
}

impl Default for Observer {
    fn default() -> Self {
        Observer {
            counts: Counts::default(),
            routes: Routes::default(),
            #[cfg(feature = "metrics")]
            metrics: metrics::Lazy::default(),
            #[cfg(feature = "metrics")]
            lookups: std::sync::OnceLock::new(),
            #[cfg(feature = "metrics")]
            published: AtomicU64::new(0),
            #[cfg(feature = "metrics")]
            epoch: Instant::now(),
        }
    }
}

impl Observer {
    /// A cacheable request goes to the origin (or waits for another request's fetch).
    pub(crate) fn departed(&self) {
        self.counts.in_flight.fetch_add(1, Relaxed);
    }

    /// ... and is answered with `outcome` (or its client went away).
    pub(crate) fn returned(&self, route: &RouteCounters, outcome: Outcome) {
        self.counts.in_flight.fetch_sub(1, Relaxed);
        route.add(outcome);
    }

    /// A request answered with `outcome` on the route whose counters are `route`.
    #[inline]
    pub(crate) fn request(&self, route: &RouteCounters, outcome: Outcome) {
        route.add(outcome);
    }

    pub(crate) fn bypassed(&self, route: &RouteCounters, reason: BypassReason) {
        route.add(Outcome::Bypass);
        self.counts.bypass_reasons.add(reason as usize);
        #[cfg(feature = "metrics")]
        self.metrics.get().bypass[reason as usize].increment(1);
        tracing::debug!(
            target: span::TARGET,
            reason = reason.as_str(),
            route = route.label(),
            "cache bypass"
        );
    }

    pub(crate) fn not_stored(&self, reason: NotStoredReason) {
        span::not_stored(reason.as_str());
        self.counts.not_stored.add(reason as usize);
        #[cfg(feature = "metrics")]
        self.metrics.get().not_stored[reason as usize].increment(1);
        tracing::debug!(target: span::TARGET, reason = reason.as_str(), "response not stored");
    }

    pub(crate) fn coalesced(&self) {
        self.counts.coalesced.fetch_add(1, Relaxed);
        #[cfg(feature = "metrics")]
        self.metrics.get().coalesced.increment(1);
    }

    pub(crate) fn refresh_started(&self, kind: Refresh) {
        self.counts.refreshes.add(kind as usize);
        #[cfg(feature = "metrics")]
        self.metrics.get().refreshes[kind as usize].increment(1);
        tracing::debug!(target: span::TARGET, kind = kind.as_str(), "background refresh started");
    }

    pub(crate) fn refresh_failed(&self) {
        self.counts.refreshes.add(2);
        #[cfg(feature = "metrics")]
        self.metrics.get().refreshes[2].increment(1);
        tracing::warn!(
            target: span::TARGET,
            "background refresh failed (an error or a 5xx from the origin)"
        );
    }

    pub(crate) fn invalidated(&self, kind: Invalidation, tags: &[&str], removed: u64) {
        self.counts.invalidations.add(kind as usize);
        #[cfg(feature = "metrics")]
        self.metrics.get().invalidations[kind as usize].increment(1);
        tracing::info!(
            target: span::TARGET,
            kind = kind.as_str(),
            tags = ?&tags[..tags.len().min(8)],
            tag_count = tags.len(),
            removed,
            "cache invalidation"
        );
    }

    /// A store operation failed; `store` names the store (the error's own, when it says).
    pub(crate) fn store_error(&self, store: &'static str, op: StoreOp, error: &StoreError) {
        self.counts.store_errors.fetch_add(1, Relaxed);
        let store = error.store().unwrap_or(store);
        #[cfg(feature = "metrics")]
        ::metrics::counter!(
            metrics::STORE_ERRORS,
            "store" => store,
            "op" => op.as_str()
        )
        .increment(1);
        tracing::warn!(
            target: span::TARGET,
            store,
            op = op.as_str(),
            %error,
            "cache store operation failed"
        );
    }

    pub(crate) fn stored(&self) {
        self.counts.stores.fetch_add(1, Relaxed);
    }

    pub(crate) fn refused(&self) {
        self.counts.stores_refused.fetch_add(1, Relaxed);
    }

    pub(crate) fn dropped(&self) {
        self.counts.stores_dropped.fetch_add(1, Relaxed);
        tracing::warn!(
            target: span::TARGET,
            "too many store writes pending; response not stored"
        );
    }

    /// The origin answered (or erred) a call made at `called`.
    pub(crate) fn origin_answered<T, E>(
        &self,
        call: OriginCall,
        answer: &Result<T, E>,
        called: Instant,
    ) {
        let took = called.elapsed();
        span::origin_took(took);
        match answer {
            Ok(_) => self.origin(call, took),
            Err(_) => self.origin(OriginCall::Error, took),
        }
    }

    /// How long the origin took to answer with a head (or an error).
    pub(crate) fn origin(&self, call: OriginCall, took: Duration) {
        #[cfg(feature = "metrics")]
        self.metrics.get().origin[call as usize].record(took);
        tracing::debug!(
            target: span::TARGET,
            origin = call.as_str(),
            origin_us = took.as_micros() as u64,
            "origin answered"
        );
    }

    /// Whether this lookup should be timed (the store answering at once: one in 64 per
    /// thread, so the hit path reads no clock; a store that must be waited for: always).
    #[inline]
    pub(crate) fn time_lookup(&self, waited: bool) -> bool {
        #[cfg(feature = "metrics")]
        {
            waited || metrics::sampled()
        }
        #[cfg(not(feature = "metrics"))]
        {
            let _ = waited;
            false
        }
    }

    /// A timed lookup in `store`.
    pub(crate) fn lookup(&self, store: &'static str, took: Duration) {
        #[cfg(feature = "metrics")]
        self.lookups
            .get_or_init(|| ::metrics::histogram!(metrics::LOOKUP, "store" => store))
            .record(took);
        let _ = (store, took);
    }

    /// Whether the store's figures are due to be published (a second since the last time,
    /// as of `now`); `true` claims it.
    #[cfg(feature = "metrics")]
    pub(crate) fn publish_due(&self, now: Instant) -> bool {
        let at = u64::try_from(now.saturating_duration_since(self.epoch).as_nanos())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1);
        let last = self.published.load(Relaxed);
        (last == 0 || at.saturating_sub(last) >= 1_000_000_000)
            && self
                .published
                .compare_exchange(last, at, Relaxed, Relaxed)
                .is_ok()
    }
}
