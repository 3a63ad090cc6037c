//! Streaming misses: the client that triggered a fill, and the ones that joined it, get each
//! frame as the origin sends it, while the same frames are kept for the store; storing runs
//! after the response is handed back.

mod common;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Frame;
use http_body_util::{BodyExt, Empty};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;
use tokio::sync::{Mutex, mpsc};
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_response_cache::store::Entry;
use tower_response_cache::{
    CacheLayer, MemoryStore, Policy, PutOutcome, Store, StoreError, StoreKey,
};

type Chunk = Result<Frame<Bytes>, Infallible>;

/// A response body the test feeds frame by frame.
struct Origin(mpsc::UnboundedReceiver<Chunk>);

impl http_body::Body for Origin {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Chunk>> {
        self.0.poll_recv(cx)
    }
}

/// An origin whose every response body is fed, frame by frame, by the test: each call hands
/// the test a sender.
#[derive(Clone)]
struct Feeds {
    senders: Arc<Mutex<mpsc::UnboundedReceiver<mpsc::UnboundedSender<Chunk>>>>,
    calls: Arc<AtomicUsize>,
}

fn origin(
    cache_control: &'static str,
) -> (
    impl Service<
        Request<Empty<Bytes>>,
        Response = Response<Origin>,
        Error = Infallible,
        Future = impl Send,
    > + Clone
    + Send
    + 'static,
    Feeds,
) {
    let (to_test, senders) = mpsc::unbounded_channel();
    let feeds = Feeds {
        senders: Arc::new(Mutex::new(senders)),
        calls: Arc::default(),
    };
    let calls = Arc::clone(&feeds.calls);
    let service = service_fn(move |_request: Request<Empty<Bytes>>| {
        calls.fetch_add(1, SeqCst);
        let (sender, receiver) = mpsc::unbounded_channel();
        to_test.send(sender).unwrap();
        let body = Origin(receiver);
        async move {
            Ok::<_, Infallible>(
                Response::builder()
                    .header("cache-control", cache_control)
                    .body(body)
                    .unwrap(),
            )
        }
    });
    (service, feeds)
}

impl Feeds {
    /// The body sender of the next origin call.
    async fn next(&self) -> mpsc::UnboundedSender<Chunk> {
        let mut senders = self.senders.lock().await;
        tokio::time::timeout(Duration::from_secs(10), senders.recv())
            .await
            .expect("an origin call")
            .unwrap()
    }
}

fn data(text: &'static str) -> Chunk {
    Ok(Frame::data(Bytes::from_static(text.as_bytes())))
}

fn get() -> Request<Empty<Bytes>> {
    Request::get("/feed").body(Empty::new()).unwrap()
}

/// The next data frame of `body`, which must come within 10 s.
async fn next_data<B>(body: &mut B) -> Bytes
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Debug,
{
    let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
        .await
        .expect("a frame in time")
        .expect("not the end")
        .expect("no error");
    frame.into_data().expect("data")
}

/// `future`'s output, which must come within 10 s (a layer that reads the whole body before
/// answering would hang these tests otherwise).
async fn in_time<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .expect("the response in time")
}

fn cache() -> CacheLayer<MemoryStore> {
    CacheLayer::new(MemoryStore::with_capacity_bytes(16 << 20)).policy(Policy::new())
}

#[tokio::test]
async fn the_client_gets_each_frame_before_the_origin_sends_the_next() {
    // Before: the layer read the whole body (up to max_body_bytes) before the client got its
    // first byte; a feed sending a line every 500 ms reached the client when it ended.
    let (service, feeds) = origin("max-age=60");
    let layer = cache();
    let handle = layer.handle();
    let app = layer.layer(service);
    let responding = tokio::spawn(app.clone().oneshot(get()));
    let feed = feeds.next().await;
    let response = in_time(responding).await.unwrap().unwrap();
    assert_eq!(response.headers()["x-cache"], "MISS");
    let mut body = response.into_body();
    for line in ["one\n", "two\n", "three\n"] {
        feed.send(data(line)).unwrap();
        // The origin sends nothing more until the client has this line.
        assert_eq!(next_data(&mut body).await, line);
    }
    drop(feed);
    assert!(body.frame().await.is_none(), "the end");
    handle.flush().await;
    let hit = app.oneshot(get()).await.unwrap();
    assert_eq!(hit.headers()["x-cache"], "HIT");
    let stored = hit.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(stored, "one\ntwo\nthree\n");
    assert_eq!(feeds.calls.load(SeqCst), 1);
}

#[tokio::test]
async fn a_request_joining_mid_transfer_gets_the_bytes_so_far_then_the_rest() {
    let (service, feeds) = origin("max-age=60");
    let app = cache().layer(service);
    let leader = tokio::spawn(app.clone().oneshot(get()));
    let feed = feeds.next().await;
    let mut first = in_time(leader).await.unwrap().unwrap().into_body();
    feed.send(data("early ")).unwrap();
    assert_eq!(next_data(&mut first).await, "early ");
    // A second client comes mid-transfer: it joins the fill, no second origin call.
    let late = in_time(app.clone().oneshot(get())).await.unwrap();
    assert_eq!(late.headers()["x-cache"], "HIT");
    let mut late = late.into_body();
    assert_eq!(
        next_data(&mut late).await,
        "early ",
        "what was received so far"
    );
    feed.send(data("late")).unwrap();
    assert_eq!(
        next_data(&mut late).await,
        "late",
        "then the rest as it arrives"
    );
    assert_eq!(next_data(&mut first).await, "late");
    drop(feed);
    assert!(late.frame().await.is_none());
    assert!(first.frame().await.is_none());
    assert_eq!(feeds.calls.load(SeqCst), 1);
}

#[tokio::test]
async fn a_client_that_never_reads_holds_back_neither_the_others_nor_the_fill() {
    let (service, feeds) = origin("max-age=60");
    let layer = cache();
    let handle = layer.handle();
    let app = layer.layer(service);
    let leader = tokio::spawn(app.clone().oneshot(get()));
    let feed = feeds.next().await;
    let _idle = in_time(leader).await.unwrap().unwrap().into_body(); // never read
    let mut reader = in_time(app.clone().oneshot(get()))
        .await
        .unwrap()
        .into_body();
    for i in 0..100 {
        let line: &'static str = Box::leak(format!("line {i}\n").into_boxed_str());
        feed.send(data(line)).unwrap();
        assert_eq!(next_data(&mut reader).await, line);
    }
    drop(feed);
    assert!(reader.frame().await.is_none());
    handle.flush().await;
    let hit = app.oneshot(get()).await.unwrap();
    assert_eq!(
        hit.headers()["x-cache"],
        "HIT",
        "stored while a client sat idle"
    );
}

#[tokio::test]
async fn a_body_larger_than_the_limit_keeps_streaming_to_everyone_attached_unstored() {
    let (service, feeds) = origin("max-age=60");
    let layer = cache().max_body_bytes(10);
    let handle = layer.handle();
    let app = layer.layer(service);
    let leader = tokio::spawn(app.clone().oneshot(get()));
    let feed = feeds.next().await;
    let mut first = in_time(leader).await.unwrap().unwrap().into_body();
    feed.send(data("0123")).unwrap();
    assert_eq!(next_data(&mut first).await, "0123");
    let mut second = in_time(app.clone().oneshot(get()))
        .await
        .unwrap()
        .into_body();
    assert_eq!(next_data(&mut second).await, "0123");
    for chunk in ["456789", "abcdef", "ghijkl"] {
        feed.send(data(chunk)).unwrap();
        assert_eq!(next_data(&mut first).await, chunk);
        assert_eq!(next_data(&mut second).await, chunk);
    }
    drop(feed);
    assert!(first.frame().await.is_none());
    assert!(second.frame().await.is_none());
    handle.flush().await;
    // Not stored: the next request asks the origin.
    let again = tokio::spawn(app.oneshot(get()));
    drop(feeds.next().await);
    let again = in_time(again).await.unwrap().unwrap();
    assert_eq!(again.headers()["x-cache"], "MISS");
    assert_eq!(feeds.calls.load(SeqCst), 2);
}

/// A memory store whose puts wait until the test opens the gate.
#[derive(Clone)]
struct StalledPuts {
    memory: MemoryStore,
    open: Arc<AtomicBool>,
    opened: Arc<tokio::sync::Notify>,
    waiting: Arc<AtomicUsize>,
}

impl Store for StalledPuts {
    async fn get(&self, key: StoreKey) -> Result<Option<Arc<Entry>>, StoreError> {
        self.memory.get(key).await
    }
    async fn put(
        &self,
        key: StoreKey,
        entry: Arc<Entry>,
        ttl: Duration,
    ) -> Result<PutOutcome, StoreError> {
        self.waiting.fetch_add(1, SeqCst);
        while !self.open.load(SeqCst) {
            let opened = self.opened.notified();
            if self.open.load(SeqCst) {
                break;
            }
            opened.await;
        }
        self.memory.put(key, entry, ttl).await
    }
    async fn remove(&self, key: StoreKey) -> Result<(), StoreError> {
        self.memory.remove(key).await
    }
    async fn invalidate_tags<'a>(&'a self, tags: &'a [&'a str]) -> Result<u64, StoreError> {
        self.memory.invalidate_tags(tags).await
    }
    async fn clear(&self) -> Result<u64, StoreError> {
        self.memory.clear().await
    }
}

#[tokio::test]
async fn a_stalled_store_write_delays_no_response_and_pending_writes_are_bounded() {
    // Before: the response came back only after the store's put returned (with a stalled
    // Redis, a miss cost a read timeout and then a write timeout).
    let store = StalledPuts {
        memory: MemoryStore::with_capacity_bytes(1 << 20),
        open: Arc::default(),
        opened: Arc::default(),
        waiting: Arc::default(),
    };
    let layer = CacheLayer::new(store.clone()).max_pending_writes(1);
    let stats = layer.stats();
    let handle = layer.handle();
    let app = layer.layer(service_fn(|request: Request<Empty<Bytes>>| async move {
        let body = format!("page {}", request.uri().path());
        Ok::<_, Infallible>(
            Response::builder()
                .header("cache-control", "max-age=60")
                .body(http_body_util::Full::new(Bytes::from(body)))
                .unwrap(),
        )
    }));
    let page = |path: &str| Request::get(path).body(Empty::<Bytes>::new()).unwrap();
    // The whole response, body and end, while its put waits at the gate.
    let response = in_time(app.clone().oneshot(page("/a"))).await.unwrap();
    let body = tokio::time::timeout(Duration::from_secs(10), response.into_body().collect())
        .await
        .expect("answered while the store is stalled")
        .unwrap()
        .to_bytes();
    assert_eq!(body, "page /a");
    while store.waiting.load(SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    // One write pending is the bound: the next response is answered and its write dropped.
    let response = in_time(app.clone().oneshot(page("/b"))).await.unwrap();
    let _ = response.into_body().collect().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while stats.snapshot().stores_dropped == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(stats.snapshot().stores_dropped, 1);
    store.open.store(true, SeqCst);
    store.opened.notify_waiters();
    handle.flush().await;
    let s = stats.snapshot();
    assert_eq!((s.stores, s.stores_dropped), (1, 1), "{s:?}");
    let hit = app.oneshot(page("/a")).await.unwrap();
    assert_eq!(hit.headers()["x-cache"], "HIT");
}
