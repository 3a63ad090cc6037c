//! The `reverse_proxy` example, run as a process between a client and a real origin on
//! 127.0.0.1: caching by the origin's Cache-Control, Host kept, writes forwarded, 502 when the
//! origin is gone, 504 when it hangs.

mod common;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::get;
use bytes::Bytes;
use common::Calls;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

async fn origin(calls: Calls) -> std::net::SocketAddr {
    let c1 = calls.clone();
    let c2 = calls.clone();
    let app = Router::new()
        .route(
            "/fresh",
            get(move |headers: HeaderMap| {
                let n = c1.hit();
                async move {
                    let host = headers["host"].to_str().unwrap().to_owned();
                    (
                        [("cache-control", "max-age=60")],
                        format!("fresh {n} for {host}"),
                    )
                }
            })
            .post(move || {
                let n = c2.hit();
                async move { format!("posted {n}") }
            }),
        )
        .route("/silent", get(|| async { "no freshness info" }))
        .route(
            "/tagged",
            get(|| async {
                (
                    [
                        ("cache-control", "max-age=60"),
                        ("surrogate-key", "news front"),
                    ],
                    "tagged",
                )
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn call(proxy: &str, method: &str, path: &str, host: &str) -> (u16, HeaderMap, Bytes) {
    call_with(proxy, method, path, host, None).await
}

async fn call_with(
    proxy: &str,
    method: &str,
    path: &str,
    host: &str,
    token: Option<&str>,
) -> (u16, HeaderMap, Bytes) {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut request = Request::builder()
        .method(method)
        .uri(format!("http://{proxy}{path}"))
        .header("host", host);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request.body(Empty::new()).unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), client.request(request))
        .await
        .expect("no hang")
        .unwrap();
    let (parts, body) = response.into_parts();
    (
        parts.status.as_u16(),
        parts.headers,
        body.collect().await.unwrap().to_bytes(),
    )
}

#[tokio::test]
async fn the_proxy_caches_by_the_origins_rules() {
    let calls = Calls::default();
    let upstream = origin(calls.clone()).await;
    let (mut child, proxy) = common::start_proxy(upstream, &[]).await;

    let (status, headers, body) = call(&proxy, "GET", "/fresh", "a.example").await;
    assert_eq!((status, &body[..]), (200, &b"fresh 1 for a.example"[..]));
    assert_eq!(headers["x-cache"], "MISS");
    let (_, headers, body) = call(&proxy, "GET", "/fresh", "a.example").await;
    assert_eq!(headers["x-cache"], "HIT");
    assert_eq!(body, "fresh 1 for a.example");

    // Another virtual host is another entry, and the origin sees its Host.
    let (_, headers, body) = call(&proxy, "GET", "/fresh", "b.example").await;
    assert_eq!(headers["x-cache"], "MISS");
    assert_eq!(body, "fresh 2 for b.example");

    // Nothing said about freshness and --default-ttl 0: not cached.
    for _ in 0..2 {
        let (_, headers, _) = call(&proxy, "GET", "/silent", "a.example").await;
        assert_eq!(headers["x-cache"], "MISS");
    }

    // Writes are forwarded every time.
    for n in [3, 4] {
        let (_, headers, body) = call(&proxy, "POST", "/fresh", "a.example").await;
        assert_eq!(headers["x-cache"], "BYPASS");
        assert_eq!(body, format!("posted {n}"));
    }
    child.kill().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_origin_is_a_bad_gateway() {
    // A port that was just free: nothing listens there.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (mut child, proxy) = common::start_proxy(free, &[]).await;
    let (status, _, _) = call(&proxy, "GET", "/anything", "a.example").await;
    assert_eq!(status, 502);
    child.kill().await.unwrap();
}

#[tokio::test]
async fn writes_tags_and_purges_through_the_proxy() {
    let calls = Calls::default();
    let upstream = origin(calls.clone()).await;
    let flags = ["--tag-header", "surrogate-key", "--purge-token", "t0ken"];
    let (mut child, proxy) = common::start_proxy(upstream, &flags).await;

    // A write through the proxy invalidates its URI.
    call(&proxy, "GET", "/fresh", "a.example").await;
    assert_eq!(
        call(&proxy, "GET", "/fresh", "a.example").await.1["x-cache"],
        "HIT"
    );
    call(&proxy, "POST", "/fresh", "a.example").await;
    assert_eq!(
        call(&proxy, "GET", "/fresh", "a.example").await.1["x-cache"],
        "MISS"
    );

    // PURGE needs the token and never reaches the origin.
    let before = calls.get();
    let (status, _, _) = call(&proxy, "PURGE", "/fresh", "a.example").await;
    assert_eq!(status, 401);
    assert_eq!(
        call(&proxy, "GET", "/fresh", "a.example").await.1["x-cache"],
        "HIT"
    );
    let (status, _, body) = call_with(&proxy, "PURGE", "/fresh", "a.example", Some("t0ken")).await;
    assert_eq!((status, &body[..]), (200, &b"purged 1 entries\n"[..]));
    assert_eq!(
        call(&proxy, "GET", "/fresh", "a.example").await.1["x-cache"],
        "MISS"
    );
    assert_eq!(
        calls.get(),
        before + 1,
        "only the last GET reached the origin"
    );

    // The purge endpoint, by tag (the origin tags /tagged with surrogate-key).
    call(&proxy, "GET", "/tagged", "a.example").await;
    let (_, headers, _) = call(&proxy, "GET", "/tagged", "a.example").await;
    assert_eq!(headers["x-cache"], "HIT");
    assert!(
        headers.get("surrogate-key").is_none(),
        "tags stay between origin and cache"
    );
    let (status, _, _) = call(&proxy, "POST", "/_cache/purge?tag=news", "a.example").await;
    assert_eq!(status, 401);
    let purge = "/_cache/purge?tag=news";
    let (status, _, body) = call_with(&proxy, "POST", purge, "a.example", Some("t0ken")).await;
    assert_eq!((status, &body[..]), (200, &b"purged 1 entries\n"[..]));
    assert_eq!(
        call(&proxy, "GET", "/tagged", "a.example").await.1["x-cache"],
        "MISS"
    );
    child.kill().await.unwrap();
}

async fn raw(proxy: &str, head: &str) -> String {
    common::raw_http1(proxy, head).await.to_ascii_lowercase()
}

#[tokio::test]
async fn an_absolute_target_replaces_a_forged_host_before_forwarding() {
    let calls = Calls::default();
    let upstream = origin(calls.clone()).await;
    let (mut child, proxy) = common::start_proxy(upstream, &[]).await;
    let forged = raw(
        &proxy,
        "GET http://a.example/fresh HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    // RFC 9112 §3.2.2: the origin is asked for the target's authority, never the forged Host;
    // and the cache, seeing them disagree, neither stores nor serves.
    assert!(forged.contains("fresh 1 for a.example"), "{forged}");
    assert!(forged.contains("x-cache: bypass"), "{forged}");
    let absolute = raw(
        &proxy,
        "GET http://a.example/fresh HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(absolute.contains("fresh 2 for a.example"), "{absolute}");
    assert!(absolute.contains("x-cache: miss"), "{absolute}");
    let (_, headers, body) = call(&proxy, "GET", "/fresh", "a.example").await;
    assert_eq!(
        body, "fresh 3 for a.example",
        "origin-form has no scheme: its own entry"
    );
    assert_eq!(headers["x-cache"], "MISS");
    let (_, headers, body) = call(&proxy, "GET", "/fresh", "a.example").await;
    assert_eq!(
        (headers["x-cache"].to_str().unwrap(), &body[..]),
        ("HIT", &b"fresh 3 for a.example"[..])
    );
    assert!(!String::from_utf8_lossy(&body).contains("evil"));
    child.kill().await.unwrap();
}

/// An origin that accepts connections, reads their requests, writes `answer` (perhaps nothing,
/// perhaps a head and part of a body) and never more; each connection, once the proxy closes
/// it, is reported on the channel.
async fn hanging_origin(
    answer: &'static str,
) -> (std::net::SocketAddr, mpsc::UnboundedReceiver<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (closed, closes) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let closed = closed.clone();
            tokio::spawn(async move {
                let mut buf = [0; 4096];
                let mut head = Vec::new();
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                stream.write_all(answer.as_bytes()).await.unwrap();
                // Hold the connection until the proxy closes it.
                while stream.read(&mut buf).await.is_ok_and(|n| n > 0) {}
                let _ = closed.send(());
            });
        }
    });
    (addr, closes)
}

async fn closed_by_the_proxy(closes: &mut mpsc::UnboundedReceiver<()>) {
    tokio::time::timeout(Duration::from_secs(10), closes.recv())
        .await
        .expect("the proxy drops the hung upstream request")
        .unwrap();
}

#[tokio::test]
async fn a_hung_origin_is_a_gateway_timeout() {
    let (upstream, mut closes) = hanging_origin("").await;
    let (mut child, proxy) = common::start_proxy(upstream, &["--upstream-timeout", "300ms"]).await;
    // Without the flag (30 s by default), `call` gives up after 10 s and this fails.
    let (status, _, body) = call(&proxy, "GET", "/anything", "a.example").await;
    assert_eq!((status, &body[..]), (504, &b"upstream timed out"[..]));
    closed_by_the_proxy(&mut closes).await;
    child.kill().await.unwrap();
}

#[tokio::test]
async fn a_body_that_stalls_is_cut_and_not_stored() {
    let head = "HTTP/1.1 200 OK\r\ncache-control: max-age=60\r\ncontent-length: 10\r\n\r\nabc";
    let (upstream, mut closes) = hanging_origin(head).await;
    let (mut child, proxy) = common::start_proxy(upstream, &["--upstream-timeout", "300ms"]).await;
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    for _ in 0..2 {
        let request = Request::get(format!("http://{proxy}/stalls"))
            .header("host", "a.example")
            .body(Empty::new())
            .unwrap();
        let got = tokio::time::timeout(Duration::from_secs(10), async {
            let Ok(response) = client.request(request).await else {
                return Err(());
            };
            response.into_body().collect().await.map_err(|_| ())
        })
        .await
        .expect("no hang");
        // On a miss the cache reads the body before it answers, so the connection is cut before
        // or after the head, depending on timing: either way the response is not complete.
        assert!(got.is_err(), "the response is cut, not completed");
        // Each request reached the origin (a new connection each time): nothing was stored.
        closed_by_the_proxy(&mut closes).await;
    }
    child.kill().await.unwrap();
}

/// 30 clients ask the proxy for one cold URL whose upstream takes 7 s, longer than the
/// coalescing wait (5 s): the upstream sees the first fetch and at most the one replacement
/// started when the wait ran out, never one request per client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_clients_of_a_seven_second_upstream_make_at_most_two_upstream_calls() {
    let calls = Calls::default();
    let counted = calls.clone();
    let app = Router::new().route(
        "/slow",
        get(move || {
            counted.hit();
            async {
                tokio::time::sleep(Duration::from_secs(7)).await;
                ([("cache-control", "max-age=60")], "slow")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let (mut child, proxy) = common::start_proxy(upstream, &[]).await;
    let clients: Vec<_> = (0..30)
        .map(|_| {
            let proxy = proxy.clone();
            tokio::spawn(async move {
                let client: Client<_, Empty<Bytes>> =
                    Client::builder(TokioExecutor::new()).build_http();
                let request = Request::get(format!("http://{proxy}/slow"))
                    .header("host", "a.example")
                    .body(Empty::new())
                    .unwrap();
                let response =
                    tokio::time::timeout(Duration::from_secs(20), client.request(request))
                        .await
                        .expect("no hang")
                        .unwrap();
                let status = response.status().as_u16();
                (
                    status,
                    response.into_body().collect().await.unwrap().to_bytes(),
                )
            })
        })
        .collect();
    for client in clients {
        assert_eq!(client.await.unwrap(), (200, Bytes::from_static(b"slow")));
    }
    assert!(
        calls.get() <= 2,
        "{} upstream calls for 30 clients",
        calls.get()
    );
    child.kill().await.unwrap();
}
