//! The `Cache-Status` field (RFC 9211): what this cache did with a request, as one member of
//! a list each cache on the way appends to.

use http::HeaderValue;

/// Why a request went forward to the origin (RFC 9211 §2.2 `fwd`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Forward {
    /// Nothing stored for the URI.
    UriMiss,
    /// Something stored for the URI, but not for this request's variant (`Vary`).
    VaryMiss,
    /// A stored response, stale: forwarded to validate or replace it.
    Stale,
    /// A stored response the request's own directives would not take unvalidated.
    Request,
    /// The cache was configured not to handle the request (a route's policy, a hit-for-pass
    /// marker, the request's cookies or credentials...).
    Bypass,
    /// The request's method is not one the cache answers.
    Method,
}

impl Forward {
    fn as_str(self) -> &'static str {
        match self {
            Forward::UriMiss => "uri-miss",
            Forward::VaryMiss => "vary-miss",
            Forward::Stale => "stale",
            Forward::Request => "request",
            Forward::Bypass => "bypass",
            Forward::Method => "method",
        }
    }
}

/// One member of `Cache-Status`: the parameters RFC 9211 §2 defines that this cache sets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CacheStatus {
    /// Answered from the cache without going forward.
    pub hit: bool,
    pub fwd: Option<Forward>,
    /// The status the origin answered the forwarded request with.
    pub fwd_status: Option<u16>,
    /// The response was stored (or is being stored).
    pub stored: bool,
    /// The request was answered by another request's forward.
    pub collapsed: bool,
    /// The response's remaining freshness, in seconds (negative: stale by that much).
    pub ttl: Option<i64>,
    /// Why it was not stored, or bypassed the cache: a token (`cookie`, `too-large`...).
    pub detail: Option<&'static str>,
}

impl CacheStatus {
    /// The member for the cache named `name` (an sf-token or sf-string, as the layer checked).
    /// Written by hand, without `fmt`: every hit writes one.
    pub(crate) fn value(&self, name: &str) -> HeaderValue {
        let mut out = String::with_capacity(name.len() + 64);
        out.push_str(name);
        if self.hit {
            out.push_str("; hit");
        }
        if let Some(fwd) = self.fwd {
            out.push_str("; fwd=");
            out.push_str(fwd.as_str());
        }
        if let Some(status) = self.fwd_status {
            out.push_str("; fwd-status=");
            push_integer(&mut out, i64::from(status));
        }
        if self.stored {
            out.push_str("; stored");
        }
        if self.collapsed {
            out.push_str("; collapsed");
        }
        if let Some(ttl) = self.ttl {
            out.push_str("; ttl=");
            push_integer(&mut out, ttl);
        }
        if let Some(detail) = self.detail {
            out.push_str("; detail=");
            out.push_str(detail);
        }
        // Taken over without a copy; the name was checked when configured.
        HeaderValue::from_maybe_shared(bytes::Bytes::from(out))
            .unwrap_or_else(|_| HeaderValue::from_static("cache"))
    }
}

/// The member of a hit: `prefix` (the name and `; hit; ttl=`, made once by [`hit_prefix`])
/// and the ttl. The one a hit pays for: one allocation, no formatting machinery.
///
/// Most hits in a second answer with the same member (one hot entry, or many stored with
/// the same lifetime at about the same time): each thread keeps the last one it wrote and
/// hands out clones of it (a reference count, no allocation) while the ttl is unchanged.
pub(crate) fn hit_value(prefix: &str, ttl: i64) -> HeaderValue {
    LAST_HIT.with(|last| {
        let mut last = last.borrow_mut();
        if let Some((at, value)) = &*last {
            let same_prefix = value.as_bytes().get(..prefix.len()) == Some(prefix.as_bytes());
            if *at == ttl && same_prefix {
                return value.clone();
            }
        }
        let mut out = String::with_capacity(prefix.len() + 20);
        out.push_str(prefix);
        push_integer(&mut out, ttl);
        let value = HeaderValue::from_maybe_shared(bytes::Bytes::from(out))
            .unwrap_or_else(|_| HeaderValue::from_static("cache"));
        *last = Some((ttl, value.clone()));
        value
    })
}

thread_local! {
    /// The last hit member this thread wrote, and its ttl.
    static LAST_HIT: std::cell::RefCell<Option<(i64, HeaderValue)>> =
        const { std::cell::RefCell::new(None) };
}

/// What every hit's member starts with.
pub(crate) fn hit_prefix(name: &str) -> Box<str> {
    format!("{name}; hit; ttl=").into_boxed_str()
}

/// `n` in decimal.
fn push_integer(out: &mut String, n: i64) {
    if n < 0 {
        out.push('-');
    }
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = n.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    // ASCII digits.
    out.push_str(std::str::from_utf8(&digits[at..]).unwrap_or_default());
}

/// Whether `name` can stand as a cache's name in `Cache-Status` as it is: an sf-token (RFC
/// 8941 §3.3.4). Other names are written as an sf-string.
pub(crate) fn cache_name(name: &str) -> Option<String> {
    let token = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '*')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:/".contains(&b));
    if token {
        return Some(name.to_owned());
    }
    if !name.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        return None;
    }
    let escaped = name.replace('\\', "\\\\").replace('"', "\\\"");
    Some(format!("\"{escaped}\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9211 §2: parameters in the order the RFC lists them, names as sf-tokens or strings.
    #[test]
    fn rfc9211_2_members() {
        let hit = CacheStatus {
            hit: true,
            ttl: Some(376),
            ..CacheStatus::default()
        };
        assert_eq!(hit.value("ExampleCache"), "ExampleCache; hit; ttl=376");
        let miss = CacheStatus {
            fwd: Some(Forward::UriMiss),
            fwd_status: Some(200),
            stored: true,
            ttl: Some(60),
            ..CacheStatus::default()
        };
        assert_eq!(
            miss.value("c"),
            "c; fwd=uri-miss; fwd-status=200; stored; ttl=60"
        );
        let bypass = CacheStatus {
            fwd: Some(Forward::Bypass),
            detail: Some("cookie"),
            ..CacheStatus::default()
        };
        assert_eq!(bypass.value("c"), "c; fwd=bypass; detail=cookie");
        let stale = CacheStatus {
            hit: true,
            ttl: Some(-1234567),
            ..CacheStatus::default()
        };
        assert_eq!(stale.value("c"), "c; hit; ttl=-1234567");
        let zero = CacheStatus {
            ttl: Some(0),
            ..CacheStatus::default()
        };
        assert_eq!(zero.value("c"), "c; ttl=0");
        assert_eq!(hit_value(&hit_prefix("c"), 59), "c; hit; ttl=59");
        assert_eq!(hit_value(&hit_prefix("c"), -3), "c; hit; ttl=-3");
        assert_eq!(cache_name("edge-1").unwrap(), "edge-1");
        assert_eq!(
            cache_name("my cache \"x\"").unwrap(),
            "\"my cache \\\"x\\\"\""
        );
        assert_eq!(cache_name("1st").unwrap(), "\"1st\"");
        assert!(cache_name("caf\u{e9}").is_none());
    }
}
