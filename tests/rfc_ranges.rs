//! Range requests answered by the cache (RFC 9110 §14, §13.1.5, §15.3.7, §15.5.17): a stored
//! full response answers one byte range of a `GET` with a `206` (`Content-Range`,
//! `Content-Length`, the bytes), clamps a last position past the end, answers a range that
//! starts at or past the end with a `416` (`Content-Range: bytes */length`), and ignores
//! several ranges, malformed ranges, other units and `Range` on `HEAD` (the full response).
//! `If-Range` gates the range: a strong `ETag` or a date equal to a strong `Last-Modified`.
//! A `206` from the origin is never stored; a ranged first request fills the cache with the
//! whole response and still gets its `206`.

mod common;

use common::rfc::{Cached, Setup, cache, get, request, send, status_of};
use common::validating::Validating;
use std::time::{Duration, SystemTime};
use tower_response_cache::Policy;

const BODY: &str = "0123456789abcdef";

/// A request's fields, the status it should get, and the bytes.
type Case = (&'static [(&'static str, &'static str)], u16, &'static str);

fn header<'a>(got: &'a common::Got, name: &str) -> &'a str {
    got.headers.get(name).map_or("", |v| v.to_str().unwrap())
}

/// An origin with the 16-byte body, `ETag: "v1"`, stored for a minute.
fn origin() -> Validating {
    Validating::new(|s| {
        s.body = BODY.into();
        s.headers = vec![("cache-control".into(), "max-age=60".into())];
    })
}

/// Stores the origin's response (one MISS) and waits until the store has it.
async fn fill(service: &Cached, handle: &Setup) {
    let first = send(service, get(&[])).await;
    assert_eq!((first.status, first.text().as_str()), (200, BODY));
    assert_eq!(first.cache(), "MISS");
    handle.flush().await;
}

/// §14.1.2, §14.4, §15.3.7: one satisfiable range on a hit is a 206 with its bytes,
/// `Content-Range: bytes first-last/complete` and `Content-Length` the range's; suffix
/// ranges count from the end, open ranges run to it, a last position past the end is clamped.
#[tokio::test]
async fn rfc9110_14_1_2_one_byte_range_on_a_hit_is_206() {
    let origin = origin();
    let (service, handle) = cache(&origin, Policy::new());
    fill(&service, &handle).await;
    for (range, content_range, bytes) in [
        ("bytes=0-4", "bytes 0-4/16", "01234"),
        ("bytes=-3", "bytes 13-15/16", "def"),
        ("bytes=10-", "bytes 10-15/16", "abcdef"),
        ("bytes=5-1000", "bytes 5-15/16", "56789abcdef"),
        ("bytes=15-15", "bytes 15-15/16", "f"),
        ("bytes=0-0", "bytes 0-0/16", "0"),
        ("bytes=-100", "bytes 0-15/16", BODY),
        ("bytes=0-", "bytes 0-15/16", BODY),
        // §14.1.1: the unit is case-insensitive; whitespace and empty list elements allowed.
        ("Bytes=0-4", "bytes 0-4/16", "01234"),
        ("bytes= 2-3 ", "bytes 2-3/16", "23"),
        ("bytes=, 2-3", "bytes 2-3/16", "23"),
    ] {
        let got = send(&service, get(&[("range", range)])).await;
        assert_eq!(got.status, 206, "{range}");
        assert_eq!(got.cache(), "HIT", "{range}");
        assert_eq!(header(&got, "content-range"), content_range, "{range}");
        assert_eq!(
            header(&got, "content-length"),
            bytes.len().to_string(),
            "{range}"
        );
        assert_eq!(got.text(), bytes, "{range}");
        // §15.3.7: the representation's fields are on a 206 (ETag, Cache-Control...).
        assert_eq!(header(&got, "etag"), "\"v1\"", "{range}");
        assert_eq!(header(&got, "content-type"), "text/plain", "{range}");
    }
    assert_eq!(origin.calls(), 1);
}

/// §14.1.1, §15.5.17: a range whose first position is at or past the end is unsatisfiable:
/// 416 with `Content-Range: bytes */16` and no body; a zero-length suffix too.
#[tokio::test]
async fn rfc9110_15_5_17_unsatisfiable_range_is_416() {
    let origin = origin();
    let (service, handle) = cache(&origin, Policy::new());
    fill(&service, &handle).await;
    for range in ["bytes=16-", "bytes=100-200", "bytes=16-16", "bytes=-0"] {
        let got = send(&service, get(&[("range", range)])).await;
        assert_eq!((got.status, got.cache()), (416, "HIT"), "{range}");
        assert_eq!(header(&got, "content-range"), "bytes */16", "{range}");
        assert!(got.body.is_empty(), "{range}");
        assert!(
            !got.headers.contains_key("cache-control"),
            "{range}: the 416 must not be stored downstream"
        );
    }
    assert_eq!(origin.calls(), 1);
}

/// §14.2: a server MAY ignore `Range`: several ranges (no multipart here), a malformed range,
/// an invalid one (last before first), another unit, a repeated field: the full 200.
#[tokio::test]
async fn rfc9110_14_2_ranges_it_does_not_serve_give_the_full_response() {
    let origin = origin();
    let (service, handle) = cache(&origin, Policy::new());
    fill(&service, &handle).await;
    for range in [
        "bytes=0-1,4-5",
        "bytes=0-1, -2",
        "bytes=x-y",
        "bytes=5-4",
        "bytes=-",
        "bytes=",
        "bytes 0-4",
        "items=0-1",
        "0-4",
        "bytes=0x1-2",
    ] {
        let got = send(&service, get(&[("range", range)])).await;
        assert_eq!(
            (got.status, got.cache(), got.text().as_str()),
            (200, "HIT", BODY),
            "{range}"
        );
        assert!(!got.headers.contains_key("content-range"), "{range}");
        assert_eq!(header(&got, "content-length"), "16", "{range}");
    }
    let got = send(
        &service,
        get(&[("range", "bytes=0-1"), ("range", "bytes=4-5")]),
    )
    .await;
    assert_eq!((got.status, got.text().as_str()), (200, BODY));
    assert_eq!(origin.calls(), 1);
}

/// §13.1.5: `If-Range` with the stored strong `ETag` lets the range through (206); another
/// tag, or a weak tag (even the same opaque tag), gives the full 200.
#[tokio::test]
async fn rfc9110_13_1_5_if_range_with_an_entity_tag() {
    let origin = origin();
    let (service, handle) = cache(&origin, Policy::new());
    fill(&service, &handle).await;
    let ranged = |if_range: &'static str| get(&[("range", "bytes=0-4"), ("if-range", if_range)]);
    let got = send(&service, ranged("\"v1\"")).await;
    assert_eq!((got.status, got.text().as_str()), (206, "01234"));
    assert_eq!(header(&got, "content-range"), "bytes 0-4/16");
    for other in ["\"v2\"", "W/\"v1\"", "v1", "\"v1\", \"v2\""] {
        let got = send(&service, ranged(other)).await;
        assert_eq!(
            (got.status, got.cache(), got.text().as_str()),
            (200, "HIT", BODY),
            "{other}"
        );
    }
    // Without Range, If-Range does nothing.
    let got = send(&service, get(&[("if-range", "\"v2\"")])).await;
    assert_eq!((got.status, got.text().as_str()), (200, BODY));
    assert_eq!(origin.calls(), 1);
}

/// §13.1.5, §8.8.2.2: `If-Range` with an HTTP-date lets the range through only when it equals
/// a strong `Last-Modified` (at least a second before `Date`); another date gives the 200.
#[tokio::test]
async fn rfc9110_13_1_5_if_range_with_a_date() {
    let now = SystemTime::now();
    let modified = httpdate::fmt_http_date(now - Duration::from_secs(10));
    let later = httpdate::fmt_http_date(now - Duration::from_secs(9));
    let date = httpdate::fmt_http_date(now);
    let origin = Validating::new(|s| {
        s.body = BODY.into();
        s.etag = None;
        s.last_modified = Some(modified.clone());
        s.headers = vec![
            ("cache-control".into(), "max-age=60".into()),
            ("date".into(), date.clone()),
        ];
    });
    let (service, handle) = cache(&origin, Policy::new());
    fill(&service, &handle).await;
    let got = send(
        &service,
        get(&[("range", "bytes=-4"), ("if-range", modified.as_str())]),
    )
    .await;
    assert_eq!((got.status, got.cache()), (206, "HIT"));
    assert_eq!(
        (header(&got, "content-range"), got.text().as_str()),
        ("bytes 12-15/16", "cdef")
    );
    let got = send(
        &service,
        get(&[("range", "bytes=-4"), ("if-range", later.as_str())]),
    )
    .await;
    assert_eq!((got.status, got.text().as_str()), (200, BODY), "not equal");
    assert_eq!(origin.calls(), 1);
}

/// §8.8.2.2: a `Last-Modified` less than a second before `Date` is weak: `If-Range` with it
/// gives the full response.
#[tokio::test]
async fn rfc9110_13_1_5_if_range_with_a_weak_last_modified() {
    let date = httpdate::fmt_http_date(SystemTime::now());
    let origin = Validating::new(|s| {
        s.body = BODY.into();
        s.etag = None;
        s.last_modified = Some(date.clone());
        s.headers = vec![
            ("cache-control".into(), "max-age=60".into()),
            ("date".into(), date.clone()),
        ];
    });
    let (service, handle) = cache(&origin, Policy::new());
    fill(&service, &handle).await;
    let got = send(
        &service,
        get(&[("range", "bytes=0-4"), ("if-range", date.as_str())]),
    )
    .await;
    assert_eq!((got.status, got.text().as_str()), (200, BODY));
}

/// §14.2: `Range` only applies to `GET`: a `HEAD` with it gets the 200 (no body, the full
/// length).
#[tokio::test]
async fn rfc9110_14_2_head_with_range_is_200() {
    let origin = origin();
    let (service, handle) = cache(&origin, Policy::new());
    fill(&service, &handle).await;
    let got = send(&service, request("HEAD", &[("range", "bytes=0-4")])).await;
    assert_eq!((got.status, got.cache()), (200, "HIT"));
    assert!(got.body.is_empty());
    assert!(!got.headers.contains_key("content-range"));
    assert_eq!(header(&got, "content-length"), "16");
    assert_eq!(origin.calls(), 1);
}

/// RFC 9111 §3, §3.4: this cache does not store partial responses: an origin's own 206 (even
/// with `max-age`) passes through and the next request reaches the origin again.
#[tokio::test]
async fn rfc9111_3_4_an_origin_206_is_never_stored() {
    let origin = Validating::new(|s| {
        s.status = 206;
        s.body = "01234".into();
        s.headers = vec![
            ("cache-control".into(), "max-age=60".into()),
            ("content-range".into(), "bytes 0-4/16".into()),
        ];
    });
    let (service, handle) = cache(&origin, Policy::new());
    for (i, headers) in [&[][..], &[("range", "bytes=0-4")][..], &[][..]]
        .into_iter()
        .enumerate()
    {
        let got = send(&service, get(headers)).await;
        assert_eq!(
            (got.status, got.cache(), got.text().as_str()),
            (206, "MISS", "01234"),
            "{i}"
        );
        assert_eq!(header(&got, "content-range"), "bytes 0-4/16", "{i}");
        assert!(
            status_of(&got).contains("fwd-status=206; detail=status"),
            "{i}: {}",
            status_of(&got)
        );
        handle.flush().await;
        assert_eq!(origin.calls(), i + 1, "{i}: not stored");
    }
}

/// A ranged first request on an empty cache: the origin is asked for the whole response
/// (no `Range`, no `If-Range`), which is stored; the client gets its 206 (or 416).
#[tokio::test]
async fn rfc9110_14_a_ranged_first_request_fills_the_cache() {
    let cases: [Case; 5] = [
        (&[("range", "bytes=0-4")], 206, "01234"),
        (&[("range", "bytes=-3")], 206, "def"),
        (&[("range", "bytes=2-3"), ("if-range", "\"v1\"")], 206, "23"),
        (&[("range", "bytes=2-3"), ("if-range", "\"v0\"")], 200, BODY),
        (&[("range", "bytes=99-")], 416, ""),
    ];
    for (headers, status, bytes) in cases {
        let origin = origin();
        let (service, handle) = cache(&origin, Policy::new());
        let got = send(&service, get(headers)).await;
        let seen = origin.last_seen();
        assert!(!seen.contains_key("range"), "{headers:?}: Range was sent");
        assert!(
            !seen.contains_key("if-range"),
            "{headers:?}: If-Range was sent"
        );
        assert_eq!((got.status, got.cache()), (status, "MISS"), "{headers:?}");
        assert_eq!(got.text(), bytes, "{headers:?}");
        if status == 206 {
            assert_eq!(
                header(&got, "content-length"),
                bytes.len().to_string(),
                "{headers:?}"
            );
        }
        handle.flush().await;
        let hit = send(&service, get(&[])).await;
        assert_eq!(
            (hit.status, hit.cache(), hit.text().as_str()),
            (200, "HIT", BODY),
            "{headers:?}: the whole response was stored"
        );
        assert_eq!(header(&hit, "content-length"), "16");
        assert_eq!(origin.calls(), 1, "{headers:?}");
    }
}

/// Requests coalesced onto one fetch each get their own range of the one full response, as it
/// streams in.
#[tokio::test]
async fn rfc9110_14_coalesced_ranged_requests_each_get_their_range() {
    let origin = Validating::new(|s| {
        s.body = BODY.into();
        s.headers = vec![("cache-control".into(), "max-age=60".into())];
        s.delay = Duration::from_millis(200);
    });
    let (service, handle) = cache(&origin, Policy::new());
    let cases: [Case; 5] = [
        (&[("range", "bytes=0-1")], 206, "01"),
        (&[], 200, BODY),
        (&[("range", "bytes=-2")], 206, "ef"),
        (&[("range", "bytes=100-")], 416, ""),
        (&[("range", "bytes=3-5,8-9")], 200, BODY),
    ];
    let answers =
        futures_util::future::join_all(cases.iter().map(|(h, _, _)| send(&service, get(h)))).await;
    for ((headers, status, bytes), got) in cases.iter().zip(&answers) {
        assert_eq!(
            (got.status, got.text().as_str()),
            (*status, *bytes),
            "{headers:?}"
        );
        if *status == 206 {
            assert_eq!(
                header(got, "content-length"),
                bytes.len().to_string(),
                "{headers:?}"
            );
        }
    }
    assert_eq!(origin.calls(), 1);
    handle.flush().await;
    let hit = send(&service, get(&[("range", "bytes=4-5")])).await;
    assert_eq!(
        (hit.status, hit.cache(), hit.text().as_str()),
        (206, "HIT", "45")
    );
}

/// §13.2.2: preconditions come before `Range`: a matching `If-None-Match` with a `Range` is a
/// 304, a false `If-Match` a 412.
#[tokio::test]
async fn rfc9110_13_2_2_preconditions_before_range() {
    let origin = origin();
    let (service, handle) = cache(&origin, Policy::new());
    fill(&service, &handle).await;
    let got = send(
        &service,
        get(&[("range", "bytes=0-4"), ("if-none-match", "\"v1\"")]),
    )
    .await;
    assert_eq!(got.status, 304);
    assert!(got.body.is_empty());
    assert!(!got.headers.contains_key("content-range"));
    let got = send(
        &service,
        get(&[("range", "bytes=0-4"), ("if-match", "\"v2\"")]),
    )
    .await;
    assert_eq!(got.status, 412);
    let got = send(
        &service,
        get(&[("range", "bytes=0-4"), ("if-match", "\"v1\"")]),
    )
    .await;
    assert_eq!((got.status, got.text().as_str()), (206, "01234"));
}

/// RFC 9111 §4.3.4 with §14: a stale entry revalidated (origin 304, asked without the client's
/// `Range`) answers the client's range from the confirmed body.
#[tokio::test]
async fn rfc9110_14_range_answered_after_a_revalidation() {
    let origin = Validating::new(|s| s.body = BODY.into()); // max-age=1, ETag "v1"
    let (service, handle) = cache(&origin, Policy::new());
    fill(&service, &handle).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    origin.set(|s| s.headers = vec![("cache-control".into(), "max-age=60".into())]);
    let got = send(&service, get(&[("range", "bytes=4-7")])).await;
    assert!(!origin.last_seen().contains_key("range"));
    assert_eq!(origin.last_seen()["if-none-match"], "\"v1\"");
    assert_eq!((origin.full(), origin.not_modified()), (1, 1));
    assert_eq!((got.status, got.text().as_str()), (206, "4567"));
    assert_eq!(header(&got, "content-range"), "bytes 4-7/16");
    assert_eq!(header(&got, "content-length"), "4");
}

/// §14.1.1: a stored empty body has no satisfiable range: `bytes=0-` is a 416 with
/// `bytes */0`; a suffix range of it gives the (empty) full response.
#[tokio::test]
async fn rfc9110_14_1_1_ranges_of_an_empty_body() {
    let origin = Validating::new(|s| {
        s.body = String::new();
        s.headers = vec![("cache-control".into(), "max-age=60".into())];
    });
    let (service, handle) = cache(&origin, Policy::new());
    send(&service, get(&[])).await;
    handle.flush().await;
    let got = send(&service, get(&[("range", "bytes=0-")])).await;
    assert_eq!((got.status, got.cache()), (416, "HIT"));
    assert_eq!(header(&got, "content-range"), "bytes */0");
    let got = send(&service, get(&[("range", "bytes=-5")])).await;
    assert_eq!((got.status, got.cache()), (200, "HIT"));
    assert!(got.body.is_empty());
    assert_eq!(origin.calls(), 1);
}

/// §14.2: only a stored `200` is cut: a stored `404` is the 404 whatever the `Range`.
#[tokio::test]
async fn rfc9110_14_2_a_stored_error_is_not_ranged() {
    let origin = Validating::new(|s| {
        s.status = 404;
        s.body = BODY.into();
        s.headers = vec![("cache-control".into(), "max-age=60".into())];
    });
    let (service, handle) = cache(&origin, Policy::new());
    send(&service, get(&[])).await;
    handle.flush().await;
    let got = send(&service, get(&[("range", "bytes=0-4")])).await;
    assert_eq!(
        (got.status, got.cache(), got.text().as_str()),
        (404, "HIT", BODY)
    );
    assert!(!got.headers.contains_key("content-range"));
}
