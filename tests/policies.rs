//! Per-route policies (with axum's MatchedPath), per-response overrides, statuses, custom keys.

mod common;

use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Extension, Router};
use common::{Calls, req, send};
use http::StatusCode;
use std::time::Duration;
use tower_response_cache::{CacheLayer, CacheOverride, Cookies, MemoryStore, Policy, StatusSet};

fn counting(calls: &Calls, name: &'static str) -> axum::routing::MethodRouter {
    let calls = calls.clone();
    get(move || {
        let n = calls.hit();
        async move { format!("{name} {n}") }
    })
}

fn store() -> MemoryStore {
    MemoryStore::with_capacity_bytes(1 << 20)
}

#[tokio::test]
async fn routes_select_policies_first_match_wins() {
    let calls = Calls::default();
    let layer = CacheLayer::new(store())
        .route("/account/{*rest}", Policy::bypass())
        .route(
            "/prices/{id}",
            Policy::new().ttl(Duration::from_millis(300)),
        )
        .route("/{*all}", Policy::new().ttl(Duration::from_secs(60)));
    let app = Router::new()
        .route("/account/settings", counting(&calls, "settings"))
        .route("/prices/{id}", counting(&calls, "price"))
        .route("/about", counting(&calls, "about"))
        .layer(layer);

    assert_eq!(
        send(&app, common::get("/account/settings")).await.cache(),
        "BYPASS"
    );
    assert_eq!(
        send(&app, common::get("/account/settings")).await.cache(),
        "BYPASS"
    );
    send(&app, common::get("/prices/1")).await;
    send(&app, common::get("/about")).await;
    assert_eq!(send(&app, common::get("/prices/1")).await.cache(), "HIT");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(send(&app, common::get("/prices/1")).await.cache(), "MISS");
    assert_eq!(send(&app, common::get("/about")).await.cache(), "HIT");
}

#[tokio::test]
async fn nested_routers_match_on_the_route_template() {
    // Inside a nested router axum strips "/api" from the URI; MatchedPath keeps the full template.
    let calls = Calls::default();
    let layer = CacheLayer::new(store()).route("/api/live/{id}", Policy::bypass());
    let api = Router::new()
        .route("/live/{id}", counting(&calls, "live"))
        .route("/static/{id}", counting(&calls, "static"))
        .layer(layer);
    let app = Router::new().nest("/api", api);
    send(&app, common::get("/api/live/1")).await;
    assert_eq!(
        send(&app, common::get("/api/live/1")).await.cache(),
        "BYPASS"
    );
    send(&app, common::get("/api/static/1")).await;
    assert_eq!(
        send(&app, common::get("/api/static/1")).await.cache(),
        "HIT"
    );
}

#[test]
fn invalid_route_patterns_are_errors() {
    let err = CacheLayer::new(store())
        .try_route("no-slash", Policy::new())
        .unwrap_err();
    assert!(err.to_string().contains("must start with '/'"));
}

#[tokio::test]
async fn handlers_override_per_response() {
    let calls = Calls::default();
    let c1 = calls.clone();
    let c2 = calls.clone();
    let c3 = calls.clone();
    let app = Router::new()
        .route(
            "/short",
            get(move || {
                c1.hit();
                async {
                    (
                        Extension(CacheOverride::ttl(Duration::from_millis(200))),
                        "short",
                    )
                }
            }),
        )
        .route(
            "/never",
            get(move || {
                c2.hit();
                async { (Extension(CacheOverride::no_store()), "never").into_response() }
            }),
        )
        .route(
            "/header",
            get(move || {
                c3.hit();
                async { ([("x-cache-override", "no-store")], "header") }
            }),
        )
        .layer(CacheLayer::new(store()));

    send(&app, common::get("/short")).await;
    assert_eq!(send(&app, common::get("/short")).await.cache(), "HIT");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(send(&app, common::get("/short")).await.cache(), "MISS");

    for path in ["/never", "/header"] {
        let first = send(&app, common::get(path)).await;
        assert!(first.headers.get("x-cache-override").is_none(), "stripped");
        assert_eq!(
            send(&app, common::get(path)).await.cache(),
            "MISS",
            "{path}"
        );
    }
}

#[tokio::test]
async fn an_override_cannot_store_what_is_unsafe_to_share() {
    let app = Router::new()
        .route(
            "/me",
            get(|| async {
                (
                    Extension(CacheOverride::ttl(Duration::from_secs(60))),
                    [("cache-control", "private")],
                    "mine",
                )
            }),
        )
        .layer(CacheLayer::new(store()));
    send(&app, common::get("/me")).await;
    assert_eq!(send(&app, common::get("/me")).await.cache(), "MISS");
}

#[tokio::test]
async fn statuses_are_configurable() {
    let app = Router::new()
        .route(
            "/gone",
            get(|| async { (StatusCode::NOT_FOUND, "no such thing") }),
        )
        .route(
            "/oops",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "oops") }),
        )
        .route(
            "/found",
            get(|| async { (StatusCode::FOUND, [("location", "/x")]) }),
        );
    let default = app.clone().layer(CacheLayer::new(store()));
    send(&default, common::get("/gone")).await;
    assert_eq!(send(&default, common::get("/gone")).await.cache(), "HIT");
    send(&default, common::get("/oops")).await;
    assert_eq!(send(&default, common::get("/oops")).await.cache(), "MISS");

    let custom = app.layer(
        CacheLayer::new(store()).policy(
            Policy::new().statuses(
                StatusSet::DEFAULT
                    .with(StatusCode::FOUND)
                    .without(StatusCode::NOT_FOUND),
            ),
        ),
    );
    send(&custom, common::get("/found")).await;
    assert_eq!(send(&custom, common::get("/found")).await.cache(), "HIT");
    send(&custom, common::get("/gone")).await;
    assert_eq!(send(&custom, common::get("/gone")).await.cache(), "MISS");
}

#[derive(Clone)]
struct UserId(u32);

#[tokio::test]
async fn custom_keys_from_extensions_cookies_and_queries() {
    let calls = Calls::default();
    let c = calls.clone();
    let layer = CacheLayer::new(store())
        .policy(Policy::new().cookies(Cookies::Ignore))
        .key(|req, key| {
            key.sort_query().drop_query_param("utm_*").cookie("theme");
            match req.extensions.get::<UserId>() {
                Some(user) => {
                    key.value("user", user.0.to_le_bytes());
                }
                None => {
                    key.bypass();
                }
            }
        });
    let app = Router::new()
        .route(
            "/feed",
            get(move |Extension(UserId(user)): Extension<UserId>| {
                let n = c.hit();
                async move { format!("feed of {user} ({n})") }
            }),
        )
        .layer(layer)
        // An "auth layer" outside the cache that sets the user id.
        .layer(axum::middleware::from_fn(
            |mut request: axum::extract::Request, next: axum::middleware::Next| async move {
                if let Some(user) = request.headers().get("x-user") {
                    let id = user.to_str().unwrap().parse().unwrap();
                    request.extensions_mut().insert(UserId(id));
                }
                next.run(request).await
            },
        ));

    let alice = send(&app, req("GET", "/feed?b=2&a=1", &[("x-user", "1")])).await;
    assert_eq!(alice.text(), "feed of 1 (1)");
    let alice_again = send(
        &app,
        req("GET", "/feed?a=1&utm_source=x&b=2", &[("x-user", "1")]),
    )
    .await;
    assert_eq!(
        (alice_again.cache(), alice_again.text().as_str()),
        ("HIT", "feed of 1 (1)")
    );
    let bob = send(&app, req("GET", "/feed?a=1&b=2", &[("x-user", "2")])).await;
    assert_eq!(
        (bob.cache(), bob.text().as_str()),
        ("MISS", "feed of 2 (2)")
    );
    let dark = send(
        &app,
        req(
            "GET",
            "/feed?a=1&b=2",
            &[("x-user", "2"), ("cookie", "theme=dark")],
        ),
    )
    .await;
    assert_eq!(dark.cache(), "MISS");
    assert_eq!(calls.get(), 3);
}
