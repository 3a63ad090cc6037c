//! A circuit breaker: after a run of failures, stop calling a backend for a while, so that a
//! dead backend costs nothing per request; then let one probe through to see if it is back.
//!
//! Every call goes through a [`Permit`], which reports how the call ended. A permit dropped
//! without a verdict (its request was cancelled) is no verdict for an ordinary call, and a
//! failure for the half-open probe: otherwise the breaker would wait forever for a probe that
//! will never report. Times are monotonic ([`Instant`]): a wall clock set back cannot keep
//! the circuit open.
//!
//! A call can also end [inconclusive](Permit::inconclusive): it says nothing about the backend
//! (a large value's transfer ran out of time), so it neither closes the circuit nor counts
//! towards opening it; a probe that ends so lets the next call probe instead.
//!
//! It logs each change: `cache store circuit opened` (warn, with the cooldown) and `cache
//! store circuit closed` (info), once each time.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub(crate) struct Breaker {
    threshold: u32,
    cooldown: Duration,
    /// The origin of the times below.
    epoch: Instant,
    failures: AtomicU32,
    /// Nanoseconds after `epoch`, plus one, until which the circuit is open; 0 when closed.
    open_until: AtomicU64,
    /// A probe is under way (half-open).
    probing: AtomicBool,
    /// Times the circuit opened.
    pub opened: AtomicU64,
}

/// The right to make one call; say how it ended with [`success`](Permit::success),
/// [`failure`](Permit::failure) or [`inconclusive`](Permit::inconclusive). Dropped without
/// any, a probe counts as a failure.
#[derive(Debug)]
pub(crate) struct Permit<'a> {
    breaker: &'a Breaker,
    /// This call is the half-open probe.
    probe: bool,
    settled: bool,
}

impl Breaker {
    pub(crate) fn new(threshold: u32, cooldown: Duration) -> Self {
        Breaker {
            threshold: threshold.max(1),
            cooldown,
            epoch: Instant::now(),
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            probing: AtomicBool::new(false),
            opened: AtomicU64::new(0),
        }
    }

    /// A permit to call the backend now, or `None` while the circuit is open (and while another
    /// call is the probe, once its cooldown has passed).
    pub(crate) fn allow(&self) -> Option<Permit<'_>> {
        let until = self.open_until.load(SeqCst);
        if until == 0 {
            return Some(self.permit(false));
        }
        if self.now() < until {
            return None;
        }
        // Half-open: one probe at a time.
        self.probing
            .compare_exchange(false, true, SeqCst, SeqCst)
            .is_ok()
            .then(|| self.permit(true))
    }

    pub(crate) fn is_open(&self) -> bool {
        self.open_until.load(SeqCst) != 0
    }

    fn permit(&self, probe: bool) -> Permit<'_> {
        Permit {
            breaker: self,
            probe,
            settled: false,
        }
    }

    /// Now, as stored in `open_until` (never 0).
    fn now(&self) -> u64 {
        let since = Instant::now().saturating_duration_since(self.epoch);
        u64::try_from(since.as_nanos())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1)
    }

    fn succeeded(&self) {
        self.failures.store(0, SeqCst);
        // Read first: while closed (nearly always), a success writes nothing more.
        if self.open_until.load(SeqCst) != 0 && self.open_until.swap(0, SeqCst) != 0 {
            tracing::info!("cache store circuit closed");
        }
        self.probing.store(false, SeqCst);
    }

    fn failed(&self, probe: bool) {
        let failures = self.failures.fetch_add(1, SeqCst).saturating_add(1);
        if failures >= self.threshold || probe {
            if self.open_until.load(SeqCst) == 0 {
                self.opened.fetch_add(1, SeqCst);
                tracing::warn!(cooldown = ?self.cooldown, "cache store circuit opened");
            }
            let cooldown = u64::try_from(self.cooldown.as_nanos()).unwrap_or(u64::MAX);
            self.open_until
                .store(self.now().saturating_add(cooldown), SeqCst);
            self.probing.store(false, SeqCst);
        }
    }
}

impl Permit<'_> {
    /// The call succeeded: the circuit closes.
    pub(crate) fn success(mut self) {
        self.settled = true;
        self.breaker.succeeded();
    }

    /// The call failed (or timed out).
    pub(crate) fn failure(mut self) {
        self.settled = true;
        self.breaker.failed(self.probe);
    }

    /// The call ended in a way that says nothing about the backend: no failure is counted and
    /// the run of failures goes on as it was; a probe gives its turn to the next call.
    pub(crate) fn inconclusive(mut self) {
        self.settled = true;
        if self.probe {
            self.breaker.probing.store(false, SeqCst);
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.probe && !self.settled {
            // The probe's request was cancelled: nobody will report on it.
            self.breaker.failed(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_failures_and_probes_after_the_cooldown() {
        let b = Breaker::new(3, Duration::from_millis(50));
        for _ in 0..2 {
            b.allow().unwrap().failure();
        }
        b.allow().unwrap().failure();
        assert!(b.allow().is_none(), "open");
        std::thread::sleep(Duration::from_millis(60));
        let probe = b.allow().expect("one probe");
        assert!(b.allow().is_none(), "only one");
        probe.failure();
        assert!(b.allow().is_none(), "the probe failed: open again");
        std::thread::sleep(Duration::from_millis(60));
        b.allow().unwrap().success();
        assert!(b.allow().is_some() && b.allow().is_some() && !b.is_open());
        assert_eq!(b.opened.load(SeqCst), 1);
    }

    #[test]
    fn a_dropped_probe_counts_as_a_failure() {
        let b = Breaker::new(1, Duration::from_millis(30));
        b.allow().unwrap().failure();
        std::thread::sleep(Duration::from_millis(40));
        drop(b.allow().expect("the probe"));
        assert!(b.allow().is_none(), "open again for a cooldown");
        std::thread::sleep(Duration::from_millis(40));
        let probe = b
            .allow()
            .expect("a new probe, not stuck on the dropped one");
        probe.success();
        assert!(!b.is_open());
    }

    #[test]
    fn an_inconclusive_call_neither_opens_nor_closes_the_circuit() {
        let b = Breaker::new(2, Duration::from_millis(30));
        b.allow().unwrap().failure();
        for _ in 0..10 {
            b.allow().unwrap().inconclusive();
        }
        assert!(!b.is_open(), "inconclusive calls are no failures");
        b.allow().unwrap().failure();
        assert!(
            b.allow().is_none(),
            "nor did they reset the run of failures"
        );
        std::thread::sleep(Duration::from_millis(40));
        b.allow().expect("the probe").inconclusive();
        assert!(b.is_open(), "an inconclusive probe does not close it");
        let probe = b.allow().expect("the next call probes at once");
        probe.success();
        assert!(!b.is_open());
    }

    #[test]
    fn a_dropped_ordinary_call_is_no_verdict() {
        let b = Breaker::new(1, Duration::from_millis(30));
        drop(b.allow().unwrap());
        assert!(!b.is_open());
        assert!(b.allow().is_some());
    }
}
