//! What a request's own `Cache-Control` (and `Pragma`) asks of a stored response (RFC 9111
//! §5.2.1, §5.4): how old or how stale it may be, whether it must be revalidated, whether the
//! origin may be asked at all.

use http::HeaderMap;
use http::header::{CACHE_CONTROL, PRAGMA};
use std::time::{Duration, SystemTime};

use super::CacheControl;
use crate::entry::{Entry, Staleness};

/// A request's limits on what the cache may answer it with. Read only when the request has a
/// `Cache-Control` or `Pragma` field, so a plain request pays nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RequestDirectives {
    /// `max-age`: no response older than this (seconds), without validating it.
    pub max_age: Option<u64>,
    /// `min-fresh`: no response fresh for less than this (seconds), without validating it.
    pub min_fresh: Option<u64>,
    /// `max-stale`: a stale response will do, stale by at most this (seconds; `u64::MAX`: any).
    pub max_stale: Option<u64>,
    /// `no-cache` (or `Pragma: no-cache` without `Cache-Control`): validate before reuse.
    pub no_cache: bool,
    /// `only-if-cached`: never ask the origin; `504` when nothing stored will do.
    pub only_if_cached: bool,
}

/// What a request's directives make of it: whether its response may be stored, and its
/// limits, if any.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Directives {
    /// `no-store`: the response to this request is not stored (it may be answered from what
    /// is stored, §5.2.1.5).
    pub no_store: bool,
    pub limits: Option<RequestDirectives>,
}

impl Directives {
    /// Reads `headers`. `client_revalidation`: whether the request may make the cache
    /// revalidate (`no-cache`, `max-age`, `min-fresh`, `Pragma: no-cache`); `max-stale`,
    /// `only-if-cached` and `no-store` only ever spare the origin, and always count.
    pub(crate) fn read(headers: &HeaderMap, client_revalidation: bool) -> Self {
        let has_cc = headers.contains_key(CACHE_CONTROL);
        if !has_cc && !headers.contains_key(PRAGMA) {
            return Directives::default();
        }
        let cc = CacheControl::parse(headers);
        // §5.4: `Pragma: no-cache` counts only without `Cache-Control`.
        let pragma_no_cache = !has_cc
            && headers
                .get_all(PRAGMA)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .any(|d| d.trim().eq_ignore_ascii_case("no-cache"));
        let mut limits = RequestDirectives {
            max_stale: cc.max_stale,
            only_if_cached: cc.only_if_cached,
            ..RequestDirectives::default()
        };
        if client_revalidation {
            limits.max_age = cc.max_age;
            limits.min_fresh = cc.min_fresh;
            limits.no_cache = cc.no_cache || pragma_no_cache;
        }
        Directives {
            no_store: cc.no_store,
            limits: (limits != RequestDirectives::default()).then_some(limits),
        }
    }
}

/// Whether a request says `only-if-cached`: one that may not use the cache (a route's
/// policy, its cookies...) then gets a 504 rather than reaching the origin (§5.2.1.7).
pub(crate) fn only_if_cached(headers: &HeaderMap) -> bool {
    headers.contains_key(CACHE_CONTROL) && CacheControl::parse(headers).only_if_cached
}

impl RequestDirectives {
    /// Where `entry` (whose own staleness at `now` is `staleness`) stands for this request:
    /// a fresh response the request will not take unvalidated is [`Staleness::Kept`]
    /// (validate it); a stale one it accepts (`max-stale`) is [`Staleness::Revalidate`]
    /// (serve it, refresh it behind), unless the origin forbade serving it stale.
    pub(crate) fn judge(&self, entry: &Entry, staleness: Staleness, now: SystemTime) -> Staleness {
        let Some(stored) = entry.stored() else {
            return staleness;
        };
        let age = entry.age(now);
        let too_old = self.max_age.is_some_and(|max| age > max);
        match staleness {
            // RFC 8246: nothing makes a fresh `immutable` response be revalidated.
            Staleness::Fresh if stored.immutable => Staleness::Fresh,
            Staleness::Fresh => {
                let short = self
                    .min_fresh
                    .is_some_and(|min| entry.fresh_for(now) < Duration::from_secs(min));
                if self.no_cache || too_old || short {
                    Staleness::Kept
                } else {
                    Staleness::Fresh
                }
            }
            Staleness::Expired => Staleness::Expired,
            stale => {
                let within = self
                    .max_stale
                    .is_some_and(|max| entry.stale_for(now).as_secs() <= max);
                let accepted = within
                    && !stored.must_revalidate
                    && !self.no_cache
                    && !too_old
                    && self.min_fresh.is_none();
                match stale {
                    _ if accepted => Staleness::Revalidate,
                    // Served stale only after validation: the request said so.
                    Staleness::Revalidate if self.no_cache || too_old => Staleness::Kept,
                    stale => stale,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{Lifetime, StoredResponse};
    use bytes::Bytes;
    use http::{HeaderValue, StatusCode};

    fn read(pairs: &[(&'static str, &str)], revalidation: bool) -> Directives {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        Directives::read(&h, revalidation)
    }

    fn entry(fresh: u64, swr: u64, must_revalidate: bool, immutable: bool) -> Entry {
        Entry::response(
            Bytes::from_static(b"k"),
            StoredResponse {
                status: StatusCode::OK,
                headers: HeaderMap::new(),
                body: Bytes::new(),
                trailers: None,
                shared_with_credentials: false,
                must_revalidate,
                immutable,
            },
            SystemTime::now(),
            Lifetime::new(
                Duration::from_secs(fresh),
                Duration::from_secs(swr),
                Duration::ZERO,
            )
            .kept(Duration::from_secs(3600)),
            0,
        )
    }

    /// §5.4: `Pragma: no-cache` only without `Cache-Control`; a plain request reads nothing.
    #[test]
    fn rfc9111_5_4_pragma_only_without_cache_control() {
        assert_eq!(read(&[], true), Directives::default());
        assert!(
            read(&[("pragma", "no-cache")], true)
                .limits
                .unwrap()
                .no_cache
        );
        let both = read(
            &[("pragma", "no-cache"), ("cache-control", "max-stale")],
            true,
        );
        assert!(!both.limits.unwrap().no_cache);
        // Clients may not force revalidation unless the policy lets them.
        assert_eq!(read(&[("pragma", "no-cache")], false).limits, None);
        assert_eq!(
            read(&[("cache-control", "no-cache, max-age=0")], false).limits,
            None
        );
        let d = read(&[("cache-control", "no-store, only-if-cached")], false);
        assert!(d.no_store && d.limits.unwrap().only_if_cached);
    }

    /// §5.2.1.1, §5.2.1.3, §5.2.1.4: max-age, min-fresh and no-cache send a fresh response
    /// to validation; RFC 8246: not an immutable one.
    #[test]
    fn rfc9111_5_2_1_fresh_responses_a_request_refuses() {
        let now = SystemTime::now();
        let e = entry(60, 0, false, false);
        let later = now + Duration::from_secs(30);
        let judge = |cc: &str, e: &Entry| {
            let d = read(&[("cache-control", cc)], true).limits.unwrap();
            d.judge(e, e.staleness(later), later)
        };
        assert_eq!(judge("max-age=10", &e), Staleness::Kept);
        assert_eq!(judge("max-age=100", &e), Staleness::Fresh);
        assert_eq!(judge("min-fresh=40", &e), Staleness::Kept);
        assert_eq!(judge("min-fresh=20", &e), Staleness::Fresh);
        assert_eq!(judge("no-cache", &e), Staleness::Kept);
        let immutable = entry(60, 0, false, true);
        assert_eq!(judge("no-cache", &immutable), Staleness::Fresh);
        assert_eq!(judge("max-age=0", &immutable), Staleness::Fresh);
    }

    /// §5.2.1.2: max-stale accepts a stale response, but never one the origin said must be
    /// revalidated (§4.2.4).
    #[test]
    fn rfc9111_5_2_1_2_max_stale() {
        let e = entry(10, 0, false, false);
        let at = SystemTime::now() + Duration::from_secs(40);
        let judge = |cc: &str, e: &Entry| {
            let d = read(&[("cache-control", cc)], true).limits.unwrap();
            d.judge(e, e.staleness(at), at)
        };
        assert_eq!(e.staleness(at), Staleness::Kept);
        assert_eq!(judge("max-stale", &e), Staleness::Revalidate);
        assert_eq!(judge("max-stale=60", &e), Staleness::Revalidate);
        assert_eq!(judge("max-stale=5", &e), Staleness::Kept);
        assert_eq!(judge("max-stale, no-cache", &e), Staleness::Kept);
        let strict = entry(10, 0, true, false);
        assert_eq!(judge("max-stale", &strict), Staleness::Kept);
        // A stale-while-revalidate window a request's no-cache overrules.
        let swr = entry(10, 60, false, false);
        assert_eq!(judge("no-cache", &swr), Staleness::Kept);
    }
}
