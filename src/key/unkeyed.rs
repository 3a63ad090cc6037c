//! Request headers that change what many apps do without being part of the URL ("unkeyed
//! inputs"), found in one pass over the header names.
//!
//! - **Forwarding headers.** Frameworks build absolute links and redirects from
//!   `X-Forwarded-Host`, `X-Forwarded-Proto` or `Forwarded: host=...;proto=...`, and some route
//!   by `X-Original-URL` or `X-Rewrite-URL`. A cache that ignores them lets one client store a
//!   page rendered for its own forged value under everybody's key (the classic "unkeyed
//!   header" poisoning). When any of them is present its value is part of the key: a request
//!   carrying a forged one gets entries of its own. A trusted proxy that sets them on every
//!   request costs nothing (every request carries the same value). `Forwarded` is keyed by its
//!   `host` and `proto` parameters only, so its per-client `for=` does not split the cache.
//! - **Method overrides.** `X-HTTP-Method-Override`, `X-HTTP-Method` and `X-Method-Override`
//!   make some frameworks treat a request as the method they name (Rails, Laravel, Symfony
//!   and Express's method-override only on `POST`, which is a write anyway): a `GET` carrying
//!   one bypasses the cache, so it always reaches the app, but invalidates nothing (a header
//!   any client can send must not evict what others read).
//! - **Conditional and range fields** (`If-None-Match`, `Range`...): such a request may be
//!   answered from the cache, but what the origin answers it (304, 206) is its own, so it
//!   never fetches on behalf of others.

use http::HeaderMap;

use super::KeySink;

/// The headers keyed when present (lowercase), besides `Forwarded` and `Front-End-Https`.
const KEYED: [&str; 14] = [
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-scheme",
    "x-forwarded-ssl",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-path",
    "x-forwarded-uri",
    "x-forwarded-server",
    "x-original-host",
    "x-host",
    "x-original-url",
    "x-rewrite-url",
    "x-http-scheme",
];

/// Keyed when present too, but not starting with `x-`.
const KEYED_OTHERS: [&str; 2] = ["forwarded", "front-end-https"];

/// Conditional and range fields: a request carrying one gets an answer of its own (304, 206).
const CONDITIONAL: [&str; 6] = [
    "if-none-match",
    "if-modified-since",
    "if-match",
    "if-unmodified-since",
    "if-range",
    "range",
];

/// The method-override headers (lowercase).
const METHOD_OVERRIDES: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// What one pass over a request's header names found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Unkeyed {
    /// A forwarding header is present: it goes into the key.
    pub forwarding: bool,
    /// A method-override header is present.
    pub method_override: bool,
    /// A conditional or range field is present.
    pub conditional: bool,
    /// `Cache-Control` or `Pragma` is present: the request may have directives.
    pub directives: bool,
}

impl Unkeyed {
    /// One pass over the names; most are dismissed by their first byte. (`prepare` makes
    /// this pass as part of its own, `key::fields`, which tests compare with this one.)
    #[cfg(test)]
    pub(crate) fn scan(headers: &HeaderMap) -> Self {
        let mut found = Unkeyed::default();
        for name in headers.keys() {
            found.note(name.as_str());
        }
        found
    }

    /// Notes a field name (lowercase, as `HeaderName`s are) if it is one of those looked for.
    #[inline]
    pub(crate) fn note(&mut self, name: &str) {
        match name.as_bytes().first() {
            Some(b'x') => {
                self.forwarding |= KEYED.contains(&name);
                self.method_override |= METHOD_OVERRIDES.contains(&name);
            }
            Some(b'f') => self.forwarding |= KEYED_OTHERS.contains(&name),
            Some(b'i' | b'r') => self.conditional |= CONDITIONAL.contains(&name),
            Some(b'c') => self.directives |= name == "cache-control",
            Some(b'p') => self.directives |= name == "pragma",
            _ => {}
        }
    }
}

/// Appends the forwarding headers the request carries to `key`; nothing unless `scan` found
/// one. (Inlined, so that the common case, none, costs no call.)
#[inline]
pub(super) fn push_present(headers: &HeaderMap, found: Unkeyed, key: &mut impl KeySink) {
    if found.forwarding {
        push_forwarding(headers, key);
    }
}

#[inline(never)]
fn push_forwarding(headers: &HeaderMap, key: &mut impl KeySink) {
    key.put(b"f");
    for name in KEYED.iter().copied().chain(["front-end-https"]) {
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
        push_present(&headers, Unkeyed::scan(&headers), &mut key);
        key
    }

    #[test]
    fn one_pass_finds_both_kinds() {
        let mut headers = HeaderMap::new();
        assert_eq!(Unkeyed::scan(&headers), Unkeyed::default());
        headers.insert("accept", http::HeaderValue::from_static("*/*"));
        headers.insert("x-request-id", http::HeaderValue::from_static("1"));
        assert_eq!(Unkeyed::scan(&headers), Unkeyed::default());
        headers.insert("X-HTTP-Method", http::HeaderValue::from_static("DELETE"));
        headers.insert("forwarded", http::HeaderValue::from_static("proto=https"));
        headers.insert("range", http::HeaderValue::from_static("bytes=0-1"));
        headers.insert("pragma", http::HeaderValue::from_static("no-cache"));
        let both = Unkeyed {
            forwarding: true,
            method_override: true,
            conditional: true,
            directives: true,
        };
        assert_eq!(Unkeyed::scan(&headers), both);
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
