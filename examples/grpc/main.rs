//! gRPC reads through the cache: a tonic server on 127.0.0.1 (HTTP/2) with `CacheLayer` in front
//! of its `shop.Catalog` service (`catalog.rs`: messages and stubs written by hand, no `protoc`),
//! and a tonic client in the same program. `GetProduct` (unary) is cached for 30 s, keyed by
//! the request message; `ListProducts` (streaming) passes through.
//!
//! ```text
//! cargo run --example grpc
//! cargo run --release --example grpc -- --measure   # a cached call's cost against the bare service
//! ```

mod catalog;

use bytes::{BufMut, Bytes, BytesMut};
use catalog::{Catalog, CatalogClient, GET_PRODUCT, GetProductRequest};
use http_body_util::BodyExt;
use prost::Message;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tower::{Layer, Service, ServiceExt};
use tower_response_cache::{CacheBody, CacheLayer, DefaultKey, MemoryStore, Policy, QueryBodies};

/// How the cache hands a call's body on to tonic: as tonic's own body type.
type TonicBody = fn(CacheBody<tonic::body::Body>) -> tonic::body::Body;

/// The cache: `GetProduct` calls are reads, keyed by their message, fresh for 30 s.
fn cache() -> CacheLayer<MemoryStore, DefaultKey, QueryBodies<TonicBody>> {
    CacheLayer::new(MemoryStore::with_capacity_bytes(64 << 20))
        .query_bodies(tonic::body::Body::new as TonicBody)
        .route(GET_PRODUCT, Policy::grpc().ttl(Duration::from_secs(30)))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().any(|a| a == "--measure") {
        measure().await;
        return Ok(());
    }
    let catalog = Catalog::default();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let server = tonic::transport::Server::builder()
        .layer(cache())
        .add_service(catalog.clone())
        .serve_with_incoming(tokio_stream_of(listener));
    tokio::spawn(server);

    let mut client = CatalogClient::connect(format!("http://{address}")).await?;
    let mut calls = 0;
    let mut statuses_on_hits = Vec::new();
    for id in std::iter::repeat_n(7, 10).chain([8]) {
        let response = client.get_product(GetProductRequest { id }).await?;
        calls += 1;
        let metadata = response.metadata();
        if metadata.get("x-cache").is_some_and(|v| v == "HIT") {
            let status = metadata
                .get("grpc-status")
                .map(|v| v.to_str().unwrap_or("?"));
            statuses_on_hits.push(status.unwrap_or("none").to_owned());
        }
        assert_eq!(response.into_inner().id, id);
    }
    statuses_on_hits.dedup();
    println!(
        "unary calls: {calls}, service executions: {}, grpc-status on hits: {}",
        catalog.executions(),
        statuses_on_hits.join(",")
    );
    Ok(())
}

/// The server's connections, as tonic takes them.
fn tokio_stream_of(
    listener: TcpListener,
) -> impl tonic::codegen::tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures_util::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| stream);
        Some((accepted, listener))
    })
}

/// One `GetProduct` call as it reaches the server: a length-prefixed message over HTTP/2.
fn call(id: u64) -> http::Request<tonic::body::Body> {
    let message = GetProductRequest { id }.encode_to_vec();
    let mut frame = BytesMut::with_capacity(5 + message.len());
    frame.put_u8(0);
    frame.put_u32(message.len() as u32);
    frame.put_slice(&message);
    let body = http_body_util::Full::new(frame.freeze());
    http::Request::post(format!("http://127.0.0.1{GET_PRODUCT}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(tonic::body::Body::new(body))
        .expect("a valid request")
}

/// Nanoseconds per call of `service`, called in process (no network) `n` times, the answer
/// read to its trailers.
async fn per_call<S, B>(service: S, n: u32) -> f64
where
    S: Service<http::Request<tonic::body::Body>, Response = http::Response<B>> + Clone,
    S::Error: std::fmt::Debug,
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let started = Instant::now();
    for _ in 0..n {
        let response = service.clone().oneshot(call(7)).await.expect("answered");
        let collected = response.into_body().collect().await.expect("read");
        assert!(
            collected
                .trailers()
                .is_some_and(|t| t["grpc-status"] == "0")
        );
    }
    started.elapsed().as_nanos() as f64 / f64::from(n)
}

/// A cached `GetProduct` against the bare tonic service, in process: best of 5 rounds each.
async fn measure() {
    let n = 50_000;
    let bare = Catalog::default();
    let cached = cache().layer(Catalog::default());
    per_call(cached.clone(), 10).await;
    let (mut best_bare, mut best_cached) = (f64::MAX, f64::MAX);
    for _ in 0..5 {
        best_bare = best_bare.min(per_call(bare.clone(), n).await);
        best_cached = best_cached.min(per_call(cached.clone(), n).await);
    }
    println!("in process, GetProduct, best of 5 rounds of {n} calls:");
    println!("  bare tonic service: {best_bare:.0} ns per call");
    println!(
        "  cached (hit):       {best_cached:.0} ns per call ({:.2}x bare)",
        best_cached / best_bare
    );
}
