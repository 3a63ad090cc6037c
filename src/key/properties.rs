//! Property tests of key and URI normalisation: never a panic on any input, normalising twice
//! changes nothing, every spelling of one target gives one key and one set of tags, and
//! different targets keep different keys. Bounded case counts; a failure prints the seed that
//! replays it.

use http::Request;
use proptest::prelude::*;

use super::{
    CacheKey, DefaultKey, Fields, KeyBuilder, KeyMaker, QueryMode, StoreKey, Target, Unkeyed,
    method_class, normalize_authority, normalize_path, push_field, unkeyed,
};
use crate::BypassReason;
use crate::invalidate::implicit_tags;
use crate::testing::check;

/// Characters a canonical path segment is made of: unreserved ones, some sub-delims, and
/// encodings of reserved or non-ASCII bytes in normal (upper-case) form.
fn canonical_segment() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        6 => prop::sample::select(
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@"
                .chars()
                .map(String::from)
                .collect::<Vec<_>>()
        ),
        1 => prop::sample::select(vec!["%2F", "%3F", "%25", "%20", "%C3%A9", "%00"])
            .prop_map(str::to_owned),
    ];
    prop::collection::vec(piece, 0..6)
        .prop_map(|pieces| pieces.concat())
        .prop_filter("dot segments are not canonical", |s| s != "." && s != "..")
}

fn canonical_path() -> impl Strategy<Value = String> {
    prop::collection::vec(canonical_segment(), 0..5).prop_map(|segments| {
        let mut path = String::from("/");
        path.push_str(&segments.join("/"));
        path
    })
}

fn canonical_host() -> impl Strategy<Value = String> {
    prop::collection::vec("[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?", 1..4).prop_map(|l| l.join("."))
}

/// Choices that respell a path: per character, whether to percent-encode an unreserved one
/// (and in which case), or lower-case an encoding's hex digits; per segment, whether to put a
/// `./` or `x/../` before it.
#[derive(Clone, Debug)]
struct Respelling {
    per_char: Vec<(bool, bool)>,
    per_segment: Vec<u8>,
}

fn respelling() -> impl Strategy<Value = Respelling> {
    (
        prop::collection::vec((any::<bool>(), any::<bool>()), 64),
        prop::collection::vec(0u8..4, 8),
    )
        .prop_map(|(per_char, per_segment)| Respelling {
            per_char,
            per_segment,
        })
}

fn respell_path(path: &str, how: &Respelling) -> String {
    let mut out = String::new();
    let mut chars = 0;
    for (s, segment) in path.split('/').enumerate() {
        if s > 0 {
            out.push('/');
            match how.per_segment.get(s % how.per_segment.len()) {
                Some(1) => out.push_str("./"),
                Some(2) => out.push_str("zz/../"),
                _ => {}
            }
        }
        let bytes = segment.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let (flip, lower) = how.per_char[chars % how.per_char.len()];
            chars += 1;
            if bytes[i] == b'%' {
                let hex = &segment[i + 1..i + 3];
                out.push('%');
                out.push_str(&if lower {
                    hex.to_ascii_lowercase()
                } else {
                    hex.to_owned()
                });
                i += 3;
                continue;
            }
            let c = bytes[i];
            let unreserved = c.is_ascii_alphanumeric() || b"-._~".contains(&c);
            if flip && unreserved {
                let encoded = format!("%{c:02X}");
                out.push_str(&if lower {
                    encoded.to_ascii_lowercase()
                } else {
                    encoded
                });
            } else {
                out.push(char::from(c));
            }
            i += 1;
        }
    }
    out
}

/// A host spelled otherwise: case flipped by `mask`, maybe a trailing dot and a default port.
fn respell_host(host: &str, mask: u64, dot: bool, port: Option<&str>) -> String {
    let mut out: String = host
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if mask >> (i % 64) & 1 == 1 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect();
    if dot {
        out.push('.');
    }
    if let Some(port) = port {
        out.push(':');
        out.push_str(port);
    }
    out
}

fn key_and_tags(host: &str, path: &str) -> Option<(Vec<u8>, Vec<String>, bool)> {
    let request = Request::get(path).header("host", host).body(()).ok()?;
    let (parts, ()) = request.into_parts();
    let target = Target::of(&parts).ok()?;
    let mut builder = KeyBuilder::new(&parts);
    DefaultKey.make_key(&parts, &mut builder);
    let key = builder.finish(&target, Unkeyed::default(), 1 << 20).ok()?;
    Some((
        key.as_bytes().to_vec(),
        implicit_tags(&target),
        target.canonical,
    ))
}

#[test]
fn normalising_never_panics_and_is_idempotent() {
    let text = prop_oneof![
        any::<String>(),
        "[a-zA-Z0-9%./:~\\[\\]@_-]{0,40}",
        "(/|%2[eE]|%[0-9a-fA-F]{2}|\\.|\\.\\.|[a-z]){0,20}",
    ];
    check(
        "key::properties::normalising_never_panics_and_is_idempotent",
        3000,
        text,
        |raw| {
            let path = normalize_path(&raw);
            prop_assert_eq!(&*normalize_path(&path), &*path);
            if raw.starts_with('/') || raw.is_empty() {
                prop_assert!(path.starts_with('/'));
                prop_assert!(
                    !path.split('/').any(|s| s == "." || s == ".."),
                    "dot segment left in {:?}",
                    path
                );
            }
            for scheme in [None, Some("http"), Some("https")] {
                if let Ok(authority) = normalize_authority(&raw, scheme) {
                    let again = normalize_authority(&authority, scheme);
                    prop_assert_eq!(again.as_deref(), Ok(&*authority));
                    prop_assert!(!authority.bytes().any(|b| b.is_ascii_uppercase()));
                    prop_assert!(!authority.ends_with('.'));
                }
            }
            Ok(())
        },
    );
}

#[test]
fn every_spelling_of_a_target_has_one_key_and_one_set_of_tags() {
    let cases = (
        canonical_host(),
        canonical_path(),
        respelling(),
        any::<u64>(),
        any::<bool>(),
        prop::sample::select(vec![None, Some("80"), Some("443"), Some("0080"), Some("")]),
    );
    check(
        "key::properties::every_spelling_of_a_target_has_one_key_and_one_set_of_tags",
        1500,
        cases,
        |(host, path, how, mask, dot, port)| {
            let Some((key, tags, canonical)) = key_and_tags(&host, &path) else {
                return Err(TestCaseError::fail(format!("{host} {path} not keyed")));
            };
            prop_assert!(canonical, "{} {} is in normal form", host, path);
            let odd_host = respell_host(&host, mask, dot, port);
            let odd_path = respell_path(&path, &how);
            let Some((odd_key, odd_tags, odd_canonical)) = key_and_tags(&odd_host, &odd_path)
            else {
                return Err(TestCaseError::fail(format!(
                    "{odd_host} {odd_path} not keyed"
                )));
            };
            prop_assert_eq!(
                &odd_key,
                &key,
                "{} {} vs {} {}",
                odd_host,
                odd_path,
                host,
                path
            );
            prop_assert_eq!(odd_tags, tags);
            prop_assert_eq!(odd_canonical, odd_host == host && odd_path == path);
            Ok(())
        },
    );
}

#[test]
fn different_targets_keep_different_keys() {
    let cases = (
        canonical_host(),
        canonical_path(),
        canonical_host(),
        canonical_path(),
    );
    check(
        "key::properties::different_targets_keep_different_keys",
        1500,
        cases,
        |(host_a, path_a, host_b, path_b)| {
            let a = key_and_tags(&host_a, &path_a).map(|k| k.0);
            let b = key_and_tags(&host_b, &path_b).map(|k| k.0);
            prop_assert!(a.is_some() && b.is_some());
            prop_assert_eq!(a == b, host_a == host_b && path_a == path_b);
            Ok(())
        },
    );
}

/// The key as it was built before keys were held inline (`key::full`): one heap vector,
/// written field by field. A reference for [`inline_keys_are_the_keys_they_were`]; the bytes
/// are a storage format, shared by every instance that uses one Redis.
fn key_the_old_way(
    builder: KeyBuilder<'_>,
    target: &Target<'_>,
    unkeyed: Unkeyed,
    max_key_bytes: usize,
) -> Result<Vec<u8>, BypassReason> {
    if builder.bypass {
        return Err(BypassReason::KeyMaker);
    }
    let scheme = target.scheme.unwrap_or("");
    let (authority, path) = (&*target.authority, &*target.path);
    let query = target.query.unwrap_or("");
    let capacity = 40 + scheme.len() + authority.len() + path.len() + query.len();
    let capacity = capacity + builder.extra.len();
    if capacity > max_key_bytes.saturating_add(32) {
        return Err(BypassReason::KeyTooLarge);
    }
    let mut full = Vec::with_capacity(capacity);
    full.push(2);
    full.push(method_class(&builder.request.method));
    full.extend_from_slice(&(scheme.len() as u32).to_le_bytes());
    full.extend(scheme.bytes().map(|b| b.to_ascii_lowercase()));
    push_field(&mut full, authority.as_bytes());
    push_field(&mut full, path.as_bytes());
    match target.query {
        None => full.push(0xff),
        Some(_) if builder.query == QueryMode::Ignored => full.push(0xfe),
        Some(query) if builder.query == QueryMode::AsSent && builder.dropped_params.is_empty() => {
            push_field(&mut full, query.as_bytes())
        }
        Some(query) => {
            let mut params: Vec<&str> = query
                .split('&')
                .filter(|p| !p.is_empty() && !builder.is_dropped(p))
                .collect();
            if builder.query == QueryMode::Sorted {
                params.sort_unstable();
            }
            push_field(&mut full, params.join("&").as_bytes());
        }
    }
    unkeyed::push_present(&builder.request.headers, unkeyed, &mut full);
    full.extend_from_slice(&builder.extra);
    if full.len() > max_key_bytes {
        return Err(BypassReason::KeyTooLarge);
    }
    Ok(full)
}

/// What a key maker does, in a generated request.
#[derive(Clone, Debug)]
enum MakerStep {
    Header(&'static str),
    Cookie(&'static str),
    Value(String),
    SortQuery,
    IgnoreQuery,
    Drop(&'static str),
    Bypass,
}

fn maker_step() -> impl Strategy<Value = MakerStep> {
    prop_oneof![
        3 => prop::sample::select(vec!["accept-language", "x-forwarded-host", "x-absent"])
            .prop_map(MakerStep::Header),
        3 => prop::sample::select(vec!["session", "theme"]).prop_map(MakerStep::Cookie),
        3 => "[a-z0-9]{0,140}".prop_map(MakerStep::Value),
        3 => Just(MakerStep::SortQuery),
        3 => Just(MakerStep::IgnoreQuery),
        3 => prop::sample::select(vec!["utm_*", "a", "b"]).prop_map(MakerStep::Drop),
        1 => Just(MakerStep::Bypass),
    ]
}

fn make(steps: &[MakerStep], key: &mut KeyBuilder<'_>) {
    for step in steps {
        match step {
            MakerStep::Header(name) => key.header(name),
            MakerStep::Cookie(name) => key.cookie(name),
            MakerStep::Value(value) => key.value("v", value),
            MakerStep::SortQuery => key.sort_query(),
            MakerStep::IgnoreQuery => key.ignore_query(),
            MakerStep::Drop(name) => key.drop_query_param(name),
            MakerStep::Bypass => key.bypass(),
        };
    }
}

#[test]
fn inline_keys_are_the_keys_they_were() {
    let uri = prop_oneof![
        "(/|[a-zA-Z0-9._~-]|%[0-9a-fA-F]{2}|\\.\\.){0,60}(\\?[a-z0-9=&;_]{0,80})?",
        "(http|HTTPS)://[a-zA-Z0-9.]{1,20}(:[0-9]{1,3})?/[a-z0-9/]{0,150}(\\?[a-z=&]{0,20})?",
    ];
    let host = prop::option::of("[a-zA-Z0-9.:\\[\\] ]{0,30}");
    let fields = prop::collection::vec(
        (
            prop::sample::select(vec![
                "accept-language",
                "cookie",
                "x-forwarded-host",
                "forwarded",
                "x-original-url",
                "host",
                "authorization",
                "content-length",
                "cache-control",
            ]),
            "[a-zA-Z0-9=;, .]{0,60}",
        ),
        0..4,
    );
    let steps = prop::collection::vec(maker_step(), 0..4);
    let limit = prop::sample::select(vec![40, 64, 110, 111, 200, 8192]);
    check(
        "key::properties::inline_keys_are_the_keys_they_were",
        2000,
        (uri, host, fields, steps, limit),
        |(uri, host, fields, steps, limit)| {
            let mut request = Request::get(uri.as_str());
            if let Some(host) = &host {
                request = request.header("host", host.as_str());
            }
            for (name, value) in &fields {
                request = request.header(*name, value.as_str());
            }
            let Ok(request) = request.body(()) else {
                return Ok(());
            };
            let (parts, ()) = request.into_parts();
            // The target as `prepare` reads it (its host from the one pass over the fields)
            // is the target as everything else reads it.
            let found = Fields::scan(&parts.headers);
            let target = Target::of(&parts);
            let scanned = found
                .host()
                .and_then(|host| Target::with_host(&parts, host));
            prop_assert_eq!(&scanned, &target);
            let Ok(target) = target else {
                return Ok(());
            };
            let unkeyed = found.unkeyed;
            prop_assert_eq!(unkeyed, Unkeyed::scan(&parts.headers));
            let mut new = KeyBuilder::new(&parts);
            make(&steps, &mut new);
            let mut old = KeyBuilder::new(&parts);
            make(&steps, &mut old);
            let new = new.finish(&target, unkeyed, limit);
            let old = key_the_old_way(old, &target, unkeyed, limit);
            match (new, old) {
                (Ok(new), Ok(old)) => {
                    prop_assert_eq!(new.as_bytes(), &old[..]);
                    prop_assert_eq!(&new.full()[..], &old[..]);
                    let hash = xxhash_rust::xxh3::xxh3_128(&old);
                    prop_assert_eq!(new.store_key(), StoreKey::from_u128(hash));
                    prop_assert_eq!(&new, &CacheKey::of_bytes(&old));
                }
                (new, old) => prop_assert_eq!(new.map(|_| ()), old.map(|_| ())),
            }
            Ok(())
        },
    );
}
