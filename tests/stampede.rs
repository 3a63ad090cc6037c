//! No stampede: at most one origin request per key in flight, however slow the origin, however
//! the responses vary, whatever the first request asks for.

mod common;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use common::{Calls, all_at_once, send};
use http::{HeaderMap, Request};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;
use tower_response_cache::{CacheLayer, MemoryStore, Policy};

fn layer(policy: Policy) -> CacheLayer<MemoryStore> {
    CacheLayer::new(MemoryStore::with_capacity_bytes(16 << 20)).policy(policy)
}

fn plain(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

fn with(uri: &str, name: &str, value: &str) -> Request<Body> {
    Request::get(uri)
        .header(name, value)
        .body(Body::empty())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_slower_than_the_coalescing_wait_gets_one_fetch_and_one_replacement() {
    // Before: every waiter gave up at the same moment and called the slow origin itself (50
    // requests, 50 calls).
    let calls = Calls::default();
    let c = calls.clone();
    let app = Router::new()
        .route(
            "/item",
            get(move || {
                let n = c.hit();
                async move {
                    tokio::time::sleep(Duration::from_millis(600)).await;
                    format!("answer {n}")
                }
            }),
        )
        .layer(layer(
            Policy::new()
                .ttl(Duration::from_secs(60))
                .max_coalesce_wait(Duration::from_millis(100)),
        ));
    let got = all_at_once(&app, (0..50).map(|_| plain("/item")).collect()).await;
    assert!(
        got.iter()
            .all(|g| g.status == 200 && g.text().starts_with("answer "))
    );
    assert!(
        calls.get() <= 2,
        "{} origin calls: one fetch, at most one replacement",
        calls.get()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_fails_releases_its_waiters_at_once() {
    let calls = Calls::default();
    let gate = Arc::new(Semaphore::new(0));
    let (c, g) = (calls.clone(), Arc::clone(&gate));
    let app = Router::new()
        .route(
            "/item",
            get(move || {
                let n = c.hit();
                let g = Arc::clone(&g);
                async move {
                    if n == 1 {
                        // The first fetch waits for the gate, then fails.
                        let _ = g.acquire().await.unwrap();
                        return (http::StatusCode::BAD_GATEWAY, "down".to_string());
                    }
                    (http::StatusCode::OK, "fine".to_string())
                }
            }),
        )
        .layer(layer(
            Policy::new()
                .ttl(Duration::from_secs(60))
                .max_coalesce_wait(Duration::from_secs(3600)),
        ));
    let first = tokio::spawn({
        let app = app.clone();
        async move { send(&app, plain("/item")).await }
    });
    while calls.get() == 0 {
        tokio::task::yield_now().await;
    }
    let waiters = tokio::spawn({
        let app = app.clone();
        async move { all_at_once(&app, (0..10).map(|_| plain("/item")).collect()).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    gate.add_permits(1);
    assert_eq!(first.await.unwrap().status, 502);
    // Released at once (not after the hour-long coalescing wait), each asked the origin.
    let waiters = waiters.await.unwrap();
    assert!(waiters.iter().all(|g| g.status == 200 || g.status == 502));
}

/// An origin whose answers vary on `Accept-Encoding`, held at a gate until released.
fn varying_origin(calls: &Calls, gate: &Arc<Semaphore>, seen: &Arc<Mutex<Vec<String>>>) -> Router {
    let (c, g, s) = (calls.clone(), Arc::clone(gate), Arc::clone(seen));
    Router::new().route(
        "/item",
        get(move |headers: HeaderMap| {
            c.hit();
            let g = Arc::clone(&g);
            let encoding = headers
                .get("accept-encoding")
                .map_or("", |v| v.to_str().unwrap())
                .to_string();
            s.lock().unwrap().push(encoding.clone());
            async move {
                let _ = g.acquire().await.unwrap();
                (
                    [("vary", "accept-encoding"), ("cache-control", "max-age=60")],
                    format!("for {encoding}"),
                )
            }
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_for_each_variant_of_a_cold_key_are_coalesced_per_variant() {
    // Before: the requests for the other variant waited for the first fetch, were not given
    // its response, then all went to the origin (31 calls for two variants).
    for round in 0..5 {
        let calls = Calls::default();
        let gate = Arc::new(Semaphore::new(0));
        let seen = Arc::default();
        let app = varying_origin(&calls, &gate, &seen).layer(layer(Policy::new()));
        let requests = (0..30)
            .map(|i| {
                with(
                    "/item",
                    "accept-encoding",
                    if i % 2 == 0 { "gzip" } else { "br" },
                )
            })
            .collect();
        let running = tokio::spawn({
            let app = app.clone();
            async move { all_at_once(&app, requests).await }
        });
        tokio::time::sleep(Duration::from_millis(50 + 20 * round)).await;
        gate.add_permits(1000);
        let got = running.await.unwrap();
        for g in &got {
            assert_eq!(g.status, 200);
        }
        let gzip = got.iter().filter(|g| g.text() == "for gzip").count();
        let br = got.iter().filter(|g| g.text() == "for br").count();
        assert_eq!((gzip, br), (15, 15), "each got its own variant");
        assert!(
            calls.get() <= 2,
            "round {round}: {} origin calls for two variants",
            calls.get()
        );
    }
}

/// An origin with a validator, counting calls and recording the conditional fields it sees.
fn validated_origin(
    calls: &Calls,
    gate: &Arc<Semaphore>,
    seen: &Arc<Mutex<Vec<String>>>,
) -> Router {
    let (c, g, s) = (calls.clone(), Arc::clone(gate), Arc::clone(seen));
    Router::new().route(
        "/item",
        get(move |headers: HeaderMap| {
            c.hit();
            let g = Arc::clone(&g);
            for name in ["if-none-match", "range", "if-modified-since"] {
                if headers.contains_key(name) {
                    s.lock().unwrap().push(name.to_string());
                }
            }
            async move {
                let _ = g.acquire().await.unwrap();
                (
                    [("etag", "\"v1\""), ("cache-control", "max-age=60")],
                    "0123456789",
                )
            }
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conditional_or_ranged_first_request_fills_the_cache_for_everyone() {
    // Before: the origin answered the first request's condition (304 or 206), nothing was
    // stored, and every waiter went to the origin (31 calls for 31 requests).
    for (name, value, status, body) in [
        ("if-none-match", "\"v1\"", 304, ""),
        ("if-none-match", "\"v0\"", 200, "0123456789"),
        ("range", "bytes=2-5", 206, "2345"),
    ] {
        let calls = Calls::default();
        let gate = Arc::new(Semaphore::new(0));
        let seen = Arc::default();
        let app = validated_origin(&calls, &gate, &seen).layer(layer(Policy::new()));
        let first = tokio::spawn({
            let app = app.clone();
            let request = with("/item", name, value);
            async move { send(&app, request).await }
        });
        while calls.get() == 0 {
            tokio::task::yield_now().await;
        }
        let others = tokio::spawn({
            let app = app.clone();
            async move { all_at_once(&app, (0..30).map(|_| plain("/item")).collect()).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        gate.add_permits(1000);
        let first = first.await.unwrap();
        assert_eq!(
            (first.status, first.text().as_str()),
            (status, body),
            "{name}: {value}"
        );
        if status == 206 {
            assert_eq!(first.headers["content-range"], "bytes 2-5/10");
        }
        for got in others.await.unwrap() {
            assert_eq!((got.status, got.text().as_str()), (200, "0123456789"));
        }
        assert_eq!(calls.get(), 1, "{name}: one unconditional fetch for all");
        assert!(
            seen.lock().unwrap().is_empty(),
            "the fetch asked for the whole response"
        );
        // And the stored response answers the next one.
        let next = send(&app, plain("/item")).await;
        assert_eq!(next.cache(), "HIT");
    }
}
