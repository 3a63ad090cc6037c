//! Storing responses (RFC 9111 §3, §3.1, §4.2.2): any final status with explicit freshness
//! (`max-age`, `s-maxage`, `Expires`) is stored; without it only the policy's statuses are, or
//! any when `public`; `206`, `304` and interim responses never are; heuristic freshness from
//! `Last-Modified` (capped, only for heuristically cacheable statuses or `public`, never over
//! explicit freshness); hop-by-hop and proxy-specific fields are not stored; `Set-Cookie` keeps
//! a response out of the cache unless `private="set-cookie"` lets it be stored without it.
//! The scripted origin counts its calls, so "stored" is checked by a second request's `HIT`
//! that never reached it.

mod common;

use common::rfc::{cache, date_in, fields, get, send, status_of, ttl_of, twice};
use common::validating::Validating;
use std::time::Duration;
use tower_response_cache::Policy;

/// §3: with explicit freshness any final status is storable, recognised by the policy or not
/// (418, 403, 451, an unregistered 299), from `max-age`, `s-maxage` or `Expires`.
#[tokio::test]
async fn rfc9111_3_any_final_status_with_explicit_freshness_is_stored() {
    let expires = date_in(120);
    let date = date_in(0);
    let cases: Vec<(u16, Vec<(String, String)>)> = vec![
        (418, fields(&[("cache-control", "max-age=60")])),
        (403, fields(&[("cache-control", "max-age=60")])),
        (451, fields(&[("cache-control", "max-age=60")])),
        (299, fields(&[("cache-control", "max-age=60")])),
        (500, fields(&[("cache-control", "s-maxage=60")])),
        (302, fields(&[("date", &date), ("expires", &expires)])),
        (
            400,
            fields(&[("date", &date), ("expires", &expires), ("x-v", "1")]),
        ),
    ];
    for (status, headers) in cases {
        let origin = Validating::new(|s| {
            s.status = status;
            s.headers = headers.clone();
        });
        let (service, setup) = cache(&origin, Policy::new());
        let (first, second) = twice(&service, &setup).await;
        assert_eq!(first.status, status);
        assert!(
            status_of(&first).contains(&format!("fwd=uri-miss; fwd-status={status}; stored")),
            "{status} {headers:?}: {}",
            status_of(&first)
        );
        assert_eq!(
            (second.status, second.cache(), second.text().as_str()),
            (status, "HIT", "version 1"),
            "{status} {headers:?}"
        );
        assert_eq!(origin.calls(), 1, "{status} {headers:?}");
    }
}

/// §3: without explicit freshness, a status outside the policy's list (403, 500, 302) is not
/// stored (`detail=status`); the next request goes to the origin again.
#[tokio::test]
async fn rfc9111_3_status_outside_policy_without_freshness_is_not_stored() {
    for status in [403u16, 500, 302, 418] {
        let origin = Validating::new(|s| {
            s.status = status;
            s.headers = Vec::new();
        });
        let (service, setup) = cache(&origin, Policy::new());
        let (first, second) = twice(&service, &setup).await;
        assert!(
            status_of(&first).contains(&format!("fwd-status={status}; detail=status")),
            "{status}: {}",
            status_of(&first)
        );
        assert_ne!(second.cache(), "HIT", "{status}");
        assert_eq!(origin.calls(), 2, "{status}");
    }
}

/// §3 (`public`), §5.2.2.9: `public` makes a response with a status outside the list storable
/// without explicit freshness, on the policy's ttl.
#[tokio::test]
async fn rfc9111_3_public_makes_any_status_storable_on_the_policy_ttl() {
    let origin = Validating::new(|s| {
        s.status = 403;
        s.headers = fields(&[("cache-control", "public")]);
    });
    let (service, setup) = cache(&origin, Policy::new());
    let (first, second) = twice(&service, &setup).await;
    assert!(
        status_of(&first).contains("fwd-status=403; stored; ttl=60"),
        "{}",
        status_of(&first)
    );
    assert_eq!((second.status, second.cache()), (403, "HIT"));
    assert_eq!(origin.calls(), 1);

    // With a policy ttl of its own.
    let origin = Validating::new(|s| {
        s.status = 403;
        s.headers = fields(&[("cache-control", "public")]);
    });
    let (service, setup) = cache(&origin, Policy::new().ttl(Duration::from_secs(7)));
    let (first, second) = twice(&service, &setup).await;
    assert_eq!(ttl_of(&first), Some(7), "{}", status_of(&first));
    assert_eq!(second.cache(), "HIT");
}

/// §3, §3.3-3.4: a `206` is never stored as a response (this cache does not combine partial
/// content), whatever its freshness or `public`.
#[tokio::test]
async fn rfc9111_3_partial_content_is_never_stored() {
    for cc in ["max-age=60", "public, max-age=60", "s-maxage=60", "public"] {
        let origin = Validating::new(|s| {
            s.status = 206;
            s.headers = fields(&[("cache-control", cc), ("content-range", "bytes 0-8/20")]);
        });
        let (service, setup) = cache(&origin, Policy::new());
        let (first, second) = twice(&service, &setup).await;
        assert_eq!(first.status, 206, "{cc}");
        assert!(
            status_of(&first).contains("fwd-status=206; detail=status"),
            "{cc}: {}",
            status_of(&first)
        );
        assert_ne!(second.cache(), "HIT", "{cc}");
        assert_eq!(origin.calls(), 2, "{cc}");
    }
}

/// §3: a `304` answering an unconditional request is not a response to store (it describes
/// nothing stored), even with `max-age`.
#[tokio::test]
async fn rfc9111_3_not_modified_to_an_unconditional_request_is_not_stored() {
    let origin = Validating::new(|s| {
        s.status = 304;
        s.body = String::new();
        s.headers = fields(&[("cache-control", "max-age=60")]);
    });
    let (service, setup) = cache(&origin, Policy::new());
    let (first, second) = twice(&service, &setup).await;
    assert_eq!(first.status, 304);
    assert!(
        status_of(&first).contains("fwd-status=304; detail=status"),
        "{}",
        status_of(&first)
    );
    assert_ne!(second.cache(), "HIT");
    assert_eq!(origin.calls(), 2);
    assert_eq!(setup.stats.snapshot().hits, 0);
}

/// §3 ("the response status code is final"): an inner service that answers with an interim
/// status (103 Early Hints, 100) as its response gets it passed on, never stored.
#[tokio::test]
async fn rfc9111_3_interim_status_is_never_stored() {
    for status in [103u16, 100] {
        let origin = Validating::new(|s| {
            s.status = status;
            s.body = String::new();
            s.headers = fields(&[
                ("cache-control", "public, max-age=60"),
                ("link", "</style.css>; rel=preload"),
            ]);
        });
        let (service, setup) = cache(&origin, Policy::new());
        let (first, second) = twice(&service, &setup).await;
        assert_eq!(first.status, status);
        assert!(
            status_of(&first).contains(&format!("fwd-status={status}; detail=status")),
            "{status}: {}",
            status_of(&first)
        );
        assert_eq!(second.status, status);
        assert_ne!(second.cache(), "HIT", "{status}");
        assert_eq!(origin.calls(), 2, "{status}");
    }
}

/// The heuristic-freshness origin: a `200` with `Date` now and `Last-Modified` `age` seconds
/// before it, and no explicit freshness unless `cc` says.
fn heuristic_origin(status: u16, modified_ago: Option<u64>, cc: Option<&str>) -> Validating {
    let date = date_in(0);
    let modified = modified_ago.map(|ago| date_in(-(ago as i64)));
    let cc = cc.map(str::to_owned);
    Validating::new(|s| {
        s.status = status;
        s.etag = None;
        s.last_modified = modified;
        s.headers = fields(&[("date", &date)]);
        if let Some(cc) = cc {
            s.headers.push(("cache-control".into(), cc));
        }
    })
}

/// §4.2.2: with a shared-cache policy (no default ttl), a `200` modified 10 days before its
/// `Date` gets 10% of that, capped at one day.
#[tokio::test]
async fn rfc9111_4_2_2_heuristic_freshness_is_capped_at_one_day() {
    let origin = heuristic_origin(200, Some(10 * 86_400), None);
    let (service, setup) = cache(&origin, Policy::shared_cache());
    let (first, second) = twice(&service, &setup).await;
    let ttl = ttl_of(&first).unwrap_or_else(|| panic!("stored: {}", status_of(&first)));
    assert!((86_000..=86_400).contains(&ttl), "ttl {ttl}");
    assert_eq!(second.cache(), "HIT");
    let hit_ttl = ttl_of(&second).unwrap();
    assert!((86_000..=86_400).contains(&hit_ttl), "hit ttl {hit_ttl}");
    assert_eq!(origin.calls(), 1);
}

/// §4.2.2: modified 100 s before its `Date`: about 10 s of freshness.
#[tokio::test]
async fn rfc9111_4_2_2_heuristic_freshness_is_a_tenth_of_the_time_since_modified() {
    let origin = heuristic_origin(200, Some(100), None);
    let (service, setup) = cache(&origin, Policy::shared_cache());
    let (first, second) = twice(&service, &setup).await;
    let ttl = ttl_of(&first).unwrap_or_else(|| panic!("stored: {}", status_of(&first)));
    assert!((9..=10).contains(&ttl), "ttl {ttl}");
    assert_eq!(second.cache(), "HIT");
    assert_eq!(origin.calls(), 1);

    // The policy's own fraction and cap.
    let origin = heuristic_origin(200, Some(1000), None);
    let policy = Policy::shared_cache().heuristic_freshness(0.5, Duration::from_secs(100));
    let (service, _) = cache(&origin, policy);
    let first = send(&service, get(&[])).await;
    let ttl = ttl_of(&first).unwrap();
    assert!((99..=100).contains(&ttl), "ttl {ttl}");
}

/// §4.2.2: no `Last-Modified`, nothing to base a heuristic on: without a validator the
/// response is not stored at all (`detail=not-fresh`); it is never served fresh.
#[tokio::test]
async fn rfc9111_4_2_2_no_heuristic_without_last_modified() {
    let origin = heuristic_origin(200, None, None);
    let (service, setup) = cache(&origin, Policy::shared_cache());
    let (first, second) = twice(&service, &setup).await;
    assert!(
        status_of(&first).contains("fwd-status=200; detail=not-fresh"),
        "{}",
        status_of(&first)
    );
    assert_ne!(second.cache(), "HIT");
    assert_eq!(origin.calls(), 2);

    // With an `ETag` it may be kept to be revalidated, but is never answered from unvalidated.
    let origin = heuristic_origin(200, None, None);
    origin.set(|s| s.etag = Some("\"v1\"".into()));
    let (service, setup) = cache(&origin, Policy::shared_cache());
    let (first, second) = twice(&service, &setup).await;
    assert!(
        ttl_of(&first).is_none_or(|ttl| ttl <= 0),
        "{}",
        status_of(&first)
    );
    assert_ne!(second.cache(), "HIT");
    assert_eq!(origin.calls(), 2);
}

/// §4.2.2 ("MUST NOT use heuristics when an explicit expiration time is present"): explicit
/// `max-age` wins over a long-unmodified `Last-Modified`, and so does `Expires`.
#[tokio::test]
async fn rfc9111_4_2_2_explicit_freshness_wins_over_heuristic() {
    let origin = heuristic_origin(200, Some(10 * 86_400), Some("max-age=5"));
    let (service, setup) = cache(&origin, Policy::shared_cache());
    let (first, second) = twice(&service, &setup).await;
    assert_eq!(ttl_of(&first), Some(5), "{}", status_of(&first));
    assert_eq!(second.cache(), "HIT");

    let origin = heuristic_origin(200, Some(10 * 86_400), None);
    let expires = date_in(30);
    origin.set(|s| s.headers.push(("expires".into(), expires)));
    let (service, _) = cache(&origin, Policy::shared_cache());
    let first = send(&service, get(&[])).await;
    let ttl = ttl_of(&first).unwrap();
    assert!((29..=30).contains(&ttl), "ttl {ttl}: {}", status_of(&first));

    // An explicit zero lifetime is not replaced by a heuristic one either.
    let origin = heuristic_origin(200, Some(10 * 86_400), Some("max-age=0"));
    let (service, setup) = cache(&origin, Policy::shared_cache());
    let (_, second) = twice(&service, &setup).await;
    assert_ne!(second.cache(), "HIT");
    assert_eq!(origin.calls(), 2);
}

/// §4.2.2: heuristics only for heuristically cacheable statuses (403 is not one), unless the
/// response is `public`.
#[tokio::test]
async fn rfc9111_4_2_2_no_heuristic_for_other_statuses_unless_public() {
    let origin = heuristic_origin(403, Some(10 * 86_400), None);
    let (service, setup) = cache(&origin, Policy::shared_cache());
    let (first, second) = twice(&service, &setup).await;
    assert!(
        status_of(&first).contains("fwd-status=403; detail=status"),
        "{}",
        status_of(&first)
    );
    assert_ne!(second.cache(), "HIT");
    assert_eq!(origin.calls(), 2);

    let origin = heuristic_origin(403, Some(10 * 86_400), Some("public"));
    let (service, setup) = cache(&origin, Policy::shared_cache());
    let (first, second) = twice(&service, &setup).await;
    let ttl = ttl_of(&first).unwrap_or_else(|| panic!("stored: {}", status_of(&first)));
    assert!((86_000..=86_400).contains(&ttl), "ttl {ttl}");
    assert_eq!((second.status, second.cache()), (403, "HIT"));
    assert_eq!(origin.calls(), 1);

    // A heuristically cacheable one other than 200: 404 (no negative ttl in this policy).
    let origin = heuristic_origin(404, Some(1000), None);
    let (service, setup) = cache(&origin, Policy::shared_cache());
    let (first, second) = twice(&service, &setup).await;
    let ttl = ttl_of(&first).unwrap_or_else(|| panic!("stored: {}", status_of(&first)));
    assert!((99..=100).contains(&ttl), "ttl {ttl}");
    assert_eq!((second.status, second.cache()), (404, "HIT"));
}

/// §3.1, RFC 9110 §7.6.1: `Connection` and the fields it lists, and the hop-by-hop fields
/// (`Keep-Alive`, `Transfer-Encoding`, `TE`, `Upgrade`, `Proxy-Connection`) are not stored; a
/// hit carries the end-to-end ones only.
#[tokio::test]
async fn rfc9111_3_1_hop_by_hop_fields_are_not_stored() {
    let origin = Validating::new(|s| {
        s.headers = fields(&[
            ("cache-control", "max-age=60"),
            ("connection", "x-hop, x-other-hop"),
            ("connection", "keep-alive"),
            ("x-hop", "1"),
            ("x-other-hop", "2"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("te", "trailers"),
            ("upgrade", "h2c"),
            ("proxy-connection", "keep-alive"),
            ("x-end-to-end", "kept"),
        ])
    });
    let (service, setup) = cache(&origin, Policy::new());
    let (first, hit) = twice(&service, &setup).await;
    assert!(
        status_of(&first).contains("stored"),
        "{}",
        status_of(&first)
    );
    assert_eq!((hit.cache(), hit.text().as_str()), ("HIT", "version 1"));
    for gone in [
        "connection",
        "x-hop",
        "x-other-hop",
        "keep-alive",
        "transfer-encoding",
        "te",
        "upgrade",
        "proxy-connection",
    ] {
        assert!(!hit.headers.contains_key(gone), "{gone} must not be stored");
    }
    assert_eq!(hit.headers["x-end-to-end"], "kept");
    assert_eq!(hit.headers["etag"], "\"v1\"");
    assert_eq!(hit.headers["content-type"], "text/plain");
}

/// §3.1: "Header fields that are specific to the proxy that a cache uses when forwarding a
/// request MUST NOT be stored ...: Proxy-Authenticate, Proxy-Authentication-Info, and
/// Proxy-Authorization".
#[tokio::test]
async fn rfc9111_3_1_proxy_specific_fields_are_not_stored() {
    let origin = Validating::new(|s| {
        s.headers = fields(&[
            ("cache-control", "max-age=60"),
            ("proxy-authenticate", "Basic realm=\"proxy\""),
            ("proxy-authentication-info", "nextnonce=\"abc\""),
            ("proxy-authorization", "Basic Zm9vOmJhcg=="),
            ("x-end-to-end", "kept"),
        ])
    });
    let (service, setup) = cache(&origin, Policy::new());
    let (_, hit) = twice(&service, &setup).await;
    assert_eq!(hit.cache(), "HIT");
    assert_eq!(hit.headers["x-end-to-end"], "kept");
    let stored: Vec<&str> = [
        "proxy-authenticate",
        "proxy-authentication-info",
        "proxy-authorization",
    ]
    .into_iter()
    .filter(|name| hit.headers.contains_key(*name))
    .collect();
    assert!(stored.is_empty(), "stored, and served on a hit: {stored:?}");
}

/// A `Set-Cookie` response is one user's: with the default policy it is not stored at all
/// (`detail=set-cookie`), even with `max-age` or `public`.
#[tokio::test]
async fn rfc9111_3_1_set_cookie_response_is_not_stored_by_default() {
    for cc in ["max-age=60", "public, max-age=60"] {
        let origin = Validating::new(|s| {
            s.headers = fields(&[("cache-control", cc), ("set-cookie", "sid=alice")]);
        });
        let (service, setup) = cache(&origin, Policy::new());
        let (first, second) = twice(&service, &setup).await;
        assert_eq!(first.headers["set-cookie"], "sid=alice", "{cc}");
        assert!(
            status_of(&first).contains("detail=set-cookie"),
            "{cc}: {}",
            status_of(&first)
        );
        assert_ne!(second.cache(), "HIT", "{cc}");
        assert_eq!(origin.calls(), 2, "{cc}");
    }
}

/// §5.2.2.7, §5.2.2.4: `private="set-cookie"` (or `no-cache="set-cookie"`) lets a shared
/// cache store the response without the field: hits never carry the cookie, the client that
/// filled gets its own.
#[tokio::test]
async fn rfc9111_5_2_2_7_qualified_private_set_cookie_is_stored_without_it() {
    for cc in [
        "max-age=60, private=\"set-cookie\"",
        "max-age=60, private=set-cookie",
        "max-age=60, no-cache=\"Set-Cookie\"",
    ] {
        let origin = Validating::new(|s| {
            s.headers = fields(&[
                ("cache-control", cc),
                ("set-cookie", "sid=alice"),
                ("set-cookie", "theme=dark"),
                ("x-public", "p"),
            ]);
        });
        let (service, setup) = cache(&origin, Policy::new());
        let (first, hit) = twice(&service, &setup).await;
        assert_eq!(
            first.headers.get_all("set-cookie").iter().count(),
            2,
            "{cc}"
        );
        assert!(status_of(&first).contains("stored"), "{cc}");
        assert_eq!(hit.cache(), "HIT", "{cc}");
        assert!(!hit.headers.contains_key("set-cookie"), "{cc}");
        assert_eq!(hit.headers["x-public"], "p", "{cc}");
        assert_eq!(origin.calls(), 1, "{cc}");
    }
}
