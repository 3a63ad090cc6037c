//! A stampede on a cold key: 500 concurrent requests, a handler that takes 100 ms.
//!
//! ```sh
//! cargo run --release --example stampede
//! ```
//!
//! For each of 10 rounds, a new (cold) key gets 500 requests at once. Without coalescing the
//! origin would see 500 calls per round; with it, one. Latencies are reported relative to the
//! handler's own 100 ms: the waiters should finish when the one fetch does, not later.

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::routing::get;
use http::Request;
use http_body_util::BodyExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tower::ServiceExt;
use tower_response_cache::{CacheLayer, MemoryStore};

const HANDLER: Duration = Duration::from_millis(100);
const CONCURRENT: usize = 500;
const ROUNDS: usize = 10;

async fn slow(Path(key): Path<u64>, State(calls): State<Arc<AtomicU64>>) -> String {
    calls.fetch_add(1, Ordering::Relaxed);
    tokio::time::sleep(HANDLER).await;
    format!("value of {key}")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let calls = Arc::new(AtomicU64::new(0));
    let cache = CacheLayer::new(MemoryStore::with_capacity_bytes(64 << 20));
    let stats = cache.stats();
    let app = Router::new()
        .route("/keys/{key}", get(slow))
        .with_state(calls.clone())
        .layer(cache);

    let mut latencies = Vec::with_capacity(CONCURRENT * ROUNDS);
    let mut calls_per_round = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        let before = calls.load(Ordering::Relaxed);
        let tasks: Vec<_> = (0..CONCURRENT)
            .map(|_| {
                let app = app.clone();
                tokio::spawn(async move {
                    let started = Instant::now();
                    let request = Request::get(format!("/keys/{round}"))
                        .body(Body::empty())
                        .unwrap();
                    let response = app.oneshot(request).await.unwrap();
                    assert!(response.status().is_success());
                    let body = response.into_body().collect().await.unwrap().to_bytes();
                    assert_eq!(body, format!("value of {round}"));
                    started.elapsed()
                })
            })
            .collect();
        for task in tasks {
            latencies.push(task.await.unwrap());
        }
        calls_per_round.push(calls.load(Ordering::Relaxed) - before);
    }
    latencies.sort();
    let p50 = percentile(&latencies, 0.50);
    let p99 = percentile(&latencies, 0.99);
    let max = *latencies.last().unwrap();
    let ratio = |d: Duration| d.as_secs_f64() / HANDLER.as_secs_f64();
    println!(
        "{ROUNDS} rounds x {CONCURRENT} concurrent requests for a cold key; handler takes {} ms",
        HANDLER.as_millis()
    );
    println!("origin calls per round: {calls_per_round:?}");
    println!(
        "latency: p50 {:.1} ms ({:.3}x handler), p99 {:.1} ms ({:.3}x), max {:.1} ms ({:.3}x)",
        p50.as_secs_f64() * 1e3,
        ratio(p50),
        p99.as_secs_f64() * 1e3,
        ratio(p99),
        max.as_secs_f64() * 1e3,
        ratio(max),
    );
    println!("{:?}", stats.snapshot());
}
