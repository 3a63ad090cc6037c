//! [`TieredStore`]: a per-instance memory tier in front of a shared Redis tier.

use futures_util::StreamExt;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime};
use tokio::task::AbortHandle;

use super::{MemoryStore, PutOutcome, RedisStore, Store, StoreError, StoreMetrics};
use crate::invalidate::{FillTicket, Generations};
use crate::{Entry, StoreKey};

const CHANNEL: &str = "invalidations";

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

struct State {
    l1: MemoryStore,
    l2: RedisStore,
    /// Tells this instance's messages from others'.
    instance: u64,
    subscribed: AtomicBool,
    resubscribed: AtomicU64,
    /// Invalidations heard from other instances (and subscription losses, which may hide some).
    remote: AtomicU64,
    /// Wall-clock nanoseconds (Unix) of the latest invalidation made or heard here, or
    /// subscription lost or made: an entry whose fill started before it is not kept in L1 alone.
    invalidated_at: AtomicU64,
    /// How long L1 may serve while the subscription is down, in nanoseconds (0: not at all).
    local_bound: AtomicU64,
    /// The origin of `lost_at`.
    epoch: Instant,
    /// When the subscription was last lost, in nanoseconds after `epoch` plus one (0: never).
    /// Meaningful while `subscribed` is false; set before it is.
    lost_at: AtomicU64,
    /// Every invalidation of L1 (this instance's and the others'), recorded before it is applied,
    /// against which copies into L1 are checked.
    generations: Arc<Generations>,
    subscriber: OnceLock<AbortHandle>,
}

impl State {
    fn local_bound(&self) -> Option<Duration> {
        match self.local_bound.load(SeqCst) {
            0 => None,
            nanos => Some(Duration::from_nanos(nanos)),
        }
    }

    /// Now, as stored in `lost_at` (never 0).
    fn monotonic(&self) -> u64 {
        nanos(Instant::now().saturating_duration_since(self.epoch)).saturating_add(1)
    }

    /// An invalidation was made or heard (or may have been missed) now. Called before it is
    /// recorded in the generations.
    fn note_invalidation(&self) {
        self.invalidated_at
            .fetch_max(crate::entry::unix_nanos(SystemTime::now()), SeqCst);
    }

    /// Whether an invalidation was noted at or after `at`.
    fn invalidated_since(&self, at: SystemTime) -> bool {
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

    /// L1's figures, and L2's count of live entries as
    /// [`shared_entries`](StoreMetrics::shared_entries).
    fn metrics(&self) -> StoreMetrics {
        let shared = self.shared.l2.metrics().shared_entries;
        self.shared.l1.metrics().with_shared_entries(shared)
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

/// An invalidation on the wire: `<instance> key <hex>`, `<instance> tags <len>:<tag><len>:<tag>...`
/// (each tag length-prefixed: a tag may hold any character, a newline included),
/// `<instance> clear`.
enum Message<'a> {
    Key(StoreKey),
    Tags(&'a [&'a str]),
    Clear,
}

impl Message<'_> {
    fn encode(&self, instance: u64) -> Vec<u8> {
        match self {
            Message::Key(key) => format!("{instance:016x} key {key}").into_bytes(),
            Message::Tags(tags) => {
                let mut out = format!("{instance:016x} tags ");
                for tag in *tags {
                    out.push_str(&tag.len().to_string());
                    out.push(':');
                    out.push_str(tag);
                }
                out.into_bytes()
            }
            Message::Clear => format!("{instance:016x} clear").into_bytes(),
        }
    }
}

/// The tags of a `tags` message (`<len>:<tag>` repeated), or `None` if it is malformed.
fn decode_tags(mut rest: &str) -> Option<Vec<&str>> {
    let mut tags = Vec::new();
    while !rest.is_empty() {
        let (len, tail) = rest.split_once(':')?;
        let len: usize = len.parse().ok()?;
        let tag = tail.get(..len)?;
        tags.push(tag);
        rest = &tail[len..];
    }
    Some(tags)
}

/// Applies an invalidation from another instance to L1.
async fn apply(shared: &State, payload: &[u8]) {
    let Ok(text) = std::str::from_utf8(payload) else {
        return;
    };
    let mut parts = text.splitn(3, ' ');
    let (Some(from), Some(kind)) = (parts.next(), parts.next()) else {
        return;
    };
    if u64::from_str_radix(from, 16).ok() == Some(shared.instance) {
        return;
    }
    let rest = parts.next().unwrap_or("");
    shared.note_invalidation();
    // Recorded before L1 is touched, as this instance's own invalidations are.
    match kind {
        "tags" => match decode_tags(rest) {
            Some(tags) => {
                shared.generations.record(tags.iter().copied());
                let _ = shared.l1.invalidate_tags(&tags).await;
            }
            None => {
                // Unreadable: it named something, so everything goes (safe, never stale).
                shared.generations.record_everything();
                let _ = shared.l1.clear().await;
            }
        },
        "key" => {
            if let Ok(hash) = u128::from_str_radix(rest, 16) {
                let key = StoreKey::from_u128(hash);
                shared.generations.record([key_tag(key).as_str()]);
                let _ = shared.l1.remove(key).await;
            }
        }
        "clear" => {
            shared.generations.record_everything();
            let _ = shared.l1.clear().await;
        }
        _ => {}
    }
    // Counted once applied: whoever sees the count sees L1 without what the message named.
    shared.remote.fetch_add(1, SeqCst);
}

/// Keeps the subscription up for as long as the store lives: on every loss, clears L1 and
/// stops using it (or, serving locally while disconnected, keeps it, and clears it once the
/// bound has passed, as nothing in it from before the loss may be served then); on every
/// (re)subscription, clears it once more and starts using it again.
async fn subscribe(store: Weak<State>) {
    let mut backoff = Duration::from_millis(50);
    // L1 was cleared since the loss, once past the bound.
    let mut past_bound_cleared = false;
    loop {
        let (client, channel) = match store.upgrade() {
            Some(shared) => (shared.l2.client().clone(), shared.l2.channel(CHANNEL)),
            None => return,
        };
        let connected = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        match tokio::time::timeout(Duration::from_secs(2), connected).await {
            Ok(Ok(pubsub)) => {
                backoff = Duration::from_millis(50);
                {
                    let Some(shared) = store.upgrade() else {
                        return;
                    };
                    // Whatever was in L1 may have missed invalidations before this point.
                    shared.note_invalidation();
                    shared.generations.record_everything();
                    let _ = shared.l1.clear().await;
                    shared.resubscribed.fetch_add(1, SeqCst);
                    shared.subscribed.store(true, SeqCst);
                    past_bound_cleared = false;
                }
                let mut messages = pubsub.into_on_message();
                while let Some(message) = messages.next().await {
                    let Some(shared) = store.upgrade() else {
                        return;
                    };
                    apply(&shared, message.get_payload_bytes()).await;
                }
                tracing::warn!("cache invalidation subscription lost; memory tier cleared");
            }
            Ok(Err(error)) => tracing::debug!(%error, "cannot subscribe to cache invalidations"),
            Err(_) => tracing::debug!("subscribing to cache invalidations timed out"),
        }
        {
            let Some(shared) = store.upgrade() else {
                return;
            };
            if shared.subscribed.load(SeqCst) {
                // The bound of local serving counts from here, set before L1 serves by it.
                shared.lost_at.store(shared.monotonic(), SeqCst);
                shared.note_invalidation();
                shared.subscribed.store(false, SeqCst);
            }
            shared.generations.record_everything();
            match shared.local_bound() {
                None => {
                    let _ = shared.l1.clear().await;
                }
                Some(bound) if !past_bound_cleared => {
                    // Memory only (lookups check the bound): what L1 held from before the
                    // loss would otherwise take room from the fills made since.
                    let lost = shared.lost_at.load(SeqCst);
                    if lost != 0 && shared.monotonic() >= lost.saturating_add(nanos(bound)) {
                        let _ = shared.l1.clear().await;
                        past_bound_cleared = true;
                    }
                }
                Some(_) => {}
            }
            // Messages may be lost while cut off: counted as a remote invalidation, applied.
            shared.remote.fetch_add(1, SeqCst);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// What a removal of `key` is recorded as, among the tags: nothing else can have this name (tags
/// are visible ASCII, internal ones start with U+0001).
fn key_tag(key: StoreKey) -> String {
    format!("\u{0}key {key}")
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_messages_carry_any_character() {
        let tags = [
            "plain",
            "with\nnewline",
            "\u{1}uri h/x\n\u{1}host h",
            "",
            "12:34",
        ];
        let message = Message::Tags(&tags).encode(7);
        let text = std::str::from_utf8(&message).unwrap();
        let rest = text.splitn(3, ' ').nth(2).unwrap();
        assert_eq!(decode_tags(rest).unwrap(), tags);
        for malformed in ["5:abc", "x:abc", "3abc", "2:\u{e9}x"] {
            assert_eq!(decode_tags(malformed), None, "{malformed:?}");
        }
    }
}
