//! Updating a stored response from a newer head (RFC 9111 §3.2): a `304` that validated it
//! (§4.3.4), or a `HEAD` response that matches it (§4.3.5).

use http::header::{self, HeaderMap, HeaderName};
use http::{StatusCode, response};

/// Fields a newer head never replaces: those that describe the stored body (its length,
/// coding, type and range), the hop-by-hop ones, and `Age` (recomputed on every answer).
const DESCRIBE_THE_BODY: [HeaderName; 11] = [
    header::CONTENT_LENGTH,
    header::CONTENT_ENCODING,
    header::CONTENT_TYPE,
    header::CONTENT_RANGE,
    header::TRANSFER_ENCODING,
    header::CONNECTION,
    header::TE,
    header::UPGRADE,
    header::TRAILER,
    header::PROXY_AUTHENTICATE,
    header::AGE,
];

/// The stored response's head (`status`, `stored` fields) with every field `update` carries
/// replacing the stored one (all its lines), except those that describe the body (§3.2).
pub(crate) fn freshened(
    status: StatusCode,
    stored: &HeaderMap,
    update: &response::Parts,
) -> response::Parts {
    let mut parts = http::Response::new(()).into_parts().0;
    parts.status = status;
    parts.version = update.version;
    let replaced = |name: &HeaderName| update.headers.contains_key(name) && replaces(name);
    let mut headers = HeaderMap::with_capacity(stored.keys_len() + update.headers.keys_len());
    for (name, value) in stored {
        if !replaced(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    for (name, value) in &update.headers {
        if replaces(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    parts.headers = headers;
    parts
}

fn replaces(name: &HeaderName) -> bool {
    !DESCRIBE_THE_BODY.contains(name) && name != "keep-alive" && name != "proxy-connection"
}

/// Whether a `200` answer to `HEAD` (fields `head`) describes the stored response (fields
/// `stored`, body of `length` bytes) (§4.3.5): the same strong validator (an `ETag`, or
/// without one on either side a `Last-Modified`), and the same `Content-Length` where either
/// gives one.
pub(crate) fn head_matches(stored: &HeaderMap, length: usize, head: &HeaderMap) -> bool {
    let one = |map: &HeaderMap, name: &HeaderName| {
        let mut lines = map.get_all(name).iter();
        match (lines.next(), lines.next()) {
            (Some(value), None) => Some(value.as_bytes().trim_ascii().to_vec()),
            _ => None,
        }
    };
    let validator = match (one(stored, &header::ETAG), one(head, &header::ETAG)) {
        (Some(a), Some(b)) => !a.starts_with(b"W/") && a == b,
        (None, None) => {
            let modified = one(stored, &header::LAST_MODIFIED);
            modified.is_some() && modified == one(head, &header::LAST_MODIFIED)
        }
        _ => false,
    };
    let declared = one(head, &header::CONTENT_LENGTH);
    let length_agrees = declared.is_none_or(|declared| declared == length.to_string().as_bytes());
    validator && length_agrees
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn map(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    /// RFC 9111 §3.2: every field of the 304 replaces the stored one (all its lines); the
    /// fields that describe the body stay.
    #[test]
    fn rfc9111_3_2_a_304_replaces_fields_but_not_the_body_description() {
        let stored = map(&[
            ("content-type", "text/html"),
            ("content-length", "12"),
            ("cache-control", "max-age=10"),
            ("etag", "\"v1\""),
            ("link", "</a>"),
            ("link", "</b>"),
            ("x-kept", "1"),
        ]);
        let mut update = http::Response::new(()).into_parts().0;
        update.status = StatusCode::NOT_MODIFIED;
        update.headers = map(&[
            ("cache-control", "max-age=600"),
            ("etag", "\"v1\""),
            ("link", "</c>"),
            ("content-type", "text/plain"),
            ("content-length", "0"),
            ("connection", "close"),
            ("age", "5"),
        ]);
        let parts = freshened(StatusCode::OK, &stored, &update);
        assert_eq!(parts.status, StatusCode::OK);
        let h = &parts.headers;
        assert_eq!(h["cache-control"], "max-age=600");
        assert_eq!(h.get_all("link").iter().collect::<Vec<_>>(), ["</c>"]);
        assert_eq!(h["content-type"], "text/html");
        assert_eq!(h["content-length"], "12");
        assert_eq!(h["x-kept"], "1");
        assert!(!h.contains_key("connection") && !h.contains_key("age"));
    }

    /// RFC 9111 §4.3.5: a HEAD response updates the stored response only when its strong
    /// validator and its length agree.
    #[test]
    fn rfc9111_4_3_5_head_matches_by_strong_validator_and_length() {
        let stored = map(&[("etag", "\"v1\""), ("last-modified", "x")]);
        assert!(head_matches(&stored, 5, &map(&[("etag", "\"v1\"")])));
        assert!(head_matches(
            &stored,
            5,
            &map(&[("etag", "\"v1\""), ("content-length", "5")])
        ));
        assert!(!head_matches(
            &stored,
            5,
            &map(&[("etag", "\"v1\""), ("content-length", "6")])
        ));
        assert!(!head_matches(&stored, 5, &map(&[("etag", "\"v2\"")])));
        assert!(!head_matches(&stored, 5, &map(&[])));
        let weak = map(&[("etag", "W/\"v1\"")]);
        assert!(!head_matches(&weak, 5, &map(&[("etag", "W/\"v1\"")])));
        let dated = map(&[("last-modified", "Tue, 01 Jan 2030 00:00:00 GMT")]);
        assert!(head_matches(&dated, 0, &dated));
    }
}
