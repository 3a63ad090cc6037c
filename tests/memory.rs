//! Memory: what the store weighs (`StoreMetrics::weighted_bytes`, the sum of its weigher) is
//! what its entries really cost, counted by a global allocator that tracks live heap bytes.
//!
//! Every entry here goes through the real layer (a `MemoryStore` behind `CacheLayer`, over an
//! origin made with `tower::service_fn`), with a capacity large enough that nothing is evicted,
//! so the growth of live bytes is what the entries hold: the entries themselves, moka's
//! structures for them and the store's tag index. Counts are deterministic (one thread, fixed
//! inputs), so the tolerances are tight: 5% of what an entry costs, 1% with 64 KiB bodies.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use std::alloc::{GlobalAlloc, Layout, System};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use tower::{Layer, ServiceExt};
use tower_response_cache::store::Entry;
use tower_response_cache::{
    CacheLayer, MemoryStore, PutOutcome, Store, StoreError, StoreKey, StoreMetrics,
};

/// Counts the heap this process holds, in blocks as glibc's `malloc` sizes them (an 8-byte
/// header, 16-byte steps, 32 bytes at least): what resident memory grows by.
struct Counting;

static LIVE: AtomicI64 = AtomicI64::new(0);

fn block(size: usize) -> i64 {
    ((size + 8 + 15) & !15).max(32) as i64
}

// SAFETY: forwards every call to the system allocator unchanged; it only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(block(layout.size()), Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(block(layout.size()), Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(block(layout.size()), Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(block(new_size) - block(layout.size()), Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// One measurement at a time: the counters are global.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// What one workload's entries cost, per entry.
#[derive(Debug)]
struct Measured {
    entries: u64,
    /// Growth of the live heap while the store filled.
    held: i64,
    /// What the store weighed (`weighted_bytes`).
    weighed: i64,
    /// What freeing the entries themselves gave back, once the store had let them go.
    entry_cost: i64,
    /// What [`Entry::weight`] says of them.
    entry_weight: i64,
}

/// The shape of the responses a workload stores.
#[derive(Clone, Copy)]
struct Shape {
    body: usize,
    /// Request path before the key's number.
    path: &'static str,
    /// Extra response fields.
    fields: &'static [(&'static str, &'static str)],
}

const PLAIN: Shape = Shape {
    body: 200,
    path: "/item/",
    fields: &[],
};

/// A `MemoryStore` that also keeps every entry put, to weigh and free them apart from the store.
#[derive(Clone)]
struct Keeping {
    store: MemoryStore,
    kept: Arc<Mutex<Vec<Arc<Entry>>>>,
}

impl Store for Keeping {
    async fn get(&self, key: StoreKey) -> Result<Option<Arc<Entry>>, StoreError> {
        self.store.get(key).await
    }
    fn get_now(&self, key: StoreKey) -> Option<Result<Option<Arc<Entry>>, StoreError>> {
        self.store.get_now(key)
    }
    async fn put(
        &self,
        key: StoreKey,
        entry: Arc<Entry>,
        ttl: Duration,
    ) -> Result<PutOutcome, StoreError> {
        self.kept.lock().unwrap().push(Arc::clone(&entry));
        self.store.put(key, entry, ttl).await
    }
    async fn remove(&self, key: StoreKey) -> Result<(), StoreError> {
        self.store.remove(key).await
    }
    async fn invalidate_tags<'a>(&'a self, tags: &'a [&'a str]) -> Result<u64, StoreError> {
        self.store.invalidate_tags(tags).await
    }
    async fn clear(&self) -> Result<u64, StoreError> {
        self.store.clear().await
    }
    fn metrics(&self) -> StoreMetrics {
        self.store.metrics()
    }
}

/// Sends `n` distinct keys of `shape` through the layer and measures what the store holds.
/// The caller holds [`serial`] until its assertions are done (a failing one allocates).
fn measure(n: u64, shape: Shape) -> Measured {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let store = MemoryStore::with_capacity_bytes(1 << 40);
    let keeping = Keeping {
        store: store.clone(),
        // Room for every entry (a `Vary` response is two) before counting starts.
        kept: Arc::new(Mutex::new(Vec::with_capacity(2 * n as usize + 2))),
    };
    let kept = Arc::clone(&keeping.kept);
    let origin = tower::service_fn(move |_: Request<Empty<Bytes>>| async move {
        let mut response = Response::builder()
            .header("cache-control", "max-age=600")
            .header("content-type", "application/octet-stream");
        for (name, value) in shape.fields {
            response = response.header(*name, *value);
        }
        let body = Bytes::from(vec![b'x'; shape.body]);
        Ok::<_, Infallible>(response.body(Full::new(body)).unwrap())
    });
    let service = CacheLayer::new(keeping)
        .tag_header(http::HeaderName::from_static("cache-tag"))
        .layer(origin);
    let send = |i: u64| {
        let request = Request::get(format!("{}{i}", shape.path))
            .header("host", "shop.example")
            .header("accept-language", "en")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let service = service.clone();
        async move {
            let response = service.oneshot(request).await.unwrap();
            assert_eq!(response.headers()["x-cache"], "MISS");
            response.into_body().collect().await.unwrap();
        }
    };
    // Whatever is set up once (the runtime's, the layer's, moka's lazily made parts) is set up
    // before counting.
    runtime.block_on(async {
        send(u64::MAX).await;
        store.clear().await.unwrap();
        store.run_pending_tasks().await;
        kept.lock().unwrap().clear();
    });
    let live = LIVE.load(Relaxed);
    runtime.block_on(async {
        for i in 0..n {
            send(i).await;
        }
        store.run_pending_tasks().await;
    });
    let held = LIVE.load(Relaxed) - live;
    let m = store.metrics();
    let entries = m.entries as i64;
    assert!(m.entries >= n, "nothing evicted: {m:?}");
    // The store lets its entries go; they are still kept here, then freed.
    runtime.block_on(async {
        store.clear().await.unwrap();
        store.run_pending_tasks().await;
    });
    let mut kept = kept.lock().unwrap();
    let entry_weight: usize = kept.iter().map(|e| e.weight()).sum();
    let before_freeing = LIVE.load(Relaxed);
    kept.clear();
    let entry_cost = before_freeing - LIVE.load(Relaxed);
    let measured = Measured {
        entries: m.entries,
        held: held / entries,
        weighed: m.weighted_bytes as i64 / entries,
        entry_cost: entry_cost / entries,
        entry_weight: entry_weight as i64 / entries,
    };
    eprintln!(
        "{n} requests of {}{{i}}, {} B bodies: {measured:?}",
        shape.path, shape.body
    );
    measured
}

/// The store's weight and the entries' own are each within `tolerance` bytes of what they
/// were counted to cost, per entry.
fn assert_weighed(m: &Measured, tolerance: i64) {
    assert!(
        (m.weighed - m.held).abs() <= tolerance,
        "the store weighed {} bytes an entry, holds {} ({m:?})",
        m.weighed,
        m.held,
    );
    assert!(
        (m.entry_weight - m.entry_cost).abs() <= tolerance,
        "entries weigh {} bytes, cost {} ({m:?})",
        m.entry_weight,
        m.entry_cost,
    );
}

#[test]
fn small_bodies_are_weighed_at_their_cost() {
    let _serial = serial();
    // The workload: 200-byte bodies, five internal tags each.
    let m = measure(20_000, PLAIN);
    assert_weighed(&m, m.held / 20);
}

#[test]
fn large_bodies_are_weighed_at_their_cost() {
    let _serial = serial();
    let m = measure(
        500,
        Shape {
            body: 64 << 10,
            ..PLAIN
        },
    );
    assert_weighed(&m, m.held / 100);
}

#[test]
fn fields_and_tags_are_weighed_at_their_cost() {
    let _serial = serial();
    // Custom field names, a repeated field, origin tags, a deep path (more prefix tags).
    let m = measure(
        10_000,
        Shape {
            body: 1000,
            path: "/shop/en/catalog/shoes/item/",
            fields: &[
                ("etag", "\"5f2b-8c3d\""),
                ("last-modified", "Tue, 15 Nov 1994 12:45:26 GMT"),
                ("x-request-id", "8a7d1f0e-2b3c-4d5e-9f60-718293a4b5c6"),
                ("x-served-by", "cache-fra-1"),
                ("link", "</style.css>; rel=preload"),
                ("link", "</app.js>; rel=preload"),
                ("cache-tag", "product catalog shoes"),
            ],
        },
    );
    assert_weighed(&m, m.held / 20);
}

#[test]
fn variants_are_weighed_at_their_cost() {
    let _serial = serial();
    // A response that varies is two entries: the list of fields, then the variant.
    let m = measure(
        10_000,
        Shape {
            fields: &[("vary", "accept-language")],
            ..PLAIN
        },
    );
    assert_eq!(m.entries, 20_000);
    assert_weighed(&m, m.held / 20);
}

/// What the store adds per entry (`MOKA` and `PER_TAG` in `src/store/memory.rs`), measured
/// on the structures themselves: moka configured as the store configures it, with a value the
/// size of the store's (a pointer; its `Slot` is weighed apart); and the tag index's B-tree of
/// (tag hash, key halves) -> insert id, filled as the layer fills it (per entry, two tags of
/// its own and three it shares with every other entry).
#[test]
fn moka_and_the_tag_index_cost_what_the_store_adds() {
    use moka::future::Cache;
    use std::collections::BTreeMap;
    use std::time::Instant;

    struct Ttl;
    impl moka::Expiry<u128, u64> for Ttl {
        fn expire_after_create(&self, _: &u128, _: &u64, _: Instant) -> Option<Duration> {
            Some(Duration::from_secs(600))
        }
    }

    let _serial = serial();
    const N: u64 = 20_000;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let cache: Cache<u128, u64> = Cache::builder()
        .max_capacity(1 << 40)
        .weigher(|_, _| 1000)
        .expire_after(Ttl)
        .eviction_policy(moka::policy::EvictionPolicy::tiny_lfu())
        .eviction_listener(|_, _, _| {})
        .build();
    let hash = |i: u64| xxhash_rust::xxh3::xxh3_128(&i.to_le_bytes());
    let live = LIVE.load(Relaxed);
    runtime.block_on(async {
        for i in 0..N {
            cache.insert(hash(i), i).await;
        }
        cache.run_pending_tasks().await;
    });
    let moka = (LIVE.load(Relaxed) - live) / N as i64;

    let live = LIVE.load(Relaxed);
    let mut index = BTreeMap::new();
    for i in 0..N {
        let key = hash(i);
        for tag in [i, i + N, u64::MAX, u64::MAX - 1, u64::MAX - 2] {
            let tag = xxhash_rust::xxh3::xxh3_64(&tag.to_le_bytes());
            index.insert((tag, (key >> 64) as u64, key as u64), i);
        }
    }
    let per_tag = (LIVE.load(Relaxed) - live) / (5 * N as i64);
    eprintln!("moka: {moka} bytes an entry; tag index: {per_tag} bytes a tag");
    assert!((352..=392).contains(&moka), "MOKA is 372; moka: {moka}");
    assert!(
        (47..=57).contains(&per_tag),
        "PER_TAG is 52; the index: {per_tag}"
    );
}
