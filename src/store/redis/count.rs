//! The count of live entries in Redis, as last heard, for [`StoreMetrics`](crate::StoreMetrics)
//! (which must not wait for Redis).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Not counted yet.
const UNKNOWN: u64 = u64::MAX;

/// How often a read may also ask for the count.
const REFRESH: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub(super) struct EntryCount {
    value: AtomicU64,
    /// Nanoseconds after `epoch` of the last refresh by a read, plus one; 0: never.
    refreshed: AtomicU64,
    epoch: Instant,
}

impl EntryCount {
    pub(crate) fn new() -> Self {
        EntryCount {
            value: AtomicU64::new(UNKNOWN),
            refreshed: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// The count last heard, if any.
    pub(crate) fn get(&self) -> Option<u64> {
        Some(self.value.load(Relaxed)).filter(|&n| n != UNKNOWN)
    }

    /// Remembers a count Redis returned (negative: none).
    pub(crate) fn set(&self, count: i64) {
        if let Ok(count) = u64::try_from(count) {
            self.value.store(count.min(UNKNOWN - 1), Relaxed);
        }
    }

    /// Whether a read should ask for the count too (at most once per [`REFRESH`]); `true`
    /// claims the refresh.
    pub(crate) fn refresh_due(&self) -> bool {
        let now = u64::try_from(self.epoch.elapsed().as_nanos())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1);
        let last = self.refreshed.load(Relaxed);
        let period = REFRESH.as_nanos() as u64;
        (last == 0 || now.saturating_sub(last) >= period)
            && self
                .refreshed
                .compare_exchange(last, now, Relaxed, Relaxed)
                .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_until_set_and_refreshed_at_most_once_a_period() {
        let count = EntryCount::new();
        assert_eq!(count.get(), None);
        count.set(-1);
        assert_eq!(count.get(), None);
        count.set(7);
        assert_eq!(count.get(), Some(7));
        assert!(count.refresh_due());
        assert!(!count.refresh_due(), "claimed for a second");
    }
}
