//! What the Redis store tells about itself, against a real `redis-server`: the entries a tag
//! lists (`Store::inspect`, alone and as a `TieredStore`'s tier), the bytes of its live values
//! (`StoreMetrics::shared_bytes`), its circuit breaker, and the store its errors name.
#![cfg(feature = "redis")]

mod common;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use common::redis_server::RedisServer;
use common::send;
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tower_response_cache::store::Entry;
use tower_response_cache::{
    BreakerState, CacheHandle, CacheLayer, InspectedEntry, MemoryStore, RedisStore, Store,
    StoreKey, StoreMetrics, TieredStore,
};

const PREFIX: &str = "observe";

fn builder(server: &RedisServer) -> tower_response_cache::RedisStoreBuilder {
    RedisStore::builder(server.url())
        .prefix(PREFIX)
        .timeout(Duration::from_secs(1))
        // One machine, one clock.
        .invalidation_clock_margin(Duration::ZERO)
}

fn store(server: &RedisServer) -> RedisStore {
    builder(server).build().unwrap()
}

/// A `TieredStore` over `server`, once it hears other instances' invalidations.
async fn subscribed_tiered(server: &RedisServer) -> TieredStore {
    let tiered =
        TieredStore::new(MemoryStore::with_capacity_bytes(16 << 20), store(server)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !tiered.is_subscribed() {
        assert!(Instant::now() < deadline, "never subscribed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tiered
}

/// An app over `layer` whose pages vary by `Accept-Language`, tagged `page`, with a body of
/// `?size=` bytes when asked.
fn app<St: Store + Clone>(layer: CacheLayer<St>) -> Router {
    Router::new()
        .route(
            "/{*path}",
            get(|uri: http::Uri, headers: http::HeaderMap| async move {
                let language = headers
                    .get("accept-language")
                    .map_or("none", |v| v.to_str().unwrap())
                    .to_owned();
                let size = uri
                    .query()
                    .and_then(|q| q.strip_prefix("size="))
                    .map_or(0, |n| n.parse().unwrap());
                let body = format!("{} in {language}{}", uri.path(), "x".repeat(size));
                ([("cache-tag", "page"), ("vary", "accept-language")], body)
            }),
        )
        .layer(layer.max_body_bytes(4 << 20))
}

async fn fill(app: &Router, handle: &CacheHandle, uri: &str, language: &str) {
    let got = send(
        app,
        common::req("GET", uri, &[("accept-language", language)]),
    )
    .await;
    assert_eq!((got.status, got.cache()), (200, "MISS"));
    // The write runs behind the response.
    handle.flush().await;
}

/// The bodies of the responses among `found`, by tier.
fn bodies(found: &[InspectedEntry]) -> BTreeMap<&'static str, Vec<String>> {
    let mut by_tier: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    for inspected in found {
        assert_eq!(StoreKey::of(inspected.entry.key()), inspected.key);
        if inspected.entry.status().is_some() {
            let body = inspected.entry.body().unwrap();
            by_tier
                .entry(inspected.tier)
                .or_default()
                .push(String::from_utf8_lossy(body).into_owned());
        }
    }
    for list in by_tier.values_mut() {
        list.sort();
    }
    by_tier
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_lists_a_uris_variants_in_redis() {
    let server = RedisServer::start();
    let s = store(&server);
    assert_eq!(s.name(), "redis");
    let layer = CacheLayer::new(s.clone());
    let handle = layer.handle();
    let app = app(layer);
    fill(&app, &handle, "/page", "en").await;
    fill(&app, &handle, "/page", "fr").await;
    fill(&app, &handle, "/other", "en").await;

    let found = s.inspect("page").await.unwrap();
    assert!(found.iter().all(|e| e.tier == "redis"));
    let page_and_other = BTreeMap::from([(
        "redis",
        vec![
            "/other in en".to_owned(),
            "/page in en".to_owned(),
            "/page in fr".to_owned(),
        ],
    )]);
    assert_eq!(bodies(&found), page_and_other);

    // The URI's own (implicit) tag lists its two variants, and its variants list.
    let uri_tag = found
        .iter()
        .filter(|e| e.entry.body().is_some_and(|b| b.starts_with(b"/page")))
        .flat_map(|e| e.entry.tags())
        .find(|t| t.starts_with("\u{1}uri ") && t.ends_with("/page"))
        .expect("an implicit URI tag")
        .to_owned();
    let found = s.inspect(&uri_tag).await.unwrap();
    let page = BTreeMap::from([(
        "redis",
        vec!["/page in en".to_owned(), "/page in fr".to_owned()],
    )]);
    assert_eq!(bodies(&found), page);
    assert_eq!(found.len(), 3, "two variants and their list");
    assert!(s.inspect("no such tag").await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_lists_both_tiers_of_a_tiered_store() {
    let server = RedisServer::start();
    let tiered = subscribed_tiered(&server).await;
    let layer = CacheLayer::new(tiered.clone());
    let handle = layer.handle();
    let app = app(layer);
    fill(&app, &handle, "/page", "en").await;
    fill(&app, &handle, "/page", "fr").await;

    let found = tiered.inspect("page").await.unwrap();
    let page = vec!["/page in en".to_owned(), "/page in fr".to_owned()];
    assert_eq!(
        bodies(&found),
        BTreeMap::from([("memory", page.clone()), ("redis", page)])
    );
    // The memory tier's first.
    assert_eq!(found[0].tier, "memory");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_skips_what_it_cannot_vouch_for() {
    let server = RedisServer::start();
    let s = store(&server);
    let layer = CacheLayer::new(s.clone());
    let handle = layer.handle();
    let app = app(layer);
    fill(&app, &handle, "/page", "en").await;
    let found = s.inspect("page").await.unwrap();
    let genuine = found.iter().find(|e| e.entry.status().is_some()).unwrap();
    let name = s.entry_key(genuine.key);
    let index = s.tag_index_key("page");
    let mut raw = server.raw().await;
    let value: Vec<u8> = redis::cmd("GET")
        .arg(&name)
        .query_async(&mut raw)
        .await
        .unwrap();
    let later = || {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        ms + 60_000
    };

    // Members naming keys that are not this store's entries, or entries that hold something
    // else than a value that verifies and belongs there.
    let elsewhere = s.entry_key(StoreKey::of(b"elsewhere"));
    let wrong_type = s.entry_key(StoreKey::of(b"a hash"));
    let foreign = "someone else's key";
    let mut plant = redis::pipe();
    plant
        // A genuine value, copied under another entry's key: its full key hashes elsewhere.
        .set(&elsewhere, &value)
        .hset(&wrong_type, "field", "value")
        .set(foreign, &value)
        .zadd(&index, &elsewhere, later())
        .zadd(&index, &wrong_type, later())
        .zadd(&index, foreign, later())
        .zadd(&index, format!("{name}0"), later())
        .zadd(&index, "\u{0}\u{ff}", later())
        .ignore();
    let () = plant.query_async(&mut raw).await.unwrap();
    let listed = s.inspect("page").await.unwrap();
    assert_eq!(
        bodies(&listed),
        BTreeMap::from([("redis", vec!["/page in en".to_owned()])])
    );

    // The genuine entry itself, garbled in every way: left out, never a panic.
    let mut flipped = value.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0xff;
    let mut huge_count = value.clone();
    huge_count[2..10].fill(0xff);
    for garbage in [
        b"{\"html\":\"<b>evil</b>\"}".to_vec(),
        value[..value.len() / 2].to_vec(),
        value[..1].to_vec(),
        flipped,
        huge_count,
        vec![0xff; 100_000],
    ] {
        let () = redis::cmd("SET")
            .arg(&name)
            .arg(&garbage)
            .query_async(&mut raw)
            .await
            .unwrap();
        let listed = s.inspect("page").await.unwrap();
        assert!(bodies(&listed).is_empty(), "{garbage:?}");
        // Not removed by inspecting (a lookup removes it).
        let kept: Vec<u8> = redis::cmd("GET")
            .arg(&name)
            .query_async(&mut raw)
            .await
            .unwrap();
        assert_eq!(kept, garbage);
    }

    // With an HMAC, a well-formed value written without the secret is left out too.
    let signed = builder(&server).hmac_secret("secret").build().unwrap();
    let () = redis::cmd("SET")
        .arg(&name)
        .arg(&value)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(bodies(&s.inspect("page").await.unwrap()).len(), 1);
    assert!(bodies(&signed.inspect("page").await.unwrap()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_lists_at_most_a_thousand_entries() {
    let server = RedisServer::start();
    let s = store(&server);
    let layer = CacheLayer::new(s.clone());
    let handle = layer.handle();
    let app = app(layer);
    // Each page stores its variant and its variants list, both tagged.
    for i in 0..505 {
        send(&app, common::get(&format!("/p{i}"))).await;
        if i % 50 == 0 {
            handle.flush().await;
        }
    }
    handle.flush().await;
    assert_eq!(s.metrics().shared_entries, Some(1_010));
    let found = s.inspect("page").await.unwrap();
    assert_eq!(found.len(), 1_000);
}

/// The sum of the lengths of the values under the store's entry names in Redis.
async fn stored_bytes(server: &RedisServer) -> u64 {
    let mut raw = server.raw().await;
    let names: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{PREFIX}:*:e:*"))
        .query_async(&mut raw)
        .await
        .unwrap();
    let mut total = 0;
    for name in names {
        let len: u64 = redis::cmd("STRLEN")
            .arg(name)
            .query_async(&mut raw)
            .await
            .unwrap();
        total += len;
    }
    total
}

/// The length of the value stored under `key`.
async fn stored_len(server: &RedisServer, s: &RedisStore, key: StoreKey) -> u64 {
    let mut raw = server.raw().await;
    redis::cmd("STRLEN")
        .arg(s.entry_key(key))
        .query_async(&mut raw)
        .await
        .unwrap()
}

/// Waits (bounded) until `s` reports `expected`: a read refreshes the figures in a task of
/// its own.
async fn settled_figures(s: &RedisStore, expected: (Option<u64>, Option<u64>)) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while figures(s) != expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(figures(s), expected);
}

fn figures(s: &RedisStore) -> (Option<u64>, Option<u64>) {
    let m = s.metrics();
    (m.shared_entries, m.shared_bytes)
}

/// A genuine entry, as Redis holds it once filled through the layer (under another prefix),
/// decoded.
async fn genuine_entry(server: &RedisServer) -> Entry {
    let s = builder(server).prefix("genuine").build().unwrap();
    let layer = CacheLayer::new(s.clone());
    let handle = layer.handle();
    fill(&app(layer), &handle, "/genuine", "en").await;
    let found = s.inspect("page").await.unwrap();
    let entry = found.iter().find(|e| e.entry.status().is_some()).unwrap();
    let raw_value: Vec<u8> = redis::cmd("GET")
        .arg(s.entry_key(entry.key))
        .query_async(&mut server.raw().await)
        .await
        .unwrap();
    Entry::decode(Bytes::from(raw_value)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_bytes_follow_puts_replacements_invalidations_expiry_and_clears() {
    let server = RedisServer::start();
    let base = genuine_entry(&server).await;
    let tagged = |tags: &[&str]| Arc::new(base.clone().with_tags(tags.iter().copied()));
    let key = |name: &str| StoreKey::of(name.as_bytes());
    let long = Duration::from_secs(60);
    let a = store(&server);
    assert_eq!(figures(&a), (None, None), "nothing heard yet");

    // Puts add the stored sizes.
    a.put(key("one"), tagged(&["one"]), long).await.unwrap();
    let one = stored_len(&server, &a, key("one")).await;
    assert_eq!(figures(&a), (Some(1), Some(one)));
    a.put(key("two"), tagged(&["two", "a longer tag"]), long)
        .await
        .unwrap();
    let two = stored_len(&server, &a, key("two")).await;
    assert_ne!(one, two);
    assert_eq!(figures(&a), (Some(2), Some(one + two)));

    // A replacement takes off the value it replaces.
    a.put(key("one"), tagged(&["one", "x".repeat(500).as_str()]), long)
        .await
        .unwrap();
    let one_again = stored_len(&server, &a, key("one")).await;
    assert!(one_again > one + 500);
    assert_eq!(figures(&a), (Some(2), Some(one_again + two)));

    // Another instance sharing the Redis hears the same total, and adds to it.
    let b = store(&server);
    assert!(b.get(key("one")).await.unwrap().is_some());
    settled_figures(&b, figures(&a)).await;
    b.put(key("three"), tagged(&["three"]), long).await.unwrap();
    let three = stored_len(&server, &b, key("three")).await;
    let total = one_again + two + three;
    assert_eq!(figures(&b), (Some(3), Some(total)));
    assert!(a.get(key("two")).await.unwrap().is_some(), "a's first read");
    settled_figures(&a, (Some(3), Some(total))).await;
    assert_eq!(stored_bytes(&server).await, total);

    // Invalidations and removals take off what they delete.
    assert_eq!(b.invalidate_tags(&["two"]).await.unwrap(), 1);
    assert_eq!(figures(&b), (Some(2), Some(one_again + three)));
    a.remove(key("three")).await.unwrap();
    assert_eq!(figures(&a), (Some(1), Some(one_again)));
    a.remove(key("three")).await.unwrap();
    assert_eq!(figures(&a), (Some(1), Some(one_again)), "nothing twice");

    // An entry that expires leaves the total at the next write...
    let short = Duration::from_millis(200);
    a.put(key("brief"), tagged(&["brief"]), short)
        .await
        .unwrap();
    let brief = stored_len(&server, &a, key("brief")).await;
    assert_eq!(figures(&a), (Some(2), Some(one_again + brief)));
    tokio::time::sleep(short + Duration::from_millis(100)).await;
    // (Not tagged `two`: that tag was invalidated after the entry's fill started, so Redis
    // would refuse it.)
    a.put(key("two"), tagged(&["2nd", "a longer tag"]), long)
        .await
        .unwrap();
    let two = stored_len(&server, &a, key("two")).await;
    assert_eq!(figures(&a), (Some(2), Some(one_again + two)));
    // ... or at a read's refresh (at most once a second), on any instance.
    b.put(key("brief"), tagged(&["brief"]), short)
        .await
        .unwrap();
    assert_eq!(figures(&b), (Some(3), Some(one_again + two + brief)));
    tokio::time::sleep(short + Duration::from_millis(100)).await;
    let c = store(&server);
    assert!(c.get(key("brief")).await.unwrap().is_none());
    // The read's refresh runs beside it.
    settled_figures(&c, (Some(2), Some(one_again + two))).await;
    assert_eq!(stored_bytes(&server).await, one_again + two);

    // A large value (uploaded, then moved to its entry) counts its size too.
    let big = Arc::new(big_entry(&server).await);
    let big_key = StoreKey::of(big.key());
    a.put(big_key, big, long).await.unwrap();
    let big_len = stored_len(&server, &a, big_key).await;
    assert!(big_len > 1 << 20);
    let total = one_again + two + big_len;
    assert_eq!(figures(&a), (Some(3), Some(total)));
    assert_eq!(stored_bytes(&server).await, total);

    // A clear resets both, and the record goes with the entries.
    assert_eq!(b.clear().await.unwrap(), 3);
    assert_eq!(figures(&b), (Some(0), Some(0)));
    let mut raw = server.raw().await;
    let left: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{PREFIX}:*"))
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(
        left.iter()
            .all(|k| k.ends_with(":inv-all") || k.ends_with(":inv")),
        "only the records of invalidations are left: {left:?}"
    );
}

/// An entry over 1 MiB (its value travels apart), filled through the layer and decoded.
async fn big_entry(server: &RedisServer) -> Entry {
    let s = builder(server).prefix("big").build().unwrap();
    let layer = CacheLayer::new(s.clone());
    let handle = layer.handle();
    fill(&app(layer), &handle, "/big?size=1500000", "en").await;
    let found = s.inspect("page").await.unwrap();
    let big = found.iter().find(|e| e.entry.status().is_some()).unwrap();
    assert!(big.entry.body().unwrap().len() > 1_500_000);
    (*big.entry).clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_filling_through_layers_agree_on_the_bytes() {
    let server = RedisServer::start();
    let (a, b) = (store(&server), store(&server));
    let (a_layer, b_layer) = (CacheLayer::new(a.clone()), CacheLayer::new(b.clone()));
    let (a_stats, b_stats) = (a_layer.stats(), b_layer.stats());
    let (a_handle, b_handle) = (a_layer.handle(), b_layer.handle());
    let (a_app, b_app) = (app(a_layer), app(b_layer));
    fill(&a_app, &a_handle, "/one", "en").await;
    fill(&b_app, &b_handle, "/two?size=100000", "en").await;
    fill(&a_app, &a_handle, "/one", "fr").await;
    // A heard the total at its last write. B's last write came before A's, and its figures
    // are refreshed by a read at most once a second: one second on, a read brings them.
    tokio::time::sleep(Duration::from_millis(1_050)).await;
    let hit = send(
        &b_app,
        common::req("GET", "/one", &[("accept-language", "fr")]),
    )
    .await;
    assert_eq!(hit.cache(), "HIT");
    let total = stored_bytes(&server).await;
    // Two variants of /one and their list, one of /two and its list.
    let expected = (Some(5), Some(total));
    // The read's refresh runs beside it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let s = b_stats.snapshot();
        if (s.shared_entries, s.shared_bytes) == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let a_snapshot = a_stats.snapshot();
    let b_snapshot = b_stats.snapshot();
    assert_eq!(
        (a_snapshot.shared_entries, a_snapshot.shared_bytes),
        expected
    );
    assert_eq!(
        (b_snapshot.shared_entries, b_snapshot.shared_bytes),
        expected
    );
    assert!(total > 100_000);
    assert_eq!(b_handle.invalidate_tags(&["page"]).await, 5);
    assert_eq!(b_stats.snapshot().shared_bytes, Some(0));
}

/// Log lines, as a `tracing_subscriber` writes them.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines_with(&self, text: &str) -> usize {
        let log = String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned();
        log.lines().filter(|l| l.contains(text)).count()
    }
}

fn breaker(s: &RedisStore) -> BreakerState {
    s.metrics().breaker.expect("a Redis store has a breaker")
}

// One thread: the subscriber set for this test sees every event of its store calls.
#[tokio::test]
async fn the_breaker_state_and_errors_name_redis() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing_subscriber::filter::LevelFilter::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut server = RedisServer::start();
    let port = server.port;
    let cooldown = Duration::from_millis(300);
    let s = builder(&server)
        .timeout(Duration::from_millis(200))
        .circuit_breaker(3, cooldown)
        .build()
        .unwrap();
    let key = StoreKey::of(b"k");
    assert!(s.get(key).await.unwrap().is_none());
    assert_eq!(breaker(&s), BreakerState::new(false, 0));

    server.kill();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !breaker(&s).open {
        assert!(Instant::now() < deadline, "the circuit never opened");
        let error = s.get(key).await.unwrap_err();
        assert_eq!(error.store(), Some("redis"), "{error}");
    }
    assert_eq!(breaker(&s), BreakerState::new(true, 1));
    assert_eq!(s.faults().circuit_opened, 1);
    // Open: every operation fails at once, and says where.
    let started = Instant::now();
    let errors = [
        s.get(key).await.unwrap_err(),
        s.remove(key).await.unwrap_err(),
        s.invalidate_tags(&["t"]).await.unwrap_err(),
        s.clear().await.unwrap_err(),
        s.inspect("t").await.unwrap_err(),
    ];
    assert!(started.elapsed() < Duration::from_millis(250));
    for error in errors {
        assert_eq!(error.store(), Some("redis"), "{error}");
    }
    assert_eq!(captured.lines_with("cache store circuit opened"), 1);
    assert_eq!(captured.lines_with("cache store circuit closed"), 0);

    // Redis back: past the cooldown a probe succeeds and the circuit closes.
    let _server = RedisServer::start_on(port);
    let deadline = Instant::now() + Duration::from_secs(5);
    while s.get(key).await.is_err() {
        assert!(Instant::now() < deadline, "never closed: {:?}", breaker(&s));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(breaker(&s), BreakerState::new(false, 1));
    assert_eq!(captured.lines_with("cache store circuit closed"), 1);
    let closed = captured.0.lock().unwrap().clone();
    let closed = String::from_utf8_lossy(&closed).into_owned();
    assert!(
        closed
            .lines()
            .any(|l| l.contains(" INFO ") && l.contains("cache store circuit closed")),
        "{closed}"
    );
    assert!(s.get(key).await.is_ok());
    assert_eq!(captured.lines_with("cache store circuit closed"), 1, "once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_redis_fails_with_errors_that_name_it() {
    // Nothing listens on this port: the store never connects.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = RedisStore::builder(format!("redis://127.0.0.1:{port}/"))
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let error = s.get(StoreKey::of(b"k")).await.unwrap_err();
    assert_eq!(error.store(), Some("redis"), "{error}");
    let error = s.inspect("t").await.unwrap_err();
    assert_eq!(error.store(), Some("redis"), "{error}");
    assert_eq!(
        s.metrics(),
        StoreMetrics::default().with_breaker(Some(BreakerState::new(false, 0)))
    );
}

/// The admin service over a `TieredStore`: `/stats` shows both tiers and the breaker, `/entry`
/// lists a URI's variants in each tier.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_service_shows_both_tiers() {
    use tower::ServiceExt;
    let server = RedisServer::start();
    let tiered = subscribed_tiered(&server).await;
    let layer = CacheLayer::new(tiered.clone());
    let handle = layer.handle();
    let token = tower_response_cache::PurgeToken::new("token").unwrap();
    let admin = tower_response_cache::AdminService::new(layer.handle(), token);
    let app = app(layer).nest_service("/_cache", admin);
    fill(&app, &handle, "/page", "en").await;
    fill(&app, &handle, "/page", "fr").await;

    let read = |uri: &str| {
        let request = http::Request::get(uri)
            .header("authorization", "Bearer token")
            .body(axum::body::Body::empty())
            .unwrap();
        let app = app.clone();
        async move {
            let response = app.oneshot(request).await.unwrap();
            assert_eq!(response.status(), 200);
            let body = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap();
            serde_json::from_slice::<serde_json::Value>(&body).unwrap()
        }
    };
    let s = read("/_cache/stats").await;
    assert_eq!(s["store"], "tiered");
    // Two variants and their list, in each tier.
    assert_eq!(s["tiers"]["memory"]["entries"], 3, "{s:#}");
    assert_eq!(s["tiers"]["redis"]["entries"], 3, "{s:#}");
    assert!(s["tiers"]["redis"]["bytes"].as_u64().unwrap() > 0, "{s:#}");
    assert_eq!(s["breaker"]["open"], false, "{s:#}");

    let e = read("/_cache/entry?uri=/page").await;
    let tiers: Vec<(&str, &str)> = e["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["tier"].as_str().unwrap(), v["kind"].as_str().unwrap()))
        .collect();
    for tier in ["memory", "redis"] {
        let responses = tiers.iter().filter(|t| **t == (tier, "response")).count();
        assert_eq!(responses, 2, "{tier}: {e:#}");
    }
}
