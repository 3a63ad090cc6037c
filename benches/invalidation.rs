//! Invalidating one tag in the memory store.
//!
//! - `one_tag_10k_entries`: a tag carried by 10,000 entries, invalidated at once.
//! - `one_tag_10_entries_in_{1k,100k}`: a tag carried by 10 entries, in a store of 1,000 or
//!   100,000 entries: the time follows the tag's entries, not the store's size (no scan).
//!
//! Run: `cargo bench --bench invalidation`. Each iteration fills the store through the layer
//! (not timed), then times the invalidation alone.

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use std::convert::Infallible;
use std::time::{Duration, Instant};
use tower::{Layer, ServiceExt, service_fn};
use tower_response_cache::{CacheHandle, CacheLayer, MemoryStore};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A cache whose origin tags `/t/N` with `hot` when N < `hot`, `cold` otherwise.
fn cache(hot: usize) -> (CacheLayer<MemoryStore>, CacheHandle) {
    let layer =
        CacheLayer::new(MemoryStore::with_capacity_bytes(1 << 30)).ttl(Duration::from_secs(3600));
    let handle = layer.handle();
    let _ = hot;
    (layer, handle)
}

async fn fill(layer: &CacheLayer<MemoryStore>, entries: usize, hot: usize) {
    let svc = layer.layer(service_fn(
        move |req: Request<http_body_util::Empty<Bytes>>| async move {
            let n: usize = req.uri().path().trim_start_matches("/t/").parse().unwrap();
            let tag = if n < hot { "hot" } else { "cold" };
            Ok::<_, Infallible>(
                Response::builder()
                    .header("cache-tag", tag)
                    .body(Full::new(Bytes::from_static(b"entry")))
                    .unwrap(),
            )
        },
    ));
    for n in 0..entries {
        let request = Request::get(format!("/t/{n}"))
            .body(http_body_util::Empty::new())
            .unwrap();
        let response = svc.clone().oneshot(request).await.unwrap();
        response.into_body().collect().await.unwrap();
    }
}

fn bench(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("invalidation");
    group.sample_size(10);
    for (name, entries, hot) in [
        ("one_tag_10k_entries", 10_000, 10_000),
        ("one_tag_10_entries_in_1k", 1_000, 10),
        ("one_tag_10_entries_in_100k", 100_000, 10),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iterations| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iterations {
                        let (layer, handle) = cache(hot);
                        fill(&layer, entries, hot).await;
                        let started = Instant::now();
                        let removed = handle.invalidate_tags(&["hot"]).await;
                        total += started.elapsed();
                        assert_eq!(removed as usize, hot);
                    }
                    total
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
