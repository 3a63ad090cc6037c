//! RFC 9110 §13-14 cases, one behaviour each.
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
