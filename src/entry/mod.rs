//! The stored response: what a [`Store`](crate::Store) keeps under a [`StoreKey`](crate::StoreKey).

mod codec;
mod lifetime;
mod memo;
mod tags;
mod weight;

pub use codec::{DecodeError, FORMAT_VERSION};
pub use lifetime::MAX_LIFETIME;
pub(crate) use lifetime::{
    Lifetime, capped, capped_secs, deadline, millis, scaled, unix_ms, unix_nanos,
};
pub(crate) use weight::block;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, StatusCode};
use std::time::{Duration, SystemTime};

use lifetime::at_unix_ms;
use memo::AnswerMemo;
use tags::Tags;

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
    /// Unix milliseconds at which the fill that produced it asked the origin (not encoded:
    /// only the instance that writes the entry needs it).
    requested_at_ms: u64,
    /// Unix milliseconds after which it is no longer fresh.
    fresh_until_ms: u64,
    /// How long after `fresh_until` it may be served stale while one refresh runs (RFC 5861).
    stale_while_revalidate_ms: u64,
    /// How long after `fresh_until` it may be served stale when the origin fails (RFC 5861).
    stale_if_error_ms: u64,
    /// How long after `fresh_until` it is kept to be revalidated (RFC 9111 §4.3).
    keep_ms: u64,
    /// The response's age in seconds when it was stored (RFC 9111 §4.2.3).
    initial_age: u64,
    tags: Tags,
    kind: Kind,
    /// In a thread's private copy only: the head its hits were last answered with.
    memo: AnswerMemo,
}

// Entries always live behind an `Arc`; boxing the response would add a pointer chase to every hit.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub(crate) enum Kind {
    Response(StoredResponse),
    /// Responses for this key vary on these request fields; each variant is stored under its own
    /// key (the base key plus the fields' values).
    Variants(Box<[HeaderName]>),
    /// Hit-for-pass: the last response for this key could not be shared, so requests go straight
    /// to the origin (no waiting behind each other) until the marker expires.
    Pass,
}

/// Where an entry stands at a given moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Staleness {
    Fresh,
    /// Stale, within the stale-while-revalidate window.
    Revalidate,
    /// Stale, past that window but within the stale-if-error one.
    IfError,
    /// Stale, past both windows but kept to be revalidated: served only after a `304`.
    Kept,
    /// Too old to serve or revalidate.
    Expired,
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
    /// Once stale, never served without a successful revalidation, whatever a policy or a
    /// request's `max-stale` allows; a revalidation that fails gives `504` (RFC 9111
    /// §4.2.4, §5.2.2.2: `must-revalidate`, `proxy-revalidate`, `s-maxage`, `no-cache`).
    pub must_revalidate: bool,
    /// `immutable` (RFC 8246): a request cannot force its revalidation while it is fresh.
    pub immutable: bool,
}

impl Entry {
    fn new(key: Bytes, kind: Kind, now: SystemTime, lifetime: Lifetime, initial_age: u64) -> Self {
        let stored_at_ms = unix_ms(now);
        let lifetime = lifetime.capped();
        Entry {
            key,
            stored_at_ms,
            requested_at_ms: stored_at_ms,
            fresh_until_ms: stored_at_ms
                .saturating_add(millis(lifetime.fresh_for))
                .saturating_sub(millis(lifetime.overdue)),
            stale_while_revalidate_ms: millis(lifetime.stale_while_revalidate),
            stale_if_error_ms: millis(lifetime.stale_if_error),
            keep_ms: millis(lifetime.keep),
            initial_age,
            tags: Tags::default(),
            kind,
            memo: AnswerMemo::default(),
        }
    }

    pub(crate) fn response(
        key: Bytes,
        response: StoredResponse,
        now: SystemTime,
        lifetime: Lifetime,
        initial_age: u64,
    ) -> Self {
        Self::new(key, Kind::Response(response), now, lifetime, initial_age)
    }

    pub(crate) fn variants(
        key: Bytes,
        names: Vec<HeaderName>,
        now: SystemTime,
        lifetime: Lifetime,
    ) -> Self {
        Self::new(
            key,
            Kind::Variants(names.into_boxed_slice()),
            now,
            lifetime,
            0,
        )
    }

    pub(crate) fn pass(key: Bytes, now: SystemTime, ttl: Duration) -> Self {
        Self::new(key, Kind::Pass, now, Lifetime::fresh(ttl), 0)
    }

    /// This entry, produced by a fill that asked the origin at `at`.
    pub(crate) fn requested_at(mut self, at: SystemTime) -> Self {
        self.requested_at_ms = unix_ms(at).min(self.stored_at_ms);
        self
    }

    /// When the fill that produced this entry asked the origin. An invalidation after this
    /// moment covers the entry even though it was stored later: stores shared by several
    /// instances use it so that a slow fill never writes invalidated data back.
    pub fn fill_started_at(&self) -> SystemTime {
        at_unix_ms(self.requested_at_ms)
    }

    /// This entry carrying `tags` (for stores' tag indexes and tag invalidation).
    pub fn with_tags<I, T>(mut self, tags: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        self.tags = Tags::new(tags);
        self
    }

    /// The full cache key this entry answers.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The tags the entry carries.
    pub fn tags(&self) -> impl ExactSizeIterator<Item = &str> {
        self.tags.iter()
    }

    /// The status, for a response entry (`None` for a variants list).
    pub fn status(&self) -> Option<StatusCode> {
        match &self.kind {
            Kind::Response(r) => Some(r.status),
            Kind::Variants(_) | Kind::Pass => None,
        }
    }

    /// The body, for a response entry.
    pub fn body(&self) -> Option<&Bytes> {
        match &self.kind {
            Kind::Response(r) => Some(&r.body),
            Kind::Variants(_) | Kind::Pass => None,
        }
    }

    pub(crate) fn kind(&self) -> &Kind {
        &self.kind
    }

    /// When the entry was stored.
    pub fn stored_at(&self) -> SystemTime {
        at_unix_ms(self.stored_at_ms)
    }

    /// When the entry stops being fresh.
    pub fn fresh_until(&self) -> SystemTime {
        at_unix_ms(self.fresh_until_ms)
    }

    /// Whether the entry is fresh at `now`.
    pub fn is_fresh(&self, now: SystemTime) -> bool {
        unix_ms(now) < self.fresh_until_ms
    }

    /// Fresh, stale but servable (and on what terms), or expired, at `now`.
    pub(crate) fn staleness(&self, now: SystemTime) -> Staleness {
        let now = unix_ms(now);
        if now < self.fresh_until_ms {
            return Staleness::Fresh;
        }
        let stale_for = now - self.fresh_until_ms;
        if stale_for < self.stale_while_revalidate_ms {
            Staleness::Revalidate
        } else if stale_for < self.stale_if_error_ms {
            Staleness::IfError
        } else if stale_for < self.keep_ms {
            Staleness::Kept
        } else {
            Staleness::Expired
        }
    }

    /// Its stale windows after `fresh_until`: served stale while one refresh runs, served
    /// stale when the origin fails, kept to be revalidated.
    pub(crate) fn stale_windows(&self) -> [Duration; 3] {
        [
            self.stale_while_revalidate_ms,
            self.stale_if_error_ms,
            self.keep_ms,
        ]
        .map(Duration::from_millis)
    }

    /// How long it has been stale at `now` (zero while fresh).
    pub(crate) fn stale_for(&self, now: SystemTime) -> Duration {
        Duration::from_millis(unix_ms(now).saturating_sub(self.fresh_until_ms))
    }

    /// How long it stays fresh after `now` (zero once stale).
    pub(crate) fn fresh_for(&self, now: SystemTime) -> Duration {
        Duration::from_millis(self.fresh_until_ms.saturating_sub(unix_ms(now)))
    }

    /// How much longer the entry may be served or revalidated at all after `now`.
    pub fn remaining_lifetime(&self, now: SystemTime) -> Duration {
        let after = self
            .stale_while_revalidate_ms
            .max(self.stale_if_error_ms)
            .max(self.keep_ms);
        let end = self.fresh_until_ms.saturating_add(after);
        Duration::from_millis(end.saturating_sub(unix_ms(now)))
    }

    /// A copy for one thread to answer from (the memory store's hit front): its header fields
    /// and trailers copied ([`semantics::private_copy`](crate::semantics::private_copy)), its
    /// key and body shared.
    pub(crate) fn private_copy(&self) -> Entry {
        let mut copy = self.clone();
        copy.memo = AnswerMemo::enabled();
        if let Kind::Response(stored) = &mut copy.kind {
            stored.headers = crate::semantics::private_copy(&stored.headers);
            if let Some(trailers) = &mut stored.trailers {
                *trailers = crate::semantics::private_copy(trailers);
            }
        }
        copy
    }

    /// The memo of the head its hits were last answered with (a private copy's; others
    /// remember nothing).
    pub(crate) fn memo(&self) -> &AnswerMemo {
        &self.memo
    }

    /// The stored response, for a response entry.
    pub(crate) fn stored(&self) -> Option<&StoredResponse> {
        match &self.kind {
            Kind::Response(r) => Some(r),
            Kind::Variants(_) | Kind::Pass => None,
        }
    }

    /// The share of its fresh lifetime the entry has lived at `now` (0.0 to 1.0 and beyond).
    pub(crate) fn lived(&self, now: SystemTime) -> f64 {
        let lifetime = self.fresh_until_ms.saturating_sub(self.stored_at_ms);
        if lifetime == 0 {
            return 1.0;
        }
        unix_ms(now).saturating_sub(self.stored_at_ms) as f64 / lifetime as f64
    }

    /// The `Age` of the response at `now`, in seconds: its age when stored plus the time since.
    pub fn age(&self, now: SystemTime) -> u64 {
        self.age_at(unix_ms(now))
    }

    /// [`age`](Self::age) at `now_ms` Unix milliseconds.
    pub(crate) fn age_at(&self, now_ms: u64) -> u64 {
        let resident_ms = now_ms.saturating_sub(self.stored_at_ms);
        self.initial_age.saturating_add(resident_ms / 1000)
    }

    /// Its ttl as `Cache-Status` gives it at `now_ms` Unix milliseconds: whole seconds it stays
    /// fresh, or, once stale, minus the whole seconds it has been.
    pub(crate) fn ttl_at(&self, now_ms: u64) -> i64 {
        let fresh = self.fresh_until_ms.saturating_sub(now_ms) / 1000;
        if fresh > 0 {
            i64::try_from(fresh).unwrap_or(i64::MAX)
        } else {
            let stale = now_ms.saturating_sub(self.fresh_until_ms) / 1000;
            -i64::try_from(stale).unwrap_or(i64::MAX)
        }
    }
}

#[cfg(test)]
mod properties;

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
                must_revalidate: false,
                immutable: false,
            },
            SystemTime::now(),
            Lifetime::fresh(fresh_for),
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
    fn stale_windows() {
        let now = SystemTime::now();
        let mut e = entry(Duration::from_secs(10), 0);
        e.stale_while_revalidate_ms = 5_000;
        e.stale_if_error_ms = 20_000;
        e.keep_ms = 40_000;
        let at = |s: u64| e.staleness(now + Duration::from_secs(s));
        assert_eq!(at(0), Staleness::Fresh);
        assert_eq!(at(12), Staleness::Revalidate);
        assert_eq!(at(20), Staleness::IfError);
        assert_eq!(at(31), Staleness::Kept);
        assert_eq!(at(51), Staleness::Expired);
        assert!((e.lived(now + Duration::from_secs(8)) - 0.8).abs() < 0.01);
        let l = Lifetime {
            fresh_for: Duration::from_secs(10),
            stale_while_revalidate: Duration::from_secs(5),
            stale_if_error: Duration::from_secs(20),
            keep: Duration::ZERO,
            overdue: Duration::ZERO,
        };
        assert_eq!(l.storage_ttl(), Duration::from_secs(30));
        assert_eq!(
            l.kept(Duration::from_secs(60)).storage_ttl(),
            Duration::from_secs(70)
        );
    }

    #[test]
    fn weight_counts_the_body() {
        let e = entry(Duration::from_secs(1), 0).with_tags(["a", "bb"]);
        assert!(e.weight() >= 1000);
        assert_eq!(e.tags().collect::<Vec<_>>(), ["a", "bb"]);
    }
}
