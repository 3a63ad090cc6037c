//! The cache's metrics on a Prometheus `/metrics` endpoint (feature `metrics`).
//!
//! ```sh
//! cargo run --example prometheus --features metrics -- [--listen 127.0.0.1:3000]
//!
//! curl -i localhost:3000/products/1               # MISS (the handler takes 50 ms), then HIT
//! curl -i -H 'cookie: session=1' localhost:3000/products/1   # BYPASS: a cookie
//! curl -i -X POST localhost:3000/products/1       # a write: invalidates /products/1
//! curl -i localhost:3000/cart                     # BYPASS: the route's policy
//! curl -s localhost:3000/metrics | grep '^tower_response_cache'
//! ```
//!
//! The recorder is installed before the app serves its first request: the cache registers its
//! handles when it first counts something, and handles registered with no recorder count
//! nothing. `/metrics` is merged in after the cache layer, so it is never cached (and its own
//! requests are not counted). The two histograms get buckets, so they render as Prometheus
//! histograms rather than summaries. Add `RUST_LOG=tower_response_cache=debug` to see the
//! `cache` span of each request.
//!
//! It prints `listening on ADDR` once it accepts connections (`--listen 127.0.0.1:0` picks a
//! free port).

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;
use tower_response_cache::{CacheLayer, MemoryStore, Policy};

/// A product page behind a cache, its metrics beside it.
#[derive(Debug, clap::Parser)]
#[command(name = "prometheus")]
struct Options {
    /// The address to listen on (`127.0.0.1:0` picks a free port; the chosen one is printed).
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
}

/// The slow backend: 50 ms per product, cacheable for a minute.
async fn product(Path(id): Path<u64>) -> ([(&'static str, &'static str); 1], String) {
    tokio::time::sleep(Duration::from_millis(50)).await;
    (
        [("cache-control", "max-age=60")],
        format!("{{\"id\":{id},\"name\":\"product {id}\"}}\n"),
    )
}

/// Changing a product: the cache invalidates its page when this succeeds.
async fn update_product(Path(id): Path<u64>) -> String {
    format!("product {id} updated\n")
}

/// One user's cart: never cached (the route's policy is `Policy::bypass()`).
async fn cart() -> &'static str {
    "your cart is empty\n"
}

/// Installs the Prometheus recorder (buckets for the two histograms, in seconds) and keeps
/// its histograms drained.
fn install_recorder() -> PrometheusHandle {
    const ORIGIN: &str = "tower_response_cache_origin_duration_seconds";
    const LOOKUP: &str = "tower_response_cache_lookup_duration_seconds";
    let origin = [
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ];
    let lookup = [1e-6, 5e-6, 1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.05];
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(ORIGIN.to_owned()), &origin)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(LOOKUP.to_owned()), &lookup))
        .expect("buckets are not empty")
        .install_recorder()
        .expect("no other recorder is installed");
    // `install_recorder` starts no upkeep task of its own.
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            upkeep.run_upkeep();
        }
    });
    handle
}

#[tokio::main]
async fn main() {
    let options = <Options as clap::Parser>::parse();
    // Logs to stderr, as `RUST_LOG` says (quiet by default; `tower_response_cache=debug`
    // shows each request's `cache` span).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    // First, before the cache counts anything.
    let metrics = install_recorder();

    let cache = CacheLayer::new(MemoryStore::with_capacity_bytes(64 << 20))
        // A route's pattern is its `route` label; requests no route matches are `default`.
        .route("/products/{id}", Policy::new())
        .route("/cart", Policy::bypass());
    let app = Router::new()
        .route("/products/{id}", get(product).post(update_product))
        .route("/cart", get(cart))
        .layer(cache)
        // Outside the cache layer: never cached.
        .merge(Router::new().route("/metrics", get(move || async move { metrics.render() })));

    let listener = match tokio::net::TcpListener::bind(options.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("cannot listen on {}: {e}", options.listen);
            std::process::exit(1);
        }
    };
    // The one line on stdout: scripts wait for it to know the port.
    println!("listening on {}", listener.local_addr().unwrap());
    std::io::stdout().flush().unwrap();
    axum::serve(listener, app).await.unwrap();
}
