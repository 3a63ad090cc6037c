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
use std::cmp::Ordering;
use std::time::{Duration, SystemTime};

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

/// An entity-tag (RFC 9110 §8.8.3): its opaque part, without the quotes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Tag<'a> {
    weak: bool,
    opaque: &'a [u8],
}

fn strong_eq(a: Tag<'_>, b: Tag<'_>) -> bool {
    !a.weak && !b.weak && a.opaque == b.opaque
}

fn weak_eq(a: Tag<'_>, b: Tag<'_>) -> bool {
    a.opaque == b.opaque
}

/// A value that is exactly one entity-tag.
fn one_tag(value: &[u8]) -> Option<Tag<'_>> {
    let mut members = Members { rest: value };
    match (members.next(), members.next()) {
        (Some(Some(tag)), None) => Some(tag),
        _ => None,
    }
}

/// `If-Match` or `If-None-Match`: `*`, or a list of entity-tags over all the field's lines.
enum TagList<'a> {
    Star,
    Tags(http::header::GetAll<'a, HeaderValue>),
}

impl<'a> TagList<'a> {
    /// The field, or `None` when it is absent or lists nothing at all (an empty value asks
    /// nothing). `*` counts only as the whole field: in a list it is a malformed member.
    fn field(headers: &'a HeaderMap, name: &HeaderName) -> Option<Self> {
        if single(headers, name).is_some_and(|v| trim_ows(v.as_bytes()) == b"*") {
            return Some(TagList::Star);
        }
        let lines = headers.get_all(name);
        let empty = lines.iter().all(|line| {
            (Members {
                rest: line.as_bytes(),
            })
            .next()
            .is_none()
        });
        (!empty).then_some(TagList::Tags(lines))
    }

    /// Whether a well-formed member satisfies `matches` (malformed members never do).
    fn any(self, matches: impl Fn(Tag<'_>) -> bool) -> bool {
        let TagList::Tags(lines) = self else {
            return true;
        };
        lines.iter().any(|line| {
            (Members {
                rest: line.as_bytes(),
            })
            .any(|member| member.is_some_and(&matches))
        })
    }
}

/// The members of one line of an entity-tag list (`#entity-tag`; empty elements skipped):
/// `Some(tag)`, or `None` for a member that is not an entity-tag.
///
/// Linear in the line: a member is scanned to its closing quote at most, and a malformed one
/// is skipped to its comma; members that start with a quote start past the previous closing
/// quote, so no byte is scanned for a quote twice.
struct Members<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Members<'a> {
    type Item = Option<Tag<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let rest = trim_ows_start(self.rest);
            match rest.split_first() {
                None => {
                    self.rest = rest;
                    return None;
                }
                Some((b',', after)) => self.rest = after,
                Some(_) => {
                    if let Some((tag, after)) = entity_tag(rest) {
                        let after = trim_ows_start(after);
                        if after.is_empty() || after[0] == b',' {
                            self.rest = after;
                            return Some(Some(tag));
                        }
                    }
                    let end = rest.iter().position(|&b| b == b',').unwrap_or(rest.len());
                    self.rest = &rest[end..];
                    return Some(None);
                }
            }
        }
    }
}

/// An entity-tag at the start of `value`, and what follows it.
fn entity_tag(value: &[u8]) -> Option<(Tag<'_>, &[u8])> {
    let (weak, quoted) = match value.strip_prefix(b"W/") {
        Some(quoted) => (true, quoted),
        None => (false, value),
    };
    let inner = quoted.strip_prefix(b"\"")?;
    let end = inner.iter().position(|&b| b == b'"')?;
    let opaque = &inner[..end];
    // etagc = %x21 / %x23-7E / obs-text
    let etagc = |b: &u8| *b == 0x21 || (0x23..=0x7e).contains(b) || *b >= 0x80;
    opaque
        .iter()
        .all(etagc)
        .then_some((Tag { weak, opaque }, &inner[end + 1..]))
}

fn trim_ows_start(mut value: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = value {
        value = rest;
    }
    value
}

fn trim_ows(value: &[u8]) -> &[u8] {
    let mut value = trim_ows_start(value);
    while let [rest @ .., b' ' | b'\t'] = value {
        value = rest;
    }
    value
}

/// The one byte range a `Range: bytes=...` field asks for (RFC 9110 §14.1.1), its numbers as
/// digit strings (never parsed past what they mean: `u64` limits cannot overflow).
#[derive(Debug, PartialEq, Eq)]
enum RangeSpec<'a> {
    /// `first-` or `first-last`.
    From {
        first: &'a [u8],
        last: Option<&'a [u8]>,
    },
    /// `-suffix`: the last `suffix` bytes.
    Suffix(&'a [u8]),
}

impl<'a> RangeSpec<'a> {
    /// `None` for anything but exactly one well-formed byte range (several ranges are allowed
    /// to be answered in full).
    fn parse(value: &'a [u8]) -> Option<Self> {
        let value = trim_ows(value);
        let equals = value.iter().position(|&b| b == b'=')?;
        if !value[..equals].eq_ignore_ascii_case(b"bytes") {
            return None;
        }
        let mut specs = value[equals + 1..]
            .split(|&b| b == b',')
            .map(trim_ows)
            .filter(|spec| !spec.is_empty());
        let (spec, None) = (specs.next()?, specs.next()) else {
            return None;
        };
        let dash = spec.iter().position(|&b| b == b'-')?;
        let (first, last) = (&spec[..dash], &spec[dash + 1..]);
        let digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
        match (first.is_empty(), last.is_empty()) {
            (true, _) => digits(last).then_some(RangeSpec::Suffix(last)),
            (false, true) => digits(first).then_some(RangeSpec::From { first, last: None }),
            (false, false) => {
                // A last position before the first makes the range invalid, not unsatisfiable.
                let valid = digits(first) && digits(last) && decimal_cmp(last, first).is_ge();
                valid.then_some(RangeSpec::From {
                    first,
                    last: Some(last),
                })
            }
        }
    }

    /// What this range makes of a body of `length` bytes.
    fn against(&self, length: u64) -> Evaluated {
        let unsatisfiable = Evaluated::Unsatisfiable { complete: length };
        let partial = |start, end_inclusive| Evaluated::Partial {
            start,
            end_inclusive,
            complete: length,
        };
        match *self {
            RangeSpec::From { first, last } => {
                let first = saturating_decimal(first);
                if first >= length {
                    return unsatisfiable;
                }
                let end = last.map_or(u64::MAX, saturating_decimal).min(length - 1);
                partial(first, end)
            }
            RangeSpec::Suffix(suffix) => match saturating_decimal(suffix) {
                0 => unsatisfiable,
                // Satisfiable, but an empty body has no range to send: all of it, as a 200.
                _ if length == 0 => Evaluated::Full,
                suffix => partial(length - suffix.min(length), length - 1),
            },
        }
    }
}

/// ASCII digits as a number, `u64::MAX` when larger.
fn saturating_decimal(digits: &[u8]) -> u64 {
    digits
        .iter()
        .try_fold(0u64, |n, d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
        .unwrap_or(u64::MAX)
}

/// Compares two ASCII digit strings as numbers, whatever their length.
fn decimal_cmp(a: &[u8], b: &[u8]) -> Ordering {
    let significant = |s: &[u8]| {
        let zeros = s.iter().take_while(|&&d| d == b'0').count();
        s.len() - zeros
    };
    let (a, b) = (
        &a[a.len() - significant(a)..],
        &b[b.len() - significant(b)..],
    );
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Response;

    const LAST_MODIFIED_AT: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
    const DATE_AT: &str = "Mon, 07 Nov 1994 08:49:37 GMT";
    const BEFORE: &str = "Sat, 05 Nov 1994 08:49:37 GMT";
    const AFTER: &str = "Tue, 08 Nov 1994 08:49:37 GMT";

    fn map(pairs: &[(&HeaderName, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    /// The stored response: `ETag: "v1"`, a strong `Last-Modified`, 1000 bytes.
    fn stored() -> HeaderMap {
        map(&[
            (&ETAG, "\"v1\""),
            (&LAST_MODIFIED, LAST_MODIFIED_AT),
            (&DATE, DATE_AT),
            (&CACHE_CONTROL, "max-age=60"),
        ])
    }

    fn get(request: &[(&HeaderName, &str)]) -> Evaluated {
        evaluate(
            &Method::GET,
            &map(request),
            StatusCode::OK,
            &stored(),
            Some(1000),
        )
    }

    fn partial(start: u64, end_inclusive: u64) -> Evaluated {
        Evaluated::Partial {
            start,
            end_inclusive,
            complete: 1000,
        }
    }

    #[test]
    fn nothing_conditional_is_the_full_response() {
        assert_eq!(get(&[]), Evaluated::Full);
        assert_eq!(get(&[(&CACHE_CONTROL, "no-cache")]), Evaluated::Full);
    }

    #[test]
    fn only_a_200_to_get_or_head_is_evaluated() {
        let request = map(&[(&IF_NONE_MATCH, "\"v1\"")]);
        let at = |method: Method, status| evaluate(&method, &request, status, &stored(), None);
        assert_eq!(at(Method::GET, StatusCode::OK), Evaluated::NotModified);
        assert_eq!(at(Method::HEAD, StatusCode::OK), Evaluated::NotModified);
        assert_eq!(at(Method::POST, StatusCode::OK), Evaluated::Full);
        assert_eq!(at(Method::GET, StatusCode::NOT_FOUND), Evaluated::Full);
        assert_eq!(
            at(Method::GET, StatusCode::NON_AUTHORITATIVE_INFORMATION),
            Evaluated::Full
        );
    }

    #[test]
    fn if_match_compares_strongly() {
        assert_eq!(get(&[(&IF_MATCH, "\"v1\"")]), Evaluated::Full);
        assert_eq!(get(&[(&IF_MATCH, "\"v0\", \"v1\"")]), Evaluated::Full);
        assert_eq!(
            get(&[(&IF_MATCH, "\"v0\""), (&IF_MATCH, "\"v1\"")]),
            Evaluated::Full
        );
        assert_eq!(get(&[(&IF_MATCH, "*")]), Evaluated::Full);
        let failed = Evaluated::PreconditionFailed;
        assert_eq!(
            get(&[(&IF_MATCH, "W/\"v1\"")]),
            failed,
            "weak never matches"
        );
        assert_eq!(get(&[(&IF_MATCH, "\"v2\"")]), failed);
        assert_eq!(get(&[(&IF_MATCH, "v1")]), failed, "unquoted: not a tag");
        assert_eq!(get(&[(&IF_MATCH, "*, \"v2\"")]), failed, "* only alone");
        // A weak stored tag matches nothing strongly.
        let weak = map(&[(&ETAG, "W/\"v1\"")]);
        let request = map(&[(&IF_MATCH, "\"v1\"")]);
        let evaluated = evaluate(&Method::GET, &request, StatusCode::OK, &weak, None);
        assert_eq!(evaluated, failed);
        // No stored tag: only `*` matches.
        let request = map(&[(&IF_MATCH, "\"v1\"")]);
        let evaluated = evaluate(
            &Method::GET,
            &request,
            StatusCode::OK,
            &HeaderMap::new(),
            None,
        );
        assert_eq!(evaluated, failed);
    }

    #[test]
    fn if_unmodified_since_only_without_if_match() {
        let failed = Evaluated::PreconditionFailed;
        assert_eq!(get(&[(&IF_UNMODIFIED_SINCE, BEFORE)]), failed);
        assert_eq!(
            get(&[(&IF_UNMODIFIED_SINCE, LAST_MODIFIED_AT)]),
            Evaluated::Full
        );
        assert_eq!(get(&[(&IF_UNMODIFIED_SINCE, AFTER)]), Evaluated::Full);
        // If-Match decides alone.
        let both = [(&IF_MATCH, "\"v1\""), (&IF_UNMODIFIED_SINCE, BEFORE)];
        assert_eq!(get(&both), Evaluated::Full);
        // An empty If-Match asks nothing: If-Unmodified-Since decides.
        let both = [(&IF_MATCH, " , "), (&IF_UNMODIFIED_SINCE, BEFORE)];
        assert_eq!(get(&both), failed);
        // Unparsable or repeated: ignored; no Last-Modified: ignored.
        assert_eq!(get(&[(&IF_UNMODIFIED_SINCE, "yesterday")]), Evaluated::Full);
        let twice = [
            (&IF_UNMODIFIED_SINCE, BEFORE),
            (&IF_UNMODIFIED_SINCE, BEFORE),
        ];
        assert_eq!(get(&twice), Evaluated::Full);
        let request = map(&[(&IF_UNMODIFIED_SINCE, BEFORE)]);
        let evaluated = evaluate(
            &Method::GET,
            &request,
            StatusCode::OK,
            &HeaderMap::new(),
            None,
        );
        assert_eq!(evaluated, Evaluated::Full);
    }

    #[test]
    fn if_none_match_compares_weakly() {
        let not_modified = Evaluated::NotModified;
        assert_eq!(get(&[(&IF_NONE_MATCH, "\"v1\"")]), not_modified);
        assert_eq!(get(&[(&IF_NONE_MATCH, "W/\"v1\"")]), not_modified);
        assert_eq!(get(&[(&IF_NONE_MATCH, "\"a,b\", W/\"v1\"")]), not_modified);
        assert_eq!(get(&[(&IF_NONE_MATCH, "*")]), not_modified);
        assert_eq!(get(&[(&IF_NONE_MATCH, " * ")]), not_modified);
        assert_eq!(get(&[(&IF_NONE_MATCH, "\"v2\"")]), Evaluated::Full);
        assert_eq!(
            get(&[(&IF_NONE_MATCH, "\"v1")]),
            Evaluated::Full,
            "unclosed"
        );
        assert_eq!(get(&[(&IF_NONE_MATCH, "\"v1\"x")]), Evaluated::Full);
        assert_eq!(get(&[(&IF_NONE_MATCH, "\"v 1\"")]), Evaluated::Full);
        // A malformed member does not spoil the others.
        assert_eq!(get(&[(&IF_NONE_MATCH, "junk, \"v1\"")]), not_modified);
        // Preconditions come first.
        let both = [(&IF_MATCH, "\"v2\""), (&IF_NONE_MATCH, "\"v1\"")];
        assert_eq!(get(&both), Evaluated::PreconditionFailed);
    }

    #[test]
    fn if_modified_since_only_without_if_none_match() {
        let not_modified = Evaluated::NotModified;
        assert_eq!(get(&[(&IF_MODIFIED_SINCE, LAST_MODIFIED_AT)]), not_modified);
        assert_eq!(get(&[(&IF_MODIFIED_SINCE, AFTER)]), not_modified);
        assert_eq!(get(&[(&IF_MODIFIED_SINCE, BEFORE)]), Evaluated::Full);
        // The obsolete formats: RFC 850 and asctime.
        let rfc850 = "Sunday, 06-Nov-94 08:49:37 GMT";
        assert_eq!(get(&[(&IF_MODIFIED_SINCE, rfc850)]), not_modified);
        let asctime = "Sun Nov  6 08:49:37 1994";
        assert_eq!(get(&[(&IF_MODIFIED_SINCE, asctime)]), not_modified);
        // If-None-Match decides alone, even when it does not match.
        let both = [(&IF_NONE_MATCH, "\"v2\""), (&IF_MODIFIED_SINCE, AFTER)];
        assert_eq!(get(&both), Evaluated::Full);
        // Unparsable, repeated, too long, or no valid Last-Modified: ignored.
        assert_eq!(get(&[(&IF_MODIFIED_SINCE, "soon")]), Evaluated::Full);
        let list = format!("{AFTER}, {AFTER}");
        assert_eq!(get(&[(&IF_MODIFIED_SINCE, &list)]), Evaluated::Full);
        let twice = [(&IF_MODIFIED_SINCE, AFTER), (&IF_MODIFIED_SINCE, AFTER)];
        assert_eq!(get(&twice), Evaluated::Full);
        let padded = format!("{AFTER}{}", " ".repeat(100));
        assert_eq!(get(&[(&IF_MODIFIED_SINCE, &padded)]), Evaluated::Full);
        let request = map(&[(&IF_MODIFIED_SINCE, AFTER)]);
        let bad = map(&[(&LAST_MODIFIED, "a while ago")]);
        let evaluated = evaluate(&Method::GET, &request, StatusCode::OK, &bad, None);
        assert_eq!(evaluated, Evaluated::Full);
    }

    #[test]
    fn one_byte_range() {
        assert_eq!(get(&[(&RANGE, "bytes=0-99")]), partial(0, 99));
        assert_eq!(get(&[(&RANGE, "bytes=990-")]), partial(990, 999));
        assert_eq!(get(&[(&RANGE, "bytes=990-5000")]), partial(990, 999));
        assert_eq!(get(&[(&RANGE, "bytes=-10")]), partial(990, 999));
        assert_eq!(get(&[(&RANGE, "bytes=-5000")]), partial(0, 999));
        assert_eq!(get(&[(&RANGE, "bytes=999-999")]), partial(999, 999));
        assert_eq!(get(&[(&RANGE, "Bytes=0-0")]), partial(0, 0));
        assert_eq!(get(&[(&RANGE, "bytes=, 0-0 ,")]), partial(0, 0));
        // A preconditions' answer wins over the range.
        let both = [(&IF_NONE_MATCH, "\"v1\""), (&RANGE, "bytes=0-0")];
        assert_eq!(get(&both), Evaluated::NotModified);
    }

    #[test]
    fn unsatisfiable_malformed_and_multiple_ranges() {
        let unsatisfiable = Evaluated::Unsatisfiable { complete: 1000 };
        assert_eq!(get(&[(&RANGE, "bytes=1000-")]), unsatisfiable);
        assert_eq!(get(&[(&RANGE, "bytes=1000-2000")]), unsatisfiable);
        assert_eq!(get(&[(&RANGE, "bytes=-0")]), unsatisfiable);
        for full in [
            "bytes=0-1,5-6",
            "bytes=5-4",
            "bytes=",
            "bytes=-",
            "bytes=a-b",
            "bytes=1-2-3",
            "bytes=+1-2",
            "bytes=1 -2",
            "bytes 0-1",
            "items=0-1",
            "0-1",
            "bytes=0x1-",
        ] {
            assert_eq!(get(&[(&RANGE, full)]), Evaluated::Full, "{full}");
        }
        let twice = [(&RANGE, "bytes=0-1"), (&RANGE, "bytes=0-1")];
        assert_eq!(get(&twice), Evaluated::Full);
    }

    #[test]
    fn ranges_need_a_get_and_a_known_length() {
        let request = map(&[(&RANGE, "bytes=0-9")]);
        let ok = StatusCode::OK;
        let head = evaluate(&Method::HEAD, &request, ok, &stored(), Some(1000));
        assert_eq!(head, Evaluated::Full);
        let unknown = evaluate(&Method::GET, &request, ok, &stored(), None);
        assert_eq!(unknown, Evaluated::Full);
        // An empty body: nothing to range over.
        let empty = |range| {
            let request = map(&[(&RANGE, range)]);
            evaluate(&Method::GET, &request, ok, &stored(), Some(0))
        };
        assert_eq!(empty("bytes=0-"), Evaluated::Unsatisfiable { complete: 0 });
        assert_eq!(empty("bytes=-5"), Evaluated::Full);
    }

    #[test]
    fn numbers_near_and_past_u64_max() {
        let max = u64::MAX;
        let ranged = |range: &str, length| {
            let request = map(&[(&RANGE, range)]);
            evaluate(
                &Method::GET,
                &request,
                StatusCode::OK,
                &stored(),
                Some(length),
            )
        };
        let huge = "9".repeat(40);
        let at_max = |start| Evaluated::Partial {
            start,
            end_inclusive: max - 1,
            complete: max,
        };
        assert_eq!(ranged(&format!("bytes=0-{huge}"), max), at_max(0));
        assert_eq!(ranged(&format!("bytes=-{huge}"), max), at_max(0));
        assert_eq!(ranged(&format!("bytes={}-", max - 1), max), at_max(max - 1));
        let unsatisfiable = Evaluated::Unsatisfiable { complete: max };
        assert_eq!(ranged(&format!("bytes={max}-"), max), unsatisfiable);
        assert_eq!(ranged(&format!("bytes={huge}-{huge}"), max), unsatisfiable);
        // Compared as numbers, not saturated: `last < first` is invalid even past u64::MAX.
        let invalid = format!("bytes={huge}9-{huge}");
        assert_eq!(ranged(&invalid, max), Evaluated::Full);
        let zeros = format!("bytes=00000000000000000000000000005-{}7", "0".repeat(30));
        assert_eq!(
            ranged(&zeros, 10),
            Evaluated::Partial {
                start: 5,
                end_inclusive: 7,
                complete: 10
            }
        );
    }

    #[test]
    fn if_range_gates_the_range() {
        let ranged = |if_range: &str| get(&[(&RANGE, "bytes=0-9"), (&IF_RANGE, if_range)]);
        assert_eq!(ranged("\"v1\""), partial(0, 9));
        assert_eq!(ranged(LAST_MODIFIED_AT), partial(0, 9));
        assert_eq!(ranged("\"v2\""), Evaluated::Full);
        assert_eq!(ranged("W/\"v1\""), Evaluated::Full, "weak tags never match");
        assert_eq!(ranged(AFTER), Evaluated::Full, "a date must be equal");
        assert_eq!(ranged("junk"), Evaluated::Full);
        let twice = [
            (&RANGE, "bytes=0-9"),
            (&IF_RANGE, "\"v1\""),
            (&IF_RANGE, "\"v1\""),
        ];
        assert_eq!(get(&twice), Evaluated::Full);
        // Without Range, If-Range does nothing.
        assert_eq!(get(&[(&IF_RANGE, "\"v2\"")]), Evaluated::Full);
        // A Last-Modified less than a second before Date is weak: no date matches it.
        let weak = map(&[
            (&LAST_MODIFIED, LAST_MODIFIED_AT),
            (&DATE, LAST_MODIFIED_AT),
        ]);
        let request = map(&[(&RANGE, "bytes=0-9"), (&IF_RANGE, LAST_MODIFIED_AT)]);
        let evaluated = evaluate(&Method::GET, &request, StatusCode::OK, &weak, Some(1000));
        assert_eq!(evaluated, Evaluated::Full);
    }

    #[test]
    fn huge_values_are_scanned_once() {
        // Patterns that would make a naive scanner quadratic (a quote far from its close, a
        // member that fails after its close, many empty elements): 512 KiB each, at once.
        let n = 1 << 17;
        for value in [
            format!("\"{}", "a,".repeat(n)),
            "\"a,\"x".repeat(n),
            ",".repeat(4 * n),
            format!("W/{}", "\" ".repeat(2 * n)),
        ] {
            for name in [&IF_MATCH, &IF_NONE_MATCH, &IF_RANGE, &RANGE] {
                get(&[(name, &value), (&RANGE, "bytes=0-0")]);
            }
        }
        let range = format!("bytes=0-{}", "1".repeat(4 * n));
        assert_eq!(get(&[(&RANGE, &range)]), partial(0, 999));
    }

    fn parts() -> http::response::Parts {
        let mut response = Response::new(());
        *response.headers_mut() = stored();
        let extra = [
            (CONTENT_LENGTH, "1000"),
            (VARY, "accept-encoding"),
            (AGE, "3"),
            (http::header::CONTENT_TYPE, "text/plain"),
        ];
        for (name, value) in extra {
            response
                .headers_mut()
                .insert(name, HeaderValue::from_static(value));
        }
        response.into_parts().0
    }

    #[test]
    fn not_modified_keeps_only_what_a_304_may_carry() {
        let mut p = parts();
        apply(&Evaluated::NotModified, &mut p);
        assert_eq!(p.status, StatusCode::NOT_MODIFIED);
        let mut names: Vec<_> = p.headers.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["age", "cache-control", "date", "etag", "vary"]);
        // Without an ETag, Last-Modified guides the update.
        let mut p = parts();
        p.headers.remove(ETAG);
        apply(&Evaluated::NotModified, &mut p);
        assert_eq!(p.headers[LAST_MODIFIED], LAST_MODIFIED_AT);
    }

    #[test]
    fn partial_and_errors_get_their_range_and_length() {
        let mut p = parts();
        apply(&partial(10, 19), &mut p);
        assert_eq!(p.status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(p.headers[CONTENT_RANGE], "bytes 10-19/1000");
        assert_eq!(p.headers[CONTENT_LENGTH], "10");
        assert_eq!(
            p.headers[ETAG], "\"v1\"",
            "the representation's fields stay"
        );

        let mut p = parts();
        apply(&Evaluated::Unsatisfiable { complete: 1000 }, &mut p);
        assert_eq!(p.status, StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(p.headers[CONTENT_RANGE], "bytes */1000");
        assert_eq!(p.headers[CONTENT_LENGTH], "0");
        assert!(
            p.headers.get(CACHE_CONTROL).is_none(),
            "never stored downstream"
        );

        let mut p = parts();
        apply(&Evaluated::PreconditionFailed, &mut p);
        assert_eq!(p.status, StatusCode::PRECONDITION_FAILED);
        let mut names: Vec<_> = p.headers.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["content-length", "date"]);

        let mut p = parts();
        apply(&Evaluated::Full, &mut p);
        assert_eq!(
            (p.status, p.headers.len()),
            (StatusCode::OK, parts().headers.len())
        );
    }
}
