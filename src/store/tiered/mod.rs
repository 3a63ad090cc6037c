//! [`TieredStore`]: a per-instance memory tier in front of a shared Redis tier. The store
//! here; the state it shares with its subscription task in `state.rs`; the task in
//! `subscription.rs`; the messages between instances in `message.rs`.

mod message;
mod state;
mod subscription;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use super::{InspectedEntry, MemoryStore, PutOutcome, RedisStore, Store, StoreError, StoreMetrics};
use crate::invalidate::FillTicket;
use crate::{Entry, StoreKey};
use message::{Message, key_tag};
use state::{State, nanos};
use subscription::{CHANNEL, subscribe};

/// A memory tier (L1, this instance's) in front of a Redis tier (L2, shared by all instances).
///
/// - Hits in L1 do not touch the network; an L1 miss reads L2 and keeps what it finds in L1,
///   never longer than it has left to live in L2.
/// - Writes go to L2, then L1 (only what L2 accepted). Invalidations and clears go to L2, then
///   L1, and are broadcast on a Redis pub/sub channel so every instance drops its L1 copies too.
/// - Copies into L1 are checked as fills are (fill generations): every invalidation this
///   instance makes or hears of is recorded before it reaches L1, and a copy of what L2 returned
///   is not kept if one of its tags (or its key, or everything) was invalidated after the L2
///   call started. So once a write has returned, its instance serves nothing from before it,
///   and another instance nothing once the write's message has reached it.
/// - An entry larger than L2 takes ([`max_value_bytes`](crate::RedisStoreBuilder::max_value_bytes))
///   is kept in L1 only, if this instance made or heard of no invalidation (of anything) since
///   its fill started (to the millisecond): no Redis script checked it against other
///   instances' invalidations, so this instance does, coarsely. Invalidations remove it from
///   L1 like any entry, whichever instance makes them. Other instances fill their own copy.
/// - By default L1 is used only while this instance is subscribed: when the subscription is
///   lost (Redis down, connection reset) L1 is cleared, since invalidations may have been
///   missed, and it stays empty until the subscription is back (cleared once more then). With
///   [`serve_local_while_disconnected`](TieredStore::serve_local_while_disconnected), L1 goes
///   on serving for a bounded time instead.
///
/// Propagation: an invalidation reaches the other instances' L1 one Redis round trip after it
/// is published (about a millisecond on one machine; see the closing notes of the tests).
///
/// ```no_run
/// use tower_response_cache::{CacheLayer, MemoryStore, RedisStore, TieredStore};
///
/// # async fn example() {
/// let redis = RedisStore::builder("redis://127.0.0.1:6379/").prefix("shop").build().unwrap();
/// let store = TieredStore::new(MemoryStore::with_capacity_bytes(64 << 20), redis).unwrap();
/// let layer = CacheLayer::new(store);
/// # let _ = layer;
/// # }
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
#[derive(Clone)]
pub struct TieredStore {
    shared: Arc<State>,
}

impl fmt::Debug for TieredStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TieredStore")
            .field("l2", &self.shared.l2)
            .field("subscribed", &self.shared.subscribed.load(SeqCst))
            .field("local_bound", &self.shared.local_bound())
            .finish()
    }
}

impl TieredStore {
    /// Puts `l1` in front of `l2` and subscribes to invalidations. Must be called within a tokio
    /// runtime (the subscription is a task of it, ended when the store is dropped).
    pub fn new(l1: MemoryStore, l2: RedisStore) -> Result<Self, StoreError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(StoreError::new)?;
        let shared = Arc::new(State {
            l1,
            l2,
            instance: super::instance::instance_id(),
            subscribed: AtomicBool::new(false),
            resubscribed: AtomicU64::new(0),
            remote: AtomicU64::new(0),
            applied: AtomicU64::new(0),
            invalidated_at: AtomicU64::new(0),
            local_bound: AtomicU64::new(0),
            epoch: Instant::now(),
            lost_at: AtomicU64::new(0),
            generations: Arc::default(),
            subscriber: OnceLock::new(),
        });
        // The task holds only a weak reference: dropping the store ends it.
        let task = runtime.spawn(subscribe(Arc::downgrade(&shared)));
        let _ = shared.subscriber.set(task.abort_handle());
        Ok(TieredStore { shared })
    }

    /// How many invalidations made on other instances (and subscription losses, which may
    /// hide some) this instance has applied to its memory tier. Once it has passed the figure
    /// read before a write on another instance returned, that write is in effect here: no
    /// request on this instance is answered with what it replaced.
    pub fn remote_invalidations_applied(&self) -> u64 {
        self.shared.applied.load(SeqCst)
    }

    /// Whether the invalidation subscription is up (L1 in use).
    pub fn is_subscribed(&self) -> bool {
        self.shared.subscribed.load(SeqCst)
    }

    /// Keeps serving from L1 while the invalidation subscription is down (Redis unreachable, a
    /// connection reset), for at most `bound`: a Redis outage then does not turn the cache
    /// off. Off by default (and with `Duration::ZERO`): L1 is cleared when the subscription is
    /// lost, as nothing says which of its entries another instance invalidated meanwhile.
    ///
    /// The trade-off: while cut off, this instance does not hear other instances' writes, so
    /// for up to `bound` it may serve what another instance's write replaced. Never longer: an
    /// entry is served only while less than `bound` has passed since the later of the moment
    /// this instance noticed the loss and the moment the entry's fill asked the origin
    /// ([`Entry::fill_started_at`]; any write it could have missed came after that). The time
    /// it entered L1 or was stored (`Entry::stored_at`) would be too late a start: a write
    /// made while its origin was answering could be missed, and go unseen for longer than
    /// `bound`. This instance's own invalidations still apply to L1 at once, and its fills
    /// meanwhile go to L1 (and to Redis, if it takes them) when no invalidation was made or
    /// heard here since they started. When the subscription is back, L1 is cleared, as by
    /// default. The loss is counted from when this instance notices it: when the connection
    /// breaks (at once when Redis stops or restarts; a silent network partition shows only when
    /// TCP gives up, as it does by default too). An entry another instance filled is timed by
    /// that instance's clock: the bound holds to within the clocks' skew.
    ///
    /// Applies to every clone of this store.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use tower_response_cache::{MemoryStore, RedisStore, TieredStore};
    ///
    /// # async fn example() {
    /// let redis = RedisStore::builder("redis://127.0.0.1:6379/").build().unwrap();
    /// let store = TieredStore::new(MemoryStore::with_capacity_bytes(64 << 20), redis)
    ///     .unwrap()
    ///     .serve_local_while_disconnected(Duration::from_secs(10));
    /// # let _ = store;
    /// # }
    /// ```
    pub fn serve_local_while_disconnected(self, bound: Duration) -> Self {
        self.shared.local_bound.store(nanos(bound), SeqCst);
        self
    }

    /// Whether L1 may serve `entry` now: always while subscribed; while not, only within the
    /// bound of [`serve_local_while_disconnected`](Self::serve_local_while_disconnected).
    fn serves_local(&self, entry: &Entry) -> bool {
        if self.is_subscribed() {
            return true;
        }
        let Some(bound) = self.shared.local_bound() else {
            return false;
        };
        let lost = self.shared.lost_at.load(SeqCst);
        let since_loss = lost != 0 && self.shared.monotonic() < lost.saturating_add(nanos(bound));
        since_loss
            || entry
                .fill_started_at()
                .checked_add(bound)
                .is_some_and(|until| SystemTime::now() < until)
    }

    /// The memory tier.
    pub fn l1(&self) -> &MemoryStore {
        &self.shared.l1
    }

    /// The Redis tier.
    pub fn l2(&self) -> &RedisStore {
        &self.shared.l2
    }

    /// Keeps `entry` in L1 under `key` for `ttl`, unless an invalidation recorded since `ticket`
    /// (taken before L2 was called) covers it: either this sees the record, or the
    /// invalidation's removal from L1 comes after this write. Says whether it was kept.
    async fn copy_to_l1(
        &self,
        key: StoreKey,
        entry: Arc<Entry>,
        ttl: Duration,
        ticket: &FillTicket,
    ) -> Result<bool, StoreError> {
        let key_tag = key_tag(key);
        let overtaken = || ticket.overtaken(entry.tags().chain([key_tag.as_str()]));
        if overtaken() {
            return Ok(false);
        }
        let l1 = &self.shared.l1;
        l1.put(key, Arc::clone(&entry), ttl).await?;
        if overtaken() {
            l1.remove(key).await?;
            return Ok(false);
        }
        Ok(true)
    }

    /// Keeps a fill's `entry` in L1 without L2's check (too large for L2, or the subscription
    /// down): only if L1 serves now and no invalidation was made or heard here since the fill
    /// started (those before `ticket` are in no ticket: they are checked by time, coarsely, as
    /// any invalidation). Says whether it was kept.
    async fn keep_local(
        &self,
        key: StoreKey,
        entry: Arc<Entry>,
        ttl: Duration,
        ticket: &FillTicket,
    ) -> Result<bool, StoreError> {
        if !self.serves_local(&entry) || self.shared.invalidated_since(entry.fill_started_at()) {
            return Ok(false);
        }
        self.copy_to_l1(key, entry, ttl, ticket).await
    }

    async fn broadcast(&self, message: Message<'_>) {
        let bytes = message.encode(self.shared.instance);
        if let Err(error) = self.shared.l2.publish(CHANNEL, bytes).await {
            tracing::warn!(%error, "could not broadcast a cache invalidation");
        }
    }
}

impl Store for TieredStore {
    fn get_now(&self, key: StoreKey) -> Option<Result<Option<std::sync::Arc<Entry>>, StoreError>> {
        if !self.is_subscribed() && self.shared.local_bound().is_none() {
            return None;
        }
        match self.shared.l1.get_now(key)? {
            Ok(Some(entry)) if self.serves_local(&entry) => Some(Ok(Some(entry))),
            // Not in L1 (or not to be served now): L2 must be asked, which waits.
            _ => None,
        }
    }

    async fn get(&self, key: StoreKey) -> Result<Option<Arc<Entry>>, StoreError> {
        let subscribed = self.is_subscribed();
        if subscribed || self.shared.local_bound().is_some() {
            if let Some(entry) = self.shared.l1.get(key).await? {
                if self.serves_local(&entry) {
                    return Ok(Some(entry));
                }
            }
        }
        // Before L2 is asked: what it returns may predate an invalidation after this point.
        let ticket = self.shared.generations.begin_fill();
        let found = self.shared.l2.get(key).await?;
        if let (Some(entry), true) = (&found, subscribed) {
            let left = entry.remaining_lifetime(SystemTime::now());
            if !left.is_zero() {
                self.copy_to_l1(key, Arc::clone(entry), left, &ticket)
                    .await?;
            }
        }
        Ok(found)
    }

    /// Stored means stored in L2 (the copy in L1 may be refused), or kept in L1 alone: an
    /// entry too large for L2, or any while the subscription is down (with
    /// [`serve_local_while_disconnected`](TieredStore::serve_local_while_disconnected)), if no
    /// invalidation was made or heard here since its fill started.
    async fn put(
        &self,
        key: StoreKey,
        entry: Arc<Entry>,
        ttl: Duration,
    ) -> Result<PutOutcome, StoreError> {
        let ticket = self.shared.generations.begin_fill();
        // L1 follows L2: what L2 refused (an invalidation overtook the fill), L1 does not keep
        // either; what L2 could not store, L1 keeps only while cut off (opt-in).
        let outcome = match self.shared.l2.put(key, Arc::clone(&entry), ttl).await {
            Ok(outcome) => outcome,
            Err(error) => {
                if !self.is_subscribed() && self.keep_local(key, entry, ttl, &ticket).await? {
                    return Ok(PutOutcome::Stored);
                }
                return Err(error);
            }
        };
        let kept_alone = match outcome {
            PutOutcome::Stored => {
                if self.is_subscribed() {
                    self.copy_to_l1(key, entry, ttl, &ticket).await?;
                } else {
                    self.keep_local(key, entry, ttl, &ticket).await?;
                }
                false
            }
            PutOutcome::TooLarge => self.keep_local(key, entry, ttl, &ticket).await?,
            _ => false,
        };
        Ok(if kept_alone {
            PutOutcome::Stored
        } else {
            outcome
        })
    }

    // Invalidations: L2 first, then the record, then L1. A read of L2 that could still return
    // the old data started before the record, so its copy is refused or removed; and nothing
    // old is left in L1 when the call returns.

    async fn remove(&self, key: StoreKey) -> Result<(), StoreError> {
        let l2 = self.shared.l2.remove(key).await;
        self.shared.note_invalidation();
        self.shared.generations.record([key_tag(key).as_str()]);
        self.shared.l1.remove(key).await?;
        self.broadcast(Message::Key(key)).await;
        l2
    }

    async fn invalidate_tags<'a>(&'a self, tags: &'a [&'a str]) -> Result<u64, StoreError> {
        let shared = self.shared.l2.invalidate_tags(tags).await;
        self.shared.note_invalidation();
        self.shared.generations.record(tags.iter().copied());
        let local = self.shared.l1.invalidate_tags(tags).await?;
        self.broadcast(Message::Tags(tags)).await;
        Ok(shared?.max(local))
    }

    /// Returns how many entries L2 removed (those of L1 are copies of them).
    async fn clear(&self) -> Result<u64, StoreError> {
        let l2 = self.shared.l2.clear().await;
        self.shared.note_invalidation();
        self.shared.generations.record_everything();
        self.shared.l1.clear().await?;
        self.broadcast(Message::Clear).await;
        l2
    }

    /// L1's figures, and L2's: its live entries and their bytes
    /// ([`shared_entries`](StoreMetrics::shared_entries), [`shared_bytes`](StoreMetrics::shared_bytes))
    /// and its circuit breaker.
    fn metrics(&self) -> StoreMetrics {
        let shared = self.shared.l2.metrics();
        self.shared
            .l1
            .metrics()
            .with_shared_entries(shared.shared_entries)
            .with_shared_bytes(shared.shared_bytes)
            .with_breaker(shared.breaker)
    }

    fn name(&self) -> &'static str {
        "tiered"
    }

    /// Both tiers' entries: the memory tier's first.
    async fn inspect<'a>(&'a self, tag: &'a str) -> Result<Vec<InspectedEntry>, StoreError> {
        let mut found = self.shared.l1.inspect(tag).await?;
        found.extend(self.shared.l2.inspect(tag).await?);
        Ok(found)
    }

    async fn claim_fill(&self, key: StoreKey, hold: Duration) -> bool {
        self.shared.l2.claim_fill(key, hold).await
    }

    async fn release_fill(&self, key: StoreKey) {
        self.shared.l2.release_fill(key).await
    }

    fn remote_invalidations(&self) -> u64 {
        self.shared.remote.load(SeqCst)
    }
}
