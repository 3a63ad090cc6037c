//! No stampede: concurrent misses for one key reach the origin once; a leader that goes away
//! does not hurt its waiters; responses that cannot be shared are never shared.

mod common;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use common::{Calls, Got, burst, read};
use http::Request;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tower::ServiceExt;
use tower_response_cache::{CacheLayer, MemoryStore, Policy};

/// An origin that sleeps `delay` per call and says which call answered.
fn slow_origin(
    calls: &Calls,
    delay: Duration,
    extra_headers: &'static [(&'static str, &'static str)],
) -> Router {
    let calls = calls.clone();
    Router::new().route(
        "/item",
        get(move || {
            let n = calls.hit();
            async move {
                tokio::time::sleep(delay).await;
                let mut response = axum::response::Response::new(Body::from(format!("call {n}")));
                for (k, v) in extra_headers {
                    response.headers_mut().insert(*k, v.parse().unwrap());
                }
                response
            }
        }),
    )
}

fn cache(policy: Policy) -> CacheLayer<MemoryStore> {
    CacheLayer::new(MemoryStore::with_capacity_bytes(16 << 20)).policy(policy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_cold_requests_one_origin_call() {
    let calls = Calls::default();
    let layer = cache(Policy::new());
    let stats = layer.stats();
    let app = slow_origin(&calls, Duration::from_millis(100), &[("x-origin", "yes")]).layer(layer);
    let responses = burst(&app, 500).await;
    assert_eq!(calls.get(), 1, "the origin is called once");
    for r in &responses {
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "call 1");
        assert_eq!(r.headers["x-origin"], "yes");
    }
    let s = stats.snapshot();
    assert_eq!(s.misses, 500);
    assert!(s.coalesced >= 490, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_that_just_expired_is_refetched_once() {
    let calls = Calls::default();
    let app = slow_origin(&calls, Duration::from_millis(100), &[])
        .layer(cache(Policy::new().ttl(Duration::from_millis(300))));
    burst(&app, 1).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let responses = burst(&app, 500).await;
    assert_eq!(calls.get(), 2);
    assert!(responses.iter().all(|r| r.text() == "call 2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_waiters_survive_their_leader_going_away() {
    let calls = Calls::default();
    let entered = Arc::new(Semaphore::new(0));
    let e = entered.clone();
    let c = calls.clone();
    let app = Router::new()
        .route(
            "/item",
            get(move || {
                let n = c.hit();
                e.add_permits(1);
                async move {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    format!("call {n}")
                }
            }),
        )
        .layer(cache(Policy::new()));
    let leader = {
        let app = app.clone();
        tokio::spawn(async move {
            app.oneshot(Request::get("/item").body(Body::empty()).unwrap())
                .await
        })
    };
    // The leader's fetch has reached the origin: now the others queue behind it.
    let _ = entered.acquire().await.unwrap();
    let waiters = {
        let app = app.clone();
        tokio::spawn(async move { burst(&app, 50).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    leader.abort();
    let responses = tokio::time::timeout(Duration::from_secs(10), waiters)
        .await
        .expect("no hang")
        .unwrap();
    assert_eq!(calls.get(), 1);
    assert!(
        responses
            .iter()
            .all(|r| r.status == 200 && r.text() == "call 1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_responses_are_never_shared_and_their_key_is_passed() {
    let calls = Calls::default();
    let layer = cache(Policy::new());
    let stats = layer.stats();
    let app = slow_origin(
        &calls,
        Duration::from_millis(50),
        &[("cache-control", "private")],
    )
    .layer(layer);
    let responses = burst(&app, 50).await;
    assert_eq!(calls.get(), 50, "every request got its own response");
    let mut bodies: Vec<String> = responses.iter().map(Got::text).collect();
    bodies.sort();
    bodies.dedup();
    assert_eq!(bodies.len(), 50, "no response was handed to two requests");
    assert_eq!(stats.snapshot().coalesced, 0);

    // Hit-for-pass: the key is known to be private, so requests no longer queue behind each
    // other: all of them reach the origin while it is still busy with the first.
    let gate = Arc::new(Semaphore::new(0));
    let entered = Arc::new(Semaphore::new(0));
    let (g, e) = (gate.clone(), entered.clone());
    let gated = Router::new()
        .route(
            "/item",
            get(move || {
                let (g, e) = (g.clone(), e.clone());
                async move {
                    e.add_permits(1);
                    let _ = g.acquire().await.unwrap();
                    ([("cache-control", "private")], "mine")
                }
            }),
        )
        .layer(cache(Policy::new()));
    burst_after_opening(&gated, &gate, 1).await;
    let wave = {
        let gated = gated.clone();
        tokio::spawn(async move { burst(&gated, 10).await })
    };
    let all_in = tokio::time::timeout(Duration::from_secs(10), entered.acquire_many(11))
        .await
        .expect("all ten reached the origin at once: none queued");
    drop(all_in);
    gate.add_permits(100);
    assert!(wave.await.unwrap().iter().all(|r| r.cache() == "MISS"));
}

async fn burst_after_opening(app: &Router, gate: &Semaphore, n: usize) {
    gate.add_permits(n);
    burst(app, n).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn different_variants_do_not_share_a_fetch() {
    let calls = Calls::default();
    let c = calls.clone();
    let app = Router::new()
        .route(
            "/item",
            get(move |headers: http::HeaderMap| {
                c.hit();
                async move {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let lang = headers["accept-language"].to_str().unwrap().to_owned();
                    ([("vary", "accept-language")], format!("in {lang}"))
                }
            }),
        )
        .layer(cache(Policy::new()));
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let app = app.clone();
            let lang = if i % 2 == 0 { "en" } else { "fr" };
            tokio::spawn(async move {
                let request = Request::get("/item")
                    .header("accept-language", lang)
                    .body(Body::empty())
                    .unwrap();
                (lang, read(app.oneshot(request).await.unwrap()).await)
            })
        })
        .collect();
    for task in tasks {
        let (lang, got) = task.await.unwrap();
        assert_eq!(got.text(), format!("in {lang}"));
    }
    // One fetch per language is ideal; correctness is what matters: never the other language.
    assert!(calls.get() >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_gives_up_after_the_policys_bound() {
    // The first call hangs at the origin until released; later calls answer at once.
    let calls = Calls::default();
    let gate = Arc::new(Semaphore::new(0));
    let (c, g) = (calls.clone(), gate.clone());
    let app = Router::new()
        .route(
            "/item",
            get(move || {
                let n = c.hit();
                let g = g.clone();
                async move {
                    if n == 1 {
                        let _ = g.acquire().await.unwrap();
                    }
                    format!("call {n}")
                }
            }),
        )
        .layer(cache(
            Policy::new().max_coalesce_wait(Duration::from_millis(100)),
        ));
    let leader = {
        let app = app.clone();
        tokio::spawn(async move {
            read(
                app.oneshot(Request::get("/item").body(Body::empty()).unwrap())
                    .await
                    .unwrap(),
            )
            .await
        })
    };
    while calls.get() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The leader is stuck; the waiter stops waiting and asks the origin itself.
    let waiter = burst(&app, 1).await;
    assert_eq!(waiter[0].text(), "call 2");
    assert!(!leader.is_finished());
    gate.add_permits(1);
    assert_eq!(leader.await.unwrap().text(), "call 1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrelated_write_does_not_detach_a_fetch_in_flight() {
    let calls = Calls::default();
    let gate = Arc::new(Semaphore::new(0));
    let (c, g) = (calls.clone(), Arc::clone(&gate));
    let app: Router = Router::new()
        .route(
            "/item",
            get(move || {
                let (calls, gate) = (c.clone(), Arc::clone(&g));
                async move {
                    let n = calls.hit();
                    let _permit = gate.acquire().await.unwrap();
                    ([("cache-control", "max-age=300")], format!("item v{n}"))
                }
            }),
        )
        .route("/other", axum::routing::post(|| async { "written" }))
        .layer(cache(Policy::new()));
    let burst_of = |n: usize| {
        let app = app.clone();
        tokio::spawn(async move { burst(&app, n).await })
    };
    let first = burst_of(10);
    tokio::time::timeout(Duration::from_secs(10), async {
        while calls.get() < 1 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("the origin was called");
    // A write elsewhere: /item's fetch is not covered, so later requests still join it.
    let write = Request::post("/other").body(Body::empty()).unwrap();
    assert_eq!(
        read(app.clone().oneshot(write).await.unwrap()).await.status,
        200
    );
    let second = burst_of(10);
    tokio::time::sleep(Duration::from_millis(100)).await;
    gate.add_permits(1000);
    let mut answers: Vec<Got> = first.await.unwrap();
    answers.extend(second.await.unwrap());
    assert!(answers.iter().all(|r| r.text() == "item v1"));
    assert_eq!(calls.get(), 1);
}
