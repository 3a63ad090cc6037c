//! The hit path against its floor: the same service with no layer, answering a constant body.
//!
//! Groups (each for 1 KiB and 64 KiB bodies):
//! - `service_fn`: a bare tower `service_fn` returning a constant `Bytes` (the strictest floor:
//!   the layer's whole cost shows), and the same wrapped in `CacheLayer`, warmed (every call a
//!   hit).
//! - `axum`: an axum `Router` whose handler returns a constant `Bytes`, without and with the
//!   layer: what an application sees.
//! - `10k_keys`: 10,000 distinct warmed URLs, visited in turn (hits spread over the store).
//! - `http`: the axum app served by hyper on 127.0.0.1, one keep-alive connection, requests in
//!   sequence: what a client of the service sees.
//! - `kinds`: an axum handler answering 1 KiB with an `ETag` and `Vary: accept-encoding`: the
//!   bare handler, then through the layer a `GET` hit, a `HEAD` hit, a conditional `GET`
//!   answered `304`, a hit on a `Vary` variant, and a miss (a new URI each time: the origin
//!   called and its response stored).
//!
//! Run: `cargo bench --bench hit_path`. Ratios hit/bare are printed at the end (from the latest
//! estimate of each benchmark, so run all groups together to compare within one run).

#[path = "support/estimates.rs"]
mod estimates;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, criterion_group};
use http::{Request, Response};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use std::convert::Infallible;
use std::time::Duration;
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_response_cache::{CacheLayer, MemoryStore};

const SIZES: [(usize, &str); 2] = [(1024, "1KiB"), (64 * 1024, "64KiB")];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn cache() -> CacheLayer<MemoryStore> {
    CacheLayer::new(MemoryStore::with_capacity_bytes(256 << 20)).ttl(Duration::from_secs(3600))
}

/// One request through (a clone of) `svc`, body read to the end.
async fn roundtrip<S, B>(mut svc: S, uri: &'static str)
where
    S: Service<Request<axum::body::Body>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: Body,
    B::Error: std::fmt::Debug,
{
    let request = Request::get(uri)
        .header("host", "bench.example")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = svc.ready().await.unwrap().call(request).await.unwrap();
    let mut body = std::pin::pin!(response.into_body());
    while let Some(frame) = body.frame().await {
        std::hint::black_box(frame.unwrap());
    }
}

fn bench_service_fn(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("service_fn");
    for (size, label) in SIZES {
        let payload = Bytes::from(vec![b'x'; size]);
        let bare = service_fn(move |_req: Request<axum::body::Body>| {
            let body = payload.clone();
            async move {
                Ok::<_, Infallible>(
                    Response::builder()
                        .header("content-type", "application/octet-stream")
                        .body(Full::new(body))
                        .unwrap(),
                )
            }
        });
        let cached = cache().layer(bare.clone());
        rt.block_on(roundtrip(cached.clone(), "/item"));
        group.bench_function(BenchmarkId::new("bare", label), |b| {
            b.to_async(&rt).iter(|| roundtrip(bare.clone(), "/item"))
        });
        group.bench_function(BenchmarkId::new("hit", label), |b| {
            b.to_async(&rt).iter(|| roundtrip(cached.clone(), "/item"))
        });
    }
    group.finish();
}

fn axum_app(payload: Bytes) -> Router {
    Router::new().route(
        "/items/{id}",
        get(move || {
            let body = payload.clone();
            async move { ([("content-type", "application/octet-stream")], body) }
        }),
    )
}

fn bench_axum(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("axum");
    for (size, label) in SIZES {
        let payload = Bytes::from(vec![b'x'; size]);
        let bare = axum_app(payload.clone());
        let cached = axum_app(payload).layer(cache());
        rt.block_on(roundtrip(cached.clone(), "/items/1"));
        group.bench_function(BenchmarkId::new("bare", label), |b| {
            b.to_async(&rt).iter(|| roundtrip(bare.clone(), "/items/1"))
        });
        group.bench_function(BenchmarkId::new("hit", label), |b| {
            b.to_async(&rt)
                .iter(|| roundtrip(cached.clone(), "/items/1"))
        });
    }
    group.finish();
}

fn bench_10k_keys(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("10k_keys");
    let uris: Vec<&'static str> = (0..10_000)
        .map(|i| &*Box::leak(format!("/items/{i}").into_boxed_str()))
        .collect();
    let payload = Bytes::from(vec![b'x'; 1024]);
    let bare = axum_app(payload.clone());
    let cached = axum_app(payload).layer(cache());
    rt.block_on(async {
        for uri in &uris {
            roundtrip(cached.clone(), uri).await;
        }
    });
    let mut i = 0usize;
    group.bench_function("bare", |b| {
        b.to_async(&rt).iter(|| {
            i = (i + 1) % uris.len();
            roundtrip(bare.clone(), uris[i])
        })
    });
    let mut i = 0usize;
    group.bench_function("hit", |b| {
        b.to_async(&rt).iter(|| {
            i = (i + 1) % uris.len();
            roundtrip(cached.clone(), uris[i])
        })
    });
    group.finish();
}

fn bench_http(c: &mut Criterion) {
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let rt = runtime();
    let mut group = c.benchmark_group("http");
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    for (size, label) in SIZES {
        let payload = Bytes::from(vec![b'x'; size]);
        for (name, app) in [
            ("bare", axum_app(payload.clone())),
            ("hit", axum_app(payload.clone()).layer(cache())),
        ] {
            let addr = rt.block_on(async {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
                addr
            });
            let url: http::Uri = format!("http://{addr}/items/1").parse().unwrap();
            let get = || {
                let client = client.clone();
                let url = url.clone();
                async move {
                    let response = client.get(url).await.unwrap();
                    std::hint::black_box(response.into_body().collect().await.unwrap());
                }
            };
            rt.block_on(get());
            group.bench_function(BenchmarkId::new(name, label), |b| b.to_async(&rt).iter(get));
        }
    }
    group.finish();
}

fn varying_app(payload: Bytes) -> Router {
    Router::new().route(
        "/items/{id}",
        get(move || {
            let body = payload.clone();
            async move {
                (
                    [
                        ("content-type", "application/octet-stream"),
                        ("etag", "\"v1\""),
                        ("vary", "accept-encoding"),
                    ],
                    body,
                )
            }
        }),
    )
}

/// One request of `method` with `headers` through (a clone of) `svc`, body read to the end.
async fn roundtrip_with<S, B>(mut svc: S, method: &str, uri: &str, headers: &[(&str, &str)])
where
    S: Service<Request<axum::body::Body>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: Body,
    B::Error: std::fmt::Debug,
{
    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in [("host", "bench.example")].iter().chain(headers) {
        request = request.header(*name, *value);
    }
    let request = request.body(axum::body::Body::empty()).unwrap();
    let response = svc.ready().await.unwrap().call(request).await.unwrap();
    let mut body = std::pin::pin!(response.into_body());
    while let Some(frame) = body.frame().await {
        std::hint::black_box(frame.unwrap());
    }
}

fn bench_kinds(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("kinds");
    let payload = Bytes::from(vec![b'x'; 1024]);
    let bare = varying_app(payload.clone());
    let cached = varying_app(payload.clone()).layer(cache());
    let gzip = [("accept-encoding", "gzip")];
    rt.block_on(async {
        roundtrip_with(cached.clone(), "GET", "/items/1", &[]).await;
        roundtrip_with(cached.clone(), "GET", "/items/1", &gzip).await;
    });
    group.bench_function("bare", |b| {
        b.to_async(&rt)
            .iter(|| roundtrip_with(bare.clone(), "GET", "/items/1", &[]))
    });
    group.bench_function("hit", |b| {
        b.to_async(&rt)
            .iter(|| roundtrip_with(cached.clone(), "GET", "/items/1", &[]))
    });
    group.bench_function("head", |b| {
        b.to_async(&rt)
            .iter(|| roundtrip_with(cached.clone(), "HEAD", "/items/1", &[]))
    });
    let matching = [("if-none-match", "\"v1\"")];
    group.bench_function("not_modified", |b| {
        b.to_async(&rt)
            .iter(|| roundtrip_with(cached.clone(), "GET", "/items/1", &matching))
    });
    group.bench_function("vary", |b| {
        b.to_async(&rt)
            .iter(|| roundtrip_with(cached.clone(), "GET", "/items/1", &gzip))
    });
    // A miss and its store, each on a URI never seen: a bounded store, so old ones are evicted.
    let filling = varying_app(payload).layer(
        CacheLayer::new(MemoryStore::with_capacity_bytes(64 << 20)).ttl(Duration::from_secs(3600)),
    );
    let mut n = 0u64;
    group.bench_function("miss", |b| {
        b.to_async(&rt).iter(|| {
            n += 1;
            let uri = format!("/items/{n}");
            let filling = filling.clone();
            async move { roundtrip_with(filling, "GET", &uri, &[]).await }
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50);
    targets = bench_service_fn, bench_axum, bench_10k_keys, bench_http, bench_kinds
}
/// Prints hit/bare for every pair measured in this run, from criterion's saved estimates.
fn print_ratios() {
    let mean = |group: &str, name: &str, label: Option<&str>| match label {
        Some(label) => estimates::mean_ns(&format!("{group}/{name}/{label}")),
        None => estimates::mean_ns(&format!("{group}/{name}")),
    };
    println!("\nhit / bare (mean time per request, latest saved estimate of each):");
    let pairs: Vec<(&str, Option<&str>)> = vec![
        ("service_fn", Some("1KiB")),
        ("service_fn", Some("64KiB")),
        ("axum", Some("1KiB")),
        ("axum", Some("64KiB")),
        ("10k_keys", None),
        ("http", Some("1KiB")),
        ("http", Some("64KiB")),
    ];
    let kinds = ["hit", "head", "not_modified", "vary", "miss"];
    for (group, label) in pairs {
        if let (Some(bare), Some(hit)) = (mean(group, "bare", label), mean(group, "hit", label)) {
            println!(
                "  {:<18} bare {:>10.0} ns   hit {:>10.0} ns   ratio {:.2}x",
                format!("{group}/{}", label.unwrap_or("1KiB")),
                bare,
                hit,
                hit / bare
            );
        }
    }
    if let Some(bare) = mean("kinds", "bare", None) {
        for kind in kinds {
            if let Some(time) = mean("kinds", kind, None) {
                println!(
                    "  {:<18} bare {:>10.0} ns   {kind:<4} {:>10.0} ns   ratio {:.2}x",
                    format!("kinds/{kind}"),
                    bare,
                    time,
                    time / bare
                );
            }
        }
    }
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    print_ratios();
}
