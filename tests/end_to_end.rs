//! Over real sockets: an axum app and a bare hyper service on 127.0.0.1, called with a
//! hyper-util client.

mod common;

use axum::Router;
use axum::routing::{get, post};
use bytes::Bytes;
use common::Calls;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tower::Layer;
use tower_response_cache::{CacheLayer, MemoryStore};

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn call(
    client: &HttpClient,
    method: &str,
    url: String,
) -> (StatusCode, http::HeaderMap, Bytes) {
    let request = Request::builder()
        .method(method)
        .uri(url)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), client.request(request))
        .await
        .expect("no hang")
        .expect("response");
    let (parts, body) = response.into_parts();
    (
        parts.status,
        parts.headers,
        body.collect().await.unwrap().to_bytes(),
    )
}

#[tokio::test]
async fn an_axum_app_over_http() {
    let calls = Calls::default();
    let c1 = calls.clone();
    let c2 = calls.clone();
    let app = Router::new()
        .route(
            "/products/{id}",
            get(move |axum::extract::Path(id): axum::extract::Path<u32>| {
                let n = c1.hit();
                async move { format!("product {id} v{n}") }
            }),
        )
        .route(
            "/orders",
            post(move || {
                let n = c2.hit();
                async move { format!("order {n}") }
            }),
        )
        .layer(CacheLayer::new(MemoryStore::with_capacity_bytes(1 << 20)));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = client();

    let (status, headers, body) = call(&client, "GET", format!("http://{addr}/products/1")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-cache"], "MISS");
    assert_eq!(body, "product 1 v1");
    let (_, headers, body) = call(&client, "GET", format!("http://{addr}/products/1")).await;
    assert_eq!(headers["x-cache"], "HIT");
    assert_eq!(headers["content-length"], "12");
    assert_eq!(body, "product 1 v1");
    let (_, headers, body) = call(&client, "HEAD", format!("http://{addr}/products/1")).await;
    assert_eq!(headers["x-cache"], "HIT");
    assert_eq!(headers["content-length"], "12");
    assert!(body.is_empty());
    for i in [2, 3] {
        let (_, headers, body) = call(&client, "POST", format!("http://{addr}/orders")).await;
        assert_eq!(headers["x-cache"], "BYPASS");
        assert_eq!(body, format!("order {i}"));
    }
    assert_eq!(calls.get(), 3);
    server.abort();
}

#[tokio::test]
async fn a_bare_hyper_service_over_http() {
    let calls = Calls::default();
    let c = calls.clone();
    let cache = CacheLayer::new(MemoryStore::with_capacity_bytes(1 << 20));
    let service = cache.layer(tower::service_fn(
        move |_req: Request<hyper::body::Incoming>| {
            let n = c.hit();
            async move {
                Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from(
                    format!("bare {n}"),
                ))))
            }
        },
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let service = hyper_util::service::TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    let client = client();
    for expected in ["MISS", "HIT", "HIT"] {
        let (_, headers, body) = call(&client, "GET", format!("http://{addr}/x")).await;
        assert_eq!(headers["x-cache"], expected);
        assert_eq!(body, "bare 1");
    }
    assert_eq!(calls.get(), 1);
    server.abort();
}
