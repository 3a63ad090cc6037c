//! Reading a full key back: the target it was made for (scheme, authority, path, query), for
//! inspection. The layout is the one `KeyBuilder::finish` writes; a key it cannot read (another
//! format version, a store's own entries) reads as `None`.

/// The query part of a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum KeyedQuery<'a> {
    /// The request had none.
    None,
    /// The key maker left it out of the key (`ignore_query`).
    Ignored,
    /// As keyed (as sent, or sorted and without the parameters the key maker dropped).
    Some(&'a str),
}

/// The target a key was made for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KeyedTarget<'a> {
    pub scheme: &'a str,
    pub authority: &'a str,
    pub path: &'a str,
    pub query: KeyedQuery<'a>,
}

impl<'a> KeyedTarget<'a> {
    /// The target `full` was made for, if it is a key in the current layout.
    pub(crate) fn of(full: &'a [u8]) -> Option<Self> {
        let mut rest = full.strip_prefix(&[2])?.get(1..)?;
        let mut field = || -> Option<&'a str> {
            let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
            let value = rest.get(4..4 + len)?;
            rest = &rest[4 + len..];
            std::str::from_utf8(value).ok()
        };
        let (scheme, authority, path) = (field()?, field()?, field()?);
        // `0xff` (none) and `0xfe` (ignored) are also the first byte of a length of 255 or 254
        // (plus a multiple of 256): a length it is only if its field fits and does not start
        // with a NUL, which no query holds and which follows a marker whenever a
        // length-prefixed part comes next.
        let marker = match rest.first()? {
            0xff => Some(KeyedQuery::None),
            0xfe => Some(KeyedQuery::Ignored),
            _ => None,
        };
        let as_field = || {
            let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
            let value = rest.get(4..4 + len)?;
            if marker.is_some() && value.first().is_none_or(|b| *b == 0) {
                return None;
            }
            std::str::from_utf8(value).ok()
        };
        let query = match as_field() {
            Some(query) => KeyedQuery::Some(query),
            None => marker?,
        };
        Some(KeyedTarget {
            scheme,
            authority,
            path,
            query,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{KeyBuilder, Target, Unkeyed};
    use http::{HeaderName, HeaderValue, Request};

    fn full_key(uri: &str, extra: impl Fn(&mut KeyBuilder<'_>)) -> Vec<u8> {
        let (parts, ()) = Request::get(uri)
            .header("host", "a.example")
            .body(())
            .unwrap()
            .into_parts();
        let target = Target::of(&parts).unwrap();
        let mut builder = KeyBuilder::new(&parts);
        extra(&mut builder);
        let key = builder
            .finish(&target, Unkeyed::scan(&parts.headers), 1 << 16)
            .unwrap();
        key.as_bytes().to_vec()
    }

    #[test]
    fn keys_read_back_to_their_target() {
        let read = |full: &[u8]| {
            KeyedTarget::of(full).map(|t| {
                (
                    t.authority.to_owned(),
                    t.path.to_owned(),
                    format!("{:?}", t.query),
                )
            })
        };
        let a = full_key("/p?x=1", |_| {});
        assert_eq!(
            read(&a),
            Some(("a.example".into(), "/p".into(), "Some(\"x=1\")".into()))
        );
        let none = full_key("/p", |k| {
            k.value("user", "7").header("accept");
        });
        assert_eq!(read(&none).unwrap().2, "None");
        let ignored = full_key("/p?x=1", |k| {
            k.ignore_query();
        });
        assert_eq!(read(&ignored).unwrap().2, "Ignored");
        let sorted = full_key("/p?b=2&a=1", |k| {
            k.sort_query();
        });
        assert_eq!(read(&sorted).unwrap().2, "Some(\"a=1&b=2\")");
        assert_eq!(KeyedTarget::of(b"\x01junk"), None);
        assert_eq!(KeyedTarget::of(b""), None);
    }

    #[test]
    fn a_query_whose_length_starts_like_a_marker_reads_as_a_query() {
        for len in [254, 255, 510, 511] {
            let query = format!("q={}", "x".repeat(len - 2));
            let full = full_key(&format!("/p?{query}"), |_| {});
            let target = KeyedTarget::of(&full).unwrap();
            assert_eq!(target.query, KeyedQuery::Some(&query), "{len}");
        }
        // And a marker followed by the key maker's parts or a variant stays a marker.
        let full = full_key("/p", |k| {
            k.value("v", "x").header("accept");
        });
        assert_eq!(KeyedTarget::of(&full).unwrap().query, KeyedQuery::None);
        let base = crate::key::CacheKey::of_bytes(&full_key("/p", |_| {}));
        let mut headers = http::HeaderMap::new();
        headers.insert("accept", HeaderValue::from_static("text/html"));
        let variant = base.variant(&[HeaderName::from_static("accept")], &headers, &[]);
        let target = KeyedTarget::of(variant.as_bytes()).unwrap();
        assert_eq!((target.path, target.query), ("/p", KeyedQuery::None));
    }
}
