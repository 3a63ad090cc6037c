//! What a request is for, in one spelling: its authority and path, normalised the same way for
//! keys and for invalidation tags.
//!
//! # Normal form (RFC 3986 §6.2.2, RFC 9110 §4.2.3)
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
//! # Spelling, and what a spelling may do
//!
//! A request spelled other than in normal form (`/items/%31`, `/a/../items/1`,
//! `Host: SHOP.example:80`) is looked up under the normal form and may be answered from it, but
//! its own response is never stored: the inner service routed the spelling it saw, and that is
//! not always the normal form's route (a static route does not match `/items/%31`; a wildcard
//! route may well match `/files/../admin`). Storing it would let one request write what another
//! spelling's users get.
//!
//! When the request target carries an authority (absolute form, HTTP/2 `:authority`) and a
//! `Host` header too, both must name the same authority; otherwise the request bypasses the
//! cache, since the app may render for either.

use http::{Uri, header, request};
use std::borrow::Cow;

use crate::BypassReason;

/// A request's scheme, authority, path and query as the cache keys and tags them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target<'a> {
    /// The target's scheme, when it names one (absolute form, HTTP/2).
    pub scheme: Option<&'a str>,
    /// The normalised authority; empty when the request names none (HTTP/1.0 without `Host`).
    pub authority: Cow<'a, str>,
    /// The normalised path.
    pub path: Cow<'a, str>,
    /// The query, as sent.
    pub query: Option<&'a str>,
    /// Whether the request spelled its authority and path in normal form.
    pub canonical: bool,
}

impl<'a> Target<'a> {
    /// The target of a request: its original URI (axum's `OriginalUri`, which nested routers
    /// leave whole while they strip their prefix from the URI) and its `Host` header.
    pub fn of(request: &'a request::Parts) -> Result<Self, BypassReason> {
        let uri = original_uri(request);
        let scheme = uri.scheme_str();
        let host = single_host(request)?;
        let (authority, authority_canonical) = match (uri.authority(), host) {
            (Some(target), Some(host)) => {
                let target_raw = target.as_str();
                let from_target = normalize_authority(target_raw, scheme)?;
                let from_host = normalize_authority(host, scheme)?;
                if from_target != from_host {
                    return Err(BypassReason::HostMismatch);
                }
                let canonical = from_target == target_raw && from_host == host;
                (from_target, canonical)
            }
            (Some(target), None) => spelled(normalize_authority(target.as_str(), scheme)?),
            (None, Some(host)) => spelled(normalize_authority(host, scheme)?),
            (None, None) => (Cow::Borrowed(""), true),
        };
        let path = normalize_path(uri.path());
        let canonical = authority_canonical && matches!(path, Cow::Borrowed(_));
        Ok(Target {
            scheme,
            authority,
            path,
            query: uri.query(),
            canonical,
        })
    }

    /// The authority a write changed things under, normalised: the request target's when it
    /// names one (RFC 9112 §3.2.2: a server ignores `Host` then), else the single valid
    /// `Host`; empty when the request names none (as entries stored without one are); `None`
    /// when the `Host` cannot be read (nothing is cached under such a request, and an
    /// unreadable `Host` must not let a client invalidate other hosts' entries).
    pub fn written_authority(request: &request::Parts) -> Option<String> {
        let uri = original_uri(request);
        let raw = match uri.authority() {
            Some(authority) => authority.as_str(),
            None => match single_host(request).ok()? {
                Some(host) => host,
                // No authority at all: the entries stored without one.
                None => return Some(String::new()),
            },
        };
        let authority = normalize_authority(raw, uri.scheme_str()).ok()?;
        Some(authority.into_owned())
    }

    /// The request's URI in normal form: scheme and authority when it names them, the
    /// normalised path, the query as sent (`None` if that cannot be a URI).
    pub fn uri(&self) -> Option<Uri> {
        let path_and_query = match self.query {
            Some(query) => format!("{}?{query}", self.path),
            None => self.path.clone().into_owned(),
        };
        let mut builder = Uri::builder();
        if let Some(scheme) = self.scheme {
            builder = builder.scheme(scheme).authority(&*self.authority);
        }
        builder.path_and_query(path_and_query).build().ok()
    }
}

/// A copy of a request's head whose URI (and axum's `OriginalUri`) is the original URI in
/// normal form, for policies and taggers: they then see what keys and tags see, whatever the
/// spelling and whatever nested router the layer runs in. The copy as it was when the target
/// cannot be read.
pub(crate) fn normalized_head(request: &request::Parts) -> request::Parts {
    let (mut head, ()) = http::Request::new(()).into_parts();
    head.method = request.method.clone();
    head.uri = request.uri.clone();
    head.version = request.version;
    head.headers = request.headers.clone();
    head.extensions = request.extensions.clone();
    if let Some(uri) = Target::of(request).ok().and_then(|t| t.uri()) {
        #[cfg(feature = "axum")]
        if head
            .extensions
            .get::<axum::extract::OriginalUri>()
            .is_some()
        {
            head.extensions
                .insert(axum::extract::OriginalUri(uri.clone()));
        }
        head.uri = uri;
    }
    head
}

fn spelled(normalized: Cow<'_, str>) -> (Cow<'_, str>, bool) {
    let canonical = matches!(normalized, Cow::Borrowed(_));
    (normalized, canonical)
}

/// The URI the request was sent with: axum's `OriginalUri` when a router set it (inside a
/// nested router the request's own URI has lost the nest's prefix), else the request's.
pub(crate) fn original_uri(request: &request::Parts) -> &Uri {
    #[cfg(feature = "axum")]
    if let Some(original) = request.extensions.get::<axum::extract::OriginalUri>() {
        return &original.0;
    }
    &request.uri
}

/// The single `Host` header as text, if any; several, or one that is not text, is refused.
fn single_host(request: &request::Parts) -> Result<Option<&str>, BypassReason> {
    let mut hosts = request.headers.get_all(header::HOST).iter();
    let Some(host) = hosts.next() else {
        return Ok(None);
    };
    if hosts.next().is_some() {
        return Err(BypassReason::InvalidHost);
    }
    host.to_str()
        .map(Some)
        .map_err(|_| BypassReason::InvalidHost)
}

/// The longest host accepted (DNS names are at most 253 bytes; some room for odd set-ups).
const MAX_HOST_LEN: usize = 1024;

/// An authority (`host[:port]`) in normal form (see the module docs), borrowed when it already
/// is. Anything but a reg-name, IPv4 or bracketed IPv6 host with an optional numeric port is
/// refused: nothing a client could use to make two hosts look alike.
pub(crate) fn normalize_authority<'s>(
    raw: &'s str,
    scheme: Option<&str>,
) -> Result<Cow<'s, str>, BypassReason> {
    if is_normal_reg_authority(raw.as_bytes(), scheme) {
        return Ok(Cow::Borrowed(raw));
    }
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
pub(crate) fn normalize_path(raw: &str) -> Cow<'_, str> {
    if raw.is_empty() {
        return Cow::Borrowed("/");
    }
    if is_normal_path(raw.as_bytes()) {
        return Cow::Borrowed(raw);
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

    fn target(req: http::Request<()>) -> Result<Target<'static>, BypassReason> {
        let (parts, ()) = req.into_parts();
        let parts: &'static request::Parts = Box::leak(Box::new(parts));
        Target::of(parts)
    }

    #[test]
    fn a_host_that_disagrees_with_the_target_bypasses() {
        let forged = http::Request::get("http://victim.example/home")
            .header("host", "attacker.example")
            .body(())
            .unwrap();
        assert_eq!(target(forged), Err(BypassReason::HostMismatch));
        let agreeing = http::Request::get("http://victim.example/home")
            .header("host", "VICTIM.example:80")
            .body(())
            .unwrap();
        let agreeing = target(agreeing).unwrap();
        assert_eq!(agreeing.authority, "victim.example");
        assert!(!agreeing.canonical, "the Host is not in normal form");
        let h2 = http::Request::get("https://victim.example/home")
            .body(())
            .unwrap();
        let h2 = target(h2).unwrap();
        assert_eq!(h2.authority, "victim.example");
        assert!(h2.canonical);
    }

    #[test]
    fn a_write_names_the_target_authority_or_the_host_or_nothing() {
        let write = |uri: &str, hosts: &[&str]| {
            let mut request = http::Request::put(uri);
            for host in hosts {
                request = request.header("host", *host);
            }
            Target::written_authority(&request.body(()).unwrap().into_parts().0)
        };
        let some = |a: &str| Some(a.to_owned());
        // RFC 9112 §3.2.2: the target's authority, whatever Host says.
        assert_eq!(
            write("http://Victim.example/x", &["other.example"]),
            some("victim.example")
        );
        assert_eq!(write("/x", &["Shop.Example:80"]), some("shop.example"));
        assert_eq!(write("/x", &["a.example", "b.example"]), None);
        assert_eq!(write("/x", &["a b"]), None);
        assert_eq!(write("/x", &[]), some(""));
    }

    #[test]
    fn normalized_heads_carry_the_normal_uri() {
        let (parts, ()) = http::Request::put("/products/%34%32/./x?q=%41")
            .header("host", "shop.example")
            .body(())
            .unwrap()
            .into_parts();
        assert_eq!(normalized_head(&parts).uri, "/products/42/x?q=%41");
        let (parts, ()) = http::Request::get("HTTP://Shop.Example:80/a/../b")
            .body(())
            .unwrap()
            .into_parts();
        assert_eq!(normalized_head(&parts).uri, "http://shop.example/b");
    }
}
