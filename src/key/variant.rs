//! The key of one variant of a response that `Vary`s (RFC 9111 §4.1): the base key plus the
//! values of the request fields it varies on, each normalised so that spellings with the
//! same meaning select the same variant.

use http::{HeaderMap, HeaderName};
use std::fmt;
use std::sync::Arc;

use super::{CacheKey, KeySink, KeyWriter, push_field};

/// Normalises the value of one request field that responses vary on, so that values with the
/// same meaning select one variant (e.g. [`token_set`] for `Accept-Encoding`: `br, gzip` and
/// `GZIP,br` are one set). It gets the field's lines combined as one list, each member
/// trimmed, and returns the value the variant is keyed by.
#[derive(Clone)]
pub struct VaryNormalizer(Arc<dyn Fn(&str) -> String + Send + Sync>);

impl VaryNormalizer {
    /// A normaliser from a function of the combined value.
    pub fn new(normalize: impl Fn(&str) -> String + Send + Sync + 'static) -> Self {
        VaryNormalizer(Arc::new(normalize))
    }
}

impl fmt::Debug for VaryNormalizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VaryNormalizer")
    }
}

/// A list of tokens as a set: members lowercased, without whitespace, sorted, each once. Right
/// for `Accept-Encoding`, where order carries no meaning (weights are kept with their token).
pub fn token_set(value: &str) -> String {
    let mut members: Vec<String> = value
        .split(',')
        .map(|m| {
            m.split_ascii_whitespace()
                .collect::<String>()
                .to_ascii_lowercase()
        })
        .filter(|m| !m.is_empty())
        .collect();
    members.sort_unstable();
    members.dedup();
    members.join(",")
}

/// The normalisers a cache applies, by field name (few: a list is faster than a map).
pub(crate) type VaryNormalizers = [(HeaderName, VaryNormalizer)];

impl CacheKey {
    /// The key of one variant of this response: this key plus the values of the request fields
    /// the response `Vary`s on (RFC 9111 §4.1). Names are compared case-insensitively (they
    /// are `HeaderName`s); a field's lines are combined and its members trimmed of whitespace
    /// (empty members dropped, RFC 9110 §5.6.1), then given to its normaliser, if any.
    pub(crate) fn variant(
        &self,
        names: &[HeaderName],
        headers: &HeaderMap,
        normalizers: &VaryNormalizers,
    ) -> CacheKey {
        let base = self.as_bytes();
        let mut full = KeyWriter::with_capacity(base.len() + 64);
        full.put(base);
        push_field(&mut full, b"vary");
        for name in names {
            push_field(&mut full, name.as_str().as_bytes());
            let mut values = headers.get_all(name).iter().peekable();
            if values.peek().is_none() {
                // An absent field differs from an empty one.
                full.put(&[0xff]);
                continue;
            }
            let mut joined = Vec::new();
            let members = values
                .flat_map(|value| value.as_bytes().split(|&b| b == b','))
                .map(<[u8]>::trim_ascii)
                .filter(|member| !member.is_empty());
            for (i, member) in members.enumerate() {
                if i > 0 {
                    joined.push(b',');
                }
                joined.extend_from_slice(member);
            }
            let normalizer = normalizers.iter().find(|(n, _)| n == name);
            match normalizer.map(|(_, f)| (f, std::str::from_utf8(&joined))) {
                Some((f, Ok(text))) => push_field(&mut full, (f.0)(text).as_bytes()),
                _ => push_field(&mut full, &joined),
            }
        }
        CacheKey::new(full)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn variant(lines: &[&str], normalizers: &VaryNormalizers) -> CacheKey {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append("accept-encoding", HeaderValue::from_str(line).unwrap());
        }
        let base = CacheKey::of_bytes(b"base");
        base.variant(
            &[HeaderName::from_static("accept-encoding")],
            &headers,
            normalizers,
        )
    }

    /// RFC 9111 §4.1: values compared after combining lines and removing whitespace the
    /// field's syntax allows.
    #[test]
    fn rfc9111_4_1_values_combined_and_whitespace_normalised() {
        let one = variant(&["gzip, br"], &[]);
        assert_eq!(variant(&["gzip,br"], &[]), one);
        assert_eq!(variant(&["gzip", "br"], &[]), one);
        assert_eq!(variant(&[" gzip ,  br ,"], &[]), one);
        assert_ne!(
            variant(&["br, gzip"], &[]),
            one,
            "order matters without a normaliser"
        );
        assert_ne!(
            variant(&[], &[]),
            variant(&[""], &[]),
            "absent is not empty"
        );
    }

    /// A per-field normaliser: `Accept-Encoding` as a token set.
    #[test]
    fn token_set_normaliser() {
        let set = [(
            HeaderName::from_static("accept-encoding"),
            VaryNormalizer::new(token_set),
        )];
        let one = variant(&["gzip, br"], &set);
        assert_eq!(variant(&["BR,gzip"], &set), one);
        assert_eq!(variant(&["br", "gzip, gzip"], &set), one);
        assert_ne!(variant(&["gzip"], &set), one);
        assert_eq!(token_set("gzip;q=1.0, Br ; q=0.5"), "br;q=0.5,gzip;q=1.0");
    }
}
