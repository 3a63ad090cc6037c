//! A write whose invalidation the store could not take (Redis paused, the circuit breaker
//! open): the writer never serves data from before the write (fresh, stale-while-revalidate
//! or stale-if-error), and the invalidation reaches the store later, so the other instances
//! stop serving it too. With a store that fails on demand, then against a real
//! `redis-server` with randomized fault timing.

mod common;

use axum::Router;
use axum::routing::get;
use common::send;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tower_response_cache::store::Entry;
use tower_response_cache::{CacheLayer, MemoryStore, PutOutcome, Store, StoreError, StoreKey};

/// A memory store whose invalidations and clears fail while `failing` is set; it answers
/// `get_now` (the synchronous lookup) only when `now` is; with `as_bytes`, it hands entries
/// back as a byte store does (encoded and decoded).
struct Flaky {
    memory: MemoryStore,
    failing: AtomicBool,
    now: bool,
    as_bytes: bool,
}

impl Store for Flaky {
    fn get_now(&self, key: StoreKey) -> Option<Result<Option<Arc<Entry>>, StoreError>> {
        self.now.then(|| self.memory.get_now(key)).flatten()
    }
    async fn get(&self, key: StoreKey) -> Result<Option<Arc<Entry>>, StoreError> {
        let found = self.memory.get(key).await?;
        if !self.as_bytes {
            return Ok(found);
        }
        let decoded = |entry: Arc<Entry>| Entry::decode(entry.encode().into()).map(Arc::new);
        Ok(found.and_then(|entry| decoded(entry).ok()))
    }
    async fn put(
        &self,
        key: StoreKey,
        entry: Arc<Entry>,
        ttl: Duration,
    ) -> Result<PutOutcome, StoreError> {
        self.memory.put(key, entry, ttl).await
    }
    async fn remove(&self, key: StoreKey) -> Result<(), StoreError> {
        self.memory.remove(key).await
    }
    async fn invalidate_tags<'a>(&'a self, tags: &'a [&'a str]) -> Result<u64, StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::new("unreachable"));
        }
        self.memory.invalidate_tags(tags).await
    }
    async fn clear(&self) -> Result<u64, StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::new("unreachable"));
        }
        self.memory.clear().await
    }
}

/// Fresh, stale-while-revalidate and stale-if-error entries, an invalidation the store fails:
/// none of them is served, whether the store answers at once (`get_now`) or is awaited. Once
/// the store works again, the invalidation is applied to it.
#[tokio::test]
async fn entries_an_invalidation_the_store_failed_covers_are_misses() {
    for now in [true, false] {
        let store = Arc::new(Flaky {
            memory: MemoryStore::with_capacity_bytes(1 << 20),
            failing: AtomicBool::new(false),
            now,
            as_bytes: false,
        });
        let layer = CacheLayer::from_shared_store(Arc::clone(&store));
        let handle = layer.handle();
        let version = Arc::new(AtomicU64::new(1));
        let origin_down = Arc::new(AtomicBool::new(false));
        let route = |cache_control: &'static str| {
            let (version, down) = (version.clone(), origin_down.clone());
            get(move || {
                let v = version.load(Ordering::SeqCst);
                let status = match down.load(Ordering::SeqCst) {
                    true => http::StatusCode::SERVICE_UNAVAILABLE,
                    false => http::StatusCode::OK,
                };
                let headers = [("cache-control", cache_control), ("cache-tag", "items")];
                async move { (status, headers, format!("v{v}")) }
            })
        };
        let app = Router::new()
            .route("/fresh", route("max-age=300"))
            .route(
                "/revalidate",
                route("max-age=1, stale-while-revalidate=600"),
            )
            .route("/if-error", route("max-age=1, stale-if-error=600"))
            .layer(layer);
        for uri in ["/fresh", "/revalidate", "/if-error"] {
            send(&app, common::get(uri)).await;
        }
        // Past their freshness: stale, and servable as such.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(send(&app, common::get("/fresh")).await.cache(), "HIT");

        store.failing.store(true, Ordering::SeqCst);
        version.store(2, Ordering::SeqCst);
        handle.invalidate_tags(&["items"]).await;
        let got = send(&app, common::get("/fresh")).await;
        assert_eq!(
            (got.cache(), got.text().as_str()),
            ("MISS", "v2"),
            "now: {now}"
        );
        let got = send(&app, common::get("/revalidate")).await;
        assert_eq!(
            (got.cache(), got.text().as_str()),
            ("MISS", "v2"),
            "now: {now}"
        );
        origin_down.store(true, Ordering::SeqCst);
        let got = send(&app, common::get("/if-error")).await;
        assert_eq!((got.status, got.text().as_str()), (503, "v2"), "now: {now}");
        origin_down.store(false, Ordering::SeqCst);

        // The store works again: the invalidation reaches it (the retry comes within 100 ms
        // of the failure, then backs off).
        store.failing.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(store.memory.invalidate_tags(&["items"]).await.unwrap(), 0);
    }
}

#[cfg(feature = "redis")]
mod redis_faults {
    use super::*;
    use common::redis_server::RedisServer;
    use std::time::Instant;
    use tower_response_cache::{CacheStats, RedisStore, TieredStore};

    const ROUNDS: u64 = 5;

    /// A Redis store that gives up quickly and opens its circuit after three faults.
    fn redis(server: &RedisServer) -> RedisStore {
        RedisStore::builder(server.url())
            .prefix("faults")
            .timeout(Duration::from_millis(100))
            .circuit_breaker(3, Duration::from_millis(500))
            .build()
            .unwrap()
    }

    fn tiered(server: &RedisServer) -> TieredStore {
        TieredStore::new(MemoryStore::with_capacity_bytes(16 << 20), redis(server)).unwrap()
    }

    /// `/item/{n}` answers the current version (fresh for five minutes), `PUT` raises it;
    /// `/other/{n}` is anything else to read.
    fn app<St: Store>(store: St, version: &Arc<AtomicU64>) -> (Router, CacheStats) {
        let (read, write) = (version.clone(), version.clone());
        let layer = CacheLayer::new(store);
        let stats = layer.stats();
        let app = Router::new()
            .route(
                "/item/{n}",
                get(move || {
                    let v = read.load(Ordering::SeqCst);
                    async move { ([("cache-control", "max-age=300")], format!("v{v}")) }
                })
                .put(move || {
                    write.fetch_add(1, Ordering::SeqCst);
                    async { "written" }
                }),
            )
            .route("/other/{n}", get(|| async { "other" }));
        (app.layer(layer), stats)
    }

    async fn text(app: &Router, uri: &str) -> String {
        send(app, common::get(uri)).await.text()
    }

    /// Rounds of: both instances hold the current version of `/item/{round}` (B also under a query
    /// A never reads); Redis pauses; A's reads time out and open its circuit; A writes at a random
    /// moment, in the pause, while the circuit is open or after (round 0: while the circuit is
    /// open, for sure). Then A must
    /// answer the new version at once and for the next 1.5 s (the circuit closes meanwhile), and
    /// B must answer it within 3 s (once the invalidation reached Redis and, for a tiered store,
    /// B's memory).
    async fn writes_during_faults(
        server: &RedisServer,
        (a, a_stats): (Router, CacheStats),
        (b, _): (Router, CacheStats),
        version: Arc<AtomicU64>,
    ) {
        let mut failed = 0;
        let mut pauser = server.raw().await;
        let mut random = common::randomizer();
        for round in 0..ROUNDS {
            let item = format!("/item/{round}");
            let (mine, theirs) = (format!("{item}?page=2"), format!("{item}?page=3"));
            let old = format!("v{}", version.load(Ordering::SeqCst));
            for (app, uri) in [(&a, &item), (&b, &mine), (&b, &theirs), (&b, &theirs)] {
                assert_eq!(text(app, uri).await, old);
            }
            assert_eq!(send(&a, common::get(&item)).await.cache(), "HIT");

            let (pause, write_at) = if round == 0 {
                (400, 450)
            } else {
                let pause = 150 + random(300);
                let write_at = match round % 3 {
                    // Redis still paused (the reads below take 100 ms).
                    0 => random(pause),
                    // The circuit open (from about 100 ms to 600 ms).
                    1 => 100 + random(500),
                    // Around its probe.
                    _ => 550 + random(250),
                };
                (pause, write_at)
            };
            let paused = Instant::now();
            let _: () = redis::cmd("CLIENT")
                .arg("PAUSE")
                .arg(pause)
                .arg("ALL")
                .query_async(&mut pauser)
                .await
                .unwrap();
            // Three reads at once that time out: A's circuit opens for 500 ms.
            let reads: Vec<_> = (0..3)
                .map(|n| {
                    let (a, uri) = (a.clone(), format!("/other/{round}-{n}"));
                    tokio::spawn(async move { text(&a, &uri).await })
                })
                .collect();
            for read in reads {
                read.await.unwrap();
            }
            let at = paused + Duration::from_millis(write_at);
            tokio::time::sleep_until(at.into()).await;
            let errors = a_stats.snapshot().store_errors;
            assert_eq!(send(&a, common::req("PUT", &item, &[])).await.status, 200);
            let invalidation_failed = a_stats.snapshot().store_errors > errors;
            assert!(
                invalidation_failed || round > 0,
                "round 0 writes while the circuit is open"
            );
            failed += usize::from(invalidation_failed);
            println!(
                "round {round}: pause {pause} ms, write at {write_at} ms, missed: {invalidation_failed}"
            );
            let written = format!("v{}", version.load(Ordering::SeqCst));

            let until = Instant::now() + Duration::from_millis(1500);
            while Instant::now() < until {
                for uri in [&item, &mine] {
                    assert_eq!(
                        text(&a, uri).await,
                        written,
                        "round {round} (pause {pause} ms, write at {write_at} ms): the writer \
                         served {uri} from before its write"
                    );
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let deadline = Instant::now() + Duration::from_secs(3);
            loop {
                let got = text(&b, &theirs).await;
                if got == written {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "round {round} (pause {pause} ms, write at {write_at} ms): the invalidation \
                     never reached the other instance, which still serves {got}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        println!("the store missed {failed} of {ROUNDS} invalidations");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_during_a_redis_fault_is_not_undone_redis_store() {
        let server = RedisServer::start();
        let version = Arc::new(AtomicU64::new(1));
        let (a, b) = (app(redis(&server), &version), app(redis(&server), &version));
        writes_during_faults(&server, a, b, version).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_during_a_redis_fault_is_not_undone_tiered_store() {
        let server = RedisServer::start();
        let (a_store, b_store) = (tiered(&server), tiered(&server));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !(a_store.is_subscribed() && b_store.is_subscribed()) {
            assert!(Instant::now() < deadline, "never subscribed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let version = Arc::new(AtomicU64::new(1));
        let (a, b) = (app(a_store, &version), app(b_store, &version));
        writes_during_faults(&server, a, b, version).await;
    }
}

/// Another instance's slow fill read the old data before the write and stored it after: the
/// writer, whose store did not take the invalidation, must not serve it. Entries read back
/// from bytes carry when their fill started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_instances_slow_fill_from_before_the_write_is_hidden_too() {
    let shared = MemoryStore::with_capacity_bytes(1 << 20);
    let data = Arc::new(std::sync::Mutex::new("v1"));
    let instance = |failing: bool, slow: bool| {
        let store = Flaky {
            memory: shared.clone(),
            failing: AtomicBool::new(failing),
            now: false,
            as_bytes: true,
        };
        let data = Arc::clone(&data);
        Router::new()
            .route(
                "/x",
                get({
                    let data = Arc::clone(&data);
                    move || async move {
                        let read = *data.lock().unwrap();
                        if slow {
                            tokio::time::sleep(Duration::from_millis(1500)).await;
                        }
                        read
                    }
                })
                .post(move || async move {
                    *data.lock().unwrap() = "v2";
                    "v2"
                }),
            )
            .layer(CacheLayer::new(store))
    };
    let (a, b) = (instance(true, false), instance(false, true));
    // B starts a slow fill: it reads v1 at once and answers 1.5 s later.
    let b_fill = tokio::spawn({
        let b = b.clone();
        async move { send(&b, common::get("/x")).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A writes; its store cannot take the invalidation.
    assert_eq!(send(&a, common::req("POST", "/x", &[])).await.text(), "v2");
    assert_eq!(b_fill.await.unwrap().text(), "v1");
    let got = send(&a, common::get("/x")).await;
    assert_eq!(
        got.text(),
        "v2",
        "the writer served data from before its write"
    );
}
