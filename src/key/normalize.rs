//! The normal form of an authority and a path, shared by keys and invalidation tags.
//!
//! RFC 3986 §6.2.2, RFC 9110 §4.2.3:
//!
//! - Authority: the host lowercased, trailing dots removed, an empty port or the scheme's
//!   default port dropped (`:80` for `http`, `:443` for `https`; either, when the request
//!   target names no scheme, as origin-form targets do), leading zeros of a port dropped.
//!   User info and percent-encoded hosts are refused (a bypass).
//! - Path: percent-encodings of unreserved characters decoded (`%31` is `1`, `%7E` is `~`),
//!   the hex digits of the others upper-cased (`%2f` is `%2F`, and is never decoded into `/`:
//!   that would change the path's segments), a `%` that starts no encoding encoded (`%25`),
//!   dot segments resolved (RFC 3986 §5.2.4), and an empty path made `/`. The query is kept
//!   as sent.
//!
//! Each function returns its input borrowed when it is already in normal form (checked in one
//! pass on the hit path), and writes by hand what no crate does: `url` normalises a whole URL
//! by the WHATWG rules (it keeps `%7E` and lower-case hex as sent), not an authority and a
//! path by RFC 3986's.

use std::borrow::Cow;

use crate::BypassReason;

/// The longest host accepted (DNS names are at most 253 bytes; some room for odd set-ups).
const MAX_HOST_LEN: usize = 1024;

/// An authority (`host[:port]`) in normal form (see the module docs), borrowed when it already
/// is. Anything but a reg-name, IPv4 or bracketed IPv6 host with an optional numeric port is
/// refused: nothing a client could use to make two hosts look alike.
///
/// Inlined: an authority already in normal form costs its check and no call into the rest.
#[inline]
pub(crate) fn normalize_authority<'s>(
    raw: &'s str,
    scheme: Option<&str>,
) -> Result<Cow<'s, str>, BypassReason> {
    if is_normal_reg_authority(raw.as_bytes(), scheme) {
        return Ok(Cow::Borrowed(raw));
    }
    normalize_odd_authority(raw, scheme)
}

/// [`normalize_authority`] of one the quick check did not pass (not necessarily odd: an IPv6
/// literal, an upper-case letter, a default port).
#[inline(never)]
fn normalize_odd_authority<'s>(
    raw: &'s str,
    scheme: Option<&str>,
) -> Result<Cow<'s, str>, BypassReason> {
    let invalid = Err(BypassReason::InvalidHost);
    let bytes = raw.as_bytes();
    let (host, port) = match bytes.first() {
        Some(b'[') => match raw.find(']') {
            Some(end) => (&raw[..=end], &raw[end + 1..]),
            None => return invalid,
        },
        _ => match raw.rfind(':') {
            Some(colon) => (&raw[..colon], &raw[colon..]),
            None => (raw, ""),
        },
    };
    let port = match port.as_bytes() {
        [] => None,
        [b':', digits @ ..] if digits.iter().all(u8::is_ascii_digit) => Some(&port[1..]),
        _ => return invalid,
    };
    let literal = host.starts_with('[');
    let valid_host = if literal {
        let inner = &host[1..host.len() - 1];
        !inner.is_empty()
            && inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.'))
    } else {
        host.bytes().all(is_reg_name_byte)
    };
    let name = if literal {
        host
    } else {
        host.trim_end_matches('.')
    };
    if !valid_host || name.is_empty() || name.len() > MAX_HOST_LEN {
        return invalid;
    }
    let (port, port_as_sent) = match port {
        None | Some("") => (None, false),
        Some(digits) => {
            let trimmed = digits.trim_start_matches('0');
            let significant = if trimmed.is_empty() {
                &digits[digits.len() - 1..]
            } else {
                trimmed
            };
            if significant.len() > 5 {
                return invalid;
            }
            let number: u32 = significant.parse().unwrap_or(0);
            if number > u32::from(u16::MAX) {
                return invalid;
            }
            let kept = !is_default_port(number, scheme);
            (
                kept.then_some(number),
                kept && significant.len() == digits.len(),
            )
        }
    };
    let lower = !name.bytes().any(|b| b.is_ascii_uppercase());
    let spelled_alike = match port {
        None => raw.len() == host.len(),
        Some(_) => port_as_sent,
    };
    if lower && name.len() == host.len() && spelled_alike {
        return Ok(Cow::Borrowed(raw));
    }
    let mut normal = name.to_ascii_lowercase();
    if let Some(number) = port {
        normal.push(':');
        normal.push_str(&number.to_string());
    }
    Ok(Cow::Owned(normal))
}

/// The hit path's check, one pass and no allocation: a lowercase reg-name (or IPv4) host, no
/// trailing dot, and either no port or one without leading zeros that is not a default.
fn is_normal_reg_authority(raw: &[u8], scheme: Option<&str>) -> bool {
    let colon = raw.iter().position(|b| *b == b':');
    let (host, port) = match colon {
        Some(i) => (&raw[..i], &raw[i + 1..]),
        None => (raw, &b""[..]),
    };
    let host_ok = !host.is_empty()
        && host.len() <= MAX_HOST_LEN
        && host.last() != Some(&b'.')
        && host.iter().all(|b| LOWER_REG_NAME[usize::from(*b)]);
    if !host_ok {
        return false;
    }
    match port {
        [] => colon.is_none(),
        [b'1'..=b'9', ..] if port.len() <= 5 && port.iter().all(u8::is_ascii_digit) => {
            let number = port.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
            number <= u32::from(u16::MAX) && !is_default_port(number, scheme)
        }
        _ => false,
    }
}

/// The scheme's default port; without a scheme (an origin-form target, whose connection was
/// either `http` or `https`), both defaults.
fn is_default_port(port: u32, scheme: Option<&str>) -> bool {
    match scheme {
        None => port == 80 || port == 443,
        Some(s) if s.eq_ignore_ascii_case("http") => port == 80,
        Some(s) if s.eq_ignore_ascii_case("https") => port == 443,
        Some(_) => false,
    }
}

/// RFC 3986 reg-name characters (unreserved and sub-delims) without `%`: percent-encoded host
/// names have no use but to make one host look like another.
fn is_reg_name_byte(b: u8) -> bool {
    REG_NAME[usize::from(b)]
}

/// [`REG_NAME`] without the upper-case letters: the bytes of a host in normal form.
const LOWER_REG_NAME: [bool; 256] = {
    let mut table = REG_NAME;
    let mut b = b'A';
    while b <= b'Z' {
        table[b as usize] = false;
        b += 1;
    }
    table
};

/// [`is_reg_name_byte`] as a table, for the hit path.
const REG_NAME: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
            );
        b += 1;
    }
    table
};

/// A path in normal form (see the module docs), borrowed when it already is.
///
/// Inlined: a path already in normal form costs its check and no call into the rest.
#[inline]
pub(crate) fn normalize_path(raw: &str) -> Cow<'_, str> {
    if is_normal_path(raw.as_bytes()) {
        return Cow::Borrowed(raw);
    }
    normalize_odd_path(raw)
}

/// [`normalize_path`] of one the quick check did not pass.
#[inline(never)]
fn normalize_odd_path(raw: &str) -> Cow<'_, str> {
    if raw.is_empty() {
        return Cow::Borrowed("/");
    }
    let encoded = raw.contains('%');
    let decoded = if encoded {
        Cow::Owned(decode_unreserved(raw))
    } else {
        Cow::Borrowed(raw)
    };
    let resolved = if has_dot_segment(&decoded) {
        Cow::Owned(remove_dot_segments(&decoded))
    } else {
        decoded
    };
    if resolved.is_empty() {
        // Only a relative path (never a request's) resolves to nothing: the root, as an
        // empty path is.
        Cow::Borrowed("/")
    } else if resolved == raw {
        Cow::Borrowed(raw)
    } else {
        Cow::Owned(resolved.into_owned())
    }
}

/// The hit path's check, one pass and no allocation: starts with `/`, no dot segment, and
/// every `%XX` already upper-case and not of an unreserved character.
fn is_normal_path(path: &[u8]) -> bool {
    if path.first() != Some(&b'/') {
        return false;
    }
    // Most paths have neither a `%` nor a `.`, and then nothing more to check. (A fold, not
    // `any`: without an early exit the compiler can compare many bytes at a time.)
    let special = path
        .iter()
        .fold(false, |found, &b| found | (b == b'%') | (b == b'.'));
    if !special {
        return true;
    }
    let dot = |segment: &[u8]| segment == b"." || segment == b"..";
    let mut start = 1;
    let mut i = 1;
    while i < path.len() {
        match path[i] {
            b'/' => {
                if dot(&path[start..i]) {
                    return false;
                }
                start = i + 1;
            }
            b'%' => {
                let upper_hex = |b: u8| b.is_ascii_digit() || (b'A'..=b'F').contains(&b);
                let (Some(&high), Some(&low)) = (path.get(i + 1), path.get(i + 2)) else {
                    return false;
                };
                if !upper_hex(high) || !upper_hex(low) {
                    return false;
                }
                let value = hex_value(high).unwrap_or(0) * 16 + hex_value(low).unwrap_or(0);
                if is_unreserved(value) {
                    return false;
                }
                i += 2;
            }
            _ => {}
        }
        i += 1;
    }
    !dot(&path[start..])
}

fn has_dot_segment(path: &str) -> bool {
    path.split('/')
        .any(|segment| segment == "." || segment == "..")
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes `%XX` where it encodes an unreserved character and upper-cases the hex digits of
/// every other valid encoding; a `%` not followed by two hex digits is encoded (`%25`).
fn decode_unreserved(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let pair = (b == b'%')
            .then(|| {
                Some((
                    hex_value(*bytes.get(i + 1)?)?,
                    hex_value(*bytes.get(i + 2)?)?,
                ))
            })
            .flatten();
        match pair {
            Some((high, low)) => {
                let value = high * 16 + low;
                if is_unreserved(value) {
                    out.push(char::from(value));
                } else {
                    out.push('%');
                    out.push(char::from(bytes[i + 1].to_ascii_uppercase()));
                    out.push(char::from(bytes[i + 2].to_ascii_uppercase()));
                }
                i += 3;
            }
            None if b == b'%' => {
                // Not an encoding: a `%` of its own, encoded, so that what follows it can never
                // be read as an encoding on a second pass (`%%61` would otherwise become
                // `%a` and then `%AA`).
                out.push_str("%25");
                i += 1;
            }
            None => {
                // Copy up to the next `%` in one piece: `i` is at a character boundary (the
                // start, or just past an ASCII `%` sequence), and so is the next `%`.
                let next = raw[i..].find('%').map_or(raw.len(), |p| p + i);
                out.push_str(&raw[i..next]);
                i = next;
            }
        }
    }
    out
}

/// RFC 3986 §5.2.4, "Remove Dot Segments".
pub(crate) fn remove_dot_segments(path: &str) -> String {
    let mut output: Vec<&str> = Vec::new();
    let mut input = path;
    while !input.is_empty() {
        if let Some(rest) = input.strip_prefix("../") {
            input = rest;
        } else if let Some(rest) = input.strip_prefix("./") {
            input = rest;
        } else if input.starts_with("/./") {
            input = &input[2..];
        } else if input == "/." {
            input = "/";
        } else if input.starts_with("/../") {
            input = &input[3..];
            output.pop();
        } else if input == "/.." {
            input = "/";
            output.pop();
        } else if input == "." || input == ".." {
            input = "";
        } else {
            let start = usize::from(input.starts_with('/'));
            let end = input[start..].find('/').map_or(input.len(), |i| i + start);
            output.push(&input[..end]);
            input = &input[end..];
        }
    }
    let joined = output.concat();
    if joined.is_empty() && path.starts_with('/') {
        "/".to_owned()
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authority(raw: &str, scheme: Option<&str>) -> Result<String, BypassReason> {
        normalize_authority(raw, scheme).map(Cow::into_owned)
    }

    #[test]
    fn authorities_in_normal_form() {
        let http = Some("http");
        let https = Some("https");
        assert_eq!(authority("shop.example", None).unwrap(), "shop.example");
        assert_eq!(authority("SHOP.Example", None).unwrap(), "shop.example");
        assert_eq!(authority("shop.example.", None).unwrap(), "shop.example");
        assert_eq!(authority("shop.example:80", http).unwrap(), "shop.example");
        assert_eq!(
            authority("shop.example:443", https).unwrap(),
            "shop.example"
        );
        assert_eq!(
            authority("shop.example:443", http).unwrap(),
            "shop.example:443"
        );
        assert_eq!(
            authority("shop.example:80", https).unwrap(),
            "shop.example:80"
        );
        assert_eq!(authority("shop.example:80", None).unwrap(), "shop.example");
        assert_eq!(authority("shop.example:443", None).unwrap(), "shop.example");
        assert_eq!(authority("shop.example:", None).unwrap(), "shop.example");
        assert_eq!(
            authority("shop.example.:080", None).unwrap(),
            "shop.example"
        );
        assert_eq!(
            authority("shop.example:08080", None).unwrap(),
            "shop.example:8080"
        );
        assert_eq!(authority("[::1]:80", http).unwrap(), "[::1]");
        assert_eq!(authority("[::AB]:8080", None).unwrap(), "[::ab]:8080");
        assert!(matches!(
            normalize_authority("shop.example:8080", None),
            Ok(Cow::Borrowed(_))
        ));
    }

    #[test]
    fn odd_authorities_are_refused() {
        for raw in [
            "",
            ".",
            "user@host",
            "sh%6Fp.example",
            "a b",
            "a/b",
            "[::1",
            "[::1]x",
            "[]",
            "[::g]",
            "host:99999",
            "host:123456",
            "host:8o",
            "a:b:c",
        ] {
            assert_eq!(
                authority(raw, None),
                Err(BypassReason::InvalidHost),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn paths_in_normal_form() {
        let path = |raw| normalize_path(raw).into_owned();
        assert_eq!(path(""), "/");
        assert_eq!(path("/items/%31"), "/items/1");
        assert_eq!(path("/%7Euser/%7e"), "/~user/~");
        assert_eq!(path("/a%2fb"), "/a%2Fb");
        assert_eq!(path("/a%2Fb"), "/a%2Fb");
        assert_eq!(path("/caf%c3%a9"), "/caf%C3%A9");
        assert_eq!(path("/a/./b/../c"), "/a/c");
        assert_eq!(path("/a/%2E%2E/c"), "/c");
        assert_eq!(path("/../../x"), "/x");
        assert_eq!(path("/a/.."), "/");
        assert_eq!(path("/a/."), "/a/");
        assert_eq!(path("/%zz/%4"), "/%25zz/%254");
        assert_eq!(path("/%%61A"), "/%25aA");
        assert_eq!(path("/a//b"), "/a//b", "empty segments are meaningful");
        assert_eq!(path("/a.b/..c/c.."), "/a.b/..c/c..");
        assert!(matches!(normalize_path("/products/1"), Cow::Borrowed(_)));
    }

    #[test]
    fn dot_segments_by_the_rfc() {
        // RFC 3986 §5.2.4's own examples.
        assert_eq!(remove_dot_segments("/a/b/c/./../../g"), "/a/g");
        assert_eq!(remove_dot_segments("mid/content=5/../6"), "mid/6");
    }
}
