//! Freshness and age (RFC 9111 §4.2, §4.2.1, §4.2.3, §5.1, §5.3, §5.2.2.10): how the origin's
//! `Age` is read (invalid values ignored, the first line and member used, a huge value is
//! very old), how `Expires` and `Date` give a lifetime (an invalid or past `Expires` is
//! stale), that `max-age` and `s-maxage` override `Expires` and `s-maxage` beats `max-age`,
//! that every answer from the cache carries a current `Age`, and that the age counts the time
//! the origin took to answer. Lifetimes are read from `Cache-Status`' `ttl`, ages from `Age`.

mod common;

use common::rfc::{cache, date_in, get, origin_with, send, status_of, ttl_of, twice};
use std::time::Duration;
use tower_response_cache::Policy;

/// The `Age` of an answer, which must be there and be a non-negative integer.
fn age_of(got: &common::Got) -> u64 {
    let age = got.headers.get("age").expect("an Age field");
    age.to_str().unwrap().parse().expect("Age is delta-seconds")
}

/// RFC 9211 §2: this cache adds one member to `Cache-Status`, a valid list member naming it;
/// nothing else (the origin sent none here).
fn assert_one_member(got: &common::Got, what: &str) {
    let members: Vec<&str> = got
        .headers
        .get_all("cache-status")
        .iter()
        .flat_map(|v| v.to_str().unwrap().split(','))
        .map(str::trim)
        .collect();
    assert!(
        members.len() == 1 && members[0].starts_with("tower-response-cache;"),
        "{what}: Cache-Status members {members:?}"
    );
}

/// §5.1: `Age` is a non-negative integer; a value that is not one (`1a`, `-1`, `1.5`, empty,
/// a sign) is ignored: the response counts as new.
#[tokio::test]
async fn rfc9111_5_1_invalid_age_is_ignored() {
    for value in ["1a", "-1", "1.5", "", "+5", "0x10", "5 s"] {
        let origin = origin_with(&[("cache-control", "max-age=60"), ("age", value)], true);
        let (service, setup) = cache(&origin, Policy::new());
        let (first, hit) = twice(&service, &setup).await;
        let ttl = ttl_of(&first).unwrap_or_else(|| panic!("{value:?}: {}", status_of(&first)));
        assert!((59..=60).contains(&ttl), "{value:?}: stored ttl {ttl}");
        assert_eq!(hit.cache(), "HIT", "{value:?}");
        assert!(age_of(&hit) <= 1, "{value:?}: hit Age {}", age_of(&hit));
        assert!(ttl_of(&hit).unwrap() >= 58, "{value:?}");
    }
}

/// §5.1: a valid `Age` makes the stored response that much older: fresh for `max-age - Age`,
/// and its hits' `Age` counts from it. Whitespace around the value is not part of it.
#[tokio::test]
async fn rfc9111_5_1_valid_age_counts() {
    for (value, age) in [("7", 7u64), (" 7 ", 7), ("0", 0), ("59", 59)] {
        let origin = origin_with(&[("cache-control", "max-age=60"), ("age", value)], true);
        let (service, setup) = cache(&origin, Policy::new());
        let (first, hit) = twice(&service, &setup).await;
        let ttl = ttl_of(&first).unwrap_or_else(|| panic!("{value:?}: {}", status_of(&first)));
        let expected = 60 - age as i64;
        assert!(
            (expected - 2..=expected).contains(&ttl),
            "{value:?}: ttl {ttl}, expected {expected}"
        );
        assert_eq!(hit.cache(), "HIT", "{value:?}");
        assert!(
            (age..=age + 2).contains(&age_of(&hit)),
            "{value:?}: hit Age {}",
            age_of(&hit)
        );
    }
}

/// §5.1 (a list where one value is expected): with several field lines or a list, the first
/// member of the first line counts: `4` then `100` is 4; `3, 9` is 3.
#[tokio::test]
async fn rfc9111_5_1_first_age_line_and_member_count() {
    let cases: [(&[(&str, &str)], u64); 3] = [
        (&[("age", "4"), ("age", "100")], 4),
        (&[("age", "3, 9")], 3),
        (&[("age", "3,9"), ("age", "50")], 3),
    ];
    for (ages, age) in cases {
        let mut pairs = vec![("cache-control", "max-age=60")];
        pairs.extend_from_slice(ages);
        let origin = origin_with(&pairs, true);
        let (service, setup) = cache(&origin, Policy::new());
        let (first, hit) = twice(&service, &setup).await;
        assert!(
            status_of(&first).contains("stored"),
            "{ages:?}: {}",
            status_of(&first)
        );
        assert_eq!(hit.cache(), "HIT", "{ages:?}");
        assert!(
            (age..=age + 2).contains(&age_of(&hit)),
            "{ages:?}: hit Age {}",
            age_of(&hit)
        );
        assert_eq!(hit.headers.get_all("age").iter().count(), 1, "{ages:?}");
        let ttl = ttl_of(&hit).unwrap();
        let expected = 60 - age as i64;
        assert!((expected - 2..=expected).contains(&ttl), "{ages:?}: {ttl}");
    }
}

/// §1.2.2, §5.1: an `Age` too large to hold is a very old response (2^31 s), not an invalid
/// one: with `max-age=60` it is already stale, so never answered from the cache unvalidated.
/// Without a validator it is not stored at all.
#[tokio::test]
async fn rfc9111_1_2_2_huge_age_is_already_stale() {
    for value in ["99999999999999999999", "2147483648", "61"] {
        let origin = origin_with(&[("cache-control", "max-age=60"), ("age", value)], false);
        let (service, setup) = cache(&origin, Policy::new());
        let (first, second) = twice(&service, &setup).await;
        assert!(
            status_of(&first).contains("fwd-status=200; detail=not-fresh"),
            "{value}: {}",
            status_of(&first)
        );
        assert_ne!(second.cache(), "HIT", "{value}");
        assert_eq!(origin.calls(), 2, "{value}");
    }
    // With a validator it may be kept, but only to be revalidated.
    let origin = origin_with(
        &[
            ("cache-control", "max-age=60"),
            ("age", "99999999999999999999"),
        ],
        true,
    );
    let (service, setup) = cache(&origin, Policy::new());
    let (first, second) = twice(&service, &setup).await;
    assert!(
        ttl_of(&first).is_none_or(|t| t <= 0),
        "{}",
        status_of(&first)
    );
    assert_ne!(second.cache(), "HIT");
    assert_eq!(origin.calls(), 2);
    assert_eq!(second.text(), "version 1");
}

/// §4.2.3: the apparent age from `Date` counts too: a response dated 30 s ago (and no `Age`)
/// is 30 s old when stored.
#[tokio::test]
async fn rfc9111_4_2_3_apparent_age_from_date() {
    let date = date_in(-30);
    let origin = origin_with(&[("cache-control", "max-age=60"), ("date", &date)], true);
    let (service, setup) = cache(&origin, Policy::new());
    let (first, hit) = twice(&service, &setup).await;
    let ttl = ttl_of(&first).unwrap();
    assert!((28..=30).contains(&ttl), "ttl {ttl}");
    assert_eq!(hit.cache(), "HIT");
    assert!((30..=32).contains(&age_of(&hit)), "Age {}", age_of(&hit));
}

/// §4.2.3 (`response_delay`): the time the origin took is added to its `Age` value: an origin
/// that takes 1.1 s to send `Age: 10` gives hits an `Age` of at least 11.
#[tokio::test]
async fn rfc9111_4_2_3_age_includes_the_response_delay() {
    let origin = origin_with(&[("cache-control", "max-age=60"), ("age", "10")], true);
    origin.set(|s| s.delay = Duration::from_millis(1100));
    let (service, setup) = cache(&origin, Policy::new());
    let first = send(&service, get(&[])).await;
    setup.flush().await;
    origin.set(|s| s.delay = Duration::ZERO);
    let ttl = ttl_of(&first).unwrap();
    assert!(ttl <= 49, "fresh for at most 60 - 11: {ttl}");
    let hit = send(&service, get(&[])).await;
    assert_eq!(hit.cache(), "HIT");
    assert!(age_of(&hit) >= 11, "Age {}", age_of(&hit));
    assert_eq!(origin.calls(), 1);
}

/// §4.2.3, §5.1: every answer from the cache carries its current `Age` (a cache MUST send one
/// on a response from its store): hits, stale answers, revalidated ones; the origin's own
/// `Age` field is not stored as such but replaced.
#[tokio::test]
async fn rfc9111_5_1_every_answer_from_the_cache_carries_an_age() {
    let origin = origin_with(&[("cache-control", "max-age=1")], true);
    let policy = Policy::new().stale_while_revalidate(Duration::from_secs(60));
    let (service, setup) = cache(&origin, policy);
    let (_, hit) = twice(&service, &setup).await;
    assert_eq!(hit.cache(), "HIT");
    assert!(age_of(&hit) <= 1);
    assert_one_member(&hit, "hit");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let stale = send(&service, get(&[])).await;
    assert_eq!(stale.cache(), "STALE");
    assert!(age_of(&stale) >= 1, "Age {}", age_of(&stale));
    assert!(ttl_of(&stale).unwrap() <= 0, "{}", status_of(&stale));
    assert_one_member(&stale, "stale");

    // A 304-confirmed answer is an answer from the store too.
    let origin = origin_with(&[("cache-control", "max-age=1")], true);
    let (service, setup) = cache(&origin, Policy::new());
    send(&service, get(&[])).await;
    setup.flush().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let revalidated = send(&service, get(&[])).await;
    assert_eq!(origin.not_modified(), 1);
    assert!(revalidated.headers.contains_key("age"));
    age_of(&revalidated);
    assert_one_member(&revalidated, "revalidated");
    assert_eq!(setup.stats.snapshot().revalidated, 1);
}

/// §5.3: an invalid `Expires` (`0`, garbage, two lines) means already expired: without a
/// validator, nothing to store (`detail=not-fresh`).
#[tokio::test]
async fn rfc9111_5_3_invalid_expires_is_stale() {
    let date = date_in(0);
    let later = date_in(100);
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![("expires", "0")],
        vec![("expires", "garbage")],
        vec![("expires", "-1"), ("date", &date)],
        vec![("expires", "Thu, 32 Jan 2099 00:00:00 GMT")],
        vec![("expires", &later), ("expires", &later)],
    ];
    for pairs in cases {
        let origin = origin_with(&pairs, false);
        let (service, setup) = cache(&origin, Policy::new());
        let (first, second) = twice(&service, &setup).await;
        assert!(
            status_of(&first).contains("fwd-status=200; detail=not-fresh"),
            "{pairs:?}: {}",
            status_of(&first)
        );
        assert_ne!(second.cache(), "HIT", "{pairs:?}");
        assert_eq!(origin.calls(), 2, "{pairs:?}");
    }
}

/// §5.3: an `Expires` in the past (before `Date`, or before now without one) is stale.
#[tokio::test]
async fn rfc9111_5_3_expires_in_the_past_is_stale() {
    let past = date_in(-100);
    let now = date_in(0);
    for pairs in [
        vec![("expires", past.as_str())],
        vec![("expires", past.as_str()), ("date", now.as_str())],
        vec![("expires", now.as_str()), ("date", now.as_str())],
    ] {
        let origin = origin_with(&pairs, false);
        let (service, setup) = cache(&origin, Policy::new());
        let (first, second) = twice(&service, &setup).await;
        assert!(
            status_of(&first).contains("detail=not-fresh"),
            "{pairs:?}: {}",
            status_of(&first)
        );
        assert_ne!(second.cache(), "HIT", "{pairs:?}");
    }
}

/// §4.2.1: the lifetime is `Expires - Date`; the response's age (apparent, from `Date`) is then
/// taken off. A `Date` ahead of our clock (skew) does not lengthen it: `Expires` 100 s after a
/// `Date` 1000 s in the future is 100 s of freshness, not 1100.
#[tokio::test]
async fn rfc9111_4_2_1_expires_minus_date_is_the_lifetime() {
    let cases: [(i64, i64, std::ops::RangeInclusive<i64>); 4] = [
        // (Date from now, Expires from now, expected ttl)
        (0, 100, 98..=100),
        (-50, 50, 48..=50),
        (1000, 1100, 98..=100),
        (-10, 600, 598..=600),
    ];
    for (date, expires, expected) in cases {
        let (date, expires) = (date_in(date), date_in(expires));
        let origin = origin_with(&[("date", &date), ("expires", &expires)], false);
        let (service, setup) = cache(&origin, Policy::new());
        let (first, hit) = twice(&service, &setup).await;
        let ttl = ttl_of(&first).unwrap_or_else(|| panic!("{date}: {}", status_of(&first)));
        assert!(
            expected.contains(&ttl),
            "Date {date}, Expires {expires}: ttl {ttl}"
        );
        assert_eq!(hit.cache(), "HIT", "{date}");
    }
    // Without `Date`, from now.
    let expires = date_in(100);
    let origin = origin_with(&[("expires", &expires)], false);
    let (service, _) = cache(&origin, Policy::new());
    let first = send(&service, get(&[])).await;
    assert!((98..=100).contains(&ttl_of(&first).unwrap()));
}

/// §5.3: with `max-age` (or `s-maxage`), `Expires` is ignored, invalid or not.
#[tokio::test]
async fn rfc9111_5_3_max_age_overrides_expires() {
    let far = date_in(10_000);
    for (pairs, ttl) in [
        (vec![("cache-control", "max-age=60"), ("expires", "0")], 60),
        (
            vec![("cache-control", "max-age=60"), ("expires", far.as_str())],
            60,
        ),
        (vec![("cache-control", "s-maxage=30"), ("expires", "0")], 30),
    ] {
        let origin = origin_with(&pairs, false);
        let (service, setup) = cache(&origin, Policy::new());
        let (first, hit) = twice(&service, &setup).await;
        assert_eq!(
            ttl_of(&first),
            Some(ttl),
            "{pairs:?}: {}",
            status_of(&first)
        );
        assert_eq!(hit.cache(), "HIT", "{pairs:?}");
    }
}

/// §5.2.2.10: a shared cache takes `s-maxage` over `max-age` (either way round) and over
/// `Expires`.
#[tokio::test]
async fn rfc9111_5_2_2_10_s_maxage_beats_max_age() {
    let soon = date_in(5);
    for (cc, ttl) in [
        ("max-age=1, s-maxage=60", 60),
        ("s-maxage=60, max-age=1", 60),
        ("max-age=60, s-maxage=5", 5),
    ] {
        let origin = origin_with(&[("cache-control", cc), ("expires", &soon)], true);
        let (service, setup) = cache(&origin, Policy::new());
        let (first, hit) = twice(&service, &setup).await;
        assert_eq!(ttl_of(&first), Some(ttl), "{cc}: {}", status_of(&first));
        assert_eq!(hit.cache(), "HIT", "{cc}");
        assert_eq!(origin.calls(), 1, "{cc}");
    }
    // And it holds past max-age: still a hit after max-age=1 has run out.
    let origin = origin_with(&[("cache-control", "max-age=1, s-maxage=60")], true);
    let (service, setup) = cache(&origin, Policy::new());
    send(&service, get(&[])).await;
    setup.flush().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let hit = send(&service, get(&[])).await;
    assert_eq!(hit.cache(), "HIT");
    assert_eq!(origin.calls(), 1);
}

/// §4.2.1: an invalid or repeated-and-conflicting `max-age` is never read as more freshness
/// than given: either the first value or stale.
#[tokio::test]
async fn rfc9111_4_2_1_invalid_or_conflicting_max_age() {
    for cc in ["max-age=abc", "max-age=-5", "max-age=1.5"] {
        let origin = origin_with(&[("cache-control", cc)], false);
        let (service, setup) = cache(&origin, Policy::new());
        let (first, second) = twice(&service, &setup).await;
        assert!(
            status_of(&first).contains("detail=not-fresh"),
            "{cc}: {}",
            status_of(&first)
        );
        assert_ne!(second.cache(), "HIT", "{cc}");
    }
    let origin = origin_with(&[("cache-control", "max-age=60, max-age=600")], false);
    let (service, _) = cache(&origin, Policy::new());
    let first = send(&service, get(&[])).await;
    assert!(
        matches!(ttl_of(&first), None | Some(59..=60)),
        "{}",
        status_of(&first)
    );
}
