//! A set of HTTP status codes, as a bitset (one lookup, no allocation).

use http::StatusCode;
use std::fmt;

/// A set of status codes (100-999).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct StatusSet([u64; 16]);

impl StatusSet {
    /// The statuses a shared cache may store by default (RFC 9110 §15.1 "heuristically
    /// cacheable"): 200, 203, 204, 300, 301, 308, 404, 405, 410, 414 and 501.
    pub const DEFAULT: StatusSet =
        StatusSet::from_codes(&[200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501]);

    /// The empty set.
    pub const fn empty() -> Self {
        StatusSet([0; 16])
    }

    /// A set of the given codes; codes outside 100-999 are ignored.
    pub const fn from_codes(codes: &[u16]) -> Self {
        let mut bits = [0u64; 16];
        let mut i = 0;
        while i < codes.len() {
            let c = codes[i];
            if c >= 100 && c <= 999 {
                bits[(c / 64) as usize] |= 1 << (c % 64);
            }
            i += 1;
        }
        StatusSet(bits)
    }

    /// This set with `status` added.
    pub fn with(mut self, status: StatusCode) -> Self {
        let c = status.as_u16();
        self.0[(c / 64) as usize] |= 1 << (c % 64);
        self
    }

    /// This set with `status` removed.
    pub fn without(mut self, status: StatusCode) -> Self {
        let c = status.as_u16();
        self.0[(c / 64) as usize] &= !(1 << (c % 64));
        self
    }

    /// Whether `status` is in the set.
    pub fn contains(&self, status: StatusCode) -> bool {
        let c = status.as_u16();
        self.0[(c / 64) as usize] & (1 << (c % 64)) != 0
    }

    /// The codes in the set, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        (100u16..=999).filter(|c| self.0[(c / 64) as usize] & (1 << (c % 64)) != 0)
    }
}

impl Default for StatusSet {
    fn default() -> Self {
        StatusSet::DEFAULT
    }
}

impl fmt::Debug for StatusSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl<I: Into<StatusCode>> FromIterator<I> for StatusSet {
    fn from_iter<T: IntoIterator<Item = I>>(iter: T) -> Self {
        iter.into_iter()
            .fold(StatusSet::empty(), |set, s| set.with(s.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_set() {
        let codes: Vec<u16> = StatusSet::DEFAULT.iter().collect();
        assert_eq!(
            codes,
            [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501]
        );
        assert!(!StatusSet::DEFAULT.contains(StatusCode::INTERNAL_SERVER_ERROR));
        let s = StatusSet::DEFAULT
            .with(StatusCode::FOUND)
            .without(StatusCode::NOT_FOUND);
        assert!(s.contains(StatusCode::FOUND) && !s.contains(StatusCode::NOT_FOUND));
        let s: StatusSet = [StatusCode::OK, StatusCode::from_u16(999).unwrap()]
            .into_iter()
            .collect();
        assert_eq!(s.iter().collect::<Vec<_>>(), [200, 999]);
    }
}
