//! What an entry costs in memory: a model of its heap blocks, checked against an allocator's
//! count in `tests/memory.rs`.
//!
//! The model counts every allocation an entry holds, rounded as glibc's `malloc` rounds it (and
//! most others about as much): an 8-byte header, 16-byte steps, 32 bytes at least. A store adds
//! its own structures per entry (see `MemoryStore`).

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use std::mem::size_of;

use super::{Entry, Kind};

/// What a heap block holding `size` bytes costs (glibc, 64-bit).
pub(crate) const fn block(size: usize) -> usize {
    if size == 0 {
        return 0;
    }
    let rounded = (size + 8 + 15) & !15;
    if rounded < 32 { 32 } else { rounded }
}

/// The reference count `Bytes` allocates when a buffer is first shared (its `Shared`: the
/// buffer's pointer and capacity and the count). A stored buffer is always shared: the entry's
/// and the response's, or every hit's.
const SHARED: usize = block(3 * size_of::<usize>());

/// One slot of a `HeaderMap`'s entries (http 1.x `Bucket`: a 16-bit hash, the name, the value,
/// and the links to further values).
const BUCKET: usize =
    (2 + size_of::<HeaderName>() + size_of::<HeaderValue>() + 3 * 8).next_multiple_of(8);
/// One further value of a repeated field (http 1.x `ExtraValue`: the value and two links).
const EXTRA_VALUE: usize = size_of::<HeaderValue>() + 2 * 16;
/// One slot of a `HeaderMap`'s index (16-bit position and hash).
const INDEX: usize = 4;

impl Entry {
    /// The bytes the entry occupies in memory: the entry itself, its key, tags, header fields,
    /// body and trailers, each allocation rounded as `malloc` rounds it.
    ///
    /// Checked against an allocator's count (`tests/memory.rs`). Buffers the entry shares with
    /// others (a body `Bytes` sliced from a larger buffer, a header name also used elsewhere)
    /// are counted as if the entry held them alone.
    pub fn weight(&self) -> usize {
        let kind = match &self.kind {
            Kind::Response(r) => {
                bytes(&r.body) + fields(&r.headers) + r.trailers.as_ref().map_or(0, fields)
            }
            Kind::Variants(names) => {
                block(names.len() * size_of::<HeaderName>()) + names.iter().map(name).sum::<usize>()
            }
            Kind::Pass => 0,
        };
        // The `Arc` the entry lives in: two counts and the entry.
        block(2 * size_of::<usize>() + size_of::<Entry>())
            + bytes(&self.key)
            + block(self.tags.heap_bytes())
            + kind
    }
}

impl Entry {
    /// What its header fields and trailers weigh (a private copy's memo holds another map).
    pub(crate) fn head_weight(&self) -> usize {
        match &self.kind {
            Kind::Response(r) => fields(&r.headers) + r.trailers.as_ref().map_or(0, fields),
            Kind::Variants(_) | Kind::Pass => 0,
        }
    }
}

/// A `Bytes` the entry holds, with its reference count.
fn bytes(b: &Bytes) -> usize {
    if b.is_empty() {
        0
    } else {
        block(b.len()) + SHARED
    }
}

/// A header map's tables, names and values. Maps the layer stores have their values in one
/// buffer (`semantics::headers_for_storage`); others are counted as if they had too.
fn fields(h: &HeaderMap) -> usize {
    let slots = h.capacity();
    // The index has a power of two of slots, a quarter more than the usable capacity.
    let index = slots + slots / 3;
    let extra = h.len() - h.keys_len();
    let extra_slots = if extra == 0 {
        0
    } else {
        extra.next_power_of_two().max(4)
    };
    let values: usize = h.values().map(HeaderValue::len).sum();
    block(index * INDEX)
        + block(slots * BUCKET)
        + block(extra_slots * EXTRA_VALUE)
        + h.keys().map(name).sum::<usize>()
        + if values == 0 {
            0
        } else {
            block(values) + SHARED
        }
}

/// A field name: nothing for the names `http` knows (they are static), a shared buffer for others.
fn name(name: &HeaderName) -> usize {
    if STANDARD_NAMES.binary_search(&name.as_str()).is_ok() {
        0
    } else {
        block(name.as_str().len()) + SHARED
    }
}

/// The field names `http` 1.x represents without an allocation, sorted.
const STANDARD_NAMES: &[&str] = &[
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "access-control-allow-credentials",
    "access-control-allow-headers",
    "access-control-allow-methods",
    "access-control-allow-origin",
    "access-control-expose-headers",
    "access-control-max-age",
    "access-control-request-headers",
    "access-control-request-method",
    "age",
    "allow",
    "alt-svc",
    "authorization",
    "cache-control",
    "cache-status",
    "cdn-cache-control",
    "connection",
    "content-disposition",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-range",
    "content-security-policy",
    "content-security-policy-report-only",
    "content-type",
    "cookie",
    "date",
    "dnt",
    "etag",
    "expect",
    "expires",
    "forwarded",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "link",
    "location",
    "max-forwards",
    "origin",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "public-key-pins",
    "public-key-pins-report-only",
    "range",
    "referer",
    "referrer-policy",
    "refresh",
    "retry-after",
    "sec-websocket-accept",
    "sec-websocket-extensions",
    "sec-websocket-key",
    "sec-websocket-protocol",
    "sec-websocket-version",
    "server",
    "set-cookie",
    "strict-transport-security",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "upgrade-insecure-requests",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "x-content-type-options",
    "x-dns-prefetch-control",
    "x-frame-options",
    "x-xss-protection",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_round_as_malloc_does() {
        assert_eq!(block(0), 0);
        assert_eq!(block(1), 32);
        assert_eq!(block(24), 32);
        assert_eq!(block(25), 48);
        assert_eq!(block(200), 208);
        assert_eq!(BUCKET, 104);
    }

    #[test]
    fn standard_names_are_sorted_and_known() {
        assert!(STANDARD_NAMES.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(STANDARD_NAMES.len(), 81);
        assert_eq!(name(&http::header::CONTENT_TYPE), 0);
        assert_eq!(name(&HeaderName::from_static("x-cache")), 32 + SHARED);
    }
}
