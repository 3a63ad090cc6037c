//! Hits through Redis against their floors, on a redis-server started for the run.
//!
//! - `redis/raw_get`: one redis-rs `GET` of the stored bytes on a connection manager (the floor);
//! - `redis/store_get`: `RedisStore::get` of the same entry (GET + decode), and with an HMAC;
//! - `redis/layer_hit`: a whole request answered from Redis through the layer;
//! - `tiers/memory_hit` vs `tiers/l1_hit`: a hit in a `MemoryStore` and in a `TieredStore`'s
//!   memory tier, through the layer.
//!
//! Run: `cargo bench --features redis --bench redis_hit`. Needs `redis-server` on the PATH.

#[path = "support/estimates.rs"]
mod estimates;

use bytes::Bytes;
use criterion::{Criterion, criterion_group};
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use redis::AsyncCommands;
use std::convert::Infallible;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_response_cache::{CacheLayer, MemoryStore, RedisStore, Store, TieredStore};

struct Server(Child, String);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn redis_server() -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
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
        .expect("redis-server on the PATH (apt-get install redis-server)");
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    Server(child, format!("redis://127.0.0.1:{port}/"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn origin() -> impl Service<
    Request<Empty<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone {
    service_fn(|_req: Request<Empty<Bytes>>| async {
        Ok::<_, Infallible>(
            Response::builder()
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(vec![b'x'; 1024])))
                .unwrap(),
        )
    })
}

async fn hit<S, B>(svc: S)
where
    S: Service<Request<Empty<Bytes>>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let response = svc
        .oneshot(Request::get("/item").body(Empty::new()).unwrap())
        .await
        .unwrap();
    std::hint::black_box(response.into_body().collect().await.unwrap());
}

fn bench(c: &mut Criterion) {
    let server = redis_server();
    let rt = runtime();
    let store = RedisStore::builder(server.1.as_str())
        .prefix("bench")
        .build()
        .unwrap();
    let signed = RedisStore::builder(server.1.as_str())
        .prefix("bench-signed")
        .hmac_secret("bench secret")
        .build()
        .unwrap();
    let layered = CacheLayer::new(store.clone()).layer(origin());
    let signed_layer = CacheLayer::new(signed.clone()).layer(origin());
    let (raw, key, signed_key) = rt.block_on(async {
        hit(layered.clone()).await;
        hit(signed_layer.clone()).await;
        let mut raw =
            redis::aio::ConnectionManager::new(redis::Client::open(server.1.as_str()).unwrap())
                .await
                .unwrap();
        // Entries are `{prefix}:v{layout}:e:{key}`.
        let keys: Vec<String> = raw.keys("bench:v*:e:*").await.unwrap();
        let signed_keys: Vec<String> = raw.keys("bench-signed:v*:e:*").await.unwrap();
        (raw, keys[0].clone(), signed_keys[0].clone())
    });
    let store_key = |redis_key: &str| {
        let hex = redis_key.rsplit(':').next().unwrap();
        tower_response_cache::StoreKey::from_u128(u128::from_str_radix(hex, 16).unwrap())
    };
    let k = store_key(&key);
    let sk = store_key(&signed_key);

    let mut group = c.benchmark_group("redis");
    group.bench_function("raw_get", |b| {
        b.to_async(&rt).iter(|| {
            let mut raw = raw.clone();
            let key = key.clone();
            async move { std::hint::black_box(raw.get::<_, Vec<u8>>(key).await.unwrap()) }
        })
    });
    group.bench_function("store_get", |b| {
        b.to_async(&rt)
            .iter(|| async { std::hint::black_box(store.get(k).await.unwrap().unwrap()) })
    });
    group.bench_function("store_get_hmac", |b| {
        b.to_async(&rt)
            .iter(|| async { std::hint::black_box(signed.get(sk).await.unwrap().unwrap()) })
    });
    group.bench_function("layer_hit", |b| {
        b.to_async(&rt).iter(|| hit(layered.clone()))
    });
    group.finish();

    let memory = CacheLayer::new(MemoryStore::with_capacity_bytes(1 << 26)).layer(origin());
    let tiered_store = rt.block_on(async {
        let l2 = RedisStore::builder(server.1.as_str())
            .prefix("bench-tiered")
            .build()
            .unwrap();
        let tiered = TieredStore::new(MemoryStore::with_capacity_bytes(1 << 26), l2).unwrap();
        while !tiered.is_subscribed() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tiered
    });
    let tiered = CacheLayer::new(tiered_store).layer(origin());
    rt.block_on(async {
        hit(memory.clone()).await;
        hit(tiered.clone()).await;
    });
    let mut group = c.benchmark_group("tiers");
    group.bench_function("memory_hit", |b| {
        b.to_async(&rt).iter(|| hit(memory.clone()))
    });
    group.bench_function("l1_hit", |b| b.to_async(&rt).iter(|| hit(tiered.clone())));
    group.finish();
}

fn print_ratios() {
    let mean = |group: &str, name: &str| estimates::mean_ns(&format!("{group}/{name}"));
    println!("\nratios (mean time, latest saved estimate of each):");
    for (group, name, floor) in [
        ("redis", "store_get", "raw_get"),
        ("redis", "store_get_hmac", "raw_get"),
        ("redis", "layer_hit", "raw_get"),
        ("tiers", "l1_hit", "memory_hit"),
    ] {
        if let (Some(t), Some(f)) = (mean(group, name), mean(group, floor)) {
            println!(
                "  {group}/{name:<15} {t:>9.0} ns / {floor:<10} {f:>9.0} ns = {:.2}x",
                t / f
            );
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50);
    targets = bench
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    print_ratios();
}
