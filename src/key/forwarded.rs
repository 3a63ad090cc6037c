//! Request headers that change what many apps render without being part of the URL.
//!
//! Frameworks build absolute links and redirects from `X-Forwarded-Host`, `X-Forwarded-Proto`
//! or `Forwarded: host=...;proto=...`, and some route by `X-Original-URL` or `X-Rewrite-URL`.
//! A cache that ignores them lets one client store a page rendered for its own forged value
//! under everybody's key (the classic "unkeyed header" poisoning). When any of them is present
//! its value is part of the key: a request carrying a forged one gets entries of its own. A
//! trusted proxy that sets them on every request costs nothing (every request carries the
//! same value). `Forwarded` is keyed by its `host` and `proto` parameters only, so its
//! per-client `for=` does not split the cache.

use http::HeaderMap;

/// The headers keyed when present (lowercase), besides `Forwarded`.
const KEYED: [&str; 9] = [
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-scheme",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-server",
    "x-host",
    "x-original-url",
    "x-rewrite-url",
];

/// Appends the forwarding headers the request carries to `key` (nothing when none is there,
/// which one pass over the names tells).
pub(super) fn push_present(headers: &HeaderMap, key: &mut Vec<u8>) {
    let present = headers
        .keys()
        .any(|name| name == http::header::FORWARDED || KEYED.contains(&name.as_str()));
    if !present {
        return;
    }
    key.push(b'f');
    for name in KEYED {
        for value in headers.get_all(name) {
            super::push_field(key, name.as_bytes());
            super::push_field(key, value.as_bytes());
        }
    }
    for value in headers.get_all(http::header::FORWARDED) {
        for param in value.as_bytes().split(|b| matches!(b, b',' | b';')) {
            let param = param.trim_ascii();
            let Some(eq) = param.iter().position(|b| *b == b'=') else {
                continue;
            };
            let name = param[..eq].trim_ascii();
            if name.eq_ignore_ascii_case(b"host") || name.eq_ignore_ascii_case(b"proto") {
                super::push_field(key, b"forwarded");
                super::push_field(key, &name.to_ascii_lowercase());
                super::push_field(key, param[eq + 1..].trim_ascii());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyed(pairs: &[(&'static str, &'static str)]) -> Vec<u8> {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, http::HeaderValue::from_static(value));
        }
        let mut key = Vec::new();
        push_present(&headers, &mut key);
        key
    }

    #[test]
    fn absent_headers_add_nothing() {
        assert!(keyed(&[("accept", "*/*"), ("x-forwarded-for", "10.0.0.1")]).is_empty());
    }

    #[test]
    fn forged_hosts_get_keys_of_their_own() {
        let evil = keyed(&[("x-forwarded-host", "evil.example")]);
        let good = keyed(&[("x-forwarded-host", "shop.example")]);
        assert!(!evil.is_empty());
        assert_ne!(evil, good);
        assert_ne!(keyed(&[("x-original-url", "/admin")]), Vec::<u8>::new());
    }

    #[test]
    fn forwarded_is_keyed_by_host_and_proto_only() {
        let a = keyed(&[("forwarded", "for=10.0.0.1;host=shop.example;proto=https")]);
        let b = keyed(&[("forwarded", "for=10.9.9.9; Host=shop.example; proto=https")]);
        let c = keyed(&[("forwarded", "for=10.0.0.1;host=evil.example;proto=https")]);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
