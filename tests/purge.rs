//! Purging over HTTP: the endpoint and the PURGE method, with good, bad and missing tokens.

mod common;

use axum::Router;
use axum::routing::get;
use common::{Calls, req, send};
use tower_response_cache::{CacheLayer, InvalidToken, MemoryStore, PurgeService, PurgeToken};

const TOKEN: &str = "s3cret-token";

fn token() -> PurgeToken {
    PurgeToken::new(TOKEN).unwrap()
}

fn site(calls: &Calls, layer: CacheLayer<MemoryStore>) -> Router {
    let c = calls.clone();
    Router::new()
        .route(
            "/{*path}",
            get(move |uri: http::Uri| {
                let n = c.hit();
                async move { ([("cache-tag", "site")], format!("{} {n}", uri.path())) }
            }),
        )
        .layer(layer)
}

#[tokio::test]
async fn the_purge_endpoint_needs_the_token() {
    let layer = CacheLayer::new(MemoryStore::with_capacity_bytes(1 << 20));
    let purge = PurgeService::new(layer.handle(), token());
    let calls = Calls::default();
    let app = site(&calls, layer).merge(Router::new().route_service("/_cache/purge", purge));
    send(&app, common::get("/a")).await;
    send(&app, common::get("/b")).await;

    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Basic s3cret-token"),
        Some("Bearer s3cret-toke"),
    ] {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
        let got = send(&app, req("POST", "/_cache/purge?all=true", &headers)).await;
        assert_eq!(got.status, 401, "{auth:?}");
        assert_eq!(
            got.headers["www-authenticate"],
            "Bearer realm=\"cache purge\""
        );
        assert!(!got.text().contains("/a"), "nothing about the entries");
    }
    assert_eq!(
        send(&app, common::get("/a")).await.cache(),
        "HIT",
        "nothing was purged"
    );

    let auth = [("authorization", "Bearer s3cret-token")];
    let got = send(&app, req("POST", "/_cache/purge?uri=%2Fa", &auth)).await;
    assert_eq!(
        (got.status, got.text().as_str()),
        (200, "purged 1 entries\n")
    );
    assert_eq!(send(&app, common::get("/a")).await.cache(), "MISS");
    assert_eq!(send(&app, common::get("/b")).await.cache(), "HIT");

    let got = send(&app, req("DELETE", "/_cache/purge?tag=site", &auth)).await;
    assert_eq!(
        (got.status, got.text().as_str()),
        (200, "purged 2 entries\n")
    );
    assert_eq!(send(&app, common::get("/b")).await.cache(), "MISS");

    assert_eq!(
        send(&app, req("POST", "/_cache/purge?prefix=%2F&host=", &auth))
            .await
            .status,
        200
    );
    assert_eq!(send(&app, common::get("/b")).await.cache(), "MISS");

    assert_eq!(
        send(&app, req("GET", "/_cache/purge?all=true", &auth))
            .await
            .status,
        405
    );
    assert_eq!(
        send(&app, req("POST", "/_cache/purge", &auth)).await.status,
        400
    );
    assert_eq!(
        send(&app, req("POST", "/_cache/purge?tag=a%20b", &auth))
            .await
            .status,
        400
    );
    for typo in ["prefix=products", "prefix="] {
        let got = send(&app, req("POST", &format!("/_cache/purge?{typo}"), &auth)).await;
        assert_eq!(got.status, 400, "{typo}");
    }
    assert_eq!(
        send(&app, req("POST", "/_cache/purge?bogus=1", &auth))
            .await
            .status,
        400
    );
    assert_eq!(
        send(&app, req("POST", "/_cache/purge?all=true", &auth))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn purges_without_a_host_reach_every_host_and_say_how_many() {
    let layer = CacheLayer::new(MemoryStore::with_capacity_bytes(1 << 20));
    let purge = PurgeService::new(layer.handle(), token());
    let calls = Calls::default();
    let app = site(&calls, layer).merge(Router::new().route_service("/_cache/purge", purge));
    let auth = ("authorization", "Bearer s3cret-token");
    let fill = |app: Router| async move {
        for host in ["a.example", "b.example"] {
            for path in ["/products/1", "/products/2", "/about"] {
                send(&app, req("GET", path, &[("host", host)])).await;
            }
        }
    };
    let purged = |app: Router, query: &'static str| async move {
        let got = send(
            &app,
            req("POST", &format!("/_cache/purge?{query}"), &[auth]),
        )
        .await;
        assert_eq!(got.status, 200, "{query}");
        got.text()
    };
    fill(app.clone()).await;
    assert_eq!(
        purged(app.clone(), "uri=%2Fproducts%2F1").await,
        "purged 2 entries\n"
    );
    assert_eq!(
        purged(app.clone(), "uri=http%3A%2F%2Fa.example%2Fproducts%2F2").await,
        "purged 1 entries\n"
    );
    fill(app.clone()).await;
    assert_eq!(
        purged(app.clone(), "prefix=%2Fproducts%2F").await,
        "purged 4 entries\n"
    );
    assert_eq!(
        purged(app.clone(), "prefix=%2F&host=b.example").await,
        "purged 1 entries\n"
    );
    fill(app.clone()).await;
    assert_eq!(purged(app.clone(), "all=true").await, "purged 6 entries\n");
    let after = send(&app, req("GET", "/about", &[("host", "a.example")])).await;
    assert_eq!(after.cache(), "MISS");
}

#[test]
fn tokens_must_be_usable() {
    assert_eq!(PurgeToken::new("").unwrap_err(), InvalidToken);
    assert_eq!(PurgeToken::new("two words").unwrap_err(), InvalidToken);
}

#[tokio::test]
async fn the_purge_method_is_off_by_default_and_guarded_when_on() {
    // Off: PURGE is a method like any other write, forwarded to the origin.
    let calls = Calls::default();
    let app = site(
        &calls,
        CacheLayer::new(MemoryStore::with_capacity_bytes(1 << 20)),
    );
    let got = send(&app, req("PURGE", "/a", &[])).await;
    assert_eq!(
        got.status, 405,
        "the origin answered (axum: method not allowed)"
    );

    // On: answered by the cache, never forwarded.
    let calls = Calls::default();
    let layer = CacheLayer::new(MemoryStore::with_capacity_bytes(1 << 20)).purge_method(token());
    let app = site(&calls, layer);
    send(&app, common::get("/a")).await;
    let denied = send(
        &app,
        req("PURGE", "/a", &[("authorization", "Bearer nope")]),
    )
    .await;
    assert_eq!(denied.status, 401);
    assert_eq!(send(&app, common::get("/a")).await.cache(), "HIT");
    let purged = send(
        &app,
        req("PURGE", "/a", &[("authorization", "Bearer s3cret-token")]),
    )
    .await;
    assert_eq!(
        (purged.status, purged.text().as_str()),
        (200, "purged 1 entries\n")
    );
    assert_eq!(send(&app, common::get("/a")).await.cache(), "MISS");
    assert_eq!(calls.get(), 2, "PURGE never reached the origin");
}
