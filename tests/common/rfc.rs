//! Helpers of the HTTP-semantics tests (`tests/rfc_*.rs`): the layer over a scripted origin
//! (`validating.rs`), requests, and reading `Cache-Status`.

use axum::body::Body;
use http::Request;
use std::time::{Duration, SystemTime};
use tower::{Layer, ServiceExt};
use tower_response_cache::{CacheLayer, MemoryStore, Policy};

use super::read;
use super::validating::Validating;

pub type Cached = tower_response_cache::CacheService<
    tower::util::BoxCloneSyncService<
        Request<Body>,
        http::Response<Body>,
        super::validating::BoxError,
    >,
    MemoryStore,
>;

/// The layer over `origin`, its handle (to flush writes) and its stats.
pub struct Setup {
    pub service: Cached,
    pub handle: tower_response_cache::CacheHandle,
    pub stats: tower_response_cache::CacheStats,
}

pub fn cache(origin: &Validating, policy: Policy) -> (Cached, Setup) {
    cache_with(origin, layer(policy))
}

/// A layer over a 1 MiB memory store with `policy`.
pub fn layer(policy: Policy) -> CacheLayer<MemoryStore> {
    CacheLayer::new(MemoryStore::with_capacity_bytes(1 << 20)).policy(policy)
}

/// `layer` (configured by the test) over `origin`.
pub fn cache_with(origin: &Validating, layer: CacheLayer<MemoryStore>) -> (Cached, Setup) {
    let setup = Setup {
        handle: layer.handle(),
        stats: layer.stats(),
        service: layer.layer(origin.service()),
    };
    (setup.service.clone(), setup)
}

impl Setup {
    pub async fn flush(&self) {
        self.handle.flush().await;
    }
}

/// A request for `http://example.com/doc`.
pub fn request(method: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut request = Request::builder()
        .method(method)
        .uri("http://example.com/doc");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(Body::empty()).unwrap()
}

pub fn get(headers: &[(&str, &str)]) -> Request<Body> {
    request("GET", headers)
}

pub fn head(headers: &[(&str, &str)]) -> Request<Body> {
    request("HEAD", headers)
}

pub async fn send(service: &Cached, request: Request<Body>) -> super::Got {
    read(service.clone().oneshot(request).await.unwrap()).await
}

pub fn status_of(got: &super::Got) -> String {
    got.headers
        .get_all("cache-status")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Response fields for the scripted origin.
pub fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// An HTTP-date `secs` seconds from now (negative: in the past).
pub fn date_in(secs: i64) -> String {
    let now = SystemTime::now();
    let at = if secs >= 0 {
        now + Duration::from_secs(secs.unsigned_abs())
    } else {
        now - Duration::from_secs(secs.unsigned_abs())
    };
    httpdate::fmt_http_date(at)
}

/// The `ttl` parameter of a `Cache-Status` value.
pub fn ttl_of(got: &super::Got) -> Option<i64> {
    let status = status_of(got);
    status
        .split(';')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("ttl="))
        .map(|v| v.parse().unwrap())
}

/// An origin answering `200` with these fields (and the default `ETag`, unless `etag`).
pub fn origin_with(pairs: &[(&str, &str)], etag: bool) -> Validating {
    let headers = fields(pairs);
    Validating::new(|s| {
        s.headers = headers;
        if !etag {
            s.etag = None;
        }
    })
}

/// Sends the same GET twice (flushing the store between them) and returns both answers.
pub async fn twice(service: &Cached, setup: &Setup) -> (super::Got, super::Got) {
    let first = send(service, get(&[])).await;
    setup.flush().await;
    let second = send(service, get(&[])).await;
    (first, second)
}
