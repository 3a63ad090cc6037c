//! Targeted cache control (RFC 9213): a field such as `CDN-Cache-Control` that speaks to this
//! cache alone and, when present and valid, takes the place of `Cache-Control` for it.
//!
//! A targeted field is a Structured Field Dictionary (RFC 8941 §3.2). The check below is
//! written by hand: it only has to say whether the field is a valid dictionary of the kinds
//! of members cache directives use (the well-kept `sfv` crate would parse all of RFC 8941 into
//! owned values, for a yes or no); the directives themselves are read by the `Cache-Control`
//! parser, whose syntax a valid dictionary of such members also follows.

use http::header::{HeaderMap, HeaderName};

use super::CacheControl;

/// The directives this cache follows for a response: its `targeted` field's when the response
/// has one that is valid, else its `Cache-Control`'s (RFC 9213 §2.2); and whether they are the
/// targeted field's (then `Expires` is ignored too).
pub(crate) fn directives(
    headers: &HeaderMap,
    targeted: Option<&HeaderName>,
) -> (CacheControl, bool) {
    if let Some(name) = targeted.filter(|name| headers.contains_key(*name)) {
        let lines: Option<Vec<&str>> = headers
            .get_all(name)
            .iter()
            .map(|line| line.to_str().ok().filter(|line| is_dictionary(line)))
            .collect();
        if let Some(lines) = lines {
            let plain: Vec<String> = lines.iter().map(|line| plain(line)).collect();
            return (CacheControl::parse_text(&plain.join(", ")), true);
        }
    }
    (CacheControl::parse(headers), false)
}

/// A valid dictionary as plain `Cache-Control` syntax: parameters dropped (RFC 9213 §2.1:
/// they are ignored), `key=?1` as `key`, `key=?0` (false) left out.
fn plain(line: &str) -> String {
    let mut members = Vec::new();
    let (mut member, mut in_quotes, mut escaped, mut in_params) =
        (String::new(), false, false, false);
    for c in line.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            ';' if !in_quotes => in_params = true,
            ',' if !in_quotes => {
                members.push(std::mem::take(&mut member));
                in_params = false;
                continue;
            }
            _ => {}
        }
        if !in_params {
            member.push(c);
        }
    }
    members.push(member);
    let members: Vec<String> = members
        .into_iter()
        .map(|m| m.trim().to_owned())
        .filter(|m| !m.ends_with("=?0"))
        .map(|m| m.strip_suffix("=?1").map_or(m.clone(), str::to_owned))
        .collect();
    members.join(", ")
}

/// Whether `line` is a Structured Field Dictionary whose members are bare keys, or keys with
/// an integer, decimal, token, string or boolean value, each with optional parameters.
pub(crate) fn is_dictionary(line: &str) -> bool {
    let mut rest = line.trim_matches(' ').as_bytes();
    if rest.is_empty() {
        return false;
    }
    loop {
        let Some(after) = member(rest) else {
            return false;
        };
        rest = trim_ows(after);
        match rest.split_first() {
            None => return true,
            Some((b',', after)) => {
                rest = trim_ows(after);
                if rest.is_empty() {
                    return false;
                }
            }
            Some(_) => return false,
        }
    }
}

/// `key [ "=" bare-item ] *( ";" key [ "=" bare-item ] )`; what follows it.
fn member(input: &[u8]) -> Option<&[u8]> {
    let mut rest = key(input)?;
    if let Some(after) = rest.strip_prefix(b"=") {
        rest = bare_item(after)?;
    }
    while let Some(after) = rest.strip_prefix(b";") {
        rest = key(after.strip_prefix(b" ").unwrap_or(after))?;
        if let Some(after) = rest.strip_prefix(b"=") {
            rest = bare_item(after)?;
        }
    }
    Some(rest)
}

/// `( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" )`.
fn key(input: &[u8]) -> Option<&[u8]> {
    let (&first, _) = input.split_first()?;
    if !(first.is_ascii_lowercase() || first == b'*') {
        return None;
    }
    let len = input
        .iter()
        .position(|&b| !(b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.*".contains(&b)))
        .unwrap_or(input.len());
    Some(&input[len..])
}

/// An integer or decimal, a string, a token or a boolean.
fn bare_item(input: &[u8]) -> Option<&[u8]> {
    match *input.first()? {
        b'-' | b'0'..=b'9' => number(input),
        b'"' => string(input),
        b'?' => match input.get(1)? {
            b'0' | b'1' => Some(&input[2..]),
            _ => None,
        },
        b if b.is_ascii_alphabetic() || b == b'*' => {
            let len = input
                .iter()
                .position(|&b| !(is_tchar(b) || b == b':' || b == b'/'))
                .unwrap_or(input.len());
            Some(&input[len..])
        }
        _ => None,
    }
}

/// RFC 8941 §3.3.1-2: at most 15 integer digits, or 12 and up to 3 after a point.
fn number(input: &[u8]) -> Option<&[u8]> {
    let digits = input.strip_prefix(b"-").unwrap_or(input);
    let whole = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    let rest = &digits[whole..];
    if let Some(after) = rest.strip_prefix(b".") {
        let fraction = after.iter().take_while(|b| b.is_ascii_digit()).count();
        let valid = (1..=12).contains(&whole) && (1..=3).contains(&fraction);
        return valid.then_some(&after[fraction..]);
    }
    (1..=15).contains(&whole).then_some(rest)
}

/// A quoted string of visible ASCII and spaces, `\` escaping only `"` and `\`.
fn string(input: &[u8]) -> Option<&[u8]> {
    let mut i = 1;
    while let Some(&b) = input.get(i) {
        match b {
            b'"' => return Some(&input[i + 1..]),
            b'\\' => {
                if !matches!(input.get(i + 1), Some(b'"' | b'\\')) {
                    return None;
                }
                i += 2;
            }
            0x20..=0x7e => i += 1,
            _ => return None,
        }
    }
    None
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn trim_ows(input: &[u8]) -> &[u8] {
    let start = input
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(input.len());
    &input[start..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    /// RFC 9213 §2.1: the field is a Dictionary; RFC 8941 §3.2 its syntax.
    #[test]
    fn rfc9213_2_1_valid_dictionaries() {
        for valid in [
            "max-age=60",
            "no-store",
            "max-age=60, stale-while-revalidate=30",
            "private=\"set-cookie\", max-age=0",
            "max-age=60;foo=bar, x=?1, y=1.5, z=*tok/en",
        ] {
            assert!(is_dictionary(valid), "{valid}");
        }
        for invalid in [
            "",
            "Max-Age=60",
            "max-age=60,",
            "max-age=",
            "max-age=60 s-maxage=1",
            "max-age=1234567890123456",
            "x=\"unterminated",
            "x=?2",
            "max-age=60,, no-store",
            "x=(a b)",
        ] {
            assert!(!is_dictionary(invalid), "{invalid}");
        }
    }

    /// RFC 9213 §2.2: a valid targeted field replaces `Cache-Control` for this cache; an
    /// invalid one is ignored.
    #[test]
    fn rfc9213_2_2_targeted_field_takes_precedence() {
        let name = HeaderName::from_static("cdn-cache-control");
        let h = headers(&[
            ("cache-control", "no-store"),
            ("cdn-cache-control", "max-age=600"),
        ]);
        let (cc, targeted) = directives(&h, Some(&name));
        assert!(targeted);
        assert_eq!(cc.max_age, Some(600));
        assert!(!cc.no_store);
        let h = headers(&[
            ("cache-control", "max-age=5"),
            ("cdn-cache-control", "Max-Age=600"),
        ]);
        assert_eq!(directives(&h, Some(&name)).0.max_age, Some(5));
        assert_eq!(directives(&h, None).0.max_age, Some(5));
    }

    /// RFC 9213 §2.1: parameters are ignored; booleans are Structured Field booleans.
    #[test]
    fn rfc9213_2_1_parameters_ignored_and_booleans() {
        assert_eq!(
            plain("max-age=60;foo=bar, no-store;x"),
            "max-age=60, no-store"
        );
        assert_eq!(
            plain("private=\"a;b\";p=1, x=?1, y=?0"),
            "private=\"a;b\", x"
        );
        let name = HeaderName::from_static("cdn-cache-control");
        let h = headers(&[("cdn-cache-control", "max-age=60;foo=bar, private;a=?1")]);
        let (cc, _) = directives(&h, Some(&name));
        assert_eq!(cc.max_age, Some(60));
        assert!(cc.private);
        let h = headers(&[("cdn-cache-control", "no-store=?0, max-age=5")]);
        let (cc, _) = directives(&h, Some(&name));
        assert!(!cc.no_store);
        assert_eq!(cc.max_age, Some(5));
    }
}
