//! Property tests of the header parsers (`Cache-Control`, `Age`, `Date`/`Expires`), of the
//! storing decision, and of conditional and range requests against a stored response: never a
//! panic on any input, results as documented, every lifetime within `MAX_LIFETIME`, every range
//! within its body. Bounded case counts; a failure prints the seed that replays it.

use http::header::{AGE, CACHE_CONTROL, DATE, EXPIRES, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use proptest::prelude::*;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::RequestFacts;
use super::cache_control::CacheControl;
use super::conditional::{Evaluated, apply, evaluate};
use super::freshness::{initial_age, origin_lifetime};
use super::storable::{Received, decide};
use crate::entry::{Entry, StoredResponse};
use crate::testing::check;
use crate::{CacheOverride, MAX_LIFETIME, Policy};

const MAX_DELTA: u64 = 1 << 31;

/// Bytes a header value may hold (`HeaderValue::from_bytes` accepts them).
fn value_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        4 => 0x20u8..0x7f,
        1 => Just(b'\t'),
        1 => 0x80u8..=0xff,
    ];
    prop::collection::vec(byte, 0..max)
}

fn headers(lines: &[(http::HeaderName, Vec<u8>)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, line) in lines {
        map.append(name, HeaderValue::from_bytes(line).unwrap());
    }
    map
}

/// One directive, as text, and what it should do.
#[derive(Clone, Debug)]
enum Directive {
    Flag(&'static str),
    /// A flag with a field-name list: `no-cache` and `private` name the fields.
    Qualified(&'static str, &'static [&'static str]),
    Delta(&'static str, Option<u64>),
    Other,
}

/// A delta-seconds value as written, and what it means (`None`: invalid, so 0).
fn delta_value() -> impl Strategy<Value = (String, Option<u64>)> {
    prop_oneof![
        (0u64..100_000).prop_map(|n| (n.to_string(), Some(n))),
        any::<u64>().prop_map(|n| (n.to_string(), Some(n.min(MAX_DELTA)))),
        "[1-9][0-9]{20,30}".prop_map(|n| (n, Some(MAX_DELTA))),
        (0u64..1000).prop_map(|n| (format!("\"{n}\""), Some(n))),
        prop::sample::select(vec![
            "", "abc", "-1", "+1", "1.5", "1e3", "0x10", "\"\"", "1 2"
        ])
        .prop_map(|v| (v.to_owned(), None)),
    ]
}

/// A random mix of upper and lower case.
fn any_case(name: &'static str) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<bool>(), name.len()).prop_map(move |upper| {
        name.chars()
            .zip(upper)
            .map(|(c, u)| if u { c.to_ascii_uppercase() } else { c })
            .collect()
    })
}

fn directive() -> impl Strategy<Value = (String, Directive)> {
    let flags = [
        "no-store",
        "no-cache",
        "private",
        "public",
        "must-revalidate",
        "proxy-revalidate",
        "must-understand",
        "immutable",
    ];
    let deltas = [
        "max-age",
        "s-maxage",
        "stale-while-revalidate",
        "stale-if-error",
    ];
    let space = || prop::sample::select(vec!["", " ", "  "]);
    prop_oneof![
        // A flag, possibly qualified (`no-cache="set-cookie, x"`).
        (
            prop::sample::select(flags.to_vec()).prop_flat_map(|f| (Just(f), any_case(f))),
            prop::option::of(prop::sample::select(vec!["x", "\"set-cookie, age\""])),
        )
            .prop_map(|((flag, text), qualifier)| {
                let fields: &'static [&'static str] = match qualifier {
                    Some("x") => &["x"],
                    _ => &["set-cookie", "age"],
                };
                let meaning = match (flag, qualifier) {
                    ("no-cache" | "private", Some(_)) => Directive::Qualified(flag, fields),
                    _ => Directive::Flag(flag),
                };
                let text = match qualifier {
                    Some(q) => format!("{text}={q}"),
                    None => text,
                };
                (text, meaning)
            }),
        (
            prop::sample::select(deltas.to_vec()).prop_flat_map(|d| (Just(d), any_case(d))),
            space(),
            space(),
            prop::option::weighted(0.9, delta_value()),
        )
            .prop_map(|((name, text), before, after, value)| match value {
                Some((value, meaning)) => (
                    format!("{text}{before}={after}{value}"),
                    Directive::Delta(name, meaning),
                ),
                None => (text, Directive::Delta(name, None)),
            }),
        // Extensions, with quoted strings hiding commas and directive names.
        prop::sample::select(vec![
            "x-ext",
            "community=\"UCI\"",
            "x=\"no-store, max-age=1\"",
            "",
            " ",
            "=",
            "=5",
            "max-agex=5",
        ])
        .prop_map(|t| (t.to_owned(), Directive::Other)),
    ]
}

/// What the parser should make of `directives`, in order.
fn expected(directives: &[Directive]) -> CacheControl {
    let mut cc = CacheControl::default();
    for d in directives {
        match *d {
            Directive::Flag(name) => {
                let slot = match name {
                    "no-store" => &mut cc.no_store,
                    "no-cache" => &mut cc.no_cache,
                    "private" => &mut cc.private,
                    "public" => &mut cc.public,
                    "must-revalidate" => &mut cc.must_revalidate,
                    "proxy-revalidate" => &mut cc.proxy_revalidate,
                    "must-understand" => &mut cc.must_understand,
                    _ => &mut cc.immutable,
                };
                *slot = true;
            }
            Directive::Qualified(name, fields) => {
                let names = fields.iter().map(|f| http::HeaderName::from_static(f));
                match name {
                    "no-cache" => cc.no_cache_fields.extend(names),
                    _ => cc.private_fields.extend(names),
                }
            }
            Directive::Delta(name, value) => {
                let slot = match name {
                    "max-age" => &mut cc.max_age,
                    "s-maxage" => &mut cc.s_maxage,
                    "stale-while-revalidate" => &mut cc.stale_while_revalidate,
                    _ => &mut cc.stale_if_error,
                };
                // Invalid is 0 (stale); two different values are 0 too.
                let value = value.unwrap_or(0);
                *slot = Some(match *slot {
                    Some(previous) if previous != value => 0,
                    _ => value,
                });
            }
            Directive::Other => {}
        }
    }
    cc
}

#[test]
fn cache_control_parses_as_documented() {
    let lists = prop::collection::vec(
        prop::collection::vec(
            (
                directive(),
                prop::sample::select(vec![",", ", ", " ,", ",,"]),
            ),
            0..6,
        ),
        1..4,
    );
    check("cache_control_parses_as_documented", 2000, lists, |lines| {
        let mut directives = Vec::new();
        let mut map = HeaderMap::new();
        for line in &lines {
            let mut text = String::new();
            for ((item, meaning), separator) in line {
                text.push_str(item);
                text.push_str(separator);
                directives.push(meaning.clone());
            }
            map.append(CACHE_CONTROL, HeaderValue::from_str(&text).unwrap());
        }
        let parsed = CacheControl::parse(&map);
        prop_assert_eq!(&parsed, &expected(&directives), "{:?}", map);
        // One line or several: the same list.
        let joined = lines
            .iter()
            .flatten()
            .map(|((item, _), _)| item.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let one = CacheControl::parse(&headers(&[(CACHE_CONTROL, joined.into_bytes())]));
        prop_assert_eq!(one, parsed);
        Ok(())
    });
}

#[test]
fn cache_control_never_panics_and_stays_in_range() {
    let lines = prop::collection::vec(value_bytes(80), 0..4);
    check(
        "cache_control_never_panics_and_stays_in_range",
        2000,
        lines,
        |lines| {
            let lines: Vec<_> = lines.into_iter().map(|l| (CACHE_CONTROL, l)).collect();
            let cc = CacheControl::parse(&headers(&lines));
            for delta in [
                cc.max_age,
                cc.s_maxage,
                cc.stale_while_revalidate,
                cc.stale_if_error,
            ] {
                prop_assert!(delta.is_none_or(|d| d <= MAX_DELTA));
            }
            if lines.iter().any(|(_, l)| l.iter().any(|b| *b >= 0x80)) {
                prop_assert!(cc.malformed, "not visible ASCII");
            } else if lines.iter().all(|(_, l)| !l.contains(&b'"')) {
                prop_assert!(!cc.malformed, "no quotes, nothing to leave open");
            }
            Ok(())
        },
    );
}

/// Unix seconds that an HTTP date can hold (1970 to 9999).
const MAX_HTTP_DATE: u64 = 253_402_300_799;

fn http_date(secs: u64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs))
}

/// `Age` values: numbers, huge numbers, garbage.
fn age_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any::<u64>().prop_map(|n| n.to_string().into_bytes()),
        (0u64..100_000).prop_map(|n| n.to_string().into_bytes()),
        "[0-9]{20,40}".prop_map(String::into_bytes),
        value_bytes(24),
    ]
}

#[test]
fn age_and_dates_never_panic_and_saturate() {
    let inputs = (
        prop::option::of(age_value()),
        prop::option::of(prop_oneof![
            (0..=MAX_HTTP_DATE).prop_map(|s| http_date(s).into_bytes()),
            value_bytes(40),
        ]),
        prop::collection::vec(
            prop_oneof![
                (0..=MAX_HTTP_DATE).prop_map(|s| http_date(s).into_bytes()),
                value_bytes(40),
            ],
            0..3,
        ),
        0..=MAX_HTTP_DATE,
        any::<u64>(),
    );
    check(
        "age_and_dates_never_panic_and_saturate",
        2000,
        inputs,
        |(age, date, expires, now, delay)| {
            let now = UNIX_EPOCH + Duration::from_secs(now);
            let delay = Duration::from_secs(delay);
            let mut lines = Vec::new();
            lines.extend(age.clone().map(|a| (AGE, a)));
            lines.extend(date.clone().map(|d| (DATE, d)));
            lines.extend(expires.iter().map(|e| (EXPIRES, e.clone())));
            let map = headers(&lines);
            let initial = initial_age(&map, now, delay);
            prop_assert!(initial <= MAX_DELTA);
            let digits = |v: &[u8]| !v.is_empty() && v.iter().all(u8::is_ascii_digit);
            if date.is_none() {
                // Whitespace around the value is not part of it (`Age: \t0`).
                let expected = match age.as_deref().map(<[u8]>::trim_ascii) {
                    Some(a) if digits(a) => {
                        let n = std::str::from_utf8(a).unwrap().parse().unwrap_or(u64::MAX);
                        n.min(MAX_DELTA)
                            .saturating_add(delay.as_secs())
                            .min(MAX_DELTA)
                    }
                    _ => 0,
                };
                prop_assert_eq!(initial, expected);
            }
            let lifetime = origin_lifetime(&CacheControl::default(), &map, now, true);
            let parse = |v: &[u8]| httpdate::parse_http_date(std::str::from_utf8(v).ok()?).ok();
            let expected = match expires.as_slice() {
                [] => None,
                [one] => Some(match parse(one) {
                    Some(expires) => {
                        let date = date.as_deref().and_then(parse).unwrap_or(now);
                        expires.duration_since(date).unwrap_or_default()
                    }
                    None => Duration::ZERO,
                }),
                // Several Expires fields: invalid, so stale.
                _ => Some(Duration::ZERO),
            };
            prop_assert_eq!(lifetime, expected);
            Ok(())
        },
    );
}

/// Durations from zero to absurd.
fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        (0u64..1000).prop_map(Duration::from_secs),
        any::<u64>().prop_map(Duration::from_secs),
        (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
        Just(Duration::MAX),
        Just(MAX_LIFETIME),
    ]
}

fn share() -> impl Strategy<Value = f64> {
    prop_oneof![
        0.0..1.0f64,
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(-1.0),
    ]
}

#[test]
fn decisions_saturate_whatever_the_durations() {
    let policy = (
        (duration(), duration(), duration(), duration()),
        (share(), share(), any::<bool>()),
    )
        .prop_map(|((ttl, negative, swr, sie), (jitter, refresh, honor))| {
            Policy::new()
                .ttl(ttl)
                .negative_ttl(negative)
                .stale_while_revalidate(swr)
                .stale_if_error(sie)
                .ttl_jitter(jitter)
                .refresh_ahead(refresh)
                .honor_cache_control(honor)
        });
    let cache_control = prop::collection::vec(
        (
            prop::sample::select(vec![
                "max-age",
                "s-maxage",
                "stale-while-revalidate",
                "stale-if-error",
            ]),
            delta_value(),
        )
            .prop_map(|(name, (value, _))| format!("{name}={value}")),
        0..3,
    );
    let inputs = (
        policy,
        prop::option::of(duration()),
        cache_control,
        prop::option::of(age_value()),
        prop::sample::select(vec![200u16, 404]),
        (0..=MAX_HTTP_DATE, duration(), any::<u64>(), duration()),
    );
    check(
        "decisions_saturate_whatever_the_durations",
        2000,
        inputs,
        |(policy, ttl, cc, age, status, (now, delay, seed, later))| {
            let now = UNIX_EPOCH + Duration::from_secs(now);
            let mut response = Response::builder().status(status);
            if !cc.is_empty() {
                response = response.header(CACHE_CONTROL, cc.join(", "));
            }
            if let Some(age) = &age {
                response = response.header(AGE, HeaderValue::from_bytes(age).unwrap());
            }
            let (parts, ()) = response.body(()).unwrap().into_parts();
            let overrides = ttl.map_or_else(CacheOverride::default, CacheOverride::ttl);
            let facts = RequestFacts {
                has_authorization: false,
                canonical: true,
                conditional: false,
                no_store: false,
                limits: None,
            };
            let received = Received::new(&parts, None, now, delay, seed);
            let Ok(decision) = decide(&policy, facts, &received, overrides) else {
                return Ok(());
            };
            let lifetime = decision.lifetime;
            for part in [
                lifetime.fresh_for,
                lifetime.stale_while_revalidate,
                lifetime.stale_if_error,
            ] {
                prop_assert!(part <= MAX_LIFETIME);
            }
            prop_assert!(!lifetime.fresh_for.is_zero());
            prop_assert!(lifetime.storage_ttl() <= MAX_LIFETIME * 2);
            if let Some(ttl) = ttl {
                prop_assert_eq!(
                    lifetime.fresh_for,
                    ttl.min(MAX_LIFETIME),
                    "the override wins"
                );
            }
            // The entry made from it answers at any later time without overflowing.
            let stored = StoredResponse {
                status: StatusCode::OK,
                headers: HeaderMap::new(),
                body: bytes::Bytes::new(),
                trailers: None,
                shared_with_credentials: false,
                must_revalidate: false,
                immutable: false,
            };
            let entry = Entry::response(
                bytes::Bytes::from_static(b"k"),
                stored,
                now,
                lifetime,
                decision.initial_age,
            );
            let at = now.checked_add(later).unwrap_or(now);
            let _ = (entry.staleness(at), entry.lived(at), entry.age(at));
            prop_assert!(entry.remaining_lifetime(now) <= MAX_LIFETIME * 2);
            prop_assert!(entry.fresh_until() >= entry.stored_at());
            let _: SystemTime = entry.fill_started_at();
            Ok(())
        },
    );
}

/// Numbers as a `Range` may spell them: small, any `u64`, at its edge, past it, zero-padded.
fn range_number() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..2000).prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        (u64::MAX - 3..=u64::MAX).prop_map(|n| n.to_string()),
        "[0-9]{20,40}",
        "0{1,30}[0-9]{1,4}",
    ]
}

/// `Range` values: well-formed and not, one range or several, other units, garbage.
fn range_value() -> impl Strategy<Value = Vec<u8>> {
    let spec = || {
        (
            prop::option::weighted(0.8, range_number()),
            prop_oneof![6 => Just("-"), 1 => prop::sample::select(vec!["--", "", " - "])],
            prop::option::of(range_number()),
        )
            .prop_map(|(first, dash, last)| {
                format!(
                    "{}{dash}{}",
                    first.unwrap_or_default(),
                    last.unwrap_or_default()
                )
            })
    };
    prop_oneof![
        6 => (
            prop_oneof![
                6 => Just("bytes="),
                1 => prop::sample::select(vec!["BYTES=", "bytes =", "items=", ""]),
            ],
            prop_oneof![
                4 => prop::collection::vec(spec(), 1..2),
                1 => prop::collection::vec(spec(), 2..4),
            ],
            prop::sample::select(vec![",", ", ", " , ,"]),
        )
            .prop_map(|(unit, specs, separator)| {
                format!("{unit}{}", specs.join(separator)).into_bytes()
            }),
        1 => value_bytes(60),
    ]
}

/// `If-Match`/`If-None-Match`/`If-Range`/`ETag` values: tags matching the stored one or not,
/// weak, `*`, malformed, lists.
fn tag_value() -> impl Strategy<Value = Vec<u8>> {
    let member = prop::sample::select(vec![
        "\"v1\"", "W/\"v1\"", "\"v2\"", "*", "junk", "\"a,b\"", "\"v1", "", "W/",
    ]);
    prop_oneof![
        4 => prop::collection::vec(member, 1..4).prop_map(|m| m.join(", ").into_bytes()),
        1 => value_bytes(40),
    ]
}

/// Dates around a fixed modification time, anywhere, or garbage.
fn date_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (784_111_777 - 2..784_111_777 + 2u64).prop_map(|s| http_date(s).into_bytes()),
        (0..=MAX_HTTP_DATE).prop_map(|s| http_date(s).into_bytes()),
        value_bytes(40),
    ]
}

#[test]
fn conditional_answers_never_panic_and_ranges_fit() {
    use http::header::{
        CONTENT_LENGTH, CONTENT_RANGE, ETAG, IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE,
        IF_UNMODIFIED_SINCE, LAST_MODIFIED, RANGE,
    };
    // Mostly absent, so that the later steps are reached often.
    let lines = |values: BoxedStrategy<Vec<u8>>| {
        prop_oneof![
            4 => Just(Vec::new()),
            1 => prop::collection::vec(values, 1..3),
        ]
    };
    let request = (
        lines(tag_value().boxed()),
        lines(tag_value().boxed()),
        lines(date_value().boxed()),
        lines(date_value().boxed()),
        prop_oneof![
            1 => Just(Vec::new()),
            4 => prop::collection::vec(range_value(), 1..2),
            1 => prop::collection::vec(range_value(), 2..3),
        ],
        lines(prop_oneof![tag_value(), date_value()].boxed()),
    );
    let etag = prop_oneof![
        3 => prop::sample::select(vec!["\"v1\"", "W/\"v1\"", "\"v2\""])
            .prop_map(|tag| tag.as_bytes().to_vec()),
        1 => tag_value(),
    ];
    let response = (
        prop_oneof![1 => Just(Vec::new()), 3 => prop::collection::vec(etag, 1..3)],
        lines(date_value().boxed()),
        lines(date_value().boxed()),
    );
    let length = prop_oneof![
        Just(None),
        (0u64..2000).prop_map(Some),
        any::<u64>().prop_map(Some),
        (u64::MAX - 3..=u64::MAX).prop_map(Some),
    ];
    let method = prop_oneof![
        4 => Just(http::Method::GET),
        1 => Just(http::Method::HEAD),
        1 => Just(http::Method::POST),
    ];
    let status = prop_oneof![4 => Just(200u16), 1 => Just(206), 1 => Just(404)];
    let inputs = (request, response, length, method, status);
    check(
        "conditional_answers_never_panic_and_ranges_fit",
        3000,
        inputs,
        |(
            (if_match, if_none_match, ims, ius, range, if_range),
            (etag, modified, date),
            length,
            method,
            status,
        )| {
            let mut request = Vec::new();
            request.extend(if_match.into_iter().map(|v| (IF_MATCH, v)));
            request.extend(if_none_match.into_iter().map(|v| (IF_NONE_MATCH, v)));
            request.extend(ims.into_iter().map(|v| (IF_MODIFIED_SINCE, v)));
            request.extend(ius.into_iter().map(|v| (IF_UNMODIFIED_SINCE, v)));
            request.extend(range.into_iter().map(|v| (RANGE, v)));
            request.extend(if_range.into_iter().map(|v| (IF_RANGE, v)));
            let request = headers(&request);
            let mut fields = Vec::new();
            fields.extend(etag.into_iter().map(|v| (ETAG, v)));
            fields.extend(modified.into_iter().map(|v| (LAST_MODIFIED, v)));
            fields.extend(date.into_iter().map(|v| (DATE, v)));
            let mut response = Response::new(());
            *response.status_mut() = StatusCode::from_u16(status).unwrap();
            *response.headers_mut() = headers(&fields);
            let (mut parts, ()) = response.into_parts();

            let evaluated = evaluate(&method, &request, parts.status, &parts.headers, length);
            let evaluable =
                status == 200 && (method == http::Method::GET || method == http::Method::HEAD);
            if !evaluable {
                prop_assert_eq!(evaluated, Evaluated::Full);
            }
            if method != http::Method::GET || !request.contains_key(RANGE) || length.is_none() {
                prop_assert!(matches!(
                    evaluated,
                    Evaluated::Full | Evaluated::NotModified | Evaluated::PreconditionFailed
                ));
            }
            apply(&evaluated, &mut parts);
            let header = |name| {
                parts
                    .headers
                    .get(name)
                    .map(|v: &HeaderValue| v.to_str().unwrap().to_owned())
            };
            match evaluated {
                Evaluated::Full => prop_assert_eq!(parts.status.as_u16(), status),
                Evaluated::NotModified => prop_assert_eq!(parts.status, StatusCode::NOT_MODIFIED),
                Evaluated::PreconditionFailed => {
                    prop_assert_eq!(parts.status, StatusCode::PRECONDITION_FAILED)
                }
                Evaluated::Partial {
                    start,
                    end_inclusive,
                    complete,
                } => {
                    prop_assert_eq!(Some(complete), length);
                    prop_assert!(start <= end_inclusive && end_inclusive < complete);
                    prop_assert_eq!(parts.status, StatusCode::PARTIAL_CONTENT);
                    let count = end_inclusive - start + 1;
                    prop_assert_eq!(header(CONTENT_LENGTH), Some(count.to_string()));
                    let range = format!("bytes {start}-{end_inclusive}/{complete}");
                    prop_assert_eq!(header(CONTENT_RANGE), Some(range));
                }
                Evaluated::Unsatisfiable { complete } => {
                    prop_assert_eq!(Some(complete), length);
                    prop_assert_eq!(parts.status, StatusCode::RANGE_NOT_SATISFIABLE);
                    prop_assert_eq!(header(CONTENT_RANGE), Some(format!("bytes */{complete}")));
                    prop_assert_eq!(header(CONTENT_LENGTH), Some("0".to_owned()));
                }
            }
            Ok(())
        },
    );
}
