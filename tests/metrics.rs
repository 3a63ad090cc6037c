//! The series the cache reports through the `metrics` facade (feature `metrics`), counted
//! exactly: requests by outcome and route pattern, bypass and not-stored reasons, coalesced
//! waiters, background refreshes, invalidations, store errors, evictions, the store's gauges
//! and the two histograms.
//!
//! Each test records into a recorder of its own, the default of its thread while it runs
//! (`metrics::set_default_local_recorder`). The tests run on current-thread runtimes, so
//! everything the cache does for them, its tasks included, counts on that thread: no test sees
//! another's counts, and no global recorder is needed.
#![cfg(feature = "metrics")]

mod common;

use axum::Router;
use axum::routing::get;
use common::{Calls, eventually, get as get_request, req, send};
use http::{HeaderMap, Request, StatusCode};
use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;
use tower::{Layer, ServiceExt};
use tower_response_cache::store::Entry;
use tower_response_cache::{
    Authorization, CacheLayer, MemoryStore, Policy, PurgeService, PurgeToken, PutOutcome, Store,
    StoreError, StoreKey,
};

/// A series: its name (without the `tower_response_cache_` prefix) and its labels, sorted.
type Series = (String, Vec<(String, String)>);

/// One series' value: a counter, a gauge or a histogram's samples, as registered.
#[derive(Default)]
struct Value {
    counter: AtomicU64,
    gauge: Mutex<f64>,
    samples: Mutex<Vec<f64>>,
}

impl CounterFn for Value {
    fn increment(&self, value: u64) {
        self.counter.fetch_add(value, Ordering::Relaxed);
    }
    fn absolute(&self, value: u64) {
        self.counter.fetch_max(value, Ordering::Relaxed);
    }
}

impl GaugeFn for Value {
    fn increment(&self, value: f64) {
        *self.gauge.lock().unwrap() += value;
    }
    fn decrement(&self, value: f64) {
        *self.gauge.lock().unwrap() -= value;
    }
    fn set(&self, value: f64) {
        *self.gauge.lock().unwrap() = value;
    }
}

impl HistogramFn for Value {
    fn record(&self, value: f64) {
        self.samples.lock().unwrap().push(value);
    }
}

/// A recorder that keeps every series it was asked for.
#[derive(Default)]
struct Recording(Mutex<HashMap<Series, Arc<Value>>>);

const PREFIX: &str = "tower_response_cache_";

fn series(name: &str, labels: &[(&str, &str)]) -> Series {
    let mut labels: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    labels.sort();
    (format!("{PREFIX}{name}"), labels)
}

impl Recording {
    /// A recording that is this thread's recorder until the guard is dropped.
    fn start() -> (&'static Recording, metrics::LocalRecorderGuard<'static>) {
        let recording: &'static Recording = Box::leak(Box::default());
        (recording, metrics::set_default_local_recorder(recording))
    }

    fn value(&self, key: &Key) -> Arc<Value> {
        let mut labels: Vec<(String, String)> = key
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        labels.sort();
        let mut series = self.0.lock().unwrap();
        Arc::clone(series.entry((key.name().to_owned(), labels)).or_default())
    }

    fn find(&self, name: &str, labels: &[(&str, &str)]) -> Option<Arc<Value>> {
        self.0.lock().unwrap().get(&series(name, labels)).cloned()
    }

    /// A counter's value (0 when it was never registered).
    fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.find(name, labels)
            .map_or(0, |v| v.counter.load(Ordering::Relaxed))
    }

    /// The sum of a counter over all its label values.
    fn total(&self, name: &str) -> u64 {
        let name = format!("{PREFIX}{name}");
        let series = self.0.lock().unwrap();
        series
            .iter()
            .filter(|((n, _), _)| *n == name)
            .map(|(_, v)| v.counter.load(Ordering::Relaxed))
            .sum()
    }

    /// A gauge's value, once it was set.
    fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.find(name, labels).map(|v| *v.gauge.lock().unwrap())
    }

    /// A histogram's samples (none when it was never registered).
    fn samples(&self, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
        self.find(name, labels)
            .map_or_else(Vec::new, |v| v.samples.lock().unwrap().clone())
    }

    fn requests(&self, outcome: &str, route: &str) -> u64 {
        self.counter("requests_total", &[("outcome", outcome), ("route", route)])
    }

    fn origin(&self, outcome: &str) -> Vec<f64> {
        self.samples("origin_duration_seconds", &[("outcome", outcome)])
    }
}

impl Recorder for Recording {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.value(key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.value(key))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.value(key))
    }
}

fn cache(policy: Policy) -> CacheLayer<MemoryStore> {
    CacheLayer::new(MemoryStore::with_capacity_bytes(16 << 20)).policy(policy)
}

/// `/etag`: `no-cache` with an entity-tag (stored, validated before every reuse); a `304`
/// when the validator the cache sends matches.
async fn etag(headers: HeaderMap) -> axum::response::Response {
    use axum::response::IntoResponse;
    let fields = [("cache-control", "no-cache"), ("etag", "\"v1\"")];
    match headers.get("if-none-match") {
        Some(tag) if tag == "\"v1\"" => (StatusCode::NOT_MODIFIED, fields).into_response(),
        _ => (fields, "tagged").into_response(),
    }
}

#[tokio::test]
async fn every_outcome_is_counted_once_under_its_route_pattern() {
    let (recording, _recorder) = Recording::start();
    let layer = cache(Policy::new())
        .route("/fresh/{id}", Policy::new())
        .route(
            "/swr",
            Policy::new()
                .ttl(Duration::from_millis(100))
                .stale_while_revalidate(Duration::from_secs(30)),
        )
        .route("/private", Policy::new())
        .route("/etag", Policy::new())
        .route("/cart", Policy::bypass());
    let handle = layer.handle();
    let app = Router::new()
        .route("/fresh/{id}", get(|| async { "fresh" }))
        .route("/swr", get(|| async { "swr" }))
        .route(
            "/private",
            get(|| async { ([("cache-control", "private")], "mine") }),
        )
        .route("/etag", get(etag))
        .route("/cart", get(|| async { "cart" }))
        .route(
            "/other",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                "other"
            }),
        )
        .layer(layer);
    let outcome = async |uri: &str| send(&app, get_request(uri)).await.cache().to_owned();

    assert_eq!(outcome("/fresh/1").await, "MISS");
    handle.flush().await;
    assert_eq!(outcome("/fresh/1").await, "HIT");
    assert_eq!(outcome("/fresh/2").await, "MISS");

    assert_eq!(outcome("/swr").await, "MISS");
    handle.flush().await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(outcome("/swr").await, "STALE");
    eventually("the refresh asks the origin", || {
        recording.origin("refresh").len() == 1
    })
    .await;

    // `private`: not stored, and the key is marked hit-for-pass.
    assert_eq!(outcome("/private").await, "MISS");
    handle.flush().await;
    assert_eq!(outcome("/private").await, "MISS");

    // Stored to be validated before every reuse; the origin confirms it.
    assert_eq!(outcome("/etag").await, "MISS");
    handle.flush().await;
    let revalidated = send(&app, get_request("/etag")).await;
    assert_eq!(
        (revalidated.status, revalidated.text().as_str()),
        (200, "tagged")
    );

    assert_eq!(outcome("/cart").await, "BYPASS");
    assert_eq!(outcome("/other").await, "MISS");
    handle.flush().await;

    let expected = [
        ("hit", "/fresh/{id}", 1),
        ("miss", "/fresh/{id}", 2),
        ("miss", "/swr", 1),
        ("stale", "/swr", 1),
        ("miss", "/private", 1),
        ("pass", "/private", 1),
        ("miss", "/etag", 1),
        ("revalidated", "/etag", 1),
        ("bypass", "/cart", 1),
        ("miss", "default", 1),
    ];
    for (outcome, route, count) in expected {
        assert_eq!(
            recording.requests(outcome, route),
            count,
            "{outcome} {route}"
        );
    }
    assert_eq!(
        recording.total("requests_total"),
        11,
        "nothing else counted"
    );
    assert_eq!(
        recording.counter("bypass_total", &[("reason", "policy")]),
        1
    );
    // Both fetches' responses: the miss's, and the pass's (a pass stores what it may).
    assert_eq!(
        recording.counter("not_stored_total", &[("reason", "private")]),
        2
    );
    assert_eq!(recording.counter("refreshes_total", &[("kind", "swr")]), 1);
    assert_eq!(recording.total("refreshes_total"), 1);

    // The origin's time, by what the call was for, in seconds.
    let calls = [
        ("miss", 6),
        ("pass", 1),
        ("revalidated", 1),
        ("refresh", 1),
        ("bypass", 1),
        ("error", 0),
    ];
    for (call, count) in calls {
        let samples = recording.origin(call);
        assert_eq!(samples.len(), count, "{call}: {samples:?}");
        assert!(
            samples.iter().all(|s| (0.0..1.0).contains(s)),
            "{samples:?}"
        );
    }
    assert!(
        recording.origin("miss").iter().any(|s| *s >= 0.02),
        "/other took 20 ms: {:?}",
        recording.origin("miss")
    );
}

#[tokio::test]
async fn lookups_the_memory_store_answers_at_once_are_sampled_one_in_64() {
    let (recording, _recorder) = Recording::start();
    let layer = cache(Policy::new());
    let handle = layer.handle();
    let app = Router::new()
        .route("/item", get(|| async { "item" }))
        .layer(layer);
    send(&app, get_request("/item")).await;
    handle.flush().await;
    for _ in 0..640 {
        assert_eq!(send(&app, get_request("/item")).await.cache(), "HIT");
    }
    // One in 64 of the thread's lookups (the miss looked twice): 10 of 642, or one fewer if
    // this thread looked something up before.
    let samples = recording.samples("lookup_duration_seconds", &[("store", "memory")]);
    assert!((9..=10).contains(&samples.len()), "{samples:?}");
    assert!(
        samples.iter().all(|s| (0.0..0.1).contains(s)),
        "{samples:?}"
    );
}

#[tokio::test]
async fn every_bypass_reason_is_counted_with_the_route_of_the_request() {
    let (recording, _recorder) = Recording::start();
    let layer = cache(Policy::new()).route("/cart", Policy::bypass()).route(
        "/account",
        Policy::new().authorization(Authorization::Bypass),
    );
    let app = Router::new()
        .route(
            "/page",
            get(|| async { "page" }).post(|| async { "posted" }),
        )
        .route("/cart", get(|| async { "cart" }))
        .route("/account", get(|| async { "account" }))
        .layer(layer);
    let bypassed = |got: common::Got| assert_eq!(got.cache(), "BYPASS");
    bypassed(send(&app, req("GET", "/page", &[("cookie", "session=1")])).await);
    bypassed(send(&app, req("POST", "/page", &[])).await);
    bypassed(send(&app, get_request("/cart")).await);
    bypassed(
        send(
            &app,
            req("GET", "/account", &[("authorization", "Bearer x")]),
        )
        .await,
    );
    // The default policy lets a request with credentials use the cache (RFC 9111 §3.5).
    let got = send(&app, req("GET", "/page", &[("authorization", "Bearer x")])).await;
    assert_eq!(got.cache(), "MISS");

    let reason = |reason| recording.counter("bypass_total", &[("reason", reason)]);
    assert_eq!(
        (
            reason("cookie"),
            reason("method"),
            reason("policy"),
            reason("authorization")
        ),
        (1, 1, 1, 1)
    );
    assert_eq!(recording.total("bypass_total"), 4);
    assert_eq!(recording.requests("bypass", "default"), 2);
    assert_eq!(recording.requests("bypass", "/cart"), 1);
    assert_eq!(recording.requests("bypass", "/account"), 1);
    assert_eq!(recording.requests("miss", "default"), 1);
    assert_eq!(recording.origin("bypass").len(), 4);
    assert_eq!(
        recording.counter("invalidations_total", &[("kind", "write")]),
        1,
        "the POST"
    );
}

#[tokio::test]
async fn every_not_stored_reason_is_counted() {
    let (recording, _recorder) = Recording::start();
    let layer = cache(Policy::new()).route("/large", Policy::new().max_body_bytes(1024));
    let handle = layer.handle();
    let app = Router::new()
        .route(
            "/no-store",
            get(|| async { ([("cache-control", "no-store")], "x") }),
        )
        .route(
            "/private",
            get(|| async { ([("cache-control", "private")], "x") }),
        )
        .route(
            "/set-cookie",
            get(|| async { ([("set-cookie", "session=1")], "x") }),
        )
        .route("/large", get(|| async { "x".repeat(4096) }))
        .layer(layer);
    for uri in ["/no-store", "/private", "/set-cookie", "/large"] {
        assert_eq!(send(&app, get_request(uri)).await.cache(), "MISS", "{uri}");
    }
    handle.flush().await;
    for reason in ["no-store", "private", "set-cookie", "too-large"] {
        assert_eq!(
            recording.counter("not_stored_total", &[("reason", reason)]),
            1,
            "{reason}"
        );
    }
    assert_eq!(recording.total("not_stored_total"), 4);
}

#[tokio::test]
async fn requests_that_wait_for_another_fetch_are_coalesced() {
    let (recording, _recorder) = Recording::start();
    let calls = Calls::default();
    let gate = Arc::new(Semaphore::new(0));
    let layer = cache(Policy::new());
    let stats = layer.stats();
    let (c, g) = (calls.clone(), gate.clone());
    let app = Router::new()
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
    let waiting: Vec<_> = (0..5)
        .map(|_| common::spawn_send(&app, get_request("/slow")))
        .collect();
    eventually("five requests in flight", || {
        stats.snapshot().in_flight == 5
    })
    .await;
    gate.add_permits(5);
    for request in waiting {
        assert_eq!(request.await.unwrap().text(), "slow");
    }
    assert_eq!(calls.get(), 1);
    assert_eq!(recording.counter("coalesced_total", &[]), 4);
    assert_eq!(recording.requests("miss", "default"), 5);
    assert_eq!(recording.origin("miss").len(), 1, "one fetch");
}

type Empty = http_body_util::Empty<bytes::Bytes>;
type Full = http_body_util::Full<bytes::Bytes>;

/// An origin (a bare service, so that it can fail with an error): `/ahead` always answers;
/// `/refused` and `/down` answer once, then fail: with an error, or with a `503`.
fn origin(
    calls: &Calls,
) -> impl tower::Service<
    Request<Empty>,
    Response = http::Response<Full>,
    Error = std::io::Error,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    let calls = calls.clone();
    tower::service_fn(move |request: Request<Empty>| {
        let first = calls.hit() <= 3;
        let path = request.uri().path().to_owned();
        async move {
            let ok = |body: &'static str| http::Response::new(Full::from(body));
            match (path.as_str(), first) {
                ("/ahead", _) | (_, true) => Ok(ok("good")),
                ("/refused", false) => Err(std::io::Error::other("connection refused")),
                _ => {
                    let mut down = ok("down");
                    *down.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                    Ok(down)
                }
            }
        }
    })
}

#[tokio::test]
async fn background_refreshes_are_counted_by_kind_and_their_failures_as_errors() {
    let (recording, _recorder) = Recording::start();
    let calls = Calls::default();
    let swr = Policy::new()
        .ttl(Duration::from_millis(100))
        .stale_while_revalidate(Duration::from_secs(30));
    let layer = cache(Policy::new())
        .route(
            "/ahead",
            Policy::new()
                .ttl(Duration::from_millis(400))
                .refresh_ahead(0.5),
        )
        .route("/refused", swr.clone())
        .route("/down", swr);
    let handle = layer.handle();
    let service = layer.layer(origin(&calls));
    let send = async |uri: &str| {
        let request = Request::get(uri).body(Empty::new()).unwrap();
        common::read(service.clone().oneshot(request).await.unwrap()).await
    };
    for uri in ["/ahead", "/refused", "/down"] {
        assert_eq!(send(uri).await.cache(), "MISS");
    }
    handle.flush().await;
    assert_eq!(calls.get(), 3);
    tokio::time::sleep(Duration::from_millis(250)).await;
    // Past half its lifetime: answered, and refreshed ahead of its expiry.
    assert_eq!(send("/ahead").await.cache(), "HIT");
    // Stale within stale-while-revalidate: answered, and refreshed; both refreshes fail.
    assert_eq!(send("/refused").await.cache(), "STALE");
    assert_eq!(send("/down").await.cache(), "STALE");
    eventually("the three refreshes end", || {
        recording.origin("refresh").len() == 2 && recording.origin("error").len() == 1
    })
    .await;
    handle.flush().await;

    let kind = |kind| recording.counter("refreshes_total", &[("kind", kind)]);
    assert_eq!((kind("ahead"), kind("swr")), (1, 2));
    eventually("both failures are counted", || kind("error") == 2).await;
    // The stored responses stay.
    assert_eq!(send("/refused").await.text(), "good");
    assert_eq!(send("/down").await.text(), "good");
}

#[tokio::test]
async fn invalidations_are_counted_by_what_asked_for_them() {
    let (recording, _recorder) = Recording::start();
    let token = PurgeToken::new("token").unwrap();
    let layer = cache(Policy::new()).purge_method(token.clone());
    let handle = layer.handle();
    let purge = PurgeService::new(layer.handle(), token);
    let app = Router::new()
        .route(
            "/{*path}",
            get(|| async { "page" }).post(|| async { "done" }),
        )
        .layer(layer)
        .merge(Router::new().route_service("/_cache/purge", purge));

    send(&app, req("POST", "/items/1", &[])).await;
    handle.invalidate_tags(&["items"]).await;
    handle
        .invalidate_uri(&"http://shop.example/items/1".parse().unwrap())
        .await;
    handle.invalidate_prefix("", "/items/").await;
    handle.clear().await;
    let auth = [("authorization", "Bearer token")];
    let purged = send(&app, req("POST", "/_cache/purge?tag=items", &auth)).await;
    assert_eq!(purged.status, 200);
    let purged = send(&app, req("PURGE", "/items/1", &auth)).await;
    assert_eq!(purged.status, 200);

    let kind = |kind| recording.counter("invalidations_total", &[("kind", kind)]);
    let kinds = ["write", "tag", "uri", "prefix", "clear", "purge"].map(kind);
    assert_eq!(
        kinds,
        [1, 1, 1, 1, 1, 2],
        "write tag uri prefix clear purge"
    );
    assert_eq!(recording.total("invalidations_total"), 7);
}

/// A store that fails every operation; its errors name `tier` when it has one.
struct Failing {
    tier: Option<&'static str>,
}

impl Failing {
    fn error(&self) -> StoreError {
        let error = StoreError::new("unreachable");
        match self.tier {
            Some(tier) => error.in_store(tier),
            None => error,
        }
    }
}

impl Store for Failing {
    async fn get(&self, _: StoreKey) -> Result<Option<Arc<Entry>>, StoreError> {
        Err(self.error())
    }
    async fn put(&self, _: StoreKey, _: Arc<Entry>, _: Duration) -> Result<PutOutcome, StoreError> {
        Err(self.error())
    }
    async fn remove(&self, _: StoreKey) -> Result<(), StoreError> {
        Err(self.error())
    }
    async fn invalidate_tags<'a>(&'a self, _: &'a [&'a str]) -> Result<u64, StoreError> {
        Err(self.error())
    }
    async fn clear(&self) -> Result<u64, StoreError> {
        Err(self.error())
    }
}

#[tokio::test]
async fn store_errors_are_counted_by_store_and_operation() {
    let (recording, _recorder) = Recording::start();
    let layer = CacheLayer::new(Failing { tier: None });
    let handle = layer.handle();
    let app = Router::new()
        .route("/item", get(|| async { "item" }))
        .layer(layer);
    for _ in 0..2 {
        let got = send(&app, get_request("/item")).await;
        assert_eq!((got.cache(), got.text().as_str()), ("MISS", "item"));
    }
    handle.flush().await;
    handle.invalidate_tags(&["items"]).await;
    handle.clear().await;

    let errors = |op| recording.counter("store_errors_total", &[("store", "custom"), ("op", op)]);
    let ops = ["get", "put", "invalidate", "clear"].map(errors);
    assert_eq!(ops, [2, 2, 1, 1], "get put invalidate clear");
    // A store that must be waited for is timed on every lookup.
    let lookups = recording.samples("lookup_duration_seconds", &[("store", "custom")]);
    assert_eq!(lookups.len(), 2, "{lookups:?}");

    // An error that names its tier is counted under it.
    let layer = CacheLayer::new(Failing { tier: Some("l2") });
    let app = Router::new()
        .route("/item", get(|| async { "item" }))
        .layer(layer);
    send(&app, get_request("/item")).await;
    assert_eq!(
        recording.counter("store_errors_total", &[("store", "l2"), ("op", "get")]),
        1
    );
}

#[tokio::test]
async fn the_store_figures_are_published_as_gauges_and_evictions() {
    let (recording, _recorder) = Recording::start();
    let store = Arc::new(MemoryStore::with_capacity_bytes(16 << 10));
    let layer = CacheLayer::from_shared_store(Arc::clone(&store))
        .route("/short", Policy::new().ttl(Duration::from_millis(50)));
    let (stats, handle) = (layer.stats(), layer.handle());
    let app = Router::new()
        .route("/short", get(|| async { "short" }))
        .route("/items/{id}", get(|| async { "x".repeat(1024) }))
        .layer(layer);
    send(&app, get_request("/short")).await;
    handle.flush().await;
    // moka reports an expiry once its timer wheel (ticks of about a second) gets to it.
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        store.run_pending_tasks().await;
        if stats.snapshot().expirations > 0 {
            break;
        }
    }
    assert_eq!(stats.snapshot().expirations, 1);
    // 40 KiB of bodies in 16 KiB.
    for id in 0..40 {
        send(&app, get_request(&format!("/items/{id}"))).await;
        handle.flush().await;
    }
    store.run_pending_tasks().await;
    let figures = stats.snapshot();
    assert!(figures.evictions > 0, "{figures:?}");
    assert!(figures.entries > 0, "{figures:?}");

    // Published as the cache is used (here: hits, whose lookups are timed one in 64), at most
    // once a second.
    let memory = [("store", "memory")];
    let mut published = false;
    for _ in 0..40 {
        for _ in 0..64 {
            send(&app, get_request("/items/39")).await;
        }
        let figures = stats.snapshot();
        if recording.gauge("entries", &memory) == Some(figures.entries as f64)
            && recording.gauge("bytes", &memory) == Some(figures.weighted_bytes as f64)
            && recording.counter("evictions_total", &[("cause", "expired")]) == 1
            && recording.counter("evictions_total", &[("cause", "size")]) == figures.evictions
        {
            published = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(published, "{:?}", stats.snapshot());
}
