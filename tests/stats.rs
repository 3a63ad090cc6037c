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
