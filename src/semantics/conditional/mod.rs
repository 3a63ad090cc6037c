//! Conditional and range requests answered from a full stored response (RFC 9110 §13, §14): what
//! a `GET` or `HEAD` request's preconditions and `Range` make of a `200`, and the head of that
//! answer. So the first client of a fill, whose conditional and `Range` fields were not sent to
//! the origin, still gets the `304` or `206` it asked for.
//!
//! No I/O, no allocation while evaluating, and work linear in the request's field values: every
//! parser here reads hostile input (numbers saturate or compare as digit strings, lists are
//! scanned once).

use http::header::{
    AGE, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_LOCATION, CONTENT_RANGE, DATE, ETAG, EXPIRES,
    HeaderMap, HeaderName, HeaderValue, IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE,
    IF_UNMODIFIED_SINCE, LAST_MODIFIED, RANGE, VARY,
};
use http::{Method, StatusCode};
use std::time::{Duration, SystemTime};

mod etag;
mod range;
#[cfg(test)]
mod tests;

use etag::{Tag, TagList, one_tag, strong_eq, trim_ows, weak_eq};
use range::RangeSpec;

/// What a GET/HEAD request's preconditions and Range make of a full stored response (RFC 9110
/// §13.2.2 order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Evaluated {
    /// The full response, as it is.
    Full,
    /// `304 Not Modified`: `If-None-Match` or `If-Modified-Since` found the client's copy current.
    NotModified,
    /// `412 Precondition Failed`: `If-Match` or `If-Unmodified-Since` is false.
    PreconditionFailed,
    /// `206 Partial Content`: bytes `start..=end_inclusive` of the `complete` ones.
    Partial {
        start: u64,
        end_inclusive: u64,
        complete: u64,
    },
    /// `416 Range Not Satisfiable`: the one range asked for starts at or past the end.
    Unsatisfiable { complete: u64 },
}

/// Evaluates `request`'s preconditions, then its `Range`, against a stored response with
/// `status`, `response` fields and a body of `length` bytes (`None`: unknown, so no range).
///
/// Only a `200` to a `GET` or `HEAD` is ever anything but [`Evaluated::Full`]; `Range` only
/// for a `GET` (RFC 9110 §14.2). A server may always ignore `Range`, so several ranges, a
/// malformed `Range`, another unit or a false `If-Range` give the full response.
pub(crate) fn evaluate(
    method: &Method,
    request: &HeaderMap,
    status: StatusCode,
    response: &HeaderMap,
    length: Option<u64>,
) -> Evaluated {
    if status != StatusCode::OK || (method != Method::GET && method != Method::HEAD) {
        return Evaluated::Full;
    }
    let validators = Validators::of(response);
    // §13.2.2 steps 1 and 2: `If-Match`, else `If-Unmodified-Since`.
    match TagList::field(request, &IF_MATCH) {
        // "*": a current representation exists.
        Some(TagList::Star) => {}
        Some(tags) => {
            if !tags.any(|tag| validators.etag.is_some_and(|etag| strong_eq(tag, etag))) {
                return Evaluated::PreconditionFailed;
            }
        }
        None => {
            let since = http_date(request, &IF_UNMODIFIED_SINCE);
            if let (Some(since), Some(modified)) = (since, validators.last_modified) {
                if modified > since {
                    return Evaluated::PreconditionFailed;
                }
            }
        }
    }
    // Steps 3 and 4: `If-None-Match`, else `If-Modified-Since`.
    match TagList::field(request, &IF_NONE_MATCH) {
        Some(TagList::Star) => return Evaluated::NotModified,
        Some(tags) => {
            if tags.any(|tag| validators.etag.is_some_and(|etag| weak_eq(tag, etag))) {
                return Evaluated::NotModified;
            }
        }
        None => {
            let since = http_date(request, &IF_MODIFIED_SINCE);
            if let (Some(since), Some(modified)) = (since, validators.last_modified) {
                if modified <= since {
                    return Evaluated::NotModified;
                }
            }
        }
    }
    // Step 5: `Range`, gated by `If-Range`.
    if method != Method::GET {
        return Evaluated::Full;
    }
    let Some(range) = single(request, &RANGE) else {
        return Evaluated::Full;
    };
    if request.contains_key(IF_RANGE) && !if_range_holds(request, &validators) {
        return Evaluated::Full;
    }
    let (Some(length), Some(spec)) = (length, RangeSpec::parse(range.as_bytes())) else {
        return Evaluated::Full;
    };
    spec.against(length)
}

/// Turns response parts of the full response into those of the evaluated answer (status,
/// `Content-Range`, `Content-Length`, and for 304 only the fields RFC 9110 §15.4.5 keeps).
///
/// The caller sends the body: none for 304, 412 and 416, bytes `start..=end_inclusive` for 206.
/// It marks the answer (`X-Cache`, `Age`) after this, as for any other.
pub(crate) fn apply(evaluated: &Evaluated, parts: &mut http::response::Parts) {
    match *evaluated {
        Evaluated::Full => {}
        Evaluated::NotModified => {
            parts.status = StatusCode::NOT_MODIFIED;
            // §15.4.5; `Last-Modified` only to guide cache updates when there is no `ETag`;
            // `Age` too, since `Cache-Control: max-age` counts from it (RFC 9111 §4.2.3).
            let last_modified = !parts.headers.contains_key(ETAG);
            let kept = [
                CACHE_CONTROL,
                CONTENT_LOCATION,
                DATE,
                ETAG,
                EXPIRES,
                VARY,
                AGE,
            ];
            let full = std::mem::take(&mut parts.headers);
            keep(&mut parts.headers, &full, &kept);
            if last_modified {
                keep(&mut parts.headers, &full, &[LAST_MODIFIED]);
            }
        }
        Evaluated::PreconditionFailed => {
            parts.status = StatusCode::PRECONDITION_FAILED;
            // An error of this request, not the representation: none of its fields (its
            // `Cache-Control` would let a downstream cache store the 412).
            only_date(parts);
            parts
                .headers
                .insert(CONTENT_LENGTH, HeaderValue::from(0u64));
        }
        Evaluated::Partial {
            start,
            end_inclusive,
            complete,
        } => {
            parts.status = StatusCode::PARTIAL_CONTENT;
            let range = format!("bytes {start}-{end_inclusive}/{complete}");
            if let Ok(range) = HeaderValue::from_str(&range) {
                parts.headers.insert(CONTENT_RANGE, range);
            }
            let count = end_inclusive.saturating_sub(start).saturating_add(1);
            parts
                .headers
                .insert(CONTENT_LENGTH, HeaderValue::from(count));
        }
        Evaluated::Unsatisfiable { complete } => {
            parts.status = StatusCode::RANGE_NOT_SATISFIABLE;
            only_date(parts);
            if let Ok(range) = HeaderValue::from_str(&format!("bytes */{complete}")) {
                parts.headers.insert(CONTENT_RANGE, range);
            }
            parts
                .headers
                .insert(CONTENT_LENGTH, HeaderValue::from(0u64));
        }
    }
}

fn keep(into: &mut HeaderMap, from: &HeaderMap, names: &[HeaderName]) {
    for name in names {
        for value in from.get_all(name) {
            into.append(name.clone(), value.clone());
        }
    }
}

fn only_date(parts: &mut http::response::Parts) {
    let full = std::mem::take(&mut parts.headers);
    keep(&mut parts.headers, &full, &[DATE]);
}

/// The stored response's validators; a field that is repeated or malformed is absent.
struct Validators<'a> {
    etag: Option<Tag<'a>>,
    last_modified: Option<SystemTime>,
    date: Option<SystemTime>,
}

impl<'a> Validators<'a> {
    fn of(response: &'a HeaderMap) -> Self {
        Validators {
            etag: single(response, &ETAG).and_then(|v| one_tag(v.as_bytes())),
            last_modified: http_date(response, &LAST_MODIFIED),
            date: http_date(response, &DATE),
        }
    }

    /// `Last-Modified`, when it is a strong validator: at least a second before `Date`
    /// (RFC 9110 §8.8.2.2).
    fn strong_last_modified(&self) -> Option<SystemTime> {
        let (modified, date) = (self.last_modified?, self.date?);
        let gap = date.duration_since(modified).ok()?;
        (gap >= Duration::from_secs(1)).then_some(modified)
    }
}

/// `If-Range` (RFC 9110 §13.1.5): a strong `ETag` match, or an HTTP-date exactly equal to a
/// strong `Last-Modified`. Anything else, repeated lines included, is false.
fn if_range_holds(request: &HeaderMap, validators: &Validators<'_>) -> bool {
    let Some(value) = single(request, &IF_RANGE) else {
        return false;
    };
    let bytes = trim_ows(value.as_bytes());
    if bytes.starts_with(b"\"") || bytes.starts_with(b"W/") {
        let tag = one_tag(bytes);
        return tag.is_some_and(|tag| validators.etag.is_some_and(|etag| strong_eq(tag, etag)));
    }
    let date = parse_http_date(value);
    date.is_some_and(|date| validators.strong_last_modified() == Some(date))
}

/// The field's value when it has exactly one line.
fn single<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a HeaderValue> {
    let mut values = headers.get_all(name).iter();
    let value = values.next()?;
    values.next().is_none().then_some(value)
}

/// A date field with one line that parses as an HTTP-date, in any of the three formats
/// (`httpdate`, already a dependency); anything else is absent (RFC 9110 §13.1.3-4).
fn http_date(headers: &HeaderMap, name: &HeaderName) -> Option<SystemTime> {
    parse_http_date(single(headers, name)?)
}

fn parse_http_date(value: &HeaderValue) -> Option<SystemTime> {
    // The longest form ("Wednesday, 09-Nov-94 08:49:37 GMT") has 33 characters: no need to
    // look at a long value at all.
    if value.len() > 64 {
        return None;
    }
    httpdate::parse_http_date(value.to_str().ok()?).ok()
}
