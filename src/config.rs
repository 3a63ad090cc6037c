//! What a cache layer was configured with, shared by every service it builds.

use http::{HeaderMap, HeaderName, HeaderValue};
use std::sync::Arc;

use crate::coalesce::Flights;
use crate::policy::Policies;
use crate::stats::Counters;
use crate::{BypassReason, NotStoredReason};

/// The configuration and state of one cache: store, key maker, policies, header names, counters.
pub(crate) struct Config<St: ?Sized, K> {
    pub store: Arc<St>,
    pub keys: Arc<K>,
    pub policies: Policies,
    /// `X-Cache` (or the configured name), or none.
    pub cache_header: Option<HeaderName>,
    /// The per-response override header, or none.
    pub override_header: Option<HeaderName>,
    pub counters: Arc<Counters>,
    /// Fetches in flight, for coalescing.
    pub flights: Arc<Flights>,
}

// Manual: the derive would require `St: Clone` and `K: Clone`, but both are behind `Arc`.
impl<St: ?Sized, K> Clone for Config<St, K> {
    fn clone(&self) -> Self {
        Config {
            store: Arc::clone(&self.store),
            keys: Arc::clone(&self.keys),
            policies: self.policies.clone(),
            cache_header: self.cache_header.clone(),
            override_header: self.override_header.clone(),
            counters: Arc::clone(&self.counters),
            flights: Arc::clone(&self.flights),
        }
    }
}

/// What the cache did with a request, as the `X-Cache` header says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Disposition {
    Hit,
    /// Served stale (stale-while-revalidate, or stale-if-error).
    Stale,
    Miss,
    Bypass,
}

impl<St: ?Sized, K> Config<St, K> {
    /// Sets the `X-Cache` header, if configured.
    pub fn mark(&self, headers: &mut HeaderMap, disposition: Disposition) {
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

    pub fn bypassed(&self, reason: BypassReason) {
        Counters::add(&self.counters.bypasses);
        tracing::debug!(reason = reason.as_str(), "cache bypass");
    }

    pub fn not_stored(&self, reason: NotStoredReason) {
        tracing::debug!(reason = reason.as_str(), "response not stored");
    }
}
