//! Conditional requests answered by the cache (RFC 9110 §13, §15.4.5): once a response is
//! stored, a client's `If-None-Match` (weak comparison, `*`, lists), `If-Modified-Since` (only
//! without `If-None-Match`), `If-Match` and `If-Unmodified-Since` are evaluated against it on a
//! hit; a `304` carries only the fields §15.4.5 lists (and `Age`), never the body or the fields
//! that describe it; `HEAD` is evaluated like `GET`. After a revalidation with the origin, and
//! on a first (filling) request, the client still gets the answer its own conditions ask for,
//! while the origin is sent the cache's validators (or none), never the client's.

mod common;

use common::rfc::{Cached, Setup, cache, get, head, send, status_of};
use common::validating::Validating;
use std::time::{Duration, SystemTime};
use tower_response_cache::Policy;

/// The names of a response's fields, sorted.
fn names(got: &common::Got) -> Vec<String> {
    let mut names: Vec<String> = got.headers.keys().map(|n| n.as_str().to_owned()).collect();
    names.sort();
    names
}

const LAST_MODIFIED: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
const BEFORE: &str = "Sat, 05 Nov 1994 08:49:37 GMT";
const AFTER: &str = "Tue, 08 Nov 1994 08:49:37 GMT";

/// An origin whose responses are stored for a minute, `ETag: "v1"`.
fn fresh_origin() -> Validating {
    Validating::new(|s| s.headers = vec![("cache-control".into(), "max-age=60".into())])
}

/// Stores the origin's response (one MISS) and waits until the store has it.
async fn fill(service: &Cached, handle: &Setup) {
    let first = send(service, get(&[])).await;
    assert_eq!((first.status, first.cache()), (200, "MISS"));
    handle.flush().await;
}

/// §13.1.2, §15.4.5: on a hit, `If-None-Match` naming the stored tag (weakly: `W/"v1"` matches
/// `"v1"`), `*`, or a list with it, is a 304 without a body, with `ETag`, `Cache-Control`,
/// `Date`, `Expires`, `Vary`, `Content-Location` as stored, and `Age`; nothing that describes
/// the body (`Content-Type`, `Content-Length`) or any other field.
#[tokio::test]
async fn rfc9110_13_1_2_if_none_match_matching_on_a_hit_is_304_with_the_15_4_5_fields() {
    let date = httpdate::fmt_http_date(SystemTime::now());
    let expires = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(3600));
    let origin = Validating::new(|s| {
        s.headers = vec![
            ("cache-control".into(), "max-age=60".into()),
            ("date".into(), date.clone()),
            ("expires".into(), expires.clone()),
            ("vary".into(), "accept-encoding".into()),
            ("content-location".into(), "/doc.en.txt".into()),
            ("x-other".into(), "1".into()),
            ("link".into(), "</style.css>; rel=preload".into()),
        ];
        s.last_modified = Some(LAST_MODIFIED.into());
    });
    let (service, handle) = cache(&origin, Policy::new());
    fill(&service, &handle).await;
    for condition in [
        "\"v1\"",
        "W/\"v1\"",
        "*",
        "\"a\", \"v1\"",
        "\"a\",W/\"v1\",\"b\"",
        "junk, \"v1\"",
    ] {
        let got = send(&service, get(&[("if-none-match", condition)])).await;
        assert_eq!(got.status, 304, "{condition}");
        assert!(got.body.is_empty(), "{condition}: a 304 has no body");
        assert_eq!(got.cache(), "HIT", "{condition}");
        assert_eq!(got.headers["etag"], "\"v1\"", "{condition}");
        assert_eq!(got.headers["cache-control"], "max-age=60", "{condition}");
        assert_eq!(got.headers["date"], date.as_str(), "{condition}");
        assert_eq!(got.headers["expires"], expires.as_str(), "{condition}");
        assert_eq!(got.headers["vary"], "accept-encoding", "{condition}");
        assert_eq!(got.headers["content-location"], "/doc.en.txt");
        let age: u64 = got.headers["age"].to_str().unwrap().parse().unwrap();
        assert!(age <= 60, "{condition}: age {age}");
        for absent in [
            "content-type",
            "content-length",
            "x-other",
            "link",
            // Only without an ETag (to guide cache updates).
            "last-modified",
        ] {
            assert!(
                !got.headers.contains_key(absent),
                "{condition}: {absent} must not be on a 304: {:?}",
                names(&got)
            );
        }
    }
    assert_eq!(origin.calls(), 1, "every 304 came from the stored response");
}

/// §13.1.2: a list without the stored tag, or a malformed one, is false: the full response.
#[tokio::test]
async fn rfc9110_13_1_2_if_none_match_not_matching_is_the_full_200() {
    let origin = fresh_origin();
    let (service, handle) = cache(&origin, Policy::new());
    fill(&service, &handle).await;
    for condition in [
        "\"v2\"",
        "W/\"v2\"",
        "\"v1",
        "\"v1\"x",
        "v1",
        "\"V1\"",
        "\"a\", \"b\"",
        "*, \"v2\"",
    ] {
        let got = send(&service, get(&[("if-none-match", condition)])).await;
        assert_eq!(
            (got.status, got.cache(), got.text().as_str()),
            (200, "HIT", "version 1"),
            "{condition}"
        );
        assert_eq!(got.headers["content-type"], "text/plain", "{condition}");
        assert_eq!(got.headers["etag"], "\"v1\"", "{condition}");
    }
    assert_eq!(origin.calls(), 1);
}

/// §13.1.2: the tags of several `If-None-Match` field lines form one list.
#[tokio::test]
async fn rfc9110_13_1_2_if_none_match_lines_are_one_list() {
    let origin = fresh_origin();
    let (service, handle) = cache(&origin, Policy::new());
    fill(&service, &handle).await;
    let got = send(
        &service,
        get(&[("if-none-match", "\"a\""), ("if-none-match", "W/\"v1\"")]),
    )
    .await;
    assert_eq!((got.status, got.cache()), (304, "HIT"));
    let got = send(
        &service,
        get(&[("if-none-match", "\"a\""), ("if-none-match", "\"b\"")]),
    )
    .await;
    assert_eq!((got.status, got.text().as_str()), (200, "version 1"));
}

/// §13.1.3: `If-Modified-Since` against a stored `Last-Modified`: not modified since a date
/// at or after it (304, `Last-Modified` kept as there is no `ETag`), modified since an earlier
/// one (200); an unparsable date is ignored.
#[tokio::test]
async fn rfc9110_13_1_3_if_modified_since_on_a_hit() {
    let origin = Validating::new(|s| {
        s.headers = vec![("cache-control".into(), "max-age=60".into())];
        s.etag = None;
        s.last_modified = Some(LAST_MODIFIED.into());
    });
    let (service, handle) = cache(&origin, Policy::new());
    fill(&service, &handle).await;
    for since in [LAST_MODIFIED, AFTER, "Sunday, 06-Nov-94 08:49:37 GMT"] {
        let got = send(&service, get(&[("if-modified-since", since)])).await;
        assert_eq!((got.status, got.cache()), (304, "HIT"), "{since}");
        assert!(got.body.is_empty(), "{since}");
        assert_eq!(got.headers["last-modified"], LAST_MODIFIED, "{since}");
        assert!(!got.headers.contains_key("content-type"), "{since}");
    }
    for since in [BEFORE, "yesterday", ""] {
        let got = send(&service, get(&[("if-modified-since", since)])).await;
        assert_eq!(
            (got.status, got.cache(), got.text().as_str()),
            (200, "HIT", "version 1"),
            "{since:?}"
        );
    }
    assert_eq!(origin.calls(), 1);
}

/// §13.1.3: a recipient ignores `If-Modified-Since` when `If-None-Match` is present, whether it
/// matches or not.
#[tokio::test]
async fn rfc9110_13_1_3_if_modified_since_is_ignored_with_if_none_match() {
    let origin = Validating::new(|s| {
        s.headers = vec![("cache-control".into(), "max-age=60".into())];
        s.last_modified = Some(LAST_MODIFIED.into());
    });
    let (service, handle) = cache(&origin, Policy::new());
    fill(&service, &handle).await;
    // If-None-Match false, If-Modified-Since true: the full response.
    let got = send(
        &service,
        get(&[("if-none-match", "\"v2\""), ("if-modified-since", AFTER)]),
    )
    .await;
    assert_eq!((got.status, got.text().as_str()), (200, "version 1"));
    // If-None-Match true, If-Modified-Since false: 304.
    let got = send(
        &service,
        get(&[("if-none-match", "\"v1\""), ("if-modified-since", BEFORE)]),
    )
    .await;
    assert_eq!((got.status, got.cache()), (304, "HIT"));
    // The ETag is there: Last-Modified is not on the 304.
    assert!(!got.headers.contains_key("last-modified"));
    assert_eq!(origin.calls(), 1);
}

/// §13.1.1, §13.1.4, §15.5.13: `If-Match` compares strongly; false (another tag, a weak tag)
/// is a 412 without a body or the representation's fields; `*` and the stored tag are true.
/// `If-Unmodified-Since` (without `If-Match`) before `Last-Modified` is false too.
#[tokio::test]
async fn rfc9110_13_1_1_if_match_not_matching_is_412() {
    let origin = Validating::new(|s| {
        s.headers = vec![("cache-control".into(), "max-age=60".into())];
        s.last_modified = Some(LAST_MODIFIED.into());
    });
    let (service, handle) = cache(&origin, Policy::new());
    fill(&service, &handle).await;
    for condition in ["\"v2\"", "W/\"v1\"", "\"a\", \"b\""] {
        let got = send(&service, get(&[("if-match", condition)])).await;
        assert_eq!(got.status, 412, "{condition}");
        assert!(got.body.is_empty(), "{condition}");
        assert_eq!(got.cache(), "HIT", "{condition}");
        for absent in ["cache-control", "etag", "content-type"] {
            assert!(!got.headers.contains_key(absent), "{condition}: {absent}");
        }
    }
    for condition in ["\"v1\"", "*", "\"a\", \"v1\""] {
        let got = send(&service, get(&[("if-match", condition)])).await;
        assert_eq!(
            (got.status, got.text().as_str()),
            (200, "version 1"),
            "{condition}"
        );
    }
    let got = send(&service, get(&[("if-unmodified-since", BEFORE)])).await;
    assert_eq!((got.status, got.cache()), (412, "HIT"));
    let got = send(&service, get(&[("if-unmodified-since", AFTER)])).await;
    assert_eq!((got.status, got.text().as_str()), (200, "version 1"));
    // §13.2.2: If-Match is evaluated first; it decides over If-Unmodified-Since.
    let got = send(
        &service,
        get(&[("if-match", "\"v1\""), ("if-unmodified-since", BEFORE)]),
    )
    .await;
    assert_eq!(got.status, 200);
    // §13.2.2: a false If-Match wins over a true If-None-Match.
    let got = send(
        &service,
        get(&[("if-match", "\"v2\""), ("if-none-match", "\"v1\"")]),
    )
    .await;
    assert_eq!(got.status, 412);
    assert_eq!(origin.calls(), 1);
}

/// §13.1.2: `If-None-Match` applies to `HEAD` as to `GET`.
#[tokio::test]
async fn rfc9110_13_1_2_head_with_if_none_match_is_304() {
    let origin = fresh_origin();
    let (service, handle) = cache(&origin, Policy::new());
    fill(&service, &handle).await;
    let got = send(&service, head(&[("if-none-match", "\"v1\"")])).await;
    assert_eq!((got.status, got.cache()), (304, "HIT"));
    assert!(got.body.is_empty());
    assert_eq!(got.headers["etag"], "\"v1\"");
    assert!(!got.headers.contains_key("content-type"));
    let got = send(&service, head(&[("if-none-match", "W/\"v1\"")])).await;
    assert_eq!(got.status, 304);
    let got = send(&service, head(&[("if-none-match", "\"v2\"")])).await;
    assert_eq!((got.status, got.cache()), (200, "HIT"));
    assert!(got.body.is_empty(), "HEAD: no body");
    assert_eq!(got.headers["content-type"], "text/plain");
    assert_eq!(origin.calls(), 1);
}

/// RFC 9111 §4.3.2, §4.3.4: a stale entry revalidated with the cache's own validator (the
/// origin answers 304) answers the client's conditions: a matching `If-None-Match` gets 304,
/// a non-matching one the full 200; the origin never saw the client's tag.
#[tokio::test]
async fn rfc9110_13_conditions_are_answered_after_a_revalidation() {
    for (client, status) in [("W/\"v1\"", 304), ("\"other\"", 200)] {
        let origin = Validating::default(); // max-age=1, ETag "v1"
        let (service, handle) = cache(&origin, Policy::new());
        fill(&service, &handle).await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        origin.set(|s| s.headers = vec![("cache-control".into(), "max-age=60".into())]);
        let got = send(&service, get(&[("if-none-match", client)])).await;
        assert_eq!(
            origin.last_seen()["if-none-match"],
            "\"v1\"",
            "{client}: the stored validator, not the client's"
        );
        assert_eq!((origin.full(), origin.not_modified()), (1, 1), "{client}");
        assert_eq!(got.status, status, "{client}");
        assert!(
            status_of(&got).contains("fwd=stale; fwd-status=304; stored"),
            "{client}: {}",
            status_of(&got)
        );
        if status == 304 {
            assert!(got.body.is_empty());
            assert_eq!(got.headers["etag"], "\"v1\"");
            assert_eq!(
                got.headers["cache-control"], "max-age=60",
                "the 304's fields"
            );
            assert!(!got.headers.contains_key("content-type"));
        } else {
            assert_eq!(got.text(), "version 1");
            assert_eq!(got.headers["content-type"], "text/plain");
        }
        handle.flush().await;
        // The refreshed entry answers both kinds of clients as hits.
        let got = send(&service, get(&[("if-none-match", "\"v1\"")])).await;
        assert_eq!((got.status, got.cache()), (304, "HIT"), "{client}");
        let got = send(&service, get(&[("if-none-match", "\"v0\"")])).await;
        assert_eq!(
            (got.status, got.cache(), got.text().as_str()),
            (200, "HIT", "version 1"),
            "{client}"
        );
        assert_eq!(origin.calls(), 2, "{client}");
    }
}

/// A conditional first request on an empty cache: the origin is asked for the whole response
/// (none of the client's conditions), which is stored; the client gets its own 304 (or 412).
#[tokio::test]
async fn rfc9110_13_a_conditional_first_request_fills_the_cache() {
    let conditions: [(&[(&str, &str)], u16); 4] = [
        (&[("if-none-match", "\"v1\"")], 304),
        (&[("if-none-match", "\"v2\"")], 200),
        (&[("if-modified-since", AFTER)], 304),
        (&[("if-match", "\"v2\"")], 412),
    ];
    for (headers, status) in conditions {
        let origin = Validating::new(|s| {
            s.headers = vec![("cache-control".into(), "max-age=60".into())];
            s.last_modified = Some(LAST_MODIFIED.into());
        });
        let (service, handle) = cache(&origin, Policy::new());
        let got = send(&service, get(headers)).await;
        let seen = origin.last_seen();
        for name in [
            "if-none-match",
            "if-modified-since",
            "if-match",
            "if-unmodified-since",
        ] {
            assert!(
                !seen.contains_key(name),
                "{headers:?}: the origin was sent {name}"
            );
        }
        assert_eq!(
            (origin.full(), origin.not_modified()),
            (1, 0),
            "{headers:?}"
        );
        assert_eq!((got.status, got.cache()), (status, "MISS"), "{headers:?}");
        if status == 200 {
            assert_eq!(got.text(), "version 1");
        } else {
            assert!(got.body.is_empty(), "{headers:?}");
        }
        assert!(
            status_of(&got).contains("fwd=uri-miss; fwd-status=200; stored"),
            "{headers:?}: {}",
            status_of(&got)
        );
        handle.flush().await;
        let hit = send(&service, get(&[])).await;
        assert_eq!(
            (hit.status, hit.cache(), hit.text().as_str()),
            (200, "HIT", "version 1"),
            "{headers:?}: the whole response was stored"
        );
        assert_eq!(origin.calls(), 1, "{headers:?}");
    }
}

/// Requests coalesced onto one fetch each get the answer their own conditions ask for from
/// the one full response: a 304 for a matching `If-None-Match`, the 200 for the others.
#[tokio::test]
async fn rfc9110_13_coalesced_requests_each_get_their_own_answer() {
    let origin = Validating::new(|s| {
        s.headers = vec![("cache-control".into(), "max-age=60".into())];
        s.delay = Duration::from_millis(200);
    });
    let (service, handle) = cache(&origin, Policy::new());
    let requests: [(&[(&str, &str)], u16); 6] = [
        (&[], 200),
        (&[("if-none-match", "\"v1\"")], 304),
        (&[], 200),
        (&[("if-none-match", "\"v2\"")], 200),
        (&[("if-none-match", "*")], 304),
        (&[("if-match", "\"v2\"")], 412),
    ];
    let answers =
        futures_util::future::join_all(requests.iter().map(|(h, _)| send(&service, get(h)))).await;
    for ((headers, status), got) in requests.iter().zip(&answers) {
        assert_eq!(got.status, *status, "{headers:?}");
        if *status == 200 {
            assert_eq!(got.text(), "version 1", "{headers:?}");
        } else {
            assert!(got.body.is_empty(), "{headers:?}");
        }
    }
    assert_eq!(origin.calls(), 1, "one fetch for all");
    assert!(!origin.last_seen().contains_key("if-none-match"));
    handle.flush().await;
    let hit = send(&service, get(&[])).await;
    assert_eq!((hit.status, hit.cache()), (200, "HIT"));
}

/// §8.8.3.2: a stored weak `ETag` matches `If-None-Match` weakly (304, with or without `W/`),
/// and never `If-Match` (strong comparison: 412).
#[tokio::test]
async fn rfc9110_8_8_3_2_a_stored_weak_etag() {
    let origin = Validating::new(|s| {
        s.headers = vec![("cache-control".into(), "max-age=60".into())];
        s.etag = Some("W/\"v1\"".into());
    });
    let (service, handle) = cache(&origin, Policy::new());
    fill(&service, &handle).await;
    for condition in ["\"v1\"", "W/\"v1\""] {
        let got = send(&service, get(&[("if-none-match", condition)])).await;
        assert_eq!((got.status, got.cache()), (304, "HIT"), "{condition}");
        assert_eq!(got.headers["etag"], "W/\"v1\"");
        let got = send(&service, get(&[("if-match", condition)])).await;
        assert_eq!((got.status, got.cache()), (412, "HIT"), "{condition}");
    }
    assert_eq!(origin.calls(), 1);
}

/// §13.2.1, §15.4.5: only a response the request would otherwise get as a `200` becomes a
/// 304: a stored `404` is the 404, whatever the client's `If-None-Match`.
#[tokio::test]
async fn rfc9110_13_2_1_a_stored_error_is_not_turned_into_a_304() {
    let origin = Validating::new(|s| {
        s.status = 404;
        s.body = "not here".into();
        s.headers = vec![("cache-control".into(), "max-age=60".into())];
    });
    let (service, handle) = cache(&origin, Policy::new());
    let first = send(&service, get(&[])).await;
    assert_eq!((first.status, first.cache()), (404, "MISS"));
    handle.flush().await;
    for condition in ["\"v1\"", "*"] {
        let got = send(&service, get(&[("if-none-match", condition)])).await;
        assert_eq!(
            (got.status, got.cache(), got.text().as_str()),
            (404, "HIT", "not here"),
            "{condition}"
        );
    }
    assert_eq!(origin.calls(), 1);
}

/// RFC 5861 with §13.1.2: a stale response served within stale-while-revalidate answers the
/// client's `If-None-Match` too (304, `X-Cache: STALE`).
#[tokio::test]
async fn rfc9110_13_1_2_if_none_match_on_a_stale_answer() {
    let origin = Validating::new(|s| {
        s.headers = vec![(
            "cache-control".into(),
            "max-age=1, stale-while-revalidate=60".into(),
        )]
    });
    let (service, handle) = cache(&origin, Policy::new());
    fill(&service, &handle).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let got = send(&service, get(&[("if-none-match", "\"v1\"")])).await;
    assert_eq!((got.status, got.cache()), (304, "STALE"));
    assert!(got.body.is_empty());
    assert!(status_of(&got).contains("hit"), "{}", status_of(&got));
}

/// RFC 9111 §5.2.1.4 with §13.1.2: a client's `no-cache` (allowed by the policy) makes the
/// cache revalidate a fresh entry with its own validator; the client's own conditions are then
/// answered from the confirmed response.
#[tokio::test]
async fn rfc9110_13_1_2_client_no_cache_revalidates_then_answers_the_condition() {
    let origin = fresh_origin();
    let (service, handle) = cache(&origin, Policy::new().client_revalidation(true));
    fill(&service, &handle).await;
    let got = send(
        &service,
        get(&[("cache-control", "no-cache"), ("if-none-match", "W/\"v1\"")]),
    )
    .await;
    assert_eq!(origin.last_seen()["if-none-match"], "\"v1\"");
    assert_eq!((origin.full(), origin.not_modified()), (1, 1));
    assert_eq!(got.status, 304);
    assert!(
        status_of(&got).contains("fwd=request; fwd-status=304; stored"),
        "{}",
        status_of(&got)
    );
    handle.flush().await;
    let got = send(
        &service,
        get(&[("cache-control", "no-cache"), ("if-none-match", "\"zz\"")]),
    )
    .await;
    assert_eq!(origin.last_seen()["if-none-match"], "\"v1\"");
    assert_eq!((got.status, got.text().as_str()), (200, "version 1"));
    assert_eq!((origin.full(), origin.not_modified()), (1, 2));
}
