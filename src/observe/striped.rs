//! Counters that every request adds to, from any thread, without the threads writing to one
//! shared cache line.
//!
//! A single `AtomicU64` per count is exact but, when two cores count hits on one hot route, its
//! cache line moves between them on every hit: the counter costs more than the rest of the hit.
//! Here each count is split into [`STRIPES`] stripes, each on its own cache line, and a thread
//! only ever adds to its own stripe (chosen once per thread, round-robin). Adding stays a
//! `fetch_add`, so threads that share a stripe (more threads than stripes) still count exactly;
//! reading sums the stripes, which is as rare as a stats read.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

/// How many stripes each counter has: enough that the worker threads of a usual server each
/// get their own; 16 lines of 128 bytes (2 KiB) per set of counters (one set per route).
pub(crate) const STRIPES: usize = 16;

/// One stripe: `N` counts on a line of their own. 128 bytes rather than 64, because some CPUs
/// (Intel's adjacent-line prefetcher, Apple's M-series) move lines in pairs or have 128-byte
/// lines.
#[repr(align(128))]
struct Stripe<const N: usize>([AtomicU64; N]);

/// `N` counts, each striped over [`STRIPES`] cache lines.
pub(crate) struct Striped<const N: usize>([Stripe<N>; STRIPES]);

impl<const N: usize> Default for Striped<N> {
    fn default() -> Self {
        Striped(std::array::from_fn(|_| {
            Stripe(std::array::from_fn(|_| AtomicU64::new(0)))
        }))
    }
}

impl<const N: usize> Striped<N> {
    /// Adds one to count `index`, in this thread's stripe.
    #[inline]
    pub(crate) fn add(&self, index: usize) {
        self.0[stripe()].0[index].fetch_add(1, Relaxed);
    }

    /// Every count, summed over the stripes: exact once the adding threads are done (adds made
    /// meanwhile may or may not be in it).
    pub(crate) fn load(&self) -> [u64; N] {
        let mut sums = [0u64; N];
        for stripe in &self.0 {
            for (sum, count) in sums.iter_mut().zip(&stripe.0) {
                *sum = sum.wrapping_add(count.load(Relaxed));
            }
        }
        sums
    }
}

/// The threads that took a stripe so far (the next one takes this, modulo [`STRIPES`]).
static NEXT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's stripe, taken on its first count. Round-robin rather than hashed from the
    /// thread's id, so that two threads never share a stripe while there are stripes left.
    static STRIPE: usize = NEXT.fetch_add(1, Relaxed) % STRIPES;
}

/// This thread's stripe.
#[inline]
fn stripe() -> usize {
    // A thread being torn down (a count from a destructor of another thread-local) uses
    // stripe 0: still exact, only shared.
    STRIPE.try_with(|s| *s).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn threads_adding_at_once_count_exactly() {
        const THREADS: usize = 2 * STRIPES + 3;
        const ADDS: usize = 10_000;
        let counts = Arc::new(Striped::<3>::default());
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let counts = Arc::clone(&counts);
                std::thread::spawn(move || {
                    for _ in 0..ADDS {
                        counts.add(t % 2);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let evens = THREADS.div_ceil(2) * ADDS;
        assert_eq!(
            counts.load(),
            [evens as u64, (THREADS * ADDS - evens) as u64, 0]
        );
    }

    #[test]
    fn two_threads_take_different_stripes() {
        let stripe_of_a_new_thread = || std::thread::spawn(stripe).join().unwrap();
        // Tests running at the same time take stripes too: the two threads only share one if
        // exactly a multiple of `STRIPES` other threads took one in between, so a few tries
        // make this certain.
        let differ = (0..4).any(|_| stripe_of_a_new_thread() != stripe_of_a_new_thread());
        assert!(differ);
    }

    #[test]
    fn a_stripe_is_a_line_of_its_own() {
        assert_eq!(std::mem::align_of::<Stripe<6>>(), 128);
        assert_eq!(std::mem::size_of::<Striped<6>>(), STRIPES * 128);
    }
}
