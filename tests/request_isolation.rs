//! One request must not change what the others get: reasons that belong to one request (its
//! `Authorization`, `Cookie`, `Cache-Control: no-store`, a key-maker bypass, an odd spelling of
//! its target) never store, replace or remove anything under the key, and never make the
//! others queue behind a fetch made on its terms.

mod common;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use common::{Calls, Got, read, req, send};
use http::Request;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tower::ServiceExt;
use tower_response_cache::{CacheHandle, CacheLayer, CacheStats, MemoryStore};

/// `/item`, `max-age=300`, not `public`: shareable, but not for credentialed requests. Calls
/// wait for a permit of `gate` (closed gates hold the origin). With the cache's handle.
fn app(calls: &Calls, gate: &Arc<Semaphore>) -> (Router, CacheHandle) {
    let (calls, gate) = (calls.clone(), Arc::clone(gate));
    let cache = CacheLayer::new(MemoryStore::with_capacity_bytes(16 << 20)).key(|req, key| {
        if req.headers.contains_key("x-skip-cache") {
            key.bypass();
        }
    });
    let handle = cache.handle();
    let app = Router::new()
        .route(
            "/item",
            get(move || {
                let (calls, gate) = (calls.clone(), Arc::clone(&gate));
                async move {
                    let n = calls.hit();
                    let _permit = gate.acquire().await.unwrap();
                    ([("cache-control", "max-age=300")], format!("item v{n}"))
                }
            }),
        )
        .layer(cache);
    (app, handle)
}

fn open_gate() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(Semaphore::MAX_PERMITS))
}

/// Sends `n` requests built by `make` at once, each in a task of its own.
async fn burst_of(app: &Router, n: usize, make: fn() -> Request<Body>) -> Vec<Got> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { read(app.oneshot(make()).await.unwrap()).await })
        })
        .collect();
    let mut responses = Vec::with_capacity(n);
    for task in tasks {
        let joined = tokio::time::timeout(Duration::from_secs(30), task).await;
        responses.push(joined.expect("no hang").unwrap());
    }
    responses
}

fn anonymous() -> Request<Body> {
    req("GET", "/item", &[("host", "shop.example")])
}

/// The same target, its host spelled otherwise.
fn odd_host() -> Request<Body> {
    req("GET", "/item", &[("host", "Shop.Example:80")])
}

/// Waits (up to 10 s) until the origin has been called `n` times.
async fn called(calls: &Calls, n: usize) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while calls.get() < n {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("the origin was called");
}

/// Requests whose own reasons keep them from sharing the stored response.
fn per_request_reasons() -> Vec<(&'static str, Request<Body>)> {
    vec![
        (
            "bogus authorization",
            req(
                "GET",
                "/item",
                &[
                    ("host", "shop.example"),
                    ("authorization", "Bearer nonsense"),
                ],
            ),
        ),
        (
            "cookie",
            req(
                "GET",
                "/item",
                &[("host", "shop.example"), ("cookie", "session=abc")],
            ),
        ),
        (
            "request no-store",
            req(
                "GET",
                "/item",
                &[("host", "shop.example"), ("cache-control", "no-store")],
            ),
        ),
        (
            "key-maker bypass",
            req(
                "GET",
                "/item",
                &[("host", "shop.example"), ("x-skip-cache", "1")],
            ),
        ),
        (
            "odd path spelling",
            req("GET", "/%69tem", &[("host", "shop.example")]),
        ),
        ("odd host spelling", odd_host()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_with_its_own_reasons_leaves_the_entry_alone() {
    for (reason, request) in per_request_reasons() {
        let calls = Calls::default();
        let (app, cache) = app(&calls, &open_gate());
        let first = send(&app, anonymous()).await;
        assert_eq!(first.cache(), "MISS");
        cache.flush().await;
        // The odd spelling reads the normal form's entry; the others go to the origin.
        let own = send(&app, request).await;
        assert_eq!(own.status, 200, "{reason}");
        // Whatever it would write behind its response is written before the others come.
        cache.flush().await;
        let before = calls.get();
        let after = burst_of(&app, 50, anonymous).await;
        assert!(
            after
                .iter()
                .all(|r| r.cache() == "HIT" && r.text() == "item v1"),
            "{reason}: {:?}",
            after
                .iter()
                .map(|r| r.cache().to_owned())
                .collect::<Vec<_>>()
        );
        assert_eq!(calls.get(), before, "{reason}: the origin was called again");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credentialed_fetch_in_flight_does_not_hold_the_others_back() {
    for round in 0..10 {
        let calls = Calls::default();
        let gate = Arc::new(Semaphore::new(0));
        let (app, _) = app(&calls, &gate);
        // A credentialed request reaches the gated origin first, on a cold key.
        let credentialed = {
            let app = app.clone();
            tokio::spawn(async move {
                let request = req(
                    "GET",
                    "/item",
                    &[("host", "shop.example"), ("authorization", "Bearer x")],
                );
                read(app.oneshot(request).await.unwrap()).await
            })
        };
        called(&calls, 1).await;
        // 50 anonymous requests: one of them fetches, the others wait for it.
        let others = {
            let app = app.clone();
            tokio::spawn(async move { burst_of(&app, 50, anonymous).await })
        };
        called(&calls, 2).await;
        tokio::time::sleep(Duration::from_millis(round % 4)).await;
        gate.add_permits(Semaphore::MAX_PERMITS / 2);
        let answers = others.await.unwrap();
        assert_eq!(credentialed.await.unwrap().status, 200);
        assert!(answers.iter().all(|r| r.status == 200));
        assert_eq!(
            calls.get(),
            2,
            "round {round}: 1 credentialed + 1 shared fetch"
        );
        let later = send(&app, anonymous()).await;
        assert_eq!(later.cache(), "HIT");
    }
}

#[tokio::test]
async fn an_odd_spelling_on_a_cold_key_does_not_lead_the_others() {
    let calls = Calls::default();
    let gate = Arc::new(Semaphore::new(0));
    let (app, _) = app(&calls, &gate);
    let odd = {
        let app = app.clone();
        tokio::spawn(async move { send(&app, odd_host()).await })
    };
    called(&calls, 1).await;
    let normal = {
        let app = app.clone();
        tokio::spawn(async move { burst_of(&app, 20, anonymous).await })
    };
    called(&calls, 2).await;
    gate.add_permits(Semaphore::MAX_PERMITS / 2);
    assert_eq!(odd.await.unwrap().cache(), "MISS");
    let answers = normal.await.unwrap();
    assert!(answers.iter().all(|r| r.text().starts_with("item v")));
    assert_eq!(calls.get(), 2);
    assert_eq!(send(&app, anonymous()).await.cache(), "HIT");
}

/// Public for anonymous users, `private` when credentials come along (as apps with optional
/// auth answer).
fn personal_when_authorized(calls: &Calls) -> Router {
    let calls = calls.clone();
    Router::new()
        .route(
            "/item",
            get(move |headers: http::HeaderMap| {
                let n = calls.hit();
                async move {
                    if headers.contains_key("authorization") {
                        ([("cache-control", "private")], format!("personal v{n}"))
                    } else {
                        ([("cache-control", "max-age=300")], format!("public v{n}"))
                    }
                }
            }),
        )
        .layer(CacheLayer::new(MemoryStore::with_capacity_bytes(16 << 20)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_answer_to_credentials_leaves_the_shared_entry_alone() {
    let calls = Calls::default();
    let app = personal_when_authorized(&calls);
    assert_eq!(send(&app, anonymous()).await.cache(), "MISS");
    let authorized = req(
        "GET",
        "/item",
        &[("host", "shop.example"), ("authorization", "Bearer junk")],
    );
    let own = send(&app, authorized).await;
    assert_eq!(own.text(), "personal v2");
    let after = burst_of(&app, 50, anonymous).await;
    assert!(
        after
            .iter()
            .all(|r| r.cache() == "HIT" && r.text() == "public v1")
    );
    assert_eq!(calls.get(), 2);
}

#[tokio::test]
async fn one_variant_that_cannot_be_stored_leaves_the_others_alone() {
    let calls = Calls::default();
    let c = calls.clone();
    let app: Router = Router::new()
        .route(
            "/page",
            get(move |headers: http::HeaderMap| {
                c.hit();
                async move {
                    let gzip = headers
                        .get("accept-encoding")
                        .is_some_and(|v| v.as_bytes() == b"gzip");
                    let body = if gzip {
                        "small".to_owned()
                    } else {
                        "x".repeat(10_000)
                    };
                    (
                        [
                            ("cache-control", "max-age=300"),
                            ("vary", "accept-encoding"),
                        ],
                        body,
                    )
                }
            }),
        )
        .layer(CacheLayer::new(MemoryStore::with_capacity_bytes(16 << 20)).max_body_bytes(4096));
    let gzip = || {
        req(
            "GET",
            "/page",
            &[("host", "shop.example"), ("accept-encoding", "gzip")],
        )
    };
    send(&app, gzip()).await;
    assert_eq!(send(&app, gzip()).await.cache(), "HIT");
    // The identity variant is too large to store: that says nothing of the gzip variant.
    let identity = req(
        "GET",
        "/page",
        &[("host", "shop.example"), ("accept-encoding", "identity")],
    );
    assert_eq!(send(&app, identity).await.cache(), "MISS");
    assert_eq!(send(&app, gzip()).await.cache(), "HIT");
}

/// `/item` answering 304 to `If-None-Match`, 206 to `Range`, 200 otherwise; calls wait for the
/// gate, and those with either header are counted in `conditional`. With the cache's figures.
fn conditional_origin(
    calls: &Calls,
    conditional: &Calls,
    gate: &Arc<Semaphore>,
) -> (Router, CacheStats) {
    let (calls, conditional, gate) = (calls.clone(), conditional.clone(), Arc::clone(gate));
    let cache = CacheLayer::new(MemoryStore::with_capacity_bytes(16 << 20));
    let stats = cache.stats();
    let app = Router::new()
        .route(
            "/item",
            get(move |headers: http::HeaderMap| {
                let (calls, conditional, gate) =
                    (calls.clone(), conditional.clone(), Arc::clone(&gate));
                async move {
                    let n = calls.hit();
                    let _permit = gate.acquire().await.unwrap();
                    if headers.contains_key("if-none-match") || headers.contains_key("range") {
                        conditional.hit();
                        let status = if headers.contains_key("range") {
                            206
                        } else {
                            304
                        };
                        let status = http::StatusCode::from_u16(status).unwrap();
                        return (status, [("cache-control", "max-age=300")], String::new());
                    }
                    let ok = http::StatusCode::OK;
                    (ok, [("cache-control", "max-age=300")], format!("item v{n}"))
                }
            }),
        )
        .layer(cache);
    (app, stats)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conditional_or_ranged_first_request_leads_an_unconditional_fill() {
    for (name, value) in [("if-none-match", "\"abc\""), ("range", "bytes=0-1")] {
        let (calls, conditional) = (Calls::default(), Calls::default());
        let gate = Arc::new(Semaphore::new(0));
        let (app, stats) = conditional_origin(&calls, &conditional, &gate);
        let own = {
            let app = app.clone();
            tokio::spawn(async move {
                let request = req("GET", "/item", &[("host", "shop.example"), (name, value)]);
                send(&app, request).await
            })
        };
        called(&calls, 1).await;
        let others = {
            let app = app.clone();
            tokio::spawn(async move { burst_of(&app, 20, anonymous).await })
        };
        // All 21 missed while the fetch the conditional request started is held at the gate.
        tokio::time::timeout(Duration::from_secs(10), async {
            while stats.snapshot().in_flight < 21 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .expect("the others missed");
        gate.add_permits(Semaphore::MAX_PERMITS / 2);
        let own = own.await.unwrap();
        assert!(
            [200, 206, 304].contains(&own.status),
            "{name}: {}",
            own.status
        );
        let answers = others.await.unwrap();
        for answer in &answers {
            assert_eq!(
                (answer.status, answer.text().as_str()),
                (200, "item v1"),
                "{name}"
            );
        }
        assert_eq!(
            calls.get(),
            1,
            "{name}: one unconditional fetch for everyone"
        );
        assert_eq!(
            conditional.get(),
            0,
            "{name}: the cache's fetch carried no If-None-Match or Range"
        );
    }
}
