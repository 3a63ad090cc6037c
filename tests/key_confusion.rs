//! No request can make the cache file a response under another request's key: forged `Host`
//! against an absolute target, other spellings of one authority and path, nested routers,
//! forwarding headers, and method overrides.

mod common;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::get;
use bytes::Bytes;
use common::{Calls, raw_http1, req, send};
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tower_response_cache::{CacheLayer, MemoryStore};

fn cache() -> CacheLayer<MemoryStore> {
    CacheLayer::new(MemoryStore::with_capacity_bytes(16 << 20)).ttl(Duration::from_secs(300))
}

/// Renders the authority the app sees, as apps do for absolute links: the `Host` header, else
/// the request target's authority.
fn host_rendering_app(calls: &Calls) -> Router {
    let calls = calls.clone();
    Router::new()
        .route(
            "/home",
            get(move |uri: http::Uri, headers: HeaderMap| {
                calls.hit();
                async move {
                    let host = headers
                        .get("host")
                        .and_then(|h| h.to_str().ok())
                        .map(str::to_owned)
                        .or_else(|| uri.authority().map(|a| a.to_string()))
                        .unwrap_or_default();
                    format!("<a href=\"http://{host}/login\">log in</a>")
                }
            }),
        )
        .layer(cache())
}

async fn serve(app: Router) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let service = hyper_util::service::TowerToHyperService::new(app.clone());
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, server)
}

#[tokio::test]
async fn a_forged_host_on_an_absolute_target_poisons_nothing_over_real_connections() {
    let calls = Calls::default();
    let (addr, server) = serve(host_rendering_app(&calls)).await;
    // The attacker: absolute-form target naming the victim, Host naming itself.
    let attack = raw_http1(
        addr,
        "GET http://victim.example/home HTTP/1.1\r\nHost: attacker.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(attack.contains("attacker.example/login"), "{attack}");
    assert!(
        attack.to_ascii_lowercase().contains("x-cache: bypass"),
        "{attack}"
    );
    // A victim over HTTP/2 (authority in the target, no Host header).
    for expected in ["MISS", "HIT"] {
        let (cache, body) = h2_by_hand(addr, "victim.example", "/home").await;
        assert_eq!(cache, expected);
        assert!(body.contains("http://victim.example/login"), "{body}");
    }
    // And an HTTP/1.1 victim with an honest Host.
    let honest = raw_http1(
        addr,
        "GET /home HTTP/1.1\r\nHost: victim.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(honest.contains("victim.example/login"), "{honest}");
    assert!(!honest.contains("attacker"), "{honest}");
    server.abort();
}

/// An HTTP/2 (prior knowledge) request to `addr` whose `:authority` is `authority`.
async fn h2_by_hand(addr: std::net::SocketAddr, authority: &str, path: &str) -> (String, String) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let request = Request::get(format!("http://{authority}{path}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), sender.send_request(request))
        .await
        .expect("no hang")
        .unwrap();
    let cache = response.headers()["x-cache"].to_str().unwrap().to_owned();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (cache, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn a_host_that_disagrees_with_the_target_bypasses_in_process() {
    let calls = Calls::default();
    let app = host_rendering_app(&calls);
    let forged = req(
        "GET",
        "http://victim.example/home",
        &[("host", "attacker.example")],
    );
    let got = send(&app, forged).await;
    assert_eq!(got.cache(), "BYPASS");
    let victim = send(&app, common::get("http://victim.example/home")).await;
    assert_eq!(victim.cache(), "MISS");
    assert!(
        victim.text().contains("victim.example"),
        "{}",
        victim.text()
    );
    // Agreeing spellings of the same authority are not a mismatch.
    let agreeing = req(
        "GET",
        "http://victim.example/home",
        &[("host", "Victim.Example:80")],
    );
    assert_eq!(send(&app, agreeing).await.cache(), "HIT");
}

/// A tiny versioned "database" behind `/items/{id}`: GET reads, PUT bumps the version.
#[derive(Clone, Default)]
struct Db(Arc<AtomicU64>);

fn items() -> Router<Db> {
    async fn read(Path(id): Path<String>, State(db): State<Db>) -> String {
        format!("item {id} v{}", db.0.load(Ordering::SeqCst))
    }
    async fn write(State(db): State<Db>) -> &'static str {
        db.0.fetch_add(1, Ordering::SeqCst);
        "written"
    }
    Router::new().route("/items/{id}", get(read).put(write))
}

fn on(host: &str, method: &str, path: &str) -> Request<Body> {
    req(method, path, &[("host", host)])
}

#[tokio::test]
async fn spellings_of_one_uri_share_one_entry_and_one_invalidation() {
    let db = Db::default();
    let app = items().with_state(db.clone()).layer(cache());
    let first = send(&app, on("shop.example", "GET", "/items/1")).await;
    assert_eq!(
        (first.cache(), first.text().as_str()),
        ("MISS", "item 1 v0")
    );
    for (host, path) in [
        ("shop.example", "/items/%31"),
        ("SHOP.example:80", "/items/1"),
        ("shop.example.", "/items/./1"),
        ("shop.example:443", "/x/../items/1"),
    ] {
        let got = send(&app, on(host, "GET", path)).await;
        assert_eq!(got.cache(), "HIT", "{host} {path}");
    }
    // A write spelled oddly invalidates the normal form's entry.
    send(&app, on("Shop.Example:80", "PUT", "/items/%31")).await;
    let after = send(&app, on("shop.example", "GET", "/items/1")).await;
    assert_eq!(
        (after.cache(), after.text().as_str()),
        ("MISS", "item 1 v1")
    );
}

#[tokio::test]
async fn an_odd_spelling_never_stores_what_its_own_route_answered() {
    let db = Db::default();
    let app = items().with_state(db.clone()).layer(cache());
    // Stored under the odd spelling before the fix; now answered but never stored, so a
    // write to the normal form leaves nothing stale behind for any spelling.
    for _ in 0..2 {
        let got = send(&app, on("shop.example", "GET", "/items/%31")).await;
        assert_eq!(got.cache(), "MISS");
    }
    send(&app, on("shop.example", "PUT", "/items/1")).await;
    let odd = send(&app, on("shop.example", "GET", "/items/%31")).await;
    assert_eq!(odd.text(), "item 1 v1");

    // A static route does not match the odd spelling: the app's 404 must not be what the
    // normal form's users get (404s are cached by default).
    let calls = Calls::default();
    let c = calls.clone();
    let app: Router = Router::new()
        .route(
            "/pages/about",
            get(move || {
                c.hit();
                async { "about us" }
            }),
        )
        .layer(cache());
    let odd = send(&app, common::get("/pages/%61bout")).await;
    assert_eq!(odd.status, 404);
    let got = send(&app, common::get("/pages/about")).await;
    assert_eq!((got.status, got.text().as_str()), (200, "about us"));
    // Nor may a wildcard route's answer for `../` land under the path it resolves to.
    let app: Router = Router::new()
        .route("/admin", get(|| async { "the admin page" }))
        .route(
            "/files/{*path}",
            get(|Path(path): Path<String>| async move { format!("file {path}") }),
        )
        .layer(cache());
    let smuggled = send(&app, common::get("/files/../admin")).await;
    assert_eq!(smuggled.text(), "file ../admin");
    let admin = send(&app, common::get("/admin")).await;
    assert_eq!(admin.text(), "the admin page");
}

#[tokio::test]
async fn nested_routers_key_and_invalidate_by_the_original_path() {
    // One cache, layered over each nested router (axum strips the nest's prefix from the URI
    // those routers see) or over the router that nests them.
    for inside in [true, false] {
        let v1 = Db::default();
        let v2 = Db(Arc::new(AtomicU64::new(100)));
        let cache = cache();
        let handle = cache.handle();
        let (a, b) = (
            items().with_state(v1.clone()),
            items().with_state(v2.clone()),
        );
        let app: Router = if inside {
            Router::new()
                .nest("/v1", a.layer(cache.clone()))
                .nest("/v2", b.layer(cache))
        } else {
            Router::new().nest("/v1", a).nest("/v2", b).layer(cache)
        };
        let first = send(&app, common::get("/v1/items/1")).await;
        assert_eq!(
            (first.cache(), first.text().as_str()),
            ("MISS", "item 1 v0")
        );
        let other = send(&app, common::get("/v2/items/1")).await;
        assert_eq!(
            (other.cache(), other.text().as_str()),
            ("MISS", "item 1 v100"),
            "inside: {inside}"
        );
        assert_eq!(send(&app, common::get("/v2/items/1")).await.cache(), "HIT");
        // A write under one nest invalidates that nest's entry only.
        send(&app, req("PUT", "/v2/items/1", &[])).await;
        let b = send(&app, common::get("/v2/items/1")).await;
        assert_eq!((b.cache(), b.text().as_str()), ("MISS", "item 1 v101"));
        assert_eq!(send(&app, common::get("/v1/items/1")).await.cache(), "HIT");
        // The handle names the full path.
        let removed = handle.invalidate_uri(&"/v1/items/1".parse().unwrap()).await;
        assert_eq!(removed, 1, "inside: {inside}");
        assert_eq!(send(&app, common::get("/v1/items/1")).await.cache(), "MISS");
    }
}

#[tokio::test]
async fn forwarding_headers_cannot_poison_other_requests() {
    let app: Router = Router::new()
        .route(
            "/page",
            get(|headers: HeaderMap| async move {
                let host = headers
                    .get("x-forwarded-host")
                    .or(headers.get("host"))
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                format!("<script src=\"https://{host}/app.js\"></script>")
            }),
        )
        .layer(cache());
    let headers = [
        ("x-forwarded-host", "evil.example"),
        ("x-original-url", "/admin"),
        ("forwarded", "host=evil.example"),
    ];
    for (name, value) in headers {
        let forged = req("GET", "/page", &[("host", "shop.example"), (name, value)]);
        send(&app, forged).await;
        let forged_again = req("GET", "/page", &[("host", "shop.example"), (name, value)]);
        assert_eq!(send(&app, forged_again).await.cache(), "HIT", "{name}");
    }
    let honest = send(&app, on("shop.example", "GET", "/page")).await;
    assert_eq!(honest.cache(), "MISS");
    assert!(honest.text().contains("https://shop.example/app.js"));
    // A trusted proxy's per-client `Forwarded: for=` does not split the cache.
    let proxied = |client: &'static str| {
        req(
            "GET",
            "/page",
            &[("host", "shop.example"), ("forwarded", client)],
        )
    };
    send(&app, proxied("for=10.0.0.1;host=shop.example")).await;
    let other_client = send(&app, proxied("for=10.0.0.2;host=shop.example")).await;
    assert_eq!(other_client.cache(), "HIT");
}

#[tokio::test]
async fn a_method_override_reaches_the_app_and_evicts_nothing() {
    // Frameworks honour method overrides on POST only; a GET carrying one is answered by the
    // app (never from the cache, in case it does act on it), and, being a GET, invalidates
    // nothing: a header any client can send must not evict what others read.
    let calls = Calls::default();
    let c = calls.clone();
    let app: Router = Router::new()
        .route(
            "/items/{id}",
            get(move |Path(id): Path<String>| {
                let n = c.hit();
                async move { format!("item {id} v{n}") }
            }),
        )
        .layer(cache());
    let item = || on("shop.example", "GET", "/items/1");
    send(&app, item()).await;
    assert_eq!(send(&app, item()).await.cache(), "HIT");
    for name in [
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
    ] {
        let overridden = req(
            "GET",
            "/items/1",
            &[("host", "shop.example"), (name, "DELETE")],
        );
        let got = send(&app, overridden).await;
        assert_eq!(got.cache(), "BYPASS", "{name}");
        let after = send(&app, item()).await;
        assert_eq!(
            (after.cache(), after.text().as_str()),
            ("HIT", "item 1 v1"),
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_write_invalidates_what_its_target_and_host_name_and_nothing_else() {
    let db = Db::default();
    let app = items().with_state(db.clone()).layer(cache());
    let get_on = |host: &'static str| on(host, "GET", "/items/1");
    for host in ["a.example", "b.example", "bystander.example"] {
        send(&app, get_on(host)).await;
    }
    // RFC 9112 §3.2.2 says the target's authority; an app that picks its tenant by `Host`
    // acts on the other one. Both go; a host the write does not name stays.
    let mismatched = req("PUT", "http://a.example/items/1", &[("host", "b.example")]);
    assert_eq!(send(&app, mismatched).await.status, 200);
    assert_eq!(send(&app, get_on("a.example")).await.cache(), "MISS");
    assert_eq!(send(&app, get_on("b.example")).await.cache(), "MISS");
    assert_eq!(send(&app, get_on("bystander.example")).await.cache(), "HIT");
    // A Host that cannot be read names nothing: no other host's entry goes.
    for host in ["a b", "victim.example:99999"] {
        let unreadable = req("PUT", "/items/1", &[("host", host)]);
        assert_eq!(send(&app, unreadable).await.status, 200, "{host}");
        assert_eq!(
            send(&app, get_on("bystander.example")).await.cache(),
            "HIT",
            "{host}"
        );
    }
    // A write in any spelling of a host invalidates it.
    send(
        &app,
        req("PUT", "http://BYSTANDER.example:80/items/%31", &[]),
    )
    .await;
    assert_eq!(
        send(&app, get_on("bystander.example")).await.cache(),
        "MISS"
    );
}

#[tokio::test]
async fn a_get_with_a_body_is_neither_answered_from_nor_stored_in_the_cache() {
    let app: Router = Router::new()
        .route(
            "/search",
            get(|body: String| async move {
                (
                    [("cache-control", "max-age=300")],
                    format!("results for {body:?}"),
                )
            }),
        )
        .layer(cache());
    let evil = Request::get("/search")
        .header("host", "shop.example")
        .body(Body::from("<script>evil</script>"))
        .unwrap();
    assert_eq!(send(&app, evil).await.cache(), "BYPASS");
    let victim = send(&app, on("shop.example", "GET", "/search")).await;
    assert_eq!(victim.cache(), "MISS");
    assert!(!victim.text().contains("evil"), "{}", victim.text());
    // A stored entry is not handed to a request with a body either (the app may read it).
    let with_body = Request::get("/search")
        .header("host", "shop.example")
        .body(Body::from("other"))
        .unwrap();
    let got = send(&app, with_body).await;
    assert_eq!(
        (got.cache(), got.text().as_str()),
        ("BYPASS", "results for \"other\"")
    );
}
