//! Freshness lifetime and age (RFC 9111 §4.2).

use http::header::{AGE, DATE, EXPIRES, HeaderMap, LAST_MODIFIED};
use std::time::{Duration, SystemTime};

use super::cache_control::{CacheControl, parse_delta_seconds};
use crate::entry::scaled;

/// The lifetime the origin gave the response, as a shared cache reads it: `s-maxage`, then
/// `max-age`, then (when `expires` counts) `Expires - Date` (an invalid `Expires` means
/// already stale). `None` when the origin said nothing about freshness.
pub(crate) fn origin_lifetime(
    cc: &CacheControl,
    headers: &HeaderMap,
    now: SystemTime,
    expires: bool,
) -> Option<Duration> {
    if let Some(s) = cc.s_maxage {
        return Some(Duration::from_secs(s));
    }
    if let Some(s) = cc.max_age {
        return Some(Duration::from_secs(s));
    }
    if !expires {
        return None;
    }
    let mut expires = headers.get_all(EXPIRES).iter();
    let first = expires.next()?;
    if expires.next().is_some() {
        return Some(Duration::ZERO);
    }
    let Some(expires) = http_date(first) else {
        return Some(Duration::ZERO);
    };
    let date = headers.get(DATE).and_then(http_date).unwrap_or(now);
    Some(expires.duration_since(date).unwrap_or(Duration::ZERO))
}

/// A heuristic lifetime (§4.2.2) for a response without an explicit one: `fraction` of the
/// time between its `Last-Modified` and its `Date` (or `now`), at most `max`. `None` without a
/// valid `Last-Modified` (one line, an HTTP-date no later than the `Date`).
pub(crate) fn heuristic_lifetime(
    headers: &HeaderMap,
    now: SystemTime,
    fraction: f64,
    max: Duration,
) -> Option<Duration> {
    let mut lines = headers.get_all(LAST_MODIFIED).iter();
    let (Some(modified), None) = (lines.next(), lines.next()) else {
        return None;
    };
    let modified = http_date(modified)?;
    let date = headers.get(DATE).and_then(http_date).unwrap_or(now);
    let unchanged_for = date.duration_since(modified).ok()?;
    Some(scaled(unchanged_for, fraction).min(max))
}

/// The `Age` field's value (§5.1): the first member of the first line, when it is a
/// non-negative integer (one too large for a `u64` is 2^31, §1.2.2); anything else is ignored.
pub(crate) fn age_field(headers: &HeaderMap) -> Option<u64> {
    let first_line = headers.get_all(AGE).iter().next()?.to_str().ok()?;
    let first_member = first_line.split(',').next()?.trim();
    parse_delta_seconds(first_member)
}

/// The response's corrected initial age in seconds (§4.2.3): the larger of its `Age` header
/// plus the time the request took, and the apparent age from its `Date`, at most 2^31. An
/// invalid `Age` is ignored (§5.1); one too large for a `u64` is 2^31 (§1.2.2), not invalid.
pub(crate) fn initial_age(headers: &HeaderMap, now: SystemTime, response_delay: Duration) -> u64 {
    let age_value =
        age_field(headers).map_or(0, |age| age.saturating_add(response_delay.as_secs()));
    let apparent_age = headers
        .get(DATE)
        .and_then(http_date)
        .and_then(|date| now.duration_since(date).ok())
        .map_or(0, |d| d.as_secs());
    age_value.max(apparent_age).min(1 << 31)
}

fn http_date(value: &http::HeaderValue) -> Option<SystemTime> {
    httpdate::parse_http_date(value.to_str().ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn s_maxage_beats_max_age_beats_expires() {
        let now = SystemTime::now();
        let h = headers(&[("cache-control", "max-age=10, s-maxage=20")]);
        let cc = CacheControl::parse(&h);
        assert_eq!(
            origin_lifetime(&cc, &h, now, true),
            Some(Duration::from_secs(20))
        );
        let date = httpdate::fmt_http_date(now);
        let expires = httpdate::fmt_http_date(now + Duration::from_secs(100));
        let h = headers(&[("date", &date), ("expires", &expires)]);
        let cc = CacheControl::parse(&h);
        let lifetime = origin_lifetime(&cc, &h, now, true).unwrap();
        assert!((99..=100).contains(&lifetime.as_secs()));
        let h = headers(&[("cache-control", "max-age=5"), ("expires", &expires)]);
        let cc = CacheControl::parse(&h);
        assert_eq!(
            origin_lifetime(&cc, &h, now, true),
            Some(Duration::from_secs(5))
        );
    }

    /// §4.2.2: a fraction of the time since `Last-Modified`, capped; nothing without one.
    #[test]
    fn rfc9111_4_2_2_heuristic_freshness() {
        let now = SystemTime::now();
        let date = httpdate::fmt_http_date(now);
        let modified = httpdate::fmt_http_date(now - Duration::from_secs(1000));
        let h = headers(&[("date", &date), ("last-modified", &modified)]);
        let day = Duration::from_secs(86_400);
        let lifetime = heuristic_lifetime(&h, now, 0.1, day).unwrap();
        assert!((99..=100).contains(&lifetime.as_secs()), "{lifetime:?}");
        assert_eq!(
            heuristic_lifetime(&h, now, 0.1, Duration::from_secs(30)),
            Some(Duration::from_secs(30))
        );
        let future = httpdate::fmt_http_date(now + Duration::from_secs(1000));
        for odd in [
            headers(&[("date", &date)]),
            headers(&[("date", &date), ("last-modified", "yesterday")]),
            headers(&[("date", &date), ("last-modified", &future)]),
            headers(&[("last-modified", &modified), ("last-modified", &modified)]),
        ] {
            assert_eq!(heuristic_lifetime(&odd, now, 0.1, day), None, "{odd:?}");
        }
    }

    #[test]
    fn invalid_expires_is_stale_and_silence_is_none() {
        let now = SystemTime::now();
        let h = headers(&[("expires", "0")]);
        assert_eq!(
            origin_lifetime(&CacheControl::parse(&h), &h, now, true),
            Some(Duration::ZERO)
        );
        let h = headers(&[]);
        assert_eq!(
            origin_lifetime(&CacheControl::parse(&h), &h, now, true),
            None
        );
    }

    #[test]
    fn initial_age_takes_the_larger() {
        let now = SystemTime::now();
        let date = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(
            initial_age(
                &headers(&[("age", "10"), ("date", &date)]),
                now,
                Duration::ZERO
            ),
            30
        );
        assert_eq!(
            initial_age(
                &headers(&[("age", "100"), ("date", &date)]),
                now,
                Duration::from_secs(2)
            ),
            102,
            "the Age value plus the time the request took"
        );
        assert_eq!(
            initial_age(&headers(&[("age", "x")]), now, Duration::ZERO),
            0
        );
        // Too large for a u64 is very old (RFC 9111 §1.2.2), not invalid; a sign is invalid.
        assert_eq!(
            initial_age(
                &headers(&[("age", "99999999999999999999")]),
                now,
                Duration::ZERO
            ),
            1 << 31
        );
        assert_eq!(
            initial_age(&headers(&[("age", "+5")]), now, Duration::ZERO),
            0
        );
        // §5.1: only a non-negative integer; a list or several lines: the first member.
        for (value, age) in [
            ("1a", 0),
            ("-1", 0),
            ("1.5", 0),
            ("", 0),
            (" 7 ", 7),
            ("3, 9", 3),
        ] {
            assert_eq!(
                initial_age(&headers(&[("age", value)]), now, Duration::ZERO),
                age,
                "{value:?}"
            );
        }
        assert_eq!(
            initial_age(
                &headers(&[("age", "4"), ("age", "100")]),
                now,
                Duration::ZERO
            ),
            4
        );
        // A Date in the future (clock skew) is not a negative age.
        let future = httpdate::fmt_http_date(now + Duration::from_secs(300));
        assert_eq!(
            initial_age(&headers(&[("date", &future)]), now, Duration::ZERO),
            0
        );
    }
}
