//! No stampede: at most one origin request per key in flight, however slow the origin, however
//! the responses vary, whatever the first request asks for; and nobody hangs on a fetch that
//! stalls, or a client that leaves.

mod common;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use common::{Calls, all_at_once, send, spawn_all_at_once, spawn_send};
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
    let first = spawn_send(&app, plain("/item"));
    while calls.get() == 0 {
        tokio::task::yield_now().await;
    }
    let waiters = spawn_all_at_once(&app, (0..10).map(|_| plain("/item")).collect());
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
        let running = spawn_all_at_once(&app, requests);
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
        let first = spawn_send(&app, with("/item", name, value));
        while calls.get() == 0 {
            tokio::task::yield_now().await;
        }
        let others = spawn_all_at_once(&app, (0..30).map(|_| plain("/item")).collect());
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

/// `/item`: the first call waits at `gate`; every later call answers at once.
fn first_call_hangs(calls: &Calls, gate: &Arc<Semaphore>) -> Router {
    let (c, g) = (calls.clone(), Arc::clone(gate));
    Router::new().route(
        "/item",
        get(move || {
            let n = c.hit();
            let g = Arc::clone(&g);
            async move {
                if n == 1 {
                    let _ = g.acquire().await.unwrap();
                }
                (
                    [("cache-control", "public, max-age=60")],
                    format!("answer {n}"),
                )
            }
        }),
    )
}

/// A request that may not lead (here: one with credentials) and whose wait runs out calls
/// `Waiter::replace()` before `.filter(|_| leads)` drops the guard: it uses up the flight's
/// one replacement without starting it. A request that may lead, and whose wait runs out
/// later, then gets no replacement and waits for the overrunning fetch however long it takes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_whose_wait_runs_out_does_not_use_up_the_replacement() {
    let calls = Calls::default();
    let gate = Arc::new(Semaphore::new(0));
    let app = first_call_hangs(&calls, &gate).layer(layer(
        Policy::new().max_coalesce_wait(Duration::from_millis(100)),
    ));
    let leader = spawn_send(&app, Request::get("/item").body(Body::empty()).unwrap());
    while calls.get() == 0 {
        tokio::task::yield_now().await;
    }
    // Follows the flight (credentials: it may not lead) and gives up waiting after 100 ms.
    let follower = spawn_send(&app, with("/item", "authorization", "Bearer x"));
    tokio::time::sleep(Duration::from_millis(250)).await;
    // May lead: its wait runs out after 100 ms and it should start the replacement.
    let later = tokio::time::timeout(Duration::from_secs(3), {
        let app = app.clone();
        async move { send(&app, Request::get("/item").body(Body::empty()).unwrap()).await }
    })
    .await;
    gate.add_permits(10);
    let _ = leader.await;
    let _ = follower.await;
    let later = later.expect(
        "the replacement fetch answers a waiter whose wait ran out (it waited for the hung fetch)",
    );
    assert_eq!(later.status, 200);
    assert_eq!(calls.get(), 2);
}

/// A body fed by the test through a channel (its end: the sender dropped).
struct Fed(tokio::sync::mpsc::UnboundedReceiver<bytes::Bytes>);

impl http_body::Body for Fed {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|data| data.map(|d| Ok(http_body::Frame::data(d))))
    }
}

/// The first fill's body stalls mid-transfer (an origin connection that hangs after its
/// first bytes). Its flight stays joinable until the body ends, and a request that joins gets
/// the shared entry at once, so neither `max_coalesce_wait` nor the replacement fetch ever
/// applies: every later request for the key hangs with it, however long the stall lasts
/// (forever without an origin body timeout). Without the cache, each would have asked the
/// origin, which answers later calls at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_origin_body_does_not_hang_every_later_request_for_the_key() {
    use http_body_util::BodyExt;
    use tower::{Layer, ServiceExt, service_fn};
    let calls = Calls::default();
    let (feed, fed) = tokio::sync::mpsc::unbounded_channel();
    let fed = Arc::new(std::sync::Mutex::new(Some(fed)));
    let c = calls.clone();
    let origin = service_fn(move |_: Request<http_body_util::Empty<bytes::Bytes>>| {
        let n = c.hit();
        let body = match fed.lock().unwrap().take() {
            Some(fed) => http_body_util::Either::Left(Fed(fed)),
            None => http_body_util::Either::Right(http_body_util::Full::new(bytes::Bytes::from(
                format!("whole {n}"),
            ))),
        };
        async move {
            Ok::<_, std::convert::Infallible>(
                http::Response::builder()
                    .header("cache-control", "max-age=60")
                    .body(body)
                    .unwrap(),
            )
        }
    });
    let app = layer(Policy::new().max_coalesce_wait(Duration::from_millis(100))).layer(origin);
    let get = || {
        Request::get("/item")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap()
    };
    // The first client gets its head and first bytes; then the origin stalls.
    let first = app.clone().oneshot(get()).await.unwrap();
    feed.send(bytes::Bytes::from_static(b"part")).unwrap();
    let mut first = first.into_body();
    let frame = first.frame().await.unwrap().unwrap();
    assert_eq!(frame.into_data().unwrap(), "part");
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Long after the coalescing wait: a new request.
    let later = tokio::time::timeout(Duration::from_secs(3), async {
        let response = app.clone().oneshot(get()).await.unwrap();
        response.into_body().collect().await.unwrap().to_bytes()
    })
    .await;
    drop(feed);
    let later =
        later.expect("a request long after the coalescing wait is not held by a stalled body");
    assert!(later.starts_with(b"whole"), "{later:?}");
}

/// Says when it is dropped.
struct DropSignal(Option<tokio::sync::oneshot::Sender<()>>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        if let Some(signal) = self.0.take() {
            let _ = signal.send(());
        }
    }
}

/// `Background` says it is held by layers and services only, "so dropping the last of them
/// aborts whatever still runs". But the fetch task it spawns (`fetch::lead` spawning
/// `fetch(Arc::clone(&background), ..)`) holds an `Arc<Background>` itself: the task keeps
/// its own `JoinSet` alive, so an origin call that never answers is never aborted, after the
/// client went away and every layer and service was dropped. (Same for background refreshes.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_every_service_aborts_a_hung_fetch() {
    use tower::{Layer, ServiceExt, service_fn};
    let (dropped_tx, dropped) = tokio::sync::oneshot::channel();
    let (called_tx, called) = tokio::sync::oneshot::channel();
    let slots = Arc::new(std::sync::Mutex::new(Some((dropped_tx, called_tx))));
    let origin = service_fn(move |_: Request<http_body_util::Empty<bytes::Bytes>>| {
        let (dropped_tx, called_tx) = slots.lock().unwrap().take().expect("called once");
        let signal = DropSignal(Some(dropped_tx));
        let _ = called_tx.send(());
        async move {
            let _signal = signal;
            std::future::pending::<()>().await;
            Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Empty::<
                bytes::Bytes,
            >::new()))
        }
    });
    let cache = layer(Policy::new());
    let app = cache.layer(origin);
    let client = tokio::spawn(
        app.clone().oneshot(
            Request::get("/item")
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .unwrap(),
        ),
    );
    called.await.unwrap();
    client.abort();
    let _ = client.await;
    drop(app);
    drop(cache);
    tokio::time::timeout(Duration::from_secs(3), dropped)
        .await
        .expect("the hung origin call is dropped with the last service")
        .unwrap();
}

/// `origin_timeout`: "when a stale response could be served instead, an origin slower than
/// this counts as failed: the client gets the stale response". Only the leader's (and a
/// direct fetch's) wait is bounded by it: a request that joined the leader's flight, with the
/// same stale response to fall back on, waits `max_coalesce_wait` (5 s by default), then
/// leads the replacement; one that may not lead waits for the hung fetch as long as it hangs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_with_a_stale_fallback_gets_it_after_the_origin_timeout_like_its_leader() {
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
                    if n > 1 {
                        let _ = g.acquire().await.unwrap();
                    }
                    format!("answer {n}")
                }
            }),
        )
        .layer(layer(
            Policy::new()
                .ttl(Duration::from_millis(200))
                .stale_if_error(Duration::from_secs(30))
                .origin_timeout(Duration::from_millis(100)),
        ));
    assert_eq!(
        send(&app, Request::get("/item").body(Body::empty()).unwrap())
            .await
            .text(),
        "answer 1"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let leader = spawn_send(&app, Request::get("/item").body(Body::empty()).unwrap());
    while calls.get() < 2 {
        tokio::task::yield_now().await;
    }
    let started = std::time::Instant::now();
    let waiter = tokio::time::timeout(Duration::from_secs(2), {
        let app = app.clone();
        async move { send(&app, Request::get("/item").body(Body::empty()).unwrap()).await }
    })
    .await;
    let waited = started.elapsed();
    let leader = leader.await.unwrap();
    gate.add_permits(10);
    assert_eq!(
        (leader.cache(), leader.text().as_str()),
        ("STALE", "answer 1")
    );
    let waiter = waiter.unwrap_or_else(|_| {
        panic!("the leader got the stale response after 100 ms; its waiter still waits after {waited:?}")
    });
    assert_eq!(
        (waiter.cache(), waiter.text().as_str()),
        ("STALE", "answer 1")
    );
}

/// A memory store whose `claim_fill` takes a while (a Redis round trip, or another instance
/// holding the claim), then grants it.
#[derive(Clone)]
struct SlowClaims(MemoryStore);

impl tower_response_cache::Store for SlowClaims {
    async fn get(
        &self,
        key: tower_response_cache::StoreKey,
    ) -> Result<Option<Arc<tower_response_cache::store::Entry>>, tower_response_cache::StoreError>
    {
        self.0.get(key).await
    }
    async fn put(
        &self,
        key: tower_response_cache::StoreKey,
        entry: Arc<tower_response_cache::store::Entry>,
        ttl: Duration,
    ) -> Result<tower_response_cache::PutOutcome, tower_response_cache::StoreError> {
        self.0.put(key, entry, ttl).await
    }
    async fn remove(
        &self,
        key: tower_response_cache::StoreKey,
    ) -> Result<(), tower_response_cache::StoreError> {
        self.0.remove(key).await
    }
    async fn invalidate_tags<'a>(
        &'a self,
        tags: &'a [&'a str],
    ) -> Result<u64, tower_response_cache::StoreError> {
        self.0.invalidate_tags(tags).await
    }
    async fn clear(&self) -> Result<u64, tower_response_cache::StoreError> {
        self.0.clear().await
    }
    async fn claim_fill(&self, _key: tower_response_cache::StoreKey, _hold: Duration) -> bool {
        tokio::time::sleep(Duration::from_millis(300)).await;
        true
    }
}

/// `fetch::lead` awaits `claim_or_wait` in the leader's own request future, holding the
/// flight's guard, before the fetch task is spawned. A leader whose client goes away then
/// (a Redis round trip; up to `max_coalesce_wait` while another instance holds the claim)
/// drops the guard: every waiter gets `Shared::Failed` and calls the origin itself, a
/// stampede of one origin call per waiter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_client_leaves_while_claiming_does_not_release_a_stampede() {
    let calls = Calls::default();
    let c = calls.clone();
    let app = Router::new()
        .route(
            "/item",
            get(move || {
                let n = c.hit();
                async move { format!("answer {n}") }
            }),
        )
        .layer(
            CacheLayer::new(SlowClaims(MemoryStore::with_capacity_bytes(16 << 20)))
                .policy(Policy::new()),
        );
    let leader = spawn_send(&app, Request::get("/item").body(Body::empty()).unwrap());
    tokio::time::sleep(Duration::from_millis(50)).await;
    let waiters = tokio::spawn({
        let app = app.clone();
        async move {
            common::all_at_once(
                &app,
                (0..20)
                    .map(|_| Request::get("/item").body(Body::empty()).unwrap())
                    .collect(),
            )
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The leader's client goes away while its claim is pending.
    leader.abort();
    let got = waiters.await.unwrap();
    assert!(got.iter().all(|g| g.status == 200));
    assert!(
        calls.get() <= 2,
        "{} origin calls for 20 waiters of a leader whose client left",
        calls.get()
    );
}
