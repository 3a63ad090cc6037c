//! The header fields a stored response keeps (RFC 9111 §3.1), laid out for storage.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::response;

/// The fields a message's `Connection` lists (hop-by-hop, RFC 9110 §7.6.1): never stored.
pub(crate) fn connection_listed(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect()
}

/// The header fields to store (RFC 9111 §3.1): no hop-by-hop or `Connection`-listed fields, no
/// `Age` (recomputed on every hit), no `Set-Cookie` (only stored when the policy strips it),
/// none of `strip` (those a qualified `no-cache` or `private` names, the targeted field), and
/// an exact `Content-Length` for the stored body so HEAD hits and HTTP/1.0 clients get it right
/// (`body_len`: `None` when the body's length is not known yet: no `Content-Length` then).
///
/// The map is built for storage, not cloned from the response: sized for its fields plus the
/// two every hit sets (`Age` and the cache status field, which the caller inserts), and with
/// every value in one buffer. A response's values are each a buffer of their own (or slices
/// of the client's whole read buffer, which an entry would then keep alive), so this saves
/// two allocations a field and bounds what an entry holds (see `entry/weight.rs`).
pub(crate) fn headers_for_storage(
    response: &response::Parts,
    body_len: Option<usize>,
    has_trailers: bool,
    strip: &[HeaderName],
) -> HeaderMap {
    let listed = connection_listed(&response.headers);
    let stored = |name: &HeaderName| {
        ![
            header::CONNECTION,
            header::TRANSFER_ENCODING,
            header::TE,
            header::UPGRADE,
            header::PROXY_AUTHENTICATE,
            header::PROXY_AUTHORIZATION,
            header::AGE,
            header::SET_COOKIE,
            header::CONTENT_LENGTH,
        ]
        .contains(name)
            && name != "keep-alive"
            && name != "proxy-connection"
            && name != "proxy-authentication-info"
            && !listed.contains(name)
            && !strip.contains(name)
    };
    let status = response.status;
    let no_body_status = status.is_informational()
        || status == http::StatusCode::NO_CONTENT
        || status == http::StatusCode::NOT_MODIFIED;
    // Trailers need a chunked (HTTP/1.1) or framed (HTTP/2) body; let the server frame it.
    let length = body_len
        .filter(|_| !no_body_status && !has_trailers)
        .map(|n| n.to_string());
    let fields = || response.headers.iter().filter(|(name, _)| stored(name));
    let mut buffer = Vec::with_capacity(
        fields().map(|(_, v)| v.len()).sum::<usize>() + length.as_ref().map_or(0, String::len),
    );
    for (_, value) in fields() {
        buffer.extend_from_slice(value.as_bytes());
    }
    buffer.extend_from_slice(length.as_ref().map_or(&b""[..], |l| l.as_bytes()));
    let buffer = bytes::Bytes::from(buffer);
    let mut at = 0;
    let mut next = |len: usize| {
        at += len;
        // The bytes of a valid value: a value made unchecked elsewhere may not pass, and is
        // then kept as it came.
        HeaderValue::from_maybe_shared(buffer.slice(at - len..at)).ok()
    };
    let names = response.headers.keys().filter(|name| stored(name)).count();
    // Room for `Content-Length`, `Age`, the cache status header and `Cache-Status`.
    let mut headers = HeaderMap::with_capacity(names + 4);
    for (name, original) in fields() {
        let mut value = next(original.len()).unwrap_or_else(|| original.clone());
        value.set_sensitive(original.is_sensitive());
        headers.append(name.clone(), value);
    }
    if let Some(length) = &length {
        let value =
            next(length.len()).unwrap_or_else(|| HeaderValue::from(body_len.unwrap_or_default()));
        headers.insert(header::CONTENT_LENGTH, value);
    }
    headers
}

/// A copy of a stored header map that shares nothing with it: names and the values of fields
/// that repeat across responses static (`interned.rs`), every other value copied into one new
/// buffer, with the same room (see [`headers_for_storage`]). Cloning the copy's values touches only the copy's reference
/// count, so a thread that answers from its own copy never contends with another thread
/// answering the same entry (the memory store's hit front).
pub(crate) fn private_copy(headers: &HeaderMap) -> HeaderMap {
    let buffer = bytes::Bytes::from(
        headers
            .values()
            .flat_map(|value| value.as_bytes())
            .copied()
            .collect::<Vec<u8>>(),
    );
    let mut at = 0;
    let mut copy = HeaderMap::with_capacity(headers.capacity());
    for (name, value) in headers {
        at += value.len();
        // A value that repeats across responses comes from the static table (free to clone);
        // another is a slice of this copy's own buffer.
        let copied = super::interned::value(name, value).unwrap_or_else(|| {
            let mut copied = HeaderValue::from_maybe_shared(buffer.slice(at - value.len()..at))
                .unwrap_or_else(|_| value.clone());
            copied.set_sensitive(value.is_sensitive());
            copied
        });
        let name = super::interned::name(name).unwrap_or_else(|| {
            HeaderName::from_bytes(name.as_str().as_bytes()).unwrap_or_else(|_| name.clone())
        });
        copy.append(name, copied);
    }
    copy
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Response, StatusCode};

    fn res(status: u16, headers: &[(&'static str, &str)]) -> response::Parts {
        let mut r = Response::builder().status(status);
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        r.body(()).unwrap().into_parts().0
    }

    #[test]
    fn storage_headers_share_one_buffer_and_room_for_what_hits_set() {
        let mut r = res(
            200,
            &[
                ("content-type", "text/plain"),
                ("link", "</a>"),
                ("link", "</b>"),
                ("x-secret", "s"),
            ],
        );
        r.headers.get_mut("x-secret").unwrap().set_sensitive(true);
        let mut h = headers_for_storage(&r, Some(12), false, &[]);
        let values: Vec<&HeaderValue> = h.values().collect();
        let first = values[0].as_bytes().as_ptr() as usize;
        let total: usize = values.iter().map(|v| v.len()).sum();
        for v in &values {
            let at = v.as_bytes().as_ptr() as usize;
            assert!(at >= first && at + v.len() <= first + total, "one buffer");
        }
        assert_eq!(h.get_all("link").iter().count(), 2);
        assert!(h["x-secret"].is_sensitive());
        assert_eq!(h["content-length"], "12");
        // `Age` and the cache status field are set by every hit: they fit without growing.
        let capacity = h.capacity();
        h.insert(header::AGE, HeaderValue::from_static("0"));
        h.insert("x-cache", HeaderValue::from_static("HIT"));
        h.append("cache-status", HeaderValue::from_static("c; hit"));
        assert_eq!(h.capacity(), capacity);
    }

    #[test]
    fn storage_headers_drop_hop_by_hop() {
        let r = res(
            200,
            &[
                ("connection", "x-hop, keep-alive"),
                ("x-hop", "1"),
                ("keep-alive", "timeout=5"),
                ("transfer-encoding", "chunked"),
                ("age", "3"),
                ("set-cookie", "a=b"),
                ("content-length", "999"),
                ("etag", "\"v1\""),
            ],
        );
        let h = headers_for_storage(&r, Some(5), false, &[]);
        for gone in [
            "connection",
            "x-hop",
            "keep-alive",
            "transfer-encoding",
            "age",
            "set-cookie",
        ] {
            assert!(!h.contains_key(gone), "{gone}");
        }
        assert_eq!(h["content-length"], "5");
        assert_eq!(h["etag"], "\"v1\"");
        let h = headers_for_storage(&res(204, &[("content-length", "0")]), Some(0), false, &[]);
        assert!(!h.contains_key("content-length"));
        let _ = StatusCode::OK;
    }
}
