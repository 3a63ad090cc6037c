//! What the cache tells a `tracing` subscriber: a `DEBUG` span named `cache` per request
//! (target `tower_response_cache`) with its route, key, outcome and timings; a bypass's reason;
//! an `INFO` event per invalidation; `WARN` events for store faults and failed refreshes; and
//! nothing per request at `INFO`.
//!
//! Each test installs a collecting subscriber as its thread's default and runs on a
//! current-thread runtime, so the cache's tasks report to it too.

mod common;

use axum::Router;
use axum::routing::get;
use common::{Calls, eventually, get as get_request, req, send};
use http::Request;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower::{Layer as _, ServiceExt};
use tower_response_cache::store::Entry;
use tower_response_cache::{
    CacheLayer, MemoryStore, Policy, PutOutcome, Store, StoreError, StoreKey,
};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{Layer, Registry};

const TARGET: &str = "tower_response_cache";

/// A span or an event as the subscriber saw it; its fields as text.
#[derive(Clone, Debug)]
struct Seen {
    name: String,
    target: String,
    level: Level,
    fields: BTreeMap<String, String>,
    /// An event's span.
    parent: Option<String>,
}

impl Seen {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

#[derive(Default)]
struct Collected {
    spans: Vec<Seen>,
    /// Where each live span is in `spans`.
    ids: HashMap<Id, usize>,
    events: Vec<Seen>,
}

/// A layer that keeps every span (with the fields recorded on it later) and event.
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Collected>>);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Collector {
    fn on_new_span(&self, attributes: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        attributes.record(&mut Fields(&mut fields));
        let metadata = attributes.metadata();
        let mut collected = self.0.lock().unwrap();
        let index = collected.spans.len();
        collected.spans.push(Seen {
            name: metadata.name().to_owned(),
            target: metadata.target().to_owned(),
            level: *metadata.level(),
            fields,
            parent: None,
        });
        collected.ids.insert(id.clone(), index);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        let mut collected = self.0.lock().unwrap();
        let index = collected.ids[id];
        values.record(&mut Fields(&mut collected.spans[index].fields));
    }

    fn on_event(&self, event: &Event<'_>, context: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        let metadata = event.metadata();
        let parent = context.event_span(event).map(|span| span.name().to_owned());
        self.0.lock().unwrap().events.push(Seen {
            name: metadata.name().to_owned(),
            target: metadata.target().to_owned(),
            level: *metadata.level(),
            fields,
            parent,
        });
    }
}

impl Collector {
    /// A collector that is this thread's subscriber, with the crate's spans and events down to
    /// `level`, until the guard is dropped.
    fn start(level: Level) -> (Collector, tracing::subscriber::DefaultGuard) {
        let collector = Collector::default();
        let filter = Targets::new().with_target(TARGET, level);
        let subscriber = Registry::default().with(collector.clone().with_filter(filter));
        (collector, tracing::subscriber::set_default(subscriber))
    }

    /// The `cache` spans, in the order they were created.
    fn requests(&self) -> Vec<Seen> {
        let collected = self.0.lock().unwrap();
        let spans = collected.spans.iter().filter(|s| s.name == "cache");
        spans.cloned().collect()
    }

    /// The events whose message is `message`.
    fn events(&self, message: &str) -> Vec<Seen> {
        let collected = self.0.lock().unwrap();
        let events = collected.events.iter();
        let matching = events.filter(|e| e.field("message") == Some(message));
        matching.cloned().collect()
    }
}

fn cache() -> CacheLayer<MemoryStore> {
    CacheLayer::new(MemoryStore::with_capacity_bytes(16 << 20))
}

#[tokio::test]
async fn each_request_has_a_debug_cache_span_with_its_route_key_and_outcome() {
    let (collector, _subscriber) = Collector::start(Level::DEBUG);
    let layer = cache().route("/items/{id}", Policy::new());
    let handle = layer.handle();
    let app = Router::new()
        .route("/items/{id}", get(|| async { "item" }))
        .layer(layer);
    assert_eq!(send(&app, get_request("/items/1")).await.cache(), "MISS");
    handle.flush().await;
    assert_eq!(send(&app, get_request("/items/1")).await.cache(), "HIT");

    let spans = collector.requests();
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let (miss, hit) = (&spans[0], &spans[1]);
    for span in [miss, hit] {
        assert_eq!((span.target.as_str(), span.level), (TARGET, Level::DEBUG));
        assert_eq!(span.field("method"), Some("GET"));
        assert_eq!(span.field("uri"), Some("/items/1"));
        assert_eq!(span.field("route"), Some("/items/{id}"), "the pattern");
        let key = span.field("key").expect("a key");
        assert!(
            key.len() >= 16 && key.chars().all(|c| c.is_ascii_hexdigit()),
            "{key}"
        );
        let elapsed: u64 = span
            .field("elapsed_us")
            .expect("elapsed_us")
            .parse()
            .unwrap();
        assert!(elapsed < 1_000_000, "{elapsed}");
        assert_eq!(span.field("reason"), None);
    }
    assert_eq!(miss.field("key"), hit.field("key"), "one entry");
    assert_eq!(miss.field("outcome"), Some("miss"));
    assert_eq!(hit.field("outcome"), Some("hit"));
    assert!(miss.field("origin_us").is_some(), "{miss:?}");
    assert_eq!(hit.field("origin_us"), None, "a hit asks no origin");
    // The answer is an event in the request's span.
    let answered = collector.events("cache answered");
    assert_eq!(answered.len(), 2, "{answered:#?}");
    assert!(
        answered
            .iter()
            .all(|e| e.parent.as_deref() == Some("cache"))
    );
}

#[tokio::test]
async fn a_bypass_says_why_in_its_span_and_an_event() {
    let (collector, _subscriber) = Collector::start(Level::DEBUG);
    let app = Router::new()
        .route("/page", get(|| async { "page" }))
        .layer(cache());
    let got = send(&app, req("GET", "/page", &[("cookie", "session=1")])).await;
    assert_eq!(got.cache(), "BYPASS");

    let spans = collector.requests();
    assert_eq!(spans.len(), 1, "{spans:#?}");
    assert_eq!(spans[0].field("outcome"), Some("bypass"));
    assert_eq!(spans[0].field("reason"), Some("cookie"));
    assert!(spans[0].field("elapsed_us").is_some());
    let bypasses = collector.events("cache bypass");
    assert_eq!(bypasses.len(), 1, "{bypasses:#?}");
    assert_eq!(bypasses[0].level, Level::DEBUG);
    assert_eq!(bypasses[0].field("reason"), Some("cookie"));
    assert_eq!(bypasses[0].field("route"), Some("default"));
}

#[tokio::test]
async fn an_invalidation_is_an_info_event_with_its_kind() {
    let (collector, _subscriber) = Collector::start(Level::DEBUG);
    let layer = cache();
    let handle = layer.handle();
    let app = Router::new()
        .route(
            "/items/1",
            get(|| async { "item" }).post(|| async { "done" }),
        )
        .layer(layer);
    send(&app, get_request("/items/1")).await;
    handle.flush().await;
    send(&app, req("POST", "/items/1", &[])).await;
    handle.invalidate_tags(&["news"]).await;

    let invalidations = collector.events("cache invalidation");
    assert_eq!(invalidations.len(), 2, "{invalidations:#?}");
    let (write, tag) = (&invalidations[0], &invalidations[1]);
    for event in [write, tag] {
        assert_eq!((event.target.as_str(), event.level), (TARGET, Level::INFO));
    }
    assert_eq!(write.field("kind"), Some("write"));
    assert_eq!(write.field("removed"), Some("1"), "{write:?}");
    assert_eq!(tag.field("kind"), Some("tag"));
    assert_eq!(tag.field("tags"), Some("[\"news\"]"));
    assert_eq!(tag.field("removed"), Some("0"));
}

/// A store whose reads fail.
struct Unreadable;

impl Store for Unreadable {
    async fn get(&self, _: StoreKey) -> Result<Option<Arc<Entry>>, StoreError> {
        Err(StoreError::new("connection reset"))
    }
    async fn put(&self, _: StoreKey, _: Arc<Entry>, _: Duration) -> Result<PutOutcome, StoreError> {
        Ok(PutOutcome::Stored)
    }
    async fn remove(&self, _: StoreKey) -> Result<(), StoreError> {
        Ok(())
    }
    async fn invalidate_tags<'a>(&'a self, _: &'a [&'a str]) -> Result<u64, StoreError> {
        Ok(0)
    }
    async fn clear(&self) -> Result<u64, StoreError> {
        Ok(0)
    }
}

type Empty = http_body_util::Empty<bytes::Bytes>;
type Full = http_body_util::Full<bytes::Bytes>;

#[tokio::test]
async fn store_faults_and_failed_refreshes_are_warnings() {
    let (collector, _subscriber) = Collector::start(Level::DEBUG);
    let app = Router::new()
        .route("/item", get(|| async { "item" }))
        .layer(CacheLayer::new(Unreadable));
    let got = send(&app, get_request("/item")).await;
    assert_eq!((got.cache(), got.text().as_str()), ("MISS", "item"));
    let faults = collector.events("cache store operation failed");
    assert_eq!(faults.len(), 1, "{faults:#?}");
    let fault = &faults[0];
    assert_eq!((fault.target.as_str(), fault.level), (TARGET, Level::WARN));
    assert_eq!(fault.field("store"), Some("custom"));
    assert_eq!(fault.field("op"), Some("get"));
    let error = fault.field("error").unwrap();
    assert!(error.contains("connection reset"), "{error}");

    // An origin that answers once, then fails: the stale-while-revalidate refresh fails.
    let calls = Calls::default();
    let c = calls.clone();
    let origin = tower::service_fn(move |_: Request<Empty>| {
        let first = c.hit() == 1;
        async move {
            match first {
                true => Ok(http::Response::new(Full::from("good"))),
                false => Err(std::io::Error::other("connection refused")),
            }
        }
    });
    let layer = cache().policy(
        Policy::new()
            .ttl(Duration::from_millis(100))
            .stale_while_revalidate(Duration::from_secs(30)),
    );
    let handle = layer.handle();
    let service = layer.layer(origin);
    let send = async || {
        let request = Request::get("/item").body(Empty::new()).unwrap();
        common::read(service.clone().oneshot(request).await.unwrap()).await
    };
    assert_eq!(send().await.cache(), "MISS");
    handle.flush().await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(send().await.cache(), "STALE");
    let message = "background refresh failed (an error or a 5xx from the origin)";
    eventually("the refresh fails", || {
        !collector.events(message).is_empty()
    })
    .await;
    let failed = &collector.events(message)[0];
    assert_eq!(
        (failed.target.as_str(), failed.level),
        (TARGET, Level::WARN)
    );
    assert_eq!(calls.get(), 2);
}

#[tokio::test]
async fn at_info_no_request_has_a_span() {
    let (collector, _subscriber) = Collector::start(Level::INFO);
    let layer = cache();
    let handle = layer.handle();
    let app = Router::new()
        .route("/item", get(|| async { "item" }).post(|| async { "done" }))
        .layer(layer);
    send(&app, get_request("/item")).await;
    handle.flush().await;
    assert_eq!(send(&app, get_request("/item")).await.cache(), "HIT");
    send(&app, req("GET", "/item", &[("cookie", "session=1")])).await;
    send(&app, req("POST", "/item", &[])).await;

    assert!(
        collector.requests().is_empty(),
        "{:#?}",
        collector.requests()
    );
    let collected = collector.0.lock().unwrap();
    assert!(collected.spans.is_empty(), "{:#?}", collected.spans);
    let levels: Vec<Level> = collected.events.iter().map(|e| e.level).collect();
    assert_eq!(
        levels,
        [Level::INFO],
        "the write's invalidation only: {levels:?}"
    );
}

#[tokio::test]
async fn a_response_not_stored_says_why_in_its_span() {
    let (collector, _subscriber) = Collector::start(Level::DEBUG);
    let handle;
    let app = {
        let layer = cache();
        handle = layer.handle();
        Router::new()
            .route(
                "/mine",
                get(|| async { ([("cache-control", "private")], "mine") }),
            )
            .layer(layer)
    };
    assert_eq!(send(&app, get_request("/mine")).await.cache(), "MISS");
    handle.flush().await;

    let spans = collector.requests();
    assert_eq!(spans.len(), 1, "{spans:#?}");
    assert_eq!(spans[0].field("outcome"), Some("miss"));
    assert_eq!(spans[0].field("reason"), Some("private"), "{spans:#?}");
}
