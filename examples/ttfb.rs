//! Time to first byte of a streamed miss.
//!
//! ```sh
//! cargo run --release --example ttfb
//! ```
//!
//! The origin sends a 1 KiB frame at once, then 9 more 200 ms apart (`max-age=60`). A miss is
//! streamed: the client that triggered the fill gets each frame as the origin sends it, so its
//! time to first byte should match the origin's, not the whole transfer's. A client that joins
//! the fill 300 ms in (a coalesced waiter) gets the bytes so far at once, then the rest, and
//! finishes with the leader. Averaged over 10 distinct keys; the ratios are printed, not checked.

use bytes::{Buf, Bytes};
use http::{Request, Response};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Empty};
use std::convert::Infallible;
use std::fmt::Debug;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_response_cache::{CacheLayer, MemoryStore};

const FRAME: usize = 1024;
const FRAMES: usize = 10;
const GAP: Duration = Duration::from_millis(200);
const JOIN_AT: Duration = Duration::from_millis(300);
const KEYS: usize = 10;

type Chunk = Result<Frame<Bytes>, Infallible>;

/// A response body fed frame by frame through a channel.
struct Feed(mpsc::UnboundedReceiver<Chunk>);

impl Body for Feed {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Chunk>> {
        self.0.poll_recv(cx)
    }
}

/// What one client saw: time to the first data frame and to the end, from its own call.
#[derive(Clone, Copy)]
struct Seen {
    ttfb: Duration,
    total: Duration,
    bytes: usize,
}

async fn fetch<S, B>(service: S, path: String) -> Seen
where
    S: Service<Request<Empty<Bytes>>, Response = Response<B>>,
    S::Error: Debug,
    B: Body,
    B::Error: Debug,
{
    let started = Instant::now();
    let request = Request::get(path).body(Empty::new()).unwrap();
    let response = service.oneshot(request).await.unwrap();
    let mut body = pin!(response.into_body());
    let (mut ttfb, mut bytes) = (None, 0);
    while let Some(frame) = body.as_mut().frame().await {
        if let Some(data) = frame.unwrap().data_ref() {
            if data.remaining() > 0 {
                ttfb.get_or_insert_with(|| started.elapsed());
            }
            bytes += data.remaining();
        }
    }
    Seen {
        ttfb: ttfb.expect("no data"),
        total: started.elapsed(),
        bytes,
    }
}

fn mean(seen: &[Seen], field: fn(&Seen) -> Duration) -> Duration {
    seen.iter().map(field).sum::<Duration>() / seen.len() as u32
}

#[tokio::main]
async fn main() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let origin = service_fn(move |_request: Request<Empty<Bytes>>| {
        counter.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            for i in 0..FRAMES {
                if i > 0 {
                    tokio::time::sleep(GAP).await;
                }
                if sender
                    .send(Ok(Frame::data(Bytes::from(vec![b'x'; FRAME]))))
                    .is_err()
                {
                    return;
                }
            }
        });
        async move {
            Ok::<_, Infallible>(
                Response::builder()
                    .header("cache-control", "max-age=60")
                    .body(Feed(receiver))
                    .unwrap(),
            )
        }
    });

    // Origin alone: the keys run concurrently, each client timed from its own call.
    let tasks: Vec<_> = (0..KEYS)
        .map(|i| tokio::spawn(fetch(origin.clone(), format!("/feed/{i}"))))
        .collect();
    let mut alone = Vec::new();
    for task in tasks {
        alone.push(task.await.unwrap());
    }
    let origin_calls = calls.swap(0, Ordering::Relaxed);

    // Through the cache: a leader per key, and a waiter that joins its fill 300 ms in.
    let cached = CacheLayer::new(MemoryStore::with_capacity_bytes(16 << 20)).layer(origin);
    let tasks: Vec<_> = (0..KEYS)
        .map(|i| {
            let cached = cached.clone();
            tokio::spawn(async move {
                let leader = tokio::spawn(fetch(cached.clone(), format!("/feed/{i}")));
                tokio::time::sleep(JOIN_AT).await;
                let waiter = fetch(cached, format!("/feed/{i}")).await;
                (leader.await.unwrap(), waiter)
            })
        })
        .collect();
    let (mut leaders, mut waiters) = (Vec::new(), Vec::new());
    for task in tasks {
        let (leader, waiter) = task.await.unwrap();
        leaders.push(leader);
        waiters.push(waiter);
    }
    let cached_calls = calls.load(Ordering::Relaxed);

    println!(
        "{KEYS} keys, {FRAMES} frames of {FRAME} B, {} ms apart; waiter joins {} ms in\n",
        GAP.as_millis(),
        JOIN_AT.as_millis()
    );
    println!(
        "{:<14} {:>12} {:>12} {:>8}",
        "client", "TTFB", "total", "bytes"
    );
    for (name, seen) in [
        ("origin alone", &alone),
        ("cache leader", &leaders),
        ("cache waiter", &waiters),
    ] {
        println!(
            "{name:<14} {:>12.3?} {:>12.3?} {:>8}",
            mean(seen, |s| s.ttfb),
            mean(seen, |s| s.total),
            seen[0].bytes
        );
    }
    let origin_ttfb = mean(&alone, |s| s.ttfb).as_secs_f64();
    println!(
        "\norigin calls: {origin_calls} alone, {cached_calls} through the cache (leader + waiter per key)"
    );
    println!(
        "leader TTFB / origin TTFB = {:.2}",
        mean(&leaders, |s| s.ttfb).as_secs_f64() / origin_ttfb
    );
    println!(
        "waiter TTFB / origin TTFB = {:.2}",
        mean(&waiters, |s| s.ttfb).as_secs_f64() / origin_ttfb
    );
}
