//! Where entries live: the [`Store`] trait and its implementations.
//!
//! A store maps a [`StoreKey`] to an [`Entry`] for a given storage lifetime, indexes entries by
//! their tags, and can be cleared. The cache layer is generic over the store (static dispatch, no
//! boxing on the hit path); [`AnyStore`] wraps an `Arc<dyn DynStore>`, for choosing one at run
//! time.
//!
//! Store errors never fail a request: the layer logs and counts them, and answers from the inner
//! service.

#[cfg(feature = "redis")]
mod instance;
mod memory;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
mod tiered;

pub use crate::entry::{DecodeError, Entry, FORMAT_VERSION};
pub use memory::{Eviction, MemoryStore, MemoryStoreBuilder};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis::{RedisFaults, RedisStore, RedisStoreBuilder};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use tiered::TieredStore;

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::StoreKey;

/// A boxed, sendable future (what [`DynStore`] returns).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A storage backend for cached responses.
///
/// Implementations must be cheap to call concurrently (`&self`), must return an entry only
/// within the lifetime it was put with, and must make [`invalidate_tags`](Store::invalidate_tags)
/// remove every entry carrying one of the tags.
///
/// See `examples/custom_store.rs` for a complete implementation.
pub trait Store: Send + Sync + 'static {
    /// The entry under `key`, if one is stored and has not outlived its storage lifetime.
    fn get(
        &self,
        key: StoreKey,
    ) -> impl Future<Output = Result<Option<Arc<Entry>>, StoreError>> + Send;

    /// The entry under `key` if the store can tell without waiting, as an in-memory store can;
    /// `None` means "ask [`get`](Store::get)". The cache layer asks this first, so that a hit
    /// completes inside `Service::call` with no future to allocate. The default says `None`: a
    /// store that would have to do I/O must not start it here.
    fn get_now(&self, key: StoreKey) -> Option<Result<Option<Arc<Entry>>, StoreError>> {
        let _ = key;
        None
    }

    /// Stores `entry` under `key` for `ttl`, replacing what was there. The entry's
    /// [`tags`](Entry::tags) must be indexed so that invalidating any of them removes it. The
    /// layer's `ttl` is at most twice [`MAX_LIFETIME`](crate::MAX_LIFETIME) (a lifetime plus
    /// a stale window).
    ///
    /// Says whether the entry was stored: a store may [refuse](PutOutcome::Refused) it (as
    /// `RedisStore` refuses a fill that an invalidation on any instance overtook) or find it
    /// [too large](PutOutcome::TooLarge), and the layer then counts it as refused, not as
    /// stored.
    fn put(
        &self,
        key: StoreKey,
        entry: Arc<Entry>,
        ttl: Duration,
    ) -> impl Future<Output = Result<PutOutcome, StoreError>> + Send;

    /// Removes the entry under `key`, if any.
    fn remove(&self, key: StoreKey) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes every entry carrying any of `tags`; returns how many were removed.
    ///
    /// On an error the layer hides the entries carrying these tags from its own lookups and
    /// calls this again later (with these tags, perhaps among others, or [`clear`](Store::clear)
    /// instead) until it succeeds: an invalidation may be applied more than once.
    fn invalidate_tags<'a>(
        &'a self,
        tags: &'a [&'a str],
    ) -> impl Future<Output = Result<u64, StoreError>> + Send + 'a;

    /// Removes every entry; returns how many were removed (as best the store can tell: a
    /// `RedisStore` counts the entries it deleted under its prefix).
    fn clear(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Figures about the store's contents, for [`CacheStats`](crate::CacheStats). Called on
    /// every [`snapshot`](crate::CacheStats::snapshot): must not wait or do I/O.
    fn metrics(&self) -> StoreMetrics {
        StoreMetrics::default()
    }

    /// Cluster-wide coalescing: asks to be the one instance that fills `key`, for at most
    /// `hold`. `true` means go ahead (the default: a store of one instance has no one to ask);
    /// `false` means another instance is filling it, and the layer looks the key up again
    /// shortly instead of calling the origin. A store that cannot tell (an error) says `true`.
    fn claim_fill(&self, key: StoreKey, hold: Duration) -> impl Future<Output = bool> + Send {
        let _ = (key, hold);
        std::future::ready(true)
    }

    /// Gives up a claim made with [`claim_fill`](Store::claim_fill): the fill is done.
    fn release_fill(&self, key: StoreKey) -> impl Future<Output = ()> + Send {
        let _ = key;
        std::future::ready(())
    }

    /// How many invalidations made on other instances this store has heard of (0, the default,
    /// for a store of one instance). The layer does not let a request wait for a fetch that
    /// began before the latest one: that fetch's response may predate the write. Count an
    /// invalidation as it arrives, before applying it, so that no request joins an older fetch
    /// while it is being applied.
    fn remote_invalidations(&self) -> u64 {
        0
    }

    /// A short, stable name for labels and logs (`memory`, `redis`, `tiered`; `custom` by
    /// default).
    fn name(&self) -> &'static str {
        "custom"
    }

    /// The entries carrying `tag`, for inspection (the admin service's `entry` endpoint asks
    /// for a URI's implicit tag): each with its key and the tier that holds it, at most
    /// [`MAX_INSPECTED`] per tier. Never used to answer requests; the default lists none.
    fn inspect<'a>(
        &'a self,
        tag: &'a str,
    ) -> impl Future<Output = Result<Vec<InspectedEntry>, StoreError>> + Send + 'a {
        let _ = tag;
        std::future::ready(Ok(Vec::new()))
    }
}

/// The most entries a store lists for one [`Store::inspect`] (per tier), so that inspecting a
/// URI stored under a great many queries stays bounded.
pub const MAX_INSPECTED: usize = 1_000;

/// An entry a store lists for [`Store::inspect`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct InspectedEntry {
    /// Its key in the store.
    pub key: StoreKey,
    /// The entry.
    pub entry: Arc<Entry>,
    /// The tier that holds it (`memory`, `redis`).
    pub tier: &'static str,
}

impl InspectedEntry {
    /// `entry`, stored under `key` in `tier`.
    pub fn new(key: StoreKey, entry: Arc<Entry>, tier: &'static str) -> Self {
        InspectedEntry { key, entry, tier }
    }
}

/// What [`Store::put`] did with an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PutOutcome {
    /// The entry is stored.
    Stored,
    /// The store declined to keep it, and holds nothing new under the key (for example: an
    /// invalidation overtook the fill that made the entry). Not an error.
    Refused,
    /// The entry is larger than the store keeps (a `RedisStore`'s `max_value_bytes`); it was
    /// not sent anywhere, and the store holds nothing new under the key. Not an error.
    TooLarge,
}

/// Figures a store reports about itself.
///
/// Two tiers: the memory of this process (a [`MemoryStore`], a `TieredStore`'s memory tier),
/// and a shared tier (a `RedisStore`, a `TieredStore`'s Redis tier). A store reports
/// the tiers it has: `RedisStore` has no memory tier (its `entries` are 0) and `MemoryStore`
/// no shared one (`shared_entries` is `None`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreMetrics {
    /// Entries held in this process's memory. Those that expired or were evicted count until
    /// the memory store's maintenance drops them (it runs as the store is used).
    pub entries: u64,
    /// Bytes those entries cost, as the store weighs them: a [`MemoryStore`] counts
    /// [`Entry::weight`] plus its own structures for each entry and each of its tags.
    pub weighted_bytes: u64,
    /// Entries the memory tier dropped to stay within its capacity.
    pub evictions: u64,
    /// Entries the memory tier dropped because their lifetime (plus stale windows) ran out.
    pub expirations: u64,
    /// Live entries in the shared tier (stored by every instance), when the store has one and
    /// has counted them: as of this instance's last write, invalidation, clear or (at most
    /// once a second) read there.
    pub shared_entries: Option<u64>,
    /// Bytes of the shared tier's live entries (their stored values), when the store has one
    /// and has counted them, as of the same moment as `shared_entries`.
    pub shared_bytes: Option<u64>,
    /// The state of the shared tier's circuit breaker, when it has one.
    pub breaker: Option<BreakerState>,
}

/// The state of a store's circuit breaker (see [`RedisFaults`](crate::store)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BreakerState {
    /// Whether the circuit is open now: operations fail at once, as misses, until the cooldown
    /// ends.
    pub open: bool,
    /// How many times it opened since the store was built.
    pub opened: u64,
}

impl BreakerState {
    /// A breaker `open` now, that opened `opened` times.
    pub fn new(open: bool, opened: u64) -> Self {
        BreakerState { open, opened }
    }
}

impl StoreMetrics {
    /// Metrics of a memory tier with the given figures.
    pub fn new(entries: u64, weighted_bytes: u64, evictions: u64) -> Self {
        StoreMetrics {
            entries,
            weighted_bytes,
            evictions,
            ..StoreMetrics::default()
        }
    }

    /// These metrics with `expirations` entries expired from the memory tier.
    pub fn with_expirations(mut self, expirations: u64) -> Self {
        self.expirations = expirations;
        self
    }

    /// These metrics with a shared tier of `bytes` (`None`: not counted yet).
    pub fn with_shared_bytes(mut self, bytes: Option<u64>) -> Self {
        self.shared_bytes = bytes;
        self
    }

    /// These metrics with a circuit breaker in this state.
    pub fn with_breaker(mut self, breaker: Option<BreakerState>) -> Self {
        self.breaker = breaker;
        self
    }

    /// These metrics with a shared tier holding `entries` (`None`: not counted yet).
    pub fn with_shared_entries(mut self, entries: Option<u64>) -> Self {
        self.shared_entries = entries;
        self
    }
}

/// A failed store operation.
#[derive(Debug)]
pub struct StoreError {
    source: Box<dyn StdError + Send + Sync>,
    store: Option<&'static str>,
}

impl StoreError {
    /// Wraps the backend's error.
    pub fn new(source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        StoreError {
            source: source.into(),
            store: None,
        }
    }

    /// This error, saying which store (or tier) it comes from (`redis`...): the `store` label
    /// of its count, rather than the name of the store the cache was given.
    pub fn in_store(mut self, store: &'static str) -> Self {
        self.store = Some(store);
        self
    }

    /// The store it comes from, when it says.
    pub fn store(&self) -> Option<&'static str> {
        self.store
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cache store error: {}", self.source)
    }
}

impl StdError for StoreError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.source)
    }
}

/// The object-safe form of [`Store`], implemented for every `Store`. Where the store is chosen
/// at run time, wrap an `Arc<dyn DynStore>` in [`AnyStore`].
pub trait DynStore: Send + Sync + 'static {
    /// [`Store::get`], boxed.
    fn get_dyn(&self, key: StoreKey) -> BoxFuture<'_, Result<Option<Arc<Entry>>, StoreError>>;
    /// [`Store::get_now`].
    fn get_now_dyn(&self, key: StoreKey) -> Option<Result<Option<Arc<Entry>>, StoreError>>;
    /// [`Store::put`], boxed.
    fn put_dyn(
        &self,
        key: StoreKey,
        entry: Arc<Entry>,
        ttl: Duration,
    ) -> BoxFuture<'_, Result<PutOutcome, StoreError>>;
    /// [`Store::remove`], boxed.
    fn remove_dyn(&self, key: StoreKey) -> BoxFuture<'_, Result<(), StoreError>>;
    /// [`Store::invalidate_tags`], boxed.
    fn invalidate_tags_dyn<'a>(
        &'a self,
        tags: &'a [&'a str],
    ) -> BoxFuture<'a, Result<u64, StoreError>>;
    /// [`Store::clear`], boxed.
    fn clear_dyn(&self) -> BoxFuture<'_, Result<u64, StoreError>>;
    /// [`Store::metrics`].
    fn metrics_dyn(&self) -> StoreMetrics;
    /// [`Store::claim_fill`], boxed.
    fn claim_fill_dyn(&self, key: StoreKey, hold: Duration) -> BoxFuture<'_, bool>;
    /// [`Store::release_fill`], boxed.
    fn release_fill_dyn(&self, key: StoreKey) -> BoxFuture<'_, ()>;
    /// [`Store::remote_invalidations`].
    fn remote_invalidations_dyn(&self) -> u64;

    /// [`Store::name`].
    fn name_dyn(&self) -> &'static str;

    /// [`Store::inspect`], boxed.
    fn inspect_dyn<'a>(
        &'a self,
        tag: &'a str,
    ) -> BoxFuture<'a, Result<Vec<InspectedEntry>, StoreError>>;
}

impl<T: Store> DynStore for T {
    fn get_dyn(&self, key: StoreKey) -> BoxFuture<'_, Result<Option<Arc<Entry>>, StoreError>> {
        Box::pin(self.get(key))
    }
    fn get_now_dyn(&self, key: StoreKey) -> Option<Result<Option<Arc<Entry>>, StoreError>> {
        self.get_now(key)
    }
    fn put_dyn(
        &self,
        key: StoreKey,
        entry: Arc<Entry>,
        ttl: Duration,
    ) -> BoxFuture<'_, Result<PutOutcome, StoreError>> {
        Box::pin(self.put(key, entry, ttl))
    }
    fn remove_dyn(&self, key: StoreKey) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.remove(key))
    }
    fn invalidate_tags_dyn<'a>(
        &'a self,
        tags: &'a [&'a str],
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(self.invalidate_tags(tags))
    }
    fn clear_dyn(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(self.clear())
    }
    fn metrics_dyn(&self) -> StoreMetrics {
        self.metrics()
    }
    fn claim_fill_dyn(&self, key: StoreKey, hold: Duration) -> BoxFuture<'_, bool> {
        Box::pin(self.claim_fill(key, hold))
    }
    fn release_fill_dyn(&self, key: StoreKey) -> BoxFuture<'_, ()> {
        Box::pin(self.release_fill(key))
    }
    fn remote_invalidations_dyn(&self) -> u64 {
        self.remote_invalidations()
    }
    fn name_dyn(&self) -> &'static str {
        self.name()
    }
    fn inspect_dyn<'a>(
        &'a self,
        tag: &'a str,
    ) -> BoxFuture<'a, Result<Vec<InspectedEntry>, StoreError>> {
        Box::pin(self.inspect(tag))
    }
}

/// A store chosen at run time: any [`DynStore`] (every [`Store`] is one) behind an `Arc`, as a
/// `Store` of one type.
///
/// (A wrapper rather than `Store` for `dyn DynStore` itself: futures over the bare trait object
/// cannot be spawned, a limit of today's compiler with trait objects in async code.)
///
/// ```
/// use tower_response_cache::{AnyStore, CacheLayer, MemoryStore};
///
/// let store = if std::env::var("CACHE").as_deref() == Ok("off") {
///     AnyStore::new(MemoryStore::with_capacity_bytes(0))
/// } else {
///     AnyStore::new(MemoryStore::with_capacity_bytes(64 << 20))
/// };
/// let layer = CacheLayer::new(store);
/// # let _ = layer;
/// ```
#[derive(Clone)]
pub struct AnyStore(Arc<dyn DynStore>);

impl AnyStore {
    /// Wraps a store.
    pub fn new(store: impl Store) -> Self {
        AnyStore(Arc::new(store))
    }

    /// The store behind it.
    pub fn inner(&self) -> &Arc<dyn DynStore> {
        &self.0
    }
}

impl From<Arc<dyn DynStore>> for AnyStore {
    fn from(store: Arc<dyn DynStore>) -> Self {
        AnyStore(store)
    }
}

impl fmt::Debug for AnyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AnyStore").finish_non_exhaustive()
    }
}

impl Store for AnyStore {
    fn get(
        &self,
        key: StoreKey,
    ) -> impl Future<Output = Result<Option<Arc<Entry>>, StoreError>> + Send {
        self.0.get_dyn(key)
    }
    fn get_now(&self, key: StoreKey) -> Option<Result<Option<Arc<Entry>>, StoreError>> {
        self.0.get_now_dyn(key)
    }
    fn put(
        &self,
        key: StoreKey,
        entry: Arc<Entry>,
        ttl: Duration,
    ) -> impl Future<Output = Result<PutOutcome, StoreError>> + Send {
        self.0.put_dyn(key, entry, ttl)
    }
    fn remove(&self, key: StoreKey) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.0.remove_dyn(key)
    }
    fn invalidate_tags<'a>(
        &'a self,
        tags: &'a [&'a str],
    ) -> impl Future<Output = Result<u64, StoreError>> + Send + 'a {
        self.0.invalidate_tags_dyn(tags)
    }
    fn clear(&self) -> impl Future<Output = Result<u64, StoreError>> + Send {
        self.0.clear_dyn()
    }
    fn metrics(&self) -> StoreMetrics {
        self.0.metrics_dyn()
    }
    fn claim_fill(&self, key: StoreKey, hold: Duration) -> impl Future<Output = bool> + Send {
        self.0.claim_fill_dyn(key, hold)
    }
    fn release_fill(&self, key: StoreKey) -> impl Future<Output = ()> + Send {
        self.0.release_fill_dyn(key)
    }
    fn remote_invalidations(&self) -> u64 {
        self.0.remote_invalidations_dyn()
    }
    fn name(&self) -> &'static str {
        self.0.name_dyn()
    }
    fn inspect<'a>(
        &'a self,
        tag: &'a str,
    ) -> impl Future<Output = Result<Vec<InspectedEntry>, StoreError>> + Send + 'a {
        self.0.inspect_dyn(tag)
    }
}

impl<T: Store> Store for Arc<T> {
    fn get(
        &self,
        key: StoreKey,
    ) -> impl Future<Output = Result<Option<Arc<Entry>>, StoreError>> + Send {
        (**self).get(key)
    }
    fn get_now(&self, key: StoreKey) -> Option<Result<Option<Arc<Entry>>, StoreError>> {
        (**self).get_now(key)
    }
    fn put(
        &self,
        key: StoreKey,
        entry: Arc<Entry>,
        ttl: Duration,
    ) -> impl Future<Output = Result<PutOutcome, StoreError>> + Send {
        (**self).put(key, entry, ttl)
    }
    fn remove(&self, key: StoreKey) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).remove(key)
    }
    fn invalidate_tags<'a>(
        &'a self,
        tags: &'a [&'a str],
    ) -> impl Future<Output = Result<u64, StoreError>> + Send + 'a {
        (**self).invalidate_tags(tags)
    }
    fn clear(&self) -> impl Future<Output = Result<u64, StoreError>> + Send {
        (**self).clear()
    }
    fn metrics(&self) -> StoreMetrics {
        (**self).metrics()
    }
    fn claim_fill(&self, key: StoreKey, hold: Duration) -> impl Future<Output = bool> + Send {
        (**self).claim_fill(key, hold)
    }
    fn release_fill(&self, key: StoreKey) -> impl Future<Output = ()> + Send {
        (**self).release_fill(key)
    }
    fn remote_invalidations(&self) -> u64 {
        (**self).remote_invalidations()
    }
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn inspect<'a>(
        &'a self,
        tag: &'a str,
    ) -> impl Future<Output = Result<Vec<InspectedEntry>, StoreError>> + Send + 'a {
        (**self).inspect(tag)
    }
}
