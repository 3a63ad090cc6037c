//! A circuit breaker: after a run of failures, stop calling a backend for a while, so that a
//! dead backend costs nothing per request; then let one probe through to see if it is back.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::SeqCst};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug)]
pub(crate) struct Breaker {
    threshold: u32,
    cooldown: Duration,
    failures: AtomicU32,
    /// Unix ms until which the circuit is open; 0 when closed.
    open_until: AtomicU64,
    /// A probe is under way (half-open).
    probing: AtomicBool,
    /// Times the circuit opened.
    pub opened: AtomicU64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Breaker {
            threshold: threshold.max(1),
            cooldown,
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            probing: AtomicBool::new(false),
            opened: AtomicU64::new(0),
        }
    }

    /// Whether a call may go to the backend now.
    pub fn allow(&self) -> bool {
        let until = self.open_until.load(SeqCst);
        if until == 0 {
            return true;
        }
        if now_ms() < until {
            return false;
        }
        // Half-open: one probe at a time.
        self.probing
            .compare_exchange(false, true, SeqCst, SeqCst)
            .is_ok()
    }

    pub fn success(&self) {
        self.failures.store(0, SeqCst);
        self.open_until.store(0, SeqCst);
        self.probing.store(false, SeqCst);
    }

    pub fn failure(&self) {
        let failures = self.failures.fetch_add(1, SeqCst) + 1;
        if failures >= self.threshold || self.probing.load(SeqCst) {
            if self.open_until.load(SeqCst) == 0 {
                self.opened.fetch_add(1, SeqCst);
                tracing::warn!(cooldown = ?self.cooldown, "cache store circuit opened");
            }
            let until = now_ms().saturating_add(crate::entry::millis(self.cooldown));
            self.open_until.store(until, SeqCst);
            self.probing.store(false, SeqCst);
        }
    }

    pub fn is_open(&self) -> bool {
        self.open_until.load(SeqCst) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_failures_and_probes_after_the_cooldown() {
        let b = Breaker::new(3, Duration::from_millis(50));
        for _ in 0..2 {
            assert!(b.allow());
            b.failure();
        }
        assert!(b.allow());
        b.failure();
        assert!(!b.allow(), "open");
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.allow(), "one probe");
        assert!(!b.allow(), "only one");
        b.failure();
        assert!(!b.allow(), "the probe failed: open again");
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.allow());
        b.success();
        assert!(b.allow() && b.allow() && !b.is_open());
        assert_eq!(b.opened.load(SeqCst), 1);
    }
}
