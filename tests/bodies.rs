//! Bodies: buffered only up to the limit, larger ones streamed unchanged and unstored, lying
//! lengths never stored, trailers kept, failures passed on.

mod common;

use bytes::Bytes;
use common::{Calls, Script, read};
use http::{Request, Response};
use http_body::Frame;
use http_body_util::BodyExt;
use std::sync::Arc;
use tower::{Layer, ServiceExt, service_fn};
use tower_response_cache::{CacheLayer, MemoryStore};

type MakeBody = Arc<dyn Fn() -> Response<Script> + Send + Sync>;

/// A service answering every request with a fresh body from `make`, counting calls.
fn service(
    layer: CacheLayer<MemoryStore>,
    calls: Calls,
    make: MakeBody,
) -> impl tower::Service<
    Request<http_body_util::Empty<Bytes>>,
    Response = Response<tower_response_cache::CacheBody<Script>>,
    Error = std::io::Error,
    Future = impl Send,
> + Clone {
    layer.layer(service_fn(
        move |_req: Request<http_body_util::Empty<Bytes>>| {
            calls.hit();
            let response = make();
            async move { Ok::<_, std::io::Error>(response) }
        },
    ))
}

fn get() -> Request<http_body_util::Empty<Bytes>> {
    Request::get("/data")
        .body(http_body_util::Empty::new())
        .unwrap()
}

fn layer(max_body: usize) -> CacheLayer<MemoryStore> {
    CacheLayer::new(MemoryStore::with_capacity_bytes(64 << 20)).max_body_bytes(max_body)
}

#[tokio::test]
async fn a_body_within_the_limit_is_stored() {
    let calls = Calls::default();
    let svc = service(
        layer(1024),
        calls.clone(),
        Arc::new(|| Response::new(Script::chunks(&[b"hello ", b"world"]))),
    );
    for expected in ["MISS", "HIT"] {
        let got = read(svc.clone().oneshot(get()).await.unwrap()).await;
        assert_eq!(
            (got.cache(), got.text().as_str()),
            (expected, "hello world")
        );
        if expected == "HIT" {
            // The stored copy carries its exact length (HEAD hits and HTTP/1.0 need it).
            assert_eq!(got.headers["content-length"], "11");
        }
    }
    assert_eq!(calls.get(), 1);
}

#[tokio::test]
async fn a_large_body_of_unknown_length_streams_through_unchanged() {
    let calls = Calls::default();
    let chunk = vec![b'x'; 64 * 1024];
    let make: MakeBody = Arc::new(move || {
        let chunks: Vec<&[u8]> = (0..32).map(|_| chunk.as_slice()).collect();
        Response::new(Script::chunks(&chunks))
    });
    let svc = service(layer(100 * 1024), calls.clone(), make);
    for _ in 0..2 {
        let got = read(svc.clone().oneshot(get()).await.unwrap()).await;
        assert_eq!(got.cache(), "MISS");
        assert_eq!(got.body.len(), 32 * 64 * 1024);
        assert!(got.body.iter().all(|b| *b == b'x'));
    }
    assert_eq!(calls.get(), 2);
}

/// The origin's body, counting the frames the layer pulls from it.
struct Counted {
    inner: Script,
    pulled: Arc<std::sync::atomic::AtomicUsize>,
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        let frame = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(frame, std::task::Poll::Ready(Some(_))) {
            self.pulled
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        frame
    }
}

#[tokio::test]
async fn the_layer_reads_no_more_than_the_limit_plus_one_frame_ahead_of_its_client() {
    // 1,000 frames of 1 KiB; limit 4 KiB. The response streams, so the client has it at once;
    // past the limit the body is not kept, and the layer reads the origin no further ahead
    // of its (only) client than the limit plus one frame, however long the client waits.
    let pulled = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&pulled);
    let origin = service_fn(move |_req: Request<http_body_util::Empty<Bytes>>| {
        let chunk = [7u8; 1024];
        let chunks: Vec<&[u8]> = (0..1000).map(|_| &chunk[..]).collect();
        let body = Counted {
            inner: Script::chunks(&chunks),
            pulled: Arc::clone(&counter),
        };
        async move { Ok::<_, std::convert::Infallible>(Response::new(body)) }
    });
    let svc = layer(4 * 1024).layer(origin);
    let response = svc.oneshot(get()).await.unwrap();
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let ahead = pulled.load(std::sync::atomic::Ordering::SeqCst);
    assert!(ahead <= 5, "{ahead} frames read ahead of the client");
    let got = read(response).await;
    assert_eq!(got.body.len(), 1000 * 1024);
    assert_eq!(pulled.load(std::sync::atomic::Ordering::SeqCst), 1000);
}

#[tokio::test]
async fn a_declared_length_over_the_limit_is_not_buffered() {
    let calls = Calls::default();
    let make: MakeBody = Arc::new(|| {
        let mut body = Script::chunks(&[&[1u8; 5000]]);
        body.claimed_len = Some(5000);
        Response::builder()
            .header("content-length", "5000")
            .body(body)
            .unwrap()
    });
    let svc = service(layer(1000), calls.clone(), make);
    for _ in 0..2 {
        let response = svc.clone().oneshot(get()).await.unwrap();
        assert_eq!(
            http_body::Body::size_hint(response.body()).exact(),
            Some(5000)
        );
        assert_eq!(read(response).await.body.len(), 5000);
    }
    assert_eq!(calls.get(), 2);
}

#[tokio::test]
async fn bodies_that_lie_about_their_length_are_never_stored() {
    for (declared, actual) in [("100", &b"short"[..]), ("2", &b"much longer"[..])] {
        let calls = Calls::default();
        let make: MakeBody = Arc::new(move || {
            Response::builder()
                .header("content-length", declared)
                .body(Script::chunks(&[actual]))
                .unwrap()
        });
        let svc = service(layer(1024), calls.clone(), make);
        for _ in 0..2 {
            let got = read(svc.clone().oneshot(get()).await.unwrap()).await;
            assert_eq!(got.cache(), "MISS", "declared {declared}");
            assert_eq!(got.body, actual);
        }
        assert_eq!(calls.get(), 2);
    }
}

#[tokio::test]
async fn trailers_are_stored_and_replayed() {
    let calls = Calls::default();
    let make: MakeBody = Arc::new(|| {
        let mut body = Script::chunks(&[b"payload"]);
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        trailers.insert("grpc-message", "ok".parse().unwrap());
        body.frames.push_back(Ok(Frame::trailers(trailers)));
        Response::builder()
            .header("content-type", "application/grpc")
            .body(body)
            .unwrap()
    });
    let svc = service(layer(1024), calls.clone(), make);
    for expected in ["MISS", "HIT"] {
        let got = read(svc.clone().oneshot(get()).await.unwrap()).await;
        assert_eq!(got.cache(), expected);
        assert_eq!(got.text(), "payload");
        let trailers = got.trailers.expect("trailers");
        assert_eq!(trailers["grpc-status"], "0");
        assert_eq!(trailers["grpc-message"], "ok");
        // A body with trailers must not be framed by Content-Length.
        assert!(got.headers.get("content-length").is_none());
    }
    assert_eq!(calls.get(), 1);
}

#[tokio::test]
async fn a_body_that_fails_midway_is_passed_on_and_not_stored() {
    let calls = Calls::default();
    let make: MakeBody = Arc::new(|| {
        let mut body = Script::chunks(&[b"partial"]);
        body.frames
            .push_back(Err(std::io::Error::other("connection reset")));
        Response::new(body)
    });
    let svc = service(layer(1024), calls.clone(), make);
    for _ in 0..2 {
        let response = svc.clone().oneshot(get()).await.unwrap();
        assert_eq!(response.headers()["x-cache"], "MISS");
        let mut body = response.into_body();
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), Bytes::from_static(b"partial"));
        let err = body.frame().await.unwrap().unwrap_err();
        assert_eq!(err.to_string(), "connection reset");
    }
    assert_eq!(calls.get(), 2);
}
