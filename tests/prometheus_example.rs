//! The `prometheus` example, run as a process (feature `metrics`): traffic over real HTTP,
//! then its `/metrics` page says what the cache did, series by series, with the counts the
//! client saw in `X-Cache` and `Cache-Status`.
#![cfg(feature = "metrics")]

mod common;

use std::time::Duration;

use common::HttpClient;

/// What the client saw, tallied as the cache counts it: a collapsed answer (`X-Cache: HIT`,
/// `Cache-Status: ...; collapsed`) is a miss another request's fetch answered.
#[derive(Debug, Default)]
struct Seen {
    hits: u64,
    misses: u64,
    collapsed: u64,
    bypasses: u64,
}

impl Seen {
    fn add(&mut self, response: &http::response::Parts) {
        let header = |name| {
            response
                .headers
                .get(name)
                .map_or("", |v| v.to_str().unwrap())
        };
        match (
            header("x-cache"),
            header("cache-status").contains("collapsed"),
        ) {
            ("HIT", true) => {
                self.misses += 1;
                self.collapsed += 1;
            }
            ("HIT", false) => self.hits += 1,
            ("MISS", _) => self.misses += 1,
            ("BYPASS", _) => self.bypasses += 1,
            (other, _) => panic!("unexpected X-Cache {other:?}"),
        }
    }
}

async fn call(
    client: &HttpClient,
    method: &str,
    uri: String,
    headers: &[(&str, &str)],
) -> (http::response::Parts, String) {
    let (parts, body) = common::http_call(client, method, &uri, headers).await;
    assert_eq!(parts.status, 200, "{method}: {body:?}");
    (parts, String::from_utf8(body.to_vec()).unwrap())
}

/// A sample's labels, sorted.
type Labels = Vec<(String, String)>;

/// A `/metrics` page: each sample's name, its labels and its value.
struct Exposition {
    text: String,
    samples: Vec<(String, Labels, f64)>,
}

impl Exposition {
    fn parse(text: String) -> Self {
        let samples = text
            .lines()
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(|line| {
                let (series, value) = line.rsplit_once(' ').expect("a sample");
                let (name, labels) = match series.split_once('{') {
                    // Label values may hold braces (`/products/{id}`): up to the last one.
                    Some((name, rest)) => (name, labels(rest.strip_suffix('}').unwrap())),
                    None => (series, Vec::new()),
                };
                let value = match value {
                    "+Inf" => f64::INFINITY,
                    value => value.parse().unwrap_or_else(|_| panic!("{line}")),
                };
                (name.to_owned(), labels, value)
            })
            .collect();
        Exposition { text, samples }
    }

    /// The value of the sample with exactly these labels.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut wanted: Labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        wanted.sort();
        self.samples
            .iter()
            .find(|(n, l, _)| n == name && *l == wanted)
            .map(|(_, _, value)| *value)
    }

    /// [`get`](Self::get), the sample being required.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no {name}{labels:?} in\n{}", self.text))
    }

    fn has_type(&self, name: &str, kind: &str) -> bool {
        self.text
            .lines()
            .any(|l| l == format!("# TYPE {name} {kind}"))
    }
}

/// `k1="v1",k2="v2"` (values escaped as the exposition format escapes them), sorted.
fn labels(text: &str) -> Labels {
    let mut labels = Vec::new();
    let mut rest = text;
    while let Some((name, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next().expect("a closing quote") {
                (_, '\\') => value.push(chars.next().expect("an escaped character").1),
                (i, '"') => break i,
                (_, c) => value.push(c),
            }
        };
        labels.push((name.trim_start_matches(',').to_owned(), value));
        rest = &after[end + 1..];
    }
    labels.sort();
    labels
}

const PRODUCTS: &str = "/products/{id}";
const REQUESTS: &str = "tower_response_cache_requests_total";
const ORIGIN: &str = "tower_response_cache_origin_duration_seconds";
const LOOKUP: &str = "tower_response_cache_lookup_duration_seconds";

#[tokio::test]
async fn the_metrics_page_counts_what_the_cache_did() {
    // Killed when dropped: also when an assertion below fails.
    let (mut child, addr) = common::start_example("prometheus", &["--listen", "127.0.0.1:0"]).await;
    let client = common::http_client();
    let url = |path: &str| format!("http://{addr}{path}");
    let mut seen = Seen::default();

    // A miss (the handler takes 50 ms), then a hit once the entry is stored.
    let (parts, body) = call(&client, "GET", url("/products/1"), &[]).await;
    assert_eq!(parts.headers["x-cache"], "MISS");
    assert!(body.contains("product 1"), "{body}");
    seen.add(&parts);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (parts, _) = call(&client, "GET", url("/products/1"), &[]).await;
    assert_eq!(parts.headers["x-cache"], "HIT");
    seen.add(&parts);

    // Bypasses: a cookie, the cart's policy, and a write, which invalidates /products/1.
    let (parts, _) = call(&client, "GET", url("/products/1"), &[("cookie", "s=1")]).await;
    assert_eq!(parts.headers["x-cache"], "BYPASS");
    seen.add(&parts);
    let (parts, _) = call(&client, "GET", url("/cart"), &[]).await;
    assert_eq!(parts.headers["x-cache"], "BYPASS");
    seen.add(&parts);
    let (parts, body) = call(&client, "POST", url("/products/1"), &[]).await;
    assert_eq!(parts.headers["x-cache"], "BYPASS");
    assert_eq!(body, "product 1 updated\n");
    seen.add(&parts);
    let (parts, _) = call(&client, "GET", url("/products/1"), &[]).await;
    assert_eq!(parts.headers["x-cache"], "MISS", "the write invalidated it");
    seen.add(&parts);

    // Ten clients at once for a cold product: one fetch, the others wait for it.
    let burst: Vec<_> = (0..10)
        .map(|_| {
            let (client, uri) = (client.clone(), url("/products/2"));
            tokio::spawn(async move { call(&client, "GET", uri, &[]).await.0 })
        })
        .collect();
    for request in burst {
        seen.add(&request.await.unwrap());
    }
    assert!(seen.collapsed >= 1, "nobody waited for the fetch: {seen:?}");

    // Store lookups answered at once are timed one in 64 per thread: enough hits that some
    // worker thread of the example's runtime (one per core) times one.
    let threads = std::thread::available_parallelism().map_or(8, |n| n.get());
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..64 * threads {
        let (parts, _) = call(&client, "GET", url("/products/2"), &[]).await;
        seen.add(&parts);
    }

    // The store's gauges are published as the cache is used, at most once a second: hits
    // (timed one in 64) bring them.
    let mut page = None;
    for _ in 0..50 {
        for _ in 0..64 * threads {
            let (parts, _) = call(&client, "GET", url("/products/2"), &[]).await;
            seen.add(&parts);
        }
        let (_, text) = call(&client, "GET", url("/metrics"), &[]).await;
        let exposition = Exposition::parse(text);
        let store = [("store", "memory")];
        if exposition.get("tower_response_cache_entries", &store) == Some(2.0) {
            page = Some(exposition);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let page = page.expect("entries{store=\"memory\"} reaches 2 within 5 s");

    // Requests, by outcome and route pattern.
    let requests = |outcome, route| page.value(REQUESTS, &[("outcome", outcome), ("route", route)]);
    assert_eq!(requests("hit", PRODUCTS), seen.hits as f64, "{seen:?}");
    assert_eq!(requests("miss", PRODUCTS), seen.misses as f64, "{seen:?}");
    assert_eq!(
        requests("bypass", PRODUCTS),
        2.0,
        "the cookie and the write"
    );
    assert_eq!(requests("bypass", "/cart"), 1.0);
    assert_eq!(seen.bypasses, 3);
    for outcome in ["stale", "pass", "revalidated"] {
        assert_eq!(requests(outcome, PRODUCTS), 0.0, "{outcome}");
    }
    assert!(
        page.get(REQUESTS, &[("outcome", "miss"), ("route", "/metrics")])
            .is_none()
            && page
                .get(REQUESTS, &[("outcome", "miss"), ("route", "default")])
                .is_none(),
        "/metrics is outside the cache"
    );

    let bypass = |reason| page.value("tower_response_cache_bypass_total", &[("reason", reason)]);
    assert_eq!(
        (bypass("cookie"), bypass("policy"), bypass("method")),
        (1.0, 1.0, 1.0)
    );
    assert_eq!(bypass("authorization"), 0.0);
    assert_eq!(
        page.value("tower_response_cache_coalesced_total", &[]),
        seen.collapsed as f64
    );
    let invalidations = |kind| {
        page.value(
            "tower_response_cache_invalidations_total",
            &[("kind", kind)],
        )
    };
    assert_eq!(invalidations("write"), 1.0);
    assert_eq!(invalidations("purge"), 0.0);
    assert_eq!(
        page.value(
            "tower_response_cache_not_stored_total",
            &[("reason", "no-store")]
        ),
        0.0
    );

    // The origin's time, a histogram in seconds: every fetch took the handler's 50 ms.
    assert!(page.has_type(ORIGIN, "histogram"), "{}", page.text);
    let fetches = (seen.misses - seen.collapsed) as f64;
    let origin =
        |series: &str, labels: &[(&str, &str)]| page.value(&format!("{ORIGIN}{series}"), labels);
    assert_eq!(origin("_count", &[("outcome", "miss")]), fetches);
    assert_eq!(
        origin("_bucket", &[("outcome", "miss"), ("le", "+Inf")]),
        fetches
    );
    assert_eq!(
        origin("_bucket", &[("outcome", "miss"), ("le", "0.025")]),
        0.0
    );
    assert!(origin("_sum", &[("outcome", "miss")]) >= 0.05 * fetches);
    assert_eq!(origin("_count", &[("outcome", "bypass")]), 3.0);

    // Lookups in the memory store, sampled.
    assert!(page.has_type(LOOKUP, "histogram"), "{}", page.text);
    let lookups = page.value(&format!("{LOOKUP}_count"), &[("store", "memory")]);
    assert!(lookups >= 1.0, "{lookups}");
    assert_eq!(
        page.value(
            &format!("{LOOKUP}_bucket"),
            &[("store", "memory"), ("le", "+Inf")]
        ),
        lookups
    );

    // The store: two products held, weighed in bytes, nothing evicted.
    assert!(page.value("tower_response_cache_bytes", &[("store", "memory")]) > 0.0);
    assert_eq!(
        page.value("tower_response_cache_evictions_total", &[("cause", "size")]),
        0.0
    );

    child.kill().await.unwrap();
}
