//! The in-memory store, on moka's concurrent cache.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::future::Cache;
use moka::notification::RemovalCause;
use moka::policy::EvictionPolicy;

use super::{PutOutcome, Store, StoreError, StoreMetrics};
use crate::{Entry, StoreKey};

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
/// Capacity is weighed in bytes ([`Entry::weight`]: body, headers, key); each entry expires
/// after its own storage lifetime. Cloning is cheap and shares the contents.
///
/// Its [`metrics`](Store::metrics) count what was put minus what moka reported removed (for any
/// cause), so a put shows at once; an entry that expired or was evicted counts until moka's
/// maintenance drops it, which happens as the store is used.
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
}

/// What the store holds, kept up to date by puts and by moka's removal notifications.
#[derive(Debug, Default)]
struct Counts {
    entries: AtomicU64,
    bytes: AtomicU64,
    evictions: AtomicU64,
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
    /// The most bytes the store holds (default 64 MiB).
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
        let policy = match self.eviction {
            Eviction::TinyLfu => EvictionPolicy::tiny_lfu(),
            Eviction::Lru => EvictionPolicy::lru(),
        };
        let cache = Cache::builder()
            .max_capacity(self.capacity_bytes)
            .weigher(|_, stored: &Stored| stored.entry.weight().try_into().unwrap_or(u32::MAX))
            .expire_after(PerEntryTtl)
            .eviction_policy(policy)
            // Called once for every value put, whatever removes it (replaced, invalidated,
            // expired, evicted), after the put counted it.
            .eviction_listener(move |key: Arc<StoreKey>, stored: Stored, cause| {
                if cause == RemovalCause::Size {
                    listener_counts.evictions.fetch_add(1, Relaxed);
                }
                listener_counts.entries.fetch_sub(1, Relaxed);
                listener_counts
                    .bytes
                    .fetch_sub(stored.entry.weight() as u64, Relaxed);
                listener_tags.forget(*key, &stored);
            })
            .build();
        MemoryStore {
            cache,
            tags,
            counts,
            next_id: Arc::new(AtomicU64::new(1)),
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

    /// Runs moka's pending maintenance (evictions, expirations, listener calls) now. Only
    /// useful in tests and benchmarks that read exact figures.
    pub async fn run_pending_tasks(&self) {
        self.cache.run_pending_tasks().await;
    }
}

impl Store for MemoryStore {
    async fn get(&self, key: StoreKey) -> Result<Option<Arc<Entry>>, StoreError> {
        Ok(self.cache.get(&key).await.map(|stored| stored.entry))
    }

    /// moka's `get` is asynchronous only to take a maintenance lock when it must; nearly always
    /// it is ready on its first poll. If not, the future is dropped (moka's operations are
    /// cancellation-safe) and the layer awaits [`get`](Store::get) instead.
    fn get_now(&self, key: StoreKey) -> Option<Result<Option<Arc<Entry>>, StoreError>> {
        let lookup = std::pin::pin!(self.cache.get(&key));
        match lookup.poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(stored) => Some(Ok(stored.map(|s| s.entry))),
            Poll::Pending => None,
        }
    }

    async fn put(
        &self,
        key: StoreKey,
        entry: Arc<Entry>,
        ttl: Duration,
    ) -> Result<PutOutcome, StoreError> {
        let stored = Stored {
            entry,
            ttl,
            id: self.next_id.fetch_add(1, Relaxed),
        };
        // Counted and indexed before it is visible, so a removal right after the insert
        // uncounts and unindexes it.
        self.counts.entries.fetch_add(1, Relaxed);
        self.counts
            .bytes
            .fetch_add(stored.entry.weight() as u64, Relaxed);
        self.tags.remember(key, &stored);
        self.cache.insert(key, stored).await;
        Ok(PutOutcome::Stored)
    }

    async fn remove(&self, key: StoreKey) -> Result<(), StoreError> {
        self.cache.invalidate(&key).await;
        Ok(())
    }

    async fn invalidate_tags<'a>(&'a self, tags: &'a [&'a str]) -> Result<u64, StoreError> {
        let keys = self.tags.take(tags);
        let mut removed = 0;
        for key in keys {
            if self.cache.contains_key(&key) {
                removed += 1;
                self.cache.invalidate(&key).await;
            }
        }
        Ok(removed)
    }

    /// Removes the entries one by one (moka's `invalidate_all` would not say how many there
    /// were); each leaves the tag index as it goes.
    async fn clear(&self) -> Result<u64, StoreError> {
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
    }
}

/// What moka holds: the entry, its storage lifetime, and an id that tells this insert apart from
/// a later one under the same key (so unindexing the old one leaves the new one alone).
#[derive(Clone)]
struct Stored {
    entry: Arc<Entry>,
    ttl: Duration,
    id: u64,
}

struct PerEntryTtl;

impl Expiry<StoreKey, Stored> for PerEntryTtl {
    fn expire_after_create(&self, _: &StoreKey, stored: &Stored, _: Instant) -> Option<Duration> {
        Some(stored.ttl)
    }

    fn expire_after_update(
        &self,
        _: &StoreKey,
        stored: &Stored,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(stored.ttl)
    }
}

/// Tag -> the keys (and insert ids) of the entries carrying it. Invalidating a tag touches only
/// its own entries; entries leaving the cache for any reason leave the index too.
#[derive(Default)]
struct TagIndex {
    tags: Mutex<HashMap<Box<str>, HashMap<StoreKey, u64>>>,
}

impl TagIndex {
    fn lock(&self) -> MutexGuard<'_, HashMap<Box<str>, HashMap<StoreKey, u64>>> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters (worst case: a stale key that invalidation removes harmlessly).
        self.tags.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn remember(&self, key: StoreKey, stored: &Stored) {
        if stored.entry.tags().len() == 0 {
            return;
        }
        let mut tags = self.lock();
        for tag in stored.entry.tags() {
            tags.entry(tag.into()).or_default().insert(key, stored.id);
        }
    }

    fn forget(&self, key: StoreKey, stored: &Stored) {
        if stored.entry.tags().len() == 0 {
            return;
        }
        let mut tags = self.lock();
        for tag in stored.entry.tags() {
            if let Some(keys) = tags.get_mut(tag) {
                if keys.get(&key) == Some(&stored.id) {
                    keys.remove(&key);
                }
                if keys.is_empty() {
                    tags.remove(tag);
                }
            }
        }
    }

    fn take(&self, wanted: &[&str]) -> Vec<StoreKey> {
        let mut tags = self.lock();
        let mut keys = Vec::new();
        for tag in wanted {
            if let Some(tagged) = tags.remove(*tag) {
                keys.extend(tagged.into_keys());
            }
        }
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().values().map(HashMap::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::StoredResponse;
    use bytes::Bytes;
    use http::{HeaderMap, StatusCode};
    use std::time::SystemTime;

    fn entry(body: usize, tags: &[&str]) -> Arc<Entry> {
        Arc::new(
            Entry::response(
                Bytes::from_static(b"key"),
                StoredResponse {
                    status: StatusCode::OK,
                    headers: HeaderMap::new(),
                    body: Bytes::from(vec![7u8; body]),
                    trailers: None,
                    shared_with_credentials: false,
                },
                SystemTime::now(),
                crate::entry::Lifetime::fresh(Duration::from_secs(60)),
                0,
            )
            .with_tags(tags.iter().copied()),
        )
    }

    fn key(i: u64) -> StoreKey {
        StoreKey::of(&i.to_le_bytes())
    }

    #[tokio::test]
    async fn put_get_remove() {
        let store = MemoryStore::with_capacity_bytes(1 << 20);
        store
            .put(key(1), entry(10, &[]), Duration::from_secs(60))
            .await
            .unwrap();
        assert!(store.get(key(1)).await.unwrap().is_some());
        assert!(store.get(key(2)).await.unwrap().is_none());
        store.remove(key(1)).await.unwrap();
        assert!(store.get(key(1)).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn get_now_answers_without_waiting() {
        let store = MemoryStore::with_capacity_bytes(1 << 20);
        assert!(matches!(store.get_now(key(1)), Some(Ok(None))));
        store
            .put(key(1), entry(10, &[]), Duration::from_secs(60))
            .await
            .unwrap();
        assert!(matches!(store.get_now(key(1)), Some(Ok(Some(_)))));
    }

    #[tokio::test]
    async fn entries_expire_after_their_own_ttl() {
        let store = MemoryStore::with_capacity_bytes(1 << 20);
        store
            .put(key(1), entry(10, &[]), Duration::from_millis(50))
            .await
            .unwrap();
        store
            .put(key(2), entry(10, &[]), Duration::from_secs(60))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert!(store.get(key(1)).await.unwrap().is_none());
        assert!(store.get(key(2)).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn capacity_is_in_bytes() {
        let store = MemoryStore::builder()
            .capacity_bytes(100_000)
            .eviction(Eviction::Lru)
            .build();
        for i in 0..100 {
            store
                .put(key(i), entry(10_000, &[]), Duration::from_secs(60))
                .await
                .unwrap();
        }
        store.run_pending_tasks().await;
        let m = store.metrics();
        assert!(m.weighted_bytes <= 100_000, "{m:?}");
        assert!(m.entries <= 10, "{m:?}");
        assert!(m.evictions >= 90, "{m:?}");
    }

    #[tokio::test]
    async fn tags_invalidate_only_their_entries() {
        let store = MemoryStore::with_capacity_bytes(64 << 20);
        for i in 0..1000 {
            let tags: &[&str] = if i % 2 == 0 {
                &["even", "all"]
            } else {
                &["all"]
            };
            store
                .put(key(i), entry(10, tags), Duration::from_secs(60))
                .await
                .unwrap();
        }
        assert_eq!(store.invalidate_tags(&["even"]).await.unwrap(), 500);
        assert!(store.get(key(0)).await.unwrap().is_none());
        assert!(store.get(key(1)).await.unwrap().is_some());
        assert_eq!(store.invalidate_tags(&["all", "nope"]).await.unwrap(), 500);
        store.run_pending_tasks().await;
        assert_eq!(store.tags.len(), 0);
    }

    #[tokio::test]
    async fn replacing_an_entry_keeps_the_new_tags() {
        let store = MemoryStore::with_capacity_bytes(1 << 20);
        store
            .put(key(1), entry(10, &["a", "old"]), Duration::from_secs(60))
            .await
            .unwrap();
        store
            .put(key(1), entry(10, &["a"]), Duration::from_secs(60))
            .await
            .unwrap();
        store.run_pending_tasks().await;
        assert_eq!(store.invalidate_tags(&["old"]).await.unwrap(), 0);
        assert_eq!(store.invalidate_tags(&["a"]).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn expired_entries_leave_the_tag_index() {
        let store = MemoryStore::with_capacity_bytes(1 << 20);
        for i in 0..100 {
            store
                .put(key(i), entry(10, &["t"]), Duration::from_millis(20))
                .await
                .unwrap();
        }
        // moka's timer wheel works in ~1 s steps: expired entries leave within a few of them.
        let deadline = Instant::now() + Duration::from_secs(5);
        while store.tags.len() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            store.run_pending_tasks().await;
        }
        assert_eq!(store.tags.len(), 0);
    }

    #[tokio::test]
    async fn clear_empties_everything() {
        let store = MemoryStore::with_capacity_bytes(1 << 20);
        store
            .put(key(1), entry(10, &["t"]), Duration::from_secs(60))
            .await
            .unwrap();
        store
            .put(key(2), entry(10, &[]), Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(store.clear().await.unwrap(), 2, "how many it removed");
        assert!(store.get(key(1)).await.unwrap().is_none());
        assert_eq!(store.invalidate_tags(&["t"]).await.unwrap(), 0);
        assert_eq!(store.metrics().entries, 0);
        assert_eq!(store.clear().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn metrics_count_puts_at_once_and_every_removal() {
        let store = MemoryStore::with_capacity_bytes(1 << 20);
        for i in 0..3 {
            store
                .put(key(i), entry(100, &["t"]), Duration::from_secs(60))
                .await
                .unwrap();
        }
        let m = store.metrics();
        assert_eq!(m.entries, 3, "no maintenance needed: {m:?}");
        assert_eq!(m.weighted_bytes, 3 * entry(100, &["t"]).weight() as u64);
        // Replaced, removed, invalidated.
        store
            .put(key(0), entry(100, &[]), Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(store.metrics().entries, 3);
        store.remove(key(0)).await.unwrap();
        assert_eq!(store.metrics().entries, 2);
        store.invalidate_tags(&["t"]).await.unwrap();
        store.run_pending_tasks().await;
        assert_eq!(store.metrics(), StoreMetrics::new(0, 0, 0));
    }
}
