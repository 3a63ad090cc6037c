//! Query-style `POST`s (GraphQL, JSON-RPC, search APIs): a route's `POST`s cached per body, over
//! a real axum server on loopback and a hyper client, with writes still writes.

mod common;

use axum::Router;
use axum::body::Body;
use axum::routing::{get, post};
use bytes::Bytes;
use common::{Calls, send};
use http::{HeaderMap, Request};
use http_body_util::{BodyExt, Full};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tower_response_cache::{BypassReason, CacheHandle, CacheLayer, MemoryStore, Policy};

/// What the GraphQL-style origin received: method, content type and body bytes of each call.
type Received = Arc<Mutex<Vec<(String, String, Bytes)>>>;

/// A GraphQL-style origin at `/graphql`: a query for product N answers `{"product":N}` tagged
/// `product-N`; a mutation (its body says `mutation`) answers tagged with what it changed. A
/// plain resource at `/items` (GET) and its write (POST).
fn origin(calls: &Calls, received: &Received, delay: Duration) -> Router {
    let (calls, received) = (calls.clone(), Arc::clone(received));
    let graphql = move |method: http::Method, headers: HeaderMap, body: Bytes| {
        let n = calls.hit();
        let kind = headers
            .get("content-type")
            .map_or("", |v| v.to_str().unwrap())
            .to_owned();
        received
            .lock()
            .unwrap()
            .push((method.to_string(), kind, body.clone()));
        async move {
            tokio::time::sleep(delay).await;
            let text = String::from_utf8_lossy(&body).into_owned();
            let id: String = text.chars().filter(char::is_ascii_digit).collect();
            let tag = format!("product-{id}");
            let answer = format!("{{\"product\":{id},\"call\":{n}}}");
            ([("cache-tag", tag)], answer)
        }
    };
    let items = Calls::default();
    let written = items.clone();
    Router::new()
        .route("/graphql", post(graphql))
        // An origin that follows RFC 9110 §13.1.2: a matching `If-None-Match` on a POST is 412.
        .route("/etagged", post(etagged))
        .route(
            "/items",
            get(move || {
                let n = items.hit();
                async move { format!("items {n}") }
            })
            .post(move || {
                written.hit();
                async { "written" }
            }),
        )
}

/// A stored query with a validator, fresh for a second, and an origin that answers a `POST`
/// carrying `If-None-Match` with `412` (RFC 9110 §13.1.2).
async fn etagged(
    headers: HeaderMap,
) -> (http::StatusCode, [(&'static str, &'static str); 2], String) {
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let fields = [("etag", "\"v\""), ("cache-control", "max-age=1")];
    if headers.contains_key("if-none-match") {
        return (http::StatusCode::PRECONDITION_FAILED, fields, String::new());
    }
    (http::StatusCode::OK, fields, format!("answer {n}"))
}

/// Queries are the `POST`s whose body does not say `mutation`; lifetime `ttl`, stale for 30 s.
fn graphql_policy(ttl: Duration) -> Policy {
    Policy::new()
        .post_is_query_if(1024, |_, body| !body.windows(8).any(|w| w == b"mutation"))
        .ttl(ttl)
        .stale_while_revalidate(Duration::from_secs(30))
}

struct Server {
    base: String,
    client: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Full<Bytes>,
    >,
    handle: CacheHandle,
}

/// `origin` behind the cache (queries need `query_bodies`), served on 127.0.0.1.
async fn serve(app: Router, layer: CacheLayer<MemoryStore>, policy: Policy) -> Server {
    let stale_in_a_second = Policy::new()
        .post_is_query(1024)
        .ttl(Duration::from_secs(1));
    let layer = layer
        .route("/graphql", policy)
        .route("/etagged", stale_in_a_second);
    let handle = layer.handle();
    let app = app.layer(layer.query_bodies(Body::new));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    Server {
        base,
        client,
        handle,
    }
}

/// An answer read whole.
struct Answer {
    status: u16,
    cache: String,
    cache_status: String,
    body: String,
}

fn layer() -> CacheLayer<MemoryStore> {
    CacheLayer::new(MemoryStore::with_capacity_bytes(16 << 20))
}

impl Server {
    /// Sends `method path` with these fields and `body` over HTTP (at most 10 s) and reads the
    /// answer whole.
    async fn send(&self, method: &str, path: &str, fields: &[(&str, &str)], body: &str) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        for (name, value) in fields {
            request = request.header(*name, *value);
        }
        let body = Full::new(Bytes::copy_from_slice(body.as_bytes()));
        let sending = self.client.request(request.body(body).unwrap());
        let response = tokio::time::timeout(Duration::from_secs(10), sending)
            .await
            .expect("no hang")
            .unwrap();
        let field = |name: &str| {
            let value = response.headers().get(name);
            value.map_or("", |v| v.to_str().unwrap()).to_owned()
        };
        let (status, cache, cache_status) = (
            response.status().as_u16(),
            field("x-cache"),
            field("cache-status"),
        );
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            cache,
            cache_status,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    /// `method path` with `body` as `kind`: its `x-cache`, `cache-status` and body.
    async fn call(
        &self,
        method: &str,
        path: &str,
        kind: &str,
        body: &str,
    ) -> (String, String, String) {
        let answer = self
            .send(method, path, &[("content-type", kind)], body)
            .await;
        (answer.cache, answer.cache_status, answer.body)
    }

    async fn query(&self, body: &str) -> (String, String, String) {
        self.call("POST", "/graphql", "application/json", body)
            .await
    }

    /// A `POST` with these fields: the answer's status, `x-cache` and `cache-status`.
    async fn call_with(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        body: &str,
    ) -> (u16, String, String) {
        let answer = self.send("POST", path, fields, body).await;
        (answer.status, answer.cache, answer.cache_status)
    }
}

const Q1: &str = r#"{"query":"{ product(id: 1) { name } }"}"#;
const Q2: &str = r#"{"query":"{ product(id: 2) { name } }"}"#;

#[tokio::test]
async fn identical_queries_reach_the_origin_once_with_the_same_bytes() {
    let (calls, received) = (Calls::default(), Received::default());
    let app = origin(&calls, &received, Duration::ZERO);
    let server = serve(app, layer(), graphql_policy(Duration::from_secs(60))).await;

    let (cache, _, first) = server.query(Q1).await;
    assert_eq!(cache, "MISS");
    let (cache, status, again) = server.query(Q1).await;
    assert_eq!((cache.as_str(), again.as_str()), ("HIT", first.as_str()));
    assert!(status.contains("hit"), "{status}");
    assert_eq!(calls.get(), 1);
    assert_eq!(
        received.lock().unwrap()[0],
        ("POST".into(), "application/json".into(), Bytes::from(Q1)),
        "the inner service got the request's own bytes"
    );

    // Another body, and the same body as another content type, are other queries.
    assert_eq!(server.query(Q2).await.0, "MISS");
    let (cache, ..) = server
        .call("POST", "/graphql", "application/graphql", Q1)
        .await;
    assert_eq!(cache, "MISS");
    assert_eq!(calls.get(), 3);
    // A query is not the route's GET.
    let (cache, ..) = server.call("GET", "/graphql", "application/json", "").await;
    assert_ne!(cache, "HIT");
}

#[tokio::test]
async fn a_body_over_the_limit_passes_through_as_a_read() {
    let (calls, received) = (Calls::default(), Received::default());
    let app = origin(&calls, &received, Duration::ZERO);
    let server = serve(app, layer(), graphql_policy(Duration::from_secs(60))).await;
    server.query(Q1).await;

    let large = format!(
        r#"{{"query":"{{ product(id: 3) }}","pad":"{}"}}"#,
        "x".repeat(2000)
    );
    for _ in 0..2 {
        let (cache, status, _) = server.query(&large).await;
        assert_eq!(cache, "BYPASS");
        assert!(status.contains("detail=query-too-large"), "{status}");
    }
    assert_eq!(calls.get(), 3, "each large query reached the origin");
    assert_eq!(received.lock().unwrap()[2].2, Bytes::from(large), "whole");
    assert_eq!(
        server.query(Q1).await.0,
        "HIT",
        "a read invalidates nothing"
    );
    let stats = server.handle.stats().snapshot();
    assert_eq!(stats.bypasses_for(BypassReason::QueryTooLarge), 2);
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_handed_on_whole() {
    let calls = Calls::default();
    let received = Received::default();
    let app = origin(&calls, &received, Duration::ZERO).layer(
        layer()
            .route("/graphql", graphql_policy(Duration::from_secs(60)))
            .query_bodies(Body::new),
    );
    let chunk = [b'7'; 600];
    let script = common::Script::chunks(&[&chunk, &chunk, b"end"]);
    let request = Request::post("/graphql").body(Body::new(script)).unwrap();
    let got = send(&app, request).await;
    assert_eq!(got.cache(), "BYPASS");
    assert_eq!(
        received.lock().unwrap()[0].2.len(),
        1203,
        "prefix read and rest, in order"
    );
}

#[tokio::test]
async fn a_mutation_invalidates_what_it_names_not_every_query() {
    let (calls, received) = (Calls::default(), Received::default());
    let app = origin(&calls, &received, Duration::ZERO);
    let server = serve(app, layer(), graphql_policy(Duration::from_secs(60))).await;
    for q in [Q1, Q2] {
        assert_eq!(server.query(q).await.0, "MISS");
        assert_eq!(server.query(q).await.0, "HIT");
    }
    // Its response says `cache-tag: product-1`.
    let mutation = r#"{"query":"mutation { rename(id: 1) }"}"#;
    let (cache, ..) = server.query(mutation).await;
    assert_eq!(cache, "BYPASS");
    assert_eq!(
        server.query(Q1).await.0,
        "MISS",
        "product 1 was invalidated"
    );
    assert_eq!(server.query(Q2).await.0, "HIT", "product 2 was not");
    assert_eq!(received.lock().unwrap()[2].2, Bytes::from(mutation));
}

#[tokio::test]
async fn other_posts_are_still_writes() {
    let (calls, received) = (Calls::default(), Received::default());
    let app = origin(&calls, &received, Duration::ZERO);
    let server = serve(app, layer(), graphql_policy(Duration::from_secs(60))).await;
    assert_eq!(server.call("GET", "/items", "", "").await.0, "MISS");
    assert_eq!(server.call("GET", "/items", "", "").await.0, "HIT");
    assert_eq!(
        server.call("POST", "/items", "text/plain", "new").await.0,
        "BYPASS"
    );
    assert_eq!(server.call("GET", "/items", "", "").await.0, "MISS");
}

#[tokio::test]
async fn concurrent_identical_queries_reach_the_origin_once() {
    let (calls, received) = (Calls::default(), Received::default());
    let app = origin(&calls, &received, Duration::from_millis(200));
    let server = Arc::new(serve(app, layer(), graphql_policy(Duration::from_secs(60))).await);
    let mut tasks = Vec::new();
    for i in 0..30 {
        let server = Arc::clone(&server);
        let body = if i % 3 == 0 { Q2 } else { Q1 };
        tasks.push(tokio::spawn(
            async move { (body, server.query(body).await.2) },
        ));
    }
    let mut answers = std::collections::HashMap::new();
    for task in tasks {
        let (body, answer) = task.await.unwrap();
        answers.entry(body).or_insert_with(Vec::new).push(answer);
    }
    assert_eq!(calls.get(), 2, "one fetch per query body");
    for (body, answers) in answers {
        let id = if body == Q1 { "1" } else { "2" };
        assert!(
            answers
                .iter()
                .all(|a| a.starts_with(&format!("{{\"product\":{id},"))),
            "each got its own query's answer: {answers:?}"
        );
    }
}

#[tokio::test]
async fn a_stale_query_is_refreshed_with_its_own_body() {
    let (calls, received) = (Calls::default(), Received::default());
    let app = origin(&calls, &received, Duration::ZERO);
    let server = serve(app, layer(), graphql_policy(Duration::from_secs(1))).await;
    let (_, _, first) = server.query(Q1).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (cache, _, stale) = server.query(Q1).await;
    assert_eq!((cache.as_str(), stale.as_str()), ("STALE", first.as_str()));
    common::eventually("the refresh reached the origin", || calls.get() == 2).await;
    let refresh = received.lock().unwrap()[1].clone();
    assert_eq!(
        refresh,
        ("POST".into(), "application/json".into(), Bytes::from(Q1))
    );
    // Stored once its body is in: until then the stale answer stands.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let fresh = loop {
        server.handle.flush().await;
        let (cache, _, answer) = server.query(Q1).await;
        if cache == "HIT" {
            break answer;
        }
        assert!(tokio::time::Instant::now() < deadline, "never refreshed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(fresh.contains("\"call\":2"), "{fresh}");
    assert_eq!(calls.get(), 2, "one refresh");
}

#[tokio::test]
async fn purging_the_route_purges_its_queries() {
    let (calls, received) = (Calls::default(), Received::default());
    let app = origin(&calls, &received, Duration::ZERO);
    let server = serve(app, layer(), graphql_policy(Duration::from_secs(60))).await;
    server.query(Q1).await;
    server.query(Q2).await;
    let removed = server
        .handle
        .invalidate_uri(&"/graphql".parse().unwrap())
        .await;
    assert_eq!(removed, 2);
    assert_eq!(server.query(Q1).await.0, "MISS");
    // And by tag.
    server.handle.invalidate_tags(&["product-1"]).await;
    assert_eq!(server.query(Q1).await.0, "MISS");
    assert_eq!(server.query(Q2).await.0, "MISS");
}

#[tokio::test]
async fn without_query_bodies_a_query_route_passes_through_as_a_read() {
    let calls = Calls::default();
    let received = Received::default();
    let layer = layer().route("/graphql", graphql_policy(Duration::from_secs(60)));
    let app = origin(&calls, &received, Duration::ZERO).layer(layer);
    let cached = send(&app, common::get("/items")).await;
    assert_eq!(cached.cache(), "MISS");
    for _ in 0..2 {
        let request = Request::post("/graphql").body(Body::from(Q1)).unwrap();
        let got = send(&app, request).await;
        assert_eq!(got.cache(), "BYPASS");
        let status = got.headers["cache-status"].to_str().unwrap();
        assert!(status.contains("detail=query-unreadable"), "{status}");
    }
    assert_eq!(calls.get(), 2);
    assert_eq!(received.lock().unwrap()[1].2, Bytes::from(Q1));
}

#[tokio::test]
async fn an_encoded_body_keys_nothing_and_on_a_classifying_route_is_a_write() {
    let (calls, received) = (Calls::default(), Received::default());
    let app = origin(&calls, &received, Duration::ZERO);
    let server = serve(app, layer(), graphql_policy(Duration::from_secs(60))).await;
    let gzip = [
        ("content-type", "application/json"),
        ("content-encoding", "gzip"),
    ];
    // The same bytes, said to be gzip: they must not seed the entry of the plain query.
    let (_, cache, status) = server.call_with("/graphql", &gzip, Q1).await;
    assert_eq!(cache, "BYPASS");
    assert!(status.contains("detail=query-encoded"), "{status}");
    assert_eq!(server.query(Q1).await.0, "MISS");
    assert_eq!(server.query(Q1).await.0, "HIT");
    // An encoded body could be a mutation: what its response names is invalidated.
    server.call_with("/graphql", &gzip, Q1).await;
    assert_eq!(server.query(Q1).await.0, "MISS", "product-1 invalidated");
}

#[tokio::test]
async fn a_mutation_too_large_to_classify_still_invalidates_what_it_names() {
    let (calls, received) = (Calls::default(), Received::default());
    let app = origin(&calls, &received, Duration::ZERO);
    let server = serve(app, layer(), graphql_policy(Duration::from_secs(60))).await;
    server.query(Q1).await;
    server.query(Q2).await;
    let large = format!(
        r#"{{"query":"mutation {{ rename(id: 1) }}","pad":"{}"}}"#,
        "x".repeat(2000)
    );
    assert_eq!(server.query(&large).await.0, "BYPASS");
    assert_eq!(server.query(Q1).await.0, "MISS", "product-1 invalidated");
    assert_eq!(server.query(Q2).await.0, "HIT", "not the route's own URI");
}

#[tokio::test]
async fn a_method_override_on_a_query_route_is_the_write_it_may_be() {
    let (calls, received) = (Calls::default(), Received::default());
    let app = origin(&calls, &received, Duration::ZERO);
    let server = serve(app, layer(), graphql_policy(Duration::from_secs(60))).await;
    server.query(Q1).await;
    let fields = [
        ("content-type", "application/json"),
        ("x-http-method-override", "DELETE"),
    ];
    let (_, cache, status) = server.call_with("/graphql", &fields, Q1).await;
    assert_eq!(cache, "BYPASS");
    assert!(status.contains("detail=method-override"), "{status}");
    assert_eq!(server.query(Q1).await.0, "MISS");
}

#[tokio::test]
async fn a_grpc_content_type_does_not_make_a_rest_write_a_read() {
    let (calls, received) = (Calls::default(), Received::default());
    let app = origin(&calls, &received, Duration::ZERO);
    let server = serve(app, layer(), graphql_policy(Duration::from_secs(60))).await;
    server.call("GET", "/items", "", "").await;
    assert_eq!(server.call("GET", "/items", "", "").await.0, "HIT");
    server.call("POST", "/items", "application/grpc", "x").await;
    assert_eq!(server.call("GET", "/items", "", "").await.0, "MISS");
}

#[tokio::test]
async fn a_stale_query_is_fetched_again_in_full_not_revalidated() {
    let (calls, received) = (Calls::default(), Received::default());
    let app = origin(&calls, &received, Duration::ZERO);
    let server = serve(app, layer(), graphql_policy(Duration::from_secs(60))).await;
    let fields = [("content-type", "application/json")];
    assert_eq!(server.call_with("/etagged", &fields, "{}").await.1, "MISS");
    assert_eq!(server.call_with("/etagged", &fields, "{}").await.1, "HIT");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, cache, detail) = server.call_with("/etagged", &fields, "{}").await;
    assert_eq!((status, cache.as_str()), (200, "MISS"), "{detail}");
    assert_eq!(server.call_with("/etagged", &fields, "{}").await.1, "HIT");
}
