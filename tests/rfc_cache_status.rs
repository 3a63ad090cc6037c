//! The `Cache-Status` response field (RFC 9211): one member per response, named after this
//! cache (`tower-response-cache` by default, `cache_status_name` to change it, quoted when not
//! a token), appended after the members of caches nearer the origin; `hit` with the remaining
//! `ttl`, or why the request went forward (`fwd=uri-miss`, `vary-miss`, `stale`, `bypass`,
//! `method`), the origin's status (`fwd-status`), `stored` (with its `ttl`) or why not
//! (`detail=no-store`, `set-cookie`, `too-large`), `collapsed` for requests answered by another
//! request's fetch. `without_cache_status` and `without_cache_header` turn off each field
//! without changing the other.

mod common;

use common::rfc::{Cached, Setup, cache_with, get, layer, request, send, status_of};
use common::validating::Validating;
use std::time::Duration;
use tower_response_cache::Policy;

const NAME: &str = "tower-response-cache";

fn cache(origin: &Validating) -> (Cached, Setup) {
    cache_with(origin, layer(Policy::new()))
}

/// The members of the field, in order (no member here has a comma in a string).
fn members(got: &common::Got) -> Vec<String> {
    got.headers
        .get_all("cache-status")
        .iter()
        .flat_map(|v| v.to_str().unwrap().split(',').map(|m| m.trim().to_owned()))
        .filter(|m| !m.is_empty())
        .collect()
}

/// This cache's member: the field's last, and the only one with this cache's name.
fn ours(got: &common::Got, name: &str) -> String {
    let members = members(got);
    let prefix = format!("{name};");
    let mine: Vec<&String> = members
        .iter()
        .filter(|m| m.starts_with(&prefix) || *m == name)
        .collect();
    assert_eq!(mine.len(), 1, "one member of {name}: {members:?}");
    assert_eq!(
        members.last(),
        Some(mine[0]),
        "ours is the last member: {members:?}"
    );
    mine[0].clone()
}

/// The `ttl` of a `hit` member: `NAME; hit; ttl=N`.
fn hit_ttl(member: &str, name: &str) -> i64 {
    let ttl = member
        .strip_prefix(&format!("{name}; hit; ttl="))
        .unwrap_or_else(|| panic!("a hit member: {member}"));
    ttl.parse().unwrap()
}

/// An origin whose responses are stored for a minute, `ETag: "v1"`.
fn fresh_origin() -> Validating {
    Validating::new(|s| s.headers = vec![("cache-control".into(), "max-age=60".into())])
}

/// RFC 9211 §2, §2.1, §2.2, §2.4, §2.5: the miss that stored says why it went forward, the
/// origin's status, `stored` and the freshness it was stored with; the hit says `hit` and the
/// remaining `ttl`.
#[tokio::test]
async fn rfc9211_2_miss_that_stored_then_hit() {
    let origin = fresh_origin();
    let (service, handle) = cache(&origin);
    let miss = send(&service, get(&[])).await;
    assert_eq!(miss.cache(), "MISS");
    assert_eq!(
        ours(&miss, NAME),
        format!("{NAME}; fwd=uri-miss; fwd-status=200; stored; ttl=60")
    );
    handle.flush().await;
    let hit = send(&service, get(&[])).await;
    assert_eq!(hit.cache(), "HIT");
    let member = ours(&hit, NAME);
    let ttl = hit_ttl(&member, NAME);
    assert!((58..=60).contains(&ttl), "{member}");
    // HEAD shares the entry.
    let head = send(&service, request("HEAD", &[])).await;
    assert!(hit_ttl(&ours(&head, NAME), NAME) <= 60);
    assert_eq!(origin.calls(), 1);
}

/// §2.2 `fwd=vary-miss`: the URI has stored responses, not for this request's variant.
#[tokio::test]
async fn rfc9211_2_2_vary_miss() {
    let origin = Validating::new(|s| {
        s.headers = vec![
            ("cache-control".into(), "max-age=60".into()),
            ("vary".into(), "accept-language".into()),
        ]
    });
    let (service, handle) = cache(&origin);
    let first = send(&service, get(&[("accept-language", "en")])).await;
    assert_eq!(
        ours(&first, NAME),
        format!("{NAME}; fwd=uri-miss; fwd-status=200; stored; ttl=60")
    );
    handle.flush().await;
    let other = send(&service, get(&[("accept-language", "fr")])).await;
    assert_eq!(
        ours(&other, NAME),
        format!("{NAME}; fwd=vary-miss; fwd-status=200; stored; ttl=60")
    );
    handle.flush().await;
    let hit = send(&service, get(&[("accept-language", "fr")])).await;
    assert!(ours(&hit, NAME).starts_with(&format!("{NAME}; hit; ttl=")));
}

/// §2.2 `fwd=stale`, §2.3: a stale entry revalidated: forwarded as stale, the origin's 304,
/// stored again.
#[tokio::test]
async fn rfc9211_2_2_revalidation_is_fwd_stale_with_fwd_status_304() {
    let origin = Validating::default(); // max-age=1, ETag "v1"
    let (service, handle) = cache(&origin);
    send(&service, get(&[])).await;
    handle.flush().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    origin.set(|s| s.headers = vec![("cache-control".into(), "max-age=60".into())]);
    let got = send(&service, get(&[])).await;
    assert_eq!((got.status, got.text().as_str()), (200, "version 1"));
    let member = ours(&got, NAME);
    assert!(
        member.starts_with(&format!("{NAME}; fwd=stale; fwd-status=304; stored")),
        "{member}"
    );
    assert_eq!(origin.not_modified(), 1);
}

/// §2.6 `detail`: why a response was not stored.
#[tokio::test]
async fn rfc9211_2_6_detail_says_why_not_stored() {
    let cases: [(Validating, Policy, &str); 3] = [
        (
            Validating::new(|s| {
                s.headers = vec![("cache-control".into(), "no-store".into())];
            }),
            Policy::new(),
            "no-store",
        ),
        (
            Validating::new(|s| {
                s.headers = vec![
                    ("cache-control".into(), "max-age=60".into()),
                    ("set-cookie".into(), "sid=1".into()),
                ];
            }),
            Policy::new(),
            "set-cookie",
        ),
        (
            Validating::new(|s| {
                s.headers = vec![
                    ("cache-control".into(), "max-age=60".into()),
                    ("vary".into(), "*".into()),
                ];
            }),
            Policy::new(),
            "vary-star",
        ),
    ];
    for (origin, policy, detail) in cases {
        let (service, handle) = cache_with(&origin, layer(policy));
        for round in 0..2 {
            let got = send(&service, get(&[])).await;
            assert_eq!(
                (got.status, got.text().as_str()),
                (200, "version 1"),
                "{detail}"
            );
            assert_eq!(got.cache(), "MISS", "{detail}");
            let member = ours(&got, NAME);
            assert!(
                member.starts_with(&format!("{NAME}; fwd=")),
                "{detail}: {member}"
            );
            assert!(member.contains("fwd-status=200"), "{detail}: {member}");
            assert!(
                member.ends_with(&format!("; detail={detail}")),
                "{detail} (round {round}): {member}"
            );
            assert!(!member.contains("stored"), "{detail}: {member}");
            handle.flush().await;
        }
        assert_eq!(origin.calls(), 2, "{detail}: not stored");
    }
}

/// §2.5, §2.6: a body over the policy's `max_body_bytes` is not stored, and `Cache-Status`
/// says `detail=too-large`, never `stored`: whether the origin declares its length in
/// `Content-Length` or its body only knows its exact size (as a `String` body does, before a
/// server adds the field).
#[tokio::test]
async fn rfc9211_2_6_detail_too_large() {
    for declared in [true, false] {
        let origin = Validating::new(|s| {
            s.headers = vec![("cache-control".into(), "max-age=60".into())];
            if declared {
                s.headers.push(("content-length".into(), "9".into()));
            }
        });
        let (service, handle) = cache_with(&origin, layer(Policy::new().max_body_bytes(4)));
        for round in 0..2 {
            let got = send(&service, get(&[])).await;
            assert_eq!(
                (got.status, got.text().as_str()),
                (200, "version 1"),
                "declared {declared}"
            );
            let member = ours(&got, NAME);
            assert!(
                !member.contains("stored"),
                "declared {declared}, round {round}: not stored, yet {member}"
            );
            assert!(
                member.ends_with("; fwd-status=200; detail=too-large"),
                "declared {declared}, round {round}: {member}"
            );
            handle.flush().await;
        }
        assert_eq!(origin.calls(), 2, "declared {declared}: not stored");
    }
}

/// §2.2 `fwd=bypass`, `fwd=method`, §2.6 `detail`: a request with `Cookie` bypasses the cache
/// (default policy); a `POST` is forwarded for its method.
#[tokio::test]
async fn rfc9211_2_2_bypass_and_method() {
    let origin = fresh_origin();
    let (service, _) = cache(&origin);
    let got = send(&service, get(&[("cookie", "sid=1")])).await;
    assert_eq!(got.cache(), "BYPASS");
    assert_eq!(
        ours(&got, NAME),
        format!("{NAME}; fwd=bypass; fwd-status=200; detail=cookie")
    );
    let got = send(&service, request("POST", &[])).await;
    assert_eq!(got.cache(), "BYPASS");
    assert_eq!(
        ours(&got, NAME),
        format!("{NAME}; fwd=method; fwd-status=200; detail=method")
    );
    // The origin's own status, whatever it is.
    origin.set(|s| s.fail_status = Some(503));
    let got = send(&service, request("DELETE", &[])).await;
    assert_eq!(
        ours(&got, NAME),
        format!("{NAME}; fwd=method; fwd-status=503; detail=method")
    );
}

/// §2.5 `collapsed`: requests that waited for another request's fetch say so; the one that
/// fetched does not.
#[tokio::test]
async fn rfc9211_2_5_coalesced_waiters_are_collapsed() {
    let origin = Validating::new(|s| {
        s.headers = vec![("cache-control".into(), "max-age=60".into())];
        s.delay = Duration::from_millis(200);
    });
    let (service, _) = cache(&origin);
    let requests = (0..10).map(|_| send(&service, get(&[])));
    let answers = futures_util::future::join_all(requests).await;
    assert_eq!(origin.calls(), 1);
    let mut collapsed = 0;
    for got in &answers {
        assert_eq!((got.status, got.text().as_str()), (200, "version 1"));
        let member = ours(got, NAME);
        assert!(member.contains("fwd=uri-miss"), "{member}");
        assert!(member.contains("fwd-status=200"), "{member}");
        if member.contains("; collapsed") {
            collapsed += 1;
        } else {
            assert_eq!(
                member,
                format!("{NAME}; fwd=uri-miss; fwd-status=200; stored; ttl=60")
            );
        }
    }
    assert_eq!(collapsed, 9, "every waiter");
}

/// §2: each cache appends its member; the origin's (or a cache nearer it) stays first, ours
/// is the last, on the miss, on hits, and after a revalidation whose 304 brings a new one.
#[tokio::test]
async fn rfc9211_2_members_are_appended_after_the_origins() {
    let origin = Validating::new(|s| {
        s.headers = vec![
            ("cache-control".into(), "max-age=1".into()),
            ("cache-status".into(), "OriginCache; hit; ttl=30".into()),
        ]
    });
    let (service, handle) = cache(&origin);
    let miss = send(&service, get(&[])).await;
    assert_eq!(members(&miss)[0], "OriginCache; hit; ttl=30");
    assert!(ours(&miss, NAME).contains("fwd=uri-miss"));
    assert_eq!(members(&miss).len(), 2, "{:?}", members(&miss));
    handle.flush().await;
    for _ in 0..2 {
        let hit = send(&service, get(&[])).await;
        assert_eq!(hit.cache(), "HIT");
        assert_eq!(
            members(&hit),
            vec![
                "OriginCache; hit; ttl=30".to_owned(),
                ours(&hit, NAME).clone()
            ]
        );
        assert!(ours(&hit, NAME).starts_with(&format!("{NAME}; hit; ttl=")));
    }
    // The origin's 304 carries a member of its own: it replaces the stored one (RFC 9111 §3.2).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    origin.set(|s| {
        s.headers = vec![
            ("cache-control".into(), "max-age=60".into()),
            (
                "cache-status".into(),
                "OriginCache; fwd=stale; fwd-status=304".into(),
            ),
            ("cache-status".into(), "Second; hit".into()),
        ]
    });
    let revalidated = send(&service, get(&[])).await;
    assert_eq!(origin.not_modified(), 1);
    let all = members(&revalidated);
    assert_eq!(
        &all[..2],
        ["OriginCache; fwd=stale; fwd-status=304", "Second; hit"],
        "{all:?}"
    );
    assert!(ours(&revalidated, NAME).contains("fwd=stale; fwd-status=304; stored"));
    assert_eq!(all.len(), 3, "{all:?}");
    handle.flush().await;
    let hit = send(&service, get(&[])).await;
    let all = members(&hit);
    assert_eq!(
        &all[..2],
        ["OriginCache; fwd=stale; fwd-status=304", "Second; hit"],
        "{all:?}"
    );
    assert!(ours(&hit, NAME).starts_with(&format!("{NAME}; hit; ttl=")));
    assert_eq!(all.len(), 3, "{all:?}");
}

/// §2: the cache's name is configurable; a name that is not an sf-token is an sf-string
/// (quoted). Two caches on one thread each keep their own name.
#[tokio::test]
async fn rfc9211_2_cache_name_is_configurable_and_quoted_when_needed() {
    for (configured, written) in [
        ("edge-1", "edge-1"),
        ("my cache", "\"my cache\""),
        ("1st", "\"1st\""),
        ("say \"hi\"", "\"say \\\"hi\\\"\""),
    ] {
        let origin = fresh_origin();
        let (service, handle) =
            cache_with(&origin, layer(Policy::new()).cache_status_name(configured));
        let miss = send(&service, get(&[])).await;
        assert_eq!(
            status_of(&miss),
            format!("{written}; fwd=uri-miss; fwd-status=200; stored; ttl=60")
        );
        handle.flush().await;
        let hit = send(&service, get(&[])).await;
        assert!(
            status_of(&hit).starts_with(&format!("{written}; hit; ttl=")),
            "{}",
            status_of(&hit)
        );
        let bypass = send(&service, get(&[("cookie", "a=b")])).await;
        assert!(status_of(&bypass).starts_with(&format!("{written}; fwd=bypass")));
    }
    // Two caches, hits with the same ttl, alternating on one thread.
    let (one, two) = (fresh_origin(), fresh_origin());
    let (first, first_handle) = cache_with(&one, layer(Policy::new()).cache_status_name("edge-1"));
    let (second, second_handle) =
        cache_with(&two, layer(Policy::new()).cache_status_name("edge-2"));
    send(&first, get(&[])).await;
    send(&second, get(&[])).await;
    first_handle.flush().await;
    second_handle.flush().await;
    for _ in 0..3 {
        let a = send(&first, get(&[])).await;
        let b = send(&second, get(&[])).await;
        assert!(
            status_of(&a).starts_with("edge-1; hit; ttl="),
            "{}",
            status_of(&a)
        );
        assert!(
            status_of(&b).starts_with("edge-2; hit; ttl="),
            "{}",
            status_of(&b)
        );
    }
}

/// `without_cache_status`: no `Cache-Status` at all, while `X-Cache` still says exactly HIT,
/// MISS, BYPASS or STALE.
#[tokio::test]
async fn rfc9211_without_cache_status_keeps_x_cache() {
    let origin = Validating::new(|s| {
        s.headers = vec![(
            "cache-control".into(),
            "max-age=1, stale-while-revalidate=60".into(),
        )]
    });
    let (service, handle) = cache_with(&origin, layer(Policy::new()).without_cache_status());
    let mut seen = Vec::new();
    let miss = send(&service, get(&[])).await;
    seen.push(("MISS", miss));
    handle.flush().await;
    seen.push(("HIT", send(&service, get(&[])).await));
    seen.push((
        "HIT",
        send(&service, get(&[("if-none-match", "\"v1\"")])).await,
    ));
    seen.push(("BYPASS", send(&service, get(&[("cookie", "a=b")])).await));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    seen.push(("STALE", send(&service, get(&[])).await));
    // Last: a write invalidates the URI.
    seen.push(("BYPASS", send(&service, request("POST", &[])).await));
    for (expected, got) in &seen {
        assert_eq!(got.cache(), *expected);
        assert_eq!(
            got.headers.get_all("x-cache").iter().count(),
            1,
            "{expected}"
        );
        assert!(
            !got.headers.contains_key("cache-status"),
            "{expected}: {}",
            status_of(got)
        );
    }
    assert_eq!(seen[2].1.status, 304);
}

/// `without_cache_header`: no `X-Cache`, while `Cache-Status` stays on every kind of answer.
#[tokio::test]
async fn rfc9211_without_cache_header_keeps_cache_status() {
    let origin = fresh_origin();
    let (service, handle) = cache_with(&origin, layer(Policy::new()).without_cache_header());
    let miss = send(&service, get(&[])).await;
    handle.flush().await;
    let hit = send(&service, get(&[])).await;
    let not_modified = send(&service, get(&[("if-none-match", "\"v1\"")])).await;
    let bypass = send(&service, get(&[("cookie", "a=b")])).await;
    for (got, start) in [
        (&miss, format!("{NAME}; fwd=uri-miss")),
        (&hit, format!("{NAME}; hit; ttl=")),
        (&not_modified, format!("{NAME}; hit; ttl=")),
        (&bypass, format!("{NAME}; fwd=bypass")),
    ] {
        assert!(!got.headers.contains_key("x-cache"), "{start}");
        assert!(ours(got, NAME).starts_with(&start), "{}", status_of(got));
    }
    assert_eq!(not_modified.status, 304);
}

/// RFC 9110 §15.4.5 with RFC 9211: the answers a hit gives to a client's own conditions (304,
/// 412) and ranges (206, 416) still carry this cache's member (and `X-Cache`).
#[tokio::test]
async fn rfc9211_conditional_and_ranged_answers_on_a_hit_carry_cache_status() {
    let origin = fresh_origin();
    let (service, handle) = cache(&origin);
    send(&service, get(&[])).await;
    handle.flush().await;
    let cases: [(&[(&str, &str)], u16); 4] = [
        (&[("if-none-match", "\"v1\"")], 304),
        (&[("if-match", "\"v2\"")], 412),
        (&[("range", "bytes=0-2")], 206),
        (&[("range", "bytes=100-")], 416),
    ];
    for (headers, status) in cases {
        let got = send(&service, get(headers)).await;
        assert_eq!((got.status, got.cache()), (status, "HIT"), "{headers:?}");
        let member = ours(&got, NAME);
        assert!(hit_ttl(&member, NAME) <= 60, "{headers:?}: {member}");
    }
    // The first client of a fill, too.
    let origin = fresh_origin();
    let (service, _) = cache(&origin);
    let got = send(&service, get(&[("if-none-match", "\"v1\"")])).await;
    assert_eq!((got.status, got.cache()), (304, "MISS"));
    assert_eq!(
        ours(&got, NAME),
        format!("{NAME}; fwd=uri-miss; fwd-status=200; stored; ttl=60")
    );
}

/// §2.1 `hit` with a negative `ttl`: a stale response served (stale-while-revalidate) is a hit
/// whose freshness ran out that long ago.
#[tokio::test]
async fn rfc9211_2_1_stale_hit_has_a_non_positive_ttl() {
    let origin = Validating::new(|s| {
        s.headers = vec![(
            "cache-control".into(),
            "max-age=1, stale-while-revalidate=60".into(),
        )]
    });
    let (service, handle) = cache(&origin);
    send(&service, get(&[])).await;
    handle.flush().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let got = send(&service, get(&[])).await;
    assert_eq!(got.cache(), "STALE");
    let member = ours(&got, NAME);
    assert!(hit_ttl(&member, NAME) <= 0, "{member}");
}
