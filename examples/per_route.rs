//! Per-route policies and per-response overrides in one axum app.
//!
//! ```sh
//! cargo run --example per_route
//! ```
//!
//! - `/static/{*path}`: one hour, bodies up to 8 MiB.
//! - `/prices/{id}`: one second (prices move).
//! - `/account/{*rest}`: never cached.
//! - everything else: the default, 60 s, unless the handler says otherwise with
//!   [`CacheOverride`] (as `/news` does).

use axum::body::Body;
use axum::routing::get;
use axum::{Extension, Router};
use http::Request;
use std::time::Duration;
use tower::ServiceExt;
use tower_response_cache::{CacheLayer, CacheOverride, MemoryStore, Policy};

async fn show(app: &Router, uri: &str) {
    let response = app
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    println!(
        "GET {uri:<22} -> {}",
        response.headers()["x-cache"].to_str().unwrap()
    );
}

#[tokio::main]
async fn main() {
    let cache = CacheLayer::new(MemoryStore::with_capacity_bytes(64 << 20))
        .ttl(Duration::from_secs(60))
        .route(
            "/static/{*path}",
            Policy::new()
                .ttl(Duration::from_secs(3600))
                .max_body_bytes(8 << 20),
        )
        .route("/prices/{id}", Policy::new().ttl(Duration::from_secs(1)))
        .route("/account/{*rest}", Policy::bypass());
    let app = Router::new()
        .route("/static/{*path}", get(|| async { "body { color: teal }" }))
        .route("/prices/{id}", get(|| async { "42.00" }))
        .route("/account/settings", get(|| async { "your settings" }))
        .route(
            "/news",
            get(|| async {
                (
                    Extension(CacheOverride::ttl(Duration::from_secs(5))),
                    "headlines",
                )
            }),
        )
        .layer(cache);

    for uri in [
        "/static/site.css",
        "/prices/7",
        "/account/settings",
        "/news",
    ] {
        show(&app, uri).await;
        show(&app, uri).await;
    }
    println!("(waiting 1.1 s: the price expires, the stylesheet does not)");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    show(&app, "/prices/7").await;
    show(&app, "/static/site.css").await;
}
