//! Request directives (RFC 9111 §5.2.1, §5.4; RFC 8246): with client revalidation allowed,
//! a request's `max-age`, `min-fresh`, `no-cache` (and `Pragma: no-cache` without
//! `Cache-Control`) make the cache revalidate a fresh entry with its validators
//! (`fwd=request`); with the default policy they are ignored. `only-if-cached` never reaches
//! the origin (`504` when nothing stored will do), `max-stale` accepts stale entries within
//! its bound, a `no-store` request may be answered from the cache but its own response is not
//! stored, and an `immutable` response is not revalidated while fresh.

mod common;

use common::rfc::{Cached, Setup, cache, fields, get, send, status_of};
use common::validating::Validating;
use std::time::Duration;
use tower_response_cache::Policy;

/// An origin whose `200` carries `ETag: "v1"` and `cc`.
fn origin_with(cc: &str) -> Validating {
    let headers = fields(&[("cache-control", cc)]);
    Validating::new(|s| s.headers = headers)
}

/// A cache over `origin` with `policy`, filled by one plain request (and flushed).
async fn filled(origin: &Validating, policy: Policy) -> (Cached, Setup) {
    let (service, setup) = cache(origin, policy);
    let first = send(&service, get(&[])).await;
    assert_eq!((first.status, first.cache()), (200, "MISS"));
    assert!(
        status_of(&first).contains("stored"),
        "{}",
        status_of(&first)
    );
    setup.flush().await;
    (service, setup)
}

fn revalidating() -> Policy {
    Policy::new().client_revalidation(true)
}

/// Asserts that `got` was a revalidation of the fresh stored response forced by the request:
/// the origin saw the stored `ETag` and answered 304 (`n` of them so far), the stored body
/// answered, and `Cache-Status` says the request sent it forward.
fn assert_forced_revalidation(origin: &Validating, got: &common::Got, n: usize, what: &str) {
    assert_eq!(
        origin.last_seen()["if-none-match"],
        "\"v1\"",
        "{what}: the stored validator"
    );
    assert_eq!(
        (origin.full(), origin.not_modified()),
        (1, n),
        "{what}: revalidated, not refetched"
    );
    assert_eq!(
        (got.status, got.text().as_str()),
        (200, "version 1"),
        "{what}"
    );
    assert_ne!(got.cache(), "HIT", "{what}");
    assert!(
        status_of(got).contains("fwd=request; fwd-status=304"),
        "{what}: {}",
        status_of(got)
    );
}

/// §5.2.1.1: `max-age=0` refuses any response older than 0 s: an entry 1 s old, fresh for
/// another minute, is revalidated first. `max-age=2` on an entry the origin says is 5 s old
/// too, at once.
#[tokio::test]
async fn rfc9111_5_2_1_1_request_max_age_revalidates_an_older_fresh_entry() {
    let origin = origin_with("max-age=60");
    let (service, setup) = filled(&origin, revalidating()).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let got = send(&service, get(&[("cache-control", "max-age=0")])).await;
    assert_forced_revalidation(&origin, &got, 1, "max-age=0");
    setup.flush().await;
    // The 304 refreshed the entry: a plain request is a hit, a lenient max-age too.
    let hit = send(&service, get(&[])).await;
    assert_eq!(hit.cache(), "HIT");
    let hit = send(&service, get(&[("cache-control", "max-age=30")])).await;
    assert_eq!(hit.cache(), "HIT");
    assert_eq!(origin.calls(), 2);
    assert_eq!(setup.stats.snapshot().revalidated, 1);

    let origin = Validating::new(|s| {
        s.headers = fields(&[("cache-control", "max-age=60"), ("age", "5")]);
    });
    let (service, _) = filled(&origin, revalidating()).await;
    let got = send(&service, get(&[("cache-control", "max-age=2")])).await;
    assert_forced_revalidation(&origin, &got, 1, "max-age=2 on Age 5");
    let hit = send(&service, get(&[("cache-control", "max-age=10")])).await;
    assert_eq!(hit.cache(), "HIT", "5 s old is young enough for max-age=10");
}

/// §5.2.1.3: `min-fresh=100` asks for a response fresh for at least 100 s more: an entry
/// with `max-age=60` is revalidated; `min-fresh=10` takes it as it is.
#[tokio::test]
async fn rfc9111_5_2_1_3_min_fresh_revalidates_an_entry_fresh_for_less() {
    let origin = origin_with("max-age=60");
    let (service, _) = filled(&origin, revalidating()).await;
    let hit = send(&service, get(&[("cache-control", "min-fresh=10")])).await;
    assert_eq!(hit.cache(), "HIT");
    assert_eq!(origin.calls(), 1);
    let got = send(&service, get(&[("cache-control", "min-fresh=100")])).await;
    assert_forced_revalidation(&origin, &got, 1, "min-fresh=100");
}

/// §5.2.1.4: a request's `no-cache` makes the cache validate even a fresh entry.
#[tokio::test]
async fn rfc9111_5_2_1_4_request_no_cache_revalidates() {
    let origin = origin_with("max-age=60");
    let (service, setup) = filled(&origin, revalidating()).await;
    let got = send(&service, get(&[("cache-control", "no-cache")])).await;
    assert_forced_revalidation(&origin, &got, 1, "no-cache");
    setup.flush().await;
    let got = send(&service, get(&[("cache-control", "no-cache")])).await;
    assert_forced_revalidation(&origin, &got, 2, "no-cache again");
    // A full answer to the forced revalidation replaces the entry.
    origin.set(|s| {
        s.etag = Some("\"v2\"".into());
        s.body = "version 2".into();
    });
    setup.flush().await;
    let got = send(&service, get(&[("cache-control", "no-cache")])).await;
    assert_eq!(got.text(), "version 2");
    setup.flush().await;
    let hit = send(&service, get(&[])).await;
    assert_eq!((hit.cache(), hit.text().as_str()), ("HIT", "version 2"));
}

/// §5.4: `Pragma: no-cache` stands for `Cache-Control: no-cache` only when the request has no
/// `Cache-Control`; with one (`max-stale` here) it is ignored.
#[tokio::test]
async fn rfc9111_5_4_pragma_no_cache_only_without_cache_control() {
    let origin = origin_with("max-age=60");
    let (service, _) = filled(&origin, revalidating()).await;
    let hit = send(
        &service,
        get(&[("pragma", "no-cache"), ("cache-control", "max-stale")]),
    )
    .await;
    assert_eq!(hit.cache(), "HIT", "Pragma ignored beside Cache-Control");
    assert_eq!(origin.calls(), 1);
    let got = send(&service, get(&[("pragma", "no-cache")])).await;
    assert_forced_revalidation(&origin, &got, 1, "Pragma: no-cache");
    // Other pragma directives beside it, any case.
    let got = send(&service, get(&[("pragma", "x-foo, No-Cache")])).await;
    assert_forced_revalidation(&origin, &got, 2, "Pragma: x-foo, No-Cache");
    // Other pragmas alone mean nothing.
    let hit = send(&service, get(&[("pragma", "x-foo")])).await;
    assert_eq!(hit.cache(), "HIT");
}

/// With the default policy (client revalidation off) requests cannot send fresh entries to
/// the origin: `no-cache`, `max-age=0`, `min-fresh`, `Pragma: no-cache` all get the hit.
#[tokio::test]
async fn rfc9111_5_2_1_default_policy_ignores_client_revalidation() {
    let origin = Validating::new(|s| {
        s.headers = fields(&[("cache-control", "max-age=60"), ("age", "5")]);
    });
    let (service, setup) = filled(&origin, Policy::new()).await;
    for headers in [
        &[("cache-control", "no-cache")][..],
        &[("cache-control", "max-age=0")],
        &[("cache-control", "min-fresh=1000")],
        &[("pragma", "no-cache")],
        &[("cache-control", "no-cache, max-age=0, min-fresh=1000")],
    ] {
        let got = send(&service, get(headers)).await;
        assert_eq!(
            (got.cache(), got.text().as_str()),
            ("HIT", "version 1"),
            "{headers:?}"
        );
    }
    assert_eq!(origin.calls(), 1);
    assert_eq!(setup.stats.snapshot().hits, 5);
}

/// §5.2.1.7: `only-if-cached` never reaches the origin: on an empty cache, a `504` of the
/// cache's own (`detail=only-if-cached`); once stored, the hit. Honoured whatever the policy.
#[tokio::test]
async fn rfc9111_5_2_1_7_only_if_cached() {
    for policy in [Policy::new(), revalidating(), Policy::shared_cache()] {
        let origin = origin_with("max-age=60");
        let (service, setup) = cache(&origin, policy);
        let got = send(&service, get(&[("cache-control", "only-if-cached")])).await;
        assert_eq!(got.status, 504);
        assert!(got.body.is_empty());
        assert!(
            status_of(&got).contains("detail=only-if-cached"),
            "{}",
            status_of(&got)
        );
        assert_eq!(origin.calls(), 0, "the origin is never asked");
        // And nothing was remembered against the key: a plain request fills it.
        let first = send(&service, get(&[])).await;
        assert_eq!(first.cache(), "MISS");
        setup.flush().await;
        let hit = send(&service, get(&[("cache-control", "only-if-cached")])).await;
        assert_eq!(
            (hit.status, hit.cache(), hit.text().as_str()),
            (200, "HIT", "version 1")
        );
        assert_eq!(origin.calls(), 1);
    }
}

/// §5.2.1.7: a stored response that must be validated first will not do for `only-if-cached`
/// (the origin may not be asked): `504`, no origin call. With `max-stale` beside it, the stale
/// response will do.
#[tokio::test]
async fn rfc9111_5_2_1_7_only_if_cached_with_a_stale_entry() {
    let origin = origin_with("max-age=1");
    let (service, _) = filled(&origin, Policy::new()).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let got = send(&service, get(&[("cache-control", "only-if-cached")])).await;
    assert_eq!(got.status, 504);
    assert_eq!(origin.calls(), 1);
    let got = send(
        &service,
        get(&[("cache-control", "only-if-cached, max-stale")]),
    )
    .await;
    assert_eq!(
        (got.status, got.cache(), got.text().as_str()),
        (200, "STALE", "version 1")
    );
}

/// §5.2.1.7 ("a cache SHOULD either respond using a stored response ... or respond with a
/// 504"): a request the policy sends past the cache (here: it carries `Cookie`) must not reach
/// the origin either when it says `only-if-cached`.
#[tokio::test]
async fn rfc9111_5_2_1_7_only_if_cached_is_honoured_when_bypassing() {
    let origin = origin_with("max-age=60");
    let (service, _) = cache(&origin, Policy::new());
    let got = send(
        &service,
        get(&[("cache-control", "only-if-cached"), ("cookie", "sid=1")]),
    )
    .await;
    assert_eq!(
        (got.status, origin.calls()),
        (504, 0),
        "{}",
        status_of(&got)
    );
}

/// §5.2.1.2: `max-stale` (any staleness) and `max-stale=60` take an expired entry (kept for
/// revalidation) as it is, at once: `STALE`, the stored body, even though the origin has a
/// new version; the entry is refreshed behind the answer.
#[tokio::test]
async fn rfc9111_5_2_1_2_max_stale_serves_an_expired_entry() {
    for directive in ["max-stale", "max-stale=60"] {
        let origin = origin_with("max-age=1");
        let (service, setup) = filled(&origin, Policy::new()).await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        origin.set(|s| {
            s.etag = Some("\"v2\"".into());
            s.body = "version 2".into();
            s.headers = fields(&[("cache-control", "max-age=60")]);
        });
        let got = send(&service, get(&[("cache-control", directive)])).await;
        assert_eq!(
            (got.status, got.cache(), got.text().as_str()),
            (200, "STALE", "version 1"),
            "{directive}"
        );
        assert!(status_of(&got).contains("hit"), "{}", status_of(&got));
        assert_eq!(setup.stats.snapshot().stale, 1);
        // The refresh behind it.
        for _ in 0..100 {
            if origin.full() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        setup.flush().await;
        let hit = send(&service, get(&[])).await;
        assert_eq!(
            (hit.cache(), hit.text().as_str()),
            ("HIT", "version 2"),
            "{directive}"
        );
    }
}

/// §5.2.1.2: `max-stale=1` does not take a response stale by 2 s or more: it is revalidated
/// first (`fwd=stale`); `max-stale=5` takes it.
#[tokio::test]
async fn rfc9111_5_2_1_2_max_stale_bound_is_respected() {
    // Two caches, both stale by about 2.2 s after the same sleeps.
    let strict = origin_with("max-age=0");
    let (strict_service, _) = filled(&strict, Policy::new()).await;
    let lenient = origin_with("max-age=0");
    let (lenient_service, _) = filled(&lenient, Policy::new()).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let got = send(&strict_service, get(&[("cache-control", "max-stale=1")])).await;
    assert_ne!(got.cache(), "STALE");
    assert_eq!(got.text(), "version 1");
    assert_eq!(strict.not_modified(), 1, "validated before use");
    assert_eq!(strict.last_seen()["if-none-match"], "\"v1\"");
    assert!(status_of(&got).contains("fwd=stale"), "{}", status_of(&got));
    let got = send(&lenient_service, get(&[("cache-control", "max-stale=5")])).await;
    assert_eq!(
        (got.cache(), got.text().as_str()),
        ("STALE", "version 1"),
        "{}",
        status_of(&got)
    );
}

/// §5.2.1.2 with §4.2 and §4.2.3: staleness is the response's current age less its freshness
/// lifetime. `max-age=1` received with `Age: 3` is stale by 2 s the moment it is stored, so
/// `max-stale=1` must not take it unvalidated; `max-stale=10` may.
#[tokio::test]
async fn rfc9111_5_2_1_2_max_stale_counts_staleness_from_the_age() {
    let origin = Validating::new(|s| {
        s.headers = fields(&[("cache-control", "max-age=1"), ("age", "3")]);
    });
    let (service, setup) = cache(&origin, Policy::new());
    send(&service, get(&[])).await;
    setup.flush().await;
    let got = send(&service, get(&[("cache-control", "max-stale=10")])).await;
    assert_eq!(
        (got.cache(), got.text().as_str()),
        ("STALE", "version 1"),
        "{}",
        status_of(&got)
    );
    let origin = Validating::new(|s| {
        s.headers = fields(&[("cache-control", "max-age=1"), ("age", "3")]);
    });
    let (service, setup) = cache(&origin, Policy::new());
    send(&service, get(&[])).await;
    setup.flush().await;
    let got = send(&service, get(&[("cache-control", "max-stale=1")])).await;
    assert_ne!(
        got.cache(),
        "STALE",
        "stale by 2 s, beyond max-stale=1: {}",
        status_of(&got)
    );
    assert_eq!(origin.not_modified(), 1, "validated before use");
}

/// §5.2.1.5: a request's `no-store` may be answered from the cache; the response to it is not
/// stored (`detail=request-no-store`), and the key is not remembered as uncacheable for
/// others.
#[tokio::test]
async fn rfc9111_5_2_1_5_request_no_store() {
    let origin = origin_with("max-age=60");
    let (service, _) = filled(&origin, Policy::new()).await;
    let hit = send(&service, get(&[("cache-control", "no-store")])).await;
    assert_eq!((hit.cache(), hit.text().as_str()), ("HIT", "version 1"));
    assert_eq!(origin.calls(), 1);

    let origin = origin_with("max-age=60");
    let (service, setup) = cache(&origin, Policy::new());
    let got = send(&service, get(&[("cache-control", "no-store")])).await;
    assert_eq!((got.status, got.cache()), (200, "MISS"));
    assert!(
        status_of(&got).contains("fwd=uri-miss; fwd-status=200; detail=request-no-store"),
        "{}",
        status_of(&got)
    );
    setup.flush().await;
    let got = send(&service, get(&[])).await;
    assert_eq!(got.cache(), "MISS", "nothing was stored");
    assert!(
        status_of(&got).contains("fwd=uri-miss"),
        "{}",
        status_of(&got)
    );
    assert!(status_of(&got).contains("stored"), "{}", status_of(&got));
    setup.flush().await;
    let hit = send(&service, get(&[])).await;
    assert_eq!(hit.cache(), "HIT");
    assert_eq!(origin.calls(), 2);
}

/// RFC 8246: an `immutable` response is not revalidated while fresh, whatever the request's
/// `no-cache`, `max-age=0` or `Pragma: no-cache` (client revalidation allowed); once stale it
/// is revalidated like any other.
#[tokio::test]
async fn rfc8246_immutable_is_not_revalidated_while_fresh() {
    let origin = origin_with("max-age=60, immutable");
    let (service, _) = filled(&origin, revalidating()).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for headers in [
        &[("cache-control", "no-cache")][..],
        &[("cache-control", "max-age=0")],
        &[("pragma", "no-cache")],
    ] {
        let got = send(&service, get(headers)).await;
        assert_eq!(
            (got.cache(), got.text().as_str()),
            ("HIT", "version 1"),
            "{headers:?}"
        );
    }
    assert_eq!(origin.calls(), 1);

    let origin = origin_with("max-age=1, immutable");
    let (service, _) = filled(&origin, revalidating()).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let got = send(&service, get(&[])).await;
    assert_eq!(got.text(), "version 1");
    assert_eq!(origin.not_modified(), 1, "stale: revalidated");
}
