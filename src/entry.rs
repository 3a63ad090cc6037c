//! The stored response: what a [`Store`](crate::Store) keeps under a [`StoreKey`](crate::StoreKey).

use bytes::Bytes;
use http::{HeaderMap, HeaderName, StatusCode};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One stored object: a response, or the list of request fields a URI's responses vary on.
///
/// Entries are immutable and shared (`Arc<Entry>`): a hit clones the header map and shares the
/// body `Bytes`, it never copies the body. Stores treat entries as opaque except for
/// [`tags`](Entry::tags) (for tag indexes) and [`weight`](Entry::weight) (for capacity).
#[derive(Clone, Debug)]
pub struct Entry {
    /// The full cache key, checked on every hit.
    key: Bytes,
    /// Unix milliseconds at which the entry was stored.
    stored_at_ms: u64,
    /// Unix milliseconds after which it is no longer fresh.
    fresh_until_ms: u64,
    /// The response's age in seconds when it was stored (RFC 9111 §4.2.3).
    initial_age: u64,
    tags: Box<[Box<str>]>,
    kind: Kind,
}

// Entries always live behind an `Arc`; boxing the response would add a pointer chase to every hit.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub(crate) enum Kind {
    Response(StoredResponse),
    /// Responses for this key vary on these request fields; each variant is stored under its own
    /// key (the base key plus the fields' values).
    Variants(Box<[HeaderName]>),
}

/// A response as stored: hop-by-hop fields removed, `Content-Length` exact.
#[derive(Clone, Debug)]
pub(crate) struct StoredResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub trailers: Option<HeaderMap>,
    /// The origin marked it shareable with requests carrying `Authorization` (`public`,
    /// `s-maxage` or `must-revalidate`, RFC 9111 §3.5).
    pub shared_with_credentials: bool,
}

impl Entry {
    pub(crate) fn response(
        key: Bytes,
        response: StoredResponse,
        now: SystemTime,
        fresh_for: Duration,
        initial_age: u64,
    ) -> Self {
        let stored_at_ms = unix_ms(now);
        Entry {
            key,
            stored_at_ms,
            fresh_until_ms: stored_at_ms.saturating_add(fresh_for.as_millis() as u64),
            initial_age,
            tags: Box::default(),
            kind: Kind::Response(response),
        }
    }

    pub(crate) fn variants(
        key: Bytes,
        names: Vec<HeaderName>,
        now: SystemTime,
        fresh_for: Duration,
    ) -> Self {
        let stored_at_ms = unix_ms(now);
        Entry {
            key,
            stored_at_ms,
            fresh_until_ms: stored_at_ms.saturating_add(fresh_for.as_millis() as u64),
            initial_age: 0,
            tags: Box::default(),
            kind: Kind::Variants(names.into_boxed_slice()),
        }
    }

    /// This entry carrying `tags` (for stores' tag indexes and tag invalidation).
    pub fn with_tags<I, T>(mut self, tags: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<Box<str>>,
    {
        self.tags = tags.into_iter().map(Into::into).collect();
        self
    }

    /// The full cache key this entry answers.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The tags the entry carries.
    pub fn tags(&self) -> impl ExactSizeIterator<Item = &str> {
        self.tags.iter().map(|t| &**t)
    }

    /// The status, for a response entry (`None` for a variants list).
    pub fn status(&self) -> Option<StatusCode> {
        match &self.kind {
            Kind::Response(r) => Some(r.status),
            Kind::Variants(_) => None,
        }
    }

    /// The body, for a response entry.
    pub fn body(&self) -> Option<&Bytes> {
        match &self.kind {
            Kind::Response(r) => Some(&r.body),
            Kind::Variants(_) => None,
        }
    }

    pub(crate) fn kind(&self) -> &Kind {
        &self.kind
    }

    /// When the entry was stored.
    pub fn stored_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.stored_at_ms)
    }

    /// When the entry stops being fresh.
    pub fn fresh_until(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.fresh_until_ms)
    }

    /// Whether the entry is fresh at `now`.
    pub fn is_fresh(&self, now: SystemTime) -> bool {
        unix_ms(now) < self.fresh_until_ms
    }

    /// The `Age` of the response at `now`, in seconds: its age when stored plus the time since.
    pub fn age(&self, now: SystemTime) -> u64 {
        let resident_ms = unix_ms(now).saturating_sub(self.stored_at_ms);
        self.initial_age.saturating_add(resident_ms / 1000)
    }

    /// About how many bytes the entry occupies: key, headers, body, trailers and bookkeeping.
    pub fn weight(&self) -> usize {
        const OVERHEAD: usize = 160;
        let fields = |h: &HeaderMap| {
            h.iter()
                .map(|(k, v)| k.as_str().len() + v.len() + 32)
                .sum::<usize>()
        };
        let tags: usize = self.tags.iter().map(|t| t.len() + 16).sum();
        let kind = match &self.kind {
            Kind::Response(r) => {
                r.body.len() + fields(&r.headers) + r.trailers.as_ref().map_or(0, fields)
            }
            Kind::Variants(names) => names.iter().map(|n| n.as_str().len() + 24).sum(),
        };
        OVERHEAD + self.key.len() + tags + kind
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis().min(u64::MAX as u128) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(fresh_for: Duration, initial_age: u64) -> Entry {
        Entry::response(
            Bytes::from_static(b"k"),
            StoredResponse {
                status: StatusCode::OK,
                headers: HeaderMap::new(),
                body: Bytes::from(vec![0u8; 1000]),
                trailers: None,
                shared_with_credentials: false,
            },
            SystemTime::now(),
            fresh_for,
            initial_age,
        )
    }

    #[test]
    fn freshness_and_age() {
        let now = SystemTime::now();
        let e = entry(Duration::from_secs(10), 5);
        assert!(e.is_fresh(now));
        assert!(!e.is_fresh(now + Duration::from_secs(11)));
        assert_eq!(e.age(now + Duration::from_millis(3_500)), 8);
        // A clock that went backwards does not make a negative age.
        assert_eq!(e.age(now - Duration::from_secs(60)), 5);
    }

    #[test]
    fn weight_counts_the_body() {
        let e = entry(Duration::from_secs(1), 0).with_tags(["a", "bb"]);
        assert!(e.weight() >= 1000);
        assert_eq!(e.tags().collect::<Vec<_>>(), ["a", "bb"]);
    }
}
