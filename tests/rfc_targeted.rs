//! Targeted cache control (RFC 9213): with `.targeted_field(cdn-cache-control)`, a valid
//! structured-dictionary field takes the place of `Cache-Control` (and `Expires`) for this
//! cache: it can make a `no-store` response storable or a cacheable one not; an invalid or
//! empty one is ignored and `Cache-Control` applies. The field is removed from what leaves the
//! cache unless `.keep_targeted_field()`; `Cache-Control` itself is passed on untouched for
//! the caches and clients after this one. Without the layer configured for it, the field is
//! an ordinary header.

mod common;

use common::rfc::{
    Cached, Setup, cache_with, date_in, layer, origin_with, status_of, ttl_of, twice,
};
use common::validating::Validating;
use http::HeaderName;
use std::time::Duration;
use tower_response_cache::Policy;

const CDN: HeaderName = HeaderName::from_static("cdn-cache-control");

/// How the layer treats the targeted field.
#[derive(Clone, Copy)]
enum Targeted {
    /// Not configured.
    Off,
    /// `.targeted_field(name)`.
    On(&'static str),
    /// `.targeted_field(name).keep_targeted_field()`.
    Kept(&'static str),
}

fn cache(origin: &Validating, policy: Policy, targeted: Targeted) -> (Cached, Setup) {
    let layer = layer(policy);
    let layer = match targeted {
        Targeted::Off => layer,
        Targeted::On(name) => layer.targeted_field(HeaderName::from_static(name)),
        Targeted::Kept(name) => layer
            .targeted_field(HeaderName::from_static(name))
            .keep_targeted_field(),
    };
    cache_with(origin, layer)
}

/// RFC 9213 §2.2: `Cache-Control: no-store` with `CDN-Cache-Control: max-age=60`: this cache
/// follows the targeted field and stores it for 60 s; the targeted field leaves neither the
/// miss nor the hit, while `Cache-Control: no-store` goes on to those after this cache.
#[tokio::test]
async fn rfc9213_2_2_targeted_field_replaces_cache_control() {
    let origin = origin_with(
        &[
            ("cache-control", "no-store"),
            ("cdn-cache-control", "max-age=60"),
        ],
        true,
    );
    let (service, setup) = cache(&origin, Policy::new(), Targeted::On("cdn-cache-control"));
    let (first, hit) = twice(&service, &setup).await;
    assert!(
        status_of(&first).contains("fwd=uri-miss; fwd-status=200; stored; ttl=60"),
        "{}",
        status_of(&first)
    );
    assert_eq!((hit.cache(), hit.text().as_str()), ("HIT", "version 1"));
    assert_eq!(origin.calls(), 1);
    for (what, got) in [("miss", &first), ("hit", &hit)] {
        assert!(
            !got.headers.contains_key(CDN),
            "{what} carries the targeted field"
        );
        assert_eq!(got.headers["cache-control"], "no-store", "{what}");
    }
    assert_eq!(setup.stats.snapshot().hits, 1);
}

/// RFC 9213 §2.2: the targeted field gives this cache explicit freshness on its own (no
/// `Cache-Control` at all), enough to store a status outside the policy's list.
#[tokio::test]
async fn rfc9213_2_2_targeted_freshness_alone_stores_any_status() {
    let origin = origin_with(&[("cdn-cache-control", "max-age=30")], false);
    origin.set(|s| s.status = 403);
    let (service, setup) = cache(
        &origin,
        Policy::shared_cache(),
        Targeted::On("cdn-cache-control"),
    );
    let (first, hit) = twice(&service, &setup).await;
    assert_eq!(ttl_of(&first), Some(30), "{}", status_of(&first));
    assert_eq!((hit.status, hit.cache()), (403, "HIT"));
}

/// RFC 9213 §2.1-2.2: a targeted field that is not a valid Structured Field Dictionary (or
/// is empty) is ignored, and `Cache-Control` applies: `no-store` is not stored.
#[tokio::test]
async fn rfc9213_2_1_invalid_targeted_field_is_ignored() {
    for invalid in [
        "Max-Age=60",
        "max-age=60,",
        "max-age=",
        "max-age=60 s-maxage=60",
        "max-age=60,, public",
        "max-age=1234567890123456",
        "",
        "max-age=\"60",
    ] {
        let origin = origin_with(
            &[
                ("cache-control", "no-store"),
                ("cdn-cache-control", invalid),
            ],
            true,
        );
        let (service, setup) = cache(&origin, Policy::new(), Targeted::On("cdn-cache-control"));
        let (first, second) = twice(&service, &setup).await;
        assert!(
            status_of(&first).contains("detail=no-store"),
            "{invalid:?}: {}",
            status_of(&first)
        );
        assert_ne!(second.cache(), "HIT", "{invalid:?}");
        assert_eq!(origin.calls(), 2, "{invalid:?}");
    }
    // With a cacheable `Cache-Control`, its lifetime, not the invalid field's.
    for invalid in ["Max-Age=600", "max-age=600,", "max-age=600 x"] {
        let origin = origin_with(
            &[
                ("cache-control", "max-age=5"),
                ("cdn-cache-control", invalid),
            ],
            true,
        );
        let (service, setup) = cache(&origin, Policy::new(), Targeted::On("cdn-cache-control"));
        let (first, hit) = twice(&service, &setup).await;
        assert_eq!(
            ttl_of(&first),
            Some(5),
            "{invalid:?}: {}",
            status_of(&first)
        );
        assert_eq!(hit.cache(), "HIT", "{invalid:?}");
    }
}

/// RFC 9213 §2.1: a field of several lines is one dictionary; one invalid line makes all of it
/// invalid. Unknown members of any bare-item type are valid (and ignored).
#[tokio::test]
async fn rfc9213_2_1_targeted_field_lines_and_members() {
    // Two valid lines: `max-age=60` and unknown members; `no-store` in Cache-Control is
    // overruled.
    let origin = origin_with(
        &[
            ("cache-control", "no-store"),
            ("cdn-cache-control", "max-age=60"),
            ("cdn-cache-control", "x=?1, y=1.5, z=*tok/en, w=\"s\""),
        ],
        true,
    );
    let (service, setup) = cache(&origin, Policy::new(), Targeted::On("cdn-cache-control"));
    let (first, hit) = twice(&service, &setup).await;
    assert_eq!(ttl_of(&first), Some(60), "{}", status_of(&first));
    assert_eq!(hit.cache(), "HIT");

    // One invalid line: Cache-Control's `no-store` stands.
    let origin = origin_with(
        &[
            ("cache-control", "no-store"),
            ("cdn-cache-control", "max-age=60"),
            ("cdn-cache-control", "Bad"),
        ],
        true,
    );
    let (service, setup) = cache(&origin, Policy::new(), Targeted::On("cdn-cache-control"));
    let (first, second) = twice(&service, &setup).await;
    assert!(
        status_of(&first).contains("detail=no-store"),
        "{}",
        status_of(&first)
    );
    assert_ne!(second.cache(), "HIT");
}

/// RFC 9213 §2.1: members of a targeted field are Structured Field dictionary members, which
/// may carry parameters; "Parameters received on cache directives are to be ignored, unless
/// other handling is explicitly specified". `max-age=60;foo=bar` is `max-age=60`, and
/// `no-store;x=1` is `no-store`.
#[tokio::test]
async fn rfc9213_2_1_parameters_on_directives_are_ignored() {
    let origin = origin_with(
        &[
            ("cache-control", "no-store"),
            ("cdn-cache-control", "max-age=60;foo=bar"),
        ],
        true,
    );
    let (service, setup) = cache(&origin, Policy::new(), Targeted::On("cdn-cache-control"));
    let (first, hit) = twice(&service, &setup).await;
    let mut wrong = Vec::new();
    if ttl_of(&first) != Some(60) || hit.cache() != "HIT" {
        wrong.push(format!(
            "max-age=60;foo=bar: {} then {}",
            status_of(&first),
            hit.cache()
        ));
    }
    for targeted in ["no-store;x=1", "no-store;x", "max-age=60, private;a=?1"] {
        let origin = origin_with(
            &[
                ("cache-control", "max-age=60"),
                ("cdn-cache-control", targeted),
            ],
            true,
        );
        let (service, setup) = cache(&origin, Policy::new(), Targeted::On("cdn-cache-control"));
        let (first, second) = twice(&service, &setup).await;
        if status_of(&first).contains("stored") || second.cache() == "HIT" {
            wrong.push(format!(
                "{targeted}: {} then {}",
                status_of(&first),
                second.cache()
            ));
        }
    }
    assert!(wrong.is_empty(), "parameters not ignored: {wrong:#?}");
}

/// RFC 9213 §2.2: the targeted field's `no-store` (or `private`) beats a cacheable
/// `Cache-Control`; its `max-age=0` is no freshness.
#[tokio::test]
async fn rfc9213_2_2_targeted_no_store_beats_cache_control() {
    for (targeted, detail) in [("no-store", "no-store"), ("private", "private")] {
        let origin = origin_with(
            &[
                ("cache-control", "public, max-age=60"),
                ("cdn-cache-control", targeted),
            ],
            true,
        );
        let (service, setup) = cache(&origin, Policy::new(), Targeted::On("cdn-cache-control"));
        let (first, second) = twice(&service, &setup).await;
        assert!(
            status_of(&first).contains(&format!("fwd-status=200; detail={detail}")),
            "{targeted}: {}",
            status_of(&first)
        );
        assert_ne!(second.cache(), "HIT", "{targeted}");
        assert_eq!(origin.calls(), 2, "{targeted}");
        assert_eq!(first.headers["cache-control"], "public, max-age=60");
        assert!(!first.headers.contains_key(CDN));
    }
    let origin = origin_with(
        &[
            ("cache-control", "max-age=60"),
            ("cdn-cache-control", "max-age=0"),
        ],
        false,
    );
    let (service, setup) = cache(&origin, Policy::new(), Targeted::On("cdn-cache-control"));
    let (first, second) = twice(&service, &setup).await;
    assert!(
        status_of(&first).contains("detail=not-fresh"),
        "{}",
        status_of(&first)
    );
    assert_ne!(second.cache(), "HIT");
}

/// RFC 9213 §2.2 ("it MUST ignore the Cache-Control and Expires header fields in that
/// response"): with a valid targeted field, `Expires` gives no lifetime either. A targeted
/// `public` with a far `Expires` is stored on the policy's ttl (7 s), not for an hour; a
/// past `Expires` does not make it stale.
#[tokio::test]
async fn rfc9213_2_2_targeted_field_also_replaces_expires() {
    let date = date_in(0);
    let hour = date_in(3600);
    let origin = origin_with(
        &[
            ("date", &date),
            ("expires", &hour),
            ("cdn-cache-control", "public"),
        ],
        false,
    );
    let policy = Policy::new().ttl(Duration::from_secs(7));
    let (service, setup) = cache(&origin, policy.clone(), Targeted::On("cdn-cache-control"));
    let (first, hit) = twice(&service, &setup).await;
    assert_eq!(
        ttl_of(&first),
        Some(7),
        "Expires must be ignored: {}",
        status_of(&first)
    );
    assert_eq!(hit.cache(), "HIT");

    let past = date_in(-3600);
    let origin = origin_with(
        &[
            ("date", &date),
            ("expires", &past),
            ("cache-control", "no-store"),
            ("cdn-cache-control", "public"),
        ],
        false,
    );
    let (service, setup) = cache(&origin, policy, Targeted::On("cdn-cache-control"));
    let (first, hit) = twice(&service, &setup).await;
    assert_eq!(
        ttl_of(&first),
        Some(7),
        "Expires must be ignored: {}",
        status_of(&first)
    );
    assert_eq!(hit.cache(), "HIT");
}

/// `.keep_targeted_field()` passes the field on, on the miss and on hits (for a cache behind
/// this one that follows it too).
#[tokio::test]
async fn rfc9213_keep_targeted_field_passes_it_on() {
    let origin = origin_with(
        &[
            ("cache-control", "no-store"),
            ("cdn-cache-control", "max-age=60"),
        ],
        true,
    );
    let (service, setup) = cache(&origin, Policy::new(), Targeted::Kept("cdn-cache-control"));
    let (first, hit) = twice(&service, &setup).await;
    assert_eq!(hit.cache(), "HIT");
    for (what, got) in [("miss", &first), ("hit", &hit)] {
        assert_eq!(got.headers[CDN], "max-age=60", "{what}");
        assert_eq!(got.headers["cache-control"], "no-store", "{what}");
    }
}

/// RFC 9213 §2.2 (a cache follows only the fields on its target list): without
/// `.targeted_field`, `CDN-Cache-Control` is an ordinary field: ignored for caching
/// (`Cache-Control: no-store` is not stored) and passed through; stored with the response
/// when Cache-Control allows it.
#[tokio::test]
async fn rfc9213_without_a_target_list_the_field_is_ignored_and_passed_on() {
    let origin = origin_with(
        &[
            ("cache-control", "no-store"),
            ("cdn-cache-control", "max-age=60"),
        ],
        true,
    );
    let (service, setup) = cache(&origin, Policy::new(), Targeted::Off);
    let (first, second) = twice(&service, &setup).await;
    assert!(
        status_of(&first).contains("detail=no-store"),
        "{}",
        status_of(&first)
    );
    assert_eq!(first.headers[CDN], "max-age=60");
    assert_ne!(second.cache(), "HIT");
    assert_eq!(origin.calls(), 2);

    let origin = origin_with(
        &[
            ("cache-control", "max-age=60"),
            ("cdn-cache-control", "no-store"),
        ],
        true,
    );
    let (service, setup) = cache(&origin, Policy::new(), Targeted::Off);
    let (first, hit) = twice(&service, &setup).await;
    assert_eq!(ttl_of(&first), Some(60), "{}", status_of(&first));
    assert_eq!(hit.cache(), "HIT");
    assert_eq!(hit.headers[CDN], "no-store");
}

/// RFC 9213 §2.2 allows a field of the cache's own: a layer targeting `edge-cache-control`
/// follows it and ignores `CDN-Cache-Control` (not on its list, passed on).
#[tokio::test]
async fn rfc9213_2_2_only_the_configured_field_is_followed() {
    let origin = origin_with(
        &[
            ("cache-control", "no-store"),
            ("cdn-cache-control", "no-store"),
            ("edge-cache-control", "max-age=45"),
        ],
        true,
    );
    let (service, setup) = cache(&origin, Policy::new(), Targeted::On("edge-cache-control"));
    let (first, hit) = twice(&service, &setup).await;
    assert_eq!(ttl_of(&first), Some(45), "{}", status_of(&first));
    assert_eq!(hit.cache(), "HIT");
    assert!(!hit.headers.contains_key("edge-cache-control"));
    assert_eq!(hit.headers[CDN], "no-store");
}
