//! Helpers shared by the integration tests: an origin that counts its calls, and request helpers.
#![allow(dead_code)]

#[cfg(feature = "redis")]
pub mod redis_server;
pub mod rfc;
pub mod validating;

use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::BodyExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::AsyncBufReadExt;
use tower::ServiceExt;

/// Counts how often the origin was called.
#[derive(Clone, Default)]
pub struct Calls(Arc<AtomicUsize>);

impl Calls {
    pub fn hit(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }
    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// A response read whole.
pub struct Got {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub trailers: Option<HeaderMap>,
}

impl Got {
    pub fn cache(&self) -> &str {
        self.headers
            .get("x-cache")
            .map_or("", |v| v.to_str().unwrap())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub async fn read<B>(response: Response<B>) -> Got
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let (parts, body) = response.into_parts();
    let collected = body.collect().await.expect("body");
    let trailers = collected.trailers().cloned();
    Got {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: collected.to_bytes(),
        trailers,
    }
}

/// Sends `request` through a clone of `app` and reads the response.
pub async fn send(app: &Router, request: Request<Body>) -> Got {
    read(app.clone().oneshot(request).await.unwrap()).await
}

/// [`send`] in a task of its own: a request under way while the test goes on.
pub fn spawn_send(app: &Router, request: Request<Body>) -> tokio::task::JoinHandle<Got> {
    let app = app.clone();
    tokio::spawn(async move { send(&app, request).await })
}

/// [`all_at_once`] in a task of its own.
pub fn spawn_all_at_once(
    app: &Router,
    requests: Vec<Request<Body>>,
) -> tokio::task::JoinHandle<Vec<Got>> {
    let app = app.clone();
    tokio::spawn(async move { all_at_once(&app, requests).await })
}

pub fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

pub fn req(method: &str, uri: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut r = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.body(Body::empty()).unwrap()
}

/// A body that yields scripted frames and may claim an exact size of its choosing.
pub struct Script {
    pub frames: std::collections::VecDeque<Result<http_body::Frame<Bytes>, std::io::Error>>,
    pub claimed_len: Option<u64>,
}

impl Script {
    pub fn chunks(chunks: &[&[u8]]) -> Self {
        Script {
            frames: chunks
                .iter()
                .map(|c| Ok(http_body::Frame::data(Bytes::copy_from_slice(c))))
                .collect(),
            claimed_len: None,
        }
    }
}

impl http_body::Body for Script {
    type Data = Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        std::task::Poll::Ready(self.frames.pop_front())
    }
    fn size_hint(&self) -> http_body::SizeHint {
        match self.claimed_len {
            Some(n) => http_body::SizeHint::with_exact(n),
            None => http_body::SizeHint::default(),
        }
    }
}

/// Sends `n` GET requests for `/item` at once (each in a task of its own) and returns their
/// responses; each must complete within 30 s.
pub async fn burst(app: &Router, n: usize) -> Vec<Got> {
    let requests = (0..n)
        .map(|_| Request::get("/item").body(Body::empty()).unwrap())
        .collect();
    all_at_once(app, requests).await
}

/// Sends `requests` at once (each in a task of its own) and returns their responses, in
/// order; each must complete within 30 s.
pub async fn all_at_once(app: &Router, requests: Vec<Request<Body>>) -> Vec<Got> {
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|request| {
            let app = app.clone();
            tokio::spawn(async move { read(app.oneshot(request).await.unwrap()).await })
        })
        .collect();
    let mut responses = Vec::with_capacity(tasks.len());
    for task in tasks {
        let joined = tokio::time::timeout(std::time::Duration::from_secs(30), task).await;
        responses.push(joined.expect("no hang").unwrap());
    }
    responses
}

/// A small deterministic xorshift generator, for randomized timing in race tests: numbers below
/// `below`, the same sequence on every run.
pub fn randomizer() -> impl FnMut(u64) -> u64 {
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    move |below| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % below
    }
}

/// One HTTP/1.1 request written by hand (absolute-form targets, forged headers), on a
/// connection of its own; the whole response read back as text (within 10 s).
pub async fn raw_http1(addr: impl tokio::net::ToSocketAddrs, head: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut out),
    )
    .await
    .expect("no hang")
    .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// `/item`: "good" once, then as `failure` says: `"slow"` (500 ms, then good), else 503.
pub fn failing_origin(calls: &Calls, failure: &'static str) -> Router {
    let calls = calls.clone();
    Router::new().route(
        "/item",
        axum::routing::get(move || {
            let n = calls.hit();
            async move {
                match (n, failure) {
                    (1, _) => (http::StatusCode::OK, "good".to_owned()),
                    (_, "slow") => {
                        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                        (http::StatusCode::OK, "late but good".to_owned())
                    }
                    _ => (http::StatusCode::SERVICE_UNAVAILABLE, "down".to_owned()),
                }
            }
        }),
    )
}

/// An example's binary, built by `cargo test` next to the test binaries.
pub fn example_binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is not built: run the whole suite (`cargo test` builds the examples whose features are on) or `cargo build --example {name}` (with its required features) first",
        path.display()
    );
    path
}

/// The `reverse_proxy` example in front of `upstream` (with `extra` arguments), as a process;
/// its address, read from its `listening on` line.
pub async fn start_proxy(
    upstream: std::net::SocketAddr,
    extra: &[&str],
) -> (tokio::process::Child, String) {
    let upstream = format!("http://{upstream}");
    let mut args = vec!["--listen", "127.0.0.1:0", "--upstream", &upstream];
    args.extend_from_slice(extra);
    start_example("reverse_proxy", &args).await
}

/// The example `name` run with `args` as a process (killed when the `Child` is dropped, also
/// when a test panics); its address, read from the `listening on ADDR` line it prints.
pub async fn start_example(name: &str, args: &[&str]) -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new(example_binary(name))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line())
        .await
        .unwrap_or_else(|_| panic!("{name} starts"))
        .unwrap()
        .unwrap();
    let addr = line
        .strip_prefix("listening on ")
        .expect("listening line")
        .to_owned();
    // Keep reading, so that the example never writes to a closed pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

/// Polls `check` every 10 ms for up to 3 s; panics naming `what` if it never holds.
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..300 {
        if check() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("{what}: not within 3 s");
}

/// A hyper client over plain HTTP, for tests that talk to a real server on loopback.
pub type HttpClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Empty<bytes::Bytes>,
>;

/// A new [`HttpClient`].
pub fn http_client() -> HttpClient {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http()
}

/// Sends a bodiless request over real HTTP (at most 10 s for the head), and reads the
/// response to its end.
pub async fn http_call(
    client: &HttpClient,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
) -> (http::response::Parts, bytes::Bytes) {
    use http_body_util::BodyExt;
    let mut request = http::Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        client.request(request.body(http_body_util::Empty::new()).unwrap()),
    )
    .await
    .expect("no hang")
    .unwrap();
    let (parts, body) = response.into_parts();
    (parts, body.collect().await.unwrap().to_bytes())
}
