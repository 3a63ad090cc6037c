//! Where entries live: the [`Store`] trait and its implementations.
//!
//! A store maps a [`StoreKey`] to an [`Entry`] for a given storage lifetime, indexes entries by
//! their tags, and can be cleared. The cache layer is generic over the store (static dispatch, no
//! boxing on the hit path); `Arc<dyn DynStore>` is a `Store` too, for choosing one at run time.
//!
//! Store errors never fail a request: the layer logs and counts them, and answers from the inner
//! service.

#[cfg(feature = "redis")]
mod breaker;
mod memory;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
mod tiered;

pub use memory::{Eviction, MemoryStore, MemoryStoreBuilder};
#[cfg(feature = "redis")]
pub use redis::{RedisFaults, RedisStore, RedisStoreBuilder};
#[cfg(feature = "redis")]
pub use tiered::TieredStore;

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::{Entry, StoreKey};

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
    /// [`tags`](Entry::tags) must be indexed so that invalidating any of them removes it.
    fn put(
        &self,
        key: StoreKey,
        entry: Arc<Entry>,
        ttl: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes the entry under `key`, if any.
    fn remove(&self, key: StoreKey) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes every entry carrying any of `tags`; returns how many were removed.
    fn invalidate_tags<'a>(
        &'a self,
        tags: &'a [&'a str],
    ) -> impl Future<Output = Result<u64, StoreError>> + Send + 'a;

    /// Removes every entry.
    fn clear(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Figures about the store's contents, for [`CacheStats`](crate::CacheStats).
    fn metrics(&self) -> StoreMetrics {
        StoreMetrics::default()
    }
}

/// Figures a store reports about itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreMetrics {
    /// Entries stored now.
    pub entries: u64,
    /// Bytes accounted for, by [`Entry::weight`].
    pub weighted_bytes: u64,
    /// Entries dropped to stay within capacity.
    pub evictions: u64,
}

impl StoreMetrics {
    /// Metrics with the given figures.
    pub fn new(entries: u64, weighted_bytes: u64, evictions: u64) -> Self {
        StoreMetrics {
            entries,
            weighted_bytes,
            evictions,
        }
    }
}

/// A failed store operation.
#[derive(Debug)]
pub struct StoreError {
    source: Box<dyn StdError + Send + Sync>,
}

impl StoreError {
    /// Wraps the backend's error.
    pub fn new(source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        StoreError {
            source: source.into(),
        }
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

/// The object-safe form of [`Store`], implemented for every `Store`. Use `Arc<dyn DynStore>`
/// where the store is chosen at run time; it implements `Store` itself.
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
    ) -> BoxFuture<'_, Result<(), StoreError>>;
    /// [`Store::remove`], boxed.
    fn remove_dyn(&self, key: StoreKey) -> BoxFuture<'_, Result<(), StoreError>>;
    /// [`Store::invalidate_tags`], boxed.
    fn invalidate_tags_dyn<'a>(
        &'a self,
        tags: &'a [&'a str],
    ) -> BoxFuture<'a, Result<u64, StoreError>>;
    /// [`Store::clear`], boxed.
    fn clear_dyn(&self) -> BoxFuture<'_, Result<(), StoreError>>;
    /// [`Store::metrics`].
    fn metrics_dyn(&self) -> StoreMetrics;
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
    ) -> BoxFuture<'_, Result<(), StoreError>> {
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
    fn clear_dyn(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.clear())
    }
    fn metrics_dyn(&self) -> StoreMetrics {
        self.metrics()
    }
}

impl Store for dyn DynStore {
    fn get(
        &self,
        key: StoreKey,
    ) -> impl Future<Output = Result<Option<Arc<Entry>>, StoreError>> + Send {
        self.get_dyn(key)
    }
    fn get_now(&self, key: StoreKey) -> Option<Result<Option<Arc<Entry>>, StoreError>> {
        self.get_now_dyn(key)
    }
    fn put(
        &self,
        key: StoreKey,
        entry: Arc<Entry>,
        ttl: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.put_dyn(key, entry, ttl)
    }
    fn remove(&self, key: StoreKey) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.remove_dyn(key)
    }
    fn invalidate_tags<'a>(
        &'a self,
        tags: &'a [&'a str],
    ) -> impl Future<Output = Result<u64, StoreError>> + Send + 'a {
        self.invalidate_tags_dyn(tags)
    }
    fn clear(&self) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.clear_dyn()
    }
    fn metrics(&self) -> StoreMetrics {
        self.metrics_dyn()
    }
}

impl<T: Store + ?Sized> Store for Arc<T> {
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
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
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
    fn clear(&self) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).clear()
    }
    fn metrics(&self) -> StoreMetrics {
        (**self).metrics()
    }
}
