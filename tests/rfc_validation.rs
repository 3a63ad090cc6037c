//! Validation (RFC 9111 §4.3, §3.2, §4.2.4, §5.2.2.2): a stale response with validators is kept
//! and revalidated with the stored validators; a 304 refreshes it (fields and freshness), a
//! full response replaces it; revalidation is coalesced; `no-cache` responses are stored and
//! revalidated before every reuse; responses that must be revalidated are never served stale.
//! The scripted origin counts full answers and 304s, so "revalidated, not refetched" is checked.

mod common;

use axum::body::Body;
use common::rfc::{cache, get, send, status_of};
use common::validating::Validating;
use http::Request;
use std::time::Duration;
use tower_response_cache::Policy;

/// Past its freshness, the entry is revalidated with its own `ETag`; the origin's 304 makes
/// the stored body answer, with the 304's fields, and fresh again for the 304's `max-age`.
#[tokio::test]
async fn rfc9111_4_3_1_stale_entry_is_revalidated_with_stored_validators() {
    let origin = Validating::default();
    let (service, _) = cache(&origin, Policy::new());
    let first = send(&service, get(&[])).await;
    assert_eq!((first.status, first.cache()), (200, "MISS"));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    origin.set(|s| {
        s.headers = vec![
            ("cache-control".into(), "max-age=60".into()),
            ("x-version".into(), "2".into()),
            // A 304 does not describe the body: its Content-Type must not replace the stored one.
            ("content-type".into(), "application/x-bogus".into()),
        ]
    });
    // The client's own validator is not what the cache sends.
    let second = send(&service, get(&[("if-none-match", "\"client\"")])).await;
    assert_eq!(origin.last_seen()["if-none-match"], "\"v1\"");
    assert_eq!((origin.full(), origin.not_modified()), (1, 1));
    assert_eq!(second.status, 200, "the client's own condition is false");
    assert_eq!(second.text(), "version 1");
    assert_eq!(
        second.headers["x-version"], "2",
        "§3.2: the 304's fields replace"
    );
    assert_eq!(second.headers["content-type"], "text/plain");
    assert!(status_of(&second).contains("fwd=stale; fwd-status=304; stored"));
    let third = send(&service, get(&[])).await;
    assert_eq!((third.cache(), third.text().as_str()), ("HIT", "version 1"));
    assert_eq!(third.headers["x-version"], "2");
    for got in [&second, &third] {
        let members = got.headers.get_all("cache-status").iter().count();
        assert_eq!(
            members,
            1,
            "one member of ours, no leftover: {}",
            status_of(got)
        );
    }
    assert!(status_of(&third).starts_with("tower-response-cache; hit; ttl="));
    assert_eq!(origin.calls(), 2);
}

/// `Last-Modified` alone is sent as `If-Modified-Since`; both when both are stored.
#[tokio::test]
async fn rfc9111_4_3_1_last_modified_is_sent_as_if_modified_since() {
    let modified = "Tue, 01 Jan 2030 00:00:00 GMT";
    let origin = Validating::new(|s| {
        s.etag = None;
        s.last_modified = Some(modified.into());
    });
    let (service, _) = cache(&origin, Policy::new());
    send(&service, get(&[])).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let got = send(&service, get(&[])).await;
    assert_eq!(origin.last_seen()["if-modified-since"], modified);
    assert!(!origin.last_seen().contains_key("if-none-match"));
    assert_eq!((got.status, got.text().as_str()), (200, "version 1"));
    assert_eq!(origin.not_modified(), 1);
}

/// A full response to the revalidation replaces the stored one.
#[tokio::test]
async fn rfc9111_4_3_3_a_full_response_replaces_the_entry() {
    let origin = Validating::default();
    let (service, _) = cache(&origin, Policy::new());
    send(&service, get(&[])).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    origin.set(|s| {
        s.etag = Some("\"v2\"".into());
        s.body = "version 2".into();
        s.headers = vec![("cache-control".into(), "max-age=60".into())];
    });
    let got = send(&service, get(&[])).await;
    assert_eq!((got.cache(), got.text().as_str()), ("MISS", "version 2"));
    let hit = send(&service, get(&[])).await;
    assert_eq!((hit.cache(), hit.text().as_str()), ("HIT", "version 2"));
    assert_eq!(hit.headers["etag"], "\"v2\"");
    assert_eq!((origin.full(), origin.not_modified()), (2, 0));
}

/// Revalidation is a fill like any other: concurrent requests for the stale entry wait for
/// one conditional request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_4_3_revalidation_is_coalesced() {
    for round in 0..5 {
        let origin = Validating::default();
        let (service, handle) = cache(&origin, Policy::new());
        send(&service, get(&[])).await;
        handle.flush().await;
        tokio::time::sleep(Duration::from_millis(1050 + round * 13)).await;
        origin.set(|s| {
            s.delay = Duration::from_millis(150);
            s.headers = vec![("cache-control".into(), "max-age=60".into())];
        });
        let requests = (0..20).map(|_| send(&service, get(&[])));
        for got in futures_util::future::join_all(requests).await {
            assert_eq!((got.status, got.text().as_str()), (200, "version 1"));
        }
        assert_eq!(
            (origin.full(), origin.not_modified()),
            (1, 1),
            "round {round}"
        );
        let stats = handle.stats.snapshot();
        assert_eq!(stats.revalidated, 1, "round {round}: {stats:?}");
    }
}

/// Without a validator there is nothing to revalidate with: the stale entry is not kept.
/// With `keep` zero, nothing is kept either.
#[tokio::test]
async fn rfc9111_4_3_without_validator_or_keep_the_entry_is_refetched() {
    let origin = Validating::new(|s| s.etag = None);
    let (service, _) = cache(&origin, Policy::new());
    send(&service, get(&[])).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    send(&service, get(&[])).await;
    assert!(!origin.last_seen().contains_key("if-none-match"));
    assert_eq!((origin.full(), origin.not_modified()), (2, 0));

    let origin = Validating::default();
    let (service, _) = cache(&origin, Policy::new().keep(Duration::ZERO));
    send(&service, get(&[])).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    send(&service, get(&[])).await;
    assert_eq!((origin.full(), origin.not_modified()), (2, 0));
}

/// §5.2.2.4: a `no-cache` response is stored, and revalidated before every reuse.
#[tokio::test]
async fn rfc9111_5_2_2_4_no_cache_is_stored_and_revalidated_every_time() {
    let origin = Validating::new(|s| {
        s.headers = vec![("cache-control".into(), "no-cache, max-age=600".into())]
    });
    let (service, handle) = cache(&origin, Policy::new());
    for i in 0..4 {
        let got = send(&service, get(&[])).await;
        assert_eq!((got.status, got.text().as_str()), (200, "version 1"), "{i}");
        assert_ne!(got.cache(), "HIT", "{i}: never reused unvalidated");
        handle.flush().await;
    }
    assert_eq!((origin.full(), origin.not_modified()), (1, 3));
}

/// §5.2.2.4 and §5.2.2.7: the qualified forms store the response without the fields named.
#[tokio::test]
async fn rfc9111_5_2_2_qualified_no_cache_and_private_strip_fields() {
    let origin = Validating::new(|s| {
        s.headers = vec![
            (
                "cache-control".into(),
                "max-age=60, no-cache=\"x-secret\", private=\"x-user, set-cookie\"".into(),
            ),
            ("x-secret".into(), "s".into()),
            ("x-user".into(), "alice".into()),
            ("set-cookie".into(), "sid=alice".into()),
            ("x-public".into(), "p".into()),
        ]
    });
    let (service, handle) = cache(&origin, Policy::new());
    let first = send(&service, get(&[])).await;
    assert_eq!(
        first.headers["x-user"], "alice",
        "the client that filled gets its own"
    );
    handle.flush().await;
    let hit = send(&service, get(&[])).await;
    assert_eq!(hit.cache(), "HIT");
    for gone in ["x-secret", "x-user", "set-cookie"] {
        assert!(!hit.headers.contains_key(gone), "{gone} must not be stored");
    }
    assert_eq!(hit.headers["x-public"], "p");
}

/// §4.2.4, §5.2.2.2: `must-revalidate`, `proxy-revalidate` and `s-maxage` responses are never
/// served stale, whatever the policy's stale-if-error; a revalidation that fails gives 504, a
/// 5xx from the origin is passed on.
#[tokio::test]
async fn rfc9111_4_2_4_must_revalidate_fails_with_504_not_stale() {
    for directive in [
        "max-age=1, must-revalidate",
        "max-age=1, proxy-revalidate",
        "s-maxage=1",
    ] {
        let origin = Validating::new(|s| {
            s.headers = vec![("cache-control".into(), directive.into())];
        });
        let policy = Policy::new()
            .stale_if_error(Duration::from_secs(600))
            .stale_while_revalidate(Duration::from_secs(600));
        let (service, handle) = cache(&origin, policy);
        send(&service, get(&[])).await;
        handle.flush().await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        origin.set(|s| s.fail_error = true);
        let got = send(&service, get(&[])).await;
        assert_eq!(got.status, 504, "{directive}");
        assert!(got.body.is_empty(), "{directive}");
        assert!(status_of(&got).contains("detail=revalidation-failed"));
        origin.set(|s| {
            s.fail_error = false;
            s.fail_status = Some(503);
        });
        let got = send(&service, get(&[])).await;
        assert_eq!(
            (got.status, got.text().as_str()),
            (503, "failed"),
            "{directive}"
        );
        // A client's max-stale does not make it servable either.
        let got = send(&service, get(&[("cache-control", "max-stale")])).await;
        assert_eq!(got.status, 503, "{directive}");
    }
    // Without those directives, the policy's stale-if-error stands in.
    let origin = Validating::default();
    let policy = Policy::new().stale_if_error(Duration::from_secs(600));
    let (service, handle) = cache(&origin, policy);
    send(&service, get(&[])).await;
    handle.flush().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    origin.set(|s| s.fail_error = true);
    let got = send(&service, get(&[])).await;
    assert_eq!((got.status, got.cache()), (200, "STALE"));
}

/// A background refresh (stale-while-revalidate) revalidates too: the origin sees the stored
/// `ETag`, answers 304, and the entry is fresh again without a body sent.
#[tokio::test]
async fn rfc5861_background_refresh_revalidates() {
    let origin = Validating::new(|s| {
        s.headers = vec![(
            "cache-control".into(),
            "max-age=1, stale-while-revalidate=60".into(),
        )]
    });
    let (service, handle) = cache(&origin, Policy::new());
    send(&service, get(&[])).await;
    handle.flush().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let stale = send(&service, get(&[])).await;
    assert_eq!(stale.cache(), "STALE");
    for _ in 0..100 {
        if origin.not_modified() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    handle.flush().await;
    assert_eq!((origin.full(), origin.not_modified()), (1, 1));
    assert_eq!(origin.last_seen()["if-none-match"], "\"v1\"");
    let hit = send(&service, get(&[])).await;
    assert_eq!(hit.cache(), "HIT");
    let stats = handle.stats.snapshot();
    assert_eq!(
        stats.revalidated, 0,
        "a refresh answers no request: {stats:?}"
    );
}

/// §4.3.5: a `200` to `HEAD` that matches the stored response (same strong `ETag`) refreshes
/// its fields and freshness; one that does not makes it go.
#[tokio::test]
async fn rfc9111_4_3_5_head_freshens_or_removes_the_stored_response() {
    let origin = Validating::default();
    let (service, handle) = cache(&origin, Policy::new());
    send(&service, get(&[])).await;
    handle.flush().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    origin.set(|s| {
        s.ignore_conditions = true;
        s.headers = vec![
            ("cache-control".into(), "max-age=60".into()),
            ("x-version".into(), "2".into()),
        ];
    });
    let head = Request::head("http://example.com/doc")
        .body(Body::empty())
        .unwrap();
    let got = send(&service, head).await;
    assert_eq!(got.status, 200);
    handle.flush().await;
    let hit = send(&service, get(&[])).await;
    assert_eq!((hit.cache(), hit.text().as_str()), ("HIT", "version 1"));
    assert_eq!(hit.headers["x-version"], "2");
    assert_eq!(origin.full(), 2, "the GET and the HEAD");

    // A HEAD answer with another ETag: the stored response is out of date.
    let origin = Validating::default();
    let (service, handle) = cache(&origin, Policy::new());
    send(&service, get(&[])).await;
    handle.flush().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    origin.set(|s| {
        s.ignore_conditions = true;
        s.etag = Some("\"v2\"".into());
        s.body = "version 2".into();
    });
    let head = Request::head("http://example.com/doc")
        .body(Body::empty())
        .unwrap();
    send(&service, head).await;
    handle.flush().await;
    origin.set(|s| s.ignore_conditions = false);
    let got = send(&service, get(&[])).await;
    assert_eq!((got.cache(), got.text().as_str()), ("MISS", "version 2"));
    assert!(
        !origin.last_seen().contains_key("if-none-match"),
        "nothing left to revalidate"
    );
}

/// A revalidated entry keeps the origin's tags from its first fill: invalidating the tag
/// still removes it (a 304 carries no body, and usually no tags).
#[tokio::test]
async fn rfc9111_4_3_4_a_refreshed_entry_keeps_its_tags() {
    let origin = Validating::new(|s| {
        s.full_only.push(("cache-tag".into(), "product-1".into()));
    });
    let (service, setup) = cache(&origin, Policy::new());
    send(&service, get(&[])).await;
    setup.flush().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    origin.set(|s| s.headers = vec![("cache-control".into(), "max-age=60".into())]);
    let refreshed = send(&service, get(&[])).await;
    assert_eq!(origin.not_modified(), 1);
    assert!(
        !refreshed.headers.contains_key("cache-tag"),
        "the tag header never leaves"
    );
    setup.flush().await;
    assert_eq!(send(&service, get(&[])).await.cache(), "HIT");
    setup.handle.invalidate_tags(&["product-1"]).await;
    let after = send(&service, get(&[])).await;
    assert_eq!(
        after.cache(),
        "MISS",
        "the tag still reached the refreshed entry"
    );
    assert!(!origin.last_seen().contains_key("if-none-match"));
}

/// §4.3.4: a 304 naming another strong validator does not select the stored response: it
/// is not refreshed (the next request asks for the whole response).
#[tokio::test]
async fn rfc9111_4_3_4_a_304_for_another_representation_does_not_refresh() {
    let modified = "Tue, 01 Jan 2030 00:00:00 GMT";
    let origin = Validating::new(|s| s.last_modified = Some(modified.into()));
    let (service, setup) = cache(&origin, Policy::new());
    send(&service, get(&[])).await;
    setup.flush().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // A node that reads only If-Modified-Since, whose representation changed within the
    // second: it confirms "not modified" while naming another entity-tag.
    origin.set(|s| {
        s.ignore_if_none_match = true;
        s.etag = Some("\"v2\"".into());
        s.body = "version 2".into();
        s.headers = vec![("cache-control".into(), "max-age=60".into())];
    });
    let got = send(&service, get(&[])).await;
    assert_eq!(origin.last_seen()["if-none-match"], "\"v1\"");
    assert_eq!(origin.not_modified(), 1);
    assert_eq!(got.status, 200);
    setup.flush().await;
    origin.set(|s| s.ignore_if_none_match = false);
    let next = send(&service, get(&[])).await;
    assert_ne!(
        next.cache(),
        "HIT",
        "v1's body is not kept under v2's validator"
    );
    assert_eq!(next.text(), "version 2");
}

/// A response that must be validated before every reuse is still collapsed: concurrent
/// requests share one revalidation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_5_2_2_4_no_cache_revalidations_are_collapsed() {
    let origin = Validating::new(|s| {
        s.headers = vec![("cache-control".into(), "no-cache".into())];
    });
    let (service, setup) = cache(&origin, Policy::new());
    send(&service, get(&[])).await;
    setup.flush().await;
    origin.set(|s| s.delay = Duration::from_millis(200));
    let requests = (0..20).map(|_| send(&service, get(&[])));
    for got in futures_util::future::join_all(requests).await {
        assert_eq!((got.status, got.text().as_str()), (200, "version 1"));
    }
    assert_eq!((origin.full(), origin.not_modified()), (1, 1));
}

/// What a request says of itself (its `no-store`, its spelling) never removes the stored
/// response its revalidation confirmed.
#[tokio::test]
async fn rfc9111_5_2_1_5_a_no_store_request_does_not_remove_a_confirmed_entry() {
    let origin = Validating::default();
    let (service, setup) = cache(&origin, Policy::new());
    send(&service, get(&[])).await;
    setup.flush().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let got = send(&service, get(&[("cache-control", "no-store")])).await;
    assert_eq!((got.status, origin.not_modified()), (200, 1));
    setup.flush().await;
    send(&service, get(&[])).await;
    assert_eq!(
        (origin.full(), origin.not_modified()),
        (1, 2),
        "still stored: revalidated again, not refetched"
    );
}
