//! [`RedisStore`]: entries in Redis, shared by every instance of a service.

use bytes::Bytes;
use hmac::{Hmac, Mac};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};
use sha2::Sha256;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;
use tokio::sync::OnceCell;

use super::{PutOutcome, Store, StoreError, StoreMetrics};
use crate::{Entry, StoreKey};
use breaker::{Breaker, Permit};
use count::EntryCount;
use keys::Keys;

mod breaker;
mod builder;
mod count;
mod keys;
mod scripts;

pub use builder::RedisStoreBuilder;

const MAC_LEN: usize = 32;

/// The longest a fill may take and still be stored. Invalidations are remembered this long
/// plus twice the clock margin: a slower fill may have missed one whose record is gone, so its
/// entry is refused.
const LONGEST_FILL: Duration = Duration::from_secs(3600);

/// The most invalidation records kept in Redis (about 125 bytes each: 8 MB at most): past
/// this, the oldest fold into "everything was invalidated at the time of the newest of them".
/// At 65,536, a flood of anonymous writes naming 30,000 new tags a second (a random `Host`
/// each) makes fills refused only when they started more than about two seconds, less the
/// clock margin, before their put.
const MAX_RECORDS: u64 = 65_536;

/// At most this long (a hundred years), whatever the clock margin, so that Redis accepts it as
/// an expiry.
const MAX_RECORD_MEMORY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Values over this size are large: they travel on a connection of their own (small values are
/// never queued behind them), and their timing out is no sign that Redis is down.
const LARGE_VALUE: usize = 1 << 20;

/// A read asks for a value's size and its first this many bytes (`STRLEN`, `GETRANGE`, one
/// round trip, no script: a script would cost Redis about 7 µs a read against 1 µs): values
/// shorter than this come back whole; a longer one is then fetched whole, knowing its size (on
/// the bulk connection if large), so at most this much travels twice.
const INLINE_READ: usize = 64 << 10;

/// A [`Store`] in Redis (7 or later), shared by every instance of a service.
///
/// - Entries are stored in the crate's versioned binary format ([`Entry::encode`]) with their
///   lifetime set in Redis (`PX`), so Redis drops them itself. A value that does not decode (a
///   foreign value, an older format, corruption) is a miss, and is removed.
/// - Each tag has an index in Redis: a sorted set of entry keys scored by their expiry, trimmed
///   of expired members on every write, and expiring with its longest-lived entry; so an index
///   stays within a small factor of its live entries. Invalidating tags is one Lua script:
///   atomic. An index of all entries, kept the same way, counts them for
///   [`StoreMetrics::shared_entries`].
/// - A put is refused ([`PutOutcome::Refused`]) when an invalidation of one of the entry's tags,
///   on any instance, came after its fill started (less a clock margin, see
///   [`invalidation_clock_margin`](RedisStoreBuilder::invalidation_clock_margin)), or when its
///   fill took over an hour (an invalidation it missed may be forgotten by then).
/// - Invalidations are remembered in bounded space, whatever the tags (a request's `Host` is
///   part of some, and anyone can send writes): one sorted set of 16-character tag hashes
///   scored by time, kept an hour plus twice the clock margin and capped at 65,536 records
///   (about 8 MB); past the cap the oldest fold into one "everything was invalidated then"
///   time, which refuses the fills that started before it whatever their tags.
/// - With [`hmac_secret`](RedisStoreBuilder::hmac_secret) every value carries an HMAC-SHA256 of
///   its key and bytes. A value whose HMAC does not verify is a miss: whoever can write to Redis
///   without the secret cannot make the cache serve a response of their making. (They can still
///   delete entries, or replay a genuine value under the same key until it expires; and the
///   secret must stay out of Redis.)
/// - Faults never fail a request: every operation has a timeout, errors are misses, and after a
///   run of failures a circuit breaker stops calling Redis for a while (a dead Redis then costs
///   nothing per request), probing now and then until it is back. An invalidation or clear
///   that fails is not lost: the cache layer hides what it covers from its own lookups at once
///   and sends it again until Redis takes it.
/// - Large values are bounded and kept apart
///   ([`max_value_bytes`](RedisStoreBuilder::max_value_bytes), default 8 MiB): a larger entry
///   is not sent ([`PutOutcome::TooLarge`]); an operation's timeout grows with its value's size
///   ([`min_throughput`](RedisStoreBuilder::min_throughput)); values over 1 MiB travel on a
///   connection of their own and reach their entry by `RENAME` (never copied by a script), and
///   their timing out does not count towards opening the circuit. A read's first round trip
///   returns values under 64 KiB whole, and the size of larger ones, which a second fetches.
///   So a few large responses never make the small hot keys miss.
/// - The connection is made on first use and re-made after a loss, so a service starts, and
///   serves, while Redis is down.
///
/// ```no_run
/// use std::time::Duration;
/// use tower_response_cache::{CacheLayer, RedisStore};
///
/// let store = RedisStore::builder("redis://127.0.0.1:6379/")
///     .prefix("shop")
///     .timeout(Duration::from_millis(50))
///     .hmac_secret(b"from your secret manager")
///     .build()
///     .expect("a valid Redis URL");
/// let layer = CacheLayer::new(store);
/// # let _ = layer;
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    connection: OnceCell<ConnectionManager>,
    /// For large values only.
    bulk_connection: OnceCell<ConnectionManager>,
    keys: Keys,
    timeout: Duration,
    max_value_bytes: usize,
    /// Bytes a second, at least 1.
    min_throughput: u64,
    secret: Option<Box<[u8]>>,
    breaker: Breaker,
    invalidate: Script,
    invalidate_everything: Script,
    put: Script,
    release: Script,
    clock_margin: Duration,
    /// With cluster-wide coalescing, this instance's lock token.
    lock_token: Option<String>,
    /// Tells this instance's uploads from others'.
    instance: String,
    uploads: AtomicU64,
    faults: AtomicU64,
    undecodable: AtomicU64,
    /// Live entries in Redis, as last heard.
    count: EntryCount,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.inner.keys.prefix())
            .field("timeout", &self.inner.timeout)
            .field("max_value_bytes", &self.inner.max_value_bytes)
            .field("hmac", &self.inner.secret.is_some())
            .field("circuit_open", &self.inner.breaker.is_open())
            .finish()
    }
}

/// Figures of a [`RedisStore`].
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisFaults {
    /// Operations that failed or timed out (large values' included, though these do not count
    /// towards opening the circuit).
    pub faults: u64,
    /// Times the circuit breaker opened.
    pub circuit_opened: u64,
    /// Whether the circuit is open now (Redis is not being called).
    pub circuit_open: bool,
    /// Values that did not decode or verify (removed, served as misses).
    pub undecodable: u64,
}

impl RedisStore {
    /// Deletes every key matching the glob `pattern`, in batches (SCAN, not KEYS; each batch
    /// an operation of its own, within the timeout); with `entries`, they also leave the
    /// entries index. Returns how many keys were deleted.
    async fn delete_matching(&self, pattern: &str, entries: bool) -> Result<u64, StoreError> {
        let mut deleted = 0;
        let mut cursor = 0u64;
        loop {
            let pattern = pattern.to_owned();
            let index = self.inner.keys.entries();
            let (next, removed) = self
                .run(|mut c| async move {
                    let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000)
                        .query_async(&mut c)
                        .await?;
                    if keys.is_empty() {
                        return Ok((next, 0));
                    }
                    let mut batch = redis::pipe();
                    batch.atomic().del(&keys);
                    if entries {
                        batch.zrem(index, &keys).ignore();
                    }
                    let (removed,): (u64,) = batch.query_async(&mut c).await?;
                    Ok((next, removed))
                })
                .await?;
            deleted += removed;
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }

    /// Faults seen so far.
    pub fn faults(&self) -> RedisFaults {
        RedisFaults {
            faults: self.inner.faults.load(Relaxed),
            circuit_opened: self.inner.breaker.opened.load(Relaxed),
            circuit_open: self.inner.breaker.is_open(),
            undecodable: self.inner.undecodable.load(Relaxed),
        }
    }

    /// Publishes `message` on this store's channel `name` (prefixed).
    pub(crate) async fn publish(&self, name: &str, message: Vec<u8>) -> Result<(), StoreError> {
        let channel = self.channel(name);
        self.run(|mut c| async move { c.publish::<_, _, ()>(channel, message).await })
            .await
    }

    /// The full name of this store's pub/sub channel `name`.
    pub(crate) fn channel(&self, name: &str) -> String {
        self.inner.keys.channel(name)
    }

    /// The Redis key of an entry. For tests that read Redis directly; not part of the API.
    #[doc(hidden)]
    pub fn entry_key(&self, key: StoreKey) -> String {
        self.inner.keys.entry(key)
    }

    pub(crate) fn client(&self) -> &redis::Client {
        &self.inner.client
    }

    /// How long invalidation records are kept: the longest fill plus twice the clock margin
    /// (the invalidating instance's clock may be ahead, the filling one's behind), so that any
    /// record a fill must see is there for as long as the fill may be stored.
    fn record_memory(&self) -> Duration {
        LONGEST_FILL
            .saturating_add(self.margin_twice())
            .min(MAX_RECORD_MEMORY)
    }

    fn margin_twice(&self) -> Duration {
        self.inner.clock_margin.saturating_mul(2)
    }

    /// The time an operation carrying `len` bytes of value may take: the timeout, plus `len`
    /// at the minimum throughput.
    fn timeout_for(&self, len: usize) -> Duration {
        let nanos = len as u128 * 1_000_000_000 / u128::from(self.inner.min_throughput);
        let transfer = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
        self.inner.timeout.saturating_add(transfer)
    }

    /// Runs `op` on the connection, within the timeout, through the circuit breaker.
    async fn run<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        self.run_sized(0, op).await
    }

    /// Runs `op`, which carries a value of `len` bytes, within the timeout for its size,
    /// through the circuit breaker; a large value on the bulk connection, and its timing out
    /// (the transfer was slow, which says little about Redis) is no verdict for the breaker.
    async fn run_sized<T, F, Fut>(&self, len: usize, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let inner = &self.inner;
        let large = len > LARGE_VALUE;
        // Dropped with this future (a cancelled request), a probe counts as failed.
        let Some(permit) = inner.breaker.allow() else {
            return Err(StoreError::new("redis circuit open"));
        };
        let attempt = async {
            let (cell, response_timeout) = if large {
                // No response timeout of its own: each operation has its own, set below.
                (&inner.bulk_connection, None)
            } else {
                (&inner.connection, Some(self.timeout_for(LARGE_VALUE)))
            };
            let connection = cell
                .get_or_try_init(|| {
                    let mut cache = ConnectionManagerConfig::new()
                        .set_connection_timeout(inner.timeout)
                        .set_number_of_retries(1);
                    if let Some(timeout) = response_timeout {
                        cache = cache.set_response_timeout(timeout);
                    }
                    ConnectionManager::new_with_config(inner.client.clone(), cache)
                })
                .await?
                .clone();
            op(connection).await
        };
        match tokio::time::timeout(self.timeout_for(len), attempt).await {
            Ok(Ok(value)) => {
                permit.success();
                Ok(value)
            }
            Ok(Err(error)) if large && error.is_timeout() => {
                Err(self.slow_transfer(permit, StoreError::new(error)))
            }
            Ok(Err(error)) => Err(self.fault(permit, StoreError::new(error))),
            Err(_) if large => Err(self.slow_transfer(
                permit,
                StoreError::new("redis operation on a large value timed out"),
            )),
            Err(_) => Err(self.fault(permit, StoreError::new("redis operation timed out"))),
        }
    }

    fn fault(&self, permit: Permit<'_>, error: StoreError) -> StoreError {
        self.inner.faults.fetch_add(1, Relaxed);
        permit.failure();
        error
    }

    /// A large value's operation timed out: a fault, but no sign that Redis is down.
    fn slow_transfer(&self, permit: Permit<'_>, error: StoreError) -> StoreError {
        self.inner.faults.fetch_add(1, Relaxed);
        permit.inconclusive();
        error
    }

    fn mac(&self, redis_key: &str, value: &[u8]) -> Option<[u8; MAC_LEN]> {
        let secret = self.inner.secret.as_ref()?;
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).ok()?;
        mac.update(redis_key.as_bytes());
        mac.update(&[0]);
        mac.update(value);
        Some(mac.finalize().into_bytes().into())
    }

    /// The entry in a stored value, if the value verifies and decodes.
    fn open(&self, redis_key: &str, value: Vec<u8>) -> Option<Entry> {
        let value = Bytes::from(value);
        let payload = if self.inner.secret.is_some() {
            let split = value.len().checked_sub(MAC_LEN)?;
            let (payload, tag) = (value.slice(..split), &value[split..]);
            let mut mac = Hmac::<Sha256>::new_from_slice(self.inner.secret.as_deref()?).ok()?;
            mac.update(redis_key.as_bytes());
            mac.update(&[0]);
            mac.update(&payload);
            // Constant-time comparison.
            mac.verify_slice(tag).ok()?;
            payload
        } else {
            value
        };
        Entry::decode(payload).ok()
    }
}

impl Store for RedisStore {
    async fn get(&self, key: StoreKey) -> Result<Option<Arc<Entry>>, StoreError> {
        let redis_key = self.inner.keys.entry(key);
        // Now and then, a read also counts the live entries (same round trip).
        let counting = self.inner.count.refresh_due().then(|| {
            let live = format!("({}", crate::entry::unix_ms(std::time::SystemTime::now()));
            (self.inner.keys.entries(), live)
        });
        let k = redis_key.clone();
        let (len, head, count): (usize, Vec<u8>, Option<i64>) = self
            .run(|mut c| async move {
                let mut pipe = redis::pipe();
                pipe.strlen(&k).getrange(&k, 0, INLINE_READ as isize - 1);
                match counting {
                    Some((index, live)) => {
                        pipe.zcount(index, live, "+inf");
                        let (len, head, count) = pipe.query_async(&mut c).await?;
                        Ok((len, head, Some(count)))
                    }
                    None => {
                        let (len, head) = pipe.query_async(&mut c).await?;
                        Ok((len, head, None))
                    }
                }
            })
            .await?;
        if let Some(count) = count {
            self.inner.count.set(count);
        }
        // Shorter than asked for: the whole value (empty: none; no entry encodes to nothing).
        let value = if head.len() < INLINE_READ {
            if head.is_empty() {
                return Ok(None);
            }
            head
        } else {
            if len > self.inner.max_value_bytes {
                tracing::debug!(key = %redis_key, len, "value over max_value_bytes; a miss");
                return Ok(None);
            }
            let k = redis_key.clone();
            let value: Option<Vec<u8>> = self
                .run_sized(len, |mut c| async move { c.get(k).await })
                .await?;
            match value {
                Some(value) => value,
                None => return Ok(None),
            }
        };
        match self.open(&redis_key, value) {
            Some(entry) => Ok(Some(Arc::new(entry))),
            None => {
                self.inner.undecodable.fetch_add(1, Relaxed);
                tracing::warn!(key = %redis_key, "undecodable or unverified cache value; removed");
                let _ = self.remove(key).await;
                Ok(None)
            }
        }
    }

    async fn put(
        &self,
        key: StoreKey,
        entry: Arc<Entry>,
        ttl: Duration,
    ) -> Result<PutOutcome, StoreError> {
        let too_large = || {
            tracing::debug!("entry over max_value_bytes; not sent to Redis");
            Ok(PutOutcome::TooLarge)
        };
        // The encoding holds the body whole: no need to make it to know.
        if entry
            .body()
            .is_some_and(|body| body.len() > self.inner.max_value_bytes)
        {
            return too_large();
        }
        let keys = &self.inner.keys;
        let redis_key = keys.entry(key);
        let mut value = entry.encode();
        if let Some(mac) = self.mac(&redis_key, &value) {
            value.extend_from_slice(&mac);
        }
        let len = value.len();
        if len > self.inner.max_value_bytes {
            return too_large();
        }
        // A large value is uploaded first, so that the script moves it instead of copying it.
        let (upload, inline) = if len > LARGE_VALUE {
            let n = self.inner.uploads.fetch_add(1, Relaxed);
            let name = keys.upload(key, &format!("{}-{n}", self.inner.instance));
            (Some((name, value)), Vec::new())
        } else {
            (None, value)
        };
        let mut invocation = self.inner.put.prepare_invoke();
        invocation
            .key(&redis_key)
            .key(keys.everything())
            .key(keys.entries())
            .key(keys.records());
        let now = std::time::SystemTime::now();
        let longest_fill = self.record_memory().saturating_sub(self.margin_twice());
        match &upload {
            Some((name, _)) => invocation.key(name),
            None => invocation.key(&redis_key),
        };
        invocation
            .arg(inline)
            .arg(ttl.as_millis().clamp(1, i64::MAX as u128) as i64)
            .arg(crate::entry::unix_ms(entry.fill_started_at()))
            .arg(crate::entry::millis(self.inner.clock_margin))
            .arg(crate::entry::unix_ms(now).saturating_sub(crate::entry::millis(longest_fill)));
        for tag in entry.tags() {
            invocation.key(keys.tag(tag)).arg(Keys::record(tag));
        }
        // An upload the script never takes (this call gave up) goes by itself.
        let upload_ttl =
            crate::entry::millis(self.timeout_for(len).saturating_add(Duration::from_secs(1)));
        let (stored, count): (i64, i64) = self
            .run_sized(len, |mut c| async move {
                if let Some((upload, value)) = upload {
                    redis::cmd("SET")
                        .arg(upload)
                        .arg(value)
                        .arg("PX")
                        .arg(upload_ttl.max(1))
                        .exec_async(&mut c)
                        .await?;
                }
                invocation.invoke_async(&mut c).await
            })
            .await?;
        self.inner.count.set(count);
        if stored == 1 {
            Ok(PutOutcome::Stored)
        } else {
            tracing::debug!("an invalidation on some instance overtook this fill; not stored");
            Ok(PutOutcome::Refused)
        }
    }

    async fn remove(&self, key: StoreKey) -> Result<(), StoreError> {
        let redis_key = self.inner.keys.entry(key);
        let index = self.inner.keys.entries();
        let count: i64 = self
            .run(|mut c| async move {
                let (count,): (i64,) = redis::pipe()
                    .atomic()
                    .del(&redis_key)
                    .ignore()
                    .zrem(&index, &redis_key)
                    .ignore()
                    .zcard(&index)
                    .query_async(&mut c)
                    .await?;
                Ok(count)
            })
            .await?;
        self.inner.count.set(count);
        Ok(())
    }

    async fn invalidate_tags<'a>(&'a self, tags: &'a [&'a str]) -> Result<u64, StoreError> {
        if tags.is_empty() {
            return Ok(0);
        }
        let keys = &self.inner.keys;
        let mut invocation = self.inner.invalidate.prepare_invoke();
        invocation
            .key(keys.entries())
            .key(keys.records())
            .key(keys.everything())
            .arg(crate::entry::unix_ms(std::time::SystemTime::now()))
            .arg(crate::entry::millis(self.record_memory()))
            .arg(MAX_RECORDS);
        for tag in tags {
            invocation.key(keys.tag(tag)).arg(Keys::record(tag));
        }
        let (removed, count): (u64, i64) = self
            .run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await?;
        self.inner.count.set(count);
        Ok(removed)
    }

    /// Records everything as invalidated (fills that started before are refused), then deletes
    /// every entry and tag index under the prefix, whoever stored them; returns how many entries
    /// were deleted.
    async fn clear(&self) -> Result<u64, StoreError> {
        let mut invocation = self.inner.invalidate_everything.prepare_invoke();
        invocation
            .key(self.inner.keys.everything())
            .arg(crate::entry::unix_ms(std::time::SystemTime::now()))
            .arg(crate::entry::millis(self.record_memory()));
        self.run(|mut c| async move { invocation.invoke_async::<i64>(&mut c).await })
            .await?;
        let removed = self
            .delete_matching(&self.inner.keys.pattern("e"), true)
            .await?;
        self.delete_matching(&self.inner.keys.pattern("t"), false)
            .await?;
        let index = self.inner.keys.entries();
        let count: i64 = self
            .run(|mut c| async move { c.zcard(index).await })
            .await?;
        self.inner.count.set(count);
        Ok(removed)
    }

    /// No memory tier: only [`shared_entries`](StoreMetrics::shared_entries), the live
    /// entries in Redis as last heard.
    fn metrics(&self) -> StoreMetrics {
        StoreMetrics::default().with_shared_entries(self.inner.count.get())
    }

    async fn claim_fill(&self, key: StoreKey, hold: Duration) -> bool {
        let Some(token) = self.inner.lock_token.clone() else {
            return true;
        };
        let lock = self.inner.keys.lock(key);
        let hold_ms = hold.as_millis().clamp(1, i64::MAX as u128) as i64;
        let set = self
            .run(|mut c| async move {
                redis::cmd("SET")
                    .arg(lock)
                    .arg(token)
                    .arg("NX")
                    .arg("PX")
                    .arg(hold_ms)
                    .query_async::<Option<String>>(&mut c)
                    .await
            })
            .await;
        // Taken only when Redis says so; on an error, fill (the origin is the fallback).
        !matches!(set, Ok(None))
    }

    async fn release_fill(&self, key: StoreKey) {
        let Some(token) = self.inner.lock_token.clone() else {
            return;
        };
        let mut invocation = self.inner.release.prepare_invoke();
        invocation.key(self.inner.keys.lock(key)).arg(token);
        let _ = self
            .run(|mut c| async move { invocation.invoke_async::<i64>(&mut c).await })
            .await;
    }
}
