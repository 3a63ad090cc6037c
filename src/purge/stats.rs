//! `GET <mount>/stats`: the cache's counters as JSON.

use serde_json::{Map, Value, json};

use crate::{CacheHandle, StatsSnapshot};

/// Every figure of [`StatsSnapshot`] by its field name, and `hit_ratio`; the reasons and
/// invalidation kinds by name (those seen); `routes`, each route's outcomes; `tiers`, the
/// memory tier's and the shared (Redis) tier's contents (`null` for a tier the store does not
/// have); `breaker`, the shared tier's circuit breaker (`null` without one).
pub(super) fn stats(handle: &CacheHandle) -> Value {
    let stats = handle.stats();
    let s = stats.snapshot();
    let store = handle.store_name();
    let routes: Vec<Value> = stats
        .routes()
        .into_iter()
        .map(|r| {
            json!({
                "route": r.route,
                "hits": r.hits,
                "stale": r.stale,
                "misses": r.misses,
                "bypasses": r.bypasses,
                "passes": r.passes,
                "revalidated": r.revalidated,
            })
        })
        .collect();
    let by_name = |counts: Vec<(&'static str, u64)>| -> Map<String, Value> {
        counts
            .into_iter()
            .map(|(name, n)| (name.to_owned(), n.into()))
            .collect()
    };
    let bypass_reasons = by_name(
        s.bypass_reasons()
            .into_iter()
            .map(|(r, n)| (r.as_str(), n))
            .collect(),
    );
    let not_stored_reasons = by_name(
        s.not_stored_reasons()
            .into_iter()
            .map(|(r, n)| (r.as_str(), n))
            .collect(),
    );
    let breaker = s
        .breaker
        .map(|b| json!({ "open": b.open, "opened": b.opened }));
    json!({
        "store": store,
        "hits": s.hits,
        "stale": s.stale,
        "misses": s.misses,
        "bypasses": s.bypasses,
        "passes": s.passes,
        "revalidated": s.revalidated,
        "coalesced": s.coalesced,
        "in_flight": s.in_flight,
        "hit_ratio": s.hit_ratio(),
        "stores": s.stores,
        "stores_refused": s.stores_refused,
        "stores_dropped": s.stores_dropped,
        "store_errors": s.store_errors,
        "refreshes": s.refreshes,
        "refresh_failures": s.refresh_failures,
        "invalidations": s.invalidations,
        "evictions": s.evictions,
        "expirations": s.expirations,
        "entries": s.entries,
        "weighted_bytes": s.weighted_bytes,
        "shared_entries": s.shared_entries,
        "shared_bytes": s.shared_bytes,
        "bypass_reasons": bypass_reasons,
        "not_stored_reasons": not_stored_reasons,
        "invalidations_by_kind": by_name(s.invalidations_by_kind()),
        "routes": routes,
        "tiers": tiers(store, &s),
        "breaker": breaker,
    })
}

/// The tiers the store has: a memory tier unless it is a Redis store alone; a shared tier for
/// Redis and tiered stores, and any store that reports shared figures. A shared tier's figures
/// are `null` until it has counted them.
fn tiers(store: &str, s: &StatsSnapshot) -> Value {
    let memory = (store != "redis").then(|| {
        json!({
            "entries": s.entries,
            "bytes": s.weighted_bytes,
            "evictions": s.evictions,
            "expirations": s.expirations,
        })
    });
    let shared = matches!(store, "redis" | "tiered")
        || s.shared_entries.is_some()
        || s.shared_bytes.is_some()
        || s.breaker.is_some();
    let redis = shared.then(|| json!({ "entries": s.shared_entries, "bytes": s.shared_bytes }));
    json!({ "memory": memory, "redis": redis })
}
