//! The store's figures as gauges (feature `metrics`): entries and bytes of each tier, the
//! memory tier's evictions and the invalidations other instances made, copied once a second
//! by a task of the layer's (it stops with the layer).

use std::sync::Arc;
use std::time::Duration;

use super::Observer;
use super::metrics::{BYTES, ENTRIES, EVICTIONS, INVALIDATIONS};
use crate::Store;
use crate::flow::background::Background;

/// How often the figures are copied.
const PERIOD: Duration = Duration::from_secs(1);

/// Starts the task, once per cache (on its first request, when a runtime is at hand).
pub(crate) fn start<St: Store + ?Sized>(
    observer: &Arc<Observer>,
    background: &Background,
    store: &Arc<St>,
) {
    if !observer.start_publishing() {
        return;
    }
    let store = Arc::clone(store);
    // Whatever ends the task (the layer dropped, its runtime shut down), the next request
    // starts another.
    let publishing = Publishing(Arc::clone(observer));
    let started = background.spawn(async move {
        let _publishing = publishing;
        let mut ticks = tokio::time::interval(PERIOD);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            publish(&*store);
        }
    });
    if !started {
        // No runtime: published by the next request that has one.
        observer.stop_publishing();
    }
}

/// Held by the task: says it no longer runs when it ends or is dropped.
struct Publishing(Arc<Observer>);

impl Drop for Publishing {
    fn drop(&mut self) {
        self.0.stop_publishing();
    }
}

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
