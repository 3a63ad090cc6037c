//! The binary encoding of entries, for stores that keep bytes (Redis, files...).
//!
//! Versioned and compact: a 4-byte header (`TRC` and a version), the flags and times (stored,
//! fresh until, stale windows, initial age, fill start), the full
//! key, the tags, then the response (status, header fields, body, trailers) or the variants
//! list. Lengths are explicit and checked: decoding any byte string, truncated, corrupted or
//! foreign, is a [`DecodeError`], never a panic. Every count is checked against the bytes left
//! and against `HeaderMap`'s limits before anything is allocated for it, so decoding allocates
//! in proportion to the input (a few times its size at most), whatever the input claims.
//! The body of a decoded entry shares the input's `Bytes` (no copy).

use bytes::{BufMut, Bytes};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use std::fmt;

use super::{Entry, Kind, StoredResponse, Tags};

const MAGIC: &[u8; 3] = b"TRC";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u8 = 3;

/// The version byte of an entry that did not fit the format (see [`Entry::encode`]).
const TOO_LARGE: u8 = 0;

const KIND_RESPONSE: u8 = 0;
const KIND_VARIANTS: u8 = 1;
const KIND_PASS: u8 = 2;
const FLAG_SHARED_WITH_CREDENTIALS: u8 = 0x80;
const FLAG_MUST_REVALIDATE: u8 = 0x40;
const FLAG_IMMUTABLE: u8 = 0x20;
/// The flags a response's reuse rules take; the low bits are the kind.
const FLAGS: u8 = FLAG_SHARED_WITH_CREDENTIALS | FLAG_MUST_REVALIDATE | FLAG_IMMUTABLE;
/// The size of a length prefix: every tag, name or value takes at least this many bytes.
const LEN_BYTES: usize = 4;
/// At most this many header fields are allocated for ahead of reading them: beyond that the
/// map grows as fields are read (`HeaderMap::with_capacity` panics past 24,576).
const PREALLOCATED_FIELDS: usize = 64;

/// Bytes that are not an entry of this format version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeError(&'static str);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a cache entry: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

impl Entry {
    /// The entry in the crate's versioned binary format (see [`Entry::decode`]).
    ///
    /// An entry too large for the format (a body or field of 4 GiB or more, more than 65,535
    /// tags or `Vary` fields) encodes as a short value that [`Entry::decode`] refuses, so a
    /// store keeps nothing it would read back wrong.
    pub fn encode(&self) -> Vec<u8> {
        self.encode_within_format()
            .unwrap_or_else(|| [&MAGIC[..], &[TOO_LARGE]].concat())
    }

    /// The encoding, or `None` when a length or count does not fit its field.
    fn encode_within_format(&self) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(self.weight() + 64);
        out.put_slice(MAGIC);
        out.put_u8(FORMAT_VERSION);
        let flag = |set: bool, flag: u8| if set { flag } else { 0 };
        let kind = match &self.kind {
            Kind::Response(r) => {
                KIND_RESPONSE
                    | flag(r.shared_with_credentials, FLAG_SHARED_WITH_CREDENTIALS)
                    | flag(r.must_revalidate, FLAG_MUST_REVALIDATE)
                    | flag(r.immutable, FLAG_IMMUTABLE)
            }
            Kind::Variants(_) => KIND_VARIANTS,
            Kind::Pass => KIND_PASS,
        };
        out.put_u8(kind);
        for n in [
            self.stored_at_ms,
            self.fresh_until_ms,
            self.stale_while_revalidate_ms,
            self.stale_if_error_ms,
            self.keep_ms,
            self.initial_age,
            self.requested_at_ms,
        ] {
            out.put_u64(n);
        }
        put_bytes(&mut out, &self.key)?;
        out.put_u16(u16::try_from(self.tags.iter().len()).ok()?);
        for tag in self.tags.iter() {
            put_bytes(&mut out, tag.as_bytes())?;
        }
        match &self.kind {
            Kind::Response(r) => {
                out.put_u16(r.status.as_u16());
                put_fields(&mut out, &r.headers)?;
                put_bytes(&mut out, &r.body)?;
                match &r.trailers {
                    Some(trailers) => {
                        out.put_u8(1);
                        put_fields(&mut out, trailers)?;
                    }
                    None => out.put_u8(0),
                }
            }
            Kind::Variants(names) => {
                out.put_u16(u16::try_from(names.len()).ok()?);
                for name in names.iter() {
                    put_bytes(&mut out, name.as_str().as_bytes())?;
                }
            }
            Kind::Pass => {}
        }
        Some(out)
    }

    /// Reads an entry written by [`Entry::encode`]. Anything else (another version, truncated or
    /// altered bytes, a foreign value) is an error.
    pub fn decode(bytes: Bytes) -> Result<Entry, DecodeError> {
        let mut r = Reader { bytes, at: 0 };
        if r.take(3)? != MAGIC[..] {
            return Err(DecodeError("bad magic"));
        }
        match r.u8()? {
            FORMAT_VERSION => {}
            TOO_LARGE => return Err(DecodeError("the entry was too large for the format")),
            _ => return Err(DecodeError("unknown format version")),
        }
        let flags = r.u8()?;
        let stored_at_ms = r.u64()?;
        let fresh_until_ms = r.u64()?;
        let stale_while_revalidate_ms = r.u64()?;
        let stale_if_error_ms = r.u64()?;
        let keep_ms = r.u64()?;
        let initial_age = r.u64()?;
        // When its fill asked the origin: what an instance that reads it back checks against
        // invalidations it could not pass on (`unapplied.rs`).
        let requested_at_ms = r.u64()?;
        let key = r.bytes()?;
        let tag_count = r.u16()?;
        let mut tags: Vec<Box<str>> =
            Vec::with_capacity(usize::from(tag_count).min(r.remaining() / LEN_BYTES));
        for _ in 0..tag_count {
            let tag = std::str::from_utf8(&r.bytes()?)
                .map_err(|_| DecodeError("tag not UTF-8"))?
                .into();
            tags.push(tag);
        }
        let kind = match flags & !FLAGS {
            KIND_RESPONSE => {
                let status =
                    StatusCode::from_u16(r.u16()?).map_err(|_| DecodeError("bad status"))?;
                let headers = r.fields()?;
                let body = r.bytes()?;
                let trailers = match r.u8()? {
                    0 => None,
                    1 => Some(r.fields()?),
                    _ => return Err(DecodeError("bad trailers flag")),
                };
                Kind::Response(StoredResponse {
                    status,
                    headers,
                    body,
                    trailers,
                    shared_with_credentials: flags & FLAG_SHARED_WITH_CREDENTIALS != 0,
                    must_revalidate: flags & FLAG_MUST_REVALIDATE != 0,
                    immutable: flags & FLAG_IMMUTABLE != 0,
                })
            }
            _ if flags & FLAGS != 0 => return Err(DecodeError("flags on a non-response")),
            KIND_VARIANTS => {
                let count = r.u16()?;
                let mut names =
                    Vec::with_capacity(usize::from(count).min(r.remaining() / LEN_BYTES));
                for _ in 0..count {
                    names.push(
                        HeaderName::from_bytes(&r.bytes()?)
                            .map_err(|_| DecodeError("bad field name"))?,
                    );
                }
                Kind::Variants(names.into_boxed_slice())
            }
            KIND_PASS => Kind::Pass,
            _ => return Err(DecodeError("unknown entry kind")),
        };
        if r.remaining() != 0 {
            return Err(DecodeError("trailing bytes"));
        }
        Ok(Entry {
            key,
            stored_at_ms,
            requested_at_ms,
            fresh_until_ms,
            stale_while_revalidate_ms,
            stale_if_error_ms,
            keep_ms,
            initial_age,
            tags: Tags::new(tags),
            kind,
            memo: super::AnswerMemo::default(),
        })
    }
}

/// `None` when `bytes` is too long for its 4-byte length.
fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) -> Option<()> {
    out.put_u32(u32::try_from(bytes.len()).ok()?);
    out.put_slice(bytes);
    Some(())
}

fn put_fields(out: &mut Vec<u8>, fields: &HeaderMap) -> Option<()> {
    out.put_u32(u32::try_from(fields.len()).ok()?);
    for (name, value) in fields {
        put_bytes(out, name.as_str().as_bytes())?;
        put_bytes(out, value.as_bytes())?;
    }
    Some(())
}

struct Reader {
    bytes: Bytes,
    at: usize,
}

impl Reader {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn take(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        if n > self.remaining() {
            return Err(DecodeError("truncated"));
        }
        let taken = self.bytes.slice(self.at..self.at + n);
        self.at += n;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let taken = self.take(N)?;
        let mut array = [0; N];
        array.copy_from_slice(&taken);
        Ok(array)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn bytes(&mut self) -> Result<Bytes, DecodeError> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    fn fields(&mut self) -> Result<HeaderMap, DecodeError> {
        let count = self.u32()? as usize;
        // Each field takes at least two lengths: a count beyond that is a lie.
        if count > self.remaining() / (2 * LEN_BYTES) {
            return Err(DecodeError("field count larger than the input"));
        }
        let mut fields = HeaderMap::with_capacity(count.min(PREALLOCATED_FIELDS));
        for _ in 0..count {
            let name = HeaderName::from_bytes(&self.bytes()?)
                .map_err(|_| DecodeError("bad field name"))?;
            let value = HeaderValue::from_maybe_shared(self.bytes()?)
                .map_err(|_| DecodeError("bad field value"))?;
            // A map holds at most 24,576 distinct names (`append` panics past them).
            fields
                .try_append(name, value)
                .map_err(|_| DecodeError("more header fields than a header map holds"))?;
        }
        Ok(fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Lifetime;
    use std::time::{Duration, SystemTime};

    fn sample() -> Entry {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("text/plain"));
        headers.append("set-thing", HeaderValue::from_static("a"));
        headers.append(
            "set-thing",
            HeaderValue::from_bytes(b"\x80\xff obs-text").unwrap(),
        );
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        Entry::response(
            Bytes::from_static(b"\x01full key"),
            StoredResponse {
                status: StatusCode::NOT_FOUND,
                headers,
                body: Bytes::from(vec![7u8; 100_000]),
                trailers: Some(trailers),
                shared_with_credentials: true,
                must_revalidate: true,
                immutable: false,
            },
            SystemTime::now(),
            Lifetime {
                fresh_for: Duration::from_secs(60),
                stale_while_revalidate: Duration::from_secs(5),
                stale_if_error: Duration::from_secs(600),
                keep: Duration::from_secs(3600),
                overdue: Duration::ZERO,
            },
            42,
        )
        .with_tags(["\u{1}uri x/y", "product:1"])
    }

    #[test]
    fn round_trip() {
        let entry = sample().requested_at(SystemTime::now() - Duration::from_secs(90));
        let decoded = Entry::decode(Bytes::from(entry.encode())).unwrap();
        assert_eq!(decoded.encode(), entry.encode());
        assert_eq!(decoded.key(), entry.key());
        assert_eq!(
            decoded.tags().collect::<Vec<_>>(),
            ["\u{1}uri x/y", "product:1"]
        );
        assert_eq!(decoded.stored_at(), entry.stored_at());
        assert_eq!(decoded.fill_started_at(), entry.fill_started_at());
        let Kind::Response(r) = decoded.kind() else {
            panic!("response expected")
        };
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert_eq!(r.headers.get_all("set-thing").iter().count(), 2);
        assert_eq!(r.body.len(), 100_000);
        assert_eq!(r.trailers.as_ref().unwrap()["grpc-status"], "0");
        assert!(r.shared_with_credentials && r.must_revalidate && !r.immutable);

        let now = SystemTime::now();
        for e in [
            Entry::variants(
                Bytes::from_static(b"k"),
                vec![HeaderName::from_static("accept")],
                now,
                Lifetime::fresh(Duration::from_secs(1)),
            ),
            Entry::pass(Bytes::from_static(b"k"), now, Duration::from_secs(1)),
        ] {
            assert_eq!(
                Entry::decode(Bytes::from(e.encode())).unwrap().encode(),
                e.encode()
            );
        }
    }

    #[test]
    fn every_truncation_and_many_corruptions_are_errors() {
        let bytes = sample().encode();
        for len in 0..bytes.len() {
            assert!(
                Entry::decode(Bytes::copy_from_slice(&bytes[..len])).is_err(),
                "truncated at {len}"
            );
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(Entry::decode(Bytes::from(extra)).is_err());
        // Flip each byte of the header part: never a panic (an error, or another valid entry).
        for i in 0..200.min(bytes.len()) {
            let mut corrupt = bytes.clone();
            corrupt[i] ^= 0xff;
            let _ = Entry::decode(Bytes::from(corrupt));
        }
        let mut version = bytes.clone();
        version[3] = 99;
        assert_eq!(
            Entry::decode(Bytes::from(version)).unwrap_err(),
            DecodeError("unknown format version")
        );
        assert!(Entry::decode(Bytes::from_static(b"{\"json\": true}")).is_err());
        // A huge declared count does not allocate: it is refused.
        let mut lying = bytes[..4].to_vec();
        lying.extend_from_slice(&[0u8; 41]);
        lying.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(Entry::decode(Bytes::from(lying)).is_err());
    }

    #[test]
    fn entries_too_large_for_the_format_are_refused_not_truncated() {
        // 65,536 tags: the count was written as `len as u16`, 0, leaving the tags unaccounted.
        let now = SystemTime::now();
        let tags = (0..=u16::MAX as usize).map(|i| format!("t{i}"));
        let many_tags = Entry::pass(Bytes::from_static(b"k"), now, Duration::ZERO).with_tags(tags);
        let encoded = many_tags.encode();
        assert_eq!(encoded, b"TRC\x00");
        assert_eq!(
            Entry::decode(Bytes::from(encoded)).unwrap_err(),
            DecodeError("the entry was too large for the format")
        );
        let names = (0..=u16::MAX as usize)
            .map(|i| HeaderName::try_from(format!("x-{i}")).unwrap())
            .collect();
        let many_names = Entry::variants(Bytes::from_static(b"k"), names, now, Lifetime::default());
        assert!(Entry::decode(Bytes::from(many_names.encode())).is_err());
        // Just within the format: kept.
        let tags = (0..u16::MAX as usize).map(|i| format!("t{i}"));
        let most = Entry::pass(Bytes::from_static(b"k"), now, Duration::ZERO).with_tags(tags);
        let decoded = Entry::decode(Bytes::from(most.encode())).unwrap();
        assert_eq!(decoded.tags().len(), u16::MAX as usize);
    }

    /// A response entry whose header section holds one empty-valued field per name.
    fn with_fields(names: impl ExactSizeIterator<Item = String>) -> Vec<u8> {
        let mut out = Entry::pass(Bytes::from_static(b"k"), SystemTime::now(), Duration::ZERO)
            .encode()[..4]
            .to_vec();
        out.push(KIND_RESPONSE);
        out.extend_from_slice(&[0; 56]); // seven u64 times
        put_bytes(&mut out, b"k").unwrap();
        out.put_u16(0);
        out.put_u16(200);
        out.put_u32(names.len() as u32);
        for name in names {
            put_bytes(&mut out, name.as_bytes()).unwrap();
            put_bytes(&mut out, b"").unwrap();
        }
        put_bytes(&mut out, b"").unwrap();
        out.put_u8(0);
        out
    }

    #[test]
    fn field_counts_beyond_a_header_map_are_errors() {
        // 25,000 fields: `HeaderMap::with_capacity` panicked (its limit is 24,576 names).
        let same = with_fields((0..25_000).map(|_| "x-a".to_owned()));
        let entry = Entry::decode(Bytes::from(same)).unwrap();
        let Kind::Response(r) = entry.kind() else {
            panic!("response expected")
        };
        assert_eq!(r.headers.get_all("x-a").iter().count(), 25_000);
        // As many distinct names: `HeaderMap::append` panicked past 24,576.
        let distinct = with_fields((0..25_000).map(|i| format!("x-{i}")));
        assert_eq!(
            Entry::decode(Bytes::from(distinct)).unwrap_err(),
            DecodeError("more header fields than a header map holds")
        );
        // 2^32 - 1 fields claimed by 100 bytes: refused before anything is allocated.
        let mut claim = with_fields(std::iter::empty());
        let count_at = claim.len() - 4 - 1 - 4;
        claim[count_at..count_at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        claim.resize(100, 0);
        assert_eq!(
            Entry::decode(Bytes::from(claim)).unwrap_err(),
            DecodeError("field count larger than the input")
        );
    }
}
