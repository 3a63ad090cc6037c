//! Stores: chosen at run time (`AnyStore`), and a failing store never fails a request.

mod common;

use axum::Router;
use axum::routing::get;
use common::{Calls, send};
use std::sync::Arc;
use std::time::Duration;
use tower_response_cache::store::Entry;
use tower_response_cache::{
    AnyStore, CacheLayer, DynStore, MemoryStore, PutOutcome, Store, StoreError, StoreKey,
};

fn app(calls: &Calls, layer: CacheLayer<impl Store + ?Sized>) -> Router {
    let calls = calls.clone();
    Router::new()
        .route(
            "/x",
            get(move || {
                let n = calls.hit();
                async move { format!("call {n}") }
            }),
        )
        .layer(layer)
}

#[tokio::test]
async fn a_store_chosen_at_run_time() {
    let inner: Arc<dyn DynStore> = Arc::new(MemoryStore::with_capacity_bytes(1 << 20));
    let store = AnyStore::from(inner);
    let layer = CacheLayer::new(store.clone());
    let calls = Calls::default();
    let app = app(&calls, layer);
    send(&app, common::get("/x")).await;
    assert_eq!(send(&app, common::get("/x")).await.cache(), "HIT");
    assert_eq!(store.clear().await.unwrap(), 1);
    assert_eq!(send(&app, common::get("/x")).await.cache(), "MISS");
    assert_eq!(calls.get(), 2);
}

/// A store whose every operation fails, as a network store does when its server is down.
struct Broken;

impl Store for Broken {
    async fn get(&self, _: StoreKey) -> Result<Option<Arc<Entry>>, StoreError> {
        Err(StoreError::new("connection refused"))
    }
    async fn put(&self, _: StoreKey, _: Arc<Entry>, _: Duration) -> Result<PutOutcome, StoreError> {
        Err(StoreError::new("connection refused"))
    }
    async fn remove(&self, _: StoreKey) -> Result<(), StoreError> {
        Err(StoreError::new("connection refused"))
    }
    async fn invalidate_tags<'a>(&'a self, _: &'a [&'a str]) -> Result<u64, StoreError> {
        Err(StoreError::new("connection refused"))
    }
    async fn clear(&self) -> Result<u64, StoreError> {
        Err(StoreError::new("connection refused"))
    }
}

#[tokio::test]
async fn a_failing_store_is_a_miss_not_an_error() {
    let layer = CacheLayer::new(Broken);
    let stats = layer.stats();
    let calls = Calls::default();
    let app = app(&calls, layer);
    for i in 1..=3 {
        let got = send(&app, common::get("/x")).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.cache(), "MISS");
        assert_eq!(got.text(), format!("call {i}"));
    }
    let s = stats.snapshot();
    assert_eq!(s.store_errors, 6, "one get and one put per request: {s:?}");
    assert_eq!(s.stores, 0);
}

#[tokio::test]
async fn stats_include_store_figures() {
    let store = MemoryStore::with_capacity_bytes(1 << 20);
    let layer = CacheLayer::new(store.clone());
    let (stats, cache) = (layer.stats(), layer.handle());
    let app = app(&Calls::default(), layer);
    send(&app, common::get("/x")).await;
    cache.flush().await;
    store.run_pending_tasks().await;
    let s = stats.snapshot();
    assert_eq!(s.entries, 1);
    assert!(s.weighted_bytes > 0);
}

/// A store where every key collides: it keeps one entry and returns it for any key.
#[derive(Default)]
struct OneSlot(std::sync::Mutex<Option<Arc<Entry>>>);

impl Store for OneSlot {
    async fn get(&self, _: StoreKey) -> Result<Option<Arc<Entry>>, StoreError> {
        Ok(self.0.lock().unwrap().clone())
    }
    async fn put(
        &self,
        _: StoreKey,
        entry: Arc<Entry>,
        _: Duration,
    ) -> Result<PutOutcome, StoreError> {
        *self.0.lock().unwrap() = Some(entry);
        Ok(PutOutcome::Stored)
    }
    async fn remove(&self, _: StoreKey) -> Result<(), StoreError> {
        *self.0.lock().unwrap() = None;
        Ok(())
    }
    async fn invalidate_tags<'a>(&'a self, _: &'a [&'a str]) -> Result<u64, StoreError> {
        Ok(0)
    }
    async fn clear(&self) -> Result<u64, StoreError> {
        Ok(u64::from(self.0.lock().unwrap().take().is_some()))
    }
}

#[tokio::test]
async fn a_colliding_key_is_a_miss_never_another_urls_response() {
    let calls = Calls::default();
    let c = calls.clone();
    let app = Router::new()
        .route(
            "/{name}",
            get(
                move |axum::extract::Path(name): axum::extract::Path<String>| {
                    c.hit();
                    async move { format!("page {name}") }
                },
            ),
        )
        .layer(CacheLayer::new(OneSlot::default()));
    send(&app, common::get("/alice")).await;
    // The store hands back /alice's entry for /bob's key: the full key check refuses it.
    let bob = send(&app, common::get("/bob")).await;
    assert_eq!((bob.cache(), bob.text().as_str()), ("MISS", "page bob"));
    let bob = send(&app, common::get("/bob")).await;
    assert_eq!((bob.cache(), bob.text().as_str()), ("HIT", "page bob"));
    let alice = send(&app, common::get("/alice")).await;
    assert_eq!(
        (alice.cache(), alice.text().as_str()),
        ("MISS", "page alice")
    );
    assert_eq!(calls.get(), 3);
}

#[tokio::test]
async fn a_service_over_a_run_time_store_can_be_spawned() {
    use tower::{Layer, ServiceExt, service_fn};
    let store = AnyStore::new(MemoryStore::with_capacity_bytes(1 << 20));
    type Empty = http_body_util::Empty<bytes::Bytes>;
    let svc = CacheLayer::new(store).layer(service_fn(|_r: http::Request<Empty>| async {
        Ok::<_, std::io::Error>(http::Response::new(http_body_util::Full::new(
            bytes::Bytes::from_static(b"x"),
        )))
    }));
    let spawned = tokio::spawn(async move {
        let first = svc
            .clone()
            .oneshot(http::Request::new(Empty::new()))
            .await
            .unwrap();
        let second = svc.oneshot(http::Request::new(Empty::new())).await.unwrap();
        (
            first.headers()["x-cache"].clone(),
            second.headers()["x-cache"].clone(),
        )
    });
    let (first, second) = spawned.await.unwrap();
    assert_eq!(
        (first.to_str().unwrap(), second.to_str().unwrap()),
        ("MISS", "HIT")
    );
}
