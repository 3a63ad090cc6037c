//! The admin service's reads: `GET <mount>/stats` and `GET <mount>/entry?uri=...`, behind the
//! purge token, mounted outside the cache layer (never cached).

mod common;

use axum::Router;
use axum::routing::get;
use common::{Got, req, send};
use serde_json::Value;
use std::time::Duration;
use tower_response_cache::{AdminService, CacheLayer, MemoryStore, Policy, PurgeToken};

const HOST: &str = "shop.example";
const AUTH: (&str, &str) = ("authorization", "Bearer s3cret-token");

/// The recommended mounting: the site's routes, the cache layer over them, and the admin
/// service added after `layer` (so the layer does not wrap it), under `/_cache`.
fn app(layer: CacheLayer<MemoryStore>) -> Router {
    let admin = AdminService::new(layer.handle(), PurgeToken::new("s3cret-token").unwrap());
    Router::new()
        .route("/a/{id}", get(|| async { "a page" }))
        .route("/b/{id}", get(|| async { "b page" }))
        .route(
            "/v",
            get(|headers: http::HeaderMap| async move {
                let language = headers
                    .get("accept-language")
                    .map_or("none", |v| v.to_str().unwrap())
                    .to_owned();
                (
                    [
                        ("vary", "accept-language"),
                        ("content-type", "text/plain; charset=utf-8"),
                        ("cache-tag", "product product:7"),
                        ("cache-status", "origin; hit"),
                    ],
                    format!("page in {language}"),
                )
            }),
        )
        .route(
            "/bin",
            get(|| async { ([("content-type", "image/png")], vec![0x89u8, b'P', 0, 0xff]) }),
        )
        .layer(layer)
        .nest_service("/_cache", admin)
}

fn layer() -> CacheLayer<MemoryStore> {
    CacheLayer::new(MemoryStore::with_capacity_bytes(16 << 20))
        .policy(
            Policy::new()
                .ttl(Duration::from_secs(60))
                .stale_while_revalidate(Duration::from_secs(30)),
        )
        .route("/a/{id}", Policy::new().ttl(Duration::from_secs(60)))
        .route("/b/{id}", Policy::new().ttl(Duration::from_secs(60)))
}

async fn page(app: &Router, path: &str, headers: &[(&str, &str)]) -> Got {
    let mut all = vec![("host", HOST)];
    all.extend_from_slice(headers);
    send(app, req("GET", path, &all)).await
}

/// A read with the token, its JSON.
async fn read(app: &Router, path: &str) -> Value {
    let got = send(app, req("GET", path, &[AUTH])).await;
    assert_eq!(got.status, 200, "{path}: {}", got.text());
    assert_eq!(got.headers["content-type"], "application/json");
    serde_json::from_slice(&got.body).expect("JSON")
}

#[tokio::test]
async fn stats_counts_outcomes_by_route_tiers_and_bypass_reasons() {
    let layer = layer();
    let handle = layer.handle();
    let app = app(layer);
    assert_eq!(page(&app, "/a/1", &[]).await.cache(), "MISS");
    handle.flush().await;
    assert_eq!(page(&app, "/a/1", &[]).await.cache(), "HIT");
    assert_eq!(page(&app, "/b/1", &[]).await.cache(), "MISS");
    assert_eq!(page(&app, "/b/2", &[]).await.cache(), "MISS");
    handle.flush().await;
    assert_eq!(page(&app, "/b/2", &[]).await.cache(), "HIT");
    // Bypasses: a cookie on /a, a method (the origin answers 405: nothing invalidated) on /b.
    let cookie = page(&app, "/a/1", &[("cookie", "session=1")]).await;
    assert_eq!(cookie.cache(), "BYPASS");
    let post = send(&app, req("POST", "/b/1", &[("host", HOST)])).await;
    assert_eq!((post.status, post.cache()), (405, "BYPASS"));

    let s = read(&app, "/_cache/stats").await;
    assert_eq!(s["store"], "memory");
    assert_eq!(
        (&s["hits"], &s["misses"], &s["bypasses"], &s["stale"]),
        (&2.into(), &3.into(), &2.into(), &0.into()),
        "{s:#}"
    );
    assert_eq!(s["hit_ratio"].as_f64(), Some(2.0 / 5.0));
    assert_eq!(s["stores"], 3);
    assert_eq!(s["in_flight"], 0);
    assert_eq!(
        s["bypass_reasons"],
        serde_json::json!({ "cookie": 1, "method": 1 })
    );
    let routes = s["routes"].as_array().unwrap();
    let route = |name: &str| {
        routes
            .iter()
            .find(|r| r["route"] == name)
            .unwrap_or_else(|| panic!("{name} in {routes:?}"))
            .clone()
    };
    let outcomes = |r: Value| {
        [
            "hits",
            "misses",
            "bypasses",
            "stale",
            "passes",
            "revalidated",
        ]
        .map(|k| r[k].as_u64().unwrap())
    };
    assert_eq!(outcomes(route("/a/{id}")), [1, 1, 1, 0, 0, 0]);
    assert_eq!(outcomes(route("/b/{id}")), [1, 2, 1, 0, 0, 0]);
    assert_eq!(outcomes(route("default")), [0; 6]);
    // Three entries in memory, weighed; no shared tier and no breaker for a memory store.
    let memory = &s["tiers"]["memory"];
    assert_eq!(memory["entries"], 3, "{s:#}");
    assert!(memory["bytes"].as_u64().unwrap() > 3 * "a page".len() as u64);
    assert_eq!(memory["evictions"], 0);
    assert_eq!(s["entries"], memory["entries"]);
    assert_eq!(s["weighted_bytes"], memory["bytes"]);
    assert!(s["tiers"]["redis"].is_null(), "{s:#}");
    assert!(s["breaker"].is_null());
    assert!(s["shared_entries"].is_null());

    // A purge through the same service shows among the invalidations, by kind.
    let purged = send(&app, req("POST", "/_cache?uri=%2Fa%2F1", &[AUTH])).await;
    assert_eq!(
        (purged.status, purged.text().as_str()),
        (200, "purged 1 entries\n")
    );
    let s = read(&app, "/_cache/stats").await;
    assert_eq!(
        s["invalidations_by_kind"],
        serde_json::json!({ "purge": 1 })
    );
    assert_eq!(s["tiers"]["memory"]["entries"], 2, "{s:#}");
}

#[tokio::test]
async fn entry_lists_each_vary_variant_with_its_fields_and_no_body() {
    let layer = layer();
    let handle = layer.handle();
    let app = app(layer);
    for language in ["en", "de"] {
        let got = page(&app, "/v", &[("accept-language", language)]).await;
        assert_eq!(got.cache(), "MISS");
    }
    handle.flush().await;
    assert_eq!(
        page(&app, "/v", &[("accept-language", "de")]).await.cache(),
        "HIT"
    );

    let e = read(&app, "/_cache/entry?uri=http%3A%2F%2Fshop.example%2Fv").await;
    assert_eq!(e["uri"], "http://shop.example/v");
    assert_eq!((&e["total"], &e["truncated"]), (&3.into(), &false.into()));
    let items = e["variants"].as_array().unwrap();
    // The variants list first, then the two responses.
    let kinds: Vec<&str> = items.iter().map(|v| v["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["variants", "response", "response"], "{e:#}");
    assert_eq!(items[0]["vary"], serde_json::json!(["accept-language"]));
    assert!(items[0]["status"].is_null());

    let responses = &items[1..];
    let keys: Vec<&str> = responses
        .iter()
        .map(|v| v["key"].as_str().unwrap())
        .collect();
    assert_ne!(keys[0], keys[1], "each variant under its own key");
    for v in responses {
        let key = v["key"].as_str().unwrap();
        assert!(
            key.len() == 32 && key.bytes().all(|b| b.is_ascii_hexdigit()),
            "{key}"
        );
        assert_eq!(v["tier"], "memory");
        assert_eq!(v["status"], 200);
        assert_eq!((&v["authority"], &v["path"]), (&HOST.into(), &"/v".into()));
        assert!(v["query"].is_null());
        assert_eq!(v["state"], "fresh");
        assert!(v["age_s"].as_u64().unwrap() <= 1);
        let ttl = v["ttl_s"].as_i64().unwrap();
        assert!((58..=60).contains(&ttl), "{ttl}");
        assert_eq!(v["stale_while_revalidate_s"], 30);
        assert_eq!(v["stale_if_error_s"], 0);
        assert_eq!(v["must_revalidate"], false);
        assert_eq!(v["hidden"], false);
        assert_eq!(v["tags"], serde_json::json!(["product", "product:7"]));
        let internal = v["internal_tags"].as_array().unwrap();
        assert!(
            internal.contains(&"uri shop.example/v".into()),
            "{internal:?}"
        );
        let body_bytes = v["body_bytes"].as_u64().unwrap();
        assert_eq!(body_bytes, "page in en".len() as u64);
        assert!(v["size_bytes"].as_u64().unwrap() > body_bytes);
        assert!(v.get("body").is_none(), "no body unless asked: {v:#}");
        // The origin's fields as stored; none of the cache's own.
        let headers: Vec<(&str, &str)> = v["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| (h[0].as_str().unwrap(), h[1].as_str().unwrap()))
            .collect();
        assert!(
            headers.contains(&("vary", "accept-language")),
            "{headers:?}"
        );
        assert!(headers.contains(&("content-type", "text/plain; charset=utf-8")));
        assert!(
            headers.contains(&("cache-status", "origin; hit")),
            "{headers:?}"
        );
        let names: Vec<&str> = headers.iter().map(|h| h.0).collect();
        assert_eq!(names.iter().filter(|n| **n == "cache-status").count(), 1);
        assert!(
            !names.contains(&"x-cache") && !names.contains(&"age"),
            "{names:?}"
        );
    }
    let text = e.to_string();
    assert!(!text.contains("page in"), "no body anywhere: {text}");

    // A path alone names every host; the same entries.
    let any = read(&app, "/_cache/entry?uri=%2Fv").await;
    assert_eq!(any["total"], 3);
    // Another host has none of them.
    let other = read(&app, "/_cache/entry?uri=http%3A%2F%2Fother.example%2Fv").await;
    assert_eq!(other["total"], 0);
}

#[tokio::test]
async fn body_true_includes_each_body_as_text_or_base64() {
    let layer = layer();
    let handle = layer.handle();
    let app = app(layer);
    page(&app, "/v", &[("accept-language", "en")]).await;
    page(&app, "/bin", &[]).await;
    handle.flush().await;

    let e = read(&app, "/_cache/entry?uri=%2Fv&body=true").await;
    let response = e["variants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["kind"] == "response")
        .unwrap();
    assert_eq!(response["body"], "page in en");
    assert_eq!(response["body_encoding"], "utf-8");
    assert_eq!(response["body_truncated"], false);

    let e = read(&app, "/_cache/entry?uri=%2Fbin&body=true").await;
    let response = &e["variants"][0];
    assert_eq!(response["body"], "iVAA/w==", "{e:#}");
    assert_eq!(response["body_encoding"], "base64");
}

#[tokio::test]
async fn entry_for_a_uri_not_cached_is_an_empty_list_and_queries_select() {
    let layer = layer();
    let handle = layer.handle();
    let app = app(layer);
    let e = read(&app, "/_cache/entry?uri=%2Fnothing%2Fhere").await;
    assert_eq!(e["variants"], serde_json::json!([]));
    assert_eq!((&e["total"], &e["truncated"]), (&0.into(), &false.into()));

    page(&app, "/a/1?x=1&y=2", &[]).await;
    page(&app, "/a/1?x=3", &[]).await;
    page(&app, "/a/1", &[]).await;
    handle.flush().await;
    let queries = |e: &Value| -> Vec<Value> {
        e["variants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["query"].clone())
            .collect()
    };
    let all = read(&app, "/_cache/entry?uri=%2Fa%2F1").await;
    assert_eq!(all["total"], 3, "without a query: every query of the path");
    assert!(queries(&all).contains(&"x=3".into()));
    // With a query: the entries keyed by those parameters, in any order.
    let one = read(&app, "/_cache/entry?uri=%2Fa%2F1%3Fy%3D2%26x%3D1").await;
    assert_eq!(queries(&one), [Value::from("x=1&y=2")], "{one:#}");
    let none = read(&app, "/_cache/entry?uri=%2Fa%2F1%3Fx%3D9").await;
    assert_eq!(none["total"], 0);
}

#[tokio::test]
async fn reads_need_the_token_and_say_nothing_without_it() {
    let layer = layer();
    let handle = layer.handle();
    let app = app(layer);
    page(&app, "/v", &[("accept-language", "en")]).await;
    handle.flush().await;
    for path in [
        "/_cache/stats",
        "/_cache/entry?uri=%2Fv&body=true",
        "/_cache/entry",
    ] {
        for auth in [None, Some("Bearer wrong"), Some("Basic s3cret-token")] {
            let headers: Vec<(&str, &str)> =
                auth.map(|a| ("authorization", a)).into_iter().collect();
            let got = send(&app, req("GET", path, &headers)).await;
            assert_eq!(got.status, 401, "{path} {auth:?}");
            assert_eq!(got.text(), "a valid bearer token is required\n");
            assert!(got.headers.contains_key("www-authenticate"));
        }
        // With the token, the same request is answered.
        let got = send(&app, req("GET", path, &[AUTH])).await;
        assert!(matches!(got.status, 200 | 400), "{path}: {}", got.status);
        assert_ne!(got.text(), "a valid bearer token is required\n");
    }
}

#[tokio::test]
async fn unreadable_uris_are_400_and_wrong_methods_405() {
    let app = app(layer());
    for query in [
        "uri=not%20a%20uri",
        "uri=shop.example",
        "uri=relative%2Fpath",
        "",
        "uri=%2Fv&bogus=1",
        "uri=http%3A%2F%2Fbad%20host%2Fv",
    ] {
        let got = send(&app, req("GET", &format!("/_cache/entry?{query}"), &[AUTH])).await;
        assert_eq!(got.status, 400, "{query}: {}", got.text());
        assert!(
            got.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
    }
    let got = send(&app, req("POST", "/_cache/stats", &[AUTH])).await;
    assert_eq!(
        (got.status, got.headers["allow"].to_str().unwrap()),
        (405, "GET, HEAD")
    );
    let got = send(&app, req("DELETE", "/_cache/entry?uri=%2Fv", &[AUTH])).await;
    assert_eq!(
        (got.status, got.headers["allow"].to_str().unwrap()),
        (405, "GET, HEAD")
    );
    // The mount path itself purges, and names the reads to a GET.
    let got = send(&app, req("GET", "/_cache", &[AUTH])).await;
    assert_eq!(
        (got.status, got.headers["allow"].to_str().unwrap()),
        (405, "POST, DELETE")
    );
    assert!(got.text().contains("/stats"), "{}", got.text());
}

#[tokio::test]
async fn the_admin_service_mounted_outside_the_layer_is_never_cached() {
    let layer = layer();
    let (stats, handle) = (layer.stats(), layer.handle());
    let app = app(layer);
    let first = send(&app, req("GET", "/_cache/stats", &[AUTH])).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.cache(), "", "the layer never saw it");
    assert_eq!(first.headers["cache-control"], "no-store");
    assert!(!first.headers.contains_key("cache-status"));
    let before: Value = serde_json::from_slice(&first.body).unwrap();
    assert_eq!(before["misses"], 0);

    page(&app, "/a/1", &[]).await;
    handle.flush().await;
    let second = send(&app, req("GET", "/_cache/stats", &[AUTH])).await;
    assert_eq!(second.cache(), "");
    let after: Value = serde_json::from_slice(&second.body).unwrap();
    assert_eq!(after["misses"], 1, "a fresh answer, not a stored one");
    assert_eq!(after["entries"], 1);

    let entry = send(&app, req("GET", "/_cache/entry?uri=%2Fa%2F1", &[AUTH])).await;
    assert_eq!(entry.headers["cache-control"], "no-store");
    assert_eq!(entry.cache(), "");
    // The cache counted the page only: the admin requests are neither misses nor bypasses.
    let s = stats.snapshot();
    assert_eq!((s.misses, s.bypasses, s.hits), (1, 0, 0), "{s:?}");
}

/// A purge-only service purges, and reads nothing.
#[tokio::test]
async fn a_purge_only_service_answers_no_reads() {
    let layer = layer();
    let admin =
        AdminService::new(layer.handle(), PurgeToken::new("s3cret-token").unwrap()).purge_only();
    let app = Router::new()
        .route("/a/{id}", get(|| async { "a page" }))
        .layer(layer)
        .nest_service("/_cache", admin);
    for path in ["/_cache/stats", "/_cache/entry?uri=/a/1"] {
        let got = send(&app, req("GET", path, &[AUTH])).await;
        assert_eq!(got.status, 404, "{path}");
        assert!(!got.text().contains('{'), "{path}: {}", got.text());
    }
    let purge = req("POST", "/_cache?all=true", &[AUTH]);
    assert_eq!(send(&app, purge).await.status, 200);
}
