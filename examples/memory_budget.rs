//! Does a `MemoryStore` stay inside its byte budget? Resident memory growth, measured in
//! process, against the budget.
//!
//! ```sh
//! cargo run --release --example memory_budget
//! ```
//!
//! Each workload runs in a fresh child process of this binary, so one workload's peak does not
//! hide the next one's: a 64 MiB store behind the layer, an origin answering every key with
//! `Cache-Control: max-age=600` and a body of the workload's size, and enough distinct keys to
//! fill the budget several times over, sent four at a time on a multi-threaded runtime. The
//! child reads its peak resident size (`VmHWM` in `/proc/self/status`, so Linux only) before
//! and after, and the table shows the growth against the budget (the goal: at most 1.30),
//! with what the store held at the end and the most it weighed at any moment.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use std::convert::Infallible;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use tower::{Layer, ServiceExt};
use tower_response_cache::{CacheLayer, MemoryStore, Store};

const BUDGET: u64 = 64 << 20;
/// Requests in flight at once.
const CONCURRENCY: u64 = 4;
/// Each sending task runs the store's pending maintenance after this many of its requests, as
/// a busy server's traffic would.
const MAINTAIN_EVERY: u64 = 1024;

struct Workload {
    name: &'static str,
    keys: u64,
    body: usize,
}

const WORKLOADS: &[Workload] = &[
    Workload {
        name: "200 B bodies",
        keys: 1_000_000,
        body: 200,
    },
    Workload {
        name: "64 KiB bodies",
        keys: 4_096,
        body: 64 << 10,
    },
];

/// What a child reports: growth of the peak resident size, entries and weighted bytes held at
/// the end, the most weighted bytes held at any moment.
struct Report {
    growth: u64,
    entries: u64,
    weighted: u64,
    peak_weighted: u64,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, index] = &args[..] {
        if flag == "--child" {
            let r = child(&WORKLOADS[index.parse::<usize>().expect("a workload index")]);
            println!(
                "{} {} {} {}",
                r.growth, r.entries, r.weighted, r.peak_weighted
            );
            return;
        }
    }
    println!(
        "{:<14} {:>9} {:>7} {:>10} {:>14} {:>13} {:>10} {:>14}",
        "workload",
        "keys",
        "budget",
        "growth",
        "growth/budget",
        "entries held",
        "weighted",
        "peak weighted",
    );
    let exe = std::env::current_exe().expect("this binary's path");
    for (i, w) in WORKLOADS.iter().enumerate() {
        let out = Command::new(&exe)
            .args(["--child", &i.to_string()])
            .output()
            .expect("run the workload");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = String::from_utf8(out.stdout).expect("UTF-8");
        let f: Vec<u64> = line
            .split_whitespace()
            .map(|n| n.parse().expect("a number"))
            .collect();
        let [growth, entries, weighted, peak_weighted] = f[..] else {
            panic!("unexpected child output: {line}");
        };
        let mib = |b: u64| format!("{:.1} MiB", b as f64 / (1 << 20) as f64);
        println!(
            "{:<14} {:>9} {:>7} {:>10} {:>14.2} {:>13} {:>10} {:>14}",
            w.name,
            w.keys,
            mib(BUDGET),
            mib(growth),
            growth as f64 / BUDGET as f64,
            entries,
            mib(weighted),
            mib(peak_weighted),
        );
    }
}

/// Runs one workload in this process.
fn child(w: &Workload) -> Report {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let store = MemoryStore::with_capacity_bytes(BUDGET);
    let body_len = w.body;
    let origin = tower::service_fn(move |_: Request<Empty<Bytes>>| async move {
        // A fresh allocation per response, as a real origin's body would be.
        let body = Bytes::from(vec![b'x'; body_len]);
        Ok::<_, Infallible>(
            Response::builder()
                .header("cache-control", "max-age=600")
                .header("content-type", "application/octet-stream")
                .body(Full::new(body))
                .expect("a response"),
        )
    });
    let service = CacheLayer::new(store.clone()).layer(origin);
    // The runtime, the allocator and the layer are warm before the baseline.
    runtime.block_on(async {
        let response = service.clone().oneshot(request(u64::MAX)).await.unwrap();
        response.into_body().collect().await.unwrap();
        store.clear().await.unwrap();
        store.run_pending_tasks().await;
    });
    let peak_weighted = Arc::new(AtomicU64::new(0));
    let before = vm_hwm();
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for t in 0..CONCURRENCY {
            let (service, store, keys) = (service.clone(), store.clone(), w.keys);
            let peak_weighted = Arc::clone(&peak_weighted);
            tasks.push(tokio::spawn(async move {
                for (sent, i) in (t..keys).step_by(CONCURRENCY as usize).enumerate() {
                    let response = service.clone().oneshot(request(i)).await.unwrap();
                    response.into_body().collect().await.unwrap();
                    peak_weighted.fetch_max(store.metrics().weighted_bytes, Relaxed);
                    if (sent as u64 + 1) % MAINTAIN_EVERY == 0 {
                        store.run_pending_tasks().await;
                    }
                }
            }));
        }
        for task in tasks {
            task.await.expect("a sending task");
        }
        store.run_pending_tasks().await;
    });
    let growth = vm_hwm().saturating_sub(before);
    let m = store.metrics();
    Report {
        growth,
        entries: m.entries,
        weighted: m.weighted_bytes,
        peak_weighted: peak_weighted.load(Relaxed),
    }
}

fn request(i: u64) -> Request<Empty<Bytes>> {
    Request::get(format!("/item/{i}"))
        .header("host", "shop.example")
        .body(Empty::new())
        .expect("a request")
}

/// The peak resident set size of this process, in bytes.
fn vm_hwm() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status (Linux)");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("a VmHWM line")
        * 1024
}
