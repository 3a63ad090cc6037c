//! `Cache-Control` parsing (RFC 9111 §5.2), tolerant and conservative.
//!
//! Names are case-insensitive, values may be tokens or quoted strings, several header lines are
//! one list. A delta-seconds value that does not parse, or a freshness directive given twice
//! with different values, makes the response stale (§4.2.1: "invalid ... treat as stale"), never
//! fresher than the origin meant. A header that is not visible ASCII is reported as malformed;
//! the caller does not store such a response.

use http::header::{CACHE_CONTROL, HeaderMap, HeaderName};

/// The directives this cache acts on, in a response or a request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct CacheControl {
    pub no_store: bool,
    /// Unqualified `no-cache` (a qualified one naming a field that is not a valid name counts
    /// as unqualified: stricter, never wrong).
    pub no_cache: bool,
    /// The fields a qualified `no-cache="..."` names: stored without them (RFC 9111 §5.2.2.4).
    pub no_cache_fields: Vec<HeaderName>,
    /// Unqualified `private` (or one naming an invalid field).
    pub private: bool,
    /// The fields a qualified `private="..."` names: a shared cache stores the response
    /// without them (RFC 9111 §5.2.2.7).
    pub private_fields: Vec<HeaderName>,
    pub public: bool,
    pub must_revalidate: bool,
    pub proxy_revalidate: bool,
    pub must_understand: bool,
    /// `Some(0)` also stands for an invalid or conflicting `max-age`.
    pub max_age: Option<u64>,
    /// `Some(0)` also stands for an invalid or conflicting `s-maxage`.
    pub s_maxage: Option<u64>,
    pub stale_while_revalidate: Option<u64>,
    pub stale_if_error: Option<u64>,
    pub immutable: bool,
    /// Request: `max-stale`, `u64::MAX` without a value (any staleness).
    pub max_stale: Option<u64>,
    /// Request: `min-fresh`.
    pub min_fresh: Option<u64>,
    /// Request: `only-if-cached`.
    pub only_if_cached: bool,
    /// The header had bytes that are not visible ASCII.
    pub malformed: bool,
}

/// Largest delta-seconds we keep (RFC 9111 §1.2.2 suggests 2^31); larger values saturate to it.
const MAX_DELTA_SECONDS: u64 = 1 << 31;

impl CacheControl {
    /// Parses every `Cache-Control` line of `headers`.
    pub(crate) fn parse(headers: &HeaderMap) -> Self {
        Self::parse_field(headers, &CACHE_CONTROL)
    }

    /// Parses every line of the field `name` (`Cache-Control`, or a targeted field's lines
    /// once checked, RFC 9213).
    pub(crate) fn parse_field(headers: &HeaderMap, name: &HeaderName) -> Self {
        let mut cc = CacheControl::default();
        for line in headers.get_all(name) {
            match line.to_str() {
                Ok(text) => {
                    cc.malformed |= has_unbalanced_quotes(text);
                    cc.parse_line(text);
                }
                Err(_) => cc.malformed = true,
            }
        }
        cc
    }

    /// Parses directives written as one list (a targeted field's, once made plain).
    pub(crate) fn parse_text(text: &str) -> Self {
        let mut cc = CacheControl::default();
        cc.malformed |= has_unbalanced_quotes(text);
        cc.parse_line(text);
        cc
    }

    fn parse_line(&mut self, line: &str) {
        for directive in split_list(line) {
            let (name, value) = match directive.split_once('=') {
                Some((n, v)) => (n.trim(), Some(unquote(v.trim()))),
                None => (directive.trim(), None),
            };
            if name.is_empty() {
                continue;
            }
            let name = name.to_ascii_lowercase();
            match name.as_str() {
                "no-store" => self.no_store = true,
                "no-cache" => match value.and_then(field_names) {
                    Some(names) => self.no_cache_fields.extend(names),
                    None => self.no_cache = true,
                },
                "private" => match value.and_then(field_names) {
                    Some(names) => self.private_fields.extend(names),
                    None => self.private = true,
                },
                "public" => self.public = true,
                "must-revalidate" => self.must_revalidate = true,
                "proxy-revalidate" => self.proxy_revalidate = true,
                "must-understand" => self.must_understand = true,
                "immutable" => self.immutable = true,
                "max-age" => set_delta(&mut self.max_age, value),
                "s-maxage" => set_delta(&mut self.s_maxage, value),
                "stale-while-revalidate" => set_delta(&mut self.stale_while_revalidate, value),
                "stale-if-error" => set_delta(&mut self.stale_if_error, value),
                // Without a value: any staleness. An invalid value asks for none (stricter).
                "max-stale" => {
                    let stale = value.map_or(Some(u64::MAX), parse_delta_seconds);
                    self.max_stale =
                        Some(stale.unwrap_or(0).min(self.max_stale.unwrap_or(u64::MAX)));
                }
                "min-fresh" => {
                    // An invalid value asks for the most freshness: whatever was stored is
                    // then too old (stricter).
                    let fresh = value
                        .and_then(parse_delta_seconds)
                        .unwrap_or(MAX_DELTA_SECONDS);
                    self.min_fresh = Some(fresh.max(self.min_fresh.unwrap_or(0)));
                }
                "only-if-cached" => self.only_if_cached = true,
                _ => {}
            }
        }
    }
}

/// The field names of a qualified `no-cache` or `private` (a quoted list, or one token);
/// `None` when any of them is not a valid field name, or none is named.
fn field_names(value: &str) -> Option<Vec<HeaderName>> {
    let names: Option<Vec<HeaderName>> = value
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(|name| HeaderName::from_bytes(name.as_bytes()).ok())
        .collect();
    names.filter(|names| !names.is_empty())
}

/// Sets a delta-seconds directive; invalid or conflicting values become 0 (stale).
fn set_delta(slot: &mut Option<u64>, value: Option<&str>) {
    let parsed = value.and_then(parse_delta_seconds).unwrap_or(0);
    *slot = match *slot {
        Some(previous) if previous != parsed => Some(0),
        _ => Some(parsed),
    };
}

/// A delta-seconds value (RFC 9111 §1.2.2): digits only; larger than [`MAX_DELTA_SECONDS`], it
/// saturates to it.
pub(super) fn parse_delta_seconds(value: &str) -> Option<u64> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Digits only: an overflow means "very large", which saturates.
    Some(
        value
            .parse::<u64>()
            .unwrap_or(u64::MAX)
            .min(MAX_DELTA_SECONDS),
    )
}

/// A quoted string left open could hide directives after it (`private="x, no-store`).
fn has_unbalanced_quotes(line: &str) -> bool {
    let mut in_quotes = false;
    let mut escaped = false;
    for c in line.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            _ => {}
        }
    }
    in_quotes
}

fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

/// Splits a comma-separated list, keeping commas inside quoted strings.
fn split_list(line: &str) -> impl Iterator<Item = &str> {
    let mut rest = line;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut in_quotes = false;
        let mut escaped = false;
        for (i, c) in rest.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' if in_quotes => escaped = true,
                '"' => in_quotes = !in_quotes,
                ',' if !in_quotes => {
                    let item = &rest[..i];
                    rest = &rest[i + 1..];
                    return Some(item);
                }
                _ => {}
            }
        }
        let item = rest;
        rest = "";
        Some(item)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn parse(lines: &[&[u8]]) -> CacheControl {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(CACHE_CONTROL, HeaderValue::from_bytes(line).unwrap());
        }
        CacheControl::parse(&headers)
    }

    #[test]
    fn common_directives() {
        let cc = parse(&[b"public, max-age=60, s-maxage=\"120\", stale-while-revalidate=30"]);
        assert!(cc.public);
        assert_eq!(cc.max_age, Some(60));
        assert_eq!(cc.s_maxage, Some(120));
        assert_eq!(cc.stale_while_revalidate, Some(30));
        assert!(!cc.malformed);
    }

    #[test]
    fn names_are_case_insensitive_and_lines_combine() {
        let cc = parse(&[b"Max-Age=5", b"NO-STORE", b"Private=\"set-cookie, x\""]);
        assert_eq!(cc.max_age, Some(5));
        assert!(cc.no_store);
        assert!(!cc.private, "qualified: only the fields named");
        assert_eq!(cc.private_fields, ["set-cookie", "x"]);
    }

    /// RFC 9111 §5.2.2.4 and §5.2.2.7: the qualified forms name fields; a name that is not a
    /// field name makes the directive unqualified (stricter).
    #[test]
    fn rfc9111_5_2_2_qualified_no_cache_and_private() {
        let cc = parse(&[b"no-cache=\"Set-Cookie,  X-Secret\", private=x-user"]);
        assert!(!cc.no_cache && !cc.private);
        assert_eq!(cc.no_cache_fields, ["set-cookie", "x-secret"]);
        assert_eq!(cc.private_fields, ["x-user"]);
        for odd in [&b"no-cache=\"\""[..], b"no-cache=\"a b\"", b"no-cache"] {
            let cc = parse(&[odd]);
            assert!(cc.no_cache && cc.no_cache_fields.is_empty(), "{odd:?}");
        }
    }

    /// RFC 9111 §5.2.1: request directives, invalid values read the stricter way.
    #[test]
    fn rfc9111_5_2_1_request_directives() {
        let cc = parse(&[b"max-stale, min-fresh=5, only-if-cached, max-age=0"]);
        assert_eq!(cc.max_stale, Some(u64::MAX));
        assert_eq!(cc.min_fresh, Some(5));
        assert!(cc.only_if_cached);
        assert_eq!(cc.max_age, Some(0));
        assert_eq!(parse(&[b"max-stale=30"]).max_stale, Some(30));
        assert_eq!(parse(&[b"max-stale=x"]).max_stale, Some(0));
        assert_eq!(parse(&[b"max-stale=30, max-stale=10"]).max_stale, Some(10));
        assert_eq!(parse(&[b"min-fresh=-1"]).min_fresh, Some(MAX_DELTA_SECONDS));
    }

    #[test]
    fn invalid_values_are_stale() {
        for bad in [
            &b"max-age=abc"[..],
            b"max-age=-1",
            b"max-age=",
            b"max-age",
            b"max-age=1.5",
        ] {
            assert_eq!(
                parse(&[bad]).max_age,
                Some(0),
                "{:?}",
                std::str::from_utf8(bad)
            );
        }
        assert_eq!(parse(&[b"max-age=60, max-age=3600"]).max_age, Some(0));
        assert_eq!(parse(&[b"max-age=60, max-age=60"]).max_age, Some(60));
        assert_eq!(
            parse(&[b"max-age=99999999999999999999999"]).max_age,
            Some(MAX_DELTA_SECONDS)
        );
    }

    #[test]
    fn garbage_is_ignored_not_fatal() {
        let cc = parse(&[b",,, ;;; =, max-age=10,,\"unterminated, no-store"]);
        assert_eq!(cc.max_age, Some(10));
        // The unterminated quote could hide a directive: the header is malformed (not stored).
        assert!(cc.malformed);
        assert!(!parse(&[b"private=\"a, b\", max-age=1"]).malformed);
        let cc = parse(&[b"\xff\xfe max-age=10"]);
        assert!(cc.malformed);
    }
}
