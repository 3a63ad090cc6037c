//! `Vary` (RFC 9111 §4.1): a stored response is reused only for requests whose fields named by
//! its `Vary` match the ones of the request that fetched it, after combining field lines and
//! removing whitespace the syntax allows (§4.1, RFC 9110 §5.3, §5.6.1); field names are
//! case-insensitive; an absent field differs from an empty one; `Vary: *` is never stored;
//! a per-field normaliser (`token_set` for `Accept-Encoding`) makes values with one meaning share
//! a variant; and a new response for one variant replaces only that variant.

mod common;

use common::rfc::{Cached, Setup, cache_with, get, layer, send, status_of};
use common::validating::Validating;
use http::header::ACCEPT_ENCODING;
use std::time::Duration;
use tower_response_cache::{Policy, VaryNormalizer, token_set};

fn cache(origin: &Validating) -> (Cached, Setup) {
    cache_with(origin, layer(Policy::new()))
}

/// An origin whose responses `Vary` as `vary` says, stored for a minute.
fn varying(vary: &str) -> Validating {
    let vary = vary.to_owned();
    Validating::new(move |s| {
        s.headers = vec![
            ("cache-control".into(), "max-age=60".into()),
            ("vary".into(), vary),
        ]
    })
}

/// Sends `headers`, waits for the store, and returns the answer.
async fn send_flushed(service: &Cached, handle: &Setup, headers: &[(&str, &str)]) -> common::Got {
    let got = send(service, get(headers)).await;
    handle.flush().await;
    got
}

/// §4.1: the values are compared after combining field lines (RFC 9110 §5.3) and removing
/// whitespace around list members (§5.6.1): `en, fr`, `en,fr`, ` en ,  fr `, `en, , fr` and the
/// two lines `en` + `fr` select one variant: one origin call for all.
#[tokio::test]
async fn rfc9111_4_1_combined_lines_and_list_whitespace_share_a_variant() {
    let origin = varying("Accept-Language");
    let (service, handle) = cache(&origin);
    let first = send_flushed(&service, &handle, &[("accept-language", "en, fr")]).await;
    assert_eq!((first.status, first.cache()), (200, "MISS"));
    let spellings: [&[(&str, &str)]; 5] = [
        &[("accept-language", "en, fr")],
        &[("accept-language", "en,fr")],
        &[("accept-language", " en ,  fr ")],
        &[("accept-language", "en, , fr")],
        &[("accept-language", "en"), ("accept-language", "fr")],
    ];
    for headers in spellings {
        let got = send(&service, get(headers)).await;
        assert_eq!(
            (got.status, got.cache(), got.text().as_str()),
            (200, "HIT", "version 1"),
            "{headers:?}"
        );
        assert_eq!(got.headers["vary"], "Accept-Language");
    }
    assert_eq!(origin.calls(), 1);
    // Order is meaningful without a normaliser: `fr, en` is another variant.
    let got = send(&service, get(&[("accept-language", "fr, en")])).await;
    assert_eq!(got.cache(), "MISS");
    assert_eq!(origin.calls(), 2);
}

/// §4.1 (RFC 9110 §5.1): field names in `Vary` are case-insensitive, and a name listed twice
/// (in either case, on either line) is one.
#[tokio::test]
async fn rfc9111_4_1_vary_field_names_are_case_insensitive() {
    for vary in [
        "ACCEPT-Language",
        "accept-language",
        "Accept-Language, ACCEPT-LANGUAGE",
    ] {
        let origin = varying(vary);
        let (service, handle) = cache(&origin);
        let first = send_flushed(&service, &handle, &[("accept-language", "en")]).await;
        assert_eq!(first.cache(), "MISS", "{vary}");
        let got = send(&service, get(&[("Accept-Language", "en")])).await;
        assert_eq!(
            (got.cache(), got.text().as_str()),
            ("HIT", "version 1"),
            "{vary}"
        );
        let got = send(&service, get(&[("accept-language", "de")])).await;
        assert_eq!(got.cache(), "MISS", "{vary}: de is another variant");
        assert!(
            status_of(&got).contains("fwd=vary-miss"),
            "{vary}: {}",
            status_of(&got)
        );
        assert_eq!(origin.calls(), 2, "{vary}");
    }
}

/// §4.1: different values are different variants, each stored and served with its own body;
/// an absent field and an empty one differ; a field the response does not vary on does not
/// matter.
#[tokio::test]
async fn rfc9111_4_1_different_values_are_different_variants() {
    let origin = varying("accept-language");
    let (service, handle) = cache(&origin);
    let variants: [&[(&str, &str)]; 5] = [
        &[("accept-language", "en")],
        &[("accept-language", "fr")],
        &[("accept-language", "EN")],
        &[],
        &[("accept-language", "")],
    ];
    for (i, headers) in variants.iter().enumerate() {
        origin.set(|s| s.body = format!("body {i}"));
        let got = send_flushed(&service, &handle, headers).await;
        assert_eq!(
            (got.cache(), got.text()),
            ("MISS", format!("body {i}")),
            "{headers:?}"
        );
        if i > 0 {
            assert!(
                status_of(&got).contains("fwd=vary-miss; fwd-status=200; stored"),
                "{headers:?}: {}",
                status_of(&got)
            );
        }
    }
    assert_eq!(origin.calls(), variants.len());
    for (i, headers) in variants.iter().enumerate() {
        let mut headers = headers.to_vec();
        headers.push(("accept-encoding", "gzip"));
        let got = send(&service, get(&headers)).await;
        assert_eq!(
            (got.cache(), got.text()),
            ("HIT", format!("body {i}")),
            "{headers:?}"
        );
    }
    assert_eq!(origin.calls(), variants.len());
}

/// §4.1: `Vary: *` always fails to match: the response is never stored, alone or in a list.
#[tokio::test]
async fn rfc9111_4_1_vary_star_is_never_stored() {
    for vary in ["*", "accept-language, *", " * "] {
        let origin = varying(vary);
        let (service, handle) = cache(&origin);
        for i in 1..=3 {
            let got = send_flushed(&service, &handle, &[]).await;
            assert_eq!(
                (got.status, got.cache(), got.text().as_str()),
                (200, "MISS", "version 1"),
                "{vary}"
            );
            assert!(
                status_of(&got).contains("detail=vary-star"),
                "{vary}: {}",
                status_of(&got)
            );
            assert_eq!(origin.calls(), i, "{vary}");
        }
    }
    // Two field lines, one of them `*`.
    let origin = Validating::new(|s| {
        s.headers = vec![
            ("cache-control".into(), "max-age=60".into()),
            ("vary".into(), "accept-language".into()),
            ("vary".into(), "*".into()),
        ]
    });
    let (service, handle) = cache(&origin);
    send_flushed(&service, &handle, &[]).await;
    let got = send(&service, get(&[])).await;
    assert_eq!(got.cache(), "MISS");
    assert_eq!(origin.calls(), 2);
}

/// §4.1: a normaliser for `Accept-Encoding` (`token_set`: order and case carry no meaning)
/// makes `gzip, br`, `BR,gzip` and `br` + `gzip` one variant; without it they are not.
#[tokio::test]
async fn rfc9111_4_1_accept_encoding_token_set_normaliser() {
    let origin = varying("accept-encoding");
    let normalised =
        layer(Policy::new()).vary_normalizer(ACCEPT_ENCODING, VaryNormalizer::new(token_set));
    let (service, handle) = cache_with(&origin, normalised);
    let first = send_flushed(&service, &handle, &[("accept-encoding", "gzip, br")]).await;
    assert_eq!(first.cache(), "MISS");
    let spellings: [&[(&str, &str)]; 4] = [
        &[("accept-encoding", "BR,gzip")],
        &[("accept-encoding", "br, gzip, gzip")],
        &[("accept-encoding", "br"), ("accept-encoding", "GZIP")],
        &[("accept-encoding", "gzip,br")],
    ];
    for headers in spellings {
        let got = send(&service, get(headers)).await;
        assert_eq!(got.cache(), "HIT", "{headers:?}");
    }
    assert_eq!(origin.calls(), 1);
    let got = send(&service, get(&[("accept-encoding", "gzip")])).await;
    assert_eq!(got.cache(), "MISS", "another set");
    assert_eq!(origin.calls(), 2);

    // Without the normaliser.
    let origin = varying("accept-encoding");
    let (service, handle) = cache(&origin);
    let first = send_flushed(&service, &handle, &[("accept-encoding", "gzip, br")]).await;
    assert_eq!(first.cache(), "MISS");
    let got = send_flushed(&service, &handle, &[("accept-encoding", "BR,gzip")]).await;
    assert_eq!(got.cache(), "MISS");
    let got = send(&service, get(&[("accept-encoding", "br, gzip")])).await;
    assert_eq!(got.cache(), "MISS");
    assert_eq!(origin.calls(), 3);
    let got = send(&service, get(&[("accept-encoding", "gzip,br")])).await;
    assert_eq!(got.cache(), "HIT", "whitespace is still removed");
}

/// A normaliser applies only to its field: `Accept-Language` values keep their case and order.
#[tokio::test]
async fn rfc9111_4_1_normaliser_applies_to_its_field_only() {
    let origin = varying("accept-language");
    let normalised =
        layer(Policy::new()).vary_normalizer(ACCEPT_ENCODING, VaryNormalizer::new(token_set));
    let (service, handle) = cache_with(&origin, normalised);
    send_flushed(&service, &handle, &[("accept-language", "en, fr")]).await;
    let got = send(&service, get(&[("accept-language", "FR,en")])).await;
    assert_eq!(got.cache(), "MISS");
    assert_eq!(origin.calls(), 2);
}

/// §4.1, §3.2, §4.3.4: a new response for one variant replaces only that variant: after `en`
/// expires and is fetched again with a new body, `fr` is still answered from its own entry, as
/// it was stored, without the origin.
#[tokio::test]
async fn rfc9111_4_1_a_new_response_replaces_only_its_variant() {
    let origin = Validating::new(|s| {
        s.body = "en 1".into();
        s.etag = Some("\"en1\"".into());
        s.headers = vec![
            ("cache-control".into(), "max-age=1".into()),
            ("vary".into(), "accept-language".into()),
        ];
    });
    let (service, handle) = cache(&origin);
    let en = [("accept-language", "en")];
    let fr = [("accept-language", "fr")];
    let got = send_flushed(&service, &handle, &en).await;
    assert_eq!((got.cache(), got.text().as_str()), ("MISS", "en 1"));
    origin.set(|s| {
        s.body = "fr 1".into();
        s.etag = Some("\"fr1\"".into());
        s.headers[0].1 = "max-age=60".into();
    });
    let got = send_flushed(&service, &handle, &fr).await;
    assert_eq!((got.cache(), got.text().as_str()), ("MISS", "fr 1"));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    origin.set(|s| {
        s.body = "en 2".into();
        s.etag = Some("\"en2\"".into());
    });
    let got = send_flushed(&service, &handle, &en).await;
    assert_eq!(
        origin.last_seen()["if-none-match"],
        "\"en1\"",
        "revalidated with the en variant's own validator"
    );
    assert_eq!((got.cache(), got.text().as_str()), ("MISS", "en 2"));
    assert_eq!(origin.calls(), 3);
    let got = send(&service, get(&fr)).await;
    assert_eq!(
        (got.cache(), got.text().as_str()),
        ("HIT", "fr 1"),
        "fr untouched"
    );
    assert_eq!(got.headers["etag"], "\"fr1\"");
    let got = send(&service, get(&en)).await;
    assert_eq!((got.cache(), got.text().as_str()), ("HIT", "en 2"));
    assert_eq!(got.headers["etag"], "\"en2\"");
    assert_eq!(origin.calls(), 3);
}

/// A variant stored with a short lifetime must not take the other variants with it: `fr`
/// (fresh for a minute) stays reachable after `en` (fresh for a second, nothing kept to
/// revalidate) is stored after it and expires.
#[tokio::test]
async fn rfc9111_4_1_a_short_lived_variant_does_not_hide_a_fresh_one() {
    let origin = Validating::new(|s| {
        s.body = "fr".into();
        s.etag = None;
        s.headers = vec![
            ("cache-control".into(), "max-age=60".into()),
            ("vary".into(), "accept-language".into()),
        ];
    });
    let (service, handle) = cache(&origin);
    let fr = [("accept-language", "fr")];
    send_flushed(&service, &handle, &fr).await;
    origin.set(|s| {
        s.body = "en".into();
        s.headers[0].1 = "max-age=1".into();
    });
    send_flushed(&service, &handle, &[("accept-language", "en")]).await;
    let got = send(&service, get(&fr)).await;
    assert_eq!((got.cache(), got.text().as_str()), ("HIT", "fr"));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    origin.set(|s| s.body = "from the origin again".into());
    let got = send(&service, get(&fr)).await;
    assert_eq!(
        (got.cache(), got.text().as_str()),
        ("HIT", "fr"),
        "fr is fresh for a minute: {}",
        status_of(&got)
    );
    assert_eq!(origin.calls(), 2);
}

/// Concurrent misses for different variants are not coalesced into one answer: each request
/// gets the response fetched for its own variant.
#[tokio::test]
async fn rfc9111_4_1_concurrent_requests_for_different_variants() {
    let origin = varying("accept-language");
    origin.set(|s| s.delay = Duration::from_millis(200));
    let (service, handle) = cache(&origin);
    // The first fill tells the cache that the URI varies.
    send_flushed(&service, &handle, &[("accept-language", "en")]).await;
    let requests = ["de", "fr", "de", "fr", "it"]
        .map(|language| send(&service, get(&[("accept-language", language)])));
    let answers = futures_util::future::join_all(requests).await;
    for got in &answers {
        assert_eq!(got.status, 200);
    }
    assert_eq!(origin.calls(), 4, "en, then de, fr and it once each");
    handle.flush().await;
    for language in ["en", "de", "fr", "it"] {
        let got = send(&service, get(&[("accept-language", language)])).await;
        assert_eq!(got.cache(), "HIT", "{language}");
    }
    assert_eq!(origin.calls(), 4);
}
