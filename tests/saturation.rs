//! Absurd durations and counts saturate: from headers, overrides, policies and stored values,
//! none of them makes a request panic. Every test here panicked before its fix.

mod common;

use bytes::Bytes;
use common::read;
use http::{Request, Response};
use http_body_util::Full;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tower::{Layer, ServiceExt, service_fn};
use tower_response_cache::store::Entry;
use tower_response_cache::{
    CacheLayer, CacheOverride, MemoryStore, Policy, PutOutcome, Store, StoreError, StoreKey,
};

type Body = Full<Bytes>;

/// An origin answering every request with 200, `headers`, and the optional `extension`.
fn origin(
    headers: &'static [(&'static str, &'static str)],
    extension: Option<CacheOverride>,
) -> impl tower::Service<
    Request<Body>,
    Response = Response<Body>,
    Error = Infallible,
    Future = impl Send,
> + Clone
+ Send {
    service_fn(move |request: Request<Body>| async move {
        let mut response = Response::new(Body::from(format!(
            "{} {}",
            request.method(),
            request.uri()
        )));
        for (k, v) in headers {
            response.headers_mut().append(*k, v.parse().unwrap());
        }
        if let Some(e) = extension {
            response.extensions_mut().insert(e);
        }
        Ok::<_, Infallible>(response)
    })
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::default()).unwrap()
}

/// Sends two GETs for `uri` through `layer` over `origin`; returns their `X-Cache` values.
async fn twice<St: Store>(
    layer: &CacheLayer<St>,
    origin: impl tower::Service<
        Request<Body>,
        Response = Response<Body>,
        Error = Infallible,
        Future = impl Send + 'static,
    > + Clone
    + Send
    + 'static,
    uri: &str,
) -> (String, String) {
    let service = layer.layer(origin);
    let mut seen = Vec::new();
    for _ in 0..2 {
        let response = service.clone().oneshot(get(uri)).await.unwrap();
        seen.push(read(response).await.cache().to_owned());
    }
    (seen[0].clone(), seen[1].clone())
}

fn memory() -> MemoryStore {
    MemoryStore::with_capacity_bytes(1 << 20)
}

#[tokio::test]
async fn override_header_ttl_u64_max_with_a_stale_window() {
    let layer = CacheLayer::new(memory())
        .policy(Policy::new().stale_while_revalidate(Duration::from_secs(30)));
    let origin = origin(&[("x-cache-override", "ttl=18446744073709551615")], None);
    assert_eq!(
        twice(&layer, origin, "/x").await,
        ("MISS".into(), "HIT".into())
    );
}

#[tokio::test]
async fn override_extension_duration_max_with_a_stale_window() {
    let layer =
        CacheLayer::new(memory()).policy(Policy::new().stale_if_error(Duration::from_secs(30)));
    let origin = origin(&[], Some(CacheOverride::ttl(Duration::MAX)));
    assert_eq!(
        twice(&layer, origin, "/x").await,
        ("MISS".into(), "HIT".into())
    );
}

#[tokio::test]
async fn policy_ttl_duration_max_with_stale_windows() {
    let layer = CacheLayer::new(memory()).policy(
        Policy::new()
            .ttl(Duration::MAX)
            .stale_while_revalidate(Duration::MAX)
            .stale_if_error(Duration::MAX),
    );
    assert_eq!(
        twice(&layer, origin(&[], None), "/x").await,
        ("MISS".into(), "HIT".into())
    );
}

#[tokio::test]
async fn layer_ttl_duration_max_with_a_stale_window() {
    // `CacheLayer::ttl` sets the default policy's ttl without going through `Policy::ttl`.
    let layer = CacheLayer::new(memory())
        .policy(Policy::new().stale_if_error(Duration::from_secs(1)))
        .ttl(Duration::MAX);
    assert_eq!(
        twice(&layer, origin(&[], None), "/x").await,
        ("MISS".into(), "HIT".into())
    );
}

#[tokio::test]
async fn policy_ttl_duration_max_with_jitter() {
    // The jitter multiplies the ttl by up to 1.5: `Duration::mul_f64` panicked past its range.
    let layer = CacheLayer::new(memory()).policy(Policy::new().ttl(Duration::MAX).ttl_jitter(0.5));
    for i in 0..32 {
        let uri = format!("/x{i}");
        assert_eq!(
            twice(&layer, origin(&[], None), &uri).await,
            ("MISS".into(), "HIT".into()),
            "{uri}"
        );
    }
}

#[tokio::test]
async fn negative_ttl_duration_max_with_a_stale_window() {
    let origin = service_fn(|_: Request<Body>| async {
        let mut response = Response::new(Body::from("gone"));
        *response.status_mut() = http::StatusCode::NOT_FOUND;
        Ok::<_, Infallible>(response)
    });
    let layer = CacheLayer::new(memory()).policy(
        Policy::new()
            .negative_ttl(Duration::MAX)
            .stale_while_revalidate(Duration::from_secs(1)),
    );
    assert_eq!(
        twice(&layer, origin, "/missing").await,
        ("MISS".into(), "HIT".into())
    );
}

#[tokio::test]
async fn absurd_layer_and_store_sizes() {
    // `Semaphore::new` panics past `Semaphore::MAX_PERMITS`.
    let layer = CacheLayer::new(MemoryStore::with_capacity_bytes(u64::MAX))
        .max_background_refreshes(usize::MAX)
        .max_body_bytes(usize::MAX)
        .policy(
            Policy::new()
                .max_key_bytes(usize::MAX)
                .max_body_bytes(usize::MAX),
        );
    assert_eq!(
        twice(&layer, origin(&[], None), "/x").await,
        ("MISS".into(), "HIT".into())
    );
}

/// A memory store that, like a Redis store with cluster-wide coalescing, says once that another
/// instance is filling the key.
#[derive(Clone)]
struct BusyOnce {
    memory: Arc<MemoryStore>,
    refused: Arc<AtomicBool>,
}

impl Store for BusyOnce {
    async fn get(&self, key: StoreKey) -> Result<Option<Arc<Entry>>, StoreError> {
        self.memory.get(key).await
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
        self.memory.invalidate_tags(tags).await
    }
    async fn clear(&self) -> Result<u64, StoreError> {
        self.memory.clear().await
    }
    async fn claim_fill(&self, _: StoreKey, _: Duration) -> bool {
        self.refused.swap(true, Ordering::SeqCst)
    }
}

#[tokio::test]
async fn max_coalesce_wait_duration_max_with_a_store_that_says_wait() {
    let store = BusyOnce {
        memory: Arc::new(memory()),
        refused: Arc::default(),
    };
    let layer = CacheLayer::new(store).policy(Policy::new().max_coalesce_wait(Duration::MAX));
    let answer = tokio::time::timeout(
        Duration::from_secs(10),
        twice(&layer, origin(&[], None), "/x"),
    )
    .await
    .expect("no hang");
    assert_eq!(answer, ("MISS".into(), "HIT".into()));
}

#[tokio::test]
async fn a_write_in_authority_form_with_a_relative_location() {
    // CONNECT's authority-form target has an empty path; a relative `Location` on its answer
    // was resolved against it by slicing `path[..=0]`.
    let layer = CacheLayer::new(memory());
    let service = layer.layer(origin(&[("location", "login")], None));
    let request = Request::connect("shop.example:443")
        .body(Body::default())
        .unwrap();
    let response = service.oneshot(request).await.unwrap();
    assert_eq!(read(response).await.cache(), "BYPASS");
}

/// A valid encoding's first 4 bytes (magic and version), then a response entry whose header
/// section declares `names.len()` fields, each a name from `names` with an empty value.
fn crafted_entry(names: impl ExactSizeIterator<Item = String>) -> Vec<u8> {
    let mut out = b"TRC\x03\x00".to_vec(); // magic, version 3, kind: response
    out.extend_from_slice(&[0; 56]); // seven u64 times
    out.extend_from_slice(&1u32.to_be_bytes()); // key "k"
    out.push(b'k');
    out.extend_from_slice(&0u16.to_be_bytes()); // no tags
    out.extend_from_slice(&200u16.to_be_bytes());
    out.extend_from_slice(&(names.len() as u32).to_be_bytes());
    for name in names {
        out.extend_from_slice(&(name.len() as u32).to_be_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&0u32.to_be_bytes());
    }
    out.extend_from_slice(&0u32.to_be_bytes()); // empty body
    out.push(0); // no trailers
    out
}

#[test]
fn decoding_25000_header_fields_is_an_error_or_an_entry() {
    // `HeaderMap::with_capacity(25_000)` panicked: past 24,576 it exceeds the map's size.
    let same = crafted_entry((0..25_000).map(|_| "x-a".to_owned()));
    let entry = Entry::decode(Bytes::from(same)).expect("many values of one field fit");
    assert_eq!(entry.status(), Some(http::StatusCode::OK));
    // Distinct names beyond the map's limit: `HeaderMap::append` panicked.
    let distinct = crafted_entry((0..25_000).map(|i| format!("x-{i}")));
    assert!(Entry::decode(Bytes::from(distinct)).is_err());
}

#[cfg(feature = "redis")]
mod redis {
    use super::*;
    use crate::common::redis_server::RedisServer;
    use tower_response_cache::RedisStore;

    #[tokio::test]
    async fn a_crafted_value_in_redis_is_a_miss() {
        // Without an HMAC secret, anyone who can write to Redis chooses the bytes we decode.
        let server = RedisServer::start();
        let store = RedisStore::builder(server.url())
            .prefix("test")
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let layer = CacheLayer::new(store.clone());
        let handle = layer.handle();
        let service = layer.layer(origin(&[], None));
        let first = read(service.clone().oneshot(get("/x")).await.unwrap()).await;
        assert_eq!(first.cache(), "MISS");
        // The write runs behind the response.
        handle.flush().await;
        let mut raw = server.raw().await;
        let keys: Vec<String> = ::redis::cmd("KEYS")
            .arg("test:v4:e:*")
            .query_async(&mut raw)
            .await
            .unwrap();
        assert_eq!(keys.len(), 1);
        let crafted = crafted_entry((0..25_000).map(|i| format!("x-{i}")));
        let () = ::redis::cmd("SET")
            .arg(&keys[0])
            .arg(crafted)
            .query_async(&mut raw)
            .await
            .unwrap();
        let second = read(service.oneshot(get("/x")).await.unwrap()).await;
        assert_eq!((second.status, second.cache()), (200, "MISS"));
        assert_eq!(store.faults().undecodable, 1);
    }

    #[tokio::test]
    async fn a_redis_store_with_absurd_durations() {
        // A ttl of u64::MAX seconds was sent as `PX 9223372036854775807`, which Redis refuses:
        // nothing was stored, and every refusal counted towards opening the circuit breaker.
        let server = RedisServer::start();
        let store = RedisStore::builder(server.url())
            .timeout(Duration::MAX)
            .cluster_coalescing(true)
            .build()
            .unwrap();
        let layer = CacheLayer::new(store.clone()).policy(
            Policy::new()
                .hit_for_pass(Duration::MAX)
                .max_coalesce_wait(Duration::MAX),
        );
        let origin = origin(&[("x-cache-override", "ttl=18446744073709551615")], None);
        assert_eq!(
            twice(&layer, origin, "/x").await,
            ("MISS".into(), "HIT".into())
        );
        assert_eq!(store.faults().faults, 0);
    }

    #[tokio::test]
    async fn a_circuit_breaker_open_for_duration_max() {
        // Nothing listens on port 1: every operation fails and opens the circuit, whose end
        // was computed as `now_ms + open_for_ms` (an overflow).
        let store = RedisStore::builder("redis://127.0.0.1:1/")
            .timeout(Duration::from_millis(500))
            .circuit_breaker(1, Duration::MAX)
            .invalidation_clock_margin(Duration::MAX)
            .build()
            .unwrap();
        let service = CacheLayer::new(store.clone()).layer(origin(&[], None));
        for _ in 0..2 {
            let got = read(service.clone().oneshot(get("/x")).await.unwrap()).await;
            assert_eq!((got.status, got.cache()), (200, "MISS"));
        }
        assert!(store.faults().circuit_open);
    }
}
