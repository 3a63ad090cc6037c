//! What observability costs on the hit path: the same warmed cache in front of a constant
//! `service_fn` (1 KiB), measured in one run
//! - `no_recorder`: the `metrics` feature compiled in, no recorder installed (its handles are
//!   no-ops), no tracing subscriber;
//! - `prometheus`: a Prometheus recorder (metrics-exporter-prometheus) installed before the
//!   cache's first request, so every hit increments a real counter;
//! - `prometheus_tracing_info`: the same, with a `tracing` fmt subscriber at `INFO` (the
//!   request span is `DEBUG`: quiet), as a typical service runs.
//!
//! The ratios to `no_recorder` are printed at the end. (Against a build without the feature,
//! compare `cargo bench --bench hit_path` with and without `--features metrics`.)
//!
//! Run: `cargo bench --features metrics --bench metrics_overhead`.

#[path = "support/estimates.rs"]
mod estimates;

use bytes::Bytes;
use criterion::{Criterion, criterion_group};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use std::convert::Infallible;
use std::time::Duration;
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_response_cache::{CacheLayer, MemoryStore};

const GROUP: &str = "metrics_overhead";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A warmed cache in front of a constant 1 KiB body; built (and its first request made) now,
/// so its metric handles bind to whichever recorder is installed now.
fn warmed(
    rt: &tokio::runtime::Runtime,
) -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<impl http_body::Body<Error = impl std::fmt::Debug>>,
    Error = Infallible,
> + Clone {
    let payload = Bytes::from(vec![b'x'; 1024]);
    let origin = service_fn(move |_: Request<Full<Bytes>>| {
        let body = payload.clone();
        async move {
            Ok::<_, Infallible>(
                Response::builder()
                    .header("cache-control", "max-age=3600")
                    .body(Full::new(body))
                    .unwrap(),
            )
        }
    });
    let cached = CacheLayer::new(MemoryStore::with_capacity_bytes(64 << 20))
        .route("/items/{id}", tower_response_cache::Policy::new())
        .layer(origin);
    rt.block_on(hit(cached.clone()));
    rt.block_on(hit(cached.clone()));
    cached
}

async fn hit<S, B>(mut svc: S)
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>, Error = Infallible>,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let request = Request::get("/items/1")
        .header("host", "bench.example")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = svc.ready().await.unwrap().call(request).await.unwrap();
    let mut body = std::pin::pin!(response.into_body());
    while let Some(frame) = body.frame().await {
        std::hint::black_box(frame.unwrap());
    }
}

fn bench(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group(GROUP);

    let plain = warmed(&rt);
    group.bench_function("no_recorder", |b| {
        b.to_async(&rt).iter(|| hit(plain.clone()))
    });

    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let scrape = recorder.handle();
    metrics::set_global_recorder(recorder).expect("the only recorder");
    let recorded = warmed(&rt);
    group.bench_function("prometheus", |b| {
        b.to_async(&rt).iter(|| hit(recorded.clone()))
    });

    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(std::io::sink)
        .finish();
    let _tracing = tracing::subscriber::set_default(subscriber);
    let traced = warmed(&rt);
    group.bench_function("prometheus_tracing_info", |b| {
        b.to_async(&rt).iter(|| hit(traced.clone()))
    });
    group.finish();

    // The hits were counted: the recorder saw them.
    let exposition = scrape.render();
    assert!(
        exposition
            .contains("tower_response_cache_requests_total{outcome=\"hit\",route=\"/items/{id}\"}"),
        "{exposition}"
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(60);
    targets = bench
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    let mean = |name: &str| estimates::mean_ns(&format!("{GROUP}/{name}"));
    if let Some(base) = mean("no_recorder") {
        println!("\nhit path, mean time per request (ratio to no_recorder):");
        for name in ["no_recorder", "prometheus", "prometheus_tracing_info"] {
            if let Some(ns) = mean(name) {
                println!("  {name:<24} {ns:>8.0} ns   {:.3}x", ns / base);
            }
        }
    }
}
