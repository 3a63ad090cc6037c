//! The shared tier's figures as last heard: the live entries in Redis and the bytes of their
//! values, for [`StoreMetrics`](crate::StoreMetrics) (which must not wait for Redis).
//!
//! Both come from the same script answer (a write's, or a read's refresh at most once a
//! second), stored one after the other: a reader may see one answer's count with the next
//! one's bytes, never a figure no answer gave.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Not counted yet.
const UNKNOWN: u64 = u64::MAX;

/// How often a read may also ask for the figures.
const REFRESH: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub(super) struct SharedCount {
    entries: AtomicU64,
    bytes: AtomicU64,
    /// The number of the last operation that asked for the figures ([`begin`](Self::begin)),
    /// and of the one whose answer was kept: an answer older than one kept is dropped (a read's
    /// refresh runs beside the read and may come back after a later write's answer).
    asked: AtomicU64,
    kept: AtomicU64,
    /// Nanoseconds after `epoch` of the last refresh by a read, plus one; 0: never.
    refreshed: AtomicU64,
    epoch: Instant,
}

impl SharedCount {
    pub(crate) fn new() -> Self {
        SharedCount {
            entries: AtomicU64::new(UNKNOWN),
            bytes: AtomicU64::new(UNKNOWN),
            asked: AtomicU64::new(0),
            kept: AtomicU64::new(0),
            refreshed: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// The count of live entries last heard, if any.
    pub(crate) fn entries(&self) -> Option<u64> {
        known(&self.entries)
    }

    /// The bytes of their values last heard, if any.
    pub(crate) fn bytes(&self) -> Option<u64> {
        known(&self.bytes)
    }

    /// The number of an operation about to ask for the figures, for [`set`](Self::set).
    pub(crate) fn begin(&self) -> u64 {
        self.asked.fetch_add(1, Relaxed) + 1
    }

    /// Remembers the figures operation `seq` was answered (negative: none, as from a refused
    /// put), unless an operation begun after it was answered first.
    pub(crate) fn set(&self, seq: u64, entries: i64, bytes: i64) {
        if let (Ok(entries), Ok(bytes)) = (u64::try_from(entries), u64::try_from(bytes)) {
            if self.kept.fetch_max(seq, Relaxed) > seq {
                return;
            }
            self.entries.store(entries.min(UNKNOWN - 1), Relaxed);
            self.bytes.store(bytes.min(UNKNOWN - 1), Relaxed);
        }
    }

    /// Whether a read should ask for the figures too (at most once per [`REFRESH`]); `true`
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

fn known(figure: &AtomicU64) -> Option<u64> {
    Some(figure.load(Relaxed)).filter(|&n| n != UNKNOWN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_until_set_and_refreshed_at_most_once_a_period() {
        let count = SharedCount::new();
        assert_eq!((count.entries(), count.bytes()), (None, None));
        count.set(count.begin(), -1, -1);
        assert_eq!((count.entries(), count.bytes()), (None, None));
        let (older, newer) = (count.begin(), count.begin());
        count.set(newer, 7, 700);
        count.set(older, 1, 100);
        assert_eq!((count.entries(), count.bytes()), (Some(7), Some(700)));
        count.set(count.begin(), -1, -1);
        assert_eq!(count.bytes(), Some(700), "a refused put says nothing");
        assert!(count.refresh_due());
        assert!(!count.refresh_due(), "claimed for a second");
    }
}
