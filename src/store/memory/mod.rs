//! The in-memory store, on moka's concurrent cache: the store and its builder here, what it
//! keeps for each entry in `slot.rs`, its tag index in `tag_index.rs`.

mod front;
mod slot;
mod tag_index;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use moka::future::Cache;
use moka::notification::RemovalCause;
use moka::policy::EvictionPolicy;

use super::{InspectedEntry, PutOutcome, Store, StoreError, StoreMetrics};
use crate::{Entry, StoreKey};
use front::Front;
use slot::{PerEntryTtl, Slot, Stored, weigh};
use tag_index::TagIndex;

/// Which entry goes first when the store is full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Eviction {
    /// TinyLFU (the default): admits a new entry only if it is likely to be used more than the
    /// one it would evict, so a scan of one-off URLs cannot flush the hot set.
    #[default]
    TinyLfu,
    /// Least recently used.
    Lru,
}

/// An in-memory [`Store`] bounded in bytes, on [moka](https://docs.rs/moka)'s `future::Cache`.
///
/// Capacity is weighed in bytes: what an entry occupies ([`Entry::weight`]: the entry, its key,
/// tags, header fields and body) plus what the store keeps for it (moka's structures and the
/// entry's slot, about 450 bytes, and about 50 bytes a tag in the tag index), so the store's
/// memory stays within its capacity. Each entry expires after its own storage lifetime. Cloning is cheap and shares
/// the contents.
///
/// Its [`metrics`](Store::metrics) count what was put minus what moka reported removed (for any
/// cause), so a put shows at once; an entry that expired or was evicted counts until moka's
/// maintenance drops it, which happens as the store is used.
///
/// Each thread that looks entries up keeps a hit front: what it hit lately, found again without
/// moka's lookup and, within a budget of a sixteenth of the capacity for all threads together,
/// answered from a copy of its own (header fields copied, body shared), so that threads
/// answering one hot URI write to no line another thread writes. The front never answers
/// what the store let go of (every use checks it), and lets go of it at the latest when its
/// thread next looks it up or its sweep passes by; a copy whose entry the store evicted can
/// thus outlive it on an idle thread, within that budget.
///
/// ```
/// use tower_response_cache::{Eviction, MemoryStore};
///
/// let store = MemoryStore::builder()
///     .capacity_bytes(256 << 20)
///     .eviction(Eviction::Lru)
///     .build();
/// # let _ = store;
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    cache: Cache<StoreKey, Stored>,
    tags: Arc<TagIndex>,
    counts: Arc<Counts>,
    next_id: Arc<AtomicU64>,
    front: Front,
    /// Dropped with the last clone: tells the threads' fronts the store is gone.
    _life: Arc<Life>,
}

/// The store's life, as its threads' fronts see it.
struct Life(Front);

impl Drop for Life {
    fn drop(&mut self) {
        self.0.dropped();
    }
}

/// What the store holds, kept up to date by puts and by moka's removal notifications.
#[derive(Debug, Default)]
struct Counts {
    entries: AtomicU64,
    bytes: AtomicU64,
    evictions: AtomicU64,
    expirations: AtomicU64,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("metrics", &self.metrics())
            .finish()
    }
}

/// Builds a [`MemoryStore`].
#[derive(Clone, Debug)]
pub struct MemoryStoreBuilder {
    capacity_bytes: u64,
    eviction: Eviction,
}

impl MemoryStoreBuilder {
    /// The most bytes the store holds (default 64 MiB): its entries and its own structures
    /// for them.
    pub fn capacity_bytes(mut self, bytes: u64) -> Self {
        self.capacity_bytes = bytes;
        self
    }

    /// The eviction policy (default TinyLFU).
    pub fn eviction(mut self, eviction: Eviction) -> Self {
        self.eviction = eviction;
        self
    }

    /// Builds the store.
    pub fn build(self) -> MemoryStore {
        let tags = Arc::new(TagIndex::default());
        let counts = Arc::new(Counts::default());
        let listener_tags = Arc::clone(&tags);
        let listener_counts = Arc::clone(&counts);
        let front = Front::new(self.capacity_bytes);
        let listener_front = front.clone();
        let policy = match self.eviction {
            Eviction::TinyLfu => EvictionPolicy::tiny_lfu(),
            Eviction::Lru => EvictionPolicy::lru(),
        };
        let cache = Cache::builder()
            .max_capacity(self.capacity_bytes)
            .weigher(|_, slot: &Stored| slot.weight)
            .expire_after(PerEntryTtl)
            .eviction_policy(policy)
            // Called once for every value put, whatever removes it (replaced, invalidated,
            // expired, evicted), after the put counted it.
            .eviction_listener(move |key: Arc<StoreKey>, slot: Stored, cause| {
                match cause {
                    RemovalCause::Size => listener_counts.evictions.fetch_add(1, Relaxed),
                    RemovalCause::Expired => listener_counts.expirations.fetch_add(1, Relaxed),
                    RemovalCause::Explicit | RemovalCause::Replaced => 0,
                };
                listener_counts.entries.fetch_sub(1, Relaxed);
                listener_counts
                    .bytes
                    .fetch_sub(u64::from(slot.weight), Relaxed);
                // Let go of the entry now, not when moka reclaims its copy (see `Slot`).
                // The flag, then the removal count, before anything that could unwind.
                let entry = slot.take();
                listener_front.removed();
                if let Some(entry) = entry {
                    listener_tags.forget(*key, &entry, slot.id);
                }
            })
            .build();
        MemoryStore {
            cache,
            tags,
            counts,
            next_id: Arc::new(AtomicU64::new(1)),
            _life: Arc::new(Life(front.clone())),
            front,
        }
    }
}

impl MemoryStore {
    /// A builder, for the capacity and the eviction policy.
    pub fn builder() -> MemoryStoreBuilder {
        MemoryStoreBuilder {
            capacity_bytes: 64 << 20,
            eviction: Eviction::TinyLfu,
        }
    }

    /// A TinyLFU store holding at most `bytes` bytes.
    pub fn with_capacity_bytes(bytes: u64) -> Self {
        Self::builder().capacity_bytes(bytes).build()
    }

    /// moka's lookup, polled once: `None` when it would have to wait.
    fn poll_once(&self, key: StoreKey) -> Option<Option<Stored>> {
        let lookup = std::pin::pin!(self.cache.get(&key));
        match lookup.poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(slot) => Some(slot),
            Poll::Pending => None,
        }
    }

    /// Runs moka's pending maintenance (evictions, expirations, listener calls) now. For tests
    /// and benchmarks that read exact figures; not part of the API.
    #[doc(hidden)]
    pub async fn run_pending_tasks(&self) {
        self.cache.run_pending_tasks().await;
    }
}

impl Store for MemoryStore {
    async fn get(&self, key: StoreKey) -> Result<Option<Arc<Entry>>, StoreError> {
        Ok(self.cache.get(&key).await.and_then(|slot| slot.entry()))
    }

    /// First from this thread's hit front (`front.rs`), which holds what this thread hit
    /// lately (a private copy, or the slot) for as long as the store does; then from moka, whose `get`
    /// is asynchronous only to take a maintenance lock when it must: nearly always it is
    /// ready on its first poll. If not, the future is dropped (moka's operations are
    /// cancellation-safe) and the layer awaits [`get`](Store::get) instead.
    fn get_now(&self, key: StoreKey) -> Option<Result<Option<Arc<Entry>>, StoreError>> {
        if let Some(hit) = self.front.get(key) {
            if hit.touch {
                // For moka's eviction policy; and an entry moka no longer answers (its time
                // up, not yet reported) is let go of.
                if let Some(answered) = self.poll_once(key) {
                    self.front.touched(key, answered.as_ref());
                }
            }
            return Some(Ok(Some(hit.entry)));
        }
        let slot = self.poll_once(key)?;
        let entry = slot.as_ref().and_then(|slot| slot.entry());
        if let (Some(slot), Some(entry)) = (&slot, &entry) {
            self.front.admit(key, slot, entry);
        }
        Some(Ok(entry))
    }

    async fn put(
        &self,
        key: StoreKey,
        entry: Arc<Entry>,
        ttl: Duration,
    ) -> Result<PutOutcome, StoreError> {
        let weight = weigh(&entry);
        let id = self.next_id.fetch_add(1, Relaxed);
        // Counted and indexed before it is visible, so a removal right after the insert
        // uncounts and unindexes it.
        self.counts.entries.fetch_add(1, Relaxed);
        let bytes = self.counts.bytes.fetch_add(u64::from(weight), Relaxed) + u64::from(weight);
        self.tags.remember(key, &entry, id);
        let slot = Slot::new(entry, ttl, id, weight);
        self.cache.insert(key, Arc::new(slot)).await;
        // moka evicts in batches as its write log fills, so large entries could overshoot the
        // capacity by megabytes before the next batch; a put that finds the store over its
        // capacity by more than 1/64 runs the pending evictions itself.
        let capacity = self.cache.policy().max_capacity().unwrap_or(u64::MAX);
        if bytes > capacity.saturating_add(capacity / 64) {
            self.cache.run_pending_tasks().await;
        }
        Ok(PutOutcome::Stored)
    }

    async fn remove(&self, key: StoreKey) -> Result<(), StoreError> {
        self.cache.invalidate(&key).await;
        Ok(())
    }

    async fn invalidate_tags<'a>(&'a self, tags: &'a [&'a str]) -> Result<u64, StoreError> {
        let inserts = self.tags.inserts(tags);
        let mut removed = 0;
        for (key, id) in inserts {
            // Only the insert that carries the tag: one that replaced it without the tag (its
            // removal not yet reported) stays. A put landing between this check and the
            // removal goes too: more than asked, never less.
            let live = self.cache.get(&key).await;
            if live.is_some_and(|slot| slot.id == id && slot.entry().is_some()) {
                removed += 1;
                self.cache.invalidate(&key).await;
            }
        }
        Ok(removed)
    }

    /// Removes the entries one by one (moka's `invalidate_all` would not say how many there
    /// were); each leaves the tag index as it goes.
    async fn clear(&self) -> Result<u64, StoreError> {
        // Expired entries not yet reported are reported now (their slots let go of), since
        // moka's iterator skips them.
        self.cache.run_pending_tasks().await;
        let keys: Vec<StoreKey> = self.cache.iter().map(|(key, _)| *key).collect();
        let mut removed = 0;
        for key in keys {
            if self.cache.remove(&key).await.is_some() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn metrics(&self) -> StoreMetrics {
        StoreMetrics::new(
            self.counts.entries.load(Relaxed),
            self.counts.bytes.load(Relaxed),
            self.counts.evictions.load(Relaxed),
        )
        .with_expirations(self.counts.expirations.load(Relaxed))
    }

    fn name(&self) -> &'static str {
        "memory"
    }

    async fn inspect<'a>(&'a self, tag: &'a str) -> Result<Vec<InspectedEntry>, StoreError> {
        let mut found = Vec::new();
        for (key, id) in self.tags.inserts_of(tag, 4 * super::MAX_INSPECTED) {
            let live = self.cache.get(&key).await;
            let entry = live.filter(|slot| slot.id == id).and_then(|s| s.entry());
            // The index is by the tag's hash: a tag of the same hash is not this one.
            if let Some(entry) = entry.filter(|e| e.tags().any(|t| t == tag)) {
                found.push(InspectedEntry::new(key, entry, "memory"));
                if found.len() == super::MAX_INSPECTED {
                    break;
                }
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests;
