//! No wait: stale-while-revalidate, refresh-ahead, stale-if-error, negative caching, and
//! background work that is bounded and stops with the layer.

mod common;

use axum::Router;
use axum::routing::get;
use common::{Calls, burst, read, send};
use http::{Request, StatusCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;
use tower::ServiceExt;
use tower_response_cache::{CacheLayer, MemoryStore, Policy};

fn cache(policy: Policy) -> CacheLayer<MemoryStore> {
    CacheLayer::new(MemoryStore::with_capacity_bytes(16 << 20)).policy(policy)
}

/// An origin whose calls after the first block until `gate` gives a permit, so a test can
/// tell whether a request waited for it.
fn gated_origin(calls: &Calls, gate: &Arc<Semaphore>) -> Router {
    let (calls, gate) = (calls.clone(), gate.clone());
    Router::new().route(
        "/item",
        get(move || {
            let n = calls.hit();
            let gate = gate.clone();
            async move {
                if n > 1 {
                    let _ = gate.acquire().await.unwrap();
                }
                format!("version {n}")
            }
        }),
    )
}

async fn eventually(mut check: impl FnMut() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached within 2 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_while_revalidate_answers_at_once_and_refreshes_once() {
    let calls = Calls::default();
    let gate = Arc::new(Semaphore::new(0));
    let layer = cache(
        Policy::new()
            .ttl(Duration::from_millis(200))
            .stale_while_revalidate(Duration::from_secs(30)),
    );
    let stats = layer.stats();
    let app = gated_origin(&calls, &gate).layer(layer);
    assert_eq!(send(&app, common::get("/item")).await.text(), "version 1");
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The refresh is blocked at the origin, yet all 500 requests are answered: none waited.
    let responses = burst(&app, 500).await;
    for r in &responses {
        assert_eq!((r.cache(), r.text().as_str()), ("STALE", "version 1"));
        let age: u64 = r.headers["age"].to_str().unwrap().parse().unwrap();
        assert!(age <= 1, "age {age}");
    }
    assert_eq!(calls.get(), 2, "exactly one refresh reached the origin");
    assert_eq!(stats.snapshot().refreshes, 1);

    gate.add_permits(1);
    eventually(|| stats.snapshot().stores == 2).await;
    let fresh = send(&app, common::get("/item")).await;
    assert_eq!((fresh.cache(), fresh.text().as_str()), ("HIT", "version 2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_origins_stale_while_revalidate_is_honoured_and_must_revalidate_is_not_overridden() {
    let calls = Calls::default();
    let c = calls.clone();
    let app = Router::new()
        .route(
            "/item",
            get(move || {
                let n = c.hit();
                async move {
                    (
                        [("cache-control", "max-age=1, stale-while-revalidate=30")],
                        format!("v{n}"),
                    )
                }
            }),
        )
        .route(
            "/strict",
            get(|| async { [("cache-control", "max-age=1, must-revalidate")] }),
        )
        .layer(cache(
            Policy::new().stale_while_revalidate(Duration::from_secs(30)),
        ));
    send(&app, common::get("/item")).await;
    send(&app, common::get("/strict")).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(send(&app, common::get("/item")).await.cache(), "STALE");
    assert_eq!(send(&app, common::get("/strict")).await.cache(), "MISS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_ahead_keeps_hot_entries_from_expiring() {
    let calls = Calls::default();
    let layer = cache(
        Policy::new()
            .ttl(Duration::from_millis(600))
            .refresh_ahead(0.5),
    );
    let (stats, cache) = (layer.stats(), layer.handle());
    let c = calls.clone();
    let app = Router::new()
        .route(
            "/item",
            get(move || {
                let n = c.hit();
                async move { format!("version {n}") }
            }),
        )
        .layer(layer);
    send(&app, common::get("/item")).await;
    // Stored: the next request is a hit, not a waiter for the fill.
    cache.flush().await;
    assert_eq!(send(&app, common::get("/item")).await.cache(), "HIT");
    assert_eq!(calls.get(), 1, "young entries are not refreshed");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let hit = send(&app, common::get("/item")).await;
    assert_eq!((hit.cache(), hit.text().as_str()), ("HIT", "version 1"));
    eventually(|| stats.snapshot().stores == 2).await;
    assert_eq!(calls.get(), 2);
    // Past the first entry's expiry, the refreshed one answers: no miss ever happened.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let hit = send(&app, common::get("/item")).await;
    assert_eq!((hit.cache(), hit.text().as_str()), ("HIT", "version 2"));
    assert_eq!(stats.snapshot().misses, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_if_error_covers_a_failing_origin() {
    let calls = Calls::default();
    let policy = Policy::new()
        .ttl(Duration::from_millis(200))
        .stale_if_error(Duration::from_secs(30));
    let app = common::failing_origin(&calls, "5xx").layer(cache(policy));
    send(&app, common::get("/item")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = send(&app, common::get("/item")).await;
    assert_eq!(
        (got.status, got.cache(), got.text().as_str()),
        (200, "STALE", "good")
    );
    // Concurrent requests during the outage: all served stale.
    for r in burst(&app, 50).await {
        assert_eq!((r.status, r.text().as_str()), (200, "good"));
    }

    // Without a stale window the error goes to the client unchanged.
    let calls = Calls::default();
    let app = common::failing_origin(&calls, "5xx")
        .layer(cache(Policy::new().ttl(Duration::from_millis(200))));
    send(&app, common::get("/item")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = send(&app, common::get("/item")).await;
    assert_eq!((got.status, got.text().as_str()), (503, "down"));
}

/// A bare service that answers "good" once, then fails with an error (not a response).
fn good_then_refused(
    calls: &Calls,
) -> impl tower::Service<
    Request<http_body_util::Empty<bytes::Bytes>>,
    Response = http::Response<http_body_util::Full<bytes::Bytes>>,
    Error = std::io::Error,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    let calls = calls.clone();
    tower::service_fn(move |_req: Request<http_body_util::Empty<bytes::Bytes>>| {
        let n = calls.hit();
        async move {
            if n == 1 {
                Ok(http::Response::new(http_body_util::Full::new(
                    bytes::Bytes::from_static(b"good"),
                )))
            } else {
                Err(std::io::Error::other("connection refused"))
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_if_error_covers_inner_errors() {
    use tower::Layer;
    let calls = Calls::default();
    let c = calls.clone();
    let layer = cache(
        Policy::new()
            .ttl(Duration::from_millis(200))
            .stale_if_error(Duration::from_secs(30)),
    );
    let svc = layer.clone().layer(good_then_refused(&c));
    let get = || {
        Request::get("/item")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap()
    };
    read(svc.clone().oneshot(get()).await.unwrap()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = read(
        svc.clone()
            .oneshot(get())
            .await
            .expect("stale instead of the error"),
    )
    .await;
    assert_eq!((got.cache(), got.text().as_str()), ("STALE", "good"));

    // Beyond the window, the error itself.
    let strict = cache(Policy::new().ttl(Duration::from_millis(200)));
    let svc = strict.layer(good_then_refused(&Calls::default()));
    read(svc.clone().oneshot(get()).await.unwrap()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let err = svc.oneshot(get()).await.unwrap_err();
    assert_eq!(err.to_string(), "connection refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_origin_counts_as_failed_when_stale_can_stand_in() {
    let calls = Calls::default();
    let layer = cache(
        Policy::new()
            .ttl(Duration::from_millis(200))
            .stale_if_error(Duration::from_secs(30))
            .origin_timeout(Duration::from_millis(50)),
    );
    let stats = layer.stats();
    let app = common::failing_origin(&calls, "slow").layer(layer);
    send(&app, common::get("/item")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = send(&app, common::get("/item")).await;
    assert_eq!((got.cache(), got.text().as_str()), ("STALE", "good"));
    // The slow fetch went on, and its answer replaced the stale entry.
    eventually(|| stats.snapshot().stores == 2).await;
    let got = send(&app, common::get("/item")).await;
    assert_eq!((got.cache(), got.text().as_str()), ("HIT", "late but good"));
}

#[tokio::test]
async fn missing_things_are_cached_briefly() {
    let calls = Calls::default();
    let c = calls.clone();
    let app = Router::new()
        .route(
            "/items/{id}",
            get(move || {
                c.hit();
                async { (StatusCode::NOT_FOUND, "no such item") }
            }),
        )
        .layer(cache(
            Policy::new()
                .ttl(Duration::from_secs(3600))
                .negative_ttl(Duration::from_millis(300)),
        ));
    send(&app, common::get("/items/404")).await;
    let again = send(&app, common::get("/items/404")).await;
    assert_eq!((again.status, again.cache()), (404, "HIT"));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(send(&app, common::get("/items/404")).await.cache(), "MISS");
    assert_eq!(calls.get(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_refreshes_are_bounded_and_stop_with_the_layer() {
    let calls = Calls::default();
    let gate = Arc::new(Semaphore::new(0));
    let dropped = Arc::new(AtomicBool::new(false));
    struct Flag(Arc<AtomicBool>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let (c, g, d) = (calls.clone(), gate.clone(), dropped.clone());
    let layer = cache(
        Policy::new()
            .ttl(Duration::from_millis(200))
            .stale_while_revalidate(Duration::from_secs(30)),
    )
    .max_background_refreshes(1);
    let stats = layer.stats();
    let app = Router::new()
        .route(
            "/{key}",
            get(move || {
                let n = c.hit();
                let (g, flag) = (g.clone(), Flag(d.clone()));
                async move {
                    if n > 2 {
                        let _flag = flag;
                        let _ = g.acquire().await.unwrap();
                    }
                    format!("call {n}")
                }
            }),
        )
        .layer(layer);
    send(&app, common::get("/a")).await;
    send(&app, common::get("/b")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(send(&app, common::get("/a")).await.cache(), "STALE");
    assert_eq!(send(&app, common::get("/b")).await.cache(), "STALE");
    assert_eq!(stats.snapshot().refreshes, 1, "one refresh at a time");
    eventually(|| calls.get() == 3).await;

    // The refresh of /a is blocked at the origin; dropping the app (layer and services) ends it.
    drop(app);
    eventually(|| dropped.load(Ordering::SeqCst)).await;
    assert_eq!(gate.available_permits(), 0);
}
