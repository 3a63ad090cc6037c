//! A store of your own: implement [`Store`] and pass it to `CacheLayer::new`.
//!
//! ```sh
//! cargo run --example custom_store
//! ```
//!
//! `LoggingStore` keeps entries in a `HashMap` behind a mutex, honours each entry's storage
//! lifetime, indexes tags, and prints every operation, so you can watch the layer use it. A real
//! store would talk to its backend here (a database, a file, a remote cache); the layer treats
//! its errors as misses and never fails a request because of them.
//!
//! The same store also works chosen at run time, as an `AnyStore` (an `Arc<dyn DynStore>`).

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::Request;
use http_body_util::BodyExt;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tower::ServiceExt;
use tower_response_cache::store::Entry;
use tower_response_cache::{
    AnyStore, CacheLayer, PutOutcome, Store, StoreError, StoreKey, StoreMetrics,
};

#[derive(Default)]
struct LoggingStore {
    inner: Mutex<Contents>,
}

#[derive(Default)]
struct Contents {
    entries: HashMap<StoreKey, (Instant, Arc<Entry>)>,
    tags: HashMap<String, HashSet<StoreKey>>,
}

impl LoggingStore {
    fn contents(&self) -> Result<std::sync::MutexGuard<'_, Contents>, StoreError> {
        self.inner
            .lock()
            .map_err(|_| StoreError::new("store mutex poisoned"))
    }
}

impl Store for LoggingStore {
    async fn get(&self, key: StoreKey) -> Result<Option<Arc<Entry>>, StoreError> {
        let mut contents = self.contents()?;
        let found = match contents.entries.get(&key) {
            Some((expires, entry)) if *expires > Instant::now() => Some(entry.clone()),
            Some(_) => {
                contents.entries.remove(&key);
                None
            }
            None => None,
        };
        println!(
            "  store: get {key} -> {}",
            if found.is_some() { "found" } else { "none" }
        );
        Ok(found)
    }

    async fn put(
        &self,
        key: StoreKey,
        entry: Arc<Entry>,
        ttl: Duration,
    ) -> Result<PutOutcome, StoreError> {
        println!("  store: put {key} for {ttl:?} ({} bytes)", entry.weight());
        let mut contents = self.contents()?;
        for tag in entry.tags() {
            contents.tags.entry(tag.to_owned()).or_default().insert(key);
        }
        contents.entries.insert(key, (Instant::now() + ttl, entry));
        // A store may also answer `Refused` (stored nothing), as the Redis store does for a
        // fill an invalidation overtook; the layer counts it apart from what was stored.
        Ok(PutOutcome::Stored)
    }

    async fn remove(&self, key: StoreKey) -> Result<(), StoreError> {
        println!("  store: remove {key}");
        self.contents()?.entries.remove(&key);
        Ok(())
    }

    async fn invalidate_tags<'a>(&'a self, tags: &'a [&'a str]) -> Result<u64, StoreError> {
        let mut contents = self.contents()?;
        let mut removed = 0;
        for tag in tags {
            for key in contents.tags.remove(*tag).unwrap_or_default() {
                removed += u64::from(contents.entries.remove(&key).is_some());
            }
        }
        println!("  store: invalidate {tags:?} -> {removed} removed");
        Ok(removed)
    }

    async fn clear(&self) -> Result<u64, StoreError> {
        let mut contents = self.contents()?;
        let now = Instant::now();
        let removed = contents.entries.values().filter(|(e, _)| *e > now).count() as u64;
        contents.entries.clear();
        contents.tags.clear();
        println!("  store: clear -> {removed} removed");
        Ok(removed)
    }

    fn metrics(&self) -> StoreMetrics {
        let contents = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let bytes = contents
            .entries
            .values()
            .map(|(_, e)| e.weight() as u64)
            .sum();
        StoreMetrics::new(contents.entries.len() as u64, bytes, 0)
    }
}

async fn fetch(app: &Router, uri: &str) {
    println!("GET {uri}");
    let response = app
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let cache = response.headers()["x-cache"].to_str().unwrap().to_owned();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    println!("  -> {cache}: {}", String::from_utf8_lossy(&body));
}

#[tokio::main]
async fn main() {
    let app = Router::new().route("/hello", get(|| async { "hello from the handler" }));

    println!("== a custom store, statically dispatched");
    let layer = CacheLayer::new(LoggingStore::default());
    let stats = layer.stats();
    let cached = app.clone().layer(layer);
    fetch(&cached, "/hello").await;
    fetch(&cached, "/hello").await;
    println!("{:?}\n", stats.snapshot());

    println!("== the same store chosen at run time, as AnyStore");
    let store = AnyStore::new(LoggingStore::default());
    let cached = app.layer(CacheLayer::new(store.clone()));
    fetch(&cached, "/hello").await;
    fetch(&cached, "/hello").await;
    let removed = store.clear().await.unwrap();
    println!("cleared {removed} entries");
    fetch(&cached, "/hello").await;
}
