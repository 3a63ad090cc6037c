//! [`RedisStoreBuilder`]: the knobs of a [`RedisStore`].

use redis::Script;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;
use tokio::sync::OnceCell;

use super::breaker::Breaker;
use super::count::SharedCount;
use super::keys::Keys;
use super::{Inner, RedisStore, scripts};
use crate::StoreError;

impl RedisStore {
    /// A builder for a store at `url` (`redis://[user:password@]host:port/db`).
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder {
            url: url.into(),
            prefix: "trc".to_owned(),
            timeout: Duration::from_millis(100),
            secret: None,
            failures_to_open: 5,
            open_for: Duration::from_secs(2),
            cluster_coalescing: false,
            clock_margin: Duration::from_secs(1),
            max_value_bytes: 8 << 20,
            min_throughput: 10 << 20,
        }
    }
}

/// Builds a [`RedisStore`].
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
#[derive(Clone)]
pub struct RedisStoreBuilder {
    url: String,
    prefix: String,
    timeout: Duration,
    secret: Option<Box<[u8]>>,
    failures_to_open: u32,
    open_for: Duration,
    cluster_coalescing: bool,
    clock_margin: Duration,
    max_value_bytes: usize,
    min_throughput: u64,
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStoreBuilder")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("max_value_bytes", &self.max_value_bytes)
            .finish_non_exhaustive()
    }
}

impl RedisStoreBuilder {
    /// The prefix of every Redis key this store writes (default `trc`), so several caches or
    /// applications can share a Redis.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The longest any operation may take, connecting included (default 100 ms), plus the time
    /// its value takes to travel at [`min_throughput`](Self::min_throughput). Past it, the
    /// operation counts as failed: a miss for a read.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The largest value this store writes to or reads from Redis (default 8 MiB): the
    /// encoded entry, with its HMAC. A larger entry is not sent at all:
    /// [`put`](crate::Store::put) answers [`PutOutcome::TooLarge`](crate::PutOutcome::TooLarge)
    /// at once, and what Redis held under the key stays until it expires or is invalidated (a
    /// [`TieredStore`](crate::TieredStore) keeps the entry in its memory tier only). A larger
    /// value in Redis, written by an instance with a higher limit, is a miss here.
    pub fn max_value_bytes(mut self, bytes: usize) -> Self {
        self.max_value_bytes = bytes;
        self
    }

    /// The slowest transfer to Redis, in bytes a second, that still counts as healthy (default
    /// 10 MiB/s, about 84 Mbit/s): an operation on a value of `n` bytes may take the
    /// [`timeout`](Self::timeout) plus `n` / this. Values over 1 MiB also travel on a
    /// connection of their own, so that small values are never queued behind them, and their
    /// timing out is not taken as a sign that Redis is down: it counts as a fault, never
    /// towards opening the circuit breaker (small operations still open it when Redis is).
    /// Zero is taken as one byte a second.
    pub fn min_throughput(mut self, bytes_per_second: u64) -> Self {
        self.min_throughput = bytes_per_second;
        self
    }

    /// Signs every value with HMAC-SHA256 under `secret`, and treats values that do not verify
    /// as misses.
    pub fn hmac_secret(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.secret = Some(secret.as_ref().into());
        self
    }

    /// After `failures` failed operations in a row, stop calling Redis for `open_for`, then
    /// probe (default: 5 failures, 2 s).
    pub fn circuit_breaker(mut self, failures: u32, open_for: Duration) -> Self {
        self.failures_to_open = failures;
        self.open_for = open_for;
        self
    }

    /// Cluster-wide coalescing: before filling a key, an instance takes a short lock in Redis
    /// (`SET NX PX`); the other instances then wait for the entry (polling, up to the policy's
    /// `max_coalesce_wait`) instead of calling the origin too. Off by default.
    pub fn cluster_coalescing(mut self, on: bool) -> Self {
        self.cluster_coalescing = on;
        self
    }

    /// How far apart the instances' clocks may be (default 1 s). An entry whose fill started
    /// less than this before an invalidation of one of its tags, on any instance, is not
    /// stored: so no instance writes back data another one invalidated, even with skewed
    /// clocks, at the price of a short window of misses after each invalidation.
    pub fn invalidation_clock_margin(mut self, margin: Duration) -> Self {
        self.clock_margin = margin;
        self
    }

    /// Builds the store. Only the URL is checked here (`redis://`, `rediss://` with the
    /// `redis-tls` feature, user and password in the URL); the connection is made on first use.
    pub fn build(self) -> Result<RedisStore, StoreError> {
        let client = redis::Client::open(self.url.as_str())
            .map_err(|error| StoreError::new(error).in_store(super::NAME))?;
        Ok(RedisStore {
            inner: Arc::new(Inner {
                client,
                connection: OnceCell::new(),
                bulk_connection: OnceCell::new(),
                keys: Keys::new(self.prefix),
                timeout: self.timeout,
                max_value_bytes: self.max_value_bytes,
                min_throughput: self.min_throughput.max(1),
                secret: self.secret,
                breaker: Breaker::new(self.failures_to_open, self.open_for),
                invalidate: Script::new(scripts::INVALIDATE_TAGS),
                invalidate_everything: Script::new(scripts::INVALIDATE_EVERYTHING),
                put: Script::new(scripts::PUT),
                remove: Script::new(scripts::REMOVE),
                tally: Script::new(scripts::TALLY),
                lengths: Script::new(scripts::LENGTHS),
                clock_margin: self.clock_margin,
                release: Script::new(scripts::RELEASE_LOCK),
                lock_token: self.cluster_coalescing.then(instance_token),
                instance: instance_token(),
                uploads: AtomicU64::new(0),
                faults: AtomicU64::new(0),
                undecodable: AtomicU64::new(0),
                count: SharedCount::new(),
            }),
        })
    }
}

/// This store instance's name in Redis (its fill claims, its uploads).
fn instance_token() -> String {
    format!("{:016x}", crate::store::instance::instance_id())
}
