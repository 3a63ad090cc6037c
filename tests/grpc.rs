//! gRPC through the cache: a real tonic server (HTTP/2, 127.0.0.1) with the layer in front of
//! the `shop.Catalog` service of `examples/grpc`, called by a real tonic client; and what the
//! storing rules make of answers tonic would not send, in process.

#[path = "../examples/grpc/catalog.rs"]
mod catalog;

use bytes::{BufMut, Bytes, BytesMut};
use catalog::{Catalog, CatalogClient, GET_PRODUCT, GetProductRequest, ListProductsRequest};
use http::{HeaderMap, Request, Response};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use prost::Message;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tower::{Layer, ServiceExt};
use tower_response_cache::{
    CacheBody, CacheHandle, CacheLayer, DefaultKey, MemoryStore, NotStoredReason, Policy,
    QueryBodies,
};

type TonicBody = fn(CacheBody<tonic::body::Body>) -> tonic::body::Body;

fn cache() -> CacheLayer<MemoryStore, DefaultKey, QueryBodies<TonicBody>> {
    CacheLayer::new(MemoryStore::with_capacity_bytes(16 << 20))
        .query_bodies(tonic::body::Body::new as TonicBody)
        .route(GET_PRODUCT, Policy::grpc().ttl(Duration::from_secs(60)))
}

/// Serves `catalog` behind `layer` on 127.0.0.1; its address.
async fn serve<L>(layer: L, catalog: Catalog) -> String
where
    L: Layer<tonic::service::Routes> + Clone + Send + Sync + 'static,
    L::Service: tower::Service<
            Request<tonic::body::Body>,
            Response = Response<CacheBody<tonic::body::Body>>,
            Error = Infallible,
        > + Clone
        + Send
        + Sync
        + 'static,
    <L::Service as tower::Service<Request<tonic::body::Body>>>::Future: Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let incoming = futures_util::stream::unfold(listener, |listener| async move {
        Some((listener.accept().await.map(|(s, _)| s), listener))
    });
    let server = tonic::transport::Server::builder()
        .layer(layer)
        .add_service(catalog)
        .serve_with_incoming(incoming);
    tokio::spawn(server);
    address
}

async fn client(address: &str) -> CatalogClient {
    tokio::time::timeout(
        Duration::from_secs(10),
        CatalogClient::connect(address.to_owned()),
    )
    .await
    .expect("no hang")
    .expect("connected")
}

fn x_cache(metadata: &tonic::metadata::MetadataMap) -> String {
    metadata
        .get("x-cache")
        .map_or("", |v| v.to_str().unwrap())
        .to_owned()
}

#[tokio::test]
async fn unary_calls_reach_the_service_once_per_message_and_hits_end_in_grpc_status_0() {
    let catalog = Catalog::default();
    let address = serve(cache(), catalog.clone()).await;
    let mut client = client(&address).await;
    for (i, id) in std::iter::repeat_n(7, 10).chain([8]).enumerate() {
        let response = client.get_product(GetProductRequest { id }).await.unwrap();
        let expected = if i == 0 || id == 8 { "MISS" } else { "HIT" };
        assert_eq!(x_cache(response.metadata()), expected, "call {i}");
        if expected == "HIT" {
            // tonic merges a unary answer's trailers into its metadata.
            assert_eq!(response.metadata().get("grpc-status").unwrap(), "0");
        }
        let product = response.into_inner();
        assert_eq!((product.id, product.name), (id, format!("product {id}")));
    }
    assert_eq!(catalog.executions(), 2);
}

#[tokio::test]
async fn a_grpc_error_is_never_stored() {
    let catalog = Catalog::default();
    let layer = cache();
    let stats = layer.stats();
    let address = serve(layer, catalog.clone()).await;
    let mut client = client(&address).await;
    for _ in 0..3 {
        let error = client
            .get_product(GetProductRequest { id: 5000 })
            .await
            .unwrap_err();
        assert_eq!(error.code(), tonic::Code::NotFound);
        assert_eq!(error.message(), "no product 5000");
    }
    assert_eq!(catalog.executions(), 3, "each error reached the service");
    let snapshot = stats.snapshot();
    assert_eq!(snapshot.not_stored_for(NotStoredReason::GrpcStatus), 3);
}

#[tokio::test]
async fn streaming_calls_pass_through_untouched() {
    let catalog = Catalog::default();
    let address = serve(cache(), catalog.clone()).await;
    let mut client = client(&address).await;
    for _ in 0..2 {
        let response = client
            .list_products(ListProductsRequest { count: 3 })
            .await
            .unwrap();
        assert_eq!(x_cache(response.metadata()), "BYPASS");
        let mut stream = response.into_inner();
        let mut ids = Vec::new();
        while let Some(product) = stream.message().await.unwrap() {
            ids.push(product.id);
        }
        assert_eq!(ids, [1, 2, 3]);
        let trailers = stream.trailers().await.unwrap().expect("trailers");
        assert_eq!(trailers.get("grpc-status").unwrap(), "0");
    }
    assert_eq!(catalog.executions(), 2);
    // A cached unary call is not invalidated by them.
    client
        .get_product(GetProductRequest { id: 1 })
        .await
        .unwrap();
    client
        .list_products(ListProductsRequest { count: 1 })
        .await
        .unwrap();
    let again = client
        .get_product(GetProductRequest { id: 1 })
        .await
        .unwrap();
    assert_eq!(x_cache(again.metadata()), "HIT");
}

/// One `GetProduct` call's HTTP/2 body: the length-prefixed message.
fn message(id: u64) -> Bytes {
    let message = GetProductRequest { id }.encode_to_vec();
    let mut frame = BytesMut::new();
    frame.put_u8(0);
    frame.put_u32(message.len() as u32);
    frame.put_slice(&message);
    frame.freeze()
}

#[tokio::test]
async fn body_and_trailers_are_replayed_on_a_hit_over_http2() {
    let catalog = Catalog::default();
    let address = serve(cache(), catalog.clone()).await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Full<Bytes>>();
    let mut answers = Vec::new();
    for _ in 0..2 {
        let request = Request::post(format!("{address}{GET_PRODUCT}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(http_body_util::Full::new(message(9)))
            .unwrap();
        let response = tokio::time::timeout(Duration::from_secs(10), client.request(request))
            .await
            .expect("no hang")
            .unwrap();
        let (parts, body) = response.into_parts();
        let collected = body.collect().await.unwrap();
        let trailers = collected.trailers().cloned().expect("trailers");
        answers.push((parts, collected.to_bytes(), trailers));
    }
    let (miss, hit) = (&answers[0], &answers[1]);
    assert_eq!(miss.0.headers["x-cache"], "MISS");
    assert_eq!(hit.0.headers["x-cache"], "HIT");
    assert_eq!(hit.0.headers["content-type"], "application/grpc");
    assert_eq!(hit.1, miss.1, "the same message");
    assert_eq!(hit.2, miss.2, "the same trailers");
    assert_eq!(hit.2["grpc-status"], "0");
    assert_eq!(catalog.executions(), 1);
}

#[tokio::test]
async fn grpc_timeout_and_te_are_not_keyed_metadata_chosen_by_the_key_is() {
    let catalog = Catalog::default();
    let layer = cache().key(|_, key| {
        key.header("x-tenant");
    });
    let address = serve(layer, catalog.clone()).await;
    let mut client = client(&address).await;
    let call = |tenant: &'static str, timeout: u64| {
        let mut request = tonic::Request::new(GetProductRequest { id: 3 });
        request.set_timeout(Duration::from_secs(timeout));
        request
            .metadata_mut()
            .insert("x-tenant", tenant.parse().unwrap());
        request
    };
    let mut seen = Vec::new();
    for (tenant, timeout) in [("a", 5), ("a", 9), ("b", 5), ("b", 7), ("a", 1)] {
        let response = client.get_product(call(tenant, timeout)).await.unwrap();
        seen.push(x_cache(response.metadata()));
    }
    assert_eq!(seen, ["MISS", "HIT", "MISS", "HIT", "HIT"]);
    assert_eq!(catalog.executions(), 2);
}

/// The body of a raw origin's answer: its frames, in order.
type Frames =
    StreamBody<futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

/// An origin answering gRPC calls in process, with the frames and fields a test chose.
trait RawOrigin:
    tower::Service<
        Request<tonic::body::Body>,
        Response = Response<Frames>,
        Error = Infallible,
        Future: Send,
    > + Clone
    + Send
    + 'static
{
}

impl<S> RawOrigin for S where
    S: tower::Service<
            Request<tonic::body::Body>,
            Response = Response<Frames>,
            Error = Infallible,
            Future: Send,
        > + Clone
        + Send
        + 'static
{
}

/// What a raw origin adds to its head or sends as trailers.
type Fields = &'static [(&'static str, &'static str)];

/// An origin answering `GetProduct` with the message bytes it was sent, then `trailers` (none:
/// no trailers frame); with `head` added to its head. Counts its calls.
fn raw_origin(
    calls: &Arc<AtomicUsize>,
    head: &'static [(&'static str, &'static str)],
    trailers: Option<&'static [(&'static str, &'static str)]>,
) -> impl RawOrigin {
    slow_origin(calls, head, trailers, Duration::ZERO)
}

/// [`raw_origin`], answering after `delay`.
fn slow_origin(
    calls: &Arc<AtomicUsize>,
    head: &'static [(&'static str, &'static str)],
    trailers: Option<&'static [(&'static str, &'static str)]>,
    delay: Duration,
) -> impl RawOrigin {
    let calls = Arc::clone(calls);
    tower::service_fn(move |request: Request<tonic::body::Body>| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move {
            tokio::time::sleep(delay).await;
            let sent = request.into_body().collect().await.unwrap().to_bytes();
            let mut frames = vec![Ok(Frame::data(sent))];
            if let Some(trailers) = trailers {
                let mut map = HeaderMap::new();
                for (name, value) in trailers {
                    map.insert(*name, value.parse().unwrap());
                }
                frames.push(Ok(Frame::trailers(map)));
            }
            let mut response = Response::new(StreamBody::new(futures_util::stream::iter(frames)));
            response
                .headers_mut()
                .insert("content-type", "application/grpc".parse().unwrap());
            for (name, value) in head {
                response.headers_mut().insert(*name, value.parse().unwrap());
            }
            Ok::<_, Infallible>(response)
        }
    })
}

fn grpc_call(id: u64, extra: &[(&str, &str)]) -> Request<tonic::body::Body> {
    let mut request = Request::post(GET_PRODUCT)
        .header("host", "shop.example")
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    let body = http_body_util::Full::new(message(id));
    request.body(tonic::body::Body::new(body)).unwrap()
}

/// Sends `request` through `service`; its `x-cache` and trailers.
async fn answer<S, B>(
    service: &S,
    request: Request<tonic::body::Body>,
) -> (String, Option<HeaderMap>)
where
    S: tower::Service<Request<tonic::body::Body>, Response = Response<B>, Error = Infallible>
        + Clone,
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let response = service.clone().oneshot(request).await.unwrap();
    let cache = response.headers()["x-cache"].to_str().unwrap().to_owned();
    let collected = response.into_body().collect().await.unwrap();
    (cache, collected.trailers().cloned())
}

/// Sends the same call three times, with the cache's writes settled between them: the
/// `x-cache` of each.
async fn thrice<S, B>(service: &S, handle: &CacheHandle) -> Vec<String>
where
    S: tower::Service<Request<tonic::body::Body>, Response = Response<B>, Error = Infallible>
        + Clone,
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(answer(service, grpc_call(4, &[])).await.0);
        handle.flush().await;
    }
    seen
}

#[tokio::test]
async fn only_answers_ending_in_grpc_status_0_are_stored() {
    let cases: [(Fields, Option<Fields>, bool); 5] = [
        (&[], Some(&[("grpc-status", "0")]), true),
        // An error in the trailers of an HTTP 200.
        (
            &[],
            Some(&[("grpc-status", "13"), ("grpc-message", "boom")]),
            false,
        ),
        // No status at all: not a complete gRPC answer.
        (&[], None, false),
        (&[], Some(&[("x-other", "1")]), false),
        // An error in the head ("trailers-only").
        (&[("grpc-status", "5")], None, false),
    ];
    for (head, trailers, stored) in cases {
        let calls = Arc::new(AtomicUsize::new(0));
        let layer = cache();
        let handle = layer.handle();
        let service = layer.layer(raw_origin(&calls, head, trailers));
        let seen = thrice(&service, &handle).await;
        let expected: &[&str] = if stored {
            &["MISS", "HIT", "HIT"]
        } else {
            &["MISS", "MISS", "MISS"]
        };
        assert_eq!(seen, expected, "{head:?} {trailers:?}");
        let replayed = answer(&service, grpc_call(4, &[])).await.1;
        assert_eq!(
            replayed.map(|t| t.len()),
            trailers.map(<[_]>::len),
            "trailers as the origin sent them"
        );
    }
}

#[tokio::test]
async fn the_answers_compression_is_keyed_and_overrides_in_metadata_are_honoured() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = cache();
    let service = layer.layer(raw_origin(&calls, &[], Some(&[("grpc-status", "0")])));
    let gzip = [("grpc-accept-encoding", "gzip")];
    let seen = [
        answer(&service, grpc_call(4, &[])).await.0,
        answer(&service, grpc_call(4, &gzip)).await.0,
        answer(&service, grpc_call(4, &gzip)).await.0,
        answer(&service, grpc_call(4, &[("grpc-encoding", "identity")]))
            .await
            .0,
    ];
    assert_eq!(seen, ["MISS", "MISS", "HIT", "MISS"]);

    // The handler said `no-store` in its answer's metadata.
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = cache();
    let handle = layer.handle();
    let head = &[("x-cache-override", "no-store")];
    let service = layer.layer(raw_origin(&calls, head, Some(&[("grpc-status", "0")])));
    assert_eq!(thrice(&service, &handle).await, ["MISS", "MISS", "MISS"]);
}

#[tokio::test]
async fn a_grpc_error_in_the_trailers_never_reaches_the_calls_waiting_for_it() {
    for (status, stored) in [("14", false), ("0", true)] {
        let trailers: &'static [(&str, &str)] = if stored {
            &[("grpc-status", "0")]
        } else {
            &[("grpc-status", "14")]
        };
        let calls = Arc::new(AtomicUsize::new(0));
        let origin = slow_origin(&calls, &[], Some(trailers), Duration::from_millis(200));
        let service = cache().layer(origin);
        let answers =
            futures_util::future::join_all((0..5).map(|_| answer(&service, grpc_call(4, &[]))))
                .await;
        for (cache, trailers) in &answers {
            assert_eq!(trailers.as_ref().unwrap()["grpc-status"], status);
            if !stored {
                assert_ne!(cache, "HIT", "an error is no hit");
            }
        }
        let calls = calls.load(Ordering::SeqCst);
        if stored {
            assert_eq!(calls, 1, "the waiters got the stored answer");
        } else {
            assert!(calls > 1, "the waiters asked for themselves: {calls}");
        }
    }
}
