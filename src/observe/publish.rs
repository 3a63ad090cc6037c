//! The store's figures as gauges (feature `metrics`): entries and bytes of each tier, the
//! memory tier's evictions and the invalidations other instances made. Copied as the cache is
//! used, at most once a second: after a store write, an invalidation, or a timed lookup (all
//! of which read the clock anyway), so there is no task and no timer (a runtime without
//! timers works), and an idle cache leaves them as they were.

use super::metrics::{BYTES, ENTRIES, EVICTIONS, INVALIDATIONS};
use crate::Store;

/// Copies the store's figures now.
pub(crate) fn publish<St: Store + ?Sized>(store: &St) {
    let figures = store.metrics();
    let name = store.name();
    // A memory tier: the store itself, or the front of a tiered one. A Redis store alone has
    // none.
    let local = match name {
        "redis" => None,
        "tiered" => Some("memory"),
        other => Some(other),
    };
    if let Some(tier) = local {
        metrics::gauge!(ENTRIES, "store" => tier).set(figures.entries as f64);
        metrics::gauge!(BYTES, "store" => tier).set(figures.weighted_bytes as f64);
        metrics::counter!(EVICTIONS, "cause" => "size").absolute(figures.evictions);
        metrics::counter!(EVICTIONS, "cause" => "expired").absolute(figures.expirations);
    }
    if let Some(entries) = figures.shared_entries {
        metrics::gauge!(ENTRIES, "store" => "redis").set(entries as f64);
    }
    if let Some(bytes) = figures.shared_bytes {
        metrics::gauge!(BYTES, "store" => "redis").set(bytes as f64);
    }
    if name == "tiered" {
        metrics::counter!(INVALIDATIONS, "kind" => "remote").absolute(store.remote_invalidations());
    }
}
