//! SCRATCH (not to be committed): two concurrent puts of one key into a MemoryStore, then an
//! invalidation of their tag.
mod common;

use axum::Router;
use axum::routing::get;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower_response_cache::{
    CacheLayer, Entry, MemoryStore, PutOutcome, Store, StoreError, StoreKey,
};

#[derive(Clone)]
struct Rec {
    inner: MemoryStore,
    last: Arc<Mutex<Option<Arc<Entry>>>>,
}

impl Store for Rec {
    async fn get(&self, key: StoreKey) -> Result<Option<Arc<Entry>>, StoreError> {
        self.inner.get(key).await
    }
    async fn put(
        &self,
        key: StoreKey,
        entry: Arc<Entry>,
        ttl: Duration,
    ) -> Result<PutOutcome, StoreError> {
        *self.last.lock().unwrap() = Some(entry.clone());
        self.inner.put(key, entry, ttl).await
    }
    async fn remove(&self, key: StoreKey) -> Result<(), StoreError> {
        self.inner.remove(key).await
    }
    async fn invalidate_tags<'a>(&'a self, tags: &'a [&'a str]) -> Result<u64, StoreError> {
        self.inner.invalidate_tags(tags).await
    }
    async fn clear(&self) -> Result<u64, StoreError> {
        self.inner.clear().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_puts_of_one_key_then_invalidate() {
    let rec = Rec {
        inner: MemoryStore::with_capacity_bytes(1 << 20),
        last: Arc::default(),
    };
    let layer = CacheLayer::new(rec.clone());
    let handle = layer.handle();
    let app = Router::new().route("/x", get(|| async { "x" })).layer(layer);
    common::send(&app, common::get("/x")).await;
    handle.flush().await;
    let entry: Entry = (*rec.last.lock().unwrap().clone().unwrap()).clone();

    let mut stale = 0;
    const N: usize = 5000;
    for _ in 0..N {
        let store = MemoryStore::with_capacity_bytes(1 << 20);
        let key = StoreKey::of(b"k");
        let puts: Vec<_> = (0..2)
            .map(|_| {
                let (store, e) = (store.clone(), Arc::new(entry.clone().with_tags(["t"])));
                tokio::spawn(async move { store.put(key, e, Duration::from_secs(60)).await })
            })
            .collect();
        for put in puts {
            put.await.unwrap().unwrap();
        }
        store.run_pending_tasks().await;
        store.invalidate_tags(&["t"]).await.unwrap();
        if store.get(key).await.unwrap().is_some() {
            stale += 1;
        }
    }
    assert_eq!(stale, 0, "{stale} of {N}: the entry outlived the invalidation of its tag");
}
