//! Cached data follows the data it copies: writes invalidate what they change, tags reach
//! across variants and routes, and a slow fill never writes old data back.

mod common;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use common::{Calls, req, send};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tower_response_cache::{CacheLayer, MemoryStore};

fn cache() -> CacheLayer<MemoryStore> {
    CacheLayer::new(MemoryStore::with_capacity_bytes(64 << 20))
}

/// A tiny versioned "database": GET reads the version, PUT/POST/PATCH/DELETE bump it. A write
/// to `/fail` answers 500, to `/missing` 404, without changing anything.
#[derive(Clone, Default)]
struct Db(Arc<AtomicU64>);

fn app(db: &Db) -> Router {
    async fn read(Path(id): Path<String>, State(db): State<Db>) -> String {
        format!("{id} v{}", db.0.load(Ordering::SeqCst))
    }
    async fn write(Path(id): Path<String>, State(db): State<Db>) -> (StatusCode, String) {
        match id.as_str() {
            "fail" => (StatusCode::INTERNAL_SERVER_ERROR, "failed".into()),
            "missing" => (StatusCode::NOT_FOUND, "no".into()),
            _ => {
                let v = db.0.fetch_add(1, Ordering::SeqCst) + 1;
                (StatusCode::OK, format!("{id} now v{v}"))
            }
        }
    }
    Router::new()
        .route(
            "/items/{id}",
            get(read).put(write).post(write).patch(write).delete(write),
        )
        .with_state(db.clone())
        .layer(cache())
}

#[tokio::test]
async fn a_write_invalidates_its_uri() {
    for method in ["PUT", "POST", "PATCH", "DELETE", "MKCOL"] {
        let db = Db::default();
        let app = app(&db);
        send(&app, common::get("/items/1")).await;
        assert_eq!(send(&app, common::get("/items/1")).await.cache(), "HIT");
        let write = send(&app, req(method, "/items/1", &[])).await;
        if method == "MKCOL" {
            // Not routed (405): an error answer, nothing invalidated.
            assert_eq!(write.status, 405);
            assert_eq!(send(&app, common::get("/items/1")).await.cache(), "HIT");
            continue;
        }
        let after = send(&app, common::get("/items/1")).await;
        assert_eq!(
            (after.cache(), after.text().as_str()),
            ("MISS", "1 v1"),
            "{method}"
        );
    }
}

#[tokio::test]
async fn error_answers_invalidate_nothing() {
    let db = Db::default();
    let app = app(&db);
    for id in ["fail", "missing"] {
        send(&app, common::get(&format!("/items/{id}"))).await;
        send(&app, req("PUT", &format!("/items/{id}"), &[])).await;
        let after = send(&app, common::get(&format!("/items/{id}"))).await;
        assert_eq!(after.cache(), "HIT", "{id}");
    }
}

#[tokio::test]
async fn every_variant_of_the_uri_goes() {
    let calls = Calls::default();
    let c = calls.clone();
    let app = Router::new()
        .route(
            "/page",
            get(move |headers: HeaderMap| {
                let n = c.hit();
                async move {
                    let lang = headers
                        .get("accept-language")
                        .map_or("none", |v| v.to_str().unwrap())
                        .to_owned();
                    ([("vary", "accept-language")], format!("{lang} {n}"))
                }
            })
            .post(|| async { "posted" }),
        )
        .layer(cache());
    for lang in ["en", "fr"] {
        send(&app, req("GET", "/page?x=1", &[("accept-language", lang)])).await;
        send(&app, req("GET", "/page?x=2", &[("accept-language", lang)])).await;
    }
    assert_eq!(calls.get(), 4);
    send(&app, req("POST", "/page", &[])).await;
    for lang in ["en", "fr"] {
        for q in ["1", "2"] {
            let got = send(
                &app,
                req("GET", &format!("/page?x={q}"), &[("accept-language", lang)]),
            )
            .await;
            assert_eq!(got.cache(), "MISS", "{lang} {q}");
        }
    }
}

#[tokio::test]
async fn locations_of_the_same_host_go_too() {
    let app = Router::new()
        .route(
            "/orders/{id}",
            get(|Path(id): Path<u32>| async move { format!("order {id}") }),
        )
        .route(
            "/orders",
            axum::routing::post(|| async {
                (
                    StatusCode::CREATED,
                    [
                        ("location", "/orders/7"),
                        ("content-location", "http://other.example/orders/8"),
                    ],
                    "created",
                )
            }),
        )
        .layer(cache());
    for id in [7, 8] {
        send(&app, common::get(&format!("/orders/{id}"))).await;
    }
    send(&app, req("POST", "/orders", &[])).await;
    assert_eq!(send(&app, common::get("/orders/7")).await.cache(), "MISS");
    assert_eq!(
        send(&app, common::get("/orders/8")).await.cache(),
        "HIT",
        "another host's URI"
    );
}

#[tokio::test]
async fn tags_reach_across_routes() {
    let app = Router::new()
        .route(
            "/products/{id}",
            get(|Path(id): Path<u32>| async move {
                (
                    [("cache-tag", format!("product:{id} products"))],
                    "a product",
                )
            }),
        )
        .route(
            "/categories/{id}",
            get(|| async { ([("cache-tag", "products")], "a category") }),
        )
        .route(
            "/other",
            get(|| async { ([("cache-tag", "other")], "other") }),
        )
        .route(
            "/admin/reindex",
            axum::routing::post(|| async { ([("cache-tag", "products")], "reindexed") }),
        )
        .layer(cache());
    for uri in ["/products/1", "/products/2", "/categories/5", "/other"] {
        let got = send(&app, common::get(uri)).await;
        assert!(
            got.headers.get("cache-tag").is_none(),
            "the tag header does not leave"
        );
    }
    let purge = send(&app, req("POST", "/admin/reindex", &[])).await;
    assert!(purge.headers.get("cache-tag").is_none());
    for uri in ["/products/1", "/products/2", "/categories/5"] {
        assert_eq!(send(&app, common::get(uri)).await.cache(), "MISS", "{uri}");
    }
    assert_eq!(send(&app, common::get("/other")).await.cache(), "HIT");
}

#[tokio::test]
async fn malformed_tag_headers() {
    let huge = "x".repeat(300);
    let many: String = (0..100).map(|i| format!("t{i} ")).collect();
    for (value, stored) in [
        (axum::http::HeaderValue::from_static(""), true),
        (axum::http::HeaderValue::from_static(" , ,"), true),
        (axum::http::HeaderValue::from_str(&huge).unwrap(), false),
        (axum::http::HeaderValue::from_str(&many).unwrap(), false),
        (
            axum::http::HeaderValue::from_bytes(b"caf\xe9").unwrap(),
            false,
        ),
    ] {
        let v = value.clone();
        let app = Router::new()
            .route(
                "/x",
                get(move || {
                    let v = v.clone();
                    async move { ([("cache-tag", v)], "x") }
                }),
            )
            .layer(cache());
        send(&app, common::get("/x")).await;
        let again = send(&app, common::get("/x")).await;
        assert_eq!(again.cache() == "HIT", stored, "{value:?}");
    }
}

#[tokio::test]
async fn ten_thousand_entries_under_one_tag() {
    let app = Router::new()
        .route(
            "/items/{id}",
            get(|Path(id): Path<u32>| async move { ([("cache-tag", "catalog")], format!("{id}")) }),
        )
        .route(
            "/purge",
            axum::routing::post(|| async { [("cache-tag", "catalog")] }),
        )
        .layer(cache());
    for i in 0..10_000 {
        send(&app, common::get(&format!("/items/{i}"))).await;
    }
    assert_eq!(send(&app, common::get("/items/9999")).await.cache(), "HIT");
    send(&app, req("POST", "/purge", &[])).await;
    for i in (0..10_000).step_by(97) {
        assert_eq!(
            send(&app, common::get(&format!("/items/{i}")))
                .await
                .cache(),
            "MISS",
            "{i}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_fill_never_writes_old_data_back() {
    // The GET handler reads the version, then takes a while before answering: a PUT can land in
    // between. After the PUT has returned, no GET may answer with the old version.
    let mut random = common::randomizer();
    for round in 0..40 {
        let db = Db::default();
        let delay = Duration::from_millis(random(30));
        let d = db.clone();
        let app = Router::new()
            .route(
                "/item",
                get(move || {
                    let v = d.0.load(Ordering::SeqCst);
                    async move {
                        tokio::time::sleep(delay).await;
                        format!("v{v}")
                    }
                })
                .put({
                    let d = db.clone();
                    move || {
                        let v = d.0.fetch_add(1, Ordering::SeqCst) + 1;
                        async move { format!("now v{v}") }
                    }
                }),
            )
            .layer(cache());
        let slow_get = {
            let app = app.clone();
            tokio::spawn(async move { send(&app, common::get("/item")).await })
        };
        tokio::time::sleep(Duration::from_millis(random(20))).await;
        let put = send(&app, req("PUT", "/item", &[])).await;
        assert_eq!(put.status, 200);
        let written = db.0.load(Ordering::SeqCst);
        // A GET right after the PUT, while the slow fill may still be in flight: it must not
        // be handed that fill's (old) response.
        let right_after = send(&app, common::get("/item")).await;
        assert_eq!(
            right_after.text(),
            format!("v{written}"),
            "round {round}: joined an old fill"
        );
        // Whatever the slow GET answered its own client, the cache must not keep it.
        let _ = slow_get.await.unwrap();
        for _ in 0..3 {
            let got = send(&app, common::get("/item")).await;
            assert_eq!(
                got.text(),
                format!("v{written}"),
                "round {round}: stale data written back"
            );
            tokio::time::sleep(Duration::from_millis(random(10))).await;
        }
    }
}

#[tokio::test]
async fn policy_taggers_tag_and_invalidate() {
    use tower_response_cache::Policy;
    let policy = Policy::new()
        .tag_with(|req, _| {
            let id = req.uri.path().rsplit('/').next().unwrap_or("").to_owned();
            vec![format!("product:{id}"), "products".to_owned()]
        })
        .invalidate_with(|req, _| {
            let id = req.uri.path().rsplit('/').next().unwrap_or("").to_owned();
            vec![format!("product:{id}")]
        });
    let app = Router::new()
        .route(
            "/products/{id}",
            get(|Path(id): Path<u32>| async move { format!("product {id}") })
                .put(|| async { "saved" }),
        )
        .route(
            "/listing/{id}",
            get(|Path(id): Path<u32>| async move {
                ([("cache-tag", format!("product:{id}"))], "listing")
            }),
        )
        .layer(cache().policy(policy));
    for uri in ["/products/1", "/products/2", "/listing/1", "/listing/2"] {
        send(&app, common::get(uri)).await;
    }
    // PUT /admin-style write on product 1: its URI, and everything tagged product:1.
    send(&app, req("PUT", "/products/1", &[])).await;
    assert_eq!(send(&app, common::get("/products/1")).await.cache(), "MISS");
    assert_eq!(send(&app, common::get("/listing/1")).await.cache(), "MISS");
    assert_eq!(send(&app, common::get("/products/2")).await.cache(), "HIT");
    assert_eq!(send(&app, common::get("/listing/2")).await.cache(), "HIT");
}

#[tokio::test]
async fn tags_cover_every_vary_variant() {
    let layer = cache();
    let handle = layer.handle();
    let app = Router::new()
        .route(
            "/page",
            get(|headers: HeaderMap| async move {
                let lang = headers["accept-language"].to_str().unwrap().to_owned();
                ([("vary", "accept-language"), ("cache-tag", "page")], lang)
            }),
        )
        .layer(layer);
    for lang in ["en", "fr"] {
        send(&app, req("GET", "/page", &[("accept-language", lang)])).await;
        let again = send(&app, req("GET", "/page", &[("accept-language", lang)])).await;
        assert_eq!((again.cache(), again.text().as_str()), ("HIT", lang));
    }
    // Two variants plus the variants list carry the tag.
    assert_eq!(handle.invalidate_tags(&["page"]).await, 3);
    for lang in ["en", "fr"] {
        let got = send(&app, req("GET", "/page", &[("accept-language", lang)])).await;
        assert_eq!((got.cache(), got.text().as_str()), ("MISS", lang));
    }
}

#[tokio::test]
async fn the_handle_invalidates_by_uri_prefix_tag_and_clears() {
    let layer = cache();
    let handle = layer.handle();
    let app =
        Router::new()
            .route(
                "/{*path}",
                get(|uri: http::Uri| async move {
                    ([("cache-tag", "all-pages")], uri.path().to_owned())
                }),
            )
            .layer(layer);
    let uris = ["/a/1", "/a/2?x=1", "/a/b/3", "/c/4", "/c/5"];
    let fill = |app: Router| async move {
        for uri in uris {
            send(&app, common::get(uri)).await;
        }
    };
    let cached = |app: Router| async move {
        let mut hits = Vec::new();
        for uri in uris {
            hits.push(send(&app, common::get(uri)).await.cache() == "HIT");
        }
        hits
    };
    fill(app.clone()).await;
    assert_eq!(handle.invalidate_uri(&"/a/2".parse().unwrap()).await, 1);
    assert_eq!(cached(app.clone()).await, [true, false, true, true, true]);

    fill(app.clone()).await;
    assert_eq!(handle.invalidate_prefix("", "/a/").await, 3);
    assert_eq!(cached(app.clone()).await, [false, false, false, true, true]);

    fill(app.clone()).await;
    assert_eq!(handle.invalidate_tags(&["all-pages"]).await, 5);
    assert_eq!(cached(app.clone()).await, [false; 5]);

    handle.clear().await;
    assert_eq!(cached(app.clone()).await, [false; 5]);

    // Warming: the next requests are hits.
    handle.clear().await;
    let requests = uris.map(|u| {
        axum::http::Request::get(u)
            .body(axum::body::Body::empty())
            .unwrap()
    });
    assert_eq!(handle.warm(app.clone(), requests).await, 5);
    assert_eq!(cached(app).await, [true; 5]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clear_during_a_slow_fill_is_not_undone() {
    let layer = cache();
    let handle = layer.handle();
    let app = Router::new()
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                "old"
            }),
        )
        .layer(layer);
    let fill = {
        let app = app.clone();
        tokio::spawn(async move { send(&app, common::get("/slow")).await })
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    handle.clear().await;
    assert_eq!(
        fill.await.unwrap().text(),
        "old",
        "the filler's own client still gets it"
    );
    assert_eq!(send(&app, common::get("/slow")).await.cache(), "MISS");
}

/// A site answering every path on every host with the host and path it saw.
fn multi_host_site() -> (Router, tower_response_cache::CacheHandle) {
    let layer = cache();
    let handle = layer.handle();
    let app = Router::new()
        .route(
            "/{*path}",
            get(|headers: HeaderMap, uri: http::Uri| async move {
                let host = headers.get("host").map_or("", |h| h.to_str().unwrap());
                format!("{host}{}", uri.path())
            }),
        )
        .layer(layer);
    (app, handle)
}

fn at(host: &str, path: &str) -> axum::http::Request<axum::body::Body> {
    req("GET", path, &[("host", host)])
}

#[tokio::test]
async fn a_path_without_a_host_means_every_host() {
    let (app, handle) = multi_host_site();
    let hosts = ["a.example", "b.example", "c.example:8080"];
    let fill = |app: Router| async move {
        for host in hosts {
            send(&app, at(host, "/products/1")).await;
            send(&app, at(host, "/products/2")).await;
        }
    };
    let hits = |app: Router, path: &'static str| async move {
        let mut hits = Vec::new();
        for host in hosts {
            hits.push(send(&app, at(host, path)).await.cache() == "HIT");
        }
        hits
    };
    fill(app.clone()).await;
    assert_eq!(
        handle.invalidate_uri(&"/products/1".parse().unwrap()).await,
        3
    );
    assert_eq!(hits(app.clone(), "/products/1").await, [false; 3]);
    assert_eq!(hits(app.clone(), "/products/2").await, [true; 3]);
    // An absolute URI still names one host, in any spelling of it.
    fill(app.clone()).await;
    let one = "http://B.Example:80/products/%31".parse().unwrap();
    assert_eq!(handle.invalidate_uri(&one).await, 1);
    assert_eq!(hits(app.clone(), "/products/1").await, [true, false, true]);
    // Prefixes: one host, or every host with "".
    fill(app.clone()).await;
    assert_eq!(
        handle
            .invalidate_prefix("c.example:8080", "/products/")
            .await,
        2
    );
    assert_eq!(hits(app.clone(), "/products/2").await, [true, true, false]);
    fill(app.clone()).await;
    assert_eq!(handle.invalidate_prefix("", "/products").await, 6);
    assert_eq!(hits(app.clone(), "/products/2").await, [false; 3]);
    // The root of every host is everything.
    fill(app.clone()).await;
    assert_eq!(handle.invalidate_prefix("", "/").await, 6);
    assert_eq!(hits(app, "/products/1").await, [false; 3]);
}

#[tokio::test]
async fn locations_are_resolved_and_normalised_like_keys() {
    let app = Router::new()
        .route(
            "/orders/{id}",
            get(|Path(id): Path<String>| async move { format!("order {id}") }),
        )
        .route(
            "/shop/orders/new",
            axum::routing::post(|headers: HeaderMap| async move {
                let location = headers["x-location"].clone();
                (StatusCode::CREATED, [("location", location)], "created")
            }),
        )
        .layer(cache());
    for location in [
        "../../orders/7",
        "/a/b/../../orders/./7",
        "HTTP://Shop.Example:80/orders/7",
        "https://shop.example:443/orders/%37",
        "//SHOP.example./orders/7",
    ] {
        send(&app, at("shop.example", "/orders/7")).await;
        assert_eq!(
            send(&app, at("shop.example", "/orders/7")).await.cache(),
            "HIT"
        );
        let write = req(
            "POST",
            "/shop/orders/new",
            &[("host", "shop.example"), ("x-location", location)],
        );
        assert_eq!(send(&app, write).await.status, 201);
        let after = send(&app, at("shop.example", "/orders/7")).await;
        assert_eq!(after.cache(), "MISS", "{location}");
    }
    // Another host's URI is left alone, however it is spelled.
    send(&app, at("shop.example", "/orders/7")).await;
    let elsewhere = req(
        "POST",
        "/shop/orders/new",
        &[
            ("host", "shop.example"),
            ("x-location", "http://shop.example.evil/orders/7"),
        ],
    );
    send(&app, elsewhere).await;
    assert_eq!(
        send(&app, at("shop.example", "/orders/7")).await.cache(),
        "HIT"
    );
}

#[tokio::test]
async fn policy_taggers_see_the_normal_form_of_a_write() {
    use std::sync::atomic::AtomicU64;
    use tower_response_cache::Policy;
    let version = Arc::new(AtomicU64::new(1));
    let (read_v, write_v) = (Arc::clone(&version), Arc::clone(&version));
    // The documented tagger: the product id from the path.
    let tagger = |req: &http::request::Parts, _: &http::response::Parts| {
        let id = req.uri.path().trim_start_matches("/products/");
        vec![format!("product:{id}")]
    };
    let layer = cache().route("/products/{id}", Policy::new().invalidate_with(tagger));
    let app = Router::new()
        .route(
            "/featured",
            get(move || {
                let v = read_v.load(Ordering::SeqCst);
                async move { ([("cache-tag", "product:42")], format!("featured v{v}")) }
            }),
        )
        .route(
            "/products/{id}",
            axum::routing::put(move |Path(id): Path<u32>| {
                write_v.fetch_add(1, Ordering::SeqCst);
                async move { format!("updated {id}") }
            }),
        )
        .layer(layer);
    send(&app, common::get("/featured")).await;
    // axum decodes the id: this updates product 42, and the tagger must see "42".
    assert_eq!(
        send(&app, req("PUT", "/products/%34%32", &[])).await.status,
        200
    );
    let after = send(&app, common::get("/featured")).await;
    assert_eq!(
        (after.cache(), after.text().as_str()),
        ("MISS", "featured v2")
    );
}

#[tokio::test]
async fn a_write_in_any_encoding_of_reserved_characters_invalidates() {
    let db = Db::default();
    let app = app(&db);
    // A browser sends the raw spelling; scripts write with encodeURIComponent.
    for (read, write) in [
        ("/items/ann@example.com", "/items/ann%40example.com"),
        ("/items/caf%C3%A9", "/items/caf\u{e9}"),
        ("/items/a:b", "/items/a%3Ab"),
    ] {
        send(&app, common::get(read)).await;
        assert_eq!(send(&app, common::get(read)).await.cache(), "HIT", "{read}");
        assert_eq!(send(&app, req("PUT", write, &[])).await.status, 200);
        assert_eq!(
            send(&app, common::get(read)).await.cache(),
            "MISS",
            "{write}"
        );
    }
}

#[tokio::test]
async fn a_prefix_that_is_not_a_path_removes_nothing() {
    let (app, handle) = multi_host_site();
    for path in ["/products/1", "/about"] {
        send(&app, at("shop.example", path)).await;
    }
    for typo in ["products/", "", "*"] {
        assert_eq!(handle.invalidate_prefix("", typo).await, 0, "{typo:?}");
    }
    assert_eq!(
        send(&app, at("shop.example", "/about")).await.cache(),
        "HIT"
    );
    assert_eq!(
        send(&app, at("shop.example", "/products/1")).await.cache(),
        "HIT"
    );
}

/// A memory store whose puts wait at two gates: before the entry goes in, and after.
struct GatedPuts {
    memory: MemoryStore,
    before: tokio::sync::Semaphore,
    after: tokio::sync::Semaphore,
    inserted: tokio::sync::Notify,
}

impl tower_response_cache::Store for GatedPuts {
    async fn get(
        &self,
        key: tower_response_cache::StoreKey,
    ) -> Result<Option<Arc<tower_response_cache::store::Entry>>, tower_response_cache::StoreError>
    {
        self.memory.get(key).await
    }
    async fn put(
        &self,
        key: tower_response_cache::StoreKey,
        entry: Arc<tower_response_cache::store::Entry>,
        ttl: Duration,
    ) -> Result<tower_response_cache::PutOutcome, tower_response_cache::StoreError> {
        self.before.acquire().await.unwrap().forget();
        let outcome = self.memory.put(key, entry, ttl).await;
        self.inserted.notify_one();
        self.after.acquire().await.unwrap().forget();
        outcome
    }
    async fn remove(
        &self,
        key: tower_response_cache::StoreKey,
    ) -> Result<(), tower_response_cache::StoreError> {
        self.memory.remove(key).await
    }
    async fn invalidate_tags<'a>(
        &'a self,
        tags: &'a [&'a str],
    ) -> Result<u64, tower_response_cache::StoreError> {
        self.memory.invalidate_tags(tags).await
    }
    async fn clear(&self) -> Result<u64, tower_response_cache::StoreError> {
        self.memory.clear().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_never_returns_while_an_overtaken_fill_is_visible() {
    // A fill read v0 and is writing it as the write lands: once the write has returned, no
    // request may get v0, even for the moment between the fill's write and its own undo.
    let store = Arc::new(GatedPuts {
        memory: MemoryStore::with_capacity_bytes(1 << 20),
        before: tokio::sync::Semaphore::new(0),
        after: tokio::sync::Semaphore::new(0),
        inserted: tokio::sync::Notify::new(),
    });
    let db = Db::default();
    let app = Router::new()
        .route(
            "/items/{id}",
            get(|Path(id): Path<String>, State(db): State<Db>| async move {
                format!("{id} v{}", db.0.load(Ordering::SeqCst))
            })
            .put(|State(db): State<Db>| async move {
                db.0.fetch_add(1, Ordering::SeqCst);
                "written"
            }),
        )
        .with_state(db.clone())
        .layer(CacheLayer::from_shared_store(Arc::clone(&store)));
    let fill = tokio::spawn({
        let app = app.clone();
        async move { send(&app, common::get("/items/1")).await }
    });
    let write = tokio::spawn({
        let app = app.clone();
        async move {
            // After the fill has read v0 (its put waits at the first gate).
            tokio::time::sleep(Duration::from_millis(50)).await;
            send(&app, req("PUT", "/items/1", &[])).await
        }
    });
    // Let the write go as far as it can while the fill's put waits.
    tokio::time::sleep(Duration::from_millis(200)).await;
    store.before.add_permits(1);
    store.inserted.notified().await;
    if write.is_finished() {
        // The write returned: v0 is in the store for now, and must not be served.
        let got = send(&app, common::get("/items/1")).await;
        assert_eq!(got.text(), "1 v1", "served a fill the write had overtaken");
    }
    // From here on, puts pass.
    store.after.add_permits(1000);
    store.before.add_permits(1000);
    assert_eq!(write.await.unwrap().status, 200);
    assert_eq!(fill.await.unwrap().text(), "1 v0");
    assert_eq!(send(&app, common::get("/items/1")).await.text(), "1 v1");
}
