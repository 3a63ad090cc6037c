//! Entity-tags and entity-tag lists (RFC 9110 §8.8.3, §13.1.1-2): parsed once, linear in the
//! field's length, comparing strongly or weakly.

use http::header::{HeaderMap, HeaderName, HeaderValue};

use super::single;

/// An entity-tag (RFC 9110 §8.8.3): its opaque part, without the quotes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Tag<'a> {
    pub(super) weak: bool,
    pub(super) opaque: &'a [u8],
}

pub(super) fn strong_eq(a: Tag<'_>, b: Tag<'_>) -> bool {
    !a.weak && !b.weak && a.opaque == b.opaque
}

pub(super) fn weak_eq(a: Tag<'_>, b: Tag<'_>) -> bool {
    a.opaque == b.opaque
}

/// A value that is exactly one entity-tag.
pub(super) fn one_tag(value: &[u8]) -> Option<Tag<'_>> {
    let mut members = Members { rest: value };
    match (members.next(), members.next()) {
        (Some(Some(tag)), None) => Some(tag),
        _ => None,
    }
}

/// `If-Match` or `If-None-Match`: `*`, or a list of entity-tags over all the field's lines.
pub(super) enum TagList<'a> {
    Star,
    Tags(http::header::GetAll<'a, HeaderValue>),
}

impl<'a> TagList<'a> {
    /// The field, or `None` when it is absent or lists nothing at all (an empty value asks
    /// nothing). `*` counts only as the whole field: in a list it is a malformed member.
    pub(super) fn field(headers: &'a HeaderMap, name: &HeaderName) -> Option<Self> {
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
    pub(super) fn any(self, matches: impl Fn(Tag<'_>) -> bool) -> bool {
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
pub(super) struct Members<'a> {
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
pub(super) fn entity_tag(value: &[u8]) -> Option<(Tag<'_>, &[u8])> {
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

pub(super) fn trim_ows_start(mut value: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = value {
        value = rest;
    }
    value
}

pub(super) fn trim_ows(value: &[u8]) -> &[u8] {
    let mut value = trim_ows_start(value);
    while let [rest @ .., b' ' | b'\t'] = value {
        value = rest;
    }
    value
}
