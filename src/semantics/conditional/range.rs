//! The one byte range a `Range` field may ask of a stored response (RFC 9110 §14.1.1), its
//! numbers kept as digit strings so that no size overflows.

use std::cmp::Ordering;

use super::Evaluated;
use super::etag::trim_ows;

/// The one byte range a `Range: bytes=...` field asks for (RFC 9110 §14.1.1), its numbers as
/// digit strings (never parsed past what they mean: `u64` limits cannot overflow).
#[derive(Debug, PartialEq, Eq)]
pub(super) enum RangeSpec<'a> {
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
    pub(super) fn parse(value: &'a [u8]) -> Option<Self> {
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
    pub(super) fn against(&self, length: u64) -> Evaluated {
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
pub(super) fn saturating_decimal(digits: &[u8]) -> u64 {
    digits
        .iter()
        .try_fold(0u64, |n, d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
        .unwrap_or(u64::MAX)
}

/// Compares two ASCII digit strings as numbers, whatever their length.
pub(super) fn decimal_cmp(a: &[u8], b: &[u8]) -> Ordering {
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
