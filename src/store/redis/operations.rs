//! [`Store`] for [`RedisStore`]: reads, puts (checked against invalidations by a script),
//! removals, invalidations, clears, its figures, and the cluster-wide fill claim.

use redis::AsyncCommands;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use super::keys::Keys;
use super::{INLINE_READ, LARGE_VALUE, MAX_RECORDS, NAME, RedisStore};
use crate::store::{BreakerState, InspectedEntry, PutOutcome, Store, StoreError, StoreMetrics};
use crate::{Entry, StoreKey};

impl RedisStore {
    /// Deletes every key matching the glob `pattern`, in batches (SCAN, not KEYS; each batch
    /// an operation of its own, within the timeout); with `entries`, they are entries, and
    /// also leave the entries index and the sizes record. Returns how many keys were deleted.
    async fn delete_matching(&self, pattern: &str, entries: bool) -> Result<u64, StoreError> {
        let mut deleted = 0;
        let mut cursor = 0u64;
        loop {
            let pattern = pattern.to_owned();
            let remove = entries.then(|| self.removal());
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
                    let removed = match remove {
                        Some(mut remove) => {
                            for key in &keys {
                                remove.key(key);
                            }
                            // The figures are asked for once the clear is done.
                            let (removed, _, _): (u64, i64, i64) =
                                remove.invoke_async(&mut c).await?;
                            removed
                        }
                        None => c.del(&keys).await?,
                    };
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

    /// The whole value under `redis_key`, given a read's first round trip (the value's length
    /// and its first [`INLINE_READ`] bytes): those bytes when fewer (empty: none; no entry
    /// encodes to nothing), else the value fetched whole, within the timeout for its size (one
    /// over `max_value_bytes`: none).
    async fn whole_value(
        &self,
        redis_key: &str,
        len: usize,
        head: Vec<u8>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        if head.len() < INLINE_READ {
            return Ok(Some(head).filter(|head| !head.is_empty()));
        }
        if len > self.inner.max_value_bytes {
            tracing::debug!(key = %redis_key, len, "value over max_value_bytes; a miss");
            return Ok(None);
        }
        let k = redis_key.to_owned();
        self.run_sized(len, |mut c| async move { c.get(k).await })
            .await
    }

    /// The removal script, its first keys given: add the entries to remove.
    fn removal(&self) -> redis::ScriptInvocation<'_> {
        let mut invocation = self.inner.remove.prepare_invoke();
        invocation
            .key(self.inner.keys.entries())
            .key(self.inner.keys.sizes());
        invocation
    }
}

impl RedisStore {
    /// Trims the expired entries' sizes and counts what is live (see `scripts::TALLY`); a
    /// failure leaves the last figures as they were.
    async fn refresh_figures(&self) {
        let mut tally = self.inner.tally.prepare_invoke();
        tally
            .key(self.inner.keys.entries())
            .key(self.inner.keys.sizes());
        let seq = self.inner.count.begin();
        let figures: Result<(i64, i64), _> = self
            .run(|mut c| async move { tally.invoke_async(&mut c).await })
            .await;
        match figures {
            Ok((entries, bytes)) => self.inner.count.set(seq, entries, bytes),
            Err(error) => tracing::debug!(%error, "could not count the Redis tier"),
        }
    }
}

impl Store for RedisStore {
    async fn get(&self, key: StoreKey) -> Result<Option<Arc<Entry>>, StoreError> {
        let redis_key = self.inner.keys.entry(key);
        // Now and then, a read also refreshes the figures, in a task of its own: the script
        // drops entries that expired (and their sizes) and counts the rest; the read itself
        // stays a plain `STRLEN` + `GETRANGE`, whatever becomes of the script.
        // Only while the circuit is closed: a refresh must never take the half-open probe
        // (the request that should test Redis would then fail at once).
        if !self.inner.breaker.is_open()
            && self.inner.count.refresh_due()
            && tokio::runtime::Handle::try_current().is_ok()
        {
            let store = self.clone();
            tokio::spawn(async move { store.refresh_figures().await });
        }
        let k = redis_key.clone();
        let (len, head): (usize, Vec<u8>) = self
            .run(|mut c| async move {
                redis::pipe()
                    .strlen(&k)
                    .getrange(&k, 0, INLINE_READ as isize - 1)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        let Some(value) = self.whole_value(&redis_key, len, head).await? else {
            return Ok(None);
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
            .key(keys.sizes())
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
        let seq = self.inner.count.begin();
        let (stored, count, bytes): (i64, i64, i64) = self
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
        self.inner.count.set(seq, count, bytes);
        if stored == 1 {
            Ok(PutOutcome::Stored)
        } else {
            tracing::debug!("an invalidation on some instance overtook this fill; not stored");
            Ok(PutOutcome::Refused)
        }
    }

    async fn remove(&self, key: StoreKey) -> Result<(), StoreError> {
        let mut invocation = self.removal();
        invocation.key(self.inner.keys.entry(key));
        let seq = self.inner.count.begin();
        let (_, count, bytes): (u64, i64, i64) = self
            .run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await?;
        self.inner.count.set(seq, count, bytes);
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
            .key(keys.sizes())
            .arg(crate::entry::unix_ms(std::time::SystemTime::now()))
            .arg(crate::entry::millis(self.record_memory()))
            .arg(MAX_RECORDS);
        for tag in tags {
            invocation.key(keys.tag(tag)).arg(Keys::record(tag));
        }
        let seq = self.inner.count.begin();
        let (removed, count, bytes): (u64, i64, i64) = self
            .run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await?;
        self.inner.count.set(seq, count, bytes);
        Ok(removed)
    }

    /// Records everything as invalidated (fills that started before are refused), then deletes
    /// every entry and tag index under the prefix, whoever stored them; returns how many entries
    /// were deleted. The figures follow: the entries deleted leave the count and the bytes, and
    /// once the entries index is empty the sizes record goes with it (any drift too).
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
        let mut tally = self.inner.tally.prepare_invoke();
        tally
            .key(self.inner.keys.entries())
            .key(self.inner.keys.sizes());
        let seq = self.inner.count.begin();
        let (count, bytes): (i64, i64) = self
            .run(|mut c| async move { tally.invoke_async(&mut c).await })
            .await?;
        self.inner.count.set(seq, count, bytes);
        Ok(removed)
    }

    /// No memory tier: [`shared_entries`](StoreMetrics::shared_entries) and
    /// [`shared_bytes`](StoreMetrics::shared_bytes), the live entries in Redis and the bytes
    /// of their values as last heard, and the circuit [`breaker`](StoreMetrics::breaker).
    fn metrics(&self) -> StoreMetrics {
        let count = &self.inner.count;
        let breaker = &self.inner.breaker;
        StoreMetrics::default()
            .with_shared_entries(count.entries())
            .with_shared_bytes(count.bytes())
            .with_breaker(Some(BreakerState::new(
                breaker.is_open(),
                breaker.opened.load(Relaxed),
            )))
    }

    fn name(&self) -> &'static str {
        NAME
    }

    /// At most 1,000 of the entries carrying `tag` (those that expire last), in tier `redis`;
    /// values that do not decode or verify, or do not belong under their key, are left out.
    async fn inspect<'a>(&'a self, tag: &'a str) -> Result<Vec<InspectedEntry>, StoreError> {
        self.listed(tag).await
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
