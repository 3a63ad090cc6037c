//! May this response be stored, and for how long (RFC 9111 §3 and §4.2)?

use http::header::{self, HeaderName};
use http::{StatusCode, response};
use std::time::{Duration, SystemTime};

use super::RequestFacts;
use super::{CacheControl, Vary, freshness};
use crate::entry::{Lifetime, capped_secs, scaled};
use crate::policy::{Policy, SetCookie};
use crate::{CacheOverride, NotStoredReason};

/// A response that may be stored.
#[derive(Debug)]
pub(crate) struct StoreDecision {
    /// How long it stays fresh from now, may be served stale after, and is kept to be
    /// revalidated.
    pub lifetime: Lifetime,
    /// Its age when received, in seconds.
    pub initial_age: u64,
    /// The request fields it varies on (empty: none).
    pub vary: Vec<HeaderName>,
    /// It may answer requests carrying `Authorization` (RFC 9111 §3.5).
    pub shared_with_credentials: bool,
    /// Once stale, it is never served without a successful revalidation (§4.2.4).
    pub must_revalidate: bool,
    /// `immutable` (RFC 8246).
    pub immutable: bool,
    /// Fields stored without: those a qualified `no-cache` or `private` names (§5.2.2.4,
    /// §5.2.2.7).
    pub strip: Vec<HeaderName>,
}

/// A response as the fill received it: its head, the directives this cache follows (its
/// targeted field's, RFC 9213, or `Cache-Control`'s), and when it came.
pub(crate) struct Received<'a> {
    pub parts: &'a response::Parts,
    pub directives: CacheControl,
    /// The directives are a targeted field's: `Expires` does not count (RFC 9213 §2.2).
    pub targeted: bool,
    /// When it arrived.
    pub at: SystemTime,
    /// How long the request took (added to its `Age`, §4.2.3).
    pub delay: Duration,
    /// Spreads the policy's ttl (`ttl_jitter`), different per entry.
    pub jitter_seed: u64,
}

impl<'a> Received<'a> {
    /// `parts` received `at`, after `delay`; its directives from the field `targeted` when
    /// it has a valid one, else from `Cache-Control`.
    pub(crate) fn new(
        parts: &'a response::Parts,
        targeted: Option<&HeaderName>,
        at: SystemTime,
        delay: Duration,
        jitter_seed: u64,
    ) -> Self {
        let (directives, targeted) = super::targeted::directives(&parts.headers, targeted);
        Received {
            parts,
            directives,
            targeted,
            at,
            delay,
            jitter_seed,
        }
    }
}

/// Decides whether a response may be stored under `policy`. Safety rules (`no-store`, `private`,
/// `Vary: *`, `Set-Cookie`, `Authorization`) hold whatever the policy or override says.
///
/// What may be stored (RFC 9111 §3): a final status other than `206` and `304`; with explicit
/// freshness (`max-age`, `s-maxage`, `Expires`, when honoured), any such status; without,
/// only the policy's statuses (or any, when `public`), for the policy's ttl, or when that is
/// zero for a heuristic lifetime (§4.2.2). A response that is not fresh (`no-cache`, a zero
/// lifetime) is still stored when it has a validator and the policy keeps entries to
/// revalidate them (`keep`).
pub(crate) fn decide(
    policy: &Policy,
    request: RequestFacts,
    response: &Received<'_>,
    overrides: CacheOverride,
) -> Result<StoreDecision, NotStoredReason> {
    if !request.canonical {
        return Err(NotStoredReason::Spelling);
    }
    if request.no_store {
        return Err(NotStoredReason::RequestNoStore);
    }
    if overrides.forbids_store() {
        return Err(NotStoredReason::Override);
    }
    let status = response.parts.status;
    // Interim responses are not responses to store; a 206 is part of one (§3.3-3.4, never
    // combined here), a 304 answers a condition.
    if status.is_informational()
        || status == StatusCode::PARTIAL_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Err(NotStoredReason::Status);
    }
    let headers = &response.parts.headers;
    let cc = &response.directives;
    if cc.malformed {
        return Err(NotStoredReason::Malformed);
    }
    if cc.no_store {
        return Err(NotStoredReason::NoStore);
    }
    if cc.private {
        return Err(NotStoredReason::Private);
    }
    let strip: Vec<HeaderName> = cc
        .no_cache_fields
        .iter()
        .chain(&cc.private_fields)
        .cloned()
        .collect();
    let shared_with_credentials = cc.public || cc.s_maxage.is_some() || cc.must_revalidate;
    if request.has_authorization && !shared_with_credentials {
        return Err(NotStoredReason::Authorization);
    }
    if policy.set_cookie == SetCookie::DontStore
        && headers.contains_key(header::SET_COOKIE)
        && !strip.contains(&header::SET_COOKIE)
    {
        return Err(NotStoredReason::SetCookie);
    }
    let vary = match Vary::parse(headers) {
        Vary::None => Vec::new(),
        Vary::Fields(names) => names,
        Vary::Star => return Err(NotStoredReason::VaryStar),
        Vary::Malformed => return Err(NotStoredReason::Malformed),
    };
    let now = response.at;
    let initial_age = freshness::initial_age(headers, now, response.delay);
    let explicit = policy
        .honor_cache_control
        .then(|| freshness::origin_lifetime(cc, headers, now, !response.targeted))
        .flatten();
    let (fresh_for, overdue) = match (overrides.lifetime(), explicit) {
        (Some(ttl), _) => (ttl, Duration::ZERO),
        // The origin's lifetime counts from the response's creation, not from now.
        (None, Some(lifetime)) => since_creation(lifetime, initial_age),
        (None, None) if !policy.statuses.contains(status) && !cc.public => {
            return Err(NotStoredReason::Status);
        }
        (None, None) => implicit_lifetime(policy, response, initial_age),
    };
    // `no-cache`: stored, but validated before every reuse (§5.2.2.4).
    let fresh_for = if cc.no_cache {
        Duration::ZERO
    } else {
        fresh_for
    };
    let validated =
        headers.contains_key(header::ETAG) || headers.contains_key(header::LAST_MODIFIED);
    let keep = if validated {
        policy.keep
    } else {
        Duration::ZERO
    };
    if fresh_for.is_zero() && keep.is_zero() {
        return Err(if cc.no_cache {
            NotStoredReason::NoCache
        } else {
            NotStoredReason::NotFresh
        });
    }
    // RFC 9111 §4.2.4: these forbid serving stale; otherwise the longer of the operator's and
    // the origin's permission (RFC 5861) applies.
    let must_revalidate =
        cc.must_revalidate || cc.proxy_revalidate || cc.s_maxage.is_some() || cc.no_cache;
    let window = |policy_window: Duration, origin: Option<u64>| {
        let origin = origin
            .filter(|_| policy.honor_cache_control)
            .map_or(Duration::ZERO, capped_secs);
        if must_revalidate {
            Duration::ZERO
        } else {
            policy_window.max(origin)
        }
    };
    // Every part saturates at `MAX_LIFETIME`, whatever its source.
    let lifetime = Lifetime::new(
        fresh_for,
        window(policy.stale_while_revalidate, cc.stale_while_revalidate),
        window(policy.stale_if_error, cc.stale_if_error),
    )
    .kept(keep)
    .arrived_stale_by(overdue);
    Ok(StoreDecision {
        lifetime,
        initial_age,
        vary,
        shared_with_credentials,
        must_revalidate,
        immutable: cc.immutable,
        strip,
    })
}

/// A lifetime counted from the response's creation, `age` seconds ago: what is left of it
/// from now, and how long it has been stale already if nothing is.
fn since_creation(lifetime: Duration, age: u64) -> (Duration, Duration) {
    let age = Duration::from_secs(age);
    match lifetime.checked_sub(age) {
        Some(left) => (left, Duration::ZERO),
        None => (Duration::ZERO, age - lifetime),
    }
}

/// The lifetime of a response the origin gave none: the policy's negative ttl for 404 and
/// 410, its ttl (both from now), or, when that is zero, a heuristic one (§4.2.2) from the
/// response's creation.
fn implicit_lifetime(
    policy: &Policy,
    response: &Received<'_>,
    initial_age: u64,
) -> (Duration, Duration) {
    let status = response.parts.status.as_u16();
    if matches!(status, 404 | 410) && !policy.negative_ttl.is_zero() {
        return (policy.negative_ttl, Duration::ZERO);
    }
    if !policy.ttl.is_zero() {
        let ttl = jittered(policy.ttl, policy.ttl_jitter, response.jitter_seed);
        return (ttl, Duration::ZERO);
    }
    let (fraction, max) = policy.heuristic;
    let heuristic =
        freshness::heuristic_lifetime(&response.parts.headers, response.at, fraction, max);
    heuristic.map_or((Duration::ZERO, Duration::ZERO), |lifetime| {
        since_creation(lifetime, initial_age)
    })
}

/// `ttl` spread by up to `share` (at most 0.5) either way, by a seed that differs per entry;
/// saturating at `MAX_LIFETIME`.
fn jittered(ttl: Duration, share: f64, seed: u64) -> Duration {
    if share.is_nan() || share <= 0.0 {
        return ttl;
    }
    let unit = (seed >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
    scaled(ttl, 1.0 + share.min(0.5) * (2.0 * unit - 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Response;

    fn res(status: u16, headers: &[(&'static str, &str)]) -> response::Parts {
        let mut r = Response::builder().status(status);
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        r.body(()).unwrap().into_parts().0
    }

    const ANON: RequestFacts = RequestFacts {
        has_authorization: false,
        canonical: true,
        conditional: false,
        no_store: false,
        limits: None,
    };
    const AUTHED: RequestFacts = RequestFacts {
        has_authorization: true,
        ..ANON
    };

    fn verdict(
        policy: &Policy,
        req: RequestFacts,
        r: &response::Parts,
    ) -> Result<StoreDecision, NotStoredReason> {
        decide(
            policy,
            req,
            &Received::new(r, None, SystemTime::now(), Duration::ZERO, 0),
            CacheOverride::default(),
        )
    }

    #[test]
    fn shared_cache_safety_rules() {
        let p = Policy::new();
        let cases: &[(&[(&'static str, &str)], NotStoredReason)] = &[
            (&[("cache-control", "no-store")], NotStoredReason::NoStore),
            (
                &[("cache-control", "private, max-age=60")],
                NotStoredReason::Private,
            ),
            (&[("cache-control", "no-cache")], NotStoredReason::NoCache),
            (&[("set-cookie", "sid=1")], NotStoredReason::SetCookie),
            (&[("vary", "*")], NotStoredReason::VaryStar),
            (&[("cache-control", "max-age=0")], NotStoredReason::NotFresh),
            (
                &[("cache-control", "max-age=10"), ("age", "20")],
                NotStoredReason::NotFresh,
            ),
            (
                &[("cache-control", "max-age=\"x")],
                NotStoredReason::Malformed,
            ),
        ];
        for (headers, reason) in cases {
            assert_eq!(
                verdict(&p, ANON, &res(200, headers)).unwrap_err(),
                *reason,
                "{headers:?}"
            );
        }
        // Even when the policy does not honour the origin's lifetimes.
        let p = Policy::new().honor_cache_control(false);
        assert_eq!(
            verdict(&p, ANON, &res(200, &[("cache-control", "private")])).unwrap_err(),
            NotStoredReason::Private
        );
    }

    #[test]
    fn statuses() {
        let p = Policy::new();
        assert_eq!(
            verdict(&p, ANON, &res(500, &[])).unwrap_err(),
            NotStoredReason::Status
        );
        assert_eq!(
            verdict(&p, ANON, &res(206, &[])).unwrap_err(),
            NotStoredReason::Status
        );
        assert!(verdict(&p, ANON, &res(404, &[])).is_ok());
    }

    #[test]
    fn authorization_needs_explicit_sharing() {
        let p = Policy::new();
        assert_eq!(
            verdict(&p, AUTHED, &res(200, &[("cache-control", "max-age=60")])).unwrap_err(),
            NotStoredReason::Authorization
        );
        for ok in ["public", "s-maxage=60", "must-revalidate, max-age=5"] {
            assert!(
                verdict(&p, AUTHED, &res(200, &[("cache-control", ok)])).is_ok(),
                "{ok}"
            );
        }
    }

    #[test]
    fn lifetime_sources() {
        let p = Policy::new().ttl(Duration::from_secs(7));
        let d = verdict(&p, ANON, &res(200, &[])).unwrap();
        assert_eq!(d.lifetime.fresh_for, Duration::from_secs(7));
        let d = verdict(
            &p,
            ANON,
            &res(200, &[("cache-control", "max-age=100"), ("age", "40")]),
        )
        .unwrap();
        assert_eq!(d.lifetime.fresh_for, Duration::from_secs(60));
        assert_eq!(d.initial_age, 40);
        let d = verdict(
            &p.clone().honor_cache_control(false),
            ANON,
            &res(200, &[("cache-control", "max-age=100")]),
        )
        .unwrap();
        assert_eq!(d.lifetime.fresh_for, Duration::from_secs(7));
        let d = decide(
            &p,
            ANON,
            &Received::new(
                &res(200, &[("cache-control", "max-age=100")]),
                None,
                SystemTime::now(),
                Duration::ZERO,
                0,
            ),
            CacheOverride::ttl(Duration::from_secs(3)),
        )
        .unwrap();
        assert_eq!(d.lifetime.fresh_for, Duration::from_secs(3));
    }

    #[test]
    fn stale_windows_negative_ttl_and_jitter() {
        let p = Policy::new()
            .stale_while_revalidate(Duration::from_secs(30))
            .stale_if_error(Duration::from_secs(60));
        let d = verdict(
            &p,
            ANON,
            &res(200, &[("cache-control", "max-age=10, stale-if-error=600")]),
        )
        .unwrap();
        assert_eq!(d.lifetime.stale_while_revalidate, Duration::from_secs(30));
        assert_eq!(d.lifetime.stale_if_error, Duration::from_secs(600));
        for forbids in [
            "max-age=10, must-revalidate",
            "s-maxage=10",
            "max-age=10, proxy-revalidate",
        ] {
            let d = verdict(&p, ANON, &res(200, &[("cache-control", forbids)])).unwrap();
            assert_eq!(
                d.lifetime.stale_while_revalidate,
                Duration::ZERO,
                "{forbids}"
            );
            assert_eq!(d.lifetime.stale_if_error, Duration::ZERO, "{forbids}");
        }
        let d = verdict(&p, ANON, &res(404, &[])).unwrap();
        assert_eq!(d.lifetime.fresh_for, Duration::from_secs(10));
        let d = verdict(&p, ANON, &res(410, &[("cache-control", "max-age=100")])).unwrap();
        assert_eq!(d.lifetime.fresh_for, Duration::from_secs(100));

        let p = Policy::new().ttl(Duration::from_secs(100)).ttl_jitter(0.1);
        let ttls: Vec<Duration> = (0..200u64)
            .map(|i| {
                let seed = xxhash_rust::xxh3::xxh3_64(&i.to_le_bytes());
                decide(
                    &p,
                    ANON,
                    &Received::new(
                        &res(200, &[]),
                        None,
                        SystemTime::now(),
                        Duration::ZERO,
                        seed,
                    ),
                    CacheOverride::default(),
                )
                .unwrap()
                .lifetime
                .fresh_for
            })
            .collect();
        assert!(ttls.iter().all(|t| (90..=110).contains(&t.as_secs())));
        assert!(ttls.iter().any(|t| t.as_secs() < 95) && ttls.iter().any(|t| t.as_secs() >= 105));
    }

    #[test]
    fn absurd_lifetimes_saturate() {
        let year = crate::MAX_LIFETIME;
        let windows = Policy::new()
            .stale_while_revalidate(Duration::from_secs(30))
            .stale_if_error(Duration::MAX);
        // An override of u64::MAX seconds, with stale windows: the storage ttl overflowed.
        let d = decide(
            &windows,
            ANON,
            &Received::new(&res(200, &[]), None, SystemTime::now(), Duration::ZERO, 0),
            CacheOverride::ttl(Duration::MAX),
        )
        .unwrap();
        assert_eq!(d.lifetime.fresh_for, year);
        assert_eq!(d.lifetime.stale_if_error, year);
        assert_eq!(d.lifetime.storage_ttl(), year * 2);
        // The origin's lifetimes too: 2^31 s of max-age, an Expires in 9999, a huge window.
        let far = "Fri, 31 Dec 9999 23:59:59 GMT";
        for headers in [
            &[(
                "cache-control",
                "max-age=2147483648, stale-while-revalidate=2147483648",
            )][..],
            &[("expires", far)],
        ] {
            let d = verdict(&windows, ANON, &res(200, headers)).unwrap();
            assert_eq!(d.lifetime.fresh_for, year, "{headers:?}");
            assert!(d.lifetime.stale_while_revalidate <= year);
        }
        // The age counts before the cap: 2^31 s of max-age at an age of 2^31 s is stale.
        assert_eq!(
            verdict(
                &windows,
                ANON,
                &res(
                    200,
                    &[
                        ("cache-control", "max-age=2147483648"),
                        ("age", "2147483648")
                    ]
                )
            )
            .unwrap_err(),
            NotStoredReason::NotFresh
        );
        // Jitter on the longest ttl: `Duration::mul_f64` panicked past its range.
        for seed in [0, u64::MAX, u64::MAX / 3 * 2] {
            assert!(jittered(Duration::MAX, 0.5, seed) <= year);
            assert!(jittered(Duration::from_secs(100), f64::NAN, seed) == Duration::from_secs(100));
        }
    }
}
