//! A response is never served to someone it was not meant for, and writes always reach the
//! handler.

mod common;

use axum::Router;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::any;
use common::{Calls, req, send};
use tower_response_cache::{Authorization, CacheLayer, Cookies, MemoryStore, Policy, SetCookie};

/// An origin that answers with the caller's identity, the call count, and the response headers
/// named in the `x-respond-with` request header (`name: value; name: value`).
fn origin(calls: Calls, layer: CacheLayer<MemoryStore>) -> Router {
    Router::new()
        .route(
            "/{*path}",
            any(move |method: http::Method, headers: HeaderMap| {
                let n = calls.hit();
                async move {
                    let who = headers
                        .get("authorization")
                        .or(headers.get("cookie"))
                        .or(headers.get("accept-language"))
                        .map_or("anonymous", |v| v.to_str().unwrap())
                        .to_owned();
                    let mut out = HeaderMap::new();
                    if let Some(spec) = headers.get("x-respond-with") {
                        for pair in spec.to_str().unwrap().split(';') {
                            let (k, v) = pair.split_once(':').unwrap();
                            out.append(
                                http::HeaderName::from_bytes(k.trim().as_bytes()).unwrap(),
                                v.trim().parse().unwrap(),
                            );
                        }
                    }
                    (out, format!("{method} for {who} (call {n})")).into_response()
                }
            }),
        )
        .layer(layer)
}

fn layer() -> CacheLayer<MemoryStore> {
    CacheLayer::new(MemoryStore::with_capacity_bytes(1 << 20))
}

#[tokio::test]
async fn writes_always_reach_the_handler_whatever_the_policy() {
    for method in ["POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PURGE"] {
        let calls = Calls::default();
        let app = origin(
            calls.clone(),
            layer().policy(Policy::new().cookies(Cookies::Ignore)),
        );
        for i in 1..=2 {
            let got = send(&app, req(method, "/orders", &[])).await;
            assert_eq!(got.cache(), "BYPASS", "{method}");
            assert_eq!(got.text(), format!("{method} for anonymous (call {i})"));
        }
        assert_eq!(calls.get(), 2, "{method}");
    }
}

#[tokio::test]
async fn authorization_responses_are_not_shared_unless_public() {
    let calls = Calls::default();
    let app = origin(calls.clone(), layer());
    let alice = send(
        &app,
        req("GET", "/me", &[("authorization", "Bearer alice")]),
    )
    .await;
    assert_eq!(alice.text(), "GET for Bearer alice (call 1)");
    let anon = send(&app, req("GET", "/me", &[])).await;
    assert_eq!(anon.text(), "GET for anonymous (call 2)");
    let bob = send(&app, req("GET", "/me", &[("authorization", "Bearer bob")])).await;
    assert_eq!(bob.text(), "GET for Bearer bob (call 3)");

    // Explicitly public: shared, as RFC 9111 §3.5 allows.
    let public = [
        ("authorization", "Bearer alice"),
        ("x-respond-with", "cache-control: public, max-age=60"),
    ];
    send(&app, req("GET", "/catalog", &public)).await;
    let anon = send(&app, req("GET", "/catalog", &[])).await;
    assert_eq!(anon.cache(), "HIT");
    let bob = send(
        &app,
        req("GET", "/catalog", &[("authorization", "Bearer bob")]),
    )
    .await;
    assert_eq!(
        bob.cache(),
        "HIT",
        "public responses may answer credentialed requests"
    );

    // Policy Bypass: never served from the cache either.
    let app = origin(
        Calls::default(),
        layer().policy(Policy::new().authorization(Authorization::Bypass)),
    );
    send(&app, req("GET", "/catalog", &[])).await;
    let authed = send(
        &app,
        req("GET", "/catalog", &[("authorization", "Bearer x")]),
    )
    .await;
    assert_eq!(authed.cache(), "BYPASS");
}

#[tokio::test]
async fn cookie_requests_bypass_by_default() {
    let calls = Calls::default();
    let app = origin(calls.clone(), layer());
    send(
        &app,
        req("GET", "/dashboard", &[("cookie", "session=alice")]),
    )
    .await;
    let bob = send(&app, req("GET", "/dashboard", &[("cookie", "session=bob")])).await;
    assert_eq!(bob.cache(), "BYPASS");
    assert_eq!(bob.text(), "GET for session=bob (call 2)");
    let anon = send(&app, req("GET", "/dashboard", &[])).await;
    assert_eq!(anon.cache(), "MISS");
}

#[tokio::test]
async fn set_cookie_is_not_stored_or_is_stripped() {
    let calls = Calls::default();
    let app = origin(calls.clone(), layer());
    let with_cookie = [("x-respond-with", "set-cookie: session=alice")];
    let first = send(&app, req("GET", "/login", &with_cookie)).await;
    assert_eq!(first.headers["set-cookie"], "session=alice");
    let second = send(&app, req("GET", "/login", &[])).await;
    assert_eq!(second.cache(), "MISS");
    assert_eq!(calls.get(), 2);

    let app = origin(
        Calls::default(),
        layer().policy(Policy::new().set_cookie(SetCookie::StripAndStore)),
    );
    let first = send(&app, req("GET", "/home", &with_cookie)).await;
    assert_eq!(
        first.headers["set-cookie"], "session=alice",
        "the filler keeps its cookie"
    );
    let hit = send(&app, req("GET", "/home", &[])).await;
    assert_eq!(hit.cache(), "HIT");
    assert!(hit.headers.get("set-cookie").is_none());
}

#[tokio::test]
async fn no_store_private_no_cache_and_vary_star_are_never_stored() {
    for cc in [
        "cache-control: no-store",
        "cache-control: private, max-age=600",
        "cache-control: no-cache",
        "cache-control: max-age=0",
        "vary: *",
    ] {
        let calls = Calls::default();
        let app = origin(calls.clone(), layer());
        send(&app, req("GET", "/x", &[("x-respond-with", cc)])).await;
        let again = send(&app, req("GET", "/x", &[])).await;
        assert_eq!(again.cache(), "MISS", "{cc}");
        assert_eq!(calls.get(), 2, "{cc}");
    }
}

/// RFC 9111 §5.2.1.5: the response to a `no-store` request is not stored; what is stored
/// may still answer it.
#[tokio::test]
async fn rfc9111_5_2_1_5_request_no_store_is_not_stored_but_may_be_answered() {
    let app = origin(Calls::default(), layer());
    let no_store = || req("GET", "/x", &[("cache-control", "no-store")]);
    assert_eq!(send(&app, no_store()).await.cache(), "MISS");
    assert_eq!(send(&app, req("GET", "/x", &[])).await.cache(), "MISS");
    assert_eq!(send(&app, no_store()).await.cache(), "HIT");
}

#[tokio::test]
async fn virtual_hosts_never_share_entries() {
    let calls = Calls::default();
    let app = origin(calls.clone(), layer());
    send(&app, req("GET", "/home", &[("host", "a.example")])).await;
    let b = send(&app, req("GET", "/home", &[("host", "b.example")])).await;
    assert_eq!(b.cache(), "MISS");
    let a = send(&app, req("GET", "/home", &[("host", "A.example")])).await;
    assert_eq!(a.cache(), "HIT");
    assert_eq!(calls.get(), 2);
}

#[tokio::test]
async fn vary_selects_the_matching_variant() {
    let calls = Calls::default();
    let app = origin(calls.clone(), layer());
    let vary = ("x-respond-with", "vary: Accept-Language");
    let en = send(
        &app,
        req("GET", "/page", &[("accept-language", "en"), vary]),
    )
    .await;
    assert_eq!(en.text(), "GET for en (call 1)");
    let fr = send(
        &app,
        req("GET", "/page", &[("accept-language", "fr"), vary]),
    )
    .await;
    assert_eq!(fr.cache(), "MISS");
    assert_eq!(fr.text(), "GET for fr (call 2)");
    let en_again = send(&app, req("GET", "/page", &[("accept-language", "en")])).await;
    assert_eq!(en_again.cache(), "HIT");
    assert_eq!(en_again.text(), "GET for en (call 1)");
    let fr_again = send(&app, req("GET", "/page", &[("accept-language", "fr")])).await;
    assert_eq!(fr_again.text(), "GET for fr (call 2)");
    let none = send(&app, req("GET", "/page", &[])).await;
    assert_eq!(none.cache(), "MISS");
    assert_eq!(none.text(), "GET for anonymous (call 3)");
}
