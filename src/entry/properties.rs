//! Property tests of the entry encoding: every entry round-trips, whatever its times, tags,
//! fields and body (decoding mutated encodings is tested on the public API, in
//! `tests/properties.rs`, where allocations can be counted).

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use proptest::prelude::*;

use super::{Entry, Kind, StoredResponse};
use crate::testing::check;

/// The bytes of a lowercase field name (RFC 9110 token).
const TOKEN: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+.^_`|~-";

fn field_name() -> impl Strategy<Value = HeaderName> {
    prop_oneof![
        prop::sample::select(vec!["content-type", "etag", "x-cache", "age", "set-thing"])
            .prop_map(HeaderName::from_static),
        prop::collection::vec(prop::sample::select(TOKEN.to_vec()), 1..20)
            .prop_map(|n| HeaderName::from_bytes(&n).unwrap()),
    ]
}

fn field_value() -> impl Strategy<Value = HeaderValue> {
    let byte = prop_oneof![4 => 0x20u8..0x7f, 1 => Just(b'\t'), 1 => 0x80u8..=0xff];
    prop::collection::vec(byte, 0..40).prop_map(|v| HeaderValue::from_bytes(&v).unwrap())
}

fn fields() -> impl Strategy<Value = HeaderMap> {
    prop::collection::vec((field_name(), field_value()), 0..12).prop_map(|pairs| {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name, value);
        }
        map
    })
}

fn kind() -> impl Strategy<Value = Kind> {
    let response = (
        100u16..=999,
        fields(),
        prop::collection::vec(any::<u8>(), 0..300),
        prop::option::of(fields()),
        (any::<bool>(), any::<bool>(), any::<bool>()),
    )
        .prop_map(
            |(status, headers, body, trailers, (shared, strict, immutable))| {
                Kind::Response(StoredResponse {
                    status: StatusCode::from_u16(status).unwrap(),
                    headers,
                    body: Bytes::from(body),
                    trailers,
                    shared_with_credentials: shared,
                    must_revalidate: strict,
                    immutable,
                })
            },
        );
    prop_oneof![
        3 => response,
        1 => prop::collection::vec(field_name(), 0..6)
            .prop_map(|names| Kind::Variants(names.into_boxed_slice())),
        1 => Just(Kind::Pass),
    ]
}

/// Times from ordinary to absurd.
fn time() -> impl Strategy<Value = u64> {
    prop_oneof![
        1_600_000_000_000u64..1_900_000_000_000,
        any::<u64>(),
        Just(u64::MAX),
        Just(0),
    ]
}

fn entry() -> impl Strategy<Value = Entry> {
    (
        prop::collection::vec(any::<u8>(), 0..64),
        (time(), time(), time(), time(), time(), time()),
        prop::collection::vec(
            prop::collection::vec(any::<char>(), 0..24).prop_map(String::from_iter),
            0..6,
        ),
        kind(),
    )
        .prop_map(|(key, (stored, fresh, swr, sie, keep, age), tags, kind)| {
            Entry {
                key: Bytes::from(key),
                stored_at_ms: stored,
                requested_at_ms: stored,
                fresh_until_ms: fresh,
                stale_while_revalidate_ms: swr,
                stale_if_error_ms: sie,
                keep_ms: keep,
                initial_age: age,
                tags: super::Tags::default(),
                kind,
                memo: super::AnswerMemo::default(),
            }
            .with_tags(tags)
        })
}

#[test]
fn every_entry_round_trips() {
    check("every_entry_round_trips", 1000, entry(), |entry| {
        let encoded = entry.encode();
        let decoded = Entry::decode(Bytes::from(encoded.clone()));
        prop_assert!(decoded.is_ok(), "{:?}", decoded);
        let decoded = decoded.unwrap();
        prop_assert_eq!(decoded.encode(), encoded);
        prop_assert_eq!(decoded.key(), entry.key());
        prop_assert!(decoded.tags().eq(entry.tags()));
        prop_assert_eq!(decoded.stored_at(), entry.stored_at());
        prop_assert_eq!(decoded.fill_started_at(), entry.fill_started_at());
        prop_assert_eq!(decoded.fresh_until(), entry.fresh_until());
        match (decoded.kind(), entry.kind()) {
            (Kind::Response(a), Kind::Response(b)) => {
                prop_assert_eq!(a.status, b.status);
                prop_assert_eq!(&a.headers, &b.headers);
                prop_assert_eq!(&a.body, &b.body);
                prop_assert_eq!(&a.trailers, &b.trailers);
                prop_assert_eq!(a.shared_with_credentials, b.shared_with_credentials);
            }
            (Kind::Variants(a), Kind::Variants(b)) => prop_assert_eq!(a, b),
            (Kind::Pass, Kind::Pass) => {}
            (a, b) => prop_assert!(false, "{:?} decoded as {:?}", b, a),
        }
        // Whatever the times, asking about them never overflows.
        let now = std::time::SystemTime::now();
        let _ = (
            decoded.staleness(now),
            decoded.lived(now),
            decoded.age(now),
            decoded.remaining_lifetime(now),
            decoded.fill_started_at(),
        );
        Ok(())
    });
}
