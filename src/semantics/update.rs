//! Updating a stored response from a newer head (RFC 9111 §3.2): a `304` that validated it
//! (§4.3.4), or a `HEAD` response that matches it (§4.3.5).

use http::header::{self, HeaderMap, HeaderName};
use http::{StatusCode, response};

/// Fields a newer head never replaces: those that describe the stored body (its length,
/// coding, type and range) and the hop-by-hop ones.
const DESCRIBE_THE_BODY: [HeaderName; 10] = [
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
];

/// The stored response's head (`status`, `stored` fields) with every field `update` carries
/// replacing the stored one (all its lines), except those that describe the body and those
/// its `Connection` lists (§3.2). The age is the update's: the stored `Age` goes, and an
/// update without `Date` is dated now (RFC 9110 §6.6.1), so the refreshed response's age
/// counts from its validation, not from its first fetch.
pub(crate) fn freshened(
    status: StatusCode,
    stored: &HeaderMap,
    update: &response::Parts,
) -> response::Parts {
    let mut parts = http::Response::new(()).into_parts().0;
    parts.status = status;
    parts.version = update.version;
    let listed = super::stored_fields::connection_listed(&update.headers);
    let replaces = |name: &HeaderName| {
        !DESCRIBE_THE_BODY.contains(name)
            && name != "keep-alive"
            && name != "proxy-connection"
            && !listed.contains(name)
    };
    let replaced = |name: &HeaderName| {
        name == header::AGE
            || (name == header::DATE)
            || (update.headers.contains_key(name) && replaces(name))
    };
    let mut headers = HeaderMap::with_capacity(stored.keys_len() + update.headers.keys_len() + 1);
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
    if !headers.contains_key(header::DATE) {
        let now = httpdate::fmt_http_date(std::time::SystemTime::now());
        if let Ok(now) = header::HeaderValue::from_str(&now) {
            headers.insert(header::DATE, now);
        }
    }
    parts.headers = headers;
    parts
}

/// Whether a `304` selects the stored response (RFC 9111 §4.3.4): not when it carries a
/// strong `ETag` other than the stored one (the origin confirmed another representation).
pub(crate) fn selects(stored: &HeaderMap, update: &HeaderMap) -> bool {
    let strong = |map: &HeaderMap| {
        map.get(header::ETAG)
            .map(|v| v.as_bytes().trim_ascii())
            .filter(|tag| !tag.starts_with(b"W/"))
            .map(<[u8]>::to_vec)
    };
    match (strong(update), stored.get(header::ETAG)) {
        (Some(new), Some(old)) => new == old.as_bytes().trim_ascii(),
        // A strong tag for a response stored without one: not the one stored.
        (Some(_), None) => false,
        (None, _) => true,
    }
}

/// Whether a `200` answer to `HEAD` (fields `head`) describes the stored response (fields
/// `stored`, body of `length` bytes) (§4.3.5): the same strong validator (an `ETag`, or
/// without one on either side a `Last-Modified`), and the same `Content-Length` where the
/// answer gives one. `None` when the answer lacks the validator the stored response has (a
/// server may leave it out of a `HEAD` answer): it tells nothing.
pub(crate) fn head_matches(stored: &HeaderMap, length: usize, head: &HeaderMap) -> Option<bool> {
    let one = |map: &HeaderMap, name: &HeaderName| {
        let mut lines = map.get_all(name).iter();
        match (lines.next(), lines.next()) {
            (Some(value), None) => Some(value.as_bytes().trim_ascii().to_vec()),
            _ => None,
        }
    };
    let validator = match (one(stored, &header::ETAG), one(head, &header::ETAG)) {
        (Some(a), Some(b)) => !a.starts_with(b"W/") && a == b,
        (Some(_), None) => return None,
        (None, Some(_)) => false,
        (None, None) => {
            match (
                one(stored, &header::LAST_MODIFIED),
                one(head, &header::LAST_MODIFIED),
            ) {
                (Some(a), Some(b)) => a == b,
                _ => return None,
            }
        }
    };
    let declared = one(head, &header::CONTENT_LENGTH);
    let length_agrees = declared.is_none_or(|declared| declared == length.to_string().as_bytes());
    Some(validator && length_agrees)
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
            ("connection", "close, x-hop"),
            ("x-hop", "1"),
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
        assert!(!h.contains_key("connection") && !h.contains_key("x-hop"));
        assert_eq!(h["age"], "5", "the update's age");
        assert!(h.contains_key("date"), "dated now when the 304 is not");
    }

    /// RFC 9111 §4.3.5: a HEAD response updates the stored response only when its strong
    /// validator and its length agree.
    #[test]
    fn rfc9111_4_3_5_head_matches_by_strong_validator_and_length() {
        let stored = map(&[("etag", "\"v1\""), ("last-modified", "x")]);
        let v1 = map(&[("etag", "\"v1\"")]);
        assert_eq!(head_matches(&stored, 5, &v1), Some(true));
        let sized = map(&[("etag", "\"v1\""), ("content-length", "5")]);
        assert_eq!(head_matches(&stored, 5, &sized), Some(true));
        let resized = map(&[("etag", "\"v1\""), ("content-length", "6")]);
        assert_eq!(head_matches(&stored, 5, &resized), Some(false));
        assert_eq!(
            head_matches(&stored, 5, &map(&[("etag", "\"v2\"")])),
            Some(false)
        );
        assert_eq!(head_matches(&stored, 5, &map(&[])), None, "tells nothing");
        let weak = map(&[("etag", "W/\"v1\"")]);
        assert_eq!(head_matches(&weak, 5, &weak), Some(false));
        let dated = map(&[("last-modified", "Tue, 01 Jan 2030 00:00:00 GMT")]);
        assert_eq!(head_matches(&dated, 0, &dated), Some(true));
    }

    /// §4.3.4: a 304 with another strong validator does not select the stored response.
    #[test]
    fn rfc9111_4_3_4_a_304_selects_by_strong_validator() {
        let stored = map(&[("etag", "\"v1\"")]);
        assert!(selects(&stored, &map(&[("etag", "\"v1\"")])));
        assert!(selects(&stored, &map(&[])));
        assert!(selects(&stored, &map(&[("etag", "W/\"v2\"")])));
        assert!(!selects(&stored, &map(&[("etag", "\"v2\"")])));
        assert!(!selects(&map(&[]), &map(&[("etag", "\"v2\"")])));
    }
}
