//! Repeated GETs are answered from the cache: HIT/MISS, Age, HEAD, stats, zero-copy bodies.

mod common;

use axum::Router;
use axum::routing::get;
use common::{Calls, send};
use http::HeaderName;
use std::time::Duration;
use tower_response_cache::{CacheLayer, MemoryStore};

fn app(calls: Calls, layer: CacheLayer<MemoryStore>) -> Router {
    Router::new()
        .route(
            "/items/{id}",
            get(move |axum::extract::Path(id): axum::extract::Path<u32>| {
                let n = calls.hit();
                async move { format!("item {id} (call {n})") }
            }),
        )
        .layer(layer)
}

fn layer() -> CacheLayer<MemoryStore> {
    CacheLayer::new(MemoryStore::with_capacity_bytes(1 << 20))
}

#[tokio::test]
async fn second_get_is_a_hit_without_calling_the_handler() {
    let calls = Calls::default();
    let layer = layer();
    let stats = layer.stats();
    let app = app(calls.clone(), layer);

    let first = send(&app, common::get("/items/1")).await;
    assert_eq!(first.cache(), "MISS");
    assert_eq!(first.text(), "item 1 (call 1)");
    assert!(first.headers.get("age").is_none());

    let second = send(&app, common::get("/items/1")).await;
    assert_eq!(second.cache(), "HIT");
    assert_eq!(second.text(), "item 1 (call 1)");
    assert_eq!(second.headers["age"], "0");
    assert_eq!(
        second.headers["content-type"],
        first.headers["content-type"]
    );
    assert_eq!(calls.get(), 1);

    let other = send(&app, common::get("/items/2")).await;
    assert_eq!(other.cache(), "MISS");
    assert_eq!(calls.get(), 2);

    let s = stats.snapshot();
    assert_eq!((s.hits, s.misses, s.stores, s.bypasses), (1, 2, 2, 0));
    assert!((s.hit_ratio() - 1.0 / 3.0).abs() < 1e-9);
}

#[tokio::test]
async fn head_is_answered_from_the_get_entry_without_a_body() {
    let calls = Calls::default();
    let app = app(calls.clone(), layer());
    let got = send(&app, common::get("/items/7")).await;
    let head = send(&app, common::req("HEAD", "/items/7", &[])).await;
    assert_eq!(head.cache(), "HIT");
    assert!(head.body.is_empty());
    assert_eq!(head.headers["content-length"], got.body.len().to_string());
    assert_eq!(calls.get(), 1);
    // A HEAD miss goes to the origin and stores nothing (there is no body to store).
    let head = send(&app, common::req("HEAD", "/items/8", &[])).await;
    assert_eq!(head.cache(), "MISS");
    assert_eq!(send(&app, common::get("/items/8")).await.cache(), "MISS");
}

#[tokio::test]
async fn entries_expire_after_the_ttl_and_age_grows() {
    let calls = Calls::default();
    let app = app(calls.clone(), layer().ttl(Duration::from_millis(1500)));
    send(&app, common::get("/items/1")).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let hit = send(&app, common::get("/items/1")).await;
    assert_eq!(hit.cache(), "HIT");
    assert_eq!(hit.headers["age"], "1");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let expired = send(&app, common::get("/items/1")).await;
    assert_eq!(expired.cache(), "MISS");
    assert_eq!(expired.text(), "item 1 (call 2)");
}

#[tokio::test]
async fn cache_header_can_be_renamed_or_removed() {
    let app1 = app(
        Calls::default(),
        layer().cache_header(HeaderName::from_static("x-edge")),
    );
    let got = send(&app1, common::get("/items/1")).await;
    assert_eq!(got.headers["x-edge"], "MISS");
    assert!(got.headers.get("x-cache").is_none());
    let app2 = app(Calls::default(), layer().without_cache_header());
    send(&app2, common::get("/items/1")).await;
    let got = send(&app2, common::get("/items/1")).await;
    assert!(got.headers.get("x-cache").is_none());
    assert!(got.headers.get("age").is_some());
}

#[tokio::test]
async fn hits_share_the_stored_bytes() {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let app = app(Calls::default(), layer());
    send(&app, common::get("/items/1")).await;
    let mut pointers = Vec::new();
    for _ in 0..2 {
        let response = app.clone().oneshot(common::get("/items/1")).await.unwrap();
        let mut body = response.into_body();
        let frame = body.frame().await.unwrap().unwrap();
        pointers.push(frame.into_data().unwrap().as_ptr());
    }
    assert_eq!(
        pointers[0], pointers[1],
        "each hit must share one stored buffer"
    );
}

#[tokio::test]
async fn the_layer_works_on_a_bare_tower_service() {
    use bytes::Bytes;
    use http_body_util::{Empty, Full};
    use tower::{Layer, ServiceExt, service_fn};
    let calls = Calls::default();
    let c = calls.clone();
    let svc = layer().layer(service_fn(move |_req: http::Request<Empty<Bytes>>| {
        c.hit();
        async move {
            Ok::<_, std::io::Error>(http::Response::new(Full::new(Bytes::from_static(b"bare"))))
        }
    }));
    for expected in ["MISS", "HIT"] {
        let res = svc
            .clone()
            .oneshot(http::Request::get("/x").body(Empty::new()).unwrap())
            .await
            .unwrap();
        let got = common::read(res).await;
        assert_eq!(got.cache(), expected);
        assert_eq!(got.text(), "bare");
    }
    assert_eq!(calls.get(), 1);
}

#[tokio::test]
async fn inner_errors_are_kept() {
    use tower::{Layer, ServiceExt, service_fn};
    #[derive(Debug, PartialEq)]
    struct Boom;
    type Empty = http_body_util::Empty<bytes::Bytes>;
    let svc = layer().layer(service_fn(|_req: http::Request<Empty>| async {
        Err::<http::Response<Empty>, _>(Boom)
    }));
    let err = svc
        .oneshot(http::Request::get("/x").body(Empty::new()).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err, Boom);
}

/// Two layers on one store, named differently in `Cache-Status`: a hit's head, remembered for
/// the second by the thread's copy of the entry, is never the other layer's.
#[tokio::test]
async fn two_layers_on_one_store_each_answer_with_their_own_head() {
    let store = MemoryStore::with_capacity_bytes(1 << 20);
    let calls = Calls::default();
    let a = app(calls.clone(), CacheLayer::new(store.clone()));
    let b = app(
        calls.clone(),
        CacheLayer::new(store).cache_status_name("edge"),
    );
    assert_eq!(send(&a, common::get("/items/1")).await.cache(), "MISS");
    for _ in 0..3 {
        for (app, name) in [(&a, "tower-response-cache"), (&b, "edge")] {
            let hit = send(app, common::get("/items/1")).await;
            assert_eq!(hit.cache(), "HIT");
            let status = hit.headers["cache-status"].to_str().unwrap();
            assert!(status.starts_with(&format!("{name}; hit")), "{status}");
        }
    }
    assert_eq!(calls.get(), 1);
}
