//! `Vary` (RFC 9111 §4.1): which request fields select among a URI's stored responses.

use http::header::{HeaderMap, HeaderName, VARY};

/// What a response's `Vary` header asks of the cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Vary {
    /// No `Vary`: one response serves every request for the key.
    None,
    /// The response is selected by these request fields (lowercase, deduplicated, sorted).
    Fields(Vec<HeaderName>),
    /// `Vary: *` never matches: not stored.
    Star,
    /// A listed name is not a valid field name, or the header is not ASCII: not stored.
    Malformed,
}

impl Vary {
    pub(crate) fn parse(headers: &HeaderMap) -> Vary {
        let mut names = Vec::new();
        for line in headers.get_all(VARY) {
            let Ok(line) = line.to_str() else {
                return Vary::Malformed;
            };
            for item in line.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                if item == "*" {
                    return Vary::Star;
                }
                match HeaderName::from_bytes(item.as_bytes()) {
                    Ok(name) => names.push(name),
                    Err(_) => return Vary::Malformed,
                }
            }
        }
        if names.is_empty() {
            return Vary::None;
        }
        names.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
        names.dedup();
        Vary::Fields(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn vary(lines: &[&[u8]]) -> Vary {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append(VARY, HeaderValue::from_bytes(l).unwrap());
        }
        Vary::parse(&h)
    }

    #[test]
    fn parses_and_normalises() {
        assert_eq!(vary(&[]), Vary::None);
        assert_eq!(vary(&[b" , "]), Vary::None);
        let Vary::Fields(names) = vary(&[b"Accept-Encoding, accept-language", b"ACCEPT-ENCODING"])
        else {
            panic!("fields expected")
        };
        assert_eq!(names, vec!["accept-encoding", "accept-language"]);
        assert_eq!(vary(&[b"accept, *"]), Vary::Star);
        assert_eq!(vary(&[b"bad header"]), Vary::Malformed);
        assert_eq!(vary(&[b"caf\xe9"]), Vary::Malformed);
    }
}
