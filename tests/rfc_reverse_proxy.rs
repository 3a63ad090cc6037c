//! The HTTP-semantics behaviours through the `reverse_proxy` example, run as a process between
//! a real client and a scripted origin on 127.0.0.1: by default a pure RFC 9111 shared cache
//! (revalidation with 304s, clients' conditional and range requests answered from the cache,
//! request directives honoured, heuristic freshness, `Cache-Status`, `CDN-Cache-Control`).

mod common;

use bytes::Bytes;
use common::validating::Validating;
use http::HeaderMap;
use std::time::Duration;

/// The proxy in front of `origin`, and its address.
async fn proxy(origin: &Validating) -> (tokio::process::Child, String) {
    common::start_proxy(origin.serve().await, &[]).await
}

struct Got {
    status: u16,
    headers: HeaderMap,
    body: Bytes,
}

impl Got {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", |v| v.to_str().unwrap())
    }
}

async fn call(proxy: &str, method: &str, headers: &[(&str, &str)]) -> Got {
    let client = common::http_client();
    let uri = format!("http://{proxy}/doc");
    let (parts, body) = common::http_call(&client, method, &uri, headers).await;
    Got {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}

/// RFC 9111 §4.3 and RFC 9211: a stale entry is revalidated with its `ETag`; the origin's
/// 304 refreshes it; `Cache-Status` says so.
#[tokio::test]
async fn rfc9111_4_3_the_proxy_revalidates_with_304() {
    let origin = Validating::default();
    let (_proxy, addr) = proxy(&origin).await;
    let miss = call(&addr, "GET", &[]).await;
    assert_eq!((miss.status, miss.header("x-cache")), (200, "MISS"));
    assert!(
        miss.header("cache-status")
            .contains("fwd=uri-miss; fwd-status=200; stored")
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    origin.set(|s| s.headers = vec![("cache-control".into(), "max-age=60".into())]);
    let revalidated = call(&addr, "GET", &[]).await;
    assert_eq!(&revalidated.body[..], b"version 1");
    assert!(
        revalidated
            .header("cache-status")
            .contains("fwd=stale; fwd-status=304; stored"),
        "{}",
        revalidated.header("cache-status")
    );
    assert_eq!((origin.full(), origin.not_modified()), (1, 1));
    let hit = call(&addr, "GET", &[]).await;
    assert_eq!(hit.header("x-cache"), "HIT");
    assert!(
        hit.header("cache-status")
            .starts_with("tower-response-cache; hit; ttl=")
    );
}

/// RFC 9110 §13-14: a client's `If-None-Match` and `Range` are answered from the cache.
#[tokio::test]
async fn rfc9110_13_14_conditional_and_range_requests_are_answered_from_the_cache() {
    let origin = Validating::new(|s| {
        s.headers = vec![("cache-control".into(), "max-age=60".into())];
        s.body = "0123456789".into();
    });
    let (_proxy, addr) = proxy(&origin).await;
    call(&addr, "GET", &[]).await;
    let not_modified = call(&addr, "GET", &[("if-none-match", "W/\"v1\"")]).await;
    assert_eq!(not_modified.status, 304);
    assert_eq!(not_modified.header("etag"), "\"v1\"");
    assert!(not_modified.body.is_empty());
    let partial = call(&addr, "GET", &[("range", "bytes=2-4")]).await;
    assert_eq!(partial.status, 206);
    assert_eq!(partial.header("content-range"), "bytes 2-4/10");
    assert_eq!(&partial.body[..], b"234");
    let unsatisfiable = call(&addr, "GET", &[("range", "bytes=50-")]).await;
    assert_eq!(unsatisfiable.status, 416);
    assert_eq!(unsatisfiable.header("content-range"), "bytes */10");
    assert_eq!(
        origin.calls(),
        1,
        "all answered from the one stored response"
    );
}

/// RFC 9111 §5.2.1: the proxy lets clients ask for revalidation; `only-if-cached` never
/// reaches the origin.
#[tokio::test]
async fn rfc9111_5_2_1_the_proxy_honours_request_directives() {
    let origin = Validating::new(|s| {
        s.headers = vec![("cache-control".into(), "max-age=60".into())];
    });
    let (_proxy, addr) = proxy(&origin).await;
    let nothing = call(&addr, "GET", &[("cache-control", "only-if-cached")]).await;
    assert_eq!(nothing.status, 504);
    assert_eq!(origin.calls(), 0);
    call(&addr, "GET", &[]).await;
    let forced = call(&addr, "GET", &[("cache-control", "no-cache")]).await;
    assert_eq!(forced.status, 200);
    assert_eq!(origin.last_seen()["if-none-match"], "\"v1\"");
    assert!(
        forced
            .header("cache-status")
            .contains("fwd=request; fwd-status=304")
    );
    let pragma = call(&addr, "GET", &[("pragma", "no-cache")]).await;
    assert_eq!(pragma.status, 200);
    assert_eq!((origin.full(), origin.not_modified()), (1, 2));
    let cached = call(&addr, "GET", &[("cache-control", "only-if-cached")]).await;
    assert_eq!((cached.status, cached.header("x-cache")), (200, "HIT"));
}

/// RFC 9213: `CDN-Cache-Control` speaks to this cache instead of `Cache-Control`, and does not
/// leave it; RFC 9111 §4.2.2: a response without a lifetime gets a heuristic one from its
/// `Last-Modified`, and one with neither is not stored (no default ttl).
#[tokio::test]
async fn rfc9213_targeted_field_and_heuristic_freshness() {
    let origin = Validating::new(|s| {
        s.headers = vec![
            ("cache-control".into(), "no-store".into()),
            ("cdn-cache-control".into(), "max-age=60".into()),
        ];
    });
    let (_proxy, addr) = proxy(&origin).await;
    let miss = call(&addr, "GET", &[]).await;
    assert_eq!(
        miss.header("cache-control"),
        "no-store",
        "for the caches downstream"
    );
    assert_eq!(miss.header("cdn-cache-control"), "");
    let hit = call(&addr, "GET", &[]).await;
    assert_eq!(
        (hit.header("x-cache"), hit.header("cdn-cache-control")),
        ("HIT", "")
    );

    let week_ago =
        httpdate::fmt_http_date(std::time::SystemTime::now() - Duration::from_secs(7 * 86_400));
    let origin = Validating::new(|s| {
        s.headers = Vec::new();
        s.last_modified = Some(week_ago);
    });
    let (_proxy, addr) = proxy(&origin).await;
    let miss = call(&addr, "GET", &[]).await;
    let status = miss.header("cache-status");
    let ttl: u64 = status.split("ttl=").nth(1).unwrap().parse().unwrap();
    assert!(status.contains("stored"), "{status}");
    assert!((60_000..=60_480).contains(&ttl), "10% of a week: {status}");
    assert_eq!(call(&addr, "GET", &[]).await.header("x-cache"), "HIT");

    let origin = Validating::new(|s| {
        s.headers = Vec::new();
        s.etag = None;
    });
    let (_proxy, addr) = proxy(&origin).await;
    let miss = call(&addr, "GET", &[]).await;
    assert!(
        miss.header("cache-status").contains("detail=not-fresh"),
        "{}",
        miss.header("cache-status")
    );
    assert_eq!(call(&addr, "GET", &[]).await.header("x-cache"), "MISS");
}

/// RFC 9111 §4.1 and §3: through the proxy, `Accept-Encoding` values with one meaning share a
/// variant (the proxy normalises it as a token set), and a status outside the heuristic list
/// is stored when the origin gives it explicit freshness.
#[tokio::test]
async fn rfc9111_4_1_and_3_vary_token_sets_and_explicit_freshness_through_the_proxy() {
    let origin = Validating::new(|s| {
        s.headers = vec![
            ("cache-control".into(), "max-age=60".into()),
            ("vary".into(), "Accept-Encoding".into()),
        ];
    });
    let (_proxy, addr) = proxy(&origin).await;
    call(&addr, "GET", &[("accept-encoding", "gzip, br")]).await;
    let same = call(&addr, "GET", &[("accept-encoding", "BR,gzip")]).await;
    assert_eq!(same.header("x-cache"), "HIT");
    let other = call(&addr, "GET", &[("accept-encoding", "gzip")]).await;
    assert!(other.header("cache-status").contains("fwd=vary-miss"));
    assert_eq!(origin.calls(), 2);

    let origin = Validating::new(|s| {
        s.status = 403;
        s.headers = vec![("cache-control".into(), "max-age=60".into())];
    });
    let (_proxy, addr) = proxy(&origin).await;
    assert_eq!(call(&addr, "GET", &[]).await.status, 403);
    let hit = call(&addr, "GET", &[]).await;
    assert_eq!((hit.status, hit.header("x-cache")), (403, "HIT"));
}
