//! One pass over a request's header names for everything `prepare` asks of its fields: the
//! `Host`, the fields that say the request has a body or credentials, and the unkeyed inputs
//! ([`Unkeyed`]).
//!
//! Each `HeaderMap` lookup by name hashes the name and probes the map (some 80-100
//! instructions); a request that may use the cache used to make five of them (`Host`,
//! `Transfer-Encoding`, `Content-Length`, `Authorization`, `Cookie`) besides its pass over the
//! names for the unkeyed inputs. That pass now tells which are present, and only those are
//! looked up (on the common request, only `Host`, and that one mostly without hashing: see
//! [`Fields::host`]).
//!
//! The pass is over the names (`HeaderMap::keys`), not every line (`HeaderMap::iter`, which
//! would give the values too): walking every line costs some 35 instructions more a field,
//! more than the lookups spared on a request of a dozen fields.

use http::{HeaderMap, HeaderValue, header};

use super::Unkeyed;
use crate::BypassReason;

/// What one pass over a request's header names found; the fields asked for are looked up
/// when present.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fields<'a> {
    headers: &'a HeaderMap,
    /// The forwarding, method-override, conditional and directive fields.
    pub unkeyed: Unkeyed,
    /// A `Host` field is present.
    host: bool,
    /// An `Authorization` field is present.
    pub authorization: bool,
    /// A `Cookie` field is present.
    pub cookie: bool,
    /// A `Transfer-Encoding` field is present.
    pub transfer_encoding: bool,
    /// A `Content-Length` field is present.
    content_length: bool,
}

impl<'a> Fields<'a> {
    /// One pass over the names, most dismissed by their first byte.
    pub(crate) fn scan(headers: &'a HeaderMap) -> Self {
        let mut found = Fields {
            headers,
            unkeyed: Unkeyed::default(),
            host: false,
            authorization: false,
            cookie: false,
            transfer_encoding: false,
            content_length: false,
        };
        for name in headers.keys() {
            let name = name.as_str();
            match name.as_bytes().first() {
                Some(b'h') if name == "host" => found.host = true,
                Some(b'a') if name == "authorization" => found.authorization = true,
                Some(b'c') if name == "cookie" => found.cookie = true,
                Some(b'c') if name == "content-length" => found.content_length = true,
                Some(b't') if name == "transfer-encoding" => found.transfer_encoding = true,
                _ => found.unkeyed.note(name),
            }
        }
        found
    }

    /// The single `Host` field as text, if any (as `Target::of` reads it): several, or one
    /// that is not text, is refused.
    pub(crate) fn host(&self) -> Result<Option<&'a str>, BypassReason> {
        if !self.host {
            return Ok(None);
        }
        // HTTP/1.1 clients send `Host` first, and a map keeps its first name first, then that
        // name's other lines: there, the lines are found without hashing the name.
        let mut lines = self.headers.iter();
        let host = match lines.next() {
            Some((name, value)) if name == header::HOST => match lines.next() {
                Some((next, _)) if next == header::HOST => None,
                _ => Some(value),
            },
            _ => {
                let mut hosts = self.headers.get_all(header::HOST).iter();
                match (hosts.next(), hosts.next()) {
                    (Some(host), None) => Some(host),
                    _ => None,
                }
            }
        };
        let host = host.ok_or(BypassReason::InvalidHost)?;
        host.to_str()
            .map(Some)
            .map_err(|_| BypassReason::InvalidHost)
    }

    /// The first `Content-Length` field (what `HeaderMap::get` gives).
    pub(crate) fn content_length(&self) -> Option<&'a HeaderValue> {
        if !self.content_length {
            return None;
        }
        self.headers.get(header::CONTENT_LENGTH)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pass tells what the lookups by name it replaces would.
    #[test]
    fn one_pass_tells_what_lookups_would() {
        let cases: &[&[(&str, &str)]] = &[
            &[],
            &[("host", "a.example")],
            &[("host", "a.example"), ("Host", "b.example")],
            &[
                ("host", "a.example"),
                ("accept", "*/*"),
                ("host", "b.example"),
            ],
            &[("accept", "*/*"), ("host", "a.example")],
            &[
                ("accept", "*/*"),
                ("host", "a.example"),
                ("host", "a.example"),
            ],
            &[("host", "caf\u{e9}")],
            &[
                ("accept", "*/*"),
                ("authorization", "Bearer x"),
                ("cookie", "a=1"),
                ("cookie", "b=2"),
                ("content-length", "0"),
                ("content-length", "5"),
                ("transfer-encoding", "chunked"),
                ("cache-control", "no-cache"),
                ("x-forwarded-host", "evil.example"),
                ("if-none-match", "\"a\""),
                ("x-http-method-override", "DELETE"),
                ("host", "a.example"),
            ],
            &[
                ("content-type", "text/plain"),
                ("te", "trailers"),
                ("age", "1"),
            ],
        ];
        for fields in cases {
            let mut headers = HeaderMap::new();
            for (name, value) in *fields {
                let value = HeaderValue::from_bytes(value.as_bytes()).unwrap();
                headers.append(
                    http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    value,
                );
            }
            let found = Fields::scan(&headers);
            let mut hosts = headers.get_all(header::HOST).iter();
            let host = match (hosts.next(), hosts.next()) {
                (None, _) => Ok(None),
                (Some(host), None) => host.to_str().map(Some).map_err(|_| ()),
                (Some(_), Some(_)) => Err(()),
            };
            assert_eq!(found.host().map_err(|_| ()), host, "{fields:?}");
            assert_eq!(
                found.authorization,
                headers.contains_key(header::AUTHORIZATION)
            );
            assert_eq!(found.cookie, headers.contains_key(header::COOKIE));
            assert_eq!(
                found.transfer_encoding,
                headers.contains_key(header::TRANSFER_ENCODING)
            );
            assert_eq!(found.content_length(), headers.get(header::CONTENT_LENGTH));
            assert_eq!(found.unkeyed, Unkeyed::scan(&headers));
        }
    }
}
