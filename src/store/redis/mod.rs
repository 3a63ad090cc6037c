//! [`RedisStore`]: entries in Redis, shared by every instance of a service. The store and its
//! state here; `operations.rs` its [`Store`] operations, `run.rs` how one runs (connection,
//! timeout, breaker), `value.rs` what a stored value is (encoding, HMAC), `keys.rs` every
//! Redis name, `scripts.rs` the Lua scripts, `breaker.rs` the circuit breaker, `count.rs` the
//! live entries and bytes as last heard, `inspect.rs` listing a tag's entries, `builder.rs`
//! the builder.

use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;
use tokio::sync::OnceCell;

use super::MAX_INSPECTED;
use super::StoreError;
#[cfg(doc)]
use super::{PutOutcome, Store, StoreMetrics};
#[cfg(doc)]
use crate::Entry;
use crate::StoreKey;
use breaker::Breaker;
use count::SharedCount;
use keys::Keys;

mod breaker;
mod builder;
mod count;
mod inspect;
mod keys;
mod operations;
mod run;
mod scripts;
mod value;

pub use builder::RedisStoreBuilder;

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

/// This store's [`Store::name`], the tier of what it lists and the store its errors name.
const NAME: &str = "redis";

/// A [`Store`] in Redis (7 or later), shared by every instance of a service.
///
/// - Entries are stored in the crate's versioned binary format ([`Entry::encode`]) with their
///   lifetime set in Redis (`PX`), so Redis drops them itself. A value that does not decode (a
///   foreign value, an older format, corruption) is a miss, and is removed.
/// - Each tag has an index in Redis: a sorted set of entry keys scored by their expiry, trimmed
///   of expired members on every write, and expiring with its longest-lived entry; so an index
///   stays within a small factor of its live entries. Invalidating tags is one Lua script:
///   atomic. An index of all entries, kept the same way, counts them for
///   [`StoreMetrics::shared_entries`]; beside it, each entry's size and their total give
///   [`StoreMetrics::shared_bytes`] (see [Figures](#figures)).
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
/// # Figures
///
/// Its [`metrics`](Store::metrics) has no memory tier (its `entries` are 0). It reports:
///
/// - [`shared_entries`](StoreMetrics::shared_entries) and
///   [`shared_bytes`](StoreMetrics::shared_bytes): the entries live in Redis (stored by every
///   instance sharing the prefix) and the bytes of their values as stored (the encoding and its
///   HMAC; not Redis's own overhead per key). Both are as of this instance's last write,
///   invalidation, removal or clear, or (at most once a second) read: `None` until then. The
///   Lua scripts keep each entry's size beside the entries index and the total up to date
///   atomically (a put adds its value and takes off the one it replaced; an invalidation, a
///   removal and a clear take off what they delete; an entry that expired is taken off by the
///   next write or refreshing read, on any instance), so every instance hears the same total.
///   They can drift from what Redis holds only when something else removes keys: Redis's own
///   `maxmemory` eviction (or a `DEL` by hand) of an entry leaves it counted, in both figures,
///   until the time it was stored to expire; an eviction of the sizes record itself leaves
///   the entries stored before it uncounted until they go. Either way the figures are right
///   again once the entries concerned have expired, and the record starts again from zero
///   whenever the entries index empties (a clear, or every entry expired).
/// - [`breaker`](StoreMetrics::breaker): whether the circuit is open now (from the moment it
///   opens until a call succeeds again) and how many times it opened, as
///   [`faults`](RedisStore::faults) says too. It logs `cache store circuit opened` (warn) and
///   `cache store circuit closed` (info).
///
/// Its [`name`](Store::name) is `redis`, and every error it returns says so
/// ([`StoreError::store`]). [`inspect`](Store::inspect) lists at most 1,000 of a tag's entries
/// (those that expire last), read and verified as a lookup reads them (a value that does not
/// decode, or whose HMAC or key does not match its place, is left out), each in tier `redis`.
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
    remove: Script,
    tally: Script,
    lengths: Script,
    release: Script,
    clock_margin: Duration,
    /// With cluster-wide coalescing, this instance's lock token.
    lock_token: Option<String>,
    /// Tells this instance's uploads from others'.
    instance: String,
    uploads: AtomicU64,
    faults: AtomicU64,
    undecodable: AtomicU64,
    /// Live entries in Redis and their bytes, as last heard.
    count: SharedCount,
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

    /// The Redis key of a tag's index. For tests that read Redis directly; not part of the API.
    #[doc(hidden)]
    pub fn tag_index_key(&self, tag: &str) -> Vec<u8> {
        self.inner.keys.tag(tag)
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
}
