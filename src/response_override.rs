//! Per-response overrides: a handler tells the cache how to treat the response it returns.

use http::{HeaderName, response};
use std::time::Duration;

use crate::entry::{capped, capped_secs};

/// A handler's instruction for its own response, put in the response extensions (or sent as the
/// override header, `x-cache-override` by default: `no-store` or `ttl=SECONDS`). The layer reads
/// and removes both before the response leaves it.
///
/// An override can shorten or lengthen the lifetime (up to [`MAX_LIFETIME`](crate::MAX_LIFETIME):
/// longer ones, `ttl=99999999999999999999` included, saturate) or forbid storing; it cannot make
/// the cache store what is unsafe to share (`private`, `no-store`, `Set-Cookie`, ...). In the
/// header, directives are separated by commas; the first `ttl` wins, and anything that does not
/// parse (`ttl=-1`, `ttl=+5`, an unknown directive, bytes that are not ASCII) means `no-store`.
///
/// ```
/// use axum::{response::IntoResponse, Extension};
/// use std::time::Duration;
/// use tower_response_cache::CacheOverride;
///
/// async fn prices() -> impl IntoResponse {
///     (Extension(CacheOverride::ttl(Duration::from_secs(5))), "volatile prices")
/// }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheOverride {
    ttl: Option<Duration>,
    no_store: bool,
}

impl CacheOverride {
    /// Store this response for `ttl` (instead of the policy's or the origin's lifetime), at most
    /// [`MAX_LIFETIME`](crate::MAX_LIFETIME).
    pub fn ttl(ttl: Duration) -> Self {
        CacheOverride {
            ttl: Some(capped(ttl)),
            no_store: false,
        }
    }

    /// Do not store this response.
    pub fn no_store() -> Self {
        CacheOverride {
            ttl: None,
            no_store: true,
        }
    }

    pub(crate) fn lifetime(&self) -> Option<Duration> {
        self.ttl
    }

    pub(crate) fn forbids_store(&self) -> bool {
        self.no_store
    }

    /// Removes the override extension and header from `response`, combining them: `no-store`
    /// from either wins; the extension's ttl wins over the header's. A header value that does not
    /// parse means `no-store`: a typo must not cache what the handler meant to protect.
    pub(crate) fn take(response: &mut response::Parts, header: Option<&HeaderName>) -> Self {
        let mut result = response
            .extensions
            .remove::<CacheOverride>()
            .unwrap_or_default();
        let Some(name) = header else {
            return result;
        };
        if !response.headers.contains_key(name) {
            return result;
        }
        let values: Vec<_> = response.headers.get_all(name).iter().cloned().collect();
        response.headers.remove(name);
        for value in values {
            let Ok(text) = value.to_str() else {
                result.no_store = true;
                continue;
            };
            for directive in text.split(',').map(str::trim).filter(|d| !d.is_empty()) {
                match directive.split_once('=') {
                    None if directive.eq_ignore_ascii_case("no-store") => result.no_store = true,
                    Some((k, v)) if k.trim().eq_ignore_ascii_case("ttl") => {
                        match seconds(v.trim()) {
                            Some(ttl) => result.ttl = result.ttl.or(Some(ttl)),
                            None => result.no_store = true,
                        }
                    }
                    _ => {
                        tracing::warn!(directive, "unknown cache override directive; not storing");
                        result.no_store = true;
                    }
                }
            }
        }
        result
    }
}

/// A `ttl` value: digits only; more seconds than a `u64` holds saturate like any lifetime.
fn seconds(value: &str) -> Option<Duration> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(capped_secs(value.parse().unwrap_or(u64::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderValue, Response};

    fn parts(header: Option<&[u8]>, ext: Option<CacheOverride>) -> response::Parts {
        let mut res = Response::new(());
        if let Some(h) = header {
            res.headers_mut()
                .insert("x-cache-override", HeaderValue::from_bytes(h).unwrap());
        }
        if let Some(e) = ext {
            res.extensions_mut().insert(e);
        }
        res.into_parts().0
    }

    fn name() -> HeaderName {
        HeaderName::from_static("x-cache-override")
    }

    #[test]
    fn header_and_extension_are_read_and_removed() {
        let mut p = parts(Some(b"ttl=30"), None);
        let o = CacheOverride::take(&mut p, Some(&name()));
        assert_eq!(o.lifetime(), Some(Duration::from_secs(30)));
        assert!(!p.headers.contains_key("x-cache-override"));

        let mut p = parts(
            Some(b"ttl=30"),
            Some(CacheOverride::ttl(Duration::from_secs(5))),
        );
        let o = CacheOverride::take(&mut p, Some(&name()));
        assert_eq!(o.lifetime(), Some(Duration::from_secs(5)));
        assert!(p.extensions.get::<CacheOverride>().is_none());

        let mut p = parts(Some(b"NO-STORE"), None);
        assert!(CacheOverride::take(&mut p, Some(&name())).forbids_store());
    }

    #[test]
    fn bad_values_mean_no_store() {
        for bad in [&b"ttl=abc"[..], b"forever", b"ttl=-1", b"\xff"] {
            let mut p = parts(Some(bad), None);
            assert!(CacheOverride::take(&mut p, Some(&name())).forbids_store());
        }
    }

    #[test]
    fn huge_ttls_saturate() {
        for huge in [
            &b"ttl=18446744073709551615"[..],
            b"ttl=99999999999999999999999999",
            b"ttl=31536001",
        ] {
            let mut p = parts(Some(huge), None);
            let o = CacheOverride::take(&mut p, Some(&name()));
            assert_eq!(o.lifetime(), Some(crate::MAX_LIFETIME));
            assert!(!o.forbids_store());
        }
        let o = CacheOverride::ttl(Duration::MAX);
        assert_eq!(o.lifetime(), Some(crate::MAX_LIFETIME));
        // Digits only, like delta-seconds: a sign is a typo, so no-store.
        let mut p = parts(Some(b"ttl=+5"), None);
        assert!(CacheOverride::take(&mut p, Some(&name())).forbids_store());
    }

    #[test]
    fn header_ignored_when_not_configured() {
        let mut p = parts(Some(b"no-store"), None);
        assert!(!CacheOverride::take(&mut p, None).forbids_store());
        assert!(p.headers.contains_key("x-cache-override"));
    }

    mod properties {
        use super::*;
        use crate::MAX_LIFETIME;
        use crate::testing::check;
        use proptest::prelude::*;

        /// One directive as written, and what it means.
        #[derive(Clone, Debug)]
        enum Meaning {
            Ttl(Duration),
            NoStore,
            Nothing,
        }

        fn directive() -> impl Strategy<Value = (String, Meaning)> {
            let ttl = |v: String, m| (format!("ttl={v}"), m);
            prop_oneof![
                any::<u64>().prop_map(move |n| {
                    let m = Meaning::Ttl(Duration::from_secs(n).min(MAX_LIFETIME));
                    ttl(n.to_string(), m)
                }),
                (0u64..100_000)
                    .prop_map(move |n| ttl(n.to_string(), Meaning::Ttl(Duration::from_secs(n)))),
                "[1-9][0-9]{20,30}".prop_map(move |n| ttl(n, Meaning::Ttl(MAX_LIFETIME))),
                prop::sample::select(vec!["", "-1", "+1", "1.5", "x", "1 2", "\"5\""])
                    .prop_map(move |v| ttl(v.to_owned(), Meaning::NoStore)),
                prop::sample::select(vec![
                    "no-store",
                    "NO-STORE",
                    "No-Store",
                    "ttl",
                    "forever",
                    "no-store=1",
                    "max-age=5",
                ])
                .prop_map(|d| (d.to_owned(), Meaning::NoStore)),
                prop::sample::select(vec!["", " ", "  "])
                    .prop_map(|d| (d.to_owned(), Meaning::Nothing)),
                prop::sample::select(vec![" TTL = 7", "Ttl=7 "])
                    .prop_map(|d| (d.to_owned(), Meaning::Ttl(Duration::from_secs(7)))),
            ]
        }

        #[test]
        fn override_header_parses_as_documented() {
            let inputs = (
                prop::collection::vec(prop::collection::vec(directive(), 0..4), 1..3),
                prop::option::of(prop_oneof![
                    any::<u64>().prop_map(|s| CacheOverride::ttl(Duration::from_secs(s))),
                    Just(CacheOverride::ttl(Duration::MAX)),
                    Just(CacheOverride::no_store()),
                ]),
            );
            check(
                "override_header_parses_as_documented",
                2000,
                inputs,
                |(lines, extension)| {
                    let mut res = Response::new(());
                    for line in &lines {
                        let text: Vec<&str> = line.iter().map(|(t, _)| t.as_str()).collect();
                        let value = HeaderValue::from_str(&text.join(",")).unwrap();
                        res.headers_mut().append("x-cache-override", value);
                    }
                    if let Some(e) = extension {
                        res.extensions_mut().insert(e);
                    }
                    let mut p = res.into_parts().0;
                    let o = CacheOverride::take(&mut p, Some(&name()));
                    let meanings = lines.iter().flatten().map(|(_, m)| m);
                    let no_store = meanings.clone().any(|m| matches!(m, Meaning::NoStore));
                    let first_ttl = meanings.clone().find_map(|m| match m {
                        Meaning::Ttl(d) => Some(*d),
                        _ => None,
                    });
                    prop_assert_eq!(
                        o.forbids_store(),
                        no_store || extension.is_some_and(|e| e.forbids_store())
                    );
                    let extension_ttl = extension.and_then(|e| e.lifetime());
                    prop_assert_eq!(o.lifetime(), extension_ttl.or(first_ttl));
                    prop_assert!(o.lifetime().is_none_or(|t| t <= MAX_LIFETIME));
                    prop_assert!(!p.headers.contains_key("x-cache-override"));
                    Ok(())
                },
            );
        }

        #[test]
        fn override_header_never_panics() {
            let byte = prop_oneof![4 => 0x20u8..0x7f, 1 => Just(b'\t'), 1 => 0x80u8..=0xff];
            let lines = prop::collection::vec(prop::collection::vec(byte, 0..40), 1..3);
            check("override_header_never_panics", 2000, lines, |lines| {
                let mut res = Response::new(());
                for line in &lines {
                    let value = HeaderValue::from_bytes(line).unwrap();
                    res.headers_mut().append("x-cache-override", value);
                }
                let mut p = res.into_parts().0;
                let o = CacheOverride::take(&mut p, Some(&name()));
                prop_assert!(o.lifetime().is_none_or(|t| t <= MAX_LIFETIME));
                if lines.iter().flatten().any(|b| *b >= 0x80) {
                    prop_assert!(o.forbids_store(), "not ASCII: no-store");
                }
                prop_assert!(!p.headers.contains_key("x-cache-override"));
                Ok(())
            });
        }
    }
}
