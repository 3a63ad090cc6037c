//! Two instances, each with a memory tier, sharing Redis: L1 hits stay local, invalidations
//! reach every instance, a lost subscription clears L1.
#![cfg(feature = "redis")]

mod common;

use axum::Router;
use axum::routing::get;
use common::redis_server::RedisServer;
use common::{Calls, send};
use std::time::{Duration, Instant};
use tower_response_cache::{CacheHandle, CacheLayer, MemoryStore, RedisStore, TieredStore};

fn tiered(server: &RedisServer) -> TieredStore {
    let l2 = RedisStore::builder(server.url())
        .prefix("tiered")
        .timeout(Duration::from_millis(200))
        .circuit_breaker(3, Duration::from_millis(200))
        // One machine, one clock.
        .invalidation_clock_margin(Duration::ZERO)
        .build()
        .unwrap();
    TieredStore::new(MemoryStore::with_capacity_bytes(16 << 20), l2).unwrap()
}

fn instance(name: &'static str, calls: &Calls, store: TieredStore) -> (Router, CacheHandle) {
    let calls = calls.clone();
    let layer = CacheLayer::new(store);
    let handle = layer.handle();
    let app = Router::new()
        .route(
            "/{*path}",
            get(move |uri: http::Uri| {
                calls.hit();
                async move {
                    (
                        [("cache-tag", "pages")],
                        format!("{} from {name}", uri.path()),
                    )
                }
            })
            .post(|| async { "written" }),
        )
        .layer(layer);
    (app, handle)
}

/// Two tiered stores over `server`, both listening for the other's invalidations.
async fn two_subscribed(server: &RedisServer) -> (TieredStore, TieredStore) {
    let (a, b) = (tiered(server), tiered(server));
    subscribed(&a).await;
    subscribed(&b).await;
    (a, b)
}

async fn subscribed(store: &TieredStore) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !store.is_subscribed() {
        assert!(Instant::now() < deadline, "never subscribed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn commands_processed(server: &RedisServer) -> u64 {
    let mut raw = server.raw().await;
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(&mut raw)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("total_commands_processed:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

async fn l1_entries(store: &TieredStore) -> u64 {
    store.l1().run_pending_tasks().await;
    tower_response_cache::Store::metrics(store.l1()).entries
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l1_hits_stay_local_and_instances_share_l2() {
    let server = RedisServer::start();
    let (a_store, b_store) = two_subscribed(&server).await;
    let calls = Calls::default();
    let (a, a_handle) = instance("a", &calls, a_store.clone());
    let (b, _) = instance("b", &calls, b_store.clone());

    send(&a, common::get("/page")).await;
    a_handle.flush().await;
    let before = commands_processed(&server).await;
    for _ in 0..100 {
        assert_eq!(send(&a, common::get("/page")).await.cache(), "HIT");
    }
    // Only the INFO call itself was added.
    assert_eq!(
        commands_processed(&server).await,
        before + 1,
        "L1 hits touched Redis"
    );

    let from_b = send(&b, common::get("/page")).await;
    assert_eq!(
        (from_b.cache(), from_b.text().as_str()),
        ("HIT", "/page from a")
    );
    assert_eq!(l1_entries(&b_store).await, 1, "B keeps it in its L1 now");
    assert_eq!(calls.get(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidations_reach_every_instance() {
    let server = RedisServer::start();
    let (a_store, b_store) = two_subscribed(&server).await;
    let calls = Calls::default();
    let (a, a_handle) = instance("a", &calls, a_store.clone());
    let (b, _) = instance("b", &calls, b_store.clone());

    let mut delays = Vec::new();
    for round in 0..20 {
        let uri = format!("/r{round}");
        send(&a, common::get(&uri)).await;
        a_handle.flush().await;
        assert_eq!(send(&b, common::get(&uri)).await.cache(), "HIT");
        assert!(l1_entries(&b_store).await >= 1);
        a_handle.invalidate_tags(&["pages"]).await;
        let started = Instant::now();
        while l1_entries(&b_store).await > 0 {
            assert!(started.elapsed() < Duration::from_secs(5), "not propagated");
            tokio::task::yield_now().await;
        }
        delays.push(started.elapsed());
        assert_eq!(send(&b, common::get(&uri)).await.cache(), "MISS");
        // The next round's fills must start after this invalidation's millisecond.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    delays.sort();
    println!(
        "invalidation propagation to another instance's L1: p50 {:?}, max {:?}",
        delays[delays.len() / 2],
        delays[delays.len() - 1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_subscription_clears_l1_until_it_is_back() {
    let mut server = RedisServer::start();
    let port = server.port;
    let store = tiered(&server);
    subscribed(&store).await;
    let calls = Calls::default();
    let (app, handle) = instance("a", &calls, store.clone());
    send(&app, common::get("/page")).await;
    handle.flush().await;
    assert_eq!(l1_entries(&store).await, 1);

    server.kill();
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.is_subscribed() || l1_entries(&store).await > 0 {
        assert!(Instant::now() < deadline, "the loss was not noticed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // While cut off, L1 is not used: answers come from the origin, never from a stale copy.
    let got = send(&app, common::get("/page")).await;
    assert_eq!((got.status, got.cache()), (200, "MISS"));
    handle.flush().await;
    assert_eq!(l1_entries(&store).await, 0);

    let _server = RedisServer::start_on(port);
    subscribed(&store).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        send(&app, common::get("/page")).await;
        handle.flush().await;
        if send(&app, common::get("/page")).await.cache() == "HIT" {
            break;
        }
        assert!(Instant::now() < deadline, "did not recover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l1_never_outlives_l2() {
    let server = RedisServer::start();
    let store = tiered(&server);
    subscribed(&store).await;
    let calls = Calls::default();
    let layer = CacheLayer::new(store.clone()).ttl(Duration::from_millis(500));
    let handle = layer.handle();
    let c = calls.clone();
    let app = Router::new()
        .route(
            "/x",
            get(move || {
                c.hit();
                async { "x" }
            }),
        )
        .layer(layer);
    send(&app, common::get("/x")).await;
    handle.flush().await;
    assert_eq!(send(&app, common::get("/x")).await.cache(), "HIT");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(send(&app, common::get("/x")).await.cache(), "MISS");
    assert_eq!(calls.get(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_remote_write_no_request_joins_an_older_fetch() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use tower_response_cache::Store;
    let server = RedisServer::start();
    let version = Arc::new(AtomicU64::new(0));
    let make = |store: TieredStore, slow: bool| {
        let (read, write) = (version.clone(), version.clone());
        Router::new()
            .route(
                "/item",
                get(move || {
                    let v = read.load(Ordering::SeqCst);
                    async move {
                        if slow {
                            tokio::time::sleep(Duration::from_millis(300)).await;
                        }
                        format!("v{v}")
                    }
                })
                .put(move || {
                    write.fetch_add(1, Ordering::SeqCst);
                    async { "written" }
                }),
            )
            .layer(CacheLayer::new(store))
    };
    let (a_store, b_store) = two_subscribed(&server).await;
    let a = make(a_store.clone(), true);
    let b = make(b_store, false);

    // A starts a slow fetch of v0; B writes while it runs.
    let old_fetch = {
        let a = a.clone();
        tokio::spawn(async move { send(&a, common::get("/item")).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let heard = a_store.remote_invalidations();
    send(&b, common::req("PUT", "/item", &[])).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while a_store.remote_invalidations() == heard {
        assert!(Instant::now() < deadline, "the write never reached A");
        tokio::task::yield_now().await;
    }
    // A request on A now starts its own fetch instead of waiting for the old one.
    let fresh = send(&a, common::get("/item")).await;
    assert_eq!(fresh.text(), "v1");
    assert_eq!(
        old_fetch.await.unwrap().text(),
        "v0",
        "the old fetch answers its own client"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_write_returns_no_instance_serves_what_it_replaced() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let server = RedisServer::start();
    let patient = || {
        let l2 = RedisStore::builder(server.url())
            .prefix("tiered")
            // Longer than any pause below: Redis is slow, not down.
            .timeout(Duration::from_secs(2))
            .invalidation_clock_margin(Duration::ZERO)
            .build()
            .unwrap();
        TieredStore::new(MemoryStore::with_capacity_bytes(16 << 20), l2).unwrap()
    };
    let version = Arc::new(AtomicU64::new(0));
    let make = |store: TieredStore| {
        let (read, write) = (version.clone(), version.clone());
        let layer = CacheLayer::new(store);
        let handle = layer.handle();
        let app = Router::new()
            .route(
                "/item",
                get(move || {
                    let v = read.load(Ordering::SeqCst);
                    async move { format!("v{v}") }
                })
                .put(move || {
                    write.fetch_add(1, Ordering::SeqCst);
                    async { "written" }
                }),
            )
            .layer(layer);
        (app, handle)
    };
    let (a_store, b_store, c_store) = (patient(), patient(), patient());
    for store in [&a_store, &b_store, &c_store] {
        subscribed(store).await;
    }
    let ((a, _), (b, _), (c, c_handle)) = (
        make(a_store.clone()),
        make(b_store.clone()),
        make(c_store.clone()),
    );
    let mut pauser = server.raw().await;
    let mut random = common::randomizer();
    for round in 0..30 {
        // The current version is in Redis (filled by C), in neither A's nor B's memory.
        send(&c, common::get("/item")).await;
        c_handle.flush().await;
        // Redis stalls; A and B read (their L2 reads wait), A writes (its invalidation waits).
        let pause = 20 + random(40);
        let _: () = redis::cmd("CLIENT")
            .arg("PAUSE")
            .arg(pause)
            .arg("ALL")
            .query_async(&mut pauser)
            .await
            .unwrap();
        let read = |app: &Router| {
            let app = app.clone();
            tokio::spawn(async move { send(&app, common::get("/item")).await })
        };
        let (read_a, read_b) = (read(&a), read(&b));
        tokio::time::sleep(Duration::from_millis(random(6))).await;
        let heard = b_store.remote_invalidations_applied();
        assert_eq!(send(&a, common::req("PUT", "/item", &[])).await.status, 200);
        let written = format!("v{}", version.load(Ordering::SeqCst));

        // The write has returned: the writer answers what it wrote, now and once its own
        // read has landed.
        assert_eq!(
            send(&a, common::get("/item")).await.text(),
            written,
            "round {round}: the writer served data from before its write"
        );
        let _ = read_a.await.unwrap();
        assert_eq!(
            send(&a, common::get("/item")).await.text(),
            written,
            "round {round}: the writer's read copied old data into its memory"
        );
        // Another instance, once the write's message reached it.
        let deadline = Instant::now() + Duration::from_secs(5);
        while b_store.remote_invalidations_applied() == heard {
            assert!(Instant::now() < deadline, "the write never reached B");
            tokio::task::yield_now().await;
        }
        let _ = read_b.await.unwrap();
        assert_eq!(
            send(&b, common::get("/item")).await.text(),
            written,
            "round {round}: another instance served data from before the write"
        );
        // The next round's fill must start after this write's millisecond.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_report_both_tiers() {
    let server = RedisServer::start();
    let (a_store, b_store) = two_subscribed(&server).await;
    let calls = Calls::default();
    let a_layer = CacheLayer::new(a_store.clone());
    let b_layer = CacheLayer::new(b_store.clone());
    let (a_stats, b_stats) = (a_layer.stats(), b_layer.stats());
    let a_handle = a_layer.handle();
    let app = |layer: CacheLayer<TieredStore>| {
        let c = calls.clone();
        Router::new()
            .route(
                "/{*path}",
                get(move || {
                    c.hit();
                    async { "page" }
                }),
            )
            .layer(layer)
    };
    let (a, b) = (app(a_layer), app(b_layer));
    for i in 0..5 {
        send(&a, common::get(&format!("/p{i}"))).await;
        // One write after the other: the count is the one the last write heard.
        a_handle.flush().await;
    }
    // A holds the five in memory, and they are in Redis.
    let s = a_stats.snapshot();
    assert_eq!(s.entries, 5, "{s:?}");
    assert!(s.weighted_bytes > 0, "{s:?}");
    // B has read two of them: two in its memory, five shared.
    for i in 0..2 {
        assert_eq!(
            send(&b, common::get(&format!("/p{i}"))).await.cache(),
            "HIT"
        );
    }
    // B's reads counted Redis's entries on a task of their own (`refresh_figures`).
    common::eventually("B heard Redis's count", || {
        b_stats.snapshot().shared_entries == Some(5)
    })
    .await;
    let s = b_stats.snapshot();
    assert_eq!((s.entries, s.shared_entries), (2, Some(5)), "{s:?}");
    let s = a_stats.snapshot();
    assert_eq!((s.entries, s.shared_entries), (5, Some(5)), "{s:?}");
    assert_eq!(calls.get(), 5);

    // A clear counts the entries once (L1's are copies of L2's).
    assert_eq!(a_handle.clear().await, 5);
    let s = a_stats.snapshot();
    assert_eq!((s.entries, s.shared_entries), (0, Some(0)), "{s:?}");
}

/// Waits (up to 10 s) until `store` has applied `n` invalidations from other instances.
async fn heard(store: &TieredStore, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.remote_invalidations_applied() < n {
        assert!(Instant::now() < deadline, "the message never arrived");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidation_messages_carry_any_path_whole() {
    // A path may hold `%0A` or `%01`: the message to the other instances must carry it whole,
    // so that a crafted write path names no other tag there, and a genuine write is not lost.
    let server = RedisServer::start();
    let (a_store, b_store) = two_subscribed(&server).await;
    let calls = Calls::default();
    let (a, _) = instance("a", &calls, a_store);
    let (b, b_handle) = instance("b", &calls, b_store.clone());
    let on = |method: &str, path: &str| common::req(method, path, &[("host", "shop.example")]);
    for path in ["/one", "/two", "/notes/a%0Ab"] {
        send(&b, on("GET", path)).await;
    }
    b_handle.flush().await;
    assert_eq!(l1_entries(&b_store).await, 3);
    let before = b_store.remote_invalidations_applied();
    send(&a, on("POST", "/x%0A%01host%20shop.example")).await;
    send(&a, on("POST", "/x%0Apages")).await;
    heard(&b_store, before + 2).await;
    assert_eq!(
        l1_entries(&b_store).await,
        3,
        "B's memory lost entries no write named"
    );
    send(&a, on("POST", "/notes/a%0Ab")).await;
    heard(&b_store, before + 3).await;
    assert_eq!(send(&b, on("GET", "/notes/a%0Ab")).await.cache(), "MISS");
}

/// A tiered store over `server` whose memory holds 128 MiB (with the Redis tier's default
/// `max_value_bytes`, 8 MiB).
async fn roomy(server: &RedisServer) -> TieredStore {
    let l2 = RedisStore::builder(server.url())
        .prefix("tiered")
        .invalidation_clock_margin(Duration::ZERO)
        .build()
        .unwrap();
    let store = TieredStore::new(MemoryStore::with_capacity_bytes(128 << 20), l2).unwrap();
    subscribed(&store).await;
    store
}

/// `/big/{n}`: 32 MiB tagged `big` (`POST` writes it), once `gate` lets it through (if any).
fn big_app(
    calls: &Calls,
    store: TieredStore,
    gate: Option<std::sync::Arc<tokio::sync::Semaphore>>,
) -> (Router, CacheHandle) {
    static BIG: std::sync::OnceLock<bytes::Bytes> = std::sync::OnceLock::new();
    let big = BIG.get_or_init(|| bytes::Bytes::from(vec![b'x'; 32 << 20]));
    let calls = calls.clone();
    let layer = CacheLayer::new(store).max_body_bytes(40 << 20);
    let handle = layer.handle();
    let app = Router::new()
        .route(
            "/big/{n}",
            get(move || {
                calls.hit();
                let gate = gate.clone();
                async move {
                    if let Some(gate) = gate {
                        gate.acquire().await.unwrap().forget();
                    }
                    ([("cache-tag", "big")], big.clone())
                }
            })
            .post(|| async { "written" }),
        )
        .layer(layer);
    (app, handle)
}

async fn entries_in_redis(server: &RedisServer) -> Vec<String> {
    let mut raw = server.raw().await;
    redis::cmd("KEYS")
        .arg("tiered:*e:*")
        .query_async(&mut raw)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_entry_stays_in_l1_only_and_is_invalidated_everywhere() {
    let server = RedisServer::start();
    let (a_store, b_store) = (roomy(&server).await, roomy(&server).await);
    let calls = Calls::default();
    let (a, a_handle) = big_app(&calls, a_store.clone(), None);
    let (b, b_handle) = big_app(&calls, b_store.clone(), None);
    let hits = |app: &Router| {
        let app = app.clone();
        async move {
            let got = send(&app, common::get("/big/1")).await;
            assert_eq!(got.body.len(), 32 << 20);
            got.cache().to_owned()
        }
    };

    // Over the Redis tier's limit: never sent there, served from A's memory.
    assert_eq!(hits(&a).await, "MISS");
    a_handle.flush().await;
    assert_eq!(hits(&a).await, "HIT");
    assert!(entries_in_redis(&server).await.is_empty());
    assert_eq!(l1_entries(&a_store).await, 1);
    // B has none to read: it fills its own copy.
    assert_eq!(hits(&b).await, "MISS");
    b_handle.flush().await;
    assert_eq!(hits(&b).await, "HIT");
    assert_eq!(calls.get(), 2);

    // An invalidation on A reaches both memories.
    let heard_by_b = b_store.remote_invalidations_applied();
    a_handle.invalidate_tags(&["big"]).await;
    // (A fill that started in the millisecond of an invalidation A made or heard of is not kept
    // in memory alone: fill start times are to the millisecond.)
    tokio::time::sleep(Duration::from_millis(2)).await;
    assert_eq!(hits(&a).await, "MISS");
    a_handle.flush().await;
    heard(&b_store, heard_by_b + 1).await;
    assert_eq!(hits(&b).await, "MISS");
    b_handle.flush().await;
    assert_eq!(calls.get(), 4);

    // So does a write on B.
    assert_eq!(hits(&a).await, "HIT");
    let heard_by_a = a_store.remote_invalidations_applied();
    send(&b, common::req("POST", "/big/1", &[])).await;
    heard(&a_store, heard_by_a + 1).await;
    assert_eq!(hits(&a).await, "MISS");
    assert_eq!(hits(&b).await, "MISS");
    assert_eq!(calls.get(), 6);
    a_handle.flush().await;
    b_handle.flush().await;
    assert!(entries_in_redis(&server).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_invalidation_during_a_large_fill_keeps_it_out_of_l1() {
    use std::sync::Arc;
    use tokio::sync::Semaphore;
    let server = RedisServer::start();
    let (a_store, b_store) = (roomy(&server).await, roomy(&server).await);
    let calls = Calls::default();
    let gate = Arc::new(Semaphore::new(0));
    let (a, a_handle) = big_app(&calls, a_store.clone(), Some(gate.clone()));
    let (_, b_handle) = big_app(&calls, b_store, None);

    // A's fill has asked its origin when B invalidates: A hears of it before the fill ends.
    let fill = {
        let a = a.clone();
        tokio::spawn(async move { send(&a, common::get("/big/1")).await })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while calls.get() == 0 {
        assert!(Instant::now() < deadline, "the fill never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let before = a_store.remote_invalidations_applied();
    b_handle.invalidate_tags(&["big"]).await;
    heard(&a_store, before + 1).await;
    gate.add_permits(1);
    assert_eq!(fill.await.unwrap().body.len(), 32 << 20);
    a_handle.flush().await;

    // No Redis script checked it: A itself kept it out of its memory.
    assert_eq!(l1_entries(&a_store).await, 0);
    gate.add_permits(1);
    assert_eq!(send(&a, common::get("/big/1")).await.cache(), "MISS");
    assert_eq!(calls.get(), 2);
}

/// `/{name}`: `{name} v{n}{app}` (`n` counting this app's origin calls), tagged `{name}`.
fn versioned_as(app: &'static str, store: TieredStore) -> (Router, CacheHandle) {
    let calls = Calls::default();
    let layer = CacheLayer::new(store);
    let handle = layer.handle();
    let app = Router::new()
        .route(
            "/{name}",
            get(
                move |axum::extract::Path(name): axum::extract::Path<String>| {
                    let n = calls.hit();
                    async move { ([("cache-tag", name.clone())], format!("{name} v{n}{app}")) }
                },
            ),
        )
        .layer(layer);
    (app, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_disconnected_l1_serves_only_if_asked_and_within_the_bound() {
    let mut server = RedisServer::start();
    let port = server.port;
    let bound = Duration::from_millis(1500);
    let plain = tiered(&server);
    let local = tiered(&server).serve_local_while_disconnected(bound);
    subscribed(&plain).await;
    subscribed(&local).await;
    // (They share Redis: each reads what the other stored.)
    let (p, p_handle) = versioned_as(" from p", plain.clone());
    let (l, l_handle) = versioned_as(" from l", local.clone());
    let got = |app: &Router, path: &str| {
        let (app, path) = (app.clone(), path.to_owned());
        async move {
            let got = send(&app, common::get(&path)).await;
            assert_eq!(got.status, 200);
            (got.cache().to_owned(), got.text())
        }
    };
    for path in ["/page", "/other"] {
        got(&p, path).await;
        p_handle.flush().await;
        assert_eq!(got(&l, path).await.0, "HIT");
        assert_eq!(got(&p, path).await.0, "HIT");
    }

    server.kill();
    let deadline = Instant::now() + Duration::from_secs(10);
    while plain.is_subscribed() || local.is_subscribed() {
        assert!(Instant::now() < deadline, "the loss was not noticed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let noticed = Instant::now();
    // By default, nothing from memory; asked to, what it holds, within the bound.
    assert_eq!(
        got(&p, "/page").await,
        ("MISS".into(), "page v3 from p".into())
    );
    assert_eq!(l1_entries(&plain).await, 0);
    assert_eq!(
        got(&l, "/page").await,
        ("HIT".into(), "page v1 from p".into())
    );
    assert_eq!(
        got(&l, "/other").await,
        ("HIT".into(), "other v2 from p".into())
    );
    // This instance's own invalidations still apply.
    l_handle.invalidate_tags(&["other"]).await;
    assert_eq!(
        got(&l, "/other").await,
        ("MISS".into(), "other v1 from l".into())
    );
    // Its fills meanwhile are served from memory (by default, not).
    assert_eq!(
        got(&l, "/new").await,
        ("MISS".into(), "new v2 from l".into())
    );
    l_handle.flush().await;
    assert_eq!(
        got(&l, "/new").await,
        ("HIT".into(), "new v2 from l".into())
    );
    assert_eq!(got(&p, "/new").await.0, "MISS");
    p_handle.flush().await;
    assert_eq!(got(&p, "/new").await.0, "MISS");

    // Past the bound, what it held from before the loss is no longer served.
    tokio::time::sleep_until((noticed + bound + Duration::from_millis(100)).into()).await;
    assert_eq!(
        got(&l, "/page").await,
        ("MISS".into(), "page v3 from l".into())
    );

    // Back: memory cleared once more (what was filled while cut off too), then used as usual.
    let _server = RedisServer::start_on(port);
    subscribed(&plain).await;
    subscribed(&local).await;
    assert_eq!(
        got(&l, "/new").await,
        ("MISS".into(), "new v4 from l".into())
    );
    // (Until Redis takes writes again: its circuit breaker may still be open.)
    for (app, handle) in [(&l, &l_handle), (&p, &p_handle)] {
        let deadline = Instant::now() + Duration::from_secs(10);
        while got(app, "/fresh").await.0 != "HIT" {
            assert!(Instant::now() < deadline, "did not recover");
            // A hit must come from the store, not from joining this fill in flight.
            handle.flush().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
