//! How long entries live, and the one cap on every duration the cache derives from its inputs.
//!
//! Durations come from response headers (`max-age`, `Expires`), handlers' overrides, policies
//! and stored values. Any of them may be absurd (`ttl=18446744073709551615`, `Duration::MAX`),
//! and `Duration` and time arithmetic panic on overflow. So every such duration saturates at
//! [`MAX_LIFETIME`] where it enters, and the arithmetic below saturates too: a lifetime is at
//! most one year, an entry is kept at most its fresh lifetime plus its longer stale window.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The longest lifetime, stale window, or wait anything gets: one year (365 days). Longer
/// values, from a policy, an override or the origin's headers, saturate to it.
pub const MAX_LIFETIME: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// The latest time an entry may name, as Unix milliseconds (9999-12-31T23:59:59.999Z): every
/// platform's `SystemTime` holds it.
const MAX_UNIX_MS: u64 = 253_402_300_799_999;

/// `duration`, at most [`MAX_LIFETIME`].
pub(crate) fn capped(duration: Duration) -> Duration {
    duration.min(MAX_LIFETIME)
}

/// `secs` seconds, at most [`MAX_LIFETIME`].
pub(crate) fn capped_secs(secs: u64) -> Duration {
    Duration::from_secs(secs.min(MAX_LIFETIME.as_secs()))
}

/// `duration` times `factor`, at most [`MAX_LIFETIME`]; a factor that is negative or NaN
/// gives zero (`Duration::mul_f64` panics on both, and on overflow).
pub(crate) fn scaled(duration: Duration, factor: f64) -> Duration {
    // `max` turns NaN into 0.
    let secs = capped(duration).as_secs_f64() * factor.max(0.0);
    Duration::try_from_secs_f64(secs).map_or(MAX_LIFETIME, capped)
}

/// `from + after`, with `after` capped (`Instant + Duration` panics on overflow).
pub(crate) fn deadline(from: Instant, after: Duration) -> Instant {
    from.checked_add(capped(after)).unwrap_or(from)
}

/// Whole milliseconds in `duration`, saturating.
pub(crate) fn millis(duration: Duration) -> u64 {
    // As `as_millis`, saturating, without its 128-bit arithmetic (every hit converts a few).
    duration
        .as_secs()
        .saturating_mul(1000)
        .saturating_add(u64::from(duration.subsec_millis()))
}

/// Unix milliseconds of `time`; 0 before 1970.
pub(crate) fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, millis)
}

/// Unix nanoseconds of `time`, saturating (0 before 1970): a fine-grained clock reading for
/// seeds, tokens and ordering.
pub(crate) fn unix_nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The time `ms` Unix milliseconds name, at most the year 9999 (`SystemTime + Duration` panics
/// where the platform's clock cannot hold the sum).
pub(crate) fn at_unix_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.min(MAX_UNIX_MS))
}

/// How long an entry is fresh, how long after that it may still be served stale, and how long
/// after that it is kept to be revalidated. Each part is at most [`MAX_LIFETIME`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Lifetime {
    pub fresh_for: Duration,
    pub stale_while_revalidate: Duration,
    pub stale_if_error: Duration,
    /// How long after `fresh_for` the entry is kept to be revalidated with its validators
    /// (RFC 9111 §4.3; Varnish's "keep"): never served from then on without a `304`.
    pub keep: Duration,
    /// How long it had already been stale when it arrived (its age past its lifetime, §4.2.3):
    /// its staleness counts from then, not from its arrival.
    pub overdue: Duration,
}

impl Lifetime {
    /// A lifetime with these parts, each capped.
    pub(crate) fn new(
        fresh_for: Duration,
        stale_while_revalidate: Duration,
        stale_if_error: Duration,
    ) -> Self {
        Lifetime {
            fresh_for: capped(fresh_for),
            stale_while_revalidate: capped(stale_while_revalidate),
            stale_if_error: capped(stale_if_error),
            keep: Duration::ZERO,
            overdue: Duration::ZERO,
        }
    }

    /// This lifetime, for a response that arrived stale by `overdue` (capped).
    pub(crate) fn arrived_stale_by(mut self, overdue: Duration) -> Self {
        self.overdue = capped(overdue);
        self
    }

    /// This lifetime, kept `keep` (capped) past its freshness to be revalidated.
    pub(crate) fn kept(mut self, keep: Duration) -> Self {
        self.keep = capped(keep);
        self
    }

    /// Fresh for `fresh_for` (capped), never stale.
    pub(crate) fn fresh(fresh_for: Duration) -> Self {
        Self::new(fresh_for, Duration::ZERO, Duration::ZERO)
    }

    /// The same lifetime with every part capped (for values built field by field).
    pub(crate) fn capped(self) -> Self {
        Self::new(
            self.fresh_for,
            self.stale_while_revalidate,
            self.stale_if_error,
        )
        .kept(self.keep)
        .arrived_stale_by(self.overdue)
    }

    /// How long a store must keep the entry: fresh, then as long as it may be served stale or
    /// revalidated (at most twice [`MAX_LIFETIME`]).
    pub(crate) fn storage_ttl(&self) -> Duration {
        let capped = self.capped();
        let after = capped
            .stale_while_revalidate
            .max(capped.stale_if_error)
            .max(capped.keep);
        capped.fresh_for.saturating_add(after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_durations_saturate() {
        let year = MAX_LIFETIME;
        assert_eq!(capped(Duration::MAX), year);
        assert_eq!(capped_secs(u64::MAX), year);
        assert_eq!(capped_secs(60), Duration::from_secs(60));
        assert_eq!(scaled(Duration::MAX, 1.5), year);
        assert_eq!(
            scaled(Duration::from_secs(10), 1.5),
            Duration::from_secs(15)
        );
        for odd in [f64::NAN, -1.0, f64::NEG_INFINITY] {
            assert_eq!(
                scaled(Duration::from_secs(10), odd),
                Duration::ZERO,
                "{odd}"
            );
        }
        assert_eq!(scaled(Duration::from_secs(10), f64::INFINITY), year);
        let now = Instant::now();
        assert_eq!(deadline(now, Duration::MAX), now + year);
        assert_eq!(millis(Duration::MAX), u64::MAX);
        assert_eq!(unix_ms(at_unix_ms(u64::MAX)), MAX_UNIX_MS);
        assert_eq!(unix_ms(UNIX_EPOCH - Duration::from_secs(1)), 0);
        let l = Lifetime {
            fresh_for: Duration::MAX,
            stale_while_revalidate: Duration::MAX,
            stale_if_error: Duration::from_secs(1),
            keep: Duration::MAX,
            overdue: Duration::MAX,
        };
        assert_eq!(l.storage_ttl(), year * 2);
        assert_eq!(
            Lifetime::new(
                Duration::from_secs(10),
                Duration::ZERO,
                Duration::from_secs(20)
            )
            .storage_ttl(),
            Duration::from_secs(30)
        );
    }
}
