//! The figures of `CacheStats`: every cacheable request counted once, a hit ratio that counts
//! every answer from the cache, stores that were stored, and clears that say what they removed.

mod common;

use axum::Router;
use axum::routing::get;
use common::{Calls, req, send};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tower_response_cache::{CacheLayer, MemoryStore, Policy, PurgeService, PurgeToken};

fn cache(policy: Policy) -> CacheLayer<MemoryStore> {
    CacheLayer::new(MemoryStore::with_capacity_bytes(16 << 20)).policy(policy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_if_error_answer_is_stale_not_also_a_miss() {
    let calls = Calls::default();
    let layer = cache(
        Policy::new()
            .ttl(Duration::from_millis(100))
            .stale_if_error(Duration::from_secs(30)),
    );
    let (stats, cache) = (layer.stats(), layer.handle());
    let app = common::failing_origin(&calls, "5xx").layer(layer);
    assert_eq!(send(&app, common::get("/item")).await.cache(), "MISS");
    // Stored: the next request is a hit, not a waiter for the fill.
    cache.flush().await;
    assert_eq!(send(&app, common::get("/item")).await.cache(), "HIT");
    tokio::time::sleep(Duration::from_millis(150)).await;
    let got = send(&app, common::get("/item")).await;
    assert_eq!((got.status, got.cache()), (200, "STALE"));

    let s = stats.snapshot();
    assert_eq!((s.hits, s.stale, s.misses), (1, 1, 1), "{s:?}");
    assert_eq!(s.hit_ratio(), 2.0 / 3.0, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hit_ratio_counts_hits_stale_answers_and_coalesced_waiters() {
    let calls = Calls::default();
    let gate = Arc::new(Semaphore::new(0));
    let layer = cache(
        Policy::new()
            .ttl(Duration::from_millis(100))
            .stale_while_revalidate(Duration::from_secs(30)),
    );
    let (stats, cache) = (layer.stats(), layer.handle());
    let (c, g) = (calls.clone(), gate.clone());
    let app = Router::new()
        .route("/item", get(|| async { "item" }))
        .route(
            "/slow",
            get(move || {
                c.hit();
                let g = g.clone();
                async move {
                    let _ = g.acquire().await.unwrap();
                    "slow"
                }
            }),
        )
        .layer(layer);

    // /item: a miss, a hit, then a stale answer (stale-while-revalidate).
    assert_eq!(send(&app, common::get("/item")).await.cache(), "MISS");
    // Stored: the next request is a hit, not a waiter for the fill.
    cache.flush().await;
    assert_eq!(send(&app, common::get("/item")).await.cache(), "HIT");
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(send(&app, common::get("/item")).await.cache(), "STALE");

    // /slow: one fetch, four requests waiting for it.
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { send(&app, common::get("/slow")).await })
        })
        .collect();
    for _ in 0..500 {
        if stats.snapshot().in_flight == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    gate.add_permits(5);
    for task in tasks {
        assert_eq!(task.await.unwrap().text(), "slow");
    }
    assert_eq!(calls.get(), 1, "the four others waited for the one fetch");

    let s = stats.snapshot();
    assert_eq!(
        (s.hits, s.stale, s.misses, s.coalesced),
        (1, 1, 6, 4),
        "{s:?}"
    );
    // Answered from the cache: the hit, the stale answer and the four waiters; of 8.
    assert_eq!(s.hit_ratio(), 6.0 / 8.0, "{s:?}");
}

#[tokio::test]
async fn purging_everything_says_how_many_entries_it_removed() {
    let layer = cache(Policy::new());
    let purge = PurgeService::new(layer.handle(), PurgeToken::new("token").unwrap());
    let app = Router::new()
        .route("/{*path}", get(|| async { "page" }))
        .layer(layer)
        .merge(Router::new().route_service("/_cache/purge", purge));
    for i in 0..3 {
        send(&app, common::get(&format!("/p{i}"))).await;
    }
    let auth = [("authorization", "Bearer token")];
    let got = send(&app, req("POST", "/_cache/purge?all=true", &auth)).await;
    assert_eq!(
        (got.status, got.text().as_str()),
        (200, "purged 3 entries\n")
    );
    assert_eq!(send(&app, common::get("/p0")).await.cache(), "MISS");
}

/// Every request counted once, under its route (the pattern as given, never the path), with
/// passes, bypass reasons and not-stored reasons by name; the totals are the routes' sums.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_are_counted_per_route_with_their_reasons() {
    let layer = cache(Policy::new().ttl(Duration::from_secs(60)))
        .route("/items/{id}", Policy::new().ttl(Duration::from_secs(60)))
        .route("/account", Policy::bypass());
    let (stats, handle) = (layer.stats(), layer.handle());
    let app = Router::new()
        .route("/items/{id}", get(|| async { "item" }))
        .route("/account", get(|| async { "account" }))
        .route(
            "/private",
            get(|| async { ([("cache-control", "private")], "mine") }),
        )
        .layer(layer);

    for id in ["1", "2", "1", "1"] {
        send(&app, common::get(&format!("/items/{id}"))).await;
        handle.flush().await;
    }
    let cookie = req("GET", "/items/3", &[("cookie", "_ga=1")]);
    assert_eq!(send(&app, cookie).await.cache(), "BYPASS");
    send(&app, common::get("/account")).await;
    send(&app, common::get("/account")).await;
    // Not stored (private); the key is then marked hit-for-pass: the next one is a pass.
    send(&app, common::get("/private")).await;
    handle.flush().await;
    send(&app, common::get("/private")).await;

    let routes = stats.routes();
    let route = |name: &str| routes.iter().find(|r| r.route == name).unwrap().clone();
    let items = route("/items/{id}");
    assert_eq!(
        (items.hits, items.misses, items.bypasses, items.passes),
        (2, 2, 1, 0),
        "{routes:?}"
    );
    assert_eq!(route("/account").bypasses, 2, "{routes:?}");
    let default = route("default");
    assert_eq!((default.misses, default.passes), (1, 1), "{routes:?}");
    assert_eq!(
        routes.len(),
        3,
        "one per route pattern, never per path: {routes:?}"
    );

    let s = stats.snapshot();
    assert_eq!(
        (s.hits, s.misses, s.bypasses, s.passes, s.in_flight),
        (2, 3, 3, 1, 0),
        "{s:?}"
    );
    assert_eq!(
        s.bypasses_for(tower_response_cache::BypassReason::Policy),
        2
    );
    assert_eq!(
        s.bypasses_for(tower_response_cache::BypassReason::Cookie),
        1
    );
    assert_eq!(
        s.bypass_reasons(),
        vec![
            (tower_response_cache::BypassReason::Policy, 2),
            (tower_response_cache::BypassReason::Cookie, 1)
        ]
    );
    assert!(
        s.not_stored_for(tower_response_cache::NotStoredReason::Private) >= 1,
        "{:?}",
        s.not_stored_reasons()
    );
    // Hits over hits, misses and passes.
    assert_eq!(s.hit_ratio(), 2.0 / 6.0, "{s:?}");
}

/// A request whose client goes away while its fetch runs is counted once, as a miss, and is
/// no longer in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_abandoned_mid_fetch_is_one_miss() {
    let gate = Arc::new(Semaphore::new(0));
    let layer = cache(Policy::new().ttl(Duration::from_secs(60)));
    let stats = layer.stats();
    let g = Arc::clone(&gate);
    let app = Router::new()
        .route(
            "/slow",
            get(move || {
                let g = Arc::clone(&g);
                async move {
                    let _ = g.acquire().await.unwrap();
                    "slow"
                }
            }),
        )
        .layer(layer);
    let request = tokio::spawn({
        let app = app.clone();
        async move { send(&app, common::get("/slow")).await }
    });
    tokio::time::timeout(Duration::from_secs(10), async {
        while stats.snapshot().in_flight < 1 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("the request is in flight");
    assert_eq!(stats.snapshot().misses, 0, "counted when answered");
    request.abort();
    let _ = request.await;
    let s = stats.snapshot();
    assert_eq!((s.misses, s.in_flight), (1, 0), "{s:?}");
    gate.add_permits(1);
}

/// Invalidations are counted by what asked for them.
#[tokio::test]
async fn invalidations_are_counted_by_kind() {
    let layer = cache(Policy::new());
    let (stats, handle) = (layer.stats(), layer.handle());
    let purge = PurgeService::new(layer.handle(), PurgeToken::new("token").unwrap());
    let app = Router::new()
        .route(
            "/{*path}",
            get(|| async { "page" }).post(|| async { "done" }),
        )
        .layer(layer)
        .route_service("/cache/purge", purge);
    send(&app, req("POST", "/a", &[])).await;
    handle.invalidate_tags(&["t"]).await;
    handle
        .invalidate_uri(&"http://shop.example/a".parse().unwrap())
        .await;
    handle.invalidate_prefix("", "/a/").await;
    handle.clear().await;
    let purged = req(
        "POST",
        "/cache/purge?tag=t",
        &[("authorization", "Bearer token")],
    );
    assert_eq!(send(&app, purged).await.status, 200);
    let s = stats.snapshot();
    assert_eq!(
        s.invalidations_by_kind(),
        vec![
            ("write", 1),
            ("tag", 1),
            ("uri", 1),
            ("prefix", 1),
            ("purge", 1),
            ("clear", 1)
        ]
    );
    assert_eq!(s.invalidations, 6);
}

/// A stored response the origin confirms with `304` is one revalidation, not also a miss.
#[tokio::test]
async fn a_revalidation_is_counted_once_as_revalidated() {
    let layer = cache(Policy::new());
    let (stats, handle) = (layer.stats(), layer.handle());
    let app = Router::new()
        .route(
            "/doc",
            get(|headers: http::HeaderMap| async move {
                let fields = [("cache-control", "max-age=0"), ("etag", "\"v1\"")];
                if headers.contains_key("if-none-match") {
                    (http::StatusCode::NOT_MODIFIED, fields, "")
                } else {
                    (http::StatusCode::OK, fields, "document")
                }
            }),
        )
        .layer(layer);
    assert_eq!(send(&app, common::get("/doc")).await.text(), "document");
    handle.flush().await;
    let again = send(&app, common::get("/doc")).await;
    assert_eq!((again.status, again.text().as_str()), (200, "document"));
    let s = stats.snapshot();
    assert_eq!((s.misses, s.revalidated, s.hits), (1, 1, 0), "{s:?}");
}
