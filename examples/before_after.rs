//! Before and after: the same slow axum app, without and with the cache, over real HTTP.
//!
//! ```sh
//! cargo run --release --example before_after
//! ```
//!
//! Two servers on 127.0.0.1 run the same handler, which simulates a slow backend (20-50 ms per
//! call). The same request mix (skewed towards popular products, as real traffic is; about one
//! request in 100 from a signed-in user, with a session cookie) is sent to each by 32 concurrent clients
//! over keep-alive connections, and a table compares latency, throughput, backend calls and hit
//! ratio. The cache's own figures follow ([`CacheStats`](tower_response_cache::CacheStats)): its
//! hit ratio, and the requests that bypassed it, by reason (the signed-in users' requests carry a
//! cookie, and a shared cache leaves those to the app). Takes about 10 s.

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tower_response_cache::{CacheLayer, MemoryStore};

const CLIENTS: usize = 32;
const REQUESTS_PER_CLIENT: usize = 100;
const PRODUCTS: u64 = 200;
/// About one request in this many comes from a signed-in user (a session cookie).
const SIGNED_IN_EVERY: u64 = 100;

/// The backend: 20-50 ms per call, counted.
async fn product(Path(id): Path<u64>, State(calls): State<Arc<AtomicU64>>) -> String {
    let n = calls.fetch_add(1, Ordering::Relaxed);
    let delay = 20 + (n.wrapping_mul(2_654_435_761) >> 7) % 31;
    tokio::time::sleep(Duration::from_millis(delay)).await;
    format!(
        "{{\"id\":{id},\"name\":\"product {id}\",\"price\":{}}}",
        id * 7 % 100
    )
}

fn app(calls: Arc<AtomicU64>) -> Router {
    Router::new()
        .route("/products/{id}", get(product))
        .with_state(calls)
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// The request mix: product ids skewed towards the popular ones (about an 80/20 split), and
/// whether a signed-in user asks; the same sequence for both runs.
fn request_mix(client: usize) -> Vec<(u64, bool)> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ (client as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    (0..REQUESTS_PER_CLIENT)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let uniform = (state >> 11) as f64 / (1u64 << 53) as f64;
            let signed_in = state % SIGNED_IN_EVERY == 0;
            ((uniform.powi(4) * PRODUCTS as f64) as u64, signed_in)
        })
        .collect()
}

struct Run {
    latencies: Vec<Duration>,
    elapsed: Duration,
    backend_calls: u64,
    hit_ratio: Option<f64>,
}

async fn drive(addr: SocketAddr) -> (Vec<Duration>, Duration) {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let started = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(REQUESTS_PER_CLIENT);
                for (id, signed_in) in request_mix(c) {
                    let mut request = Request::get(format!("http://{addr}/products/{id}"));
                    if signed_in {
                        request = request.header("cookie", format!("session={c}"));
                    }
                    let request = request.body(Empty::new()).unwrap();
                    let t = Instant::now();
                    let response = client.request(request).await.expect("request");
                    assert!(response.status().is_success());
                    response.into_body().collect().await.expect("body");
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    (latencies, started.elapsed())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn row(name: &str, run: &mut Run) -> f64 {
    run.latencies.sort();
    let throughput = run.latencies.len() as f64 / run.elapsed.as_secs_f64();
    println!(
        "{:<15} {:>8} {:>9.2} {:>9.2} {:>12.0} {:>14} {:>10}",
        name,
        run.latencies.len(),
        percentile(&run.latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&run.latencies, 0.99).as_secs_f64() * 1e3,
        throughput,
        run.backend_calls,
        run.hit_ratio
            .map_or("-".to_owned(), |r| format!("{:.1}%", r * 100.0)),
    );
    throughput
}

#[tokio::main]
async fn main() {
    let bare_calls = Arc::new(AtomicU64::new(0));
    let bare = serve(app(bare_calls.clone())).await;

    let cached_calls = Arc::new(AtomicU64::new(0));
    let cache =
        CacheLayer::new(MemoryStore::with_capacity_bytes(64 << 20)).ttl(Duration::from_secs(60));
    let stats = cache.stats();
    let cached = serve(app(cached_calls.clone()).layer(cache)).await;

    println!(
        "{} clients x {} requests over {} products, ~1 in {} signed in; backend takes 20-50 ms per call\n",
        CLIENTS, REQUESTS_PER_CLIENT, PRODUCTS, SIGNED_IN_EVERY
    );
    let (latencies, elapsed) = drive(bare).await;
    let mut without = Run {
        latencies,
        elapsed,
        backend_calls: bare_calls.load(Ordering::Relaxed),
        hit_ratio: None,
    };
    let (latencies, elapsed) = drive(cached).await;
    let figures = stats.snapshot();
    let mut with = Run {
        latencies,
        elapsed,
        backend_calls: cached_calls.load(Ordering::Relaxed),
        hit_ratio: Some(figures.hit_ratio()),
    };

    println!(
        "{:<15} {:>8} {:>9} {:>9} {:>12} {:>14} {:>10}",
        "", "requests", "p50 ms", "p99 ms", "req/s", "backend calls", "hit ratio"
    );
    let before = row("without cache", &mut without);
    let after = row("with cache", &mut with);
    println!("\nspeedup: {:.1}x", after / before);

    // What the cache itself counted.
    let reasons: Vec<String> = figures
        .bypass_reasons()
        .iter()
        .map(|(reason, n)| format!("{reason}: {n}"))
        .collect();
    println!(
        "the cache: hit ratio {:.1}% ({} hits, {} misses of which {} waited for another request's fetch); {} requests bypassed it ({})",
        figures.hit_ratio() * 100.0,
        figures.hits,
        figures.misses,
        figures.coalesced,
        figures.bypasses,
        if reasons.is_empty() {
            "none".to_owned()
        } else {
            reasons.join(", ")
        },
    );
}
