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
    let layer = CacheLayer::new(MemoryStore::with_capacity_bytes(1 << 20)).policy(policy);
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

pub fn get(headers: &[(&str, &str)]) -> Request<Body> {
    let mut request = Request::get("http://example.com/doc");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(Body::empty()).unwrap()
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
