//! [`CacheHandle`]: invalidating, clearing and warming a cache from application code.

use http::{HeaderMap, Request, Uri};
use http_body::Body;
use std::fmt;
use std::sync::Arc;
use tower_service::Service;

use crate::cache::Cache;
use crate::invalidate;
use crate::key::{normalize_authority, normalize_path};
use crate::observe::Invalidation;
use crate::store::BoxFuture;
use crate::{CacheStats, Entry, InspectedEntry, Store, StoreError};

/// A cheap-to-clone handle on a cache (from [`CacheLayer::handle`](crate::CacheLayer::handle)),
/// for invalidating what the application changed by other paths than HTTP writes through the
/// layer, and for warming.
///
/// Invalidations are recorded before entries are removed, so a fill that started earlier never
/// writes the old data back. An invalidation the store fails to take (Redis down or slow) is
/// not lost: this instance stops serving what it covers at once, and retries it until the
/// store takes it.
///
/// ```
/// use tower_response_cache::{CacheLayer, MemoryStore};
///
/// # async fn example() {
/// let layer = CacheLayer::new(MemoryStore::with_capacity_bytes(16 << 20));
/// let cache = layer.handle();
/// // ... after changing product 42 in the database:
/// cache.invalidate_tags(&["product:42"]).await;
/// cache.invalidate_uri(&"http://shop.example/products/42".parse().unwrap()).await;
/// # }
/// ```
#[derive(Clone)]
pub struct CacheHandle {
    cache: Arc<dyn Operations>,
    /// Invalidations through this handle are the purge service's (counted as `purge`).
    purging: bool,
}

impl fmt::Debug for CacheHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheHandle").finish_non_exhaustive()
    }
}

/// The operations a handle needs, without the store and key maker types: invalidating, and
/// the reads of the admin service (counters, the store's entries, how an entry is shown).
trait Operations: Send + Sync {
    fn invalidate<'a>(&'a self, kind: Invalidation, tags: &'a [&'a str]) -> BoxFuture<'a, u64>;
    fn clear(&self, kind: Invalidation) -> BoxFuture<'_, u64>;
    fn flush(&self) -> BoxFuture<'_, ()>;
    fn stats(&self) -> CacheStats;
    fn store_name(&self) -> &'static str;
    fn inspect<'a>(
        &'a self,
        tag: &'a str,
    ) -> BoxFuture<'a, Result<Vec<InspectedEntry>, StoreError>>;
    fn origin_fields(&self, stored: &HeaderMap) -> HeaderMap;
    fn hides(&self, entry: &Entry) -> bool;
}

impl<St: Store + ?Sized> Operations for Cache<St> {
    fn invalidate<'a>(&'a self, kind: Invalidation, tags: &'a [&'a str]) -> BoxFuture<'a, u64> {
        Box::pin(Cache::invalidate(self, kind, tags))
    }
    fn clear(&self, kind: Invalidation) -> BoxFuture<'_, u64> {
        Box::pin(Cache::clear(self, kind))
    }
    fn flush(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.unsettled.settled())
    }
    fn stats(&self) -> CacheStats {
        Cache::stats(self)
    }
    fn store_name(&self) -> &'static str {
        self.store.name()
    }
    fn inspect<'a>(
        &'a self,
        tag: &'a str,
    ) -> BoxFuture<'a, Result<Vec<InspectedEntry>, StoreError>> {
        Box::pin(self.store.inspect(tag))
    }
    fn origin_fields(&self, stored: &HeaderMap) -> HeaderMap {
        Cache::origin_fields(self, stored)
    }
    fn hides(&self, entry: &Entry) -> bool {
        self.unapplied.hides(entry)
    }
}

impl CacheHandle {
    pub(crate) fn new<St: Store + ?Sized>(cache: Arc<Cache<St>>) -> Self {
        CacheHandle {
            cache,
            purging: false,
        }
    }

    /// This handle, for the purge service: what it invalidates counts as `purge`.
    pub(crate) fn purging(&self) -> CacheHandle {
        CacheHandle {
            cache: Arc::clone(&self.cache),
            purging: true,
        }
    }

    /// `kind`, or `purge` for the purge service's handle.
    fn kind(&self, kind: Invalidation) -> Invalidation {
        if self.purging {
            Invalidation::Purge
        } else {
            kind
        }
    }

    /// Invalidates every entry stored for this URI: all its `Vary` variants, all its queries
    /// and all the key maker's variants. An absolute URI (`http://shop.example/products/1`)
    /// names one host; a path alone (`/products/1`) means that path **on every host**. Both
    /// are normalised as keys are (host case, default port, `%31` for `1`, dot segments), so
    /// any spelling of a URI finds its entries. Returns how many entries were removed (0 for
    /// a URI whose host cannot be read).
    pub async fn invalidate_uri(&self, uri: &Uri) -> u64 {
        let Some(tag) = invalidate::uri_tag_of(uri) else {
            return 0;
        };
        let kind = self.kind(Invalidation::Uri);
        self.cache.invalidate(kind, &[&tag]).await
    }

    /// Invalidates every entry under a path prefix, at `/` boundaries: `"/products/"` covers
    /// `/products/1` and `/products/a/b`, and `"/products"` covers those and `/products`
    /// itself. `authority` names the host (`"shop.example"`, normalised as keys are); `""`
    /// means **every host**. A prefix deeper than 8 segments invalidates at the 8th (more than
    /// asked, never less); `"/"` on every host is everything. Returns how many entries were
    /// removed (0, removing nothing, for an authority that cannot be read or a prefix that does
    /// not start with `/`).
    pub async fn invalidate_prefix(&self, authority: &str, prefix: &str) -> u64 {
        if !prefix.starts_with('/') {
            // Not a path: a typo must not widen into "everything".
            return 0;
        }
        let prefix = normalize_path(prefix);
        let authority = match authority {
            "" => None,
            authority => match normalize_authority(authority, None) {
                Ok(authority) => Some(authority),
                Err(_) => return 0,
            },
        };
        match invalidate::prefix_tags(authority.as_deref(), &prefix) {
            Some(tags) => {
                let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
                self.cache
                    .invalidate(self.kind(Invalidation::Prefix), &tags)
                    .await
            }
            None => self.cache.clear(self.kind(Invalidation::Prefix)).await,
        }
    }

    /// Invalidates every entry carrying any of `tags` (from the tag header or the policy).
    pub async fn invalidate_tags(&self, tags: &[&str]) -> u64 {
        self.cache
            .invalidate(self.kind(Invalidation::Tag), tags)
            .await
    }

    /// Waits until the writes the cache does after answering are done: responses already
    /// returned to their clients are stored (or dropped) once their bodies are in, off the
    /// response path. For graceful shutdown, and for tests that read the store right after a
    /// response.
    pub async fn flush(&self) {
        self.cache.flush().await
    }

    /// Removes every entry; returns how many the store removed (a Redis store: the entries
    /// it deleted under its prefix, whichever instance stored them).
    pub async fn clear(&self) -> u64 {
        self.cache.clear(self.kind(Invalidation::Clear)).await
    }

    /// The cache's counters (what [`CacheLayer::stats`](crate::CacheLayer::stats) gives): for
    /// code that holds the handle and not the layer.
    pub fn stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// The store's name (`memory`, `redis`, `tiered`, `custom`...).
    pub(crate) fn store_name(&self) -> &'static str {
        self.cache.store_name()
    }

    /// The entries the store holds under `tag` (every tier), for inspection.
    pub(crate) async fn inspect(&self, tag: &str) -> Result<Vec<InspectedEntry>, StoreError> {
        self.cache.inspect(tag).await
    }

    /// Stored fields without the ones the cache keeps there for its hits (`Age`, `X-Cache`,
    /// the `Cache-Status` placeholder).
    pub(crate) fn origin_fields(&self, stored: &HeaderMap) -> HeaderMap {
        self.cache.origin_fields(stored)
    }

    /// Whether an invalidation the store has not taken yet covers `entry`: this instance
    /// never serves it.
    pub(crate) fn hides(&self, entry: &Entry) -> bool {
        self.cache.hides(entry)
    }

    /// Sends `requests` through `service` (a service with this cache in front), one after the
    /// other, reading each response to the end, so that they are stored. Returns how many were
    /// answered with a success status.
    pub async fn warm<S, ReqB, ResB>(
        &self,
        mut service: S,
        requests: impl IntoIterator<Item = Request<ReqB>>,
    ) -> usize
    where
        S: Service<Request<ReqB>, Response = http::Response<ResB>>,
        ResB: Body,
    {
        use http_body_util::BodyExt;
        let mut warmed = 0;
        for request in requests {
            if std::future::poll_fn(|cx| service.poll_ready(cx))
                .await
                .is_err()
            {
                break;
            }
            let Ok(response) = service.call(request).await else {
                continue;
            };
            let ok = response.status().is_success();
            if response.into_body().collect().await.is_ok() && ok {
                warmed += 1;
            }
        }
        warmed
    }
}
