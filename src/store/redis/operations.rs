//! [`Store`] for [`RedisStore`]: reads, puts (checked against invalidations by a script),
//! removals, invalidations, clears, and the cluster-wide fill claim.

use redis::AsyncCommands;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use super::keys::Keys;
use super::{INLINE_READ, LARGE_VALUE, MAX_RECORDS, RedisStore};
use crate::store::{PutOutcome, Store, StoreError, StoreMetrics};
use crate::{Entry, StoreKey};

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
