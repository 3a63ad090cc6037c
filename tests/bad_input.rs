//! Bad input gets a safe bypass or an uncached answer: never a panic, never unbounded memory,
//! never another request's response.

mod common;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use common::{Calls, send};
use http::{HeaderValue, Request};
use tower_response_cache::{CacheLayer, MemoryStore};

fn origin(calls: &Calls, headers: &'static [(&'static str, &'static [u8])]) -> Router {
    let calls = calls.clone();
    Router::new()
        .fallback(get(move |uri: http::Uri| {
            let n = calls.hit();
            async move {
                let mut response = axum::response::Response::new(Body::from(format!("{uri} {n}")));
                for (k, v) in headers {
                    response
                        .headers_mut()
                        .append(*k, HeaderValue::from_bytes(v).unwrap());
                }
                response
            }
        }))
        .layer(CacheLayer::new(MemoryStore::with_capacity_bytes(1 << 20)))
}

#[tokio::test]
async fn malformed_cache_control_is_not_stored() {
    for cc in [&b"max-age=\"60"[..], b"\xff\xfe", b"private=\"x, no-store"] {
        let calls = Calls::default();
        let headers: &'static [(&'static str, &'static [u8])] =
            Box::leak(Box::new([("cache-control", cc)]));
        let app = origin(&calls, headers);
        send(&app, common::get("/x")).await;
        assert_eq!(send(&app, common::get("/x")).await.cache(), "MISS");
    }
    // Invalid delta-seconds are stale, not fresh; garbage directives are ignored.
    let calls = Calls::default();
    let stale = origin(&calls, &[("cache-control", b"max-age=soon")]);
    send(&stale, common::get("/x")).await;
    assert_eq!(send(&stale, common::get("/x")).await.cache(), "MISS");
    let app = origin(&calls, &[("cache-control", b";;, =, max-age=60,,")]);
    send(&app, common::get("/y")).await;
    assert_eq!(send(&app, common::get("/y")).await.cache(), "HIT");
}

#[tokio::test]
async fn non_utf8_headers_do_not_panic() {
    let calls = Calls::default();
    let app = origin(
        &calls,
        &[
            ("vary", b"caf\xe9"),
            ("x-odd", b"\x80\xff"),
            ("expires", b"\xff"),
        ],
    );
    send(&app, common::get("/v")).await;
    assert_eq!(send(&app, common::get("/v")).await.cache(), "MISS");
    let odd = origin(&calls, &[("x-odd", b"\x80\xff")]);
    let request = |v: &'static [u8]| {
        Request::get("/w")
            .header("accept-language", HeaderValue::from_bytes(v).unwrap())
            .header("cache-control", HeaderValue::from_bytes(v).unwrap())
            .body(Body::empty())
            .unwrap()
    };
    send(&odd, request(b"\xe9\xff")).await;
    let got = send(&odd, request(b"\xe9\xff")).await;
    assert_eq!(got.cache(), "HIT");
    assert_eq!(got.headers["x-odd"].as_bytes(), b"\x80\xff");
}

#[tokio::test]
async fn odd_hosts_bypass() {
    let calls = Calls::default();
    let app = origin(&calls, &[]);
    for host in [
        &b"bad host"[..],
        b"user@evil.example",
        b"\xff.example",
        b"a.example, b.example",
    ] {
        let request = Request::get("/")
            .header("host", HeaderValue::from_bytes(host).unwrap())
            .body(Body::empty())
            .unwrap();
        assert_eq!(send(&app, request).await.cache(), "BYPASS");
    }
}

#[tokio::test]
async fn odd_paths_are_distinct_keys() {
    let calls = Calls::default();
    let app = origin(&calls, &[]);
    // Paths that mean different things (RFC 3986 §6.2.2): each its own entry.
    let paths = [
        "/a%2Fb", "/a/b", "/A/b", "/a/b/", "//a/b", "/%00", "/~", "/%C3%A9",
    ];
    for path in paths {
        let got = send(&app, common::get(path)).await;
        assert_eq!(got.cache(), "MISS", "{path}");
        assert!(got.text().starts_with(path), "{path} got {}", got.text());
    }
    for path in paths {
        let got = send(&app, common::get(path)).await;
        assert_eq!(got.cache(), "HIT", "{path}");
        assert!(got.text().starts_with(path), "{path} got {}", got.text());
    }
    assert_eq!(calls.get(), paths.len());
    // Other spellings of those paths are answered from their normal form's entry.
    for (spelling, normal) in [
        ("/a/./b", "/a/b"),
        ("/x/../a/b", "/a/b"),
        ("/%7E", "/~"),
        ("/%7e", "/~"),
        ("/a%2fb", "/a%2Fb"),
        ("/%c3%a9", "/%C3%A9"),
        ("/%61/b", "/a/b"),
    ] {
        let got = send(&app, common::get(spelling)).await;
        assert_eq!(got.cache(), "HIT", "{spelling}");
        assert!(
            got.text().starts_with(normal),
            "{spelling} got {}",
            got.text()
        );
    }
    assert_eq!(calls.get(), paths.len());
}

#[tokio::test]
async fn thousands_of_query_parameters() {
    let calls = Calls::default();
    let app = origin(&calls, &[]);
    let short: Vec<String> = (0..500).map(|i| format!("p{i}=1")).collect();
    let uri = format!("/q?{}", short.join("&"));
    send(&app, common::get(&uri)).await;
    assert_eq!(send(&app, common::get(&uri)).await.cache(), "HIT");
    // A key over the limit (8 KiB by default) bypasses rather than growing without bound.
    let long: Vec<String> = (0..5000).map(|i| format!("p{i}=1")).collect();
    let uri = format!("/q?{}", long.join("&"));
    assert_eq!(send(&app, common::get(&uri)).await.cache(), "BYPASS");
}

#[tokio::test]
async fn non_ascii_paths_with_percent_signs_do_not_panic() {
    // The `http` crate accepts UTF-8 in paths; normalising one that also holds `%` once
    // sliced inside a character (found by the key property tests).
    let calls = Calls::default();
    let app = origin(&calls, &[]);
    for path in [
        "/%41\u{e9}",
        "/x%7e\u{1F600}%",
        "/caf\u{e9}%",
        "/a\u{1F600}%zz/%7e\u{e9}",
        "/\u{e9}/../%41",
    ] {
        let first = send(&app, common::get(path)).await;
        assert_eq!(first.status, 200, "{path}");
        let again = send(&app, common::get(path)).await;
        assert!(matches!(again.cache(), "HIT" | "MISS"), "{path}");
    }
    // A stray `%` is not in normal form (that is `%25`): read-only. Plain UTF-8 is.
    send(&app, common::get("/caf\u{e9}")).await;
    let normal = send(&app, common::get("/caf\u{e9}")).await;
    assert_eq!(normal.cache(), "HIT", "already in normal form, so stored");
}
