//! What the tiers of one [`TieredStore`](super::TieredStore) share with its subscription task.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};
use tokio::task::AbortHandle;

use crate::invalidate::Generations;
use crate::store::{MemoryStore, RedisStore};

/// The state of a tiered store: its tiers, its subscription's status, and what it knows of
/// invalidations.
pub(super) struct State {
    pub(super) l1: MemoryStore,
    pub(super) l2: RedisStore,
    /// Tells this instance's messages from others'.
    pub(super) instance: u64,
    pub(super) subscribed: AtomicBool,
    pub(super) resubscribed: AtomicU64,
    /// Invalidations heard from other instances (and subscription losses, which may hide some),
    /// counted as they arrive, before they reach L1: the epoch a request reads before joining a
    /// flight (`Store::remote_invalidations`).
    pub(super) remote: AtomicU64,
    /// The same, counted once applied to L1.
    pub(super) applied: AtomicU64,
    /// Wall-clock nanoseconds (Unix) of the latest invalidation made or heard here, or
    /// subscription lost or made: an entry whose fill started before it is not kept in L1 alone.
    pub(super) invalidated_at: AtomicU64,
    /// How long L1 may serve while the subscription is down, in nanoseconds (0: not at all).
    pub(super) local_bound: AtomicU64,
    /// The origin of `lost_at`.
    pub(super) epoch: Instant,
    /// When the subscription was last lost, in nanoseconds after `epoch` plus one (0: never).
    /// Meaningful while `subscribed` is false; set before it is.
    pub(super) lost_at: AtomicU64,
    /// Every invalidation of L1 (this instance's and the others'), recorded before it is applied,
    /// against which copies into L1 are checked.
    pub(super) generations: Arc<Generations>,
    pub(super) subscriber: OnceLock<AbortHandle>,
}

impl State {
    pub(super) fn local_bound(&self) -> Option<Duration> {
        match self.local_bound.load(SeqCst) {
            0 => None,
            nanos => Some(Duration::from_nanos(nanos)),
        }
    }

    /// Now, as stored in `lost_at` (never 0).
    pub(super) fn monotonic(&self) -> u64 {
        nanos(Instant::now().saturating_duration_since(self.epoch)).saturating_add(1)
    }

    /// An invalidation was made or heard (or may have been missed) now. Called before it is
    /// recorded in the generations.
    pub(super) fn note_invalidation(&self) {
        self.invalidated_at
            .fetch_max(crate::entry::unix_nanos(SystemTime::now()), SeqCst);
    }

    /// Whether an invalidation was noted at or after `at`.
    pub(super) fn invalidated_since(&self, at: SystemTime) -> bool {
        self.invalidated_at.load(SeqCst) >= crate::entry::unix_nanos(at)
    }
}

impl Drop for State {
    fn drop(&mut self) {
        if let Some(subscriber) = self.subscriber.get() {
            subscriber.abort();
        }
    }
}

/// A duration in nanoseconds, saturating.
pub(super) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
