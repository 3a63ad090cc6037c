//! [`Store::inspect`](crate::Store::inspect) for [`RedisStore`]: the entries a tag's index
//! lists, read and verified as a lookup reads them.

use redis::AsyncCommands;
use std::sync::Arc;

use super::{INLINE_READ, MAX_INSPECTED, NAME, RedisStore};
use crate::StoreKey;
use crate::store::{InspectedEntry, StoreError};

impl RedisStore {
    /// At most [`MAX_INSPECTED`] of the entries `tag`'s index lists, those that expire last
    /// first. Only names this store writes are read (a member naming any other key is left
    /// alone); a value that does not decode or verify (HMAC), or whose full key does not hash
    /// to its place, is left out, and left where it is (a lookup removes it).
    pub(super) async fn listed(&self, tag: &str) -> Result<Vec<InspectedEntry>, StoreError> {
        let index = self.inner.keys.tag(tag);
        // By expiry, latest first: the live members come before any expired one not yet
        // trimmed, whatever the clocks say.
        let members: Vec<Vec<u8>> = self
            .run(|mut c| async move {
                redis::cmd("ZRANGE")
                    .arg(index)
                    .arg("+inf")
                    .arg("-inf")
                    .arg("BYSCORE")
                    .arg("REV")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(MAX_INSPECTED)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        let named: Vec<(StoreKey, String)> = members
            .into_iter()
            .filter_map(|member| {
                let key = self.inner.keys.entry_key(&member)?;
                Some((key, self.inner.keys.entry(key)))
            })
            .collect();
        if named.is_empty() {
            return Ok(Vec::new());
        }
        // Their lengths first, to read them in bounded batches (a script: `STRLEN` of a key
        // that is not a string would fail the lot).
        let mut lengths = self.inner.lengths.prepare_invoke();
        for (_, name) in &named {
            lengths.key(name);
        }
        let lengths: Vec<i64> = self
            .run(|mut c| async move { lengths.invoke_async(&mut c).await })
            .await?;
        let mut found = Vec::new();
        let mut read = 0usize;
        for batch in batches(&named, &lengths, self.inner.max_value_bytes) {
            // Bounded in bytes too: a thousand large values must not all be held at once.
            if read >= MAX_INSPECTED_BYTES {
                break;
            }
            read = read.saturating_add(batch.bytes);
            let names: Vec<&str> = batch.names.iter().map(|&(_, name)| name.as_str()).collect();
            let values: Vec<Option<Vec<u8>>> = self
                .run_sized(batch.bytes, |mut c| async move { c.mget(names).await })
                .await?;
            for (&(key, name), value) in batch.names.iter().zip(values) {
                let Some(value) = value.filter(|v| v.len() <= self.inner.max_value_bytes) else {
                    continue;
                };
                match self.open(name, value) {
                    Some(entry) if StoreKey::of(entry.key()) == *key => {
                        found.push(InspectedEntry::new(*key, Arc::new(entry), NAME));
                    }
                    _ => tracing::debug!(key = %name, "undecodable or misplaced value; not listed"),
                }
            }
        }
        Ok(found)
    }
}

/// The most bytes of values one inspection reads (it stops at the batch that passes it).
const MAX_INSPECTED_BYTES: usize = 64 << 20;

/// Entries read in one round trip.
struct Batch<'a> {
    names: Vec<&'a (StoreKey, String)>,
    /// The sum of their values' lengths.
    bytes: usize,
}

/// `named` in batches of at most [`INLINE_READ`] bytes of values (a longer value alone), in
/// order, leaving out those of length 0 (none: gone, or not a string) or over `max` (a
/// lookup would not read them either). `lengths[i]` is the length of `named[i]`'s value.
fn batches<'a>(named: &'a [(StoreKey, String)], lengths: &[i64], max: usize) -> Vec<Batch<'a>> {
    let mut batches: Vec<Batch<'a>> = Vec::new();
    for (entry, &len) in named.iter().zip(lengths) {
        let Some(len) = usize::try_from(len)
            .ok()
            .filter(|&len| len > 0 && len <= max)
        else {
            continue;
        };
        match batches.last_mut() {
            Some(last) if last.bytes.saturating_add(len) <= INLINE_READ => {
                last.names.push(entry);
                last.bytes += len;
            }
            _ => batches.push(Batch {
                names: vec![entry],
                bytes: len,
            }),
        }
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_hold_at_most_an_inline_read_or_one_longer_value() {
        let named: Vec<(StoreKey, String)> = (0..6u128)
            .map(|i| (StoreKey::from_u128(i), i.to_string()))
            .collect();
        let half = (INLINE_READ / 2) as i64;
        let lengths = [half, half, 0, 3 * half, -1, 10];
        let sizes: Vec<Vec<&str>> = batches(&named, &lengths, 4 * INLINE_READ)
            .iter()
            .map(|b| b.names.iter().map(|(_, name)| name.as_str()).collect())
            .collect();
        assert_eq!(sizes, [vec!["0", "1"], vec!["3"], vec!["5"]]);
        let small = batches(&named, &lengths, INLINE_READ);
        assert_eq!(small.len(), 2, "the value over the limit is left out");
        assert_eq!(small[1].bytes, 10);
    }
}
