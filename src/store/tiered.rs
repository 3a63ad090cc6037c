//! [`TieredStore`]: a per-instance memory tier in front of a shared Redis tier.

use futures_util::StreamExt;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, SystemTime};
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
/// - L1 is used only while this instance is subscribed: when the subscription is lost (Redis
///   down, connection reset) L1 is cleared, since invalidations may have been missed, and it
///   stays empty until the subscription is back (cleared once more then).
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
#[derive(Clone)]
pub struct TieredStore {
    shared: Arc<Shared>,
}

struct Shared {
    l1: MemoryStore,
    l2: RedisStore,
    /// Tells this instance's messages from others'.
    instance: u64,
    subscribed: AtomicBool,
    resubscribed: AtomicU64,
    /// Invalidations heard from other instances (and subscription losses, which may hide some).
    remote: AtomicU64,
    /// Every invalidation of L1 (this instance's and the others'), recorded before it is applied,
    /// against which copies into L1 are checked.
    generations: Arc<Generations>,
    subscriber: OnceLock<AbortHandle>,
}

impl Drop for Shared {
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
            .finish()
    }
}

impl TieredStore {
    /// Puts `l1` in front of `l2` and subscribes to invalidations. Must be called within a tokio
    /// runtime (the subscription is a task of it, ended when the store is dropped).
    pub fn new(l1: MemoryStore, l2: RedisStore) -> Result<Self, StoreError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(StoreError::new)?;
        let shared = Arc::new(Shared {
            l1,
            l2,
            instance: instance_id(),
            subscribed: AtomicBool::new(false),
            resubscribed: AtomicU64::new(0),
            remote: AtomicU64::new(0),
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
    /// invalidation's removal from L1 comes after this write.
    async fn copy_to_l1(
        &self,
        key: StoreKey,
        entry: Arc<Entry>,
        ttl: Duration,
        ticket: &FillTicket,
    ) -> Result<(), StoreError> {
        let key_tag = key_tag(key);
        let overtaken = || ticket.overtaken(entry.tags().chain([key_tag.as_str()]));
        if overtaken() {
            return Ok(());
        }
        let l1 = &self.shared.l1;
        l1.put(key, Arc::clone(&entry), ttl).await?;
        if overtaken() {
            l1.remove(key).await?;
        }
        Ok(())
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
        if !self.is_subscribed() {
            return None;
        }
        match self.shared.l1.get_now(key)? {
            Ok(Some(entry)) => Some(Ok(Some(entry))),
            // Not in L1: L2 must be asked, which waits.
            _ => None,
        }
    }

    async fn get(&self, key: StoreKey) -> Result<Option<Arc<Entry>>, StoreError> {
        let subscribed = self.is_subscribed();
        if subscribed {
            if let Some(entry) = self.shared.l1.get(key).await? {
                return Ok(Some(entry));
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

    /// Stored means stored in L2 (the copy in L1 may be refused).
    async fn put(
        &self,
        key: StoreKey,
        entry: Arc<Entry>,
        ttl: Duration,
    ) -> Result<PutOutcome, StoreError> {
        let ticket = self.shared.generations.begin_fill();
        // L1 follows L2: what L2 refused (an invalidation overtook the fill) or could not
        // store, L1 does not keep either.
        let outcome = self.shared.l2.put(key, Arc::clone(&entry), ttl).await?;
        if outcome == PutOutcome::Stored && self.is_subscribed() {
            self.copy_to_l1(key, entry, ttl, &ticket).await?;
        }
        Ok(outcome)
    }

    // Invalidations: L2 first, then the record, then L1. A read of L2 that could still return
    // the old data started before the record, so its copy is refused or removed; and nothing
    // old is left in L1 when the call returns.

    async fn remove(&self, key: StoreKey) -> Result<(), StoreError> {
        let l2 = self.shared.l2.remove(key).await;
        self.shared.generations.record([key_tag(key).as_str()]);
        self.shared.l1.remove(key).await?;
        self.broadcast(Message::Key(key)).await;
        l2
    }

    async fn invalidate_tags<'a>(&'a self, tags: &'a [&'a str]) -> Result<u64, StoreError> {
        let shared = self.shared.l2.invalidate_tags(tags).await;
        self.shared.generations.record(tags.iter().copied());
        let local = self.shared.l1.invalidate_tags(tags).await?;
        self.broadcast(Message::Tags(tags)).await;
        Ok(shared?.max(local))
    }

    /// Returns how many entries L2 removed (those of L1 are copies of them).
    async fn clear(&self) -> Result<u64, StoreError> {
        let l2 = self.shared.l2.clear().await;
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
async fn apply(shared: &Shared, payload: &[u8]) {
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
    shared.remote.fetch_add(1, SeqCst);
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
}

/// Keeps the subscription up for as long as the store lives: on every loss, clears L1 and
/// stops using it; on every (re)subscription, clears it once more and starts using it again.
async fn subscribe(store: Weak<Shared>) {
    let mut backoff = Duration::from_millis(50);
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
                    shared.generations.record_everything();
                    let _ = shared.l1.clear().await;
                    shared.resubscribed.fetch_add(1, SeqCst);
                    shared.subscribed.store(true, SeqCst);
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
            shared.subscribed.store(false, SeqCst);
            // Messages may be lost while cut off: treat it as a remote invalidation.
            shared.remote.fetch_add(1, SeqCst);
            shared.generations.record_everything();
            let _ = shared.l1.clear().await;
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

/// An id for this store instance, different across processes and stores.
fn instance_id() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let seed = [
        nanos.to_le_bytes(),
        u64::from(std::process::id()).to_le_bytes(),
        COUNTER.fetch_add(1, SeqCst).to_le_bytes(),
    ]
    .concat();
    xxhash_rust::xxh3::xxh3_64(&seed)
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
