//! The `metrics` facade's handles (feature `metrics`).
//!
//! Every series whose labels are known in advance is registered once, when the cache first
//! counts something, and kept: the hit path increments an atomic through its handle and never
//! looks a name up. A recorder must therefore be installed before the cache serves its first
//! request (handles registered with no recorder stay no-ops). Store errors, lookups and the
//! store's gauges are looked up each time: they are rare, sampled or once a second.

use std::cell::Cell;
use std::sync::OnceLock;

use metrics::{Counter, Histogram, Unit};

use super::{Invalidation, OriginCall, Outcome};
use crate::{BypassReason, NotStoredReason};

pub(crate) const REQUESTS: &str = "tower_response_cache_requests_total";
pub(crate) const BYPASS: &str = "tower_response_cache_bypass_total";
pub(crate) const NOT_STORED: &str = "tower_response_cache_not_stored_total";
pub(crate) const COALESCED: &str = "tower_response_cache_coalesced_total";
pub(crate) const REFRESHES: &str = "tower_response_cache_refreshes_total";
pub(crate) const INVALIDATIONS: &str = "tower_response_cache_invalidations_total";
pub(crate) const STORE_ERRORS: &str = "tower_response_cache_store_errors_total";
pub(crate) const EVICTIONS: &str = "tower_response_cache_evictions_total";
pub(crate) const ORIGIN: &str = "tower_response_cache_origin_duration_seconds";
pub(crate) const LOOKUP: &str = "tower_response_cache_lookup_duration_seconds";
pub(crate) const ENTRIES: &str = "tower_response_cache_entries";
pub(crate) const BYTES: &str = "tower_response_cache_bytes";

/// The handles of the series with labels known in advance.
pub(crate) struct Handles {
    pub bypass: [Counter; BypassReason::ALL.len()],
    pub not_stored: [Counter; NotStoredReason::ALL.len()],
    pub coalesced: Counter,
    /// swr, ahead, error.
    pub refreshes: [Counter; 3],
    pub invalidations: [Counter; Invalidation::ALL.len()],
    pub origin: [Histogram; OriginCall::ALL.len()],
}

/// [`Handles`], registered on first use.
#[derive(Default)]
pub(crate) struct Lazy(OnceLock<Handles>);

impl Lazy {
    #[inline]
    pub(crate) fn get(&self) -> &Handles {
        self.0.get_or_init(register)
    }
}

fn register() -> Handles {
    describe();
    Handles {
        bypass: BypassReason::ALL.map(|r| metrics::counter!(BYPASS, "reason" => r.as_str())),
        not_stored: NotStoredReason::ALL
            .map(|r| metrics::counter!(NOT_STORED, "reason" => r.as_str())),
        coalesced: metrics::counter!(COALESCED),
        refreshes: ["swr", "ahead", "error"]
            .map(|kind| metrics::counter!(REFRESHES, "kind" => kind)),
        invalidations: Invalidation::ALL
            .map(|kind| metrics::counter!(INVALIDATIONS, "kind" => kind.as_str())),
        origin: OriginCall::ALL.map(|call| metrics::histogram!(ORIGIN, "outcome" => call.as_str())),
    }
}

/// The request counters of one route, in [`Outcome::ALL`]'s order.
pub(crate) fn requests(route: &str) -> [Counter; Outcome::ALL.len()] {
    describe();
    let route = route.to_owned();
    Outcome::ALL.map(|outcome| {
        metrics::counter!(REQUESTS, "outcome" => outcome.as_str(), "route" => route.clone())
    })
}

/// Help texts and units, given to the recorder once per process.
fn describe() {
    static DESCRIBED: OnceLock<()> = OnceLock::new();
    DESCRIBED.get_or_init(|| {
        metrics::describe_counter!(
            REQUESTS,
            "Requests by what the cache did (hit, stale, miss, bypass, pass, revalidated) and route pattern"
        );
        metrics::describe_counter!(BYPASS, "Requests that did not use the cache, by reason");
        metrics::describe_counter!(NOT_STORED, "Responses fetched from the origin (on a miss or a pass) and not stored, by reason");
        metrics::describe_counter!(COALESCED, "Misses answered by another request's fetch");
        metrics::describe_counter!(REFRESHES, "Background refreshes started (swr, ahead) and failed (error)");
        metrics::describe_counter!(INVALIDATIONS, "Invalidations, by what asked for them");
        metrics::describe_counter!(STORE_ERRORS, "Failed store operations, by store and operation");
        metrics::describe_counter!(EVICTIONS, "Entries the memory tier dropped: for room (size) or expired");
        metrics::describe_histogram!(ORIGIN, Unit::Seconds, "Time from calling the inner service to its response head");
        metrics::describe_histogram!(LOOKUP, Unit::Seconds, "Store lookups (those answered at once: one in 64 sampled)");
        metrics::describe_gauge!(ENTRIES, "Entries held, by tier");
        metrics::describe_gauge!(BYTES, Unit::Bytes, "Bytes held, by tier");
    });
}

thread_local! {
    static LOOKUPS: Cell<u32> = const { Cell::new(0) };
}

/// One call in 64 on each thread: whether to time this lookup.
#[inline]
pub(crate) fn sampled() -> bool {
    LOOKUPS.with(|n| {
        let next = n.get().wrapping_add(1);
        n.set(next);
        next % 64 == 0
    })
}
