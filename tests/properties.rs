//! Property tests on the public API, with bounded case counts; a failure prints the seed that
//! replays it (`PROPTEST_RNG_SEED=<seed> cargo test --all-features <name>`;
//! `PROPTEST_CASES` overrides the counts; the runner is `src/testing.rs`).
//!
//! - `Entry::decode` on mutated encodings (byte flips, truncations, insertions, deletions, and
//!   huge counts and lengths written over valid ones) returns an entry or an error, never
//!   panics, and allocates at most a fixed multiple of its input, counted by this binary's
//!   allocator.
//! - The tag and override headers, through the layer: a response is stored exactly when its
//!   tags are valid and its override allows it, whatever the values, and its tags invalidate it.

mod common;
#[path = "../src/testing.rs"]
mod testing;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use proptest::prelude::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use testing::check;
use tower::{Layer, ServiceExt, service_fn};
use tower_response_cache::store::Entry;
use tower_response_cache::{CacheLayer, MemoryStore, Policy};

// ---- Counting allocations ------------------------------------------------------------------

/// The system allocator, counting the bytes each thread asks for while it is measuring.
struct Counting;

thread_local! {
    static MEASURING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
}

fn count(bytes: usize) {
    // `try_with`: the thread-locals may be gone while a thread exits.
    let _ = MEASURING.try_with(|on| {
        if on.get() {
            let _ = ALLOCATED.try_with(|n| n.set(n.get().saturating_add(bytes)));
        }
    });
}

// SAFETY: every call is forwarded to the system allocator unchanged; counting only touches
// const-initialised thread-locals, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// `f()`, and the bytes it allocated (the total asked for, not the peak).
fn allocated<T>(f: impl FnOnce() -> T) -> (T, usize) {
    ALLOCATED.with(|n| n.set(0));
    MEASURING.with(|on| on.set(true));
    let value = f();
    MEASURING.with(|on| on.set(false));
    (value, ALLOCATED.with(Cell::get))
}

/// What decoding `len` bytes may allocate: a header map's buckets and index for fields of 9
/// bytes, grown by doubling, are the worst case (about 30 times the input).
fn allocation_bound(len: usize) -> usize {
    64 * len + (64 << 10)
}

// ---- Encodings, written by hand from the format's description -----------------------------

/// An entry in format version 1, as `Entry::encode` writes it.
#[derive(Clone, Debug)]
struct Spec {
    kind: u8,
    /// The reuse flags of a response (credentials, must-revalidate, immutable).
    flags: u8,
    times: [u64; 7],
    key: Vec<u8>,
    tags: Vec<String>,
    status: u16,
    /// Field names (lowercase, distinct) each with its values, in map order.
    headers: Vec<(String, Vec<Vec<u8>>)>,
    body: Vec<u8>,
    trailers: Option<Vec<(String, Vec<Vec<u8>>)>>,
    names: Vec<String>,
}

/// The encoding, and where its counts and lengths are (offset, width in bytes).
fn encode(spec: &Spec) -> (Vec<u8>, Vec<(usize, usize)>) {
    let mut out = b"TRC\x03".to_vec();
    let mut counts = Vec::new();
    out.push(spec.kind | spec.flags);
    for t in spec.times {
        out.extend_from_slice(&t.to_be_bytes());
    }
    let bytes = |out: &mut Vec<u8>, counts: &mut Vec<_>, b: &[u8]| {
        counts.push((out.len(), 4));
        out.extend_from_slice(&(b.len() as u32).to_be_bytes());
        out.extend_from_slice(b);
    };
    let fields = |out: &mut Vec<u8>, counts: &mut Vec<_>, f: &[(String, Vec<Vec<u8>>)]| {
        counts.push((out.len(), 4));
        let n: usize = f.iter().map(|(_, values)| values.len()).sum();
        out.extend_from_slice(&(n as u32).to_be_bytes());
        for (name, values) in f {
            for value in values {
                bytes(out, counts, name.as_bytes());
                bytes(out, counts, value);
            }
        }
    };
    bytes(&mut out, &mut counts, &spec.key);
    counts.push((out.len(), 2));
    out.extend_from_slice(&(spec.tags.len() as u16).to_be_bytes());
    for tag in &spec.tags {
        bytes(&mut out, &mut counts, tag.as_bytes());
    }
    match spec.kind {
        0 => {
            out.extend_from_slice(&spec.status.to_be_bytes());
            fields(&mut out, &mut counts, &spec.headers);
            bytes(&mut out, &mut counts, &spec.body);
            match &spec.trailers {
                Some(t) => {
                    out.push(1);
                    fields(&mut out, &mut counts, t);
                }
                None => out.push(0),
            }
        }
        1 => {
            counts.push((out.len(), 2));
            out.extend_from_slice(&(spec.names.len() as u16).to_be_bytes());
            for name in &spec.names {
                bytes(&mut out, &mut counts, name.as_bytes());
            }
        }
        _ => {}
    }
    (out, counts)
}

fn token(max: usize) -> impl Strategy<Value = String> {
    const TOKEN: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+.^_`|~-";
    prop::collection::vec(prop::sample::select(TOKEN), 1..max)
        .prop_map(|t| String::from_utf8(t).unwrap())
}

fn fields() -> impl Strategy<Value = Vec<(String, Vec<Vec<u8>>)>> {
    let value = prop::collection::vec(
        prop_oneof![4 => 0x20u8..0x7f, 1 => Just(b'\t'), 1 => 0x80u8..=0xff],
        0..24,
    );
    prop::collection::btree_map(token(12), prop::collection::vec(value, 1..3), 0..8)
        .prop_map(|m| m.into_iter().collect())
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        (0u8..3, any::<u8>(), any::<[u64; 7]>()),
        prop::collection::vec(any::<u8>(), 0..40),
        prop::collection::vec(token(16), 0..5),
        (
            100u16..=999,
            fields(),
            prop::collection::vec(any::<u8>(), 0..100),
        ),
        (
            prop::option::of(fields()),
            prop::collection::btree_set(token(12), 0..4),
        ),
    )
        .prop_map(
            |((kind, flags, times), key, tags, (status, headers, body), (trailers, names))| Spec {
                kind,
                flags: if kind == 0 { flags & 0xe0 } else { 0 },
                times,
                key,
                tags,
                status,
                headers,
                body,
                trailers,
                names: names.into_iter().collect(),
            },
        )
}

/// A change to an encoding.
#[derive(Clone, Debug)]
enum Mutation {
    Flip {
        at: usize,
        bits: u8,
    },
    Truncate {
        to: usize,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
    Delete {
        at: usize,
        len: usize,
    },
    /// An edge value written over one of the encoding's counts or lengths.
    Lie {
        field: usize,
        value: u32,
    },
    /// An edge value written anywhere.
    Overwrite {
        at: usize,
        value: u64,
        width: usize,
    },
}

fn edge_value() -> impl Strategy<Value = u32> {
    prop_oneof![
        prop::sample::select(vec![
            0,
            1,
            2,
            255,
            24_576,
            24_577,
            25_000,
            32_768,
            65_535,
            65_536,
            0x7fff_ffff,
            0x8000_0000,
            u32::MAX - 1,
            u32::MAX,
        ]),
        any::<u32>(),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(at, bits)| Mutation::Flip { at, bits }),
        any::<usize>().prop_map(|to| Mutation::Truncate { to }),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (any::<usize>(), 1usize..16).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (any::<usize>(), edge_value()).prop_map(|(field, value)| Mutation::Lie { field, value }),
        (
            any::<usize>(),
            prop_oneof![edge_value().prop_map(u64::from), Just(u64::MAX)],
            prop::sample::select(vec![1usize, 2, 4, 8])
        )
            .prop_map(|(at, value, width)| Mutation::Overwrite { at, value, width }),
    ]
}

fn mutate(bytes: &mut Vec<u8>, counts: &[(usize, usize)], mutation: &Mutation) {
    let len = bytes.len().max(1);
    match *mutation {
        Mutation::Flip { at, bits } => {
            if let Some(b) = bytes.get_mut(at % len) {
                *b ^= bits;
            }
        }
        Mutation::Truncate { to } => bytes.truncate(to % len),
        Mutation::Insert {
            at,
            bytes: ref inserted,
        } => {
            let at = at % (bytes.len() + 1);
            bytes.splice(at..at, inserted.iter().copied());
        }
        Mutation::Delete { at, len: n } => {
            let at = at % len;
            let end = (at + n).min(bytes.len());
            bytes.drain(at.min(end)..end);
        }
        Mutation::Lie { field, value } => {
            let Some(&(at, width)) = counts.get(field % counts.len().max(1)) else {
                return;
            };
            let value = value.to_be_bytes();
            if let Some(slot) = bytes.get_mut(at..at + width) {
                slot.copy_from_slice(&value[4 - width..]);
            }
        }
        Mutation::Overwrite { at, value, width } => {
            let at = at % len;
            let value = value.to_be_bytes();
            if let Some(slot) = bytes.get_mut(at..at + width) {
                slot.copy_from_slice(&value[8 - width..]);
            }
        }
    }
}

#[test]
fn hand_written_encodings_decode_and_re_encode_identically() {
    check(
        "hand_written_encodings_decode_and_re_encode_identically",
        1000,
        spec(),
        |spec| {
            let (bytes, _) = encode(&spec);
            let entry = Entry::decode(Bytes::from(bytes.clone()));
            prop_assert!(entry.is_ok(), "{:?}", entry);
            prop_assert_eq!(entry.unwrap().encode(), bytes);
            Ok(())
        },
    );
}

#[test]
fn decoding_mutated_encodings_never_panics_nor_over_allocates() {
    let inputs = (spec(), prop::collection::vec(mutation(), 1..4));
    check(
        "decoding_mutated_encodings_never_panics_nor_over_allocates",
        2000,
        inputs,
        |(spec, mutations)| {
            let (mut bytes, counts) = encode(&spec);
            for m in &mutations {
                mutate(&mut bytes, &counts, m);
            }
            let len = bytes.len();
            let input = Bytes::from(bytes);
            let (decoded, used) = allocated(|| Entry::decode(input));
            prop_assert!(
                used <= allocation_bound(len),
                "{} bytes allocated to decode {} bytes",
                used,
                len
            );
            if let Ok(entry) = decoded {
                // Whatever decodes is an entry like any other: it round-trips.
                let again = entry.encode();
                let decoded = Entry::decode(Bytes::from(again.clone()));
                prop_assert!(decoded.is_ok(), "{:?}", decoded);
                prop_assert_eq!(decoded.unwrap().encode(), again);
            }
            Ok(())
        },
    );
}

#[test]
fn a_short_input_claiming_huge_counts_is_refused_at_once() {
    let spec = Spec {
        kind: 0,
        flags: 0,
        times: [0; 7],
        key: b"k".to_vec(),
        tags: vec!["t".into()],
        status: 200,
        headers: vec![("a".into(), vec![b"1".to_vec()])],
        body: b"body".to_vec(),
        trailers: Some(Vec::new()),
        names: Vec::new(),
    };
    let (valid, counts) = encode(&spec);
    for &(at, width) in &counts {
        for value in [u32::MAX, 0x8000_0000, 25_000, 65_535] {
            let mut lying = valid.clone();
            let value = value.to_be_bytes();
            lying[at..at + width].copy_from_slice(&value[4 - width..]);
            lying.resize(100, 0);
            let (decoded, used) = allocated(|| Entry::decode(Bytes::from(lying)));
            assert!(decoded.is_err(), "count at {at} claiming {value:?}");
            assert!(used <= 1024, "{used} bytes allocated for a 100-byte input");
        }
    }
}

// ---- Tag and override headers, through the layer -------------------------------------------

/// Tag header lines, and whether every tag in them is valid (the count aside).
fn tag_lines() -> impl Strategy<Value = (Vec<String>, Vec<String>, bool)> {
    const GRAPHIC: &[u8] = b"abcxyz0189:._-/@!~\"#$%&'()*+;<=>?[]^`{|}\\";
    let graphic = move |len| {
        prop::collection::vec(prop::sample::select(GRAPHIC), len)
            .prop_map(|t| String::from_utf8(t).unwrap())
    };
    let valid = prop_oneof![9 => graphic(1..24), 1 => graphic(256..257)];
    let invalid = prop_oneof![
        graphic(257..258),
        graphic(258..400),
        graphic(0..6).prop_map(|t| format!("{t}\u{e9}")),
    ];
    // Few tags, or about as many as the limit (64).
    let count = prop_oneof![0usize..8, 62usize..67];
    let separator = prop::sample::select(vec![",", " ", ", ", "\t", " ,  "]);
    (
        count.prop_flat_map(move |n| prop::collection::vec(valid.clone(), n)),
        prop::option::weighted(0.3, (invalid, any::<usize>())),
        prop::collection::vec((separator, prop::bool::weighted(0.05)), 70),
    )
        .prop_map(|(mut tags, bad, layout)| {
            if let Some((bad, at)) = bad {
                tags.insert(at % (tags.len() + 1), bad);
            }
            let valid = tags.iter().all(|t| t.len() <= 256 && t.is_ascii());
            // Tags joined by separators, split across lines at random.
            let mut lines = vec![String::new()];
            for (tag, (separator, new_line)) in tags.iter().zip(layout.iter().cycle()) {
                let line = lines.last_mut().unwrap();
                line.push_str(tag);
                line.push_str(separator);
                if *new_line {
                    lines.push(String::new());
                }
            }
            if tags.is_empty() {
                lines.clear();
            }
            (lines, tags, valid)
        })
}

/// An override header value, and whether it lets the response be stored.
fn override_value() -> impl Strategy<Value = Option<(&'static str, bool)>> {
    prop::option::of(prop::sample::select(vec![
        ("ttl=60", true),
        ("TTL = 60", true),
        ("ttl=18446744073709551615", true),
        ("ttl=99999999999999999999999", true),
        ("", true),
        ("ttl=0", false),
        ("no-store", false),
        ("ttl=-1", false),
        ("ttl=soon", false),
        ("ttl=60, no-store", false),
    ]))
}

#[test]
fn tag_and_override_headers_through_the_layer() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let window = prop::sample::select(vec![Duration::ZERO, Duration::from_secs(30), Duration::MAX]);
    let inputs = (tag_lines(), override_value(), window);
    check(
        "tag_and_override_headers_through_the_layer",
        256,
        inputs,
        |((lines, tags, valid), override_value, window)| {
            let mut headers: Vec<_> = lines.iter().map(|l| ("cache-tag", l.clone())).collect();
            let valid = valid && tags.len() <= 64;
            let mut stored = valid;
            if let Some((value, allows)) = override_value {
                headers.push(("x-cache-override", value.to_owned()));
                stored &= allows;
            }
            let headers = Arc::new(headers);
            let origin = service_fn(move |_: Request<Full<Bytes>>| {
                let headers = Arc::clone(&headers);
                async move {
                    let mut response = Response::new(Full::new(Bytes::from_static(b"page")));
                    for (name, value) in headers.iter() {
                        let value = http::HeaderValue::from_bytes(value.as_bytes()).unwrap();
                        response.headers_mut().append(*name, value);
                    }
                    Ok::<_, Infallible>(response)
                }
            });
            let layer = CacheLayer::new(MemoryStore::with_capacity_bytes(1 << 20)).policy(
                Policy::new()
                    .stale_while_revalidate(window)
                    .stale_if_error(window),
            );
            let service = layer.layer(origin);
            let send = || async {
                let request = Request::get("/p").body(Full::default()).unwrap();
                common::read(service.clone().oneshot(request).await.unwrap()).await
            };
            runtime.block_on(async {
                let first = send().await;
                prop_assert_eq!(first.cache(), "MISS");
                prop_assert!(!first.headers.contains_key("cache-tag"));
                prop_assert!(!first.headers.contains_key("x-cache-override"));
                let second = send().await;
                prop_assert_eq!(second.cache() == "HIT", stored, "{:?}", lines);
                if let (true, Some(tag)) = (stored, tags.first()) {
                    prop_assert_eq!(layer.handle().invalidate_tags(&[tag]).await, 1);
                    let third = send().await;
                    prop_assert_eq!(third.cache(), "MISS");
                }
                Ok(())
            })
        },
    );
}
