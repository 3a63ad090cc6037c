//! Two app instances sharing a cache through Redis, each with its own memory tier.
//!
//! ```sh
//! cargo run --features redis --example redis_tiered                        # starts its own redis-server
//! cargo run --features redis --example redis_tiered -- redis://127.0.0.1:6379/
//! ```
//!
//! Instance A fills the cache; instance B answers the same request from Redis without calling
//! its backend; a write on A invalidates the entry on both, B's memory tier included.

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::Request;
use http_body_util::BodyExt;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tower::ServiceExt;
use tower_response_cache::{CacheLayer, MemoryStore, RedisStore, Store, TieredStore};

/// One instance of the app: a product page over the shared database (`price`), whose handler
/// counts its calls.
fn instance(
    name: &'static str,
    store: TieredStore,
    price: Arc<AtomicU64>,
    calls: Arc<AtomicU64>,
) -> Router {
    let (read_price, write_price) = (price.clone(), price);
    Router::new()
        .route(
            "/products/42",
            get(move || {
                calls.fetch_add(1, Ordering::Relaxed);
                let price = read_price.load(Ordering::Relaxed);
                async move { format!("product 42 costs {price}, rendered by instance {name}") }
            })
            .put(move || {
                write_price.fetch_add(5, Ordering::Relaxed);
                async { "price changed" }
            }),
        )
        .layer(CacheLayer::new(store))
}

async fn request(app: &Router, method: &str, who: &str) {
    let request = Request::builder()
        .method(method)
        .uri("/products/42")
        .body(Body::empty())
        .unwrap();
    let started = Instant::now();
    let response = app.clone().oneshot(request).await.unwrap();
    let cache = response.headers()["x-cache"].to_str().unwrap().to_owned();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    println!(
        "{who:<12} {method:<4} /products/42 -> {cache:<6} {:>7.2} ms  {}",
        started.elapsed().as_secs_f64() * 1e3,
        String::from_utf8_lossy(&body)
    );
}

/// A redis-server of our own on a free port, or `None` if it cannot be started.
fn own_redis() -> Option<(Child, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .stdout(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Some((child, format!("redis://127.0.0.1:{port}/")))
}

#[tokio::main]
async fn main() {
    let (mut own, url) = match std::env::args().nth(1) {
        Some(url) => (None, url),
        None => match own_redis() {
            Some((child, url)) => (Some(child), url),
            None => {
                eprintln!(
                    "no Redis: install redis-server (apt-get install redis-server), or pass a URL"
                );
                std::process::exit(2);
            }
        },
    };
    println!("sharing the cache through {url}\n");
    let store = || {
        let redis = RedisStore::builder(url.as_str())
            .prefix("redis-tiered-example")
            .build()
            .expect("a valid Redis URL");
        TieredStore::new(MemoryStore::with_capacity_bytes(16 << 20), redis).unwrap()
    };
    let (a_store, b_store) = (store(), store());
    while !(a_store.is_subscribed() && b_store.is_subscribed()) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Start from an empty cache (a previous run may have left entries).
    let _ = a_store.clear().await;
    let (a_calls, b_calls) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let database = Arc::new(AtomicU64::new(100));
    let a = instance("A", a_store, database.clone(), a_calls.clone());
    let b = instance("B", b_store, database, b_calls.clone());

    request(&a, "GET", "instance A").await;
    request(&a, "GET", "instance A").await;
    request(&b, "GET", "instance B").await;
    request(&b, "GET", "instance B").await;
    println!("\n(a write on A invalidates the page everywhere)");
    request(&a, "PUT", "instance A").await;
    request(&b, "GET", "instance B").await;
    request(&a, "GET", "instance A").await;
    println!(
        "\nbackend calls: instance A {}, instance B {}",
        a_calls.load(Ordering::Relaxed),
        b_calls.load(Ordering::Relaxed)
    );
    if let Some(child) = own.as_mut() {
        let _ = child.kill();
        let _ = child.wait();
    }
}
