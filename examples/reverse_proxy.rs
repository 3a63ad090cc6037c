//! A caching reverse proxy: the crate in front of any HTTP origin.
//!
//! ```sh
//! cargo run --release --example reverse_proxy -- \
//!     --listen 127.0.0.1:8080 --upstream http://127.0.0.1:8000 \
//!     [--default-ttl SECONDS] [--max-body BYTES] [--capacity BYTES] \
//!     [--upstream-timeout DURATION] [--tag-header NAME] [--purge-token TOKEN] [--redis URL] \
//!     [--targeted-field NAME] [--cache-name NAME]
//! ```
//!
//! With `--redis redis://host:port/` (build with `--features redis`), the cache has two tiers:
//! this proxy's memory in front of Redis, shared with every other proxy given the same URL, and
//! invalidations reach all of them.
//!
//! Every method is forwarded; GET and HEAD are cached as a pure RFC 9111 shared cache
//! ([`Policy::shared_cache`]): lifetimes from the origin's `Cache-Control` (`s-maxage`,
//! `max-age`, `Expires`) or, for responses that say nothing, heuristic freshness from
//! `Last-Modified`; stale responses with a validator are revalidated (`If-None-Match`,
//! `If-Modified-Since`, a `304` refreshes them); clients' own conditional and range requests
//! are answered from the cache; clients' `Cache-Control` (`no-cache`, `max-age`, `min-fresh`,
//! `max-stale`, `only-if-cached`, `no-store`) and `Pragma: no-cache` are honoured; every
//! response says what the cache did in `Cache-Status` (RFC 9211, named by `--cache-name`) and
//! `X-Cache`. `--targeted-field` (default `CDN-Cache-Control`, RFC 9213) is a field the origin
//! can address this cache with, in place of `Cache-Control`; it is removed before the response
//! leaves. `--default-ttl` is the lifetime of responses that say nothing (0, the default: none,
//! only heuristics). The client's `Host` is
//! passed to the origin (so virtual hosts keep working and never share entries; for an
//! absolute-form target, its authority replaces `Host`, RFC 9112 §3.2.2), with
//! `X-Forwarded-For`, `-Host` and `-Proto`. Hop-by-hop fields are dropped both ways. An origin
//! that cannot be reached gets a `502 Bad Gateway`.
//!
//! `--upstream-timeout` (`300ms`, `30s` or plain seconds; default 30 s) bounds how long the
//! origin may keep a client waiting. Its response head (connecting, sending the request,
//! including a request body the client streams, and receiving the status and headers) must
//! arrive within it, or the client gets a `504 Gateway Timeout` and the upstream request is
//! dropped (its connection closed). After the head, the body may take as long as it needs, but
//! it may not stall: each wait for the next piece of it is bounded by the same duration (an idle
//! timeout, like nginx's `proxy_read_timeout`; a total deadline would cut long downloads). A
//! stalled body cannot become a 504 any more (its `200` may already be on the wire): it ends
//! with an error, so the client's connection is cut (after the head, or before it if the cache
//! was still reading the body), the cache stores nothing, and the upstream connection is
//! closed. This matters more in front of a cache than elsewhere: on a miss the cache reads the
//! body (up to `--max-body`) before it answers, so a stalled body would otherwise hold the
//! client, and every request coalesced with it, without even a head.
//!
//! Writes (POST, PUT, PATCH, DELETE...) that succeed invalidate what they changed. The origin
//! tags responses with `--tag-header` (default `cache-tag`), and names tags to purge in the same
//! header on a write's response. With `--purge-token`, operators can purge: `PURGE /some/uri`,
//! or `POST /_cache/purge?tag=...` / `?uri=...` / `?all=true`, both with
//! `Authorization: Bearer TOKEN` (those requests never reach the origin).
//!
//! It prints `listening on ADDR` once it accepts connections.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::time::{Instant, Sleep};
use tower::{Layer, ServiceExt, service_fn};
use tower_response_cache::{
    AnyStore, CacheLayer, MemoryStore, Policy, PurgeService, PurgeToken, VaryNormalizer, token_set,
};

/// A caching reverse proxy: every request goes to `--upstream`, cached by the origin's
/// `Cache-Control` (RFC 9111, as a shared cache).
#[derive(Clone, Debug, clap::Parser)]
#[command(name = "reverse_proxy")]
struct Options {
    /// The address to listen on (`127.0.0.1:0` picks a free port; the chosen one is printed).
    #[arg(long)]
    listen: SocketAddr,
    /// The origin, an `http://host:port` URL.
    #[arg(long, value_parser = parse_upstream)]
    upstream: Uri,
    /// How long responses the origin gives no lifetime are kept, in seconds (0: not at all).
    #[arg(long = "default-ttl", value_name = "SECONDS", default_value = "0", value_parser = parse_seconds)]
    default_ttl: Duration,
    /// The largest body stored, in bytes.
    #[arg(long = "max-body", value_name = "BYTES", default_value_t = 1 << 20)]
    max_body: usize,
    /// The memory store's capacity, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 256 << 20)]
    capacity: u64,
    /// How long the origin may take to send a response head, or the next frame of its body
    /// (`300ms`, `30s`, or plain seconds); then `504`, or the body is cut.
    #[arg(long = "upstream-timeout", value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    upstream_timeout: Duration,
    /// The header the origin tags responses with.
    #[arg(long = "tag-header", value_name = "NAME", default_value = "cache-tag")]
    tag_header: HeaderName,
    /// The bearer token for `PURGE` requests and the purge endpoint (off without it).
    #[arg(long = "purge-token", value_name = "TOKEN")]
    purge_token: Option<String>,
    /// A Redis URL: cache in Redis as well (a tiered store); needs `--features redis`.
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
    /// The targeted cache-control field this cache obeys in place of `Cache-Control` (RFC 9213).
    #[arg(
        long = "targeted-field",
        value_name = "NAME",
        default_value = "cdn-cache-control"
    )]
    targeted_field: HeaderName,
    /// This cache's name in `Cache-Status` (RFC 9211).
    #[arg(
        long = "cache-name",
        value_name = "NAME",
        default_value = "tower-response-cache"
    )]
    cache_name: String,
}

/// `--upstream`: an `http://host:port` URL.
fn parse_upstream(text: &str) -> Result<Uri, String> {
    let upstream: Uri = text.parse().map_err(|e| format!("{e}"))?;
    if upstream.scheme_str() != Some("http") || upstream.authority().is_none() {
        return Err("must be an http://host:port URL".to_owned());
    }
    Ok(upstream)
}

/// Plain seconds, zero allowed (`--default-ttl`).
fn parse_seconds(text: &str) -> Result<Duration, String> {
    text.parse()
        .map(Duration::from_secs)
        .map_err(|e| format!("{e}"))
}

/// A duration on the command line: `300ms`, `30s`, or plain seconds (`30`, as `--default-ttl`).
fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, from): (&str, fn(u64) -> Duration) = match text.strip_suffix("ms") {
        Some(millis) => (millis, Duration::from_millis),
        None => (text.strip_suffix('s').unwrap_or(text), Duration::from_secs),
    };
    let duration = from(number.parse().map_err(|e| format!("{text:?}: {e}"))?);
    if duration.is_zero() {
        return Err("must be more than zero".to_owned());
    }
    Ok(duration)
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type ProxyBody = BoxBody<Bytes, BoxError>;

/// The origin's body, ended with an error when the proxy has waited `timeout` for its next
/// frame (an idle timeout: the clock runs only while the proxy is waiting for the origin, not
/// while a slow client keeps it from asking).
struct IdleTimeout {
    body: Incoming,
    timeout: Duration,
    /// Armed when a wait for the origin begins; `waiting` says whether it is.
    deadline: Pin<Box<Sleep>>,
    waiting: bool,
}

impl IdleTimeout {
    fn new(body: Incoming, timeout: Duration) -> Self {
        let deadline = Box::pin(tokio::time::sleep(timeout));
        IdleTimeout {
            body,
            timeout,
            deadline,
            waiting: false,
        }
    }
}

impl Body for IdleTimeout {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            this.waiting = false;
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        if !this.waiting {
            this.waiting = true;
            let deadline = Instant::now() + this.timeout;
            this.deadline.as_mut().reset(deadline);
        }
        ready!(this.deadline.as_mut().poll(cx));
        Poll::Ready(Some(Err(
            "upstream body stalled past --upstream-timeout".into()
        )))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Where operators purge by tag, URI, prefix or everything (with --purge-token).
const PURGE_PATH: &str = "/_cache/purge";

/// Hop-by-hop fields (RFC 9110 §7.6.1), never forwarded. The cache strips the response-side
/// ones itself before storing (with `Age`, `Set-Cookie` and `Content-Length`), but a proxy
/// forwards requests too, so it keeps its own list for both directions (`Proxy-Authorization`,
/// `TE`, `Trailer` are request fields): a copy on purpose, not an export of the cache's rules.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(header::TRANSFER_ENCODING);
}

/// Forwards one request to the origin; an unreachable origin is a 502, one whose response head
/// takes longer than `timeout` a 504, not an error.
async fn forward(
    client: Client<HttpConnector, Incoming>,
    upstream: Uri,
    timeout: Duration,
    peer: SocketAddr,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let uri = Uri::builder()
        .scheme("http")
        .authority(upstream.authority().expect("checked at start-up").clone())
        .path_and_query(path)
        .build();
    let Ok(uri) = uri else {
        return Ok(error(StatusCode::BAD_REQUEST, "bad request target"));
    };
    // RFC 9112 §3.2.2: an absolute-form target's authority replaces `Host`, so the origin
    // renders for the authority the cache keys by (the cache bypasses a disagreeing `Host`).
    let host = match parts.uri.authority() {
        Some(authority) => HeaderValue::from_str(authority.as_str()).ok(),
        None => parts.headers.get(header::HOST).cloned(),
    };
    strip_hop_by_hop(&mut parts.headers);
    if let Some(host) = host {
        parts.headers.insert("x-forwarded-host", host.clone());
        parts.headers.insert(header::HOST, host);
    }
    let forwarded_for = match parts
        .headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
    {
        Some(previous) => format!("{previous}, {}", peer.ip()),
        None => peer.ip().to_string(),
    };
    if let Ok(value) = HeaderValue::from_str(&forwarded_for) {
        parts.headers.insert("x-forwarded-for", value);
    }
    parts
        .headers
        .insert("x-forwarded-proto", HeaderValue::from_static("http"));
    parts.uri = uri;
    parts.version = http::Version::HTTP_11;

    // Dropping the request's future on timeout drops the exchange: the client's connection to
    // the origin is closed, not returned to the pool.
    let request = client.request(Request::from_parts(parts, body));
    match tokio::time::timeout(timeout, request).await {
        Ok(Ok(response)) => {
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Ok(Response::from_parts(
                parts,
                IdleTimeout::new(body, timeout).boxed(),
            ))
        }
        Ok(Err(e)) => {
            eprintln!("upstream error: {e}");
            Ok(error(StatusCode::BAD_GATEWAY, "upstream unreachable"))
        }
        Err(_elapsed) => {
            eprintln!("upstream timed out after {timeout:?}");
            Ok(error(StatusCode::GATEWAY_TIMEOUT, "upstream timed out"))
        }
    }
}

fn error(status: StatusCode, message: &'static str) -> Response<ProxyBody> {
    let body = Full::new(Bytes::from_static(message.as_bytes()))
        .map_err(|never| match never {})
        .boxed();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
}

/// The memory store, or memory in front of Redis with `--redis`.
fn build_store(options: &Options) -> Result<AnyStore, String> {
    let memory = MemoryStore::with_capacity_bytes(options.capacity);
    let Some(url) = &options.redis else {
        return Ok(AnyStore::new(memory));
    };
    #[cfg(feature = "redis")]
    {
        let redis = tower_response_cache::RedisStore::builder(url.as_str())
            .prefix("reverse-proxy")
            .build()
            .map_err(|e| format!("--redis: {e}"))?;
        let tiered = tower_response_cache::TieredStore::new(memory, redis)
            .map_err(|e| format!("--redis: {e}"))?;
        eprintln!("sharing the cache through {url}");
        Ok(AnyStore::new(tiered))
    }
    #[cfg(not(feature = "redis"))]
    {
        let _ = (memory, url);
        Err(
            "--redis needs the redis feature: cargo run --features redis --example reverse_proxy"
                .into(),
        )
    }
}

#[tokio::main]
async fn main() {
    let options = <Options as clap::Parser>::parse();
    let store = match build_store(&options) {
        Ok(store) => store,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    if !options
        .cache_name
        .bytes()
        .all(|b| (0x20..=0x7e).contains(&b))
    {
        eprintln!("--cache-name: printable ASCII only");
        std::process::exit(2);
    }
    let mut cache = CacheLayer::new(store)
        // A proxy does not know its origin's intentions: no header of the origin's may steer
        // the cache beyond standard HTTP and its tags.
        .without_override_header()
        .tag_header(options.tag_header.clone())
        .targeted_field(options.targeted_field.clone())
        .cache_status_name(&options.cache_name)
        // `gzip, br` and `br, gzip` are one variant of a response that varies on it.
        .vary_normalizer(header::ACCEPT_ENCODING, VaryNormalizer::new(token_set))
        .policy(
            Policy::shared_cache()
                .ttl(options.default_ttl)
                .max_body_bytes(options.max_body),
        );
    let mut purge = None;
    if let Some(token) = &options.purge_token {
        let token = PurgeToken::new(token).unwrap_or_else(|e| {
            eprintln!("--purge-token: {e}");
            std::process::exit(2);
        });
        cache = cache.purge_method(token.clone());
        purge = Some(PurgeService::new(cache.handle(), token));
    }
    let client: Client<HttpConnector, Incoming> =
        Client::builder(TokioExecutor::new()).build_http();

    let listener = match tokio::net::TcpListener::bind(options.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("cannot listen on {}: {e}", options.listen);
            std::process::exit(1);
        }
    };
    eprintln!("proxying to {}", options.upstream);
    // The one line on stdout, last: scripts wait for it to know the port.
    println!("listening on {}", listener.local_addr().unwrap());
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                eprintln!("accept failed: {e}");
                continue;
            }
        };
        let client = client.clone();
        let upstream = options.upstream.clone();
        let timeout = options.upstream_timeout;
        let cached = cache.layer(service_fn(move |request| {
            forward(client.clone(), upstream.clone(), timeout, peer, request)
        }));
        let purge = purge.clone();
        // The purge endpoint is answered here, in front of the cache; everything else goes
        // through the cache to the origin.
        let service = service_fn(move |request: Request<Incoming>| {
            let purge = purge.clone().filter(|_| request.uri().path() == PURGE_PATH);
            let cached = cached.clone();
            async move {
                let response: Response<BoxBody<Bytes, BoxError>> = match purge {
                    Some(purge) => {
                        let Ok(response) = purge.oneshot(request).await;
                        response.map(|body| body.map_err(|never| match never {}).boxed())
                    }
                    None => {
                        let Ok(response) = cached.oneshot(request).await;
                        response.map(|body| body.boxed())
                    }
                };
                Ok::<_, Infallible>(response)
            }
        });
        tokio::spawn(async move {
            let server = auto::Builder::new(TokioExecutor::new());
            let connection =
                server.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
            if let Err(e) = connection.await {
                eprintln!("connection from {peer}: {e}");
            }
        });
    }
}
