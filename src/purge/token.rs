//! The bearer token that authorizes purges, compared in constant time.

use http::HeaderMap;
use http::header::AUTHORIZATION;
use std::fmt;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// A purge token that could not be used: empty, or not visible ASCII.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidToken;

impl fmt::Display for InvalidToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a purge token must be 1 or more visible ASCII characters")
    }
}

impl std::error::Error for InvalidToken {}

/// The secret a purge or an admin read must carry (`Authorization: Bearer <token>`), for
/// [`AdminService`](crate::AdminService) and
/// [`CacheLayer::purge_method`](crate::CacheLayer::purge_method). Checked when made, compared
/// in constant time, and never printed (`Debug` shows `PurgeToken(..)`). Cloning is cheap.
///
/// ```
/// use tower_response_cache::PurgeToken;
///
/// let token = PurgeToken::new("a-long-random-secret")?;
/// assert!(PurgeToken::new("has a space").is_err());
/// # let _ = token;
/// # Ok::<(), tower_response_cache::InvalidToken>(())
/// ```
#[derive(Clone)]
pub struct PurgeToken(Arc<[u8]>);

impl fmt::Debug for PurgeToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PurgeToken(..)")
    }
}

impl PurgeToken {
    /// A token of 1 or more visible ASCII characters (what a `Bearer` credential may carry).
    pub fn new(token: &str) -> Result<Self, InvalidToken> {
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(InvalidToken);
        }
        Ok(PurgeToken(token.as_bytes().into()))
    }

    /// Whether `headers` carry `Authorization: Bearer <this token>`. The time taken says
    /// nothing about how much of a guess was right (at most whether its length was).
    pub(crate) fn authorizes(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers.get(AUTHORIZATION) else {
            return false;
        };
        let value = value.as_bytes();
        if value.len() < 7 || !value[..7].eq_ignore_ascii_case(b"bearer ") {
            return false;
        }
        value[7..].trim_ascii().ct_eq(&self.0).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn tokens() {
        let token = PurgeToken::new("s3cret").unwrap();
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(AUTHORIZATION, HeaderValue::from_static(v));
            h
        };
        assert!(token.authorizes(&with("Bearer s3cret")));
        assert!(token.authorizes(&with("bearer  s3cret ")));
        for bad in [
            "Bearer s3cre",
            "Bearer s3cret2",
            "Bearer",
            "Basic s3cret",
            "s3cret",
            "Bearer ",
        ] {
            assert!(!token.authorizes(&with(bad)), "{bad}");
        }
        assert!(!token.authorizes(&HeaderMap::new()));
        assert_eq!(PurgeToken::new("").unwrap_err(), InvalidToken);
        assert_eq!(PurgeToken::new("has space").unwrap_err(), InvalidToken);
        assert_eq!(format!("{token:?}"), "PurgeToken(..)");
    }
}
