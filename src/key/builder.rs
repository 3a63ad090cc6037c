//! [`KeyBuilder`]: one request's key, from its target, the forwarding fields it carries, a
//! query's body and what a [`KeyMaker`](super::KeyMaker) adds; in the canonical,
//! length-prefixed form every store and instance shares.

use bytes::Bytes;
use http::{Method, header, request};

use super::full::{KeySink, KeyWriter, push_field};
use super::{CacheKey, Target, Unkeyed, unkeyed};
use crate::BypassReason;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum QueryMode {
    AsSent,
    Sorted,
    Ignored,
}

/// Collects the parts of one request's key; handed to a [`KeyMaker`](super::KeyMaker).
#[derive(Debug)]
pub struct KeyBuilder<'a> {
    // Read by the reference builder of `key::properties`.
    pub(super) request: &'a request::Parts,
    pub(super) extra: Vec<u8>,
    pub(super) query: QueryMode,
    pub(super) dropped_params: Vec<String>,
    pub(super) bypass: bool,
    /// A query's body, and whether it is a gRPC call's.
    body: Option<(QueryBody, bool)>,
}

impl<'a> KeyBuilder<'a> {
    pub(crate) fn new(request: &'a request::Parts) -> Self {
        KeyBuilder {
            request,
            extra: Vec::new(),
            query: QueryMode::AsSent,
            dropped_params: Vec::new(),
            bypass: false,
            body: None,
        }
    }

    /// Keys a query by its body and its `Content-Type`; a gRPC call (`grpc`) also by
    /// `grpc-encoding` and `grpc-accept-encoding`, which choose how its answer is compressed.
    pub(crate) fn query_body(&mut self, body: QueryBody, grpc: bool) {
        self.body = Some((body, grpc));
    }

    /// Adds the values of a request header (all of them, in order; absence is distinct from an
    /// empty value).
    pub fn header<N: AsRef<str>>(&mut self, name: N) -> &mut Self {
        let name = name.as_ref();
        push_field(&mut self.extra, b"h");
        push_field(&mut self.extra, name.to_ascii_lowercase().as_bytes());
        let values = self.request.headers.get_all(name);
        let mut any = false;
        for value in values {
            any = true;
            push_field(&mut self.extra, value.as_bytes());
        }
        if !any {
            self.extra.push(0xff);
        }
        self
    }

    /// Adds the value of one cookie from the `Cookie` header(s) (absence is distinct from empty).
    pub fn cookie(&mut self, name: &str) -> &mut Self {
        push_field(&mut self.extra, b"c");
        push_field(&mut self.extra, name.as_bytes());
        let found = self
            .request
            .headers
            .get_all(header::COOKIE)
            .iter()
            .flat_map(|v| v.as_bytes().split(|b| *b == b';'))
            .find_map(|pair| {
                let pair = pair.trim_ascii();
                let eq = pair.iter().position(|b| *b == b'=')?;
                (pair[..eq].trim_ascii() == name.as_bytes()).then(|| &pair[eq + 1..])
            });
        match found {
            Some(value) => push_field(&mut self.extra, value.trim_ascii()),
            None => self.extra.push(0xff),
        }
        self
    }

    /// Adds a labelled value of your own (a user id, a tenant, a feature flag...).
    pub fn value(&mut self, label: &str, value: impl AsRef<[u8]>) -> &mut Self {
        push_field(&mut self.extra, b"v");
        push_field(&mut self.extra, label.as_bytes());
        push_field(&mut self.extra, value.as_ref());
        self
    }

    /// Sorts the query's parameters, so `?b=2&a=1` and `?a=1&b=2` share an entry.
    pub fn sort_query(&mut self) -> &mut Self {
        if self.query == QueryMode::AsSent {
            self.query = QueryMode::Sorted;
        }
        self
    }

    /// Leaves the query out of the key altogether.
    pub fn ignore_query(&mut self) -> &mut Self {
        self.query = QueryMode::Ignored;
        self
    }

    /// Leaves a query parameter out of the key. The name is compared as sent (not
    /// percent-decoded); a trailing `*` matches any name with that prefix (`utm_*`). A
    /// parameter containing `;` is never dropped (apps that split on `;` would read what
    /// follows it).
    pub fn drop_query_param(&mut self, name: &str) -> &mut Self {
        self.dropped_params.push(name.to_owned());
        self
    }

    /// Declines to cache this request: it goes to the inner service untouched.
    pub fn bypass(&mut self) -> &mut Self {
        self.bypass = true;
        self
    }

    /// The request being keyed.
    pub fn request(&self) -> &request::Parts {
        self.request
    }

    /// Builds the key: the base parts of `target` (the request's, normalised), the query as
    /// configured, the forwarding headers that are present (`unkeyed` says whether any is),
    /// then the extra parts.
    pub(crate) fn finish(
        self,
        target: &Target<'_>,
        unkeyed: Unkeyed,
        max_key_bytes: usize,
    ) -> Result<CacheKey, BypassReason> {
        if self.bypass {
            return Err(BypassReason::KeyMaker);
        }
        let scheme = target.scheme.unwrap_or("");
        let (authority, path) = (&*target.authority, &*target.path);
        let query = target.query.unwrap_or("");
        let capacity = 40 + scheme.len() + authority.len() + path.len() + query.len();
        let body_len = match &self.body {
            Some((QueryBody::Bytes(bytes), _)) => bytes.len() + 160,
            Some((QueryBody::Digest(_), _)) => 160,
            None => 0,
        };
        let capacity = capacity + self.extra.len() + body_len;
        if capacity > max_key_bytes.saturating_add(32) {
            return Err(BypassReason::KeyTooLarge);
        }
        let mut full = KeyWriter::with_capacity(capacity);
        // Key format version, method (a query's: its own class).
        let class = match self.body {
            Some(_) => b'Q',
            None => method_class(&self.request.method),
        };
        full.put(&[2, class]);
        // Schemes are case-insensitive; lowercased as copied.
        full.put(&(scheme.len() as u32).to_le_bytes());
        for b in scheme.bytes() {
            full.put(&[b.to_ascii_lowercase()]);
        }
        push_field(&mut full, authority.as_bytes());
        push_field(&mut full, path.as_bytes());
        match target.query {
            None => full.put(&[0xff]),
            Some(query) => self.push_query(&mut full, query),
        }
        unkeyed::push_present(&self.request.headers, unkeyed, &mut full);
        if let Some((body, grpc)) = &self.body {
            let headers = &self.request.headers;
            push_values(&mut full, headers, http::header::CONTENT_TYPE.as_str());
            if *grpc {
                push_values(&mut full, headers, "grpc-encoding");
                push_values(&mut full, headers, "grpc-accept-encoding");
            }
            match body {
                QueryBody::Bytes(bytes) => {
                    full.put(b"B");
                    push_field(&mut full, bytes);
                }
                QueryBody::Digest(digest) => {
                    full.put(b"D");
                    full.put(digest);
                }
            }
        }
        full.put(&self.extra);
        if full.as_slice().len() > max_key_bytes {
            return Err(BypassReason::KeyTooLarge);
        }
        Ok(CacheKey::new(full))
    }

    fn push_query(&self, full: &mut KeyWriter, query: &str) {
        if self.query == QueryMode::Ignored {
            full.put(&[0xfe]);
            return;
        }
        if self.query == QueryMode::AsSent && self.dropped_params.is_empty() {
            push_field(full, query.as_bytes());
            return;
        }
        let mut params: Vec<&str> = query
            .split('&')
            .filter(|p| !p.is_empty() && !self.is_dropped(p))
            .collect();
        if self.query == QueryMode::Sorted {
            params.sort_unstable();
        }
        let joined = params.join("&");
        push_field(full, joined.as_bytes());
    }

    pub(super) fn is_dropped(&self, param: &str) -> bool {
        if param.contains(';') {
            // Some apps also split the query on `;` (Rack 2, old Python): dropping
            // `utm_x=1;lang=evil` whole would leave `lang` out of the key while the app reads
            // it ("parameter cloaking"). Kept in the key, whatever its name.
            return false;
        }
        let name = param.split('=').next().unwrap_or("");
        self.dropped_params
            .iter()
            .any(|rule| match rule.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => name == rule,
            })
    }
}

/// GET and HEAD share entries; the cache keys nothing else.
pub(super) fn method_class(method: &Method) -> u8 {
    if method == Method::GET || method == Method::HEAD {
        b'G'
    } else {
        b'?'
    }
}

/// What a query's key holds of its body.
#[derive(Debug)]
pub(crate) enum QueryBody {
    /// A short body itself (cheaper than hashing it).
    Bytes(Bytes),
    /// A longer body's SHA-256 (a crafted collision would need a SHA-256 collision; the key's
    /// 128-bit hash picks the entry, its full bytes verify it).
    Digest([u8; 32]),
}

/// Appends how many values a request field has, then each, length-prefixed.
fn push_values(out: &mut impl KeySink, headers: &http::HeaderMap, name: &str) {
    let values = headers.get_all(name);
    // Fields are bounded by the key limit, far below 4 G values.
    out.put(&(values.iter().count() as u32).to_le_bytes());
    for value in values {
        push_field(out, value.as_bytes());
    }
}
